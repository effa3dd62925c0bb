package auth

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

func TestSASLClientChoosesMechanism(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pw := NewSecret("s3cret")
	tests := []struct {
		name     string
		creds    Credentials
		offered  []string
		mech     string
		response string
	}{
		{"password prefers PLAIN", Credentials{Kind: KindPassword, Username: "alice", Password: pw}, []string{"LOGIN", "PLAIN"}, sasl.Plain, "\x00alice\x00s3cret"},
		{"password falls back to LOGIN", Credentials{Kind: KindPassword, Username: "alice", Password: pw}, []string{"LOGIN"}, sasl.Login, "alice"},
		{"impersonation as authzid", Credentials{Kind: KindImpersonation, Username: "svc", Password: pw, Mailbox: "alice"}, []string{"PLAIN"}, sasl.Plain, "alice\x00svc\x00s3cret"},
		{"impersonation as master user", Credentials{Kind: KindImpersonation, Impersonation: ImpersonateMasterUser, Username: "master", Password: pw, Mailbox: "alice"}, []string{"plain"}, sasl.Plain, "\x00alice*master\x00s3cret"},
		{"delegation logs in as the account", Credentials{Kind: KindDelegation, Username: "svc", Password: pw, Mailbox: "alice"}, []string{"PLAIN"}, sasl.Plain, "\x00svc\x00s3cret"},
		{"oauth prefers XOAUTH2", Credentials{Kind: KindOAuth, Username: "alice", TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "tok"})}, []string{"OAUTHBEARER", "XOAUTH2"}, Xoauth2, "user=alice\x01auth=Bearer tok\x01\x01"},
		{"oauth bearer", Credentials{Kind: KindOAuth, Username: "alice", TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "tok"})}, []string{"OAUTHBEARER"}, sasl.OAuthBearer, "n,a=alice,\x01auth=Bearer tok\x01\x01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mech, client, err := tt.creds.SASLClient(ctx, tt.offered)
			require.NoError(t, err)
			assert.Equal(t, tt.mech, mech)
			_, ir, err := client.Start()
			require.NoError(t, err)
			assert.Equal(t, tt.response, string(ir))
		})
	}
}

func TestSASLClientRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// An authorization identity cannot travel in LOGIN: impersonation must not quietly
	// log in as the service account itself.
	_, _, err := Credentials{Kind: KindImpersonation, Username: "svc", Password: NewSecret("x"), Mailbox: "alice"}.SASLClient(ctx, []string{"LOGIN"})
	assert.ErrorIs(t, err, ErrMechanismUnavailable)
	_, _, err = Credentials{Kind: KindOAuth, Username: "a", TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"})}.SASLClient(ctx, []string{"PLAIN"})
	assert.ErrorIs(t, err, ErrMechanismUnavailable)
	mech, client, err := Credentials{Kind: KindAnonymous}.SASLClient(ctx, []string{"PLAIN"})
	require.NoError(t, err)
	assert.Empty(t, mech)
	assert.Nil(t, client)
}

func TestCredentialsNeverPrintSecrets(t *testing.T) {
	t.Parallel()
	c := Credentials{Kind: KindPassword, Username: "alice", Password: NewSecret("hunter2")}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
		assert.False(t, strings.Contains(s, "hunter2"), s)
	}
	assert.Equal(t, "alice*master", Credentials{Kind: KindImpersonation, Impersonation: ImpersonateMasterUser, Username: "master", Mailbox: "alice"}.LoginName())
}

// sharedSource hands every caller the same token, as a cache shared by many
// connections may.
type sharedSource struct{ token *oauth2.Token }

func (s sharedSource) Token() (*oauth2.Token, error) { return s.token, nil }

// Connections sharing one token source get their SASL clients concurrently
// without writing to the shared token (the race detector watches).
func TestSASLClientLeavesSharedTokensAlone(t *testing.T) {
	src := sharedSource{&oauth2.Token{AccessToken: "app-token", Expiry: time.Now().Add(time.Hour)}}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			creds := Credentials{Kind: KindAppOnly, Username: fmt.Sprintf("mailbox%d@contoso.test", i), TokenSource: src}
			mech, _, err := creds.SASLClient(context.Background(), []string{"XOAUTH2"})
			assert.NoError(t, err)
			assert.Equal(t, Xoauth2, mech)
		})
	}
	wg.Wait()
}

// TestSASLProtocolChoosesMechanism: the profile's protocol restricts what the server's
// offer may lead to, before any KDC is asked.
func TestSASLProtocolChoosesMechanism(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pw := NewSecret("s3cret")
	offered := []string{"PLAIN", "LOGIN", "GSSAPI"}
	password := func(p Protocol, k *KerberosConfig) Credentials {
		return Credentials{Kind: KindPassword, Username: "alice", Password: pw, Protocol: p, Kerberos: k}
	}
	for _, tc := range []struct {
		name    string
		creds   Credentials
		offered []string
		mech    string // "" means ErrMechanismUnavailable
	}{
		{"Auto without Kerberos configured keeps PLAIN", password(ProtocolAuto, nil), offered, sasl.Plain},
		{"Basic never tries Kerberos", password(ProtocolBasic, &KerberosConfig{}), offered, sasl.Plain},
		{"Negotiate never falls back to a password", password(ProtocolNegotiate, nil), []string{"PLAIN", "LOGIN"}, ""},
		{"NTLM is not a SASL mechanism here", password(ProtocolNTLM, nil), offered, ""},
		{"Windows-integrated needs GSSAPI", Credentials{Kind: KindIntegrated, Mailbox: "alice"}, []string{"PLAIN"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mech, _, err := tc.creds.SASLClientFor(ctx, "imap", "mail.example.test", tc.offered)
			if tc.mech == "" {
				assert.ErrorIs(t, err, ErrMechanismUnavailable)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.mech, mech)
		})
	}
	assert.False(t, password(ProtocolNegotiate, nil).CanUsePlainLogin(), "no LOGIN command under Negotiate")
	assert.True(t, password(ProtocolBasic, nil).CanUsePlainLogin())
	assert.False(t, Credentials{Kind: KindIntegrated}.CanUsePlainLogin())
}
