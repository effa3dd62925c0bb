package imapconn_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log"
	"net"
	"net/textproto"
	"time"

	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/imapconn"
)

// Fetch new mail, store the cursor, and poll again.
func Example() {
	addr, stop := startExampleServer() // an in-memory IMAP server with user alice
	defer stop()

	conn := imapconn.New(nil)
	target := &serversync.Target{
		MailboxID: "alice",
		Endpoint: serversync.Endpoint{
			Host: addr.IP.String(), Port: addr.Port,
			TLS:                serversync.TLSNone, // use TLSImplicit or TLSStartTLS for real servers
			AllowPlaintextAuth: true,
			Timeout:            10 * time.Second,
		},
		Credentials: auth.Credentials{Kind: auth.KindPassword, Username: "alice", Password: auth.NewSecret("alice-pass")},
	}
	ctx := context.Background()
	sess, err := conn.OpenIncoming(ctx, target)
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()

	// Deliver two messages, e.g. a copy of sent mail. IMAP has folders: its
	// sessions are a serversync.FolderSession, which can append.
	folders := sess.(serversync.FolderSession)
	for _, subject := range []string{"Quote request", "Re: Quote request"} {
		msg := []byte("From: bob@example.test\r\nSubject: " + subject + "\r\n\r\nHello\r\n")
		if err := folders.Append(ctx, "INBOX", time.Now(), bytes.NewReader(msg), int64(len(msg))); err != nil {
			log.Fatal(err)
		}
	}

	var cursor []byte // kept in the store with each tracked message
	res, err := sess.Fetch(ctx, serversync.FetchRequest{Cursor: cursor}, func(m *serversync.RemoteMessage) error {
		header, err := textproto.NewReader(bufio.NewReader(m.Body)).ReadMIMEHeader()
		if err != nil {
			return err
		}
		fmt.Printf("UID %s: %s\n", m.Ref, header.Get("Subject"))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	cursor = res.Cursor

	// Nothing new: one SELECT, no callback.
	res, err = sess.Fetch(ctx, serversync.FetchRequest{Cursor: cursor}, func(*serversync.RemoteMessage) error {
		fmt.Println("unexpected")
		return nil
	})
	fmt.Println(err, bytes.Equal(res.Cursor, cursor))
	// Output:
	// UID 1: Quote request
	// UID 2: Re: Quote request
	// <nil> true
}

func startExampleServer() (addr *net.TCPAddr, stop func()) {
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("alice", "alice-pass")
	_ = user.Create("INBOX", nil)
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return ln.Addr().(*net.TCPAddr), func() {
		_ = srv.Close()
		<-done
	}
}
