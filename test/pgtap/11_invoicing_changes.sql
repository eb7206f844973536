-- Reconciliation (SPEC principle 3, §4): idempotent runs, void and re-bill,
-- backdated changes, cancellations with and without proration in advance and
-- in arrears, a change of interval, credit notes, one-time charges, preview
-- and drafts.  One monthly timeline in 2024 (cycle day 1), runs in date order.
BEGIN;
\ir include/session.sql

SELECT plan(87);

\ir include/lookups.sql
CREATE FUNCTION pg_temp.sub(key text, price_code text DEFAULT NULL) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT s.subscription_id FROM billing.subscription s JOIN billing.subscription_change c
		ON c.account_id = s.account_id AND c.subscription_id = s.subscription_id AND c.kind = 'start'
	  WHERE s.account_id = pg_temp.acct(key) AND (price_code IS NULL OR c.price_id = pg_temp.price(price_code))
	  ORDER BY s.subscription_id LIMIT 1 $$;
CREATE FUNCTION pg_temp.run(target date, auto_post boolean DEFAULT true) RETURNS billing.invoice_batch LANGUAGE plpgsql
AS $$ BEGIN
	RETURN billing.run_invoice_batch(target_date => target, auto_post => auto_post);
EXCEPTION WHEN OTHERS THEN
	RAISE WARNING 'run_invoice_batch(%) failed: % %', target, SQLSTATE, SQLERRM;
	RETURN NULL;
END $$;
-- lines of an account's documents dated on_date (all when NULL), in document and line order
CREATE FUNCTION pg_temp.lines(key text, on_date date DEFAULT NULL)
	RETURNS TABLE (kind text, service_period text, amount numeric) LANGUAGE sql STABLE
AS $$ SELECT l.kind, l.service_period::text, l.amount
	  FROM billing.invoice_line l JOIN billing.invoice i ON i.account_id = l.account_id AND i.invoice_id = l.invoice_id
	  WHERE l.account_id = pg_temp.acct(key) AND (on_date IS NULL OR i.invoice_date = on_date)
	  ORDER BY l.invoice_id, l.line_number $$;
-- what non-void documents hold per subscription period of an account
CREATE FUNCTION pg_temp.billed(key text)
	RETURNS TABLE (cycle_period text, billed numeric) LANGUAGE sql STABLE
AS $$ SELECT l.cycle_period::text, sum(l.amount)
	  FROM billing.invoice_line l JOIN billing.invoice i ON i.account_id = l.account_id AND i.invoice_id = l.invoice_id
	  WHERE l.account_id = pg_temp.acct(key) AND i.status <> 'void' AND l.cycle_period IS NOT NULL
	  GROUP BY l.cycle_period ORDER BY l.cycle_period $$;
-- everything a run writes, to prove that a run or a preview wrote nothing
CREATE FUNCTION pg_temp.footprint() RETURNS text LANGUAGE sql STABLE
AS $$ SELECT format('invoices %s, lines %s, series %s, watermarks %s',
	(SELECT count(*) FROM billing.invoice), (SELECT count(*) FROM billing.invoice_line),
	(SELECT string_agg(document_type || '=' || last_number, ',' ORDER BY document_type) FROM billing.document_series),
	(SELECT md5(string_agg(format('%s/%s/%s/%s/%s', subscription_id, billed_through, reconcile_from, next_due_date,
								   next_bill_date_override), ',' ORDER BY subscription_id))
	 FROM billing.subscription)) $$;

INSERT INTO product (code, name) VALUES ('plan', 'Plan'), ('setup', 'Setup fee');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT pr.product_id, v.code, 'USD', 'recurring', v.unit, v.timing, 'per_unit', v.amount
FROM product pr,
	 (VALUES ('m5', 'month', 'in_advance', 5), ('m10', 'month', 'in_advance', 10), ('m20', 'month', 'in_advance', 20),
			 ('a10', 'month', 'in_arrears', 10), ('y120', 'year', 'in_advance', 120)) v(code, unit, timing, amount)
WHERE pr.code = 'plan';
INSERT INTO price (product_id, code, currency, charge_type, pricing_model, unit_amount)
SELECT product_id, 'setup10', 'USD', 'one_time', 'flat', 10 FROM product WHERE code = 'setup';

INSERT INTO account (external_key, name, currency) VALUES
	('idem', 'Idempotent runs', 'USD'),
	('void', 'Void and re-bill', 'USD'),
	('back', 'Backdated change', 'USD'),
	('adv_p', 'In advance, cancelled with proration', 'USD'),
	('adv_np', 'In advance, cancelled without proration', 'USD'),
	('adv_fut', 'In advance, cancelled ahead', 'USD'),
	('chg_fut', 'In advance, changed ahead', 'USD'),
	('arr_p', 'In arrears, cancelled with proration', 'USD'),
	('arr_np', 'In arrears, cancelled without proration', 'USD'),
	('yr', 'Monthly to yearly', 'USD'),
	('down', 'Downgrade to a net credit', 'USD'),
	('once', 'One-time plus recurring', 'USD'),
	('twice', 'Two changes in one period', 'USD'),
	('bcancel', 'Backdated cancellation', 'USD');
INSERT INTO subscription (account_id, price_id, start_date)
SELECT pg_temp.acct(v.key), pg_temp.price(v.price), '2024-01-01'
FROM (VALUES ('idem', 'm10'), ('void', 'm10'), ('void', 'm20'), ('back', 'm10'), ('adv_p', 'm10'), ('adv_np', 'm10'),
			 ('adv_fut', 'm10'), ('chg_fut', 'm10'), ('arr_p', 'a10'), ('arr_np', 'a10'), ('yr', 'm10'), ('down', 'm20'),
			 ('once', 'setup10'), ('once', 'm5'), ('twice', 'm10'), ('bcancel', 'm10')) v(key, price);

------------------------------------------------------------------------------
-- 2024-01-01: first bills; a second run adds nothing
------------------------------------------------------------------------------
SELECT results_eq($$SELECT accounts, invoices, lines, total_amount FROM pg_temp.run('2024-01-01')$$,
	$$VALUES (12, 12, 14::bigint, 155.00)$$,
	'run 2024-01-01: twelve accounts billed in advance (the two in arrears owe nothing yet), 125.00 in all');
SELECT results_eq($$SELECT * FROM pg_temp.lines('idem')$$,
	$$VALUES ('recurring', '[2024-01-01,2024-02-01)', 10.00)$$, 'January billed in advance');
SELECT results_eq($$SELECT * FROM pg_temp.lines('once')$$,
	$$VALUES ('one_time', NULL::text, 10.00), ('recurring', '[2024-01-01,2024-02-01)', 5.00)$$,
	'one-time 10 + recurring 5/month: one_time and recurring lines');
SELECT is((SELECT total FROM invoice WHERE account_id = pg_temp.acct('once')), 15.00, 'first invoice 15.00');
SELECT is((SELECT count(*) FROM invoice WHERE account_id IN (pg_temp.acct('arr_p'), pg_temp.acct('arr_np'))), 0::bigint,
	'in arrears: nothing before the period has ended');

CREATE TEMP TABLE footprint_before ON COMMIT DROP AS SELECT pg_temp.footprint() AS f;
SELECT results_eq($$SELECT accounts, invoices, lines, total_amount, status FROM pg_temp.run('2024-01-01')$$,
	$$VALUES (0, 0, 0::bigint, 0::numeric, 'completed')$$,
	'a second run with the same target date adds nothing');
SELECT is(pg_temp.footprint(), (SELECT f FROM footprint_before), '... and writes no document, line or number');
SELECT results_eq($$SELECT accounts, invoices, lines FROM pg_temp.run('2023-12-31')$$,
	$$VALUES (0, 0, 0::bigint)$$, 'a run with an earlier target date adds nothing either');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the January runs');

------------------------------------------------------------------------------
-- 2024-02-01 and 2024-03-01: regular months
------------------------------------------------------------------------------
SELECT isnt(pg_temp.run('2024-02-01'), NULL, 'run 2024-02-01');
SELECT results_eq($$SELECT * FROM pg_temp.lines('once', '2024-02-01')$$,
	$$VALUES ('recurring', '[2024-02-01,2024-03-01)', 5.00)$$, 'one-time + recurring: next month 5.00 only');
SELECT results_eq($$SELECT * FROM pg_temp.lines('arr_p')$$,
	$$VALUES ('recurring', '[2024-01-01,2024-02-01)', 10.00)$$, 'in arrears: January billed once it has ended');
SELECT isnt(pg_temp.run('2024-03-01'), NULL, 'run 2024-03-01');
SELECT results_eq($$SELECT * FROM pg_temp.billed('back')$$,
	$$VALUES ('[2024-01-01,2024-02-01)', 10.00), ('[2024-02-01,2024-03-01)', 10.00), ('[2024-03-01,2024-04-01)', 10.00)$$,
	'three months billed at 10.00 before the backdated change');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the February and March runs');

------------------------------------------------------------------------------
-- Changes recorded in March 2024, reconciled by the 2024-03-20 run
------------------------------------------------------------------------------
-- void the February invoice of 'void' (two subscriptions, 10.00 + 20.00)
CREATE TEMP TABLE voided ON COMMIT DROP AS
SELECT invoice_id, document_number, total FROM invoice WHERE account_id = pg_temp.acct('void') AND invoice_date = '2024-02-01';
SELECT lives_ok(
	$$SELECT billing.void_invoice((SELECT invoice_id FROM voided), reason => 'wrong address', voided_on => '2024-03-02')$$,
	'void the February invoice');
SELECT results_eq(
	$$SELECT i.status, i.voided_on, i.void_reason, i.total, i.document_number FROM invoice i JOIN voided v USING (invoice_id)$$,
	$$SELECT 'void'::text, '2024-03-02'::date, 'wrong address'::text, 30.00, document_number FROM voided$$,
	'the voided invoice keeps its number and amounts, with status void, date and reason');
-- backdated change two periods back: 10 -> 20/month from 2024-01-16
SELECT lives_ok($$SELECT billing.change_subscription(pg_temp.sub('back'), '2024-01-16', price_id => pg_temp.price('m20'))$$,
	'backdated change to 20/month from 2024-01-16');
-- cancellations effective 2024-03-16 (and one ahead, 2024-04-16)
SELECT lives_ok($$SELECT billing.cancel_subscription(pg_temp.sub('adv_p'), '2024-03-16')$$, 'cancel in advance, prorated');
SELECT lives_ok($$SELECT billing.cancel_subscription(pg_temp.sub('adv_np'), '2024-03-16', prorate => false)$$,
	'cancel in advance, not prorated');
SELECT lives_ok($$SELECT billing.cancel_subscription(pg_temp.sub('adv_fut'), '2024-04-16')$$, 'cancel in advance, a month ahead');
SELECT lives_ok($$SELECT billing.change_subscription(pg_temp.sub('chg_fut'), '2024-04-16', quantity => 2)$$,
	'quantity 2 from 2024-04-16, a month ahead');
SELECT lives_ok($$SELECT billing.cancel_subscription(pg_temp.sub('arr_p'), '2024-03-16')$$, 'cancel in arrears, prorated');
SELECT lives_ok($$SELECT billing.cancel_subscription(pg_temp.sub('arr_np'), '2024-03-16', prorate => false)$$,
	'cancel in arrears, not prorated');
-- monthly -> yearly from 2024-03-10: the old terms end, a yearly cycle starts that day
SELECT lives_ok($$SELECT billing.change_subscription(pg_temp.sub('yr'), '2024-03-10', price_id => pg_temp.price('y120'))$$,
	'change to 120/year from 2024-03-10');
-- downgrade 20 -> 5/month from 2024-03-16: the credit outweighs the charge
SELECT lives_ok($$SELECT billing.change_subscription(pg_temp.sub('down'), '2024-03-16', price_id => pg_temp.price('m5'))$$,
	'downgrade to 5/month from 2024-03-16');
-- quantity 2 from 2024-03-11 (a second change follows after the run)
SELECT lives_ok($$SELECT billing.change_subscription(pg_temp.sub('twice'), '2024-03-11', quantity => 2)$$,
	'quantity 2 from 2024-03-11');
-- cancellation backdated into billed February
SELECT lives_ok($$SELECT billing.cancel_subscription(pg_temp.sub('bcancel'), '2024-02-16')$$, 'cancel backdated to 2024-02-16');

-- the preview of the backdated change is exactly what the run will create
CREATE TEMP TABLE footprint_preview ON COMMIT DROP AS SELECT pg_temp.footprint() AS f;
CREATE TEMP TABLE preview_back ON COMMIT DROP AS
SELECT line_number, kind, service_period::text AS service_period, amount, tax_amount, description
FROM preview_invoice(pg_temp.acct('back'), '2024-03-20');
SELECT is(pg_temp.footprint(), (SELECT f FROM footprint_preview), 'preview_invoice writes nothing');
SELECT is((SELECT count(*) FROM preview_back), 6::bigint, 'the preview shows six proration lines');
-- descriptions carry ISO dates whatever the session's DateStyle: documents
-- read the same for every client
SELECT is((SELECT count(*) FROM preview_back WHERE description LIKE '% from 2024-01-16'), 2::bigint,
	'the credit and the charge of the backdated change say from 2024-01-16');
SET LOCAL DateStyle = 'SQL, DMY';
SELECT results_eq(
	$$SELECT line_number, description FROM preview_invoice(pg_temp.acct('back'), '2024-03-20') ORDER BY line_number$$,
	$$SELECT line_number, description FROM preview_back ORDER BY line_number$$,
	'under DateStyle SQL, DMY the descriptions are the same, ISO dates');
SET LOCAL DateStyle = 'ISO, YMD';

SELECT isnt(pg_temp.run('2024-03-20'), NULL, 'run 2024-03-20');

SELECT results_eq($$SELECT * FROM pg_temp.lines('void', '2024-03-20')$$,
	$$VALUES ('recurring', '[2024-02-01,2024-03-01)', 10.00), ('recurring', '[2024-02-01,2024-03-01)', 20.00)$$,
	'void and re-bill: the voided February is billed again, line for line');
SELECT results_eq(
	$$SELECT document_type, total FROM invoice WHERE account_id = pg_temp.acct('void') AND invoice_date = '2024-03-20'$$,
	$$SELECT 'invoice'::text, total FROM voided$$, 'the re-bill is to the cent');
SELECT results_eq($$SELECT * FROM pg_temp.billed('void')$$,
	$$VALUES ('[2024-01-01,2024-02-01)', 30.00), ('[2024-02-01,2024-03-01)', 30.00), ('[2024-03-01,2024-04-01)', 30.00)$$,
	'after void and re-bill every month holds 30.00 once');

SELECT results_eq($$SELECT * FROM pg_temp.lines('back', '2024-03-20')$$,
	$$VALUES ('proration', '[2024-01-16,2024-02-01)', -5.16), ('proration', '[2024-01-16,2024-02-01)', 10.32),
			 ('proration', '[2024-02-01,2024-03-01)', -10.00), ('proration', '[2024-02-01,2024-03-01)', 20.00),
			 ('proration', '[2024-03-01,2024-04-01)', -10.00), ('proration', '[2024-03-01,2024-04-01)', 20.00)$$,
	'backdated change: a credit and a charge for each of the three affected months');
SELECT results_eq($$SELECT * FROM pg_temp.billed('back')$$,
	$$VALUES ('[2024-01-01,2024-02-01)', 15.16), ('[2024-02-01,2024-03-01)', 20.00), ('[2024-03-01,2024-04-01)', 20.00)$$,
	'corrected in one run: January 10 x 15/31 + 20 x 16/31 = 15.16, February and March 20.00');
SELECT is((SELECT count(*) FROM invoice WHERE account_id = pg_temp.acct('back') AND invoice_date = '2024-03-20'), 1::bigint,
	'... on one document');
SELECT results_eq(
	$$SELECT l.line_number, l.kind, l.service_period::text, l.amount, l.tax_amount, l.description
	  FROM invoice_line l JOIN invoice i USING (account_id, invoice_id)
	  WHERE l.account_id = pg_temp.acct('back') AND i.invoice_date = '2024-03-20' ORDER BY l.line_number$$,
	$$SELECT * FROM preview_back ORDER BY line_number$$,
	'the run created exactly the previewed lines');

SELECT results_eq($$SELECT * FROM pg_temp.lines('adv_p', '2024-03-20')$$,
	$$VALUES ('proration', '[2024-03-16,2024-04-01)', -5.16)$$,
	'in advance, cancelled 2024-03-16 with proration: -5.16 for the unused 16/31');
SELECT results_eq(
	$$SELECT document_type, document_number, due_date, total FROM invoice
	  WHERE account_id = pg_temp.acct('adv_p') AND invoice_date = '2024-03-20'$$,
	$$VALUES ('credit_note', 'CN-000001', NULL::date, -5.16)$$,
	'the net credit is credit note CN-000001, without due date');
SELECT is((SELECT count(*) FROM invoice WHERE account_id = pg_temp.acct('adv_np') AND invoice_date > '2024-03-01'), 0::bigint,
	'in advance, cancelled without proration: the billed March is not credited');
SELECT results_eq($$SELECT * FROM pg_temp.lines('arr_p', '2024-03-20')$$,
	$$VALUES ('recurring', '[2024-03-01,2024-03-16)', 4.84)$$,
	'in arrears, cancelled 2024-03-16 with proration: the final stub 15/31 = 4.84');
SELECT results_eq($$SELECT * FROM pg_temp.lines('arr_np', '2024-03-20')$$,
	$$VALUES ('recurring', '[2024-03-01,2024-03-16)', 10.00)$$,
	'in arrears, cancelled without proration: the final period billed in full');
SELECT results_eq($$SELECT * FROM pg_temp.lines('yr', '2024-03-20')$$,
	$$VALUES ('recurring', '[2024-03-10,2025-03-10)', 120.00), ('proration', '[2024-03-10,2024-04-01)', -7.10)$$,
	'monthly -> yearly from 2024-03-10: a yearly period from that day, and a credit for the unused 22/31 of March');
SELECT results_eq($$SELECT * FROM pg_temp.lines('down', '2024-03-20')$$,
	$$VALUES ('proration', '[2024-03-16,2024-04-01)', -10.32), ('proration', '[2024-03-16,2024-04-01)', 2.58)$$,
	'downgrade 20 -> 5/month from 2024-03-16: -10.32 + 2.58');
SELECT results_eq(
	$$SELECT document_type, document_number, due_date, subtotal, total FROM invoice
	  WHERE account_id = pg_temp.acct('down') AND invoice_date = '2024-03-20'$$,
	$$VALUES ('credit_note', 'CN-000002', NULL::date, -7.74, -7.74)$$,
	'lines netting below zero make one credit note holding both lines');
SELECT results_eq($$SELECT * FROM pg_temp.lines('twice', '2024-03-20')$$,
	$$VALUES ('proration', '[2024-03-11,2024-04-01)', -6.77), ('proration', '[2024-03-11,2024-04-01)', 13.54)$$,
	'quantity 1 -> 2 from 2024-03-11: -6.77 (10 x 21/31 after the unchanged 3.23) + 13.54 (16.77 - 3.23)');
SELECT results_eq($$SELECT * FROM pg_temp.lines('bcancel', '2024-03-20')$$,
	$$VALUES ('proration', '[2024-02-16,2024-03-01)', -4.83), ('proration', '[2024-03-01,2024-04-01)', -10.00)$$,
	'cancellation backdated to 2024-02-16: 14/29 of leap February credited, March credited in full');
SELECT results_eq($$SELECT * FROM pg_temp.billed('bcancel')$$,
	$$VALUES ('[2024-01-01,2024-02-01)', 10.00), ('[2024-02-01,2024-03-01)', 5.17), ('[2024-03-01,2024-04-01)', 0.00)$$,
	'... leaving January 10.00, February 15/29 = 5.17, March nothing');
SELECT results_eq(
	$$SELECT document_type, document_number, total FROM invoice WHERE account_id = pg_temp.acct('bcancel') AND invoice_date = '2024-03-20'$$,
	$$VALUES ('credit_note', 'CN-000003', -14.83)$$, 'one credit note for both periods');
SELECT is((SELECT count(*) FROM invoice
		   WHERE account_id IN (pg_temp.acct('idem'), pg_temp.acct('adv_fut'), pg_temp.acct('chg_fut'), pg_temp.acct('once'))
			 AND invoice_date = '2024-03-20'), 0::bigint,
	'accounts without changes, or with changes after the billed periods, get nothing mid-month');

CREATE TEMP TABLE footprint_again ON COMMIT DROP AS SELECT pg_temp.footprint() AS f;
SELECT results_eq($$SELECT accounts, invoices, lines FROM pg_temp.run('2024-03-20')$$,
	$$VALUES (0, 0, 0::bigint)$$, 'after the changes, a second run with the same target adds nothing');
SELECT is(pg_temp.footprint(), (SELECT f FROM footprint_again), '... and writes nothing');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2024-03-20 run');

------------------------------------------------------------------------------
-- 2024-04-01 and 2024-05-01: the new terms carry on
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT billing.change_subscription(pg_temp.sub('twice'), '2024-03-21', quantity => 3)$$,
	'quantity 3 from 2024-03-21, in the March already reconciled once');
SELECT isnt(pg_temp.run('2024-04-01'), NULL, 'run 2024-04-01');
SELECT results_eq($$SELECT * FROM pg_temp.lines('twice', '2024-04-01')$$,
	$$VALUES ('proration', '[2024-03-21,2024-04-01)', -7.09), ('proration', '[2024-03-21,2024-04-01)', 10.64),
			 ('recurring', '[2024-04-01,2024-05-01)', 30.00)$$,
	'second change: -7.09 (16.77 billed less the unchanged 9.68) + 10.64 (20.32 - 9.68), and April at quantity 3');
SELECT results_eq($$SELECT * FROM pg_temp.billed('twice')$$,
	$$VALUES ('[2024-01-01,2024-02-01)', 10.00), ('[2024-02-01,2024-03-01)', 10.00),
			 ('[2024-03-01,2024-04-01)', 20.32), ('[2024-04-01,2024-05-01)', 30.00)$$,
	'March holds 10 x 10/31 + 20 x 10/31 + 30 x 11/31 = 20.32');
SELECT results_eq($$SELECT * FROM pg_temp.lines('back', '2024-04-01')$$,
	$$VALUES ('recurring', '[2024-04-01,2024-05-01)', 20.00)$$, 'the backdated price bills April at 20.00');
SELECT results_eq($$SELECT * FROM pg_temp.lines('adv_fut', '2024-04-01')$$,
	$$VALUES ('recurring', '[2024-04-01,2024-04-16)', 5.00)$$,
	'cancelled ahead to 2024-04-16: April billed as a stub of 15/30 = 5.00');
SELECT results_eq($$SELECT * FROM pg_temp.lines('chg_fut', '2024-04-01')$$,
	$$VALUES ('recurring', '[2024-04-01,2024-05-01)', 15.00)$$,
	'changed ahead to quantity 2 from 2024-04-16: April billed on time at 10 x 15/30 + 20 x 15/30 = 15.00');
SELECT results_eq($$SELECT * FROM pg_temp.lines('down', '2024-04-01')$$,
	$$VALUES ('recurring', '[2024-04-01,2024-05-01)', 5.00)$$, 'the downgrade bills April at 5.00');
SELECT is((SELECT count(*) FROM invoice
		   WHERE account_id IN (pg_temp.acct('adv_p'), pg_temp.acct('adv_np'), pg_temp.acct('arr_p'), pg_temp.acct('arr_np'),
								pg_temp.acct('yr'))
			 AND invoice_date = '2024-04-01'), 0::bigint,
	'cancelled and yearly subscriptions get nothing on 2024-04-01');
SELECT isnt(pg_temp.run('2024-05-01'), NULL, 'run 2024-05-01');
SELECT is((SELECT count(*) FROM invoice WHERE account_id = pg_temp.acct('adv_fut') AND invoice_date = '2024-05-01'), 0::bigint,
	'nothing after the cancellation date');
SELECT results_eq($$SELECT * FROM pg_temp.billed('chg_fut')$$,
	$$VALUES ('[2024-01-01,2024-02-01)', 10.00), ('[2024-02-01,2024-03-01)', 10.00), ('[2024-03-01,2024-04-01)', 10.00),
			 ('[2024-04-01,2024-05-01)', 15.00), ('[2024-05-01,2024-06-01)', 20.00)$$,
	'changed ahead: every month billed once, May at quantity 2');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the April and May runs');

------------------------------------------------------------------------------
-- Preview, drafts and posting (2024-05-10, one new account has work)
------------------------------------------------------------------------------
INSERT INTO account (external_key, name, currency, payment_terms_days) VALUES ('draft', 'Drafts', 'USD', 14);
INSERT INTO subscription (account_id, price_id, start_date) VALUES (pg_temp.acct('draft'), pg_temp.price('m10'), '2024-05-10');
CREATE TEMP TABLE footprint_draft ON COMMIT DROP AS SELECT pg_temp.footprint() AS f;
SELECT results_eq(
	$$SELECT line_id, invoice_id, line_number, kind, service_period::text, amount
	  FROM preview_invoice(pg_temp.acct('draft'), '2024-05-10')$$,
	$$VALUES (NULL::bigint, NULL::bigint, 1, 'recurring', '[2024-05-10,2024-06-10)', 10.00)$$,
	'preview_invoice: the line a run would create, ids NULL');
SELECT is(pg_temp.footprint(), (SELECT f FROM footprint_draft), 'the preview wrote nothing');
SELECT results_eq($$SELECT accounts, invoices, lines FROM pg_temp.run('2024-05-10', auto_post => false)$$,
	$$VALUES (1, 1, 1::bigint)$$, 'run 2024-05-10 without posting: one draft');
SELECT results_eq(
	$$SELECT document_type, status, document_number, invoice_date FROM invoice WHERE account_id = pg_temp.acct('draft')$$,
	$$VALUES ('invoice', 'draft', NULL::text, '2024-05-10'::date)$$, 'the draft has no number');
SELECT results_eq($$SELECT accounts, invoices, lines FROM pg_temp.run('2024-05-10', auto_post => false)$$,
	$$VALUES (0, 0, 0::bigint)$$, 'a draft counts as billed: a second run adds nothing');
CREATE TEMP TABLE last_invoice_number ON COMMIT DROP AS
SELECT max(document_number) AS n FROM invoice WHERE document_type = 'invoice';
SELECT lives_ok($$SELECT billing.post_invoice((SELECT invoice_id FROM billing.invoice WHERE account_id = pg_temp.acct('draft')))$$,
	'post the draft');
SELECT results_eq(
	$$SELECT status, document_number, due_date, subtotal, total FROM invoice WHERE account_id = pg_temp.acct('draft')$$,
	$$SELECT 'posted'::text, format('INV-%s', lpad((substring(n FROM '[0-9]+$')::int + 1)::text, 6, '0')),
			 '2024-05-24'::date, 10.00, 10.00 FROM last_invoice_number$$,
	'posting takes the next invoice number and sets the due date from 14 days terms');
SELECT results_eq(
	$$SELECT document_number FROM invoice WHERE document_type = 'invoice' ORDER BY posted_at, invoice_id$$,
	$$SELECT format('INV-%s', lpad(g::text, 6, '0')) FROM generate_series(1, (SELECT count(*) FROM invoice WHERE document_type = 'invoice')) g$$,
	'invoice numbers run INV-000001, INV-000002, ... in posting order without gaps');
SELECT results_eq(
	$$SELECT document_number FROM invoice WHERE document_type = 'credit_note' ORDER BY invoice_id$$,
	$$VALUES ('CN-000001'), ('CN-000002'), ('CN-000003')$$, 'credit notes have their own series');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after posting the draft');

------------------------------------------------------------------------------
-- 2025-03-10: the yearly cycle started by the change renews on its own day
------------------------------------------------------------------------------
SELECT isnt(pg_temp.run('2025-03-10'), NULL, 'run 2025-03-10');
SELECT results_eq($$SELECT * FROM pg_temp.lines('yr', '2025-03-10')$$,
	$$VALUES ('recurring', '[2025-03-10,2026-03-10)', 120.00)$$,
	'the yearly period renews on 2025-03-10, the day the new cycle started');
SELECT results_eq($$SELECT * FROM pg_temp.billed('once')$$,
	$$SELECT billing.billing_period(d::date, (d + interval '1 month')::date)::text, 5.00
	  FROM generate_series('2024-01-01'::date, '2025-03-01', interval '1 month') d$$,
	'one-time + recurring: fifteen months of 5.00, the one-time charge outside any period');
SELECT is((SELECT sum(amount) FROM invoice_line WHERE account_id = pg_temp.acct('once') AND kind = 'one_time'), 10.00,
	'the one-time charge was billed once');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2025-03-10 run');

------------------------------------------------------------------------------
-- A price with another proration rule on the same cycle continues the cycle;
-- each period follows the rule of the terms in effect on its first day.  (The
-- cycle used to split in two at the change, the second part anchored on its
-- own first day, and the months were billed twice: on the 1st and the 15th.)
------------------------------------------------------------------------------
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount,
				   proration)
SELECT product_id, 'm30_none', 'USD', 'recurring', 'month', 'in_advance', 'per_unit', 30, 'none' FROM product WHERE code = 'plan';
INSERT INTO account (external_key, name, currency) VALUES ('rule', 'Proration rule changes in the cycle', 'USD');
INSERT INTO subscription (account_id, price_id, start_date) VALUES (pg_temp.acct('rule'), pg_temp.price('m10'), '2024-01-01');
SELECT lives_ok($$SELECT billing.change_subscription((SELECT subscription_id FROM subscription WHERE account_id = pg_temp.acct('rule')),
												   '2024-01-15', price_id => pg_temp.price('m30_none'))$$,
	'change to a price without proration on 2024-01-15');
SELECT lives_ok($$SELECT billing.change_subscription((SELECT subscription_id FROM subscription WHERE account_id = pg_temp.acct('rule')),
												   '2024-06-01', price_id => pg_temp.price('m10'))$$,
	'and back to daily proration on 2024-06-01');
SELECT results_eq(
	$$SELECT kind, service_period::text, amount FROM billing.preview_invoice(pg_temp.acct('rule'), '2024-07-15')$$,
	$$VALUES ('recurring', '[2024-01-01,2024-02-01)', 20.97), ('recurring', '[2024-02-01,2024-03-01)', 30.00),
			 ('recurring', '[2024-03-01,2024-04-01)', 30.00), ('recurring', '[2024-04-01,2024-05-01)', 30.00),
			 ('recurring', '[2024-05-01,2024-06-01)', 30.00), ('recurring', '[2024-06-01,2024-07-01)', 10.00),
			 ('recurring', '[2024-07-01,2024-08-01)', 10.00)$$,
	'one period a month on the 1st: January prorated under its first day''s daily rule (10 x 14/31 + 30 x 17/31 = 20.97), February to May full at 30, then 10');

SELECT * FROM finish();
ROLLBACK;
