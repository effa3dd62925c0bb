package serversync_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/store/memory"
)

const testCA = `-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIQIRi6zePL6mKjOipn+dNuaTAKBggqhkjOPQQDAjASMRAw
DgYDVQQKEwdBY21lIENvMB4XDTE3MTAyMDE5NDMwNloXDTE4MTAyMDE5NDMwNlow
EjEQMA4GA1UEChMHQWNtZSBDbzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABD0d
7VNhbWvZLWPuj/RtHFjvtJBEwOkhbN/BnnE8rnZR8+sbwnc/KhCk3FhnpHZnQz7B
5aETbbIgmuvewdjvSBSjYzBhMA4GA1UdDwEB/wQEAwICpDATBgNVHSUEDDAKBggr
BgEFBQcDATAPBgNVHRMBAf8EBTADAQH/MCkGA1UdEQQiMCCCDmxvY2FsaG9zdDo1
NDUzgg4xMjcuMC4wLjE6NTQ1MzAKBggqhkjOPQQDAgNIADBFAiEA2zpJEPQyz6/l
Wf86aX6PepsntZv2GYlA5UpabfT2EZICICpJ5h/iI+i341gBmLiAFQOyTDT+/wQc
6MF9+Yw1Yy0t
-----END CERTIFICATE-----`

var quietLogger = slog.New(slog.DiscardHandler)

func newAdmin(t *testing.T) (*serversync.Admin, serversync.Store) {
	t.Helper()
	store := memory.New()
	t.Cleanup(func() { _ = store.Close() })
	return serversync.NewAdmin(store, &serversync.AdminConfig{Logger: quietLogger}), store
}

// imapProfile is a valid IMAP/SMTP profile that each case below breaks in one way.
func imapProfile() *serversync.Profile {
	return &serversync.Profile{
		Name:           "Contoso IMAP",
		ServerType:     serversync.ServerTypeIMAPSMTP,
		IncomingServer: "imap.contoso.test",
		OutgoingServer: "smtp.contoso.test",
	}
}

func TestProfileValidation(t *testing.T) {
	t.Parallel()
	s2s := func(p *serversync.Profile) {
		p.ServerType = serversync.ServerTypeExchangeOnlineHybrid
		p.IncomingServer, p.OutgoingServer = "https://outlook.office365.com", "https://outlook.office365.com"
		p.IncomingCredentialSource = serversync.CredentialsServerToServer
		p.ClientID, p.TenantID = "app", "tenant"
		p.CertificatePEM, p.CertificateKey = testCA, auth.NewSecret("key")
	}
	tests := []struct {
		name   string
		change func(p *serversync.Profile)
		field  string
	}{
		{"name required", func(p *serversync.Profile) { p.Name = "  " }, "Name"},
		{"name too long", func(p *serversync.Profile) { p.Name = strings.Repeat("n", 201) }, "Name"},
		{"unknown server type", func(p *serversync.Profile) { p.ServerType = "Lotus" }, "ServerType"},
		{"autodiscover only for exchange", func(p *serversync.Profile) { p.AutoDiscover = true }, "AutoDiscover"},
		{"unknown auth protocol", func(p *serversync.Profile) { p.AuthProtocol = "Kerberos5" }, "AuthProtocol"},
		{"NTLM only for exchange", func(p *serversync.Profile) { p.AuthProtocol = serversync.AuthNTLM }, "AuthProtocol"},
		{"incoming server required", func(p *serversync.Profile) { p.IncomingServer = "" }, "IncomingServer"},
		{"outgoing server required", func(p *serversync.Profile) { p.OutgoingServer = "" }, "OutgoingServer"},
		{"url for imap", func(p *serversync.Profile) { p.IncomingServer = "https://imap.contoso.test" }, "IncomingServer"},
		{"not a host", func(p *serversync.Profile) { p.OutgoingServer = "smtp contoso" }, "OutgoingServer"},
		{"port above range", func(p *serversync.Profile) { p.IncomingPort = 70000 }, "IncomingPort"},
		{"negative port", func(p *serversync.Profile) { p.OutgoingPort = -25 }, "OutgoingPort"},
		{"port contradicts server", func(p *serversync.Profile) { p.IncomingServer, p.IncomingPort = "imap.contoso.test:993", 143 }, "IncomingPort"},
		{"unknown TLS mode", func(p *serversync.Profile) { p.IncomingTLS = "SSLv3" }, "IncomingTLS"},
		{"incoming TLS off not allowed", func(p *serversync.Profile) { p.IncomingTLS = serversync.TLSNone }, "IncomingTLS"},
		{"outgoing TLS off not allowed", func(p *serversync.Profile) { p.OutgoingTLS = serversync.TLSNone }, "OutgoingTLS"},
		{"STARTTLS for exchange", func(p *serversync.Profile) {
			p.ServerType = serversync.ServerTypeExchangeServer
			p.IncomingServer, p.OutgoingServer = "https://ex.contoso.test/EWS/Exchange.asmx", "https://ex.contoso.test/EWS/Exchange.asmx"
			p.IncomingTLS = serversync.TLSStartTLS
		}, "IncomingTLS"},
		{"unknown credential source", func(p *serversync.Profile) { p.IncomingCredentialSource = "Kerberos" }, "IncomingCredentialSource"},
		{"anonymous incoming", func(p *serversync.Profile) { p.IncomingCredentialSource = serversync.CredentialsAnonymous }, "IncomingCredentialSource"},
		{"anonymous outgoing for exchange", func(p *serversync.Profile) {
			s2s(p)
			p.ServerType = serversync.ServerTypeExchangeOnline
			p.SeparateOutgoingSettings, p.OutgoingCredentialSource = true, serversync.CredentialsAnonymous
		}, "OutgoingCredentialSource"},
		{"server-to-server for exchange server", func(p *serversync.Profile) {
			p.ServerType = serversync.ServerTypeExchangeServer
			p.IncomingServer, p.OutgoingServer = "https://ex.contoso.test/EWS/Exchange.asmx", "https://ex.contoso.test/EWS/Exchange.asmx"
			p.IncomingCredentialSource = serversync.CredentialsServerToServer
		}, "IncomingCredentialSource"},
		{"basic authentication for exchange online", func(p *serversync.Profile) {
			p.ServerType = serversync.ServerTypeExchangeOnline
			p.IncomingServer, p.OutgoingServer = "", ""
			p.IncomingCredentialSource = serversync.CredentialsMailbox
		}, "IncomingCredentialSource"},
		{"hybrid needs server-to-server", func(p *serversync.Profile) { s2s(p); p.IncomingCredentialSource = serversync.CredentialsMailbox }, "IncomingCredentialSource"},
		{"windows integrated for imap incoming", func(p *serversync.Profile) { p.IncomingCredentialSource = serversync.CredentialsWindowsIntegrated }, "IncomingCredentialSource"},
		{"impersonation needs profile credentials", func(p *serversync.Profile) { p.UseImpersonation = true }, "UseImpersonation"},
		{"unknown impersonation style", func(p *serversync.Profile) {
			p.IncomingCredentialSource, p.Username, p.Password = serversync.CredentialsProfile, "svc", auth.NewSecret("pw")
			p.ImpersonationStyle = "Sudo"
		}, "ImpersonationStyle"},
		{"profile credentials need username", func(p *serversync.Profile) {
			p.IncomingCredentialSource, p.Password = serversync.CredentialsProfile, auth.NewSecret("pw")
		}, "Username"},
		{"profile credentials need password", func(p *serversync.Profile) {
			p.IncomingCredentialSource, p.Username, p.Password = serversync.CredentialsProfile, "svc", auth.Secret{}
		}, "Password"},
		{"oauth protocol needs oauth source", func(p *serversync.Profile) { p.AuthProtocol = serversync.AuthOAuth }, "AuthProtocol"},
		{"oauth needs client id", func(p *serversync.Profile) {
			p.IncomingCredentialSource, p.TokenURL = serversync.CredentialsOAuth, "https://login.test/token"
		}, "ClientID"},
		{"oauth needs token url", func(p *serversync.Profile) {
			p.IncomingCredentialSource, p.ClientID = serversync.CredentialsOAuth, "app"
		}, "TokenURL"},
		{"s2s needs client id", func(p *serversync.Profile) { s2s(p); p.ClientID = "" }, "ClientID"},
		{"s2s needs tenant", func(p *serversync.Profile) { s2s(p); p.TenantID = "" }, "TenantID"},
		{"s2s default tenant unset in org", func(p *serversync.Profile) { s2s(p); p.TenantID, p.UseDefaultTenantID = "", true }, "UseDefaultTenantID"},
		{"s2s needs certificate", func(p *serversync.Profile) { s2s(p); p.CertificatePEM = "" }, "CertificatePEM"},
		{"s2s needs certificate key", func(p *serversync.Profile) { s2s(p); p.CertificateKey = auth.Secret{} }, "CertificateKey"},
		{"s2s certificate must parse", func(p *serversync.Profile) { s2s(p); p.CertificatePEM = "not pem" }, "CertificatePEM"},
		{"tenant without s2s", func(p *serversync.Profile) { p.TenantID = "tenant" }, "TenantID"},
		{"connections above 300", func(p *serversync.Profile) { p.MaxConcurrentConnections = 301 }, "MaxConcurrentConnections"},
		{"connections negative", func(p *serversync.Profile) { p.MaxConcurrentConnections = -1 }, "MaxConcurrentConnections"},
		{"polling above 1440 minutes", func(p *serversync.Profile) { p.MinPollingInterval = 1441 * time.Minute }, "MinPollingInterval"},
		{"polling negative", func(p *serversync.Profile) { p.MinPollingInterval = -time.Minute }, "MinPollingInterval"},
		{"timeout above 100 s", func(p *serversync.Profile) { p.ConnectionTimeout = 101 * time.Second }, "ConnectionTimeout"},
		{"timeout below 1 s", func(p *serversync.Profile) { p.ConnectionTimeout = time.Millisecond }, "ConnectionTimeout"},
		{"extra root CAs must parse", func(p *serversync.Profile) { p.ExtraRootCAsPEM = "-----BEGIN NOTHING-----" }, "ExtraRootCAsPEM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			admin, store := newAdmin(t)
			p := imapProfile()
			p.Password = auth.NewSecret("hunter2-profile-secret")
			tt.change(p)

			_, err := admin.CreateProfile(ctx, p)
			requireValidationError(t, err, "Profile", tt.field)
			assert.NotContains(t, err.Error(), "hunter2")
			assertNoProfiles(t, store)

			// The same bad value through an update is refused and the stored profile kept.
			stored, err := admin.CreateProfile(ctx, imapProfile())
			require.NoError(t, err)
			_, err = admin.UpdateProfile(ctx, stored.ID, tt.change)
			requireValidationError(t, err, "Profile", tt.field)
			after, err := store.GetProfile(ctx, stored.ID)
			require.NoError(t, err)
			assert.Equal(t, stored, after, "a refused update must not change the stored profile")
		})
	}
}

func TestProfileNameUnique(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, store := newAdmin(t)
	first, err := admin.CreateProfile(ctx, imapProfile())
	require.NoError(t, err)

	dup := imapProfile()
	dup.Name = strings.ToUpper(dup.Name)
	_, err = admin.CreateProfile(ctx, dup)
	requireValidationError(t, err, "Profile", "Name")
	assert.ErrorIs(t, err, serversync.ErrAlreadyExists)

	n := 0
	for p, err := range store.ListProfiles(ctx) {
		require.NoError(t, err)
		assert.Equal(t, first.ID, p.ID)
		n++
	}
	assert.Equal(t, 1, n, "the duplicate must not be saved")
}

func TestTLSOffAllowedByOrgSetting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, _ := newAdmin(t)
	_, err := admin.UpdateOrgSettings(ctx, func(s *serversync.OrgSettings) { s.AllowNonSSLEmail = true })
	require.NoError(t, err)

	p := imapProfile()
	p.IncomingTLS, p.OutgoingTLS = serversync.TLSNone, serversync.TLSNone
	// TLS off alone is allowed, but the mailbox passwords would travel in the clear:
	// that needs its own switch, or the profile could never log in.
	_, err = admin.CreateProfile(ctx, p)
	requireValidationError(t, err, "Profile", "IncomingTLS")
	assert.ErrorContains(t, err, "AllowCredentialsOverNonSecureChannels")
	_, err = admin.UpdateOrgSettings(ctx, func(s *serversync.OrgSettings) { s.AllowCredentialsOverNonSecureChannels = true })
	require.NoError(t, err)
	saved, err := admin.CreateProfile(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, 143, saved.IncomingPort)
	assert.Equal(t, 25, saved.OutgoingPort)
	assert.False(t, saved.IncomingUseSSL())

	// Exchange Online never goes without TLS, whatever the org allows.
	eo := &serversync.Profile{
		Name: "EXO", ServerType: serversync.ServerTypeExchangeOnline,
		IncomingServer: "https://outlook.office365.com", OutgoingServer: "https://outlook.office365.com",
		IncomingTLS: serversync.TLSNone,
	}
	_, err = admin.CreateProfile(ctx, eo)
	requireValidationError(t, err, "Profile", "IncomingTLS")
}

func TestProfileNormalization(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		profile        serversync.Profile
		incoming, outg int
	}{
		{"imap implicit", serversync.Profile{ServerType: serversync.ServerTypeIMAPSMTP}, 993, 465},
		{"imap starttls", serversync.Profile{ServerType: serversync.ServerTypeIMAPSMTP, IncomingTLS: serversync.TLSStartTLS, OutgoingTLS: serversync.TLSStartTLS}, 143, 587},
		{"imap plaintext", serversync.Profile{ServerType: serversync.ServerTypeIMAPSMTP, IncomingTLS: serversync.TLSNone, OutgoingTLS: serversync.TLSNone}, 143, 25},
		{"pop3 implicit", serversync.Profile{ServerType: serversync.ServerTypePOP3SMTP}, 995, 465},
		{"pop3 starttls", serversync.Profile{ServerType: serversync.ServerTypePOP3SMTP, IncomingTLS: serversync.TLSStartTLS}, 110, 465},
		{"exchange", serversync.Profile{ServerType: serversync.ServerTypeExchangeOnline}, 443, 443},
		{"port from host", serversync.Profile{ServerType: serversync.ServerTypeIMAPSMTP, IncomingServer: "imap.test:10993", OutgoingServer: "smtp.test:2525"}, 10993, 2525},
		{"port from url", serversync.Profile{ServerType: serversync.ServerTypeExchangeServer, IncomingServer: "https://ex.test:8443/EWS"}, 8443, 443},
		{"explicit port kept", serversync.Profile{ServerType: serversync.ServerTypeIMAPSMTP, IncomingPort: 1993}, 1993, 465},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := tt.profile
			serversync.NormalizeProfile(&p)
			assert.Equal(t, tt.incoming, p.IncomingPort)
			assert.Equal(t, tt.outg, p.OutgoingPort)
			assert.Equal(t, serversync.MaxConcurrentConnectionsDefault, p.MaxConcurrentConnections)
			assert.Equal(t, serversync.ConnectionTimeoutDefault, p.ConnectionTimeout)
			assert.Equal(t, serversync.AuthAuto, p.AuthProtocol)
			assert.True(t, p.UseSameSettingsForOutgoing())
		})
	}

	// Outgoing copies the incoming credential settings unless told otherwise.
	p := serversync.Profile{ServerType: serversync.ServerTypeIMAPSMTP, IncomingCredentialSource: serversync.CredentialsProfile, OutgoingCredentialSource: serversync.CredentialsAnonymous}
	serversync.NormalizeProfile(&p)
	assert.Equal(t, serversync.CredentialsProfile, p.OutgoingCredentialSource)
	p = serversync.Profile{ServerType: serversync.ServerTypeIMAPSMTP, SeparateOutgoingSettings: true, OutgoingCredentialSource: serversync.CredentialsAnonymous}
	serversync.NormalizeProfile(&p)
	assert.Equal(t, serversync.CredentialsMailbox, p.IncomingCredentialSource)
	assert.Equal(t, serversync.CredentialsAnonymous, p.OutgoingCredentialSource)
}

func TestMailboxValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(m *serversync.Mailbox, profileID string)
		field  string
	}{
		{"email required", func(m *serversync.Mailbox, _ string) { m.EmailAddress = "" }, "EmailAddress"},
		{"email malformed", func(m *serversync.Mailbox, _ string) { m.EmailAddress = "not an address" }, "EmailAddress"},
		{"email with display name", func(m *serversync.Mailbox, _ string) { m.EmailAddress = "Alice <alice@contoso.test>" }, "EmailAddress"},
		{"regarding required", func(m *serversync.Mailbox, _ string) { m.Regarding = serversync.Regarding{} }, "Regarding"},
		{"regarding id required", func(m *serversync.Mailbox, _ string) { m.Regarding.ID = "" }, "Regarding"},
		{"forward mailbox has no regarding", func(m *serversync.Mailbox, _ string) { m.IsForwardMailbox = true }, "Regarding"},
		{"unknown incoming method", func(m *serversync.Mailbox, _ string) { m.IncomingMethod = "Fax" }, "IncomingMethod"},
		{"unknown outgoing method", func(m *serversync.Mailbox, _ string) { m.OutgoingMethod = "Pigeon" }, "OutgoingMethod"},
		{"unknown ACT method", func(m *serversync.Mailbox, _ string) { m.ACTMethod = "Paper" }, "ACTMethod"},
		{"forward method only for users", func(m *serversync.Mailbox, _ string) {
			m.Regarding.Type, m.IncomingMethod = serversync.RegardingQueue, serversync.IncomingForwardMailbox
		}, "IncomingMethod"},
		{"forward mailbox sends nothing", func(m *serversync.Mailbox, _ string) {
			m.Regarding, m.IsForwardMailbox, m.OutgoingMethod = serversync.Regarding{}, true, serversync.OutgoingServerSideSync
		}, "OutgoingMethod"},
		{"unknown filter", func(m *serversync.Mailbox, _ string) { m.IncomingFilter = "Spam" }, "IncomingFilter"},
		{"delete after processing only forward or queue", func(m *serversync.Mailbox, _ string) { m.DeleteAfterProcessing = true }, "DeleteAfterProcessing"},
		{"profile required unless all methods none", func(m *serversync.Mailbox, _ string) { m.ProfileID = "" }, "ProfileID"},
		{"profile must exist", func(m *serversync.Mailbox, _ string) { m.ProfileID = "no-such-profile" }, "ProfileID"},
		{"ACT sync needs exchange", func(m *serversync.Mailbox, _ string) { m.ACTMethod = serversync.OutgoingServerSideSync }, "ACTMethod"},
		{"unknown approval", func(m *serversync.Mailbox, _ string) { m.Approval = "Maybe" }, "Approval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			admin, store := newAdmin(t)
			profile, err := admin.CreateProfile(ctx, imapProfile())
			require.NoError(t, err)
			m := userMailbox(profile.ID, "alice@contoso.test", "user-alice")
			tt.change(m, profile.ID)

			_, err = admin.CreateMailbox(ctx, m)
			requireValidationError(t, err, "Mailbox", tt.field)
			assertNoMailboxes(t, store)

			stored, err := admin.CreateMailbox(ctx, userMailbox(profile.ID, "bob@contoso.test", "user-bob"))
			require.NoError(t, err)
			_, err = admin.UpdateMailbox(ctx, stored.ID, func(m *serversync.Mailbox) { tt.change(m, profile.ID) })
			requireValidationError(t, err, "Mailbox", tt.field)
			after, err := store.GetMailbox(ctx, stored.ID)
			require.NoError(t, err)
			assert.Equal(t, stored, after, "a refused update must not change the stored mailbox")
		})
	}
}

func TestMailboxUniqueness(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, store := newAdmin(t)
	profile, err := admin.CreateProfile(ctx, imapProfile())
	require.NoError(t, err)
	_, err = admin.CreateMailbox(ctx, userMailbox(profile.ID, "alice@contoso.test", "user-alice"))
	require.NoError(t, err)

	_, err = admin.CreateMailbox(ctx, userMailbox(profile.ID, "ALICE@contoso.test", "user-other"))
	requireValidationError(t, err, "Mailbox", "EmailAddress")
	assert.ErrorIs(t, err, serversync.ErrAlreadyExists)

	_, err = admin.CreateMailbox(ctx, userMailbox(profile.ID, "alice2@contoso.test", "user-alice"))
	requireValidationError(t, err, "Mailbox", "Regarding")
	assert.ErrorIs(t, err, serversync.ErrAlreadyExists)

	assert.Equal(t, 1, countMailboxes(t, store, serversync.MailboxFilter{}))
}

func TestMailboxRulesThatAllow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, _ := newAdmin(t)
	profile, err := admin.CreateProfile(ctx, imapProfile())
	require.NoError(t, err)

	queue := &serversync.Mailbox{EmailAddress: "support@contoso.test", ProfileID: profile.ID,
		Regarding: serversync.Regarding{Type: serversync.RegardingQueue, ID: "q-support"}, DeleteAfterProcessing: true}
	saved, err := admin.CreateMailbox(ctx, queue)
	require.NoError(t, err, "queues may delete after processing")
	assert.Equal(t, serversync.FilterAll, saved.IncomingFilter)

	forward := &serversync.Mailbox{EmailAddress: "fwd@contoso.test", ProfileID: profile.ID, IsForwardMailbox: true, DeleteAfterProcessing: true}
	saved, err = admin.CreateMailbox(ctx, forward)
	require.NoError(t, err)
	assert.Equal(t, serversync.OutgoingNone, saved.OutgoingMethod, "a forward mailbox sends nothing")

	none := &serversync.Mailbox{EmailAddress: "carol@contoso.test", Regarding: serversync.Regarding{Type: serversync.RegardingUser, ID: "user-carol"},
		IncomingMethod: serversync.IncomingNone, OutgoingMethod: serversync.OutgoingNone, ACTMethod: serversync.OutgoingNone}
	saved, err = admin.CreateMailbox(ctx, none)
	require.NoError(t, err, "no profile is needed while every method is None")
	assert.False(t, saved.TestAndEnablePending)
}

func userMailbox(profileID, email, userID string) *serversync.Mailbox {
	return &serversync.Mailbox{
		EmailAddress: email,
		ProfileID:    profileID,
		Regarding:    serversync.Regarding{Type: serversync.RegardingUser, ID: userID},
	}
}

func requireValidationError(t *testing.T, err error, entity, field string) {
	t.Helper()
	var verr *serversync.ValidationError
	require.Truef(t, errors.As(err, &verr), "want *ValidationError for %s.%s, got %v", entity, field, err)
	assert.Equal(t, entity, verr.Entity)
	assert.Equal(t, field, verr.Field, "error: %v", err)
	assert.NotEmpty(t, verr.Reason)
	assert.Contains(t, err.Error(), fmt.Sprintf("%s.%s", entity, field))
}

func assertNoProfiles(t *testing.T, store serversync.Store) {
	t.Helper()
	for p, err := range store.ListProfiles(context.Background()) {
		require.NoError(t, err)
		t.Errorf("profile %q was saved despite the error", p.Name)
	}
}

func assertNoMailboxes(t *testing.T, store serversync.Store) {
	t.Helper()
	assert.Zero(t, countMailboxes(t, store, serversync.MailboxFilter{}), "nothing may be saved when validation fails")
}

func countMailboxes(t *testing.T, store serversync.Store, f serversync.MailboxFilter) int {
	t.Helper()
	n := 0
	for _, err := range store.ListMailboxes(context.Background(), f) {
		require.NoError(t, err)
		n++
	}
	return n
}
