package pop3

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Listings, headers and messages are held to Limits: a body of exactly the
// limit is read whole, one byte more fails with ErrReplyTooLong (which is a
// protocol error: the connection is dropped).
func TestLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := startServer(t, nil)
	longest := int64(0)
	for _, m := range served {
		longest = max(longest, int64(len(m)))
	}

	c := dial(t, s)
	require.NoError(t, c.Login(ctx, "alice", "pw"))
	c.SetLimits(Limits{MaxReplyBytes: 8})
	_, err := c.UIDL(ctx)
	assert.ErrorIs(t, err, ErrReplyTooLong)
	assert.ErrorIs(t, err, ErrProtocol)

	c = dial(t, s)
	require.NoError(t, c.Login(ctx, "alice", "pw"))
	c.SetLimits(Limits{MaxMessageBytes: int64(len(served[0]))})
	r, err := c.Retr(ctx, 1)
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err, "a message of exactly the limit")
	assert.Equal(t, served[0], string(got))
	require.NoError(t, r.Close())

	c.SetLimits(Limits{MaxMessageBytes: 3})
	r, err = c.Retr(ctx, 1)
	require.NoError(t, err)
	_, err = io.ReadAll(r)
	assert.ErrorIs(t, err, ErrReplyTooLong)
	assert.ErrorIs(t, r.Close(), ErrReplyTooLong, "Close does not read past the limit either")

	c = dial(t, s)
	require.NoError(t, c.Login(ctx, "alice", "pw"))
	c.SetLimits(Limits{MaxReplyBytes: 3, MaxMessageBytes: longest})
	top, err := c.Top(ctx, 1, 0)
	require.NoError(t, err)
	assert.ErrorIs(t, top.Close(), ErrReplyTooLong, "TOP is held to MaxReplyBytes")
}

// A greeting that is neither +OK nor -ERR comes back whole enough to tell
// which protocol the server speaks.
func TestGreetingError(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(s *fakeServer) { s.greeting = "* OK [CAPABILITY IMAP4rev1] Dovecot ready." })
	_, err := Dial(context.Background(), s.addr)
	var greeting *GreetingError
	require.ErrorAs(t, err, &greeting)
	assert.Equal(t, "* OK [CAPABILITY IMAP4rev1] Dovecot ready.", greeting.Line)
	assert.ErrorIs(t, err, ErrProtocol)
}
