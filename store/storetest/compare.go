package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// assertSameRecord checks that got is want as a store may give it back: times equal
// as instants (location and monotonic reading dropped) and empty slices equal to nil.
func assertSameRecord[T any](t *testing.T, want, got T, msgAndArgs ...any) bool {
	t.Helper()
	return assert.Equal(t, canon(want), canon(got), msgAndArgs...)
}

// canon returns a deep copy of v with every time.Time in UTC without monotonic
// reading and every empty slice nil, so that reflect.DeepEqual compares what a store
// must keep.
func canon[T any](v T) T {
	return canonical(reflect.ValueOf(&v).Elem()).Interface().(T)
}

var timeType = reflect.TypeFor[time.Time]()

func canonical(v reflect.Value) reflect.Value {
	if v.Type() == timeType {
		return reflect.ValueOf(v.Interface().(time.Time).UTC().Round(0))
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(canonical(v.Elem()))
		return p
	case reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		c.Set(v) // unexported fields (auth.Secret's value) are copied as they are
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				c.Field(i).Set(canonical(v.Field(i)))
			}
		}
		return c
	case reflect.Slice:
		if v.Len() == 0 {
			return reflect.Zero(v.Type())
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			c.Index(i).Set(canonical(v.Index(i)))
		}
		return c
	}
	return v
}

// assertSecret checks that got reveals want (and is unset when want is empty).
func assertSecret(t *testing.T, want string, got auth.Secret, field string) {
	t.Helper()
	assert.Equal(t, want, got.Reveal(), "%s must come back revealed", field)
	assert.Equal(t, want != "", got.IsSet(), "%s: IsSet", field)
}

// requireDuplicate checks that err is DuplicateError(entity, field).
func requireDuplicate(t *testing.T, err error, entity, field string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, serversync.ErrAlreadyExists)
	var verr *serversync.ValidationError
	require.True(t, errors.As(err, &verr), "want a *serversync.ValidationError, got %T: %v", err, err)
	assert.Equal(t, entity, verr.Entity)
	assert.Equal(t, field, verr.Field)
}

// requireValidation checks that err is a *ValidationError for field.
func requireValidation(t *testing.T, err error, field string) {
	t.Helper()
	require.Error(t, err)
	var verr *serversync.ValidationError
	require.True(t, errors.As(err, &verr), "want a *serversync.ValidationError, got %T: %v", err, err)
	assert.Equal(t, field, verr.Field)
}
