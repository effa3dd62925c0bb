package graph_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/graph/graphtest"
)

func TestFetchPagesBatchesAndIncrements(t *testing.T) {
	e := newEnv(t, nil)
	ids := e.deliver(t, 1, 25)
	c := graph.New(&graph.Options{PageSize: 10, BatchSize: 4})
	all, res, err := fetch(t, c, e.target, serversync.FetchRequest{}, 0)
	require.NoError(t, err)
	require.Len(t, all, 25)
	assert.Equal(t, seq(1, 25), subjects(all), "page order, whatever order $batch answers in")
	for i, g := range all {
		assert.Equal(t, ids[i], g.ref, "the ref is the immutable id")
		assert.Equal(t, string(message(i+1)), g.body, "byte for byte")
		assert.Equal(t, "inbox", g.folder)
		assert.Equal(t, time.Date(2026, 11, 2, 10, 0, i+1, 0, time.UTC), g.received.UTC())
	}
	assert.False(t, res.Reset)
	assert.Equal(t, 7, e.srv.Batches(), "pages of 10, 10 and 5 in batches of 4, 4, 2 / 4, 4, 2 / 4 (+ one GET)")
	st := c.Stats()
	assert.Equal(t, int64(e.srv.Batches()), st.BatchRequests)
	assert.Equal(t, int64(3+7+1), st.Requests, "3 delta pages, the batches and one GET $value")

	again, res2, err := fetch(t, c, e.target, serversync.FetchRequest{Cursor: res.Cursor}, 0)
	require.NoError(t, err)
	assert.Empty(t, again, "nothing new after the deltaLink")

	e.deliver(t, 26, 27)
	fresh, res3, err := fetch(t, c, e.target, serversync.FetchRequest{Cursor: res2.Cursor}, 0)
	require.NoError(t, err)
	assert.Equal(t, []int{26, 27}, subjects(fresh), "only what is new since")
	none, _, err := fetch(t, c, e.target, serversync.FetchRequest{Cursor: res3.Cursor}, 0)
	require.NoError(t, err)
	assert.Empty(t, none)
}

func TestFetchWithoutBatch(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(t, 1, 5)
	c := graph.New(&graph.Options{BatchSize: 1})
	all, _, err := fetch(t, c, e.target, serversync.FetchRequest{}, 0)
	require.NoError(t, err)
	assert.Equal(t, seq(1, 5), subjects(all))
	assert.Zero(t, e.srv.Batches())
	assert.Equal(t, int64(6), c.Stats().Requests, "one delta page and one GET $value per message")
}

func TestFetchResumesMidPage(t *testing.T) {
	for _, batch := range []int{1, 20} {
		e := newEnv(t, nil)
		e.deliver(t, 1, 25)
		c := graph.New(&graph.Options{PageSize: 10, BatchSize: batch})
		first, _, err := fetch(t, c, e.target, serversync.FetchRequest{}, 13)
		require.ErrorIs(t, err, errStop)
		require.Len(t, first, 13)
		rest, res, err := fetch(t, c, e.target, serversync.FetchRequest{Cursor: first[12].cursor}, 0)
		require.NoError(t, err)
		assert.Equal(t, seq(14, 25), subjects(rest), "batch %d: resumes right after the last message handed over", batch)
		assert.False(t, res.Reset)

		// Every message's cursor resumes right after it.
		for _, k := range []int{0, 9, 10, 24} {
			after, _, err := fetch(t, c, e.target, serversync.FetchRequest{Cursor: first[min(k, 12)].cursor}, 0)
			require.NoError(t, err)
			assert.Equal(t, seq(min(k, 12)+2, 25), subjects(after))
		}
	}
}

func TestFetchReplayedPage(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(t, 1, 25)
	c := graph.New(&graph.Options{PageSize: 10})
	e.srv.ReplayNextPage(alice) // the first page is served plain: the next one repeats it
	first, _, err := fetch(t, c, e.target, serversync.FetchRequest{}, 0)
	require.NoError(t, err)
	refs := map[string]bool{}
	for _, g := range first {
		refs[g.ref] = true
	}
	assert.Len(t, refs, 25, "every message offered, some twice (the message keys catch those)")

	// A crash in the middle of a replayed page: page 2 comes with page 1 in
	// front (20 items), the host stops after 13 (3 of page 2's own), and page 2
	// requested again comes without the replay, so the cursor's skip no longer
	// fits it: nothing of it may be skipped.
	e2 := newEnv(t, nil)
	e2.deliver(t, 1, 25)
	s, err := c.OpenIncoming(context.Background(), e2.target)
	require.NoError(t, err)
	defer s.Close()
	var part []got
	_, err = s.Fetch(context.Background(), serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		if len(part) == 13 {
			return errStop
		}
		part = append(part, got{ref: m.Ref, cursor: m.Cursor})
		if len(part) == 10 {
			e2.srv.ReplayNextPage(alice) // page 1 is read: page 2 repeats it
		}
		return nil
	})
	require.ErrorIs(t, err, errStop)
	rest, _, err := fetch(t, c, e2.target, serversync.FetchRequest{Cursor: part[12].cursor}, 0)
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, g := range append(part, rest...) {
		seen[g.ref] = true
	}
	assert.Len(t, seen, 25, "every message offered at least once")
}

func TestFetchSyncStateExpired(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(t, 1, 3)
	c := graph.New(nil)
	_, res, err := fetch(t, c, e.target, serversync.FetchRequest{}, 0)
	require.NoError(t, err)
	e.deliver(t, 4, 4)
	e.srv.ExpireSyncState(alice)
	all, res2, err := fetch(t, c, e.target, serversync.FetchRequest{Cursor: res.Cursor}, 0)
	require.NoError(t, err)
	assert.True(t, res2.Reset, "410 SyncStateNotFound: a fresh delta, reported as a reset")
	assert.Equal(t, seq(1, 4), subjects(all))
	none, res3, err := fetch(t, c, e.target, serversync.FetchRequest{Cursor: res2.Cursor}, 0)
	require.NoError(t, err)
	assert.Empty(t, none)
	assert.False(t, res3.Reset)
}

func TestFetchSince(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(t, 1, 6) // received 10:00:01 … 10:00:06
	c := graph.New(nil)
	since := time.Date(2026, 11, 2, 10, 0, 4, 0, time.UTC)
	all, res, err := fetch(t, c, e.target, serversync.FetchRequest{Since: since}, 0)
	require.NoError(t, err)
	assert.Equal(t, []int{4, 5, 6}, subjects(all))
	e.deliver(t, 7, 7)
	more, _, err := fetch(t, c, e.target, serversync.FetchRequest{Since: since, Cursor: res.Cursor}, 0)
	require.NoError(t, err)
	assert.Equal(t, []int{7}, subjects(more))
}

func TestFetchFolderByName(t *testing.T) {
	e := newEnv(t, nil)
	c := graph.New(nil)
	_, _, err := fetch(t, c, e.target, serversync.FetchRequest{Folder: "Undeliverable"}, 0)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeFolderNotFound, ce.Code)

	_, res, err := fetch(t, c, e.target, serversync.FetchRequest{}, 0)
	require.NoError(t, err)
	_, _, err = fetch(t, c, e.target, serversync.FetchRequest{Folder: "Archive", Cursor: res.Cursor}, 0)
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeBadCursor, ce.Code, "a cursor of another folder")
}

func TestThrottlingObeyed(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(t, 1, 3)
	c := graph.New(nil)
	e.srv.Throttle(alice, 2, 100*time.Millisecond) // the fake says Retry-After: 1
	start := time.Now()
	all, _, err := fetch(t, c, e.target, serversync.FetchRequest{}, 0)
	require.NoError(t, err)
	assert.Equal(t, seq(1, 3), subjects(all))
	assert.GreaterOrEqual(t, time.Since(start), 2*time.Second, "Retry-After waited out twice")
	st := c.Stats()
	assert.Equal(t, int64(2), st.Throttled)
	assert.GreaterOrEqual(t, st.RetryWait, 2*time.Second)

	e.srv.Unavailable(alice, 1, time.Second)
	_, _, err = fetch(t, c, e.target, serversync.FetchRequest{}, 0)
	require.NoError(t, err, "503 with Retry-After is waited out too")
	assert.Equal(t, int64(3), c.Stats().Throttled)

	e.srv.Unavailable(alice, 1, 0)
	_, _, err = fetch(t, c, e.target, serversync.FetchRequest{}, 0)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeServerUnavailable, ce.Code, "503 without Retry-After")
	assert.Equal(t, serversync.ErrorTransient, ce.Kind)

	e.srv.Throttle(alice, 5, time.Second)
	_, _, err = fetch(t, graph.New(&graph.Options{MaxRetryWait: 1500 * time.Millisecond}), e.target, serversync.FetchRequest{}, 0)
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeThrottled, ce.Code)
}

// TestMaxInFlight runs many sessions of one connector on one mailbox at once,
// with requests held open so they overlap: Graph's 4 concurrent requests per
// mailbox are used and never exceeded.
func TestMaxInFlight(t *testing.T) {
	e := newEnv(t, &graphtest.Options{OnRequest: func(ctx context.Context, address, method, path string) {
		select {
		case <-ctx.Done():
		case <-time.After(3 * time.Millisecond):
		}
	}})
	e.deliver(t, 1, 30)
	for _, batch := range []int{1, 5, 20} {
		c := graph.New(&graph.Options{PageSize: 7, BatchSize: batch})
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				s, err := c.OpenIncoming(context.Background(), e.target)
				if err != nil {
					errs <- err
					return
				}
				defer s.Close()
				n := 0
				_, err = s.Fetch(context.Background(), serversync.FetchRequest{}, func(*serversync.RemoteMessage) error { n++; return nil })
				if err == nil && n != 30 {
					err = errors.New("not every message")
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		assert.Zero(t, c.Stats().Throttled, "batch %d: never throttled for concurrency", batch)
	}
	assert.Zero(t, e.srv.Throttled())
	assert.LessOrEqual(t, e.srv.MaxConcurrent(alice), graphtest.ConcurrencyLimit)
	assert.Equal(t, graphtest.ConcurrencyLimit, e.srv.MaxConcurrent(alice), "the budget is used")
}

func TestDelegatedMe(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(t, 1, 2)
	token := jwt(`{"scp":"Mail.ReadWrite Mail.Send","upn":"alice@contoso.test"}`)
	e.srv.AddToken(token, graphtest.Principal{User: alice, TenantID: tenant, Permissions: []string{"Mail.ReadWrite", "Mail.Send"}})
	target := fakeTarget(e.srv, alice, token)
	target.Credentials.Kind = "OAuth"
	all, _, err := fetch(t, graph.New(nil), target, serversync.FetchRequest{}, 0)
	require.NoError(t, err)
	assert.Equal(t, seq(1, 2), subjects(all))
}

// TestBatchItemThrottled makes one request inside a $batch come back 429: it
// is sent again, alone, after its Retry-After, and the page keeps its order.
func TestBatchItemThrottled(t *testing.T) {
	var srv *graphtest.Server
	var once sync.Once
	e := newEnv(t, &graphtest.Options{OnRequest: func(ctx context.Context, address, method, path string) {
		if strings.HasSuffix(path, "/$value") {
			once.Do(func() { srv.Throttle(alice, 1, time.Second) }) // the next item is throttled
		}
	}})
	srv = e.srv
	e.deliver(t, 1, 5)
	c := graph.New(nil)
	all, _, err := fetch(t, c, e.target, serversync.FetchRequest{}, 0)
	require.NoError(t, err)
	assert.Equal(t, seq(1, 5), subjects(all))
	assert.Equal(t, 2, e.srv.Batches(), "one batch, then one for the throttled item")
	st := c.Stats()
	assert.Equal(t, int64(1), st.Throttled)
	assert.GreaterOrEqual(t, st.RetryWait, time.Second)
}

// TestFetchCursorOfAnotherServer starts again (a reset) from a cursor whose
// link points elsewhere, as after the profile's URL changed: the token is not
// sent there.
func TestFetchCursorOfAnotherServer(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(t, 1, 2)
	cur := []byte(`{"v":1,"folder":"inbox","link":"https://graph.example.test/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken=x"}`)
	all, res, err := fetch(t, graph.New(nil), e.target, serversync.FetchRequest{Cursor: cur}, 0)
	require.NoError(t, err)
	assert.True(t, res.Reset)
	assert.Equal(t, seq(1, 2), subjects(all))
}
