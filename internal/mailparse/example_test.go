package mailparse_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/internal/mailparse"
)

func ExampleParse() {
	raw := "From: Alice <alice@example.com>\r\n" +
		"To: crm@contoso.com\r\n" +
		"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= CRM:0001001002\r\n" +
		"Date: Tue, 3 Jan 2006 10:00:00 +0100\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Hello!\r\n"

	m, err := mailparse.Parse(strings.NewReader(raw), &mailparse.Options{MaxAttachmentSize: 5 << 20})
	var perr *mailparse.ParseError
	if err != nil && !errors.As(err, &perr) {
		fmt.Println("incomplete message, read it again later:", err)
		return
	}
	// A *ParseError still leaves a message to track; Raw keeps the original. A
	// message that was only odd (here: no Message-ID) has no error, only warnings.
	a := &serversync.EmailActivity{
		From:          serversync.Address(m.From),
		Subject:       m.Subject,
		TextBody:      m.TextBody,
		Raw:           m.Raw,
		ParseError:    m.ParseError,
		ParseWarnings: m.ParseWarnings,
	}
	for _, to := range m.To {
		a.To = append(a.To, serversync.Address(to))
	}
	fmt.Println(a.From.Email, "|", a.To[0].Email, "|", a.Subject, "|", strings.TrimSpace(a.TextBody))
	fmt.Printf("broken: %t | warnings: %q | raw kept: %t\n", a.ParseError != "", a.ParseWarnings, a.Raw != nil)

	format := serversync.DefaultOrgSettings().TrackingToken
	format.DeploymentNumber = 1
	fmt.Println(mailparse.FindToken(mailparse.TokenFormat(format), a.Subject))
	// Output:
	// alice@example.com | crm@contoso.com | Grüße CRM:0001001002 | Hello!
	// broken: false | warnings: ["header: no Message-ID"] | raw kept: false
	// CRM:0001001002 true
}

func ExampleFormatToken() {
	format := mailparse.TokenFormat{Prefix: "CRM", DeploymentNumber: 1, UserDigits: 3, CounterDigits: 3}
	token := mailparse.FormatToken(format, 1, 2)
	subject := mailparse.AddToken(format, "Your order", token)
	fmt.Println(subject)
	fmt.Println(mailparse.FindToken(format, "RE: "+subject))
	// Output:
	// Your order CRM:0001001002
	// CRM:0001001002 true
}
