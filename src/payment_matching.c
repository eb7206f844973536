/*
 * payment_matching.c
 *		oldest_first_allocations(): new payments matched to open documents,
 *		oldest due first.
 *
 * The rule (SPEC §5, apply_payment without a document: open invoices and debit
 * notes, oldest due date first, then oldest document): per account and
 * currency, the payments in call order fill the open documents in the order
 * (due date, document date, document id), each allocation taking the least of
 * what the payment has left and what the document has open, dated on the
 * later of the payment's and the document's dates.  This is the only place that rule is applied in bulk;
 * billing.new_payment_allocations() feeds it the open documents.
 *
 * Amounts are matched in int64 minor units of their currency: one pass over
 * the payments and a sort of the documents, with no numeric arithmetic per
 * row (record_payments applies 100,000 payments in one call).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "currency.h"
#include "numeric_scaled.h"

/* The arguments: six payment arrays, then six document arrays. */
enum
{
	PAY_ACCOUNT, PAY_ID, PAY_CURRENCY, PAY_DATE, PAY_AMOUNT, PAY_IS_NEW
};
enum
{
	DOC_ACCOUNT, DOC_CURRENCY, DOC_INVOICE, DOC_ITEM_DATE, DOC_DUE_DATE, DOC_OPEN
};
#define MATCH_ARRAYS_PER_SIDE	6

/* One open document, as sorted for matching. */
typedef struct OpenDocument
{
	int64		account_id;
	text	   *currency;
	bool		has_due_date;	/* without one it comes after those with one */
	DateADT		due_date;
	DateADT		item_date;
	int64		invoice_id;
	Datum		open_amount;	/* numeric, converted once its scale is known */
} OpenDocument;

static int
text_cmp_bytes(const text *a, const text *b)
{
	int			la = VARSIZE_ANY_EXHDR(a);
	int			lb = VARSIZE_ANY_EXHDR(b);
	int			c = memcmp(VARDATA_ANY(a), VARDATA_ANY(b), Min(la, lb));

	return c != 0 ? c : (la > lb) - (la < lb);
}

/* Group key first (account, currency bytes), then the oldest-due-first order. */
static int
open_document_cmp(const void *a, const void *b)
{
	const OpenDocument *x = (const OpenDocument *) a;
	const OpenDocument *y = (const OpenDocument *) b;
	int			c;

	if (x->account_id != y->account_id)
		return x->account_id < y->account_id ? -1 : 1;
	c = text_cmp_bytes(x->currency, y->currency);
	if (c != 0)
		return c;
	if (x->has_due_date != y->has_due_date)
		return x->has_due_date ? -1 : 1;
	if (x->has_due_date && x->due_date != y->due_date)
		return x->due_date < y->due_date ? -1 : 1;
	if (x->item_date != y->item_date)
		return x->item_date < y->item_date ? -1 : 1;
	if (x->invoice_id != y->invoice_id)
		return x->invoice_id < y->invoice_id ? -1 : 1;
	return 0;
}

/* The first document of (account, currency) in the sorted array, or -1. */
static int
find_group(const OpenDocument *docs, int ndocs, int64 account_id, const text *currency)
{
	int			lo = 0;
	int			hi = ndocs;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			c;

		if (docs[mid].account_id != account_id)
			c = docs[mid].account_id < account_id ? -1 : 1;
		else
			c = text_cmp_bytes(docs[mid].currency, currency);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ndocs && docs[lo].account_id == account_id && text_cmp_bytes(docs[lo].currency, currency) == 0)
		return lo;
	return -1;
}

/*
 * An array argument's elements.  With nulls NULL every element must be
 * non-NULL; else *nulls receives which are.
 */
static Datum *
array_elements(ArrayType *array, Oid element_type, const char *name, int *n, bool **nulls_out)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			i;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s of oldest_first_allocations must be a one-dimensional array", name)));
	get_typlenbyvalalign(element_type, &typlen, &typbyval, &typalign);
	deconstruct_array(array, element_type, typlen, typbyval, typalign, &elems, &nulls, n);
	if (nulls_out != NULL)
	{
		*nulls_out = nulls;
		return elems;
	}
	for (i = 0; i < *n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s of oldest_first_allocations must not contain NULL", name),
					 errdetail("Element %d of %d is NULL.", i + 1, *n)));
	return elems;
}

/* An amount in minor units of its currency; more decimals than that is an error. */
static int64
minor_units_of(Datum amount, int scale, const text *currency, const char *what, int64 id)
{
	int64		units;

	if (!numeric_datum_to_scaled_int64(amount, scale, &units))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s %lld has more decimals than %s allows", what, (long long) id,
						text_to_cstring(currency)),
				 errdetail("Amount %s; %s has %d decimals.",
						   DatumGetCString(DirectFunctionCall1(numeric_out, amount)),
						   text_to_cstring(currency), scale)));
	return units;
}

static void
check_same_length(const char *what, int n, int m)
{
	if (n != m)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s arrays of oldest_first_allocations must have the same length", what),
				 errdetail("%d and %d elements.", n, m)));
}

/*
 * The arrays of one side, from argument "first" on, one row per element:
 * their elements into args[], their common length returned.  Only the array
 * "nullable" names (-1: none) may hold NULLs, returned in *nulls.
 */
static int
array_arguments(FunctionCallInfo fcinfo, int first, const Oid *types, const char *const *names, Datum **args,
				int nullable, bool **nulls, const char *what)
{
	int			n = 0;
	int			k;

	for (k = 0; k < MATCH_ARRAYS_PER_SIDE; k++)
	{
		int			m;

		args[k] = array_elements(PG_GETARG_ARRAYTYPE_P(first + k), types[k], names[k], &m,
								 k == nullable ? nulls : NULL);
		if (k == 0)
			n = m;
		else
			check_same_length(what, n, m);
	}
	return n;
}

/*
 * oldest_first_allocations(account_ids bigint[], payment_ids bigint[],
 *		currencies text[], received_dates date[], amounts numeric[],
 *		is_new boolean[], doc_account_ids bigint[], doc_currencies text[],
 *		doc_invoice_ids bigint[], doc_item_dates date[], doc_due_dates date[],
 *		doc_open_amounts numeric[])
 *		RETURNS TABLE (account_id bigint, invoice_id bigint, payment_id bigint,
 *					   amount numeric, allocated_on date)
 *
 * Element i of the first six arrays is a payment (those with is_new false are
 * skipped: they name a payment recorded before); the last six are the open
 * documents, in any order (a NULL due date: after those with one).  Rows come by payment in array order, then by
 * document oldest due first.  STABLE (reads billing.currency) and STRICT: no
 * payments or no documents, no allocations.
 */
PG_FUNCTION_INFO_V1(billing_oldest_first_allocations);
Datum
billing_oldest_first_allocations(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	static const Oid pay_types[MATCH_ARRAYS_PER_SIDE] = {INT8OID, INT8OID, TEXTOID, DATEOID, NUMERICOID, BOOLOID};
	static const char *const pay_names[MATCH_ARRAYS_PER_SIDE] = {"account_ids", "payment_ids", "currencies", "received_dates",
											 "amounts", "is_new"};
	static const Oid doc_types[MATCH_ARRAYS_PER_SIDE] = {INT8OID, TEXTOID, INT8OID, DATEOID, DATEOID, NUMERICOID};
	static const char *const doc_names[MATCH_ARRAYS_PER_SIDE] = {"doc_account_ids", "doc_currencies", "doc_invoice_ids",
											 "doc_item_dates", "doc_due_dates", "doc_open_amounts"};
	Datum	   *pay_args[MATCH_ARRAYS_PER_SIDE];
	Datum	   *doc_args[MATCH_ARRAYS_PER_SIDE];
	bool	   *no_due_date;
	int			npay,
				ndocs,
				i;
	OpenDocument *docs;
	int64	   *doc_left;		/* open amount left, minor units */
	int		   *group_next;		/* per group start: the first document with something left */
	MemoryContext row_cxt,
				old_cxt;

	npay = array_arguments(fcinfo, 0, pay_types, pay_names, pay_args, -1, NULL, "payment");
	ndocs = array_arguments(fcinfo, MATCH_ARRAYS_PER_SIDE, doc_types, doc_names, doc_args, DOC_DUE_DATE,
							&no_due_date, "document");

	InitMaterializedSRF(fcinfo, 0);

	docs = palloc(sizeof(OpenDocument) * Max(ndocs, 1));
	for (i = 0; i < ndocs; i++)
	{
		docs[i].account_id = DatumGetInt64(doc_args[DOC_ACCOUNT][i]);
		docs[i].currency = DatumGetTextPP(doc_args[DOC_CURRENCY][i]);
		docs[i].has_due_date = !no_due_date[i];
		docs[i].due_date = docs[i].has_due_date ? DatumGetDateADT(doc_args[DOC_DUE_DATE][i]) : 0;
		docs[i].item_date = DatumGetDateADT(doc_args[DOC_ITEM_DATE][i]);
		docs[i].invoice_id = DatumGetInt64(doc_args[DOC_INVOICE][i]);
		docs[i].open_amount = doc_args[DOC_OPEN][i];
	}
	qsort(docs, ndocs, sizeof(OpenDocument), open_document_cmp);

	doc_left = palloc(sizeof(int64) * Max(ndocs, 1));
	group_next = palloc(sizeof(int) * Max(ndocs, 1));
	for (i = 0; i < ndocs; i++)
	{
		doc_left[i] = minor_units_of(docs[i].open_amount, billing_currency_minor_units(fcinfo, docs[i].currency),
									 docs[i].currency, "the open amount of document", docs[i].invoice_id);
		group_next[i] = i;
	}

	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "billing oldest_first_allocations row",
									ALLOCSET_SMALL_SIZES);
	for (i = 0; i < npay; i++)
	{
		int64		account_id = DatumGetInt64(pay_args[PAY_ACCOUNT][i]);
		text	   *currency;
		int			scale,
					group,
					d;
		int64		left;
		DateADT		received_on = DatumGetDateADT(pay_args[PAY_DATE][i]);

		if (!DatumGetBool(pay_args[PAY_IS_NEW][i]))
			continue;
		currency = DatumGetTextPP(pay_args[PAY_CURRENCY][i]);
		group = find_group(docs, ndocs, account_id, currency);
		if (group < 0)
			continue;
		scale = billing_currency_minor_units(fcinfo, currency);
		left = minor_units_of(pay_args[PAY_AMOUNT][i], scale, currency, "the amount of payment",
							  DatumGetInt64(pay_args[PAY_ID][i]));

		for (d = group_next[group];
			 left > 0 && d < ndocs && docs[d].account_id == account_id &&
			 text_cmp_bytes(docs[d].currency, currency) == 0;
			 d++)
		{
			int64		take = Min(left, doc_left[d]);
			Datum		values[5];
			bool		nulls[5] = {false, false, false, false, false};

			if (take <= 0)
				continue;		/* nothing open (the caller passes only open documents) */
			old_cxt = MemoryContextSwitchTo(row_cxt);
			values[0] = Int64GetDatum(account_id);
			values[1] = Int64GetDatum(docs[d].invoice_id);
			values[2] = pay_args[PAY_ID][i];
			values[3] = NumericGetDatum(int128_scaled_to_numeric(take, scale));
			values[4] = DateADTGetDatum(Max(received_on, docs[d].item_date));
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			MemoryContextSwitchTo(old_cxt);
			MemoryContextReset(row_cxt);

			left -= take;
			doc_left[d] -= take;
			if (doc_left[d] > 0)
				break;			/* the payment is used up; the document stays first */
		}
		group_next[group] = d;
	}
	MemoryContextDelete(row_cxt);

	return (Datum) 0;
}
