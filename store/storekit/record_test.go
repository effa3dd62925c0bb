package storekit

import (
	"bytes"
	"context"
	"encoding/base64"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

func sealer(t testing.TB, fill byte, previous ...byte) *auth.Sealer {
	t.Helper()
	current, err := auth.NewKey(bytes.Repeat([]byte{fill}, auth.KeySize))
	require.NoError(t, err)
	var old []auth.Key
	for _, f := range previous {
		k, err := auth.NewKey(bytes.Repeat([]byte{f}, auth.KeySize))
		require.NoError(t, err)
		old = append(old, k)
	}
	return auth.NewSealer(auth.NewStaticKeys(current, old...))
}

func TestRoundTripSealsSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := sealer(t, 1)
	p := &serversync.Profile{ID: "p1", Name: "n", Password: auth.NewSecret("profile-pw"),
		ClientSecret: auth.NewSecret("client-secret"), CertificateKey: auth.NewSecret("cert-key")}
	data, err := EncodeRecord(ctx, s, "profile", p.ID, p)
	require.NoError(t, err)
	for _, plain := range []string{"profile-pw", "client-secret", "cert-key"} {
		assert.NotContains(t, string(data), plain)
		assert.NotContains(t, string(data), base64.StdEncoding.EncodeToString([]byte(plain)))
	}
	var back serversync.Profile
	require.NoError(t, DecodeRecord(ctx, s, "profile", p.ID, data, &back))
	assert.Equal(t, "profile-pw", back.Password.Reveal())
	assert.Equal(t, "client-secret", back.ClientSecret.Reveal())
	assert.Equal(t, "cert-key", back.CertificateKey.Reveal())
	assert.Equal(t, "n", back.Name)

	m := &serversync.Mailbox{ID: "m1", Password: auth.NewSecret("mb-pw"),
		OAuthToken: serversync.OAuthToken{AccessToken: auth.NewSecret("access"), RefreshToken: auth.NewSecret("refresh")}}
	data, err = EncodeRecord(ctx, s, "mailbox", m.ID, m)
	require.NoError(t, err)
	assert.NotContains(t, string(data), "refresh\"")
	var mb serversync.Mailbox
	require.NoError(t, DecodeRecord(ctx, s, "mailbox", m.ID, data, &mb))
	assert.Equal(t, "refresh", mb.OAuthToken.RefreshToken.Reveal())
	assert.Equal(t, "access", mb.OAuthToken.AccessToken.Reveal())

	// Sealed values are bound to their record: moved to another ID they don't open.
	assert.ErrorIs(t, DecodeRecord(ctx, s, "mailbox", "m2", data, &mb), auth.ErrDecrypt)
}

func TestNoSealerNoPlaintext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, err := EncodeRecord(ctx, nil, "profile", "p", &serversync.Profile{Password: auth.NewSecret("x")})
	assert.Error(t, err, "a secret is never written without a sealer")
	data, err := EncodeRecord(ctx, nil, "profile", "p", &serversync.Profile{Name: "no secrets"})
	require.NoError(t, err, "records without secrets need no sealer")
	var p serversync.Profile
	require.NoError(t, DecodeRecord(ctx, nil, "profile", "p", data, &p))

	data, err = EncodeRecord(ctx, sealer(t, 1), "profile", "p", &serversync.Profile{Password: auth.NewSecret("x")})
	require.NoError(t, err)
	assert.Error(t, DecodeRecord(ctx, nil, "profile", "p", data, &p))
}

func TestReseal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := &serversync.Mailbox{ID: "m1", Password: auth.NewSecret("pw"), OAuthToken: serversync.OAuthToken{RefreshToken: auth.NewSecret("rt")}}
	data, err := EncodeRecord(ctx, sealer(t, 1), "mailbox", m.ID, m)
	require.NoError(t, err)

	rotating := sealer(t, 2, 1)
	out, n, err := ResealRecord(ctx, rotating, "mailbox", m.ID, data)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	_, n, err = ResealRecord(ctx, rotating, "mailbox", m.ID, out)
	require.NoError(t, err)
	assert.Zero(t, n, "already under the current key")

	var back serversync.Mailbox
	require.NoError(t, DecodeRecord(ctx, sealer(t, 2), "mailbox", m.ID, out, &back), "opens without the old key")
	assert.Equal(t, "rt", back.OAuthToken.RefreshToken.Reveal())
}

// The secret fields are found by reflection; this pins the list so adding a secret
// field to a record is a conscious change.
func TestSecretPaths(t *testing.T) {
	t.Parallel()
	names := func(typ reflect.Type) []string {
		paths, err := secretPaths(typ)
		require.NoError(t, err)
		var out []string
		for _, p := range paths {
			out = append(out, p.name)
		}
		return out
	}
	assert.Equal(t, []string{"Password", "ClientSecret", "CertificateKey"}, names(reflect.TypeFor[serversync.Profile]()))
	assert.Equal(t, []string{"Password", "OAuthToken.AccessToken", "OAuthToken.RefreshToken"}, names(reflect.TypeFor[serversync.Mailbox]()))

	type hidden struct{ Tokens []auth.Secret }
	_, err := EncodeRecord(context.Background(), sealer(t, 1), "x", "1", &hidden{})
	assert.ErrorContains(t, err, "Tokens")
}

func BenchmarkEncodeMailbox(b *testing.B) {
	ctx := context.Background()
	s := sealer(b, 1)
	m := &serversync.Mailbox{ID: "m1", EmailAddress: "alice@contoso.test", Password: auth.NewSecret("pw")}
	for b.Loop() {
		if _, err := EncodeRecord(ctx, s, "mailbox", m.ID, m); err != nil {
			b.Fatal(err)
		}
	}
}
