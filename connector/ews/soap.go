package ews

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The XML namespaces of EWS requests and replies.
const (
	nsSOAP     = "http://schemas.xmlsoap.org/soap/envelope/"
	nsTypes    = "http://schemas.microsoft.com/exchange/services/2006/types"
	nsMessages = "http://schemas.microsoft.com/exchange/services/2006/messages"
)

// esc escapes text for an XML element or attribute value.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// envelope wraps a request body in a SOAP envelope with the RequestServerVersion
// header and, when impersonate is set, the ExchangeImpersonation header naming
// that mailbox by its primary SMTP address.
func envelope(version, impersonate, body string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` +
		`<soap:Envelope xmlns:soap="` + nsSOAP + `" xmlns:t="` + nsTypes + `" xmlns:m="` + nsMessages + `">` +
		`<soap:Header><t:RequestServerVersion Version="` + esc(version) + `"/>`)
	if impersonate != "" {
		b.WriteString(`<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>` + esc(impersonate) +
			`</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>`)
	}
	b.WriteString(`</soap:Header><soap:Body>` + body + `</soap:Body></soap:Envelope>`)
	return b.Bytes()
}

// soapEnvelope is a reply: a SOAP fault, or one operation's response with its
// response messages. Elements are matched by local name only, so the prefixes
// and namespace declarations a server picks do not matter.
type soapEnvelope struct {
	Body struct {
		Fault    *soapFault `xml:"Fault"`
		Response *struct {
			XMLName  xml.Name
			Messages struct {
				List []responseMessage `xml:",any"`
			} `xml:"ResponseMessages"`
		} `xml:",any"`
	} `xml:"Body"`
}

// soapFault is a SOAP 1.1 fault; EWS puts its ResponseCode (ErrorServerBusy,
// ErrorImpersonateUserDenied, …) and MessageXml in the detail.
type soapFault struct {
	Code   string `xml:"faultcode"`
	String string `xml:"faultstring"`
	Detail struct {
		ResponseCode string     `xml:"ResponseCode"`
		Message      string     `xml:"Message"`
		MessageXML   messageXML `xml:"MessageXml"`
	} `xml:"detail"`
}

// messageXML holds the name/value pairs EWS adds to some errors, among them
// BackOffMilliseconds with ErrorServerBusy.
type messageXML struct {
	Values []struct {
		Name  string `xml:"Name,attr"`
		Value string `xml:",chardata"`
	} `xml:"Value"`
}

// backOff is BackOffMilliseconds, or 0 when absent or not a number.
func (x messageXML) backOff() time.Duration {
	for _, v := range x.Values {
		if strings.EqualFold(v.Name, "BackOffMilliseconds") {
			if ms, err := strconv.ParseInt(strings.TrimSpace(v.Value), 10, 64); err == nil && ms > 0 && ms < int64(24*time.Hour/time.Millisecond) {
				return time.Duration(ms) * time.Millisecond
			}
		}
	}
	return 0
}

// responseMessage is one …ResponseMessage element. One type serves every
// operation used here: the fields an operation does not return stay empty.
type responseMessage struct {
	XMLName      xml.Name
	Class        string     `xml:"ResponseClass,attr"`
	MessageText  string     `xml:"MessageText"`
	ResponseCode string     `xml:"ResponseCode"`
	MessageXML   messageXML `xml:"MessageXml"`

	// SyncFolderItems
	SyncState     string `xml:"SyncState"`
	IncludesLast  string `xml:"IncludesLastItemInRange"`
	ChangesParsed struct {
		List []change `xml:",any"`
	} `xml:"Changes"`
	// GetItem
	Items struct {
		List []item `xml:",any"`
	} `xml:"Items"`
	// GetFolder, CreateFolder
	Folders struct {
		List []folder `xml:",any"`
	} `xml:"Folders"`
	// FindFolder
	RootFolder struct {
		Folders struct {
			List []folder `xml:",any"`
		} `xml:"Folders"`
		// FindItem
		Items struct {
			List []item `xml:",any"`
		} `xml:"Items"`
	} `xml:"RootFolder"`
}

// err is the message's failure, or nil when its class is Success or Warning.
func (r *responseMessage) err(status int) *ResponseError {
	if !strings.EqualFold(r.Class, "Error") {
		return nil
	}
	return &ResponseError{HTTPStatus: status, Code: strings.TrimSpace(r.ResponseCode), Message: shorten(r.MessageText), BackOff: r.MessageXML.backOff()}
}

// includesLast reports IncludesLastItemInRange; a missing element means the
// server has nothing more to give.
func (r *responseMessage) includesLast() bool {
	v := strings.TrimSpace(r.IncludesLast)
	return v == "" || strings.EqualFold(v, "true") || v == "1"
}

// change is one element of SyncFolderItems' Changes: Create, Update and Delete
// (with the item or its ItemId), ReadFlagChange.
type change struct {
	XMLName xml.Name
	ItemID  *itemID `xml:"ItemId"` // Delete, ReadFlagChange
	Item    *item   `xml:",any"`   // Create, Update: a Message, an Item, a MeetingRequest…
}

type itemID struct {
	ID        string `xml:"Id,attr"`
	ChangeKey string `xml:"ChangeKey,attr"`
}

type item struct {
	XMLName          xml.Name
	ItemID           itemID `xml:"ItemId"`
	MimeContent      string `xml:"MimeContent"`
	DateTimeReceived string `xml:"DateTimeReceived"`
	Size             string `xml:"Size"`
	// Calendar items, contacts and tasks (the ACT workload).
	actFields
}

func (it *item) received() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, strings.TrimSpace(it.DateTimeReceived))
	return t
}

type folder struct {
	XMLName     xml.Name
	FolderID    itemID `xml:"FolderId"`
	DisplayName string `xml:"DisplayName"`
	TotalCount  string `xml:"TotalCount"`
	UnreadCount string `xml:"UnreadCount"`
}

// parseReply reads an EWS reply. A SOAP fault comes back as a *ResponseError;
// a reply that is not a SOAP envelope as a *ProtocolError. It never panics,
// whatever raw holds (FuzzParseReply).
func parseReply(status int, raw []byte) ([]responseMessage, error) {
	var env soapEnvelope
	dec := xml.NewDecoder(bytes.NewReader(raw))
	dec.Strict = true
	if err := dec.Decode(&env); err != nil {
		return nil, &ProtocolError{Reason: "the reply is not a SOAP envelope: " + shorten(err.Error())}
	}
	if f := env.Body.Fault; f != nil {
		code := strings.TrimSpace(f.Detail.ResponseCode)
		if code == "" {
			// faultcode is a QName such as "a:ErrorServerBusy" or "soap:Client".
			code = strings.TrimSpace(f.Code)
			if i := strings.LastIndexByte(code, ':'); i >= 0 {
				code = code[i+1:]
			}
		}
		return nil, &ResponseError{HTTPStatus: status, Code: code, Message: shorten(firstNonEmpty(f.Detail.Message, f.String)),
			BackOff: f.Detail.MessageXML.backOff(), Fault: true}
	}
	if env.Body.Response == nil {
		return nil, &ProtocolError{Reason: "the reply's SOAP body is empty"}
	}
	return env.Body.Response.Messages.List, nil
}

// ResponseError is a failure EWS reported, as a SOAP fault or as a response
// message of class Error. Code is EWS's ResponseCode ("ErrorAccessDenied",
// "ErrorServerBusy", …). The connector's *serversync.ConnectorError wraps it.
type ResponseError struct {
	HTTPStatus int
	Code       string
	Message    string
	// BackOff is the server's BackOffMilliseconds (ErrorServerBusy), 0 when none.
	BackOff time.Duration
	Fault   bool // a SOAP fault rather than a response message
}

func (e *ResponseError) Error() string {
	kind := "response"
	if e.Fault {
		kind = "SOAP fault"
	}
	if e.Message == "" {
		return fmt.Sprintf("ews: %s %s", kind, e.Code)
	}
	return fmt.Sprintf("ews: %s %s: %q", kind, e.Code, e.Message)
}

// Is reports whether e has one of codes, whatever the case.
func (e *ResponseError) Is(target error) bool {
	t, ok := target.(*ResponseError)
	return ok && t.Code != "" && strings.EqualFold(t.Code, e.Code)
}

// is reports whether e's code is one of codes.
func (e *ResponseError) is(codes ...string) bool {
	for _, c := range codes {
		if strings.EqualFold(e.Code, c) {
			return true
		}
	}
	return false
}

// ProtocolError is a reply that is not the SOAP EWS sends.
type ProtocolError struct{ Reason string }

func (e *ProtocolError) Error() string { return "ews: " + e.Reason }

func shorten(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 500 {
		return s[:500] + "…"
	}
	return s
}

func firstNonEmpty(a, b string) string {
	if strings.TrimSpace(a) != "" {
		return a
	}
	return b
}
