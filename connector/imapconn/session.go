package imapconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector"
)

// IMAP has folders: the Syncer moves to Undeliverable and appends to Sent through them.
var _ serversync.FolderSession = (*session)(nil)

// session is an authenticated IMAP connection for one mailbox. It implements
// serversync.IncomingSession, serversync.FolderSession and serversync.IdleSession
// and is not safe for concurrent use.
type session struct {
	c       *Connector
	target  serversync.Target
	timeout time.Duration
	log     *slog.Logger

	conn    *guardedConn
	bounded *connector.BoundedConn // under conn: holds replies to their limits
	client  *imapclient.Client
	caps    imap.CapSet

	// Folder mapping (see mailboxName).
	personalPrefix string
	delegatePrefix string // "<other-users prefix><mailbox><delim>" with delegation

	selected   string // server name of the selected mailbox, "" when none
	selectedRO bool
	selectedUV uint32

	// folders remembers, per server mailbox name, what the last Fetch saw: refs
	// handed out then are only valid under that UIDVALIDITY, and WaitForChange
	// returns at once if mail arrived since.
	folders map[string]folderState
	created map[string]bool // folders this session created or found existing

	changed chan struct{} // signalled by unilateral EXISTS, EXPUNGE and FETCH
	broken  error
	closed  bool
}

type folderState struct {
	uidValidity uint32
	uidNext     imap.UID
}

var (
	_ serversync.IncomingSession = (*session)(nil)
	_ serversync.IdleSession     = (*session)(nil)
)

// callbackError carries an error from the caller's callback through run untouched.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }
func (e callbackError) Unwrap() error { return e.err }

// run executes one protocol step: ctx aborts the connection when it ends, and
// the endpoint timeout bounds every wait for the server. Errors come back
// classified; a context that fired or a lost connection leaves the session broken.
func (s *session) run(ctx context.Context, op string, f func() error) error {
	if s.broken != nil {
		return s.broken
	}
	if ctx.Err() != nil {
		code := serversync.CodeCanceled
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			code = serversync.CodeTimeout
		}
		return connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, code,
			fmt.Errorf("imap: %s: %w", op, ctxError(ctx)))
	}
	stop := s.conn.watch(ctx)
	s.conn.setReplyTimeout(s.timeout)
	completed := false
	defer func() {
		if !completed { // f panicked (a callback, most likely) mid-command
			stop()
			s.conn.abort()
			s.broken = connector.Error(op, serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeNetwork,
				fmt.Errorf("imap: %s: panic during the command: %w", op, ErrSessionBroken))
		}
	}()
	err := f()
	completed = true
	fired := stop()
	s.conn.setReplyTimeout(0)
	var cb callbackError
	if errors.As(err, &cb) {
		err = cb.err
		var wire wireError
		switch {
		case fired:
			s.broken = s.classify(op, ctxError(ctx), ctxError(ctx))
			if errors.As(err, &wire) {
				return s.broken
			}
		case errors.As(err, &wire): // the callback could not read the message: the connection failed
			err = s.classify(op, wire.err, nil)
			s.broken = err
		}
		return err
	}
	if fired {
		err = s.classify(op, ctxError(ctx), ctxError(ctx))
		s.broken = err
		return err
	}
	if err == nil {
		return nil
	}
	err = s.classify(op, err, nil)
	if errors.Is(err, ErrSessionBroken) {
		s.broken = err
	}
	return err
}

// dropConnection ends a connection that failed in the middle of a response and
// waits (up to the timeout) for imapclient's reader to stop: imapclient discards
// the rest of a half-read FETCH response from the caller's goroutine, which must
// not race its reader on the same buffer.
func (s *session) dropConnection() {
	s.conn.abort()
	select {
	case <-s.client.Closed():
	case <-time.After(s.timeout):
	}
}

// ctxError is ctx.Err(), joined with the cause when one was given.
func ctxError(ctx context.Context) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("%w: %w", err, cause)
	}
	return err
}

// usable reports why the session cannot be used, if it cannot.
func (s *session) usable() error {
	if s.closed {
		return errSessionClosed
	}
	return s.broken
}

// unilateralHandler turns the server's unsolicited updates into a wake-up for
// WaitForChange.
func (s *session) unilateralHandler() *imapclient.UnilateralDataHandler {
	notify := func() {
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
	return &imapclient.UnilateralDataHandler{
		Expunge: func(uint32) { notify() },
		Mailbox: func(data *imapclient.UnilateralDataMailbox) {
			if data.NumMessages != nil {
				notify()
			}
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			for msg.Next() != nil { // the client's reader waits until it's consumed
			}
			notify()
		},
	}
}

// loadNamespace reads NAMESPACE: the personal prefix (e.g. Courier's "INBOX.")
// and, for delegation, the other users' namespace the service account opens the
// mailbox in.
func (s *session) loadNamespace(ctx context.Context) error {
	creds := s.target.Credentials
	delegation := creds.Kind == auth.KindDelegation
	if !s.caps.Has(imap.CapNamespace) {
		if delegation {
			return connector.Error("namespace", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeDelegationUnavailable,
				errors.New("imap: delegation needs the server's NAMESPACE extension, which it does not offer"))
		}
		return nil
	}
	var ns *imap.NamespaceData
	if err := s.run(ctx, "namespace", func() (err error) {
		ns, err = s.client.Namespace().Wait()
		return err
	}); err != nil {
		return err
	}
	if len(ns.Personal) > 0 {
		s.personalPrefix = ns.Personal[0].Prefix
	}
	if !delegation {
		return nil
	}
	var other *imap.NamespaceDescriptor
	switch {
	case len(ns.Other) > 0:
		other = &ns.Other[0]
	case len(ns.Shared) > 0:
		other = &ns.Shared[0]
	}
	if other == nil || other.Delim == 0 {
		return connector.Error("namespace", serversync.ErrorPermanent, serversync.ScopeProfile, serversync.CodeDelegationUnavailable,
			errors.New("imap: the server has no other-users or shared namespace with a hierarchy delimiter to open delegated mailboxes in"))
	}
	if creds.Mailbox == "" {
		return connector.Error("namespace", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeDelegationUnavailable,
			errors.New("imap: delegation credentials name no mailbox"))
	}
	prefix := other.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, string(other.Delim)) {
		prefix += string(other.Delim)
	}
	s.delegatePrefix = prefix + creds.Mailbox + string(other.Delim)
	s.log.Debug("imap: delegated mailbox", "prefix", s.delegatePrefix)
	return nil
}

// mailboxName maps a logical folder ("" or "INBOX", "Sent", "Undeliverable") to
// the server's name for it: under the other-users namespace with delegation
// ("shared/alice@example.test/INBOX"), under a non-empty personal prefix otherwise
// ("INBOX.Sent").
func (s *session) mailboxName(folder string) string {
	if folder == "" || strings.EqualFold(folder, "INBOX") {
		folder = "INBOX"
	}
	switch {
	case s.delegatePrefix != "":
		return s.delegatePrefix + folder
	case folder != "INBOX" && s.personalPrefix != "" && !strings.HasPrefix(folder, s.personalPrefix):
		return s.personalPrefix + folder
	}
	return folder
}

// selectFolder SELECTs (or EXAMINEs) a mailbox, with CONDSTORE when offered.
// Call it inside run.
func (s *session) selectFolder(name string, readOnly bool) (*imap.SelectData, error) {
	s.selected = ""
	data, err := s.client.Select(name, &imap.SelectOptions{
		ReadOnly:  readOnly,
		CondStore: s.caps.Has(imap.CapCondStore),
	}).Wait()
	if err != nil {
		return nil, err
	}
	s.selected, s.selectedRO, s.selectedUV = name, readOnly, data.UIDValidity
	return data, nil
}

// selectForWrite makes name the selected, writable mailbox and checks that refs
// handed out by this session's last Fetch of it are still valid. Call it inside run.
func (s *session) selectForWrite(name string) error {
	if s.selected != name || s.selectedRO {
		if _, err := s.selectFolder(name, false); err != nil {
			return err
		}
	}
	if known, ok := s.folders[name]; ok && known.uidValidity != s.selectedUV {
		return connector.Error("select", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeUIDValidityChanged,
			fmt.Errorf("imap: UIDVALIDITY of %q changed from %d to %d since its messages were fetched: fetch again",
				name, known.uidValidity, s.selectedUV))
	}
	return nil
}

// ensureFolder creates a mailbox unless it exists. Call it inside run.
func (s *session) ensureFolder(name string) error {
	if strings.EqualFold(name, "INBOX") || s.created[name] {
		return nil
	}
	err := s.client.Create(name, nil).Wait()
	var imapErr *imap.Error
	if err != nil && errors.As(err, &imapErr) && imapErr.Type == imap.StatusResponseTypeNo {
		if imapErr.Code == imap.ResponseCodeAlreadyExists {
			err = nil
		} else if _, statusErr := s.client.Status(name, &imap.StatusOptions{UIDValidity: true}).Wait(); statusErr == nil {
			err = nil // exists; the server just didn't say ALREADYEXISTS
		}
	}
	if err != nil {
		return err
	}
	s.created[name] = true
	return nil
}

// expungeUIDs deletes messages: UID STORE +FLAGS.SILENT (\Deleted), then UID
// EXPUNGE with UIDPLUS, or a plain EXPUNGE (which also removes other messages
// already flagged \Deleted) without. Call it inside run.
func (s *session) expungeUIDs(set imap.UIDSet) error {
	store := s.client.Store(set, &imap.StoreFlags{
		Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted},
	}, nil)
	if err := store.Close(); err != nil {
		return err
	}
	if s.caps.Has(imap.CapUIDPlus) {
		return s.client.UIDExpunge(set).Close()
	}
	return s.client.Expunge().Close()
}

func parseRef(op, ref string) (imap.UIDSet, error) {
	uid, err := strconv.ParseUint(ref, 10, 32)
	if err != nil || uid == 0 {
		return nil, connector.Error(op, serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeBadRef,
			fmt.Errorf("imap: %q is not an IMAP UID", ref))
	}
	return imap.UIDSetNum(imap.UID(uid)), nil
}

// Move moves the message with UID ref from folder to toFolder, creating
// toFolder if it is missing: UID MOVE, or UID COPY then delete without MOVE.
func (s *session) Move(ctx context.Context, folder, ref, toFolder string) error {
	if err := s.usable(); err != nil {
		return err
	}
	set, err := parseRef("move", ref)
	if err != nil {
		return err
	}
	src, dst := s.mailboxName(folder), s.mailboxName(toFolder)
	return s.run(ctx, "move", func() error {
		if err := s.ensureFolder(dst); err != nil {
			return err
		}
		if err := s.selectForWrite(src); err != nil {
			return err
		}
		if s.caps.Has(imap.CapMove) {
			_, err := s.client.Move(set, dst).Wait()
			return err
		}
		// Not imapclient's own fallback, which pipelines STORE and EXPUNGE behind
		// the COPY and would delete the message even when the COPY failed.
		if _, err := s.client.Copy(set, dst).Wait(); err != nil {
			return err
		}
		return s.expungeUIDs(set)
	})
}

// Delete removes the message with UID ref from folder.
func (s *session) Delete(ctx context.Context, folder, ref string) error {
	if err := s.usable(); err != nil {
		return err
	}
	set, err := parseRef("delete", ref)
	if err != nil {
		return err
	}
	name := s.mailboxName(folder)
	return s.run(ctx, "delete", func() error {
		if err := s.selectForWrite(name); err != nil {
			return err
		}
		return s.expungeUIDs(set)
	})
}

// Append stores msg (size bytes; a negative size reads msg into memory first)
// in folder, creating the folder if it is missing, flagged \Seen with received as
// its internal date (zero: the server's clock).
func (s *session) Append(ctx context.Context, folder string, received time.Time, msg io.Reader, size int64) error {
	if err := s.usable(); err != nil {
		return err
	}
	if size < 0 {
		b, err := io.ReadAll(msg)
		if err != nil {
			return connector.Error("append", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeBadMessage,
				fmt.Errorf("imap: read the message to append: %w", err))
		}
		msg, size = bytes.NewReader(b), int64(len(b))
	}
	name := s.mailboxName(folder)
	var readErr error
	err := s.run(ctx, "append", func() error {
		if err := s.ensureFolder(name); err != nil {
			return err
		}
		cmd := s.client.Append(name, size, &imap.AppendOptions{
			Flags: []imap.Flag{imap.FlagSeen},
			Time:  received,
		})
		if _, err := io.CopyN(cmd, msg, size); err != nil {
			_ = cmd.Close()
			var imapErr *imap.Error
			if errors.As(err, &imapErr) { // refused before the literal was sent
				_, err = cmd.Wait()
				return err
			}
			// A literal cut short leaves the protocol out of step: the connection is lost.
			readErr = err
			s.conn.abort()
			return nil
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		_, err := cmd.Wait()
		return err
	})
	if err == nil && readErr != nil {
		s.broken = connector.Error("append", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeNetwork,
			fmt.Errorf("imap: connection dropped after an incomplete APPEND: %w", ErrSessionBroken))
		return connector.Error("append", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeBadMessage,
			fmt.Errorf("imap: read %d-byte message to append: %w", size, readErr))
	}
	return err
}

// Close logs out (waiting at most LogoutTimeoutDefault) and closes the
// connection. It is idempotent.
func (s *session) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.broken == nil && s.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), LogoutTimeoutDefault)
		_ = s.run(ctx, "logout", func() error { return s.client.Logout().Wait() })
		cancel()
	}
	s.closeConn()
	return nil
}

func (s *session) closeConn() {
	if s.client != nil {
		_ = s.client.Close()
	} else if s.conn != nil {
		_ = s.conn.Close()
	}
}
