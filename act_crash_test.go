package serversync_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/dav"
	"github.com/serversync/serversync/internal/childtest"
	"github.com/serversync/serversync/internal/davdemo"
	"github.com/serversync/serversync/store/sqlite"
	"github.com/serversync/serversync/store/storetest"
)

// The ACT crash test kills a Syncer process (this test binary, running
// TestACTCrashChild) with SIGKILL at the points where ACT could do something
// twice, then lets a last child finish:
//
//   - after the server's changes were read and before the store applied them:
//     they are read again, and a server item becomes one record, not two;
//   - after a host item was written to the server and before the store
//     recorded it (MarkACTPushed): the next sync finds the item by its UID and
//     takes it over, so the server holds it once;
//   - after a batch of server changes and its cursor were stored and before the
//     host was told (OnACTChange): the store has the change, once.
//
// The child blocks at the chosen point, after writing a marker file, and the
// parent kills it there: the kills land exactly where they are meant to.
func TestACTCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("the ACT crash test kills child processes; skipped with -short")
	}
	ctx := context.Background()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	require.NoError(t, auth.GenerateKeyFile(keyFile))
	keys, err := auth.KeysFromFile(keyFile)
	require.NoError(t, err)
	dbPath := filepath.Join(dir, "act.db")

	demo := davdemo.New("alice", "alice-secret")
	srv := httptest.NewServer(demo)
	defer srv.Close()
	store, err := sqlite.Open(ctx, dbPath, &sqlite.Options{Keys: keys})
	require.NoError(t, err)
	defer store.Close()
	e := newACTEnvAt(t, store, srv.URL+"/", "alice", "alice-secret")
	e.demo = demo
	e.enable(t)
	s, other := e.syncer(t), e.session(t)

	// A host item to push, and a server item to bring in.
	hostRec, err := s.SaveACTItem(ctx, "", newAppointment(e, "from the host"))
	require.NoError(t, err)
	serverItem := newAppointment(e, "from the server")
	serverItem.UID = "server-" + serversync.NewID()
	require.NoError(t, other.Put(ctx, serverItem, ""))

	child := func(block string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestACTCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SERVERSYNC_ACTCRASH_DB="+dbPath, "SERVERSYNC_ACTCRASH_KEY="+keyFile,
			"SERVERSYNC_ACTCRASH_MAILBOX="+e.mailbox.ID, "SERVERSYNC_ACTCRASH_BLOCK="+block, "SERVERSYNC_ACTCRASH_MARK="+filepath.Join(dir, block+".mark"))
		cmd.Stdout = childtest.Output("act crash child")
		cmd.Stderr = cmd.Stdout
		return cmd
	}
	killAt := func(block string) {
		t.Helper()
		cmd := child(block)
		require.NoError(t, cmd.Start())
		mark := filepath.Join(dir, block+".mark")
		deadline := time.Now().Add(60 * time.Second)
		for {
			if _, err := os.Stat(mark); err == nil {
				break
			}
			require.True(t, time.Now().Before(deadline), "the child reached %s", block)
			time.Sleep(20 * time.Millisecond)
		}
		require.NoError(t, cmd.Process.Kill()) // SIGKILL: no cleanup, no lease release
		_ = cmd.Wait()
	}

	killAt("apply") // read the server item, stored nothing
	assert.Empty(t, e.records(t, serversync.KindAppointment, serverItem.UID), "nothing was stored")

	killAt("push") // stored the server item, wrote the host item, did not record it
	assert.Len(t, onServer(t, other, serversync.KindAppointment, hostRec.UID), 1, "the push reached the server")
	assert.True(t, e.record(t, hostRec.ID).Pending, "and was not recorded")
	assert.Len(t, e.records(t, serversync.KindAppointment, serverItem.UID), 1)

	editOnServer(t, other, serverItem.UID, "from the server, edited")
	killAt("applied") // stored the edit and the cursor, told nobody

	final := child("")
	require.NoError(t, final.Run(), "the last child finishes the work")

	for _, uid := range []string{hostRec.UID, serverItem.UID} {
		assert.Len(t, onServer(t, other, serversync.KindAppointment, uid), 1, "one server item with UID %s", uid)
		assert.Len(t, e.records(t, serversync.KindAppointment, uid), 1, "one record with UID %s", uid)
	}
	assert.Equal(t, 2, demo.Count("events"), "nothing else on the server")
	all := storetest.Collect(t, store.ListACTRecords(ctx, serversync.ACTRecordFilter{MailboxID: e.mailbox.ID}))
	assert.Len(t, all, 2, "nothing else in the store")
	for _, r := range all {
		assert.False(t, r.Pending, "record %s pushed", r.ID)
	}
	edited := e.records(t, serversync.KindAppointment, serverItem.UID)[0]
	assert.Equal(t, "from the server, edited", decodeAppointment(t, edited).Subject)
	assert.Empty(t, storetest.Collect(t, store.ListACTConflicts(ctx, e.mailbox.ID)), "taking over its own push is no conflict")
}

// blockingACTStore blocks the child once at the point the parent kills it.
type blockingACTStore struct {
	*sqlite.Store
	block, mark string
	blocked     atomic.Bool
}

func (s *blockingACTStore) stop() {
	if s.blocked.CompareAndSwap(false, true) {
		_ = os.WriteFile(s.mark, nil, 0o600)
		select {} // until killed
	}
}

func (s *blockingACTStore) ApplyACTChanges(ctx context.Context, a serversync.ACTApply) ([]*serversync.ACTRecord, error) {
	if s.block == "apply" && len(a.Writes) > 0 {
		s.stop()
	}
	out, err := s.Store.ApplyACTChanges(ctx, a)
	if err == nil && s.block == "applied" && len(a.Writes) > 0 {
		s.stop()
	}
	return out, err
}

func (s *blockingACTStore) MarkACTPushed(ctx context.Context, id string, version int64, serverID, changeKey string) (*serversync.ACTRecord, error) {
	if s.block == "push" {
		s.stop()
	}
	return s.Store.MarkACTPushed(ctx, id, version, serverID, changeKey)
}

// TestACTCrashChild is the child process of TestACTCrashRecovery; it does
// nothing when run on its own. With a block point it runs until killed there;
// without, until every record is pushed and a sync after that went through.
func TestACTCrashChild(t *testing.T) {
	dbPath := os.Getenv("SERVERSYNC_ACTCRASH_DB")
	if dbPath == "" {
		t.Skip("child process of TestACTCrashRecovery")
	}
	ctx := context.Background()
	keys, err := auth.KeysFromFile(os.Getenv("SERVERSYNC_ACTCRASH_KEY"))
	require.NoError(t, err)
	inner, err := sqlite.Open(ctx, dbPath, &sqlite.Options{Keys: keys})
	require.NoError(t, err)
	defer inner.Close()
	store := &blockingACTStore{Store: inner, block: os.Getenv("SERVERSYNC_ACTCRASH_BLOCK"), mark: os.Getenv("SERVERSYNC_ACTCRASH_MARK")}
	var synced atomic.Int32
	s, err := serversync.NewSyncer(store, serversync.Connectors{
		ACT: map[serversync.ServerType]serversync.ACTConnector{serversync.ServerTypeIMAPSMTP: &dav.Connector{}},
	}, &serversync.Config{
		LeaseTTL: 2 * time.Second, Tick: 20 * time.Millisecond, ScanInterval: 50 * time.Millisecond,
		ActivePoll: 100 * time.Millisecond, IdleConnections: -1, Logger: slog.New(slog.DiscardHandler),
		OnEvent: func(ev serversync.Event) {
			if ev.Kind == serversync.EventACTSynced {
				if ev.Err != nil {
					t.Logf("ACT sync failed: %v", ev.Err)
				} else {
					synced.Add(1)
				}
			}
		},
	})
	require.NoError(t, err)
	runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	if store.block != "" {
		<-done // until killed
		return
	}
	for {
		pending := true
		left := len(storetest.Collect(t, store.ListACTRecords(ctx, serversync.ACTRecordFilter{
			MailboxID: os.Getenv("SERVERSYNC_ACTCRASH_MAILBOX"), Pending: &pending})))
		if left == 0 && synced.Load() >= 2 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("syncer ended early: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	stopCtx, cancelStop := context.WithTimeout(ctx, 10*time.Second)
	defer cancelStop()
	require.NoError(t, s.Stop(stopCtx))
	if err := <-done; !errors.Is(err, serversync.ErrSyncerStopped) {
		t.Fatal(err)
	}
}
