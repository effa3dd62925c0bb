// Command graphpipeline tracks N messages of one Exchange Online mailbox into a
// fresh SQLite store through the Graph connector and the whole incoming pipeline
// of a Syncer (delta pages, MIME downloads in $batch, parse, filter, correlate,
// store once), from the fake Graph server of connector/graph/graphtest:
//
//	go run ./bench/graphpipeline                 # 10,000 messages, $batch of 20
//	go run ./bench/graphpipeline -batch 1        # the same, one GET per message
//	go run ./bench/graphpipeline -n 1000 -pagesize 500 -cpuprofile cpu.out
//	go run ./bench/graphpipeline -rtt 20ms       # as if Graph were 20 ms away
//
// The fake runs in a child process (this program again, with -serve), so the
// peak RSS reported is the pipeline's alone: the fake holds every message in
// memory, and in the same process it would count against the Syncer. The fake's
// own peak RSS is printed beside it. On loopback a request costs no round
// trip, so $batch saves requests but not time; -rtt adds a round-trip time to
// every exchange (a relay in the fake's process delays each chunk of bytes by
// half of it each way), which is where $batch pays. -inprocess runs the fake inside this
// process instead (its memory and CPU then count as the pipeline's).
//
// The messages are internal/benchmail's corpus (about 15 KB on average: plain
// text, multipart/alternative, one in twenty with an attachment; non-ASCII
// headers), delivered before the Syncer starts. The mailbox uses delegated
// OAuth with a static access token the fake accepts. It prints the wall time
// from Run to the last message tracked, messages/s and MB/s, the HTTP requests
// of the sync (as the connector sent them, a $batch counting once, and as the
// fake counted them, each $batch item counting), the $batch and throttled
// counts, and the peak RSS (VmHWM) of the pipeline process.
package main

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
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/graph/graphtest"
	"github.com/serversync/serversync/internal/benchmail"
	"github.com/serversync/serversync/store/sqlite"
)

const (
	address = "bench@contoso.test"
	tenant  = "tenant-bench"
	// token is the fake's static delegated access token for address: the fake
	// is on loopback and lives as long as the run, so a fixed string will do.
	token = "graphpipeline-delegated-token"
)

type options struct {
	n, batch, pageSize, inFlight int
	db, cpuProfile               string
	stall, rtt                   time.Duration
	inProcess                    bool
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 10_000, "messages in the mailbox")
	flag.IntVar(&o.batch, "batch", 0, "MIME downloads per $batch (graph.Options.BatchSize; 0: 20, 1: no $batch)")
	flag.IntVar(&o.pageSize, "pagesize", 0, "delta page size (graph.Options.PageSize; 0: 100)")
	flag.IntVar(&o.inFlight, "inflight", 0, "requests in flight per mailbox (graph.Options.MaxInFlight; 0: 4)")
	flag.StringVar(&o.db, "db", "", "SQLite file to create (default: in a temporary directory, removed after)")
	flag.DurationVar(&o.stall, "stall", time.Minute, "give up when no message is tracked for this long")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the sync (from Run on) to this file")
	flag.DurationVar(&o.rtt, "rtt", 0, "round-trip time added to every exchange with the fake, as a network path to Graph would (e.g. 20ms)")
	flag.BoolVar(&o.inProcess, "inprocess", false, "run the fake Graph server in this process: its memory and CPU then count as the pipeline's")
	flag.Parse()
	var err error
	if spec, ok := os.LookupEnv(serveEnv); ok {
		err = serveSpec(spec, os.Stdin, os.Stdout)
	} else {
		err = run(o, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "graphpipeline:", err)
		os.Exit(1)
	}
}

// serveEnv, set to "N RTT" (a message count and a duration), makes the
// program the fake Graph server of a parent graphpipeline (see serve). An
// environment variable rather than a flag, so a test binary can be the child too.
const serveEnv = "GRAPHPIPELINE_SERVE"

// serveSpec runs serve as serveEnv says.
func serveSpec(spec string, in io.Reader, out io.Writer) error {
	var n int
	var rtt time.Duration
	nText, rttText, _ := strings.Cut(spec, " ")
	n, err := strconv.Atoi(nText)
	if err == nil {
		rtt, err = time.ParseDuration(rttText)
	}
	if err != nil {
		return fmt.Errorf("%s=%q: want a message count and a duration: %w", serveEnv, spec, err)
	}
	return serve(n, rtt, in, out)
}

// started is what the fake tells the pipeline once it holds the messages.
type started struct {
	URL   string `json:"url"`
	CA    string `json:"ca"`
	Bytes int64  `json:"bytes"`
	// Relay, with -rtt, is the address that reaches the fake with the delay
	// (see latency): the pipeline dials it instead of the URL's, so the
	// fake's absolute links still name the URL and TLS still verifies it.
	Relay string `json:"relay,omitempty"`
}

// counters are the fake's, and its process's peak RSS.
type counters struct {
	Requests  int   `json:"requests"` // each $batch item counts, as Graph counts them
	Batches   int   `json:"batches"`
	Throttled int   `json:"throttled"`
	PeakRSS   int64 `json:"peakRSS"`
}

// fake is the fake Graph server, wherever it runs.
type fake struct {
	started
	counters func() (counters, error)
	close    func() error
}

// fakeServer is the fake with its latency relay, in whichever process runs it.
type fakeServer struct {
	srv   *graphtest.Server
	relay *latency
	info  started
}

func startFakeServer(n int, rtt time.Duration) (*fakeServer, error) {
	srv, total, err := load(n)
	if err != nil {
		return nil, err
	}
	f := &fakeServer{srv: srv, info: started{URL: srv.URL(), CA: srv.RootCAsPEM(), Bytes: total}}
	if rtt > 0 {
		if f.relay, err = startLatency(strings.TrimPrefix(srv.URL(), "https://"), rtt); err != nil {
			srv.Close()
			return nil, err
		}
		f.info.Relay = f.relay.addr()
	}
	return f, nil
}

func (f *fakeServer) close() error {
	var err error
	if f.relay != nil {
		err = f.relay.close()
	}
	f.srv.Close()
	return err
}

// load starts a fake Graph server holding the mailbox with n messages.
func load(n int) (*graphtest.Server, int64, error) {
	srv, err := graphtest.NewServer(nil)
	if err != nil {
		return nil, 0, err
	}
	srv.AddMailbox(address, tenant)
	srv.AddToken(token, graphtest.Principal{User: address, TenantID: tenant, Permissions: []string{"Mail.ReadWrite"}})
	received := time.Now().Add(-time.Duration(n) * time.Second)
	var total int64
	for i := range n {
		mime := benchmail.Message(i, address)
		total += int64(len(mime))
		if _, err := srv.Deliver(address, "inbox", mime, received.Add(time.Duration(i)*time.Second)); err != nil {
			srv.Close()
			return nil, 0, err
		}
	}
	return srv, total, nil
}

func serverCounters(srv *graphtest.Server) (counters, error) {
	peak, err := peakRSS()
	return counters{Requests: srv.Requests(address), Batches: srv.Batches(), Throttled: srv.Throttled(), PeakRSS: peak}, err
}

// serve is the child process: it loads the fake, writes a started line to out,
// then answers each "counters" line of in with a counters line, and stops at
// the end of in (the parent closed it, or died).
func serve(n int, rtt time.Duration, in io.Reader, out io.Writer) error {
	f, err := startFakeServer(n, rtt)
	if err != nil {
		return err
	}
	defer f.close()
	srv := f.srv
	enc := json.NewEncoder(out)
	if err := enc.Encode(f.info); err != nil {
		return err
	}
	lines := bufio.NewScanner(in)
	for lines.Scan() {
		if lines.Text() != "counters" {
			return fmt.Errorf("unknown command %q", lines.Text())
		}
		c, err := serverCounters(srv)
		if err != nil {
			return err
		}
		if err := enc.Encode(c); err != nil {
			return err
		}
	}
	return lines.Err()
}

// startFake runs the fake in a child process (or in this one, with inProcess).
func startFake(n int, rtt time.Duration, inProcess bool) (*fake, error) {
	if inProcess {
		f, err := startFakeServer(n, rtt)
		if err != nil {
			return nil, err
		}
		return &fake{started: f.info, counters: func() (counters, error) { return serverCounters(f.srv) }, close: f.close}, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %s", serveEnv, n, rtt))
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
	stop := func() error {
		_ = stdin.Close() // the child stops at the end of its input
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
	dec := json.NewDecoder(bufio.NewReader(stdout))
	f := &fake{close: stop}
	if err := dec.Decode(&f.started); err != nil {
		_ = stop()
		return nil, fmt.Errorf("start the fake Graph server process: %w", err)
	}
	f.counters = func() (counters, error) {
		var c counters
		if _, err := io.WriteString(stdin, "counters\n"); err != nil {
			return c, err
		}
		return c, dec.Decode(&c)
	}
	return f, nil
}

func run(o options, out io.Writer) error {
	if o.n <= 0 {
		return fmt.Errorf("-n %d: want at least one message", o.n)
	}
	ctx := context.Background()
	loadStart := time.Now()
	srv, err := startFake(o.n, o.rtt, o.inProcess)
	if err != nil {
		return err
	}
	defer srv.close()
	fmt.Fprintf(out, "fake Graph server (%s) loaded with %d messages, %d bytes, in %.1f s\n",
		map[bool]string{true: "in this process", false: "child process"}[o.inProcess], o.n, srv.Bytes, time.Since(loadStart).Seconds())

	dir, err := os.MkdirTemp("", "graphpipeline-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.db == "" {
		o.db = filepath.Join(dir, "serversync.db")
	}
	keyFile := filepath.Join(dir, "secret.key")
	if err := auth.GenerateKeyFile(keyFile); err != nil {
		return err
	}
	keys, err := auth.KeysFromFile(keyFile)
	if err != nil {
		return err
	}
	store, err := sqlite.Open(ctx, o.db, &sqlite.Options{Keys: keys})
	if err != nil {
		return err
	}
	defer store.Close()

	quiet := slog.New(slog.DiscardHandler)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	admin := serversync.NewAdmin(store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil }, Logger: quiet,
	})
	profile, err := admin.CreateProfile(ctx, &serversync.Profile{
		Name: "bench", Owner: "bench-admin", ServerType: serversync.ServerTypeExchangeOnline,
		IncomingServer: srv.URL, OutgoingServer: srv.URL, ExtraRootCAsPEM: srv.CA, ConnectionTimeout: time.Minute,
		IncomingCredentialSource: serversync.CredentialsOAuth, OutgoingCredentialSource: serversync.CredentialsOAuth,
		ClientID: "graphpipeline", TokenURL: "https://login.test/token",
	})
	if err != nil {
		return err
	}
	mailbox, err := admin.CreateMailbox(ctx, &serversync.Mailbox{
		Name: "bench", EmailAddress: address, ProfileID: profile.ID,
		OAuthToken:     serversync.OAuthToken{AccessToken: auth.NewSecret(token), TokenType: "Bearer", Expiry: time.Now().Add(24 * time.Hour)},
		Regarding:      serversync.Regarding{Type: serversync.RegardingUser, ID: "bench-user"},
		IncomingFilter: serversync.FilterAll, OutgoingMethod: serversync.OutgoingNone, ACTMethod: serversync.OutgoingNone,
	})
	if err != nil {
		return err
	}
	if err := admin.Approve(ctx, "bench-admin", mailbox.ID); err != nil {
		return err
	}

	client, err := relayClient(srv.started)
	if err != nil {
		return err
	}
	conn := graph.New(&graph.Options{HTTPClient: client, BatchSize: o.batch, PageSize: o.pageSize, MaxInFlight: o.inFlight, Logger: quiet})
	var tracked, failed atomic.Int64
	progress := make(chan struct{}, 1)
	syncer, err := serversync.NewSyncer(store, serversync.Connectors{
		Incoming: map[serversync.ServerType]serversync.IncomingConnector{serversync.ServerTypeExchangeOnline: conn},
		Outgoing: map[serversync.ServerType]serversync.OutgoingConnector{serversync.ServerTypeExchangeOnline: conn},
	}, &serversync.Config{
		IdleConnections: -1,
		Tick:            50 * time.Millisecond,
		Logger:          logger,
		OnEvent: func(e serversync.Event) {
			switch e.Kind {
			case serversync.EventMailTracked:
				tracked.Add(1)
			case serversync.EventItemFailed:
				failed.Add(1)
			default:
				return
			}
			select {
			case progress <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	if mailbox, err = syncer.TestAndEnable(ctx, mailbox.ID); err != nil {
		return err
	}
	if mailbox.Status != serversync.TestSuccess {
		return fmt.Errorf("test & enable failed: %s", mailbox.Stats.LastError.Message)
	}

	// The figures count from Run: Test & Enable's requests are left out.
	before := conn.Stats()
	serverBefore, err := srv.counters()
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile() // after the figures are taken: it only flushes
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- syncer.Run(ctx) }()
	last := time.Now()
	for tracked.Load()+failed.Load() < int64(o.n) {
		select {
		case err := <-done:
			return fmt.Errorf("the syncer stopped: %w", err)
		case <-progress:
			last = time.Now()
		case <-time.After(time.Second):
			if time.Since(last) > o.stall {
				return fmt.Errorf("stalled at %d of %d messages", tracked.Load()+failed.Load(), o.n)
			}
		}
	}
	elapsed := time.Since(start)
	after := conn.Stats()
	serverAfter, err := srv.counters()
	if err != nil {
		return err
	}
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := syncer.Stop(stopCtx); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, serversync.ErrSyncerStopped) {
		return err
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d messages were stored as failed", n, o.n)
	}
	peak, err := peakRSS()
	if err != nil {
		return err
	}

	n := float64(o.n)
	requests := after.Requests - before.Requests
	items := serverAfter.Requests - serverBefore.Requests
	fmt.Fprintf(out, "%d messages tracked, batch %d, page size %d, in flight %d, round trip +%s\n", tracked.Load(),
		min(cmpOr(o.batch, graph.BatchSizeDefault), 20), cmpOr(o.pageSize, graph.PageSizeDefault), cmpOr(o.inFlight, graph.MaxInFlightDefault), o.rtt)
	fmt.Fprintf(out, "wall %.2f s from Run to the last message tracked: %.0f msgs/s, %.1f MB/s\n",
		elapsed.Seconds(), n/elapsed.Seconds(), float64(srv.Bytes)/1e6/elapsed.Seconds())
	fmt.Fprintf(out, "HTTP requests sent: %d (%.3f per message), %d of them $batch; the fake counted %d (%.3f per message: each $batch item counts)\n",
		requests, float64(requests)/n, after.BatchRequests-before.BatchRequests, items, float64(items)/n)
	fmt.Fprintf(out, "throttled: %d seen by the connector (%.1f s waited), %d answered by the fake\n",
		after.Throttled-before.Throttled, (after.RetryWait - before.RetryWait).Seconds(), serverAfter.Throttled-serverBefore.Throttled)
	if o.inProcess {
		fmt.Fprintf(out, "peak RSS %.1f MB (pipeline and fake together)\n", float64(peak)/(1<<20))
	} else {
		fmt.Fprintf(out, "peak RSS %.1f MB (pipeline; the fake's process: %.1f MB, not counted)\n",
			float64(peak)/(1<<20), float64(serverAfter.PeakRSS)/(1<<20))
	}
	return nil
}

func cmpOr(v, fallback int) int {
	if v > 0 {
		return v
	}
	return fallback
}

// peakRSS reads the process's peak resident set size (VmHWM) in bytes.
func peakRSS() (int64, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}

// relayClient is nil (the connector's own client) without a relay; with one,
// an HTTP client like the connector's own that dials the relay whenever it
// would dial the fake, verifying the fake's certificate as usual.
func relayClient(f started) (*http.Client, error) {
	if f.Relay == "" {
		return nil, nil
	}
	u, err := url.Parse(f.URL)
	if err != nil {
		return nil, err
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM([]byte(f.CA)) {
		return nil, errors.New("no certificate in the fake's CA")
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == u.Host {
				addr = f.Relay
			}
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 30 * time.Second,
	}
	return &http.Client{Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}
