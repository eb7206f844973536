/*
 * pricing.c
 *		pricing_amount(): the pricing rule, unrounded, for one full period.
 *
 * flat, per_unit and package are arithmetic here; the tiered models
 * (graduated, volume) walk their jsonb tiers in billing.tiered_amount().  In C
 * because the invoicing engine rates every usage period with it, and an SQL
 * function called from C would cost an executor start per call.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"

#include "billing.h"
#include "numeric_scaled.h"
#include "pricing.h"

static bool
model_is(text *model, const char *name)
{
	size_t		len = strlen(name);

	return VARSIZE_ANY_EXHDR(model) == len && memcmp(VARDATA_ANY(model), name, len) == 0;
}

static Numeric
call_tiered(PricingCall *call, text *pricing_model, Datum tiers, bool tiers_null, Numeric quantity)
{
	LOCAL_FCINFO(fcinfo, 3);
	Datum		result;

	if (!call->ready)
	{
		billing_function_info("billing.tiered_amount(text,jsonb,numeric)", &call->tiered, call->cxt);
		call->ready = true;
	}
	InitFunctionCallInfoData(*fcinfo, &call->tiered, 3, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = PointerGetDatum(pricing_model);
	fcinfo->args[0].isnull = pricing_model == NULL;
	fcinfo->args[1].value = tiers;
	fcinfo->args[1].isnull = tiers_null;
	fcinfo->args[2].value = NumericGetDatum(quantity);
	fcinfo->args[2].isnull = false;
	result = FunctionCallInvoke(fcinfo);
	return fcinfo->isnull ? NULL : DatumGetNumeric(result);
}

Numeric
pricing_amount(PricingCall *call, text *pricing_model, Numeric unit_amount, Numeric package_size,
			   Datum tiers, bool tiers_null, Numeric quantity)
{
	if (quantity == NULL)
		return NULL;
	/* a quantity of 0 costs 0 in every model, flat fees included */
	if (DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(quantity),
										 NumericGetDatum(numeric_zero()))))
		return int64_to_numeric(0);
	if (pricing_model != NULL && model_is(pricing_model, "flat"))
		return unit_amount;
	if (pricing_model != NULL && model_is(pricing_model, "per_unit"))
		return unit_amount == NULL ? NULL : numeric_mul_opt_error(quantity, unit_amount, NULL);
	if (pricing_model != NULL && model_is(pricing_model, "package"))
	{
		Datum		packages;

		if (package_size == NULL || unit_amount == NULL)
			return NULL;
		packages = DirectFunctionCall1(numeric_ceil,
									   DirectFunctionCall2(numeric_div, NumericGetDatum(quantity),
														   NumericGetDatum(package_size)));
		return numeric_mul_opt_error(DatumGetNumeric(packages), unit_amount, NULL);
	}
	return call_tiered(call, pricing_model, tiers, tiers_null, quantity);
}

/*
 * pricing_amount(pricing_model text, unit_amount numeric, package_size
 *				  numeric, tiers jsonb, quantity numeric) -> numeric
 */
PG_FUNCTION_INFO_V1(billing_pricing_amount);
Datum
billing_pricing_amount(PG_FUNCTION_ARGS)
{
	PricingCall *call = (PricingCall *) fcinfo->flinfo->fn_extra;
	Numeric		result;

	if (call == NULL)
	{
		call = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(PricingCall));
		call->cxt = fcinfo->flinfo->fn_mcxt;
		fcinfo->flinfo->fn_extra = call;
	}
	result = pricing_amount(call,
							PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
							PG_ARGISNULL(1) ? NULL : PG_GETARG_NUMERIC(1),
							PG_ARGISNULL(2) ? NULL : PG_GETARG_NUMERIC(2),
							PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3), PG_ARGISNULL(3),
							PG_ARGISNULL(4) ? NULL : PG_GETARG_NUMERIC(4));
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_NUMERIC(result);
}
