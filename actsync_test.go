package serversync_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/dav"
	"github.com/serversync/serversync/internal/davdemo"
	"github.com/serversync/serversync/store/memory"
	"github.com/serversync/serversync/store/storetest"
)

// actEnv is a store, a profile whose ACTServerURL is a CalDAV/CardDAV server
// (the in-process davdemo, or a real one) and an ACT-only mailbox on it.
type actEnv struct {
	actHarness
	admin   *serversync.Admin
	profile *serversync.Profile
	demo    *davdemo.Server // nil on a real server
	url     string
	user    string
	pass    string
}

// actHarness is what the ACT sync tests share whatever the server: the store and
// the mailbox, the Syncers they run (newSyncer), and what those reported.
type actHarness struct {
	store     serversync.Store
	mailbox   *serversync.Mailbox
	newSyncer func(t *testing.T, cfg *serversync.Config) *serversync.Syncer

	mu      sync.Mutex
	events  []serversync.Event
	changes []serversync.ACTRecordChange
}

// syncer returns a new Syncer whose events and ACT changes h records.
func (h *actHarness) syncer(t *testing.T) *serversync.Syncer {
	t.Helper()
	return h.newSyncer(t, &serversync.Config{
		Logger: testLogger(), Tick: 10 * time.Millisecond, ScanInterval: 20 * time.Millisecond, IdleConnections: -1,
		OnEvent: func(ev serversync.Event) {
			h.mu.Lock()
			h.events = append(h.events, ev)
			h.mu.Unlock()
		},
		OnACTChange: func(_ context.Context, c serversync.ACTRecordChange) {
			h.mu.Lock()
			h.changes = append(h.changes, c)
			h.mu.Unlock()
		},
	})
}

// enable runs Test & Enable and requires ACT to pass.
func (h *actHarness) enable(t *testing.T) {
	t.Helper()
	m, err := h.syncer(t).TestAndEnable(context.Background(), h.mailbox.ID)
	require.NoError(t, err)
	require.Equal(t, serversync.TestSuccess, m.ACTStatus, "ACT test: %+v", m.Stats.LastError)
	require.True(t, m.ACTEnabled)
}

// syncOnce runs a new Syncer until it finished one ACT sync of the mailbox, and
// returns that sync's error.
func (h *actHarness) syncOnce(t *testing.T) error {
	t.Helper()
	ctx := context.Background()
	_, err := h.store.UpdateMailbox(ctx, h.mailbox.ID, func(m *serversync.Mailbox) error {
		m.NextSyncAt = time.Now().Add(-time.Second)
		return nil
	})
	require.NoError(t, err)
	h.mu.Lock()
	seen := len(h.events)
	h.mu.Unlock()
	s := h.syncer(t)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var synced serversync.Event
	eventually(t, "an ACT sync", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, ev := range h.events[seen:] {
			if ev.Kind == serversync.EventACTSynced && ev.MailboxID == h.mailbox.ID {
				synced = ev
				return true
			}
		}
		return false
	})
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, s.Stop(stopCtx))
	require.ErrorIs(t, <-done, serversync.ErrSyncerStopped)
	return synced.Err
}

// newACTEnv serves davdemo in process.
func newACTEnv(t *testing.T) *actEnv {
	t.Helper()
	demo := davdemo.New("alice", "alice-secret")
	srv := httptest.NewServer(demo)
	t.Cleanup(srv.Close)
	e := newACTEnvAt(t, memory.New(), srv.URL+"/", "alice", "alice-secret")
	e.demo = demo
	return e
}

// newACTEnvAt uses the DAV server at url, with store.
func newACTEnvAt(t *testing.T, store serversync.Store, url, user, pass string) *actEnv {
	t.Helper()
	ctx := context.Background()
	e := &actEnv{url: url, user: user, pass: pass}
	e.store = store
	e.newSyncer = func(t *testing.T, cfg *serversync.Config) *serversync.Syncer {
		t.Helper()
		cfg.ActivePoll = 20 * time.Millisecond
		s, err := serversync.NewSyncer(e.store, serversync.Connectors{
			ACT: map[serversync.ServerType]serversync.ACTConnector{serversync.ServerTypeIMAPSMTP: &dav.Connector{}},
		}, cfg)
		require.NoError(t, err)
		return s
	}
	e.admin = serversync.NewAdmin(e.store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil },
		Logger:     slog.New(slog.DiscardHandler),
	})
	_, err := e.admin.UpdateOrgSettings(ctx, func(o *serversync.OrgSettings) {
		// The DAV servers of the tests listen on loopback over plain HTTP.
		o.AllowNonSSLEmail, o.AllowCredentialsOverNonSecureChannels = true, true
	})
	require.NoError(t, err)
	e.profile, err = e.admin.CreateProfile(ctx, &serversync.Profile{
		Name: "dav", Owner: "admin-user", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: "imap.example.test", OutgoingServer: "smtp.example.test",
		ACTServerURL: url, ConnectionTimeout: 10 * time.Second,
	})
	require.NoError(t, err)
	e.mailbox = approvedMailbox(t, e.admin, e.store, e.profile.ID, "alice", func(m *serversync.Mailbox) {
		m.IncomingMethod, m.OutgoingMethod, m.ACTMethod = serversync.IncomingNone, serversync.OutgoingNone, serversync.OutgoingServerSideSync
		m.Username, m.Password = user, auth.NewSecret(pass)
	})
	return e
}

// session opens a DAV session as another client of the account would.
func (e *actEnv) session(t *testing.T) serversync.ACTSession {
	t.Helper()
	target := &serversync.Target{MailboxID: "other-client",
		Endpoint:    serversync.Endpoint{URL: e.url, Timeout: 10 * time.Second, TLS: serversync.TLSNone, AllowPlaintextAuth: true},
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: e.user, Password: auth.NewSecret(e.pass)}}
	s, err := (&dav.Connector{}).OpenACT(context.Background(), target)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// onServer returns the server's items of kind with uid.
func onServer(t *testing.T, s serversync.ACTSession, kind serversync.ACTKind, uid string) []serversync.ACTItem {
	t.Helper()
	ch, err := s.Changes(context.Background(), kind, nil)
	require.NoError(t, err)
	var out []serversync.ACTItem
	for _, c := range ch.Changes {
		if !c.Deleted && c.Item.Header().UID == uid {
			out = append(out, c.Item)
		}
	}
	return out
}

func (e *actEnv) records(t *testing.T, kind serversync.ACTKind, uid string) []*serversync.ACTRecord {
	t.Helper()
	return storetest.Collect(t, e.store.(serversync.ACTStore).ListACTRecords(context.Background(),
		serversync.ACTRecordFilter{MailboxID: e.mailbox.ID, Kind: kind, UID: uid}))
}

func (e *actEnv) record(t *testing.T, id string) *serversync.ACTRecord {
	t.Helper()
	r, err := e.store.(serversync.ACTStore).GetACTRecord(context.Background(), id)
	require.NoError(t, err)
	return r
}

func decodeAppointment(t *testing.T, r *serversync.ACTRecord) *serversync.Appointment {
	t.Helper()
	item, err := r.Decode()
	require.NoError(t, err)
	return item.(*serversync.Appointment)
}

func newAppointment(e *actEnv, subject string) *serversync.Appointment {
	start := time.Date(2026, 12, 10, 9, 0, 0, 0, time.UTC)
	return &serversync.Appointment{ACTHeader: serversync.ACTHeader{MailboxID: e.mailbox.ID}, Subject: subject,
		Start: serversync.DateTime{Time: start}, End: serversync.DateTime{Time: start.Add(time.Hour)}}
}

// editOnServer replaces the server's copy of the item with uid, as another
// client would.
func editOnServer(t *testing.T, s serversync.ACTSession, uid, subject string) *serversync.Appointment {
	t.Helper()
	items := onServer(t, s, serversync.KindAppointment, uid)
	require.Len(t, items, 1)
	a := items[0].(*serversync.Appointment)
	a.Subject = subject
	a.Modified = time.Time{}
	require.NoError(t, s.Put(context.Background(), a, a.ChangeKey))
	return a
}

// The round trip of issue 12 on the in-process server, and on Radicale and
// Xandikos when scripts/davservers runs them: a host create reaches the server
// once, an edit on the server comes back to the host's record (and its hook), a
// host edit goes out, and deletes go both ways.
func TestACTRoundTrip(t *testing.T) {
	t.Run("davdemo", func(t *testing.T) { testACTRoundTrip(t, newACTEnv(t)) })
	for _, name := range []string{"RADICALE", "XANDIKOS"} {
		t.Run(name, func(t *testing.T) {
			u := os.Getenv("SERVERSYNC_DAV_" + name + "_URL")
			if u == "" {
				t.Skipf("SERVERSYNC_DAV_%s_URL is not set: run `bash scripts/davservers start DIR` and source DIR/env", name)
			}
			e := newACTEnvAt(t, memory.New(), u, os.Getenv("SERVERSYNC_DAV_USER"), os.Getenv("SERVERSYNC_DAV_PASSWORD"))
			// The account is shared with other tests and runs, each its own deployment.
			_, err := e.admin.UpdateOrgSettings(context.Background(), func(o *serversync.OrgSettings) { o.SyncACTFromThisOrgOnly = true })
			require.NoError(t, err)
			testACTRoundTrip(t, e)
		})
	}
}

func testACTRoundTrip(t *testing.T, e *actEnv) {
	ctx := context.Background()
	e.enable(t)
	other := e.session(t)
	s := e.syncer(t)

	// Host create → server.
	rec, err := s.SaveACTItem(ctx, "", newAppointment(e, "Kick-off"))
	require.NoError(t, err)
	require.True(t, rec.Pending)
	require.NotEmpty(t, rec.UID)
	require.NoError(t, e.syncOnce(t))
	rec = e.record(t, rec.ID)
	assert.False(t, rec.Pending, "pushed")
	assert.NotEmpty(t, rec.ServerID)
	items := onServer(t, other, serversync.KindAppointment, rec.UID)
	require.Len(t, items, 1, "exactly one item on the server")
	assert.Equal(t, "Kick-off", items[0].(*serversync.Appointment).Subject)

	// A sync with nothing new changes nothing: the push is not reported back as
	// a server change.
	version := rec.Version
	require.NoError(t, e.syncOnce(t))
	assert.Equal(t, version, e.record(t, rec.ID).Version)

	// Server edit → host.
	editOnServer(t, other, rec.UID, "Kick-off (moved)")
	require.NoError(t, e.syncOnce(t))
	got := e.record(t, rec.ID)
	assert.Equal(t, "Kick-off (moved)", decodeAppointment(t, got).Subject)
	assert.Greater(t, got.Version, version)
	assert.False(t, got.Pending)
	assert.Len(t, e.records(t, serversync.KindAppointment, rec.UID), 1, "one record")
	e.mu.Lock()
	var told *serversync.ACTRecordChange
	for i := range e.changes {
		if e.changes[i].Record.ID == rec.ID {
			told = &e.changes[i]
		}
	}
	e.mu.Unlock()
	require.NotNil(t, told, "OnACTChange told of the server edit")
	assert.Equal(t, got.Version, told.Record.Version)

	// Host edit → server.
	a := decodeAppointment(t, got)
	a.Location = "Room 4"
	_, err = s.SaveACTItem(ctx, rec.ID, a)
	require.NoError(t, err)
	require.NoError(t, e.syncOnce(t))
	items = onServer(t, other, serversync.KindAppointment, rec.UID)
	require.Len(t, items, 1)
	assert.Equal(t, "Room 4", items[0].(*serversync.Appointment).Location)

	// A server item arrives as a record, and its server delete removes it.
	fromServer := newAppointment(e, "Planned elsewhere")
	fromServer.UID = "server-" + serversync.NewID()
	require.NoError(t, other.Put(ctx, fromServer, ""))
	require.NoError(t, e.syncOnce(t))
	arrived := e.records(t, serversync.KindAppointment, fromServer.UID)
	require.Len(t, arrived, 1)
	assert.Equal(t, "Planned elsewhere", decodeAppointment(t, arrived[0]).Subject)
	assert.False(t, arrived[0].Pending, "a server item is not pushed back")
	require.NoError(t, other.Delete(ctx, serversync.KindAppointment, fromServer.ServerID, ""))
	require.NoError(t, e.syncOnce(t))
	assert.Empty(t, e.records(t, serversync.KindAppointment, fromServer.UID), "the server delete reached the host")
	e.mu.Lock()
	removed := false
	for _, c := range e.changes {
		removed = removed || (c.Removed && c.Record.ID == arrived[0].ID)
	}
	e.mu.Unlock()
	assert.True(t, removed, "OnACTChange told of the removal")

	// Host delete → server.
	_, err = s.DeleteACTItem(ctx, rec.ID)
	require.NoError(t, err)
	require.NoError(t, e.syncOnce(t))
	assert.Empty(t, onServer(t, other, serversync.KindAppointment, rec.UID), "the host delete reached the server")
	assert.Empty(t, e.records(t, serversync.KindAppointment, rec.UID), "the tombstone is gone")

	// Contacts and tasks go out too.
	contact, err := s.SaveACTItem(ctx, "", &serversync.Contact{ACTHeader: serversync.ACTHeader{MailboxID: e.mailbox.ID, UID: "odd uid/" + serversync.NewID()},
		DisplayName: "Ada Lovelace", GivenName: "Ada", FamilyName: "Lovelace", Emails: []serversync.ContactValue{{Type: "work", Value: "ada@example.test"}}})
	require.NoError(t, err)
	task, err := s.SaveACTItem(ctx, "", &serversync.Task{ACTHeader: serversync.ACTHeader{MailboxID: e.mailbox.ID}, Subject: "Send the contract"})
	require.NoError(t, err)
	require.NoError(t, e.syncOnce(t))
	assert.Len(t, onServer(t, other, serversync.KindContact, contact.UID), 1)
	assert.Len(t, onServer(t, other, serversync.KindTask, task.UID), 1)
	for _, id := range []string{contact.ID, task.ID} {
		_, err := s.DeleteACTItem(ctx, id)
		require.NoError(t, err)
	}
	require.NoError(t, e.syncOnce(t))
	assert.Empty(t, onServer(t, other, serversync.KindContact, contact.UID))
	assert.Empty(t, onServer(t, other, serversync.KindTask, task.UID))
}

// A conflict, an item changed on both sides between two syncs, is settled by
// OrgSettings.ACTConflictPolicy and recorded.
func TestACTConflictPolicies(t *testing.T) {
	for _, c := range []struct {
		policy     serversync.ACTConflictPolicy
		hostLater  bool // the host's change is the later one
		wantWinner string
	}{
		{serversync.ACTHostWins, false, serversync.ACTWinnerHost},
		{serversync.ACTServerWins, true, serversync.ACTWinnerServer},
		{serversync.ACTLastModifiedWins, true, serversync.ACTWinnerHost},
		{serversync.ACTLastModifiedWins, false, serversync.ACTWinnerServer},
	} {
		name := string(c.policy)
		if name == "" {
			name = "LastModifiedWins"
		}
		if c.hostLater {
			name += "/HostLater"
		} else {
			name += "/ServerLater"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			e := newACTEnv(t)
			_, err := e.admin.UpdateOrgSettings(ctx, func(o *serversync.OrgSettings) { o.ACTConflictPolicy = c.policy })
			require.NoError(t, err)
			e.enable(t)
			s, other := e.syncer(t), e.session(t)
			rec, err := s.SaveACTItem(ctx, "", newAppointment(e, "original"))
			require.NoError(t, err)
			require.NoError(t, e.syncOnce(t))

			// Both sides change the item; the server stamps its change with its
			// clock (getlastmodified), set an hour before or after the host's.
			offset := time.Hour
			if c.hostLater {
				offset = -time.Hour
			}
			e.demo.SetNow(func() time.Time { return time.Now().Add(offset) })
			a := decodeAppointment(t, e.record(t, rec.ID))
			a.Subject = "host version"
			_, err = s.SaveACTItem(ctx, rec.ID, a)
			require.NoError(t, err)
			editOnServer(t, other, rec.UID, "server version")
			require.NoError(t, e.syncOnce(t))
			want := map[string]string{serversync.ACTWinnerHost: "host version", serversync.ACTWinnerServer: "server version"}[c.wantWinner]
			got := e.record(t, rec.ID)
			assert.Equal(t, want, decodeAppointment(t, got).Subject, "the host's record")
			assert.False(t, got.Pending)
			items := onServer(t, other, serversync.KindAppointment, rec.UID)
			require.Len(t, items, 1)
			assert.Equal(t, want, items[0].(*serversync.Appointment).Subject, "the server's item")
			conflicts := storetest.Collect(t, s.ACTConflicts(ctx, e.mailbox.ID))
			require.Len(t, conflicts, 1)
			assert.Equal(t, c.wantWinner, conflicts[0].Winner)
			assert.Equal(t, rec.ID, conflicts[0].RecordID)
			assert.Equal(t, c.policy, conflicts[0].Policy)
			assert.Contains(t, string(conflicts[0].HostItem), "host version")
			assert.Contains(t, string(conflicts[0].ServerItem), "server version")
		})
	}
}

// A host edit of an item the server deleted meanwhile: host wins recreates it,
// server wins drops the edit; both are recorded.
func TestACTConflictEditAgainstDelete(t *testing.T) {
	for _, policy := range []serversync.ACTConflictPolicy{serversync.ACTHostWins, serversync.ACTServerWins} {
		t.Run(string(policy), func(t *testing.T) {
			ctx := context.Background()
			e := newACTEnv(t)
			_, err := e.admin.UpdateOrgSettings(ctx, func(o *serversync.OrgSettings) { o.ACTConflictPolicy = policy })
			require.NoError(t, err)
			e.enable(t)
			s, other := e.syncer(t), e.session(t)
			rec, err := s.SaveACTItem(ctx, "", newAppointment(e, "original"))
			require.NoError(t, err)
			require.NoError(t, e.syncOnce(t))
			rec = e.record(t, rec.ID)
			require.NoError(t, other.Delete(ctx, serversync.KindAppointment, rec.ServerID, ""))
			a := decodeAppointment(t, rec)
			a.Subject = "edited"
			_, err = s.SaveACTItem(ctx, rec.ID, a)
			require.NoError(t, err)
			require.NoError(t, e.syncOnce(t))
			conflicts := storetest.Collect(t, s.ACTConflicts(ctx, e.mailbox.ID))
			require.Len(t, conflicts, 1)
			assert.True(t, conflicts[0].ServerDeleted)
			if policy == serversync.ACTHostWins {
				items := onServer(t, other, serversync.KindAppointment, rec.UID)
				require.Len(t, items, 1, "recreated with the same UID")
				assert.Equal(t, "edited", items[0].(*serversync.Appointment).Subject)
				assert.False(t, e.record(t, rec.ID).Pending)
			} else {
				assert.Empty(t, e.records(t, serversync.KindAppointment, rec.UID), "the record follows the server's delete")
				assert.Empty(t, onServer(t, other, serversync.KindAppointment, rec.UID))
			}
		})
	}
}

// A cursor the server no longer knows lists every item again: the records are
// matched by their server IDs (no duplicates), and the items not listed, deleted
// on the server meanwhile, are removed.
func TestACTResetMatchesWhatIsHeld(t *testing.T) {
	ctx := context.Background()
	e := newACTEnv(t)
	e.enable(t)
	s, other := e.syncer(t), e.session(t)
	keep, err := s.SaveACTItem(ctx, "", newAppointment(e, "keep"))
	require.NoError(t, err)
	gone, err := s.SaveACTItem(ctx, "", newAppointment(e, "gone"))
	require.NoError(t, err)
	// DAV lists the whole calendar: an old appointment deleted on the server
	// goes too (no window keeps it, as Graph's would).
	longAgo := newAppointment(e, "three years ago, gone")
	longAgo.Start.Time, longAgo.End.Time = longAgo.Start.Time.AddDate(-3, 0, 0), longAgo.End.Time.AddDate(-3, 0, 0)
	goneOld, err := s.SaveACTItem(ctx, "", longAgo)
	require.NoError(t, err)
	require.NoError(t, e.syncOnce(t))
	gone, goneOld = e.record(t, gone.ID), e.record(t, goneOld.ID)
	require.NoError(t, other.Delete(ctx, serversync.KindAppointment, gone.ServerID, ""))
	require.NoError(t, other.Delete(ctx, serversync.KindAppointment, goneOld.ServerID, ""))
	// The stored cursor becomes one the connector cannot use: it resets.
	_, err = e.store.SaveTracked(ctx, &serversync.Cursor{MailboxID: e.mailbox.ID, Folder: serversync.ACTFolder(serversync.KindAppointment),
		Data: []byte(`{"c":"/alice/calendars/elsewhere/","l":true}`), UpdatedAt: time.Now()}, nil)
	require.NoError(t, err)
	version := e.record(t, keep.ID).Version
	require.NoError(t, e.syncOnce(t))
	all := storetest.Collect(t, s.ACTRecords(ctx, serversync.ACTRecordFilter{MailboxID: e.mailbox.ID, Kind: serversync.KindAppointment}))
	require.Len(t, all, 1, "no duplicate, and the deleted items removed")
	assert.Equal(t, keep.ID, all[0].ID)
	assert.Equal(t, version, all[0].Version, "an item listed unchanged is not rewritten")
	assert.Equal(t, 1, e.demo.Count("events"))
}

// The owner marker: a mailbox another deployment marked is not synced (ACT
// fails Test & Enable with CodeACTOwnedElsewhere and a clear alert) unless
// SyncACTFromThisOrgOnly is on, which takes it over.
func TestACTOwnership(t *testing.T) {
	ctx := context.Background()
	e := newACTEnv(t)
	other := e.session(t)
	require.NoError(t, other.(serversync.ACTOwnerMarker).SetACTOwner(ctx, "another-deployment"))

	m, err := e.syncer(t).TestAndEnable(ctx, e.mailbox.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.TestFailure, m.ACTStatus)
	assert.False(t, m.ACTEnabled)
	assert.Equal(t, serversync.CodeACTOwnedElsewhere, m.Stats.LastError.Code)
	assert.Equal(t, serversync.ACT, m.Stats.LastError.Workload)
	alerts := storetest.Collect(t, e.store.ListAlerts(ctx, serversync.AlertFilter{MailboxID: e.mailbox.ID, Level: serversync.AlertError}))
	require.NotEmpty(t, alerts)
	assert.Contains(t, alerts[0].Message, "another deployment")
	owner, err := other.(serversync.ACTOwnerMarker).ACTOwner(ctx)
	require.NoError(t, err)
	assert.Equal(t, "another-deployment", owner, "left alone")

	_, err = e.admin.UpdateOrgSettings(ctx, func(o *serversync.OrgSettings) { o.SyncACTFromThisOrgOnly = true })
	require.NoError(t, err)
	e.enable(t)
	owner, err = other.(serversync.ACTOwnerMarker).ACTOwner(ctx)
	require.NoError(t, err)
	stored, err := e.store.GetOrgSettings(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, stored.ACTOwnerID)
	assert.Equal(t, stored.ACTOwnerID, owner, "taken over")

	// Marked by another deployment again while enabled: the sync stops, ACT is
	// disabled and says why.
	_, err = e.admin.UpdateOrgSettings(ctx, func(o *serversync.OrgSettings) { o.SyncACTFromThisOrgOnly = false })
	require.NoError(t, err)
	require.NoError(t, other.(serversync.ACTOwnerMarker).SetACTOwner(ctx, "another-deployment"))
	err = e.syncOnce(t)
	require.Error(t, err)
	assert.Equal(t, serversync.CodeACTOwnedElsewhere, serversync.ClassifyError(err).Code)
	m, err = e.store.GetMailbox(ctx, e.mailbox.ID)
	require.NoError(t, err)
	assert.False(t, m.ACTEnabled)
	assert.Equal(t, serversync.TestFailure, m.ACTStatus)
}

// Test & Enable checks ACT for real: a server that refuses the credentials fails
// it, and a probe item of each kind is written and deleted.
func TestACTTestAndEnable(t *testing.T) {
	ctx := context.Background()
	e := newACTEnv(t)
	_, err := e.admin.UpdateMailbox(ctx, e.mailbox.ID, func(m *serversync.Mailbox) { m.Password = auth.NewSecret("wrong") })
	require.NoError(t, err)
	m, err := e.syncer(t).TestAndEnable(ctx, e.mailbox.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.TestFailure, m.ACTStatus)
	assert.Equal(t, serversync.TestFailure, m.Status)
	assert.False(t, m.ACTEnabled)
	assert.Equal(t, serversync.CodeAuthFailed, m.Stats.LastError.Code)

	_, err = e.admin.UpdateMailbox(ctx, e.mailbox.ID, func(m *serversync.Mailbox) { m.Password = auth.NewSecret(e.pass) })
	require.NoError(t, err)
	e.enable(t)
	for _, col := range []string{"events", "tasks", "contacts"} {
		assert.Zero(t, e.demo.Count(col), "the probe in %s was deleted", col)
	}
	m, err = e.store.GetMailbox(ctx, e.mailbox.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.TestSuccess, m.Status)
	assert.False(t, m.NextSyncAt.IsZero(), "scheduled")
}

// An IMAP profile takes ACT only with a CalDAV/CardDAV server.
func TestACTNeedsAServerOnNonExchangeProfiles(t *testing.T) {
	ctx := context.Background()
	e := newACTEnv(t)
	p, err := e.admin.CreateProfile(ctx, &serversync.Profile{Name: "no dav", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: "imap.example.test", OutgoingServer: "smtp.example.test"})
	require.NoError(t, err)
	_, err = e.admin.CreateMailbox(ctx, &serversync.Mailbox{Name: "bob", EmailAddress: "bob@example.test", ProfileID: p.ID,
		ACTMethod: serversync.OutgoingServerSideSync, Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-bob"}})
	var ve *serversync.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "ACTMethod", ve.Field)

	_, err = e.admin.CreateProfile(ctx, &serversync.Profile{Name: "bad url", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: "imap.example.test", OutgoingServer: "smtp.example.test", ACTServerURL: "ftp://dav.example.test/"})
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "ACTServerURL", ve.Field)
}

// An item the server refuses (too large for it) stays pending with a warning,
// once; the others sync on and ACT stays enabled.
func TestACTRefusedItemDoesNotStopTheOthers(t *testing.T) {
	ctx := context.Background()
	e := newACTEnv(t)
	e.demo.MaxResourceSize = 64 << 10
	e.enable(t)
	s, other := e.syncer(t), e.session(t)
	big := newAppointment(e, "too big")
	big.Body = strings.Repeat("x", 100<<10)
	bigRec, err := s.SaveACTItem(ctx, "", big)
	require.NoError(t, err)
	small, err := s.SaveACTItem(ctx, "", newAppointment(e, "fine"))
	require.NoError(t, err)
	// One Syncer, several syncs (ActivePoll is short here).
	syncs := func() int {
		e.mu.Lock()
		defer e.mu.Unlock()
		n := 0
		for _, ev := range e.events {
			if ev.Kind == serversync.EventACTSynced && ev.Err == nil {
				n++
			}
		}
		return n
	}
	r := e.syncer(t)
	run(t, r)
	eventually(t, "three ACT syncs", func() bool { return syncs() >= 3 })
	assert.Len(t, onServer(t, other, serversync.KindAppointment, small.UID), 1)
	assert.False(t, e.record(t, small.ID).Pending)
	assert.True(t, e.record(t, bigRec.ID).Pending, "the refused item waits")
	warnings := storetest.Collect(t, e.store.ListAlerts(ctx, serversync.AlertFilter{MailboxID: e.mailbox.ID, Level: serversync.AlertWarning}))
	refused := 0
	for _, a := range warnings {
		if a.Code == serversync.CodeACTItemRefused {
			refused++
		}
	}
	assert.Equal(t, 1, refused, "warned once, not at every sync")
	m, err := e.store.GetMailbox(ctx, e.mailbox.ID)
	require.NoError(t, err)
	assert.True(t, m.ACTEnabled)
}

// hidingConnector's sessions leave the items with one UID out of Changes: a
// server whose change tracking has not caught up with an item yet.
type hidingConnector struct {
	serversync.ACTConnector
	uid string
}

func (c hidingConnector) OpenACT(ctx context.Context, target *serversync.Target) (serversync.ACTSession, error) {
	s, err := c.ACTConnector.OpenACT(ctx, target)
	if err != nil {
		return nil, err
	}
	return hidingSession{s, c.uid}, nil
}

type hidingSession struct {
	serversync.ACTSession
	uid string
}

func (s hidingSession) Changes(ctx context.Context, kind serversync.ACTKind, cursor []byte) (serversync.ACTChanges, error) {
	ch, err := s.ACTSession.Changes(ctx, kind, cursor)
	kept := ch.Changes[:0]
	for _, c := range ch.Changes {
		if c.Deleted || c.Item.Header().UID != s.uid {
			kept = append(kept, c)
		}
	}
	ch.Changes = kept
	return ch, err
}

// A push whose create meets an item holding the record's UID (its own create,
// made before a crash, that the pull did not list) takes that item over instead
// of creating a second one: at the path the UID names, and at another path a
// no-uid-conflict reply names.
func TestACTPushTakesOverItsOwnCreate(t *testing.T) {
	for _, samePath := range []bool{true, false} {
		t.Run(map[bool]string{true: "SamePath", false: "OtherPath"}[samePath], func(t *testing.T) {
			ctx := context.Background()
			e := newACTEnv(t)
			e.enable(t)
			other := e.session(t)
			uid := "crashed-" + serversync.NewID()
			earlier := newAppointment(e, "pushed before the crash")
			earlier.UID = uid
			if !samePath {
				// Created by a client that names resources its own way.
				require.NoError(t, other.Put(ctx, &serversync.Appointment{ACTHeader: serversync.ACTHeader{UID: "placeholder-" + uid},
					Subject: "x", Start: earlier.Start, End: earlier.End}, ""))
				items := onServer(t, other, serversync.KindAppointment, "placeholder-"+uid)
				require.Len(t, items, 1)
				require.NoError(t, other.Delete(ctx, serversync.KindAppointment, items[0].Header().ServerID, ""))
				earlier.ServerID = items[0].Header().ServerID + "-elsewhere.ics"
				// An update of a path that does not exist creates it there.
				require.NoError(t, other.Put(ctx, earlier, ""))
			} else {
				require.NoError(t, other.Put(ctx, earlier, ""))
			}
			heldAt := onServer(t, other, serversync.KindAppointment, uid)[0].Header().ServerID

			s, err := serversync.NewSyncer(e.store, serversync.Connectors{ACT: map[serversync.ServerType]serversync.ACTConnector{
				serversync.ServerTypeIMAPSMTP: hidingConnector{&dav.Connector{}, uid}}}, &serversync.Config{Logger: testLogger()})
			require.NoError(t, err)
			a := newAppointment(e, "the host's version")
			a.UID = uid
			rec, err := s.SaveACTItem(ctx, "", a)
			require.NoError(t, err)
			m, err := s.TestAndEnable(ctx, e.mailbox.ID) // and one sync through the hiding connector:
			require.NoError(t, err)
			require.True(t, m.ACTEnabled)
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			eventually(t, "the push", func() bool { return !e.record(t, rec.ID).Pending })
			stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, s.Stop(stopCtx))
			<-done

			items := onServer(t, other, serversync.KindAppointment, uid)
			require.Len(t, items, 1, "one item with the UID")
			assert.Equal(t, "the host's version", items[0].(*serversync.Appointment).Subject)
			assert.Equal(t, heldAt, e.record(t, rec.ID).ServerID, "the item that held the UID")
		})
	}
}

func TestACTConflictPolicyIsValidated(t *testing.T) {
	e := newACTEnv(t)
	_, err := e.admin.UpdateOrgSettings(context.Background(), func(o *serversync.OrgSettings) { o.ACTConflictPolicy = "Newest" })
	var ve *serversync.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "ACTConflictPolicy", ve.Field)
}

// ResolveTarget's ACT direction: the profile's ACTServerURL with the incoming
// credentials, its TLS mode from the scheme, and plain http refused unless the
// org allows it, like any unencrypted connection.
func TestResolveTargetForACT(t *testing.T) {
	ctx := context.Background()
	p := &serversync.Profile{ID: "p1", Name: "dav", ServerType: serversync.ServerTypeIMAPSMTP,
		IncomingServer: "imap.example.test", IncomingPort: 993, OutgoingServer: "smtp.example.test", OutgoingPort: 465,
		IncomingCredentialSource: serversync.CredentialsMailbox, ACTServerURL: "https://dav.example.test/remote.php/dav/"}
	m := &serversync.Mailbox{ID: "m1", EmailAddress: "alice@example.test", Username: "alice", Password: auth.NewSecret("pw")}
	target, err := serversync.ResolveTarget(ctx, p, m, serversync.DefaultOrgSettings(), serversync.ACT)
	require.NoError(t, err)
	assert.Equal(t, "https://dav.example.test/remote.php/dav/", target.Endpoint.URL)
	assert.Equal(t, "dav.example.test", target.Endpoint.Host)
	assert.Equal(t, 443, target.Endpoint.Port)
	assert.Equal(t, serversync.TLSImplicit, target.Endpoint.TLS)
	assert.Equal(t, auth.KindPassword, target.Credentials.Kind)
	assert.Equal(t, "alice", target.Credentials.Username)

	p.ACTServerURL = "http://dav.example.test:5232/"
	_, err = serversync.ResolveTarget(ctx, p, m, serversync.DefaultOrgSettings(), serversync.ACT)
	assert.ErrorIs(t, err, serversync.ErrConnectionForbidden)
	assert.Equal(t, serversync.CodeTLSRequiredByOrg, serversync.ClassifyError(err).Code)
	conflicts := serversync.ProfileConflicts(p, serversync.DefaultOrgSettings())
	require.Len(t, conflicts, 1)
	assert.Equal(t, "ACTServerURL", conflicts[0].Field)
	assert.Contains(t, conflicts[0].Reason, "https://")

	open := serversync.DefaultOrgSettings()
	open.AllowNonSSLEmail, open.AllowCredentialsOverNonSecureChannels = true, true
	target, err = serversync.ResolveTarget(ctx, p, m, open, serversync.ACT)
	require.NoError(t, err)
	assert.Equal(t, serversync.TLSNone, target.Endpoint.TLS)
	assert.Equal(t, 5232, target.Endpoint.Port)
}
