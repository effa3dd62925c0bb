package storekit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/store/storekit"
)

func TestCheckAppToken(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	good := serversync.AppToken{AccessToken: auth.NewSecret("at"), TokenType: "Bearer", Expiry: now}
	require.NoError(t, storekit.CheckAppToken("p1/https://graph.microsoft.com/.default", good))
	require.NoError(t, storekit.CheckAppTokenKey(strings.Repeat("é", serversync.AppTokenKeyMaxLength/2)), "the limit counts bytes")
	require.NoError(t, storekit.CheckAppTokenPrefix(""))

	for _, tc := range []struct {
		name, key string
		tok       serversync.AppToken
		field     string
	}{
		{"empty key", "", good, "Key"},
		{"too long", strings.Repeat("é", serversync.AppTokenKeyMaxLength/2) + "x", good, "Key"},
		{"not UTF-8", "p1/\xc3", good, "Key"},
		{"NUL", "p1\x00", good, "Key"},
		{"no access token", "p1/r", serversync.AppToken{Expiry: now}, "AccessToken"},
		{"no expiry", "p1/r", serversync.AppToken{AccessToken: auth.NewSecret("at")}, "Expiry"},
	} {
		err := storekit.CheckAppToken(tc.key, tc.tok)
		var verr *serversync.ValidationError
		if assert.ErrorAs(t, err, &verr, tc.name) {
			assert.Equal(t, "AppToken", verr.Entity, tc.name)
			assert.Equal(t, tc.field, verr.Field, tc.name)
		}
	}
	assert.Error(t, storekit.CheckAppTokenPrefix("p\x00"))
	assert.Error(t, storekit.CheckAppTokenPrefix("p\xff"))
}

func TestKeepStoredAppToken(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) serversync.AppToken { return serversync.AppToken{Expiry: now.Add(d)} }
	assert.True(t, storekit.KeepStoredAppToken(at(time.Hour), at(time.Minute)), "the stored one expires later")
	assert.False(t, storekit.KeepStoredAppToken(at(time.Minute), at(time.Hour)))
	assert.False(t, storekit.KeepStoredAppToken(at(time.Hour), at(time.Hour)), "the same expiry: the one put last")
	assert.False(t, storekit.KeepStoredAppToken(at(time.Hour), serversync.AppToken{Expiry: now.Add(time.Hour).In(time.FixedZone("X", 3600))}), "instants, not locations")
}
