package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync/internal/testcert"
)

// Messages the fake server holds: dot-stuffing, a 100 KB line, 8-bit bytes.
var served = []string{
	"Subject: one\r\n\r\nHello\r\n.leading dot\r\n..two dots\r\n.\r\nnot the end\r\n",
	"Subject: long\r\n\r\n" + strings.Repeat("x", 100<<10) + "\r\n",
	"Subject: 8bit\r\n\r\ncaf\xc3\xa9 \xff\xfe\r\n",
}

// fakeServer is a scripted POP3 server on 127.0.0.1:0.
type fakeServer struct {
	addr     string
	tlsCfg   *tls.Config
	mu       sync.Mutex
	deleted  map[int]bool
	greeting string // default "+OK ready"
	passErr  string // reply to PASS instead of +OK, e.g. "-ERR [SYS/TEMP] busy"
	hang     bool   // accept and say nothing
}

func startServer(t *testing.T, configure func(*fakeServer)) *fakeServer {
	t.Helper()
	s := &fakeServer{deleted: map[int]bool{}, greeting: "+OK ready", tlsCfg: &tls.Config{Certificates: []tls.Certificate{testCert()}}}
	if configure != nil {
		configure(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	s.addr = ln.Addr().String()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return s
}

func (s *fakeServer) serve(conn net.Conn) {
	defer conn.Close()
	if s.hang {
		_, _ = io.Copy(io.Discard, conn)
		return
	}
	r := bufio.NewReader(conn)
	say := func(lines ...string) {
		for _, l := range lines {
			fmt.Fprintf(conn, "%s\r\n", l)
		}
	}
	say(s.greeting)
	var pending map[int]bool = map[int]bool{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		fields := strings.Fields(strings.TrimRight(line, "\r\n"))
		if len(fields) == 0 {
			say("-ERR empty")
			continue
		}
		arg := func(i int) int { var n int; fmt.Sscan(fields[i], &n); return n }
		switch strings.ToUpper(fields[0]) {
		case "CAPA":
			say("+OK", "TOP", "UIDL", "USER", "SASL PLAIN", "STLS", ".")
		case "STLS":
			say("+OK begin TLS")
			tlsConn := tls.Server(conn, s.tlsCfg)
			if tlsConn.Handshake() != nil {
				return
			}
			conn, r = tlsConn, bufio.NewReader(tlsConn)
		case "USER":
			say("+OK")
		case "PASS":
			switch {
			case s.passErr != "":
				say(s.passErr)
			case fields[1] == "pw":
				say("+OK logged in")
			default:
				say("-ERR [AUTH] invalid login")
			}
		case "AUTH":
			ir := ""
			if len(fields) > 2 {
				ir = fields[2]
			} else {
				say("+ ")
				l, _ := r.ReadString('\n')
				ir = strings.TrimSpace(l)
			}
			raw, _ := base64.StdEncoding.DecodeString(ir)
			if parts := strings.Split(string(raw), "\x00"); len(parts) == 3 && parts[2] == "pw" {
				say("+OK authenticated as " + parts[1])
			} else {
				say("-ERR [AUTH] no")
			}
		case "STAT":
			say(fmt.Sprintf("+OK %d %d", len(s.live(pending)), 100))
		case "LIST":
			say("+OK")
			for _, n := range s.live(pending) {
				say(fmt.Sprintf("%d %d", n, len(served[n-1])))
			}
			say(".")
		case "UIDL":
			say("+OK")
			for _, n := range s.live(pending) {
				say(fmt.Sprintf("%d uid-%d", n, n))
			}
			say(".")
		case "RETR", "TOP":
			n := arg(1)
			if n < 1 || n > len(served) {
				say("-ERR no such message")
				continue
			}
			say("+OK")
			body := served[n-1]
			if strings.ToUpper(fields[0]) == "TOP" {
				body, _, _ = strings.Cut(body, "\r\n\r\n")
				body += "\r\n\r\n"
			}
			for _, l := range strings.SplitAfter(body, "\r\n") {
				if strings.HasPrefix(l, ".") {
					l = "." + l
				}
				io.WriteString(conn, l)
			}
			say(".")
		case "DELE":
			pending[arg(1)] = true
			say("+OK marked")
		case "NOOP":
			say("+OK")
		case "RSET":
			pending = map[int]bool{}
			say("+OK")
		case "QUIT":
			s.mu.Lock()
			for n := range pending {
				s.deleted[n] = true
			}
			s.mu.Unlock()
			say("+OK bye")
			return
		default:
			say("-ERR unknown command")
		}
	}
}

func (s *fakeServer) live(pending map[int]bool) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for n := 1; n <= len(served); n++ {
		if !s.deleted[n] && !pending[n] {
			out = append(out, n)
		}
	}
	return out
}

var testCert = sync.OnceValue(func() tls.Certificate { cert, _ := testcert.Must(); return cert })

func trustingConfig() *tls.Config {
	pool := x509.NewCertPool()
	cert, _ := x509.ParseCertificate(testCert().Certificate[0])
	pool.AddCert(cert)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

func dial(t *testing.T, s *fakeServer) *Client {
	t.Helper()
	c, err := Dial(context.Background(), s.addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := startServer(t, nil)
	c := dial(t, s)
	assert.Equal(t, "ready", c.Greeting())
	caps, err := c.Capabilities(ctx)
	require.NoError(t, err)
	assert.True(t, caps.Has("uidl"))
	assert.Equal(t, []string{"PLAIN"}, caps.SASLMechanisms())
	require.NoError(t, c.Login(ctx, "alice", "pw"))

	count, _, err := c.Stat(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, count)
	list, err := c.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, MessageInfo{Number: 2, Size: int64(len(served[1]))}, list[1])
	uids, err := c.UIDL(ctx)
	require.NoError(t, err)
	assert.Equal(t, UIDEntry{Number: 3, UID: "uid-3"}, uids[2])

	for i, want := range served {
		r, err := c.Retr(ctx, i+1)
		require.NoError(t, err)
		got, err := io.ReadAll(r)
		require.NoError(t, err)
		require.NoError(t, r.Close())
		assert.Equal(t, want, string(got), "message %d byte for byte", i+1)
	}
	top, err := c.Top(ctx, 1, 0)
	require.NoError(t, err)
	head, err := io.ReadAll(top)
	require.NoError(t, err)
	require.NoError(t, top.Close())
	assert.Equal(t, "Subject: one\r\n\r\n", string(head))

	require.NoError(t, c.Dele(ctx, 1))
	require.NoError(t, c.Quit(ctx))
	again := dial(t, s)
	require.NoError(t, again.Login(ctx, "alice", "pw"))
	count, _, err = again.Stat(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, count, "QUIT commits deletions")
}

func TestReaderMustBeClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := dial(t, startServer(t, nil))
	require.NoError(t, c.Login(ctx, "alice", "pw"))
	r, err := c.Retr(ctx, 2)
	require.NoError(t, err)
	buf := make([]byte, 10)
	_, err = io.ReadFull(r, buf)
	require.NoError(t, err)
	assert.Error(t, c.Noop(ctx), "no command while a message is being read")
	require.NoError(t, r.Close(), "Close drains the rest")
	assert.NoError(t, c.Noop(ctx))
}

func TestAuthErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := dial(t, startServer(t, nil))
	err := c.Login(ctx, "alice", "Secret-Wrong-42")
	var perr *Error
	require.ErrorAs(t, err, &perr)
	assert.True(t, perr.IsAuth())
	assert.False(t, perr.Temporary())
	assert.NotContains(t, err.Error(), "Secret-Wrong-42")

	busy := dial(t, startServer(t, func(s *fakeServer) { s.passErr = "-ERR [SYS/TEMP] busy, try later" }))
	err = busy.Login(ctx, "alice", "pw")
	require.ErrorAs(t, err, &perr)
	assert.True(t, perr.Temporary())
	assert.False(t, perr.IsAuth())
	assert.Equal(t, "SYS/TEMP", perr.Code)
}

func TestSTLSAndSASL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := dial(t, startServer(t, nil))
	require.NoError(t, c.StartTLS(ctx, trustingConfig()))
	assert.True(t, c.IsTLS())
	require.NoError(t, c.Authenticate(ctx, sasl.NewPlainClient("", "alice", "pw")))
	_, _, err := c.Stat(ctx)
	assert.NoError(t, err)

	bad := dial(t, startServer(t, nil))
	err = bad.Authenticate(ctx, sasl.NewPlainClient("", "alice", "Not-The-Password"))
	var perr *Error
	require.ErrorAs(t, err, &perr)
	assert.True(t, perr.IsAuth())
	assert.NotContains(t, err.Error(), "Not-The-Password")
	assert.NotContains(t, err.Error(), base64.StdEncoding.EncodeToString([]byte("\x00alice\x00Not-The-Password")))
}

func TestContextCancelWhileServerHangs(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(s *fakeServer) { s.hang = true })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Dial(ctx, s.addr)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestGarbageGreeting(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(s *fakeServer) { s.greeting = "HELLO I AM NOT POP3" })
	_, err := Dial(context.Background(), s.addr)
	assert.ErrorIs(t, err, ErrProtocol)
	s = startServer(t, func(s *fakeServer) { s.greeting = "-ERR [SYS/TEMP] maintenance" })
	_, err = Dial(context.Background(), s.addr)
	var perr *Error
	require.ErrorAs(t, err, &perr)
	assert.True(t, perr.Temporary())
}

func TestReadLineLimit(t *testing.T) {
	t.Parallel()
	_, err := readLine(bufio.NewReader(strings.NewReader("+OK " + strings.Repeat("a", maxStatusLine) + "\r\n")))
	assert.ErrorIs(t, err, ErrProtocol)
	_, err = readLine(bufio.NewReader(strings.NewReader("+OK no newline")))
	assert.True(t, errors.Is(err, io.EOF))
}
