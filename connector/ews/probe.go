package ews

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector"
)

// Probe implements serversync.Prober: "mailbox" (the mailbox's root folder can
// be read: the credentials are accepted, and the service account may
// impersonate or open the mailbox), "open-inbox" (the inbox, with its counts)
// and "sent-items" (the Sent Items folder SendAndSaveCopy saves to). It stops
// at the first failing step; nothing changes on the server.
func (c *Connector) Probe(ctx context.Context, target *serversync.Target) []serversync.TestStep {
	var list []serversync.TestStep
	var ep serversync.Endpoint
	if target != nil {
		ep = target.Endpoint
	}
	step := func(name string, begin time.Time, err error, detail string) bool {
		s := serversync.TestStep{Name: name, OK: err == nil, Err: err, Duration: time.Since(begin), Detail: detail}
		if err != nil {
			s.Detail = advice(err, ep)
		}
		list = append(list, s)
		return err == nil
	}
	begin := time.Now()
	m, err := c.mailbox(ctx, target)
	if err != nil {
		step("mailbox", begin, err, "")
		return list
	}
	who := target.Credentials.Username
	if target.Credentials.Kind == auth.KindIntegrated {
		who = firstNonEmpty(who, "this process's own Kerberos identity")
	}
	how := "as " + who
	switch {
	case m.impersonate != "":
		how = fmt.Sprintf("by %s impersonating %s", who, m.impersonate)
	case m.delegate != "":
		how = fmt.Sprintf("by %s as a delegate of %s", who, m.delegate)
	}
	_, err = m.getFolder(ctx, "probe", "msgfolderroot")
	if !step("mailbox", begin, err, "the mailbox can be read "+how+" at "+m.url) {
		return list
	}
	begin = time.Now()
	inbox, err := m.getFolder(ctx, "probe", "inbox")
	if !step("open-inbox", begin, err, fmt.Sprintf("opened %s: %d messages, %d unread", firstNonEmpty(inbox.Name, "the inbox"), inbox.Total, inbox.Unread)) {
		return list
	}
	begin = time.Now()
	_, err = m.getFolder(ctx, "probe", "sentitems")
	step("sent-items", begin, err, "Sent Items can be read: sent email is saved there by Exchange")
	return list
}

// advice is what a person can do about a failed step.
func advice(err error, ep serversync.Endpoint) string {
	var ce *serversync.ConnectorError
	if errors.As(err, &ce) {
		switch ce.Code {
		case serversync.CodeNoPermission, serversync.CodeMailboxNotFound, serversync.CodeThrottled, serversync.CodeAuthUnavailable,
			serversync.CodeBadTarget, serversync.CodeProtocolError:
			return ce.Err.Error()
		}
	}
	return connector.Advice(err, ep)
}
