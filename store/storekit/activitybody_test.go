package storekit_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
	"github.com/serversync/serversync/store/storetest"
)

// An activity split into its JSON and its body comes back whole, nil and empty
// raw bytes and attachment contents told apart, small bodies stored plain and
// large ones compressed.
func TestActivityBodyRoundTrips(t *testing.T) {
	t.Parallel()
	random := make([]byte, 50_000) // as compressed formats are: kept as they are
	_, _ = rand.NewChaCha8([32]byte{1}).Read(random)
	large := storetest.FullActivity("mb", "key")
	large.TextBody = strings.Repeat("the quarterly report shows growth ", 400)
	large.HTMLBody = "<p>" + large.TextBody + "</p>"
	large.Raw = []byte("From: a@example.test\r\n\r\n" + large.TextBody)
	large.Attachments = []serversync.Attachment{
		{Filename: "a.bin", Content: bytes.Repeat([]byte{1, 2, 3}, 10_000), Size: 30_000},
		{Filename: "empty.txt", Content: []byte{}},
		{Filename: "omitted.pdf", Omitted: true, Size: 1 << 20},
		{Filename: "random.pdf", Content: random, Size: int64(len(random))},
		{Filename: "nil.txt"},
	}
	small := storetest.FullActivity("mb", "small")
	small.TextBody, small.HTMLBody, small.Raw, small.Attachments = "hi", "", nil, nil
	emptyRaw := storetest.FullActivity("mb", "empty-raw")
	emptyRaw.Raw = []byte{}

	for name, a := range map[string]*serversync.EmailActivity{"large": large, "small": small, "empty raw": emptyRaw} {
		t.Run(name, func(t *testing.T) {
			data, body, err := storekit.EncodeActivity(a)
			require.NoError(t, err)
			assert.NotContains(t, string(data), "quarterly", "the bodies are not in the JSON")
			if name == "large" {
				assert.Less(t, len(body), len(a.TextBody)/4+len(random)+100,
					"the text is compressed, the random attachment kept as it is")
				assert.True(t, bytes.Contains(body, random), "the random attachment is stored as it is")
			}
			got, err := storekit.DecodeActivity(data, body)
			require.NoError(t, err)
			assertSameActivity(t, a, got)
		})
	}
}

// EncodeActivityTo writes each body over the last one's storage when it fits, and
// every body still reads back whole: plain and compressed, with and without a tail.
func TestEncodeActivityToReusesTheBuffer(t *testing.T) {
	t.Parallel()
	random := make([]byte, 20_000)
	_, _ = rand.NewChaCha8([32]byte{3}).Read(random)
	big := storetest.FullActivity("mb", "big")
	big.TextBody = strings.Repeat("a long text that compresses ", 1000)
	big.Attachments = []serversync.Attachment{{Filename: "r.bin", Content: random}}
	small := storetest.FullActivity("mb", "small")
	small.TextBody, small.HTMLBody, small.Raw, small.Attachments = "hi", "", nil, nil
	medium := storetest.FullActivity("mb", "medium")
	medium.TextBody = strings.Repeat("medium ", 200)

	var buf []byte
	for _, a := range []*serversync.EmailActivity{big, small, medium, big} {
		data, body, err := storekit.EncodeActivityTo(buf, a)
		require.NoError(t, err)
		if cap(buf) >= len(body) {
			assert.Same(t, &buf[:1][0], &body[0], "%s: written over the buffer", a.MessageKey)
		}
		got, err := storekit.DecodeActivity(data, body)
		require.NoError(t, err)
		assertSameActivity(t, a, got)
		buf = body
	}
}

// Bodies were compressed with zstd before S2 replaced it: those rows still read.
func TestZstdBodiesStillRead(t *testing.T) {
	t.Parallel()
	a := storetest.FullActivity("mb", "zstd")
	a.TextBody = strings.Repeat("written before S2 ", 300)
	random := make([]byte, 8_000)
	_, _ = rand.NewChaCha8([32]byte{2}).Read(random)
	a.Attachments = []serversync.Attachment{{Filename: "r.bin", Content: random}, {Filename: "t.txt", Content: []byte(a.TextBody)}}
	data, body, err := storekit.EncodeActivity(a)
	require.NoError(t, err)
	require.Equal(t, byte('s'), body[0], "compressed with S2")

	// The same body as zstd wrote it: its kind, the uncompressed tail, a zstd frame.
	tailLen, k := binary.Uvarint(body[1:])
	head := 1 + k + int(tailLen)
	payload, err := s2.Decode(nil, body[head:])
	require.NoError(t, err)
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	old := append([]byte{'z'}, body[1:head]...)
	old = enc.EncodeAll(payload, old)
	require.NoError(t, enc.Close())

	got, err := storekit.DecodeActivity(data, old)
	require.NoError(t, err)
	assertSameActivity(t, a, got)
	_, err = storekit.DecodeActivity(data, old[:len(old)-3])
	assert.ErrorIs(t, err, storekit.ErrBadActivityBody, "a zstd frame cut short")
}

// A row written before bodies were split out holds the whole activity as JSON and
// no body: it still reads whole.
func TestActivityWithoutBodyReadsAsWholeJSON(t *testing.T) {
	t.Parallel()
	a := storetest.FullActivity("mb", "old")
	a.Raw = []byte("raw bytes")
	a.Attachments = []serversync.Attachment{{Filename: "x", Content: []byte("content")}}
	old, err := json.Marshal(a)
	require.NoError(t, err)
	got, err := storekit.DecodeActivity(old, nil)
	require.NoError(t, err)
	assertSameActivity(t, a, got)
}

// A corrupt body is an error, never a panic or an activity with wrong bodies.
func TestCorruptActivityBodyIsRefused(t *testing.T) {
	t.Parallel()
	a := storetest.FullActivity("mb", "k")
	a.TextBody = strings.Repeat("text ", 500)
	a.Attachments = []serversync.Attachment{{Filename: "x", Content: []byte("content")}}
	data, body, err := storekit.EncodeActivity(a)
	require.NoError(t, err)
	_, plain, err := storekit.EncodeActivity(&serversync.EmailActivity{ID: "s", Attachments: a.Attachments})
	require.NoError(t, err)
	for name, bad := range map[string][]byte{
		"empty":        {},
		"unknown kind": append([]byte{'?'}, body[1:]...),
		"cut short":    body[:len(body)/2],
		"plain cut":    plain[:len(plain)-2],
		"trailing":     append(append([]byte{}, plain...), 0),
	} {
		_, err := storekit.DecodeActivity(data, bad)
		assert.ErrorIs(t, err, storekit.ErrBadActivityBody, name)
	}
	// A body whose attachment count disagrees with the JSON's.
	noAtt, _, err := storekit.EncodeActivity(&serversync.EmailActivity{ID: "s"})
	require.NoError(t, err)
	_, err = storekit.DecodeActivity(noAtt, plain)
	assert.ErrorIs(t, err, storekit.ErrBadActivityBody)
}

// assertSameActivity compares as JSON does (times by instant, not by *Location),
// then what JSON cannot show: nil against empty raw bytes and contents.
func assertSameActivity(t *testing.T, want, got *serversync.EmailActivity) {
	t.Helper()
	w, err := json.Marshal(want)
	require.NoError(t, err)
	g, err := json.Marshal(got)
	require.NoError(t, err)
	assert.JSONEq(t, string(w), string(g))
	assert.Equal(t, want.Raw == nil, got.Raw == nil, "Raw nil")
	require.Len(t, got.Attachments, len(want.Attachments))
	for i := range want.Attachments {
		assert.Equal(t, want.Attachments[i].Content == nil, got.Attachments[i].Content == nil, "attachment %d nil", i)
	}
}
