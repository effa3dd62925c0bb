package postgres_test

import (
	"testing"

	"github.com/serversync/serversync/internal/pgtest"
	"github.com/serversync/serversync/store/storetest"
)

// BenchmarkStore runs the shared store benchmarks, each store on a schema of its
// own; the lease benchmark leases among 100,000 mailboxes.
func BenchmarkStore(b *testing.B) {
	pgtest.URL(b)
	storetest.Benchmark(b, harness)
}
