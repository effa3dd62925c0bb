// Package storetest is the conformance suite every [serversync.Store] passes, and
// the benchmarks every store shares.
//
// It turns each contract sentence of serversync.Store, and of the optional
// interfaces a store may implement (serversync.ConnectionSlotStore,
// serversync.AppTokenStore, serversync.ACTStore, serversync.SecretRotator), into a test, so an implementation — the ones in this
// module or a third party's — proves it behaves like the others by calling [Run]
// from its own test:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) serversync.Store {
//			s, err := mystore.Open(...) // a fresh, empty store
//			require.NoError(t, err)
//			return s
//		})
//	}
//
// A store that keeps its data outside one handle describes itself with a [Harness]
// instead, so the suite can reopen its data under other keys (the SecretRotator
// tests) and the benchmarks can open several handles on it, as Go CDK's drivertest
// and River's riverdrivertest do:
//
//	var harness = storetest.Harness{
//		NewStore:    func(tb testing.TB) serversync.Store { … },
//		NewDatabase: func(tb testing.TB) func(auth.KeyProvider) serversync.Store { … },
//	}
//
//	func TestConformance(t *testing.T) { storetest.RunHarness(t, harness) }
//	func BenchmarkStore(b *testing.B)  { storetest.Benchmark(b, harness) }
//
// store/storekit holds the rules a store applies the way every other does.
//
// # The harness
//
// Run calls [NewStore] (RunHarness, Harness.NewStore) once per subtest, from
// parallel subtests, so it must hand out independent, empty stores (a new in-memory
// store, a new SQLite file under t.TempDir(), a new PostgreSQL schema…). The suite
// closes every store it gets, once, when the subtest ends (through t.Cleanup);
// NewStore must not close it itself. Clean-up the harness registers with t.Cleanup
// inside NewStore (dropping a schema, say) runs after that Close, because cleanups
// run last-registered first. Handles opened through Harness.NewDatabase are closed
// by the suite too, as soon as it is done with each.
//
// # What the suite assumes
//
//   - Times: stores keep instants, not locations or monotonic clock readings. The suite
//     compares times with [time.Time.Equal] semantics (it normalises to UTC first) and
//     only uses times with whole microseconds, so a store must keep at least
//     microsecond precision. Zero times must come back zero.
//   - Empty and nil slices are treated as equal.
//   - Names and e-mail addresses in ordering tests differ in their first letter and
//     share one case, so ordering by byte or by a case-insensitive collation both pass.
//   - The suite never calls the store from inside a List loop or an update callback
//     (the contract forbids the latter; the former is up to the implementation).
//
// Every call that takes a "now" (ClaimRequest.Now, LeaseRequest.Now, RenewLease)
// gets an injected clock; the suite never sleeps.
//
// # How the suite reads the contract
//
// Where serversync.Store leaves room, the suite checks one reading:
//
//   - An ID already used is a unique field taken: CreateProfile, CreateMailbox,
//     QueueOutgoing, AddAlert and SaveTracked return DuplicateError(entity, "ID")
//     (entities "Profile", "Mailbox", "EmailActivity", "Alert"). An empty ID (or
//     MessageKey) is refused with an error.
//   - SaveTracked skips an activity whose (MailboxID, MessageKey) is stored or
//     appeared earlier in the same batch; an activity with a new key but an ID already
//     used fails the whole batch. QueueOutgoing of a taken (MailboxID, MessageKey)
//     fails with an error wrapping ErrAlreadyExists.
//   - UpdateActivity refuses to change MailboxID or MessageKey with a
//     *serversync.ValidationError naming the field, and stores nothing.
//   - QueueOutgoing stores status PendingSend whatever the caller set.
//   - Leases: a lease is held until it is released or another host acquires the
//     mailbox; a holder renewing after ExpiresAt, before anyone took the mailbox over,
//     still holds it. A lease is identified by MailboxID, Host and Token; a lease on a
//     deleted mailbox is lost (ErrLeaseLost). ReleaseLease clears LeaseHost and
//     LeaseExpiresAt.
//   - Connection slots: like leases, a slot or place in line past its ExpiresAt is
//     its holder's until an AcquireConnectionSlot of the same budget frees it.
//   - Alerts are listed in reverse storing order (the suite stores them with
//     increasing CreatedAt, so ordering by CreatedAt passes too).
//   - Update callbacks are not called for a missing record or with a cancelled
//     context; a callback's error is returned as is (the same value).
//   - After Close every method returns an error wrapping serversync.ErrClosed (the
//     optional interfaces' methods too); with a cancelled context every
//     method returns an error wrapping context.Canceled and stores nothing. List
//     methods report those errors as their first (and only) element.
package storetest

import (
	"iter"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// NewStore returns a fresh, empty store for one (sub)test. The suite closes it when
// the test ends; NewStore must not. It may be called from parallel tests.
type NewStore func(t *testing.T) serversync.Store

// Harness describes a store implementation to [RunHarness] and [Benchmark], the way
// Go CDK's drivertest harnesses do: NewStore is all the core suite needs; the other
// fields let it test and measure what only some stores have.
type Harness struct {
	// NewStore returns a fresh, empty store, as [NewStore] does; tb is a *testing.T
	// in the suite and a *testing.B in the benchmarks. Required.
	NewStore func(tb testing.TB) serversync.Store
	// NewDatabase, for a store whose data outlives one handle (a file, a database
	// server), creates fresh, empty storage and returns a function that opens a new
	// handle on it, with its own connections as another process would have, sealing
	// secrets with keys. The caller closes every handle it opens. The
	// SecretRotator tests and the several-host lease benchmark need it; without it
	// they skip.
	NewDatabase func(tb testing.TB) (open func(keys auth.KeyProvider) serversync.Store)
	// SeedMailboxes, when set, stores the benchmarks' many mailboxes at once (with
	// PostgreSQL's COPY, say); nil stores them with CreateMailbox one by one.
	SeedMailboxes func(tb testing.TB, s serversync.Store, mailboxes []*serversync.Mailbox)
	// LeaseBenchMailboxes is how many due mailboxes the lease benchmark leases
	// among; 0 means 10,000.
	LeaseBenchMailboxes int
}

// Run runs every conformance test against stores from newStore, as parallel subtests
// grouped by concern (Profiles, Mailboxes, OrgSettings, Activities, Outbox, Alerts,
// Leases, ConnectionSlots, AppTokens, ACT, SecretRotation, Lifecycle). Each subtest
// gets its own store. The ConnectionSlots, AppTokens and ACT tests skip a store that
// implements no serversync.ConnectionSlotStore, serversync.AppTokenStore or
// serversync.ACTStore; the
// SecretRotation tests, and the AppTokens tests that share a database between
// handles, need [RunHarness] with a NewDatabase.
func Run(t *testing.T, newStore NewStore) {
	t.Helper()
	RunHarness(t, Harness{NewStore: func(tb testing.TB) serversync.Store { return newStore(tb.(*testing.T)) }})
}

// RunHarness runs every conformance test, as [Run] does, against the store h
// describes.
func RunHarness(t *testing.T, h Harness) {
	t.Helper()
	require.NotNil(t, h.NewStore, "storetest: Harness.NewStore is required")
	groups := []struct {
		name string
		run  func(*testing.T, harness)
	}{
		{"Profiles", testProfiles},
		{"Mailboxes", testMailboxes},
		{"OrgSettings", testOrgSettings},
		{"Activities", testActivities},
		{"ActivityCounts", testActivityCounts},
		{"RecentActivities", testRecentActivities},
		{"Outbox", testOutbox},
		{"Alerts", testAlerts},
		{"Leases", testLeases},
		{"ConnectionSlots", testConnectionSlots},
		{"AppTokens", testAppTokens},
		{"ACT", testACT},
		{"SecretRotation", testSecretRotation},
		{"Lifecycle", testLifecycle},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, harness{h})
		})
	}
}

// harness hands out one store per subtest and closes it afterwards.
type harness struct {
	Harness
}

// open returns a new store that is closed when t ends.
func (h harness) open(t *testing.T) serversync.Store {
	t.Helper()
	s := h.openUnmanaged(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("storetest: Close: %v", err)
		}
	})
	return s
}

// openUnmanaged returns a new store the caller must close.
func (h harness) openUnmanaged(t *testing.T) serversync.Store {
	t.Helper()
	s := h.NewStore(t)
	require.NotNil(t, s, "storetest: NewStore returned nil")
	return s
}

// run runs f as a parallel subtest with its own store.
func (h harness) run(t *testing.T, name string, f func(t *testing.T, s serversync.Store)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		f(t, h.open(t))
	})
}

// Collect reads a whole Store stream (ListMailboxes, ListActivities…) into a slice,
// failing t at its first error.
func Collect[T any](t *testing.T, seq iter.Seq2[T, error]) []T {
	t.Helper()
	var out []T
	for v, err := range seq {
		require.NoError(t, err)
		out = append(out, v)
	}
	return out
}

// firstErr reads a stream until its first error and returns it (nil if none).
func firstErr[T any](seq iter.Seq2[T, error]) error {
	for _, err := range seq {
		if err != nil {
			return err
		}
	}
	return nil
}
