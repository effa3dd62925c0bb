package imapconn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

// WaitForChange selects folder and waits with IDLE until the server reports a
// new message, an expunge or a flag change there (nil), or ctx ends (an error
// wrapping ctx.Err(); the session stays usable: IDLE is ended politely). It
// returns at once when mail arrived since this session last fetched folder.
// IDLE is restarted every Options.IdleRestart. Without IDLE on the server it
// returns ErrIdleUnsupported.
func (s *session) WaitForChange(ctx context.Context, folder string) error {
	if err := s.usable(); err != nil {
		return err
	}
	if !s.caps.Has(imap.CapIdle) {
		return ErrIdleUnsupported
	}
	name := s.mailboxName(folder)
	// Forget updates our own commands caused (EXPUNGE after a move, EXISTS after
	// an append): the fresh SELECT below is the baseline.
	select {
	case <-s.changed:
	default:
	}
	var data *imap.SelectData
	if err := s.run(ctx, "select", func() (err error) {
		data, err = s.selectFolder(name, false)
		return err
	}); err != nil {
		return err
	}
	if known, ok := s.folders[name]; ok && (known.uidValidity != data.UIDValidity || data.UIDNext > known.uidNext) {
		return nil
	}

	for {
		var idle *imapclient.IdleCommand
		if err := s.run(ctx, "idle", func() (err error) {
			idle, err = s.client.Idle()
			return err
		}); err != nil {
			return err
		}
		timer := time.NewTimer(s.c.idleRestart)
		var result error
		restart := false
		select {
		case <-s.changed:
		case <-ctx.Done():
			result = connector.Error("idle", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeCanceled,
				fmt.Errorf("imap: idle: %w", ctxError(ctx)))
		case <-timer.C:
			restart = true
		case <-s.client.Closed():
		}
		timer.Stop()
		// End IDLE (DONE, then the tagged OK) whatever ctx says, bounded by the
		// endpoint timeout, so the session can be used again.
		if err := s.run(context.WithoutCancel(ctx), "idle", func() error {
			if err := idle.Close(); err != nil {
				return err
			}
			return idle.Wait()
		}); err != nil {
			if result != nil && errors.Is(err, ErrSessionBroken) {
				return result // ctx ended and the server went away too: report ctx
			}
			return err
		}
		if !restart {
			return result
		}
	}
}
