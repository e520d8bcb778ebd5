package state

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"unicode/utf8"
)

const (
	// DefaultKDFIterations is the PBKDF2-SHA256 work factor for passphrases (OWASP
	// 2023). Files record the count they were written with.
	DefaultKDFIterations = 210_000
	// MinKDFIterations is the lowest count Open accepts (Options.KDFIterations, or
	// recorded in a file).
	MinKDFIterations = 1000
	maxKDFIterations = 100_000_000
	// MinPassphraseLen is the shortest passphrase accepted in KeyEnv.
	MinPassphraseLen = 16
	saltSize         = 16
	// keyCheckText is sealed into meta the first time a key is used; opening the
	// file with another key fails to open it (ErrWrongKey).
	keyCheckText = "provision state key check"
)

var keyCheckAD = []byte("keycheck")

// rawKey returns the 32 key bytes when text is base64 (standard or URL alphabet,
// padded or not) or hex of exactly 32 bytes, else nil: text is then a passphrase.
func rawKey(text string) []byte {
	if len(text) == 64 {
		if b, err := hex.DecodeString(text); err == nil {
			return b
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(text); err == nil && len(b) == 32 {
			return b
		}
	}
	return nil
}

// ErrWeakKey: the state key is a passphrase shorter than MinPassphraseLen.
var ErrWeakKey = errors.New("state key is too weak")

// checkKeyText refuses a passphrase shorter than MinPassphraseLen characters (a raw
// 32-byte key in base64 or hex is always accepted). The error never holds the key.
func checkKeyText(text string) error {
	if text == "" || rawKey(text) != nil {
		return nil
	}
	if n := utf8.RuneCountInString(text); n < MinPassphraseLen {
		return fmt.Errorf("%w: %s holds a passphrase of %d characters, want at least %d; better, a random 32-byte key: %s=$(head -c32 /dev/urandom | base64)", ErrWeakKey, KeyEnv, n, MinPassphraseLen, KeyEnv)
	}
	return nil
}

// passphraseKey derives a key from a passphrase and the file's salt.
func passphraseKey(text string, salt []byte, iter int) ([]byte, error) {
	k, err := pbkdf2.Key(sha256.New, text, salt, iter, 32)
	if err != nil {
		return nil, fmt.Errorf("derive state key: %w", err)
	}
	return k, nil
}

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("state key: %w", err)
	}
	aead, err := cipher.NewGCM(block) // 12-byte nonces
	if err != nil {
		return nil, fmt.Errorf("state key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// seal returns nonce || ciphertext, with a fresh random nonce.
func (s *sealer) seal(plain, ad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	out := make([]byte, ns, ns+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return s.aead.Seal(out, out, plain, ad), nil
}

func (s *sealer) open(sealed, ad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < ns+s.aead.Overhead() {
		return nil, errors.New("sealed value too short")
	}
	return s.aead.Open(nil, sealed[:ns], sealed[ns:], ad)
}
