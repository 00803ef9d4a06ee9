package admin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"
)

// softKey is a software authenticator for tests: one P-256 credential,
// its counter, and the user handle it was made for. It makes the answers
// a browser's navigator.credentials would send, for any origin the test
// names (to try a look-alike's, or the portal's, on the console).
type softKey struct {
	id     []byte
	key    *ecdsa.PrivateKey
	handle []byte
	count  uint32
}

var b64 = base64.RawURLEncoding

func newSoftKey(t *testing.T) *softKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	return &softKey{id: id, key: k}
}

// cbor writes the head of a CBOR item of major type m and argument n.
func cborHead(m byte, n uint64) []byte {
	switch {
	case n < 24:
		return []byte{m<<5 | byte(n)}
	case n < 256:
		return []byte{m<<5 | 24, byte(n)}
	default:
		return []byte{m<<5 | 25, byte(n >> 8), byte(n)}
	}
}

func cborInt(i int) []byte {
	if i >= 0 {
		return cborHead(0, uint64(i))
	}
	return cborHead(1, uint64(-1-i))
}

func cborBytes(b []byte) []byte { return append(cborHead(2, uint64(len(b))), b...) }
func cborText(s string) []byte  { return append(cborHead(3, uint64(len(s))), s...) }

func (k *softKey) coseKey() []byte {
	x, y := make([]byte, 32), make([]byte, 32)
	k.key.PublicKey.X.FillBytes(x)
	k.key.PublicKey.Y.FillBytes(y)
	out := cborHead(5, 5)
	for _, part := range [][]byte{cborInt(1), cborInt(2), cborInt(3), cborInt(-7), cborInt(-1), cborInt(1), cborInt(-2), cborBytes(x), cborInt(-3), cborBytes(y)} {
		out = append(out, part...)
	}
	return out
}

func (k *softKey) authData(rpID string, attested bool) []byte {
	h := sha256.Sum256([]byte(rpID))
	out := append([]byte{}, h[:]...)
	flags := byte(0x01 | 0x04) // user present, user verified
	if attested {
		flags |= 0x40
	}
	k.count++
	out = append(out, flags)
	out = binary.BigEndian.AppendUint32(out, k.count)
	if attested {
		out = append(out, make([]byte, 16)...) // AAGUID
		out = binary.BigEndian.AppendUint16(out, uint16(len(k.id)))
		out = append(out, k.id...)
		out = append(out, k.coseKey()...)
	}
	return out
}

func clientData(t *testing.T, typ, challenge, origin string) []byte {
	b, err := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// options reads the challenge, the relying party and the user handle of
// a ceremony's options (as sent to the browser).
func options(t *testing.T, raw []byte) (challenge, rpID string, handle []byte) {
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			RPID      string `json:"rpId"`
			RP        struct {
				ID string `json:"id"`
			} `json:"rp"`
			User struct {
				ID string `json:"id"`
			} `json:"user"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatalf("options %s: %v", raw, err)
	}
	rpID = o.PublicKey.RPID
	if rpID == "" {
		rpID = o.PublicKey.RP.ID
	}
	if o.PublicKey.User.ID != "" {
		h, err := b64.DecodeString(o.PublicKey.User.ID)
		if err != nil {
			t.Fatal(err)
		}
		handle = h
	}
	return o.PublicKey.Challenge, rpID, handle
}

// register answers a registration ceremony's options at origin.
func (k *softKey) register(t *testing.T, opts []byte, origin string) []byte {
	chal, rpID, handle := options(t, opts)
	k.handle = handle
	att := cborHead(5, 3)
	att = append(att, cborText("fmt")...)
	att = append(att, cborText("none")...)
	att = append(att, cborText("attStmt")...)
	att = append(att, cborHead(5, 0)...)
	att = append(att, cborText("authData")...)
	att = append(att, cborBytes(k.authData(rpID, true))...)
	body, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]string{"clientDataJSON": b64.EncodeToString(clientData(t, "webauthn.create", chal, origin)), "attestationObject": b64.EncodeToString(att)},
	})
	return body
}

// assert answers a login ceremony's options as a page at origin would
// have it answered (rpID: the options', unless given).
func (k *softKey) assert(t *testing.T, opts []byte, origin string) []byte {
	chal, rpID, _ := options(t, opts)
	ad := k.authData(rpID, false)
	cd := clientData(t, "webauthn.get", chal, origin)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]string{"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(ad),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(k.handle)},
	})
	return body
}
