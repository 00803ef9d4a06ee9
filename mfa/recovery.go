package mfa

import (
	"crypto/rand"
	"crypto/sha256"
	"strings"
)

// RecoveryCodeCount is how many recovery codes a user gets at a time.
const RecoveryCodeCount = 10

// recoveryLetters: no 0/O, 1/I/L look-alikes.
const recoveryLetters = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

// NewRecoveryCodes makes RecoveryCodeCount codes of 16 characters (about
// 79 bits each), shown as XXXX-XXXX-XXXX-XXXX, and their hashes for user.
func NewRecoveryCodes(user string) (codes []string, hashes [][]byte) {
	for range RecoveryCodeCount {
		var b strings.Builder
		for i := 0; i < 16; i++ {
			if i > 0 && i%4 == 0 {
				b.WriteByte('-')
			}
			b.WriteByte(recoveryLetters[randIndex(len(recoveryLetters))])
		}
		c := b.String()
		h, _ := HashRecoveryCode(user, c)
		codes, hashes = append(codes, c), append(hashes, h)
	}
	return codes, hashes
}

// randIndex is a uniform index below n (n <= 256), from crypto/rand.
func randIndex(n int) int {
	limit := 256 - 256%n
	for {
		var b [1]byte
		rand.Read(b[:])
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// HashRecoveryCode normalises what a person typed (any case, with or
// without dashes and spaces) and returns the hash it is stored under, bound
// to the user; ok is false when it cannot be a recovery code.
func HashRecoveryCode(user, typed string) (hash []byte, ok bool) {
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == '-' || r == ' ':
		case strings.ContainsRune(recoveryLetters, r):
			b.WriteRune(r)
		default:
			return nil, false
		}
	}
	if b.Len() != 16 {
		return nil, false
	}
	h := sha256.Sum256([]byte("sluis-recovery-code\x00" + user + "\x00" + b.String()))
	return h[:], true
}
