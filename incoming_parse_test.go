package serversync_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

// A host finds truly broken mail with ParseError != "": ordinary mail that only
// lacks a Date or Message-ID is tracked with warnings, a message cut at
// MaxMessageSize is broken whatever else the parser said about it.
func TestParseWarningsAndErrorsAreTracked(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	msgs := map[string]string{
		"cron": "From: root@build.test (Cron Daemon)\r\nTo: " + alice.EmailAddress + "\r\nSubject: cron\r\n\r\nbackup done\r\n",
		"cut multipart": "From: a@p.test\r\nSubject: cut multipart\r\nMessage-ID: <cut-mp@p>\r\n" +
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n" +
			strings.Repeat("multipart line\r\n", 40) + "--b--\r\n",
		"cut plain": "From: a@p.test\r\nSubject: cut plain\r\nMessage-ID: <cut-plain@p>\r\n\r\n" +
			strings.Repeat("plain line\r\n", 60),
	}
	for _, raw := range msgs {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, []byte(raw)))
	}
	s := e.syncer(t, &serversync.Config{MaxMessageSize: 400})
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "every message tracked", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == len(msgs)
	})
	got := map[string]*serversync.EmailActivity{}
	for _, a := range e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}) {
		got[a.Subject] = a
	}

	cron := got["cron"]
	require.NotNil(t, cron)
	assert.Empty(t, cron.ParseError, "missing Date and Message-ID do not make mail broken")
	assert.Equal(t, []string{"header: no Message-ID", "header: no Date"}, cron.ParseWarnings)
	assert.Equal(t, "backup done\r\n", cron.TextBody)
	assert.Empty(t, cron.Raw)

	cutMultipart := got["cut multipart"]
	require.NotNil(t, cutMultipart)
	assert.Equal(t, "body: multipart ends without closing boundary (truncated message?); "+
		"message larger than MaxMessageSize, truncated", cutMultipart.ParseError)
	assert.Equal(t, []string{"header: no Date"}, cutMultipart.ParseWarnings)
	assert.NotEmpty(t, cutMultipart.Raw)

	cutPlain := got["cut plain"]
	require.NotNil(t, cutPlain)
	assert.Equal(t, "message larger than MaxMessageSize, truncated", cutPlain.ParseError,
		"a message read whole up to the cut is still broken: its end is missing")
	assert.Equal(t, []string{"header: no Date"}, cutPlain.ParseWarnings)
	assert.NotEmpty(t, cutPlain.Raw, "a ParseError always comes with the bytes that were read")
}
