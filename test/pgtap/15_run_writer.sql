-- The run's bulk writer, billing.write_run_rows() (src/run_writer.c): an
-- invoice run writes its documents and lines through it.  Here: only a
-- superuser (the run's SECURITY DEFINER functions) may call it (42501,
-- nothing written); the arguments after the query are its parameters; no
-- target is 22004; the rows it writes take the table's defaults and pass its
-- NOT NULL, CHECK and unique constraints with the messages of an INSERT
-- (23502, 23514, 23505, nothing written); the engine's writer of a run's
-- lines, billing.write_due_lines(), is superuser-only too and needs a target
-- date (22004); the writer's statement is marked, and the
-- mark ends with it; a table with an insert trigger of its own (an audit
-- trigger) gets a plain INSERT, so that trigger sees every row of a run, and
-- the run bills the same lines either way; so does a run when subscription
-- has a statement-level update trigger, which then sees the run's UPDATE of
-- the watermarks; the engine's own update of the watermarks checks a
-- constraint that reads them (23514, nothing written); check_integrity()
-- stays empty.
BEGIN;
\ir include/session.sql

SELECT plan(42);

\ir include/lookups.sql
CREATE FUNCTION pg_temp.lines() RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT count(*) FROM billing.invoice_line $$;
-- Two tests: the call raises this SQLSTATE with exactly this message, and the
-- number of lines is what it was before.
CREATE FUNCTION pg_temp.refused(sql text, errcode text, message text, description text) RETURNS SETOF text
LANGUAGE sql AS $$ SELECT pg_temp.refused_unchanged(sql, errcode, message, description, 'SELECT pg_temp.lines()') $$;

INSERT INTO product (code, name) VALUES ('plan', 'Plan');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT product_id, 'm10', 'USD', 'recurring', 'month', 'in_advance', 'per_unit', 10 FROM product WHERE code = 'plan';
INSERT INTO account (external_key, name, currency, billing_hold) VALUES ('a', 'Written by hand', 'USD', true);
INSERT INTO account (external_key, name, currency)
SELECT 'r' || g, 'Billed by runs ' || g, 'USD' FROM generate_series(1, 3) g;
INSERT INTO subscription (account_id, price_id, quantity, start_date)
SELECT a.account_id, pg_temp.price('m10'), q, '2026-01-10'
FROM account a, generate_series(1, 2) q WHERE a.external_key LIKE 'r%';
INSERT INTO invoice (account_id, invoice_date, currency) VALUES (pg_temp.acct('a'), '2026-01-01', 'USD');
CREATE TEMP TABLE draft_of_a AS SELECT account_id, invoice_id FROM invoice WHERE account_id = pg_temp.acct('a');

------------------------------------------------------------------------------
-- Only the run's functions may call it
------------------------------------------------------------------------------
CREATE ROLE tap_writer_admin IN ROLE billing_admin;
GRANT SELECT ON draft_of_a TO tap_writer_admin;
SET LOCAL ROLE tap_writer_admin;
SELECT pg_temp.refused($$SELECT billing.write_run_rows('billing.invoice_line',
	$q$SELECT d.account_id, d.invoice_id, 1 AS line_number, 'adjustment'::text AS kind, 5.00 AS amount FROM pg_temp.draft_of_a d$q$)$$,
	'42501', 'only the extension''s run functions may write run rows into invoice_line',
	'billing_admin calls the writer');
SELECT pg_temp.refused($$SELECT * FROM billing.write_due_lines('2026-02-10', NULL)$$,
	'42501', 'only the extension''s run functions may write run rows into invoice_line',
	'billing_admin calls the engine''s writer of a run''s lines');
RESET ROLE;
SELECT pg_temp.refused($$SELECT * FROM billing.write_due_lines(NULL, NULL)$$,
	'22004', 'target_date of billing.write_due_lines must not be NULL', 'the engine''s writer without a target date');

------------------------------------------------------------------------------
-- Rows as an INSERT would write them
------------------------------------------------------------------------------
SELECT is(billing.write_run_rows('billing.invoice_line',
	$q$SELECT d.account_id, d.invoice_id, g AS line_number, 'adjustment'::text AS kind, (g * 1.25)::numeric AS amount,
			  'by the writer'::text AS description
	   FROM pg_temp.draft_of_a d, generate_series(1, 2500) g$q$), 2500::bigint,
	'the writer writes 2,500 rows (three batches) and says so');
SELECT results_eq(
	$$SELECT count(*), count(DISTINCT line_id), sum(amount), sum(tax_amount), min(line_number), max(line_number)
	  FROM invoice_line WHERE account_id = pg_temp.acct('a')$$,
	$$VALUES (2500::bigint, 2500::bigint, 3907812.50::numeric, 0::numeric, 1, 2500)$$,
	'every row is there, with a line id of its own and the default tax amount 0');
SELECT is((SELECT count(*) FROM invoice_line WHERE account_id = pg_temp.acct('a') AND line_number = 1777
										  AND amount = 2221.25 AND description = 'by the writer'), 1::bigint,
	'a row reads back as it was written');
SELECT is((SELECT count(*) FROM invoice_line l WHERE l.account_id = pg_temp.acct('a') AND l.line_number BETWEEN 100 AND 120),
	21::bigint, 'its indexes find the rows (invoice_line_invoice_idx)');
SELECT is(billing.run_statement_trusted(), false, 'after the call, no statement is marked as the run''s');
SELECT is(billing.write_run_rows('billing.invoice_line',
	$q$SELECT $1 AS account_id, $2 AS invoice_id, g AS line_number, 'adjustment'::text AS kind, $3 AS amount,
			  $4 AS description
	   FROM generate_series(3001, 3010) g$q$,
	pg_temp.acct('a'), (SELECT invoice_id FROM draft_of_a), 2.50::numeric, NULL::text), 10::bigint,
	'the arguments after the query are its parameters $1, $2, ... (NULL too)');
SELECT results_eq(
	$$SELECT count(*), sum(amount), count(description) FROM invoice_line
	  WHERE account_id = pg_temp.acct('a') AND line_number > 3000$$,
	$$VALUES (10::bigint, 25.00::numeric, 0::bigint)$$, 'the 10 rows hold the parameters'' values');
-- by an index scan, which would find the new entries as it goes (a sequential
-- scan stops at the pages that existed when it began); the timeout ends the
-- loop that would be
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
SET LOCAL statement_timeout = '60s';
SELECT is(billing.write_run_rows('billing.invoice_line',
	$q$SELECT l.account_id, l.invoice_id, l.line_number + 10000 AS line_number, l.kind, l.amount
	   FROM billing.invoice_line l WHERE l.account_id = $1$q$, pg_temp.acct('a')), 2510::bigint,
	'a source that reads the target copies the 2,510 rows it had, not the rows it writes');
SELECT is((SELECT count(*) FROM invoice_line WHERE account_id = pg_temp.acct('a')), 5020::bigint,
	'... which makes 5,020');
RESET enable_seqscan;
RESET enable_bitmapscan;
RESET statement_timeout;

SELECT pg_temp.refused($$SELECT billing.write_run_rows('billing.invoice_line',
	$q$SELECT d.account_id, d.invoice_id, 1 AS line_number, 'discount'::text AS kind, 5.00 AS amount FROM pg_temp.draft_of_a d$q$)$$,
	'23514', 'new row for relation "invoice_line" violates check constraint "invoice_line_kind_valid"',
	'a row of an unknown kind');
SELECT pg_temp.refused($$SELECT billing.write_run_rows('billing.invoice_line',
	$q$SELECT d.account_id, d.invoice_id, g AS line_number, 'adjustment'::text AS kind,
			  CASE WHEN g = 1500 THEN NULL ELSE 5.00 END AS amount
	   FROM pg_temp.draft_of_a d, generate_series(1, 2000) g$q$)$$,
	'23502', 'null value in column "amount" of relation "invoice_line" violates not-null constraint',
	'row 1,500 of 2,000 without an amount');
SELECT pg_temp.refused($$SELECT billing.write_run_rows('billing.invoice_line',
	$q$SELECT l.line_id, l.account_id, l.invoice_id, l.line_number, l.kind, l.amount
	   FROM billing.invoice_line l WHERE l.account_id = (SELECT account_id FROM pg_temp.draft_of_a) AND l.line_number = 2500$q$)$$,
	'23505', 'duplicate key value violates unique constraint "invoice_line_pkey"',
	'a row with a line id already taken');
SELECT pg_temp.refused($$SELECT billing.write_run_rows(NULL::regclass, 'SELECT 1 AS account_id')$$,
	'22004', 'target and source of billing.write_run_rows must not be NULL', 'no target');
SELECT is(billing.run_statement_trusted(), false, 'after a failed call, no statement is marked as the run''s');

------------------------------------------------------------------------------
-- A run: the same lines with or without an insert trigger of the user's
------------------------------------------------------------------------------
-- what the runs should bill, from the preview (which writes nothing)
CREATE FUNCTION pg_temp.preview(target date) RETURNS TABLE (account_id bigint, line_number int, subscription_id bigint,
	kind text, service_period billing_period, quantity numeric, amount numeric)
LANGUAGE sql AS $$
	SELECT a.account_id, p.line_number, p.subscription_id, p.kind, p.service_period, p.quantity, p.amount
	FROM billing.account a, billing.preview_invoice(a.account_id, target) p WHERE a.external_key LIKE 'r%' $$;
CREATE FUNCTION pg_temp.billed(target date) RETURNS TABLE (account_id bigint, line_number int, subscription_id bigint,
	kind text, service_period billing_period, quantity numeric, amount numeric)
LANGUAGE sql AS $$
	SELECT l.account_id, l.line_number, l.subscription_id, l.kind, l.service_period, l.quantity, l.amount
	FROM billing.invoice_line l JOIN billing.invoice i USING (account_id, invoice_id)
	JOIN billing.invoice_batch b USING (batch_id) WHERE b.target_date = target $$;
CREATE TEMP TABLE february AS SELECT * FROM pg_temp.preview('2026-02-10');
SELECT is((SELECT count(*) FROM february), 12::bigint, 'the preview of February: 12 lines (a stub and February for 6 subscriptions)');

CREATE TEMP TABLE audited (line_id bigint, amount numeric);
CREATE FUNCTION pg_temp.audit_line() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO pg_temp.audited VALUES (NEW.line_id, NEW.amount);
	RETURN NULL;
END $$;
CREATE TRIGGER audit_line AFTER INSERT ON billing.invoice_line FOR EACH ROW EXECUTE FUNCTION pg_temp.audit_line();
SELECT is((SELECT lines FROM run_invoice_batch(target_date => '2026-02-10')), 12::bigint,
	'a run with an audit trigger on invoice_line: 12 lines');
SELECT results_eq(
	$$SELECT count(*), sum(amount) FROM audited$$,
	$$SELECT count(*), sum(amount) FROM invoice_line WHERE account_id <> pg_temp.acct('a')$$,
	'the audit trigger saw every line of the run');
SELECT set_eq($$SELECT * FROM pg_temp.billed('2026-02-10')$$, $$SELECT * FROM february$$,
	'the run billed the lines of the preview');
SELECT is(billing.run_statement_trusted(), false, 'after the run, no statement is marked as the run''s');
SELECT is((SELECT invoices FROM run_invoice_batch(target_date => '2026-02-10')), 0,
	'a second run for the same date bills nothing');
SELECT is((SELECT count(*) FROM audited), 12::bigint, '... and the trigger saw no more lines');
DROP TRIGGER audit_line ON billing.invoice_line;
CREATE TEMP TABLE march AS SELECT * FROM pg_temp.preview('2026-03-10');

SELECT is((SELECT lines FROM run_invoice_batch(target_date => '2026-03-10')), 6::bigint,
	'the March run, back on the bulk path: 6 lines');
SELECT set_eq($$SELECT * FROM pg_temp.billed('2026-03-10')$$, $$SELECT * FROM march$$,
	'the run billed the lines of the preview');
SELECT is((SELECT count(*) FROM audited), 12::bigint, 'the dropped trigger saw none of them');

-- an update trigger on subscription that needs the run's UPDATE statement:
-- the engine returns the watermarks and the run updates the rows in SQL
CREATE TEMP TABLE watermarked (subscription_id bigint, billed_through date, last_target_date date);
CREATE FUNCTION pg_temp.audit_watermarks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO pg_temp.watermarked SELECT n.subscription_id, n.billed_through, n.last_target_date FROM new_rows n;
	RETURN NULL;
END $$;
CREATE TRIGGER audit_watermarks AFTER UPDATE ON billing.subscription REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.audit_watermarks();
CREATE TEMP TABLE april AS SELECT * FROM pg_temp.preview('2026-04-10');
SELECT is((SELECT lines FROM run_invoice_batch(target_date => '2026-04-10')), 6::bigint,
	'the April run with a statement trigger on subscription: 6 lines');
SELECT set_eq($$SELECT * FROM pg_temp.billed('2026-04-10')$$, $$SELECT * FROM april$$,
	'the run billed the lines of the preview');
SELECT results_eq($$SELECT count(*), count(DISTINCT subscription_id), min(billed_through), max(last_target_date) FROM watermarked$$,
	$$VALUES (6::bigint, 6::bigint, '2026-05-10'::date, '2026-04-10'::date)$$,
	'the trigger saw the run''s UPDATE of the 6 subscriptions'' watermarks, in one statement');
SELECT is((SELECT invoices FROM run_invoice_batch(target_date => '2026-04-10')), 0,
	'a second run for the same date bills nothing');
DROP TRIGGER audit_watermarks ON billing.subscription;
-- the engine's own update of the watermarks checks a constraint that reads
-- them, with an UPDATE's message, and the run writes nothing
ALTER TABLE billing.subscription ADD CONSTRAINT billed_before_may CHECK (billed_through <= '2026-05-10');
SELECT pg_temp.refused($$SELECT * FROM run_invoice_batch(target_date => '2026-05-10')$$,
	'23514', 'new row for relation "subscription" violates check constraint "billed_before_may"',
	'a watermark past a constraint of the user''s');
ALTER TABLE billing.subscription DROP CONSTRAINT billed_before_may;
SELECT is((SELECT lines FROM run_invoice_batch(target_date => '2026-05-10')), 6::bigint,
	'the May run, the engine writing the watermarks again: 6 lines');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'check_integrity() is empty');

SELECT * FROM finish();
ROLLBACK;
