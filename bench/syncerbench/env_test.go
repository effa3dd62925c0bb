package syncerbench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/jackc/pgx/v5"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/demoserver"
	"github.com/serversync/serversync/internal/mailtest"
	"github.com/serversync/serversync/internal/testclock"
	"github.com/serversync/serversync/store/postgres"
	"github.com/serversync/serversync/store/sqlite"
)

var (
	mailboxCount = flag.Int("mailboxes", envInt("SYNCERBENCH_MAILBOXES", 10_000), "mailboxes on the Syncer (env SYNCERBENCH_MAILBOXES)")
	workers      = flag.Int("workers", 128, "the Syncer's Config.Workers")
	idleCount    = flag.Int("idle", 10, "mailboxes waiting in IMAP IDLE in BenchmarkNewMailLatency")
	postgresURL  = flag.String("postgres", "", "store in this PostgreSQL database (a fresh schema, dropped after) instead of SQLite")
	inProcess    = flag.Bool("inprocess", false, "run the demo mail server in the benchmark's process: its CPU and heap then count as the Syncer's")
)

func envInt(name string, fallback int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return fallback
}

// roundTimeout bounds one round of polls: far more than it takes, so a stuck
// round fails the benchmark instead of hanging it.
const roundTimeout = 15 * time.Minute

// serveEnv, set to a user count, makes the test binary a demo mail server (see serve).
const serveEnv = "SYNCERBENCH_SERVE"

func TestMain(m *testing.M) {
	if n := os.Getenv(serveEnv); n != "" {
		if err := serve(n); err != nil {
			fmt.Fprintln(os.Stderr, "syncerbench server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if shared != nil {
		shared.close()
	}
	os.Exit(code)
}

// server is where the demo mail system runs: its address, its CA, and its CPU time.
type server struct {
	Host     string
	IMAPPort int
	SMTPPort int
	CAPEM    string

	cpu   func() time.Duration // the server process's CPU time; nil when in-process
	close func() error
}

func address(i int) string  { return fmt.Sprintf("user%05d@example.test", i) }
func password(i int) string { return fmt.Sprintf("pass-%05d", i) }

func users(n int) map[string]string {
	u := make(map[string]string, n)
	for i := range n {
		u[address(i)] = password(i)
	}
	return u
}

// startServer starts a demo mail system with n users, in a child process (this
// test binary, see serve) unless -inprocess is given.
func startServer(n int) (*server, error) {
	if *inProcess {
		demo, err := demoserver.Start(users(n))
		if err != nil {
			return nil, err
		}
		return &server{Host: demo.Host, IMAPPort: demo.IMAPPort, SMTPPort: demo.SMTPPort, CAPEM: demo.CAPEM, close: demo.Close}, nil
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serveEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{}
	if err := json.NewDecoder(bufio.NewReader(stdout)).Decode(s); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("syncerbench: start the server process: %w", err)
	}
	pid := cmd.Process.Pid
	s.cpu = func() time.Duration { return processCPU(pid) }
	s.close = func() error {
		_ = stdin.Close() // the server stops at end of input
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			return <-done
		}
	}
	return s, nil
}

// serve runs the demo mail system for the parent benchmark process: it prints
// the server's address and CA as JSON and serves until its input ends.
func serve(count string) error {
	n, err := strconv.Atoi(count)
	if err != nil {
		return err
	}
	demo, err := demoserver.Start(users(n))
	if err != nil {
		return err
	}
	defer demo.Close()
	if err := json.NewEncoder(os.Stdout).Encode(&server{Host: demo.Host, IMAPPort: demo.IMAPPort, SMTPPort: demo.SMTPPort, CAPEM: demo.CAPEM}); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// env is the shared setup: a demo mail system with one user per mailbox, a SQLite
// store with a profile and the mailboxes approved, enabled and due, and the Syncer
// currently running on them.
type env struct {
	dir     string
	server  *server
	store   serversync.Store
	dropDB  func() // drops the PostgreSQL schema; nil on SQLite
	profile *serversync.Profile
	clock   *testclock.Clock
	ids     []string // mailbox IDs; ids[i] is the mailbox of address(i)

	mu      sync.Mutex
	round   map[string]bool // mailboxes whose sync finished in the current round
	want    int
	allDone chan struct{}
	failed  error // the first sync that failed
	polled  bool  // whether a round ever completed

	tracked  sync.Map // mailbox ID → chan struct{}: EventMailTracked of watched mailboxes
	finished sync.Map // mailbox ID → chan struct{}: EventSyncFinished of watched mailboxes

	syncer           *serversync.Syncer
	idle             int // syncer's Config.IdleConnections: -1 for IDLE off
	done             chan error
	heapBefore       uint64 // HeapInuse before syncer was created
	goroutinesBefore int    // goroutines before syncer was created
}

var (
	sharedOnce sync.Once
	shared     *env
	sharedErr  error
)

// getEnv returns the shared environment, setting it up on first use.
func getEnv(b *testing.B) *env {
	b.Helper()
	sharedOnce.Do(func() { shared, sharedErr = newEnv(*mailboxCount) })
	if sharedErr != nil {
		b.Fatal(sharedErr)
	}
	return shared
}

func newEnv(n int) (_ *env, err error) {
	ctx := context.Background()
	e := &env{clock: testclock.New(time.Now())}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	started := time.Now()
	if e.server, err = startServer(n); err != nil {
		return nil, err
	}
	serverReady := time.Since(started)

	started = time.Now()
	if e.dir, err = os.MkdirTemp("", "syncerbench-"); err != nil {
		return nil, err
	}
	keyFile := filepath.Join(e.dir, "secret.key")
	if err := auth.GenerateKeyFile(keyFile); err != nil {
		return nil, err
	}
	keys, err := auth.KeysFromFile(keyFile)
	if err != nil {
		return nil, err
	}
	if e.store, e.dropDB, err = openStore(ctx, e.dir, keys); err != nil {
		return nil, err
	}
	admin := serversync.NewAdmin(e.store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil },
		Now:        e.clock.Now, Logger: slog.New(slog.DiscardHandler),
	})
	e.profile, err = admin.CreateProfile(ctx, &serversync.Profile{
		Name: "demo", Owner: "admin-user", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: e.server.Host, IncomingPort: e.server.IMAPPort,
		OutgoingServer: e.server.Host, OutgoingPort: e.server.SMTPPort, OutgoingTLS: serversync.TLSImplicit,
		ExtraRootCAsPEM: e.server.CAPEM, ConnectionTimeout: 30 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	settings, err := e.store.GetOrgSettings(ctx)
	if err != nil {
		return nil, err
	}
	e.ids = make([]string, n)
	for i := range n {
		// A mailbox as Admin.CreateMailbox makes it (normalized and validated), in
		// the state approval and a successful Test & Enable leave: enabled and due
		// now, without 10,000 connections to test each mailbox first.
		now := e.clock.Now()
		m := &serversync.Mailbox{
			ID: serversync.NewID(), Name: fmt.Sprintf("user %05d", i), EmailAddress: address(i), ProfileID: e.profile.ID,
			Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: fmt.Sprintf("user-%05d", i)},
			Password:  auth.NewSecret(password(i)), IncomingFilter: serversync.FilterAll,
			Approval: serversync.ApprovalApproved, IncomingEnabled: true, IncomingStatus: serversync.TestSuccess,
			Status: serversync.TestSuccess, TestCompletedOn: now, NextSyncAt: now, CreatedAt: now, UpdatedAt: now,
		}
		serversync.NormalizeMailbox(m, settings)
		if err := serversync.ValidateMailbox(m, e.profile); err != nil {
			return nil, err
		}
		if err := e.store.CreateMailbox(ctx, m); err != nil {
			return nil, err
		}
		e.ids[i] = m.ID
	}
	fmt.Fprintf(os.Stderr, "syncerbench: %d users on the demo server in %v, %d mailboxes created enabled in the store in %v\n",
		n, serverReady.Round(time.Millisecond), n, time.Since(started).Round(time.Millisecond))
	return e, nil
}

func (e *env) close() {
	e.stop()
	if e.store != nil {
		_ = e.store.Close()
	}
	if e.dropDB != nil {
		e.dropDB()
	}
	if e.server != nil {
		_ = e.server.close()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

// start makes sure a Syncer runs with IDLE off (idleConnections < 0) or on for
// at most idleConnections mailboxes at once. A new Syncer is preceded by a heap
// and goroutine baseline and, with IDLE off or when no mailbox was ever synced,
// followed by a round in which it polls every mailbox once: the first poll of a
// mailbox is not a steady-state one.
func (e *env) start(b *testing.B, idleConnections int) {
	b.Helper()
	idleConnections = max(idleConnections, -1)
	if e.syncer != nil && e.idle == idleConnections {
		return
	}
	e.stop()
	e.heapBefore, e.goroutinesBefore = heapInuse(), runtime.NumGoroutine()
	idle := idleConnections >= 0
	s, err := serversync.NewSyncer(e.store, standard.Connectors(&standard.Options{Logger: slog.New(slog.DiscardHandler)}), &serversync.Config{
		Workers:         *workers,
		IdleConnections: idleConnections,
		// IDLE waits this long (real time) before the mailbox is polled again; the
		// benchmarks never want that to happen.
		ActivePoll: 30 * time.Minute,
		Tick:       100 * time.Millisecond,
		// The mailboxes are scheduled already: the scan for unscheduled ones is
		// measured on its own in BenchmarkScheduleReady.
		ScanInterval: 24 * time.Hour,
		Now:          e.clock.Now,
		OnEvent:      e.onEvent,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		b.Fatal(err)
	}
	e.syncer, e.idle, e.done = s, idleConnections, make(chan error, 1)
	go func() { e.done <- s.Run(context.Background()) }()
	if idle && e.polled {
		return
	}
	if _, _, err := e.pollAll(); err != nil {
		b.Fatal(err)
	}
}

// stop stops the running Syncer, if any.
func (e *env) stop() {
	if e.syncer == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = e.syncer.Stop(ctx)
	<-e.done
	e.syncer = nil
}

// pollAll makes every mailbox due and waits until each has been synced once. It
// reports how long that took and how much CPU the server process spent meanwhile
// (zero with -inprocess).
func (e *env) pollAll() (elapsed, serverCPU time.Duration, err error) {
	e.mu.Lock()
	e.round, e.want, e.allDone, e.failed = make(map[string]bool, len(e.ids)), len(e.ids), make(chan struct{}), nil
	allDone := e.allDone
	e.mu.Unlock()
	started, serverBefore := time.Now(), e.serverCPU()
	// Past MaxIdlePoll, the longest a quiet mailbox waits: every mailbox is due.
	e.clock.Advance(serversync.MaxIdlePollDefault + time.Minute)
	select {
	case <-allDone:
	case <-time.After(roundTimeout):
		e.mu.Lock()
		defer e.mu.Unlock()
		return 0, 0, fmt.Errorf("syncerbench: a round of polls timed out: %d of %d mailboxes synced", len(e.round), e.want)
	}
	elapsed, serverCPU = time.Since(started), e.serverCPU()-serverBefore
	e.mu.Lock()
	defer e.mu.Unlock()
	e.round, e.polled = nil, true
	return elapsed, serverCPU, e.failed
}

func (e *env) serverCPU() time.Duration {
	if e.server.cpu == nil {
		return 0
	}
	return e.server.cpu()
}

func (e *env) onEvent(ev serversync.Event) {
	switch ev.Kind {
	case serversync.EventMailTracked:
		signal(&e.tracked, ev.MailboxID)
	case serversync.EventSyncFinished:
		signal(&e.finished, ev.MailboxID)
		e.mu.Lock()
		defer e.mu.Unlock()
		if ev.Err != nil && e.failed == nil {
			e.failed = fmt.Errorf("syncerbench: mailbox %s: %w", ev.MailboxID, ev.Err)
		}
		if e.round == nil || e.round[ev.MailboxID] {
			return
		}
		e.round[ev.MailboxID] = true
		if len(e.round) == e.want {
			close(e.allDone)
		}
	}
}

// signal wakes whoever watches the mailbox in m, without blocking the Syncer.
func signal(m *sync.Map, mailboxID string) {
	if ch, ok := m.Load(mailboxID); ok {
		select {
		case ch.(chan struct{}) <- struct{}{}:
		default:
		}
	}
}

// deliverer appends messages to one user's inbox over a connection of its own,
// opened and logged in beforehand so a timed delivery is the APPEND alone.
type deliverer struct {
	c *imapclient.Client
}

func (e *env) dialDeliverer(i int) (*deliverer, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(e.server.CAPEM)) {
		return nil, errors.New("syncerbench: no certificate in the demo server's CA")
	}
	c, err := imapclient.DialTLS(fmt.Sprintf("%s:%d", e.server.Host, e.server.IMAPPort), &imapclient.Options{
		TLSConfig: &tls.Config{RootCAs: roots, ServerName: e.server.Host},
	})
	if err != nil {
		return nil, err
	}
	if err := c.Login(address(i), password(i)).Wait(); err != nil {
		c.Close()
		return nil, err
	}
	return &deliverer{c: c}, nil
}

func (d *deliverer) deliver(raw []byte) error { return mailtest.AppendMessage(d.c, "INBOX", raw) }

func (d *deliverer) close() { _ = d.c.Close() }

func message(to, id, subject string) []byte {
	return []byte("From: Partner <someone@partner.test>\r\nTo: " + to + "\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + id + "@partner.test>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nA short message to measure how soon it is tracked.\r\n")
}

// openStore opens the store the mailboxes live in: SQLite in dir, or with
// -postgres a fresh schema of that database, which drop removes.
func openStore(ctx context.Context, dir string, keys auth.KeyProvider) (_ serversync.Store, drop func(), err error) {
	if *postgresURL == "" {
		s, err := sqlite.Open(ctx, filepath.Join(dir, "serversync.db"), &sqlite.Options{Keys: keys})
		return s, nil, err
	}
	schema := fmt.Sprintf("syncerbench_%d", os.Getpid())
	s, err := postgres.Open(ctx, *postgresURL, &postgres.Options{Keys: keys, Schema: schema})
	if err != nil {
		return nil, nil, err
	}
	return s, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, *postgresURL)
		if err != nil {
			fmt.Fprintln(os.Stderr, "syncerbench: drop the schema:", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			fmt.Fprintln(os.Stderr, "syncerbench: drop the schema:", err)
		}
	}, nil
}

// openSockets counts this process's open sockets: with every mailbox waiting in
// IDLE, one per mailbox.
func openSockets() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	n := 0
	for _, entry := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + entry.Name()); err == nil && strings.HasPrefix(target, "socket:") {
			n++
		}
	}
	return n
}

// heapInuse is the heap in use after garbage collection.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// cpuTime is this process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU is another process's user plus system CPU time so far, from
// /proc/pid/stat (in clock ticks, 100 a second on Linux); zero when unreadable.
func processCPU(pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields after it.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64) // field 14 of proc(5)
	stime, _ := strconv.ParseInt(fields[12], 10, 64) // field 15
	return time.Duration(utime+stime) * (time.Second / 100)
}

// settle waits until this process has been nearly idle (under 5% of a CPU) for
// a tenth of a second, up to a minute: the Syncer has finished what it was doing.
func settle() {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		before := cpuTime()
		time.Sleep(100 * time.Millisecond)
		if cpuTime()-before < 5*time.Millisecond {
			return
		}
	}
}

// waitFor waits for a signal on ch, or fails after timeout.
func waitFor(ch <-chan struct{}, timeout time.Duration, what string) error {
	select {
	case <-ch:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("syncerbench: timed out after %v waiting for %s", timeout, what)
	}
}
