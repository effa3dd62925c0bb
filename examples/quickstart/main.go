// Command quickstart runs serversync on its embedded default: a SQLite database
// with sealed credentials, the organisation settings, an IMAP/SMTP email server
// profile and two mailboxes, approved and listed.
//
//	go run ./examples/quickstart            # in a fresh temporary directory
//	go run ./examples/quickstart -data dir  # keep (and reuse) the database in dir
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/store/sqlite"
)

func main() {
	dataDir := flag.String("data", "", "directory for the database and its key file (default: a new temporary directory)")
	flag.Parse()
	if err := runQuickstart(context.Background(), *dataDir, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func runQuickstart(ctx context.Context, dataDir string, out io.Writer) error {
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "serversync-quickstart-")
		if err != nil {
			return err
		}
		dataDir = dir
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	keys, err := openKeys(filepath.Join(dataDir, "secret.key"))
	if err != nil {
		return err
	}
	dbPath := filepath.Join(dataDir, "serversync.db")
	store, err := sqlite.Open(ctx, dbPath, &sqlite.Options{Keys: keys})
	if err != nil {
		return err
	}
	defer store.Close()
	fmt.Fprintf(out, "database: %s\n\n", dbPath)

	// The host decides who may approve email addresses; this demo lets "admin" do it.
	admin := serversync.NewAdmin(store, &serversync.AdminConfig{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		CanApprove: func(_ context.Context, actor string, _ *serversync.Mailbox) error {
			if actor != "admin" {
				return errors.New("only admin approves email addresses")
			}
			return nil
		},
	})

	profile, err := findOrCreateProfile(ctx, admin, &serversync.Profile{
		Name:           "Contoso IMAP/SMTP",
		Description:    "Mail for contoso.test users",
		Owner:          "user-admin",
		ServerType:     serversync.ServerTypeIMAPSMTP,
		IncomingServer: "imap.contoso.test",
		OutgoingServer: "smtp.contoso.test",
		OutgoingTLS:    serversync.TLSStartTLS,
	})
	if err != nil {
		return err
	}
	if _, err := admin.UpdateOrgSettings(ctx, func(s *serversync.OrgSettings) { s.DefaultProfileID = profile.ID }); err != nil {
		return err
	}
	printProfile(out, profile)

	for _, m := range []*serversync.Mailbox{
		{Name: "Alice", EmailAddress: "alice@contoso.test", Username: "alice", Password: auth.NewSecret("alice-password"),
			Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-alice"}},
		{Name: "Support", EmailAddress: "support@contoso.test", Username: "support", Password: auth.NewSecret("support-password"),
			Regarding: serversync.Regarding{Type: serversync.RegardingQueue, ID: "queue-support"}, Owner: "user-admin"},
	} {
		mb, err := findOrCreateMailbox(ctx, admin, m) // profile and delivery methods come from the org defaults
		if err != nil {
			return err
		}
		if err := admin.Approve(ctx, "admin", mb.ID); err != nil {
			return err
		}
	}
	return printMailboxes(ctx, out, admin)
}

// openKeys reads the key that seals credentials in the database, creating it on the
// first run. Real deployments set SERVERSYNC_SECRET_KEY or SERVERSYNC_SECRET_KEY_FILE.
func openKeys(path string) (auth.KeyProvider, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := auth.GenerateKeyFile(path); err != nil {
			return nil, err
		}
	}
	return auth.KeysFromFile(path)
}

func findOrCreateProfile(ctx context.Context, admin *serversync.Admin, p *serversync.Profile) (*serversync.Profile, error) {
	for existing, err := range admin.Profiles(ctx) {
		if err != nil {
			return nil, err
		}
		if existing.Name == p.Name {
			return existing, nil
		}
	}
	return admin.CreateProfile(ctx, p)
}

func findOrCreateMailbox(ctx context.Context, admin *serversync.Admin, m *serversync.Mailbox) (*serversync.Mailbox, error) {
	for existing, err := range admin.Mailboxes(ctx, serversync.MailboxFilter{EmailAddress: m.EmailAddress}) {
		return existing, err
	}
	return admin.CreateMailbox(ctx, m)
}

func printProfile(out io.Writer, p *serversync.Profile) {
	fmt.Fprintf(out, "profile %q (%s), normalized on save:\n", p.Name, p.ServerType)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "  incoming\t%s:%d\tTLS %s\tcredentials %s\n", p.IncomingServer, p.IncomingPort, p.IncomingTLS, p.IncomingCredentialSource)
	fmt.Fprintf(w, "  outgoing\t%s:%d\tTLS %s\tcredentials %s\n", p.OutgoingServer, p.OutgoingPort, p.OutgoingTLS, p.OutgoingCredentialSource)
	fmt.Fprintf(w, "  limits\t%d connections\ttimeout %s\tminimum polling interval %s\n", p.MaxConcurrentConnections, p.ConnectionTimeout, p.MinPollingInterval)
	w.Flush()
	fmt.Fprintln(out)
}

func printMailboxes(ctx context.Context, out io.Writer, admin *serversync.Admin) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "MAILBOX\tREGARDING\tINCOMING\tOUTGOING\tAPPROVAL\tSTATUS\tTEST PENDING\tPASSWORD")
	for m, err := range admin.Mailboxes(ctx, serversync.MailboxFilter{}) {
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\t%s %s\t%s\t%s\t%s\t%s\t%t\t%v\n", m.EmailAddress, m.Regarding.Type, m.Regarding.ID,
			m.IncomingMethod, m.OutgoingMethod, m.Approval, m.Status, m.TestAndEnablePending, m.Password)
	}
	return w.Flush()
}
