package tzwin

import (
	"testing"
	"time"
)

// Every IANA name of the table loads, and every Windows name maps back to itself.
func TestTableLoadsAndRoundTrips(t *testing.T) {
	for win, iana := range windowsToIANA {
		if _, err := time.LoadLocation(iana); err != nil {
			t.Errorf("%s → %s: %v", win, iana, err)
		}
		if back, ok := Windows(iana); !ok || back != win {
			t.Errorf("%s → %s → %q", win, iana, back)
		}
	}
	for iana, win := range aliases {
		if _, err := time.LoadLocation(iana); err != nil {
			t.Errorf("alias %s: %v", iana, err)
		}
		if _, ok := windowsToIANA[win]; !ok {
			t.Errorf("alias %s names %q, not in the table", iana, win)
		}
	}
}

// A Windows zone read back keeps its DST rules: Berlin's spring-forward is an
// hour shorter, New York's a week earlier.
func TestLocationAcrossDST(t *testing.T) {
	cases := []struct {
		name       string
		before, at time.Time // local wall times, before and after the change
		offsets    [2]int
	}{
		{"W. Europe Standard Time", time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), time.Date(2026, 3, 29, 4, 0, 0, 0, time.UTC), [2]int{3600, 7200}},
		{"Eastern Standard Time", time.Date(2026, 3, 8, 1, 0, 0, 0, time.UTC), time.Date(2026, 3, 8, 4, 0, 0, 0, time.UTC), [2]int{-5 * 3600, -4 * 3600}},
		{"AUS Eastern Standard Time", time.Date(2026, 4, 5, 1, 0, 0, 0, time.UTC), time.Date(2026, 4, 5, 4, 0, 0, 0, time.UTC), [2]int{11 * 3600, 10 * 3600}},
	}
	for _, c := range cases {
		loc, iana, ok := Location(c.name)
		if !ok || iana == "" {
			t.Fatalf("%s: not loaded", c.name)
		}
		for i, wall := range []time.Time{c.before, c.at} {
			local := time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), 0, 0, 0, loc)
			if _, off := local.Zone(); off != c.offsets[i] {
				t.Errorf("%s (%s) at %v: offset %d, want %d", c.name, iana, wall, off, c.offsets[i])
			}
		}
	}
}

func TestLocationNames(t *testing.T) {
	for _, name := range []string{"", "UTC", "Etc/UTC", "tzone://Microsoft/Utc"} {
		if loc, iana, ok := Location(name); !ok || loc != time.UTC || iana != "" {
			t.Errorf("%q: %v %q %v", name, loc, iana, ok)
		}
	}
	if _, iana, ok := Location("europe/berlin"); ok {
		t.Errorf("a misspelt IANA name loaded as %q", iana)
	}
	if _, iana, ok := Location("Europe/Berlin"); !ok || iana != "Europe/Berlin" {
		t.Errorf("IANA name: %q %v", iana, ok)
	}
	if _, iana, ok := Location("w. europe standard time"); !ok || iana != "Europe/Berlin" {
		t.Errorf("Windows name in another case: %q %v", iana, ok)
	}
	if _, _, ok := Location("Mars Standard Time"); ok {
		t.Error("an unknown name loaded")
	}
	if win, ok := Windows("Europe/Vienna"); !ok || win != "W. Europe Standard Time" {
		t.Errorf("alias: %q", win)
	}
}
