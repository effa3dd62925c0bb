package imapconn_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/imapconn"
)

// A server that answers FETCH with nonsense must get a classified error back,
// never a panic, a hang or a message that was not sent whole; what came before
// the nonsense is still handed over.
func TestHostileFetchReplies(t *testing.T) {
	good := string(testMessage(1, 300))
	goodResponse := fmt.Sprintf("* 1 FETCH (UID 1 RFC822.SIZE %d INTERNALDATE \"02-Jan-2024 15:04:05 +0000\" BODY[] {%d}\r\n%s)\r\n",
		len(good), len(good), good)
	for _, tc := range []struct {
		name, reply string // after UID 1's response; the server then closes the connection
	}{
		{"unbalanced parentheses", "* 2 FETCH (UID 2 BODY[] ((((\r\n"},
		{"literal longer than what is sent", "* 2 FETCH (UID 2 RFC822.SIZE 50 INTERNALDATE \"02-Jan-2024 15:04:05 +0000\" BODY[] {5000}\r\nshort"},
		{"negative literal size", "* 2 FETCH (UID 2 BODY[] {-5}\r\n)\r\n"},
		{"no UID", "* 2 FETCH (RFC822.SIZE 4 BODY[] {4}\r\nabcd)\r\n"},
		{"UID not a number", "* 2 FETCH (UID two BODY[] {4}\r\nabcd)\r\n"},
		{"BYE in the middle", "* BYE going away now\r\n"},
		{"binary garbage", "\x00\xff\xfe* \x01\x02 FETCH \x7f\r\n"},
		{"tagged NO", "{tag} NO [SERVERBUG] it broke\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := scriptedServer(t, "", goodResponse+tc.reply)
			target := &serversync.Target{
				Endpoint: serversync.Endpoint{Host: "127.0.0.1", Port: port, TLS: serversync.TLSNone,
					AllowPlaintextAuth: true, Timeout: 5 * time.Second},
				Credentials: auth.Credentials{Kind: auth.KindPassword, Username: "alice", Password: auth.NewSecret("alice-pass")},
			}
			sess, err := imapconn.New(nil).OpenIncoming(context.Background(), target)
			require.NoError(t, err)
			defer sess.Close()

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var got []string
			_, err = sess.Fetch(ctx, serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
				body, err := io.ReadAll(m.Body)
				if err != nil {
					return err
				}
				got = append(got, string(body))
				return nil
			})
			require.Error(t, err)
			require.NoError(t, ctx.Err(), "the fetch ended by itself, not by the test's deadline")
			var ce *serversync.ConnectorError
			require.ErrorAs(t, err, &ce, "a classified error: %v", err)
			assert.NotEmpty(t, ce.Code)
			for _, body := range got {
				assert.Equal(t, good, body, "only the message sent whole is handed over")
			}
		})
	}
}

// scriptedServer accepts one connection on loopback, lets it log in (or answers
// the login with loginReply and closes the connection) and select a two-message
// INBOX, and answers the first UID FETCH with fetchReply as it is, then closes the
// connection.
// "{tag}" in a reply becomes the command's tag.
func scriptedServer(t *testing.T, loginReply, fetchReply string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
		fmt.Fprint(w, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] scripted server\r\n")
		for {
			_ = w.Flush()
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
				if loginReply != "" {
					fmt.Fprint(w, strings.ReplaceAll(loginReply, "{tag}", tag))
					_ = w.Flush()
					return
				}
				fmt.Fprintf(w, "%s OK logged in\r\n", tag)
			case "SELECT", "EXAMINE":
				fmt.Fprintf(w, "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 3] ok\r\n%s OK [READ-WRITE] selected\r\n", tag)
			case "UID FETCH":
				fmt.Fprint(w, strings.ReplaceAll(fetchReply, "{tag}", tag))
				_ = w.Flush()
				return
			case "LOGOUT":
				fmt.Fprintf(w, "* BYE bye\r\n%s OK bye\r\n", tag)
				_ = w.Flush()
				return
			default:
				fmt.Fprintf(w, "%s BAD unknown\r\n", tag)
			}
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// A refused login is classified by its response code (RFC 5530), so the Syncer
// knows whether to disable the mailbox, retry later, or alert the profile owner.
func TestLoginRefusals(t *testing.T) {
	for _, tc := range []struct {
		reply string
		kind  serversync.ErrorKind
		scope serversync.AlertScope
		code  string
	}{
		{"{tag} NO [EXPIRED] password expired\r\n", serversync.ErrorAuth, serversync.ScopeMailbox, serversync.CodeAuthExpired},
		{"{tag} NO [CONTACTADMIN] call us\r\n", serversync.ErrorAuth, serversync.ScopeMailbox, serversync.CodeAuthExpired},
		{"{tag} NO [AUTHENTICATIONFAILED] wrong\r\n", serversync.ErrorAuth, serversync.ScopeMailbox, serversync.CodeAuthFailed},
		{"{tag} NO login refused\r\n", serversync.ErrorAuth, serversync.ScopeMailbox, serversync.CodeAuthFailed},
		{"{tag} NO [UNAVAILABLE] try later\r\n", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeServerUnavailable},
		{"{tag} NO [PRIVACYREQUIRED] use TLS\r\n", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeTLSUnavailable},
		{"{tag} BAD what?\r\n", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeProtocolError},
		{"* BYE too many connections\r\n", serversync.ErrorTransient, serversync.ScopeProfile, "network"},
	} {
		t.Run(strings.TrimPrefix(strings.TrimSpace(tc.reply), "{tag} "), func(t *testing.T) {
			target := &serversync.Target{
				Endpoint: serversync.Endpoint{Host: "127.0.0.1", Port: scriptedServer(t, tc.reply, ""), TLS: serversync.TLSNone,
					AllowPlaintextAuth: true, Timeout: 5 * time.Second},
				Credentials: auth.Credentials{Kind: auth.KindPassword, Username: "alice", Password: auth.NewSecret("alice-pass")},
			}
			_, err := imapconn.New(nil).OpenIncoming(context.Background(), target)
			ce := requireConnectorError(t, err, tc.kind, tc.code)
			assert.Equal(t, tc.scope, ce.Scope)
			assert.NotContains(t, err.Error(), "alice-pass")
		})
	}
}
