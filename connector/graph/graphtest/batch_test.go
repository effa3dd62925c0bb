package graphtest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serversync/serversync/connector/graph/graphtest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type batchItem struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

func (e *env) batch(requests ...map[string]any) (reply, []batchItem) {
	e.t.Helper()
	body, err := json.Marshal(map[string]any{"requests": requests})
	require.NoError(e.t, err)
	r := e.req("POST", "/$batch", map[string]string{"Content-Type": "application/json"}, string(body))
	if r.status != http.StatusOK {
		return r, nil
	}
	var v struct {
		Responses []batchItem `json:"responses"`
	}
	require.NoError(e.t, json.Unmarshal(r.body, &v))
	return r, v.Responses
}

func byID(items []batchItem) map[string]batchItem {
	out := map[string]batchItem{}
	for _, it := range items {
		out[it.ID] = it
	}
	return out
}

func TestBatch(t *testing.T) {
	e := newEnv(t, nil)
	id := e.deliver(alice, "inbox", "batched", t0)
	raw := e.srv.Messages(alice, "inbox")[0].MIME
	immutable := map[string]string{"Prefer": `IdType="ImmutableId"`}
	mime := "To: bob@contoso.test\r\nSubject: via batch\r\n\r\nx\r\n"
	_, items := e.batch(
		map[string]any{"id": "1", "method": "GET", "url": user(alice) + "/messages/" + id + "/$value", "headers": immutable},
		map[string]any{"id": "2", "method": "GET", "url": user(alice) + "/mailFolders/inbox"},
		map[string]any{"id": "3", "method": "POST", "url": user(alice) + "/messages/" + id + "/move", "headers": map[string]string{
			"Content-Type": "application/json", "Prefer": `IdType="ImmutableId"`}, "body": map[string]any{"destinationId": "drafts"}},
		map[string]any{"id": "4", "method": "GET", "url": "users/nobody@contoso.test/mailFolders/inbox"},
		map[string]any{"id": "5", "method": "POST", "url": "/users/" + alice + "/sendMail", "headers": map[string]string{"Content-Type": "text/plain"},
			"body": base64.StdEncoding.EncodeToString([]byte(b64([]byte(mime))))},
		map[string]any{"id": "6", "method": "GET", "url": "/users/" + alice + "/messages/nope/$value", "headers": immutable},
		map[string]any{"id": "7", "method": "GET", "url": "/users/" + alice + "/mailFolders/inbox", "dependsOn": []string{"6"}},
	)
	require.Len(t, items, 7)
	got := byID(items)

	assert.Equal(t, 200, got["1"].Status)
	assert.Equal(t, "text/plain", got["1"].Headers["Content-Type"])
	var value string
	require.NoError(t, json.Unmarshal(got["1"].Body, &value), "a non-JSON body is a base64 string")
	decoded, err := base64.StdEncoding.DecodeString(value)
	require.NoError(t, err)
	assert.Equal(t, raw, decoded)

	assert.Equal(t, 200, got["2"].Status)
	var folder map[string]any
	require.NoError(t, json.Unmarshal(got["2"].Body, &folder), "a JSON body is inline")
	assert.Equal(t, "Inbox", folder["displayName"])

	assert.Equal(t, 201, got["3"].Status)
	assert.Len(t, e.srv.Messages(alice, "drafts"), 1)
	assert.Equal(t, 404, got["4"].Status)
	assert.Contains(t, string(got["4"].Body), "ErrorInvalidUser")
	assert.Equal(t, 202, got["5"].Status, "%s", got["5"].Body)
	assert.Len(t, e.srv.Messages(bob, "inbox"), 1)
	assert.Equal(t, 404, got["6"].Status)
	assert.Equal(t, http.StatusFailedDependency, got["7"].Status)
	assert.Equal(t, 1, e.srv.Batches())
	assert.Equal(t, 5, e.srv.Requests(alice), "items count one by one (1, 2, 3, 5, 6); the failed dependency never ran")

	// A base64 MIME sendMail body encoded once is taken too.
	_, items = e.batch(map[string]any{"id": "1", "method": "POST", "url": "/users/" + alice + "/sendMail",
		"headers": map[string]string{"Content-Type": "text/plain"}, "body": b64([]byte(mime))})
	assert.Equal(t, 202, items[0].Status, "%s", items[0].Body)
}

func TestBatchThrottledItemsAndOrder(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.Throttle(alice, 2, 3*time.Second)
	var requests []map[string]any
	for i := range 20 {
		requests = append(requests, map[string]any{"id": fmt.Sprint(i), "method": "GET", "url": user(alice) + "/mailFolders/inbox"})
	}
	shuffled := false
	for range 5 { // 20! orders: five unshuffled batches in a row would be a bug
		_, items := e.batch(requests...)
		require.Len(t, items, 20)
		for i, it := range items {
			if it.ID != fmt.Sprint(i) {
				shuffled = true
			}
		}
	}
	assert.True(t, shuffled, "responses come in any order")

	// The first batch had the two throttled items, each with its Retry-After.
	e.srv.Throttle(alice, 2, 3*time.Second)
	_, items := e.batch(requests...)
	var throttled []batchItem
	for _, it := range items {
		if it.Status == http.StatusTooManyRequests {
			throttled = append(throttled, it)
		} else {
			assert.Equal(t, 200, it.Status)
		}
	}
	require.Len(t, throttled, 2)
	for _, it := range throttled {
		assert.Equal(t, "3", it.Headers["Retry-After"])
		assert.Contains(t, string(it.Body), "ApplicationThrottled")
	}
	assert.Equal(t, 4, e.srv.Throttled())

	// More than 20 is refused whole.
	r, _ := e.batch(append(requests, map[string]any{"id": "20", "method": "GET", "url": user(alice) + "/mailFolders/inbox"})...)
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "BadRequest", r.errorCode(t))

	// Unauthenticated batches are refused whole.
	r = e.req("POST", "/$batch", map[string]string{"Authorization": ""}, `{"requests":[]}`)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.True(t, strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer"))
}

// TestBatchConcurrency: Graph sends Outlook four requests of a batch at a time,
// so a batch of 20 for one mailbox fills its concurrency limit without going
// over; with two other requests in flight, two of every four items get 429.
func TestBatchConcurrency(t *testing.T) {
	arrived := make(chan struct{}, 2)
	release := make(chan struct{})
	e := newEnv(t, &graphtest.Options{OnRequest: func(ctx context.Context, _, _, path string) {
		if path != "/mailFolders/sentitems" {
			return
		}
		arrived <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
	}})
	var requests []map[string]any
	for i := range 20 {
		requests = append(requests, map[string]any{"id": fmt.Sprint(i), "method": "GET", "url": user(alice) + "/mailFolders/inbox"})
	}
	_, items := e.batch(requests...)
	for _, it := range items {
		assert.Equal(t, 200, it.Status)
	}
	assert.Equal(t, graphtest.ConcurrencyLimit, e.srv.MaxConcurrent(alice))
	assert.Zero(t, e.srv.Throttled())

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { e.get(user(alice) + "/mailFolders/sentitems") })
	}
	<-arrived
	<-arrived
	_, items = e.batch(requests[:8]...)
	ok, throttled := 0, 0
	for _, it := range items {
		switch it.Status {
		case 200:
			ok++
		case http.StatusTooManyRequests:
			throttled++
			assert.Equal(t, "1", it.Headers["Retry-After"])
		}
	}
	assert.Equal(t, 4, ok)
	assert.Equal(t, 4, throttled)
	close(release)
	wg.Wait()
}
