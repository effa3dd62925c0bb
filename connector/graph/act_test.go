package graph_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/acttest"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/graph/graphtest"
)

// actToken is an app-only token with the permissions ACT needs.
var actToken = jwt(`{"roles":["Calendars.ReadWrite","Contacts.ReadWrite","Tasks.ReadWrite.All"],"tid":"tenant-1","appid":"app-act"}`)

// newACTEnv is a fake Graph with alice's mailbox and a token for her ACT items.
func newACTEnv(t *testing.T, opts *graphtest.Options) *env {
	t.Helper()
	e := newEnv(t, opts)
	e.srv.AddToken(actToken, graphtest.Principal{AppOnly: true, TenantID: tenant, AppID: "app-act",
		Permissions: []string{"Calendars.ReadWrite", "Contacts.ReadWrite", "Tasks.ReadWrite.All"}})
	e.target = fakeTarget(e.srv, alice, actToken)
	return e
}

func (e *env) openACT(t *testing.T, c *graph.Connector) serversync.ACTSession {
	t.Helper()
	s, err := c.OpenACT(context.Background(), e.target)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestACTConformance(t *testing.T) {
	e := newACTEnv(t, nil)
	c := graph.New(nil)
	acttest.Run(t, acttest.Harness{Open: func(ctx context.Context) (serversync.ACTSession, error) { return c.OpenACT(ctx, e.target) }})
}

// Small pages make every round span several delta pages.
func TestACTConformanceSmallPages(t *testing.T) {
	e := newACTEnv(t, nil)
	c := graph.New(&graph.Options{PageSize: 2})
	acttest.Run(t, acttest.Harness{Open: func(ctx context.Context) (serversync.ACTSession, error) { return c.OpenACT(ctx, e.target) }})
}
