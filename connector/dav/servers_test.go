package dav_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/acttest"
	"github.com/serversync/serversync/connector/dav"
)

// server returns the target of a real server started by scripts/davservers, or
// skips the test when its variables are not set.
func server(t *testing.T, name string) *serversync.Target {
	t.Helper()
	u := os.Getenv("SERVERSYNC_DAV_" + name + "_URL")
	if u == "" {
		t.Skipf("SERVERSYNC_DAV_%s_URL is not set: run `bash scripts/davservers start DIR` and source DIR/env", name)
	}
	return &serversync.Target{
		MailboxID: "mbx-" + name,
		Endpoint:  serversync.Endpoint{URL: u, Timeout: 20 * time.Second, TLS: serversync.TLSNone, AllowPlaintextAuth: true}, // loopback only
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: os.Getenv("SERVERSYNC_DAV_USER"),
			Password: auth.NewSecret(os.Getenv("SERVERSYNC_DAV_PASSWORD"))},
	}
}

func harness(c *dav.Connector, target *serversync.Target) acttest.Harness {
	return acttest.Harness{Open: func(ctx context.Context) (serversync.ACTSession, error) { return c.OpenACT(ctx, target) }}
}

func TestConformanceRadicale(t *testing.T) {
	acttest.Run(t, harness(&dav.Connector{}, server(t, "RADICALE")))
}

func TestConformanceXandikos(t *testing.T) {
	acttest.Run(t, harness(&dav.Connector{}, server(t, "XANDIKOS")))
}

// Both servers offer sync-collection, so the ctag/ETag listing runs against them
// with it turned off.
func TestConformanceRadicaleListing(t *testing.T) {
	acttest.Run(t, harness(&dav.Connector{DisableSyncCollection: true}, server(t, "RADICALE")))
}

func TestConformanceXandikosListing(t *testing.T) {
	acttest.Run(t, harness(&dav.Connector{DisableSyncCollection: true}, server(t, "XANDIKOS")))
}

// Both servers advertise sync-collection on every collection, so the plain runs
// above exercise the REPORT and the Listing runs the ctag/ETag listing.
func TestServersOfferSyncCollection(t *testing.T) {
	for _, name := range []string{"RADICALE", "XANDIKOS"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, c := range []*dav.Connector{{}, {DisableSyncCollection: true}} {
				s, err := c.OpenACT(ctx, server(t, name))
				if err != nil {
					t.Fatal(err)
				}
				for _, kind := range serversync.ACTKinds {
					if got := dav.SyncCollection(s, string(kind)); got == c.DisableSyncCollection {
						t.Errorf("%s (DisableSyncCollection %v): sync-collection used: %v", kind, c.DisableSyncCollection, got)
					}
				}
				_ = s.Close()
			}
		})
	}
}

// Changed items are read by multiget REPORTs, not one GET each.
func TestChangesReadByMultiget(t *testing.T) {
	for _, name := range []string{"RADICALE", "XANDIKOS"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := (&dav.Connector{}).OpenACT(ctx, server(t, name))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i := 0; i < 3; i++ {
				if err := s.Put(ctx, &serversync.Contact{DisplayName: "Multiget"}, ""); err != nil {
					t.Fatal(err)
				}
			}
			res, err := s.Changes(ctx, serversync.KindContact, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Changes) < 3 || dav.Gets(s) != 0 {
				t.Fatalf("%d changes read, %d of them with a GET of their own", len(res.Changes), dav.Gets(s))
			}
		})
	}
}

// TestOwnerMarker proves the ACT owner marker is kept by Radicale: set by
// PROPPATCH as a dead property, read back by another session, replaced. Xandikos
// keeps no property it does not know: there the marker is unsupported (and the
// Syncer syncs without it), which the test checks too.
func TestOwnerMarker(t *testing.T) {
	for _, name := range []string{"RADICALE", "XANDIKOS"} {
		t.Run(name, func(t *testing.T) {
			keeps := name == "RADICALE"
			target := server(t, name)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c := &dav.Connector{}
			open := func() serversync.ACTOwnerMarker {
				s, err := c.OpenACT(ctx, target)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				m, ok := s.(serversync.ACTOwnerMarker)
				if !ok {
					t.Fatal("a dav session is no ACTOwnerMarker")
				}
				return m
			}
			first := open()
			before, err := first.ACTOwner(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { // leave the shared account as it was, for other tests
				if before != "" {
					_ = first.SetACTOwner(context.Background(), before)
				}
			})
			for _, owner := range []string{"deployment-a <&>", "deployment-b"} {
				err := first.SetACTOwner(ctx, owner)
				if !keeps {
					if !errors.Is(err, errors.ErrUnsupported) {
						t.Fatalf("SetACTOwner on a server without dead properties: %v; want errors.ErrUnsupported", err)
					}
					if got, err := open().ACTOwner(ctx); err != nil || got != "" {
						t.Fatalf("ACTOwner = %q, %v; want none", got, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("SetACTOwner(%q): %v", owner, err)
				}
				got, err := open().ACTOwner(ctx)
				if err != nil || got != owner {
					t.Fatalf("ACTOwner = %q, %v; want %q", got, err, owner)
				}
			}
		})
	}
}

// TestCreateOfAKnownUIDNamesTheItem proves the contract exactly-once pushes rest
// on, on the real servers, for a UID that is no safe file name too: a second
// create with the UID of an item the server holds is refused with an
// *ACTConflictError naming that item.
func TestCreateOfAKnownUIDNamesTheItem(t *testing.T) {
	for _, name := range []string{"RADICALE", "XANDIKOS"} {
		t.Run(name, func(t *testing.T) {
			target := server(t, name)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := (&dav.Connector{}).OpenACT(ctx, target)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, uid := range []string{serversync.NewID(), "weird/uid with spaces?&" + serversync.NewID()} {
				first := &serversync.Task{Subject: "once", ACTHeader: serversync.ACTHeader{UID: uid}}
				if err := s.Put(ctx, first, ""); err != nil {
					t.Fatal(err)
				}
				again := &serversync.Task{Subject: "twice", ACTHeader: serversync.ACTHeader{UID: uid}}
				err := s.Put(ctx, again, "")
				var conflict *serversync.ACTConflictError
				if !errors.As(err, &conflict) || conflict.ServerID != first.ServerID {
					t.Fatalf("second create of UID %q: %v; want an *ACTConflictError naming %s", uid, err, first.ServerID)
				}
				if err := s.Delete(ctx, serversync.KindTask, first.ServerID, ""); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
