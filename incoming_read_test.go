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
		got, err := readSized(iotest.HalfReader(bytes.NewReader(msg)), hint, 1<<20)
		require.NoError(t, err, hint)
		assert.Equal(t, msg, got, "hint %d", hint)
		assert.LessOrEqual(t, cap(got), max(2*len(msg), sizeHintMax+1), "hint %d", hint)
	}
	got, err := readSized(bytes.NewReader(msg), int64(len(msg)), 1001)
	require.NoError(t, err)
	assert.Equal(t, msg[:1001], got, "cut at the limit")

	exact, err := readSized(bytes.NewReader(msg), int64(len(msg)), 1<<20)
	require.NoError(t, err)
	assert.Equal(t, len(msg)+1, cap(exact), "an announced size that is right takes one allocation")

	boom := errors.New("connection reset")
	got, err = readSized(io.MultiReader(bytes.NewReader(msg[:100]), iotest.ErrReader(boom)), 200, 1<<20)
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, msg[:100], got)
}
