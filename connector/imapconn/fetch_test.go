package imapconn_test

import (
	"context"
	"errors"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/imapconn"
)

func TestFetchIncremental(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	sess := ts.open(t, ts.target("alice"), &imapconn.Options{FetchBatchSize: 2})

	date := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	var bodies [][]byte
	for i := range 5 {
		bodies = append(bodies, testMessage(i, 300+i*1000))
		appendMessage(t, helper, "INBOX", bodies[i], date.Add(time.Duration(i)*time.Minute))
	}

	got, res := fetchAll(t, sess, serversync.FetchRequest{})
	require.Len(t, got, 5)
	assert.False(t, res.Reset)
	for i, f := range got {
		assert.Equal(t, bodies[i], f.body, "message %d body", i)
		assert.Equal(t, int64(len(bodies[i])), f.msg.Size)
		assert.True(t, f.msg.ReceivedAt.Equal(date.Add(time.Duration(i)*time.Minute)), "ReceivedAt %v", f.msg.ReceivedAt)
		assert.Equal(t, "", f.msg.Folder)
		assert.Equal(t, []string{"1", "2", "3", "4", "5"}[i], f.msg.Ref)
	}
	assert.Equal(t, got[4].msg.Cursor, res.Cursor, "the result cursor is the last message's")

	// Resuming from a message's cursor offers what follows it.
	rest, _ := fetchAll(t, sess, serversync.FetchRequest{Cursor: got[2].msg.Cursor})
	require.Len(t, rest, 2)
	assert.Equal(t, "4", rest[0].msg.Ref)

	// New mail: only it is offered.
	more := [][]byte{testMessage(10, 100), testMessage(11, 20_000)}
	for _, b := range more {
		appendMessage(t, helper, "INBOX", b, time.Time{})
	}
	got2, res2 := fetchAll(t, sess, serversync.FetchRequest{Cursor: res.Cursor})
	require.Len(t, got2, 2)
	assert.Equal(t, more[0], got2[0].body)
	assert.Equal(t, more[1], got2[1].body)
	assert.Equal(t, "6", got2[0].msg.Ref)

	// No change: same cursor, no callback, and no SEARCH or FETCH on the wire.
	ts.wire.Reset()
	got3, res3 := fetchAll(t, sess, serversync.FetchRequest{Cursor: res2.Cursor})
	assert.Empty(t, got3)
	assert.Equal(t, string(res2.Cursor), string(res3.Cursor))
	assert.Empty(t, regexp.MustCompile(`(?m)^T\d+ (UID )?(SEARCH|FETCH)`).FindAllString(ts.wire.String(), -1),
		"commands sent by a no-change poll")
}

func TestFetchLargeRangeUsesBatches(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	for i := range 23 {
		appendMessage(t, helper, "INBOX", testMessage(i, 200), time.Time{})
	}
	// Leave holes in the UIDs.
	sess := ts.open(t, ts.target("alice"), &imapconn.Options{FetchBatchSize: 4})
	require.NoError(t, sess.Delete(context.Background(), "INBOX", "3"))
	require.NoError(t, sess.Delete(context.Background(), "INBOX", "17"))

	ts.wire.Reset()
	got, _ := fetchAll(t, sess, serversync.FetchRequest{})
	require.Len(t, got, 21)
	for i := 1; i < len(got); i++ {
		assert.Less(t, refNum(t, got[i-1].msg.Ref), refNum(t, got[i].msg.Ref))
	}
	fetches := regexp.MustCompile(`(?m)^T\d+ UID FETCH`).FindAllString(ts.wire.String(), -1)
	assert.Len(t, fetches, 6, "21 UIDs in batches of 4")
}

func TestFetchSince(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	since := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	dates := []time.Time{
		since.AddDate(-1, 0, 0),         // long before
		since.Add(-time.Hour),           // same day, before: the server's SINCE keeps it
		since,                           // exactly
		since.Add(time.Hour),            // after
		since.AddDate(0, 0, 3),          // days after
		since.Add(-30 * 24 * time.Hour), // before again, with a higher UID
	}
	for i, d := range dates {
		appendMessage(t, helper, "INBOX", testMessage(i, 100), d)
	}
	sess := ts.open(t, ts.target("alice"), nil)
	got, res := fetchAll(t, sess, serversync.FetchRequest{Since: since})
	var refs []string
	for _, f := range got {
		refs = append(refs, f.msg.Ref)
		assert.False(t, f.msg.ReceivedAt.Before(since))
	}
	assert.Equal(t, []string{"3", "4", "5"}, refs)

	// The cursor moved past the skipped messages too.
	again, _ := fetchAll(t, sess, serversync.FetchRequest{Cursor: res.Cursor, Since: since})
	assert.Empty(t, again)
}

func TestFetchUIDValidityChange(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	require.NoError(t, helper.Create("t-uv", nil).Wait())
	for i := range 3 {
		appendMessage(t, helper, "t-uv", testMessage(i, 100), time.Time{})
	}
	sess := ts.open(t, ts.target("alice"), nil)
	got, res := fetchAll(t, sess, serversync.FetchRequest{Folder: "t-uv"})
	require.Len(t, got, 3)
	assert.Equal(t, "t-uv", got[0].msg.Folder)

	// Delete and recreate the folder: a new UIDVALIDITY, same UIDs for new messages.
	require.NoError(t, helper.Delete("t-uv").Wait())
	require.NoError(t, helper.Create("t-uv", nil).Wait())
	var bodies [][]byte
	for i := range 4 {
		bodies = append(bodies, testMessage(100+i, 100))
		appendMessage(t, helper, "t-uv", bodies[i], time.Time{})
	}
	got2, res2 := fetchAll(t, sess, serversync.FetchRequest{Folder: "t-uv", Cursor: res.Cursor})
	assert.True(t, res2.Reset)
	require.Len(t, got2, 4)
	for i := range got2 {
		assert.Equal(t, bodies[i], got2[i].body)
	}
	got3, res3 := fetchAll(t, sess, serversync.FetchRequest{Folder: "t-uv", Cursor: res2.Cursor})
	assert.Empty(t, got3)
	assert.False(t, res3.Reset)
}

func TestFetchCallbackErrorStops(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	for i := range 10 {
		appendMessage(t, helper, "INBOX", testMessage(i, 5000), time.Time{})
	}
	sess := ts.open(t, ts.target("alice"), &imapconn.Options{FetchBatchSize: 3})
	errStop := errors.New("tracking failed")
	var calls int
	var firstCursor []byte
	res, err := sess.Fetch(context.Background(), serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		calls++
		if calls == 2 {
			_, _ = io.CopyN(io.Discard, m.Body, 10) // read part of the body only
			return errStop
		}
		firstCursor = m.Cursor
		return nil
	})
	require.Same(t, errStop, err, "the callback's error is returned as is")
	assert.Equal(t, 2, calls)
	assert.Equal(t, string(firstCursor), string(res.Cursor))

	// The session is still in step: the next fetch resumes at message 2.
	got, _ := fetchAll(t, sess, serversync.FetchRequest{Cursor: res.Cursor})
	require.Len(t, got, 9)
	assert.Equal(t, "2", got[0].msg.Ref)
}

func TestFetchMissingFolder(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	sess := ts.open(t, ts.target("alice"), nil)
	_, err := sess.Fetch(context.Background(), serversync.FetchRequest{Folder: "nope"}, func(*serversync.RemoteMessage) error { return nil })
	ce := requireConnectorError(t, err, serversync.ErrorPermanent, serversync.CodeFolderNotFound)
	assert.Equal(t, serversync.ScopeMailbox, ce.Scope)
	var imapErr *imap.Error
	require.ErrorAs(t, err, &imapErr)
	assert.Equal(t, imap.ResponseCodeNonExistent, imapErr.Code)
	// A NO leaves the session usable.
	_, err = sess.Fetch(context.Background(), serversync.FetchRequest{}, func(*serversync.RemoteMessage) error { return nil })
	require.NoError(t, err)
}

func TestFetchBadCursor(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	sess := ts.open(t, ts.target("alice"), nil)
	for _, c := range []string{"garbage", `{"v":9,"uid":3}`} {
		_, err := sess.Fetch(context.Background(), serversync.FetchRequest{Cursor: []byte(c)}, func(*serversync.RemoteMessage) error { return nil })
		requireConnectorError(t, err, serversync.ErrorPermanent, serversync.CodeBadCursor)
	}
}

func TestFetchCanceled(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	for i := range 5 {
		appendMessage(t, helper, "INBOX", testMessage(i, 100), time.Time{})
	}
	sess := ts.open(t, ts.target("alice"), nil)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := sess.Fetch(ctx, serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		cancel()
		// The next read from the server fails at once.
		_, err := io.ReadAll(m.Body)
		_ = err
		return nil
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
	class := serversync.ClassifyError(err)
	assert.False(t, class.Internal(), "classified by the connector: %v", err)
	assert.Equal(t, serversync.ErrorTransient, class.Kind)
	// An aborted command leaves the session broken.
	_, err = sess.Fetch(context.Background(), serversync.FetchRequest{}, func(*serversync.RemoteMessage) error { return nil })
	assert.ErrorIs(t, err, imapconn.ErrSessionBroken)
}

func TestFetchParallelSameAsSequential(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	for i := range 97 {
		appendMessage(t, helper, "INBOX", testMessage(i, 100+i*50), time.Time{})
	}
	seq, seqRes := fetchAll(t, ts.open(t, ts.target("alice"), &imapconn.Options{FetchBatchSize: 5}), serversync.FetchRequest{})
	par, parRes := fetchAll(t, ts.open(t, ts.target("alice"), &imapconn.Options{FetchBatchSize: 5, MaxParallelFetch: 4}), serversync.FetchRequest{})
	require.Len(t, seq, 97)
	require.Len(t, par, 97)
	for i := range seq {
		assert.Equal(t, seq[i].msg.Ref, par[i].msg.Ref)
		assert.Equal(t, seq[i].body, par[i].body)
		assert.Equal(t, seq[i].msg.Size, par[i].msg.Size)
		assert.Equal(t, string(seq[i].msg.Cursor), string(par[i].msg.Cursor))
	}
	assert.Equal(t, string(seqRes.Cursor), string(parRes.Cursor))
	assert.GreaterOrEqual(t, strings.Count(ts.wire.String(), "EXAMINE"), 1, "extra connections examine the folder")

	// A callback error in parallel mode stops it too.
	errStop := errors.New("stop")
	calls := 0
	sess := ts.open(t, ts.target("alice"), &imapconn.Options{FetchBatchSize: 5, MaxParallelFetch: 3})
	res, err := sess.Fetch(context.Background(), serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		calls++
		if calls == 33 {
			return errStop
		}
		return nil
	})
	require.Same(t, errStop, err)
	assert.Equal(t, string(seq[31].msg.Cursor), string(res.Cursor))
	rest, _ := fetchAll(t, sess, serversync.FetchRequest{Cursor: res.Cursor})
	assert.Len(t, rest, 97-32)
}

// Extra fetch connections are opened only as far as the caller's budget allows,
// and each is given back.
func TestFetchParallelWithinTheBudget(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverConfig{})
	helper := ts.client(t, "alice")
	for i := range 40 {
		appendMessage(t, helper, "INBOX", testMessage(i, 100), time.Time{})
	}
	sess := ts.open(t, ts.target("alice"), &imapconn.Options{FetchBatchSize: 5, MaxParallelFetch: 4})
	loginsBefore := ts.logins.Load()
	var mu sync.Mutex
	asked, granted, released := 0, 0, 0
	req := serversync.FetchRequest{ExtraConnection: func() (func(), bool) {
		mu.Lock()
		defer mu.Unlock()
		asked++
		if granted == 1 {
			return nil, false
		}
		granted++
		return func() {
			mu.Lock()
			released++
			mu.Unlock()
		}, true
	}}
	got, _ := fetchAll(t, sess, req)
	assert.Len(t, got, 40)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 3, asked, "one ask per extra connection")
	assert.Equal(t, 1, released, "the granted slot is given back")
	assert.Equal(t, int32(1), ts.logins.Load()-loginsBefore, "only the granted extra connection logged in")
}

func refNum(t *testing.T, ref string) int {
	t.Helper()
	var n int
	for _, c := range ref {
		require.True(t, c >= '0' && c <= '9', "ref %q", ref)
		n = n*10 + int(c-'0')
	}
	return n
}

func requireConnectorError(t *testing.T, err error, kind serversync.ErrorKind, code string) *serversync.ConnectorError {
	t.Helper()
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce, "error %v", err)
	assert.Equal(t, kind, ce.Kind, "kind of %v", err)
	assert.Equal(t, code, ce.Code, "code of %v", err)
	assert.True(t, strings.Contains(err.Error(), "imap:") || ce.Err != nil)
	return ce
}
