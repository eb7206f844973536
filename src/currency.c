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

/*
 * The last few codes a call site looked up (a query sees one currency or a
 * few): a hit costs a byte comparison, no allocation; when full, the oldest
 * entry is replaced.
 */
#define CURRENCY_CACHE_ENTRIES	8

typedef struct CurrencyCache
{
	int			n;
	int			next;			/* entry replaced when full */
	int			length[CURRENCY_CACHE_ENTRIES];
	char		code[CURRENCY_CACHE_ENTRIES][CURRENCY_CODE_MAX];
	int			minor_units[CURRENCY_CACHE_ENTRIES];
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
	int			len = VARSIZE_ANY_EXHDR(code);
	char	   *c;
	int			minor_units;
	int			i;

	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CurrencyCache));
		fcinfo->flinfo->fn_extra = cache;
	}
	for (i = 0; i < cache->n; i++)
		if (cache->length[i] == len && memcmp(cache->code[i], VARDATA_ANY(code), len) == 0)
			return cache->minor_units[i];

	c = text_to_cstring(code);
	check_code_length(c);
	/* look up before filling an entry, so an error leaves the cache consistent */
	minor_units = lookup_minor_units(c);
	if (cache->n < CURRENCY_CACHE_ENTRIES)
		i = cache->n++;
	else
	{
		i = cache->next;
		cache->next = (cache->next + 1) % CURRENCY_CACHE_ENTRIES;
	}
	cache->length[i] = len;
	memcpy(cache->code[i], c, len);
	cache->minor_units[i] = minor_units;
	return minor_units;
}
