/*
 * keyed_scan.h
 *		The rows of one key after another from a B-tree index whose first
 *		two columns are bigint keys (account_id and subscription_id or
 *		invoice_id), optionally from a date bound on its third column on
 *		(keyed_scan.c).
 */
#ifndef KEYED_SCAN_H
#define KEYED_SCAN_H

#include "access/stratnum.h"
#include "executor/tuptable.h"
#include "utils/date.h"
#include "utils/snapshot.h"

typedef struct KeyedScan KeyedScan;

/*
 * A scan of heap through index under snapshot.  bound_strategy is
 * BTGreaterStrategyNumber or BTGreaterEqualStrategyNumber for rows whose
 * third index column (a date) is after, or on or after, a seek's bound;
 * InvalidStrategy for every row of a key.
 */
extern KeyedScan *billing_keyed_scan_begin(Oid heap, Oid index, StrategyNumber bound_strategy, Snapshot snapshot);

/*
 * The rows of (key1, key2) from bound on.  Seeks should come in key order:
 * the scan then steps forward to a near key instead of descending the index
 * again.
 */
extern void billing_keyed_scan_seek(KeyedScan *scan, int64 key1, int64 key2, DateADT bound);

/* The next visible row of the sought key, in index order, or NULL. */
extern TupleTableSlot *billing_keyed_scan_next(KeyedScan *scan);

/* The 1-based attribute number of the scanned table's column named name. */
extern AttrNumber billing_keyed_scan_column(KeyedScan *scan, const char *name);

extern void billing_keyed_scan_end(KeyedScan *scan);

#endif							/* KEYED_SCAN_H */
