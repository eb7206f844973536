/*
 * watermark_writer.h
 *		A run's new watermarks, written into billing.subscription by the
 *		engine itself (watermark_writer.c).
 */
#ifndef WATERMARK_WRITER_H
#define WATERMARK_WRITER_H

#include "postgres.h"

#include "storage/itemptr.h"
#include "utils/date.h"

typedef struct WatermarkWriter WatermarkWriter;

/* A subscription's watermarks after a run (has_*: not NULL). */
typedef struct Watermark
{
	bool		has_billed_through;
	DateADT		billed_through;
	bool		has_next_due_date;
	DateADT		next_due_date;
	bool		has_seen_reconcile_from;	/* the reconcile_from the run read */
	DateADT		seen_reconcile_from;
} Watermark;

/*
 * A writer of target_date's watermarks, or NULL when billing.subscription
 * has an update trigger that must see the run's UPDATE statement (a
 * statement-level or BEFORE trigger): then the run updates the rows in SQL.
 */
extern WatermarkWriter *billing_watermark_writer_begin(DateADT target_date);

/* Update the subscription row the run read at tid (or its newest version). */
extern void billing_watermark_writer_put(WatermarkWriter *w, ItemPointer tid, const Watermark *watermark);

extern void billing_watermark_writer_end(WatermarkWriter *w);

#endif							/* WATERMARK_WRITER_H */
