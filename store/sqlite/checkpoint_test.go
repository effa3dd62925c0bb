package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
)

// The writer checkpoints only at its backstop; below it, the log reaches the
// database through the background checkpointer, without the writer waiting.
func TestLogIsCopiedInTheBackground(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "checkpoint.db")
	s := openStoreAt(t, path, nil)

	var backstop int
	require.NoError(t, s.writer.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&backstop))
	assert.Equal(t, walCheckpointBackstop, backstop)

	before := fileSize(t, path)
	var firstID string
	// ~3,000 pages of bodies S2 cannot shrink: past walCheckpointPages, short of
	// the backstop, so only the background checkpointer copies them.
	rnd := rand.New(rand.NewPCG(1, 2))
	for batch := range 6 {
		var activities []*serversync.EmailActivity
		for i := range 20 {
			content := randomBytes(rnd, 100_000)
			activities = append(activities, &serversync.EmailActivity{
				ID: serversync.NewID(), MailboxID: "mb", MessageKey: fmt.Sprintf("key-%d-%d", batch, i),
				Direction:   serversync.Incoming,
				Attachments: []serversync.Attachment{{Filename: "data.bin", Size: int64(len(content)), Content: content}},
			})
		}
		if batch == 0 {
			firstID = activities[0].ID
		}
		res, err := s.SaveTracked(ctx, nil, activities)
		require.NoError(t, err)
		require.Equal(t, 20, res.Inserted)
	}
	assert.Eventually(t, func() bool { return fileSize(t, path)-before > int64(walCheckpointPages*4096/2) }, 10*time.Second,
		5*time.Millisecond, "the database file holds what was checkpointed")

	got, err := s.GetActivity(ctx, firstID)
	require.NoError(t, err)
	assert.Len(t, got.Attachments[0].Content, 100_000)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}

// SaveTracked keeps its body buffer for the next batch, unless a large message
// grew it, and what one batch stored is intact after the next reused the buffer.
func TestSaveTrackedKeepsItsBodyBuffer(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, nil)
	rnd := rand.New(rand.NewPCG(3, 4))
	save := func(size int) *serversync.EmailActivity {
		content := randomBytes(rnd, size)
		a := &serversync.EmailActivity{
			ID: serversync.NewID(), MailboxID: "mb", MessageKey: serversync.NewID(), Direction: serversync.Incoming,
			Attachments: []serversync.Attachment{{Filename: "data.bin", Size: int64(size), Content: content}},
		}
		_, err := s.SaveTracked(ctx, nil, []*serversync.EmailActivity{a})
		require.NoError(t, err)
		return a
	}
	first := save(10_000)
	kept := s.bodyBuffer.Load()
	require.NotNil(t, kept, "a small batch's buffer is kept")
	second := save(20_000)
	for _, want := range []*serversync.EmailActivity{first, second} {
		got, err := s.GetActivity(ctx, want.ID)
		require.NoError(t, err)
		assert.Equal(t, want.Attachments[0].Content, got.Attachments[0].Content)
	}
	save(maxKeptBodyBuffer + 1)
	assert.Nil(t, s.bodyBuffer.Load(), "a buffer grown past maxKeptBodyBuffer is let go")
}

// randomBytes returns n bytes S2 cannot shrink.
func randomBytes(rnd *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rnd.Uint32())
	}
	return b
}
