package connect

import (
	"bytes"
	"io"
	"testing"
)

// Before the gateway answers, the local side is read no further than
// maxEarly (and one read past it); a failed attempt's bytes are sent again
// by the next; after the answer the rest follows, in order, once each.
func TestUploadKeepsAtMostMaxEarlyBeforeTheAnswer(t *testing.T) {
	data := make([]byte, 4*maxEarly)
	for i := range data {
		data[i] = byte(i * 7)
	}
	in := &countingReader{r: bytes.NewReader(data), read: make(chan int, 1024)}
	u := newUpload(in)
	first := u.attempt()
	got := make([]byte, maxEarly)
	if _, err := io.ReadFull(first, got); err != nil || !bytes.Equal(got, data[:maxEarly]) {
		t.Fatalf("the first attempt's body: %v", err)
	}
	// The reader has stopped: it has read maxEarly bytes and at most one
	// read more (awaited: it reports each read).
	total := 0
	for total < maxEarly {
		total += <-in.read
	}
	u.mu.Lock()
	kept := len(u.kept)
	u.mu.Unlock()
	if kept > maxEarly+smallCopy {
		t.Fatalf("%d bytes kept before the answer, more than %d", kept, maxEarly+smallCopy)
	}
	first.Close()
	second := u.attempt()
	u.answer(second)
	all, err := io.ReadAll(second)
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("the answered attempt sent %d bytes (%v), want the %d read, in order", len(all), err, len(data))
	}
	second.Close()
	u.stop()
	<-u.done
	if u.n != int64(len(data)) {
		t.Errorf("counted %d bytes up, want %d", u.n, len(data))
	}
}

// countingReader reports the size of each read.
type countingReader struct {
	r    io.Reader
	read chan int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read <- n
	return n, err
}
