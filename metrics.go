package serversync

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// metrics are the Syncer's instruments (OpenTelemetry metric API). With no
// MeterProvider configured they are no-ops and cost nothing.
type metrics struct {
	tracked      metric.Int64Counter
	itemFailures metric.Int64Counter
	sent         metric.Int64Counter
	sendFailures metric.Int64Counter
	syncErrors   metric.Int64Counter
	syncDuration metric.Float64Histogram
}

func newMetrics(provider metric.MeterProvider) *metrics {
	if provider == nil {
		provider = noop.NewMeterProvider()
	}
	meter := provider.Meter("github.com/serversync/serversync")
	m := &metrics{}
	// Instrument creation only fails on invalid names, which these are not; a
	// failed instrument is still a usable no-op.
	m.tracked, _ = meter.Int64Counter("serversync.messages.tracked", metric.WithDescription("Incoming messages stored as tracked activities"))
	m.itemFailures, _ = meter.Int64Counter("serversync.messages.failed", metric.WithDescription("Incoming messages the tracking hook refused"))
	m.sent, _ = meter.Int64Counter("serversync.emails.sent", metric.WithDescription("Outgoing emails accepted by the server"))
	m.sendFailures, _ = meter.Int64Counter("serversync.emails.failed", metric.WithDescription("Outgoing emails that failed for good"))
	m.syncErrors, _ = meter.Int64Counter("serversync.sync.errors", metric.WithDescription("Mailbox syncs that ended with an error, by kind"))
	m.syncDuration, _ = meter.Float64Histogram("serversync.sync.duration", metric.WithUnit("s"), metric.WithDescription("Duration of one incoming sync of a mailbox"))
	return m
}

func (m *metrics) syncError(ctx context.Context, kind ErrorKind) {
	m.syncErrors.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", string(kind))))
}
