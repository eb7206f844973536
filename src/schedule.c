/*
 * schedule.c
 *		Billing cycles and billing_periods(): the periods an anchor defines,
 *		clipped to a window.
 *
 * Boundary k of a cycle is anchor + k * step.  For month and year units the
 * anchor's day of month is the cycle day, clamped to the length of each month
 * and computed from the anchor every time (Jan 31 -> Feb 28 -> Mar 31), never
 * from the previous boundary, so clamping does not drift.
 */
#include "postgres.h"

#include "datatype/timestamp.h"
#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datetime.h"

#include "billing.h"
#include "billing_period.h"
#include "schedule.h"

static inline int64
floor_div(int64 a, int64 b)
{
	int64		q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/*
 * Parse a billing interval unit: day, week, month or year.
 */
CycleUnit
cycle_unit_from_text(const text *unit)
{
	char	   *u = text_to_cstring(unit);

	if (strcmp(u, "day") == 0)
		return CYCLE_DAY;
	if (strcmp(u, "week") == 0)
		return CYCLE_WEEK;
	if (strcmp(u, "month") == 0)
		return CYCLE_MONTH;
	if (strcmp(u, "year") == 0)
		return CYCLE_YEAR;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid billing interval unit: \"%s\"", u),
			 errhint("Valid units are day, week, month and year.")));
	pg_unreachable();
}

void
cycle_init(Cycle *cycle, DateADT anchor, CycleUnit unit, int32 count)
{
	int			year,
				month,
				day;

	billing_check_date(anchor, "anchor");
	if (count < 1 || count > CYCLE_MAX_COUNT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("billing interval count must be between 1 and %d", CYCLE_MAX_COUNT),
				 errdetail("count is %d.", count)));

	j2date(anchor + POSTGRES_EPOCH_JDATE, &year, &month, &day);
	cycle->anchor = anchor;
	cycle->anchor_month = year * 12 + month - 1;
	cycle->cycle_day = day;
	switch (unit)
	{
		case CYCLE_DAY:
			cycle->monthly = false;
			cycle->step = count;
			break;
		case CYCLE_WEEK:
			cycle->monthly = false;
			cycle->step = 7 * count;
			break;
		case CYCLE_MONTH:
			cycle->monthly = true;
			cycle->step = count;
			break;
		case CYCLE_YEAR:
			cycle->monthly = true;
			cycle->step = 12 * count;
			break;
	}
}

/*
 * A subscription's cycle (SPEC §4): weekly and daily cycles start on the
 * start date.  Month and year cycles fall on cycle_day, clamped to short
 * months; the first cycle date is the first date on or after start among
 * start's month plus whole intervals (k >= 0).  A start before it makes a
 * leading stub.  The returned cycle's anchor is that first cycle date, and
 * its cycle day stays cycle_day even when the anchor itself is clamped.
 */
void
cycle_init_subscription(Cycle *cycle, DateADT start, CycleUnit unit, int32 count,
						int32 cycle_day)
{
	cycle_init(cycle, start, unit, count);
	if (!cycle->monthly)
		return;
	if (cycle_day < 1 || cycle_day > 31)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bill cycle day must be between 1 and 31"),
				 errdetail("cycle day is %d.", cycle_day)));
	cycle->cycle_day = cycle_day;
	/* boundary 0 is the cycle day in start's month; step on until >= start */
	if (cycle_boundary(cycle, 0) < start)
		cycle->anchor_month += cycle->step;
	cycle->anchor = cycle_boundary(cycle, 0);
}

/* Boundary k: the first day of the k-th period counted from the anchor. */
DateADT
cycle_boundary(const Cycle *cycle, int64 k)
{
	int64		m;
	int			year,
				month,
				day;

	if (!cycle->monthly)
		return (DateADT) (cycle->anchor + k * cycle->step);

	m = cycle->anchor_month + k * cycle->step;
	year = (int) floor_div(m, 12);
	month = (int) (m - (int64) year * 12) + 1;
	day = Min(cycle->cycle_day, day_tab[isleap(year)][month - 1]);
	return date2j(year, month, day) - POSTGRES_EPOCH_JDATE;
}

/* The largest k whose boundary is on or before "day". */
int64
cycle_index_at(const Cycle *cycle, DateADT day)
{
	int			year,
				month,
				mday;
	int64		k;

	if (!cycle->monthly)
		return floor_div((int64) day - cycle->anchor, cycle->step);

	j2date(day + POSTGRES_EPOCH_JDATE, &year, &month, &mday);
	k = floor_div((int64) year * 12 + month - 1 - cycle->anchor_month, cycle->step);
	/* boundary k lies in day's month or earlier; only the day can overshoot */
	if (cycle_boundary(cycle, k) > day)
		k--;
	return k;
}

/* The regular (unclipped) cycle period that contains "day". */
BillingPeriod
cycle_period_containing(const Cycle *cycle, DateADT day)
{
	int64		k = cycle_index_at(cycle, day);
	BillingPeriod p;

	p.start = cycle_boundary(cycle, k);
	p.end = cycle_boundary(cycle, k + 1);
	return p;
}

typedef struct PeriodsState
{
	Cycle		cycle;
	int64		k;				/* index of the next period to return */
	DateADT		from;
	DateADT		to;
} PeriodsState;

/*
 * billing_periods(anchor, unit, count, from_date, to_date)
 *		The cycle's periods clipped to [from_date, to_date): the first and last
 *		may be stubs.  No rows when from_date >= to_date.
 */
PG_FUNCTION_INFO_V1(billing_periods);
Datum
billing_periods(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	PeriodsState *state;
	BillingPeriod p;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext oldcontext;
		DateADT		from = PG_GETARG_DATEADT(3);
		DateADT		to = PG_GETARG_DATEADT(4);

		funcctx = SRF_FIRSTCALL_INIT();
		oldcontext = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		state = palloc(sizeof(PeriodsState));
		cycle_init(&state->cycle, PG_GETARG_DATEADT(0),
				   cycle_unit_from_text(PG_GETARG_TEXT_PP(1)), PG_GETARG_INT32(2));
		billing_check_date(from, "from_date");
		billing_check_date(to, "to_date");
		state->from = from;
		state->to = to;
		state->k = cycle_index_at(&state->cycle, from);
		funcctx->user_fctx = state;
		MemoryContextSwitchTo(oldcontext);
	}

	funcctx = SRF_PERCALL_SETUP();
	state = (PeriodsState *) funcctx->user_fctx;

	p.start = Max(cycle_boundary(&state->cycle, state->k), state->from);
	if (p.start >= state->to)
		SRF_RETURN_DONE(funcctx);
	p.end = Min(cycle_boundary(&state->cycle, state->k + 1), state->to);
	state->k++;
	SRF_RETURN_NEXT(funcctx, BillingPeriodGetDatum(p));
}

/*
 * cycle_period(anchor, unit, count, on_date)
 *		The regular period of the cycle that contains on_date: the "whole"
 *		against which a stub is prorated.
 */
PG_FUNCTION_INFO_V1(billing_cycle_period);
Datum
billing_cycle_period(PG_FUNCTION_ARGS)
{
	Cycle		cycle;
	DateADT		on_date = PG_GETARG_DATEADT(3);
	BillingPeriod p;

	cycle_init(&cycle, PG_GETARG_DATEADT(0),
			   cycle_unit_from_text(PG_GETARG_TEXT_PP(1)), PG_GETARG_INT32(2));
	billing_check_date(on_date, "on_date");
	p = cycle_period_containing(&cycle, on_date);

	/* validated: near 9999-12-31 the period could end past the last date */
	PG_RETURN_BILLING_PERIOD(billing_period_make(p.start, p.end));
}

/*
 * first_cycle_date(start_date, unit, count, cycle_day)
 *		The first cycle date of a subscription starting on start_date.
 */
PG_FUNCTION_INFO_V1(billing_first_cycle_date);
Datum
billing_first_cycle_date(PG_FUNCTION_ARGS)
{
	Cycle		cycle;

	cycle_init_subscription(&cycle, PG_GETARG_DATEADT(0),
							cycle_unit_from_text(PG_GETARG_TEXT_PP(1)), PG_GETARG_INT32(2),
							PG_GETARG_INT32(3));
	PG_RETURN_DATEADT(cycle.anchor);
}

typedef struct TermPeriodsState
{
	TermPeriods periods;
	TupleDesc	tupdesc;
} TermPeriodsState;

/*
 * The billing periods of terms running [start, end) (end DATEVAL_NOEND:
 * open) on the cycle of start and cycle_day (none: start's day), from the one
 * containing "from" (DATEVAL_NOBEGIN: the first) through the last starting on
 * or before "until".  Shared by cycle_periods() and the invoicing engine.
 */
void
term_periods_init(TermPeriods *tp, DateADT start, bool has_cycle_day, int32 cycle_day,
				  CycleUnit unit, int32 count, DateADT from, DateADT end, DateADT until)
{
	if (!has_cycle_day)
	{
		int			y,
					m;

		j2date(start + POSTGRES_EPOCH_JDATE, &y, &m, &cycle_day);
	}
	cycle_init_subscription(&tp->cycle, start, unit, count, cycle_day);
	tp->start = start;
	tp->end = end;
	tp->until = until;
	if (end != DATEVAL_NOEND)
		billing_check_date(end, "end_date");
	billing_check_date(until, "until_date");
	/* the first period: the one containing from_date, or the first one */
	if (from != DATEVAL_NOBEGIN && from > start)
	{
		billing_check_date(from, "from_date");
		tp->k = cycle_index_at(&tp->cycle, from);
	}
	else
		tp->k = cycle_index_at(&tp->cycle, start);
}

/* The next period and its whole; false when there are no more. */
bool
term_periods_next(TermPeriods *tp, BillingPeriod *period, BillingPeriod *whole)
{
	whole->start = cycle_boundary(&tp->cycle, tp->k);
	whole->end = cycle_boundary(&tp->cycle, tp->k + 1);
	period->start = Max(whole->start, tp->start);
	period->end = Min(whole->end, tp->end);
	if (period->start >= period->end || period->start > tp->until)
		return false;
	tp->k++;
	return true;
}

/*
 * cycle_periods(start_date, cycle_day, unit, count, from_date, end_date, until_date)
 *		RETURNS TABLE(period billing_period, whole billing_period)
 *
 * The billing periods of terms that run from start_date to end_date (NULL:
 * open), on the cycle that start_date and cycle_day define: each period
 * clipped to [start_date, end_date), with "whole" the regular cycle period it
 * belongs to (the denominator of its proration and the key it is reconciled
 * under).  Only periods that end after from_date (NULL: all) and start on or
 * before until_date are returned, so the cost follows the window, not the age
 * of the subscription.
 */
PG_FUNCTION_INFO_V1(billing_cycle_periods);
Datum
billing_cycle_periods(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	TermPeriodsState *state;
	BillingPeriod period,
				whole;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext oldcontext;
		TupleDesc	tupdesc;

		funcctx = SRF_FIRSTCALL_INIT();
		oldcontext = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		if (PG_ARGISNULL(0) || PG_ARGISNULL(2) || PG_ARGISNULL(3) || PG_ARGISNULL(6))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("cycle_periods needs start_date, unit, count and until_date")));
		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "cycle_periods must return a composite type");
		state = palloc(sizeof(TermPeriodsState));
		state->tupdesc = BlessTupleDesc(tupdesc);
		term_periods_init(&state->periods, PG_GETARG_DATEADT(0),
						  !PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1),
						  cycle_unit_from_text(PG_GETARG_TEXT_PP(2)), PG_GETARG_INT32(3),
						  PG_ARGISNULL(4) ? DATEVAL_NOBEGIN : PG_GETARG_DATEADT(4),
						  PG_ARGISNULL(5) ? DATEVAL_NOEND : PG_GETARG_DATEADT(5),
						  PG_GETARG_DATEADT(6));
		funcctx->user_fctx = state;
		MemoryContextSwitchTo(oldcontext);
	}

	funcctx = SRF_PERCALL_SETUP();
	state = (TermPeriodsState *) funcctx->user_fctx;

	if (!term_periods_next(&state->periods, &period, &whole))
		SRF_RETURN_DONE(funcctx);

	values[0] = BillingPeriodGetDatum(period);
	values[1] = BillingPeriodGetDatum(whole);
	SRF_RETURN_NEXT(funcctx,
					HeapTupleGetDatum(heap_form_tuple(state->tupdesc, values, nulls)));
}
