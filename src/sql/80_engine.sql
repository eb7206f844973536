-- The invoicing engine: recompute and reconcile (SPEC principle 3).
--
-- For every subscription with work due, and every period in its window:
--   expected = what the dated timeline says the period costs (rounded once),
--   billed   = what non-void documents already hold for that period,
-- and the difference becomes lines.  Periods are keyed by their regular
-- cycle period ("whole"), so a stub, a cancellation or a change inside a
-- period all reconcile against the same key.  Mid-period changes, backdated
-- changes, cancellations, late usage and void-and-rebill are all this rule.

CREATE TYPE billing.due_item AS (
	item			text,			-- 'line', 'watermark' or 'document'
	account_id		bigint,
	subscription_id	bigint,
	currency		text,
	price_id		bigint,
	kind			text,
	service_period	billing.billing_period,
	cycle_period	billing.billing_period,
	quantity		numeric,
	unit_amount		numeric,
	amount			numeric,
	tax_amount		numeric,
	line_number		int,
	description		text,
	sort_date		date,
	sort_seq		int,
	billed_through	date,
	next_due_date	date,
	seen_reconcile_from date,
	invoice_id		bigint			-- a document's (and its lines') id, from billing.write_due_lines()
);
COMMENT ON TYPE billing.due_item IS 'Output of billing.due_items(): a line to bill, a subscription''s new watermarks, or the totals of the document an account''s lines in a currency make (amount, tax_amount, line_number = its line count); billing.write_due_lines() also gives the document''s invoice_id';

-- The rule itself is in src/due_items.c: one query streams the candidates,
-- index scans beside it bring each one's timeline, billed lines and usage
-- (src/keyed_scan.c), and each subscription is reconciled in memory (see
-- there why).
CREATE FUNCTION billing.due_items(target_date date, account_ids bigint[] DEFAULT NULL, full_history boolean DEFAULT false)
	RETURNS SETOF billing.due_item
	AS 'MODULE_PATHNAME', 'billing_due_items' LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp
-- a run's statement is costed high; compiling it with JIT saves nothing
SET jit = off
-- the candidates are sorted by key once, and the result is a tuplestore:
-- 16MB keeps both in memory up to about 100,000 subscriptions, and a run's
-- private memory under 512MB at a million
SET work_mem = '16MB';
COMMENT ON FUNCTION billing.due_items(date, bigint[], boolean) IS
	'What a run with this target date would bill: lines (expected minus billed per subscription period), each candidate subscription''s new watermarks, and per account and currency the totals of the document its lines make; full_history ignores the watermarks (used by check_integrity). Writes nothing';

-- An invoice run's lines and watermarks, written as the engine makes them
-- (src/due_items.c, src/watermark_writer.c say why): returns the documents
-- with their invoice ids.
CREATE FUNCTION billing.write_due_lines(target_date date, account_ids bigint[])
	RETURNS SETOF billing.due_item
	AS 'MODULE_PATHNAME', 'billing_write_due_lines' LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '16MB';
COMMENT ON FUNCTION billing.write_due_lines(date, bigint[]) IS
	'Bills the due lines of the given accounts (NULL: all) into billing.invoice_line, each account''s documents numbered from the invoice id sequence in currency order, and writes each candidate subscription''s new watermarks; returns the documents (with invoice_id) for the run to write, and the lines or the watermarks only when someone''s insert trigger on invoice_line or update trigger on subscription needs the run''s own statement; superuser only (the run''s functions)';
