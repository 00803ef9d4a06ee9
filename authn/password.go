// Package authn checks who someone is: passwords hashed with argon2id, and
// throttling of guesses per user and per source address.
package authn

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultParams follow OWASP's recommendation for argon2id (19 MiB, two
// passes, one lane): slow enough to make offline guessing expensive, cheap
// enough that a burst of logins does not exhaust the gateway's memory.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
	// MaxPasswordLen bounds the work a single attempt can cause.
	MaxPasswordLen = 1024
)

// hashSlots bounds how many argon2id computations run at once, so a flood of
// login attempts costs bounded memory (slots × Params.Memory).
var hashSlots = make(chan struct{}, 4)

// SlotWait bounds how long a password check waits for a free slot; a flood
// of attempts then gets ErrBusy instead of an ever longer queue.
const SlotWait = 5 * time.Second

// ErrBusy means too many password checks are running; try again shortly.
var ErrBusy = errors.New("too many password checks at once; try again shortly")

func acquireSlot() bool {
	select {
	case hashSlots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(SlotWait)
	defer t.Stop()
	select {
	case hashSlots <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

// Hash returns the PHC-format argon2id hash of password.
func Hash(password string, p Params) (string, error) {
	if len(password) > MaxPasswordLen {
		return "", fmt.Errorf("password longer than %d bytes", MaxPasswordLen)
	}
	salt := make([]byte, saltLen)
	rand.Read(salt)
	hashSlots <- struct{}{}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	<-hashSlots
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("not an argon2id hash")

func parse(hash string) (Params, []byte, []byte, error) {
	var p Params
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, errBadHash
	}
	// Refuse absurd costs from a tampered database row.
	if p.Memory < 1024 || p.Memory > 1<<20 || p.Time < 1 || p.Time > 16 || p.Threads < 1 || p.Threads > 16 {
		return p, nil, nil, errBadHash
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}

// dummyHash is verified against when a user does not exist, so that an
// unknown user name takes as long as a wrong password.
var dummyHash, _ = Hash("sluis-dummy-password", DefaultParams)

// Verify reports whether password matches hash. An empty or malformed hash
// never matches, but costs the same time as a real one. It fails with
// ErrBusy when no slot frees up within SlotWait.
func Verify(password, hash string) (bool, error) {
	if len(password) > MaxPasswordLen {
		return false, nil
	}
	p, salt, key, err := parse(hash)
	valid := err == nil
	if !valid {
		p, salt, key, _ = parse(dummyHash)
	}
	if !acquireSlot() {
		return false, ErrBusy
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	<-hashSlots
	return subtle.ConstantTimeCompare(got, key) == 1 && valid, nil
}
