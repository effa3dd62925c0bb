package auth_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	const value = "hunter2-the-password"
	s := auth.NewSecret(value)
	p := serversync.Profile{Name: "p", Password: s}
	m := serversync.Mailbox{OAuthToken: serversync.OAuthToken{AccessToken: s, RefreshToken: s}}

	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "secret", s, "profile", p)
	js, err := json.Marshal(m)
	require.NoError(t, err)
	for _, out := range []string{
		fmt.Sprintf("%v|%+v|%#v|%s|%q|%x", s, s, s, s, s, s),
		fmt.Sprintf("%v|%+v|%#v", p, p, m),
		fmt.Sprint(&p),
		logs.String(),
		string(js),
	} {
		assert.NotContains(t, out, value)
	}
	assert.Contains(t, fmt.Sprint(s), auth.Redacted)
}

func TestSecretValue(t *testing.T) {
	t.Parallel()
	var zero auth.Secret
	assert.False(t, zero.IsSet())
	assert.Equal(t, "", zero.Reveal())
	assert.Equal(t, "", zero.String())
	assert.False(t, auth.NewSecret("").IsSet())

	s := auth.NewSecret("v")
	assert.True(t, s.IsSet())
	assert.Equal(t, "v", s.Reveal())
	assert.True(t, s.Equal(auth.NewSecret("v")))
	assert.False(t, s.Equal(zero))

	// A redacted form read back must not become the password "[REDACTED]".
	var back auth.Secret
	require.NoError(t, json.Unmarshal([]byte(`"[REDACTED]"`), &back))
	assert.False(t, back.IsSet())
}
