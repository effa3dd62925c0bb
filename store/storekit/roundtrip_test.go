package storekit_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/store/storekit"
	"github.com/serversync/serversync/store/storetest"
)

// roundTrip encodes in and decodes it back into a new T, checking that every field
// but the secrets (which JSON shows redacted) survives.
func roundTrip[T any](t *testing.T, sealer *auth.Sealer, kind, id string, in *T) *T {
	t.Helper()
	data, err := storekit.EncodeRecord(t.Context(), sealer, kind, id, in)
	require.NoError(t, err)
	out := new(T)
	require.NoError(t, storekit.DecodeRecord(t.Context(), sealer, kind, id, data, out))
	want, err := json.Marshal(in)
	require.NoError(t, err)
	got, err := json.Marshal(out)
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(got))
	return out
}

// Every record a Store keeps, with every field set, comes back through the codec
// as it went in, secrets revealed: a third-party store can keep each as one value.
func TestEveryRecordRoundTrips(t *testing.T) {
	t.Parallel()
	key, err := auth.NewKey(bytes.Repeat([]byte{3}, auth.KeySize))
	require.NoError(t, err)
	sealer := auth.NewSealer(auth.NewStaticKeys(key))

	p := storetest.FullProfile("P")
	gotP := roundTrip(t, sealer, "profile", p.ID, p)
	assert.Equal(t, p.Password.Reveal(), gotP.Password.Reveal())
	assert.Equal(t, p.ClientSecret.Reveal(), gotP.ClientSecret.Reveal())
	assert.Equal(t, p.CertificateKey.Reveal(), gotP.CertificateKey.Reveal())

	m := storetest.FullMailbox(p.ID, "alice@example.com")
	gotM := roundTrip(t, sealer, "mailbox", m.ID, m)
	assert.Equal(t, m.Password.Reveal(), gotM.Password.Reveal())
	assert.Equal(t, m.OAuthToken.AccessToken.Reveal(), gotM.OAuthToken.AccessToken.Reveal())
	assert.Equal(t, m.OAuthToken.RefreshToken.Reveal(), gotM.OAuthToken.RefreshToken.Reveal())

	a := storetest.FullActivity(m.ID, "uid-1")
	roundTrip(t, sealer, "activity", a.ID, a)
	roundTrip(t, sealer, "settings", "org", storetest.FullOrgSettings())
	roundTrip(t, sealer, "alert", "a1", storetest.NewAlert("user-1"))
}
