package imapconn

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/sync/errgroup"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

// fetchOptions asks for what a RemoteMessage needs. BODY.PEEK[] leaves \Seen alone.
var fetchOptions = &imap.FetchOptions{
	UID:          true,
	RFC822Size:   true,
	InternalDate: true,
	BodySection:  []*imap.FetchItemBodySection{{Peek: true}},
}

// fetchedMessage is one message's FETCH data; body is set when it was read into
// memory rather than streamed.
type fetchedMessage struct {
	uid     uint32
	size    int64
	date    time.Time
	hasSize bool
	hasDate bool
	body    []byte
}

// fetchRun is the state of one Fetch call.
type fetchRun struct {
	req         serversync.FetchRequest
	fn          func(*serversync.RemoteMessage) error
	uidValidity uint32
	modSeq      uint64
	after       uint32 // offer only UIDs above it
	progress    uint32 // highest UID offered or skipped so far
}

func (r *fetchRun) cursorAt(uid uint32) cursor {
	return cursor{UIDValidity: r.uidValidity, UID: uid, ModSeq: r.modSeq}
}

// deliver hands one message to the caller's callback, or skips it when it is not
// new or was received before req.Since. body is valid only during the call.
func (r *fetchRun) deliver(m *fetchedMessage, body io.Reader) error {
	if m.uid <= r.after {
		return nil // "UID n:*" returns the last message even when it is older
	}
	if !r.req.Since.IsZero() && m.hasDate && m.date.Before(r.req.Since) {
		r.progress = max(r.progress, m.uid)
		return nil
	}
	size := m.size
	if !m.hasSize && m.body != nil {
		size = int64(len(m.body))
	}
	err := r.fn(&serversync.RemoteMessage{
		Folder:     r.req.Folder,
		Ref:        strconv.FormatUint(uint64(m.uid), 10),
		Size:       size,
		ReceivedAt: m.date,
		Body:       body,
		Cursor:     r.cursorAt(m.uid).encode(),
	})
	if err != nil {
		return callbackError{err}
	}
	r.progress = max(r.progress, m.uid)
	return nil
}

// literal reads one message body off the wire. A body cut short is an error
// (go-imap's literal reader ends with a plain io.EOF when the connection closes
// between TLS records), and every read error is marked as the connection's.
type literal struct {
	r    io.Reader
	left int64
}

func newLiteral(l imap.LiteralReader) *literal { return &literal{r: l, left: l.Size()} }

func (l *literal) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if err == io.EOF && l.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		err = wireError{err}
	}
	return n, err
}

// wireError is an error reading a response off the connection, even when the
// caller's callback returns it: run classifies it as the connection failing.
type wireError struct{ err error }

func (e wireError) Error() string { return e.err.Error() }
func (e wireError) Unwrap() error { return e.err }

func isWireError(err error) bool {
	var w wireError
	return errors.As(err, &w)
}

// Fetch offers every message of req.Folder after req.Cursor to fn, in UID order.
// See the package documentation for the cursor, CONDSTORE and parallel fetching.
// fn must not use the session; an error from it stops the fetch and is returned
// as is, with the cursor after the last message fn accepted, except an error from
// reading the message's Body, which is the connection failing and is classified so.
func (s *session) Fetch(ctx context.Context, req serversync.FetchRequest, fn func(*serversync.RemoteMessage) error) (serversync.FetchResult, error) {
	if err := s.usable(); err != nil {
		return serversync.FetchResult{}, err
	}
	prev, err := decodeCursor(req.Cursor)
	if err != nil {
		return serversync.FetchResult{}, connector.Error("fetch", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeBadCursor, err)
	}
	name := s.mailboxName(req.Folder)

	var data *imap.SelectData
	if err := s.run(ctx, "select", func() (err error) {
		data, err = s.selectFolder(name, false)
		return err
	}); err != nil {
		return serversync.FetchResult{}, err
	}
	condStore := s.caps.Has(imap.CapCondStore) && data.HighestModSeq != 0
	run := &fetchRun{req: req, fn: fn, uidValidity: data.UIDValidity, modSeq: data.HighestModSeq}
	reset := false
	if prev != nil {
		if prev.UIDValidity == data.UIDValidity {
			run.after = prev.UID
		} else {
			reset = true
			s.log.Info("imap: UIDVALIDITY changed: offering the folder again", "folder", name,
				"was", prev.UIDValidity, "now", data.UIDValidity)
		}
	}
	run.progress = run.after
	s.folders[name] = folderState{uidValidity: data.UIDValidity, uidNext: data.UIDNext}
	var lastExisting uint32 // UIDNEXT-1: the highest UID that can exist now
	if data.UIDNext > 0 {
		lastExisting = uint32(data.UIDNext) - 1
	}
	result := func(err error) (serversync.FetchResult, error) {
		if err == nil {
			run.progress = max(run.progress, lastExisting)
		}
		return serversync.FetchResult{Cursor: run.cursorAt(run.progress).encode(), Reset: reset}, err
	}

	// Nothing new: answer from the SELECT alone, which keeps idle polls to one
	// round trip.
	sameModSeq := !condStore || (prev != nil && !reset && prev.ModSeq == data.HighestModSeq)
	switch {
	case data.NumMessages == 0,
		data.UIDNext > 0 && lastExisting <= run.after && sameModSeq,
		data.UIDNext == 0 && condStore && sameModSeq:
		return result(nil)
	}

	var batches []imap.UIDSet
	if req.Since.IsZero() && data.UIDNext > 0 && lastExisting > run.after && int(lastExisting-run.after) <= s.c.batchSize {
		// A short range: fetch it directly; UIDs that don't exist are simply absent.
		batches = []imap.UIDSet{{{Start: imap.UID(run.after + 1), Stop: imap.UID(lastExisting)}}}
	} else {
		criteria := &imap.SearchCriteria{UID: []imap.UIDSet{{{Start: imap.UID(run.after + 1), Stop: 0}}}}
		if !req.Since.IsZero() {
			// SINCE compares dates in the server's time zone: ask a day early and
			// compare INTERNALDATE exactly here.
			criteria.Since = req.Since.Add(-24 * time.Hour)
		}
		var found *imap.SearchData
		if err := s.run(ctx, "search", func() (err error) {
			var options *imap.SearchOptions
			if s.caps.Has(imap.CapESearch) {
				options = &imap.SearchOptions{ReturnAll: true} // UID ranges, not every UID
			}
			found, err = s.client.UIDSearch(criteria, options).Wait()
			return err
		}); err != nil {
			return result(err)
		}
		uids := found.AllUIDs()
		uids = slices.DeleteFunc(uids, func(uid imap.UID) bool { return uint32(uid) <= run.after })
		slices.Sort(uids)
		for chunk := range slices.Chunk(uids, s.c.batchSize) {
			batches = append(batches, imap.UIDSetNum(chunk...))
		}
		if n := len(uids); n > 0 {
			lastExisting = max(lastExisting, uint32(uids[n-1]))
		}
	}
	if len(batches) == 0 {
		return result(nil)
	}

	if s.c.maxParallel > 1 && len(batches) > parallelMinBatches {
		err = s.fetchParallel(ctx, name, run, batches)
	} else {
		err = s.fetchStream(ctx, run, batches)
	}
	if known := s.folders[name]; err == nil && imap.UID(run.progress) >= known.uidNext {
		s.folders[name] = folderState{uidValidity: known.uidValidity, uidNext: imap.UID(run.progress) + 1}
	}
	return result(err)
}

// fetchStream fetches batch after batch on the session's connection, keeping
// the next batch's UID FETCH in flight while the current one drains, and streams
// each body from the connection to the callback.
//
// Servers may run pipelined FETCH commands concurrently (Dovecot does): the next
// batch's responses can arrive before the current batch's tagged OK. imapclient
// holds its reader on each body until it is consumed, so the commands are read
// concurrently, in arrival order: a message of the next batch that arrives early
// is read into memory (at most one batch) and delivered when its turn comes.
func (s *session) fetchStream(ctx context.Context, run *fetchRun, batches []imap.UIDSet) error {
	return s.run(ctx, "fetch", func() error {
		events := make(chan fetchEvent)
		quit := make(chan struct{})
		defer close(quit) // on a panic in the callback: forwarders drain and exit

		var (
			cur      int // the batch being delivered
			next     int // the next batch to request
			inFlight int
			pending  = map[int][]*fetchedMessage{} // arrived before their batch's turn
			held     int64                         // bytes of bodies in pending
			dropped  = map[int]bool{}              // batches whose early messages were not kept
			ended    = map[int]bool{}
			firstErr error
		)
		issue := func() {
			if next < len(batches) && firstErr == nil {
				forwardFetch(next, s.client.Fetch(batches[next], fetchOptions), events, quit)
				next++
				inFlight++
			}
		}
		issue()
		issue()
		for inFlight > 0 {
			ev := <-events
			if ev.msg == nil { // a command ended
				inFlight--
				ended[ev.batch] = true
				if ev.err != nil && firstErr == nil {
					firstErr = ev.err
				}
				for ended[cur] && firstErr == nil {
					delete(ended, cur)
					if dropped[cur] {
						// Its early messages were let go: fetch it again now
						// that it is its turn, and its bodies stream.
						delete(dropped, cur)
						forwardFetch(cur, s.client.Fetch(batches[cur], fetchOptions), events, quit)
						inFlight++
						break
					}
					cur++
					for _, m := range pending[cur] {
						held -= int64(len(m.body))
						if firstErr == nil {
							firstErr = run.deliver(m, bytes.NewReader(m.body))
						}
					}
					delete(pending, cur)
				}
				issue()
				continue
			}
			if firstErr == nil {
				switch {
				case dropped[ev.batch]:
					_, firstErr = readMessage(ev.msg, nil, -1)
					if errors.Is(firstErr, errBodyNotHeld) {
						firstErr = nil
					}
				case ev.batch == cur:
					_, firstErr = readMessage(ev.msg, run.deliver, earlyBodyLimit)
					if errors.Is(firstErr, errBodyNotHeld) {
						firstErr = connector.Error("fetch", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeReplyTooLong,
							fmt.Errorf("imap: the server sent a message body over %d bytes before the message's size and date: it cannot be streamed", earlyBodyLimit))
					}
				default:
					var m *fetchedMessage
					m, firstErr = readMessage(ev.msg, nil, earlyBodyLimit-held)
					switch {
					case errors.Is(firstErr, errBodyNotHeld):
						// More than memory should hold for messages not yet due.
						firstErr = nil
						dropped[ev.batch] = true
						for _, m := range pending[ev.batch] {
							held -= int64(len(m.body))
						}
						delete(pending, ev.batch)
						s.log.Debug("imap: messages of a later batch arrived early and large: fetching that batch again in its turn")
					case firstErr == nil:
						pending[ev.batch] = append(pending[ev.batch], m)
						held += int64(len(m.body))
					}
				}
				if isWireError(firstErr) {
					s.dropConnection()
				}
			}
			ev.ack <- struct{}{} // after an error: discard the rest, keeping the connection in step
		}
		return firstErr
	})
}

// fetchEvent is a message of one batch's FETCH command, or (msg == nil) the
// command's end with its error.
type fetchEvent struct {
	batch int
	msg   *imapclient.FetchMessageData
	ack   chan<- struct{} // send when done with msg
	err   error
}

// forwardFetch passes the messages of cmd to events one at a time, each valid
// until acknowledged, then the command's end. When quit closes it drains cmd.
func forwardFetch(batch int, cmd *imapclient.FetchCommand, events chan<- fetchEvent, quit <-chan struct{}) {
	ack := make(chan struct{})
	go func() {
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			select {
			case events <- fetchEvent{batch: batch, msg: msg, ack: ack}:
			case <-quit:
				_ = cmd.Close()
				return
			}
			select {
			case <-ack:
			case <-quit:
				_ = cmd.Close()
				return
			}
		}
		err := cmd.Close()
		select {
		case events <- fetchEvent{batch: batch, err: err}:
		case <-quit:
		}
	}()
}

// earlyBodyLimit bounds the message bodies a streaming fetch holds in memory
// because they cannot stream to the callback yet: in all, those of later
// batches that a server running pipelined commands at once sends before the
// current batch ends; each, a body sent before its message's size and date. Early
// messages over it are let go and their batch fetched again in its turn.
const earlyBodyLimit = 16 << 20

// errBodyNotHeld reports that readMessage read a body to the end without
// keeping it, because it would have had to hold more than it may in memory.
var errBodyNotHeld = errors.New("imap: message body not held in memory")

// readMessage reads one message's FETCH items. With deliver, the body streams to
// it as soon as UID, size and date are known (servers send them first, in the
// order asked); otherwise, or when the body comes early, it is read into memory
// if it is no larger than holdLimit, and read past (errBodyNotHeld) if it is.
func readMessage(msg *imapclient.FetchMessageData, deliver func(*fetchedMessage, io.Reader) error, holdLimit int64) (*fetchedMessage, error) {
	m := &fetchedMessage{}
	hasBody, delivered, notHeld := false, false, false
	for item := msg.Next(); item != nil; item = msg.Next() {
		switch item := item.(type) {
		case imapclient.FetchItemDataUID:
			m.uid = uint32(item.UID)
		case imapclient.FetchItemDataRFC822Size:
			m.size, m.hasSize = item.Size, true
		case imapclient.FetchItemDataInternalDate:
			m.date, m.hasDate = item.Time, true
		case imapclient.FetchItemDataBodySection:
			if item.Literal == nil || hasBody {
				continue
			}
			hasBody = true
			lit := newLiteral(item.Literal)
			if deliver != nil && m.uid != 0 && m.hasSize && m.hasDate {
				delivered = true
				if err := deliver(m, lit); err != nil {
					return nil, err
				}
				continue
			}
			if item.Literal.Size() > holdLimit {
				if _, err := io.Copy(io.Discard, lit); err != nil {
					return nil, err
				}
				notHeld = true
				continue
			}
			body, err := io.ReadAll(lit)
			if err != nil {
				return nil, err
			}
			m.body = body
		}
	}
	if notHeld {
		return nil, errBodyNotHeld
	}
	if m.uid == 0 {
		return nil, connector.Error("fetch", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
			fmt.Errorf("imap: FETCH response for message %d has no UID", msg.SeqNum))
	}
	if !hasBody {
		// E.g. an unsolicited flags update for this UID was taken for the reply:
		// fail rather than skip the message.
		return nil, connector.Error("fetch", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
			fmt.Errorf("imap: FETCH response for UID %d has no body", m.uid))
	}
	if deliver != nil && !delivered {
		return m, deliver(m, bytes.NewReader(m.body))
	}
	return m, nil
}

// fetchBatch reads one batch into memory (parallel fetching).
func (s *session) fetchBatch(ctx context.Context, set imap.UIDSet) ([]*fetchedMessage, error) {
	var msgs []*fetchedMessage
	err := s.run(ctx, "fetch", func() error {
		cmd := s.client.Fetch(set, fetchOptions)
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			// Whole batches in memory by design (see fetchParallel): each
			// body is bounded by Options.MaxMessageBytes on the wire.
			m, err := readMessage(msg, nil, math.MaxInt64)
			if err != nil {
				if isWireError(err) {
					s.dropConnection()
				}
				_ = cmd.Close()
				return err
			}
			msgs = append(msgs, m)
		}
		return cmd.Close()
	})
	slices.SortFunc(msgs, func(a, b *fetchedMessage) int { return cmp.Compare(a.uid, b.uid) })
	return msgs, err
}

type batchResult struct {
	msgs []*fetchedMessage
	err  error
}

// fetchParallel downloads batches over this session's connection and up to
// MaxParallelFetch-1 extra ones, holding at most MaxParallelFetch+1 fetched
// batches in memory, while this goroutine delivers them one message at a time in
// UID order. Extra connections that cannot be opened (e.g. the server's
// per-user connection limit) are done without.
func (s *session) fetchParallel(ctx context.Context, name string, run *fetchRun, batches []imap.UIDSet) error {
	workers := min(s.c.maxParallel, len(batches))
	window := make(chan struct{}, workers+1) // a token per fetched, undelivered batch
	results := make([]chan batchResult, len(batches))
	for i := range results {
		results[i] = make(chan batchResult, 1)
	}
	var next atomic.Int64
	stopCh := make(chan struct{})
	stop := sync.OnceFunc(func() { close(stopCh) })

	work := func(ws *session) {
		for {
			select {
			case window <- struct{}{}:
			case <-stopCh:
				return
			}
			i := int(next.Add(1)) - 1
			if i >= len(batches) {
				<-window
				return
			}
			msgs, err := ws.fetchBatch(ctx, batches[i])
			results[i] <- batchResult{msgs, err}
			if err != nil {
				return
			}
		}
	}

	var g errgroup.Group
	defer func() {
		stop()
		_ = g.Wait()
	}()
	g.Go(func() error {
		work(s)
		return nil
	})
	for range workers - 1 {
		g.Go(func() error {
			if run.req.ExtraConnection != nil {
				release, ok := run.req.ExtraConnection()
				if !ok {
					return nil // the budget is full: fetch with fewer
				}
				defer release()
			}
			ws, err := s.c.open(ctx, &s.target)
			if err != nil {
				s.log.Warn("imap: extra fetch connection unavailable, fetching with fewer", "err", err)
				return nil
			}
			defer ws.Close()
			var data *imap.SelectData
			if err := ws.run(ctx, "select", func() (err error) {
				data, err = ws.selectFolder(name, true)
				return err
			}); err != nil || data.UIDValidity != run.uidValidity {
				s.log.Warn("imap: extra fetch connection cannot examine the folder", "folder", name, "err", err)
				return nil
			}
			work(ws)
			return nil
		})
	}
	s.log.Debug("imap: parallel fetch", "folder", name, "batches", len(batches), "connections", workers)

	for i := range batches {
		var r batchResult
		select {
		case r = <-results[i]:
		case <-ctx.Done():
			return s.classify("fetch", ctxError(ctx), ctxError(ctx))
		}
		if r.err != nil {
			return r.err
		}
		for _, m := range r.msgs {
			if err := run.deliver(m, bytes.NewReader(m.body)); err != nil {
				var cb callbackError
				if errors.As(err, &cb) {
					return cb.err
				}
				return err
			}
		}
		<-window
	}
	return nil
}
