package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http/httptest"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/dav"
	"github.com/serversync/serversync/internal/davdemo"
	"github.com/serversync/serversync/internal/testcert"
)

// actDemo is the in-process CalDAV/CardDAV server alice's appointments, contacts
// and tasks sync with.
type actDemo struct {
	url, caPEM, user, password string
	close                      func()
}

// startACTDemo serves davdemo over TLS with a certificate of its own, which the
// profile trusts next to the mail server's.
func startACTDemo(user, password string) (*actDemo, error) {
	cert, caPEM, err := testcert.New()
	if err != nil {
		return nil, err
	}
	srv := httptest.NewUnstartedServer(davdemo.New(user, password))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	return &actDemo{url: srv.URL + "/", caPEM: caPEM, user: user, password: password, close: srv.Close}, nil
}

// actRoundTrip shows ACT both ways: an appointment the host saves reaches the
// CalDAV server, and an edit made there (by a phone, say) comes back to the
// host's record.
func actRoundTrip(ctx context.Context, out io.Writer, syncer *serversync.Syncer, mailbox *serversync.Mailbox, demo *actDemo, caPEM string) error {
	start := time.Now().Add(24 * time.Hour).Truncate(time.Hour)
	rec, err := syncer.SaveACTItem(ctx, "", &serversync.Appointment{
		ACTHeader: serversync.ACTHeader{MailboxID: mailbox.ID},
		Subject:   "Contract review with Fabrikam", Location: "Room 4",
		Start: serversync.DateTime{Time: start}, End: serversync.DateTime{Time: start.Add(time.Hour)},
	})
	if err != nil {
		return err
	}
	pushed, err := waitForRecord(ctx, syncer, rec.ID, "the appointment to reach the CalDAV server", func(r *serversync.ACTRecord) bool {
		return !r.Pending && r.ServerID != ""
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "act       appointment %q saved here, on the CalDAV server as %s\n", "Contract review with Fabrikam", pushed.ServerID)

	// Another client of the same calendar moves it.
	phone, err := (&dav.Connector{}).OpenACT(ctx, &serversync.Target{
		Endpoint:    serversync.Endpoint{URL: demo.url, TLS: serversync.TLSImplicit, RootCAsPEM: caPEM, Timeout: 10 * time.Second},
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: demo.user, Password: auth.NewSecret(demo.password)},
	})
	if err != nil {
		return err
	}
	defer phone.Close()
	onServer, err := pushed.Decode()
	if err != nil {
		return err
	}
	a := onServer.(*serversync.Appointment)
	a.Start.Time, a.End.Time = a.Start.Time.Add(2*time.Hour), a.End.Time.Add(2*time.Hour)
	a.Subject = "Contract review with Fabrikam (moved)"
	if err := phone.Put(ctx, a, pushed.ChangeKey); err != nil {
		return fmt.Errorf("edit the appointment on the server: %w", err)
	}
	back, err := waitForRecord(ctx, syncer, rec.ID, "the server's edit to come back", func(r *serversync.ACTRecord) bool {
		return r.Version > pushed.Version
	})
	if err != nil {
		return err
	}
	item, err := back.Decode()
	if err != nil {
		return err
	}
	got := item.(*serversync.Appointment)
	fmt.Fprintf(out, "act       edited on the server, back here as version %d: %q at %s\n", back.Version, got.Subject, got.Start.Time.Local().Format("15:04"))
	return nil
}

// waitForRecord polls an ACT record until done says so, for at most waitTimeout.
func waitForRecord(ctx context.Context, syncer *serversync.Syncer, id, what string, done func(*serversync.ACTRecord) bool) (*serversync.ACTRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	for {
		r, err := syncer.ACTRecord(ctx, id)
		if err != nil {
			return nil, err
		}
		if done(r) {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
