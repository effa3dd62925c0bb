package serversync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/serversync/serversync/auth"
)

// Endpoint is a resolved server location for one direction of a profile.
type Endpoint struct {
	// URL is the base URL of an HTTP API (Microsoft Graph's
	// "https://graph.microsoft.com", an EWS endpoint), "" for the mail protocols.
	// Host, Port and TLS then describe the same location.
	URL  string
	Host string
	Port int
	TLS  TLSMode // never TLSDefault once resolved
	// RootCAsPEM are extra certificate authorities to trust besides the system roots.
	RootCAsPEM string
	// Timeout bounds dialing, the TLS handshake and each server reply.
	Timeout time.Duration
	// AllowPlaintextAuth permits sending credentials over an unencrypted connection
	// (OrgSettings.AllowCredentialsOverNonSecureChannels).
	AllowPlaintextAuth bool
}

// Address returns "host:port".
func (e Endpoint) Address() string { return fmt.Sprintf("%s:%d", e.Host, e.Port) }

// Target is everything a connector needs to open a session for one mailbox: where
// to connect and with which credentials. The Syncer builds it from the profile, the
// mailbox and the org settings with [ResolveTarget].
type Target struct {
	ProfileID    string
	MailboxID    string
	EmailAddress string
	Endpoint     Endpoint
	Credentials  auth.Credentials
}

// IncomingConnector opens sessions that receive mail (IMAP, POP3, …).
// Implementations must be safe for concurrent use; sessions need not be.
type IncomingConnector interface {
	OpenIncoming(ctx context.Context, target *Target) (IncomingSession, error)
}

// OutgoingConnector opens sessions that send mail (SMTP, …).
// Implementations must be safe for concurrent use; sessions need not be.
type OutgoingConnector interface {
	OpenOutgoing(ctx context.Context, target *Target) (OutgoingSession, error)
}

// FetchRequest says what an incoming session should deliver.
type FetchRequest struct {
	// Folder to read; "" means the inbox.
	Folder string
	// Cursor is the connector-defined position returned with the last message
	// processed, or nil to start from the beginning.
	Cursor []byte
	// Since skips messages received before it (zero: none skipped).
	Since time.Time
	// ExtraConnection, when set, is asked before the connector opens another
	// connection for this fetch (the IMAP connector's parallel initial download). It
	// returns a release to call once that connection is closed, or ok false when the
	// caller's connection budget has no room: the fetch then does without. The
	// Syncer sets it so extra connections count against MaxConcurrentConnections.
	ExtraConnection func() (release func(), ok bool)
}

// RemoteMessage is one message delivered by IncomingSession.Fetch. Body is valid only
// during the callback that receives it, which keeps memory bounded however large the
// mailbox is.
type RemoteMessage struct {
	Folder     string
	Ref        string // the server's handle: IMAP UID, POP3 UIDL
	Size       int64
	ReceivedAt time.Time // the server's internal date, or zero when unknown
	Body       io.Reader
	// Cursor is the position just after this message: store it atomically with the
	// activity (ActivityStore.SaveTracked) and the next Fetch resumes after it.
	Cursor []byte
}

// FetchResult summarises a Fetch.
type FetchResult struct {
	// Cursor is the position after everything seen, even when no message was new.
	Cursor []byte
	// Reset reports that the server invalidated the previous cursor (IMAP UIDVALIDITY
	// changed, POP3 UIDL list unrelated): every message was offered again from the
	// start, and the Store's per-mailbox message keys keep them from being tracked twice.
	Reset bool
}

// IncomingSession is an open, authenticated connection to one mailbox. It is not
// safe for concurrent use. Optional abilities are separate interfaces ([FolderSession],
// [IdleSession], [CommitSession], [DeletionCursorSession]).
type IncomingSession interface {
	// Fetch calls fn for each message after req.Cursor, in server order, and returns
	// the cursor after the last one. An error from fn stops the fetch and is returned.
	// Reading a message's Body fails, with a classified error, when the connection
	// breaks: a body cut short is never handed over as a whole message.
	Fetch(ctx context.Context, req FetchRequest, fn func(*RemoteMessage) error) (FetchResult, error)
	// Delete removes a message from the server.
	Delete(ctx context.Context, folder, ref string) error
	// Close logs out and releases the connection.
	Close() error
}

// FolderSession is implemented by incoming sessions whose protocol has folders
// besides the inbox (IMAP; POP3 has none). It is the one place "has folders" is
// said: the Syncer moves messages it could not track to Undeliverable, and saves a
// copy of sent email in Sent, only through a session that implements it.
type FolderSession interface {
	// Move moves a message to toFolder, creating that folder if it is missing.
	Move(ctx context.Context, folder, ref, toFolder string) error
	// Append stores a message in folder (creating it if missing), e.g. a copy in "Sent".
	Append(ctx context.Context, folder string, received time.Time, msg io.Reader, size int64) error
}

// IdleSession is implemented by incoming sessions that can wait for new mail (IMAP IDLE).
type IdleSession interface {
	// WaitForChange blocks until the server reports a change in folder or ctx ends.
	// When the server cannot wait (no IDLE), it returns an error matching
	// errors.ErrUnsupported, so callers fall back to polling.
	WaitForChange(ctx context.Context, folder string) error
}

// CommitSession is implemented by incoming sessions whose server applies changes
// only when the session ends, as POP3 applies deletions at QUIT. The Syncer
// commits before it counts the changes as done, so a crash cannot undo them
// unnoticed.
type CommitSession interface {
	// Commit makes the server apply the changes made so far; the session stays usable.
	Commit(ctx context.Context) error
}

// DeletionCursorSession is implemented by incoming sessions whose cursor names the
// messages before its position (POP3's remembers the last UIDLs read), so that
// deleting them would look like a server that invalidated the cursor. After the
// Syncer's deletions are committed it stores CursorAfterDeletes(cursor) in place of
// cursor: the same position, without the messages deleted.
type DeletionCursorSession interface {
	CursorAfterDeletes(cursor []byte) []byte
}

// SentCopyKeeper is implemented by outgoing connectors whose server keeps a copy
// of every message it sends in the mailbox's Sent Items (Graph's sendMail, EWS's
// SendAndSaveCopy). The Syncer then never appends a second copy, whatever
// OrgSettings.SaveCopyToSentFolder says.
type SentCopyKeeper interface {
	KeepsSentCopy() bool
}

// Envelope is the SMTP envelope of one message.
type Envelope struct {
	From string
	To   []string
}

// OutgoingSession is an open, authenticated connection for sending. It is not safe
// for concurrent use.
type OutgoingSession interface {
	// Send transmits one message. On success the server has accepted it for every recipient.
	Send(ctx context.Context, env Envelope, msg io.Reader) error
	Close() error
}

// TestStep is one step of Test Connection ("connect", "tls", "authenticate",
// "open-inbox", "mail-from", …) with its outcome and, on failure, a message a person
// can act on.
type TestStep struct {
	Name     string
	OK       bool
	Detail   string
	Err      error
	Duration time.Duration
}

// Prober is implemented by connectors that can test a target step by step without
// changing anything on the server (no message sent, nothing moved).
type Prober interface {
	Probe(ctx context.Context, target *Target) []TestStep
}

// ErrorKind classifies a connector error for retry decisions (DESIGN §6).
type ErrorKind string

// Error kinds.
const (
	// ErrorTransient: network trouble, timeouts, 4xx replies, server busy. Retry later.
	ErrorTransient ErrorKind = "Transient"
	// ErrorPermanent: 5xx replies, missing mailbox, TLS required but unavailable. Disable the workload.
	ErrorPermanent ErrorKind = "Permanent"
	// ErrorAuth: credentials refused or expired. Permanent, and worth its own alert text.
	ErrorAuth ErrorKind = "Authentication"
)

// ConnectorError is the one error type connectors return. Err keeps the protocol
// error (e.g. *imap.Error, *smtp.SMTPError) reachable with errors.As.
type ConnectorError struct {
	Op    string     // "dial", "starttls", "authenticate", "select", "fetch", "send", …
	Kind  ErrorKind  //
	Scope AlertScope // ScopeMailbox or ScopeProfile (server down, TLS broken: every mailbox is hit)
	Code  string     // stable, machine-readable: one of the Code… constants, e.g. CodeAuthFailed
	Err   error
}

func (e *ConnectorError) Error() string {
	return fmt.Sprintf("serversync: %s: %s (%s, %s): %v", e.Op, e.Code, e.Kind, e.Scope, e.Err)
}

func (e *ConnectorError) Unwrap() error { return e.Err }

// Temporary reports whether retrying later may succeed.
func (e *ConnectorError) Temporary() bool { return e.Kind == ErrorTransient }

// ErrorClass is what [ClassifyError] makes of an error: how to retry it, whom it
// concerns, and its code.
type ErrorClass struct {
	Kind  ErrorKind
	Scope AlertScope
	Code  string // one of the Code… constants
}

// Internal reports that the failure is neither the mail server's nor the
// mailbox's (Code is [CodeInternal]): the Syncer retries it without counting it
// towards Config.MaxTransientFailures and without alerting, so an outage of the store
// cannot disable every mailbox.
func (c ErrorClass) Internal() bool { return c.Code == CodeInternal }

// ClassifyError is the one rule that turns any error into a retry decision; the
// Syncer uses it for everything it records, and callers of connectors may use it
// too. A *ConnectorError anywhere in err's chain says for itself (connectors
// classify what the server said). A host hook's panic is transient
// ([CodeHookPanic]); a credential source no connector implements is permanent and
// profile-wide ([CodeUnsupportedCredentials]). Everything else did not come from
// a mail server: context deadlines, network errors and errors whose Temporary()
// is true, like a store's or a host hook's errors, are transient and
// [ErrorClass.Internal]. Unknown errors are transient on purpose: trouble outside
// the mail server must never disable a mailbox at once. The class of a nil error
// is the zero ErrorClass.
func ClassifyError(err error) ErrorClass {
	if err == nil {
		return ErrorClass{}
	}
	var ce *ConnectorError
	if errors.As(err, &ce) {
		return ErrorClass{Kind: ce.Kind, Scope: ce.Scope, Code: ce.Code}
	}
	var panicked *HookPanicError
	if errors.As(err, &panicked) {
		return ErrorClass{Kind: ErrorTransient, Scope: ScopeMailbox, Code: CodeHookPanic}
	}
	if errors.Is(err, ErrUnsupportedCredentials) {
		// Retrying changes nothing, and every mailbox of the profile is hit.
		return ErrorClass{Kind: ErrorPermanent, Scope: ScopeProfile, Code: CodeUnsupportedCredentials}
	}
	return ErrorClass{Kind: ErrorTransient, Scope: ScopeMailbox, Code: CodeInternal}
}
