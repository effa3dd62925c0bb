package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"

	moderncsqlite "modernc.org/sqlite"
)

// Checkpoints: copying the write-ahead log into the database.
//
// A checkpoint ends with two fsyncs (the log, then the database), and when the
// writer ran it itself (SQLite's wal_autocheckpoint) every batch that crossed the
// threshold waited for the disk before the next could begin: 107 fsyncs and 0.6 s
// of a 4.5 s sync of 20,000 messages (strace), with the store on the pipeline's
// critical path. As SQLite's documentation suggests for such writers, checkpoints
// run instead on a connection of their own, in the background: PASSIVE ones, which
// neither wait for nor block the writer, and which copy only frames no reader still
// needs.
//
// The writer keeps an automatic checkpoint as a backstop, at walCheckpointBackstop
// pages: the log restarts from its beginning only after a checkpoint that copied
// all of it, which a background checkpoint racing a busy writer rarely does, so
// without the backstop the log would grow for as long as a large sync writes. The
// backstop's checkpoint finds most frames already copied and synced.

// walCheckpointPages is how many pages the writer writes to the log between two
// background checkpoints (SQLite's own automatic threshold is 1,000). A sync
// rewrites the same index pages in every batch and each checkpoint copies a page's
// latest version once, so fewer, larger checkpoints copy less: when the writer
// checkpointed itself, bench/syncerpipeline spent ~8% less CPU storing 20,000
// messages at 2,000 (8 MB) than at 1,000, and 4,000 little less than 2,000; in the
// background, 1,000 and 2,000 took the same time (README, "Measured").
const walCheckpointPages = 2000

// walCheckpointBackstop is the writer's own wal_autocheckpoint: the log size, in
// pages, at which the writer checkpoints after a commit because the background
// checkpoints have not let the log restart.
const walCheckpointBackstop = 4 * walCheckpointPages

// checkpointer runs the background checkpoints of one database file.
type checkpointer struct {
	db    *sql.DB      // one connection of its own
	pages atomic.Int64 // written to the log since the last checkpoint began
	wake  chan struct{}
	stop  context.CancelFunc
	done  sync.WaitGroup
}

func startCheckpointer(db *sql.DB) *checkpointer {
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	ctx, stop := context.WithCancel(context.Background())
	c := &checkpointer{db: db, wake: make(chan struct{}, 1), stop: stop}
	c.done.Add(1)
	go c.run(ctx)
	return c
}

// wrote counts the pages the writer's connection wrote to the log since it was
// last asked (SQLite's per-connection cache-write counter), and wakes the
// checkpointer once they reach walCheckpointPages. conn is the writer's, after
// its transaction ended.
func (c *checkpointer) wrote(conn *sql.Conn) {
	var pages int
	_ = conn.Raw(func(dc any) error {
		st, ok := dc.(moderncsqlite.DBStatus)
		if !ok {
			return nil
		}
		n, _, err := st.Status(moderncsqlite.DBStatusCacheWrite, true)
		pages = n
		return err
	})
	if c.pages.Add(int64(pages)) < walCheckpointPages {
		return
	}
	select {
	case c.wake <- struct{}{}:
	default: // already woken
	}
}

func (c *checkpointer) run(ctx context.Context) {
	defer c.done.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		c.pages.Store(0)
		// A checkpoint that fails (interrupted by Close, an I/O error) loses nothing:
		// the frames stay in the log, for the next checkpoint or the backstop.
		_, _ = c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
	}
}

// close stops the checkpointer, interrupting a checkpoint under way, and closes
// its connection.
func (c *checkpointer) close() error {
	c.stop()
	c.done.Wait()
	return c.db.Close()
}
