package dav

import (
	"bytes"
	"strings"
	"time"

	"github.com/emersion/go-vcard"

	"github.com/serversync/serversync"
)

// encodeContact writes a vCard 4.0.
func encodeContact(c *serversync.Contact) ([]byte, error) {
	card := vcard.Card{}
	card.SetValue(vcard.FieldVersion, "4.0")
	card.SetValue(vcard.FieldProductID, prodID)
	card.SetValue(vcard.FieldUID, c.UID)
	fn := c.DisplayName
	if fn == "" {
		fn = strings.TrimSpace(strings.Join(nonEmpty(c.Prefix, c.GivenName, c.MiddleName, c.FamilyName, c.Suffix), " "))
	}
	if fn == "" {
		fn = c.Company
	}
	if fn == "" && len(c.Emails) > 0 {
		fn = c.Emails[0].Value
	}
	if fn == "" {
		return nil, badData("the contact has no name, company or email address")
	}
	card.SetValue(vcard.FieldFormattedName, fn)
	card.SetName(&vcard.Name{FamilyName: c.FamilyName, GivenName: c.GivenName, AdditionalName: c.MiddleName,
		HonorificPrefix: c.Prefix, HonorificSuffix: c.Suffix})
	if c.Nickname != "" {
		card.SetValue(vcard.FieldNickname, c.Nickname)
	}
	for _, e := range c.Emails {
		card.Add(vcard.FieldEmail, typed(e))
	}
	for _, p := range c.Phones {
		card.Add(vcard.FieldTelephone, typed(p))
	}
	for _, a := range c.Addresses {
		addr := &vcard.Address{Field: &vcard.Field{Params: vcard.Params{}}, StreetAddress: a.Street, Locality: a.City,
			Region: a.Region, PostalCode: a.PostalCode, Country: a.Country}
		if a.Type != "" {
			addr.Field.Params.Set(vcard.ParamType, a.Type)
		}
		card.AddAddress(addr)
	}
	if c.Company != "" || c.Department != "" {
		org := c.Company
		if c.Department != "" {
			org += ";" + c.Department
		}
		card.Set(vcard.FieldOrganization, &vcard.Field{Value: org})
	}
	if c.JobTitle != "" {
		card.SetValue(vcard.FieldTitle, c.JobTitle)
	}
	if !c.Birthday.IsZero() {
		card.SetValue(vcard.FieldBirthday, c.Birthday.Format("20060102"))
	}
	if c.Notes != "" {
		card.SetValue(vcard.FieldNote, c.Notes)
	}
	card.SetRevision(time.Now().UTC())
	var buf bytes.Buffer
	if err := vcard.NewEncoder(&buf).Encode(card); err != nil {
		return nil, badData("%v", err)
	}
	return buf.Bytes(), nil
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func typed(v serversync.ContactValue) *vcard.Field {
	f := &vcard.Field{Value: v.Value, Params: vcard.Params{}}
	if v.Type != "" {
		f.Params.Set(vcard.ParamType, v.Type)
	}
	return f
}

// contactType is the first TYPE of a field that says something (vCard 3's
// INTERNET, PREF and VOICE do not).
func contactType(f *vcard.Field) string {
	for _, t := range f.Params.Types() {
		for _, one := range strings.Split(t, ",") {
			switch lt := strings.ToLower(strings.TrimSpace(one)); lt {
			case "", "internet", "pref", "voice", "x400":
			default:
				return lt
			}
		}
	}
	return ""
}

// decodeContact reads a vCard 3.0 or 4.0.
func decodeContact(data []byte) (c *serversync.Contact, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, badData("the vCard parser failed: %v", r)
		}
	}()
	card, err := vcard.NewDecoder(bytes.NewReader(data)).Decode()
	if err != nil {
		return nil, badData("%v", err)
	}
	c = &serversync.Contact{}
	c.UID = card.Value(vcard.FieldUID)
	c.DisplayName = card.PreferredValue(vcard.FieldFormattedName)
	if n := card.Name(); n != nil {
		c.FamilyName, c.GivenName, c.MiddleName = n.FamilyName, n.GivenName, n.AdditionalName
		c.Prefix, c.Suffix = n.HonorificPrefix, n.HonorificSuffix
	}
	c.Nickname = card.Value(vcard.FieldNickname)
	for _, f := range card[vcard.FieldEmail] {
		c.Emails = append(c.Emails, serversync.ContactValue{Type: contactType(f), Value: f.Value})
	}
	for _, f := range card[vcard.FieldTelephone] {
		v := f.Value
		if len(v) >= 4 && strings.EqualFold(v[:4], "tel:") {
			v = v[4:]
		}
		c.Phones = append(c.Phones, serversync.ContactValue{Type: contactType(f), Value: v})
	}
	for _, a := range card.Addresses() {
		street := a.StreetAddress
		if a.ExtendedAddress != "" {
			street = strings.TrimSpace(a.ExtendedAddress + "\n" + street)
		}
		c.Addresses = append(c.Addresses, serversync.PostalAddress{Type: contactType(a.Field), Street: street,
			City: a.Locality, Region: a.Region, PostalCode: a.PostalCode, Country: a.Country})
	}
	if org := card.Get(vcard.FieldOrganization); org != nil {
		parts := strings.SplitN(org.Value, ";", 3)
		c.Company = parts[0]
		if len(parts) > 1 {
			c.Department = parts[1]
		}
	}
	c.JobTitle = card.Value(vcard.FieldTitle)
	if b := strings.TrimSpace(card.Value(vcard.FieldBirthday)); b != "" {
		c.Birthday = parseBirthday(b)
	}
	c.Notes = card.Value(vcard.FieldNote)
	for _, f := range []*string{&c.DisplayName, &c.Nickname, &c.JobTitle, &c.Notes, &c.Company, &c.Department} {
		*f = unescapeText(*f)
	}
	if rev, err := card.Revision(); err == nil {
		c.Modified = rev
	}
	return c, nil
}

// parseBirthday accepts the forms vCard 3 and 4 clients write; a birthday without
// a year ("--0517") or unreadable is dropped rather than invented.
func parseBirthday(b string) time.Time {
	if i := strings.IndexByte(b, 'T'); i > 0 {
		b = b[:i]
	}
	for _, layout := range []string{"20060102", "2006-01-02"} {
		if t, err := time.Parse(layout, b); err == nil {
			return t
		}
	}
	return time.Time{}
}

// unescapeText undoes the TEXT escapes go-vcard's decoder leaves in ("\;", "\,").
var textUnescaper = strings.NewReplacer(`\;`, ";", `\,`, ",", `\\`, `\`)

func unescapeText(s string) string { return textUnescaper.Replace(s) }
