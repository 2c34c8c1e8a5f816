// Package durable writes files so that they survive a crash whole: each is
// written under a temporary name in its directory and synced, renamed to
// its name, and the directory is synced.
//
// Concurrent writers into one directory share its syncs (a group commit):
// a writer whose rename is done waits for a sync of the directory that
// began after the rename, starting one when none is running, and one sync
// serves every writer that waits for it. A writer never returns before
// such a sync has ended, so the guarantee is that of a sync per writer,
// for fewer syncs: with 8 requests at a time writing receipts and outbox
// records, as on the devnet, most writers share one.
package durable
