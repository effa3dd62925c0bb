package sqlite_test

import (
	"testing"

	"github.com/serversync/serversync/store/storetest"
)

// BenchmarkStore runs the shared store benchmarks on SQLite files.
func BenchmarkStore(b *testing.B) { storetest.Benchmark(b, harness) }
