package imapconn_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/connectortest"
	"github.com/serversync/serversync/connector/imapconn"
)

// hostileServer serves connections on loopback: greet writes the greeting,
// then LOGIN/AUTHENTICATE, CAPABILITY and SELECT are answered as a two-message
// INBOX would (UID SEARCH finds both), and fetch answers each UID FETCH. greet and fetch may write
// for as long as they like: writes fail once the client hangs up. sent counts
// what they wrote.
func hostileServer(t *testing.T, greet func(w io.Writer), fetch func(w io.Writer, tag string)) (port int, sent *atomic.Int64) {
	t.Helper()
	sent = new(atomic.Int64)
	port = connectortest.ServeScripted(t, func(conn net.Conn) {
		w := &countingWriter{w: conn, n: sent}
		greet(w)
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			fields := strings.Fields(line)
			if len(fields) < 2 {
				return
			}
			tag, cmd := fields[0], strings.ToUpper(fields[1])
			if cmd == "UID" && len(fields) > 2 {
				cmd += " " + strings.ToUpper(fields[2])
			}
			switch cmd {
			case "CAPABILITY":
				fmt.Fprintf(w, "* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\n%s OK done\r\n", tag)
			case "AUTHENTICATE", "LOGIN":
				fmt.Fprintf(w, "%s OK logged in\r\n", tag)
			case "SELECT", "EXAMINE":
				fmt.Fprintf(w, "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 3] ok\r\n%s OK [READ-WRITE] selected\r\n", tag)
			case "UID SEARCH":
				fmt.Fprintf(w, "* SEARCH 1 2\r\n%s OK done\r\n", tag)
			case "UID FETCH":
				fetch(w, tag)
			case "LOGOUT":
				fmt.Fprintf(w, "* BYE bye\r\n%s OK bye\r\n", tag)
				return
			default:
				fmt.Fprintf(w, "%s BAD unknown\r\n", tag)
			}
		}
	})
	return port, sent
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func hostileTarget(port int, timeout time.Duration) *serversync.Target {
	return &serversync.Target{
		Endpoint: serversync.Endpoint{Host: "127.0.0.1", Port: port, TLS: serversync.TLSNone,
			AllowPlaintextAuth: true, Timeout: timeout},
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: "alice", Password: auth.NewSecret("alice-pass")},
	}
}

const greeting = "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hostile server\r\n"

func greetNormally(w io.Writer) { _, _ = io.WriteString(w, greeting) }

// Whatever a server sends, the client's heap stays bounded and the operation
// ends by itself with a classified error: an endless line (in the greeting or
// inside a FETCH response), an endless atom or list, a message body larger than
// allowed, and replies that drip one byte at a time just inside each read
// timeout. The whole test process stays under connectortest.HeapLimitDefault
// (64 MiB) while the server tries to send 1 GiB.
//
// Not parallel: the heap measured is the process's.
func TestBoundedReplies(t *testing.T) {
	// Short, for the dripping replies to end soon; the endless ones use a long
	// one, so that only the byte budget can end them (1 MiB parsed under -race
	// takes a while).
	const timeout = 500 * time.Millisecond
	fetchStart := "* 1 FETCH (UID 1 RFC822.SIZE 10 INTERNALDATE \"02-Jan-2024 15:04:05 +0000\" "
	for _, tc := range []struct {
		name    string
		greet   func(w io.Writer)
		fetch   func(w io.Writer, tag string)
		opts    *imapconn.Options
		kind    serversync.ErrorKind
		code    string
		scope   serversync.AlertScope
		atFetch bool // the limit is met by Fetch, not OpenIncoming
	}{
		{name: "endless greeting line",
			greet: func(w io.Writer) { connectortest.Endless(w, "* OK ", "a") },
			kind:  serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeProfile},
		{name: "endless greeting atom",
			greet: func(w io.Writer) { connectortest.Endless(w, "* OK [", "A") },
			kind:  serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeProfile},
		{name: "endless line in a FETCH response",
			greet: greetNormally, fetch: func(w io.Writer, _ string) { connectortest.Endless(w, fetchStart+"ENVELOPE (\"", "x") },
			kind: serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeMailbox, atFetch: true},
		{name: "endless list in a FETCH response",
			greet: greetNormally, fetch: func(w io.Writer, _ string) { connectortest.Endless(w, fetchStart+"FLAGS (", "\\Seen ") },
			kind: serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeMailbox, atFetch: true},
		{name: "endless atom in a FETCH response",
			greet: greetNormally, fetch: func(w io.Writer, _ string) { connectortest.Endless(w, fetchStart+"X", "A") },
			kind: serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeMailbox, atFetch: true},
		{name: "large literal outside FETCH",
			greet: greetNormally, fetch: func(w io.Writer, _ string) { connectortest.Endless(w, "* LIST () \"/\" {200000000}\r\n", "a") },
			kind: serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeMailbox, atFetch: true},
		{name: "message body over the limit",
			greet: greetNormally, fetch: func(w io.Writer, _ string) { connectortest.Endless(w, fetchStart+"BODY[] {2000000000}\r\n", "m") },
			kind: serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeMailbox, atFetch: true},
		{name: "message body over a configured limit",
			greet: greetNormally, fetch: func(w io.Writer, _ string) { connectortest.Endless(w, fetchStart+"BODY[] {1073741824}\r\n", "m") },
			opts: &imapconn.Options{MaxMessageBytes: 10 << 20},
			kind: serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeMailbox, atFetch: true},
		{name: "large body before its size and date",
			greet: greetNormally, fetch: func(w io.Writer, _ string) { connectortest.Endless(w, "* 1 FETCH (UID 1 BODY[] {100000000}\r\n", "m") },
			kind: serversync.ErrorPermanent, code: serversync.CodeReplyTooLong, scope: serversync.ScopeMailbox, atFetch: true},
		{name: "greeting dripping",
			greet: func(w io.Writer) { connectortest.Drip(w, "* OK ", 'a', timeout/20) },
			kind:  serversync.ErrorTransient, code: serversync.CodeReplyTooSlow, scope: serversync.ScopeProfile},
		{name: "FETCH response dripping",
			greet: greetNormally, fetch: func(w io.Writer, _ string) { connectortest.Drip(w, fetchStart+"FLAGS (", 'a', timeout/20) },
			kind: serversync.ErrorTransient, code: serversync.CodeReplyTooSlow, scope: serversync.ScopeMailbox, atFetch: true},
		{name: "message body dripping",
			greet: greetNormally, fetch: func(w io.Writer, _ string) { connectortest.Drip(w, fetchStart+"BODY[] {1000}\r\n", 'm', timeout/20) },
			kind: serversync.ErrorTransient, code: serversync.CodeReplyTooSlow, scope: serversync.ScopeMailbox, atFetch: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, sent := hostileServer(t, tc.greet, tc.fetch)
			ctx, stop := connectortest.HeapGuard(context.Background(), connectortest.HeapLimitDefault)
			ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()

			endpointTimeout := 30 * time.Second
			if tc.code == serversync.CodeReplyTooSlow {
				endpointTimeout = timeout
			}
			sess, err := imapconn.New(tc.opts).OpenIncoming(ctx, hostileTarget(port, endpointTimeout))
			if tc.atFetch {
				require.NoError(t, err)
				_, err = sess.Fetch(ctx, serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
					_, err := io.Copy(io.Discard, m.Body)
					return err
				})
				_ = sess.Close()
			}
			t.Logf("the server sent %.1f MiB", float64(sent.Load())/(1<<20))
			ce := connectortest.RequireBounded(t, ctx, stop, err)
			assert.Equal(t, tc.kind, ce.Kind, "%v", err)
			assert.Equal(t, tc.code, ce.Code, "%v", err)
			assert.Equal(t, tc.scope, ce.Scope, "%v", err)
		})
	}
}

// A server that goes silent after login is cut after Endpoint.Timeout, not
// several times it: the deadline here is twice the timeout, and the error must
// be the endpoint timeout's, not the deadline's.
func TestSilentAfterLoginCutAfterTimeout(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	port, _ := hostileServer(t, greetNormally, func(w io.Writer, _ string) {})
	// The fetch is answered by nothing: hostileServer returns and waits for
	// cleanup, which closes the connection only after the test.
	sess, err := imapconn.New(nil).OpenIncoming(context.Background(), hostileTarget(port, timeout))
	require.NoError(t, err)
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	_, err = sess.Fetch(ctx, serversync.FetchRequest{}, func(*serversync.RemoteMessage) error { return nil })
	require.Error(t, err)
	require.NoError(t, ctx.Err(), "cut by the endpoint timeout, before the test's deadline of twice it: %v", err)
	requireConnectorError(t, err, serversync.ErrorTransient, "network")
}

// The byte budget is for replies outside message bodies: a body larger than it
// (3 MiB here, over a 1 MiB budget) arrives whole.
func TestMessageBodyLargerThanReplyBudget(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("0123456789abcde\n"), (3<<20)/16)
	port, _ := hostileServer(t, greetNormally, func(w io.Writer, tag string) {
		fmt.Fprintf(w, "* 1 FETCH (UID 1 RFC822.SIZE %d INTERNALDATE \"02-Jan-2024 15:04:05 +0000\" BODY[] {%d}\r\n", len(body), len(body))
		_, _ = w.Write(body)
		fmt.Fprintf(w, ")\r\n%s OK done\r\n", tag)
	})
	sess, err := imapconn.New(nil).OpenIncoming(context.Background(), hostileTarget(port, 30*time.Second))
	require.NoError(t, err)
	defer sess.Close()
	var got []byte
	_, err = sess.Fetch(context.Background(), serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		got, err = io.ReadAll(m.Body)
		return err
	})
	require.NoError(t, err)
	assert.Equal(t, len(body), len(got))
}

// The time budget of a reply counts the server's time, not the caller's: a
// callback that takes longer than the timeout to read a body (a slow store,
// say) does not make the server's reply "too slow".
func TestSlowCallbackIsNotASlowServer(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	// 128 KiB: more than the client's buffers hold, so reads of it happen after
	// the callback's wait; it adds two seconds to the reply's time budget.
	body := bytes.Repeat([]byte("0123456789abcde\n"), (128<<10)/16)
	port, _ := hostileServer(t, greetNormally, func(w io.Writer, tag string) {
		fmt.Fprintf(w, "* 1 FETCH (UID 1 RFC822.SIZE %d INTERNALDATE \"02-Jan-2024 15:04:05 +0000\" BODY[] {%d}\r\n", len(body), len(body))
		_, _ = w.Write(body)
		fmt.Fprintf(w, ")\r\n%s OK done\r\n", tag)
	})
	sess, err := imapconn.New(nil).OpenIncoming(context.Background(), hostileTarget(port, timeout))
	require.NoError(t, err)
	defer sess.Close()
	_, err = sess.Fetch(context.Background(), serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		time.Sleep(3 * time.Second) // the scenario itself: a consumer slower than the reply's budget
		_, err := io.Copy(io.Discard, m.Body)
		return err
	})
	require.NoError(t, err)
}

// A server running pipelined FETCH commands at once may send the next batch's
// messages before the current batch ends; those are held in memory until their
// turn, but no more than 16 MiB of them: a larger early message is let go and
// its batch fetched again in its turn, when it streams. Both messages still
// arrive, once, in order, and the heap stays under the test's 64 MiB while
// the early message is 80 MiB.
//
// Not parallel: the heap measured is the process's.
func TestEarlyMessagesOfLaterBatchNotHeld(t *testing.T) {
	const large = 80 << 20
	first := testMessage(1, 300)
	var fetches atomic.Int32
	var firstTag string // the server goroutine's only
	large2 := func(w io.Writer) {
		fmt.Fprintf(w, "* 2 FETCH (UID 2 RFC822.SIZE %d INTERNALDATE \"02-Jan-2024 15:04:05 +0000\" BODY[] {%d}\r\n", large, large)
		chunk := bytes.Repeat([]byte("0123456789abcde\n"), 4096)
		for sent := 0; sent < large; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, ")\r\n")
	}
	port, _ := hostileServer(t, greetNormally, func(w io.Writer, tag string) {
		switch fetches.Add(1) {
		case 1: // batch 1 (UID 1): answered after batch 2
			firstTag = tag
		case 2: // batch 2 (UID 2) first, then batch 1
			large2(w)
			fmt.Fprintf(w, "%s OK done\r\n", tag)
			fmt.Fprintf(w, "* 1 FETCH (UID 1 RFC822.SIZE %d INTERNALDATE \"02-Jan-2024 15:04:05 +0000\" BODY[] {%d}\r\n%s)\r\n%s OK done\r\n",
				len(first), len(first), first, firstTag)
		default: // batch 2 again, in its turn
			large2(w)
			fmt.Fprintf(w, "%s OK done\r\n", tag)
		}
	})
	ctx, stop := connectortest.HeapGuard(context.Background(), connectortest.HeapLimitDefault)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	sess, err := imapconn.New(&imapconn.Options{FetchBatchSize: 1}).OpenIncoming(ctx, hostileTarget(port, 30*time.Second))
	require.NoError(t, err)
	defer sess.Close()
	var refs []string
	var sizes []int64
	_, err = sess.Fetch(ctx, serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		n, err := io.Copy(io.Discard, m.Body)
		refs, sizes = append(refs, m.Ref), append(sizes, n)
		return err
	})
	cause := context.Cause(ctx)
	peak := stop()
	t.Logf("peak heap %.1f MiB", float64(peak)/(1<<20))
	require.NoError(t, cause, "within the heap limit: %v", err)
	require.NoError(t, err)
	assert.Equal(t, []string{"1", "2"}, refs)
	assert.Equal(t, []int64{int64(len(first)), large}, sizes)
	assert.Equal(t, int32(3), fetches.Load(), "the later batch was fetched again")
	assert.Less(t, peak, uint64(connectortest.HeapLimitDefault))
}
