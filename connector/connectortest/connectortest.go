// Package connectortest is the conformance suite every connector passes, run by each
// connector's tests against in-process servers and, with SERVERSYNC_INTEROP set,
// against real Dovecot and Postfix:
//
//	func TestConformance(t *testing.T) {
//		connectortest.RunIncoming(t, connectortest.Incoming{
//			Connector: imapconn.New(nil),
//			NewMailbox: func(t *testing.T) connectortest.Mailbox { … a fresh, empty mailbox … },
//		})
//	}
//
// The suite checks the contracts of serversync.IncomingSession and
// OutgoingSession: messages arrive byte for byte, in server order, exactly once per
// cursor; cursors resume; a callback error stops a fetch; a deletion is seen by
// other sessions once committed (CommitSession); a connection dropped in
// the middle of a fetch is a transient error that loses nothing; moved, deleted and
// appended messages end up where they should (for sessions that are a
// serversync.FolderSession); sending delivers the exact message.
package connectortest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/internal/netfault"
)

// Mailbox is one fresh, empty mailbox on the server under test.
type Mailbox struct {
	Target *serversync.Target
	// Deliver puts a raw message into the mailbox's inbox by a path independent of
	// the connector (another client, the server's own delivery…).
	Deliver func(t *testing.T, raw []byte)
}

// Incoming describes an incoming connector under test.
type Incoming struct {
	Connector  serversync.IncomingConnector
	NewMailbox func(t *testing.T) Mailbox
	// Reroute, when set, makes the connector reach mb's server through a proxy
	// listening on 127.0.0.1:port (DroppedConnection) and returns the mailbox to
	// use then. Nil: the target's Endpoint.Port becomes port. An HTTP API
	// connector, which follows the absolute links its server hands out, reroutes
	// in its HTTP client's dialer instead.
	Reroute func(t *testing.T, mb Mailbox, port int) Mailbox
}

// Message returns a small test message with a unique Message-ID.
func Message(n int, body string) []byte {
	return fmt.Appendf(nil, "From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\nSubject: conformance %d\r\n"+
		"Message-ID: <conformance-%d-%d@serversync.test>\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\n%s\r\n",
		n, n, time.Now().UnixNano(), body)
}

type fetched struct {
	ref, folder string
	body        []byte
	cursor      []byte
}

// fetch runs one Fetch and collects what it delivered.
func fetch(t *testing.T, s serversync.IncomingSession, req serversync.FetchRequest) ([]fetched, serversync.FetchResult) {
	t.Helper()
	var got []fetched
	res, err := s.Fetch(context.Background(), req, func(m *serversync.RemoteMessage) error {
		body, err := io.ReadAll(m.Body)
		if err != nil {
			return err
		}
		got = append(got, fetched{ref: m.Ref, folder: m.Folder, body: body, cursor: m.Cursor})
		return nil
	})
	require.NoError(t, err)
	return got, res
}

func open(t *testing.T, c serversync.IncomingConnector, mb Mailbox) serversync.IncomingSession {
	t.Helper()
	s, err := c.OpenIncoming(context.Background(), mb.Target)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// normalize drops a trailing CRLF difference some servers introduce on delivery.
func normalize(b []byte) []byte { return bytes.TrimRight(b, "\r\n") }

// lf is b with CRLF line endings turned into LF, as Maildir stores messages.
func lf(b []byte) string { return strings.ReplaceAll(string(b), "\r\n", "\n") }

// RunIncoming runs the incoming conformance tests as subtests.
func RunIncoming(t *testing.T, h Incoming) {
	t.Run("FetchInOrderAndResume", func(t *testing.T) {
		mb := h.NewMailbox(t)
		s := open(t, h.Connector, mb)
		got, res := fetch(t, s, serversync.FetchRequest{})
		assert.Empty(t, got, "a fresh mailbox is empty")

		var sent [][]byte
		for i := range 3 {
			raw := Message(i, strings.Repeat("line of text ", 20*(i+1)))
			mb.Deliver(t, raw)
			sent = append(sent, raw)
		}
		got, res = fetch(t, s, serversync.FetchRequest{Cursor: res.Cursor})
		require.Len(t, got, 3)
		for i := range got {
			assert.Equal(t, string(normalize(sent[i])), string(normalize(got[i].body)), "message %d arrives byte for byte, in order", i)
			assert.NotEmpty(t, got[i].ref)
			assert.NotEmpty(t, got[i].cursor)
		}

		again, _ := fetch(t, s, serversync.FetchRequest{Cursor: res.Cursor})
		assert.Empty(t, again, "nothing new after the returned cursor")

		resumed, _ := fetch(t, s, serversync.FetchRequest{Cursor: got[0].cursor})
		require.Len(t, resumed, 2, "a message's cursor resumes right after it")
		assert.Equal(t, string(normalize(sent[1])), string(normalize(resumed[0].body)))

		more := Message(3, "one more")
		mb.Deliver(t, more)
		fresh, _ := fetch(t, s, serversync.FetchRequest{Cursor: res.Cursor})
		require.Len(t, fresh, 1, "only the new message")
		assert.Equal(t, string(normalize(more)), string(normalize(fresh[0].body)))
	})

	t.Run("CallbackErrorStops", func(t *testing.T) {
		mb := h.NewMailbox(t)
		s := open(t, h.Connector, mb)
		mb.Deliver(t, Message(1, "a"))
		mb.Deliver(t, Message(2, "b"))
		stop := errors.New("host refused")
		calls := 0
		_, err := s.Fetch(context.Background(), serversync.FetchRequest{}, func(*serversync.RemoteMessage) error {
			calls++
			return stop
		})
		assert.ErrorIs(t, err, stop)
		assert.Equal(t, 1, calls)
		got, _ := fetch(t, s, serversync.FetchRequest{})
		assert.Len(t, got, 2, "a failed fetch loses nothing")
	})

	t.Run("DroppedConnection", func(t *testing.T) {
		mb := h.NewMailbox(t)
		var sent [][]byte
		for i := range 10 {
			raw := Message(i, strings.Repeat("twenty kilobytes of text ", 800))
			mb.Deliver(t, raw)
			sent = append(sent, raw)
		}
		proxy, err := netfault.Start(mb.Target.Endpoint.Address())
		require.NoError(t, err)
		defer proxy.Close()
		if h.Reroute != nil {
			mb = h.Reroute(t, mb, proxy.Port())
		} else {
			through := *mb.Target
			through.Endpoint.Port = proxy.Port()
			mb.Target = &through
		}

		// Every connection drops after 60 KB: enough to log in, not to read the
		// 200 KB of mail.
		proxy.DropAfter(60_000)
		s := open(t, h.Connector, mb)
		var got []fetched
		_, err = s.Fetch(context.Background(), serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
			body, err := io.ReadAll(m.Body)
			if err != nil {
				return err // as it is: the connector must have classified it
			}
			got = append(got, fetched{body: body, cursor: m.Cursor})
			return nil
		})
		require.Error(t, err)
		require.Positive(t, proxy.Drops())
		// Classified by the connector: an unclassified error would be retried too,
		// but as the Syncer's own trouble, never counted against the mailbox.
		class := serversync.ClassifyError(err)
		assert.Equal(t, serversync.ErrorTransient, class.Kind, "a dropped connection is worth retrying: %v", err)
		assert.False(t, class.Internal(), "a dropped connection is classified by the connector: %v", err)
		require.NotEmpty(t, got, "messages read before the drop are handed over")
		require.Less(t, len(got), len(sent))
		for i := range got {
			assert.Equal(t, string(normalize(sent[i])), string(normalize(got[i].body)), "message %d handed over whole", i)
		}

		proxy.DropAfter(0)
		rest, _ := fetch(t, open(t, h.Connector, mb), serversync.FetchRequest{Cursor: got[len(got)-1].cursor})
		require.Len(t, rest, len(sent)-len(got), "a new session resumes after the last message handed over")
		for i := range rest {
			assert.Equal(t, string(normalize(sent[len(got)+i])), string(normalize(rest[i].body)))
		}
	})

	t.Run("Delete", func(t *testing.T) {
		mb := h.NewMailbox(t)
		s := open(t, h.Connector, mb)
		mb.Deliver(t, Message(1, "keep"))
		mb.Deliver(t, Message(2, "delete me"))
		got, _ := fetch(t, s, serversync.FetchRequest{})
		require.Len(t, got, 2)
		require.NoError(t, s.Delete(context.Background(), got[1].folder, got[1].ref))
		if c, ok := s.(serversync.CommitSession); ok {
			require.NoError(t, c.Commit(context.Background()))
		}
		// Seen from another session while this one is still open, so a crash now
		// would not undo it.
		left, _ := fetch(t, open(t, h.Connector, mb), serversync.FetchRequest{})
		require.Len(t, left, 1)
		assert.Contains(t, string(left[0].body), "keep")
		again, _ := fetch(t, s, serversync.FetchRequest{})
		require.Len(t, again, 1, "the session is still usable")
	})

	// Whether the protocol has folders is the session's to say: Move and Append
	// are tested on sessions that implement them.
	if _, ok := open(t, h.Connector, h.NewMailbox(t)).(serversync.FolderSession); !ok {
		return
	}
	t.Run("MoveCreatesFolder", func(t *testing.T) {
		mb := h.NewMailbox(t)
		s := open(t, h.Connector, mb)
		folders := s.(serversync.FolderSession)
		raw := Message(1, "cannot be tracked")
		mb.Deliver(t, raw)
		got, _ := fetch(t, s, serversync.FetchRequest{})
		require.Len(t, got, 1)
		require.NoError(t, folders.Move(context.Background(), got[0].folder, got[0].ref, "Undeliverable"))
		inbox, _ := fetch(t, s, serversync.FetchRequest{})
		assert.Empty(t, inbox, "moved out of the inbox")
		moved, _ := fetch(t, s, serversync.FetchRequest{Folder: "Undeliverable"})
		require.Len(t, moved, 1)
		assert.Equal(t, string(normalize(raw)), string(normalize(moved[0].body)))
		assert.Equal(t, "Undeliverable", moved[0].folder)
	})

	t.Run("AppendCreatesFolder", func(t *testing.T) {
		mb := h.NewMailbox(t)
		s := open(t, h.Connector, mb)
		folders := s.(serversync.FolderSession)
		raw := Message(1, "a copy of what was sent")
		require.NoError(t, folders.Append(context.Background(), "Sent", time.Now(), bytes.NewReader(raw), int64(len(raw))))
		sent, _ := fetch(t, s, serversync.FetchRequest{Folder: "Sent"})
		require.Len(t, sent, 1)
		assert.Equal(t, string(normalize(raw)), string(normalize(sent[0].body)))
	})
}

// Outgoing describes an outgoing connector under test.
type Outgoing struct {
	Connector serversync.OutgoingConnector
	// Target returns where to send from; To is the recipient address.
	Target func(t *testing.T) *serversync.Target
	To     string
	// Received waits for the message with that Message-ID to arrive and returns it.
	Received func(t *testing.T, messageID string) []byte
}

// RunOutgoing runs the outgoing conformance tests as subtests.
func RunOutgoing(t *testing.T, h Outgoing) {
	t.Run("SendDeliversExactMessage", func(t *testing.T) {
		ctx := context.Background()
		target := h.Target(t)
		s, err := h.Connector.OpenOutgoing(ctx, target)
		require.NoError(t, err)
		defer s.Close()
		for i := range 2 { // one session, several messages
			id := fmt.Sprintf("conformance-out-%d-%d@serversync.test", i, time.Now().UnixNano())
			raw := fmt.Appendf(nil, "From: %s\r\nTo: %s\r\nSubject: out %d\r\nMessage-ID: <%s>\r\n"+
				"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\nBody %d\r\n.dot line\r\n", target.EmailAddress, h.To, i, id, i)
			require.NoError(t, s.Send(ctx, serversync.Envelope{From: target.EmailAddress, To: []string{h.To}}, bytes.NewReader(raw)))
			got := h.Received(t, id)
			// Servers add trace headers above the message and may store LF line endings.
			assert.Contains(t, lf(got), lf(normalize(raw)), "the recipient gets the message as sent")
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := h.Connector.OpenOutgoing(ctx, h.Target(t))
		assert.ErrorIs(t, err, context.Canceled)
	})
}
