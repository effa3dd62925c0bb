package serversync_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/serversync/serversync"
)

func TestACTItemsReportTheirKindAndHeader(t *testing.T) {
	items := []serversync.ACTItem{&serversync.Appointment{}, &serversync.Contact{}, &serversync.Task{}}
	for i, it := range items {
		if it.ACTKind() != serversync.ACTKinds[i] {
			t.Errorf("item %d: kind %q, want %q", i, it.ACTKind(), serversync.ACTKinds[i])
		}
		it.Header().ServerID = "x"
		if it.Header().ServerID != "x" {
			t.Errorf("item %d: Header does not point into the item", i)
		}
	}
}

func TestACTConflictErrorMatchesSentinel(t *testing.T) {
	cause := errors.New("412 Precondition Failed")
	err := fmt.Errorf("put: %w", &serversync.ACTConflictError{Kind: serversync.KindTask, ServerID: "/t/1.ics", IfMatch: `"a"`, Err: cause})
	if !errors.Is(err, serversync.ErrACTConflict) || !errors.Is(err, cause) {
		t.Fatalf("%v does not match ErrACTConflict and its cause", err)
	}
	if errors.Is(errors.New("other"), serversync.ErrACTConflict) {
		t.Fatal("an unrelated error matches ErrACTConflict")
	}
}
