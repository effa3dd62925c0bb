package serversync_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/store/memory"
)

// Saving a profile fills what was left to defaults, and refuses what breaks a rule
// with an error that names the field.
func ExampleAdmin_CreateProfile() {
	ctx := context.Background()
	admin := serversync.NewAdmin(memory.New(), &serversync.AdminConfig{Logger: slog.New(slog.DiscardHandler)})

	p, err := admin.CreateProfile(ctx, &serversync.Profile{
		Name:           "Contoso IMAP",
		ServerType:     serversync.ServerTypeIMAPSMTP,
		IncomingServer: "imap.contoso.com",
		OutgoingServer: "smtp.contoso.com",
		OutgoingTLS:    serversync.TLSStartTLS,
		Password:       auth.NewSecret("never printed"),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(p.IncomingPort, p.OutgoingPort, p.MaxConcurrentConnections, p.ConnectionTimeout)
	fmt.Printf("%v\n", p.Password)

	_, err = admin.CreateProfile(ctx, &serversync.Profile{
		Name:           "Plaintext",
		ServerType:     serversync.ServerTypeIMAPSMTP,
		IncomingServer: "imap.contoso.com",
		OutgoingServer: "smtp.contoso.com",
		IncomingTLS:    serversync.TLSNone,
	})
	var verr *serversync.ValidationError
	if errors.As(err, &verr) {
		fmt.Println(verr.Field+":", verr.Reason)
	}
	// Output:
	// 993 587 10 1m40s
	// [REDACTED]
	// IncomingTLS: TLS can only be turned off when the organisation setting AllowNonSSLEmail is on
}
