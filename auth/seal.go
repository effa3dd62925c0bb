package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// sealedPrefix versions the sealed format so it can change without ambiguity.
const sealedPrefix = "v1:"

var (
	// ErrDecrypt is returned when a sealed value does not open: tampered, sealed for
	// another record or field, or under a different key with the same ID.
	ErrDecrypt = errors.New("auth: sealed value does not open")
	// ErrMalformedSealed is returned for text that is not a sealed value at all.
	ErrMalformedSealed = errors.New("auth: malformed sealed value")
)

// Sealer seals secrets for storage with AES-256-GCM and opens them again. A sealed
// value is printable text "v1:<key ID>:<base64url(nonce ‖ ciphertext)>", so the key
// it needs is known and keys can be rotated. Safe for concurrent use.
type Sealer struct {
	keys  KeyProvider
	aeads sync.Map // key ID → cipher.AEAD, so the hot path doesn't rebuild ciphers
}

// NewSealer returns a Sealer over keys.
func NewSealer(keys KeyProvider) *Sealer { return &Sealer{keys: keys} }

// Seal encrypts plaintext under the current key. aad binds the value to where it is
// stored (e.g. "profile/<id>/Password"): opened with any other aad it fails.
func (s *Sealer) Seal(ctx context.Context, plaintext []byte, aad string) (string, error) {
	key, err := s.keys.CurrentKey(ctx)
	if err != nil {
		return "", err
	}
	aead, err := s.aead(key)
	if err != nil {
		return "", err
	}
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	_, _ = rand.Read(out) // crypto/rand.Read never fails since Go 1.24
	out = aead.Seal(out, out, plaintext, []byte(aad))
	return sealedPrefix + key.ID + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts a value made by Seal with the same aad.
func (s *Sealer) Open(ctx context.Context, sealed string, aad string) ([]byte, error) {
	keyID, payload, err := splitSealed(sealed)
	if err != nil {
		return nil, err
	}
	key, err := s.keys.KeyByID(ctx, keyID)
	if err != nil {
		return nil, err
	}
	aead, err := s.aead(key)
	if err != nil {
		return nil, err
	}
	if len(payload) < aead.NonceSize() {
		return nil, ErrMalformedSealed
	}
	plaintext, err := aead.Open(nil, payload[:aead.NonceSize()], payload[aead.NonceSize():], []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", ErrDecrypt, aad)
	}
	return plaintext, nil
}

// NeedsRotation reports whether sealed is under a key other than the current one.
func (s *Sealer) NeedsRotation(ctx context.Context, sealed string) (bool, error) {
	keyID, _, err := splitSealed(sealed)
	if err != nil {
		return false, err
	}
	current, err := s.keys.CurrentKey(ctx)
	if err != nil {
		return false, err
	}
	return keyID != current.ID, nil
}

// SealedKeyID returns the ID of the key a sealed value needs.
func SealedKeyID(sealed string) (string, error) {
	id, _, err := splitSealed(sealed)
	return id, err
}

func splitSealed(sealed string) (keyID string, payload []byte, err error) {
	rest, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return "", nil, ErrMalformedSealed
	}
	keyID, encoded, ok := strings.Cut(rest, ":")
	if !ok || keyID == "" {
		return "", nil, ErrMalformedSealed
	}
	payload, err = base64.RawURLEncoding.DecodeString(encoded)
	if err != nil {
		return "", nil, ErrMalformedSealed
	}
	return keyID, payload, nil
}

func (s *Sealer) aead(key Key) (cipher.AEAD, error) {
	if a, ok := s.aeads.Load(key.ID); ok {
		return a.(cipher.AEAD), nil
	}
	block, err := aes.NewCipher(key.material)
	if err != nil {
		return nil, fmt.Errorf("auth: key %s: %w", key.ID, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("auth: key %s: %w", key.ID, err)
	}
	s.aeads.Store(key.ID, aead)
	return aead, nil
}
