package serversync

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// NewID returns a new random identifier that sorts by creation time (48-bit Unix
// milliseconds, then 80 random bits, as in UUIDv7), so stores append to their indexes
// instead of scattering inserts.
func NewID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never returns an error since Go 1.24
	return hex.EncodeToString(b[:])
}
