// Package interop holds the end-to-end tests of the Syncer against the real
// Dovecot and Postfix that scripts/mailservers starts, with a SQLite store as users
// run it: email queued through the outgoing pipeline is submitted to Postfix,
// delivered to Dovecot, read back by the incoming pipeline and correlated; mail the
// host refuses ends in Undeliverable on the server; a wrong password disables only
// its own mailbox.
//
// The package has no code of its own, only tests, and they skip unless
// SERVERSYNC_INTEROP is set. To run them:
//
//	scripts/mailservers start
//	set -a; . /tmp/serversync-mail/env; set +a
//	go test -race ./interop/
//
// They use only the test users user0006 to user0010, which no other package's
// tests touch, so all packages can be tested at once.
//
// The Kerberos tests need the real MIT KDC of scripts/kdc (started before the mail
// servers; source its env file too) and skip without it. TestExchangeServerOverKerberos
// needs only the KDC: its Exchange Server is the EWS fake (connector/ews/ewstest)
// checking tickets with the KDC's HTTP/ keys.
package interop
