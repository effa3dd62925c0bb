// Package netfault relays loopback TCP connections to a server and drops them on
// request part way through a transfer, as a failing network or a server that dies
// would. Tests put it between a connector and a real or in-process mail server to
// check that a dropped connection is a transient error and loses nothing.
//
// It relays bytes as they are, so TLS runs end to end through it and a cut shows
// up the way a real one does: the connection just ends, in the middle of a TLS
// record or between two.
package netfault

import (
	"io"
	"net"
	"sync"
)

// Proxy listens on 127.0.0.1 and relays each connection to its target.
type Proxy struct {
	ln     net.Listener
	target string

	mu        sync.Mutex
	dropAfter int64 // server-to-client bytes after which new connections drop; 0: never
	drops     int
	relaying  int // connections relayed now
	closed    bool
	conns     map[net.Conn]struct{}
	relays    sync.WaitGroup
}

// Start listens on a free loopback port and relays connections to target (host:port).
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.relays.Go(p.accept)
	return p, nil
}

// Port is the port to connect to instead of the target's.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// DropAfter makes every connection opened from now on drop once the server has
// sent it afterBytes bytes: both sides see the connection end without a goodbye.
// Zero relays new connections whole again.
func (p *Proxy) DropAfter(afterBytes int64) {
	p.mu.Lock()
	p.dropAfter = afterBytes
	p.mu.Unlock()
}

// DropAll drops every connection relayed now, as a server restart or a network
// failure would; new connections are relayed as before. (A connection still being
// set up may be dropped without being counted in Drops.)
func (p *Proxy) DropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.drops += p.relaying
}

// Drops reports how many connections the proxy has dropped.
func (p *Proxy) Drops() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.drops
}

// Close stops listening, ends every relayed connection, and waits for the relays.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.relays.Wait()
	return err
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		dropAfter := p.dropAfter
		p.mu.Unlock()
		p.relays.Go(func() { p.relay(client, dropAfter) })
	}
}

// track registers c so Close can end it; false (c closed) when the proxy is closing.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// relay copies both ways until either side ends, or until the server has sent
// dropAfter bytes when that is set.
func (p *Proxy) relay(client net.Conn, dropAfter int64) {
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	server, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(server) {
		return
	}
	defer p.untrack(server)
	p.mu.Lock()
	p.relaying++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.relaying--
		p.mu.Unlock()
	}()

	var toServer sync.WaitGroup
	toServer.Go(func() {
		_, _ = io.Copy(server, client)
		_ = server.Close() // the client went away: so does the server side
	})
	if dropAfter > 0 {
		if _, err := io.CopyN(client, server, dropAfter); err == nil {
			p.mu.Lock()
			p.drops++
			p.mu.Unlock()
		}
	} else {
		_, _ = io.Copy(client, server)
	}
	// Either way the connection ends without a goodbye, as on a real network.
	_ = client.Close()
	_ = server.Close()
	toServer.Wait()
}
