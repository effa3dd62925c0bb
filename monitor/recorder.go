package monitor

import (
	"sync"
	"time"

	"github.com/serversync/serversync"
)

// Recorder counts the Syncer's events per minute for the throughput chart. Call
// Record from Config.OnEvent (it only takes a lock and adds):
//
//	rec := monitor.NewRecorder()
//	syncer, _ := serversync.NewSyncer(store, conns, &serversync.Config{OnEvent: rec.Record})
//
// It keeps the last hour, in memory: what this process's Syncer did since it started.
type Recorder struct {
	mu      sync.Mutex
	now     func() time.Time
	buckets [recorderMinutes]bucket
}

const recorderMinutes = 60

// bucket is one minute's counts.
type bucket struct {
	minute     int64 // Unix minute this bucket holds; another value means empty
	tracked    int
	itemFailed int
	sent       int
	sendFailed int
	syncErrors int
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{now: time.Now} }

// Record counts one event. Safe for concurrent use.
func (r *Recorder) Record(e serversync.Event) {
	at := e.Time
	if at.IsZero() {
		at = r.now()
	}
	minute := at.Unix() / 60
	r.mu.Lock()
	defer r.mu.Unlock()
	b := &r.buckets[minute%recorderMinutes]
	switch {
	case b.minute > minute:
		return // older than the hour kept
	case b.minute < minute:
		*b = bucket{minute: minute}
	}
	switch e.Kind {
	case serversync.EventMailTracked:
		b.tracked++
	case serversync.EventItemFailed:
		b.itemFailed++
	case serversync.EventEmailSent:
		b.sent++
	case serversync.EventEmailFailed:
		b.sendFailed++
	case serversync.EventSyncFinished:
		if e.Err != nil {
			b.syncErrors++
		}
	}
}

// Minute is one minute of the throughput chart.
type Minute struct {
	Start                          time.Time
	Tracked, ItemFailed            int
	Sent, SendFailed, SyncFailures int
}

// LastHour returns the last 60 minutes up to now, oldest first.
func (r *Recorder) LastHour(now time.Time) []Minute {
	r.mu.Lock()
	defer r.mu.Unlock()
	current := now.Unix() / 60
	out := make([]Minute, recorderMinutes)
	for i := range out {
		minute := current - int64(recorderMinutes-1-i)
		out[i].Start = time.Unix(minute*60, 0)
		if b := r.buckets[((minute%recorderMinutes)+recorderMinutes)%recorderMinutes]; b.minute == minute {
			out[i].Tracked, out[i].ItemFailed = b.tracked, b.itemFailed
			out[i].Sent, out[i].SendFailed, out[i].SyncFailures = b.sent, b.sendFailed, b.syncErrors
		}
	}
	return out
}
