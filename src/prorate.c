/*
 * prorate.c
 *		prorate(amount, part, whole): the share of a full-period amount that
 *		a part of the period is worth, by days.
 */
#include "postgres.h"

#include "utils/numeric.h"

#include "billing_period.h"
#include "numeric_scaled.h"

/*
 * prorate(amount numeric, part billing_period, whole billing_period)
 *		amount * days(part * whole) / days(whole), multiplied first and
 *		divided once, exact to PRORATE_RESULT_SCALE decimals (the caller
 *		rounds money once, at the end).  0 when part and whole are disjoint.
 */
PG_FUNCTION_INFO_V1(billing_prorate);
Datum
billing_prorate(PG_FUNCTION_ARGS)
{
	Numeric		amount = PG_GETARG_NUMERIC(0);
	BillingPeriod part = PG_GETARG_BILLING_PERIOD(1);
	BillingPeriod whole = PG_GETARG_BILLING_PERIOD(2);
	int32		used = billing_period_overlap_days(part, whole);
	int32		days = billing_period_days(whole);

	numeric_check_finite(amount, "amount");
	if (used == 0)
		PG_RETURN_NUMERIC(int64_to_numeric(0));
	if (used == days)
		PG_RETURN_NUMERIC(amount);
	PG_RETURN_NUMERIC(numeric_div_round_trim(numeric_mul_n(amount, int64_to_numeric(used)),
											 days, PRORATE_RESULT_SCALE));
}
