package storekit

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/serversync/serversync"
)

// An activity is stored as two values: its fields as JSON without the bulky ones,
// and a body holding TextBody, HTMLBody, Raw and each attachment's Content as
// bytes. The bulky fields are most of what a store writes: as JSON, text and HTML
// are escaped and attachments and Raw grow by a third in base64, and
// encoding/json spends most of its time on them; in the body they are copied as
// they are and compressed with S2.
//
// A body starts with one byte saying how it is written:
//
//	bodyPlain: the payload as it is (small bodies, where compressing costs more than it saves)
//	bodyS2:    a uvarint length, the contents not worth compressing, as they are,
//	           that long in all, then the payload compressed as one S2 block
//	bodyZstd:  the same with a zstd frame instead of the S2 block, as bodies were
//	           written before S2 replaced zstd; still read
//
// The payload's sections, in order: TextBody, HTMLBody, Raw, the number of
// attachments, then each attachment's Content. Each is a uvarint length and the
// bytes; for Raw and Content, whose nil and empty differ, the length is stored plus
// one and 0 is nil. An attachment's length is stored doubled, its low bit set when
// its bytes are not in the payload but next in the uncompressed tail: most
// attachments (PDF, images, archives) are compressed already, and compressing them
// again spends time finding nothing.
//
// Why S2 and not zstd (both from github.com/klauspost/compress):
// BenchmarkEncodeActivity on the benchmark corpus encodes at ~690 MB/s with S2
// against ~360 MB/s with zstd's fastest level, for bodies of 40% of the messages'
// size against 36%; in the incoming pipeline zstd was the largest single cost
// after SQLite itself (README, "Measured"). S2 also holds no encoder state between
// calls, where zstd's encoder kept its tables and history for the process's life.
const (
	bodyPlain byte = 'p'
	bodyS2    byte = 's'
	bodyZstd  byte = 'z'
)

// bodyCompressFrom is the smallest payload worth compressing: below it the
// block's overhead and the call cost more than the bytes saved.
const bodyCompressFrom = 512

// maxBodySections bounds the attachments a stored body may claim, so a corrupt
// count cannot make the decoder allocate without end.
const maxBodySections = 1 << 20

// maxDecodedBody bounds what a stored body may claim to decompress to, so a
// corrupt length cannot make the decoder allocate without end.
const maxDecodedBody = 1 << 31

var (
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(maxDecodedBody),
		)
		if err != nil {
			panic(err) // only for invalid options, which these are not
		}
		return d
	})
	// scratchPool holds the payload and the compressed block while a body is
	// encoded: the body itself is then one allocation of the stored size.
	scratchPool = sync.Pool{New: func() any { return new(encodeScratch) }}
)

type encodeScratch struct{ payload, block []byte }

// maxPooledScratch is the most scratchPool keeps for one encoding: a few large
// messages' worth.
const maxPooledScratch = 4 << 20

// ErrBadActivityBody is returned by DecodeActivity for a body it cannot read.
var ErrBadActivityBody = errors.New("storekit: stored activity body is corrupt")

// EncodeActivity splits a for storing: data is a's JSON without TextBody,
// HTMLBody, Raw and attachment contents, body holds those (compressed when that
// pays). DecodeActivity puts them back together. A store keeps the two side by side
// (two columns of a row); data alone decodes to the activity without its bodies.
func EncodeActivity(a *serversync.EmailActivity) (data, body []byte, err error) {
	return EncodeActivityTo(nil, a)
}

// EncodeActivityTo is EncodeActivity with the body written over dst's storage
// when it has room: a store inserting a batch reuses one buffer from row to row
// once each row is written (the drivers copy what they bind), which took a fifth
// of the incoming pipeline's allocations off it.
func EncodeActivityTo(dst []byte, a *serversync.EmailActivity) (data, body []byte, err error) {
	meta := *a
	meta.TextBody, meta.HTMLBody, meta.Raw = "", "", nil
	if len(a.Attachments) > 0 {
		meta.Attachments = make([]serversync.Attachment, len(a.Attachments))
		for i, att := range a.Attachments {
			att.Content = nil
			meta.Attachments[i] = att
		}
	}
	if data, err = json.Marshal(&meta); err != nil {
		return nil, nil, fmt.Errorf("storekit: encode activity %s: %w", a.ID, err)
	}

	scratch := scratchPool.Get().(*encodeScratch)
	defer func() {
		// A very large body's buffers are not kept: they would hold its size in
		// memory for every body after it.
		if cap(scratch.payload)+cap(scratch.block) <= maxPooledScratch {
			scratchPool.Put(scratch)
		}
	}()
	p := scratch.payload[:0]
	p = appendText(p, a.TextBody)
	p = appendText(p, a.HTMLBody)
	p = appendSection(p, a.Raw, true)
	p = binary.AppendUvarint(p, uint64(len(a.Attachments)))
	tail := 0 // bytes of attachments left out of the payload
	compress := len(p) >= bodyCompressFrom
	for _, att := range a.Attachments {
		compress = compress || len(att.Content) >= bodyCompressFrom
	}
	var inTail []bool
	if compress && len(a.Attachments) > 0 {
		inTail = make([]bool, len(a.Attachments))
	}
	for i, att := range a.Attachments {
		if compress && len(att.Content) >= incompressibleProbe && !worthCompressing(att.Content) {
			p = binary.AppendUvarint(p, uint64(len(att.Content)+1)<<1|1)
			tail += len(att.Content)
			inTail[i] = true
			continue
		}
		p = appendContent(p, att.Content)
	}
	scratch.payload = p
	if !compress {
		return data, append(append(dst[:0], bodyPlain), p...), nil
	}
	bound := s2.MaxEncodedLen(len(p))
	if bound < 0 {
		return nil, nil, fmt.Errorf("storekit: encode activity %s: body of %d bytes is too large", a.ID, len(p))
	}
	if cap(scratch.block) < bound {
		scratch.block = make([]byte, bound)
	}
	block := s2.Encode(scratch.block[:bound], p)
	body = slices.Grow(dst[:0], 1+binary.MaxVarintLen64+tail+len(block))
	body = append(body, bodyS2)
	body = binary.AppendUvarint(body, uint64(tail))
	for i, att := range a.Attachments {
		if inTail[i] {
			body = append(body, att.Content...)
		}
	}
	return data, append(body, block...), nil
}

// appendContent appends an attachment's content to the payload: its length (plus
// one, 0 for nil) doubled, low bit clear, then the bytes.
func appendContent(p, b []byte) []byte {
	if b == nil {
		return binary.AppendUvarint(p, 0)
	}
	p = binary.AppendUvarint(p, uint64(len(b)+1)<<1)
	return append(p, b...)
}

// incompressibleProbe is how much of an attachment worthCompressing looks at, and
// the smallest attachment it is asked about.
const incompressibleProbe = 4096

// worthCompressing guesses from the byte frequencies of b's first
// incompressibleProbe bytes whether zstd would shrink it: compressed data
// (deflate streams, JPEG, ZIP, encrypted) uses every byte value about evenly, text
// and most uncompressed formats do not. It is the order-0 entropy, in bits per
// byte, against 7.5 of the 8 that random bytes reach.
func worthCompressing(b []byte) bool {
	var counts [256]int
	sample := b[:min(len(b), incompressibleProbe)]
	for _, c := range sample {
		counts[c]++
	}
	n := float64(len(sample))
	var bits float64
	for _, c := range counts {
		if c > 0 {
			f := float64(c) / n
			bits -= f * math.Log2(f)
		}
	}
	return bits < 7.5
}

func appendText(p []byte, s string) []byte {
	return append(binary.AppendUvarint(p, uint64(len(s))), s...)
}

func appendSection(p, b []byte, nilable bool) []byte {
	n := uint64(len(b))
	if nilable {
		if b == nil {
			return binary.AppendUvarint(p, 0)
		}
		n++
	}
	p = binary.AppendUvarint(p, n)
	return append(p, b...)
}

// DecodeActivity reads an activity stored by EncodeActivity. A nil body reads data
// as a whole activity: rows stored before bodies were split out, which hold every
// field in their JSON.
func DecodeActivity(data, body []byte) (*serversync.EmailActivity, error) {
	var a serversync.EmailActivity
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("storekit: decode activity: %w", err)
	}
	if body == nil {
		return &a, nil
	}
	if len(body) == 0 {
		return nil, ErrBadActivityBody
	}
	p, tail := body[1:], []byte(nil)
	switch body[0] {
	case bodyPlain:
	case bodyS2, bodyZstd:
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, ErrBadActivityBody
		}
		tail = p[k : k+int(n)]
		compressed := p[k+int(n):]
		var err error
		if body[0] == bodyZstd {
			p, err = zstdDecoder().DecodeAll(compressed, nil)
		} else {
			p, err = decodeS2(compressed)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadActivityBody, err)
		}
	default:
		return nil, ErrBadActivityBody
	}
	r := sectionReader{p: p}
	a.TextBody = string(r.next(false))
	a.HTMLBody = string(r.next(false))
	a.Raw = r.next(true)
	n := r.uvarint()
	if r.bad || n != uint64(len(a.Attachments)) || n > maxBodySections {
		return nil, ErrBadActivityBody
	}
	for i := range a.Attachments {
		code := r.uvarint()
		switch {
		case r.bad || code == 0: // nil
		case code&1 == 0:
			a.Attachments[i].Content = r.bytes(code>>1 - 1)
		default: // in the tail
			n := code>>1 - 1
			if n > uint64(len(tail)) {
				return nil, ErrBadActivityBody
			}
			a.Attachments[i].Content = tail[:n:n]
			tail = tail[n:]
		}
	}
	if r.bad || len(r.p) != 0 || len(tail) != 0 {
		return nil, ErrBadActivityBody
	}
	return &a, nil
}

// decodeS2 decompresses an S2 block into a buffer of the size it claims, if that
// is at most maxDecodedBody.
func decodeS2(block []byte) ([]byte, error) {
	n, err := s2.DecodedLen(block)
	if err != nil {
		return nil, err
	}
	if n > maxDecodedBody {
		return nil, fmt.Errorf("claims %d bytes", n)
	}
	return s2.Decode(make([]byte, n), block)
}

type sectionReader struct {
	p   []byte
	bad bool
}

func (r *sectionReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.p)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.p = r.p[n:]
	return v
}

// next returns the next section; its bytes share the decoded payload, which no
// one else holds.
func (r *sectionReader) next(nilable bool) []byte {
	n := r.uvarint()
	if r.bad {
		return nil
	}
	if nilable {
		if n == 0 {
			return nil
		}
		n--
	}
	return r.bytes(n)
}

// bytes returns the next n bytes.
func (r *sectionReader) bytes(n uint64) []byte {
	if r.bad || n > uint64(len(r.p)) {
		r.bad = true
		return nil
	}
	b := r.p[:n:n]
	r.p = r.p[n:]
	return b
}
