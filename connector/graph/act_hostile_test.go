package graph_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/connectortest"
	"github.com/serversync/serversync/connector/graph"
)

// A delta link to another host is not followed: the token stays home.
func TestACTHostileForeignDeltaLink(t *testing.T) {
	var foreign atomic.Int32
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Host == "elsewhere.test" {
			foreign.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"value":[],"@odata.nextLink":"https://elsewhere.test/v1.0/me/contacts/delta?$skiptoken=x"}`)
	})
	s, err := graph.New(nil).OpenACT(context.Background(), target)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Changes(context.Background(), serversync.KindContact, nil)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeProtocolError, ce.Code)
	assert.NotContains(t, err.Error(), secretToken)
	assert.Zero(t, foreign.Load())
}

// An endless delta page is cut off at MaxJSONBytes, with bounded memory.
func TestACTHostileEndlessDeltaPage(t *testing.T) {
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		connectortest.Endless(w, `{"value":[`, `{"id":"AAMkAD","displayName":"x"},`)
	})
	c := graph.New(nil)
	defer c.CloseIdleConnections()
	ctx, stop := connectortest.HeapGuard(context.Background(), connectortest.HeapLimitDefault)
	s, err := c.OpenACT(ctx, target)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Changes(ctx, serversync.KindContact, nil)
	ce := connectortest.RequireBounded(t, ctx, stop, err)
	assert.Equal(t, serversync.CodeReplyTooLong, ce.Code)
}

// A reply that is not JSON, and an error that echoes the token, are
// classified without showing it.
func TestACTHostileGarbage(t *testing.T) {
	target := scripted(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/events") {
			graphError(w, http.StatusBadRequest, "BadRequest", "bad token "+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			return
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html>login</html>")
	})
	s, err := graph.New(nil).OpenACT(context.Background(), target)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Changes(context.Background(), serversync.KindContact, nil)
	var ce *serversync.ConnectorError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, serversync.CodeProtocolError, ce.Code)

	err = s.Put(context.Background(), &serversync.Appointment{Subject: "x", Start: serversync.DateTime{Time: testStart}, End: serversync.DateTime{Time: testStart}}, "")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secretToken)
}
