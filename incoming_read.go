package serversync

import (
	"io"
	"math/bits"
	"slices"
	"sync"
)

// sizeHintMax bounds what readSized allocates on a server's word alone: a server
// claiming huge sizes for small messages costs no more than this per message.
const sizeHintMax = 4 << 20

// readSized reads r to its end, at most limit bytes, into a buffer sized from
// the size the server announced (IMAP's RFC822.SIZE, POP3's LIST): one allocation
// of the message's size where io.ReadAll, growing as it goes, allocates about
// twice it, which was half of all the pipeline allocated (bench/syncerpipeline).
// The buffer comes from rawBuffers when one of its size classes fits; buffer is
// then that pooled buffer, which recycleRaw gives back once nothing refers to
// raw any more.
func readSized(r io.Reader, sizeHint, limit int64) (raw []byte, buffer *[]byte, err error) {
	// One byte more than announced, so the end is read without growing.
	want := int(min(max(sizeHint, 0), limit, sizeHintMax) + 1)
	buffer = getRawBuffer(want)
	if buffer != nil {
		raw = (*buffer)[:0]
	} else {
		raw = make([]byte, 0, want)
	}
	r = io.LimitReader(r, limit)
	for {
		if len(raw) == cap(raw) {
			raw = slices.Grow(raw, max(len(raw), 512))
			if buffer != nil { // raw moved out of it: it can go back now
				putRawBuffer(buffer)
				buffer = nil
			}
		}
		n, err := r.Read(raw[len(raw):cap(raw)])
		raw = raw[:len(raw)+n]
		if err == io.EOF {
			return raw, buffer, nil
		} else if err != nil {
			return raw, buffer, err
		}
	}
}

// rawBuffers recycles the buffers messages are read into, one pool per power of
// two from 2^rawClassMin to 2^rawClassMax bytes: most messages are parsed into
// fresh strings and not kept raw, so their buffer is free again once they are
// prepared. Recycling them took a quarter of the allocations off the incoming
// pipeline (README, "Measured"); larger messages are rare and get a buffer of
// their own.
var rawBuffers [rawClassMax - rawClassMin + 1]sync.Pool

const (
	rawClassMin = 12 // 4 KiB
	rawClassMax = 20 // 1 MiB
)

// rawClass returns the size class of a buffer for n bytes, and whether there is one.
func rawClass(n int) (int, bool) {
	class := max(bits.Len(uint(n-1)), rawClassMin)
	return class, class <= rawClassMax
}

// getRawBuffer returns an empty pooled buffer with room for n bytes, or nil when n
// is over the largest class.
func getRawBuffer(n int) *[]byte {
	class, ok := rawClass(n)
	if !ok {
		return nil
	}
	if b, ok := rawBuffers[class-rawClassMin].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 1<<class)
	return &b
}

// putRawBuffer gives a buffer from getRawBuffer back; nothing may refer to its
// bytes any more.
func putRawBuffer(b *[]byte) {
	class, ok := rawClass(cap(*b))
	if ok && cap(*b) == 1<<class {
		*b = (*b)[:0]
		rawBuffers[class-rawClassMin].Put(b)
	}
}
