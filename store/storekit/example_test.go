package storekit_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
	"github.com/serversync/serversync/store/storekit"
)

// A store outside this module persists a mailbox with its password sealed, and
// reads it back.
func ExampleEncodeRecord() {
	ctx := context.Background()
	key, err := auth.NewKey(bytes.Repeat([]byte{7}, auth.KeySize)) // from your key management
	if err != nil {
		panic(err)
	}
	sealer := auth.NewSealer(auth.NewStaticKeys(key))

	m := &serversync.Mailbox{ID: "mb-1", EmailAddress: "alice@example.com", Password: auth.NewSecret("hunter2")}
	data, err := storekit.EncodeRecord(ctx, sealer, "mailbox", m.ID, m)
	if err != nil {
		panic(err)
	}
	fmt.Println("password in the clear:", strings.Contains(string(data), "hunter2"))

	var back serversync.Mailbox
	if err := storekit.DecodeRecord(ctx, sealer, "mailbox", m.ID, data, &back); err != nil {
		panic(err)
	}
	fmt.Println(back.EmailAddress, back.Password.Reveal())

	// Sealed values are bound to their record: under another ID they do not open.
	err = storekit.DecodeRecord(ctx, sealer, "mailbox", "mb-2", data, &back)
	fmt.Println("read as another mailbox:", err != nil)
	// Output:
	// password in the clear: false
	// alice@example.com hunter2
	// read as another mailbox: true
}

// ClaimOutgoing in a store that selects in Go: pick the claimable emails, longest
// waiting first, and mark each claimed.
func ExampleClaim() {
	now := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	queue := []*serversync.EmailActivity{
		{ID: "later", Status: serversync.StatusPendingSend, NextAttemptAt: now.Add(time.Minute)},
		{ID: "due", Status: serversync.StatusPendingSend, NextAttemptAt: now.Add(-time.Minute)},
		{ID: "orphaned", Status: serversync.StatusSending, ClaimedBy: "dead-host", ClaimExpiresAt: now.Add(-time.Hour), Attempts: 1},
		{ID: "sent", Status: serversync.StatusSent},
	}
	req := serversync.ClaimRequest{Host: "host-a", Now: now, TTL: 5 * time.Minute, Limit: 10}
	type candidate struct {
		a     *serversync.EmailActivity
		since time.Time
	}
	var due []candidate
	for _, a := range queue {
		if since, ok := storekit.Claimable(a, req.Now); ok {
			due = append(due, candidate{a, since})
		}
	}
	slices.SortStableFunc(due, func(x, y candidate) int { return x.since.Compare(y.since) })
	for _, c := range due {
		storekit.Claim(c.a, req)
		fmt.Println(c.a.ID, c.a.Status, c.a.ClaimedBy, c.a.ClaimExpiresAt.Format(time.TimeOnly), "attempt", c.a.Attempts)
	}
	// Output:
	// orphaned Sending host-a 10:05:00 attempt 2
	// due Sending host-a 10:05:00 attempt 1
}
