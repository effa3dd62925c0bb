package smtpconn

import (
	"bufio"
	"cmp"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// smtpScript is what a scripted server answers at each step; empty fields take
// the answer of a server that accepts everything.
type smtpScript struct {
	greeting, ehlo, mail, rcpt, data, dataEnd string
}

// scriptedSMTP serves one connection on loopback with the script's replies and
// reports whether a message's data reached it.
func scriptedSMTP(t *testing.T, script smtpScript) (serversync.Endpoint, *atomic.Bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	var gotData atomic.Bool
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
		reply := func(s string) {
			fmt.Fprint(w, s+"\r\n")
			_ = w.Flush()
		}
		reply(cmp.Or(script.greeting, "220 scripted ESMTP"))
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); verb {
			case "EHLO", "HELO":
				reply(cmp.Or(script.ehlo, "250-scripted\r\n250 8BITMIME"))
			case "MAIL":
				reply(cmp.Or(script.mail, "250 2.1.0 ok"))
			case "RCPT":
				reply(cmp.Or(script.rcpt, "250 2.1.5 ok"))
			case "DATA":
				data := cmp.Or(script.data, "354 go on")
				reply(data)
				if !strings.HasPrefix(data, "354") {
					continue
				}
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if line == ".\r\n" {
						break
					}
				}
				gotData.Store(true)
				reply(cmp.Or(script.dataEnd, "250 2.0.0 queued"))
			case "QUIT":
				reply("221 bye")
				return
			default: // RSET, NOOP
				reply("250 ok")
			}
		}
	}()
	return serversync.Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: serversync.TLSNone, Timeout: 5 * time.Second}, &gotData
}

// Every refusal, and every reply that makes no sense, ends the send with a
// classified error; a reply the client cannot read once the message is out is
// "outcome unknown", so the email is not sent again.
func TestHostileAndRefusingServers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script smtpScript
		kind   serversync.ErrorKind
		code   string // "" when any code will do
		sent   bool   // whether the data reached the server
	}{
		{"greeting busy", smtpScript{greeting: "421 4.3.2 busy, try later"}, serversync.ErrorTransient, "", false},
		{"greeting refuses", smtpScript{greeting: "554 5.7.1 no service for you"}, serversync.ErrorPermanent, "rejected", false},
		{"greeting garbage", smtpScript{greeting: "\x00\xff not smtp"}, serversync.ErrorTransient, "", false},
		{"MAIL FROM out of storage", smtpScript{mail: "452 4.3.1 insufficient storage"}, serversync.ErrorTransient, "temporary_failure", false},
		{"MAIL FROM mismatched multi-line", smtpScript{mail: "250-fine\r\n451 not fine"}, serversync.ErrorTransient, "", false}, // ends at the timeout
		{"RCPT TO unknown user", smtpScript{rcpt: "550 5.1.1 no such user"}, serversync.ErrorPermanent, "recipient_rejected", false},
		{"DATA refused", smtpScript{data: "554 5.3.4 not now, not ever"}, serversync.ErrorPermanent, "rejected", false},
		{"message refused after data", smtpScript{dataEnd: "451 4.3.0 try again"}, serversync.ErrorTransient, "temporary_failure", true},
		{"message too large", smtpScript{dataEnd: "552 5.3.4 too big"}, serversync.ErrorPermanent, "message_too_large", true},
		{"garbage after data", smtpScript{dataEnd: "oh no"}, serversync.ErrorPermanent, serversync.CodeSendOutcomeUnknown, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ep, gotData := scriptedSMTP(t, tc.script)
			err := send(t, ep, auth.Credentials{Kind: auth.KindAnonymous})
			var ce *serversync.ConnectorError
			require.ErrorAs(t, err, &ce, "a classified error: %v", err)
			assert.Equal(t, tc.kind, ce.Kind, "kind of %v", err)
			if tc.code != "" {
				assert.Equal(t, tc.code, ce.Code, "code of %v", err)
			}
			assert.Equal(t, tc.sent, gotData.Load(), "whether the message reached the server")
		})
	}
}
