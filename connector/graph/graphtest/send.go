package graphtest

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
)

// serveSendMail sends a base64 MIME message: it is delivered to the inbox of
// every recipient that is a mailbox of the fake and handed to Options.Deliver
// for the others, without its Bcc header, and a copy is saved in the sender's
// Sent Items (with the Bcc header, as Exchange keeps it for the sender).
func serveSendMail(c *call, w http.ResponseWriter, r *http.Request) {
	mime, parsed, ok := mimeBody(w, r)
	if !ok {
		return
	}
	var rcpts []string
	for _, field := range []string{"To", "Cc", "Bcc"} {
		if parsed.Header.Get(field) == "" {
			continue
		}
		list, err := parsed.Header.AddressList(field)
		if err != nil {
			writeError(w, http.StatusBadRequest, "ErrorInvalidRecipients", "At least one recipient is not valid: "+field+".")
			return
		}
		for _, a := range list {
			if !slices.ContainsFunc(rcpts, func(r string) bool { return strings.EqualFold(r, a.Address) }) {
				rcpts = append(rcpts, a.Address) // one copy each, as Exchange delivers
			}
		}
	}
	if len(rcpts) == 0 {
		writeError(w, http.StatusBadRequest, "ErrorInvalidRecipients", "At least one recipient is not valid., A message can't be sent because it contains no recipients.")
		return
	}
	// Exchange stamps what the client left out.
	if parsed.Header.Get("From") == "" {
		mime = prependHeader(mime, "From", "<"+c.mb.address+">")
	}
	if parsed.Header.Get("Message-Id") == "" {
		mime = prependHeader(mime, "Message-ID", "<"+strings.TrimRight(newID(""), "=")+"@graphtest.invalid>")
	}
	delivered := stripHeader(mime, "Bcc")

	c.s.mu.Lock()
	var external []string
	for _, rcpt := range rcpts {
		if _, err := c.s.mailbox(rcpt); err != nil {
			external = append(external, rcpt)
		}
	}
	c.s.mu.Unlock()
	if len(external) > 0 && c.s.opts.Deliver != nil {
		if err := c.s.opts.Deliver(r.Context(), c.mb.address, external, delivered); err != nil {
			writeError(w, http.StatusInternalServerError, "ErrorInternalServerError", "The fake could not deliver the message: "+err.Error())
			return
		}
	}

	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	now := c.s.opts.Now()
	sent, err := c.mb.add(c.mb.folderByRef("sentitems"), mime, now)
	if err != nil {
		writeError(w, http.StatusBadRequest, "ErrorMimeContentInvalid", "The MIME content is invalid.")
		return
	}
	sent.isRead = true
	for _, rcpt := range rcpts {
		if mb, err := c.s.mailbox(rcpt); err == nil {
			_, _ = mb.add(mb.folderByRef("inbox"), delivered, now) // parsed above: cannot fail
		}
	}
	c.s.sent = append(c.s.sent, SentMessage{From: c.mb.address, To: rcpts, MIME: delivered})
	w.WriteHeader(http.StatusAccepted)
}

// headerEnd is the offset of the blank line ending the header of a message,
// and the line break it uses.
func headerEnd(mime []byte) int {
	crlf := bytes.Index(mime, []byte("\r\n\r\n"))
	lf := bytes.Index(mime, []byte("\n\n"))
	switch {
	case crlf < 0 && lf < 0:
		return len(mime)
	case crlf < 0:
		return lf + 1
	case lf < 0 || crlf < lf:
		return crlf + 2
	default:
		return lf + 1
	}
}

// stripHeader removes every field named name (with its continuation lines)
// from the header of mime, keeping every other byte as it was.
func stripHeader(mime []byte, name string) []byte {
	end := headerEnd(mime)
	var out bytes.Buffer
	out.Grow(len(mime))
	dropping := false
	for rest := mime[:end]; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		if line[0] == ' ' || line[0] == '\t' {
			if !dropping {
				out.Write(line)
			}
			continue
		}
		field, _, _ := bytes.Cut(line, []byte(":"))
		dropping = strings.EqualFold(strings.TrimSpace(string(field)), name)
		if !dropping {
			out.Write(line)
		}
	}
	out.Write(mime[end:])
	return out.Bytes()
}

// prependHeader adds a field at the top of the header.
func prependHeader(mime []byte, name, value string) []byte {
	eol := "\r\n"
	if i := bytes.IndexByte(mime, '\n'); i <= 0 || mime[i-1] != '\r' {
		eol = "\n"
	}
	return append([]byte(name+": "+value+eol), mime...)
}
