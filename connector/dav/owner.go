package dav

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/serversync/serversync"
)

// OwnerNamespace is the XML namespace of the dead property that marks the
// deployment owning a mailbox's ACT sync (serversync.ACTOwnerMarker): the
// property <owner xmlns="urn:serversync:act">, set by PROPPATCH on the
// mailbox's calendars and address book. Radicale and Xandikos keep dead
// properties, as RFC 4918 servers do.
const OwnerNamespace = "urn:serversync:act"

var _ serversync.ACTOwnerMarker = (*session)(nil)

// ownerCollections are the collection paths the session uses, each once.
func (s *session) ownerCollections() []string {
	var paths []string
	for _, kind := range serversync.ACTKinds {
		if col := s.cols[kind]; col != nil && !slices.Contains(paths, col.path) {
			paths = append(paths, col.path)
		}
	}
	return paths
}

// ACTOwner implements serversync.ACTOwnerMarker: the marker of the first
// collection (appointments, contacts, tasks) that carries one.
func (s *session) ACTOwner(ctx context.Context) (string, error) {
	for _, p := range s.ownerCollections() {
		ms, err := s.propfind(ctx, p, "0", `<O:owner xmlns:O="`+OwnerNamespace+`"/>`)
		if err != nil {
			return "", classify("owner", err)
		}
		for _, r := range ms.Responses {
			for _, pr := range r.okProps() {
				if pr.Owner != nil && strings.TrimSpace(*pr.Owner) != "" {
					return strings.TrimSpace(*pr.Owner), nil
				}
			}
		}
	}
	return "", nil
}

// SetACTOwner implements serversync.ACTOwnerMarker: every collection gets the
// marker. A server that keeps no dead properties (Xandikos answers 404 for a
// property it does not know) cannot carry it: the error then matches
// errors.ErrUnsupported, and the Syncer syncs without the marker.
func (s *session) SetACTOwner(ctx context.Context, owner string) error {
	body := `<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:O="` + OwnerNamespace + `">` +
		`<D:set><D:prop><O:owner>` + xmlEscape(owner) + `</O:owner></D:prop></D:set></D:propertyupdate>`
	for _, p := range s.ownerCollections() {
		ms, err := s.multistatus(ctx, "PROPPATCH", p, "", body)
		if err != nil {
			return classify("owner", err)
		}
		for _, r := range ms.Responses {
			for _, ps := range r.Propstats {
				c := statusCode(ps.Status)
				if c == http.StatusNotFound || c == http.StatusConflict {
					return fmt.Errorf("dav: %s keeps no property it does not know (%s): %w", p, ps.Status, errors.ErrUnsupported)
				}
				if c != 0 && c/100 != 2 {
					return classify("owner", &StatusError{Method: "PROPPATCH", Path: p, Code: c,
						Body: fmt.Sprintf("the server refused the owner marker (%s)", ps.Status)})
				}
			}
		}
	}
	return nil
}
