package connector

import (
	"bufio"
	"bytes"
	"net/mail"
	"net/textproto"
	"strings"
)

// AddBcc is for APIs that send a MIME message as it is and take its recipients
// from its headers (Graph's sendMail, EWS's CreateItem): envelope recipients
// that are not in the header would not get the message otherwise.
//
// AddBcc returns raw with a Bcc header naming the recipients that are in
// none of its To, Cc and Bcc headers; raw itself when there are none.
func AddBcc(raw []byte, recipients []string) []byte {
	end, nl := headerEnd(raw)
	if end < 0 {
		return raw
	}
	hdr, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw[:end]))).ReadMIMEHeader()
	if err != nil && len(hdr) == 0 {
		return raw
	}
	listed := map[string]bool{}
	var text strings.Builder
	for _, field := range []string{"To", "Cc", "Bcc"} {
		for _, v := range hdr.Values(field) {
			text.WriteString(strings.ToLower(v))
			text.WriteByte(' ')
			if list, err := mail.ParseAddressList(v); err == nil {
				for _, a := range list {
					listed[strings.ToLower(a.Address)] = true
				}
			}
		}
	}
	var missing []string
	for _, r := range recipients {
		r = strings.TrimSpace(r)
		lower := strings.ToLower(r)
		if r == "" || listed[lower] || strings.Contains(text.String(), "<"+lower+">") {
			continue
		}
		listed[lower] = true
		missing = append(missing, r)
	}
	if len(missing) == 0 {
		return raw
	}
	line := "Bcc: " + strings.Join(missing, ", ") + nl
	return append([]byte(line), raw...)
}

// headerEnd returns where the header ends (just after the blank line's
// predecessor) and the message's line ending.
func headerEnd(raw []byte) (int, string) {
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		return i + 4, "\r\n"
	}
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		return i + 2, "\n"
	}
	return -1, ""
}
