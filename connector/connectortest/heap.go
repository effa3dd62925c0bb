package connectortest

import (
	"bytes"
	"context"
	"io"
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

// HostileBytes is how much Endless sends at most: far more than any reply
// limit, and many times the heap limit of the tests.
const HostileBytes = 1 << 30

// Endless writes prefix, then fill over and over, HostileBytes in all or until
// a write fails (the client hung up): an endless line, atom or list.
func Endless(w io.Writer, prefix, fill string) {
	if _, err := io.WriteString(w, prefix); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte(fill), max(1, (64<<10)/len(fill)))
	for sent := 0; sent < HostileBytes; sent += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

// Drip writes prefix, then one byte of fill every interval until a write
// fails: a reply that makes progress just inside every read timeout.
func Drip(w io.Writer, prefix string, fill byte, interval time.Duration) {
	if _, err := io.WriteString(w, prefix); err != nil {
		return
	}
	for {
		time.Sleep(interval)
		if _, err := w.Write([]byte{fill}); err != nil {
			return
		}
	}
}
