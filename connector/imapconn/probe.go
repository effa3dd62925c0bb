package imapconn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

var _ serversync.Prober = (*Connector)(nil)

// Probe implements serversync.Prober: it tests the target step by step —
// "connect" (TCP), "tls" (the implicit TLS handshake or STARTTLS, with the
// certificate verified), "greeting" (without STARTTLS), "authenticate" (and, for
// delegation, finding the other users' namespace), "open-inbox" (EXAMINE, read-only)
// — and stops at the first step that fails, whose Detail says what to change.
// Nothing changes on the server.
func (c *Connector) Probe(ctx context.Context, target *serversync.Target) []serversync.TestStep {
	rec := &steps{}
	if target != nil {
		rec.ep = target.Endpoint
	}
	s, err := c.openSteps(ctx, target, rec)
	if err != nil {
		return rec.list
	}
	defer s.Close()
	done := rec.start("open-inbox")
	name := s.mailboxName("")
	var messages uint32
	err = s.run(ctx, "select", func() error {
		data, err := s.selectFolder(name, true)
		if err == nil {
			messages = data.NumMessages
		}
		return err
	})
	done(err, fmt.Sprintf("opened %s read-only: %d messages", name, messages))
	var ce *serversync.ConnectorError
	if errors.As(err, &ce) && ce.Code == serversync.CodeCommandFailed {
		// A plain NO: Dovecot, for one, answers a mailbox the account may not see
		// without [NONEXISTENT], so as not to tell whether it exists.
		var imapErr *imap.Error
		reply := err.Error()
		if errors.As(err, &imapErr) {
			reply = imapErr.Text
		}
		rec.list[len(rec.list)-1].Detail = fmt.Sprintf("the server would not open %s (%q): check that the mailbox exists on the server "+
			"and, with Profile credentials, that the service account was granted access to it", name, reply)
	}
	return rec.list
}

// steps records Test Connection steps. A nil *steps records nothing, so opening a
// session for real pays nothing for it.
type steps struct {
	ep   serversync.Endpoint
	list []serversync.TestStep
}

// start begins the step name. The returned done records its outcome — okDetail
// when err is nil, else advice a person can act on — and returns err.
func (st *steps) start(name string) (done func(err error, okDetail string) error) {
	if st == nil {
		return func(err error, _ string) error { return err }
	}
	begin := time.Now()
	return func(err error, okDetail string) error {
		step := serversync.TestStep{Name: name, OK: err == nil, Err: err, Duration: time.Since(begin), Detail: okDetail}
		if err != nil {
			step.Detail = connector.Advice(err, st.ep)
		}
		st.list = append(st.list, step)
		return err
	}
}

// fail records that the step name failed at once with err, and returns err.
func (st *steps) fail(name string, err error) error { return st.start(name)(err, "") }
