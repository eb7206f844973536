/*
 * money.c
 *		round_money() and allocate(): rounding to a currency's minor unit and
 *		splitting a total into parts that sum to it exactly.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

#include "currency.h"
#include "numeric_scaled.h"

/*
 * An amount rounded half away from zero to minor_units decimals, with exactly
 * that many; NaN and infinities refused.  round_money() and the engine.
 */
Numeric
money_round(Numeric amount, int minor_units)
{
	numeric_check_finite(amount, "amount");
	return numeric_round_n(amount, minor_units);
}

/*
 * round_money(amount numeric, currency text)
 *		amount rounded half away from zero to the currency's minor unit, with
 *		exactly that many decimals (JPY 0, USD 2, KWD 3).
 */
PG_FUNCTION_INFO_V1(billing_round_money);
Datum
billing_round_money(PG_FUNCTION_ARGS)
{
	Numeric		amount = PG_GETARG_NUMERIC(0);
	int			minor_units = billing_currency_minor_units(fcinfo, PG_GETARG_TEXT_PP(1));

	PG_RETURN_NUMERIC(money_round(amount, minor_units));
}

typedef struct AllocPart
{
	int			index;
	Numeric		units;			/* truncated share, in minor units */
	Numeric		remainder;		/* numerator left over: compared across parts */
} AllocPart;

/* Largest remainder first; ties go to the earlier part. */
static int
alloc_part_cmp(const void *a, const void *b)
{
	const AllocPart *pa = (const AllocPart *) a;
	const AllocPart *pb = (const AllocPart *) b;
	int			c = numeric_cmp_n(pb->remainder, pa->remainder);

	if (c != 0)
		return c;
	return pa->index - pb->index;
}

static int
alloc_index_cmp(const void *a, const void *b)
{
	return ((const AllocPart *) a)->index - ((const AllocPart *) b)->index;
}

/*
 * allocate(total numeric, weights numeric[], currency text) -> numeric[]
 *		Split total in proportion to weights by the largest-remainder method:
 *		each part is its share truncated to the minor unit, and the units left
 *		over go one each to the parts with the largest remainders (ties: the
 *		earlier part).  All arithmetic is exact; the parts sum to total.
 *		A negative total is split as its absolute value, then negated.
 */
PG_FUNCTION_INFO_V1(billing_allocate);
Datum
billing_allocate(PG_FUNCTION_ARGS)
{
	Numeric		total = PG_GETARG_NUMERIC(0);
	ArrayType  *weights = PG_GETARG_ARRAYTYPE_P(1);
	int			minor_units = billing_currency_minor_units(fcinfo, PG_GETARG_TEXT_PP(2));
	Numeric		zero = int64_to_numeric(0);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Numeric		units_total,
				weight_sum = zero,
				assigned = zero,
				unit,
				leftover_n;
	bool		negative;
	int64		leftover;
	AllocPart  *parts;
	Datum	   *result;

	numeric_check_finite(total, "total");
	if (numeric_cmp_n(numeric_round_n(total, minor_units), total) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("total %s is not a whole number of minor units of %s",
						DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(total))),
						text_to_cstring(PG_GETARG_TEXT_PP(2))),
				 errdetail("%s has %d decimal places.",
						   text_to_cstring(PG_GETARG_TEXT_PP(2)), minor_units)));
	if (ARR_NDIM(weights) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("weights must be a one-dimensional array"),
				 errdetail("The array has %d dimensions.", ARR_NDIM(weights))));

	deconstruct_array(weights, NUMERICOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("allocate needs at least one weight")));

	for (int i = 0; i < n; i++)
	{
		Numeric		w;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("weights must not contain NULL"),
					 errdetail("Weight %d of %d is NULL.", i + 1, n)));
		w = DatumGetNumeric(elems[i]);
		numeric_check_finite(w, "weight");
		if (numeric_cmp_n(w, zero) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("weights must not be negative"),
					 errdetail("Weight %d of %d is %s.", i + 1, n,
							   DatumGetCString(DirectFunctionCall1(numeric_out, elems[i])))));
		weight_sum = numeric_add_n(weight_sum, w);
	}
	if (numeric_cmp_n(weight_sum, zero) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("weights must not all be zero"),
				 errdetail("%d weights sum to 0.", n)));

	/* work in whole minor units: units_total = |total| * 10^minor_units */
	negative = numeric_cmp_n(total, zero) < 0;
	units_total = numeric_mul_n(total, numeric_pow10(minor_units));
	if (negative)
		units_total = DatumGetNumeric(DirectFunctionCall1(numeric_uminus,
														  NumericGetDatum(units_total)));

	parts = palloc(n * sizeof(AllocPart));
	for (int i = 0; i < n; i++)
	{
		Numeric		numerator = numeric_mul_n(units_total, DatumGetNumeric(elems[i]));

		parts[i].index = i;
		parts[i].units = DatumGetNumeric(DirectFunctionCall2(numeric_div_trunc,
															 NumericGetDatum(numerator),
															 NumericGetDatum(weight_sum)));
		parts[i].remainder = DatumGetNumeric(DirectFunctionCall2(numeric_mod,
																 NumericGetDatum(numerator),
																 NumericGetDatum(weight_sum)));
		assigned = numeric_add_n(assigned, parts[i].units);
	}

	/* each truncation loses less than one unit, so fewer than n are left */
	leftover_n = DatumGetNumeric(DirectFunctionCall2(numeric_sub,
													 NumericGetDatum(units_total),
													 NumericGetDatum(assigned)));
	leftover = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(leftover_n)));
	if (leftover < 0 || leftover >= n)
		elog(ERROR, "allocate: %lld units left over for %d parts", (long long) leftover, n);

	qsort(parts, n, sizeof(AllocPart), alloc_part_cmp);
	for (int i = 0; i < leftover; i++)
		parts[i].units = numeric_add_n(parts[i].units, int64_to_numeric(1));
	qsort(parts, n, sizeof(AllocPart), alloc_index_cmp);

	unit = int64_div_fast_to_numeric(negative ? -1 : 1, minor_units);
	result = palloc(n * sizeof(Datum));
	for (int i = 0; i < n; i++)
		result[i] = NumericGetDatum(numeric_mul_n(parts[i].units, unit));

	PG_RETURN_ARRAYTYPE_P(construct_array(result, n, NUMERICOID, -1, false, TYPALIGN_INT));
}
