/*
 * run_writer.h
 *		The bulk writer of the extension's run statements (run_writer.c), for
 *		C code that computes the rows itself.
 */
#ifndef RUN_WRITER_H
#define RUN_WRITER_H

#include "access/tupdesc.h"
#include "nodes/execnodes.h"
#include "utils/rel.h"

typedef struct RunWriter RunWriter;

/*
 * What the extension's writers (this one, watermark_writer.c) share.
 * 42501 unless the caller is a superuser (the run's SECURITY DEFINER
 * functions).
 */
extern void billing_check_run_writer_caller(Oid target);

/* A plain table with no stored generated column: rows can be written into it directly. */
extern bool billing_writer_plain_table(Relation rel);

/*
 * rel as the result relation of an INSERT or UPDATE of columns (attnums
 * offset by FirstLowInvalidHeapAttributeNumber), in an executor state of its
 * own: permissions checked, indexes open.  _close also drops the slots row
 * triggers took.
 */
extern ResultRelInfo *billing_writer_target_open(Relation rel, CmdType operation, Bitmapset *columns,
												 EState **estate);
extern void billing_writer_target_close(EState *estate);

/*
 * Whether rows can go straight into rel: only triggers that trust marked
 * statements fire on inserting into it.  Otherwise the rows must be written
 * by an INSERT, so that every trigger sees them.
 */
extern bool billing_run_rows_writable_in_bulk(Relation rel);

/* The named columns of rel, as the columns of rows to write into it. */
extern TupleDesc billing_run_writer_columns(Relation rel, const char *const *names, int ncolumns);

/*
 * Write rows with the given columns into rel (opened RowExclusiveLock by the
 * caller, writable in bulk): the other columns take their defaults, and
 * constraints and indexes are checked and kept as an INSERT would.  The
 * caller marks the statement (run_statements.h).  _put copies the row.
 */
extern RunWriter *billing_run_writer_begin(Relation rel, TupleDesc columns);
extern void billing_run_writer_put(RunWriter *w, Datum *values, bool *nulls);
extern uint64 billing_run_writer_end(RunWriter *w);

#endif							/* RUN_WRITER_H */
