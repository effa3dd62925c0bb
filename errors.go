package serversync

import (
	"errors"
	"fmt"
)

// Sentinel errors. Stores wrap them; check with errors.Is.
var (
	ErrNotFound         = errors.New("serversync: not found")
	ErrAlreadyExists    = errors.New("serversync: already exists")
	ErrProfileInUse     = errors.New("serversync: profile is used by mailboxes")
	ErrLeaseLost        = errors.New("serversync: lease lost")
	ErrPermissionDenied = errors.New("serversync: permission denied")
	// ErrClosed is what every Store returns from calls made after Close.
	ErrClosed = errors.New("serversync: store is closed")
)

// ValidationError says which field of which record is invalid and why. Nothing is
// saved when an operation returns it. Err, when set, is the underlying cause (for
// example ErrAlreadyExists for a duplicate name).
type ValidationError struct {
	Entity string // "Profile", "Mailbox", "OrgSettings", or "Config" for NewSyncer's
	Field  string // the Go field name, e.g. "MaxConcurrentConnections"
	Reason string // how to fix it
	Err    error
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("serversync: invalid %s.%s: %s", e.Entity, e.Field, e.Reason)
}

func (e *ValidationError) Unwrap() error { return e.Err }

func invalid(entity, field, reason string) *ValidationError {
	return &ValidationError{Entity: entity, Field: field, Reason: reason}
}

// DuplicateError returns the error a Store gives when a unique field is already taken.
// It is a *ValidationError that wraps ErrAlreadyExists.
func DuplicateError(entity, field string) error {
	return &ValidationError{Entity: entity, Field: field, Reason: "already used by another " + lower(entity), Err: ErrAlreadyExists}
}

func lower(s string) string {
	switch s {
	case "Profile":
		return "profile"
	case "Mailbox":
		return "mailbox"
	}
	return s
}
