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
	Max           int // the value of the top of the scale
	Label         string
	Empty         bool
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
