package imapconn_test

import (
	"bufio"
	"context"
	"fmt"
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

// Dovecot runs pipelined FETCH commands concurrently: the second batch's
// responses can come before the first batch's end, and the tagged OKs in any
// order. This scripted server does exactly that; every message must still be
// delivered once, in UID order, without deadlocking.
func TestFetchInterleavedPipelinedResponses(t *testing.T) {
	t.Parallel()
	bodies := map[int]string{}
	for uid := 1; uid <= 6; uid++ {
		bodies[uid] = string(testMessage(uid, 200*uid))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		serveInterleaving(conn, bodies)
	}()

	target := &serversync.Target{
		Endpoint: serversync.Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: serversync.TLSNone,
			AllowPlaintextAuth: true, Timeout: 5 * time.Second},
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: "alice", Password: auth.NewSecret("alice-pass")},
	}
	sess, err := imapconn.New(&imapconn.Options{FetchBatchSize: 2}).OpenIncoming(context.Background(), target)
	require.NoError(t, err)
	defer sess.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var refs []string
	_, err = sess.Fetch(ctx, serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		assert.Equal(t, bodies[refNum(t, m.Ref)], readAllString(t, m), "body of UID %s", m.Ref)
		refs = append(refs, m.Ref)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"1", "2", "3", "4", "5", "6"}, refs)
}

func readAllString(t *testing.T, m *serversync.RemoteMessage) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := m.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// serveInterleaving speaks just enough IMAP for one Fetch. It answers the
// pipelined UID FETCH commands of each pair together: the later command's
// messages interleaved with the earlier one's, its tagged OK first.
func serveInterleaving(conn net.Conn, bodies map[int]string) {
	r := bufio.NewReader(conn)
	w := bufio.NewWriter(conn)
	send := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\r\n", args...)
	}
	fetchResponse := func(uid int) {
		fmt.Fprintf(w, "* %d FETCH (UID %d RFC822.SIZE %d INTERNALDATE \"02-Jan-2024 15:04:05 +0000\" BODY[] {%d}\r\n%s)\r\n",
			uid, uid, len(bodies[uid]), len(bodies[uid]), bodies[uid])
	}
	send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] scripted server")
	w.Flush()
	type fetchCmd struct {
		tag        string
		start, end int
	}
	var waiting []fetchCmd
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
		switch {
		case cmd == "CAPABILITY":
			send("* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR")
			send("%s OK done", tag)
		case cmd == "AUTHENTICATE" || cmd == "LOGIN":
			send("%s OK logged in", tag)
		case cmd == "SELECT":
			send("* 6 EXISTS")
			send("* OK [UIDVALIDITY 7] ok")
			send("* OK [UIDNEXT 7] ok")
			send("%s OK [READ-WRITE] selected", tag)
		case cmd == "UID" && strings.ToUpper(fields[2]) == "SEARCH":
			send("* SEARCH 1 2 3 4 5 6")
			send("%s OK searched", tag)
		case cmd == "UID" && strings.ToUpper(fields[2]) == "FETCH":
			var c fetchCmd
			c.tag = tag
			if _, err := fmt.Sscanf(strings.Replace(fields[3], ":", " ", 1), "%d %d", &c.start, &c.end); err != nil {
				c.end = c.start
			}
			waiting = append(waiting, c)
			if len(waiting) == 2 || c.end == 6 {
				if len(waiting) == 2 {
					a, b := waiting[0], waiting[1]
					for i := 0; i <= a.end-a.start || i <= b.end-b.start; i++ {
						if a.start+i <= a.end {
							fetchResponse(a.start + i)
						}
						if b.start+i <= b.end {
							fetchResponse(b.start + i)
						}
					}
					send("%s OK fetched", b.tag)
					send("%s OK fetched", a.tag)
				} else {
					for uid := c.start; uid <= c.end; uid++ {
						fetchResponse(uid)
					}
					send("%s OK fetched", c.tag)
				}
				waiting = nil
			}
		case cmd == "LOGOUT":
			send("* BYE bye")
			send("%s OK bye", tag)
			w.Flush()
			return
		default:
			send("%s BAD unknown", tag)
		}
		w.Flush()
	}
}
