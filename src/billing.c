/*
 * billing.c
 *		Module entry point and small helpers shared by the C sources (dates,
 *		the extension's functions, relations and columns).
 */
#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/regproc.h"

#include "billing.h"

PG_MODULE_MAGIC;

DateADT
billing_min_date(void)
{
	return date2j(1, 1, 1) - POSTGRES_EPOCH_JDATE;
}

DateADT
billing_max_date(void)
{
	return date2j(9999, 12, 31) - POSTGRES_EPOCH_JDATE;
}

char *
billing_date_text(DateADT date, char *buf)
{
	int			year,
				month,
				day;

	j2date(date + POSTGRES_EPOCH_JDATE, &year, &month, &day);
	if (year < 0 || year > 9999)
	{
		/* not a billing date (callers validate); still a readable text */
		snprintf(buf, 11, "%04d-%02d-%02d", year, month, day);
		return buf;
	}
	/* by hand, not snprintf: a catch-up run describes ten million lines */
	buf[0] = '0' + year / 1000;
	buf[1] = '0' + year / 100 % 10;
	buf[2] = '0' + year / 10 % 10;
	buf[3] = '0' + year % 10;
	buf[4] = '-';
	buf[5] = '0' + month / 10;
	buf[6] = '0' + month % 10;
	buf[7] = '-';
	buf[8] = '0' + day / 10;
	buf[9] = '0' + day % 10;
	buf[10] = '\0';
	return buf;
}

void
billing_function_info(const char *signature, FmgrInfo *finfo, MemoryContext cxt)
{
	Oid			fn = DatumGetObjectId(DirectFunctionCall1(to_regprocedure, CStringGetTextDatum(signature)));

	if (!OidIsValid(fn))
		elog(ERROR, "function %s does not exist", signature);
	fmgr_info_cxt(fn, finfo, cxt);
}

Oid
billing_relation_oid(const char *qualified_name)
{
	Oid			relid = DatumGetObjectId(DirectFunctionCall1(to_regclass, CStringGetTextDatum(qualified_name)));

	if (!OidIsValid(relid))
		elog(ERROR, "relation %s does not exist", qualified_name);
	return relid;
}

int
billing_column_index(TupleDesc desc, const char *name)
{
	for (int a = 0; a < desc->natts; a++)
		if (!TupleDescAttr(desc, a)->attisdropped && strcmp(NameStr(TupleDescAttr(desc, a)->attname), name) == 0)
			return a;
	return -1;
}

/*
 * Reject infinite dates and dates outside years 1..9999.  "what" names the
 * argument in the message, e.g. "anchor" or "billing_period start".
 */
void
billing_check_date(DateADT date, const char *what)
{
	if (DATE_NOT_FINITE(date))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s must be a finite date", what),
				 errdetail("Billing dates run from 0001-01-01 to 9999-12-31; \"infinity\" is not a billing date.")));
	if (date < billing_min_date() || date > billing_max_date())
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s is out of range for billing", what),
				 errdetail("Billing dates run from 0001-01-01 to 9999-12-31.")));
}
