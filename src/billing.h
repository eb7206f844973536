/*
 * billing.h
 *		Declarations shared by the C parts of the billing extension.
 */
#ifndef BILLING_H
#define BILLING_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "fmgr.h"
#include "utils/date.h"

/*
 * Bounds of every date the extension accepts: years 1 through 9999, so the
 * text form is always the ISO YYYY-MM-DD that finance exports expect.
 */
extern DateADT billing_min_date(void);
extern DateADT billing_max_date(void);

/* ISO 8601 text of a date into buf (at least 11 bytes); returns buf. */
extern char *billing_date_text(DateADT date, char *buf);

/* Date validation shared by every C entry point that takes a date. */
extern void billing_check_date(DateADT date, const char *what);

/*
 * A function of the extension's SQL, called from C, by its signature (e.g.
 * "billing.tiered_amount(text,jsonb,numeric)"), looked up into finfo in cxt.
 */
extern void billing_function_info(const char *signature, FmgrInfo *finfo, MemoryContext cxt);

/* The oid of one of the extension's relations (tables, sequences) by its qualified name. */
extern Oid	billing_relation_oid(const char *qualified_name);

/* The 0-based attribute of desc named name (dropped columns skipped), or -1. */
extern int	billing_column_index(TupleDesc desc, const char *name);

#endif							/* BILLING_H */
