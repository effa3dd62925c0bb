package dav_test

import (
	"testing"

	"github.com/serversync/serversync/connector/dav"
)

// FuzzDecodeCalendar feeds arbitrary iCalendar to the model mapping: it must return
// an appointment or task, or an error, never panic; what it returns must encode.
func FuzzDecodeCalendar(f *testing.F) {
	f.Add("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260329T013000\r\nDTEND;VALUE=DATE:20260330\r\nRRULE:FREQ=DAILY\r\nEXDATE:20260330T013000Z,20260331T013000Z\r\nBEGIN:VALARM\r\nTRIGGER:-PT5M\r\nACTION:DISPLAY\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
	f.Add("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:t\r\nDTSTAMP:20260101T000000Z\r\nSTATUS:COMPLETED\r\nPERCENT-COMPLETE:100\r\nCOMPLETED:20260101T000000Z\r\nPRIORITY:1\r\nDUE:20260102\r\nEND:VTODO\r\nEND:VCALENDAR\r\n")
	f.Add("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTIMEZONE\r\nTZID:Custom\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000\r\nTZOFFSETFROM:+0530\r\nTZOFFSETTO:+0530\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:r\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID=Custom:20260101T100000\r\nDTSTART;TZID=Custom:20260101T110000\r\nDURATION:P1DT2H\r\nATTENDEE;PARTSTAT=ACCEPTED;ROLE=OPT-PARTICIPANT;CN=A:mailto:a@b\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
	f.Add("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:A\r\nN:B;A;;;\r\nEMAIL;TYPE=work:a@b\r\nADR:;;s;c;r;p;co\r\nBDAY:--0517\r\nEND:VCARD\r\n")
	f.Fuzz(func(t *testing.T, data string) {
		if a, err := dav.DecodeAppointment([]byte(data)); err == nil {
			if a.UID == "" {
				a.UID = "fuzz"
			}
			_, _ = dav.EncodeAppointment(a)
		}
		if c, err := dav.DecodeContact([]byte(data)); err == nil {
			if c.DisplayName == "" {
				c.DisplayName = "fuzz"
			}
			_, _ = dav.EncodeContact(c)
		}
		if task, err := dav.DecodeTask([]byte(data)); err == nil {
			if task.UID == "" {
				task.UID = "fuzz"
			}
			_, _ = dav.EncodeTask(task)
		}
	})
}
