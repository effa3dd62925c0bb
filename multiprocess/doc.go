// Package multiprocess holds the multi-process test of DESIGN §7 and nothing else:
// three Syncer processes share one PostgreSQL database and real Dovecot mailboxes
// while mail arrives and queued email goes out through Postfix; one of them is
// killed with SIGKILL in the middle of a sync and the others take its mailboxes
// over. The test checks that every message is tracked exactly once, that no mailbox
// is ever processed by two sessions at once, that no email is sent twice, and that
// the mail server never has more of the profile's connections open at once than its
// MaxConcurrentConnections, whichever hosts hold them.
//
// It needs PostgreSQL and the mail servers of scripts/mailservers, and skips
// without them:
//
//	scripts/mailservers start
//	set -a; . /tmp/serversync-mail/env; set +a
//	SERVERSYNC_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//		go test -race ./multiprocess/
package multiprocess
