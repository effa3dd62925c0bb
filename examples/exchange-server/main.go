// Command exchange-server runs serversync's Exchange Server (on-premises) flow
// end to end against the fake EWS of connector/ews/ewstest: an ExchangeServer
// profile with AutoDiscover and a service account that impersonates each
// mailbox, three mailboxes Test & Enabled, their mail tracked through EWS
// SyncFolderItems, and an email sent with CreateItem (SendAndSaveCopy).
//
// It needs no setup and no network. The fake serves Autodiscover for
// contoso.test (the JSON v2 endpoint answers nothing, POX answers the EWS URL,
// as many on-premises servers do) and EWS, with the mailboxes
// alice@contoso.test, bob@contoso.test and carol@contoso.test and the service
// account svc-crm, which holds the ApplicationImpersonation role. The store is
// the embedded default (a SQLite file in a temporary directory).
//
//	go run ./examples/exchange-server
//
// Against a real Exchange Server, the profile is the same with the real
// service account; the connector is standard.Connectors(nil)'s, which runs
// Autodiscover at https://autodiscover.<domain> and https://<domain> (see
// ews.Connector.Discover for the rules that keep the password on the
// organisation's own hosts). The role is granted in the Exchange Management Shell:
//
//	New-ManagementRoleAssignment -Name crm-impersonation -Role ApplicationImpersonation -User svc-crm
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/ews"
	"github.com/serversync/serversync/connector/ews/ewstest"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/store/sqlite"
)

const domain = "contoso.test"

var users = []string{"alice", "bob", "carol"}

// outcome is what a run did, for its test.
type outcome struct {
	status     map[string]serversync.TestStatus // Test & Enable, by address
	tracked    map[string][]string              // subjects tracked, by address
	discovered map[string]string                // Mailbox.DiscoveredServer, by address
	ewsURL     string                           // the fake's EWS URL
	sent       *serversync.EmailActivity
	sentCopies int // messages in alice's Sent Items on the server
	stats      ews.Stats
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "exchange-server:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) (*outcome, error) {
	srv, err := ewstest.NewServer(&ewstest.Options{Domains: []string{domain}})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	srv.AddUser("svc-crm", "svc-password", "")
	srv.AllowImpersonation("svc-crm", "*")
	srv.SetAutodiscover(domain, ewstest.AutodiscoverConfig{POX: true})
	for i, u := range users {
		address := u + "@" + domain
		srv.AddMailbox(address)
		msg := fmt.Appendf(nil, "From: <customer%d@fabrikam.test>\r\nTo: <%s>\r\nSubject: Order %d for %s\r\nMessage-ID: <order-%d@fabrikam.test>\r\n"+
			"Content-Type: text/plain; charset=utf-8\r\n\r\nPlease confirm the order.\r\n", i, address, 1040+i, u, i)
		if _, err := srv.Deliver(address, "inbox", msg, time.Now().Add(-time.Hour)); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(out, "exchange  %s (fake): Autodiscover for %s (POX), mailboxes %v, service account svc-crm with ApplicationImpersonation\n",
		srv.URL(), domain, users)

	dir, err := os.MkdirTemp("", "serversync-exchange-server-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "secret.key")
	if err := auth.GenerateKeyFile(keyFile); err != nil {
		return nil, err
	}
	keys, err := auth.KeysFromFile(keyFile)
	if err != nil {
		return nil, err
	}
	store, err := sqlite.Open(ctx, filepath.Join(dir, "serversync.db"), &sqlite.Options{Keys: keys})
	if err != nil {
		return nil, err
	}
	defer store.Close()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	admin := serversync.NewAdmin(store, &serversync.AdminConfig{Logger: logger,
		CanApprove: func(context.Context, string, *serversync.Mailbox) error { return nil }})
	profile, err := admin.CreateProfile(ctx, &serversync.Profile{
		Name: "Contoso Exchange (fake)", Owner: "user-admin", ServerType: serversync.ServerTypeExchangeServer,
		// No server: AutoDiscover finds each mailbox's EWS URL, cached on the
		// mailbox for Config.DiscoveryTTL (a day by default).
		AutoDiscover: true,
		// The service account logs in for every mailbox, naming it in EWS's
		// ExchangeImpersonation header. Without UseImpersonation it would open
		// each mailbox as a delegate (Full Access), naming the mailbox in each
		// folder id instead.
		IncomingCredentialSource: serversync.CredentialsProfile, UseImpersonation: true,
		Username: "svc-crm", Password: auth.NewSecret("svc-password"),
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "profile   %q: %s, AutoDiscover, %s credentials with impersonation (password %v)\n",
		profile.Name, profile.ServerType, profile.IncomingCredentialSource, profile.Password)

	// The fake's client resolves autodiscover.contoso.test to the fake and
	// trusts its certificate; a real deployment leaves HTTPClient nil.
	client := srv.Client()
	defer client.CloseIdleConnections()
	conns := standard.Connectors(&standard.Options{Logger: logger, EWS: &ews.Options{HTTPClient: client}})
	conn := conns.Incoming[serversync.ServerTypeExchangeServer].(*ews.Connector)
	syncer, err := serversync.NewSyncer(store, conns, &serversync.Config{
		ActivePoll: 500 * time.Millisecond, MaxIdlePoll: time.Second, Tick: 50 * time.Millisecond, Logger: logger,
	})
	if err != nil {
		return nil, err
	}

	res := &outcome{status: map[string]serversync.TestStatus{}, tracked: map[string][]string{}, discovered: map[string]string{}, ewsURL: srv.EWSURL()}
	var boxes []*serversync.Mailbox
	for _, u := range users {
		m, err := admin.CreateMailbox(ctx, &serversync.Mailbox{Name: u, EmailAddress: u + "@" + domain, ProfileID: profile.ID,
			Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-" + u}, IncomingFilter: serversync.FilterAll})
		if err != nil {
			return nil, err
		}
		if err := admin.Approve(ctx, "admin", m.ID); err != nil {
			return nil, err
		}
		if m, err = syncer.TestAndEnable(ctx, m.ID); err != nil {
			return nil, err
		}
		res.status[m.EmailAddress], res.discovered[m.EmailAddress] = m.Status, m.DiscoveredServer
		fmt.Fprintf(out, "mailbox   %-18s Test & Enable: %s, EWS at %s\n", m.EmailAddress, m.Status, m.DiscoveredServer)
		if m.Status != serversync.TestSuccess {
			return res, fmt.Errorf("Test & Enable of %s: %s", m.EmailAddress, m.Stats.LastError.Message)
		}
		boxes = append(boxes, m)
	}

	runErr := make(chan error, 1)
	go func() { runErr <- syncer.Run(ctx) }()
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = syncer.Stop(stopCtx)
		<-runErr
	}()

	for _, m := range boxes {
		var subjects []string
		err := waitFor(ctx, "the mail of "+m.EmailAddress, func() (bool, error) {
			list, err := incoming(ctx, store, m.ID)
			subjects = list
			return len(list) > 0, err
		})
		if err != nil {
			return res, err
		}
		res.tracked[m.EmailAddress] = subjects
		fmt.Fprintf(out, "tracked   %d message(s) in %s: %q\n", len(subjects), m.EmailAddress, subjects)
	}

	sent, err := syncer.QueueEmail(ctx, &serversync.EmailActivity{MailboxID: boxes[0].ID,
		To: []serversync.Address{{Email: "bob@" + domain}}, Subject: "Your order 1041", TextBody: "It ships today."})
	if err != nil {
		return res, err
	}
	if err := waitFor(ctx, "the email to be sent", func() (bool, error) {
		a, err := store.GetActivity(ctx, sent.ID)
		if err == nil && a.Status == serversync.StatusFailed {
			return false, fmt.Errorf("sending failed: %s", a.LastError)
		}
		res.sent = a
		return err == nil && a.Status == serversync.StatusSent, err
	}); err != nil {
		return res, err
	}
	res.sentCopies = len(srv.Messages("alice@"+domain, "sentitems"))
	fmt.Fprintf(out, "sent      %q from alice to bob with SendAndSaveCopy: %d copy in alice's Sent Items, saved by Exchange\n",
		res.sent.Subject, res.sentCopies)
	res.stats = conn.Stats()
	fmt.Fprintf(out, "ews       %d requests, %d busy answers\n", res.stats.Requests, res.stats.Busy)
	return res, nil
}

// incoming lists the subjects tracked in a mailbox.
func incoming(ctx context.Context, store serversync.Store, mailboxID string) ([]string, error) {
	var out []string
	for a, err := range store.ListActivities(ctx, serversync.ActivityFilter{MailboxID: mailboxID, Direction: serversync.Incoming}) {
		if err != nil {
			return nil, err
		}
		out = append(out, a.Subject)
	}
	return out, nil
}

// waitFor polls cond until it holds, fails, or ctx ends.
func waitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("waiting for %s", what), ctx.Err())
		case <-tick.C:
		}
	}
}
