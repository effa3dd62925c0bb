package storekit_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
	"github.com/serversync/serversync/store/storetest"
)

// DecodeActivity reads bytes a database hands back: whatever they are, it returns
// an activity or ErrBadActivityBody-wrapped error, never panics; and an activity it
// returns encodes to a body that decodes to the same.
//
//	go test -run '^$' -fuzz FuzzDecodeActivity ./store/storekit/
func FuzzDecodeActivity(f *testing.F) {
	data, _, err := storekit.EncodeActivity(&serversync.EmailActivity{ID: "a", Attachments: []serversync.Attachment{{Filename: "x"}}})
	if err != nil {
		f.Fatal(err)
	}
	a := storetest.FullActivity("mb", "k")
	a.TextBody = strings.Repeat("seed text ", 100)
	a.Raw = []byte("From: a@example.test\r\n\r\nbody")
	a.Attachments = []serversync.Attachment{{Filename: "x", Content: []byte(strings.Repeat("z", 600))}}
	_, compressed, err := storekit.EncodeActivity(a)
	if err != nil {
		f.Fatal(err)
	}
	_, plain, err := storekit.EncodeActivity(&serversync.EmailActivity{ID: "a", TextBody: "hi", Attachments: []serversync.Attachment{{Filename: "x"}}})
	if err != nil {
		f.Fatal(err)
	}
	for _, body := range [][]byte{compressed, plain, {'s', 0}, {'z', 0}, {'p'}} {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 1 && body[0] == 's' {
			// A body may claim up to 2 GiB decoded, which the decoder then
			// allocates; the fuzzer's memory is not for that.
			if n, k := binary.Uvarint(body[1:]); k > 0 && n <= uint64(len(body)-1-k) {
				if size, err := s2.DecodedLen(body[1+k+int(n):]); err == nil && size > 16<<20 {
					t.Skip()
				}
			}
		}
		got, err := storekit.DecodeActivity(data, body)
		if err != nil {
			return
		}
		_, again, err := storekit.EncodeActivity(got)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := storekit.DecodeActivity(data, again); err != nil {
			t.Fatalf("re-encoded body does not decode: %v", err)
		}
	})
}
