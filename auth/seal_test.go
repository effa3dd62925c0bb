package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testKey(t *testing.T, fill byte) Key {
	t.Helper()
	k, err := NewKey(bytes.Repeat([]byte{fill}, KeySize))
	require.NoError(t, err)
	return k
}

func TestSealRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewSealer(NewStaticKeys(testKey(t, 1)))
	a, err := s.Seal(ctx, []byte("hunter2"), "profile/p1/Password")
	require.NoError(t, err)
	b, err := s.Seal(ctx, []byte("hunter2"), "profile/p1/Password")
	require.NoError(t, err)
	assert.NotEqual(t, a, b, "a fresh nonce per seal")
	assert.NotContains(t, a, "hunter2")

	got, err := s.Open(ctx, a, "profile/p1/Password")
	require.NoError(t, err)
	assert.Equal(t, "hunter2", string(got))

	_, err = s.Open(ctx, a, "profile/p2/Password")
	assert.ErrorIs(t, err, ErrDecrypt, "a value copied to another record must not open")

	tampered := []byte(a)
	tampered[len(tampered)-3] ^= 1
	_, err = s.Open(ctx, string(tampered), "profile/p1/Password")
	assert.Error(t, err)

	for _, bad := range []string{"", "v1:", "v2:abc:def", "v1:id:***"} {
		_, err = s.Open(ctx, bad, "x")
		assert.ErrorIs(t, err, ErrMalformedSealed, bad)
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k1, k2 := testKey(t, 1), testKey(t, 2)
	old := NewSealer(NewStaticKeys(k1))
	sealed, err := old.Seal(ctx, []byte("token"), "aad")
	require.NoError(t, err)
	id, err := SealedKeyID(sealed)
	require.NoError(t, err)
	assert.Equal(t, k1.ID, id)

	rotated := NewSealer(NewStaticKeys(k2, k1))
	stale, err := rotated.NeedsRotation(ctx, sealed)
	require.NoError(t, err)
	assert.True(t, stale)
	got, err := rotated.Open(ctx, sealed, "aad")
	require.NoError(t, err, "previous keys still open older values")
	assert.Equal(t, "token", string(got))

	_, err = NewSealer(NewStaticKeys(k2)).Open(ctx, sealed, "aad")
	assert.ErrorIs(t, err, ErrUnknownKey)
}

func TestKeysFromEnv(t *testing.T) {
	material := bytes.Repeat([]byte{7}, KeySize)
	encoded := base64.StdEncoding.EncodeToString(material)
	previous := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{8}, KeySize))

	t.Setenv(EnvSecretKey, "")
	t.Setenv(EnvSecretKeyFile, "")
	t.Setenv(EnvPreviousSecretKeys, "")
	_, err := KeysFromEnv()
	require.ErrorIs(t, err, ErrNoKey)
	assert.Contains(t, err.Error(), EnvSecretKey)

	t.Setenv(EnvSecretKey, encoded)
	t.Setenv(EnvPreviousSecretKeys, previous)
	keys, err := KeysFromEnv()
	require.NoError(t, err)
	current, err := keys.CurrentKey(context.Background())
	require.NoError(t, err)
	assert.Equal(t, material, current.Material())
	old, err := NewKey(bytes.Repeat([]byte{8}, KeySize))
	require.NoError(t, err)
	_, err = keys.KeyByID(context.Background(), old.ID)
	assert.NoError(t, err)

	short := base64.StdEncoding.EncodeToString([]byte("too-short-key-material"))
	t.Setenv(EnvSecretKey, short)
	_, err = KeysFromEnv()
	require.Error(t, err)
	assert.Contains(t, err.Error(), EnvSecretKey)
	assert.NotContains(t, err.Error(), short, "errors never quote key material")

	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	require.NoError(t, os.WriteFile(path, []byte("# current\n"+encoded+"\n\n# previous\n"+previous+"\n"), 0o600))
	t.Setenv(EnvSecretKey, "")
	t.Setenv(EnvSecretKeyFile, path)
	t.Setenv(EnvPreviousSecretKeys, "")
	keys, err = KeysFromEnv()
	require.NoError(t, err)
	current, err = keys.CurrentKey(context.Background())
	require.NoError(t, err)
	assert.Equal(t, material, current.Material())
	_, err = keys.KeyByID(context.Background(), old.ID)
	assert.NoError(t, err)
}

func TestGenerateKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "secret.key")
	require.NoError(t, GenerateKeyFile(path))
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	keys, err := KeysFromFile(path)
	require.NoError(t, err)
	_, err = keys.CurrentKey(context.Background())
	require.NoError(t, err)
	assert.Error(t, GenerateKeyFile(path), "never overwrite a key: sealed values would be lost")
}

func TestKeyNeverPrintsMaterial(t *testing.T) {
	t.Parallel()
	material := bytes.Repeat([]byte{0xAB}, KeySize)
	k, err := NewKey(material)
	require.NoError(t, err)
	out := fmt.Sprintf("%v %+v %#v %s %q", k, k, k, k, k) + fmt.Sprint(struct{ K Key }{k})
	assert.NotContains(t, out, hex.EncodeToString(material)[:16])
	assert.NotContains(t, out, base64.StdEncoding.EncodeToString(material)[:16])
	assert.True(t, strings.Contains(out, k.ID))
}

func BenchmarkSeal(b *testing.B) {
	k, _ := NewKey(bytes.Repeat([]byte{1}, KeySize))
	s := NewSealer(NewStaticKeys(k))
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.Seal(ctx, []byte("a password of usual length"), "mailbox/0123456789abcdef/Password"); err != nil {
			b.Fatal(err)
		}
	}
}
