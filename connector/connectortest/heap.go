package connectortest

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// HeapLimitDefault is the heap the hostile-server tests allow the whole test
// process while a server sends up to 1 GiB: the reply limits keep a connector
// far below it (1 MiB per reply by default).
const HeapLimitDefault = 64 << 20

// HeapGuard samples the process's heap in use (runtime.MemStats.HeapInuse)
// every 5 ms until stop is called, which returns the peak seen. The moment the
// heap passes limit it cancels the returned context, so a connector that
// buffers what a hostile server sends fails its test at once instead of
// exhausting the machine. Run such tests one at a time (not t.Parallel): the
// heap is the whole process's.
func HeapGuard(ctx context.Context, limit uint64) (guarded context.Context, stop func() (peak uint64)) {
	runtime.GC()
	guarded, cancel := context.WithCancelCause(ctx)
	var (
		wg   sync.WaitGroup
		peak uint64
		quit = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			if ms.HeapInuse > limit {
				cancel(errHeapLimit)
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	return guarded, func() uint64 {
		close(quit)
		wg.Wait()
		cancel(nil)
		return peak
	}
}

type heapLimitError struct{}

func (heapLimitError) Error() string { return "connectortest: the heap grew past the test's limit" }

var errHeapLimit error = heapLimitError{}
