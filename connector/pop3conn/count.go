package pop3conn

import (
	"context"
	"fmt"
	"strings"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

var _ serversync.CountingSession = (*session)(nil)

// CountMessages implements serversync.CountingSession with STAT: how many
// messages the maildrop holds on this connection, without listing them.
func (s *session) CountMessages(ctx context.Context, folder string) (int, error) {
	if folder != "" && !strings.EqualFold(folder, "INBOX") {
		return 0, connector.Error("count", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeFolderNotFound,
			fmt.Errorf("pop3: no folder %q: POP3 has only the inbox", folder))
	}
	if err := s.usable(); err != nil {
		return 0, err
	}
	var n int
	err := s.call(ctx, "stat", func(ctx context.Context) error {
		var err error
		n, _, err = s.client.Stat(ctx)
		return err
	})
	if err != nil {
		return 0, s.broken(err)
	}
	return n, nil
}
