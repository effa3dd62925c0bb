package serversync_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/auth/aadtest"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/graph/graphtest"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/internal/testcert"
	"github.com/serversync/serversync/store/memory"
	"github.com/serversync/serversync/store/storetest"
)

// The permissions ACT needs on Graph: delegated, and as application roles.
var (
	graphACTScopes = []string{"Calendars.ReadWrite", "Contacts.ReadWrite", "Tasks.ReadWrite"}
	graphACTRoles  = []string{"Calendars.ReadWrite", "Contacts.ReadWrite", "Tasks.ReadWrite.All"}
)

const (
	graphACTAddress = "alice@example.test"
	graphACTTenant  = "tenant-1"
	// otherClientToken is the fake's token for another client of alice's
	// mailbox (Outlook, a user): what it changes is a server-side change.
	otherClientToken = "other-client"
)

// graphACTEnv is an ACT-only mailbox on an Exchange Online profile, synced
// with the fake Graph through the standard connectors.
type graphACTEnv struct {
	actHarness
	admin   *serversync.Admin
	srv     *graphtest.Server
	entra   *aadtest.Server // server-to-server only
	profile *serversync.Profile
}

func newGraphACTBase(t *testing.T, opts *graphtest.Options) *graphACTEnv {
	t.Helper()
	srv, err := graphtest.NewServer(opts)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	tenant := graphACTTenant
	if opts != nil && opts.Authenticate != nil {
		tenant = s2sTenant
	}
	srv.AddMailbox(graphACTAddress, tenant)
	srv.AddToken(otherClientToken, graphtest.Principal{AppOnly: true, TenantID: tenant, AppID: "other-app", Permissions: graphACTRoles})
	e := &graphACTEnv{srv: srv}
	e.store = memory.New()
	e.newSyncer = func(t *testing.T, cfg *serversync.Config) *serversync.Syncer {
		t.Helper()
		cfg.ActivePoll = time.Hour // one sync per syncOnce
		s, err := serversync.NewSyncer(e.store, standard.Connectors(&standard.Options{Logger: slog.New(slog.DiscardHandler)}), cfg)
		require.NoError(t, err)
		return s
	}
	e.admin = serversync.NewAdmin(e.store, &serversync.AdminConfig{
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil },
		Logger:     slog.New(slog.DiscardHandler),
	})
	return e
}

// newGraphACTEnv is an Exchange Online profile with a delegated OAuth token
// holding scopes.
func newGraphACTEnv(t *testing.T, scopes ...string) *graphACTEnv {
	t.Helper()
	e := newGraphACTBase(t, nil)
	e.srv.AddToken("alice-act", graphtest.Principal{User: graphACTAddress, TenantID: graphACTTenant, Permissions: scopes})
	var err error
	e.profile, err = e.admin.CreateProfile(context.Background(), &serversync.Profile{
		Name: "exchange-online", Owner: "admin-user", ServerType: serversync.ServerTypeExchangeOnline,
		IncomingServer: e.srv.URL(), OutgoingServer: e.srv.URL(), ExtraRootCAsPEM: e.srv.RootCAsPEM(), ConnectionTimeout: 10 * time.Second,
		IncomingCredentialSource: serversync.CredentialsOAuth, OutgoingCredentialSource: serversync.CredentialsOAuth,
		ClientID: "serversync-test", TokenURL: "https://login.test/token",
	})
	require.NoError(t, err)
	e.mailbox = e.actMailbox(t, func(m *serversync.Mailbox) {
		m.OAuthToken = serversync.OAuthToken{AccessToken: auth.NewSecret("alice-act"), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
	})
	return e
}

// newGraphACTEnvS2S is an ExchangeOnlineHybrid profile authenticating server to
// server at a fake Entra ID, whose app registration has roles.
func newGraphACTEnvS2S(t *testing.T, roles ...string) *graphACTEnv {
	t.Helper()
	entra, err := aadtest.NewServer(nil)
	require.NoError(t, err)
	t.Cleanup(entra.Close)
	entra.AddTenant(s2sTenant, "example.test")
	cert, err := testcert.NewClientCert("serversync-s2s", 2048, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
	require.NoError(t, err)
	entra.RegisterApp(s2sTenant, "serversync-app", cert.Certificate, roles...)
	e := newGraphACTBase(t, &graphtest.Options{Authenticate: graphtest.EntraAuthenticator(entra)})
	e.entra = entra
	e.profile, err = e.admin.CreateProfile(context.Background(), &serversync.Profile{
		Name: "hybrid", Owner: "admin-user", ServerType: serversync.ServerTypeExchangeOnlineHybrid,
		IncomingServer: e.srv.URL(), OutgoingServer: e.srv.URL(),
		ExtraRootCAsPEM: e.srv.RootCAsPEM() + entra.RootCAsPEM(), ConnectionTimeout: 10 * time.Second,
		IncomingCredentialSource: serversync.CredentialsServerToServer, OutgoingCredentialSource: serversync.CredentialsServerToServer,
		TenantID: s2sTenant, ClientID: "serversync-app",
		CertificatePEM: cert.CertPEM, CertificateKey: auth.NewSecret(cert.KeyPEM),
		TokenURL: entra.URL() + "/{tenant}/oauth2/v2.0/token",
	})
	require.NoError(t, err)
	e.mailbox = e.actMailbox(t, func(m *serversync.Mailbox) { m.Password = auth.Secret{} })
	return e
}

// withIncomingMail turns on the tracking of incoming mail beside ACT.
func (e *graphACTEnv) withIncomingMail(t *testing.T) {
	t.Helper()
	m, err := e.admin.UpdateMailbox(context.Background(), e.mailbox.ID, func(m *serversync.Mailbox) {
		m.IncomingMethod = serversync.IncomingServerSideSync
	})
	require.NoError(t, err)
	e.mailbox = m
}

// actMailbox is alice's mailbox with ACT only, by server-side sync.
func (e *graphACTEnv) actMailbox(t *testing.T, configure func(*serversync.Mailbox)) *serversync.Mailbox {
	t.Helper()
	return approvedMailbox(t, e.admin, e.store, e.profile.ID, "alice", func(m *serversync.Mailbox) {
		m.IncomingMethod, m.OutgoingMethod, m.ACTMethod = serversync.IncomingNone, serversync.OutgoingNone, serversync.OutgoingServerSideSync
		configure(m)
	})
}

// other opens an ACT session on alice's mailbox as another client would.
func (e *graphACTEnv) other(t *testing.T) serversync.ACTSession {
	t.Helper()
	u, err := url.Parse(e.srv.URL())
	require.NoError(t, err)
	port, _ := strconv.Atoi(u.Port())
	target := &serversync.Target{MailboxID: "other-client", EmailAddress: graphACTAddress,
		Endpoint: serversync.Endpoint{URL: e.srv.URL(), Host: u.Hostname(), Port: port, TLS: serversync.TLSImplicit,
			RootCAsPEM: e.srv.RootCAsPEM(), Timeout: 10 * time.Second},
		Credentials: auth.Credentials{Kind: auth.KindAppOnly, Username: graphACTAddress,
			TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: otherClientToken})}}
	s, err := graph.New(&graph.Options{Logger: slog.New(slog.DiscardHandler)}).OpenACT(context.Background(), target)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// graphCall sends a request to alice's mailbox on the fake as another client.
func (e *graphACTEnv) graphCall(t *testing.T, method, path string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL()+"/v1.0/users/"+graphACTAddress+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+otherClientToken)
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if out != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}

func (e *graphACTEnv) record(t *testing.T, id string) *serversync.ACTRecord {
	t.Helper()
	r, err := e.store.(serversync.ACTStore).GetACTRecord(context.Background(), id)
	require.NoError(t, err)
	return r
}

func (e *graphACTEnv) records(t *testing.T, kind serversync.ACTKind, uid string) []*serversync.ACTRecord {
	t.Helper()
	return storetest.Collect(t, e.store.(serversync.ACTStore).ListACTRecords(context.Background(),
		serversync.ACTRecordFilter{MailboxID: e.mailbox.ID, Kind: kind, UID: uid}))
}

// told returns what OnACTChange was told of the record, latest last.
func (e *graphACTEnv) told(id string) []serversync.ACTRecordChange {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []serversync.ACTRecordChange
	for _, c := range e.changes {
		if c.Record != nil && c.Record.ID == id {
			out = append(out, c)
		}
	}
	return out
}

func (e *graphACTEnv) appointment(subject string, start time.Time) *serversync.Appointment {
	return &serversync.Appointment{ACTHeader: serversync.ACTHeader{MailboxID: e.mailbox.ID}, Subject: subject,
		Start: serversync.DateTime{Time: start}, End: serversync.DateTime{Time: start.Add(time.Hour)}}
}

// soon is a time in the calendar window Graph lists.
func soon() time.Time { return time.Now().UTC().Truncate(time.Hour).Add(7 * 24 * time.Hour) }

// The ACT round trip on Exchange Online, with delegated OAuth and with an
// ExchangeOnlineHybrid profile's app-only token: Test & Enable, the host's
// appointment, contact and task reach the server once, the server's edits,
// creates and deletes come back as records (and through OnACTChange), the
// host's edits and deletes go out. Server to server, every ACT request of
// every Syncer rides on one token from the identity provider.
func TestGraphACTRoundTrip(t *testing.T) {
	t.Run("delegated", func(t *testing.T) { testGraphACTRoundTrip(t, newGraphACTEnv(t, graphACTScopes...)) })
	t.Run("server-to-server", func(t *testing.T) {
		// Mail is tracked too: ACT shares its token.
		e := newGraphACTEnvS2S(t, append([]string{"Mail.ReadWrite", "Mail.Send"}, graphACTRoles...)...)
		e.withIncomingMail(t)
		_, err := e.srv.Deliver(graphACTAddress, "inbox", message("dan@example.test", graphACTAddress, "hello", "", "hi"), time.Now())
		require.NoError(t, err)
		testGraphACTRoundTrip(t, e)
		run(t, e.syncer(t))
		eventually(t, "the mail tracked", func() bool {
			return len(storetest.Collect(t, e.store.ListActivities(context.Background(), serversync.ActivityFilter{MailboxID: e.mailbox.ID}))) == 1
		})
		assert.Equal(t, 1, e.entra.TokenRequests(), "one app token for Test & Enable and every sync, mail and ACT")
	})
}

func testGraphACTRoundTrip(t *testing.T, e *graphACTEnv) {
	ctx := context.Background()
	e.enable(t)
	other := e.other(t)
	for _, kind := range serversync.ACTKinds {
		ch, err := other.Changes(ctx, kind, nil)
		require.NoError(t, err)
		assert.Empty(t, ch.Changes, "no %s left: the probe was deleted", kind)
	}
	s := e.syncer(t)

	// Host creates → server.
	appt, err := s.SaveACTItem(ctx, "", e.appointment("Kick-off", soon()))
	require.NoError(t, err)
	contact, err := s.SaveACTItem(ctx, "", &serversync.Contact{ACTHeader: serversync.ACTHeader{MailboxID: e.mailbox.ID},
		DisplayName: "Ada Lovelace", GivenName: "Ada", FamilyName: "Lovelace", Emails: []serversync.ContactValue{{Type: "work", Value: "ada@example.test"}}})
	require.NoError(t, err)
	task, err := s.SaveACTItem(ctx, "", &serversync.Task{ACTHeader: serversync.ACTHeader{MailboxID: e.mailbox.ID}, Subject: "Send the contract"})
	require.NoError(t, err)
	require.NoError(t, e.syncOnce(t))
	for _, r := range []*serversync.ACTRecord{appt, contact, task} {
		got := e.record(t, r.ID)
		assert.False(t, got.Pending, "%s pushed", r.Kind)
		assert.NotEmpty(t, got.ServerID)
		items := onServer(t, other, r.Kind, r.UID)
		require.Len(t, items, 1, "exactly one %s on the server", r.Kind)
		assert.Equal(t, got.ServerID, items[0].Header().ServerID)
	}
	assert.Equal(t, "Kick-off", onServer(t, other, serversync.KindAppointment, appt.UID)[0].(*serversync.Appointment).Subject)
	assert.Equal(t, "Ada Lovelace", onServer(t, other, serversync.KindContact, contact.UID)[0].(*serversync.Contact).DisplayName)
	assert.Equal(t, "Send the contract", onServer(t, other, serversync.KindTask, task.UID)[0].(*serversync.Task).Subject)

	// Nothing new: nothing rewritten, the pushes are not reported back.
	version := e.record(t, appt.ID).Version
	require.NoError(t, e.syncOnce(t))
	assert.Equal(t, version, e.record(t, appt.ID).Version)
	assert.Empty(t, e.told(appt.ID))

	// Server edit of the appointment and the task, delete of the contact, a
	// new task → the host.
	a := onServer(t, other, serversync.KindAppointment, appt.UID)[0].(*serversync.Appointment)
	a.Subject = "Kick-off (moved)"
	require.NoError(t, other.Put(ctx, a, a.ChangeKey))
	tk := onServer(t, other, serversync.KindTask, task.UID)[0].(*serversync.Task)
	tk.Status = serversync.TaskCompleted
	require.NoError(t, other.Put(ctx, tk, tk.ChangeKey))
	require.NoError(t, e.srv.RemoveACTItem(graphACTAddress, e.record(t, contact.ID).ServerID))
	fromServer := &serversync.Task{Subject: "Planned in To Do"}
	require.NoError(t, other.Put(ctx, fromServer, ""))
	require.NoError(t, e.syncOnce(t))

	got := e.record(t, appt.ID)
	assert.Equal(t, "Kick-off (moved)", decodeACT[*serversync.Appointment](t, got).Subject)
	assert.False(t, got.Pending)
	told := e.told(appt.ID)
	require.NotEmpty(t, told, "OnACTChange told of the server edit")
	assert.Equal(t, got.Version, told[len(told)-1].Record.Version)
	assert.Equal(t, serversync.TaskCompleted, decodeACT[*serversync.Task](t, e.record(t, task.ID)).Status)
	_, err = e.store.(serversync.ACTStore).GetACTRecord(ctx, contact.ID)
	assert.ErrorIs(t, err, serversync.ErrNotFound, "the server delete reached the host")
	told = e.told(contact.ID)
	require.NotEmpty(t, told)
	assert.True(t, told[len(told)-1].Removed, "OnACTChange told of the removal")
	arrived := e.records(t, serversync.KindTask, fromServer.UID)
	require.Len(t, arrived, 1, "the server's task arrived once")
	assert.Equal(t, "Planned in To Do", decodeACT[*serversync.Task](t, arrived[0]).Subject)
	assert.False(t, arrived[0].Pending, "a server item is not pushed back")
	assert.NotEmpty(t, e.told(arrived[0].ID))

	// Host edit and delete → server.
	edited := decodeACT[*serversync.Appointment](t, got)
	edited.Location = "Room 4"
	_, err = s.SaveACTItem(ctx, appt.ID, edited)
	require.NoError(t, err)
	_, err = s.DeleteACTItem(ctx, task.ID)
	require.NoError(t, err)
	require.NoError(t, e.syncOnce(t))
	items := onServer(t, other, serversync.KindAppointment, appt.UID)
	require.Len(t, items, 1)
	assert.Equal(t, "Room 4", items[0].(*serversync.Appointment).Location)
	assert.Equal(t, "Kick-off (moved)", items[0].(*serversync.Appointment).Subject)
	assert.Empty(t, onServer(t, other, serversync.KindTask, task.UID), "the host delete reached the server")
	assert.Empty(t, e.records(t, serversync.KindTask, task.UID), "the tombstone is gone")
	assert.Len(t, onServer(t, other, serversync.KindTask, fromServer.UID), 1, "the other task stays")
}

func decodeACT[T serversync.ACTItem](t *testing.T, r *serversync.ACTRecord) T {
	t.Helper()
	item, err := r.Decode()
	require.NoError(t, err)
	v, ok := item.(T)
	require.True(t, ok, "a %T", item)
	return v
}

// A conflict on Exchange Online follows the org's policy.
func TestGraphACTConflict(t *testing.T) {
	for _, c := range []struct {
		policy serversync.ACTConflictPolicy
		want   string
		winner string
	}{
		{serversync.ACTHostWins, "host version", serversync.ACTWinnerHost},
		{serversync.ACTServerWins, "server version", serversync.ACTWinnerServer},
	} {
		t.Run(string(c.policy), func(t *testing.T) {
			ctx := context.Background()
			e := newGraphACTEnv(t, graphACTScopes...)
			_, err := e.admin.UpdateOrgSettings(ctx, func(o *serversync.OrgSettings) { o.ACTConflictPolicy = c.policy })
			require.NoError(t, err)
			e.enable(t)
			s, other := e.syncer(t), e.other(t)
			rec, err := s.SaveACTItem(ctx, "", e.appointment("original", soon()))
			require.NoError(t, err)
			require.NoError(t, e.syncOnce(t))

			a := decodeACT[*serversync.Appointment](t, e.record(t, rec.ID))
			a.Subject = "host version"
			_, err = s.SaveACTItem(ctx, rec.ID, a)
			require.NoError(t, err)
			onSrv := onServer(t, other, serversync.KindAppointment, rec.UID)[0].(*serversync.Appointment)
			onSrv.Subject = "server version"
			require.NoError(t, other.Put(ctx, onSrv, onSrv.ChangeKey))
			require.NoError(t, e.syncOnce(t))

			got := e.record(t, rec.ID)
			assert.Equal(t, c.want, decodeACT[*serversync.Appointment](t, got).Subject, "the host's record")
			assert.False(t, got.Pending)
			items := onServer(t, other, serversync.KindAppointment, rec.UID)
			require.Len(t, items, 1)
			assert.Equal(t, c.want, items[0].(*serversync.Appointment).Subject, "the server's item")
			conflicts := storetest.Collect(t, s.ACTConflicts(ctx, e.mailbox.ID))
			require.Len(t, conflicts, 1)
			assert.Equal(t, c.winner, conflicts[0].Winner)
			assert.Equal(t, c.policy, conflicts[0].Policy)
		})
	}
}

// Without the calendar, contacts and tasks permissions Test & Enable fails
// ACT with an alert that names what to grant; mail is not asked for.
func TestGraphACTWithoutPermission(t *testing.T) {
	for _, c := range []struct {
		name  string
		env   func(t *testing.T) *graphACTEnv
		grant string
	}{
		{"delegated", func(t *testing.T) *graphACTEnv { return newGraphACTEnv(t, "Mail.ReadWrite", "Mail.Send") }, "Tasks.ReadWrite"},
		{"server-to-server", func(t *testing.T) *graphACTEnv {
			return newGraphACTEnvS2S(t, "Mail.ReadWrite", "Mail.Send", "Calendars.ReadWrite")
		}, "Tasks.ReadWrite.All"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			e := c.env(t)
			m, err := e.syncer(t).TestAndEnable(ctx, e.mailbox.ID)
			require.NoError(t, err)
			assert.Equal(t, serversync.TestFailure, m.ACTStatus)
			assert.False(t, m.ACTEnabled)
			require.NotNil(t, m.Stats.LastError)
			assert.Equal(t, serversync.CodeNoPermission, m.Stats.LastError.Code)
			assert.Equal(t, serversync.ACT, m.Stats.LastError.Workload)
			alerts := storetest.Collect(t, e.store.ListAlerts(ctx, serversync.AlertFilter{MailboxID: e.mailbox.ID, Level: serversync.AlertError}))
			require.NotEmpty(t, alerts)
			assert.Contains(t, alerts[0].Message, "Calendars.ReadWrite")
			assert.Contains(t, alerts[0].Message, c.grant)
			assert.NotContains(t, alerts[0].Message, "alice-act", "no token in the alert")
		})
	}
}

// The owner marker on Exchange Online: a mailbox another deployment marked is
// not synced (CodeACTOwnedElsewhere, with an alert) until
// SyncACTFromThisOrgOnly takes it over.
func TestGraphACTOwnership(t *testing.T) {
	ctx := context.Background()
	e := newGraphACTEnv(t, graphACTScopes...)
	marker := e.other(t).(serversync.ACTOwnerMarker)
	require.NoError(t, marker.SetACTOwner(ctx, "another-deployment"))

	m, err := e.syncer(t).TestAndEnable(ctx, e.mailbox.ID)
	require.NoError(t, err)
	assert.Equal(t, serversync.TestFailure, m.ACTStatus)
	assert.False(t, m.ACTEnabled)
	assert.Equal(t, serversync.CodeACTOwnedElsewhere, m.Stats.LastError.Code)
	alerts := storetest.Collect(t, e.store.ListAlerts(ctx, serversync.AlertFilter{MailboxID: e.mailbox.ID, Level: serversync.AlertError}))
	require.NotEmpty(t, alerts)
	assert.Contains(t, alerts[0].Message, "another deployment")
	owner, err := marker.ACTOwner(ctx)
	require.NoError(t, err)
	assert.Equal(t, "another-deployment", owner, "left alone")

	_, err = e.admin.UpdateOrgSettings(ctx, func(o *serversync.OrgSettings) { o.SyncACTFromThisOrgOnly = true })
	require.NoError(t, err)
	e.enable(t)
	owner, err = marker.ACTOwner(ctx)
	require.NoError(t, err)
	settings, err := e.store.GetOrgSettings(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, settings.ACTOwnerID)
	assert.Equal(t, settings.ACTOwnerID, owner, "taken over")
}

// Graph lists appointments only in a calendar window: a reset (the delta token
// expired) keeps the host's appointments outside it, a plain one three years
// old and a series that ended long ago, and still removes one deleted in it.
// An occurrence deleted on the server, reported by an ID the host never held,
// leaves its series in place.
func TestGraphACTResetKeepsWhatIsOutsideTheWindow(t *testing.T) {
	ctx := context.Background()
	e := newGraphACTEnv(t, graphACTScopes...)
	e.enable(t)
	s := e.syncer(t)
	old, err := s.SaveACTItem(ctx, "", e.appointment("three years ago", time.Now().UTC().AddDate(-3, 0, 0).Truncate(time.Hour)))
	require.NoError(t, err)
	oldSeries := e.appointment("weekly, long over", time.Now().UTC().AddDate(-4, 0, 0).Truncate(time.Hour))
	oldSeries.Recurrence = &serversync.Recurrence{Rule: "FREQ=WEEKLY;COUNT=5"}
	series, err := s.SaveACTItem(ctx, "", oldSeries)
	require.NoError(t, err)
	current, err := s.SaveACTItem(ctx, "", e.appointment("next week", soon()))
	require.NoError(t, err)
	gone, err := s.SaveACTItem(ctx, "", e.appointment("deleted on the server", soon().Add(2*time.Hour)))
	require.NoError(t, err)
	weekly := e.appointment("weekly, to come", soon().Add(24*time.Hour))
	weekly.Recurrence = &serversync.Recurrence{Rule: "FREQ=WEEKLY;COUNT=4"}
	coming, err := s.SaveACTItem(ctx, "", weekly)
	require.NoError(t, err)
	require.NoError(t, e.syncOnce(t))
	for _, r := range []*serversync.ACTRecord{old, series, current, gone, coming} {
		require.False(t, e.record(t, r.ID).Pending, "%s pushed", decodeACT[*serversync.Appointment](t, r).Subject)
	}

	// An occurrence of the coming series is deleted in Outlook.
	var instances struct {
		Value []struct {
			ID string `json:"id"`
		} `json:"value"`
	}
	window := "?startDateTime=" + url.QueryEscape(time.Now().UTC().Format(time.RFC3339)) + "&endDateTime=" + url.QueryEscape(time.Now().UTC().AddDate(1, 0, 0).Format(time.RFC3339))
	require.Equal(t, http.StatusOK, e.graphCall(t, http.MethodGet, "/events/"+url.PathEscape(e.record(t, coming.ID).ServerID)+"/instances"+window, &instances))
	require.Len(t, instances.Value, 4)
	require.Equal(t, http.StatusNoContent, e.graphCall(t, http.MethodDelete, "/events/"+url.PathEscape(instances.Value[1].ID), nil))
	require.NoError(t, e.syncOnce(t))
	got := decodeACT[*serversync.Appointment](t, e.record(t, coming.ID))
	require.NotNil(t, got.Recurrence)
	assert.Len(t, got.Recurrence.Exceptions, 1, "the occurrence's removal reached the series")
	assert.Empty(t, storetest.Collect(t, s.ACTRecords(ctx, serversync.ACTRecordFilter{MailboxID: e.mailbox.ID,
		Kind: serversync.KindAppointment, ServerID: instances.Value[1].ID})), "no record for the occurrence")

	require.NoError(t, e.srv.RemoveACTItem(graphACTAddress, e.record(t, gone.ID).ServerID))
	e.srv.ExpireSyncState(graphACTAddress)
	versions := map[string]int64{}
	for _, r := range []*serversync.ACTRecord{old, series, current, coming} {
		versions[r.ID] = e.record(t, r.ID).Version
	}
	require.NoError(t, e.syncOnce(t))
	all := storetest.Collect(t, s.ACTRecords(ctx, serversync.ACTRecordFilter{MailboxID: e.mailbox.ID, Kind: serversync.KindAppointment}))
	var ids []string
	for _, r := range all {
		ids = append(ids, r.ID)
	}
	assert.ElementsMatch(t, []string{old.ID, series.ID, current.ID, coming.ID}, ids, "outside the window kept, the deleted one removed")
	for id, v := range versions {
		assert.Equal(t, v, e.record(t, id).Version, "%s not rewritten", id)
	}
}

// ResolveTarget's ACT direction for Exchange Online is Graph, with the
// profile's credentials: the same app-only token as mail for server to server.
func TestResolveTargetForGraphACT(t *testing.T) {
	ctx := context.Background()
	m := &serversync.Mailbox{ID: "m1", EmailAddress: "ann@example.test",
		OAuthToken: serversync.OAuthToken{AccessToken: auth.NewSecret("t"), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}}
	p := &serversync.Profile{ID: "p1", Name: "eo", ServerType: serversync.ServerTypeExchangeOnline,
		IncomingCredentialSource: serversync.CredentialsOAuth, OutgoingCredentialSource: serversync.CredentialsOAuth, ClientID: "c"}
	serversync.NormalizeProfile(p)
	target, err := serversync.ResolveTarget(ctx, p, m, serversync.DefaultOrgSettings(), serversync.ACT)
	require.NoError(t, err)
	assert.Equal(t, serversync.GraphURLDefault, target.Endpoint.URL)
	assert.Equal(t, auth.KindOAuth, target.Credentials.Kind)

	x := newS2SEnv(t, time.Now().Add(time.Hour), nil)
	hybrid := x.profile("hybrid")
	hybrid.ServerType = serversync.ServerTypeExchangeOnlineHybrid
	serversync.NormalizeProfile(hybrid)
	target, err = serversync.ResolveTarget(ctx, hybrid, m, serversync.DefaultOrgSettings(), serversync.ACT)
	require.NoError(t, err)
	assert.Equal(t, x.graph.URL(), target.Endpoint.URL)
	assert.Equal(t, auth.KindAppOnly, target.Credentials.Kind)
	assert.Equal(t, "ann@example.test", target.Credentials.Username)
	token, err := target.Credentials.TokenSource.Token()
	require.NoError(t, err)
	_, err = x.entra.VerifyAccessToken(token.AccessToken, graphtest.GraphAudience)
	require.NoError(t, err, "a token for Graph")
}

// A recurrence Graph cannot hold (FREQ=HOURLY) is refused for that item
// alone: it stays pending with a warning, the others sync, ACT stays enabled.
func TestGraphACTRefusedRecurrence(t *testing.T) {
	ctx := context.Background()
	e := newGraphACTEnv(t, graphACTScopes...)
	e.enable(t)
	s, other := e.syncer(t), e.other(t)
	hourly := e.appointment("every hour", soon())
	hourly.Recurrence = &serversync.Recurrence{Rule: "FREQ=HOURLY;COUNT=3"}
	refused, err := s.SaveACTItem(ctx, "", hourly)
	require.NoError(t, err)
	fine, err := s.SaveACTItem(ctx, "", e.appointment("fine", soon()))
	require.NoError(t, err)
	require.NoError(t, e.syncOnce(t))
	assert.True(t, e.record(t, refused.ID).Pending, "the refused item waits")
	assert.False(t, e.record(t, fine.ID).Pending)
	assert.Len(t, onServer(t, other, serversync.KindAppointment, fine.UID), 1)
	assert.Empty(t, onServer(t, other, serversync.KindAppointment, refused.UID))
	warnings := storetest.Collect(t, e.store.ListAlerts(ctx, serversync.AlertFilter{MailboxID: e.mailbox.ID, Level: serversync.AlertWarning}))
	require.NotEmpty(t, warnings)
	assert.Contains(t, warnings[len(warnings)-1].Message, refused.ID)
	m, err := e.store.GetMailbox(ctx, e.mailbox.ID)
	require.NoError(t, err)
	assert.True(t, m.ACTEnabled)
}
