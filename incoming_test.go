package serversync_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/internal/netfault"
)

func TestSyncTracksEachMessageOnce(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	msgs := [][]byte{
		message("Bob <bob@partner.test>", alice.EmailAddress, "=?UTF-8?Q?Caf=C3=A9_order?=", "Message-ID: <m1@partner.test>\r\n", "First."),
		message("carol@partner.test", alice.EmailAddress, "No Message-ID", "", "Second."),
		[]byte("From: broken\r\nSubject: truncated multipart\r\nContent-Type: multipart/mixed; boundary=xyz\r\n\r\n--xyz\r\nContent-Type: text/plain\r\n\r\ncut off here"),
	}
	for _, raw := range msgs {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, raw))
	}
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "three activities", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 3 })

	got := e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})
	assert.Equal(t, "Café order", got[0].Subject, "subjects are decoded")
	assert.Equal(t, "m1@partner.test", got[0].MessageID)
	assert.Equal(t, "bob@partner.test", got[0].From.Email)
	assert.Contains(t, got[0].TextBody, "First.")
	assert.Equal(t, serversync.StatusTracked, got[2].Status, "a malformed message is still tracked")
	assert.NotEmpty(t, got[2].ParseError)
	assert.NotEmpty(t, got[2].Raw, "with its raw bytes kept")
	for _, a := range got {
		assert.Equal(t, serversync.Incoming, a.Direction)
		assert.NotEmpty(t, a.ServerRef)
	}
	eventually(t, "stats", func() bool {
		m, err := e.store.GetMailbox(context.Background(), alice.ID)
		return err == nil && m.Stats.ItemsProcessedLastSync == 3 && !m.Stats.LastSyncSucceededAt.IsZero()
	})

	// Offer everything again, as after a UIDVALIDITY change or a crash before the
	// cursor was saved: nothing is tracked twice.
	_, err := e.store.SaveTracked(context.Background(), &serversync.Cursor{MailboxID: alice.ID, Folder: "INBOX"}, nil)
	require.NoError(t, err)
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("dan@partner.test", alice.EmailAddress, "Fourth", "", "new")))
	e.clock.Advance(time.Hour) // due again
	resynced := e.clock.Now()
	// The sync that re-offers everything ends: whatever it tracked is stored by then.
	eventually(t, "the sync that re-offered everything", func() bool {
		m, err := e.store.GetMailbox(context.Background(), alice.ID)
		return err == nil && !m.Stats.LastSyncSucceededAt.Before(resynced)
	})
	assert.Len(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), 4, "the re-offered messages were not tracked again")
	assert.Equal(t, 4, e.countEvents(serversync.EventMailTracked))
}

func TestTrackingFailuresAreRecordedAndMoved(t *testing.T) {
	e := newSyncEnv(t, func(p *serversync.Profile) { p.MoveFailedToUndeliverable = true })
	alice := e.mailbox(t, "alice", nil)
	for _, subject := range []string{"fine", "refuse me", "panic please"} {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@partner.test", alice.EmailAddress, subject, "Message-ID: <"+strings.ReplaceAll(subject, " ", "-")+"@p>\r\n", "body")))
	}
	s := e.syncer(t, &serversync.Config{Track: func(_ context.Context, a *serversync.EmailActivity, _ *serversync.Mailbox) error {
		switch a.Subject {
		case "refuse me":
			return errors.New("no matching record")
		case "panic please":
			panic("host bug")
		}
		a.Regarding = serversync.RecordRef{Type: "case", ID: "c1"}
		return nil
	}})
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "three activities", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 3 })
	failed := e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID, Status: serversync.StatusFailed})
	require.Len(t, failed, 2)
	assert.Contains(t, failed[0].LastError, "no matching record")
	assert.Contains(t, failed[1].LastError, "panicked")
	tracked := e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID, Status: serversync.StatusTracked})
	require.Len(t, tracked, 1)
	assert.Equal(t, "c1", tracked[0].Regarding.ID, "the hook set the regarding link")

	eventually(t, "failed messages moved", func() bool {
		moved, err := e.demo.Messages(alice.EmailAddress, serversync.UndeliverableFolder)
		return err == nil && len(moved) == 2
	})
	inbox, err := e.demo.Messages(alice.EmailAddress, "INBOX")
	require.NoError(t, err)
	assert.Len(t, inbox, 1)
	assert.Len(t, e.alerts(t, serversync.AlertFilter{MailboxID: alice.ID, Level: serversync.AlertWarning}), 2, "an item alert per failure")
}

func TestDroppedConnectionLosesNothing(t *testing.T) {
	var proxy *netfault.Proxy
	e := newSyncEnv(t, throughProxy(t, &proxy))
	ctx := context.Background()
	alice := e.mailbox(t, "alice", nil)
	const total = 40
	for i := range total {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("bob@partner.test", alice.EmailAddress,
			fmt.Sprintf("message %d", i), fmt.Sprintf("Message-ID: <drop-%d@partner.test>\r\n", i), strings.Repeat("body text ", 1000))))
	}
	s := e.syncer(t, &serversync.Config{SaveBatch: 4})
	testAndEnable(t, s, alice)
	proxy.DropAfter(150_000) // the sync's connection drops after about 14 of the 40 messages (10 KB each)
	run(t, s)

	mailbox := func() *serversync.Mailbox {
		m, err := e.store.GetMailbox(ctx, alice.ID)
		require.NoError(t, err)
		return m
	}
	eventually(t, "the dropped sync recorded as a transient failure", func() bool { return mailbox().Stats.TransientFailureCount == 1 })
	require.Positive(t, proxy.Drops())
	m := mailbox()
	assert.True(t, m.IncomingEnabled, "one dropped connection does not disable the mailbox")
	assert.NotEmpty(t, m.Stats.LastError.Code)
	kept := len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}))
	assert.Positive(t, kept, "what was read before the drop is kept")
	assert.Less(t, kept, total)

	proxy.DropAfter(0)
	e.clock.Advance(serversync.RetryIntervalDefault)
	eventually(t, "every message after the retry", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) >= total
	})
	seen := map[string]bool{}
	for _, a := range e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}) {
		assert.False(t, seen[a.MessageID], "%s tracked twice", a.MessageID)
		seen[a.MessageID] = true
	}
	assert.Len(t, seen, total)
	eventually(t, "the failure count cleared by the successful sync", func() bool { return mailbox().Stats.TransientFailureCount == 0 })
}

// What a sync must still do on the server for messages it stored (delete them from
// a queue mailbox, move refused ones to Undeliverable) is not lost when the
// connection drops before it is done: the cursor stays before those messages, and
// the retry finds them stored and does only the rest.
func TestServerFollowUpsSurviveADroppedConnection(t *testing.T) {
	var proxy *netfault.Proxy
	e := newSyncEnv(t, throughProxy(t, &proxy))
	support := e.mailbox(t, "support", func(m *serversync.Mailbox) {
		m.Regarding = serversync.Regarding{Type: serversync.RegardingQueue, ID: "queue-support"}
		m.DeleteAfterProcessing = true
	})
	const total = 40
	for i := range total {
		require.NoError(t, e.demo.Deliver(support.EmailAddress, message("customer@partner.test", support.EmailAddress,
			fmt.Sprintf("request %d", i), fmt.Sprintf("Message-ID: <req-%d@partner.test>\r\n", i), strings.Repeat("please help ", 850))))
	}
	s := e.syncer(t, &serversync.Config{SaveBatch: 4})
	testAndEnable(t, s, support)
	proxy.DropAfter(150_000) // the sync's connection drops after about 14 of the 40 messages (10 KB each)
	run(t, s)
	tracked := func() int { return len(e.activities(t, serversync.ActivityFilter{MailboxID: support.ID})) }
	eventually(t, "the dropped sync", func() bool {
		m, err := e.store.GetMailbox(context.Background(), support.ID)
		return err == nil && m.Stats.TransientFailureCount == 1
	})
	require.Positive(t, tracked(), "what was read before the drop is kept")

	proxy.DropAfter(0)
	e.clock.Advance(serversync.RetryIntervalDefault)
	eventually(t, "every message tracked", func() bool { return tracked() == total })
	eventually(t, "every message deleted from the server, the first ones too", func() bool {
		left, err := e.demo.Messages(support.EmailAddress, "INBOX")
		return err == nil && len(left) == 0
	})
	assert.Equal(t, total, tracked(), "each tracked once")
}

// flakySaves fails one SaveTracked call, the failOn-th, as a database would.
// flakySaves fails the store's SaveTracked calls number failOn and 1 to failFirst.
type flakySaves struct {
	serversync.Store
	mu        sync.Mutex
	calls     int
	failOn    int
	failFirst int
}

func (f *flakySaves) SaveTracked(ctx context.Context, c *serversync.Cursor, a []*serversync.EmailActivity) (serversync.SaveResult, error) {
	f.mu.Lock()
	f.calls++
	fail := f.calls == f.failOn || f.calls <= f.failFirst
	f.mu.Unlock()
	if fail {
		return serversync.SaveResult{}, errors.New("database is locked")
	}
	return f.Store.SaveTracked(ctx, c, a)
}

// Batches are stored while the next is parsed. When one fails to store, no later
// save may write a cursor past its messages: they are tracked all the same.
func TestFailedSaveLosesNothing(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	const messages = 23
	for i := range messages {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, fmt.Sprintf("m%d", i), "", "b")))
	}
	store := &flakySaves{Store: e.store, failOn: 2}
	e.store = store
	s := e.syncer(t, &serversync.Config{SaveBatch: 5})
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "every message tracked", func() bool {
		e.clock.Advance(time.Minute) // the failed sync is retried a few minutes later
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == messages
	})
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.Greater(t, store.calls, 2, "the failed save happened")
}

func TestForwardMailboxAttributesAndDeletes(t *testing.T) {
	e := newSyncEnv(t, nil)
	dave := e.mailbox(t, "dave", func(m *serversync.Mailbox) { m.IncomingMethod = serversync.IncomingForwardMailbox })
	fwd := e.mailbox(t, "forward", func(m *serversync.Mailbox) {
		m.IsForwardMailbox, m.DeleteAfterProcessing = true, true
		m.Regarding = serversync.Regarding{}
		m.OutgoingMethod = serversync.OutgoingNone
	})
	original := message("customer@partner.test", dave.EmailAddress, "Original question", "Message-ID: <orig-1@partner.test>\r\n", "Can you help?")
	forwarded := []byte("From: " + dave.EmailAddress + "\r\nTo: " + fwd.EmailAddress + "\r\nSubject: FW: Original question\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nforwarded by rule\r\n" +
		"--b1\r\nContent-Type: message/rfc822\r\n\r\n" + string(original) + "\r\n--b1--\r\n")
	require.NoError(t, e.demo.Deliver(fwd.EmailAddress, forwarded))
	s := e.syncer(t, nil)
	testAndEnable(t, s, fwd)
	run(t, s)
	eventually(t, "attributed to dave", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: dave.ID})) == 1 })
	a := e.activities(t, serversync.ActivityFilter{MailboxID: dave.ID})[0]
	assert.Equal(t, "Original question", a.Subject)
	assert.Equal(t, "customer@partner.test", a.From.Email)
	assert.Equal(t, fwd.ID, a.ViaMailbox)
	eventually(t, "deleted from the forward mailbox", func() bool {
		left, err := e.demo.Messages(fwd.EmailAddress, "INBOX")
		return err == nil && len(left) == 0
	})
}

func TestIdleTracksNewMailWithinSeconds(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "first", "", "b")))
	s := e.syncer(t, &serversync.Config{IdleConnections: 10})
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "first message", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 1 })
	// The clock does not move: only IDLE can bring the next message in.
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "second", "", "b")))
	eventually(t, "second message through IDLE", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 2 })
}

// An IDLE connection that breaks after a while (a restarted server, a NAT that
// forgot it) is redialed at once, so new mail still comes in within seconds.
func TestBrokenIdleConnectionIsRedialed(t *testing.T) {
	var proxy *netfault.Proxy
	e := newSyncEnv(t, throughProxy(t, &proxy))
	alice := e.mailbox(t, "alice", nil)
	count := func() int { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) }
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "first", "", "b")))
	s := e.syncer(t, &serversync.Config{IdleConnections: 10})
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "first message", func() bool { return count() == 1 })
	time.Sleep(200 * time.Millisecond) // the connection is now waiting in IDLE

	// Two minutes on the Syncer's clock pass in IDLE, then the connection breaks.
	// The clock stands still after that: only a redial brings the next message in.
	e.clock.Advance(2 * time.Minute)
	proxy.DropAll()
	require.Positive(t, proxy.Drops())
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, "second", "", "b")))
	eventually(t, "second message after the redial", func() bool { return count() == 2 })
}

type resolver map[string]serversync.PartyKind

func (r resolver) ResolveAddress(_ context.Context, email string) (serversync.Party, error) {
	return serversync.Party{Kind: r[email], Ref: serversync.RecordRef{Type: string(r[email]), ID: email}}, nil
}

func TestIncomingFilters(t *testing.T) {
	e := newSyncEnv(t, nil)
	filters := map[string]serversync.IncomingFilter{
		"all": serversync.FilterAll, "responses": serversync.FilterResponsesToCRM,
		"contacts": serversync.FilterLeadsContactsAccounts, "records": serversync.FilterEmailEnabledRecords, "none": serversync.FilterNone,
	}
	boxes := map[string]*serversync.Mailbox{}
	for name, f := range filters {
		boxes[name] = e.mailbox(t, name, func(m *serversync.Mailbox) { m.IncomingFilter = f })
		for _, from := range []string{"contact@p.test", "user@p.test", "stranger@p.test"} {
			require.NoError(t, e.demo.Deliver(boxes[name].EmailAddress, message(from, boxes[name].EmailAddress, "hello from "+from, "", "b")))
		}
	}
	s := e.syncer(t, &serversync.Config{Resolver: resolver{"contact@p.test": serversync.PartyContact, "user@p.test": serversync.PartyUser}})
	for _, m := range boxes {
		testAndEnable(t, s, m)
	}
	run(t, s)
	want := map[string]int{"all": 3, "responses": 0, "contacts": 1, "records": 2, "none": 0}
	for name, n := range want {
		eventually(t, name+" synced", func() bool {
			m, err := e.store.GetMailbox(context.Background(), boxes[name].ID)
			return err == nil && !m.Stats.LastSyncSucceededAt.IsZero()
		})
		assert.Len(t, e.activities(t, serversync.ActivityFilter{MailboxID: boxes[name].ID}), n, name)
	}
	contact := e.activities(t, serversync.ActivityFilter{MailboxID: boxes["contacts"].ID})[0]
	assert.Equal(t, "contact@p.test", contact.Regarding.ID, "the resolved record becomes the regarding link")
}

// Malformed mail is tracked with what could be read, or recorded as an item
// failure; nothing is lost and nothing panics.
func TestMalformedMailIsTracked(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	malformed := map[string]string{
		"truncated multipart": "From: a@p.test\r\nSubject: truncated\r\nMessage-ID: <m-trunc@p>\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nhalf a part",
		"bad charset":         "From: a@p.test\r\nSubject: =?x-unknown?Q?caf=E9?=\r\nMessage-ID: <m-charset@p>\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\ncaf\xe9\r\n",
		"missing headers":     "\r\njust a body, no headers at all\r\n",
		"huge header line":    "From: a@p.test\r\nX-Long: " + strings.Repeat("h", 2<<20) + "\r\nMessage-ID: <m-huge@p>\r\nSubject: huge\r\n\r\nbody\r\n",
		"8-bit garbage":       "From: \xff\xfe <a@p.test>\r\nSubject: \x00\x01\x80\x81\r\nMessage-ID: <m-8bit@p>\r\n\r\n\xc3\x28\xa0\xa1\r\n",
		"bad base64":          "From: a@p.test\r\nSubject: b64\r\nMessage-ID: <m-b64@p>\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64***\r\n",
	}
	for _, raw := range malformed {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, []byte(raw)))
	}
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "every malformed message stored", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == len(malformed)
	})
	for _, a := range e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}) {
		assert.Equal(t, serversync.StatusTracked, a.Status, a.Subject)
		if a.ParseError != "" {
			assert.NotEmpty(t, a.Raw, "raw kept for %q", a.Subject)
		}
	}
}

// A reply fetched in the same batch as the message it answers is still linked to it.
func TestReplyInTheSameBatchIsCorrelated(t *testing.T) {
	e := newSyncEnv(t, nil)
	alice := e.mailbox(t, "alice", nil)
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("c@p.test", alice.EmailAddress, "Question", "Message-ID: <q1@p.test>\r\n", "?")))
	require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("d@p.test", alice.EmailAddress, "Re: Question", "Message-ID: <r1@p.test>\r\nIn-Reply-To: <q1@p.test>\r\n", "!")))
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "both tracked", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == 2 })
	got := e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})
	assert.Equal(t, got[0].ID, got[1].CorrelatedTo)
	assert.Equal(t, serversync.CorrelatedByHeaders, got[1].CorrelationMethod)
}

// ProcessEmailFrom skips older mail; a mailbox's own, earlier value pulls it in.
func TestProcessEmailFrom(t *testing.T) {
	future := time.Now().Add(time.Hour)
	e := newSyncEnv(t, func(p *serversync.Profile) { p.ProcessEmailFrom = future })
	alice := e.mailbox(t, "alice", nil)
	bob := e.mailbox(t, "bob", func(m *serversync.Mailbox) { m.ProcessEmailFrom = time.Now().Add(-time.Hour) })
	for _, m := range []*serversync.Mailbox{alice, bob} {
		require.NoError(t, e.demo.Deliver(m.EmailAddress, message("x@p.test", m.EmailAddress, "received now", "", "b")))
	}
	s := e.syncer(t, nil)
	testAndEnable(t, s, alice)
	testAndEnable(t, s, bob)
	run(t, s)
	eventually(t, "bob's mail tracked", func() bool { return len(e.activities(t, serversync.ActivityFilter{MailboxID: bob.ID})) == 1 })
	eventually(t, "alice synced", func() bool {
		m, err := e.store.GetMailbox(context.Background(), alice.ID)
		return err == nil && !m.Stats.LastSyncSucceededAt.IsZero()
	})
	assert.Empty(t, e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID}), "mail received before the profile's ProcessEmailFrom is skipped")
}

// keyLookups counts how the incoming pipeline asks the store whether messages
// are tracked: batched (KnownMessageKeys) or one message at a time.
type keyLookups struct {
	serversync.Store
	mu            sync.Mutex
	batches, keys int
	perMessage    int
	largestBatch  int
}

func (k *keyLookups) KnownMessageKeys(ctx context.Context, mailboxID string, keys []string) (map[string]bool, error) {
	k.mu.Lock()
	k.batches++
	k.keys += len(keys)
	k.largestBatch = max(k.largestBatch, len(keys))
	k.mu.Unlock()
	return k.Store.KnownMessageKeys(ctx, mailboxID, keys)
}

func (k *keyLookups) ListActivities(ctx context.Context, f serversync.ActivityFilter) iter.Seq2[*serversync.EmailActivity, error] {
	if f.MessageKey != "" {
		k.mu.Lock()
		k.perMessage++
		k.mu.Unlock()
	}
	return k.Store.ListActivities(ctx, f)
}

// A batch also ends at SaveBatchBytes of mail, whatever SaveBatch allows: a
// sync's memory is bounded by bytes when messages are large. Lookups (and the saves
// they end with) come every three messages here.
func TestBatchesEndAtSaveBatchBytes(t *testing.T) {
	e := newSyncEnv(t, func(p *serversync.Profile) { p.MoveFailedToUndeliverable = false })
	alice := e.mailbox(t, "alice", nil)
	const messages = 10
	body := strings.Repeat("x", 1000)
	size := 0
	for i := range messages {
		raw := message("x@p.test", alice.EmailAddress, fmt.Sprintf("m%d", i), fmt.Sprintf("Message-ID: <bytes-%02d@p.test>\r\n", i), body)
		size = max(size, len(raw))
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, raw))
	}
	store := &keyLookups{Store: e.store}
	e.store = store
	// Three messages reach it, two do not (the messages differ by a few bytes at most).
	s := e.syncer(t, &serversync.Config{SaveBatch: 100, SaveBatchBytes: int64(3*size - 5)})
	testAndEnable(t, s, alice)
	run(t, s)
	eventually(t, "every message tracked", func() bool {
		return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) == messages
	})
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.Equal(t, 3, store.largestBatch, "a chunk ends at SaveBatchBytes")
	assert.Equal(t, (messages+2)/3, store.batches)
}

// A sync asks whether its messages are tracked a chunk at a time, never once per
// message: one lookup per SaveBatch; offered again, every message is found
// tracked by those batched lookups alone, and none is tracked twice.
func TestMessageKeysLookedUpInBatches(t *testing.T) {
	e := newSyncEnv(t, func(p *serversync.Profile) { p.MoveFailedToUndeliverable = false })
	alice := e.mailbox(t, "alice", nil)
	const messages, saveBatch = 60, 25
	for i := range messages {
		require.NoError(t, e.demo.Deliver(alice.EmailAddress, message("x@p.test", alice.EmailAddress, fmt.Sprintf("m%d", i),
			fmt.Sprintf("Message-ID: <batch-%d@p.test>\r\n", i), "b")))
	}
	store := &keyLookups{Store: e.store}
	e.store = store
	s := e.syncer(t, &serversync.Config{SaveBatch: saveBatch})
	testAndEnable(t, s, alice)
	run(t, s)
	tracked := func() int { return len(e.activities(t, serversync.ActivityFilter{MailboxID: alice.ID})) }
	eventually(t, "every message tracked", func() bool { return tracked() == messages })
	eventually(t, "the sync recorded", func() bool {
		m, err := e.store.GetMailbox(context.Background(), alice.ID)
		return err == nil && m.Stats.ItemsProcessedLastSync == messages
	})
	store.mu.Lock()
	assert.Zero(t, store.perMessage, "no lookup of one message key")
	assert.Equal(t, messages, store.keys, "each message's key asked once")
	assert.LessOrEqual(t, store.largestBatch, saveBatch, "a chunk ends at SaveBatch")
	assert.Equal(t, (messages+saveBatch-1)/saveBatch, store.batches, "one lookup per SaveBatch")
	store.batches, store.keys = 0, 0
	store.mu.Unlock()

	// Offer everything again, as after a UIDVALIDITY reset.
	_, err := e.store.SaveTracked(context.Background(), &serversync.Cursor{MailboxID: alice.ID, Folder: "INBOX"}, nil)
	require.NoError(t, err)
	e.clock.Advance(time.Hour) // due again
	resynced := e.clock.Now()
	eventually(t, "the sync that re-offered everything", func() bool {
		m, err := e.store.GetMailbox(context.Background(), alice.ID)
		return err == nil && !m.Stats.LastSyncSucceededAt.Before(resynced)
	})
	store.mu.Lock()
	assert.Equal(t, messages, store.keys, "every message offered again, looked up in batches")
	store.mu.Unlock()
	assert.Equal(t, messages, tracked(), "none tracked twice")
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.Zero(t, store.perMessage, "a duplicate with nothing to do on the server needs no second query")
}
