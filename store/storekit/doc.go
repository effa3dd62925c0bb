// Package storekit holds the parts of the [serversync.Store] contract that every
// implementation must apply the same way, published so a store written outside this
// module can meet the contract as store/memory, store/sqlite and store/postgres do.
//
// To write a Store:
//
//  1. Implement [serversync.Store] (and, if several processes share your store,
//     [serversync.ConnectionSlotStore] and [serversync.AppTokenStore]; if it seals
//     secrets at rest, [serversync.SecretRotator]). Its comments are the contract.
//  2. Use [Claim] to mark each email ClaimOutgoing claims, and [Claimable] to pick
//     them if your store selects in Go rather than in a query: the Syncer tells
//     claims apart by the Attempts they leave, so every store must count the same way.
//  3. Refuse bad records with [Required], [Unchangeable], [CheckActivityUpdate] and
//     the CheckAppToken functions, so callers get the same
//     *serversync.ValidationError from every store; keep app tokens by
//     [KeepStoredAppToken].
//  4. If you persist records, store them with [EncodeRecord] and read them with
//     [DecodeRecord] through an [auth.Sealer]: every auth.Secret field is sealed, so
//     no credential reaches your storage in the clear. [ResealRecord] is
//     RotateSecrets for one record. Activities, which hold no secret, are best
//     kept as [EncodeActivity] splits them: their JSON without the bodies, and the
//     bodies compressed beside it; [DecodeActivity] reads both back.
//  5. Return [serversync.ErrClosed] (wrapped or not) from every call after Close.
//  6. Run store/storetest from your tests: storetest.Run (or storetest.RunHarness, to
//     cover secret rotation) and storetest.Benchmark.
//
// # Records
//
// EncodeRecord stores a record (a Profile, a Mailbox, an EmailActivity, any struct)
// as a JSON envelope:
//
//	{"record": <the record as JSON, secrets shown as "[REDACTED]">,
//	 "sealed": {"Password": "v1:<key>:<…>", "OAuthToken.RefreshToken": "v1:…"}}
//
// Secret fields are found by reflection (exported struct fields, nested structs
// included), named by their dotted Go path, and sealed with the additional data
// "<kind>/<id>/<path>", which binds each ciphertext to its record and field: a
// sealed value copied into another record, or read back under another kind or ID,
// does not open. Choose one kind per record type ("profile", "mailbox") and never
// change it, since stored data depends on it.
//
// Everything in this package is safe for concurrent use.
package storekit
