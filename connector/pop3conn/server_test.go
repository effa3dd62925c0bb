package pop3conn_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/internal/testcert"
)

// memServer is a small in-memory POP3 server (RFC 1939 with CAPA, STLS, AUTH
// PLAIN) for fast tests; the interop tests use real Dovecot.
type memServer struct {
	addr   string
	caPEM  string
	tls    *tls.Config
	noSTLS bool // STLS not offered or accepted

	mu      sync.Mutex
	users   map[string]string      // login → password
	drops   map[string][]*memEntry // login → maildrop
	nextUID int
	logins  int
}

type memEntry struct {
	uid string
	raw []byte
}

func newMemServer(t *testing.T, configure func(*memServer)) *memServer {
	t.Helper()
	cert, caPEM := selfSigned(t)
	s := &memServer{
		caPEM: caPEM,
		tls:   &tls.Config{Certificates: []tls.Certificate{cert}},
		users: map[string]string{"alice": "alice-pass", "master": "master-pass"},
		drops: map[string][]*memEntry{},
	}
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

// deliver adds a message to user's maildrop.
func (s *memServer) deliver(user string, raw []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextUID++
	s.drops[user] = append(s.drops[user], &memEntry{uid: fmt.Sprintf("uid-%06d", s.nextUID), raw: raw})
}

func (s *memServer) count(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.drops[user])
}

func (s *memServer) target(user, password string, mode serversync.TLSMode) *serversync.Target {
	host, port, _ := net.SplitHostPort(s.addr)
	p, _ := strconv.Atoi(port)
	return &serversync.Target{
		MailboxID: user, EmailAddress: user + "@example.test",
		Endpoint: serversync.Endpoint{Host: host, Port: p, TLS: mode, RootCAsPEM: s.caPEM, Timeout: 5 * time.Second,
			AllowPlaintextAuth: mode == serversync.TLSNone},
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: user, Password: auth.NewSecret(password)},
	}
}

// authorize checks credentials; authzid, when set, is the mailbox a master user
// acts for. It returns the maildrop's owner.
func (s *memServer) authorize(authzid, user, password string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mailbox, master, ok := strings.Cut(user, "*"); ok && authzid == "" {
		authzid, user = mailbox, master
	}
	if s.users[user] != password || password == "" {
		return "", false
	}
	if authzid != "" && authzid != user {
		if user != "master" {
			return "", false
		}
		return authzid, true
	}
	s.logins++
	return user, true
}

func (s *memServer) serve(conn net.Conn) {
	defer func() { conn.Close() }()
	r := bufio.NewReader(conn)
	w := func(format string, args ...any) { fmt.Fprintf(conn, format+"\r\n", args...) }
	w("+OK memServer ready")
	var (
		owner, user string
		snapshot    []*memEntry
		deleted     = map[int]bool{}
		encrypted   bool
	)
	entry := func(arg string) (int, *memEntry) {
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > len(snapshot) || deleted[n] {
			return 0, nil
		}
		return n, snapshot[n-1]
	}
	login := func(who string) {
		owner = who
		s.mu.Lock()
		snapshot = append([]*memEntry(nil), s.drops[owner]...)
		s.mu.Unlock()
		w("+OK logged in")
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		verb = strings.ToUpper(verb)
		if owner == "" {
			switch verb {
			case "CAPA":
				w("+OK")
				w("USER")
				w("UIDL")
				w("TOP")
				w("SASL PLAIN")
				if !s.noSTLS && !encrypted {
					w("STLS")
				}
				w(".")
			case "STLS":
				if s.noSTLS || encrypted {
					w("-ERR STLS not available")
					continue
				}
				w("+OK begin TLS")
				tc := tls.Server(conn, s.tls)
				if tc.Handshake() != nil {
					return
				}
				conn, r, encrypted = tc, bufio.NewReader(tc), true
			case "USER":
				user = arg
				w("+OK")
			case "PASS":
				if who, ok := s.authorize("", user, arg); ok {
					login(who)
				} else {
					w("-ERR [AUTH] invalid credentials")
				}
			case "AUTH":
				mech, ir, _ := strings.Cut(arg, " ")
				if !strings.EqualFold(mech, "PLAIN") {
					w("-ERR unsupported mechanism")
					continue
				}
				if ir == "" {
					w("+ ")
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					ir = strings.TrimRight(l, "\r\n")
				}
				raw, _ := base64.StdEncoding.DecodeString(ir)
				parts := bytes.Split(raw, []byte{0})
				if len(parts) != 3 {
					w("-ERR malformed")
					continue
				}
				if who, ok := s.authorize(string(parts[0]), string(parts[1]), string(parts[2])); ok {
					login(who)
				} else {
					w("-ERR [AUTH] invalid credentials")
				}
			case "QUIT":
				w("+OK bye")
				return
			default:
				w("-ERR not authenticated")
			}
			continue
		}
		switch verb {
		case "STAT":
			n, size := 0, 0
			for i, e := range snapshot {
				if !deleted[i+1] {
					n, size = n+1, size+len(e.raw)
				}
			}
			w("+OK %d %d", n, size)
		case "LIST", "UIDL":
			w("+OK")
			for i, e := range snapshot {
				if deleted[i+1] {
					continue
				}
				if verb == "LIST" {
					w("%d %d", i+1, len(e.raw))
				} else {
					w("%d %s", i+1, e.uid)
				}
			}
			w(".")
		case "RETR", "TOP":
			number, lines, _ := strings.Cut(arg, " ")
			_, e := entry(number)
			if e == nil {
				w("-ERR no such message")
				continue
			}
			raw := e.raw
			if verb == "TOP" {
				header, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
				raw = append(header, "\r\n\r\n"...)
				_ = lines
			}
			w("+OK")
			for _, l := range strings.SplitAfter(string(raw), "\r\n") {
				if l == "" {
					continue
				}
				if strings.HasPrefix(l, ".") {
					l = "." + l
				}
				fmt.Fprint(conn, l)
			}
			if !bytes.HasSuffix(raw, []byte("\r\n")) {
				fmt.Fprint(conn, "\r\n")
			}
			w(".")
		case "DELE":
			n, e := entry(arg)
			if e == nil {
				w("-ERR no such message")
				continue
			}
			deleted[n] = true
			w("+OK")
		case "NOOP":
			w("+OK")
		case "RSET":
			clear(deleted)
			w("+OK")
		case "QUIT":
			s.mu.Lock()
			var kept []*memEntry
			for _, e := range s.drops[owner] {
				gone := false
				for n := range deleted {
					gone = gone || snapshot[n-1] == e
				}
				if !gone {
					kept = append(kept, e)
				}
			}
			s.drops[owner] = kept
			s.mu.Unlock()
			w("+OK bye")
			return
		default:
			w("-ERR unknown command")
		}
	}
}

func selfSigned(*testing.T) (tls.Certificate, string) { return testcert.Must() }
