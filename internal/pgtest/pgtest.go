// Package pgtest finds the PostgreSQL the tests run against and gives each test a
// schema of its own, so tests run in parallel on one database.
//
// The database is named by the SERVERSYNC_TEST_POSTGRES environment variable
// (.ci/run sets it); without it, URL skips the test with a message that says how to
// run it.
package pgtest

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/serversync/serversync"
)

// EnvURL names the variable through which the tests find PostgreSQL.
const EnvURL = "SERVERSYNC_TEST_POSTGRES"

// URL returns the test database's connection string, or skips t.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(EnvURL)
	if url == "" {
		t.Skipf("set %s to run the PostgreSQL tests, e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable", EnvURL, EnvURL)
	}
	return url
}

// FreshSchema returns the name of a schema no other test uses, dropped with all it
// holds when t ends. The store creates it on first use.
func FreshSchema(t testing.TB) string {
	t.Helper()
	return Schema(t, "serversync_test_"+serversync.NewID())
}

// Schema returns name, and drops the schema of that name with all it holds when t
// ends.
func Schema(t testing.TB, name string) string {
	t.Helper()
	url := URL(t)
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// WithParam adds a parameter ("pool_max_conns=1") to a URL or keyword/value string.
func WithParam(connString, param string) string {
	switch {
	case !strings.Contains(connString, "://"):
		return connString + " " + param
	case strings.Contains(connString, "?"):
		return connString + "&" + param
	}
	return connString + "?" + param
}
