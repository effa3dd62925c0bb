package sqlite

import (
	"sort"
	"strings"
)

// VersionBefore is the schema version (user_version) of a database migrated up
// to, not including, the migration whose file name starts with prefix. Tests only.
func VersionBefore(prefix string) int {
	entries, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		panic(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	sort.Strings(files)
	for i, f := range files {
		if strings.HasPrefix(f, prefix) {
			return i
		}
	}
	panic("no migration " + prefix)
}
