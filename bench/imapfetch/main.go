// Command imapfetch copies one IMAP folder into a Maildir with serversync's IMAP
// connector: the job mbsync does in bench/imap-vs-mbsync, so the two can be timed
// side by side on the same data and the same kind of destination.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/connector/imapconn"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:993", "IMAP server, implicit TLS")
	user := flag.String("user", "", "login")
	password := flag.String("pass", "", "password")
	caFile := flag.String("ca", "", "PEM file of an extra CA to trust")
	folder := flag.String("folder", "INBOX", "folder to copy")
	dest := flag.String("dest", "", "Maildir to write into (created)")
	parallel := flag.Int("parallel", 1, "connections for the initial fetch")
	flag.Parse()
	if err := run(*addr, *user, *password, *caFile, *folder, *dest, *parallel); err != nil {
		fmt.Fprintln(os.Stderr, "imapfetch:", err)
		os.Exit(1)
	}
}

func run(addr, user, password, caFile, folder, dest string, parallel int) error {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return err
	}
	var ca []byte
	if caFile != "" {
		if ca, err = os.ReadFile(caFile); err != nil {
			return err
		}
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dest, sub), 0o700); err != nil {
			return err
		}
	}
	target := &serversync.Target{
		EmailAddress: user,
		Endpoint:     serversync.Endpoint{Host: host, Port: port, TLS: serversync.TLSImplicit, RootCAsPEM: string(ca), Timeout: time.Minute},
		Credentials:  auth.Credentials{Kind: auth.KindPassword, Username: user, Password: auth.NewSecret(password)},
	}
	ctx := context.Background()
	session, err := imapconn.New(&imapconn.Options{MaxParallelFetch: parallel}).OpenIncoming(ctx, target)
	if err != nil {
		return err
	}
	defer session.Close()
	count, bytes := 0, int64(0)
	_, err = session.Fetch(ctx, serversync.FetchRequest{Folder: folder}, func(m *serversync.RemoteMessage) error {
		// Written like a Maildir delivery: to tmp/, then renamed into cur/.
		name := fmt.Sprintf("%d.%s.imapfetch:2,S", time.Now().UnixNano(), m.Ref)
		tmp := filepath.Join(dest, "tmp", name)
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		n, err := io.Copy(f, m.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		count, bytes = count+1, bytes+n
		return os.Rename(tmp, filepath.Join(dest, "cur", name))
	})
	if err != nil {
		return err
	}
	fmt.Printf("%d messages, %d bytes\n", count, bytes)
	return nil
}
