package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/serversync/serversync"
)

// TestMain fails the package's tests when goroutines outlive them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The README's command: AutoDiscover, impersonation, three mailboxes, mail
// tracked and an email sent, against the fake.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := run(ctx, &out)
	require.NoError(t, err, out.String())
	for i, u := range users {
		address := u + "@" + domain
		assert.Equal(t, serversync.TestSuccess, res.status[address])
		assert.Equal(t, res.ewsURL, res.discovered[address], "discovered and cached on the mailbox")
		assert.Equal(t, []string{"Order " + []string{"1040", "1041", "1042"}[i] + " for " + u}, res.tracked[address])
	}
	require.NotNil(t, res.sent)
	assert.Equal(t, serversync.StatusSent, res.sent.Status)
	assert.Equal(t, 1, res.sentCopies, "the server's copy only")
	assert.NotContains(t, out.String(), "svc-password")
	assert.Contains(t, out.String(), "Test & Enable: Success, EWS at "+res.ewsURL)
}
