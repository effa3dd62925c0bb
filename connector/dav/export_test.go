package dav

// Exported for tests.
var (
	EncodeAppointment = encodeAppointment
	DecodeAppointment = decodeAppointment
	EncodeTask        = encodeTask
	DecodeTask        = decodeTask
	EncodeContact     = encodeContact
	DecodeContact     = decodeContact
)

// SyncCollection reports whether the session follows kind with sync-collection.
func SyncCollection(s any, kind string) bool {
	ss := s.(*session)
	for k, col := range ss.cols {
		if string(k) == kind {
			return col.syncCollection && !ss.c.DisableSyncCollection
		}
	}
	return false
}

// Gets is how many items the session read with a GET of their own.
func Gets(s any) int { return s.(*session).gets }
