package monitor

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"slices"
	"time"

	"github.com/serversync/serversync"
)

// Limits of what one page shows.
const (
	pageMailboxes  = 500
	pageAlerts     = 20
	pageActivities = 15
	certWarning    = 30 * 24 * time.Hour
	failureWindow  = time.Hour
)

// workloadRow counts mailboxes of one workload by state.
type workloadRow struct {
	Workload                              string
	Enabled, Failed, NotTested, NotServer int
}

type profileRow struct {
	Profile          *serversync.Profile
	Mailboxes        int
	Enabled, Failing int
}

type mailboxRow struct {
	Mailbox     *serversync.Mailbox
	ProfileName string
	Tracked     int64
	Progress    *progressView
}

type progressView struct {
	Done, Total int64
	Known       bool // Total is known
}

type certView struct {
	Profile  *serversync.Profile
	Subject  string
	NotAfter time.Time
	Expired  bool
	Days     int
}

type overviewData struct {
	Now               time.Time
	Mailboxes         int
	Shown             int
	Workloads         []workloadRow
	PendingApproval   int
	TestPending       int
	Postponed         int
	ThrottledLastHour int         // mailboxes whose last error, within the hour, was the server's "slow down"
	Throttling        *Throttling // this process's throttled answers, when Options.Throttling is set
	FailuresLastHour  int
	MassFailures      []*serversync.Alert
	Chart             *chart
	Latency           chart
	BacklogPending    int64
	BacklogSending    int64
	OutgoingFailed    int64
	Certificates      []certView
	Profiles          []profileRow
	Rows              []mailboxRow
	InitialSyncs      []mailboxRow
	Alerts            []*serversync.Alert
	ProfileNames      map[string]string
	MailboxAddresses  map[string]string
	Hosts             []string
	RecorderConnected bool
}

func (h *Handler) loadOverview(ctx context.Context) (*overviewData, error) {
	d, err := h.loadOverviewData(ctx)
	if err == nil && h.opts.Throttling != nil {
		t := h.opts.Throttling()
		d.Throttling = &t
	}
	return d, err
}

func (h *Handler) loadOverviewData(ctx context.Context) (*overviewData, error) {
	now := h.opts.Now()
	d := &overviewData{Now: now, ProfileNames: map[string]string{}, MailboxAddresses: map[string]string{}}
	profiles := map[string]*profileRow{}
	var order []string
	for p, err := range h.store.ListProfiles(ctx) {
		if err != nil {
			return nil, err
		}
		profiles[p.ID] = &profileRow{Profile: p}
		order = append(order, p.ID)
		d.ProfileNames[p.ID] = p.Name
		if c, ok := certificateOf(p, now); ok && (c.Expired || c.NotAfter.Sub(now) <= certWarning) {
			d.Certificates = append(d.Certificates, c)
		}
	}
	counts, err := h.allCounts(ctx)
	if err != nil {
		return nil, err
	}
	tracked := map[string]int64{}
	for _, c := range counts {
		switch {
		case c.Direction == serversync.Incoming:
			tracked[c.MailboxID] += c.Count
		case c.Status == serversync.StatusPendingSend:
			d.BacklogPending += c.Count
		case c.Status == serversync.StatusSending:
			d.BacklogSending += c.Count
		case c.Status == serversync.StatusFailed:
			d.OutgoingFailed += c.Count
		}
	}
	d.Workloads = []workloadRow{{Workload: "Incoming"}, {Workload: "Outgoing"}, {Workload: "ACT"}}
	hosts := map[string]bool{}
	durations := make([]int, len(durationBuckets))
	for m, err := range h.store.ListMailboxes(ctx, serversync.MailboxFilter{}) {
		if err != nil {
			return nil, err
		}
		d.Mailboxes++
		d.MailboxAddresses[m.ID] = m.EmailAddress
		countWorkload(&d.Workloads[0], m.IncomingMethod == serversync.IncomingServerSideSync, m.IncomingEnabled, m.IncomingStatus)
		countWorkload(&d.Workloads[1], m.OutgoingMethod == serversync.OutgoingServerSideSync, m.OutgoingEnabled, m.OutgoingStatus)
		countWorkload(&d.Workloads[2], m.ACTMethod == serversync.OutgoingServerSideSync, m.ACTEnabled, m.ACTStatus)
		if m.Approval == serversync.ApprovalPending || m.Approval == serversync.ApprovalEmpty {
			d.PendingApproval++
		}
		if m.TestAndEnablePending {
			d.TestPending++
		}
		if m.Stats.IncomingPostponedUntil.After(now) || m.Stats.OutgoingPostponedUntil.After(now) {
			d.Postponed++
		}
		if m.Stats.LastError.Code == serversync.CodeThrottled && now.Sub(m.Stats.LastError.At) < failureWindow {
			d.ThrottledLastHour++
		}
		if !m.Stats.LastSyncSucceededAt.IsZero() {
			durations[bucketOf(m.Stats.LastSyncDuration)]++
		}
		if m.LeaseHost != "" && m.LeaseExpiresAt.After(now) {
			hosts[m.LeaseHost] = true
		}
		if p := profiles[m.ProfileID]; p != nil {
			p.Mailboxes++
			if m.AnyEnabled() {
				p.Enabled++
			}
			if m.Status == serversync.TestFailure || m.Stats.LastError.Code != "" {
				p.Failing++
			}
		}
		row := mailboxRow{Mailbox: m, ProfileName: d.ProfileNames[m.ProfileID], Tracked: tracked[m.ID], Progress: progressOf(m, tracked[m.ID])}
		if row.Progress != nil {
			d.InitialSyncs = append(d.InitialSyncs, row)
		}
		if len(d.Rows) < pageMailboxes {
			d.Rows = append(d.Rows, row)
		}
	}
	d.Shown = len(d.Rows)
	d.Latency = latencyChart(durations)
	for _, id := range order {
		d.Profiles = append(d.Profiles, *profiles[id])
	}
	for host := range hosts {
		d.Hosts = append(d.Hosts, host)
	}
	slices.Sort(d.Hosts)

	seen := map[string]bool{}
	for a, err := range h.store.ListAlerts(ctx, serversync.AlertFilter{Since: now.Add(-failureWindow)}) {
		if err != nil {
			return nil, err
		}
		// An alert goes to the mailbox owner and, for profile trouble, the profile
		// owner too: count each event once.
		key := a.MailboxID + "\x00" + a.Code + "\x00" + a.CreatedAt.String()
		if seen[key] {
			continue
		}
		seen[key] = true
		if a.Level == serversync.AlertError {
			d.FailuresLastHour++
		}
		if a.Code == serversync.CodeMassFailure {
			d.MassFailures = append(d.MassFailures, a)
		}
		if len(d.Alerts) < pageAlerts {
			d.Alerts = append(d.Alerts, a)
		}
	}
	if h.opts.Recorder != nil {
		c := throughputChart(h.opts.Recorder.LastHour(now))
		d.Chart, d.RecorderConnected = &c, true
	}
	return d, nil
}

func countWorkload(row *workloadRow, server, enabled bool, status serversync.TestStatus) {
	switch {
	case !server:
		row.NotServer++
	case enabled:
		row.Enabled++
	case status == serversync.TestFailure:
		row.Failed++
	default:
		row.NotTested++
	}
}

// progressOf is the initial sync's progress, or nil when there is none going on.
func progressOf(m *serversync.Mailbox, tracked int64) *progressView {
	if !m.IncomingEnabled || !m.Stats.LastSyncSucceededAt.IsZero() {
		return nil
	}
	// Filtered messages are counted when the sync ends; until then the activities
	// stored are what moved.
	p := &progressView{Done: tracked, Total: int64(m.Stats.InitialSyncTotal)}
	p.Known = p.Total > 0
	if p.Known {
		p.Done = min(p.Done, p.Total)
	}
	return p
}

// certificateOf reads the first certificate of a profile's CertificatePEM.
func certificateOf(p *serversync.Profile, now time.Time) (certView, bool) {
	rest := []byte(p.CertificatePEM)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return certView{}, false
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return certView{}, false
		}
		left := cert.NotAfter.Sub(now)
		return certView{Profile: p, Subject: cert.Subject.String(), NotAfter: cert.NotAfter, Expired: left <= 0,
			Days: int(left.Hours() / 24)}, true
	}
}

type profileData struct {
	Profile     *serversync.Profile
	Certificate *certView
	Rows        []mailboxRow
	Alerts      []*serversync.Alert
	CanTest     bool
}

func (h *Handler) loadProfile(ctx context.Context, id string) (*profileData, error) {
	p, err := h.store.GetProfile(ctx, id)
	if err != nil {
		return nil, err
	}
	d := &profileData{Profile: p, CanTest: h.opts.Syncer != nil}
	if c, ok := certificateOf(p, h.opts.Now()); ok {
		d.Certificate = &c
	}
	counts, err := h.allCounts(ctx)
	if err != nil {
		return nil, err
	}
	tracked := map[string]int64{}
	for _, c := range counts {
		if c.Direction == serversync.Incoming {
			tracked[c.MailboxID] += c.Count
		}
	}
	for m, err := range h.store.ListMailboxes(ctx, serversync.MailboxFilter{ProfileID: id, Limit: pageMailboxes}) {
		if err != nil {
			return nil, err
		}
		d.Rows = append(d.Rows, mailboxRow{Mailbox: m, ProfileName: p.Name, Tracked: tracked[m.ID], Progress: progressOf(m, tracked[m.ID])})
	}
	for a, err := range h.store.ListAlerts(ctx, serversync.AlertFilter{ProfileID: id, Limit: pageAlerts}) {
		if err != nil {
			return nil, err
		}
		d.Alerts = append(d.Alerts, a)
	}
	return d, nil
}

type mailboxData struct {
	Mailbox      *serversync.Mailbox
	Profile      *serversync.Profile
	Advice       string
	Counts       map[serversync.Direction]map[serversync.ActivityStatus]int64
	Tracked      int64
	Failed       int64
	Sent         int64
	SendFailed   int64
	Pending      int64
	Progress     *progressView
	Activities   []*serversync.EmailActivity
	Alerts       []*serversync.Alert
	LeaseHeld    bool
	TestRunning  bool
	CanTest      bool
	Filters      []serversync.IncomingFilter
	AllFiltered  bool
	Now          time.Time
	LastSyncWait time.Duration
}

func (h *Handler) loadMailbox(ctx context.Context, id string) (*mailboxData, error) {
	m, err := h.store.GetMailbox(ctx, id)
	if err != nil {
		return nil, err
	}
	now := h.opts.Now()
	d := &mailboxData{Mailbox: m, Now: now, CanTest: h.opts.Syncer != nil,
		LeaseHeld:   m.LeaseHost != "" && m.LeaseExpiresAt.After(now),
		TestRunning: m.TestHost != "" && m.TestLockExpiresAt.After(now),
		Advice:      serversync.CodeAdvice(m.Stats.LastError.Code),
		Filters: []serversync.IncomingFilter{serversync.FilterAll, serversync.FilterResponsesToCRM,
			serversync.FilterLeadsContactsAccounts, serversync.FilterEmailEnabledRecords, serversync.FilterNone},
	}
	if m.ProfileID != "" {
		if d.Profile, err = h.store.GetProfile(ctx, m.ProfileID); err != nil && !isNotFound(err) {
			return nil, err
		}
	}
	counts, err := serversync.CountActivities(ctx, h.store, serversync.ActivityCountFilter{MailboxID: id})
	if err != nil {
		return nil, err
	}
	d.Counts = serversync.Totals(counts)
	in, out := d.Counts[serversync.Incoming], d.Counts[serversync.Outgoing]
	d.Tracked, d.Failed = in[serversync.StatusTracked], in[serversync.StatusFailed]
	d.Sent, d.SendFailed = out[serversync.StatusSent], out[serversync.StatusFailed]
	d.Pending = out[serversync.StatusPendingSend] + out[serversync.StatusSending]
	d.Progress = progressOf(m, d.Tracked+d.Failed)
	d.AllFiltered = m.Stats.Filtered > 0 && d.Tracked+d.Failed == 0
	if d.Activities, err = serversync.RecentActivities(ctx, h.store, id, pageActivities); err != nil {
		return nil, err
	}
	for a, err := range h.store.ListAlerts(ctx, serversync.AlertFilter{MailboxID: id, Limit: pageAlerts}) {
		if err != nil {
			return nil, err
		}
		d.Alerts = append(d.Alerts, a)
	}
	return d, nil
}

func isNotFound(err error) bool { return errors.Is(err, serversync.ErrNotFound) }
