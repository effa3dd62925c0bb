package serversync

import "testing"

// The connection budget follows the one rule of CredentialSource.UsesMailboxCredentials:
// per mailbox when each mailbox brings its own credentials, per profile otherwise.
func TestConnectionKeyFollowsTheCredentialSource(t *testing.T) {
	for source, want := range map[CredentialSource]string{
		CredentialsMailbox:           "mailbox:m1",
		CredentialsOAuth:             "mailbox:m1",
		CredentialsProfile:           "profile:p1",
		CredentialsServerToServer:    "profile:p1",
		CredentialsWindowsIntegrated: "profile:p1",
		CredentialsAnonymous:         "profile:p1",
	} {
		w := &work{m: &Mailbox{ID: "m1"}, p: &Profile{ID: "p1", IncomingCredentialSource: CredentialsMailbox, OutgoingCredentialSource: source}}
		if got := w.connectionKey(Outgoing); got != want {
			t.Errorf("%s: outgoing connections count against %q, want %q", source, got, want)
		}
		if got := w.connectionKey(Incoming); got != "mailbox:m1" {
			t.Errorf("%s: incoming follows the incoming source, got %q", source, got)
		}
	}
}
