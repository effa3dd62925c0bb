package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/serversync/serversync"
)

// waitTimeout bounds every wait for the Syncer, so a server that never answers
// ends the run with an error instead of hanging it.
const waitTimeout = 60 * time.Second

// watcher records the Syncer's events for the main goroutine. Event handlers run
// on the Syncer's goroutines and must be quick, so it only records and signals.
type watcher struct {
	mu      sync.Mutex
	changed chan struct{}    // closed and replaced at every event
	synced  map[string]error // mailbox ID → outcome of its first sync
	tested  map[string]error // mailbox ID → what Test & Enable found wrong, if anything
}

func newWatcher() *watcher {
	return &watcher{changed: make(chan struct{}), synced: map[string]error{}, tested: map[string]error{}}
}

func (w *watcher) onEvent(e serversync.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch e.Kind {
	case serversync.EventSyncFinished:
		if _, seen := w.synced[e.MailboxID]; !seen {
			w.synced[e.MailboxID] = e.Err
		}
	case serversync.EventMailboxTested:
		w.tested[e.MailboxID] = e.Err
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// firstSync reports whether mailbox id finished its first sync, and its error.
func (w *watcher) firstSync(id string) (done bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	err, done = w.synced[id]
	return done, err
}

func (w *watcher) testError(id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tested[id]
}

// wait calls check now and after every event until it reports done or fails, for
// at most waitTimeout; what names the wait in the timeout error.
func (w *watcher) wait(ctx context.Context, what string, check func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	for {
		w.mu.Lock()
		changed := w.changed // taken before check, so no event is missed in between
		w.mu.Unlock()
		done, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return ctx.Err() // interrupted
			}
			return fmt.Errorf("timed out after %s waiting for %s", waitTimeout, what)
		}
	}
}
