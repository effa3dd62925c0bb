package ews

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParseReply feeds the SOAP reply parser anything: it must never panic,
// and what it returns must be one of its three outcomes.
func FuzzParseReply(f *testing.F) {
	f.Add(500, []byte(busyFault))
	f.Add(200, []byte(syncReply))
	f.Add(200, []byte(`<s:Envelope xmlns:s="`+nsSOAP+`"><s:Body/></s:Envelope>`))
	f.Fuzz(func(t *testing.T, status int, raw []byte) {
		msgs, err := parseReply(status, raw)
		var re *ResponseError
		var pe *ProtocolError
		switch {
		case err == nil:
		case errors.As(err, &re):
			if re.BackOff < 0 || re.BackOff > 24*time.Hour {
				t.Fatalf("back-off %s out of range", re.BackOff)
			}
			if msgs != nil {
				t.Fatal("messages with a fault")
			}
		case errors.As(err, &pe):
		default:
			t.Fatalf("unexpected error type %T", err)
		}
		for i := range msgs {
			_ = msgs[i].err(status)
			_ = msgs[i].includesLast()
			for _, ch := range msgs[i].ChangesParsed.List {
				if ch.Item != nil {
					_ = ch.Item.received()
				}
			}
		}
	})
}

const busyFault = `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>` +
	`<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode>` +
	`<faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring><detail>` +
	`<e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode>` +
	`<e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server cannot service this request right now. Try again later.</e:Message>` +
	`<t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">297749</t:Value></t:MessageXml>` +
	`</detail></s:Fault></s:Body></s:Envelope>`

const syncReply = `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>` +
	`<h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"/>` +
	`</s:Header><s:Body><m:SyncFolderItemsResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">` +
	`<m:ResponseMessages><m:SyncFolderItemsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>` +
	`<m:SyncState>H4sIAAAAAAAEAO29B2AcSZ</m:SyncState><m:IncludesLastItemInRange>false</m:IncludesLastItemInRange><m:Changes>` +
	`<t:Create><t:Message><t:ItemId Id="AAMkAGI2=" ChangeKey="CQAAABYA"/><t:DateTimeReceived>2026-12-01T10:00:00Z</t:DateTimeReceived></t:Message></t:Create>` +
	`<t:Delete><t:ItemId Id="AAMkAGI3=" ChangeKey="CQAAABYA"/></t:Delete><t:ReadFlagChange><t:ItemId Id="AAMkAGI4="/><t:IsRead>true</t:IsRead></t:ReadFlagChange>` +
	`</m:Changes></m:SyncFolderItemsResponseMessage></m:ResponseMessages></m:SyncFolderItemsResponse></s:Body></s:Envelope>`

// TestParseReplyDocumentedShapes reads the replies Microsoft documents.
func TestParseReplyDocumentedShapes(t *testing.T) {
	_, err := parseReply(500, []byte(busyFault))
	var re *ResponseError
	if !errors.As(err, &re) || re.Code != "ErrorServerBusy" || re.BackOff != 297749*time.Millisecond || !re.Fault {
		t.Fatalf("busy fault read as %#v, %v", re, err)
	}
	msgs, err := parseReply(200, []byte(syncReply))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("sync reply: %v %d", err, len(msgs))
	}
	m := msgs[0]
	if m.err(200) != nil || m.SyncState != "H4sIAAAAAAAEAO29B2AcSZ" || m.includesLast() {
		t.Fatalf("sync reply read as %+v", m)
	}
	var kinds []string
	for _, ch := range m.ChangesParsed.List {
		kinds = append(kinds, ch.XMLName.Local)
	}
	if strings.Join(kinds, ",") != "Create,Delete,ReadFlagChange" || m.ChangesParsed.List[0].Item.ItemID.ID != "AAMkAGI2=" ||
		m.ChangesParsed.List[1].ItemID.ID != "AAMkAGI3=" || m.ChangesParsed.List[0].Item.received().IsZero() {
		t.Fatalf("changes read as %+v", m.ChangesParsed.List)
	}
	if _, err := parseReply(200, []byte("<html>login</html>")); err == nil {
		t.Fatal("HTML read as SOAP")
	}
}
