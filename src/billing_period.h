/*
 * billing_period.h
 *		The billing_period type: a half-open [start, end) range of dates.
 *
 * A period is 8 bytes, two DateADT, passed by value packed into one Datum so
 * that schedules, proration and aggregates never palloc a period.
 */
#ifndef BILLING_PERIOD_H
#define BILLING_PERIOD_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/date.h"

StaticAssertDecl(SIZEOF_DATUM == 8, "billing_period is passed by value and needs 8-byte Datums");

typedef struct BillingPeriod
{
	DateADT		start;			/* first day covered */
	DateADT		end;			/* first day not covered; start < end */
} BillingPeriod;

static inline Datum
BillingPeriodGetDatum(BillingPeriod p)
{
	return (Datum) (((uint64) (uint32) p.start << 32) | (uint64) (uint32) p.end);
}

static inline BillingPeriod
DatumGetBillingPeriod(Datum d)
{
	BillingPeriod p;

	p.start = (DateADT) (int32) (uint32) ((uint64) d >> 32);
	p.end = (DateADT) (int32) (uint32) ((uint64) d & 0xFFFFFFFF);
	return p;
}

#define PG_GETARG_BILLING_PERIOD(n)	DatumGetBillingPeriod(PG_GETARG_DATUM(n))
#define PG_RETURN_BILLING_PERIOD(p)	return BillingPeriodGetDatum(p)

/* Number of days a period covers. */
static inline int32
billing_period_days(BillingPeriod p)
{
	return p.end - p.start;
}

/* Days two periods share (0 when disjoint). */
static inline int32
billing_period_overlap_days(BillingPeriod a, BillingPeriod b)
{
	DateADT		s = Max(a.start, b.start);
	DateADT		e = Min(a.end, b.end);

	return e > s ? e - s : 0;
}

/* The one place a period is validated: in, recv, constructor and casts. */
extern BillingPeriod billing_period_make(DateADT start, DateADT end);

/* text form "[YYYY-MM-DD,YYYY-MM-DD)" of a valid period, and its buffer size */
#define BILLING_PERIOD_TEXT_SIZE 24
extern char *billing_period_text(BillingPeriod p, char *buf);

/* the text form, "[start,end)" in ISO dates: billing_period's output function */
extern Datum billing_period_out(PG_FUNCTION_ARGS);

#endif							/* BILLING_PERIOD_H */
