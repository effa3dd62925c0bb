package dav_test

import (
	"context"
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
