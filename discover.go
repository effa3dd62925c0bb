package serversync

import (
	"context"
	"time"
)

// Discoverer is implemented by connectors that find a mailbox's server from its
// address (Exchange Autodiscover). The Syncer asks it, for profiles with
// AutoDiscover, when the mailbox has no discovered server or the one it has is
// older than Config.DiscoveryTTL, and caches the answer on the mailbox
// (Mailbox.DiscoveredServer and DiscoveredServerAt).
type Discoverer interface {
	// Discover returns the URL of target's mailbox server. target is resolved as
	// for a connection, without a server: EmailAddress, Credentials and the
	// Endpoint's RootCAsPEM, Timeout and AllowPlaintextAuth are what it has. The
	// error is a *ConnectorError when the server said no.
	Discover(ctx context.Context, target *Target) (string, error)
}

// DiscoveryTTLDefault is how long a discovered server is used before it is
// discovered again (Config.DiscoveryTTL).
const DiscoveryTTLDefault = 24 * time.Hour

// discovered returns m with its server discovered when its profile uses
// AutoDiscover, the connector for dir can discover, and m's cached server is
// missing or older than Config.DiscoveryTTL; the new server is stored on the
// mailbox. When discovery fails but a server is cached, the cached one is used
// (a failing Autodiscover endpoint should not stop a working mailbox).
func (s *Syncer) discovered(ctx context.Context, w *work, m *Mailbox, dir Direction) (*Mailbox, error) {
	if !w.p.AutoDiscover {
		return m, nil
	}
	now := s.cfg.Now()
	fresh := func(m *Mailbox) bool {
		return m.DiscoveredServer != "" && now.Sub(m.DiscoveredServerAt) < s.cfg.DiscoveryTTL
	}
	if fresh(m) {
		return m, nil
	}
	// Another connection of this job (Test & Enable tests incoming, then
	// outgoing), or another host, may have discovered it since m was loaded.
	if stored, err := s.store.GetMailbox(ctx, m.ID); err == nil && fresh(stored) {
		m = m.Clone()
		m.DiscoveredServer, m.DiscoveredServerAt = stored.DiscoveredServer, stored.DiscoveredServerAt
		return m, nil
	}
	var conn any = s.conns.Incoming[w.p.ServerType]
	if dir == Outgoing {
		conn = s.conns.Outgoing[w.p.ServerType]
	}
	d, ok := conn.(Discoverer)
	if !ok {
		return m, nil
	}
	bare := m.Clone()
	bare.DiscoveredServer = ""
	target, err := resolveTarget(ctx, w.p, bare, w.settings, dir, s.cfg.Kerberos, s.appTokenSource(ctx))
	if err != nil {
		return nil, err
	}
	server, err := d.Discover(ctx, target)
	if err != nil {
		if m.DiscoveredServer != "" {
			s.log.Warn("autodiscover failed; using the server discovered before", "mailbox", m.ID, "server", m.DiscoveredServer, "err", err)
			return m, nil
		}
		return nil, err
	}
	_, err = s.store.UpdateMailbox(ctx, m.ID, func(stored *Mailbox) error {
		stored.DiscoveredServer, stored.DiscoveredServerAt = server, now
		return nil
	})
	if err != nil {
		// The server in hand works for this connection; the next one discovers again.
		s.log.Warn("store the discovered server", "mailbox", m.ID, "err", err)
	}
	m = m.Clone()
	m.DiscoveredServer, m.DiscoveredServerAt = server, now
	return m, nil
}
