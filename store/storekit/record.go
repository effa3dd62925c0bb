package storekit

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	"github.com/serversync/serversync/auth"
)

var secretType = reflect.TypeFor[auth.Secret]()

type envelope struct {
	Record json.RawMessage   `json:"record"`
	Sealed map[string]string `json:"sealed,omitempty"`
}

// EncodeRecord returns v's JSON with every set auth.Secret field sealed by sealer,
// bound to kind and id (see the package comment). T must be a struct type; one that
// holds secrets inside slices or maps is refused, since they could not be sealed by
// path. It fails rather than write a secret without a sealer: a nil sealer encodes
// only records whose secrets are all unset.
func EncodeRecord[T any](ctx context.Context, sealer *auth.Sealer, kind, id string, v *T) ([]byte, error) {
	paths, err := secretPaths(reflect.TypeFor[T]())
	if err != nil {
		return nil, err
	}
	env := envelope{}
	root := reflect.ValueOf(v).Elem()
	for _, path := range paths {
		secret := fieldByPath(root, path).Interface().(auth.Secret)
		if !secret.IsSet() {
			continue
		}
		if sealer == nil {
			return nil, fmt.Errorf("storekit: %s %s has a secret (%s) but no sealer is configured", kind, id, path.name)
		}
		sealed, err := sealer.Seal(ctx, []byte(secret.Reveal()), aad(kind, id, path.name))
		if err != nil {
			return nil, fmt.Errorf("storekit: seal %s of %s %s: %w", path.name, kind, id, err)
		}
		if env.Sealed == nil {
			env.Sealed = make(map[string]string, len(paths))
		}
		env.Sealed[path.name] = sealed
	}
	if env.Record, err = json.Marshal(v); err != nil {
		return nil, fmt.Errorf("storekit: encode %s %s: %w", kind, id, err)
	}
	return json.Marshal(env)
}

// DecodeRecord unmarshals data, written by EncodeRecord with the same kind and id,
// into v and restores every sealed secret. It fails when a secret does not open: a
// key the sealer's provider no longer has (auth.ErrUnknownKey), or a value moved from
// another record or read under another kind or id (auth.ErrDecrypt).
func DecodeRecord[T any](ctx context.Context, sealer *auth.Sealer, kind, id string, data []byte, v *T) error {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return fmt.Errorf("storekit: decode %s %s: %w", kind, id, err)
	}
	if err := json.Unmarshal(env.Record, v); err != nil {
		return fmt.Errorf("storekit: decode %s %s: %w", kind, id, err)
	}
	if len(env.Sealed) == 0 {
		return nil
	}
	if sealer == nil {
		return fmt.Errorf("storekit: %s %s holds sealed secrets but no sealer is configured", kind, id)
	}
	paths, err := secretPaths(reflect.TypeFor[T]())
	if err != nil {
		return err
	}
	root := reflect.ValueOf(v).Elem()
	for _, path := range paths {
		sealed, ok := env.Sealed[path.name]
		if !ok {
			continue
		}
		plaintext, err := sealer.Open(ctx, sealed, aad(kind, id, path.name))
		if err != nil {
			return fmt.Errorf("storekit: open %s of %s %s: %w", path.name, kind, id, err)
		}
		fieldByPath(root, path).Set(reflect.ValueOf(auth.NewSecret(string(plaintext))))
	}
	return nil
}

// ResealRecord re-encrypts under the sealer's current key every sealed value of data
// (written by EncodeRecord with the same kind and id) that is not already under it,
// and reports how many it rewrote (0: out is data unchanged). It neither decodes the
// record nor needs its type, so RotateSecrets can run it over raw stored rows.
func ResealRecord(ctx context.Context, sealer *auth.Sealer, kind, id string, data []byte) (out []byte, resealed int, err error) {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, 0, fmt.Errorf("storekit: decode %s %s: %w", kind, id, err)
	}
	for name, sealed := range env.Sealed {
		stale, err := sealer.NeedsRotation(ctx, sealed)
		if err != nil {
			return nil, 0, fmt.Errorf("storekit: %s of %s %s: %w", name, kind, id, err)
		}
		if !stale {
			continue
		}
		plaintext, err := sealer.Open(ctx, sealed, aad(kind, id, name))
		if err != nil {
			return nil, 0, fmt.Errorf("storekit: open %s of %s %s: %w", name, kind, id, err)
		}
		if env.Sealed[name], err = sealer.Seal(ctx, plaintext, aad(kind, id, name)); err != nil {
			return nil, 0, fmt.Errorf("storekit: seal %s of %s %s: %w", name, kind, id, err)
		}
		resealed++
	}
	if resealed == 0 {
		return data, 0, nil
	}
	out, err = json.Marshal(env)
	return out, resealed, err
}

func aad(kind, id, field string) string { return kind + "/" + id + "/" + field }

// secretPath locates one auth.Secret field: its dotted name and field indexes.
type secretPath struct {
	name  string
	index []int
}

type pathsResult struct {
	paths []secretPath
	err   error
}

var pathCache sync.Map // reflect.Type → pathsResult

// secretPaths lists the auth.Secret fields of struct type t. Secrets inside slices
// or maps can't be named by a path, so such a type is refused rather than letting
// its secrets be stored as "[REDACTED]" and lost.
func secretPaths(t reflect.Type) ([]secretPath, error) {
	if cached, ok := pathCache.Load(t); ok {
		r := cached.(pathsResult)
		return r.paths, r.err
	}
	var r pathsResult
	r.err = walk(t, "", nil, &r.paths)
	pathCache.Store(t, r)
	return r.paths, r.err
}

func walk(t reflect.Type, prefix string, index []int, out *[]secretPath) error {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := prefix + f.Name
		idx := append(append([]int(nil), index...), i)
		switch {
		case f.Type == secretType:
			*out = append(*out, secretPath{name: name, index: idx})
		case f.Type.Kind() == reflect.Struct:
			if err := walk(f.Type, name+".", idx, out); err != nil {
				return err
			}
		case containsSecret(f.Type, map[reflect.Type]bool{}):
			return fmt.Errorf("storekit: %s holds auth.Secret values inside a %s, which can't be sealed by path", name, f.Type.Kind())
		}
	}
	return nil
}

func containsSecret(t reflect.Type, seen map[reflect.Type]bool) bool {
	if t == secretType {
		return true
	}
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Slice, reflect.Array, reflect.Pointer:
		return containsSecret(t.Elem(), seen)
	case reflect.Map:
		return containsSecret(t.Key(), seen) || containsSecret(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if containsSecret(t.Field(i).Type, seen) {
				return true
			}
		}
	}
	return false
}

func fieldByPath(v reflect.Value, p secretPath) reflect.Value { return v.FieldByIndex(p.index) }
