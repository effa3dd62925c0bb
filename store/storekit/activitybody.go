package storekit

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/serversync/serversync"
)

// An activity is stored as two values: its fields as JSON without the bulky ones,
// and a body holding TextBody, HTMLBody, Raw and each attachment's Content as
// bytes. The bulky fields are most of what a store writes: as JSON, text and HTML
// are escaped and attachments and Raw grow by a third in base64, and
// encoding/json spends most of its time on them; in the body they are copied as
// they are and compressed with zstd at its fastest level.
//
// A body starts with one byte saying how it is written:
//
//	bodyPlain: the sections as they are (small bodies, where compressing costs more than it saves)
//	bodyZstd:  the sections compressed as one zstd frame
//
// The sections, in order: TextBody, HTMLBody, Raw, the number of attachments, then
// each attachment's Content. Each is a uvarint length and the bytes; for Raw and
// Content, whose nil and empty differ, the length is stored plus one and 0 is nil.
const (
	bodyPlain byte = 'p'
	bodyZstd  byte = 'z'
)

// bodyCompressFrom is the smallest payload worth compressing: below it the zstd
// frame's overhead and the call cost more than the bytes saved.
const bodyCompressFrom = 512

// maxBodySections bounds the attachments a stored body may claim, so a corrupt
// count cannot make the decoder allocate without end.
const maxBodySections = 1 << 20

var (
	zstdEncoder, _ = zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		// Two encoders serve concurrent saves: each holds its tables (about 1 MB
		// with lower memory), and saves of one mailbox run one at a time anyway.
		zstd.WithEncoderConcurrency(2),
		zstd.WithLowerEncoderMem(true),
		zstd.WithWindowSize(1<<20),
		zstd.WithEncoderCRC(false), // the database checks its pages; a checksum per row is CPU for nothing
	)
	zstdDecoder, _ = zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(2),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(1<<31),
	)
	payloadPool = sync.Pool{New: func() any { return new([]byte) }}
)

// ErrBadActivityBody is returned by DecodeActivity for a body it cannot read.
var ErrBadActivityBody = errors.New("storekit: stored activity body is corrupt")

// EncodeActivity splits a for storing: data is a's JSON without TextBody,
// HTMLBody, Raw and attachment contents, body holds those (compressed when that
// pays). DecodeActivity puts them back together. A store keeps the two side by side
// (two columns of a row); data alone decodes to the activity without its bodies.
func EncodeActivity(a *serversync.EmailActivity) (data, body []byte, err error) {
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

	bufp := payloadPool.Get().(*[]byte)
	defer payloadPool.Put(bufp)
	p := (*bufp)[:0]
	p = appendSection(p, []byte(a.TextBody), false)
	p = appendSection(p, []byte(a.HTMLBody), false)
	p = appendSection(p, a.Raw, true)
	p = binary.AppendUvarint(p, uint64(len(a.Attachments)))
	for _, att := range a.Attachments {
		p = appendSection(p, att.Content, true)
	}
	*bufp = p
	if len(p) < bodyCompressFrom {
		return data, append([]byte{bodyPlain}, p...), nil
	}
	body = make([]byte, 1, 1+len(p)/2)
	body[0] = bodyZstd
	return data, zstdEncoder.EncodeAll(p, body), nil
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
	p := body[1:]
	switch body[0] {
	case bodyPlain:
	case bodyZstd:
		var err error
		if p, err = zstdDecoder.DecodeAll(p, nil); err != nil {
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
		a.Attachments[i].Content = r.next(true)
	}
	if r.bad || len(r.p) != 0 {
		return nil, ErrBadActivityBody
	}
	return &a, nil
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
	if n > uint64(len(r.p)) {
		r.bad = true
		return nil
	}
	b := r.p[:n:n]
	r.p = r.p[n:]
	return b
}
