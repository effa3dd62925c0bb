package ewstest_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/serversync/serversync/connector/ews/ewstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// post sends a raw SOAP request, as a client other than this module's would.
func post(t *testing.T, srv *ewstest.Server, user, password, header, body string) (int, string) {
	t.Helper()
	env := `<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" ` +
		`xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">` +
		`<soap:Header><t:RequestServerVersion Version="Exchange2016"/>` + header + `</soap:Header><soap:Body>` + body + `</soap:Body></soap:Envelope>`
	req, err := http.NewRequest(http.MethodPost, srv.EWSURL(), strings.NewReader(env))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	client := srv.Client()
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

const syncInbox = `<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>` +
	`<m:SyncFolderId><t:DistinguishedFolderId Id="inbox"/></m:SyncFolderId>%s<m:MaxChangesReturned>512</m:MaxChangesReturned></m:SyncFolderItems>`

// The replies have the shape Microsoft documents: response messages with a
// ResponseClass and ResponseCode, SOAP faults with the code in the detail, and
// 401 without credentials.
func TestProtocolShapes(t *testing.T) {
	srv, err := ewstest.NewServer(nil)
	require.NoError(t, err)
	defer srv.Close()
	srv.AddUser("alice", "pw", "alice@example.test")
	srv.AddUser("svc", "pw", "")
	_, err = srv.Deliver("alice@example.test", "inbox", []byte("Subject: hi\r\n\r\nhello\r\n"), time.Now())
	require.NoError(t, err)

	status, _ := post(t, srv, "", "", "", strings.Replace(syncInbox, "%s", "", 1))
	assert.Equal(t, http.StatusUnauthorized, status)

	status, body := post(t, srv, "alice", "pw", "", strings.Replace(syncInbox, "%s", "", 1))
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `<m:SyncFolderItemsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:SyncState>`)
	assert.Contains(t, body, `<m:IncludesLastItemInRange>true</m:IncludesLastItemInRange><m:Changes><t:Create><t:Message><t:ItemId Id="`)

	status, body = post(t, srv, "alice", "pw", "", strings.Replace(syncInbox, "%s", "<m:SyncState>bogus</m:SyncState>", 1))
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `ResponseClass="Error"`)
	assert.Contains(t, body, `<m:ResponseCode>ErrorInvalidSyncStateData</m:ResponseCode>`)

	imp := `<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>alice@example.test</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>`
	status, body = post(t, srv, "svc", "pw", imp, strings.Replace(syncInbox, "%s", "", 1))
	assert.Equal(t, http.StatusInternalServerError, status)
	assert.Contains(t, body, `<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorImpersonateUserDenied</faultcode>`)
	srv.AllowImpersonation("svc", "alice@example.test")
	status, body = post(t, srv, "svc", "pw", imp, strings.Replace(syncInbox, "%s", "", 1))
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "<t:Create>")

	srv.InjectBusy("", 1, 1500*time.Millisecond)
	status, body = post(t, srv, "alice", "pw", "", strings.Replace(syncInbox, "%s", "", 1))
	assert.Equal(t, http.StatusInternalServerError, status)
	assert.Contains(t, body, `<e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode>`)
	assert.Contains(t, body, `<t:Value Name="BackOffMilliseconds">1500</t:Value>`)

	ops := map[string]int{}
	for _, r := range srv.Requests() {
		ops[r.Code]++
	}
	assert.Equal(t, map[string]int{"NoError": 2, "ErrorInvalidSyncStateData": 1, "ErrorImpersonateUserDenied": 1, "ErrorServerBusy": 1}, ops, "401s are not EWS requests")
}

// Without a keytab the server offers and takes Basic alone, and says so.
func TestBasicOnlyWithoutKeytab(t *testing.T) {
	srv, err := ewstest.NewServer(nil)
	require.NoError(t, err)
	defer srv.Close()
	srv.AddUser("alice", "pw", "alice@example.test")
	client := srv.Client()
	defer client.CloseIdleConnections()
	for _, header := range []string{"", "Negotiate YIIBbm9wZQ==", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:wrong"))} {
		req, err := http.NewRequest(http.MethodPost, srv.EWSURL(), strings.NewReader("<soap/>"))
		require.NoError(t, err)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, header)
		assert.Equal(t, []string{`Basic realm="ewstest"`}, resp.Header.Values("WWW-Authenticate"), header)
	}
	status, _ := post(t, srv, "alice", "pw", "", strings.Replace(syncInbox, "%s", "", 1))
	assert.Equal(t, http.StatusOK, status)
	require.Len(t, srv.Requests(), 1)
	assert.Equal(t, "Basic", srv.Requests()[0].Auth)
	assert.Equal(t, "alice", srv.Requests()[0].Login)

	_, err = ewstest.NewServer(&ewstest.Options{Keytab: t.TempDir() + "/no-such.keytab"})
	require.Error(t, err, "a keytab that cannot be read is refused at once")
}
