// Package standard wires the mail connectors of this module into the
// serversync.Connectors a Syncer takes, by profile server type: IMAP and POP3 for
// incoming mail and SMTP for outgoing, Microsoft Graph both ways for Exchange
// Online, and EWS both ways for Exchange Server.
//
//	syncer, err := serversync.NewSyncer(store, standard.Connectors(nil), cfg)
package standard

import (
	"cmp"
	"log/slog"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/dav"
	"github.com/serversync/serversync/connector/ews"
	"github.com/serversync/serversync/connector/graph"
	"github.com/serversync/serversync/connector/imapconn"
	"github.com/serversync/serversync/connector/pop3conn"
	"github.com/serversync/serversync/connector/smtpconn"
)

// Options configure the connectors; nil means defaults.
type Options struct {
	IMAP *imapconn.Options
	// POP3 and SMTP configure those connectors (reply limits…); their Logger,
	// when nil, is Logger.
	POP3  *pop3conn.Options
	SMTP  *smtpconn.Options
	Graph *graph.Options
	EWS   *ews.Options
	// DAV is the CalDAV/CardDAV connector of IMAP and POP3 profiles' ACT
	// (their ACTServerURL); nil means a zero dav.Connector.
	DAV    *dav.Connector
	Logger *slog.Logger // for the POP3, SMTP, Graph and EWS connectors (IMAP has its own in IMAP)
}

// Connectors returns IMAP for IMAPSMTP profiles, POP3 for POP3SMTP profiles, SMTP
// for the outgoing side of both, and one Graph connector for both sides of
// ExchangeOnline and ExchangeOnlineHybrid profiles (one, so that its per-mailbox
// request budget covers reading and sending alike), and one EWS connector for
// both sides of ExchangeServer profiles (it also runs their AutoDiscover). ACT
// (appointments, contacts, tasks) of IMAP and POP3 profiles goes to their
// ACTServerURL through connector/dav, of Exchange Online profiles through Graph,
// of Exchange Server profiles through EWS.
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
	graphOpts := graph.Options{}
	if opts.Graph != nil {
		graphOpts = *opts.Graph
	}
	graphOpts.Logger = cmp.Or(graphOpts.Logger, opts.Logger)
	exchangeOnline := graph.New(&graphOpts)
	davConn := opts.DAV
	if davConn == nil {
		davConn = &dav.Connector{}
	}
	ewsOpts := ews.Options{}
	if opts.EWS != nil {
		ewsOpts = *opts.EWS
	}
	ewsOpts.Logger = cmp.Or(ewsOpts.Logger, opts.Logger)
	if ewsOpts.Authenticator == nil {
		ewsOpts.Authenticator = ews.HTTPAuth // NTLM and Negotiate too, as the profile says
	}
	exchangeServer := ews.New(&ewsOpts)
	out := smtpconn.New(&smtpOpts)
	return serversync.Connectors{
		Incoming: map[serversync.ServerType]serversync.IncomingConnector{
			serversync.ServerTypeIMAPSMTP: imapconn.New(opts.IMAP),
			serversync.ServerTypePOP3SMTP: pop3conn.New(&pop3Opts),

			serversync.ServerTypeExchangeOnline:       exchangeOnline,
			serversync.ServerTypeExchangeOnlineHybrid: exchangeOnline,
			serversync.ServerTypeExchangeServer:       exchangeServer,
		},
		Outgoing: map[serversync.ServerType]serversync.OutgoingConnector{
			serversync.ServerTypeIMAPSMTP: out,
			serversync.ServerTypePOP3SMTP: out,

			serversync.ServerTypeExchangeOnline:       exchangeOnline,
			serversync.ServerTypeExchangeOnlineHybrid: exchangeOnline,
			serversync.ServerTypeExchangeServer:       exchangeServer,
		},
		ACT: map[serversync.ServerType]serversync.ACTConnector{
			serversync.ServerTypeIMAPSMTP: davConn,
			serversync.ServerTypePOP3SMTP: davConn,

			serversync.ServerTypeExchangeOnline:       exchangeOnline,
			serversync.ServerTypeExchangeOnlineHybrid: exchangeOnline,
			serversync.ServerTypeExchangeServer:       exchangeServer,
		},
	}
}
