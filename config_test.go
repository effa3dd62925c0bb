package serversync_test

import (
	"context"
	"iter"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/store/memory"
)

// NewSyncer refuses what would make a Syncer start and then fail every mailbox,
// naming the field and how to fix it.
func TestNewSyncerRefusesInvalidConfig(t *testing.T) {
	conns := standard.Connectors(&standard.Options{Logger: slog.New(slog.DiscardHandler)})
	for _, tc := range []struct {
		name  string
		cfg   serversync.Config
		field string
	}{
		{"negative Workers", serversync.Config{Workers: -1}, "Workers"},
		{"negative LeaseBatch", serversync.Config{LeaseBatch: -1}, "LeaseBatch"},
		{"negative MaxTransientFailures", serversync.Config{MaxTransientFailures: -1}, "MaxTransientFailures"},
		{"negative MaxSendAttempts", serversync.Config{MaxSendAttempts: -3}, "MaxSendAttempts"},
		{"negative SaveBatch", serversync.Config{SaveBatch: -1}, "SaveBatch"},
		{"negative SaveBatchBytes", serversync.Config{SaveBatchBytes: -1}, "SaveBatchBytes"},
		{"negative MaxMessageSize", serversync.Config{MaxMessageSize: -1}, "MaxMessageSize"},
		{"negative LeaseTTL", serversync.Config{LeaseTTL: -time.Second}, "LeaseTTL"},
		{"negative ShutdownLeaseGrace", serversync.Config{ShutdownLeaseGrace: -time.Second}, "ShutdownLeaseGrace"},
		{"negative ConnectionSlotTTL", serversync.Config{ConnectionSlotTTL: -time.Second}, "ConnectionSlotTTL"},
		{"negative ActivePoll", serversync.Config{ActivePoll: -time.Second}, "ActivePoll"},
		{"negative MaxIdlePoll", serversync.Config{MaxIdlePoll: -time.Second}, "MaxIdlePoll"},
		{"negative RetryInterval", serversync.Config{RetryInterval: -time.Second}, "RetryInterval"},
		{"negative MassFailureWindow", serversync.Config{MassFailureWindow: -time.Second}, "MassFailureWindow"},
		{"negative IdleWindow", serversync.Config{IdleWindow: -time.Second}, "IdleWindow"},
		{"negative OutboxInterval", serversync.Config{OutboxInterval: -time.Second}, "OutboxInterval"},
		{"negative OutboxClaimTTL", serversync.Config{OutboxClaimTTL: -time.Second}, "OutboxClaimTTL"},
		{"negative MaxSendWait", serversync.Config{MaxSendWait: -time.Second}, "MaxSendWait"},
		{"negative ScanInterval", serversync.Config{ScanInterval: -time.Second}, "ScanInterval"},
		{"negative Tick", serversync.Config{Tick: -time.Second}, "Tick"},
		{"LeaseTTL too short for the heartbeat", serversync.Config{LeaseTTL: 10 * time.Millisecond}, "LeaseTTL"},
		{"OutboxClaimTTL too short for the heartbeat", serversync.Config{OutboxClaimTTL: 10 * time.Millisecond}, "OutboxClaimTTL"},
		{"MaxIdlePoll below ActivePoll", serversync.Config{ActivePoll: time.Hour, MaxIdlePoll: time.Minute}, "MaxIdlePoll"},
		{"MaxIdlePoll below the default ActivePoll", serversync.Config{MaxIdlePoll: time.Minute}, "MaxIdlePoll"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := serversync.NewSyncer(memory.New(), conns, &tc.cfg)
			require.Error(t, err)
			assert.Nil(t, s)
			var invalid *serversync.ValidationError
			require.ErrorAs(t, err, &invalid)
			assert.Equal(t, "Config", invalid.Entity)
			assert.Equal(t, tc.field, invalid.Field)
			assert.Contains(t, err.Error(), "serversync: invalid Config."+tc.field+": ")
			assert.Regexp(t, `use|set`, invalid.Reason, "the message says how to fix it")
		})
	}

	t.Run("no store", func(t *testing.T) {
		_, err := serversync.NewSyncer(nil, conns, nil)
		assert.ErrorContains(t, err, "needs a Store: pass one of the stores")
	})
	t.Run("no connectors", func(t *testing.T) {
		for _, none := range []serversync.Connectors{{}, {
			Incoming: map[serversync.ServerType]serversync.IncomingConnector{},
			Outgoing: map[serversync.ServerType]serversync.OutgoingConnector{},
		}} {
			_, err := serversync.NewSyncer(memory.New(), none, nil)
			var invalid *serversync.ValidationError
			require.ErrorAs(t, err, &invalid)
			assert.Equal(t, "Connectors", invalid.Field)
			assert.ErrorContains(t, err, "pass standard.Connectors(nil)")
		}
	})
	t.Run("valid", func(t *testing.T) {
		for _, cfg := range []*serversync.Config{nil, {}, {IdleConnections: -1}, {LeaseTTL: 60 * time.Millisecond}, {ActivePoll: time.Second, MaxIdlePoll: time.Second}} {
			_, err := serversync.NewSyncer(memory.New(), conns, cfg)
			assert.NoError(t, err, "%+v", cfg)
		}
		// Outgoing connectors alone are a Syncer that only sends.
		_, err := serversync.NewSyncer(memory.New(), serversync.Connectors{Outgoing: conns.Outgoing}, nil)
		assert.NoError(t, err)
	})
}

func TestNewAdminRefusesNoStore(t *testing.T) {
	assert.PanicsWithValue(t, "serversync: NewAdmin needs a Store: pass one of the stores under store/ (memory, sqlite, postgres) or your own",
		func() { serversync.NewAdmin(nil, nil) })
}

func TestMaxTransientFailuresConfig(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	s := e.syncer(t, &serversync.Config{MaxTransientFailures: 2})
	testAndEnable(t, s, alice)
	require.NoError(t, e.demo.Close()) // connection refused: transient
	run(t, s)
	eventually(t, "the first failure", func() bool {
		m, err := e.store.GetMailbox(context.Background(), alice.ID)
		return err == nil && m.Stats.TransientFailureCount == 1
	})
	m, err := e.store.GetMailbox(context.Background(), alice.ID)
	require.NoError(t, err)
	require.True(t, m.IncomingEnabled)
	e.clock.Advance(serversync.RetryIntervalDefault)
	eventually(t, "disabled after the second, not the tenth", func() bool {
		m, err := e.store.GetMailbox(context.Background(), alice.ID)
		return err == nil && !m.IncomingEnabled && m.Stats.TransientFailureCount == 2
	})
}

// recordingStore records what the Syncer asks of the store that the Config
// fields under test decide.
type recordingStore struct {
	serversync.Store
	mu             sync.Mutex
	leaseLimits    []int
	claimLimits    []int
	releaseLeft    []time.Duration // time left on the context of each ReleaseLease
	massAlertSince []time.Time     // AlertFilter.Since of the profile owner's error alerts
}

func (r *recordingStore) AcquireLeases(ctx context.Context, req serversync.LeaseRequest) ([]serversync.Lease, error) {
	r.mu.Lock()
	r.leaseLimits = append(r.leaseLimits, req.Limit)
	r.mu.Unlock()
	return r.Store.AcquireLeases(ctx, req)
}

func (r *recordingStore) ClaimOutgoing(ctx context.Context, req serversync.ClaimRequest) ([]*serversync.EmailActivity, error) {
	r.mu.Lock()
	r.claimLimits = append(r.claimLimits, req.Limit)
	r.mu.Unlock()
	return r.Store.ClaimOutgoing(ctx, req)
}

func (r *recordingStore) ReleaseLease(ctx context.Context, lease serversync.Lease, next time.Time) error {
	if deadline, ok := ctx.Deadline(); ok {
		r.mu.Lock()
		r.releaseLeft = append(r.releaseLeft, time.Until(deadline))
		r.mu.Unlock()
	}
	return r.Store.ReleaseLease(ctx, lease, next)
}

func (r *recordingStore) ListAlerts(ctx context.Context, f serversync.AlertFilter) iter.Seq2[*serversync.Alert, error] {
	if f.Level == serversync.AlertError && f.ProfileID != "" && f.Recipient == "admin-user" {
		r.mu.Lock()
		r.massAlertSince = append(r.massAlertSince, f.Since)
		r.mu.Unlock()
	}
	return r.Store.ListAlerts(ctx, f)
}

func (r *recordingStore) snapshot() recordingStore {
	r.mu.Lock()
	defer r.mu.Unlock()
	return recordingStore{
		leaseLimits: append([]int(nil), r.leaseLimits...), claimLimits: append([]int(nil), r.claimLimits...),
		releaseLeft: append([]time.Duration(nil), r.releaseLeft...), massAlertSince: append([]time.Time(nil), r.massAlertSince...),
	}
}

func TestLeaseBatchConfig(t *testing.T) {
	e := newSyncEnv(t, nil)
	store := &recordingStore{Store: e.store}
	e.store = store
	s := e.syncer(t, &serversync.Config{LeaseBatch: 3})
	run(t, s)
	eventually(t, "leases and claims asked for", func() bool {
		got := store.snapshot()
		return len(got.leaseLimits) > 0 && len(got.claimLimits) > 0
	})
	got := store.snapshot()
	for _, limit := range append(got.leaseLimits, got.claimLimits...) {
		assert.Equal(t, 3, limit, "LeaseBatch, not the default %d, with all %d workers free", serversync.LeaseBatchDefault, serversync.WorkersDefault)
	}
}

func TestShutdownLeaseGraceConfig(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	store := &recordingStore{Store: e.store}
	e.store = store
	s := e.syncer(t, &serversync.Config{ShutdownLeaseGrace: time.Hour})
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "a lease released", func() bool { return len(store.snapshot().releaseLeft) > 0 })
	for _, left := range store.snapshot().releaseLeft {
		// The default is 10 s: anything near an hour is the field's.
		assert.Greater(t, left, 30*time.Minute)
	}
}

func TestMassFailureWindowConfig(t *testing.T) {
	e := newSyncEnv(t, func(p *serversync.Profile) { p.SendAlertOnMassFailure = true })
	alice := e.mailbox(t, "alice", nil)
	store := &recordingStore{Store: e.store}
	e.store = store
	s := e.syncer(t, &serversync.Config{MassFailureWindow: 3 * time.Hour})
	testAndEnable(t, s, alice)
	require.NoError(t, e.demo.Close())
	run(t, s)
	eventually(t, "the mass failure alert", func() bool {
		for _, a := range e.alerts(t, serversync.AlertFilter{Recipient: "admin-user", Level: serversync.AlertError}) {
			if a.Code == serversync.CodeMassFailure {
				assert.Contains(t, a.Message, "failed within the last 3h0m0s")
				return true
			}
		}
		return false
	})
	since := store.snapshot().massAlertSince
	require.NotEmpty(t, since)
	assert.Equal(t, e.clock.Now().Add(-3*time.Hour), since[0], "earlier alerts looked for within the window")
}

// slotRecordingStore is the memory store, connection slots included, recording the
// TTL each connection slot is asked for.
type slotRecordingStore struct {
	*memory.Store
	mu   sync.Mutex
	ttls []time.Duration
}

func (r *slotRecordingStore) AcquireConnectionSlot(ctx context.Context, req serversync.ConnectionSlotRequest) (serversync.ConnectionSlot, bool, error) {
	r.mu.Lock()
	r.ttls = append(r.ttls, req.TTL)
	r.mu.Unlock()
	return r.Store.AcquireConnectionSlot(ctx, req)
}

func TestConnectionSlotTTLConfig(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	store := &slotRecordingStore{Store: e.store.(*memory.Store)}
	e.store = store
	s := e.syncer(t, &serversync.Config{ConnectionSlotTTL: 7 * time.Second})
	testAndEnable(t, s, alice)
	store.mu.Lock()
	defer store.mu.Unlock()
	require.NotEmpty(t, store.ttls, "Test & Enable took connection slots in the store")
	for _, ttl := range store.ttls {
		assert.Equal(t, 7*time.Second, ttl, "the field's, not the default %v", serversync.ConnectionSlotTTLDefault)
	}
}
