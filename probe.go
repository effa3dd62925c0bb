package serversync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// ConnectionReport is the outcome of Test Connection: the steps of each direction,
// in order, stopping at the first that failed.
type ConnectionReport struct {
	Incoming []TestStep
	Outgoing []TestStep
}

// OK reports whether every step of both directions succeeded.
func (r ConnectionReport) OK() bool {
	for _, steps := range [][]TestStep{r.Incoming, r.Outgoing} {
		for _, s := range steps {
			if !s.OK {
				return false
			}
		}
	}
	return len(r.Incoming)+len(r.Outgoing) > 0
}

// TestConnection tests a profile with one mailbox's credentials, step by step:
// with AutoDiscover, find the server first ("autodiscover", when the connector is a
// [Discoverer] and the mailbox has no server discovered yet; the one found is not
// stored), then resolve the host, then the connector's own steps (connect, TLS,
// authenticate, open the inbox / EHLO, MAIL FROM + RCPT TO without sending) when it
// implements Prober, or opening and closing a session when it doesn't. A nil
// connector skips its direction. Nothing is changed on the servers.
func TestConnection(ctx context.Context, p *Profile, m *Mailbox, settings *OrgSettings, in IncomingConnector, out OutgoingConnector) ConnectionReport {
	var report ConnectionReport
	if in != nil {
		report.Incoming = testDiscovered(ctx, p, m, settings, Incoming, in, func(t *Target) []TestStep {
			if prober, ok := in.(Prober); ok {
				return prober.Probe(ctx, t)
			}
			return []TestStep{timed("open-session", func() error {
				s, err := in.OpenIncoming(ctx, t)
				if err == nil {
					err = s.Close()
				}
				return err
			})}
		})
	}
	if out != nil {
		report.Outgoing = testDiscovered(ctx, p, m, settings, Outgoing, out, func(t *Target) []TestStep {
			if prober, ok := out.(Prober); ok {
				return prober.Probe(ctx, t)
			}
			return []TestStep{timed("open-session", func() error {
				s, err := out.OpenOutgoing(ctx, t)
				if err == nil {
					err = s.Close()
				}
				return err
			})}
		})
	}
	return report
}

// testDiscovered is testDirection after AutoDiscover, when it has to run.
func testDiscovered(ctx context.Context, p *Profile, m *Mailbox, settings *OrgSettings, dir Direction, conn any, probe func(*Target) []TestStep) []TestStep {
	m, discovery, ok := discoverForTest(ctx, p, m, settings, dir, conn)
	if !ok {
		return discovery
	}
	return append(discovery, testDirection(ctx, p, m, settings, dir, probe)...)
}

// discoverForTest runs AutoDiscover for TestConnection when the profile asks for
// it, the connector can and m has no server yet. It returns m with the server
// found (a copy: nothing is stored), the "autodiscover" step if one ran, and ok
// false when discovery failed and the test of the direction ends there.
func discoverForTest(ctx context.Context, p *Profile, m *Mailbox, settings *OrgSettings, dir Direction, conn any) (*Mailbox, []TestStep, bool) {
	d, isDiscoverer := conn.(Discoverer)
	if !p.AutoDiscover || !isDiscoverer || m.DiscoveredServer != "" {
		return m, nil, true
	}
	target, err := ResolveTarget(ctx, p, m, settings, dir)
	if err != nil {
		return m, nil, true // testDirection reports it
	}
	var server string
	step := timed("autodiscover", func() error {
		var err error
		server, err = d.Discover(ctx, target)
		return err
	})
	if !step.OK {
		return m, []TestStep{step}, false
	}
	step.Detail = "found the server at " + server
	m = m.Clone()
	m.DiscoveredServer = server
	return m, []TestStep{step}, true
}

func testDirection(ctx context.Context, p *Profile, m *Mailbox, settings *OrgSettings, dir Direction, probe func(*Target) []TestStep) []TestStep {
	target, err := ResolveTarget(ctx, p, m, settings, dir)
	if err != nil {
		// Refused before any connection: the security settings forbid it, or no
		// connector can use the profile's credentials.
		name := "credentials"
		if errors.Is(err, ErrConnectionForbidden) {
			name = "security"
		}
		return []TestStep{{Name: name, Err: err, Detail: err.Error()}}
	}
	resolve := timed("resolve", func() error {
		if net.ParseIP(target.Endpoint.Host) != nil {
			return nil
		}
		_, err := net.DefaultResolver.LookupHost(ctx, target.Endpoint.Host)
		return err
	})
	if !resolve.OK {
		resolve.Detail = fmt.Sprintf("the host name %q does not resolve: check the profile's server name", target.Endpoint.Host)
		return []TestStep{resolve}
	}
	return append([]TestStep{resolve}, probe(target)...)
}

func timed(name string, fn func() error) TestStep {
	start := time.Now()
	err := fn()
	step := TestStep{Name: name, OK: err == nil, Err: err, Duration: time.Since(start)}
	if err != nil {
		step.Detail = err.Error()
	}
	return step
}
