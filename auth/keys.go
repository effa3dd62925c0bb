package auth

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Environment variables read by KeysFromEnv.
const (
	EnvSecretKey          = "SERVERSYNC_SECRET_KEY"
	EnvSecretKeyFile      = "SERVERSYNC_SECRET_KEY_FILE"
	EnvPreviousSecretKeys = "SERVERSYNC_PREVIOUS_SECRET_KEYS"
)

var (
	// ErrNoKey is returned when no sealing key is configured.
	ErrNoKey = errors.New("auth: no secret-sealing key configured: set " + EnvSecretKey +
		" to a base64-encoded 32-byte key (for example the output of `openssl rand -base64 32`) or " +
		EnvSecretKeyFile + " to a file holding one")
	// ErrUnknownKey is returned when a sealed value names a key the provider doesn't have.
	ErrUnknownKey = errors.New("auth: unknown sealing key")
)

// KeySize is the length of an AES-256 key.
const KeySize = 32

// Key is an AES-256 key with its ID. It never prints its material.
type Key struct {
	ID       string
	material []byte
}

// NewKey wraps 32 bytes of key material. Its ID is derived from the material, so the
// same key always has the same ID and IDs never collide in practice.
func NewKey(material []byte) (Key, error) {
	if len(material) != KeySize {
		return Key{}, fmt.Errorf("auth: a sealing key must be %d bytes, got %d", KeySize, len(material))
	}
	sum := sha256.Sum256(append([]byte("serversync-key-id"), material...))
	return Key{ID: hex.EncodeToString(sum[:8]), material: append([]byte(nil), material...)}, nil
}

// Material returns the key bytes.
func (k Key) Material() []byte { return k.material }

// String shows the key ID only.
func (k Key) String() string { return "auth.Key(" + k.ID + ")" }

// GoString shows the key ID only.
func (k Key) GoString() string { return k.String() }

// Format makes every fmt verb show the key ID only.
func (k Key) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// LogValue keeps slog from logging the material.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// KeyProvider gives the key to seal with and finds older keys by ID to open values
// sealed before a rotation. Implementations must be safe for concurrent use.
type KeyProvider interface {
	CurrentKey(ctx context.Context) (Key, error)
	// KeyByID returns an error wrapping ErrUnknownKey for an ID it doesn't hold.
	KeyByID(ctx context.Context, id string) (Key, error)
}

// StaticKeys is a KeyProvider over a fixed set of keys: one current, any number of
// previous ones kept for opening older values. Safe for concurrent use.
type StaticKeys struct {
	current Key
	byID    map[string]Key
}

// NewStaticKeys returns a provider that seals with current and opens with any of the keys.
func NewStaticKeys(current Key, previous ...Key) *StaticKeys {
	s := &StaticKeys{current: current, byID: map[string]Key{current.ID: current}}
	for _, k := range previous {
		s.byID[k.ID] = k
	}
	return s
}

// CurrentKey returns the key new values are sealed with.
func (s *StaticKeys) CurrentKey(ctx context.Context) (Key, error) {
	if len(s.current.material) != KeySize {
		return Key{}, ErrNoKey
	}
	return s.current, ctx.Err()
}

// KeyByID returns the key with that ID.
func (s *StaticKeys) KeyByID(ctx context.Context, id string) (Key, error) {
	k, ok := s.byID[id]
	if !ok {
		return Key{}, fmt.Errorf("%w %q", ErrUnknownKey, id)
	}
	return k, ctx.Err()
}

// KeysFromEnv builds a provider from SERVERSYNC_SECRET_KEY (base64) or
// SERVERSYNC_SECRET_KEY_FILE, plus SERVERSYNC_PREVIOUS_SECRET_KEYS (comma-separated
// base64) for values sealed before a rotation. With none set it returns ErrNoKey.
func KeysFromEnv() (*StaticKeys, error) {
	var keys []Key
	switch {
	case os.Getenv(EnvSecretKey) != "":
		k, err := parseKey(os.Getenv(EnvSecretKey))
		if err != nil {
			return nil, fmt.Errorf("auth: %s: %w", EnvSecretKey, err)
		}
		keys = append(keys, k)
	case os.Getenv(EnvSecretKeyFile) != "":
		fileKeys, err := readKeyFile(os.Getenv(EnvSecretKeyFile))
		if err != nil {
			return nil, err
		}
		keys = fileKeys
	default:
		return nil, ErrNoKey
	}
	for i, encoded := range strings.Split(os.Getenv(EnvPreviousSecretKeys), ",") {
		if strings.TrimSpace(encoded) == "" {
			continue
		}
		k, err := parseKey(encoded)
		if err != nil {
			return nil, fmt.Errorf("auth: %s entry %d: %w", EnvPreviousSecretKeys, i+1, err)
		}
		keys = append(keys, k)
	}
	return NewStaticKeys(keys[0], keys[1:]...), nil
}

// KeysFromFile reads a key file: the first key line is the current key, later ones
// are previous keys; blank lines and lines starting with '#' are ignored.
func KeysFromFile(path string) (*StaticKeys, error) {
	keys, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	return NewStaticKeys(keys[0], keys[1:]...), nil
}

func readKeyFile(path string) ([]Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: key file: %w", err)
	}
	defer f.Close()
	var keys []Key
	scanner := bufio.NewScanner(f)
	for line := 1; scanner.Scan(); line++ {
		text := strings.TrimSpace(scanner.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		k, err := parseKey(text)
		if err != nil {
			return nil, fmt.Errorf("auth: key file %s line %d: %w", path, line, err)
		}
		keys = append(keys, k)
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("auth: key file %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("auth: key file %s holds no key: %w", path, ErrNoKey)
	}
	return keys, nil
}

// parseKey decodes base64 (standard or URL alphabet, padded or not). Its errors never
// quote the input, which is key material.
func parseKey(encoded string) (Key, error) {
	encoded = strings.TrimSpace(encoded)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if material, err := enc.DecodeString(encoded); err == nil {
			if len(material) != KeySize {
				return Key{}, fmt.Errorf("the key must decode to %d bytes, got %d", KeySize, len(material))
			}
			return NewKey(material)
		}
	}
	return Key{}, errors.New("the key is not valid base64")
}

// GenerateKeyFile writes a new random key to path with mode 0600. It refuses to
// overwrite an existing file, which would make every sealed value unreadable.
func GenerateKeyFile(path string) error {
	material := make([]byte, KeySize)
	_, _ = rand.Read(material) // crypto/rand.Read never fails since Go 1.24
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("auth: create key file: %w", err)
	}
	_, err = fmt.Fprintf(f, "# serversync secret-sealing key; keep it safe: without it stored credentials can't be read\n%s\n",
		base64.StdEncoding.EncodeToString(material))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("auth: write key file: %w", err)
	}
	return nil
}
