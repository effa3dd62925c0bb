package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/serversync/serversync"
)

// The Full fixtures must set every field, so a field added to a record later is
// round-tripped by the suite (or listed here on purpose).
func TestFullFixturesSetEveryField(t *testing.T) {
	for _, tc := range []struct {
		name   string
		record any
		unset  []string // fields the fixture leaves zero on purpose
	}{
		{"Profile", FullProfile("P"), nil},
		{"Mailbox", FullMailbox("profile", "m@example.com"), []string{"LeaseHost", "LeaseExpiresAt", "ForcedUnlockCount"}},
		{"EmailActivity", FullActivity("mb", "key"), nil},
		{"Alert", func() *serversync.Alert { a := NewAlert("u"); a.ActivityID = "a"; return a }(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var zero []string
			zeroFields(reflect.ValueOf(tc.record).Elem(), "", &zero)
			assert.ElementsMatch(t, tc.unset, zero)
		})
	}
	// OrgSettings: every field differs from the defaults.
	full, def := reflect.ValueOf(FullOrgSettings()).Elem(), reflect.ValueOf(serversync.DefaultOrgSettings()).Elem()
	for i := range full.NumField() {
		assert.NotEqual(t, def.Field(i).Interface(), full.Field(i).Interface(), "OrgSettings.%s", full.Type().Field(i).Name)
	}
}

// zeroFields appends the paths of exported fields that are zero in v (for slices of
// structs: zero in every element, since an attachment over the size cap has no
// content and one under it is not Omitted).
func zeroFields(v reflect.Value, prefix string, out *[]string) {
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		fv, path := v.Field(i), prefix+f.Name
		switch {
		case fv.Type() == reflect.TypeFor[time.Time]():
			if fv.Interface().(time.Time).IsZero() {
				*out = append(*out, path)
			}
		case fv.Kind() == reflect.Struct && fv.NumField() > 0 && fv.Type().Field(0).IsExported():
			zeroFields(fv, path+".", out)
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct && fv.Len() > 0:
			zeroIn := map[string]int{}
			var order []string
			for j := range fv.Len() {
				var zs []string
				zeroFields(fv.Index(j), path+".", &zs)
				for _, z := range zs {
					if zeroIn[z] == 0 {
						order = append(order, z)
					}
					zeroIn[z]++
				}
			}
			for _, z := range order {
				if zeroIn[z] == fv.Len() {
					*out = append(*out, z)
				}
			}
		case fv.IsZero():
			*out = append(*out, path)
		}
	}
}
