/*
 * revenue.c
 *		revenue_months(): the revenue recognition split of one invoice line.
 *
 * A line is recognized daily over its service period, split by calendar
 * month: each month round(amount x days in month / total days), the last
 * month takes the remainder, so the months always sum to the line.  A line
 * without a service period is recognized in the month of its document date.
 *
 * This is the only place the split is computed: billing.revenue_schedule is
 * a view that applies it to posted lines, so a run writes no schedule rows
 * (an annual line would otherwise write thirteen).
 */
#include "postgres.h"

#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/numeric.h"

#include "billing_period.h"
#include "numeric_scaled.h"

/* A line spans at most this many months: 9999 years of dates. */
#define MAX_REVENUE_MONTHS	(9999 * 12 + 1)

typedef struct RevenueSplit
{
	int			months;			/* rows to return */
	int			next;			/* next row */
	int			first_year;		/* month of the first row */
	int			first_month;
	BillingPeriod period;
	bool		exact;			/* amount held in amount_units */
	int64		amount_units;	/* amount x 10^minor_units */
	int128		done_units;		/* shares returned so far */
	Numeric		amount;			/* numeric path: the amount itself */
	Numeric		done;			/* numeric path: shares returned so far */
	int			minor_units;
} RevenueSplit;

static DateADT
month_start(int year, int month)
{
	return date2j(year, month, 1) - POSTGRES_EPOCH_JDATE;
}

/*
 * revenue_months(amount numeric, service_period billing_period,
 *				  document_date date, minor_units int)
 *		RETURNS TABLE (period_month date, amount numeric)
 *
 * IMMUTABLE STRICT on amount, document_date and minor_units; a NULL
 * service_period means "recognized in the document's month".
 */
PG_FUNCTION_INFO_V1(billing_revenue_months);
Datum
billing_revenue_months(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	RevenueSplit *split;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	DateADT		from;
	DateADT		to;
	int			days;
	bool		last;
	HeapTuple	tuple;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext oldcontext;
		TupleDesc	tupdesc;
		int			year,
					month,
					day;

		funcctx = SRF_FIRSTCALL_INIT();
		oldcontext = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "revenue_months must return a composite type");
		funcctx->tuple_desc = BlessTupleDesc(tupdesc);

		if (PG_ARGISNULL(0) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		{
			MemoryContextSwitchTo(oldcontext);
			SRF_RETURN_DONE(funcctx);
		}

		split = palloc0(sizeof(RevenueSplit));
		split->minor_units = PG_GETARG_INT32(3);
		if (split->minor_units < 0 || split->minor_units > 18)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("minor units of a currency must be between 0 and 18"),
					 errdetail("minor_units is %d", split->minor_units)));
		split->amount = PG_GETARG_NUMERIC_COPY(0);
		numeric_check_finite(split->amount, "amount");
		split->exact = numeric_datum_to_scaled_int64(NumericGetDatum(split->amount),
													 split->minor_units, &split->amount_units);
		split->done = int64_to_numeric(0);

		if (PG_ARGISNULL(1))
		{
			/* no service period: one row, the document's month */
			DateADT		doc = PG_GETARG_DATEADT(2);

			j2date(doc + POSTGRES_EPOCH_JDATE, &year, &month, &day);
			split->period.start = doc;
			split->period.end = doc + 1;
		}
		else
		{
			split->period = PG_GETARG_BILLING_PERIOD(1);
			j2date(split->period.start + POSTGRES_EPOCH_JDATE, &year, &month, &day);
		}
		split->first_year = year;
		split->first_month = month;
		{
			int			last_year,
						last_month;

			j2date(split->period.end - 1 + POSTGRES_EPOCH_JDATE, &last_year, &last_month, &day);
			split->months = (last_year - year) * 12 + (last_month - month) + 1;
		}
		Assert(split->months >= 1 && split->months <= MAX_REVENUE_MONTHS);
		funcctx->user_fctx = split;
		MemoryContextSwitchTo(oldcontext);
	}

	funcctx = SRF_PERCALL_SETUP();
	split = funcctx->user_fctx;
	if (split == NULL || split->next >= split->months)
		SRF_RETURN_DONE(funcctx);

	/* this row's month and the service days inside it */
	{
		int			m = split->first_month - 1 + split->next;
		int			year = split->first_year + m / 12;
		int			month = m % 12 + 1;

		from = month_start(year, month);
		to = month + 1 > 12 ? month_start(year + 1, 1) : month_start(year, month + 1);
	}
	values[0] = DateADTGetDatum(from);
	days = Min(to, split->period.end) - Max(from, split->period.start);
	last = split->next == split->months - 1;
	split->next++;

	if (split->exact)
	{
		int128		share;

		if (last)
			share = (int128) split->amount_units - split->done_units;
		else
		{
			/* round half away from zero; int128 cannot overflow here */
			int128		num = (int128) split->amount_units * days;
			int32		total = billing_period_days(split->period);
			int128		q = num / total;
			int128		r = num % total;

			if (r < 0)
				r = -r;
			if (2 * r >= total)
				q += num < 0 ? -1 : 1;
			share = q;
		}
		split->done_units += share;
		values[1] = NumericGetDatum(int128_scaled_to_numeric(share, split->minor_units));
	}
	else
	{
		/* an amount with more decimals than the currency: exact numerics */
		Numeric		share;

		if (last)
			share = DatumGetNumeric(DirectFunctionCall2(numeric_sub,
														NumericGetDatum(split->amount),
														NumericGetDatum(split->done)));
		else
			share = numeric_round_n(numeric_div_round_trim(numeric_mul_n(split->amount, int64_to_numeric(days)),
														   billing_period_days(split->period), split->minor_units),
									split->minor_units);	/* shown with the currency's decimals */
		{
			MemoryContext oldcontext = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);

			split->done = numeric_add_n(split->done, share);
			MemoryContextSwitchTo(oldcontext);
		}
		values[1] = NumericGetDatum(share);
	}

	tuple = heap_form_tuple(funcctx->tuple_desc, values, nulls);
	SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(tuple));
}
