/*
 * due_items.c
 *		billing.due_items(): what an invoice run with a target date would bill
 *		(SPEC principle 3, recompute and reconcile), one subscription at a time.
 *
 * For every subscription with work due, and every period in its window:
 *	 expected = what the dated timeline says the period costs (rounded once),
 *	 billed	  = what non-void documents already hold for that period,
 * and the difference becomes lines.  Periods are keyed by their regular cycle
 * period ("whole"), so a stub, a cancellation or a change inside a period all
 * reconcile against the same key.  Mid-period changes, backdated changes,
 * cancellations, late usage and void-and-rebill are all this rule.
 *
 * One query streams the candidate subscriptions in key order; beside it,
 * scans in the same order bring each one's timeline, its billed lines in the
 * window and, when a usage period is due, its recent usage (keyed_scan.c: the
 * cost follows what is due, not the history).  Each subscription is then
 * reconciled in memory and its lines and new watermarks are returned or
 * written.  Written as a dozen set-based SQL steps, the same rule cost about
 * 40 µs per subscription in hash joins and sorts between the steps.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/numeric.h"

#include "billing.h"
#include "billing_period.h"
#include "currency.h"
#include "keyed_scan.h"
#include "numeric_scaled.h"
#include "pricing.h"
#include "prorate_sum.h"
#include "run_statements.h"
#include "run_writer.h"
#include "schedule.h"
#include "watermark_writer.h"

/*
 * The candidates, in key order from the primary key (merged with the
 * accounts' by account_id, no sort); "%s" is the condition on the accounts of
 * a chunk, or nothing.  never_billed: no run has reached the subscription,
 * so its row's terms may not be in the timeline yet (add_timeline() tells).
 * What each candidate's reconciliation reads besides comes from scans in the
 * same order (keyed_scan.c): its timeline, its billed lines and its usage.
 */
static const char *const stream_query_format =
"SELECT s.account_id, s.subscription_id, s.start_date, s.end_date, s.prorate_final_period,"
"		s.billed_through, s.reconcile_from, s.next_due_date,"
"		CASE WHEN $3 THEN s.start_date"
"			 ELSE least(coalesce(s.billed_through, s.start_date), coalesce(s.reconcile_from, 'infinity')) END"
"			AS window_from,"
"		a.tax_region, a.tax_exempt,"
"		s.last_target_date IS NULL AS never_billed,"
"		billing.start_cycle_day(s.bill_cycle_day, a.bill_cycle_day, s.start_date) AS start_cycle_day,"
"		s.price_id, s.quantity, s.unit_amount, s.ctid"
" FROM billing.subscription s"
" JOIN billing.account a ON a.account_id = s.account_id"
" WHERE ($3 OR billing.has_work_due(s.start_date, s.next_due_date, s.reconcile_from, s.last_target_date, $1))"
"   %s"
"   AND s.start_date <= $1"
"   AND NOT a.billing_hold AND NOT s.billing_hold"
"   AND (s.next_bill_date_override IS NULL OR s.next_bill_date_override <= $1)"
" ORDER BY s.account_id, s.subscription_id";

enum
{
	S_ACCOUNT_ID, S_SUBSCRIPTION_ID, S_START_DATE, S_END_DATE, S_PRORATE_FINAL_PERIOD,
	S_BILLED_THROUGH, S_RECONCILE_FROM, S_NEXT_DUE_DATE, S_WINDOW_FROM, S_TAX_REGION, S_TAX_EXEMPT,
	S_NEVER_BILLED, S_START_CYCLE_DAY, S_PRICE_ID, S_QUANTITY, S_UNIT_AMOUNT, S_CTID,
	S_NCOLUMNS
};

/* Columns of billing.due_item */
enum
{
	D_ITEM, D_ACCOUNT_ID, D_SUBSCRIPTION_ID, D_CURRENCY, D_PRICE_ID, D_KIND, D_SERVICE_PERIOD,
	D_CYCLE_PERIOD, D_QUANTITY, D_UNIT_AMOUNT, D_AMOUNT, D_TAX_AMOUNT, D_LINE_NUMBER,
	D_DESCRIPTION, D_SORT_DATE, D_SORT_SEQ, D_BILLED_THROUGH, D_NEXT_DUE_DATE,
	D_SEEN_RECONCILE_FROM, D_INVOICE_ID,
	D_NCOLUMNS
};

/*
 * The columns of billing.invoice_line a run writes, and the due_item column
 * each comes from (billing.write_due_lines()).
 */
static const char *const line_column_names[] = {
	"account_id", "invoice_id", "line_number", "subscription_id", "price_id", "kind", "service_period",
	"cycle_period", "quantity", "unit_amount", "amount", "tax_amount", "description",
};
static const int line_column_items[] = {
	D_ACCOUNT_ID, D_INVOICE_ID, D_LINE_NUMBER, D_SUBSCRIPTION_ID, D_PRICE_ID, D_KIND, D_SERVICE_PERIOD,
	D_CYCLE_PERIOD, D_QUANTITY, D_UNIT_AMOUNT, D_AMOUNT, D_TAX_AMOUNT, D_DESCRIPTION,
};
#define LINE_NCOLUMNS lengthof(line_column_names)

#define CURRENCY_LEN	16

/* A price of the catalog with its product: the terms a timeline row names. */
typedef struct PriceInfo
{
	int64		price_id;		/* hash key */
	char		currency[CURRENCY_LEN];
	int			minor_units;
	char		charge_type;	/* 'r'ecurring, 'u'sage, 'o'ne-time */
	text	   *billing_interval;	/* NULL for one-time prices */
	int32		interval_count;
	char		timing;			/* 'a' in advance, 'r' in arrears, 0 none */
	bool		prorate_none;
	text	   *pricing_model;
	Numeric		unit_amount;
	Numeric		package_size;
	Datum		tiers;
	bool		tiers_null;
	char	   *product_name;
	char	   *tax_code;		/* NULL: the region's general rate */
} PriceInfo;

typedef struct TaxRate
{
	char	   *region;
	char	   *tax_code;
	Numeric		rate;
	struct TaxRate *next;
} TaxRate;

/* The document a run writes for an account and currency: its lines so far. */
typedef struct DocumentTotals
{
	char		currency[CURRENCY_LEN];
	int32		lines;			/* also the last line number given */
	Numeric		subtotal;		/* in the engine's account_cxt */
	Numeric		tax_total;
	int			slot;			/* its place in Engine.documents before they are sorted */
	int64		invoice_id;		/* a writing run's: given when the account is done */
} DocumentTotals;

/* A line of the current account, held by a writing run until its document has an id. */
typedef struct HeldLine
{
	int			document;		/* index into Engine.documents */
	Datum		v[D_NCOLUMNS];	/* a due_item, in the engine's account_cxt */
	bool		n[D_NCOLUMNS];
} HeldLine;

/* One run's lookups, kept for the whole call. */
typedef struct Engine
{
	MemoryContext cxt;
	DateADT		target_date;
	HTAB	   *prices;
	TaxRate    *tax_rates;
	PricingCall pricing;
	FmgrInfo	effective_tax_rate;
	Tuplestorestate *out;
	TupleDesc	out_desc;

	/*
	 * What a candidate's reconciliation reads, in the candidates' order
	 * (keyed_scan.c): its timeline, its billed lines, the invoices they are on
	 * (the last one kept), its usage (only when a usage period is due).
	 */
	KeyedScan  *timeline;
	int			change_id,		/* 0-based columns of subscription_change */
				change_kind,
				change_day,
				change_cycle_day,
				change_price_id,
				change_quantity,
				change_unit_amount;
	KeyedScan  *billed_lines;
	AttrNumber	line_invoice_id,
				line_kind,
				line_cycle_period,
				line_service_period,
				line_amount,
				line_price_id;
	KeyedScan  *invoices;
	AttrNumber	invoice_status,
				invoice_currency;
	bool		has_invoice;
	int64		invoice_account_id;
	int64		invoice_id;
	bool		invoice_void;
	char		invoice_currency_code[CURRENCY_LEN];
	KeyedScan  *usage;
	AttrNumber	usage_date,
				usage_quantity;
	int32		usage_lookback;	/* usage_lookback_days() */
	Datum		item_line;		/* 'line', 'watermark' and 'document', made once */
	Datum		item_watermark;
	Datum		item_document;
	/* the documents of the current account, one per currency */
	int64		account_id;
	MemoryContext account_cxt;
	int			ndocuments;
	DocumentTotals documents[8];

	/*
	 * A writing run (billing.write_due_lines()): the account's lines are held
	 * until it is done, then its documents take ids and the lines go into
	 * billing.invoice_line through the bulk writer, or, when that table has
	 * an insert trigger of someone else's, out as items with their ids.
	 */
	bool		writing;
	RunWriter  *writer;
	WatermarkWriter *watermarks;	/* NULL: out as items, for the run's UPDATE */
	Oid			invoice_id_seq;
	HeldLine   *held;
	int			nheld;
	int			maxheld;
} Engine;

/* A timeline row: terms from "start" on. */
typedef struct Segment
{
	int64		change_id;
	DateADT		start;
	DateADT		end;			/* DATEVAL_NOEND: open */
	PriceInfo  *price;
	Numeric		quantity;
	Numeric		unit_amount;	/* the row's, else the price's */
	bool		has_cycle_day;
	int32		cycle_day;
	Numeric		rate;			/* pricing_amount(quantity); NULL allowed */
	int			cycle_no;
	bool		new_cycle;
} Segment;

/* Terms with one cycle. */
typedef struct CycleGroup
{
	int			cycle_no;
	PriceInfo  *price;			/* its first segment's: the cycle's attributes */
	DateADT		start;
	DateADT		end;			/* DATEVAL_NOEND: open */
	bool		has_cycle_day;
	int32		cycle_day;
} CycleGroup;

typedef struct Period
{
	BillingPeriod period;
	BillingPeriod whole;
	CycleGroup *cycle;
	bool		due;
	bool		full;			/* charged as a full period */
} Period;

typedef struct BilledLine
{
	bool		one_time;
	bool		has_cycle_period;
	BillingPeriod cycle_period;
	bool		has_service_period;
	BillingPeriod service_period;
	Numeric		amount;
	bool		has_price;
	int64		price_id;
	char		currency[CURRENCY_LEN];
} BilledLine;

/* What non-void documents hold for one period key, or for one-time charges. */
typedef struct Billed
{
	BillingPeriod whole;
	Numeric		billed;
	int64		lines;
	char		currency[CURRENCY_LEN];
	bool		has_price;
	int64		price_id;
	bool		has_start;
	DateADT		billed_start;
	DateADT		billed_end;
	bool		recurring;		/* reconciled as recurring: not usage, period due */
	bool		matched;
} Billed;

/* What the timeline says a recurring period key costs. */
typedef struct Expected
{
	const char *currency;
	int			minor_units;
	BillingPeriod whole;
	DateADT		key_start;
	DateADT		key_end;
	bool		any_full;
	Numeric		max_full_rate;
	ProrateSum *all;
	ProrateSum *before;
	Segment    *terms;			/* the key's last segment */
	Numeric		expected;
	Numeric		unchanged;
} Expected;

typedef struct UsageRecord
{
	DateADT		day;
	Numeric		quantity;
} UsageRecord;

/* A line to return. */
typedef struct DueLine
{
	const char *currency;
	int			minor_units;
	bool		has_price;
	int64		price_id;
	const char *kind;
	bool		has_service_period;
	BillingPeriod service_period;
	bool		has_cycle_period;
	BillingPeriod cycle_period;
	Numeric		quantity;
	Numeric		unit_amount;
	Numeric		amount;
	char	   *description;
	bool		has_sort_date;
	DateADT		sort_date;
	int32		sort_seq;
	int			order;			/* generation order: the last sort key */
} DueLine;

/* Growable arrays in the subscription's memory context. */
#define PUSH(arr, n, cap) \
	do { \
		if ((n) == (cap)) \
		{ \
			(cap) = (cap) ? (cap) * 2 : 8; \
			(arr) = (arr) ? repalloc((arr), (cap) * sizeof(*(arr))) : palloc((cap) * sizeof(*(arr))); \
		} \
	} while (0)

/* One candidate subscription and what the stream gave for it. */
typedef struct Subscription
{
	int64		account_id;
	int64		subscription_id;
	DateADT		start_date;
	DateADT		end_date;		/* DATEVAL_NOEND: open */
	bool		prorate_final_period;
	bool		has_billed_through;
	DateADT		billed_through;
	bool		has_reconcile_from;
	DateADT		reconcile_from;
	bool		has_next_due_date;
	DateADT		next_due_date;
	DateADT		window_from;
	char	   *tax_region;
	bool		tax_exempt;
	ItemPointerData ctid;		/* where the stream read the row */
	bool		has_start_change;	/* the timeline holds the start terms */

	Segment    *segments;
	int			nsegments,
				maxsegments;
	BilledLine *billed;
	int			nbilled,
				maxbilled;
	bool		usage_read;		/* usage is read when a usage period is due */
	UsageRecord *usage;
	int			nusage,
				maxusage;
	DueLine    *lines;
	int			nlines,
				maxlines;
} Subscription;

static bool
numeric_is_zero(Numeric a)
{
	return numeric_cmp_n(a, numeric_zero()) == 0;
}

/* round_money(), which is STRICT: NULL stays NULL */
static Numeric
round_money(Numeric amount, int minor_units)
{
	return amount == NULL ? NULL : money_round(amount, minor_units);
}

static bool
text_equal(text *a, text *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

/*
 * A line's description: the parts joined, in one allocation.  Dates and
 * periods are ISO whatever the session's DateStyle (billing_date_text), and
 * formatted without printf: a catch-up run describes ten million lines.
 */
static char *
describe(const char *a, const char *b, const char *c, const char *d)
{
	const char *parts[4] = {a, b, c, d};
	size_t		len[4];
	size_t		total = 0;
	char	   *text,
			   *p;

	for (int i = 0; i < 4; i++)
		total += len[i] = parts[i] ? strlen(parts[i]) : 0;
	p = text = palloc(total + 1);
	for (int i = 0; i < 4; i++)
	{
		memcpy(p, parts[i] ? parts[i] : "", len[i]);
		p += len[i];
	}
	*p = '\0';
	return text;
}

/* reconcile_point(): where the change being reconciled starts inside a key */
static DateADT
reconcile_point(const Subscription *sub, BillingPeriod whole)
{
	if (sub->has_reconcile_from && sub->reconcile_from > whole.start && sub->reconcile_from < whole.end)
		return sub->reconcile_from;
	return whole.start;
}

/* ----------
 * Catalog lookups, loaded once per call
 * ----------
 */

static void
load_prices(Engine *engine)
{
	HASHCTL		ctl;
	MemoryContext old;

	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(PriceInfo);
	ctl.hcxt = engine->cxt;
	engine->prices = hash_create("billing prices", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	if (SPI_execute("SELECT p.price_id, p.currency, c.minor_units, p.charge_type, p.billing_interval,"
					"		p.interval_count, p.billing_timing, p.proration, p.pricing_model, p.unit_amount,"
					"		p.package_size, p.tiers, pr.name, pr.tax_code"
					" FROM billing.price p"
					" JOIN billing.product pr ON pr.product_id = p.product_id"
					" JOIN billing.currency c ON c.code = p.currency", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading billing.price failed");

	old = MemoryContextSwitchTo(engine->cxt);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		v[14];
		bool		n[14];
		int64		price_id;
		PriceInfo  *p;
		char	   *s;

		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, v, n);
		price_id = DatumGetInt64(v[0]);
		p = hash_search(engine->prices, &price_id, HASH_ENTER, NULL);
		strlcpy(p->currency, TextDatumGetCString(v[1]), CURRENCY_LEN);
		p->minor_units = DatumGetInt16(v[2]);
		s = TextDatumGetCString(v[3]);
		p->charge_type = strcmp(s, "recurring") == 0 ? 'r' : strcmp(s, "usage") == 0 ? 'u' : 'o';
		p->billing_interval = n[4] ? NULL : DatumGetTextPCopy(v[4]);
		p->interval_count = DatumGetInt32(v[5]);
		p->timing = n[6] ? 0 : strcmp(TextDatumGetCString(v[6]), "in_advance") == 0 ? 'a' : 'r';
		p->prorate_none = strcmp(TextDatumGetCString(v[7]), "none") == 0;
		p->pricing_model = DatumGetTextPCopy(v[8]);
		p->unit_amount = n[9] ? NULL : DatumGetNumericCopy(v[9]);
		p->package_size = n[10] ? NULL : DatumGetNumericCopy(v[10]);
		p->tiers_null = n[11];
		p->tiers = n[11] ? (Datum) 0 : datumCopy(v[11], false, -1);
		p->product_name = TextDatumGetCString(v[12]);
		p->tax_code = n[13] ? NULL : TextDatumGetCString(v[13]);
	}
	MemoryContextSwitchTo(old);
	SPI_freetuptable(SPI_tuptable);
}

static PriceInfo *
find_price(Engine *engine, int64 price_id)
{
	return hash_search(engine->prices, &price_id, HASH_FIND, NULL);
}

/*
 * Days of the longest usage period of the catalog: usage older than that
 * before a window cannot fall in one of its periods.
 */
static int32
usage_lookback_days(Engine *engine)
{
	HASH_SEQ_STATUS scan;
	PriceInfo  *p;
	int32		days = 0;

	hash_seq_init(&scan, engine->prices);
	while ((p = hash_seq_search(&scan)) != NULL)
	{
		int32		unit_days;

		if (p->charge_type != 'u' || p->billing_interval == NULL)
			continue;
		switch (cycle_unit_from_text(p->billing_interval))
		{
			case CYCLE_DAY:
				unit_days = 1;
				break;
			case CYCLE_WEEK:
				unit_days = 7;
				break;
			case CYCLE_MONTH:
				unit_days = 31;
				break;
			default:
				unit_days = 366;
				break;
		}
		days = Max(days, unit_days * p->interval_count);
	}
	return days;
}

/* effective_tax_rate(region, tax_code, target_date), once per pair */
static Numeric
tax_rate(Engine *engine, const char *region, const char *tax_code)
{
	TaxRate    *t;
	MemoryContext old;
	LOCAL_FCINFO(fcinfo, 3);
	Datum		rate;

	for (t = engine->tax_rates; t != NULL; t = t->next)
		if (strcmp(t->region, region) == 0 &&
			(t->tax_code == NULL ? tax_code == NULL : tax_code != NULL && strcmp(t->tax_code, tax_code) == 0))
			return t->rate;

	old = MemoryContextSwitchTo(engine->cxt);
	t = palloc(sizeof(TaxRate));
	t->region = pstrdup(region);
	t->tax_code = tax_code ? pstrdup(tax_code) : NULL;
	InitFunctionCallInfoData(*fcinfo, &engine->effective_tax_rate, 3, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = CStringGetTextDatum(region);
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = tax_code ? CStringGetTextDatum(tax_code) : (Datum) 0;
	fcinfo->args[1].isnull = tax_code == NULL;
	fcinfo->args[2].value = DateADTGetDatum(engine->target_date);
	fcinfo->args[2].isnull = false;
	rate = FunctionCallInvoke(fcinfo);
	t->rate = fcinfo->isnull ? NULL : DatumGetNumericCopy(rate);
	t->next = engine->tax_rates;
	engine->tax_rates = t;
	MemoryContextSwitchTo(old);
	return t->rate;
}

/* ----------
 * One subscription
 * ----------
 */

static DueLine *
new_line(Subscription *sub, const char *currency, int minor_units, const char *kind)
{
	DueLine    *l;

	PUSH(sub->lines, sub->nlines, sub->maxlines);
	l = &sub->lines[sub->nlines];
	memset(l, 0, sizeof(DueLine));
	l->currency = currency;
	l->minor_units = minor_units;
	l->kind = kind;
	l->order = sub->nlines++;
	return l;
}

static int
segment_order(const void *a, const void *b)
{
	const Segment *x = a,
			   *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->change_id != y->change_id)
		return x->change_id < y->change_id ? -1 : 1;
	return 0;
}

/*
 * The timeline as segments [start, end) of constant terms: a row's terms run
 * until the next row (the latest row wins on equal dates) or the end date.
 * A new cycle starts where the charge type, interval or timing changes; it
 * keeps the cycle day of its first segment.
 */
static void
build_segments(Engine *engine, Subscription *sub)
{
	int			kept = 0;
	Segment    *prev = NULL;
	int			cycle_no = 0;

	qsort(sub->segments, sub->nsegments, sizeof(Segment), segment_order);
	for (int i = 0; i < sub->nsegments; i++)
	{
		Segment    *g = &sub->segments[i];

		g->end = i + 1 < sub->nsegments ? Min(sub->segments[i + 1].start, sub->end_date) : sub->end_date;
		if (g->end != DATEVAL_NOEND && g->end <= g->start)
			continue;
		g->new_cycle = prev == NULL ||
			prev->price->charge_type != g->price->charge_type ||
			!text_equal(prev->price->billing_interval, g->price->billing_interval) ||
			prev->price->interval_count != g->price->interval_count ||
			prev->price->timing != g->price->timing;
		if (g->new_cycle)
			cycle_no++;
		g->cycle_no = cycle_no;
		g->rate = pricing_amount(&engine->pricing, g->price->pricing_model, g->unit_amount,
								 g->price->package_size, g->price->tiers, g->price->tiers_null,
								 g->quantity);
		sub->segments[kept++] = *g;
		prev = &sub->segments[kept - 1];
	}
	sub->nsegments = kept;
}

/*
 * Terms with one cycle: one group per cycle (and currency, which a
 * subscription never changes).  A price with another proration rule on the
 * same interval and timing continues the cycle: the rule is the period's own
 * (build_periods).
 */
static int
build_cycles(Subscription *sub, CycleGroup **cycles_out)
{
	CycleGroup *cycles = palloc(Max(sub->nsegments, 1) * sizeof(CycleGroup));
	int			ncycles = 0;

	for (int i = 0; i < sub->nsegments; i++)
	{
		Segment    *g = &sub->segments[i];
		CycleGroup *y = NULL;

		for (int j = 0; j < ncycles; j++)
			if (cycles[j].cycle_no == g->cycle_no &&
				strcmp(cycles[j].price->currency, g->price->currency) == 0)
			{
				y = &cycles[j];
				break;
			}
		if (y == NULL)
		{
			y = &cycles[ncycles++];
			y->cycle_no = g->cycle_no;
			y->price = g->price;
			y->start = g->start;
			y->end = g->end;
			y->has_cycle_day = false;
			y->cycle_day = 0;
		}
		else
		{
			y->start = Min(y->start, g->start);
			y->end = (y->end == DATEVAL_NOEND || g->end == DATEVAL_NOEND) ? DATEVAL_NOEND : Max(y->end, g->end);
		}
		if (g->new_cycle && g->has_cycle_day && (!y->has_cycle_day || g->cycle_day > y->cycle_day))
		{
			y->has_cycle_day = true;
			y->cycle_day = g->cycle_day;
		}
	}
	*cycles_out = cycles;
	return ncycles;
}

/* Whether the terms of a cycle in effect on a day bill stubs as full periods. */
static bool
period_rule_is_none(Subscription *sub, int cycle_no, DateADT day)
{
	for (int k = 0; k < sub->nsegments; k++)
	{
		Segment    *g = &sub->segments[k];

		if (g->cycle_no == cycle_no && g->start <= day && (g->end == DATEVAL_NOEND || g->end > day))
			return g->price->prorate_none;
	}
	return false;
}

/* Billing periods of recurring and usage terms in the window, up to the target date. */
static int
build_periods(Engine *engine, Subscription *sub, CycleGroup *cycles, int ncycles, Period **periods_out)
{
	Period	   *periods = NULL;
	int			nperiods = 0,
				maxperiods = 0;

	for (int j = 0; j < ncycles; j++)
	{
		CycleGroup *y = &cycles[j];
		TermPeriods tp;
		BillingPeriod period,
					whole;

		if (y->price->charge_type == 'o')
			continue;
		if (y->price->billing_interval == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("cycle_periods needs start_date, unit, count and until_date")));
		term_periods_init(&tp, y->start, y->has_cycle_day, y->cycle_day,
						  cycle_unit_from_text(y->price->billing_interval), y->price->interval_count,
						  sub->window_from, y->end, engine->target_date);
		while (term_periods_next(&tp, &period, &whole))
		{
			Period	   *pe;

			PUSH(periods, nperiods, maxperiods);
			pe = &periods[nperiods++];
			pe->period = period;
			pe->whole = whole;
			pe->cycle = y;
			pe->due = y->price->timing == 'a' ? period.start <= engine->target_date
				: period.end <= engine->target_date;
			/*
			 * charged as a full period: under the proration rule of the terms
			 * in effect on its first day, or the final period of a
			 * cancellation without proration
			 */
			pe->full = period_rule_is_none(sub, y->cycle_no, period.start) ||
				(!sub->prorate_final_period && sub->end_date != DATEVAL_NOEND && period.end == sub->end_date);
		}
	}
	*periods_out = periods;
	return nperiods;
}

static bool
same_period(BillingPeriod a, BillingPeriod b)
{
	return a.start == b.start && a.end == b.end;
}

/* Expected amount of each due recurring period key, multiplied first and rounded once. */
static int
build_expected(Subscription *sub, Period *periods, int nperiods, Expected **expected_out)
{
	Expected   *keys = NULL;
	int			nkeys = 0,
				maxkeys = 0;

	for (int i = 0; i < nperiods; i++)
	{
		Period	   *pe = &periods[i];
		DateADT		rp;

		if (!pe->due || pe->cycle->price->charge_type != 'r')
			continue;
		rp = reconcile_point(sub, pe->whole);
		for (int k = 0; k < sub->nsegments; k++)
		{
			Segment    *g = &sub->segments[k];
			Expected   *e = NULL;
			BillingPeriod part;

			if (g->cycle_no != pe->cycle->cycle_no || g->start >= pe->period.end ||
				(g->end != DATEVAL_NOEND && g->end <= pe->period.start))
				continue;
			for (int j = 0; j < nkeys; j++)
				if (same_period(keys[j].whole, pe->whole) &&
					strcmp(keys[j].currency, pe->cycle->price->currency) == 0)
				{
					e = &keys[j];
					break;
				}
			if (e == NULL)
			{
				PUSH(keys, nkeys, maxkeys);
				e = &keys[nkeys++];
				memset(e, 0, sizeof(Expected));
				e->currency = pe->cycle->price->currency;
				e->minor_units = pe->cycle->price->minor_units;
				e->whole = pe->whole;
				e->key_start = pe->period.start;
				e->key_end = pe->period.end;
				e->all = prorate_sum_create(CurrentMemoryContext);
				e->before = prorate_sum_create(CurrentMemoryContext);
			}
			e->key_start = Min(e->key_start, pe->period.start);
			e->key_end = Max(e->key_end, pe->period.end);
			e->any_full |= pe->full;
			if (e->terms == NULL || g->start > e->terms->start)
				e->terms = g;
			if (g->rate == NULL)
				continue;
			if (g->start <= pe->period.start &&
				(e->max_full_rate == NULL || numeric_cmp_n(g->rate, e->max_full_rate) > 0))
				e->max_full_rate = g->rate;
			part.start = Max(g->start, pe->period.start);
			part.end = Min(g->end, pe->period.end);
			prorate_sum_add(e->all, NumericGetDatum(g->rate), billing_period_make(part.start, part.end),
							pe->whole, CurrentMemoryContext);
			/* the part before the change being reconciled: unchanged by it */
			if (part.start < rp)
				prorate_sum_add(e->before, NumericGetDatum(g->rate),
								billing_period_make(part.start, Min(part.end, rp)),
								pe->whole, CurrentMemoryContext);
		}
	}
	for (int j = 0; j < nkeys; j++)
	{
		Expected   *e = &keys[j];
		Numeric		before = prorate_sum_result(e->before);

		e->expected = round_money(e->any_full ? e->max_full_rate : prorate_sum_result(e->all), e->minor_units);
		e->unchanged = round_money(e->any_full || before == NULL ? numeric_zero() : before,
								   e->minor_units);
	}
	*expected_out = keys;
	return nkeys;
}

static void
billed_add(Billed *b, BilledLine *l)
{
	b->billed = numeric_add_n(b->billed, l->amount);
	b->lines++;
	if (strcmp(l->currency, b->currency) > 0)
		strlcpy(b->currency, l->currency, CURRENCY_LEN);
	if (l->has_price && (!b->has_price || l->price_id > b->price_id))
	{
		b->has_price = true;
		b->price_id = l->price_id;
	}
	if (l->has_service_period)
	{
		if (!b->has_start)
		{
			b->has_start = true;
			b->billed_start = l->service_period.start;
			b->billed_end = l->service_period.end;
		}
		b->billed_start = Min(b->billed_start, l->service_period.start);
		b->billed_end = Max(b->billed_end, l->service_period.end);
	}
}

/* What non-void lines hold per period key; one-time charges into *one_time. */
static int
build_billed(Subscription *sub, Period *periods, int nperiods, Billed **billed_out, Billed *one_time)
{
	Billed	   *keys = NULL;
	int			nkeys = 0,
				maxkeys = 0;

	memset(one_time, 0, sizeof(Billed));
	one_time->billed = numeric_zero();
	for (int i = 0; i < sub->nbilled; i++)
	{
		BilledLine *l = &sub->billed[i];
		Billed	   *b = NULL;

		if (l->one_time)
			billed_add(one_time, l);
		if (!l->has_cycle_period)
			continue;
		for (int j = 0; j < nkeys; j++)
			if (same_period(keys[j].whole, l->cycle_period))
			{
				b = &keys[j];
				break;
			}
		if (b == NULL)
		{
			PUSH(keys, nkeys, maxkeys);
			b = &keys[nkeys++];
			memset(b, 0, sizeof(Billed));
			b->whole = l->cycle_period;
			b->billed = numeric_zero();
		}
		billed_add(b, l);
	}
	/* keys reconciled as recurring: not usage keys, not keys of a period not yet due */
	for (int j = 0; j < nkeys; j++)
	{
		keys[j].recurring = true;
		for (int i = 0; i < nperiods; i++)
			if (same_period(periods[i].whole, keys[j].whole) &&
				(!periods[i].due || periods[i].cycle->price->charge_type == 'u'))
				keys[j].recurring = false;
	}
	*billed_out = keys;
	return nkeys;
}

/* Lines of one recurring key: first bill, or the two halves of a change. */
static void
recurring_lines(Engine *engine, Subscription *sub, Expected *e, Billed *b)
{
	PriceInfo  *terms_price = e && e->terms ? e->terms->price : NULL;
	BillingPeriod whole = e ? e->whole : b->whole;
	const char *currency = e ? e->currency : b->currency;
	int			minor_units;
	Numeric		expected = e && e->expected ? e->expected : numeric_zero();
	Numeric		unchanged = e && e->unchanged ? e->unchanged : numeric_zero();
	Numeric		billed = b ? b->billed : numeric_zero();
	int64		billed_lines = b ? b->lines : 0;
	/* the new terms' price, else the billed one; the credit takes them the other way round */
	bool		has_price = terms_price != NULL || (b && b->has_price);
	int64		price_id = terms_price ? terms_price->price_id : b && b->has_price ? b->price_id : 0;
	int64		billed_price_id = b && b->has_price ? b->price_id : terms_price ? terms_price->price_id : 0;
	const char *product_name = terms_price ? terms_price->product_name
		: psprintf("subscription " INT64_FORMAT, sub->subscription_id);
	DateADT		rp;
	DueLine    *l;
	char		ptext[BILLING_PERIOD_TEXT_SIZE],
				dtext[16];

	/* a key only billed has its documents' currency */
	minor_units = e ? e->minor_units : billing_currency_minor_units_of(currency);

	/* never before the key's first billed or expected day */
	rp = Max(reconcile_point(sub, whole),
			 e ? e->key_start : b->has_start ? b->billed_start : whole.start);

	if (billed_lines == 0)
	{
		/* first bill of a period (or re-bill after a void): one recurring line */
		if (numeric_is_zero(expected))
			return;
		l = new_line(sub, currency, minor_units, "recurring");
		l->has_price = has_price;
		l->price_id = price_id;
		l->has_service_period = true;
		l->service_period = billing_period_make(e->key_start, e->key_end);
		l->has_cycle_period = true;
		l->cycle_period = whole;
		l->quantity = e->terms->quantity;
		l->unit_amount = e->terms->unit_amount;
		l->amount = expected;
		l->description = describe(product_name, " ", billing_period_text(l->service_period, ptext), NULL);
		l->has_sort_date = true;
		l->sort_date = e->key_start;
		l->sort_seq = 0;
		return;
	}
	if (numeric_cmp_n(expected, billed) == 0)
		return;

	/* a billed period whose terms changed: credit what was billed for the days from the change on ... */
	if (!numeric_is_zero(numeric_sub_n(unchanged, billed)))
	{
		PriceInfo  *bp = has_price ? find_price(engine, billed_price_id) : NULL;

		l = new_line(sub, currency, minor_units, "proration");
		l->has_price = has_price;
		l->price_id = billed_price_id;
		l->has_service_period = true;
		l->service_period = billing_period_make(rp, b->has_start && b->billed_end > rp ? b->billed_end : whole.end);
		l->has_cycle_period = true;
		l->cycle_period = whole;
		l->amount = numeric_sub_n(unchanged, billed);
		l->description = describe("Unused time on ", bp ? bp->product_name : product_name, " from ",
								  billing_date_text(rp, dtext));
		l->has_sort_date = true;
		l->sort_date = rp;
		l->sort_seq = 1;
	}
	/* ... and charge the new terms for them */
	if (!numeric_is_zero(numeric_sub_n(expected, unchanged)))
	{
		l = new_line(sub, currency, minor_units, "proration");
		l->has_price = has_price;
		l->price_id = price_id;
		l->has_service_period = true;
		l->service_period = billing_period_make(rp, e && e->key_end > rp ? e->key_end : whole.end);
		l->has_cycle_period = true;
		l->cycle_period = whole;
		l->quantity = e ? e->terms->quantity : NULL;
		l->unit_amount = e ? e->terms->unit_amount : NULL;
		l->amount = numeric_sub_n(expected, unchanged);
		l->description = describe("Remaining time on ", product_name, " from ", billing_date_text(rp, dtext));
		l->has_sort_date = true;
		l->sort_date = rp;
		l->sort_seq = 2;
	}
}

static void read_usage(Engine *engine, Subscription *sub);

/* Usage: quantities of the period's days, rated over the whole period; the difference to what was billed. */
static void
usage_lines(Engine *engine, Subscription *sub, Period *periods, int nperiods, Billed *billed, int nbilled)
{
	char		ptext[BILLING_PERIOD_TEXT_SIZE];

	for (int i = 0; i < nperiods; i++)
	{
		Period	   *pe = &periods[i];
		Numeric		used = NULL;
		Numeric		billed_amount = numeric_zero();

		if (!pe->due || pe->cycle->price->charge_type != 'u')
			continue;
		for (int j = 0; j < nbilled; j++)
			if (same_period(billed[j].whole, pe->whole))
				billed_amount = billed[j].billed;
		for (int k = 0; k < sub->nsegments; k++)
		{
			Segment    *g = &sub->segments[k];
			Numeric		expected;
			DueLine    *l;

			if (g->cycle_no != pe->cycle->cycle_no || g->start > pe->period.start ||
				(g->end != DATEVAL_NOEND && g->end <= pe->period.start))
				continue;
			if (used == NULL)
			{
				if (!sub->usage_read)
					read_usage(engine, sub);
				used = numeric_zero();
				for (int u = 0; u < sub->nusage; u++)
					if (sub->usage[u].day >= pe->period.start && sub->usage[u].day < pe->period.end)
						used = numeric_add_n(used, sub->usage[u].quantity);
			}
			expected = round_money(pricing_amount(&engine->pricing, g->price->pricing_model, g->unit_amount,
												  g->price->package_size, g->price->tiers,
												  g->price->tiers_null, used),
								   pe->cycle->price->minor_units);
			if (expected == NULL || numeric_cmp_n(expected, billed_amount) == 0)
				continue;
			l = new_line(sub, pe->cycle->price->currency, pe->cycle->price->minor_units, "usage");
			l->has_price = true;
			l->price_id = g->price->price_id;
			l->has_service_period = true;
			l->service_period = pe->period;
			l->has_cycle_period = true;
			l->cycle_period = pe->whole;
			l->quantity = used;
			l->unit_amount = g->unit_amount;
			l->amount = numeric_sub_n(expected, billed_amount);
			l->description = describe(g->price->product_name, " usage ", billing_period_text(pe->period, ptext),
									  NULL);
			l->has_sort_date = true;
			l->sort_date = pe->period.start;
			l->sort_seq = 0;
		}
	}
}

/* One-time charges: once, when their start has come. */
static void
one_time_lines(Engine *engine, Subscription *sub, Billed *one_time)
{
	bool		any = false;
	Numeric		billed = one_time->lines > 0 ? one_time->billed : numeric_zero();
	DueLine    *l;

	for (int k = 0; k < sub->nsegments; k++)
	{
		Segment    *g = &sub->segments[k];
		Numeric		expected;

		if (g->price->charge_type != 'o' || g->start > engine->target_date)
			continue;
		any = true;
		expected = round_money(g->rate, g->price->minor_units);
		if (expected == NULL)
			expected = numeric_zero();
		if (numeric_cmp_n(expected, billed) == 0)
			continue;
		l = new_line(sub, g->price->currency, g->price->minor_units, "one_time");
		l->has_price = true;
		l->price_id = g->price->price_id;
		l->quantity = g->quantity;
		l->unit_amount = g->unit_amount;
		l->amount = numeric_sub_n(expected, billed);
		l->description = pstrdup(g->price->product_name);
	}
	if (!any && one_time->lines > 0 && !numeric_is_zero(billed))
	{
		l = new_line(sub, one_time->currency, billing_currency_minor_units_of(one_time->currency), "one_time");
		l->has_price = one_time->has_price;
		l->price_id = one_time->price_id;
		l->amount = numeric_sub_n(numeric_zero(), billed);
		l->description = psprintf("subscription " INT64_FORMAT, sub->subscription_id);
	}
}

static int
line_order(const void *a, const void *b)
{
	const DueLine *x = a,
			   *y = b;

	/* sort_date NULLS FIRST, then sort_seq, then as generated */
	if (x->has_sort_date != y->has_sort_date)
		return x->has_sort_date ? 1 : -1;
	if (x->has_sort_date && x->sort_date != y->sort_date)
		return x->sort_date < y->sort_date ? -1 : 1;
	if (x->sort_seq != y->sort_seq)
		return x->sort_seq < y->sort_seq ? -1 : 1;
	return x->order - y->order;
}

static int
document_currency_order(const void *a, const void *b)
{
	return strcmp(((const DocumentTotals *) a)->currency, ((const DocumentTotals *) b)->currency);
}

/*
 * A writing run's held lines of the current account, now that their
 * documents have ids: into billing.invoice_line, or out as items.
 */
static void
write_held_lines(Engine *engine, const int *document_of_slot)
{
	for (int i = 0; i < engine->nheld; i++)
	{
		HeldLine   *h = &engine->held[i];

		h->v[D_INVOICE_ID] = Int64GetDatum(engine->documents[document_of_slot[h->document]].invoice_id);
		h->n[D_INVOICE_ID] = false;
		if (engine->writer != NULL)
		{
			Datum		v[LINE_NCOLUMNS];
			bool		n[LINE_NCOLUMNS];

			for (int c = 0; c < (int) LINE_NCOLUMNS; c++)
			{
				v[c] = h->v[line_column_items[c]];
				n[c] = h->n[line_column_items[c]];
			}
			billing_run_writer_put(engine->writer, v, n);
		}
		else
			tuplestore_putvalues(engine->out, engine->out_desc, h->v, h->n);
	}
	engine->nheld = 0;
	engine->maxheld = 0;
	engine->held = NULL;
}

/*
 * The document rows of the current account: one per currency it has lines
 * in, with their totals and line count.  The run writes its documents from
 * these instead of summing every line again.  A writing run gives them ids
 * in currency order (as the documents' rows will be written) and writes
 * their lines.
 */
static void
emit_documents(Engine *engine)
{
	Datum		v[D_NCOLUMNS];
	bool		n[D_NCOLUMNS];

	if (engine->writing && engine->ndocuments > 0)
	{
		int			document_of_slot[lengthof(engine->documents)];

		/* the held lines name their document by its slot */
		qsort(engine->documents, engine->ndocuments, sizeof(DocumentTotals), document_currency_order);
		for (int i = 0; i < engine->ndocuments; i++)
		{
			DocumentTotals *doc = &engine->documents[i];

			document_of_slot[doc->slot] = i;
			doc->invoice_id = nextval_internal(engine->invoice_id_seq, false);
		}
		write_held_lines(engine, document_of_slot);
	}

	for (int i = 0; i < engine->ndocuments; i++)
	{
		DocumentTotals *doc = &engine->documents[i];

		memset(n, true, sizeof(n));
		memset(v, 0, sizeof(v));
		n[D_ITEM] = n[D_ACCOUNT_ID] = n[D_CURRENCY] = n[D_AMOUNT] = n[D_TAX_AMOUNT] = n[D_LINE_NUMBER] = false;
		v[D_ITEM] = engine->item_document;
		v[D_ACCOUNT_ID] = Int64GetDatum(engine->account_id);
		v[D_CURRENCY] = CStringGetTextDatum(doc->currency);
		v[D_AMOUNT] = NumericGetDatum(doc->subtotal);
		v[D_TAX_AMOUNT] = NumericGetDatum(doc->tax_total);
		v[D_LINE_NUMBER] = Int32GetDatum(doc->lines);
		if (engine->writing)
		{
			v[D_INVOICE_ID] = Int64GetDatum(doc->invoice_id);
			n[D_INVOICE_ID] = false;
		}
		tuplestore_putvalues(engine->out, engine->out_desc, v, n);
	}
	engine->ndocuments = 0;
	MemoryContextReset(engine->account_cxt);
}

/*
 * The document a line of this account and currency goes on.  Line numbers
 * run per account and currency, in subscription order; the stream brings
 * accounts in order, so a new account closes the documents of the last.
 */
static DocumentTotals *
document_of(Engine *engine, int64 account_id, const char *currency)
{
	DocumentTotals *doc;

	if (engine->account_id != account_id)
	{
		emit_documents(engine);
		engine->account_id = account_id;
	}
	for (int i = 0; i < engine->ndocuments; i++)
		if (strcmp(engine->documents[i].currency, currency) == 0)
			return &engine->documents[i];
	if (engine->ndocuments == lengthof(engine->documents))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("account " INT64_FORMAT " bills in more than %d currencies in one run",
						account_id, (int) lengthof(engine->documents))));
	doc = &engine->documents[engine->ndocuments];
	doc->slot = engine->ndocuments++;
	strlcpy(doc->currency, currency, CURRENCY_LEN);
	doc->lines = 0;
	doc->subtotal = NULL;
	doc->tax_total = NULL;
	return doc;
}

/* Add a line's amounts to its document (in the account's memory). */
static void
add_to_document(Engine *engine, DocumentTotals *doc, Numeric amount, Numeric tax)
{
	MemoryContext old = MemoryContextSwitchTo(engine->account_cxt);

	doc->subtotal = doc->subtotal == NULL ? DatumGetNumericCopy(NumericGetDatum(amount))
		: numeric_add_n(doc->subtotal, amount);
	doc->tax_total = doc->tax_total == NULL ? DatumGetNumericCopy(NumericGetDatum(tax))
		: numeric_add_n(doc->tax_total, tax);
	MemoryContextSwitchTo(old);
}

/* A line's amount: copied into the account's memory when the line is held. */
static Datum
line_numeric(Engine *engine, Numeric value)
{
	return engine->writing ? datumCopy(NumericGetDatum(value), false, -1) : NumericGetDatum(value);
}

/*
 * The subscription's lines, in line order: out as items, or, in a writing
 * run, held in the account's memory until their document has an id.
 */
static void
emit_lines(Engine *engine, Subscription *sub)
{
	Datum		line_v[D_NCOLUMNS];
	bool		line_n[D_NCOLUMNS];

	qsort(sub->lines, sub->nlines, sizeof(DueLine), line_order);
	for (int i = 0; i < sub->nlines; i++)
	{
		DueLine    *l = &sub->lines[i];
		PriceInfo  *p = l->has_price ? find_price(engine, l->price_id) : NULL;
		Numeric		rate = NULL;
		Numeric		tax;
		DocumentTotals *doc = document_of(engine, sub->account_id, l->currency);
		MemoryContext old = CurrentMemoryContext;
		Datum	   *v = line_v;
		bool	   *n = line_n;

		/* tax: one effective rate per region and tax code on the document date */
		if (!sub->tax_exempt && sub->tax_region != NULL && p != NULL)
			rate = tax_rate(engine, sub->tax_region, p->tax_code);
		tax = rate == NULL ? numeric_zero()
			: round_money(numeric_mul_n(l->amount, rate), l->minor_units);

		if (engine->writing)
		{
			HeldLine   *h;

			MemoryContextSwitchTo(engine->account_cxt);
			PUSH(engine->held, engine->nheld, engine->maxheld);
			h = &engine->held[engine->nheld++];
			h->document = doc->slot;
			v = h->v;
			n = h->n;
		}

		memset(n, false, sizeof(bool) * D_NCOLUMNS);
		v[D_ITEM] = engine->item_line;
		v[D_ACCOUNT_ID] = Int64GetDatum(sub->account_id);
		v[D_SUBSCRIPTION_ID] = Int64GetDatum(sub->subscription_id);
		v[D_CURRENCY] = CStringGetTextDatum(l->currency);
		v[D_PRICE_ID] = Int64GetDatum(l->price_id);
		n[D_PRICE_ID] = !l->has_price;
		v[D_KIND] = CStringGetTextDatum(l->kind);
		v[D_SERVICE_PERIOD] = BillingPeriodGetDatum(l->service_period);
		n[D_SERVICE_PERIOD] = !l->has_service_period;
		v[D_CYCLE_PERIOD] = BillingPeriodGetDatum(l->cycle_period);
		n[D_CYCLE_PERIOD] = !l->has_cycle_period;
		n[D_QUANTITY] = l->quantity == NULL;
		v[D_QUANTITY] = n[D_QUANTITY] ? (Datum) 0 : line_numeric(engine, l->quantity);
		n[D_UNIT_AMOUNT] = l->unit_amount == NULL;
		v[D_UNIT_AMOUNT] = n[D_UNIT_AMOUNT] ? (Datum) 0 : line_numeric(engine, l->unit_amount);
		v[D_AMOUNT] = line_numeric(engine, l->amount);
		v[D_TAX_AMOUNT] = line_numeric(engine, tax);
		v[D_LINE_NUMBER] = Int32GetDatum(++doc->lines);
		v[D_DESCRIPTION] = CStringGetTextDatum(l->description);
		v[D_SORT_DATE] = DateADTGetDatum(l->sort_date);
		n[D_SORT_DATE] = !l->has_sort_date;
		v[D_SORT_SEQ] = Int32GetDatum(l->sort_seq);
		n[D_BILLED_THROUGH] = n[D_NEXT_DUE_DATE] = n[D_SEEN_RECONCILE_FROM] = n[D_INVOICE_ID] = true;
		v[D_BILLED_THROUGH] = v[D_NEXT_DUE_DATE] = v[D_SEEN_RECONCILE_FROM] = v[D_INVOICE_ID] = (Datum) 0;
		MemoryContextSwitchTo(old);
		if (!engine->writing)
			tuplestore_putvalues(engine->out, engine->out_desc, v, n);
		add_to_document(engine, doc, l->amount, tax);
	}
}

/*
 * The subscription's new watermarks: written into its row in a writing run
 * (watermark_writer.c), else out as an item.
 */
static void
emit_watermark(Engine *engine, Subscription *sub, Period *periods, int nperiods)
{
	Datum		v[D_NCOLUMNS];
	bool		n[D_NCOLUMNS];
	bool		has_due = false,
				has_not_due = false;
	DateADT		max_due_end = 0,
				min_not_due_end = 0,
				max_end = 0;
	bool		has_next = false;
	DateADT		next = 0;
	Watermark	wm;

	for (int i = 0; i < nperiods; i++)
	{
		Period	   *pe = &periods[i];

		if (pe->due)
		{
			max_due_end = has_due ? Max(max_due_end, pe->period.end) : pe->period.end;
			has_due = true;
		}
		else
		{
			min_not_due_end = has_not_due ? Min(min_not_due_end, pe->period.end) : pe->period.end;
			has_not_due = true;
		}
		max_end = i == 0 ? pe->period.end : Max(max_end, pe->period.end);
	}

	if (has_not_due)
	{
		/* a not-yet-due period in arrears falls due at its end */
		has_next = true;
		next = min_not_due_end;
	}
	else if (nperiods > 0 && (sub->end_date == DATEVAL_NOEND || max_end < sub->end_date))
	{
		/* the period after the last one covered starts at its end */
		has_next = true;
		next = max_end;
	}
	else if (nperiods == 0)
	{
		/*
		 * no period in the window yet (e.g. a change dated ahead): keep what
		 * was scheduled, or the start of terms not yet begun
		 */
		if (sub->has_next_due_date && sub->next_due_date > engine->target_date)
		{
			has_next = true;
			next = sub->next_due_date;
		}
		for (int k = 0; k < sub->nsegments; k++)
			if (sub->segments[k].start > engine->target_date && (!has_next || sub->segments[k].start < next))
			{
				has_next = true;
				next = sub->segments[k].start;
			}
	}

	/* a period billed now moves billed_through; else it stays */
	wm.has_billed_through = has_due || sub->has_billed_through;
	wm.billed_through = has_due ? max_due_end : sub->billed_through;
	wm.has_next_due_date = has_next;
	wm.next_due_date = next;
	wm.has_seen_reconcile_from = sub->has_reconcile_from;
	wm.seen_reconcile_from = sub->reconcile_from;
	if (engine->watermarks != NULL)
	{
		billing_watermark_writer_put(engine->watermarks, &sub->ctid, &wm);
		return;
	}

	memset(n, true, sizeof(n));
	memset(v, 0, sizeof(v));
	v[D_ITEM] = engine->item_watermark;
	n[D_ITEM] = false;
	v[D_ACCOUNT_ID] = Int64GetDatum(sub->account_id);
	n[D_ACCOUNT_ID] = false;
	v[D_SUBSCRIPTION_ID] = Int64GetDatum(sub->subscription_id);
	n[D_SUBSCRIPTION_ID] = false;
	v[D_BILLED_THROUGH] = DateADTGetDatum(wm.billed_through);
	n[D_BILLED_THROUGH] = !wm.has_billed_through;
	v[D_NEXT_DUE_DATE] = DateADTGetDatum(wm.next_due_date);
	n[D_NEXT_DUE_DATE] = !wm.has_next_due_date;
	v[D_SEEN_RECONCILE_FROM] = DateADTGetDatum(wm.seen_reconcile_from);
	n[D_SEEN_RECONCILE_FROM] = !wm.has_seen_reconcile_from;
	tuplestore_putvalues(engine->out, engine->out_desc, v, n);
}

/* Reconcile one subscription: its lines, then its watermarks. */
static void
bill_subscription(Engine *engine, Subscription *sub)
{
	CycleGroup *cycles;
	Period	   *periods;
	Expected   *expected;
	Billed	   *billed;
	Billed		one_time;
	int			ncycles,
				nperiods,
				nexpected,
				nbilled;

	build_segments(engine, sub);
	ncycles = build_cycles(sub, &cycles);
	nperiods = build_periods(engine, sub, cycles, ncycles, &periods);
	nexpected = build_expected(sub, periods, nperiods, &expected);
	nbilled = build_billed(sub, periods, nperiods, &billed, &one_time);

	/* recurring keys: expected FULL JOIN billed-as-recurring, on the key */
	for (int j = 0; j < nexpected; j++)
	{
		Billed	   *match = NULL;

		for (int i = 0; i < nbilled; i++)
			if (billed[i].recurring && same_period(billed[i].whole, expected[j].whole))
			{
				match = &billed[i];
				match->matched = true;
				recurring_lines(engine, sub, &expected[j], match);
			}
		if (match == NULL)
			recurring_lines(engine, sub, &expected[j], NULL);
	}
	for (int i = 0; i < nbilled; i++)
		if (billed[i].recurring && !billed[i].matched)
			recurring_lines(engine, sub, NULL, &billed[i]);
	usage_lines(engine, sub, periods, nperiods, billed, nbilled);
	one_time_lines(engine, sub, &one_time);

	emit_lines(engine, sub);
	emit_watermark(engine, sub, periods, nperiods);
}

/* ----------
 * The stream
 * ----------
 */

static DateADT
date_or(bool isnull, Datum d, DateADT otherwise)
{
	return isnull ? otherwise : DatumGetDateADT(d);
}

static void
start_subscription(Subscription *sub, Datum *v, bool *n)
{
	memset(sub, 0, sizeof(Subscription));
	sub->account_id = DatumGetInt64(v[S_ACCOUNT_ID]);
	sub->subscription_id = DatumGetInt64(v[S_SUBSCRIPTION_ID]);
	sub->start_date = DatumGetDateADT(v[S_START_DATE]);
	sub->end_date = date_or(n[S_END_DATE], v[S_END_DATE], DATEVAL_NOEND);
	sub->prorate_final_period = DatumGetBool(v[S_PRORATE_FINAL_PERIOD]);
	sub->has_billed_through = !n[S_BILLED_THROUGH];
	sub->billed_through = date_or(n[S_BILLED_THROUGH], v[S_BILLED_THROUGH], 0);
	sub->has_reconcile_from = !n[S_RECONCILE_FROM];
	sub->reconcile_from = date_or(n[S_RECONCILE_FROM], v[S_RECONCILE_FROM], 0);
	sub->has_next_due_date = !n[S_NEXT_DUE_DATE];
	sub->next_due_date = date_or(n[S_NEXT_DUE_DATE], v[S_NEXT_DUE_DATE], 0);
	sub->window_from = DatumGetDateADT(v[S_WINDOW_FROM]);
	sub->tax_region = n[S_TAX_REGION] ? NULL : TextDatumGetCString(v[S_TAX_REGION]);
	sub->tax_exempt = DatumGetBool(v[S_TAX_EXEMPT]);
	ItemPointerCopy((ItemPointer) DatumGetPointer(v[S_CTID]), &sub->ctid);
}

/*
 * Terms from a date on: a timeline row, or the start terms of the
 * subscription row.  v and n are a row of either query; the column numbers
 * say where each field is (change_id -1: the start terms, change 0).
 */
static void
add_segment(Engine *engine, Subscription *sub, Datum *v, bool *n,
			int change_id, int day, int cycle_day, int price_id, int quantity, int unit_amount)
{
	Segment    *g;
	int64		price = DatumGetInt64(v[price_id]);

	PUSH(sub->segments, sub->nsegments, sub->maxsegments);
	g = &sub->segments[sub->nsegments++];
	memset(g, 0, sizeof(Segment));
	g->change_id = change_id < 0 ? 0 : DatumGetInt64(v[change_id]);
	g->start = DatumGetDateADT(v[day]);
	g->price = find_price(engine, price);
	if (g->price == NULL)
		elog(ERROR, "price " INT64_FORMAT " of subscription " INT64_FORMAT " not found",
			 price, sub->subscription_id);
	g->quantity = n[quantity] ? NULL : DatumGetNumericCopy(v[quantity]);
	g->unit_amount = n[unit_amount] ? g->price->unit_amount : DatumGetNumericCopy(v[unit_amount]);
	g->has_cycle_day = !n[cycle_day];
	g->cycle_day = n[cycle_day] ? 0 : DatumGetInt16(v[cycle_day]);
}

/* A short text value (a kind, a status) equals s. */
static bool
text_is(Datum value, const char *s)
{
	text	   *t = DatumGetTextPP(value);
	size_t		len = strlen(s);

	return VARSIZE_ANY_EXHDR(t) == len && memcmp(VARDATA_ANY(t), s, len) == 0;
}

/*
 * The candidate's timeline rows (but cancellations: end_date says those)
 * become its segments.  Until a run or a change has written the start terms
 * into the timeline, they are read from the subscription row.
 */
static void
add_timeline(Engine *engine, Subscription *sub, bool never_billed, Datum *v, bool *n)
{
	TupleTableSlot *slot;

	billing_keyed_scan_seek(engine->timeline, sub->account_id, sub->subscription_id, 0);
	while ((slot = billing_keyed_scan_next(engine->timeline)) != NULL)
	{
		Datum		kind;

		slot_getallattrs(slot);
		kind = slot->tts_values[engine->change_kind];
		if (text_is(kind, "cancel"))
			continue;
		if (text_is(kind, "start"))
			sub->has_start_change = true;
		add_segment(engine, sub, slot->tts_values, slot->tts_isnull, engine->change_id, engine->change_day,
					engine->change_cycle_day, engine->change_price_id, engine->change_quantity,
					engine->change_unit_amount);
	}
	if (never_billed && !sub->has_start_change)
		add_segment(engine, sub, v, n, -1, S_START_DATE, S_START_CYCLE_DAY, S_PRICE_ID, S_QUANTITY, S_UNIT_AMOUNT);
}

/*
 * The scans of what the candidates' reconciliation reads, under the stream's
 * snapshot: a writing run's own lines are written under its command id,
 * which the snapshot does not see.
 */
static void
open_keyed_scans(Engine *engine)
{
	Snapshot	snapshot = GetActiveSnapshot();
	KeyedScan  *s;

	s = engine->timeline = billing_keyed_scan_begin(billing_relation_oid("billing.subscription_change"),
													billing_relation_oid("billing.subscription_change_timeline_idx"),
													InvalidStrategy, snapshot);
	/* 0-based: add_segment() reads the slot's arrays */
	engine->change_id = billing_keyed_scan_column(s, "change_id") - 1;
	engine->change_kind = billing_keyed_scan_column(s, "kind") - 1;
	engine->change_day = billing_keyed_scan_column(s, "effective_date") - 1;
	engine->change_cycle_day = billing_keyed_scan_column(s, "cycle_day") - 1;
	engine->change_price_id = billing_keyed_scan_column(s, "price_id") - 1;
	engine->change_quantity = billing_keyed_scan_column(s, "quantity") - 1;
	engine->change_unit_amount = billing_keyed_scan_column(s, "unit_amount") - 1;

	s = engine->billed_lines = billing_keyed_scan_begin(billing_relation_oid("billing.invoice_line"),
														billing_relation_oid("billing.invoice_line_subscription_idx"),
														BTGreaterStrategyNumber, snapshot);
	engine->line_invoice_id = billing_keyed_scan_column(s, "invoice_id");
	engine->line_kind = billing_keyed_scan_column(s, "kind");
	engine->line_cycle_period = billing_keyed_scan_column(s, "cycle_period");
	engine->line_service_period = billing_keyed_scan_column(s, "service_period");
	engine->line_amount = billing_keyed_scan_column(s, "amount");
	engine->line_price_id = billing_keyed_scan_column(s, "price_id");
	s = engine->invoices = billing_keyed_scan_begin(billing_relation_oid("billing.invoice"),
													billing_relation_oid("billing.invoice_pkey"),
													InvalidStrategy, snapshot);
	engine->invoice_status = billing_keyed_scan_column(s, "status");
	engine->invoice_currency = billing_keyed_scan_column(s, "currency");
	s = engine->usage = billing_keyed_scan_begin(billing_relation_oid("billing.usage_record"),
												 billing_relation_oid("billing.usage_record_day_idx"),
												 BTGreaterEqualStrategyNumber, snapshot);
	engine->usage_date = billing_keyed_scan_column(s, "usage_date");
	engine->usage_quantity = billing_keyed_scan_column(s, "quantity");
}

static void
close_keyed_scans(Engine *engine)
{
	billing_keyed_scan_end(engine->timeline);
	billing_keyed_scan_end(engine->billed_lines);
	billing_keyed_scan_end(engine->invoices);
	billing_keyed_scan_end(engine->usage);
}

/* Whether an invoice counts (it is not void), and its currency. */
static bool
invoice_counts(Engine *engine, int64 account_id, int64 invoice_id, const char **currency)
{
	if (!engine->has_invoice || engine->invoice_account_id != account_id || engine->invoice_id != invoice_id)
	{
		TupleTableSlot *slot;
		bool		isnull;

		billing_keyed_scan_seek(engine->invoices, account_id, invoice_id, 0);
		slot = billing_keyed_scan_next(engine->invoices);
		if (slot == NULL)
			elog(ERROR, "invoice " INT64_FORMAT " of account " INT64_FORMAT " not found", invoice_id, account_id);
		engine->has_invoice = true;
		engine->invoice_account_id = account_id;
		engine->invoice_id = invoice_id;
		engine->invoice_void = text_is(slot_getattr(slot, engine->invoice_status, &isnull), "void");
		strlcpy(engine->invoice_currency_code,
				TextDatumGetCString(slot_getattr(slot, engine->invoice_currency, &isnull)), CURRENCY_LEN);
	}
	*currency = engine->invoice_currency_code;
	return !engine->invoice_void;
}

/*
 * A candidate's lines on non-void documents whose period ends after its
 * window opens, and its one-time charges (no period: they always count).
 */
static void
read_billed_lines(Engine *engine, Subscription *sub)
{
	TupleTableSlot *slot;

	billing_keyed_scan_seek(engine->billed_lines, sub->account_id, sub->subscription_id, sub->window_from);
	while ((slot = billing_keyed_scan_next(engine->billed_lines)) != NULL)
	{
		bool		one_time;
		bool		no_cycle_period;
		bool		isnull;
		Datum		cycle_period;
		Datum		d;
		const char *currency;
		BilledLine *l;

		one_time = text_is(slot_getattr(slot, engine->line_kind, &isnull), "one_time");
		cycle_period = slot_getattr(slot, engine->line_cycle_period, &no_cycle_period);
		if (!one_time && no_cycle_period)
			continue;
		if (!invoice_counts(engine, sub->account_id,
							DatumGetInt64(slot_getattr(slot, engine->line_invoice_id, &isnull)), &currency))
			continue;
		PUSH(sub->billed, sub->nbilled, sub->maxbilled);
		l = &sub->billed[sub->nbilled++];
		memset(l, 0, sizeof(BilledLine));
		l->one_time = one_time;
		l->has_cycle_period = !no_cycle_period;
		if (l->has_cycle_period)
			l->cycle_period = DatumGetBillingPeriod(cycle_period);
		d = slot_getattr(slot, engine->line_service_period, &isnull);
		l->has_service_period = !isnull;
		if (!isnull)
			l->service_period = DatumGetBillingPeriod(d);
		l->amount = DatumGetNumericCopy(slot_getattr(slot, engine->line_amount, &isnull));
		d = slot_getattr(slot, engine->line_price_id, &isnull);
		l->has_price = !isnull;
		l->price_id = isnull ? 0 : DatumGetInt64(d);
		strlcpy(l->currency, currency, CURRENCY_LEN);
	}
}

/* A candidate's usage recent enough to fall in a period of its window. */
static void
read_usage(Engine *engine, Subscription *sub)
{
	TupleTableSlot *slot;

	sub->usage_read = true;
	billing_keyed_scan_seek(engine->usage, sub->account_id, sub->subscription_id,
							sub->window_from - engine->usage_lookback);
	while ((slot = billing_keyed_scan_next(engine->usage)) != NULL)
	{
		bool		isnull;
		Datum		day = slot_getattr(slot, engine->usage_date, &isnull);
		UsageRecord *u;

		if (isnull)
			continue;
		PUSH(sub->usage, sub->nusage, sub->maxusage);
		u = &sub->usage[sub->nusage++];
		u->day = DatumGetDateADT(day);
		u->quantity = DatumGetNumericCopy(slot_getattr(slot, engine->usage_quantity, &isnull));
	}
}

/*
 * The engine over the candidates of a call of due_items() or
 * write_due_lines(): arguments target_date, account_ids and, for
 * due_items(), full_history.
 */
static void
run_engine(FunctionCallInfo fcinfo, bool writing, RunWriter *writer, WatermarkWriter *watermarks)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Engine		engine;
	MemoryContext sub_cxt;
	MemoryContext old;
	Oid			argtypes[3] = {DATEOID, INT8ARRAYOID, BOOLOID};
	Datum		args[3];
	char		argnulls[3] = {' ', ' ', ' '};
	Portal		portal;
	int			guc_level;
	Subscription sub;
	bool		in_sub = false;

	InitMaterializedSRF(fcinfo, 0);

	memset(&engine, 0, sizeof(Engine));
	engine.writing = writing;
	engine.writer = writer;
	engine.watermarks = watermarks;
	if (writing)
		engine.invoice_id_seq = billing_relation_oid("billing.invoice_invoice_id_seq");
	engine.cxt = AllocSetContextCreate(CurrentMemoryContext, "billing due_items", ALLOCSET_DEFAULT_SIZES);
	engine.target_date = PG_GETARG_DATEADT(0);
	engine.out = rsinfo->setResult;
	engine.out_desc = rsinfo->setDesc;
	engine.account_id = -1;
	engine.pricing.cxt = engine.cxt;
	sub_cxt = AllocSetContextCreate(engine.cxt, "billing due_items subscription", ALLOCSET_DEFAULT_SIZES);
	engine.account_cxt = AllocSetContextCreate(engine.cxt, "billing due_items account", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(engine.cxt);
	engine.item_line = CStringGetTextDatum("line");
	engine.item_watermark = CStringGetTextDatum("watermark");
	engine.item_document = CStringGetTextDatum("document");
	MemoryContextSwitchTo(old);

	billing_function_info("billing.effective_tax_rate(text,text,date)", &engine.effective_tax_rate, engine.cxt);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	load_prices(&engine);

	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	argnulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	args[2] = BoolGetDatum(!writing && !PG_ARGISNULL(2) && PG_GETARG_BOOL(2));
	engine.usage_lookback = usage_lookback_days(&engine);
	/*
	 * A whole run reads every subscription; a chunk its accounts' by index.
	 * The candidates are planned as an index scan whatever the statistics
	 * say: they come in key order without a sort, which the scans beside
	 * them need.
	 */
	guc_level = NewGUCNestLevel();
	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	portal = SPI_cursor_open_with_args(NULL,
									   psprintf(stream_query_format,
												PG_ARGISNULL(1) ? "" : "AND s.account_id = ANY ($2)"),
									   3, argtypes, args, argnulls, true, 0);
	AtEOXact_GUC(true, guc_level);
	if (portal == NULL)
		elog(ERROR, "opening the billing.due_items stream failed: %s", SPI_result_code_string(SPI_result));
	open_keyed_scans(&engine);

	for (;;)
	{
		SPITupleTable *rows;
		uint64		nrows;

		SPI_cursor_fetch(portal, true, 2000);
		rows = SPI_tuptable;
		nrows = SPI_processed;
		if (nrows == 0)
			break;
		for (uint64 i = 0; i < nrows; i++)
		{
			Datum		v[S_NCOLUMNS];
			bool		n[S_NCOLUMNS];
			int64		account_id,
						subscription_id;

			heap_deform_tuple(rows->vals[i], rows->tupdesc, v, n);
			account_id = DatumGetInt64(v[S_ACCOUNT_ID]);
			subscription_id = DatumGetInt64(v[S_SUBSCRIPTION_ID]);
			old = MemoryContextSwitchTo(sub_cxt);
			if (in_sub)
			{
				if (account_id < sub.account_id ||
					(account_id == sub.account_id && subscription_id <= sub.subscription_id))
					elog(ERROR, "billing.due_items stream is out of order");
				bill_subscription(&engine, &sub);
				MemoryContextReset(sub_cxt);
				CHECK_FOR_INTERRUPTS();
			}
			start_subscription(&sub, v, n);
			add_timeline(&engine, &sub, DatumGetBool(v[S_NEVER_BILLED]), v, n);
			read_billed_lines(&engine, &sub);
			in_sub = true;
			MemoryContextSwitchTo(old);
		}
		SPI_freetuptable(rows);
	}
	if (in_sub)
	{
		old = MemoryContextSwitchTo(sub_cxt);
		bill_subscription(&engine, &sub);
		MemoryContextSwitchTo(old);
	}
	emit_documents(&engine);
	close_keyed_scans(&engine);
	SPI_cursor_close(portal);
	SPI_finish();
	MemoryContextDelete(engine.cxt);
}

static void
check_target_date(FunctionCallInfo fcinfo, const char *function)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target_date of %s must not be NULL", function)));
	billing_check_date(PG_GETARG_DATEADT(0), "target_date");
}

/*
 * due_items(target_date date, account_ids bigint[], full_history boolean)
 *		RETURNS SETOF billing.due_item
 */
PG_FUNCTION_INFO_V1(billing_due_items);
Datum
billing_due_items(PG_FUNCTION_ARGS)
{
	check_target_date(fcinfo, "billing.due_items");
	run_engine(fcinfo, false, NULL, NULL);
	return (Datum) 0;
}

/*
 * write_due_lines(target_date date, account_ids bigint[])
 *		RETURNS SETOF billing.due_item
 *		An invoice run's lines and watermarks, written: each account's
 *		documents take their ids from billing.invoice_invoice_id_seq in
 *		currency order, their lines go into billing.invoice_line as one
 *		marked statement of the bulk writer (run_writer.c), and each
 *		candidate's watermarks into its subscription row
 *		(watermark_writer.c).  Returns the documents (invoice_id set); the
 *		lines too, with their invoice_id, only when invoice_line has an
 *		insert trigger of someone else's and the caller must INSERT them, and
 *		the watermarks only when billing.subscription has an update trigger
 *		that must see the caller's UPDATE.  Superuser only: the run's
 *		SECURITY DEFINER functions.
 *
 * Written as they are made, a million lines skip a tuplestore, a temporary
 * table and a join with their documents.  The lines are written under the
 * stream's own command id, so its scans never see them (they are of
 * accounts it has passed in any case).
 */
PG_FUNCTION_INFO_V1(billing_write_due_lines);
Datum
billing_write_due_lines(PG_FUNCTION_ARGS)
{
	Oid			lines_oid = billing_relation_oid("billing.invoice_line");
	Relation	lines;
	RunWriter  *writer = NULL;
	WatermarkWriter *watermarks;

	check_target_date(fcinfo, "billing.write_due_lines");
	billing_check_run_writer_caller(lines_oid);
	lines = table_open(lines_oid, RowExclusiveLock);
	if (billing_run_rows_writable_in_bulk(lines))
		writer = billing_run_writer_begin(lines,
										  billing_run_writer_columns(lines, line_column_names, LINE_NCOLUMNS));
	watermarks = billing_watermark_writer_begin(PG_GETARG_DATEADT(0));
	billing_mark_run_statement(true);
	run_engine(fcinfo, true, writer, watermarks);
	if (writer != NULL)
		billing_run_writer_end(writer);
	if (watermarks != NULL)
		billing_watermark_writer_end(watermarks);
	billing_mark_run_statement(false);
	table_close(lines, NoLock);
	return (Datum) 0;
}
