package fakeconn

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/serversync/serversync"
)

// OpenIncoming opens a session on the mailbox target.EmailAddress, creating the
// mailbox when it is new. Any credentials are accepted: inject a Fault on
// OpOpenIncoming to refuse them.
func (c *Connector) OpenIncoming(ctx context.Context, target *serversync.Target) (serversync.IncomingSession, error) {
	s, err := c.openSession(ctx, OpOpenIncoming, target)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// OpenOutgoing opens a sending session for target.EmailAddress. Any credentials
// are accepted: inject a Fault on OpOpenOutgoing to refuse them.
func (c *Connector) OpenOutgoing(ctx context.Context, target *serversync.Target) (serversync.OutgoingSession, error) {
	s, err := c.openSession(ctx, OpOpenOutgoing, target)
	if err != nil {
		return nil, err
	}
	return &outgoingSession{s}, nil
}

func (c *Connector) openSession(ctx context.Context, op Op, target *serversync.Target) (*session, error) {
	i, _, err := c.begin(ctx, Call{Op: op, Mailbox: target.EmailAddress}, nil)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sessions++
	c.open++
	s := &session{c: c, id: c.sessions, mailbox: target.EmailAddress, seen: map[string]uint64{}}
	c.mailbox(s.mailbox).live[s] = true
	c.calls[i].Session = s.id
	return s, nil
}

// Incoming returns c as an incoming connector that also implements
// serversync.Prober: a probe records OpProbeIncoming and fails with a fault
// injected on OpProbeIncoming or, failing that, on OpOpenIncoming, so a refused
// login fails Test & Enable as it would on a server.
func (c *Connector) Incoming() serversync.IncomingConnector { return incoming{c} }

// Outgoing returns c as an outgoing connector that also implements
// serversync.Prober, as Incoming does for OpProbeOutgoing and OpOpenOutgoing.
func (c *Connector) Outgoing() serversync.OutgoingConnector { return outgoing{c} }

type incoming struct{ c *Connector }

func (in incoming) OpenIncoming(ctx context.Context, t *serversync.Target) (serversync.IncomingSession, error) {
	return in.c.OpenIncoming(ctx, t)
}

func (in incoming) Probe(ctx context.Context, t *serversync.Target) []serversync.TestStep {
	return in.c.probe(ctx, t, OpProbeIncoming, OpOpenIncoming, "open-inbox")
}

type outgoing struct{ c *Connector }

func (out outgoing) OpenOutgoing(ctx context.Context, t *serversync.Target) (serversync.OutgoingSession, error) {
	return out.c.OpenOutgoing(ctx, t)
}

func (out outgoing) Probe(ctx context.Context, t *serversync.Target) []serversync.TestStep {
	return out.c.probe(ctx, t, OpProbeOutgoing, OpOpenOutgoing, "mail-from")
}

// probe reports the steps a real connector's probe has: a fault of kind
// ErrorAuth fails "authenticate", any other fails "connect".
func (c *Connector) probe(ctx context.Context, t *serversync.Target, op, openOp Op, last string) []serversync.TestStep {
	i, _, err := c.begin(ctx, Call{Op: op, Mailbox: t.EmailAddress}, nil)
	if err == nil {
		c.mu.Lock()
		if f := c.takeFault(Call{Op: openOp, Mailbox: t.EmailAddress}); f != nil {
			err = faultError(f, op)
			c.calls[i].Err = err
		}
		c.mu.Unlock()
	}
	steps := []serversync.TestStep{{Name: "connect", OK: true}, {Name: "authenticate", OK: true}, {Name: last, OK: true}}
	if err == nil {
		return steps
	}
	failed := 0
	if serversync.ClassifyError(err).Kind == serversync.ErrorAuth {
		failed = 1
	}
	steps[failed] = serversync.TestStep{Name: steps[failed].Name, Err: err, Detail: err.Error()}
	return steps[:failed+1]
}

// Sessions have everything the Syncer looks for: folders, waiting for new mail,
// and committing deletions.
var (
	_ serversync.FolderSession = (*session)(nil)
	_ serversync.IdleSession   = (*session)(nil)
	_ serversync.CommitSession = (*session)(nil)
)

// session is an open connection. Its fields other than c, id and mailbox are
// guarded by c.mu (Drop breaks sessions from another goroutine).
type session struct {
	c       *Connector
	id      int
	mailbox string

	broken  error
	closed  bool
	seen    map[string]uint64 // folder version at this session's last fetch or own change
	deletes []pendingDelete   // Options.DeferDeletes: applied at Commit or Close
}

type pendingDelete struct{ folder, ref string }

func (s *session) rec(op Op, folder string) Call {
	return Call{Op: op, Mailbox: s.mailbox, Session: s.id, Folder: folder}
}

// Fetch delivers the folder's messages after req.Cursor (and received at or
// after req.Since), in UID order. An unknown folder is empty.
func (s *session) Fetch(ctx context.Context, req serversync.FetchRequest, fn func(*serversync.RemoteMessage) error) (serversync.FetchResult, error) {
	name := cmp.Or(req.Folder, serversync.InboxFolder)
	rec := s.rec(OpFetch, name)
	rec.Cursor, rec.Since = bytes.Clone(req.Cursor), req.Since
	i, fault, err := s.c.begin(ctx, rec, s)
	if err != nil {
		return serversync.FetchResult{}, err
	}

	s.c.mu.Lock()
	epoch := s.c.epoch
	after, reset := parseCursor(req.Cursor, epoch)
	var todo []Message
	var last uint64
	if f := s.c.mailbox(s.mailbox).folders[name]; f != nil {
		for _, m := range f.messages {
			if m.uid > after && !m.ReceivedAt.Before(req.Since) {
				todo = append(todo, m) // Raw is never changed in place: sharing it is safe
			}
		}
		last = f.nextUID
		s.seen[name] = f.version
	}
	s.c.mu.Unlock()

	delivered := 0
	fail := func(err error) (serversync.FetchResult, error) {
		return serversync.FetchResult{}, s.c.end(i, err, func(c *Call) { c.Delivered = delivered })
	}
	for _, m := range todo {
		if ctx.Err() != nil {
			return fail(ctxError(OpFetch, ctx))
		}
		msg := &serversync.RemoteMessage{Folder: name, Ref: m.Ref, Size: int64(len(m.Raw)), ReceivedAt: m.ReceivedAt,
			Body: bytes.NewReader(m.Raw), Cursor: cursor(epoch, m.uid)}
		if fault != nil && delivered == fault.After {
			if !fault.CutBody {
				return fail(fault.Err)
			}
			s.breakWith(fault.Err)
			msg.Body = io.MultiReader(bytes.NewReader(m.Raw[:len(m.Raw)/2]), &failingReader{fault.Err})
			delivered++
			return fail(cmp.Or(fn(msg), fault.Err))
		}
		delivered++
		if err := fn(msg); err != nil {
			return fail(err)
		}
	}
	if fault != nil { // fewer messages than fault.After: the connection drops at the end
		if fault.CutBody {
			s.breakWith(fault.Err)
		}
		return fail(fault.Err)
	}
	res := serversync.FetchResult{Cursor: cursor(epoch, last), Reset: reset}
	return res, s.c.end(i, nil, func(c *Call) { c.Delivered = delivered })
}

func (s *session) breakWith(err error) {
	s.c.mu.Lock()
	s.broken = err
	s.c.mu.Unlock()
}

type failingReader struct{ err error }

func (r *failingReader) Read([]byte) (int, error) { return 0, r.err }

// cursor is the fake's cursor: the epoch of ResetCursors and the last UID seen.
func cursor(epoch int, uid uint64) []byte { return fmt.Appendf(nil, "%d:%d", epoch, uid) }

// parseCursor returns the UID after which to deliver, and whether the cursor was
// invalidated (another epoch, or not a cursor of this fake).
func parseCursor(c []byte, epoch int) (after uint64, reset bool) {
	if c == nil {
		return 0, false
	}
	e, uid, ok := bytes.Cut(c, []byte(":"))
	if !ok || string(e) != strconv.Itoa(epoch) {
		return 0, true
	}
	n, err := strconv.ParseUint(string(uid), 10, 64)
	if err != nil {
		return 0, true
	}
	return n, false
}

// change runs fn on a folder of the session's mailbox and wakes waiters. A
// session that had seen the folder's latest state sees its own change too, so
// its WaitForChange does not return for it, as IMAP IDLE does not report what
// the client did before it. Call with c.mu held.
func (s *session) change(folder string, fn func(*folderState)) {
	f := s.c.mailbox(s.mailbox).folder(folder)
	current := s.seen[folder] == f.version
	fn(f)
	if current {
		s.seen[folder] = f.version
	}
}

// Move moves the message ref to toFolder, creating it, with a new UID there. A
// ref the folder does not hold is ignored, as IMAP's UID MOVE does.
func (s *session) Move(ctx context.Context, folder, ref, toFolder string) error {
	rec := s.rec(OpMove, folder)
	rec.Ref, rec.ToFolder = ref, toFolder
	return s.c.do(ctx, rec, s, func() error {
		var m Message
		var ok bool
		s.change(folder, func(f *folderState) { m, ok = f.remove(ref) })
		if ok {
			s.change(toFolder, func(*folderState) { s.c.add(s.mailbox, toFolder, m.Raw, m.ReceivedAt) })
		}
		s.c.mailbox(s.mailbox).notify()
		return nil
	})
}

// Delete removes the message ref, at once or, with Options.DeferDeletes, at
// Commit or Close. A ref the folder does not hold is ignored.
func (s *session) Delete(ctx context.Context, folder, ref string) error {
	rec := s.rec(OpDelete, folder)
	rec.Ref = ref
	return s.c.do(ctx, rec, s, func() error {
		if s.c.opts.DeferDeletes {
			s.deletes = append(s.deletes, pendingDelete{folder, ref})
			return nil
		}
		s.change(folder, func(f *folderState) { f.remove(ref) })
		s.c.mailbox(s.mailbox).notify()
		return nil
	})
}

// Append stores a message in folder, creating it.
func (s *session) Append(ctx context.Context, folder string, received time.Time, msg io.Reader, size int64) error {
	raw, err := io.ReadAll(msg)
	if err != nil {
		return err
	}
	rec := s.rec(OpAppend, folder)
	rec.Message = raw
	return s.c.do(ctx, rec, s, func() error {
		s.change(folder, func(*folderState) { s.c.add(s.mailbox, folder, raw, received) })
		return nil
	})
}

// WaitForChange returns nil once the folder changed since this session last
// fetched it (or since the wait began, for a folder it never fetched) (mail arrived, another session moved or deleted a message), a
// transient error once the session is dropped ([Connector.Drop]), and an error
// matching errors.ErrUnsupported with Options.NoIdle.
func (s *session) WaitForChange(ctx context.Context, folder string) error {
	i, _, err := s.c.begin(ctx, s.rec(OpWait, folder), s)
	if err != nil {
		return err
	}
	if s.c.opts.NoIdle {
		// As the IMAP connector does for a server without IDLE: not a failure, so
		// the Syncer falls back to polling.
		return s.c.end(i, fmt.Errorf("fakeconn: no IDLE (Options.NoIdle): %w", errors.ErrUnsupported), nil)
	}
	for {
		s.c.mu.Lock()
		mb := s.c.mailbox(s.mailbox)
		changed, broken := mb.changed, s.broken
		f := mb.folder(folder)
		if _, ok := s.seen[folder]; !ok {
			s.seen[folder] = f.version // never fetched here: wait for the next change
		}
		moved := f.version != s.seen[folder]
		s.c.mu.Unlock()
		switch {
		case broken != nil:
			return s.c.end(i, broken, nil)
		case moved:
			return s.c.end(i, nil, nil)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return s.c.end(i, ctxError(OpWait, ctx), nil)
		}
	}
}

// Commit applies the deletions deferred so far (Options.DeferDeletes).
func (s *session) Commit(ctx context.Context) error {
	return s.c.do(ctx, s.rec(OpCommit, ""), s, func() error {
		s.applyDeletes()
		return nil
	})
}

// applyDeletes applies the deferred deletions. Call with c.mu held.
func (s *session) applyDeletes() {
	for _, d := range s.deletes {
		s.change(d.folder, func(f *folderState) { f.remove(d.ref) })
	}
	if len(s.deletes) > 0 {
		s.c.mailbox(s.mailbox).notify()
	}
	s.deletes = nil
}

// Close ends the session. Deferred deletions are applied unless the session broke
// first. Closing twice does nothing more.
func (s *session) Close() error { return s.close(OpCloseIncoming) }

func (s *session) close(op Op) error {
	i, _, err := s.c.begin(context.Background(), s.rec(op, ""), nil)
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.c.open--
	delete(s.c.mailbox(s.mailbox).live, s)
	if s.broken == nil && err == nil {
		s.applyDeletes()
	}
	s.c.calls[i].Err = err
	return err
}

// outgoingSession sends as its mailbox.
type outgoingSession struct{ *session }

// Send accepts the message and delivers a copy to the INBOX of every recipient.
func (s *outgoingSession) Send(ctx context.Context, env serversync.Envelope, msg io.Reader) error {
	raw, err := io.ReadAll(msg)
	if err != nil {
		return err
	}
	rec := s.rec(OpSend, "")
	rec.Envelope = serversync.Envelope{From: env.From, To: append([]string(nil), env.To...)}
	rec.Message = raw
	return s.c.do(ctx, rec, s.session, func() error {
		for _, to := range env.To {
			s.c.add(to, serversync.InboxFolder, raw, time.Time{})
		}
		return nil
	})
}

// Close ends the session.
func (s *outgoingSession) Close() error { return s.close(OpCloseOutgoing) }
