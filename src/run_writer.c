/*
 * run_writer.c
 *		The bulk writer of the extension's own run statements: rows computed
 *		by an invoice run go into their table the way COPY writes them.
 *
 * A run's lines and documents are marked statements (run_statements.c): the
 * only triggers that fire on inserting them are the statement-level
 * integrity checks, and those return at once for a marked statement.  An
 * INSERT still pays for them: it collects every new row into the
 * transition tables those triggers declare (a tuplestore of a million lines,
 * spilled to disk) and writes the heap one row at a time.  Here the rows are
 * written in batches with table_multi_insert(), their indexes maintained and
 * their NOT NULL and CHECK constraints checked as an INSERT would, and no
 * transition table is built for triggers that would do nothing with it.
 *
 * That holds only while every trigger that fires on an insert into the table
 * is one that trusts marked statements.  If anyone adds another (an audit
 * trigger, a replication hook), the writer runs a plain INSERT instead, still
 * marked, so that trigger sees every row.
 *
 * The rows come from a query (billing.write_run_rows()) or from C code that
 * computes them (run_writer.h: the engine writes a run's lines as it makes
 * them, and returns them for the INSERT when the table is not writable in
 * bulk).
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/rel.h"

#include "billing.h"
#include "run_statements.h"
#include "run_writer.h"

/* rows per table_multi_insert() batch, as COPY buffers them */
#define RUN_WRITER_BATCH 1000

/* trigger functions that return at once for a marked statement */
static const char *const trusting_trigger_functions[] = {
	"billing.check_foreign_keys()",
	"billing.invoice_line_guard_insert()",
};

static bool
trigger_trusts_marked_statements(Oid tgfoid)
{
	for (size_t i = 0; i < lengthof(trusting_trigger_functions); i++)
	{
		Oid			fn = DatumGetObjectId(DirectFunctionCall1(to_regprocedure,
															  CStringGetTextDatum(trusting_trigger_functions[i])));

		if (fn == tgfoid)
			return true;
	}
	return false;
}

bool
billing_writer_plain_table(Relation rel)
{
	return rel->rd_rel->relkind == RELKIND_RELATION &&
		!(rel->rd_att->constr && rel->rd_att->constr->has_generated_stored);
}

void
billing_check_run_writer_caller(Oid target)
{
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only the extension's run functions may write run rows into %s", get_rel_name(target))));
}

ResultRelInfo *
billing_writer_target_open(Relation rel, CmdType operation, Bitmapset *columns, EState **estate_out)
{
	EState	   *estate = CreateExecutorState();
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	/* the relation as an INSERT's or UPDATE's range table entry */
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	if (operation == CMD_INSERT)
	{
		rte->requiredPerms = ACL_INSERT;
		rte->insertedCols = columns;
	}
	else
	{
		rte->requiredPerms = ACL_UPDATE;
		rte->updatedCols = columns;
	}
	ExecCheckRTPerms(list_make1(rte), true);
	ExecInitRangeTable(estate, list_make1(rte));
	ExecInitResultRelation(estate, rri, 1);
	CheckValidResultRel(rri, operation);
	ExecOpenIndices(rri, false);
	*estate_out = estate;
	return rri;
}

void
billing_writer_target_close(EState *estate)
{
	/* slots the row triggers took for their old rows, if any fired */
	ExecResetTupleTable(estate->es_tupleTable, false);
	/* closes the indexes too */
	ExecCloseResultRelations(estate);
	ExecCloseRangeTableRelations(estate);
	FreeExecutorState(estate);
}

/*
 * Whether rows can go straight into rel: a plain table, where every enabled
 * trigger that fires on INSERT trusts marked statements.
 */
bool
billing_run_rows_writable_in_bulk(Relation rel)
{
	TriggerDesc *trigdesc = rel->trigdesc;

	if (!billing_writer_plain_table(rel))
		return false;
	if (trigdesc == NULL)
		return true;
	for (int i = 0; i < trigdesc->numtriggers; i++)
	{
		Trigger    *trigger = &trigdesc->triggers[i];

		if (!TRIGGER_FOR_INSERT(trigger->tgtype) || trigger->tgenabled == TRIGGER_DISABLED)
			continue;
		if (!trigger_trusts_marked_statements(trigger->tgfoid))
			return false;
	}
	return true;
}

/* The result columns of a prepared source query. */
static TupleDesc
source_columns(SPIPlanPtr plan, const char *source)
{
	List	   *sources = SPI_plan_get_plan_sources(plan);
	CachedPlanSource *ps;

	if (list_length(sources) != 1)
		elog(ERROR, "run writer source must be one query: %s", source);
	ps = (CachedPlanSource *) linitial(sources);
	if (ps->resultDesc == NULL)
		elog(ERROR, "run writer source returns no rows: %s", source);
	return ps->resultDesc;
}

/*
 * For each attribute of rel (by attnum - 1), the source column that feeds it
 * (0-based) or -1 for a column left to its default.  Names and types must
 * match: the sources are the extension's own queries.
 */
static int *
map_source_columns(Relation rel, TupleDesc src)
{
	TupleDesc	dst = RelationGetDescr(rel);
	int		   *map = palloc(sizeof(int) * dst->natts);

	for (int a = 0; a < dst->natts; a++)
		map[a] = -1;
	for (int s = 0; s < src->natts; s++)
	{
		Form_pg_attribute sa = TupleDescAttr(src, s);
		int			found = billing_column_index(dst, NameStr(sa->attname));
		if (found < 0)
			elog(ERROR, "column \"%s\" of the run writer source is not a column of %s",
				 NameStr(sa->attname), RelationGetRelationName(rel));
		if (TupleDescAttr(dst, found)->atttypid != sa->atttypid)
			elog(ERROR, "column \"%s\" of the run writer source is %s, not %s",
				 NameStr(sa->attname), format_type_be(sa->atttypid),
				 format_type_be(TupleDescAttr(dst, found)->atttypid));
		map[found] = s;
	}
	return map;
}

/* The source query's parameters: the call's arguments after the first two. */
typedef struct SourceParams
{
	int			n;
	Oid		   *types;
	Datum	   *values;
	char	   *nulls;
} SourceParams;

/* The fallback: INSERT INTO rel (the source's columns) source, via SPI. */
static uint64
insert_via_sql(Relation rel, TupleDesc src, const char *source, SourceParams *params)
{
	StringInfoData sql;
	int			rc;

	initStringInfo(&sql);
	appendStringInfo(&sql, "INSERT INTO %s (",
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												RelationGetRelationName(rel)));
	for (int s = 0; s < src->natts; s++)
		appendStringInfo(&sql, "%s%s", s > 0 ? ", " : "",
						 quote_identifier(NameStr(TupleDescAttr(src, s)->attname)));
	appendStringInfo(&sql, ") %s", source);
	rc = SPI_execute_with_args(sql.data, params->n, params->types, params->values, params->nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "run writer insert into %s failed: %s", RelationGetRelationName(rel), SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * The bulk path: the source query's executor hands each row to a
 * DestReceiver (no SPI tuple table, so a row is copied once, not formed,
 * copied and taken apart again), which fills one slot per row (source
 * columns, defaults for the rest), checks constraints, and every batch
 * multi-inserts the rows and then adds their index entries.
 */
struct RunWriter
{
	DestReceiver pub;			/* first: the executor sees a DestReceiver */
	Relation	rel;
	int		   *map;			/* target attribute -> source column or -1 */
	ExprState **defaults;		/* target attribute -> its default, if any */
	EState	   *estate;
	ResultRelInfo *rri;
	BulkInsertState bistate;
	CommandId	cid;
	TupleTableSlot *source_rows[RUN_WRITER_BATCH];	/* the batch as received */
	TupleTableSlot *rows[RUN_WRITER_BATCH];	/* the batch as written */
	int			nbuffered;
	uint64		written;
	MemoryContext batch_cxt;	/* what filling the batch allocates */
};

/* Multi-insert the buffered rows, then their index entries. */
static void
flush_batch(RunWriter *w)
{
	MemoryContext old;

	if (w->nbuffered == 0)
		return;
	/* table_multi_insert may leak into the current context */
	old = MemoryContextSwitchTo(GetPerTupleMemoryContext(w->estate));
	table_multi_insert(w->rel, w->rows, w->nbuffered, w->cid, 0, w->bistate);
	MemoryContextSwitchTo(old);
	for (int r = 0; r < w->nbuffered; r++)
	{
		List	   *recheck = NIL;

		old = MemoryContextSwitchTo(GetPerTupleMemoryContext(w->estate));
		if (w->rri->ri_NumIndices > 0)
			recheck = ExecInsertIndexTuples(w->rri, w->rows[r], w->estate, false, false, NULL, NIL);
		MemoryContextSwitchTo(old);
		/* no deferred unique or exclusion constraints on the run's tables */
		if (recheck != NIL)
			elog(ERROR, "run writer cannot write %s: it has deferred index checks",
				 RelationGetRelationName(w->rel));
		ExecClearTuple(w->rows[r]);
		ExecClearTuple(w->source_rows[r]);
		ResetPerTupleExprContext(w->estate);
	}
	MemoryContextReset(w->batch_cxt);
	w->written += w->nbuffered;
	w->nbuffered = 0;
}

static void
run_writer_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	RunWriter  *w = (RunWriter *) self;

	/*
	 * The source's snapshot is taken and the command counter advanced: rows
	 * written under the counter now are invisible to it, so a source that
	 * reads the target sees none of its own rows, as in INSERT ... SELECT.
	 */
	w->cid = GetCurrentCommandId(true);
}

/* Fill the next row of the batch from its source row, check it, buffer it. */
static void
buffer_row(RunWriter *w)
{
	TupleDesc	dst = RelationGetDescr(w->rel);
	ExprContext *econtext = GetPerTupleExprContext(w->estate);
	TupleTableSlot *source_row = w->source_rows[w->nbuffered];
	TupleTableSlot *row = w->rows[w->nbuffered];
	MemoryContext old;

	slot_getallattrs(source_row);
	/* defaults and checks allocate in the executor's query context otherwise */
	old = MemoryContextSwitchTo(w->batch_cxt);
	for (int a = 0; a < dst->natts; a++)
	{
		if (w->map[a] >= 0)
		{
			row->tts_values[a] = source_row->tts_values[w->map[a]];
			row->tts_isnull[a] = source_row->tts_isnull[w->map[a]];
		}
		else if (w->defaults[a] != NULL)
			row->tts_values[a] = ExecEvalExpr(w->defaults[a], econtext, &row->tts_isnull[a]);
		else
		{
			row->tts_values[a] = (Datum) 0;
			row->tts_isnull[a] = true;
		}
	}
	ExecStoreVirtualTuple(row);
	if (w->rel->rd_att->constr)
		ExecConstraints(w->rri, row, w->estate);
	MemoryContextSwitchTo(old);
	if (++w->nbuffered == RUN_WRITER_BATCH)
		flush_batch(w);
}

static bool
run_writer_receive(TupleTableSlot *slot, DestReceiver *self)
{
	RunWriter  *w = (RunWriter *) self;

	/* the executor reuses its slot: keep the row until the batch is written */
	ExecCopySlot(w->source_rows[w->nbuffered], slot);
	buffer_row(w);
	return true;
}

void
billing_run_writer_put(RunWriter *w, Datum *values, bool *nulls)
{
	TupleTableSlot *source_row = w->source_rows[w->nbuffered];
	int			natts = source_row->tts_tupleDescriptor->natts;

	ExecClearTuple(source_row);
	memcpy(source_row->tts_values, values, sizeof(Datum) * natts);
	memcpy(source_row->tts_isnull, nulls, sizeof(bool) * natts);
	ExecStoreVirtualTuple(source_row);
	/* the caller's values may go before the batch is written */
	ExecMaterializeSlot(source_row);
	buffer_row(w);
}

static void
run_writer_shutdown(DestReceiver *self)
{
	flush_batch((RunWriter *) self);
}

static void
run_writer_destroy(DestReceiver *self)
{
}

RunWriter *
billing_run_writer_begin(Relation rel, TupleDesc src)
{
	TupleDesc	dst = RelationGetDescr(rel);
	RunWriter  *w = palloc0(sizeof(RunWriter));
	Bitmapset  *columns = NULL;

	w->pub.receiveSlot = run_writer_receive;
	w->pub.rStartup = run_writer_startup;
	w->pub.rShutdown = run_writer_shutdown;
	w->pub.rDestroy = run_writer_destroy;
	w->pub.mydest = DestNone;
	w->rel = rel;
	w->map = map_source_columns(rel, src);
	w->defaults = palloc0(sizeof(ExprState *) * dst->natts);
	w->bistate = GetBulkInsertState();
	w->batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "billing run writer batch", ALLOCSET_DEFAULT_SIZES);
	w->cid = GetCurrentCommandId(true);

	for (int a = 0; a < dst->natts; a++)
	{
		Form_pg_attribute da = TupleDescAttr(dst, a);

		if (da->attisdropped)
			continue;
		columns = bms_add_member(columns, da->attnum - FirstLowInvalidHeapAttributeNumber);
		if (w->map[a] < 0)
		{
			Expr	   *defexpr = (Expr *) build_column_default(rel, da->attnum);

			if (defexpr != NULL)
				w->defaults[a] = ExecInitExpr(expression_planner(defexpr), NULL);
		}
	}
	w->rri = billing_writer_target_open(rel, CMD_INSERT, columns, &w->estate);
	for (int i = 0; i < RUN_WRITER_BATCH; i++)
	{
		w->source_rows[i] = MakeSingleTupleTableSlot(src, &TTSOpsVirtual);
		w->rows[i] = table_slot_create(rel, NULL);
	}
	return w;
}

uint64
billing_run_writer_end(RunWriter *w)
{
	uint64		written;

	flush_batch(w);
	table_finish_bulk_insert(w->rel, 0);
	FreeBulkInsertState(w->bistate);
	for (int i = 0; i < RUN_WRITER_BATCH; i++)
	{
		ExecDropSingleTupleTableSlot(w->source_rows[i]);
		ExecDropSingleTupleTableSlot(w->rows[i]);
	}
	billing_writer_target_close(w->estate);
	MemoryContextDelete(w->batch_cxt);
	written = w->written;
	pfree(w);
	return written;
}

TupleDesc
billing_run_writer_columns(Relation rel, const char *const *names, int ncolumns)
{
	TupleDesc	rel_desc = RelationGetDescr(rel);
	TupleDesc	desc = CreateTemplateTupleDesc(ncolumns);

	for (int c = 0; c < ncolumns; c++)
	{
		int			a = billing_column_index(rel_desc, names[c]);

		if (a < 0)
			elog(ERROR, "%s has no column \"%s\"", RelationGetRelationName(rel), names[c]);
		TupleDescInitEntry(desc, c + 1, names[c], TupleDescAttr(rel_desc, a)->atttypid,
						   TupleDescAttr(rel_desc, a)->atttypmod, 0);
	}
	return desc;
}

static uint64
insert_in_bulk(Relation rel, SPIPlanPtr plan, TupleDesc src, SourceParams *params)
{
	RunWriter  *w = billing_run_writer_begin(rel, src);
	ParamListInfo paramlist = makeParamList(params->n);
	SPIExecuteOptions options;
	int			rc;

	for (int i = 0; i < params->n; i++)
	{
		ParamExternData *prm = &paramlist->params[i];

		prm->value = params->values[i];
		prm->isnull = params->nulls[i] == 'n';
		prm->pflags = PARAM_FLAG_CONST;
		prm->ptype = params->types[i];
	}
	memset(&options, 0, sizeof(options));
	options.params = paramlist;
	options.read_only = false;
	options.dest = &w->pub;
	rc = SPI_execute_plan_extended(plan, &options);
	if (rc < 0)
		elog(ERROR, "run writer source failed: %s", SPI_result_code_string(rc));
	return billing_run_writer_end(w);
}

/*
 * write_run_rows(target regclass, source text [, VARIADIC params "any"])
 *		-> bigint
 *		Insert the rows of the query source into target as one marked
 *		statement (run_statements.c) of the extension's bulk writers; returns
 *		the number of rows written.  Source columns are matched to target
 *		columns by name; the others take their defaults.  The arguments after
 *		source are its parameters $1, $2, ...  Superuser only: the run's
 *		SECURITY DEFINER functions.
 */
PG_FUNCTION_INFO_V1(billing_write_run_rows);
Datum
billing_write_run_rows(PG_FUNCTION_ARGS)
{
	Oid			target;
	char	   *source;
	SourceParams params;
	Relation	rel;
	SPIPlanPtr	plan;
	TupleDesc	src;
	uint64		written;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target and source of billing.write_run_rows must not be NULL")));
	target = PG_GETARG_OID(0);
	source = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (get_fn_expr_variadic(fcinfo->flinfo))
		elog(ERROR, "billing.write_run_rows takes its parameters one by one, not as a VARIADIC array");
	params.n = PG_NARGS() - 2;
	params.types = palloc(sizeof(Oid) * Max(params.n, 1));
	params.values = palloc(sizeof(Datum) * Max(params.n, 1));
	params.nulls = palloc(sizeof(char) * Max(params.n, 1));
	for (int i = 0; i < params.n; i++)
	{
		params.types[i] = get_fn_expr_argtype(fcinfo->flinfo, i + 2);
		if (!OidIsValid(params.types[i]) || params.types[i] == UNKNOWNOID)
			elog(ERROR, "parameter $%d of billing.write_run_rows has no type", i + 1);
		params.values[i] = PG_GETARG_DATUM(i + 2);
		params.nulls[i] = PG_ARGISNULL(i + 2) ? 'n' : ' ';
	}

	billing_check_run_writer_caller(target);

	rel = table_open(target, RowExclusiveLock);
	SPI_connect();
	plan = SPI_prepare(source, params.n, params.types);
	if (plan == NULL)
		elog(ERROR, "run writer source does not parse: %s", SPI_result_code_string(SPI_result));
	src = source_columns(plan, source);

	billing_mark_run_statement(true);
	if (billing_run_rows_writable_in_bulk(rel))
		written = insert_in_bulk(rel, plan, src, &params);
	else
		written = insert_via_sql(rel, src, source, &params);
	billing_mark_run_statement(false);

	SPI_finish();
	table_close(rel, NoLock);
	PG_RETURN_INT64((int64) written);
}
