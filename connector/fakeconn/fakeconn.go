// Package fakeconn is a scriptable, in-memory mail connector for tests: a
// serversync.IncomingConnector and OutgoingConnector with no server behind it.
// Hosts use it to test their TrackFunc, filters, hooks and configuration against
// a real Syncer and Store without a mail server; the library uses it to test the
// Syncer's scheduling under testing/synctest.
//
//	fake := fakeconn.New(nil)
//	fake.Deliver("alice@example.test", raw) // into alice's INBOX
//	// The server is unreachable for the next three connections:
//	fake.Inject(fakeconn.Fault{Op: fakeconn.OpOpenIncoming, Times: 3,
//		Err: fakeconn.Error(serversync.ErrorTransient, serversync.ScopeProfile, "network")})
//	s, err := serversync.NewSyncer(store, fake.Connectors(), cfg)
//	…
//	for _, call := range fake.CallsOf(fakeconn.OpFetch) {
//		… call.At, call.Cursor, call.Delivered, call.Err …
//	}
//
// Each mailbox, named by the Target's EmailAddress, is a set of folders of
// messages with IMAP-like UIDs: a fetch delivers the messages after its cursor in
// UID order, Move and Append create folders, Send delivers to the inbox of every
// recipient as a one-domain server would. Every call is recorded ([Connector.Calls]),
// any call can be made to fail with any error, once, n times or always
// ([Connector.Inject]), a fetch can drop its connection in the middle of a
// message, and any call can be held until the test releases it
// ([Connector.Hold]), to order a race deterministically. Sessions implement the
// optional abilities the Syncer looks for: IdleSession (WaitForChange returns
// when the folder changes) and CommitSession; [Connector.Incoming] and
// [Connector.Outgoing] also implement Prober, for Test & Enable and Test
// Connection.
//
// The fake starts no goroutine and blocks only on channels and contexts, so a
// test may run it inside a testing/synctest bubble, where time advances only when
// every goroutine waits: a Syncer's retries and polls then take no wall time.
// Create the Connector inside the bubble that uses it.
//
// A Connector is safe for concurrent use; its sessions, like every connector's,
// are not.
//
// It is a package of its own rather than part of connectortest, the conformance
// suite, because it is not a test of a connector but a stand-in for one: a host's
// tests import it without the suite's testify and test servers.
package fakeconn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/serversync/serversync"
)

// Op names a connector or session call.
type Op string

// The calls a Connector records, and the ops a Fault or a Hold matches.
const (
	OpOpenIncoming  Op = "open-incoming"
	OpFetch         Op = "fetch"
	OpMove          Op = "move"
	OpDelete        Op = "delete"
	OpAppend        Op = "append"
	OpWait          Op = "wait" // IdleSession.WaitForChange
	OpCommit        Op = "commit"
	OpCloseIncoming Op = "close-incoming"
	OpOpenOutgoing  Op = "open-outgoing"
	OpSend          Op = "send"
	OpCloseOutgoing Op = "close-outgoing"
	OpProbeIncoming Op = "probe-incoming"
	OpProbeOutgoing Op = "probe-outgoing"
)

// Options changes how the fake server behaves. A nil *Options is the zero value:
// an IMAP-like server with IDLE whose deletions apply at once.
type Options struct {
	// NoIdle makes WaitForChange return an error matching errors.ErrUnsupported,
	// as a server without IMAP IDLE does: the Syncer then polls.
	NoIdle bool
	// DeferDeletes applies deletions only at Commit or Close, as POP3 applies them
	// at QUIT; a session that breaks first loses them.
	DeferDeletes bool
}

// Call is one recorded call, with what it returned.
type Call struct {
	Op      Op
	Mailbox string // the Target's EmailAddress
	Session int    // the session it was made on, numbered from 1 in opening order; the new one for opens
	// At is time.Now() when the call was made (the bubble's clock under synctest).
	At time.Time

	Folder   string    // fetch, move, delete, append, wait
	Ref      string    // move, delete
	ToFolder string    // move
	Cursor   []byte    // fetch: the request's cursor
	Since    time.Time // fetch: the request's Since
	Envelope serversync.Envelope
	Message  []byte // append, send: the bytes handed over

	// Delivered is how many messages a fetch handed to its callback.
	Delivered int
	Err       error // what the call returned
}

// Always is a Fault.Times that fails every matching call until [Connector.Heal].
const Always = -1

// Fault makes calls fail. It matches calls of Op for Mailbox ("" matches every
// mailbox).
type Fault struct {
	Op      Op
	Mailbox string
	// Err is what the call returns; nil means a transient, mailbox-scoped
	// "network" error. A *serversync.ConnectorError with an empty Op gets the
	// call's op.
	Err error
	// Times is how many matching calls fail: 0 or 1 means the next one,
	// [Always] every one until Heal.
	Times int
	// After, for OpFetch, hands this many messages to the callback whole before
	// failing.
	After int
	// CutBody, for OpFetch, hands over one more message whose Body breaks half way
	// with Err, as a connection dropping in the middle of a message does. The
	// session is broken afterwards: its calls fail with Err.
	CutBody bool
}

// Gate holds a call until released; see [Connector.Hold].
type Gate struct {
	op      Op
	mailbox string
	reached chan struct{}
	release chan struct{}
	once    sync.Once
	call    Call // the held call, valid once Reached is closed
}

// Reached is closed once a call is held at the gate.
func (g *Gate) Reached() <-chan struct{} { return g.reached }

// Call is the held call as made (its result not known yet). Valid once Reached is closed.
func (g *Gate) Call() Call { <-g.reached; return g.call }

// Release lets the held call go on (to any fault, then its work); a gate released
// before a call reaches it lets that call through at once. Safe to call twice.
func (g *Gate) Release() { g.once.Do(func() { close(g.release) }) }

// Message is a message held by the fake server.
type Message struct {
	Ref        string // its UID in its folder, in decimal
	Raw        []byte
	ReceivedAt time.Time
	uid        uint64
}

// Connector is the fake. Create it with New.
type Connector struct {
	opts Options

	mu        sync.Mutex
	mailboxes map[string]*mailbox
	calls     []Call
	faults    []*Fault
	gates     []*Gate
	sessions  int // opened so far
	open      int // open now
	epoch     int // bumped by ResetCursors
}

type mailbox struct {
	folders map[string]*folderState
	changed chan struct{} // closed and replaced when any folder changes
	live    map[*session]bool
}

type folderState struct {
	messages []Message
	nextUID  uint64
	version  uint64 // bumped on every change, for WaitForChange
}

// New returns an empty fake server; opts may be nil.
func New(opts *Options) *Connector {
	c := &Connector{mailboxes: make(map[string]*mailbox)}
	if opts != nil {
		c.opts = *opts
	}
	return c
}

// Connectors returns c as the connectors of a Syncer for the given server types
// (default: IMAPSMTP and POP3SMTP), probing included.
func (c *Connector) Connectors(types ...serversync.ServerType) serversync.Connectors {
	if len(types) == 0 {
		types = []serversync.ServerType{serversync.ServerTypeIMAPSMTP, serversync.ServerTypePOP3SMTP}
	}
	conns := serversync.Connectors{Incoming: map[serversync.ServerType]serversync.IncomingConnector{},
		Outgoing: map[serversync.ServerType]serversync.OutgoingConnector{}}
	for _, t := range types {
		conns.Incoming[t], conns.Outgoing[t] = c.Incoming(), c.Outgoing()
	}
	return conns
}

// Error returns a *serversync.ConnectorError of that kind, scope and code, for a
// Fault. Its Op is filled with the failing call's.
func Error(kind serversync.ErrorKind, scope serversync.AlertScope, code string) *serversync.ConnectorError {
	return &serversync.ConnectorError{Kind: kind, Scope: scope, Code: code, Err: errors.New("injected by fakeconn")}
}

// Deliver puts a message into the mailbox's INBOX, as mail arriving does.
func (c *Connector) Deliver(mailbox string, raw []byte) {
	c.DeliverTo(mailbox, serversync.InboxFolder, raw)
}

// DeliverTo puts a message into a folder of the mailbox, creating both if needed,
// and returns its Ref.
func (c *Connector) DeliverTo(mailbox, folder string, raw []byte) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.add(mailbox, folder, slices.Clone(raw), time.Time{})
}

// Messages returns a copy of what a folder of the mailbox holds, in UID order.
func (c *Connector) Messages(mailbox, folder string) []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.mailbox(mailbox).folders[folder]
	if f == nil {
		return nil
	}
	out := make([]Message, len(f.messages))
	for i, m := range f.messages {
		out[i] = m
		out[i].Raw = slices.Clone(m.Raw)
	}
	return out
}

// ResetCursors invalidates every cursor handed out so far, as a server whose IMAP
// UIDVALIDITY changed does: the next fetch of each reports Reset and starts over.
func (c *Connector) ResetCursors() {
	c.mu.Lock()
	c.epoch++
	c.mu.Unlock()
}

// Drop breaks every open session of the mailbox ("" for every mailbox), as a
// restarted server or a lost network does: a WaitForChange in progress returns at
// once and every later call on those sessions fails with a transient "network"
// error. New sessions open normally.
func (c *Connector) Drop(mailbox string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, mb := range c.mailboxes {
		if mailbox != "" && name != mailbox {
			continue
		}
		for s := range mb.live {
			if s.broken == nil {
				s.broken = brokenError()
			}
		}
		mb.notify()
	}
}

// Inject adds a fault. Faults are matched in the order injected; a call fails
// with the first one that matches.
func (c *Connector) Inject(f Fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.Times == 0 {
		f.Times = 1
	}
	c.faults = append(c.faults, &f)
}

// Heal removes every fault not spent yet.
func (c *Connector) Heal() {
	c.mu.Lock()
	c.faults = nil
	c.mu.Unlock()
}

// Hold holds the next call of op for mailbox ("" for any) once it is recorded,
// before its faults and its work, until the gate is released or the call's
// context ends (the call then fails with the context's error).
func (c *Connector) Hold(op Op, mailbox string) *Gate {
	g := &Gate{op: op, mailbox: mailbox, reached: make(chan struct{}), release: make(chan struct{})}
	c.mu.Lock()
	c.gates = append(c.gates, g)
	c.mu.Unlock()
	return g
}

// Calls returns every call recorded so far, in the order made.
func (c *Connector) Calls() []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// CallsOf returns the calls of op, in the order made.
func (c *Connector) CallsOf(op Op) []Call {
	var out []Call
	for _, call := range c.Calls() {
		if call.Op == op {
			out = append(out, call)
		}
	}
	return out
}

// Sent returns the send calls that succeeded: the messages the server accepted.
func (c *Connector) Sent() []Call {
	var out []Call
	for _, call := range c.CallsOf(OpSend) {
		if call.Err == nil {
			out = append(out, call)
		}
	}
	return out
}

// OpenSessions is how many sessions are open now, incoming and outgoing: zero
// once everything that was opened was closed.
func (c *Connector) OpenSessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

// begin records a call, holds it at a matching gate, and fails it when its
// context ended, its session is broken or a fault matches. A fetch fault that
// hands over messages first is returned instead, for the fetch to play out. i is
// the call's index, for end.
func (c *Connector) begin(ctx context.Context, rec Call, s *session) (i int, fetchFault *Fault, err error) {
	rec.At = time.Now()
	c.mu.Lock()
	i = len(c.calls)
	c.calls = append(c.calls, rec)
	gate := c.takeGate(rec)
	c.mu.Unlock()
	if gate != nil {
		gate.call = rec
		close(gate.reached)
		select {
		case <-gate.release:
		case <-ctx.Done():
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		err = ctxError(rec.Op, ctx)
	case s != nil && s.closed:
		err = &serversync.ConnectorError{Op: string(rec.Op), Kind: serversync.ErrorPermanent, Scope: serversync.ScopeMailbox,
			Code: serversync.CodeInternal, Err: errors.New("fakeconn: session used after Close")}
	case s != nil && s.broken != nil:
		err = s.broken
	default:
		if f := c.takeFault(rec); f != nil {
			err = faultError(f, rec.Op)
			if f.Op == OpFetch && (f.After > 0 || f.CutBody) {
				played := *f
				played.Err = err
				return i, &played, nil
			}
		}
	}
	c.calls[i].Err = err
	return i, nil, err
}

// end records how call i ended.
func (c *Connector) end(i int, err error, update func(*Call)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[i].Err = err
	if update != nil {
		update(&c.calls[i])
	}
	return err
}

// do runs a call whose work is done under c.mu.
func (c *Connector) do(ctx context.Context, rec Call, s *session, work func() error) error {
	i, _, err := c.begin(ctx, rec, s)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if work != nil {
		err = work()
	}
	c.calls[i].Err = err
	c.mu.Unlock()
	return err
}

func (c *Connector) takeGate(rec Call) *Gate {
	for i, g := range c.gates {
		if g.op == rec.Op && (g.mailbox == "" || g.mailbox == rec.Mailbox) {
			c.gates = slices.Delete(c.gates, i, i+1)
			return g
		}
	}
	return nil
}

func (c *Connector) takeFault(rec Call) *Fault {
	for i, f := range c.faults {
		if f.Op != rec.Op || (f.Mailbox != "" && f.Mailbox != rec.Mailbox) {
			continue
		}
		if f.Times != Always {
			if f.Times--; f.Times == 0 {
				c.faults = slices.Delete(c.faults, i, i+1)
			}
		}
		return f
	}
	return nil
}

// faultError is the error a fault makes op return.
func faultError(f *Fault, op Op) error {
	if f.Err == nil {
		return &serversync.ConnectorError{Op: string(op), Kind: serversync.ErrorTransient, Scope: serversync.ScopeMailbox,
			Code: serversync.CodeNetwork, Err: errors.New("connection dropped (injected by fakeconn)")}
	}
	var ce *serversync.ConnectorError
	if errors.As(f.Err, &ce) && ce.Op == "" && f.Err == error(ce) {
		filled := *ce
		filled.Op = string(op)
		return &filled
	}
	return f.Err
}

func brokenError() error {
	return &serversync.ConnectorError{Op: "read", Kind: serversync.ErrorTransient, Scope: serversync.ScopeMailbox,
		Code: serversync.CodeNetwork, Err: errors.New("connection broken (fakeconn.Drop)")}
}

// ctxError is how a call interrupted by its context fails: transient, with the
// context's error reachable through errors.Is.
func ctxError(op Op, ctx context.Context) error {
	return &serversync.ConnectorError{Op: string(op), Kind: serversync.ErrorTransient, Scope: serversync.ScopeMailbox,
		Code: serversync.CodeCanceled, Err: context.Cause(ctx)}
}

// mailbox returns the named mailbox, creating it. Call with c.mu held.
func (c *Connector) mailbox(name string) *mailbox {
	mb := c.mailboxes[name]
	if mb == nil {
		mb = &mailbox{folders: map[string]*folderState{}, changed: make(chan struct{}), live: map[*session]bool{}}
		c.mailboxes[name] = mb
	}
	return mb
}

// add appends a message to a folder and returns its ref; received zero means
// now. Call with c.mu held.
func (c *Connector) add(mailbox, name string, raw []byte, received time.Time) string {
	mb := c.mailbox(mailbox)
	f := mb.folder(name)
	f.nextUID++
	ref := fmt.Sprint(f.nextUID)
	if received.IsZero() {
		received = time.Now()
	}
	f.messages = append(f.messages, Message{Ref: ref, Raw: raw, ReceivedAt: received, uid: f.nextUID})
	f.version++
	mb.notify()
	return ref
}

func (mb *mailbox) folder(name string) *folderState {
	f := mb.folders[name]
	if f == nil {
		f = &folderState{}
		mb.folders[name] = f
	}
	return f
}

// notify wakes every WaitForChange on the mailbox. Call with c.mu held.
func (mb *mailbox) notify() {
	close(mb.changed)
	mb.changed = make(chan struct{})
}

// remove takes the message ref out of a folder and returns it.
func (f *folderState) remove(ref string) (Message, bool) {
	for i, m := range f.messages {
		if m.Ref == ref {
			f.messages = slices.Delete(f.messages, i, i+1)
			f.version++
			return m, true
		}
	}
	return Message{}, false
}
