/*
 * prorate_agg.c
 *		prorate_agg(amount, part, whole): the exact sum of prorate() over a
 *		group, so the caller rounds money once.
 *
 * Dividing every row, as sum(prorate(...)) does, costs a numeric division
 * per row.  Instead the state keeps one running numerator per distinct
 * denominator days(whole) (a handful in practice: 28..31, 365, 366, 7 ...):
 * Σ amount * days(part ∩ whole).  Amounts with at most PRORATE_FAST_SCALE
 * decimals are added as scaled int128 without allocating; others take an exact
 * numeric path.  The final function divides once per denominator.
 *
 * The state is "internal", with combine, serial and deserial functions so the
 * aggregate runs in parallel plans.
 */
#include "postgres.h"

#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#include "billing_period.h"
#include "numeric_scaled.h"
#include "prorate_sum.h"

/* Unit prices carry up to 6 decimals: those amounts take the fast path. */
#define PRORATE_FAST_SCALE		6
/* Per-denominator quotients keep this many decimals before the final sum. */
#define PRORATE_TERM_SCALE		30

typedef struct ProrateTerm
{
	int32		days;			/* days(whole): the denominator */
	int128		scaled;			/* Σ amount * used days, amount * 10^6 */
	Numeric		exact;			/* Σ amount * used days off the fast path */
} ProrateTerm;

struct ProrateAggState
{
	int64		rows;			/* non-null input rows: NULL result iff 0 */
	int			nterms;
	int			maxterms;
	int			last;			/* index of the last term used */
	ProrateTerm *terms;			/* sorted by days */
};

static ProrateAggState *
state_create(MemoryContext aggcontext)
{
	ProrateAggState *state = MemoryContextAllocZero(aggcontext, sizeof(ProrateAggState));

	state->maxterms = 4;
	state->terms = MemoryContextAlloc(aggcontext, state->maxterms * sizeof(ProrateTerm));
	return state;
}

/* The term for a denominator, inserted in order if new. */
static ProrateTerm *
state_term(ProrateAggState *state, int32 days)
{
	int			lo = 0,
				hi = state->nterms;
	ProrateTerm *term;

	if (state->last < state->nterms && state->terms[state->last].days == days)
		return &state->terms[state->last];

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (state->terms[mid].days < days)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < state->nterms && state->terms[lo].days == days)
	{
		state->last = lo;
		return &state->terms[lo];
	}

	if (state->nterms == state->maxterms)
	{
		state->maxterms *= 2;
		/* repalloc keeps the chunk in the aggregate's memory context */
		state->terms = repalloc(state->terms, state->maxterms * sizeof(ProrateTerm));
	}
	memmove(&state->terms[lo + 1], &state->terms[lo],
			(state->nterms - lo) * sizeof(ProrateTerm));
	state->nterms++;
	term = &state->terms[lo];
	term->days = days;
	term->scaled = 0;
	term->exact = NULL;
	state->last = lo;
	return term;
}

/* Add an exact numeric amount to a term, in the aggregate's context. */
static void
term_add_exact(ProrateTerm *term, Numeric amount, MemoryContext aggcontext)
{
	MemoryContext old = MemoryContextSwitchTo(aggcontext);
	Numeric		prev = term->exact;

	term->exact = prev ? numeric_add_n(prev, amount) : DatumGetNumericCopy(NumericGetDatum(amount));
	if (prev)
		pfree(prev);
	MemoryContextSwitchTo(old);
}

/*
 * Add amount * days(part ∩ whole) / days(whole), exactly; memory in cxt.
 * Shared by the aggregate and the invoicing engine (prorate_sum.h).
 */
void
prorate_sum_add(ProrateSum *state, Datum amount, BillingPeriod part, BillingPeriod whole,
				MemoryContext cxt)
{
	int32		used;
	int64		scaled;
	ProrateTerm *term;

	state->rows++;
	used = billing_period_overlap_days(part, whole);
	if (used == 0)
		return;

	term = state_term(state, billing_period_days(whole));
	if (numeric_datum_to_scaled_int64(amount, PRORATE_FAST_SCALE, &scaled))
		term->scaled += (int128) scaled * used;
	else
	{
		/* the exact path: any amount, but a finite one */
		numeric_check_finite(DatumGetNumeric(amount), "amount");
		term_add_exact(term, numeric_mul_n(DatumGetNumeric(amount), int64_to_numeric(used)), cxt);
	}
}

/* A new, empty sum in cxt. */
ProrateSum *
prorate_sum_create(MemoryContext cxt)
{
	return state_create(cxt);
}

/*
 * prorate_agg_transfn(state, amount, part, whole)
 */
PG_FUNCTION_INFO_V1(prorate_agg_transfn);
Datum
prorate_agg_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	ProrateAggState *state;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "prorate_agg_transfn called in non-aggregate context");

	state = PG_ARGISNULL(0) ? NULL : (ProrateAggState *) PG_GETARG_POINTER(0);

	/* like sum(prorate(...)): rows with a NULL argument are skipped */
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
	{
		if (state == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(state);
	}

	if (state == NULL)
		state = state_create(aggcontext);
	prorate_sum_add(state, PG_GETARG_DATUM(1), PG_GETARG_BILLING_PERIOD(2),
					PG_GETARG_BILLING_PERIOD(3), aggcontext);
	PG_RETURN_POINTER(state);
}

/*
 * prorate_agg_combinefn(state, state): merge partial states from parallel
 * workers.  The second state is never modified.
 */
PG_FUNCTION_INFO_V1(prorate_agg_combinefn);
Datum
prorate_agg_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	ProrateAggState *state1;
	ProrateAggState *state2;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "prorate_agg_combinefn called in non-aggregate context");

	state1 = PG_ARGISNULL(0) ? NULL : (ProrateAggState *) PG_GETARG_POINTER(0);
	state2 = PG_ARGISNULL(1) ? NULL : (ProrateAggState *) PG_GETARG_POINTER(1);

	if (state2 == NULL)
	{
		if (state1 == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(state1);
	}
	if (state1 == NULL)
		state1 = state_create(aggcontext);

	state1->rows += state2->rows;
	for (int i = 0; i < state2->nterms; i++)
	{
		ProrateTerm *from = &state2->terms[i];
		ProrateTerm *to = state_term(state1, from->days);

		to->scaled += from->scaled;
		if (from->exact)
			term_add_exact(to, from->exact, aggcontext);
	}
	PG_RETURN_POINTER(state1);
}

/*
 * prorate_agg_serialfn(state) -> bytea
 *		rows, nterms, then per term: days, scaled (high, low 64 bits), and the
 *		exact numeric's bytes (length 0 when absent).
 */
PG_FUNCTION_INFO_V1(prorate_agg_serialfn);
Datum
prorate_agg_serialfn(PG_FUNCTION_ARGS)
{
	ProrateAggState *state = (ProrateAggState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint64(&buf, state->rows);
	pq_sendint32(&buf, state->nterms);
	for (int i = 0; i < state->nterms; i++)
	{
		ProrateTerm *term = &state->terms[i];
		uint128		u = (uint128) term->scaled;

		pq_sendint32(&buf, term->days);
		pq_sendint64(&buf, (int64) (uint64) (u >> 64));
		pq_sendint64(&buf, (int64) (uint64) u);
		if (term->exact)
		{
			pq_sendint32(&buf, VARSIZE(term->exact));
			pq_sendbytes(&buf, (char *) term->exact, VARSIZE(term->exact));
		}
		else
			pq_sendint32(&buf, 0);
	}
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/*
 * prorate_agg_deserialfn(bytea, internal) -> state
 */
PG_FUNCTION_INFO_V1(prorate_agg_deserialfn);
Datum
prorate_agg_deserialfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	bytea	   *bytes = PG_GETARG_BYTEA_PP(0);
	StringInfoData buf;
	ProrateAggState *state;
	int			nterms;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "prorate_agg_deserialfn called in non-aggregate context");

	/* read the bytea in place: a read-only StringInfo over its payload */
	buf.data = VARDATA_ANY(bytes);
	buf.len = VARSIZE_ANY_EXHDR(bytes);
	buf.maxlen = buf.len;
	buf.cursor = 0;
	state = state_create(aggcontext);
	state->rows = pq_getmsgint64(&buf);
	nterms = pq_getmsgint(&buf, 4);
	for (int i = 0; i < nterms; i++)
	{
		int32		days = pq_getmsgint(&buf, 4);
		uint64		high = (uint64) pq_getmsgint64(&buf);
		uint64		low = (uint64) pq_getmsgint64(&buf);
		int32		len = pq_getmsgint(&buf, 4);
		ProrateTerm *term = state_term(state, days);

		term->scaled = (int128) (((uint128) high << 64) | low);
		if (len > 0)
		{
			Numeric		exact = MemoryContextAlloc(aggcontext, len);

			memcpy(exact, pq_getmsgbytes(&buf, len), len);
			term->exact = exact;
		}
	}
	pq_getmsgend(&buf);
	PG_RETURN_POINTER(state);
}

/*
 * One denominator (every row of a group prorated against the same whole, the
 * usual case: one subscription period), amounts on the fast path: the result
 * scaled / (10^6 * days) rounded once to PRORATE_RESULT_SCALE decimals, all in
 * int128.  NULL when the numbers are too large for it.
 */
static Numeric
single_term_result(const ProrateTerm *term)
{
	/* 10^(RESULT_SCALE - FAST_SCALE) = 10^14 */
	const int128 shift = (int128) 100000000000000LL;
	const int128 limit = (int128) 1000000000000000000LL * 100000;	/* 10^23 */
	int128		numerator = term->scaled;
	bool		negative = numerator < 0;
	int128		q,
				r;
	int			scale = PRORATE_RESULT_SCALE;

	if (numerator >= limit || numerator <= -limit)
		return NULL;
	if (negative)
		numerator = -numerator;
	numerator *= shift;
	/* one int128 division (a library call, not an instruction) */
	q = numerator / term->days;
	r = numerator - q * term->days;
	if (2 * r >= term->days)	/* half away from zero */
		q++;
	scaled_trim_zeros(&q, &scale);
	if (negative)
		q = -q;
	if (q > PG_INT64_MAX || q < -PG_INT64_MAX)
		return int128_scaled_to_numeric(q, scale);
	return int64_div_fast_to_numeric((int64) q, scale);
}

/*
 * Σ numerator(days) / days, exact to PRORATE_RESULT_SCALE decimals; NULL
 * over no rows, like sum().
 */
Numeric
prorate_sum_result(const ProrateSum *state)
{
	Numeric		result;

	if (state->rows == 0)
		return NULL;
	if (state->nterms == 0)
		return int64_to_numeric(0);
	if (state->nterms == 1 && state->terms[0].exact == NULL)
	{
		Numeric		fast = single_term_result(&state->terms[0]);

		if (fast != NULL)
			return fast;
	}

	result = numeric_zero();
	for (int i = 0; i < state->nterms; i++)
	{
		ProrateTerm *term = &state->terms[i];
		Numeric		numerator = int128_scaled_to_numeric(term->scaled, PRORATE_FAST_SCALE);

		if (term->exact)
			numerator = numeric_add_n(numerator, term->exact);
		result = numeric_add_n(result,
							   numeric_div_round_trim(numerator, term->days, PRORATE_TERM_SCALE));
	}
	result = numeric_round_n(result, PRORATE_RESULT_SCALE);
	return DatumGetNumeric(DirectFunctionCall1(numeric_trim_scale, NumericGetDatum(result)));
}

/*
 * prorate_agg_finalfn(state) -> numeric
 */
PG_FUNCTION_INFO_V1(prorate_agg_finalfn);
Datum
prorate_agg_finalfn(PG_FUNCTION_ARGS)
{
	Numeric		result;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	result = prorate_sum_result((ProrateAggState *) PG_GETARG_POINTER(0));
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_NUMERIC(result);
}
