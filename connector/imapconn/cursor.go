package imapconn

import (
	"encoding/json"
	"fmt"
)

// cursorVersion is the version of the cursor format; a cursor of another version
// is refused rather than misread.
const cursorVersion = 1

// cursor is the position in one folder that Fetch hands out and resumes from,
// encoded as compact JSON, e.g. {"v":1,"uidvalidity":1712345678,"uid":4711,"modseq":90210}.
type cursor struct {
	V           int    `json:"v"`
	UIDValidity uint32 `json:"uidvalidity"`
	// UID is the highest UID already offered (or skipped): Fetch resumes after it.
	UID uint32 `json:"uid"`
	// ModSeq is the folder's HIGHESTMODSEQ when it was selected (CONDSTORE), or 0.
	ModSeq uint64 `json:"modseq,omitempty"`
}

func decodeCursor(b []byte) (*cursor, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("imap: cursor is not one of this connector's: %w", err)
	}
	if c.V != cursorVersion {
		return nil, fmt.Errorf("imap: cursor version %d is not supported (want %d)", c.V, cursorVersion)
	}
	return &c, nil
}

func (c cursor) encode() []byte {
	c.V = cursorVersion
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // unreachable: only numbers
	}
	return b
}
