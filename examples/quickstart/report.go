package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/serversync/serversync"
)

func printProfile(out io.Writer, p *serversync.Profile) {
	fmt.Fprintf(out, "profile %q (%s), normalized on save:\n", p.Name, p.ServerType)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "  incoming\t%s:%d\tTLS %s\tcredentials %s\n", p.IncomingServer, p.IncomingPort, p.IncomingTLS, p.IncomingCredentialSource)
	fmt.Fprintf(w, "  outgoing\t%s:%d\tTLS %s\tcredentials %s\n", p.OutgoingServer, p.OutgoingPort, p.OutgoingTLS, p.OutgoingCredentialSource)
	if p.ACTServerURL != "" {
		fmt.Fprintf(w, "  act\t%s\tCalDAV/CardDAV\tcredentials %s\n", p.ACTServerURL, p.IncomingCredentialSource)
	}
	fmt.Fprintf(w, "  limits\t%d connections\ttimeout %s\tminimum polling interval %s\n", p.MaxConcurrentConnections, p.ConnectionTimeout, p.MinPollingInterval)
	_ = w.Flush()
	fmt.Fprintln(out)
}

func printMailboxes(ctx context.Context, out io.Writer, admin *serversync.Admin) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "MAILBOX\tREGARDING\tAPPROVAL\tSTATUS\tINCOMING\tOUTGOING\tACT\tLAST SYNC\tITEMS\tPASSWORD")
	for m, err := range admin.Mailboxes(ctx, serversync.MailboxFilter{}) {
		if err != nil {
			return err
		}
		lastSync := "never"
		if at := m.Stats.LastSyncSucceededAt; !at.IsZero() {
			lastSync = fmt.Sprintf("%s (%s)", at.Local().Format(time.TimeOnly), m.Stats.LastSyncDuration.Round(time.Millisecond))
		}
		// %v on the password shows what logs and printouts show: [REDACTED].
		act := enabled(m.ACTEnabled)
		if m.ACTMethod != serversync.OutgoingServerSideSync {
			act = "-"
		}
		fmt.Fprintf(w, "%s\t%s %s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%v\n", m.EmailAddress, m.Regarding.Type, m.Regarding.ID,
			m.Approval, m.Status, enabled(m.IncomingEnabled), enabled(m.OutgoingEnabled), act,
			lastSync, m.Stats.ItemsProcessedLastSync, m.Password)
	}
	return w.Flush()
}

func enabled(on bool) string {
	if on {
		return "enabled"
	}
	return "disabled"
}

// printActivities counts the email activities per mailbox, direction and status
// (and how many of them are linked to an earlier email: correlated), and shows the
// latest few.
func printActivities(ctx context.Context, out io.Writer, store serversync.Store) error {
	addresses := map[string]string{} // mailbox ID → email address
	for m, err := range store.ListMailboxes(ctx, serversync.MailboxFilter{}) {
		if err != nil {
			return err
		}
		addresses[m.ID] = m.EmailAddress
	}
	type group struct {
		mailbox   string
		direction serversync.Direction
		status    serversync.ActivityStatus
	}
	counts, correlated := map[group]int{}, map[group]int{}
	const latestCount = 5
	var latest []*serversync.EmailActivity // the last latestCount stored, oldest first
	for a, err := range store.ListActivities(ctx, serversync.ActivityFilter{}) {
		if err != nil {
			return err
		}
		g := group{addresses[a.MailboxID], a.Direction, a.Status}
		counts[g]++
		if a.CorrelatedTo != "" {
			correlated[g]++
		}
		a.TextBody, a.HTMLBody, a.Attachments, a.Raw = "", "", nil, nil // only the headers are kept
		latest = append(latest, a)
		if len(latest) > latestCount {
			latest = latest[1:]
		}
	}
	groups := make([]group, 0, len(counts))
	for g := range counts {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b group) int {
		return cmp.Or(cmp.Compare(a.mailbox, b.mailbox), cmp.Compare(a.direction, b.direction), cmp.Compare(a.status, b.status))
	})
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ACTIVITIES\tDIRECTION\tSTATUS\tCOUNT\tCORRELATED")
	for _, g := range groups {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\n", g.mailbox, g.direction, g.status, counts[g], correlated[g])
	}
	if err := w.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "LATEST\tMAILBOX\tSTATUS\tREGARDING\tSUBJECT")
	for _, a := range slices.Backward(latest) {
		regarding := "-"
		if !a.Regarding.IsZero() {
			regarding = a.Regarding.Type + " " + a.Regarding.ID
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", a.Direction, addresses[a.MailboxID], a.Status, regarding, shorten(a.Subject, 60))
	}
	return w.Flush()
}

// shorten cuts s to at most n characters, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
