/*
 * billing_period.c
 *		The billing_period type: I/O, constructor, accessors, comparison,
 *		hashing, overlap/containment/intersection and daterange casts.
 *
 * Text form is always "[YYYY-MM-DD,YYYY-MM-DD)": the end is the first day not
 * covered.  Output ignores DateStyle so exports and tests are stable.
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "datatype/timestamp.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/rangetypes.h"
#include "utils/typcache.h"

#include "billing.h"
#include "billing_period.h"

/*
 * billing_period_make
 *		Validate bounds and build a period.  Every way into the type (text,
 *		binary, constructor, cast) comes through here.
 */
BillingPeriod
billing_period_make(DateADT start, DateADT end)
{
	BillingPeriod p;

	billing_check_date(start, "billing_period start");
	billing_check_date(end, "billing_period end");
	if (start >= end)
	{
		char		sbuf[16],
					ebuf[16];

		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("billing_period start must be before its end"),
				 errdetail("start %s, end %s; a period is [start, end) and covers at least one day.",
						   billing_date_text(start, sbuf),
						   billing_date_text(end, ebuf))));
	}
	p.start = start;
	p.end = end;
	return p;
}

/* Raise the 22P02 syntax error for a billing_period literal. */
static void
report_syntax(const char *input, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type billing_period: \"%s\"", input),
			 errdetail("%s", detail)));
}

static const char *
skip_space(const char *p)
{
	while (*p && isspace((unsigned char) *p))
		p++;
	return p;
}

/*
 * Parse exactly YYYY-MM-DD at *pp, advance past it.  Syntax problems raise
 * 22P02; a well-formed but impossible date (2026-02-30) raises 22008.
 */
static DateADT
parse_iso_date(const char **pp, const char *input, const char *which)
{
	const char *p = *pp;
	int			field[3] = {0, 0, 0};
	static const int width[3] = {4, 2, 2};

	for (int f = 0; f < 3; f++)
	{
		for (int i = 0; i < width[f]; i++)
		{
			if (!isdigit((unsigned char) *p))
				report_syntax(input,
							  psprintf("The %s must be a date written YYYY-MM-DD.", which));
			field[f] = field[f] * 10 + (*p - '0');
			p++;
		}
		if (f < 2)
		{
			if (*p != '-')
				report_syntax(input,
							  psprintf("The %s must be a date written YYYY-MM-DD.", which));
			p++;
		}
	}
	if (isdigit((unsigned char) *p))
		report_syntax(input,
					  psprintf("The %s must be a date written YYYY-MM-DD.", which));

	if (field[0] < 1 || field[1] < 1 || field[1] > 12 || field[2] < 1 ||
		field[2] > day_tab[isleap(field[0])][field[1] - 1])
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_FIELD_OVERFLOW),
				 errmsg("date field value out of range in billing_period: \"%s\"", input),
				 errdetail("The %s %04d-%02d-%02d is not a calendar date.",
						   which, field[0], field[1], field[2])));

	*pp = p;
	return date2j(field[0], field[1], field[2]) - POSTGRES_EPOCH_JDATE;
}

/*
 * billing_period_in
 *		Text input: "[start,end)" with optional white space around elements.
 */
PG_FUNCTION_INFO_V1(billing_period_in);
Datum
billing_period_in(PG_FUNCTION_ARGS)
{
	const char *input = PG_GETARG_CSTRING(0);
	const char *p = skip_space(input);
	DateADT		start,
				end;

	if (*p != '[')
		report_syntax(input, "A billing_period starts with \"[\": its first day is included.");
	p = skip_space(p + 1);
	start = parse_iso_date(&p, input, "start");
	p = skip_space(p);
	if (*p != ',')
		report_syntax(input, "Expected \",\" after the start date.");
	p = skip_space(p + 1);
	end = parse_iso_date(&p, input, "end");
	p = skip_space(p);
	if (*p != ')')
		report_syntax(input, "A billing_period ends with \")\": its end date is the first day not covered.");
	p = skip_space(p + 1);
	if (*p != '\0')
		report_syntax(input, "Junk after the closing \")\".");

	PG_RETURN_BILLING_PERIOD(billing_period_make(start, end));
}

/* "[start,end)" into buf (BILLING_PERIOD_TEXT_SIZE bytes); returns buf. */
char *
billing_period_text(BillingPeriod p, char *buf)
{
	buf[0] = '[';
	billing_date_text(p.start, buf + 1);
	buf[11] = ',';
	billing_date_text(p.end, buf + 12);
	buf[22] = ')';
	buf[23] = '\0';
	return buf;
}

/*
 * billing_period_out
 *		Text output, always ISO dates.
 */
PG_FUNCTION_INFO_V1(billing_period_out);
Datum
billing_period_out(PG_FUNCTION_ARGS)
{
	BillingPeriod p = PG_GETARG_BILLING_PERIOD(0);

	PG_RETURN_CSTRING(billing_period_text(p, palloc(BILLING_PERIOD_TEXT_SIZE)));
}

/*
 * billing_period_recv
 *		Binary input: two int32 day numbers, validated like text input.
 */
PG_FUNCTION_INFO_V1(billing_period_recv);
Datum
billing_period_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	DateADT		start = (DateADT) pq_getmsgint(buf, 4);
	DateADT		end = (DateADT) pq_getmsgint(buf, 4);

	PG_RETURN_BILLING_PERIOD(billing_period_make(start, end));
}

/*
 * billing_period_send
 *		Binary output: start then end, each as the date type sends it.
 */
PG_FUNCTION_INFO_V1(billing_period_send);
Datum
billing_period_send(PG_FUNCTION_ARGS)
{
	BillingPeriod p = PG_GETARG_BILLING_PERIOD(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint32(&buf, (uint32) p.start);
	pq_sendint32(&buf, (uint32) p.end);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/*
 * billing_period(start date, end date)
 *		Constructor.
 */
PG_FUNCTION_INFO_V1(billing_period_construct);
Datum
billing_period_construct(PG_FUNCTION_ARGS)
{
	PG_RETURN_BILLING_PERIOD(billing_period_make(PG_GETARG_DATEADT(0),
												 PG_GETARG_DATEADT(1)));
}

/* period_start(p): first day covered. */
PG_FUNCTION_INFO_V1(billing_period_start);
Datum
billing_period_start(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATEADT(PG_GETARG_BILLING_PERIOD(0).start);
}

/* period_end(p): first day not covered. */
PG_FUNCTION_INFO_V1(billing_period_end);
Datum
billing_period_end(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATEADT(PG_GETARG_BILLING_PERIOD(0).end);
}

/* period_days(p): number of days covered. */
PG_FUNCTION_INFO_V1(billing_period_days_fn);
Datum
billing_period_days_fn(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(billing_period_days(PG_GETARG_BILLING_PERIOD(0)));
}

/*
 * Ordering: by start, then by end.
 */
static inline int
period_cmp(BillingPeriod a, BillingPeriod b)
{
	if (a.start != b.start)
		return a.start < b.start ? -1 : 1;
	if (a.end != b.end)
		return a.end < b.end ? -1 : 1;
	return 0;
}

#define PERIOD_CMP_FN(name, test) \
PG_FUNCTION_INFO_V1(name); \
Datum \
name(PG_FUNCTION_ARGS) \
{ \
	int			c = period_cmp(PG_GETARG_BILLING_PERIOD(0), PG_GETARG_BILLING_PERIOD(1)); \
	PG_RETURN_BOOL(test); \
}

PERIOD_CMP_FN(billing_period_eq, c == 0)
PERIOD_CMP_FN(billing_period_ne, c != 0)
PERIOD_CMP_FN(billing_period_lt, c < 0)
PERIOD_CMP_FN(billing_period_le, c <= 0)
PERIOD_CMP_FN(billing_period_gt, c > 0)
PERIOD_CMP_FN(billing_period_ge, c >= 0)

/* btree support function 1 */
PG_FUNCTION_INFO_V1(billing_period_cmp);
Datum
billing_period_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(period_cmp(PG_GETARG_BILLING_PERIOD(0), PG_GETARG_BILLING_PERIOD(1)));
}

/* hash support functions 1 and 2: hash the packed 8 bytes like an int8 */
PG_FUNCTION_INFO_V1(billing_period_hash);
Datum
billing_period_hash(PG_FUNCTION_ARGS)
{
	uint64		v = (uint64) PG_GETARG_DATUM(0);

	PG_RETURN_UINT32(hash_bytes_uint32((uint32) (v >> 32)) ^
					 (hash_bytes_uint32((uint32) v) * 31));
}

PG_FUNCTION_INFO_V1(billing_period_hash_extended);
Datum
billing_period_hash_extended(PG_FUNCTION_ARGS)
{
	uint64		v = (uint64) PG_GETARG_DATUM(0);
	uint64		seed = (uint64) PG_GETARG_INT64(1);

	PG_RETURN_UINT64(hash_bytes_uint32_extended((uint32) (v >> 32), seed) ^
					 (hash_bytes_uint32_extended((uint32) v, seed) * 31));
}

/* a && b: the periods share at least one day */
PG_FUNCTION_INFO_V1(billing_period_overlaps);
Datum
billing_period_overlaps(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(billing_period_overlap_days(PG_GETARG_BILLING_PERIOD(0),
											   PG_GETARG_BILLING_PERIOD(1)) > 0);
}

/* p @> d: d lies in [start, end) */
PG_FUNCTION_INFO_V1(billing_period_contains_date);
Datum
billing_period_contains_date(PG_FUNCTION_ARGS)
{
	BillingPeriod p = PG_GETARG_BILLING_PERIOD(0);
	DateADT		d = PG_GETARG_DATEADT(1);

	PG_RETURN_BOOL(p.start <= d && d < p.end);
}

/* d <@ p */
PG_FUNCTION_INFO_V1(billing_date_contained_by);
Datum
billing_date_contained_by(PG_FUNCTION_ARGS)
{
	DateADT		d = PG_GETARG_DATEADT(0);
	BillingPeriod p = PG_GETARG_BILLING_PERIOD(1);

	PG_RETURN_BOOL(p.start <= d && d < p.end);
}

/* a @> b: every day of b is in a */
PG_FUNCTION_INFO_V1(billing_period_contains);
Datum
billing_period_contains(PG_FUNCTION_ARGS)
{
	BillingPeriod a = PG_GETARG_BILLING_PERIOD(0);
	BillingPeriod b = PG_GETARG_BILLING_PERIOD(1);

	PG_RETURN_BOOL(a.start <= b.start && b.end <= a.end);
}

/* a <@ b */
PG_FUNCTION_INFO_V1(billing_period_contained_by);
Datum
billing_period_contained_by(PG_FUNCTION_ARGS)
{
	BillingPeriod a = PG_GETARG_BILLING_PERIOD(0);
	BillingPeriod b = PG_GETARG_BILLING_PERIOD(1);

	PG_RETURN_BOOL(b.start <= a.start && a.end <= b.end);
}

/* a * b: the shared days, NULL when the periods are disjoint */
PG_FUNCTION_INFO_V1(billing_period_intersect);
Datum
billing_period_intersect(PG_FUNCTION_ARGS)
{
	BillingPeriod a = PG_GETARG_BILLING_PERIOD(0);
	BillingPeriod b = PG_GETARG_BILLING_PERIOD(1);
	BillingPeriod r;

	r.start = Max(a.start, b.start);
	r.end = Min(a.end, b.end);
	if (r.start >= r.end)
		PG_RETURN_NULL();
	PG_RETURN_BILLING_PERIOD(r);
}

/*
 * billing_period::daterange
 */
PG_FUNCTION_INFO_V1(billing_period_to_daterange);
Datum
billing_period_to_daterange(PG_FUNCTION_ARGS)
{
	BillingPeriod p = PG_GETARG_BILLING_PERIOD(0);
	TypeCacheEntry *typcache = range_get_typcache(fcinfo, DATERANGEOID);
	RangeBound	lower,
				upper;

	lower.val = DateADTGetDatum(p.start);
	lower.infinite = false;
	lower.inclusive = true;
	lower.lower = true;
	upper.val = DateADTGetDatum(p.end);
	upper.infinite = false;
	upper.inclusive = false;
	upper.lower = false;
	PG_RETURN_RANGE_P(make_range(typcache, &lower, &upper, false));
}

/*
 * daterange::billing_period: the range must be non-empty and bounded.
 * daterange is canonical [a,b), so bounds map one to one.
 */
PG_FUNCTION_INFO_V1(daterange_to_billing_period);
Datum
daterange_to_billing_period(PG_FUNCTION_ARGS)
{
	RangeType  *r = PG_GETARG_RANGE_P(0);
	TypeCacheEntry *typcache = range_get_typcache(fcinfo, RangeTypeGetOid(r));
	RangeBound	lower,
				upper;
	bool		empty;
	DateADT		start,
				end;

	range_deserialize(typcache, r, &lower, &upper, &empty);
	if (empty)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("cannot cast an empty daterange to billing_period"),
				 errdetail("A billing_period covers at least one day.")));
	if (lower.infinite || upper.infinite)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("cannot cast an unbounded daterange to billing_period"),
				 errdetail("Both bounds of a billing_period are dates: lower %s, upper %s.",
						   lower.infinite ? "unbounded" : "bounded",
						   upper.infinite ? "unbounded" : "bounded")));
	start = DatumGetDateADT(lower.val);
	end = DatumGetDateADT(upper.val);
	/* canonical daterange is [a,b); be safe with a non-canonical input */
	if (!lower.inclusive && !DATE_NOT_FINITE(start))
		start++;
	if (upper.inclusive && !DATE_NOT_FINITE(end))
		end++;
	PG_RETURN_BILLING_PERIOD(billing_period_make(start, end));
}
