package monitor

import (
	"fmt"
	"time"
)

// chart is a bar chart drawn by the template as SVG: rectangles whose sizes the
// server computed, so the page needs no script to draw it.
type chart struct {
	Width, Height int
	Bars          []bar
	Labels        []label
	Max           int // the value of the top of the scale
	Label         string
	Empty         bool
}

type label struct {
	X, Y int
	Text string
}

type bar struct {
	X, Y, W, H int
	Class      string // tracked, sent, failed
	Title      string
}

const (
	chartWidth  = 600
	chartHeight = 120
)

// throughputChart stacks, per minute, tracked and sent mail, with failures on top.
func throughputChart(minutes []Minute) chart {
	c := chart{Width: chartWidth, Height: chartHeight, Label: "Mail tracked, sent and failed per minute, last hour"}
	peak := 0
	for _, m := range minutes {
		peak = max(peak, m.Tracked+m.Sent+m.ItemFailed+m.SendFailed+m.SyncFailures)
	}
	c.Empty = peak == 0
	c.Max = max(peak, 1)
	if len(minutes) == 0 {
		return c
	}
	slot := chartWidth / len(minutes)
	for i, m := range minutes {
		y := chartHeight
		for _, part := range []struct {
			n     int
			class string
			what  string
		}{
			{m.Tracked, "tracked", "tracked"}, {m.Sent, "sent", "sent"},
			{m.ItemFailed + m.SendFailed + m.SyncFailures, "failed", "failed"},
		} {
			if part.n == 0 {
				continue
			}
			h := max(part.n*chartHeight/c.Max, 1)
			y -= h
			c.Bars = append(c.Bars, bar{X: i * slot, Y: y, W: max(slot-1, 1), H: h, Class: part.class,
				Title: fmt.Sprintf("%s: %d %s", m.Start.Format(time.TimeOnly), part.n, part.what)})
		}
	}
	return c
}

// durationBuckets are the latency chart's columns: how long mailboxes' last sync took.
var durationBuckets = []struct {
	upTo  time.Duration
	label string
}{
	{time.Second, "< 1 s"}, {5 * time.Second, "1–5 s"}, {30 * time.Second, "5–30 s"},
	{2 * time.Minute, "30 s–2 min"}, {10 * time.Minute, "2–10 min"}, {1<<63 - 1, "≥ 10 min"},
}

// bucketOf is the latency chart column of d.
func bucketOf(d time.Duration) int {
	for i, b := range durationBuckets {
		if d < b.upTo {
			return i
		}
	}
	return len(durationBuckets) - 1
}

// latencyChart draws how many mailboxes' last sync took how long.
func latencyChart(counts []int) chart {
	c := chart{Width: chartWidth, Height: chartHeight + 20, Label: "Mailboxes by the duration of their last sync"}
	peak := 0
	for _, n := range counts {
		peak = max(peak, n)
	}
	c.Empty, c.Max = peak == 0, max(peak, 1)
	slot := chartWidth / len(durationBuckets)
	for i, n := range counts {
		b := durationBuckets[i]
		c.Labels = append(c.Labels, label{X: i*slot + slot/2, Y: chartHeight + 15, Text: b.label})
		if n == 0 {
			continue
		}
		h := max(n*(chartHeight-15)/c.Max, 1)
		c.Bars = append(c.Bars, bar{X: i*slot + 10, Y: chartHeight - h, W: slot - 20, H: h, Class: "latency",
			Title: fmt.Sprintf("%s: %d %s", b.label, n, plural(n, "mailbox", "mailboxes"))})
		c.Labels = append(c.Labels, label{X: i*slot + slot/2, Y: chartHeight - h - 3, Text: fmt.Sprint(n)})
	}
	return c
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
