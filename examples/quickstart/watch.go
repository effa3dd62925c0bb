package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/serversync/serversync"
)

// waitTimeout bounds every wait for the Syncer, so a server that never answers
// ends the run with an error instead of hanging it.
const waitTimeout = 60 * time.Second

// watcher records the Syncer's events for the main goroutine. Event handlers run
// on the Syncer's goroutines and must be quick, so it only counts and signals.
// It is safe for concurrent use.
type watcher struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every event
	tracked int
	failed  int
	synced  map[string]error // mailbox ID → outcome of its first sync of this run
	tested  map[string]error // mailbox ID → what Test & Enable found wrong, if anything
}

func newWatcher() *watcher {
	return &watcher{changed: make(chan struct{}), synced: map[string]error{}, tested: map[string]error{}}
}

func (w *watcher) onEvent(e serversync.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch e.Kind {
	case serversync.EventMailTracked:
		w.tracked++
	case serversync.EventItemFailed:
		w.failed++
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

// counts returns how many messages were tracked and failed so far.
func (w *watcher) counts() (tracked, failed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tracked, w.failed
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
// at most waitTimeout. what names the wait in the timeout error; check's last
// detail, when not empty, is added to it.
func (w *watcher) wait(ctx context.Context, what string, check func() (done bool, detail string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	for {
		w.mu.Lock()
		changed := w.changed // taken before check, so no event is missed in between
		w.mu.Unlock()
		done, detail, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return ctx.Err() // interrupted
			}
			if detail != "" {
				what += " (" + detail + ")"
			}
			return fmt.Errorf("timed out after %s waiting for %s", waitTimeout, what)
		}
	}
}

// progressBar shows the initial sync. On a terminal it redraws one line; on
// anything else (a pipe, a file, a test) it prints nothing until the summary, so
// captured output stays readable.
type progressBar struct {
	out   io.Writer
	tty   bool
	total int // messages expected; 0 when unknown (real servers): a count, no bar
}

func newProgressBar(out io.Writer, total int) *progressBar {
	f, ok := out.(*os.File)
	tty := false
	if ok {
		info, err := f.Stat()
		tty = err == nil && info.Mode()&os.ModeCharDevice != 0
	}
	return &progressBar{out: out, tty: tty, total: total}
}

func (b *progressBar) draw(n int) {
	if !b.tty {
		return
	}
	if b.total <= 0 {
		fmt.Fprintf(b.out, "\rinitial sync: %d messages tracked", n)
		return
	}
	const width = 40
	filled := min(n, b.total) * width / b.total
	fmt.Fprintf(b.out, "\rinitial sync [%s%s] %d/%d", strings.Repeat("#", filled), strings.Repeat(".", width-filled), n, b.total)
}

// finish ends the bar's line, leaving it visible, and prints a summary.
func (b *progressBar) finish(summary string) {
	if b.tty {
		fmt.Fprintln(b.out)
	}
	fmt.Fprintln(b.out, summary)
}

// initialSync waits until every mailbox finished its first sync of this run,
// drawing the progress bar against the seeded total.
func initialSync(ctx context.Context, out io.Writer, watch *watcher, boxes []*serversync.Mailbox, seeded int) error {
	bar := newProgressBar(out, seeded)
	started := time.Now()
	err := watch.wait(ctx, "the initial sync", func() (bool, string, error) {
		tracked, _ := watch.counts()
		bar.draw(tracked)
		synced := 0
		for _, m := range boxes {
			done, err := watch.firstSync(m.ID)
			if err != nil {
				return false, "", fmt.Errorf("initial sync of %s: %w", m.EmailAddress, err)
			}
			if done {
				synced++
			}
		}
		return synced == len(boxes), fmt.Sprintf("%d of %d mailboxes synced, %d messages tracked", synced, len(boxes), tracked), nil
	})
	if err != nil {
		bar.finish("initial sync did not finish")
		return err
	}
	tracked, failed := watch.counts()
	summary := fmt.Sprintf("initial sync done in %s: %d messages tracked", time.Since(started).Round(time.Millisecond), tracked)
	if failed > 0 {
		summary += fmt.Sprintf(", %d failed", failed)
	}
	if skipped := seeded - tracked - failed; seeded > 0 && skipped > 0 {
		summary += fmt.Sprintf(", %d skipped: tracked by an earlier run", skipped)
	}
	bar.finish(summary)
	return nil
}

// sendAndWatch queues an email from one mailbox, waits until it is sent and, when
// the recipient is a mailbox here too, until that mailbox tracks it.
func sendAndWatch(ctx context.Context, out io.Writer, watch *watcher, syncer *serversync.Syncer, store serversync.Store,
	from *serversync.Mailbox, to string, recipient *serversync.Mailbox) error {
	queued, err := syncer.QueueEmail(ctx, &serversync.EmailActivity{
		MailboxID: from.ID,
		To:        []serversync.Address{{Email: to}},
		Subject:   "Order 1042 has shipped",
		TextBody:  "Hello,\n\nthe order 1042 left our warehouse today; the tracking number is 1Z 999 AA1 01 2345 6784.\n",
		// The host record the email is about: what comes back is linked to it too.
		Regarding: serversync.RecordRef{Type: "case", ID: "CAS-01042"},
	})
	if err != nil {
		return err
	}
	var sent *serversync.EmailActivity
	err = watch.wait(ctx, "the email to be sent", func() (bool, string, error) {
		a, err := store.GetActivity(ctx, queued.ID)
		if err != nil {
			return false, "", err
		}
		switch a.Status {
		case serversync.StatusSent:
			sent = a
			return true, "", nil
		case serversync.StatusFailed:
			return false, "", fmt.Errorf("sending the email failed: %s", a.LastError)
		}
		return false, a.LastError, nil // a transient failure is retried later
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nsent      %q\n          from %s to %s, %s after it was queued\n",
		sent.Subject, sent.From.Email, to, sent.UpdatedAt.Sub(queued.CreatedAt).Round(time.Millisecond))
	if recipient == nil {
		fmt.Fprintf(out, "          %s is not a mailbox here: not waiting for it to arrive\n", to)
		return nil
	}

	var arrived *serversync.EmailActivity
	err = watch.wait(ctx, "the email to arrive in "+to, func() (bool, string, error) {
		filter := serversync.ActivityFilter{MailboxID: recipient.ID, Direction: serversync.Incoming, MessageID: sent.MessageID, Limit: 1}
		for a, err := range store.ListActivities(ctx, filter) {
			arrived = a
			return err == nil, "", err
		}
		return false, "", nil
	})
	if err != nil {
		return err
	}
	how := "not correlated to the sent email"
	if arrived.CorrelatedTo == sent.ID {
		how = fmt.Sprintf("correlated to the sent email by %s, so regarding %s %s too",
			arrived.CorrelationMethod, arrived.Regarding.Type, arrived.Regarding.ID)
	}
	// From when the message was handed to the server to when the Syncer stored it.
	fmt.Fprintf(out, "arrived   in %s and tracked, %s after it was sent;\n          %s\n",
		to, arrived.CreatedAt.Sub(sent.SentAt).Round(time.Millisecond), how)
	return nil
}
