//go:build !imapsqlite

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/imapconn"
	"github.com/serversync/serversync/connector/standard"
	"github.com/serversync/serversync/store/postgres"
)

func init() {
	openPostgres = openPostgresSchema
	connectors = func(imap *imapconn.Options, logger *slog.Logger) serversync.Connectors {
		return standard.Connectors(&standard.Options{IMAP: imap, Logger: logger})
	}
}

// openPostgresSchema opens a fresh schema of the database at url, dropped when the
// returned function closes the store.
func openPostgresSchema(ctx context.Context, url string, keys auth.KeyProvider) (serversync.Store, func(), error) {
	schema := fmt.Sprintf("syncerpipeline_%d", os.Getpid())
	pg, err := postgres.Open(ctx, url, &postgres.Options{Keys: keys, Schema: schema})
	if err != nil {
		return nil, nil, err
	}
	return pg, func() { pg.Close(); dropSchema(url, schema) }, nil
}

// dropSchema removes the schema a PostgreSQL run stored into.
func dropSchema(pgURL, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "syncerpipeline: drop the schema:", err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		fmt.Fprintln(os.Stderr, "syncerpipeline: drop the schema:", err)
	}
}
