/*
 * watermark_writer.c
 *		A run's new watermarks (billed_through, next_due_date,
 *		last_target_date, reconcile_from, next_bill_date_override), written
 *		into billing.subscription by the engine as it finishes each
 *		subscription.
 *
 * The engine reads every candidate's subscription row in its stream, so it
 * knows where the row is.  Returned as items and joined back to the table
 * by an UPDATE, a month-end run's million watermarks went through a
 * tuplestore, a temporary table and a hash join over the whole table (a
 * fifth of the run).  Here each row is updated where the stream found it,
 * as an UPDATE would: its newest version when someone updated it meanwhile
 * (late usage moves reconcile_from without the account's lock), its
 * constraints checked, its indexes kept and its row triggers fired (each
 * only when it can fail or fire: see below).
 *
 * Only while nothing needs the run's UPDATE statement itself: a
 * statement-level or BEFORE update trigger on billing.subscription (someone
 * else's) makes the run update the rows in SQL instead.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "billing.h"
#include "run_writer.h"
#include "watermark_writer.h"

/* the columns a run sets, as in the UPDATE it replaces */
static const char *const watermark_columns[] = {
	"billed_through", "next_due_date", "last_target_date", "reconcile_from", "next_bill_date_override",
};

enum
{
	W_BILLED_THROUGH, W_NEXT_DUE_DATE, W_LAST_TARGET_DATE, W_RECONCILE_FROM, W_NEXT_BILL_DATE_OVERRIDE,
	W_NCOLUMNS
};

struct WatermarkWriter
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *old_row;
	TupleTableSlot *new_row;
	CommandId	cid;
	Snapshot	snapshot;
	DateADT		target_date;
	int			attno[W_NCOLUMNS];	/* 0-based attribute of each column */
	bool		fire_row_triggers;	/* whether any AFTER ROW trigger can fire */
	bool		check_constraints;	/* whether any constraint can fail */
};

/* Whether someone's update trigger must see the run's UPDATE statement. */
static bool
needs_update_statement(Relation rel)
{
	TriggerDesc *t = rel->trigdesc;

	if (!billing_writer_plain_table(rel))
		return true;
	return t != NULL && (t->trig_update_before_row || t->trig_update_instead_row ||
						 t->trig_update_before_statement || t->trig_update_after_statement ||
						 t->trig_update_old_table || t->trig_update_new_table);
}

/*
 * Whether an AFTER ROW update trigger of rel can fire when only the columns
 * in updated change.  A foreign key's triggers queue nothing unless its
 * columns change: on the child side its own columns, on the parent side the
 * referenced key, and no key can be referenced through a column that is in
 * no unique index.  An UPDATE OF trigger fires only for its columns.
 * (Calling them anyway cost 4% of a month-end run.)
 */
static bool
row_triggers_can_fire(Relation rel, Bitmapset *updated)
{
	TriggerDesc *t = rel->trigdesc;
	Bitmapset  *keys = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_KEY);
	bool		key_updated = bms_overlap(keys, updated);
	bool		foreign_key_updated = false;
	ListCell   *lc;

	foreach(lc, RelationGetFKeyList(rel))
	{
		ForeignKeyCacheInfo *fk = lfirst_node(ForeignKeyCacheInfo, lc);

		for (int k = 0; k < fk->nkeys; k++)
			if (bms_is_member(fk->conkey[k] - FirstLowInvalidHeapAttributeNumber, updated))
				foreign_key_updated = true;
	}

	if (t == NULL)
		return false;
	for (int i = 0; i < t->numtriggers; i++)
	{
		Trigger    *trigger = &t->triggers[i];
		bool		on_columns = false;

		if (!TRIGGER_FOR_UPDATE(trigger->tgtype) || !TRIGGER_FOR_ROW(trigger->tgtype) ||
			trigger->tgenabled == TRIGGER_DISABLED)
			continue;
		if (RI_FKey_trigger_type(trigger->tgfoid) == RI_TRIGGER_PK && !key_updated)
			continue;
		if (RI_FKey_trigger_type(trigger->tgfoid) == RI_TRIGGER_FK && !foreign_key_updated)
			continue;
		for (int c = 0; c < trigger->tgnattr; c++)
			if (bms_is_member(trigger->tgattr[c] - FirstLowInvalidHeapAttributeNumber, updated))
				on_columns = true;
		if (trigger->tgnattr > 0 && !on_columns)
			continue;
		return true;
	}
	return false;
}

/*
 * Whether a new row can fail a constraint of rel that its old row met when
 * only the columns in updated change: a NOT NULL on one of them, a CHECK
 * that reads one of them, or a CHECK added NOT VALID (old rows need not meet
 * it).  A CHECK is immutable, so one that reads none of them gives the same
 * answer as for the old row.  (Checking every row anyway cost 3.5% of a
 * month-end run.)
 */
static bool
constraints_can_fail(Relation rel, Bitmapset *updated)
{
	TupleConstr *constr = rel->rd_att->constr;

	if (constr == NULL)
		return false;
	for (int a = 0; a < rel->rd_att->natts; a++)
		if (TupleDescAttr(rel->rd_att, a)->attnotnull &&
			bms_is_member(a + 1 - FirstLowInvalidHeapAttributeNumber, updated))
			return true;
	for (int c = 0; c < constr->num_check; c++)
	{
		Bitmapset  *reads = NULL;

		if (!constr->check[c].ccvalid)
			return true;
		pull_varattnos(stringToNode(constr->check[c].ccbin), 1, &reads);
		if (bms_overlap(reads, updated))
			return true;
	}
	return false;
}

WatermarkWriter *
billing_watermark_writer_begin(DateADT target_date)
{
	Relation	rel = table_open(billing_relation_oid("billing.subscription"), RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	WatermarkWriter *w;
	Bitmapset  *updated = NULL;

	if (needs_update_statement(rel))
	{
		table_close(rel, NoLock);
		return NULL;
	}
	w = palloc0(sizeof(WatermarkWriter));
	w->target_date = target_date;
	for (int c = 0; c < W_NCOLUMNS; c++)
	{
		w->attno[c] = billing_column_index(desc, watermark_columns[c]);
		if (w->attno[c] < 0 || TupleDescAttr(desc, w->attno[c])->atttypid != DATEOID)
			elog(ERROR, "billing.subscription has no date column \"%s\"", watermark_columns[c]);
		/* an UPDATE OF trigger fires when one of these is its column */
		updated = bms_add_member(updated, w->attno[c] + 1 - FirstLowInvalidHeapAttributeNumber);
	}
	w->fire_row_triggers = row_triggers_can_fire(rel, updated);
	w->check_constraints = constraints_can_fail(rel, updated);
	w->rri = billing_writer_target_open(rel, CMD_UPDATE, updated, &w->estate);
	table_close(rel, NoLock);

	w->rel = w->rri->ri_RelationDesc;
	w->cid = GetCurrentCommandId(true);
	w->snapshot = GetActiveSnapshot();
	w->estate->es_output_cid = w->cid;
	w->estate->es_snapshot = w->snapshot;
	w->old_row = table_slot_create(w->rel, NULL);
	w->new_row = table_slot_create(w->rel, NULL);

	/*
	 * The row triggers' events (the foreign keys' parent-side checks) go to
	 * a query level of their own, fired at the end: the run's statement is a
	 * SELECT, which has none.
	 */
	AfterTriggerBeginQuery();
	return w;
}

/* The row in old_row with the run's watermarks, into new_row. */
static void
make_new_row(WatermarkWriter *w, const Watermark *wm)
{
	TupleTableSlot *o = w->old_row;
	TupleTableSlot *n = w->new_row;
	int			natts = RelationGetDescr(w->rel)->natts;
	int			a;

	slot_getallattrs(o);
	ExecClearTuple(n);
	memcpy(n->tts_values, o->tts_values, sizeof(Datum) * natts);
	memcpy(n->tts_isnull, o->tts_isnull, sizeof(bool) * natts);

	a = w->attno[W_BILLED_THROUGH];
	n->tts_isnull[a] = !wm->has_billed_through;
	n->tts_values[a] = DateADTGetDatum(wm->billed_through);
	a = w->attno[W_NEXT_DUE_DATE];
	n->tts_isnull[a] = !wm->has_next_due_date;
	n->tts_values[a] = DateADTGetDatum(wm->next_due_date);
	/* greatest(last_target_date, target_date) */
	a = w->attno[W_LAST_TARGET_DATE];
	if (o->tts_isnull[a] || DatumGetDateADT(o->tts_values[a]) < w->target_date)
		n->tts_values[a] = DateADTGetDatum(w->target_date);
	n->tts_isnull[a] = false;
	/*
	 * a reconcile_from that moved while the run went on stays for the next
	 * one (the rule of the run's UPDATE, which bill_accounts keeps for
	 * update triggers that need it)
	 */
	a = w->attno[W_RECONCILE_FROM];
	if (o->tts_isnull[a] ? !wm->has_seen_reconcile_from
		: wm->has_seen_reconcile_from && DatumGetDateADT(o->tts_values[a]) == wm->seen_reconcile_from)
	{
		n->tts_isnull[a] = true;
		n->tts_values[a] = (Datum) 0;
	}
	a = w->attno[W_NEXT_BILL_DATE_OVERRIDE];
	n->tts_isnull[a] = true;
	n->tts_values[a] = (Datum) 0;
	ExecStoreVirtualTuple(n);
}

void
billing_watermark_writer_put(WatermarkWriter *w, ItemPointer tid, const Watermark *wm)
{
	ItemPointerData otid = *tid;
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	bool		update_indexes = false;
	List	   *recheck = NIL;
	MemoryContext old = MemoryContextSwitchTo(GetPerTupleMemoryContext(w->estate));

	if (!table_tuple_fetch_row_version(w->rel, &otid, SnapshotAny, w->old_row))
		elog(ERROR, "the subscription row a run read at (%u,%u) is gone",
			 ItemPointerGetBlockNumber(&otid), ItemPointerGetOffsetNumber(&otid));
	for (;;)
	{
		TM_Result	result;

		make_new_row(w, wm);
		if (w->check_constraints)
			ExecConstraints(w->rri, w->new_row, w->estate);
		result = table_tuple_update(w->rel, &otid, w->new_row, w->cid, w->snapshot, InvalidSnapshot,
									true, &tmfd, &lockmode, &update_indexes);
		if (result == TM_Ok)
			break;
		if (result == TM_Deleted)
			goto done;			/* deleted meanwhile: no row to update, as for an UPDATE */
		if (result != TM_Updated)
			elog(ERROR, "a run updated subscription row (%u,%u) twice",
				 ItemPointerGetBlockNumber(&otid), ItemPointerGetOffsetNumber(&otid));

		/*
		 * Updated by someone who has committed (runs take READ COMMITTED):
		 * lock the newest version, then write the watermarks onto it.
		 */
		result = table_tuple_lock(w->rel, &otid, w->snapshot, w->old_row, w->cid, lockmode, LockWaitBlock,
								  TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &tmfd);
		if (result == TM_Deleted)
			goto done;
		if (result != TM_Ok)
			elog(ERROR, "could not lock the newest version of subscription row (%u,%u)",
				 ItemPointerGetBlockNumber(&otid), ItemPointerGetOffsetNumber(&otid));
		otid = w->old_row->tts_tid;
	}
	if (update_indexes && w->rri->ri_NumIndices > 0)
		recheck = ExecInsertIndexTuples(w->rri, w->new_row, w->estate, true, false, NULL, NIL);
	if (w->fire_row_triggers)
		ExecARUpdateTriggers(w->estate, w->rri, NULL, NULL, &otid, NULL, w->new_row, recheck, NULL, false);
done:
	ExecClearTuple(w->old_row);
	ExecClearTuple(w->new_row);
	ResetPerTupleExprContext(w->estate);
	MemoryContextSwitchTo(old);
}

void
billing_watermark_writer_end(WatermarkWriter *w)
{
	AfterTriggerEndQuery(w->estate);
	ExecDropSingleTupleTableSlot(w->old_row);
	ExecDropSingleTupleTableSlot(w->new_row);
	billing_writer_target_close(w->estate);
	pfree(w);
}
