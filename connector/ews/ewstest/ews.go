package ewstest

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

const (
	nsSOAP     = "http://schemas.xmlsoap.org/soap/envelope/"
	nsTypes    = "http://schemas.microsoft.com/exchange/services/2006/types"
	nsMessages = "http://schemas.microsoft.com/exchange/services/2006/messages"
	nsErrors   = "http://schemas.microsoft.com/exchange/services/2006/errors"
)

// request is a SOAP request, read by local names.
type request struct {
	Header struct {
		Version struct {
			Version string `xml:"Version,attr"`
		} `xml:"RequestServerVersion"`
		Impersonation *struct {
			SMTP string `xml:"ConnectingSID>PrimarySmtpAddress"`
		} `xml:"ExchangeImpersonation"`
	} `xml:"Header"`
	Body struct {
		Op *operation `xml:",any"`
	} `xml:"Body"`
}

// operation holds the parts of every operation served; each reads its own.
type operation struct {
	XMLName            xml.Name
	MessageDisposition string    `xml:"MessageDisposition,attr"`
	DeleteType         string    `xml:"DeleteType,attr"`
	SyncFolderID       folderRef `xml:"SyncFolderId"`
	SyncState          string    `xml:"SyncState"`
	MaxChanges         string    `xml:"MaxChangesReturned"`
	IncludeMime        string    `xml:"ItemShape>IncludeMimeContent"`
	BaseShape          string    `xml:"ItemShape>BaseShape"`
	Occurrences        []node    `xml:"ItemIds>OccurrenceItemId"`
	ItemIDs            []struct {
		ID string `xml:"Id,attr"`
	} `xml:"ItemIds>ItemId"`
	ToFolderID        folderRef `xml:"ToFolderId"`
	ParentFolderIDs   folderRef `xml:"ParentFolderIds"`
	ParentFolderID    folderRef `xml:"ParentFolderId"`
	FolderIDs         folderRef `xml:"FolderIds"`
	SavedItemFolderID folderRef `xml:"SavedItemFolderId"`
	Constant          *struct {
		Value string `xml:"Value,attr"`
	} `xml:"Restriction>IsEqualTo>FieldURIOrConstant>Constant"`
	NewFolders []struct {
		DisplayName string `xml:"DisplayName"`
	} `xml:"Folders>Folder"`
	Messages []struct {
		MIME string `xml:"MimeContent"`
	} `xml:"Items>Message"`
}

type folderRef struct {
	Distinguished *struct {
		ID      string `xml:"Id,attr"`
		Mailbox string `xml:"Mailbox>EmailAddress"`
	} `xml:"DistinguishedFolderId"`
	Folder *struct {
		ID string `xml:"Id,attr"`
	} `xml:"FolderId"`
}

// call is one request being answered.
type call struct {
	s            *Server
	login        string
	impersonated string
	rec          *Request
}

// failure is an error answered as a response message (or, with fault, a SOAP fault).
type failure struct {
	code, text string
	fault      bool
	backOff    time.Duration
}

func (s *Server) serveEWS(w http.ResponseWriter, r *http.Request) {
	login, scheme, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 200<<20))
	if err != nil {
		return
	}
	var req request
	if err := xml.Unmarshal(raw, &req); err != nil || req.Body.Op == nil {
		writeFault(w, failure{code: "ErrorSchemaValidation", text: "The request failed schema validation.", fault: true})
		return
	}
	op := req.Body.Op
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := Request{Op: op.XMLName.Local, Login: login, Auth: scheme, Version: req.Header.Version.Version, At: time.Now(), Items: len(op.ItemIDs),
		SyncState: strings.TrimSpace(op.SyncState)}
	defer func() { s.requests = append(s.requests, rec) }()
	if req.Header.Impersonation != nil {
		rec.Impersonated = strings.ToLower(strings.TrimSpace(req.Header.Impersonation.SMTP))
	}
	for i, b := range s.busy {
		if b.op == "" || b.op == rec.Op {
			s.busy = append(s.busy[:i:i], s.busy[i+1:]...)
			rec.Code = "ErrorServerBusy"
			writeFault(w, failure{code: "ErrorServerBusy", text: "The server cannot service this request right now. Try again later.", fault: true, backOff: b.backOff})
			return
		}
	}
	switch v := req.Header.Version.Version; v {
	case "", "Exchange2010", "Exchange2010_SP1", "Exchange2010_SP2", "Exchange2013", "Exchange2013_SP1", "Exchange2016":
	default:
		rec.Code = "ErrorInvalidServerVersion"
		writeFault(w, failure{code: "ErrorInvalidServerVersion", text: "The specified server version is invalid.", fault: true})
		return
	}
	c := &call{s: s, login: rec.Login, impersonated: rec.Impersonated, rec: &rec}
	if c.impersonated != "" {
		if f := c.checkImpersonation(); f != nil {
			rec.Code = f.code
			writeFault(w, *f)
			return
		}
	}
	var body string
	var f *failure
	switch rec.Op {
	case "SyncFolderItems":
		var replayed []byte
		body, replayed, f = c.syncFolderItems(op)
		if replayed != nil {
			rec.Code = "NoError"
			writeRaw(w, replayed)
			return
		}
	case "GetItem":
		body, f = c.getItem(op)
	case "MoveItem":
		body, f = c.moveItem(op)
	case "DeleteItem":
		body, f = c.deleteItem(op)
	case "CreateItem":
		body, f = c.createItem(op, raw)
	case "UpdateItem":
		body, f = c.updateItem(raw)
	case "FindItem":
		body, f = c.findItem(op, raw)
	case "FindFolder":
		body, f = c.findFolder(op)
	case "CreateFolder":
		body, f = c.createFolder(op)
	case "GetFolder":
		body, f = c.getFolder(op)
	default:
		f = &failure{code: "ErrorInvalidRequest", text: "The request is not supported by ewstest: " + rec.Op, fault: true}
	}
	if f != nil && f.fault {
		rec.Code = f.code
		writeFault(w, *f)
		return
	}
	if f != nil {
		body = errorMessage(rec.Op, *f)
	}
	if rec.Code == "" {
		rec.Code = "NoError"
		if f != nil {
			rec.Code = f.code
		}
	}
	out := responseEnvelope(rec.Op, body)
	if rec.Op == "SyncFolderItems" && f == nil && rec.Mailbox != "" && strings.Contains(body, "<t:Create>") {
		s.lastSync[rec.Mailbox] = out
	}
	writeRaw(w, out)
}

func (c *call) checkImpersonation() *failure {
	rights := c.s.impersonators[c.login]
	if !rights["*"] && !rights[c.impersonated] {
		return &failure{code: "ErrorImpersonateUserDenied", text: "The account does not have permission to impersonate the requested user.", fault: true}
	}
	if c.s.mailboxes[c.impersonated] == nil {
		return &failure{code: "ErrorNonExistentMailbox", text: "The SMTP address has no mailbox associated with it.", fault: true}
	}
	return nil
}

// open returns the mailbox want ("" for the caller's own) if the caller may act on it.
func (c *call) open(want string) (*mailbox, *failure) {
	want = strings.ToLower(strings.TrimSpace(want))
	if c.impersonated != "" {
		if want != "" && want != c.impersonated {
			return nil, &failure{code: "ErrorAccessDenied", text: "Access is denied. Check credentials and try again."}
		}
		c.rec.Mailbox = c.impersonated
		return c.s.mailboxes[c.impersonated], nil
	}
	own := c.s.users[c.login].mailbox
	if want == "" {
		want = own
	}
	m := c.s.mailboxes[want]
	if m == nil {
		return nil, &failure{code: "ErrorNonExistentMailbox", text: "The SMTP address has no mailbox associated with it."}
	}
	if want != own && !c.s.delegates[c.login][want] && !c.s.delegates[c.login]["*"] {
		return nil, &failure{code: "ErrorAccessDenied", text: "Access is denied. Check credentials and try again."}
	}
	c.rec.Mailbox = want
	return m, nil
}

// folder resolves a folder reference.
func (c *call) folder(ref folderRef) (*mailbox, *folder, *failure) {
	switch {
	case ref.Distinguished != nil:
		m, f := c.open(ref.Distinguished.Mailbox)
		if f != nil {
			return nil, nil, f
		}
		fo := m.folders[m.distinguished(ref.Distinguished.ID)]
		if fo == nil {
			return nil, nil, &failure{code: "ErrorFolderNotFound", text: "The specified folder could not be found in the store."}
		}
		return m, fo, nil
	case ref.Folder != nil:
		kind, owner, ok := decodeID(ref.Folder.ID)
		if !ok || kind != "F" {
			return nil, nil, &failure{code: "ErrorInvalidIdMalformed", text: "Id is malformed."}
		}
		m, f := c.open(owner)
		if f != nil {
			return nil, nil, f
		}
		fo := m.folders[ref.Folder.ID]
		if fo == nil {
			return nil, nil, &failure{code: "ErrorFolderNotFound", text: "The specified folder could not be found in the store."}
		}
		return m, fo, nil
	}
	return nil, nil, &failure{code: "ErrorSchemaValidation", text: "The request failed schema validation: no folder id.", fault: true}
}

// item resolves an item id; nil, nil when the item is gone.
func (c *call) item(id string) (*mailbox, *item, *failure) {
	kind, owner, ok := decodeID(id)
	if !ok || kind != "I" {
		return nil, nil, &failure{code: "ErrorInvalidIdMalformed", text: "Id is malformed."}
	}
	m, f := c.open(owner)
	if f != nil {
		return nil, nil, f
	}
	it := m.items[id]
	if it == nil {
		return m, nil, &failure{code: "ErrorItemNotFound", text: "The specified object was not found in the store."}
	}
	return m, it, nil
}

func (c *call) syncFolderItems(op *operation) (string, []byte, *failure) {
	m, fo, f := c.folder(op.SyncFolderID)
	if f != nil {
		return "", nil, f
	}
	if c.s.replay[m.address] && c.s.lastSync[m.address] != nil {
		delete(c.s.replay, m.address)
		return "", c.s.lastSync[m.address], nil
	}
	max, err := strconv.Atoi(strings.TrimSpace(op.MaxChanges))
	if err != nil || max < 1 || max > 512 {
		return "", nil, &failure{code: "ErrorInvalidArgument", text: "MaxChangesReturned must be between 1 and 512."}
	}
	pos := syncPosition{folder: fo.id}
	initial := strings.TrimSpace(op.SyncState) == ""
	if !initial {
		p, ok := m.states[strings.TrimSpace(op.SyncState)]
		if !ok || p.folder != fo.id {
			return "", nil, &failure{code: "ErrorInvalidSyncStateData", text: "Synchronization state data is corrupt or otherwise invalid."}
		}
		pos = p
	}
	var b strings.Builder
	n, last := 0, pos.seq
	more := false
	for _, ch := range m.journal[pos.seq:] {
		if ch.folder != fo.id {
			continue
		}
		it := m.items[ch.item]
		if initial && (it == nil || it.folder != fo.id || ch.update) {
			continue // a first sync sees what is there now, once
		}
		if n == max {
			more = true
			break
		}
		n++
		last = ch.seq
		if it != nil && it.kind != "" && (ch.create || ch.update) {
			op := "Create"
			if ch.update {
				op = "Update"
			}
			fmt.Fprintf(&b, `<t:%s><t:%s>%s</t:%s></t:%s>`, op, it.kind, it.idXML(), it.kind, op)
		} else if ch.update {
			n-- // the item is gone: its Delete follows
		} else if ch.create {
			received, size := time.Time{}, 0
			if it != nil {
				received, size = it.received, len(it.mime)
			}
			fmt.Fprintf(&b, `<t:Create><t:Message><t:ItemId Id="%s" ChangeKey="CQAAABYAAA"/><t:DateTimeReceived>%s</t:DateTimeReceived><t:Size>%d</t:Size></t:Message></t:Create>`,
				esc(ch.item), received.UTC().Format(time.RFC3339), size)
		} else {
			fmt.Fprintf(&b, `<t:Delete><t:ItemId Id="%s" ChangeKey="CQAAABYAAA"/></t:Delete>`, esc(ch.item))
		}
	}
	if !more {
		last = m.seq()
	}
	state := m.newState(syncPosition{folder: fo.id, seq: last})
	return successMessage("SyncFolderItems", fmt.Sprintf(`<m:SyncState>%s</m:SyncState><m:IncludesLastItemInRange>%t</m:IncludesLastItemInRange><m:Changes>%s</m:Changes>`,
		esc(state), !more, b.String())), nil, nil
}

func (c *call) getItem(op *operation) (string, *failure) {
	var b strings.Builder
	for _, id := range op.ItemIDs {
		_, it, f := c.item(id.ID)
		if f != nil {
			b.WriteString(errorMessage("GetItem", *f))
			continue
		}
		if it.kind != "" {
			m, _, _ := c.item(id.ID)
			b.WriteString(successMessage("GetItem", `<m:Items>`+m.actXML(it, strings.TrimSpace(op.BaseShape) == "IdOnly")+`</m:Items>`))
			continue
		}
		mime := ""
		if strings.EqualFold(strings.TrimSpace(op.IncludeMime), "true") {
			mime = `<t:MimeContent CharacterSet="UTF-8">` + base64.StdEncoding.EncodeToString(it.mime) + `</t:MimeContent>`
		}
		b.WriteString(successMessage("GetItem", fmt.Sprintf(`<m:Items><t:Message>%s<t:ItemId Id="%s" ChangeKey="CQAAABYAAA"/><t:DateTimeReceived>%s</t:DateTimeReceived><t:Size>%d</t:Size></t:Message></m:Items>`,
			mime, esc(it.id), it.received.UTC().Format(time.RFC3339), len(it.mime))))
	}
	return b.String(), nil
}

func (c *call) moveItem(op *operation) (string, *failure) {
	tm, to, f := c.folder(op.ToFolderID)
	if f != nil {
		return "", f
	}
	var b strings.Builder
	for _, id := range op.ItemIDs {
		m, it, f := c.item(id.ID)
		if f == nil && m != tm {
			f = &failure{code: "ErrorCrossMailboxMoveCopy", text: "Cross-mailbox moves are not supported by ewstest."}
		}
		if f != nil {
			b.WriteString(errorMessage("MoveItem", *f))
			continue
		}
		m.moveItem(it, to.id)
		b.WriteString(successMessage("MoveItem", fmt.Sprintf(`<m:Items><t:Message><t:ItemId Id="%s" ChangeKey="CQAAABYAAA"/></t:Message></m:Items>`, esc(it.id))))
	}
	return b.String(), nil
}

func (c *call) deleteItem(op *operation) (string, *failure) {
	var b strings.Builder
	for i := range op.Occurrences {
		if f := c.deleteOccurrence(&op.Occurrences[i]); f != nil {
			b.WriteString(errorMessage("DeleteItem", *f))
			continue
		}
		b.WriteString(successMessage("DeleteItem", ""))
	}
	for _, id := range op.ItemIDs {
		m, it, f := c.item(id.ID)
		if f != nil {
			b.WriteString(errorMessage("DeleteItem", *f))
			continue
		}
		if op.DeleteType == "MoveToDeletedItems" {
			m.moveItem(it, m.distinguished("deleteditems"))
		} else {
			m.removeItem(it)
		}
		b.WriteString(successMessage("DeleteItem", ""))
	}
	return b.String(), nil
}

func (c *call) findFolder(op *operation) (string, *failure) {
	m, parent, f := c.folder(op.ParentFolderIDs)
	if f != nil {
		return "", f
	}
	var b strings.Builder
	n := 0
	for _, fo := range m.folders {
		if fo.parent != parent.id || (op.Constant != nil && !strings.EqualFold(fo.name, op.Constant.Value)) {
			continue
		}
		n++
		fmt.Fprintf(&b, `<t:Folder><t:FolderId Id="%s" ChangeKey="AQAAABYAAA"/><t:DisplayName>%s</t:DisplayName></t:Folder>`, esc(fo.id), esc(fo.name))
	}
	return successMessage("FindFolder", fmt.Sprintf(`<m:RootFolder TotalItemsInView="%d" IncludesLastItemInRange="true"><t:Folders>%s</t:Folders></m:RootFolder>`, n, b.String())), nil
}

func (c *call) createFolder(op *operation) (string, *failure) {
	m, parent, f := c.folder(op.ParentFolderID)
	if f != nil {
		return "", f
	}
	var b strings.Builder
	for _, nf := range op.NewFolders {
		exists := false
		for _, fo := range m.folders {
			if fo.parent == parent.id && strings.EqualFold(fo.name, nf.DisplayName) {
				exists = true
			}
		}
		if exists || strings.TrimSpace(nf.DisplayName) == "" {
			b.WriteString(errorMessage("CreateFolder", failure{code: "ErrorFolderExists", text: "A folder with the specified name already exists."}))
			continue
		}
		c.s.nextID++
		id := encodeID("F", m.address, c.s.nextID)
		m.folders[id] = &folder{id: id, name: nf.DisplayName, parent: parent.id}
		b.WriteString(successMessage("CreateFolder", fmt.Sprintf(`<m:Folders><t:Folder><t:FolderId Id="%s" ChangeKey="AQAAABYAAA"/></t:Folder></m:Folders>`, esc(id))))
	}
	return b.String(), nil
}

func (c *call) getFolder(op *operation) (string, *failure) {
	m, fo, f := c.folder(op.FolderIDs)
	if f != nil {
		return "", f
	}
	total, children := 0, 0
	for _, it := range m.items {
		if it.folder == fo.id {
			total++
		}
	}
	for _, ch := range m.folders {
		if ch.parent == fo.id {
			children++
		}
	}
	return successMessage("GetFolder", fmt.Sprintf(`<m:Folders><t:Folder><t:FolderId Id="%s" ChangeKey="AQAAABYAAA"/><t:DisplayName>%s</t:DisplayName>`+
		`<t:TotalCount>%d</t:TotalCount><t:ChildFolderCount>%d</t:ChildFolderCount><t:UnreadCount>%d</t:UnreadCount></t:Folder></m:Folders>`,
		esc(fo.id), esc(fo.name), total, children, total)), nil
}

func (c *call) createItem(op *operation, raw []byte) (string, *failure) {
	disposition := op.MessageDisposition
	var m *mailbox
	var saveTo *folder
	if op.SavedItemFolderID.Distinguished != nil || op.SavedItemFolderID.Folder != nil {
		var f *failure
		if m, saveTo, f = c.folder(op.SavedItemFolderID); f != nil {
			return "", f
		}
	} else {
		var f *failure
		if m, f = c.open(""); f != nil {
			return "", f
		}
		saveTo = m.folders[m.distinguished("sentitems")]
		if disposition == "SaveOnly" {
			saveTo = m.folders[m.distinguished("drafts")]
		}
	}
	if len(op.Messages) == 0 {
		var req actRequest
		if err := xml.Unmarshal(raw, &req); err != nil {
			return "", &failure{code: "ErrorSchemaValidation", text: "The request failed schema validation.", fault: true}
		}
		if items := req.Body.Op.child("Items"); items != nil {
			return c.createACT(m, saveTo, items.Children), nil
		}
	}
	var b strings.Builder
	for _, msg := range op.Messages {
		mime, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(msg.MIME), ""))
		if err != nil {
			b.WriteString(errorMessage("CreateItem", failure{code: "ErrorInvalidRequest", text: "MimeContent is not base64."}))
			continue
		}
		parsed, err := mail.ReadMessage(bytes.NewReader(mime))
		if err != nil {
			b.WriteString(errorMessage("CreateItem", failure{code: "ErrorMimeContentConversionFailed", text: "Unable to convert MIME content."}))
			continue
		}
		switch disposition {
		case "SendAndSaveCopy", "SendOnly":
			var rcpts []string
			for _, h := range []string{"To", "Cc", "Bcc"} {
				if list, err := parsed.Header.AddressList(h); err == nil {
					for _, a := range list {
						rcpts = append(rcpts, strings.ToLower(a.Address))
					}
				}
			}
			if len(rcpts) == 0 {
				b.WriteString(errorMessage("CreateItem", failure{code: "ErrorInvalidRecipients", text: "At least one recipient is required."}))
				continue
			}
			delivered := withoutBcc(mime)
			for _, r := range rcpts {
				if to := c.s.mailboxes[r]; to != nil {
					c.s.addItemLocked(to, to.distinguished("inbox"), delivered, time.Now())
				}
			}
			if disposition == "SendAndSaveCopy" {
				c.s.addItemLocked(m, saveTo.id, mime, time.Now())
			}
			c.s.sent = append(c.s.sent, Sent{Mailbox: m.address, Disposition: disposition, Recipients: rcpts, MIME: mime})
			b.WriteString(successMessage("CreateItem", `<m:Items/>`))
		case "SaveOnly":
			it := c.s.addItemLocked(m, saveTo.id, mime, time.Now())
			b.WriteString(successMessage("CreateItem", fmt.Sprintf(`<m:Items><t:Message><t:ItemId Id="%s" ChangeKey="CQAAABYAAA"/></t:Message></m:Items>`, esc(it.id))))
		default:
			b.WriteString(errorMessage("CreateItem", failure{code: "ErrorInvalidRequest", text: "MessageDisposition is required for messages."}))
		}
	}
	return b.String(), nil
}

// withoutBcc drops the Bcc header from a message, as a server does before delivery.
func withoutBcc(mime []byte) []byte {
	end := bytes.Index(mime, []byte("\r\n\r\n"))
	if end < 0 {
		return mime
	}
	var out bytes.Buffer
	skipping := false
	for _, line := range strings.SplitAfter(string(mime[:end+2]), "\r\n") {
		if skipping && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) {
			continue
		}
		skipping = len(line) >= 4 && strings.EqualFold(line[:4], "bcc:")
		if !skipping {
			out.WriteString(line)
		}
	}
	out.Write(mime[end+2:])
	return out.Bytes()
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func successMessage(op, inner string) string {
	return `<m:` + op + `ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>` + inner + `</m:` + op + `ResponseMessage>`
}

func errorMessage(op string, f failure) string {
	return `<m:` + op + `ResponseMessage ResponseClass="Error"><m:MessageText>` + esc(f.text) + `</m:MessageText><m:ResponseCode>` +
		esc(f.code) + `</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:` + op + `ResponseMessage>`
}

func responseEnvelope(op, messages string) []byte {
	return []byte(`<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="` + nsSOAP + `"><s:Header>` +
		`<h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11" ` +
		`xmlns:h="` + nsTypes + `" xmlns="` + nsTypes + `"/></s:Header><s:Body>` +
		`<m:` + op + `Response xmlns:m="` + nsMessages + `" xmlns:t="` + nsTypes + `"><m:ResponseMessages>` + messages +
		`</m:ResponseMessages></m:` + op + `Response></s:Body></s:Envelope>`)
}

func writeRaw(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write(body)
}

// writeFault answers a SOAP fault the way EWS does: HTTP 500, the EWS code in
// faultcode and in the detail's ResponseCode, and BackOffMilliseconds in
// MessageXml for ErrorServerBusy.
func writeFault(w http.ResponseWriter, f failure) {
	extra := ""
	if f.backOff > 0 {
		extra = `<t:MessageXml xmlns:t="` + nsTypes + `"><t:Value Name="BackOffMilliseconds">` + strconv.FormatInt(f.backOff.Milliseconds(), 10) + `</t:Value></t:MessageXml>`
	}
	body := `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="` + nsSOAP + `"><s:Body><s:Fault>` +
		`<faultcode xmlns:a="` + nsTypes + `">a:` + esc(f.code) + `</faultcode><faultstring xml:lang="en-US">` + esc(f.text) + `</faultstring>` +
		`<detail><e:ResponseCode xmlns:e="` + nsErrors + `">` + esc(f.code) + `</e:ResponseCode><e:Message xmlns:e="` + nsErrors + `">` + esc(f.text) +
		`</e:Message>` + extra + `</detail></s:Fault></s:Body></s:Envelope>`
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = io.WriteString(w, body)
}
