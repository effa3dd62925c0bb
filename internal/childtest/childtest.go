// Package childtest helps tests that run their own test binary again as a child
// process (to SIGKILL it, or to run several Syncer processes).
package childtest

import (
	"bytes"
	"io"
	"os"
	"sync"
)

// Output returns where a child's stdout and stderr should go: the parent's stderr,
// each line prefixed with name. The child's own "coverage: …" line, printed under
// go test -cover, is dropped: go test would report it as the parent's coverage.
func Output(name string) io.Writer {
	return &lineWriter{w: os.Stderr, prefix: name + ": "}
}

// lineWriter writes whole lines, prefixed; a last line without its newline waits
// for the rest.
type lineWriter struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  string
	partial []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	var out []byte
	for {
		line, rest, found := bytes.Cut(l.partial, []byte("\n"))
		if !found {
			break
		}
		if !bytes.HasPrefix(line, []byte("coverage: ")) {
			out = append(append(append(out, l.prefix...), line...), '\n')
		}
		l.partial = rest
	}
	l.partial = bytes.Clone(l.partial) // don't pin the caller's buffer
	if _, err := l.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}
