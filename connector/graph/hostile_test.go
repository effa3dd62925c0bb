package graph_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/connectortest"
	"github.com/serversync/serversync/connector/graph"
)

// onePage answers a delta page listing the given ids, with a deltaLink.
func onePage(w http.ResponseWriter, r *http.Request, ids ...string) {
	w.Header().Set("Content-Type", "application/json")
	var items []string
	for _, id := range ids {
		items = append(items, `{"id":"`+id+`","receivedDateTime":"2026-11-02T10:00:00Z"}`)
	}
	_, _ = io.WriteString(w, `{"value":[`+strings.Join(items, ",")+`],"@odata.deltaLink":"https://`+r.Host+`/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken=x"}`)
}

// fetchAll runs one Fetch that reads every body; it returns the bodies read
// and the error.
func fetchAll(ctx context.Context, c *graph.Connector, target *serversync.Target) ([]string, error) {
	s, err := c.OpenIncoming(ctx, target)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var got []string
	_, err = s.Fetch(ctx, serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		b, err := io.ReadAll(m.Body)
		if err != nil {
			return err
		}
		got = append(got, string(b))
		return nil
	})
	return got, err
}

func TestHostileEndlessDeltaPage(t *testing.T) {
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		connectortest.Endless(w, `{"value":[`, `{"id":"AAMkAD","receivedDateTime":"2026-11-02T10:00:00Z"},`)
	})
	c := graph.New(nil)
	defer c.CloseIdleConnections()
	ctx, stop := connectortest.HeapGuard(context.Background(), connectortest.HeapLimitDefault)
	_, err := fetchAll(ctx, c, target)
	ce := connectortest.RequireBounded(t, ctx, stop, err)
	assert.Equal(t, serversync.CodeReplyTooLong, ce.Code)
}

func TestHostileEndlessMessage(t *testing.T) {
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/$value") {
			w.Header().Set("Content-Type", "text/plain")
			connectortest.Endless(w, "Subject: endless\r\n\r\n", "more and more body text\r\n")
			return
		}
		onePage(w, r, "AAMkAD")
	})
	c := graph.New(&graph.Options{MaxMessageBytes: 8 << 20})
	defer c.CloseIdleConnections()
	ctx, stop := connectortest.HeapGuard(context.Background(), connectortest.HeapLimitDefault)
	got, err := fetchAll(ctx, c, target)
	ce := connectortest.RequireBounded(t, ctx, stop, err)
	assert.Equal(t, serversync.CodeReplyTooLong, ce.Code)
	assert.Empty(t, got, "a body cut short is never handed over")
}

func TestHostileEndlessBatch(t *testing.T) {
	var singles atomic.Int32
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/$batch"):
			w.Header().Set("Content-Type", "application/json")
			connectortest.Endless(w, `{"responses":[{"id":"1","status":200,"body":"`, "QUFBQUFBQUFB")
		case strings.HasSuffix(r.URL.Path, "/$value"):
			singles.Add(1)
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "Subject: "+r.URL.Path+"\r\n\r\nbody\r\n")
		default:
			onePage(w, r, "m1", "m2", "m3")
		}
	})
	c := graph.New(nil)
	defer c.CloseIdleConnections()
	ctx, stop := connectortest.HeapGuard(context.Background(), connectortest.HeapLimitDefault)
	got, err := fetchAll(ctx, c, target)
	require.NoError(t, context.Cause(ctx), "the heap stayed under the limit")
	peak := stop()
	require.NoError(t, err)
	assert.Less(t, peak, uint64(connectortest.HeapLimitDefault))
	require.Len(t, got, 3, "a $batch reply over the limit falls back to one download per message")
	assert.Contains(t, got[0], "/messages/m1/")
	assert.Contains(t, got[2], "/messages/m3/")
	assert.Equal(t, int32(3), singles.Load())
}

func TestHostileDrippingPage(t *testing.T) {
	done := make(chan struct{})
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, `{"value":[`)
		for {
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
				_, _ = io.WriteString(w, " ")
			}
		}
	})
	defer close(done)
	target.Endpoint.Timeout = time.Second
	c := graph.New(nil)
	defer c.CloseIdleConnections()
	start := time.Now()
	err := fetchErr(t, c, target)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeReplyTooSlow, ce.Code)
	assert.Equal(t, serversync.ErrorTransient, ce.Kind)
	assert.Less(t, time.Since(start), 4*time.Second)
}

func TestHostileGarbage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"not JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"value":[{"id":`)
		}},
		{"HTML page", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, `<html><body>Sign in</body></html>`)
		}},
		{"no links", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"value":[]}`)
		}},
		{"JSON for a MIME body", func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/$value") {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"id":"AAMkAD"}`)
				return
			}
			onePage(w, r, "AAMkAD")
		}},
		{"batch body not base64", func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/$batch") {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"responses":[{"id":"1","status":200,"body":"%%%"},{"id":"2","status":200,"body":"`+base64.StdEncoding.EncodeToString([]byte("Subject: x\r\n\r\nx"))+`"}]}`)
				return
			}
			onePage(w, r, "m1", "m2")
		}},
		{"batch response missing", func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/$batch") {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"responses":[{"id":"1","status":200,"body":"`+base64.StdEncoding.EncodeToString([]byte("Subject: x\r\n\r\nx"))+`"}]}`)
				return
			}
			onePage(w, r, "m1", "m2")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := graph.New(nil)
			defer c.CloseIdleConnections()
			got, err := fetchAll(context.Background(), c, scripted(t, tc.handler))
			var ce *serversync.ConnectorError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, serversync.CodeProtocolError, ce.Code, "%v", err)
			assert.Empty(t, got)
		})
	}
}

// TestForeignLinks checks that a nextLink to another host is not followed:
// the token would go with it.
func TestForeignLinks(t *testing.T) {
	var foreign atomic.Int32
	other := scripted(t, func(w http.ResponseWriter, r *http.Request) { foreign.Add(1) })
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"value":[],"@odata.nextLink":"`+other.Endpoint.URL+`/v1.0/steal"}`)
	})
	target.Endpoint.RootCAsPEM += other.Endpoint.RootCAsPEM
	c := graph.New(nil)
	defer c.CloseIdleConnections()
	err := fetchErr(t, c, target)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeProtocolError, ce.Code)
	assert.Zero(t, foreign.Load())

	// A redirect is not followed either.
	target = scripted(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.Endpoint.URL+"/v1.0/steal", http.StatusFound)
	})
	target.Endpoint.RootCAsPEM += other.Endpoint.RootCAsPEM
	require.Error(t, fetchErr(t, c, target))
	assert.Zero(t, foreign.Load())
}

// TestSlowCallerNotCutOff reads a streamed body slower than the endpoint
// timeout allows the server: the time the caller takes is its own.
func TestSlowCallerNotCutOff(t *testing.T) {
	body := "Subject: slow reader\r\n\r\n" + strings.Repeat("line of body text\r\n", 1000) // no body allowance: under 64 KiB
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/$value") {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, body)
			return
		}
		onePage(w, r, "AAMkAD")
	})
	target.Endpoint.Timeout = 300 * time.Millisecond
	c := graph.New(nil)
	defer c.CloseIdleConnections()
	s, err := c.OpenIncoming(context.Background(), target)
	require.NoError(t, err)
	defer s.Close()
	var read strings.Builder
	_, err = s.Fetch(context.Background(), serversync.FetchRequest{}, func(m *serversync.RemoteMessage) error {
		buf := make([]byte, 4<<10)
		for {
			time.Sleep(150 * time.Millisecond) // processing between reads
			n, err := m.Body.Read(buf)
			read.Write(buf[:n])
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
	require.NoError(t, err)
	assert.Equal(t, body, read.String())
}
