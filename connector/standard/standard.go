// Package standard wires the mail connectors of this module into the
// serversync.Connectors a Syncer takes: IMAP and POP3 for incoming mail, SMTP for
// outgoing, by profile server type.
//
//	syncer, err := serversync.NewSyncer(store, standard.Connectors(nil), cfg)
package standard

import (
	"cmp"
	"log/slog"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/imapconn"
	"github.com/serversync/serversync/connector/pop3conn"
	"github.com/serversync/serversync/connector/smtpconn"
)

// Options configure the connectors; nil means defaults.
type Options struct {
	IMAP *imapconn.Options
	// POP3 and SMTP configure those connectors (reply limits…); their Logger,
	// when nil, is Logger.
	POP3   *pop3conn.Options
	SMTP   *smtpconn.Options
	Logger *slog.Logger // for the POP3 and SMTP connectors (IMAP has its own in IMAP)
}

// Connectors returns IMAP for IMAPSMTP profiles, POP3 for POP3SMTP profiles and SMTP
// for the outgoing side of both. Exchange server types have no connector yet.
func Connectors(opts *Options) serversync.Connectors {
	if opts == nil {
		opts = &Options{}
	}
	smtpOpts := smtpconn.Options{}
	if opts.SMTP != nil {
		smtpOpts = *opts.SMTP
	}
	smtpOpts.Logger = cmp.Or(smtpOpts.Logger, opts.Logger)
	pop3Opts := pop3conn.Options{}
	if opts.POP3 != nil {
		pop3Opts = *opts.POP3
	}
	pop3Opts.Logger = cmp.Or(pop3Opts.Logger, opts.Logger)
	out := smtpconn.New(&smtpOpts)
	return serversync.Connectors{
		Incoming: map[serversync.ServerType]serversync.IncomingConnector{
			serversync.ServerTypeIMAPSMTP: imapconn.New(opts.IMAP),
			serversync.ServerTypePOP3SMTP: pop3conn.New(&pop3Opts),
		},
		Outgoing: map[serversync.ServerType]serversync.OutgoingConnector{
			serversync.ServerTypeIMAPSMTP: out,
			serversync.ServerTypePOP3SMTP: out,
		},
	}
}
