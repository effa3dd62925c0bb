//go:build imapsqlite

package main

import (
	"log/slog"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector/imapconn"
	"github.com/serversync/serversync/connector/smtpconn"
)

func init() {
	connectors = func(imap *imapconn.Options, logger *slog.Logger) serversync.Connectors {
		return serversync.Connectors{
			Incoming: map[serversync.ServerType]serversync.IncomingConnector{serversync.ServerTypeIMAPSMTP: imapconn.New(imap)},
			Outgoing: map[serversync.ServerType]serversync.OutgoingConnector{serversync.ServerTypeIMAPSMTP: smtpconn.New(&smtpconn.Options{Logger: logger})},
		}
	}
}
