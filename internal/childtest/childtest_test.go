package childtest

import (
	"bytes"
	"testing"
)

func TestPrefixesLinesAndDropsCoverage(t *testing.T) {
	var out bytes.Buffer
	w := &lineWriter{w: &out, prefix: "child: "}
	for _, chunk := range []string{"one\ntw", "o\n", "\ncoverage: 6.9% of statements\nthree\n", "unfinished"} {
		n, err := w.Write([]byte(chunk))
		if err != nil || n != len(chunk) {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	if want := "child: one\nchild: two\nchild: \nchild: three\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}
