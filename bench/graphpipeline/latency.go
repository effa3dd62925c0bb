package main

import (
	"errors"
	"net"
	"sync"
	"time"
)

// latency relays loopback TCP connections to a server, delaying every chunk of
// bytes by half the round-trip time in each direction, as a network path to
// Graph would: the bytes still flow as fast as they come (the delay is a
// pipeline, not a pause), but each request waits rtt for its answer. TLS runs
// end to end through it.
type latency struct {
	ln     net.Listener
	target string
	oneWay time.Duration
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startLatency(target string, rtt time.Duration) (*latency, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &latency{ln: ln, target: target, oneWay: rtt / 2, conns: map[net.Conn]bool{}}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// addr is where clients connect instead of the target.
func (l *latency) addr() string { return l.ln.Addr().String() }

func (l *latency) accept() {
	defer l.wg.Done()
	for {
		client, err := l.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", l.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		if !l.track(client, server) {
			return
		}
		l.wg.Add(2)
		go l.relay(server, client)
		go l.relay(client, server)
	}
}

func (l *latency) track(conns ...net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns == nil { // closed
		for _, c := range conns {
			_ = c.Close()
		}
		return false
	}
	for _, c := range conns {
		l.conns[c] = true
	}
	return true
}

// relay copies src to dst, each chunk oneWay after it was read; when either
// side ends, both connections are closed.
func (l *latency) relay(dst, src net.Conn) {
	defer l.wg.Done()
	type chunk struct {
		b  []byte
		at time.Time
	}
	chunks := make(chan chunk, 4096)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{buf[:n], time.Now().Add(l.oneWay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
	for range chunks { // until the reader sees src closed
	}
}

func (l *latency) close() error {
	err := l.ln.Close()
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.conns = nil
	l.mu.Unlock()
	l.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
