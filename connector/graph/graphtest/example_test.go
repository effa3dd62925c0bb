package graphtest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/serversync/serversync/connector/graph/graphtest"
)

// A client reads a mailbox's inbox through messages delta, following the
// links the server hands out.
func Example() {
	srv, err := graphtest.NewServer(nil)
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	srv.AddMailbox("alice@contoso.test", "tenant-1")
	srv.AddToken("app-token", graphtest.Principal{AppOnly: true, TenantID: "tenant-1",
		Permissions: []string{"Mail.ReadWrite", "Mail.Send"}})
	for _, subject := range []string{"Quote", "Invoice", "Order"} {
		mime := "From: carol@fabrikam.test\r\nTo: alice@contoso.test\r\nSubject: " + subject + "\r\n\r\nHello.\r\n"
		if _, err := srv.Deliver("alice@contoso.test", "inbox", []byte(mime), time.Now()); err != nil {
			panic(err)
		}
	}

	client := srv.Client() // trusts srv.RootCAsPEM()

	link := srv.URL() + "/v1.0/users/alice@contoso.test/mailFolders/inbox/messages/delta"
	for link != "" {
		req, _ := http.NewRequest("GET", link, nil)
		req.Header.Set("Authorization", "Bearer app-token")
		req.Header.Set("Prefer", `IdType="ImmutableId", odata.maxpagesize=2`)
		resp, err := client.Do(req)
		if err != nil {
			panic(err)
		}
		var page struct {
			Value []struct {
				Subject string `json:"subject"`
			} `json:"value"`
			NextLink  string `json:"@odata.nextLink"`
			DeltaLink string `json:"@odata.deltaLink"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			panic(err)
		}
		for _, m := range page.Value {
			fmt.Println(m.Subject)
		}
		link = page.NextLink // the deltaLink is kept for the next sync
	}
	// Output:
	// Quote
	// Invoice
	// Order
}
