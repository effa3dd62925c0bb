// Command syncerpipeline tracks every message of one IMAP inbox into a fresh
// SQLite store (or, with -postgres, a fresh schema of a PostgreSQL database, dropped
// after) through the whole incoming pipeline of a Syncer (fetch, parse,
// correlate, filter, store once): the job bench/imap-vs-mbsync times beside mbsync
// and bench/imapfetch, on the same folder.
//
// It creates a profile and one mailbox for the login, runs Test & Enable, runs
// the Syncer until it has tracked as many messages as the folder holds, and
// prints the count and bytes like bench/imapfetch, then messages/s and MB/s from
// Run to the last message tracked, and the peak RSS of the process.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/imapconn"
	"github.com/serversync/serversync/store/sqlite"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:993", "IMAP server, implicit TLS")
	user := flag.String("user", "", "login, also the mailbox's email address")
	password := flag.String("pass", "", "password")
	caFile := flag.String("ca", "", "PEM file of an extra CA to trust")
	db := flag.String("db", "", "SQLite file to create (default: in a temporary directory, removed after)")
	parallel := flag.Int("parallel", 1, "connections for the initial fetch (imapconn.Options.MaxParallelFetch)")
	saveBatch := flag.Int("save-batch", 0, "messages stored per transaction at most (0: serversync.SaveBatchDefault)")
	saveBatchKB := flag.Int64("save-batch-kb", 0, "KiB of mail stored per transaction at most (0: serversync.SaveBatchBytesDefault)")
	stall := flag.Duration("stall", time.Minute, "give up when no message is tracked for this long")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the sync (from Run on) to this file")
	cacheMB := flag.Int64("sqlite-cache", 0, "SQLite page cache per connection, MB (0: sqlite.CacheSizeDefault)")
	memProfile := flag.String("memprofile", "", "write a heap profile to this file mid-sync, when half the messages are tracked")
	blockProfile := flag.String("blockprofile", "", "write a profile of where goroutines waited (channels, locks) during the sync to this file")
	pgURL := flag.String("postgres", "", "store in this PostgreSQL database instead, in a fresh schema dropped after")
	flag.Parse()
	if err := run(*addr, *user, *password, *caFile, *db, *pgURL, *cpuProfile, *memProfile, *blockProfile, *parallel, *saveBatch, *saveBatchKB<<10, *stall, *cacheMB<<20); err != nil {
		fmt.Fprintln(os.Stderr, "syncerpipeline:", err)
		os.Exit(1)
	}
}

func run(addr, user, password, caFile, db, pgURL, cpuProfile, memProfile, blockProfile string, parallel, saveBatch int, saveBatchBytes int64, stall time.Duration, cacheSize int64) error {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return err
	}
	var ca []byte
	if caFile != "" {
		if ca, err = os.ReadFile(caFile); err != nil {
			return err
		}
	}
	ctx := context.Background()
	want, wantBytes, err := folderSize(addr, host, user, password, ca)
	if err != nil {
		return fmt.Errorf("count the inbox: %w", err)
	}

	dir, err := os.MkdirTemp("", "syncerpipeline-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if db == "" {
		db = filepath.Join(dir, "serversync.db")
	}
	keyFile := filepath.Join(dir, "secret.key")
	if err := auth.GenerateKeyFile(keyFile); err != nil {
		return err
	}
	keys, err := auth.KeysFromFile(keyFile)
	if err != nil {
		return err
	}
	var store serversync.Store
	if pgURL != "" {
		if openPostgres == nil {
			return errors.New("-postgres: this binary was built with the tag imapsqlite")
		}
		pg, closePostgres, err := openPostgres(ctx, pgURL, keys)
		if err != nil {
			return err
		}
		defer closePostgres()
		store = pg
	} else {
		lite, err := sqlite.Open(ctx, db, &sqlite.Options{Keys: keys, CacheSize: cacheSize})
		if err != nil {
			return err
		}
		defer lite.Close()
		store = lite
	}

	quiet := slog.New(slog.DiscardHandler)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	admin := serversync.NewAdmin(store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil }, Logger: quiet,
	})
	profile, err := admin.CreateProfile(ctx, &serversync.Profile{
		Name: "bench", Owner: "bench-admin", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: host, IncomingPort: port, IncomingTLS: serversync.TLSImplicit,
		OutgoingServer: host, ExtraRootCAsPEM: string(ca), ConnectionTimeout: time.Minute,
	})
	if err != nil {
		return err
	}
	mailbox, err := admin.CreateMailbox(ctx, &serversync.Mailbox{
		Name: "bench", EmailAddress: user, ProfileID: profile.ID, Password: auth.NewSecret(password),
		Regarding:      serversync.Regarding{Type: serversync.RegardingUser, ID: "bench-user"},
		IncomingFilter: serversync.FilterAll, OutgoingMethod: serversync.OutgoingNone, ACTMethod: serversync.OutgoingNone,
	})
	if err != nil {
		return err
	}
	if err := admin.Approve(ctx, "bench-admin", mailbox.ID); err != nil {
		return err
	}

	var tracked, failed atomic.Int64
	progress := make(chan struct{}, 1)
	syncer, err := serversync.NewSyncer(store, connectors(&imapconn.Options{MaxParallelFetch: parallel}, quiet), &serversync.Config{
		IdleConnections: -1, // the job is the initial sync; IDLE is measured in bench/syncerbench
		SaveBatch:       saveBatch,
		SaveBatchBytes:  saveBatchBytes,
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

	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile() // after the figures are taken: it only flushes
	}
	if blockProfile != "" {
		runtime.SetBlockProfileRate(int(10 * time.Microsecond)) // waits of 10 µs and more, sampled
		defer func() {
			if err := writeProfile("block", blockProfile); err != nil {
				fmt.Fprintln(os.Stderr, "syncerpipeline:", err)
			}
		}()
	}
	var memBefore runtime.MemStats
	runtime.ReadMemStats(&memBefore)
	started := time.Now()
	done := make(chan error, 1)
	go func() { done <- syncer.Run(ctx) }()
	last := time.Now()
	for tracked.Load()+failed.Load() < int64(want) {
		if memProfile != "" && tracked.Load() >= int64(want/2) {
			if err := writeProfile("heap", memProfile); err != nil {
				return err
			}
			memProfile = ""
		}
		select {
		case err := <-done:
			return fmt.Errorf("the syncer stopped: %w", err)
		case <-progress:
			last = time.Now()
		case <-time.After(time.Second):
			if time.Since(last) > stall {
				return fmt.Errorf("stalled at %d of %d messages", tracked.Load()+failed.Load(), want)
			}
		}
	}
	elapsed := time.Since(started)
	var memAfter runtime.MemStats
	runtime.ReadMemStats(&memAfter)
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := syncer.Stop(stopCtx); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, serversync.ErrSyncerStopped) {
		return err
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d messages were stored as failed", n, want)
	}

	peak, err := statusKB("VmHWM")
	if err != nil {
		return err
	}
	anon, _ := statusKB("RssAnon")
	file, _ := statusKB("RssFile")
	fmt.Printf("%d messages, %d bytes\n", tracked.Load(), wantBytes)
	fmt.Printf("%.0f msgs/s, %.1f MB/s, peak RSS %.1f MB (%.2f s from Run to the last message tracked)\n",
		float64(want)/elapsed.Seconds(), float64(wantBytes)/1e6/elapsed.Seconds(), float64(peak)/(1<<20), elapsed.Seconds())
	if pgURL == "" {
		var size int64
		for _, suffix := range []string{"", "-wal"} {
			if fi, err := os.Stat(db + suffix); err == nil {
				size += fi.Size()
			}
		}
		fmt.Printf("SQLite file and WAL: %.1f MB\n", float64(size)/1e6)
	}
	// What the peak was made of, roughly: anonymous memory (Go heap, stacks,
	// SQLite's allocations) and file pages (the program's own code and data).
	fmt.Printf("RSS at the end: %.1f MB anonymous, %.1f MB file-backed\n", float64(anon)/(1<<20), float64(file)/(1<<20))
	fmt.Printf("Go heap: %.0f MB allocated in %d allocations (%.1f KB, %.0f per message), %.1f MB in use at the end\n",
		float64(memAfter.TotalAlloc-memBefore.TotalAlloc)/1e6, memAfter.Mallocs-memBefore.Mallocs,
		float64(memAfter.TotalAlloc-memBefore.TotalAlloc)/1e3/float64(want), float64(memAfter.Mallocs-memBefore.Mallocs)/float64(want),
		float64(memAfter.HeapInuse)/(1<<20))
	return nil
}

// folderSize returns how many messages the inbox holds and their total size
// (RFC822.SIZE), over a connection of its own, before the Syncer starts.
func folderSize(addr, host, user, password string, ca []byte) (int, int64, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if len(ca) > 0 && !roots.AppendCertsFromPEM(ca) {
		return 0, 0, errors.New("no certificate in the CA file")
	}
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: roots, ServerName: host}})
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return 0, 0, err
	}
	data, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return 0, 0, err
	}
	var total int64
	if data.NumMessages > 0 {
		var all imap.SeqSet
		all.AddRange(1, 0)
		msgs, err := c.Fetch(all, &imap.FetchOptions{RFC822Size: true}).Collect()
		if err != nil {
			return 0, 0, err
		}
		for _, m := range msgs {
			total += m.RFC822Size
		}
	}
	return int(data.NumMessages), total, c.Logout().Wait()
}

// writeProfile writes the named runtime/pprof profile to path.
func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = pprof.Lookup(name).WriteTo(f, 0)
	return errors.Join(err, f.Close())
}

// The binary bench/imap-vs-mbsync times on SQLite is built with the tag
// imapsqlite: what a host syncing IMAP mailboxes into SQLite would build, without
// a PostgreSQL driver and the Exchange and DAV connectors it never uses (their code
// is mapped into the resident set with the rest: 2.5 MB of peak RSS). Built
// without it, the program also stores into PostgreSQL (full.go).
var (
	// openPostgres opens a fresh schema of a PostgreSQL database and returns a
	// function that closes it and drops the schema; nil with the tag imapsqlite.
	openPostgres func(ctx context.Context, url string, keys auth.KeyProvider) (serversync.Store, func(), error)
	// connectors returns the Syncer's connectors.
	connectors func(imap *imapconn.Options, logger *slog.Logger) serversync.Connectors
)

// statusKB reads a size field of /proc/self/status (VmHWM: the peak resident set
// size; RssAnon, RssFile: what it is now made of) in bytes.
func statusKB(field string) (int64, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}
