-- Dunning (SPEC §6): billing.run_dunning(as_of) issues one notice per open
-- overdue invoice or debit note and level reached, once; a fee becomes a
-- debit note dated as_of with a 'fee' line (not dunned itself); hold_billing
-- holds the account; paid, credited, void and not-yet-overdue documents get
-- no new notices.  One 2024 timeline, dunning runs in date order.
-- (NOTIFY billing_dunning is covered by test/specs/dunning_notify.spec.)
BEGIN;
\ir include/session.sql

SELECT plan(51);

CREATE FUNCTION pg_temp.acct(key text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT account_id FROM billing.account WHERE external_key = key $$;
CREATE FUNCTION pg_temp.dn(key text, amount numeric, issued_on date) RETURNS bigint LANGUAGE sql
AS $$ SELECT invoice_id FROM billing.issue_debit_note(pg_temp.acct(key), amount, 'dunning test', issued_on) $$;
-- the notices a run returned, as (account key, dunned document's amount, level, issued_on, fee amount)
CREATE TEMP TABLE notices (run text, notice billing.dunning_notice) ON COMMIT DROP;
CREATE FUNCTION pg_temp.dun(run text, as_of date) RETURNS void LANGUAGE sql
AS $$ INSERT INTO notices SELECT run, n FROM billing.run_dunning(as_of) n $$;
CREATE FUNCTION pg_temp.notices(run_name text)
	RETURNS TABLE (account text, document_type text, document_total numeric, level int, issued_on date, fee numeric)
	LANGUAGE sql STABLE
AS $$ SELECT a.external_key, i.document_type, i.total, (x.notice).level, (x.notice).issued_on, f.total
	  FROM notices x
	  JOIN billing.account a ON a.account_id = (x.notice).account_id
	  JOIN billing.invoice i ON i.account_id = (x.notice).account_id AND i.invoice_id = (x.notice).invoice_id
	  LEFT JOIN billing.invoice f ON f.account_id = (x.notice).account_id AND f.invoice_id = (x.notice).fee_invoice_id
	  WHERE x.run = run_name ORDER BY a.external_key, (x.notice).level $$;

INSERT INTO dunning_level (level, days_overdue, fee_amount, hold_billing) VALUES
	(1, 10, 5.00, false), (2, 30, 0, true), (3, 60, 25.00, false);

INSERT INTO product (code, name) VALUES ('plan', 'Plan');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT product_id, 'm100', 'USD', 'recurring', 'month', 'in_advance', 'per_unit', 100 FROM product WHERE code = 'plan';
INSERT INTO account (external_key, name, currency, payment_terms_days) VALUES
	('d1', 'Invoice unpaid', 'USD', 30), ('d2', 'Paid in time', 'USD', 30), ('d3', 'Credited after level 1', 'USD', 30),
	('d4', 'Due later', 'USD', 30), ('d5', 'Partly paid', 'USD', 30), ('d6', 'Voided', 'USD', 30),
	('dj', 'Yen', 'JPY', 30);
-- d1: a real invoice from a run: 100.00 dated 2024-01-01, due 2024-01-31
INSERT INTO subscription (account_id, price_id, start_date, end_date)
SELECT pg_temp.acct('d1'), price_id, '2024-01-01', '2024-02-01' FROM price WHERE code = 'm100';
SELECT is((SELECT total_amount FROM run_invoice_batch(target_date => '2024-01-01')), 100.00, 'd1: invoice 100.00 dated 2024-01-01');
DO $$ BEGIN
	PERFORM pg_temp.dn('d2', 200, '2024-01-01');
	PERFORM billing.record_payment(pg_temp.acct('d2'), 200, '2024-02-05');		-- paid before level 1
	PERFORM pg_temp.dn('d3', 300, '2024-01-01');
	PERFORM pg_temp.dn('d4', 400, '2024-02-01');		-- due 2024-03-02
	PERFORM pg_temp.dn('d5', 500, '2024-01-01');
	PERFORM billing.record_payment(pg_temp.acct('d5'), 50, '2024-01-20');		-- 450.00 left open
	PERFORM pg_temp.dn('d6', 600, '2024-01-01');
	PERFORM billing.void_invoice(pg_temp.dn('d6', 600, '2024-01-01'), 'duplicate', '2024-01-05');
	PERFORM pg_temp.dn('dj', 1000, '2024-01-01');
END $$;
SELECT is((SELECT count(*) FROM invoice WHERE due_date = '2024-01-31' AND status = 'posted'), 6::bigint,
	'six posted documents due 2024-01-31 (one of d6''s two is void)');

------------------------------------------------------------------------------
-- 2024-02-09: 9 days overdue, no level reached
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT pg_temp.dun('r0209', '2024-02-09')$$, 'run_dunning 2024-02-09');
SELECT is((SELECT count(*) FROM notices WHERE run = 'r0209'), 0::bigint, '9 days overdue: no notice');

------------------------------------------------------------------------------
-- 2024-02-10: level 1 (10 days, fee 5.00)
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT pg_temp.dun('r0210', '2024-02-10')$$, 'run_dunning 2024-02-10');
SELECT results_eq($$SELECT * FROM pg_temp.notices('r0210')$$,
	$$VALUES ('d1', 'invoice', 100.00, 1, '2024-02-10'::date, 5.00),
			 ('d3', 'debit_note', 300.00, 1, '2024-02-10'::date, 5.00),
			 ('d5', 'debit_note', 500.00, 1, '2024-02-10'::date, 5.00),
			 ('d6', 'debit_note', 600.00, 1, '2024-02-10'::date, 5.00),
			 ('dj', 'debit_note', 1000::numeric, 1, '2024-02-10'::date, 5::numeric)$$,
	'level 1 for every open document 10 days overdue (invoices and debit notes, partly paid too), fee 5.00 each; '
	'not the paid one (d2), the void one or the one due later (d4)');
SELECT is((SELECT count(*) FROM dunning_notice), 5::bigint, 'five notices stored');
SELECT results_eq(
	$$SELECT f.document_type, f.status, f.invoice_date, f.due_date, f.currency, f.total, l.kind, l.amount, l.service_period IS NULL
	  FROM dunning_notice n JOIN invoice f ON f.account_id = n.account_id AND f.invoice_id = n.fee_invoice_id
	  JOIN invoice_line l ON l.account_id = f.account_id AND l.invoice_id = f.invoice_id
	  WHERE n.account_id = pg_temp.acct('d1')$$,
	$$VALUES ('debit_note', 'posted', '2024-02-10'::date, '2024-03-11'::date, 'USD', 5.00, 'fee', 5.00, true)$$,
	'the fee is a posted debit note dated as_of, due after the payment terms, with one fee line of 5.00');
SELECT results_eq(
	$$SELECT f.currency, f.total FROM dunning_notice n JOIN invoice f ON f.account_id = n.account_id AND f.invoice_id = n.fee_invoice_id
	  WHERE n.account_id = pg_temp.acct('dj')$$,
	$$VALUES ('JPY', 5::numeric)$$, 'a yen document''s fee is charged in yen, rounded to whole yen');
SELECT is((SELECT count(*) FROM invoice_line WHERE kind = 'fee'), 5::bigint, 'five fee lines in all');
SELECT is((SELECT count(*) FROM account WHERE billing_hold), 0::bigint, 'level 1 holds no account');
SELECT is(account_balance(pg_temp.acct('d1'), '2024-02-10'), 105.00, 'd1 owes 100.00 + the 5.00 fee');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after level 1');

-- the same day again: nothing new
SELECT lives_ok($$SELECT pg_temp.dun('r0210b', '2024-02-10')$$, 'run_dunning 2024-02-10 again');
SELECT is((SELECT count(*) FROM notices WHERE run = 'r0210b'), 0::bigint, 'a second run on the same day returns no notice');
SELECT is((SELECT count(*) FROM invoice WHERE document_type = 'debit_note' AND invoice_date = '2024-02-10'), 5::bigint,
	'and charges no second fee');
SELECT lives_ok($$SELECT pg_temp.dun('r0220', '2024-02-20')$$, 'run_dunning 2024-02-20');
SELECT is((SELECT count(*) FROM notices WHERE run = 'r0220'), 0::bigint, 'ten days later, still within level 1: nothing new');

------------------------------------------------------------------------------
-- d3 is credited in full on 2024-02-15, d6 paid; then level 2 on 2024-03-01
-- (30 days, no fee, hold billing)
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT issue_credit_note(invoice_id, NULL, 'disputed', '2024-02-15') FROM invoice
				  WHERE account_id = pg_temp.acct('d3') AND total = 300$$, 'd3: credit note for the whole 300.00');
SELECT is(invoice_balance(invoice_id, '2024-03-01'), 0.00, 'd3''s debit note is closed')
FROM invoice WHERE account_id = pg_temp.acct('d3') AND total = 300;
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('d6'), 600, '2024-02-25')$$, 'd6: 600.00 paid on 2024-02-25');
SELECT lives_ok($$SELECT pg_temp.dun('r0301', '2024-03-01')$$, 'run_dunning 2024-03-01');
SELECT results_eq($$SELECT * FROM pg_temp.notices('r0301')$$,
	$$VALUES ('d1', 'invoice', 100.00, 2, '2024-03-01'::date, NULL::numeric),
			 ('d5', 'debit_note', 500.00, 2, '2024-03-01'::date, NULL::numeric),
			 ('dj', 'debit_note', 1000::numeric, 2, '2024-03-01'::date, NULL::numeric)$$,
	'level 2 for the documents still open 30 days overdue, without fee; the credited (d3) and paid (d6) ones get none');
SELECT is((SELECT count(*) FROM dunning_notice WHERE level = 2 AND fee_invoice_id IS NOT NULL), 0::bigint,
	'a level without fee creates no debit note');
SELECT results_eq($$SELECT external_key FROM account WHERE billing_hold ORDER BY 1$$, ARRAY['d1', 'd5', 'dj'],
	'hold_billing: the accounts reaching level 2 are on billing hold, the others not');
SELECT is((SELECT count(*) FROM dunning_notice WHERE account_id IN (pg_temp.acct('d3'), pg_temp.acct('d6'))), 2::bigint,
	'd3 and d6 keep only their level 1 notices');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after level 2');

-- a held account's subscription is not billed
INSERT INTO subscription (account_id, price_id, start_date)
SELECT pg_temp.acct('d1'), price_id, '2024-03-01' FROM price WHERE code = 'm100';
SELECT is((SELECT invoices FROM run_invoice_batch(target_date => '2024-03-01')), 0,
	'a run on 2024-03-01 bills nothing for the held account');

------------------------------------------------------------------------------
-- 2024-04-15: level 3 (60 days, fee 25.00); d4 (due 2024-03-02, 44 days)
-- reaches levels 1 and 2 at once; the level-1 fee notes (due 2024-03-11, 35
-- days overdue) are not dunned
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT pg_temp.dun('r0415', '2024-04-15')$$, 'run_dunning 2024-04-15');
SELECT results_eq($$SELECT * FROM pg_temp.notices('r0415')$$,
	$$VALUES ('d1', 'invoice', 100.00, 3, '2024-04-15'::date, 25.00),
			 ('d4', 'debit_note', 400.00, 1, '2024-04-15'::date, 5.00),
			 ('d4', 'debit_note', 400.00, 2, '2024-04-15'::date, NULL),
			 ('d5', 'debit_note', 500.00, 3, '2024-04-15'::date, 25.00),
			 ('dj', 'debit_note', 1000::numeric, 3, '2024-04-15'::date, 25::numeric)$$,
	'level 3 with its 25.00 fee; d4 reaches levels 1 and 2 in one run; no fee debit note is dunned');
SELECT is_empty(
	$$SELECT * FROM dunning_notice n WHERE EXISTS (SELECT 1 FROM dunning_notice f WHERE f.fee_invoice_id = n.invoice_id)$$,
	'no notice is about a fee debit note');
SELECT is((SELECT count(*) FROM invoice_line l JOIN invoice i USING (account_id, invoice_id)
		   WHERE l.kind = 'fee' AND i.due_date < '2024-04-15' AND i.status = 'posted'
			 AND invoice_balance(i.invoice_id, '2024-04-15') > 0), 5::bigint,
	'(while the five level-1 fee debit notes are open and 35 days overdue)');
SELECT results_eq($$SELECT external_key FROM account WHERE billing_hold ORDER BY 1$$, ARRAY['d1', 'd4', 'd5', 'dj'],
	'd4 is held too');
SELECT is(account_balance(pg_temp.acct('d1'), '2024-04-15'), 130.00, 'd1 owes 100.00 + 5.00 + 25.00');
SELECT results_eq(
	$$SELECT bucket, amount FROM ar_aging('2024-04-15') WHERE account_id = pg_temp.acct('d1') ORDER BY bucket_order$$,
	$$VALUES ('current', 25.00), ('31-60', 5.00), ('61-90', 100.00)$$,
	'fee debit notes are aged like any debit note');
SELECT is((SELECT count(*) FROM dunning_notice), 13::bigint, '13 notices in all');
SELECT is((SELECT count(*) FROM (SELECT DISTINCT account_id, invoice_id, level FROM dunning_notice) d), 13::bigint,
	'one notice per document and level');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after level 3');

-- again: nothing new
SELECT lives_ok($$SELECT pg_temp.dun('r0415b', '2024-04-15')$$, 'run_dunning 2024-04-15 again');
SELECT is((SELECT count(*) FROM notices WHERE run = 'r0415b'), 0::bigint, 'a second run adds nothing');
SELECT is((SELECT count(*) FROM invoice_line WHERE kind = 'fee'), 9::bigint, 'and no fee: 5 + 1 + 3 fee lines in all');

-- a later payment in full: no further notice even when later levels would be reached
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('d4'), 405, '2024-04-20')$$, 'd4 pays 400.00 + its 5.00 fee');
SELECT lives_ok($$SELECT pg_temp.dun('r0601', '2024-06-01')$$, 'run_dunning 2024-06-01');
SELECT is((SELECT count(*) FROM notices WHERE run = 'r0601'), 0::bigint,
	'2024-06-01: nothing new: d4 (paid) gets no level 3, the others have every level, fee debit notes are never dunned');

-- a document in another currency than its account's: the fee is charged in the document's currency
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT product_id, 'eur10', 'EUR', 'recurring', 'month', 'in_advance', 'per_unit', 10 FROM product WHERE code = 'plan';
INSERT INTO account (external_key, name, currency) VALUES ('de', 'Dollar account, euro plan', 'USD');
INSERT INTO subscription (account_id, price_id, start_date, end_date)
SELECT pg_temp.acct('de'), price_id, '2024-06-01', '2024-07-01' FROM price WHERE code = 'eur10';
SELECT is((SELECT invoices FROM run_invoice_batch(target_date => '2024-06-01')), 1, 'a EUR invoice of 10.00 for a USD account, due 2024-07-01');
SELECT lives_ok($$SELECT pg_temp.dun('r0711', '2024-07-11')$$, 'run_dunning 2024-07-11');
SELECT results_eq($$SELECT account, document_total, level, fee FROM pg_temp.notices('r0711')$$, $$VALUES ('de', 10.00, 1, 5.00)$$,
	'only the EUR invoice reaches a new level');
SELECT results_eq(
	$$SELECT f.document_type, f.currency, f.total FROM dunning_notice n JOIN invoice f ON f.account_id = n.account_id AND f.invoice_id = n.fee_invoice_id
	  WHERE n.account_id = pg_temp.acct('de')$$,
	$$VALUES ('debit_note', 'EUR', 5.00)$$, 'its fee is a EUR debit note');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after dunning in another currency');

SELECT throws_ok($$SELECT run_dunning(NULL)$$, '22004', NULL, 'run_dunning(NULL): 22004');
SELECT is(pg_get_function_arguments('billing.run_dunning(date)'::regprocedure), 'as_of date DEFAULT CURRENT_DATE',
	'run_dunning(as_of date DEFAULT current_date)');

SELECT * FROM finish();
ROLLBACK;
