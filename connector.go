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
// safe for concurrent use. Optional abilities are separate interfaces ([IdleSession],
// [CommitSession], [DeletionCursorSession]).
type IncomingSession interface {
	// Fetch calls fn for each message after req.Cursor, in server order, and returns
	// the cursor after the last one. An error from fn stops the fetch and is returned.
	// Reading a message's Body fails, with a classified error, when the connection
	// breaks: a body cut short is never handed over as a whole message.
	Fetch(ctx context.Context, req FetchRequest, fn func(*RemoteMessage) error) (FetchResult, error)
	// Move moves a message to folder, creating the folder if it is missing.
	Move(ctx context.Context, folder, ref, toFolder string) error
	// Delete removes a message from the server.
	Delete(ctx context.Context, folder, ref string) error
	// Append stores a message in folder (creating it if missing), e.g. a copy in "Sent".
	Append(ctx context.Context, folder string, received time.Time, msg io.Reader, size int64) error
	// Close logs out and releases the connection.
	Close() error
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

// CodeSendOutcomeUnknown is the ConnectorError code of a send whose message was
// handed to the server without a reply coming back: it may have been delivered, so
// it must not be sent again without a person deciding to.
const CodeSendOutcomeUnknown = "send_outcome_unknown"

// ConnectorError is the one error type connectors return. Err keeps the protocol
// error (e.g. *imap.Error, *smtp.SMTPError) reachable with errors.As.
type ConnectorError struct {
	Op    string     // "dial", "starttls", "authenticate", "select", "fetch", "send", …
	Kind  ErrorKind  //
	Scope AlertScope // ScopeMailbox or ScopeProfile (server down, TLS broken: every mailbox is hit)
	Code  string     // stable, machine-readable, e.g. "auth_failed", "tls_unavailable"
	Err   error
}

func (e *ConnectorError) Error() string {
	return fmt.Sprintf("serversync: %s: %s (%s, %s): %v", e.Op, e.Code, e.Kind, e.Scope, e.Err)
}

func (e *ConnectorError) Unwrap() error { return e.Err }

// Temporary reports whether retrying later may succeed.
func (e *ConnectorError) Temporary() bool { return e.Kind == ErrorTransient }

// ClassifyError returns the kind and scope of err: those of a wrapped *ConnectorError,
// transient for context deadlines and network errors, permanent otherwise.
func ClassifyError(err error) (ErrorKind, AlertScope) {
	var ce *ConnectorError
	if errors.As(err, &ce) {
		return ce.Kind, ce.Scope
	}
	var temporary interface{ Temporary() bool }
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &temporary) && temporary.Temporary()) {
		return ErrorTransient, ScopeMailbox
	}
	return ErrorPermanent, ScopeMailbox
}
