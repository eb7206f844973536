/*
 * schedule.h
 *		Billing cycles: the boundaries that an anchor date, a unit and a
 *		count define.  Shared by billing_periods() and the invoicing engine.
 */
#ifndef SCHEDULE_H
#define SCHEDULE_H

#include "postgres.h"

#include "utils/date.h"

#include "billing_period.h"

typedef enum CycleUnit
{
	CYCLE_DAY,
	CYCLE_WEEK,
	CYCLE_MONTH,
	CYCLE_YEAR
} CycleUnit;

typedef struct Cycle
{
	DateADT		anchor;			/* a cycle boundary */
	int32		step;			/* days (day/week) or months (month/year) */
	bool		monthly;		/* step counts months */
	int32		anchor_month;	/* year * 12 + month - 1 of the anchor */
	int32		cycle_day;		/* anchor's day of month: the cycle day */
} Cycle;

/* The billing periods of one set of terms, in order (see term_periods_init). */
typedef struct TermPeriods
{
	Cycle		cycle;
	int64		k;				/* index of the next period */
	DateADT		start;			/* first day of the terms */
	DateADT		end;			/* first day without them, or DATEVAL_NOEND */
	DateADT		until;			/* no period starting after this day */
} TermPeriods;

#define CYCLE_MAX_COUNT		1000

extern CycleUnit cycle_unit_from_text(const text *unit);
extern void cycle_init(Cycle *cycle, DateADT anchor, CycleUnit unit, int32 count);
extern void cycle_init_subscription(Cycle *cycle, DateADT start, CycleUnit unit, int32 count,
									int32 cycle_day);
extern DateADT cycle_boundary(const Cycle *cycle, int64 k);
extern int64 cycle_index_at(const Cycle *cycle, DateADT day);
extern BillingPeriod cycle_period_containing(const Cycle *cycle, DateADT day);
extern void term_periods_init(TermPeriods *tp, DateADT start, bool has_cycle_day, int32 cycle_day,
							  CycleUnit unit, int32 count, DateADT from, DateADT end, DateADT until);
extern bool term_periods_next(TermPeriods *tp, BillingPeriod *period, BillingPeriod *whole);

#endif							/* SCHEDULE_H */
