package imapconn

import (
	"context"

	"github.com/emersion/go-imap/v2"

	"github.com/serversync/serversync"
)

var _ serversync.CountingSession = (*session)(nil)

// CountMessages implements serversync.CountingSession with STATUS (MESSAGES):
// the folder is not selected, nothing is fetched.
func (s *session) CountMessages(ctx context.Context, folder string) (int, error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	var n int
	err := s.run(ctx, "count", func() error {
		data, err := s.client.Status(s.mailboxName(folder), &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			return err
		}
		if data.NumMessages != nil {
			n = int(*data.NumMessages)
		}
		return nil
	})
	return n, err
}
