package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The example serves the page, syncs both mailboxes, and stops cleanly.
func TestMonitorExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out syncBuffer
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, options{addr: "127.0.0.1:0", messages: 15, trickle: 50 * time.Millisecond,
			ready: func(u string) { urls <- u }}, &out)
	}()
	url := <-urls
	assert.True(t, strings.HasPrefix(url, "http://127.0.0.1:"), url)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "synced    support@contoso.test") {
		require.True(t, time.Now().Before(deadline), "both initial syncs:\n%s", out.String())
		time.Sleep(20 * time.Millisecond)
	}
	assert.Contains(t, out.String(), "synced    alice@contoso.test: initial sync done in")
	assert.Contains(t, out.String(), "(15 messages on the server)")

	resp, err := http.Get(url)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "alice@contoso.test")
	assert.Contains(t, string(body), `<svg class="chart" id="throughput"`)

	cancel()
	require.NoError(t, <-done)
	assert.Contains(t, out.String(), "stopped   the Syncer and the page")
}

func TestOnlyLoopback(t *testing.T) {
	err := run(context.Background(), options{addr: "0.0.0.0:0"}, io.Discard)
	assert.ErrorContains(t, err, "loopback only")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
