package serversync

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A message is read whole and only up to the limit, whatever size the server
// announced for it: right, too small, too large, none, or absurd.
func TestReadSizedWhateverTheServerAnnounced(t *testing.T) {
	t.Parallel()
	msg := bytes.Repeat([]byte("0123456789"), 3000)
	for _, hint := range []int64{int64(len(msg)), 10, int64(len(msg)) * 3, 0, -1, 1 << 40} {
		got, _, err := readSized(iotest.HalfReader(bytes.NewReader(msg)), hint, 1<<20)
		require.NoError(t, err, hint)
		assert.Equal(t, msg, got, "hint %d", hint)
		assert.LessOrEqual(t, cap(got), 2*max(len(msg), sizeHintMax+1), "hint %d", hint)
	}
	got, _, err := readSized(bytes.NewReader(msg), int64(len(msg)), 1001)
	require.NoError(t, err)
	assert.Equal(t, msg[:1001], got, "cut at the limit")

	exact, buffer, err := readSized(bytes.NewReader(msg), int64(len(msg)), 1<<20)
	require.NoError(t, err)
	require.NotNil(t, buffer, "a 30 KB message is read into a pooled buffer")
	assert.Equal(t, 32<<10, cap(exact), "of the size class that holds it: no growing")
	putRawBuffer(buffer)

	boom := errors.New("connection reset")
	got, _, err = readSized(io.MultiReader(bytes.NewReader(msg[:100]), iotest.ErrReader(boom)), 200, 1<<20)
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, msg[:100], got)
}

// Recycled buffers come back for messages of their size class, empty; buffers
// for messages over the largest class, or grown out of their class, are not kept.
func TestRawBuffersAreRecycledBySizeClass(t *testing.T) {
	for n, class := range map[int]int{1: 12, 4096: 12, 4097: 13, 30_000: 15, 1 << 20: 20} {
		got, ok := rawClass(n)
		assert.True(t, ok, n)
		assert.Equal(t, class, got, n)
	}
	_, ok := rawClass(1<<20 + 1)
	assert.False(t, ok, "over the largest class")
	assert.Nil(t, getRawBuffer(2<<20))

	// A message read whole into its class's buffer, given back, read again.
	msg := bytes.Repeat([]byte("x"), 10_000)
	allocs := testing.AllocsPerRun(100, func() {
		raw, buffer, err := readSized(bytes.NewReader(msg), int64(len(msg)), 1<<20)
		if err != nil || !bytes.Equal(raw, msg) || buffer == nil {
			t.Fatal("not read whole into a pooled buffer")
		}
		putRawBuffer(buffer)
	})
	assert.Less(t, allocs, 5.0, "the buffer is reused (the readers allocate a little)")

	// Announced too small: the message grows out of its buffer, which goes back.
	raw, buffer, err := readSized(bytes.NewReader(msg), 100, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, msg, raw)
	assert.Nil(t, buffer, "raw is not in a pooled buffer any more")

	grown := make([]byte, 0, 5000) // not a class size: not kept
	putRawBuffer(&grown)
	b := getRawBuffer(5000)
	assert.Equal(t, 8192, cap(*b))
	assert.Empty(t, *b)
}
