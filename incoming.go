package serversync

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// InboxFolder is the folder the incoming pipeline reads and keeps its cursor for.
const InboxFolder = "INBOX"

// UndeliverableFolder receives messages that could not be tracked when the profile's
// MoveFailedToUndeliverable is on.
const UndeliverableFolder = "Undeliverable"

// syncIncoming runs the incoming pipeline of DESIGN §4 for one mailbox and returns
// when it is due next. With IMAP IDLE it may keep the connection open and track new
// mail as it arrives, until the mailbox turns quiet or the Syncer stops.
func (s *Syncer) syncIncoming(ctx context.Context, w *work, log *slog.Logger) time.Time {
	started := s.cfg.Now()
	in := s.conns.Incoming[w.p.ServerType]
	if in == nil {
		err := &ConnectorError{Op: "connect", Kind: ErrorPermanent, Scope: ScopeProfile, Code: CodeNoConnector,
			Err: fmt.Errorf("serversync: no incoming connector for server type %s", w.p.ServerType)}
		return s.incomingFailed(ctx, w, started, err, log)
	}
	target, err := s.resolveTarget(ctx, w, Incoming)
	if err != nil {
		return s.incomingFailed(ctx, w, started, err, log) // classified by ResolveTarget
	}
	release, err := s.acquireConnection(ctx, w, Incoming)
	if err != nil {
		return s.cfg.Now() // ctx ended (stopping): due again at once, for whichever host
	}
	defer release()
	session, err := in.OpenIncoming(ctx, target)
	if err != nil {
		return s.incomingFailed(ctx, w, started, err, log)
	}
	defer session.Close()

	for {
		run := &incomingRun{s: s, w: w, session: session, log: log}
		stats, err := run.sync(ctx)
		if err != nil {
			return s.incomingFailed(ctx, w, started, err, log)
		}
		if w, err = s.incomingSucceeded(ctx, w, started, stats); err != nil {
			log.Error("record sync", "err", err)
			return s.cfg.Now().Add(s.cfg.RetryInterval)
		}
		switch outcome, idled := s.waitForMail(ctx, w, session, log); {
		case outcome == idleChanged:
			started = s.cfg.Now()
			continue
		case outcome == idleBroken && idled >= idleRedialAfter:
			// A connection that stayed up a while and then broke (a restarted
			// server, a NAT that forgot it): reconnect now rather than after
			// ActivePoll, so new mail still arrives within seconds.
			due := s.cfg.Now()
			if earliest := started.Add(w.p.MinPollingInterval); earliest.After(due) {
				due = earliest
			}
			return due
		}
		return s.nextPoll(w, s.cfg.Now())
	}
}

// idleRedialAfter is how long an IDLE connection must have lasted for its
// breaking to bring an immediate reconnect; one that breaks sooner waits for
// the next poll, so a server that drops every IDLE is not redialed in a loop.
const idleRedialAfter = time.Minute

// idleOutcome is how waiting for new mail ended.
type idleOutcome int

const (
	idleNotUsed idleOutcome = iota // no IDLE, or the wait timed out or was stopped: poll on schedule
	idleChanged                    // the server reported a change: sync again on the same connection
	idleBroken                     // the connection failed while waiting
)

// waitForMail keeps a recently active mailbox's connection open with IDLE until
// the server reports a change or the wait ends, and says how long it waited. The
// worker slot is given back while waiting: only the connection and an idle slot
// are held.
func (s *Syncer) waitForMail(ctx context.Context, w *work, session IncomingSession, log *slog.Logger) (idleOutcome, time.Duration) {
	idler, ok := session.(IdleSession)
	if !ok || s.cfg.IdleConnections < 0 || s.isStopping() || ctx.Err() != nil {
		return idleNotUsed, 0
	}
	if w.m.Stats.LastMailAt.IsZero() || s.cfg.Now().Sub(w.m.Stats.LastMailAt) > s.cfg.IdleWindow {
		return idleNotUsed, 0
	}
	if !s.idle.TryAcquire(1) {
		return idleNotUsed, 0
	}
	defer s.idle.Release(1)

	waitCtx, cancel := context.WithTimeout(ctx, s.cfg.ActivePoll)
	defer cancel()
	go func() {
		select {
		case <-s.stopping:
			cancel()
		case <-waitCtx.Done():
		}
	}()
	s.workers.Release(1)
	since := s.cfg.Now()
	err := idler.WaitForChange(waitCtx, InboxFolder)
	idled := s.cfg.Now().Sub(since)
	// Take a worker slot back before doing work (the caller releases one when done).
	if acqErr := s.workers.Acquire(context.WithoutCancel(ctx), 1); acqErr != nil {
		return idleNotUsed, idled
	}
	switch {
	case ctx.Err() != nil || s.isStopping():
		return idleNotUsed, idled
	case err == nil:
		return idleChanged, idled
	case errors.Is(err, errors.ErrUnsupported) || waitCtx.Err() != nil:
		return idleNotUsed, idled
	}
	log.Debug("idle connection broke", "err", err, "after", idled)
	return idleBroken, idled
}

// syncStats is what one incoming sync did.
type syncStats struct {
	tracked, failed int
	duplicates      int           // messages offered again that were tracked already
	filtered        int           // messages the mailbox's IncomingFilter left out
	progress        *SyncProgress // the final progress of an initial sync, else nil
	// resyncRequest is the Mailbox.IncomingResyncRequestedAt this sync served by
	// reading from the start; cleared on success unless a newer request came in.
	resyncRequest time.Time
}

// incomingRun is one pass of the incoming pipeline over a mailbox's inbox.
type incomingRun struct {
	s       *Syncer
	w       *work
	session IncomingSession
	log     *slog.Logger

	batch      []*EmailActivity // processed, not handed to the store yet
	sinceFlush int
	// bytesSinceFlush is the size of those messages (SaveBatchBytes).
	bytesSinceFlush int64
	saving          *pendingSave // the batch being stored while the next is processed
	stats           syncStats
	// Server-side follow-ups, run after the fetch (a session does one thing at a time).
	moves, deletes []string // refs
	// held is the cursor before the first message with a follow-up still to do
	// (holding says there is one). Saves write it instead of a later position, so
	// a run that ends before its follow-ups are done offers those messages again:
	// the next run finds them stored and does only the follow-ups.
	held    []byte
	holding bool
	// legacyFree holds the mailboxes known to hold no key from before keys had a
	// content digest (see mayHoldLegacyKeys).
	legacyFree map[string]bool
	progress   *SyncProgress // set during an initial sync (see initialProgress)
}

func (r *incomingRun) sync(ctx context.Context) (syncStats, error) {
	cur, err := r.s.store.GetCursor(ctx, r.w.m.ID, InboxFolder)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return r.stats, err
	}
	req := FetchRequest{Folder: InboxFolder, Since: r.w.m.EffectiveProcessEmailFrom(r.w.p),
		ExtraConnection: func() (func(), bool) { return r.s.tryAcquireConnection(ctx, r.w, Incoming) }}
	switch {
	case !r.w.m.IncomingResyncRequestedAt.IsZero():
		// Read from the start, not from the cursor: ProcessEmailFrom moved earlier.
		r.stats.resyncRequest = r.w.m.IncomingResyncRequestedAt
		r.log.Info("reading the inbox from the start, as requested; tracked mail is not tracked again", "since", req.Since)
	case cur != nil:
		req.Cursor = cur.Data
	}
	if err := r.initialProgress(ctx); err != nil {
		return r.stats, err
	}
	// Reading the wire and processing overlap: the fetch callback only reads each
	// message, and one goroutine parses, tracks and stores them in server order.
	queue := make(chan fetchedMessage, readAhead)
	workerCtx, stopFetch := context.WithCancelCause(ctx)
	defer stopFetch(nil)
	position := req.Cursor // after the last message processed; the worker's until it ends
	workerDone := make(chan error, 1)
	go func() {
		err := r.work(ctx, workerCtx, queue, &position)
		if err != nil {
			stopFetch(err)
			for range queue { // drain what the fetch already read
			}
		}
		workerDone <- err
	}()
	res, fetchErr := r.session.Fetch(ctx, req, func(msg *RemoteMessage) error {
		f, err := r.read(msg)
		if err != nil {
			return err
		}
		select {
		case queue <- f:
			return nil
		case <-workerCtx.Done():
			return context.Cause(workerCtx)
		}
	})
	close(queue)
	if workerErr := <-workerDone; workerErr != nil {
		fetchErr = workerErr
	}
	if fetchErr == nil {
		position = res.Cursor
		if res.Reset {
			r.log.Info("the server invalidated the cursor: resynchronising; tracked mail is not tracked again")
		}
	}
	// Keep what was processed even when the fetch failed part way; a poll that found
	// nothing new writes nothing.
	unchanged := len(r.batch) == 0 && r.saving == nil && bytes.Equal(position, req.Cursor)
	if (position != nil || len(r.batch) > 0) && !unchanged {
		if err := r.flush(ctx, position); err != nil {
			return r.stats, err
		}
	}
	if err := r.waitSaved(ctx); err != nil {
		return r.stats, err
	}
	if fetchErr != nil {
		return r.stats, fetchErr
	}
	deleted := len(r.deletes) > 0
	if err := r.followUps(ctx); err != nil {
		return r.stats, err
	}
	if d, ok := r.session.(DeletionCursorSession); ok && deleted && position != nil {
		// The messages deleted are gone from the server: a cursor that still
		// named them would read as invalidated at the next fetch.
		position, r.holding = d.CursorAfterDeletes(position), true
	}
	if r.holding { // the follow-ups are done: the cursor may pass those messages now
		r.holding = false
		cursor := &Cursor{MailboxID: r.w.m.ID, Folder: InboxFolder, Data: position, UpdatedAt: r.s.cfg.Now()}
		if _, err := r.s.store.SaveTracked(ctx, cursor, nil); err != nil {
			return r.stats, err
		}
	}
	r.stats.progress = r.snapshotProgress(true)
	return r.stats, nil
}

// readAhead is how many messages the fetch may read ahead of processing.
const readAhead = 4

// fetchedMessage is one message read off the wire, waiting to be processed.
type fetchedMessage struct {
	msg       RemoteMessage // Body is spent
	raw       []byte
	buffer    *[]byte // the pooled buffer raw is in, if it is (see readSized)
	truncated bool
}

// read takes a message's bytes off the wire, up to MaxMessageSize.
func (r *incomingRun) read(msg *RemoteMessage) (fetchedMessage, error) {
	raw, buffer, err := readSized(msg.Body, msg.Size, r.s.cfg.MaxMessageSize+1)
	if err != nil {
		return fetchedMessage{}, err
	}
	f := fetchedMessage{msg: *msg, raw: raw, buffer: buffer}
	f.msg.Body = nil
	if int64(len(raw)) > r.s.cfg.MaxMessageSize {
		f.raw, f.truncated = raw[:r.s.cfg.MaxMessageSize], true
	}
	return f, nil
}

// work parses the messages the fetch reads, in server order, and tracks them a
// chunk at a time: one KnownMessageKeys call per chunk and mailbox tells which are
// tracked already, instead of a query per message. A chunk ends at the next batch
// boundary (SaveBatch messages or SaveBatchBytes) or when the fetch ends. Nothing is lost by waiting for it:
// messages are stored at those same points. And since no save starts inside a
// chunk, a message stored by a save that started before the chunk's lookup is
// still in unsaved() (inBatch) while the chunk is tracked: exactly-once holds
// without the lookup seeing it. ctx is for saves (what was processed is kept even
// when the fetch fails part way), workerCtx for the rest; position is the cursor
// after the last message processed.
func (r *incomingRun) work(ctx, workerCtx context.Context, queue <-chan fetchedMessage, position *[]byte) error {
	var chunk []incomingMessage
	var chunkBytes int64
	for f := range queue {
		m, err := r.prepare(workerCtx, f)
		if err != nil {
			// What was parsed before it is tracked; the message is offered again.
			return errors.Join(r.trackChunk(ctx, workerCtx, chunk, position), err)
		}
		if f.buffer != nil && m.a != nil && m.a.Raw == nil && !r.w.m.IsForwardMailbox {
			// Parsing copied what the activity keeps and the keys are digested: nothing
			// refers to the message's bytes any more. (Raw, when kept, is those bytes;
			// a forward mailbox's attribution is not followed that far.)
			putRawBuffer(f.buffer)
		}
		chunkBytes += m.size
		if chunk = append(chunk, m); len(chunk) >= r.s.cfg.SaveBatch-r.sinceFlush || chunkBytes >= r.s.cfg.SaveBatchBytes-r.bytesSinceFlush {
			if err := r.trackChunk(ctx, workerCtx, chunk, position); err != nil {
				return err
			}
			chunk, chunkBytes = chunk[:0], 0
		}
	}
	return r.trackChunk(ctx, workerCtx, chunk, position)
}

// incomingMessage is a fetched message parsed and keyed, waiting for the lookup of
// its chunk.
type incomingMessage struct {
	a      *EmailActivity // nil: skipped (a forwarded message with no owner)
	keys   messageKeys
	cursor []byte // after the message
	size   int64  // bytes read, for SaveBatchBytes
}

// trackChunk looks the chunk's keys up in one call per mailbox, then tracks or
// skips each message in order, and saves at each batch boundary.
func (r *incomingRun) trackChunk(ctx, workerCtx context.Context, chunk []incomingMessage, position *[]byte) error {
	if len(chunk) == 0 {
		return nil
	}
	known, err := r.knownKeys(workerCtx, chunk)
	if err != nil {
		return err
	}
	for _, m := range chunk {
		if m.a != nil {
			if err := r.process(workerCtx, m, known[m.a.MailboxID], *position); err != nil {
				return err
			}
		}
		*position = m.cursor
		r.sinceFlush++
		r.bytesSinceFlush += m.size
		if r.sinceFlush >= r.s.cfg.SaveBatch || r.bytesSinceFlush >= r.s.cfg.SaveBatchBytes {
			if err := r.flush(ctx, *position); err != nil {
				return err
			}
		}
	}
	return nil
}

// knownKeys returns, per mailbox, which keys of the chunk's messages are stored:
// their keys, and their legacy keys in mailboxes that may hold some.
func (r *incomingRun) knownKeys(ctx context.Context, chunk []incomingMessage) (map[string]map[string]bool, error) {
	keys := make(map[string][]string, 1)
	for _, m := range chunk {
		if m.a == nil {
			continue
		}
		id := m.a.MailboxID
		keys[id] = append(keys[id], m.keys.key)
		legacy, err := r.mayHoldLegacyKeys(ctx, id)
		if err != nil {
			return nil, err
		}
		if legacy {
			keys[id] = append(keys[id], m.keys.legacy)
		}
	}
	known := make(map[string]map[string]bool, len(keys))
	for id, list := range keys {
		k, err := r.s.store.KnownMessageKeys(ctx, id, list)
		if err != nil {
			return nil, err
		}
		known[id] = k
	}
	return known, nil
}

// prepare parses and keys one server message.
func (r *incomingRun) prepare(ctx context.Context, f fetchedMessage) (incomingMessage, error) {
	msg, raw, truncated := &f.msg, f.raw, f.truncated
	now := r.s.cfg.Now()
	a := &EmailActivity{
		ID: NewID(), MailboxID: r.w.m.ID, Direction: Incoming, Status: StatusTracked,
		ServerFolder: cmp.Or(msg.Folder, InboxFolder), ServerRef: msg.Ref, ReceivedAt: msg.ReceivedAt,
		CreatedAt: now, UpdatedAt: now,
	}
	parseMessage(raw, a, r.w.settings.MaxAttachmentSize)
	if truncated {
		a.ParseError = strings.TrimPrefix(a.ParseError+"; message larger than MaxMessageSize, truncated", "; ")
		if a.Raw == nil {
			a.Raw = raw // what was read, as for any message with a ParseError
		}
	}
	if a.Size < msg.Size {
		a.Size = msg.Size
	}
	if a.ReceivedAt.IsZero() {
		a.ReceivedAt = cmpTime(a.SentAt, now)
	}
	keys := keysOf(a, raw)
	a.MessageKey = keys.key
	m := incomingMessage{a: a, keys: keys, cursor: msg.Cursor, size: int64(len(raw))}
	if r.w.m.IsForwardMailbox {
		var ok bool
		var err error
		if m.keys, ok, err = r.attributeForwarded(ctx, a, raw, keys); err != nil {
			return incomingMessage{}, err
		} else if !ok {
			m.a = nil
		}
	}
	return m, nil
}

// process turns one parsed message into an activity in the batch, or skips it.
// known holds which of its mailbox's keys in the chunk are stored; before is the
// cursor before the message.
func (r *incomingRun) process(ctx context.Context, m incomingMessage, known map[string]bool, before []byte) (err error) {
	a, keys := m.a, m.keys
	tracked, existing, err := r.findTracked(ctx, a, keys, known)
	if err != nil {
		return err
	}
	if tracked || r.inBatch(a.MailboxID, a.MessageKey) {
		// Already tracked (a retry, a reset cursor, a redelivery): only finish what
		// the first pass may not have done on the server.
		r.skippedDuplicate(a.MessageKey, a.ServerRef)
		if existing != nil && r.needsFollowUp(existing, a.ServerRef) {
			r.hold(before)
			r.followUp(existing, a.ServerRef)
		}
		return nil
	}

	if err := r.s.correlate(ctx, a, r.w.settings, r.pending); err != nil {
		return err
	}
	keep, err := r.s.filter(ctx, a, r.w.m)
	if err != nil {
		return err
	}
	if !keep {
		r.stats.filtered++
		return nil
	}
	if r.s.cfg.Track != nil {
		m := r.w.m.Clone()
		hookErr := callHook("Track", func() error { return r.s.cfg.Track(ctx, a, m) })
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if hookErr != nil {
			a.Status = StatusFailed
			a.LastError = hookErr.Error()
		}
	}
	if r.needsFollowUp(a, a.ServerRef) {
		r.hold(before)
	}
	r.batch = append(r.batch, a)
	return nil
}

// skippedDuplicate counts and logs a message not tracked because it is tracked
// already. The key names the message without showing its content.
func (r *incomingRun) skippedDuplicate(key, ref string) {
	r.stats.duplicates++
	r.log.Debug("already tracked: skipped as a duplicate", "key", key, "ref", ref)
}

// hold keeps saved cursors at before until the follow-ups are done, unless an
// earlier message holds them already.
func (r *incomingRun) hold(before []byte) {
	if !r.holding {
		r.held, r.holding = before, true
	}
}

// unsaved lists the activities processed but perhaps not stored yet: the batch
// being stored, then the one being filled.
func (r *incomingRun) unsaved() iter.Seq[*EmailActivity] {
	return func(yield func(*EmailActivity) bool) {
		if r.saving != nil {
			for _, a := range r.saving.batch {
				if !yield(a) {
					return
				}
			}
		}
		for _, a := range r.batch {
			if !yield(a) {
				return
			}
		}
	}
}

// inBatch reports whether an unsaved batch holds that message already (a copy
// offered twice in one fetch).
func (r *incomingRun) inBatch(mailboxID, key string) bool {
	for a := range r.unsaved() {
		if a.MailboxID == mailboxID && a.MessageKey == key {
			return true
		}
	}
	return false
}

// pending returns the unsaved activity with that Message-ID, if any.
func (r *incomingRun) pending(messageID string) *EmailActivity {
	for a := range r.unsaved() {
		if a.MessageID == messageID {
			return a
		}
	}
	return nil
}

// followUp records what to do on the server for a stored activity.
func (r *incomingRun) followUp(a *EmailActivity, ref string) {
	if !r.needsFollowUp(a, ref) {
		return
	}
	switch {
	case a.Status == StatusFailed && r.w.p.MoveFailedToUndeliverable:
		r.moves = append(r.moves, ref)
	case r.w.m.DeleteAfterProcessing:
		r.deletes = append(r.deletes, ref)
	}
}

// needsFollowUp reports whether a stored message needs something done on the
// server: moved to Undeliverable, or deleted.
func (r *incomingRun) needsFollowUp(a *EmailActivity, ref string) bool {
	return ref != "" && ((a.Status == StatusFailed && r.w.p.MoveFailedToUndeliverable) || r.w.m.DeleteAfterProcessing)
}

// pendingSave is a batch being stored in the background.
type pendingSave struct {
	batch []*EmailActivity
	done  chan saveOutcome // receives once
}

type saveOutcome struct {
	res SaveResult
	err error
}

// flush hands the batch and the cursor to the store, to be saved in one transaction
// while the worker goes on with the next messages: parsing and storing overlap. One
// batch is stored at a time, in order, and a batch is handed over only after the one
// before it was stored, so a failed save stops the run before any later cursor is
// written. Call waitSaved before the run ends.
func (r *incomingRun) flush(ctx context.Context, position []byte) error {
	if err := r.waitSaved(ctx); err != nil {
		return err
	}
	if r.holding {
		position = r.held
	}
	var cursor *Cursor
	if position != nil {
		cursor = &Cursor{MailboxID: r.w.m.ID, Folder: InboxFolder, Data: position, UpdatedAt: r.s.cfg.Now()}
	}
	p := &pendingSave{batch: r.batch, done: make(chan saveOutcome, 1)}
	r.batch, r.sinceFlush, r.bytesSinceFlush, r.saving = nil, 0, 0, p
	go func() {
		res, err := r.s.store.SaveTracked(ctx, cursor, p.batch)
		p.done <- saveOutcome{res, err}
	}()
	return nil
}

// waitSaved waits for the batch being stored, if any, and reports what was stored.
func (r *incomingRun) waitSaved(ctx context.Context) error {
	p := r.saving
	if p == nil {
		return nil
	}
	out := <-p.done // SaveTracked returns when ctx ends
	r.saving = nil
	if out.err != nil {
		// None of it was stored: it goes back in front of the batch being filled, so
		// no later save writes a cursor past it.
		r.batch = slices.Concat(p.batch, r.batch)
		return out.err
	}
	duplicate := make(map[int]bool, len(out.res.Duplicates))
	for _, i := range out.res.Duplicates {
		duplicate[i] = true
	}
	for i, a := range p.batch {
		if duplicate[i] {
			r.skippedDuplicate(a.MessageKey, a.ServerRef) // another run stored it first
			continue
		}
		r.followUp(a, a.ServerRef)
		if a.Status == StatusFailed {
			r.stats.failed++
			r.s.met.itemFailures.Add(ctx, 1)
			r.s.emit(Event{Kind: EventItemFailed, MailboxID: a.MailboxID, ProfileID: r.w.p.ID, ActivityID: a.ID, Err: errors.New(a.LastError)})
			r.s.raise(ctx, r.w, AlertWarning, ScopeItem, CodeItemFailed, a.ID,
				fmt.Sprintf("The message %q from %s could not be tracked: %s", a.Subject, a.From.Email, a.LastError))
		} else {
			r.stats.tracked++
			r.s.met.tracked.Add(ctx, 1)
			r.s.emit(Event{Kind: EventMailTracked, MailboxID: a.MailboxID, ProfileID: r.w.p.ID, ActivityID: a.ID})
		}
	}
	r.reportProgress()
	return nil
}

// followUps moves failed messages to Undeliverable and deletes processed ones, as
// the profile and mailbox say. Both are repeated safely after a crash: a message
// offered again is recognised as stored and only its follow-up is redone.
func (r *incomingRun) followUps(ctx context.Context) error {
	// Without folders (POP3) the failure stays recorded on the activity only.
	if folders, ok := r.session.(FolderSession); ok {
		for _, ref := range r.moves {
			if err := folders.Move(ctx, InboxFolder, ref, UndeliverableFolder); err != nil {
				return err
			}
		}
	}
	for _, ref := range r.deletes {
		if err := r.session.Delete(ctx, InboxFolder, ref); err != nil {
			return err
		}
	}
	if c, ok := r.session.(CommitSession); ok && len(r.deletes) > 0 {
		if err := c.Commit(ctx); err != nil {
			return err
		}
	}
	r.moves, r.deletes = nil, nil
	return nil
}

// attributeForwarded turns a message that reached a forward mailbox into an
// activity of the mailbox of the user whose server rule forwarded it: the outer
// sender. The forwarded original, when attached as message/rfc822, is what is
// tracked, keyed by its own bytes: the same original forwarded twice is one message.
// It reports false when no user mailbox matches (the message is skipped).
func (r *incomingRun) attributeForwarded(ctx context.Context, a *EmailActivity, raw []byte, keys messageKeys) (messageKeys, bool, error) {
	owner, err := r.s.mailboxByAddress(ctx, a.From.Email)
	if err != nil {
		return keys, false, err
	}
	if owner == nil || owner.IncomingMethod != IncomingForwardMailbox {
		r.log.Info("forwarded message from an address with no forward-mailbox user: skipped", "from_domain", domainOf(a.From.Email))
		return keys, false, nil
	}
	if inner, innerRaw := forwardedOriginal(a, raw, r.w.settings.MaxAttachmentSize); inner != nil {
		inner.ID, inner.CreatedAt, inner.UpdatedAt = a.ID, a.CreatedAt, a.UpdatedAt
		inner.ServerFolder, inner.ServerRef = a.ServerFolder, a.ServerRef
		inner.Direction, inner.Status = Incoming, StatusTracked
		keys = keysOf(inner, innerRaw)
		inner.MessageKey = keys.key
		*a = *inner
	}
	a.ViaMailbox = r.w.m.ID
	a.MailboxID = owner.ID
	return keys, true, nil
}

func (s *Syncer) mailboxByAddress(ctx context.Context, email string) (*Mailbox, error) {
	if email == "" {
		return nil, nil
	}
	for m, err := range s.store.ListMailboxes(ctx, MailboxFilter{EmailAddress: email, Limit: 1}) {
		return m, err
	}
	return nil, nil
}

func (s *Syncer) findByKey(ctx context.Context, mailboxID, key string) (*EmailActivity, error) {
	for a, err := range s.store.ListActivities(ctx, ActivityFilter{MailboxID: mailboxID, MessageKey: key, Limit: 1}) {
		return a, err
	}
	return nil, nil
}

// mayHoldLegacyKeys reports whether mailboxID may hold incoming activities stored
// under keys from before keys had a content digest. Keys are never rewritten and
// every key stored since has the digest, so a mailbox whose first incoming
// activity has one (or that has none yet) holds no legacy key, and its new
// messages need one lookup rather than two. One query per mailbox and run answers it.
func (r *incomingRun) mayHoldLegacyKeys(ctx context.Context, mailboxID string) (bool, error) {
	if free, ok := r.legacyFree[mailboxID]; ok {
		return !free, nil
	}
	free := true
	for a, err := range r.s.store.ListActivities(ctx, ActivityFilter{MailboxID: mailboxID, Direction: Incoming, Limit: 1}) {
		if err != nil {
			return true, err
		}
		free = isDigestKey(a.MessageKey)
	}
	if r.legacyFree == nil {
		r.legacyFree = make(map[string]bool)
	}
	r.legacyFree[mailboxID] = free
	return !free, nil
}

// findTracked reports whether message a (keys from keysOf) is tracked already,
// from known (which of the chunk's keys its mailbox holds, see knownKeys), and
// returns the activity tracked for it when a follow-up may need it. Server
// handles (UIDs) are not used: they change when the server resets UIDVALIDITY.
// When the mailbox may hold keys from before keys had a content digest, the legacy
// key was looked up too, and names the same message only when sameAsLegacy says so.
func (r *incomingRun) findTracked(ctx context.Context, a *EmailActivity, keys messageKeys, known map[string]bool) (bool, *EmailActivity, error) {
	if known[keys.key] {
		if !r.mayFollowUp(a.ServerRef) {
			return true, nil, nil // the record is not needed: no second query
		}
		existing, err := r.s.findByKey(ctx, a.MailboxID, keys.key)
		return true, existing, err
	}
	if !known[keys.legacy] {
		return false, nil, nil
	}
	legacy, err := r.s.findByKey(ctx, a.MailboxID, keys.legacy)
	if legacy == nil || err != nil {
		return false, nil, err
	}
	if a.MessageID == "" || sameAsLegacy(legacy, a, keys.digest) { // "sha256:" keys digest every byte
		return true, legacy, nil
	}
	return false, nil, nil
}

// mayFollowUp reports whether a stored message offered again under ref may need
// something done on the server (needsFollowUp, before its record is read).
func (r *incomingRun) mayFollowUp(ref string) bool {
	return ref != "" && (r.w.p.MoveFailedToUndeliverable || r.w.m.DeleteAfterProcessing)
}

// incomingSucceeded records a successful sync on the mailbox.
func (s *Syncer) incomingSucceeded(ctx context.Context, w *work, started time.Time, st syncStats) (*work, error) {
	now := s.cfg.Now()
	s.met.syncDuration.Record(ctx, now.Sub(started).Seconds())
	m, err := s.store.UpdateMailbox(ctx, w.m.ID, func(m *Mailbox) error {
		m.Stats.LastSyncStartedAt = started
		m.Stats.LastSyncSucceededAt = now
		m.Stats.LastSyncDuration = now.Sub(started)
		m.Stats.ItemsProcessedLastSync = st.tracked
		m.Stats.ItemsFailedLastSync = st.failed
		m.Stats.DuplicatesSkippedLastSync = st.duplicates
		m.Stats.DuplicatesSkipped += int64(st.duplicates)
		m.Stats.FilteredLastSync = st.filtered
		m.Stats.Filtered += int64(st.filtered)
		if !st.resyncRequest.IsZero() && m.IncomingResyncRequestedAt.Equal(st.resyncRequest) {
			m.IncomingResyncRequestedAt = time.Time{}
		}
		m.Stats.TransientFailureCount = 0
		m.Stats.IncomingPostponedUntil = time.Time{}
		clearLastError(m, Incoming)
		if st.tracked+st.failed > 0 {
			m.Stats.LastMailAt = now
		}
		return nil
	})
	if err != nil {
		return w, err
	}
	s.emit(Event{Kind: EventSyncFinished, MailboxID: m.ID, ProfileID: w.p.ID, Items: st.tracked + st.failed, Progress: st.progress})
	next := &work{m: m, p: w.p, settings: w.settings}
	s.syncSummary(ctx, w, next, st)
	return next, nil
}

func cmpTime(a, b time.Time) time.Time {
	if a.IsZero() {
		return b
	}
	return a
}

func domainOf(email string) string {
	if i := strings.LastIndexByte(email, '@'); i >= 0 {
		return email[i+1:]
	}
	return ""
}
