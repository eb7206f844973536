/*
 * currency.c
 *		Look up a currency's minor units in billing.currency.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "currency.h"

#define CURRENCY_CODE_MAX	16

typedef struct CurrencyCache
{
	char		code[CURRENCY_CODE_MAX];
	int			minor_units;
} CurrencyCache;

static int
lookup_minor_units(const char *code)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	int			minor_units = -1;

	values[0] = CStringGetTextDatum(code);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare("SELECT minor_units FROM billing.currency WHERE code = $1",
									1, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		plan = p;
	}
	if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "currency lookup failed");
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			minor_units = DatumGetInt16(d);
	}
	SPI_finish();

	if (minor_units < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown currency \"%s\"", code),
				 errdetail("billing.currency has no row with code \"%s\".", code),
				 errhint("Currency codes are ISO 4217, upper case, such as USD, EUR or JPY.")));
	return minor_units;
}

static void
check_code_length(const char *code)
{
	if (strlen(code) >= CURRENCY_CODE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown currency \"%s\"", code),
				 errdetail("Currency codes are %d characters or fewer.", CURRENCY_CODE_MAX - 1)));
}

int
billing_currency_minor_units_of(const char *code)
{
	check_code_length(code);
	return lookup_minor_units(code);
}

int
billing_currency_minor_units(FunctionCallInfo fcinfo, text *code)
{
	CurrencyCache *cache = (CurrencyCache *) fcinfo->flinfo->fn_extra;
	char	   *c = text_to_cstring(code);

	if (cache != NULL && strcmp(cache->code, c) == 0)
		return cache->minor_units;

	check_code_length(c);
	if (cache == NULL)
	{
		cache = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(CurrencyCache));
		fcinfo->flinfo->fn_extra = cache;
	}
	/* look up before filling the cache, so an error leaves it consistent */
	cache->code[0] = '\0';
	cache->minor_units = lookup_minor_units(c);
	strlcpy(cache->code, c, CURRENCY_CODE_MAX);
	return cache->minor_units;
}
