/*
 * keyed_scan.c
 *		The rows of one key after another (a subscription's billed lines, its
 *		usage, an invoice), read through a B-tree index by keys that come in
 *		index order.
 *
 * The engine reconciles its candidates in key order and needs, for each, the
 * few rows of another table under that key from a date on.  A lookup per
 * candidate descends the index each time (three pages, a binary search in
 * each), and as a lateral subquery of the stream it also ran the executor
 * once per candidate: at month-end two such lookups were 1.9 s of a run over
 * a million subscriptions.  Here one scan is positioned by a row comparison,
 * (key1, key2, day) > (k1, k2, bound), and left open: the next seek steps
 * forward over the index entries between the two keys, reading only the
 * index, and descends again only when that would take more than
 * MAX_FORWARD_STEPS entries (a key far ahead, or a long history under one
 * key).  A seek thus costs at most about one lookup, and a few steps when
 * keys are dense.
 *
 * Entries are compared from the index tuple alone; a row is returned only
 * when its heap tuple is visible to the snapshot, so entries of rows
 * inserted since (by another transaction, or by the writing run itself under
 * its own command id) can at most cost a step.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/itup.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "billing.h"
#include "keyed_scan.h"

/* Entries stepped over before descending the index again costs more. */
#define MAX_FORWARD_STEPS 32

struct KeyedScan
{
	MemoryContext cxt;			/* what the index AM allocates, as in a query's context */
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	StrategyNumber bound_strategy;	/* InvalidStrategy: no bound column */
	int			ncolumns;		/* 2, or 3 with the bound column */
	ScanKeyData row;			/* the row comparison's header ... */
	ScanKeyData members[3];		/* ... and its members */

	/* the sought key (once positioned) */
	int64		key1;
	int64		key2;
	DateADT		bound;

	/* the scan's current index entry, not yet passed */
	bool		positioned;		/* a seek has positioned the scan */
	bool		has_entry;		/* false: the scan reached the index's end */
	bool		fetch_pending;	/* the entry was returned: step before reading on */
	bool		entry_null;		/* a key column of the entry is NULL: after its key1 */
	int64		entry_key1;
	int64		entry_key2;
	DateADT		entry_day;
};

static void
check_key_column(Relation index, int column, Oid type)
{
	if (index->rd_opcintype[column - 1] != type)
		elog(ERROR, "column %d of index \"%s\" is not of type %u", column, RelationGetRelationName(index), type);
}

KeyedScan *
billing_keyed_scan_begin(Oid heap, Oid index, StrategyNumber bound_strategy, Snapshot snapshot)
{
	KeyedScan  *ks = palloc0(sizeof(KeyedScan));
	StrategyNumber strategy;
	MemoryContext old;

	ks->cxt = AllocSetContextCreate(CurrentMemoryContext, "billing keyed scan", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(ks->cxt);
	ks->heap = table_open(heap, AccessShareLock);
	ks->index = index_open(index, AccessShareLock);
	ks->bound_strategy = bound_strategy;
	ks->ncolumns = bound_strategy == InvalidStrategy ? 2 : 3;
	if (ks->index->rd_rel->relam != BTREE_AM_OID ||
		IndexRelationGetNumberOfKeyAttributes(ks->index) < ks->ncolumns)
		elog(ERROR, "index \"%s\" is not a B-tree on %d columns", RelationGetRelationName(ks->index),
			 ks->ncolumns);
	check_key_column(ks->index, 1, INT8OID);
	check_key_column(ks->index, 2, INT8OID);
	if (ks->ncolumns == 3)
		check_key_column(ks->index, 3, DATEOID);

	/*
	 * (key1, key2[, day]) > or >= the sought key: B-tree row comparisons take
	 * the columns' ordering procedures, one strategy for all members.
	 */
	strategy = bound_strategy == InvalidStrategy ? BTGreaterEqualStrategyNumber : bound_strategy;
	for (int i = 0; i < ks->ncolumns; i++)
		ScanKeyEntryInitialize(&ks->members[i], SK_ROW_MEMBER | (i == ks->ncolumns - 1 ? SK_ROW_END : 0),
							   i + 1, strategy, ks->index->rd_opcintype[i], ks->index->rd_indcollation[i],
							   index_getprocid(ks->index, i + 1, BTORDER_PROC), (Datum) 0);
	memset(&ks->row, 0, sizeof(ScanKeyData));
	ks->row.sk_flags = SK_ROW_HEADER;
	ks->row.sk_attno = 1;
	ks->row.sk_strategy = strategy;
	ks->row.sk_argument = PointerGetDatum(ks->members);

	ks->scan = index_beginscan(ks->heap, ks->index, snapshot, 1, 0);
	ks->scan->xs_want_itup = true;	/* keys are compared from the index entry */
	ks->slot = table_slot_create(ks->heap, NULL);
	MemoryContextSwitchTo(old);
	return ks;
}

/* Move to the next index entry, or to the end. */
static void
step(KeyedScan *ks)
{
	IndexTuple	itup;
	bool		isnull;

	ks->fetch_pending = false;
	if (index_getnext_tid(ks->scan, ForwardScanDirection) == NULL)
	{
		ks->has_entry = false;
		return;
	}
	itup = ks->scan->xs_itup;
	ks->has_entry = true;
	ks->entry_key1 = DatumGetInt64(index_getattr(itup, 1, ks->scan->xs_itupdesc, &isnull));
	ks->entry_null = isnull;
	if (isnull)
	{
		ks->entry_key1 = PG_INT64_MAX;	/* NULLs sort last: after every sought key */
		return;
	}
	ks->entry_key2 = DatumGetInt64(index_getattr(itup, 2, ks->scan->xs_itupdesc, &isnull));
	ks->entry_null = isnull;
	if (ks->ncolumns == 3 && !isnull)
	{
		ks->entry_day = DatumGetDateADT(index_getattr(itup, 3, ks->scan->xs_itupdesc, &isnull));
		if (isnull)
			ks->entry_day = DATEVAL_NOEND;	/* NULLs sort last */
	}
}

/* Where the current entry is: before (-1) the sought rows, among them (0), after them (1). */
static int
entry_position(KeyedScan *ks)
{
	if (ks->entry_null)
		return ks->entry_key1 < ks->key1 ? -1 : 1;
	if (ks->entry_key1 != ks->key1)
		return ks->entry_key1 < ks->key1 ? -1 : 1;
	if (ks->entry_key2 != ks->key2)
		return ks->entry_key2 < ks->key2 ? -1 : 1;
	if (ks->bound_strategy == BTGreaterStrategyNumber && ks->entry_day <= ks->bound)
		return -1;
	if (ks->bound_strategy == BTGreaterEqualStrategyNumber && ks->entry_day < ks->bound)
		return -1;
	return 0;
}

/* Descend the index to the first entry at or after the sought rows. */
static void
descend(KeyedScan *ks)
{
	ks->members[0].sk_argument = Int64GetDatum(ks->key1);
	ks->members[1].sk_argument = Int64GetDatum(ks->key2);
	if (ks->ncolumns == 3)
		ks->members[2].sk_argument = DateADTGetDatum(ks->bound);
	index_rescan(ks->scan, &ks->row, 1, NULL, 0);
	ks->positioned = true;
	step(ks);
}

static void
seek(KeyedScan *ks, int64 key1, int64 key2, DateADT bound)
{
	bool		backwards = ks->positioned &&
		(key1 < ks->key1 || (key1 == ks->key1 && (key2 < ks->key2 || (key2 == ks->key2 && bound < ks->bound))));

	ks->key1 = key1;
	ks->key2 = key2;
	ks->bound = bound;
	if (!ks->positioned || backwards)
	{
		descend(ks);
		return;
	}
	if (ks->fetch_pending)
		step(ks);
	/* at the end of the index, it stays there: any later entry is of a row the snapshot cannot see */
	for (int steps = 0; ks->has_entry && entry_position(ks) < 0; steps++)
	{
		if (steps == MAX_FORWARD_STEPS)
		{
			descend(ks);
			return;
		}
		step(ks);
	}
}

void
billing_keyed_scan_seek(KeyedScan *ks, int64 key1, int64 key2, DateADT bound)
{
	MemoryContext old = MemoryContextSwitchTo(ks->cxt);

	seek(ks, key1, key2, bound);
	MemoryContextSwitchTo(old);
}

static TupleTableSlot *
next_row(KeyedScan *ks)
{
	for (;;)
	{
		if (ks->fetch_pending)
			step(ks);
		if (!ks->has_entry || entry_position(ks) != 0)
			return NULL;
		ks->fetch_pending = true;
		if (index_fetch_heap(ks->scan, ks->slot))
			return ks->slot;
	}
}

TupleTableSlot *
billing_keyed_scan_next(KeyedScan *ks)
{
	MemoryContext old;
	TupleTableSlot *slot;

	if (!ks->positioned)
		elog(ERROR, "keyed scan read before a seek");
	old = MemoryContextSwitchTo(ks->cxt);
	slot = next_row(ks);
	MemoryContextSwitchTo(old);
	return slot;
}

AttrNumber
billing_keyed_scan_column(KeyedScan *ks, const char *name)
{
	int			i = billing_column_index(RelationGetDescr(ks->heap), name);

	if (i < 0)
		elog(ERROR, "column \"%s\" of \"%s\" not found", name, RelationGetRelationName(ks->heap));
	return (AttrNumber) (i + 1);
}

void
billing_keyed_scan_end(KeyedScan *ks)
{
	ExecDropSingleTupleTableSlot(ks->slot);
	index_endscan(ks->scan);
	index_close(ks->index, NoLock);
	table_close(ks->heap, NoLock);
	MemoryContextDelete(ks->cxt);
	pfree(ks);
}
