-- Revenue recognition (SPEC §6, VECTORS.md "Revenue"): the schedule posting
-- writes for each line (daily over its service period by calendar month, each
-- month rounded, the last month takes the remainder), on_invoice prices and
-- lines without a service period in the document month, negative lines
-- reversing revenue, deferred_revenue as of a date, and the revenue_by_month,
-- mrr_by_month, cash_by_month and invoice_report views.
--
-- Lines with an arbitrary service period are written as drafts by hand (on a
-- held account, so no run reconciles them) and posted with post_invoice();
-- the others come from billing.run_invoice_batch().
BEGIN;
\ir include/session.sql

SELECT plan(54);

\ir include/lookups.sql
\ir include/run.sql
-- A draft dated invoice_date with one recurring line of the account's
-- subscription over the given service period, posted; returns its id.
CREATE FUNCTION pg_temp.manual(key text, invoice_date date, amount numeric, service_period billing.billing_period)
	RETURNS bigint LANGUAGE plpgsql
AS $$
DECLARE
	doc billing.invoice;
	sub billing.subscription;
BEGIN
	SELECT * INTO STRICT sub FROM billing.subscription s WHERE s.account_id = pg_temp.acct(key);
	INSERT INTO billing.invoice (account_id, document_type, invoice_date, currency)
	SELECT a.account_id, 'invoice', manual.invoice_date, a.currency FROM billing.account a WHERE a.account_id = sub.account_id
	RETURNING * INTO doc;
	INSERT INTO billing.invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, service_period,
									  cycle_period, quantity, unit_amount, amount, description)
	VALUES (doc.account_id, doc.invoice_id, 1, sub.subscription_id, sub.price_id, 'recurring', manual.service_period,
			manual.service_period, 1, manual.amount, manual.amount, 'hand-written line');
	PERFORM billing.post_invoice(doc.invoice_id);
	RETURN doc.invoice_id;
END $$;
-- a document's schedule as (month, amount)
CREATE FUNCTION pg_temp.schedule(doc bigint) RETURNS TABLE (period_month date, amount numeric) LANGUAGE sql STABLE
AS $$ SELECT s.period_month, sum(s.amount) FROM billing.revenue_schedule s
	  JOIN billing.invoice_line l ON l.account_id = s.account_id AND l.line_id = s.line_id
	  WHERE l.invoice_id = doc GROUP BY s.period_month ORDER BY s.period_month $$;
CREATE FUNCTION pg_temp.deferred(key text, as_of date) RETURNS numeric LANGUAGE sql STABLE
AS $$ SELECT coalesce(sum(d.amount), 0) FROM billing.deferred_revenue(as_of) d WHERE d.account_id = pg_temp.acct(key) $$;
CREATE FUNCTION pg_temp.revenue(key text) RETURNS TABLE (period_month date, revenue numeric) LANGUAGE sql STABLE
AS $$ SELECT r.period_month, r.revenue FROM billing.revenue_by_month r WHERE r.account_id = pg_temp.acct(key)
	  ORDER BY r.period_month $$;

INSERT INTO product (code, name) VALUES ('plan', 'Plan'), ('setup', 'Setup fee');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount,
				   revenue_rule)
SELECT pr.product_id, v.code, v.currency, 'recurring', v.unit, 'in_advance', 'per_unit', v.amount, v.rule
FROM product pr,
	 (VALUES ('m100', 'USD', 'month', 100, 'ratable'), ('y1200', 'USD', 'year', 1200, 'ratable'),
			 ('m30oi', 'USD', 'month', 30, 'on_invoice'), ('m1000jpy', 'JPY', 'month', 1000, 'ratable'),
			 ('m31eur', 'EUR', 'month', 31, 'ratable'), ('y365eur', 'EUR', 'year', 365, 'ratable'))
		 v(code, currency, unit, amount, rule)
WHERE pr.code = 'plan';
INSERT INTO price (product_id, code, currency, charge_type, pricing_model, unit_amount)
SELECT product_id, 'setup50', 'USD', 'one_time', 'flat', 50 FROM product WHERE code = 'setup';

------------------------------------------------------------------------------
-- VECTORS "Revenue", hand-written lines on held accounts
------------------------------------------------------------------------------
INSERT INTO account (external_key, name, currency, billing_hold) VALUES
	('rv', 'Revenue vectors', 'USD', true), ('rj', 'Revenue in yen', 'JPY', true), ('rx', 'Voided revenue', 'USD', true);
INSERT INTO subscription (account_id, price_id, start_date) VALUES
	(pg_temp.acct('rv'), pg_temp.price('m100'), '2019-01-10'),
	(pg_temp.acct('rj'), pg_temp.price('m1000jpy'), '2019-01-10'),
	(pg_temp.acct('rx'), pg_temp.price('m100'), '2024-01-01');
CREATE TEMP TABLE doc (key text PRIMARY KEY, invoice_id bigint) ON COMMIT DROP;
INSERT INTO doc VALUES
	('v100', pg_temp.manual('rv', '2019-01-10', 100.00, '[2019-01-10,2019-03-16)')),
	('v500', pg_temp.manual('rv', '2020-08-07', 500.00, '[2020-08-07,2020-12-08)')),
	('jpy', pg_temp.manual('rj', '2019-01-10', 1000, '[2019-01-10,2019-03-16)')),
	('void', pg_temp.manual('rx', '2024-01-01', 300.00, '[2024-01-01,2024-04-01)'));

SELECT results_eq($$SELECT * FROM pg_temp.schedule((SELECT invoice_id FROM doc WHERE key = 'v100'))$$,
	$$VALUES ('2019-01-01'::date, 33.85), ('2019-02-01', 43.08), ('2019-03-01', 23.07)$$,
	'100.00 over [2019-01-10,2019-03-16): Jan 33.85, Feb 43.08, Mar 23.07');
SELECT results_eq($$SELECT * FROM pg_temp.schedule((SELECT invoice_id FROM doc WHERE key = 'v500'))$$,
	$$VALUES ('2020-08-01'::date, 101.63), ('2020-09-01', 121.95), ('2020-10-01', 126.02), ('2020-11-01', 121.95),
			 ('2020-12-01', 28.45)$$,
	'500.00 over [2020-08-07,2020-12-08): Aug 101.63, Sep 121.95, Oct 126.02, Nov 121.95, Dec 28.45');
SELECT results_eq($$SELECT * FROM pg_temp.schedule((SELECT invoice_id FROM doc WHERE key = 'jpy'))$$,
	$$VALUES ('2019-01-01'::date, 338::numeric), ('2019-02-01', 431), ('2019-03-01', 231)$$,
	'JPY 1000 over [2019-01-10,2019-03-16): 338, 431, 231 (whole yen, last month takes the remainder)');

------------------------------------------------------------------------------
-- VECTORS "Revenue" 1200.00 over [2025-07-20,2026-07-20), from a yearly run
------------------------------------------------------------------------------
INSERT INTO account (external_key, name, currency) VALUES ('ry', 'Yearly plan', 'USD');
INSERT INTO subscription (account_id, price_id, start_date) VALUES (pg_temp.acct('ry'), pg_temp.price('y1200'), '2025-07-20');
SELECT isnt(pg_temp.run('2025-07-20'), NULL, 'run 2025-07-20');
INSERT INTO doc SELECT 'y1200', invoice_id FROM invoice WHERE account_id = pg_temp.acct('ry');
SELECT results_eq(
	$$SELECT l.kind, l.service_period::text, l.amount FROM invoice_line l WHERE l.account_id = pg_temp.acct('ry')$$,
	$$VALUES ('recurring', '[2025-07-20,2026-07-20)', 1200.00)$$, 'the yearly run bills 1200.00 for a year');
SELECT results_eq($$SELECT * FROM pg_temp.schedule((SELECT invoice_id FROM doc WHERE key = 'y1200'))$$,
	$$VALUES ('2025-07-01'::date, 39.45), ('2025-08-01', 101.92), ('2025-09-01', 98.63), ('2025-10-01', 101.92),
			 ('2025-11-01', 98.63), ('2025-12-01', 101.92), ('2026-01-01', 101.92), ('2026-02-01', 92.05),
			 ('2026-03-01', 101.92), ('2026-04-01', 98.63), ('2026-05-01', 101.92), ('2026-06-01', 98.63),
			 ('2026-07-01', 62.46)$$,
	'1200.00 over [2025-07-20,2026-07-20): Jul 39.45, Aug 101.92, ..., Jun 98.63, Jul 62.46');
SELECT is((SELECT sum(amount) FROM pg_temp.schedule((SELECT invoice_id FROM doc WHERE key = 'y1200'))), 1200.00,
	'the 13 months sum to exactly 1200.00');

------------------------------------------------------------------------------
-- Negative lines reverse revenue: a cancellation credit over its service
-- period, a credit note (no service period) in its document month
------------------------------------------------------------------------------
INSERT INTO account (external_key, name, currency, bill_cycle_day) VALUES ('rc', 'Cancelled', 'USD', 15);
INSERT INTO subscription (account_id, price_id, start_date) VALUES (pg_temp.acct('rc'), pg_temp.price('m100'), '2024-01-15');
SELECT isnt(pg_temp.run('2024-01-15'), NULL, 'run 2024-01-15');
SELECT lives_ok($$SELECT cancel_subscription(subscription_id, '2024-01-25') FROM subscription WHERE account_id = pg_temp.acct('rc')$$,
	'cancel effective 2024-01-25');
SELECT isnt(pg_temp.run('2024-01-25'), NULL, 'run 2024-01-25');
SELECT results_eq(
	$$SELECT l.kind, l.service_period::text, l.amount, s.period_month, s.amount
	  FROM invoice_line l JOIN revenue_schedule s USING (account_id, line_id)
	  WHERE l.account_id = pg_temp.acct('rc') ORDER BY l.line_id, s.period_month$$,
	$$VALUES ('recurring', '[2024-01-15,2024-02-15)', 100.00, '2024-01-01'::date, 54.84),
			 ('recurring', '[2024-01-15,2024-02-15)', 100.00, '2024-02-01'::date, 45.16),
			 ('proration', '[2024-01-25,2024-02-15)', -67.74, '2024-01-01'::date, -22.58),
			 ('proration', '[2024-01-25,2024-02-15)', -67.74, '2024-02-01'::date, -45.16)$$,
	'100.00 over [01-15,02-15) is 54.84 + 45.16; the -67.74 credit over [01-25,02-15) reverses -22.58 + -45.16');
SELECT lives_ok($$SELECT issue_credit_note(invoice_id, 10, 'goodwill', '2024-03-05') FROM invoice
				  WHERE account_id = pg_temp.acct('rc') AND document_type = 'invoice'$$,
	'a 10.00 credit note dated 2024-03-05');
SELECT results_eq($$SELECT * FROM pg_temp.revenue('rc')$$,
	$$VALUES ('2024-01-01'::date, 32.26), ('2024-02-01', 0.00), ('2024-03-01', -10.00)$$,
	'revenue_by_month: Jan 32.26, Feb 0.00, and the credit note''s -10.00 in its document month');
SELECT is((SELECT sum(revenue) FROM pg_temp.revenue('rc')),
	(SELECT sum(total) FROM invoice WHERE account_id = pg_temp.acct('rc') AND status = 'posted'),
	'revenue recognized over all months = net billed');

------------------------------------------------------------------------------
-- on_invoice prices and lines without a service period: the document month
------------------------------------------------------------------------------
INSERT INTO account (external_key, name, currency) VALUES ('ro', 'On invoice', 'USD');
INSERT INTO subscription (account_id, price_id, start_date, end_date) VALUES
	(pg_temp.acct('ro'), pg_temp.price('m30oi'), '2024-05-10', '2024-06-10'),
	(pg_temp.acct('ro'), pg_temp.price('setup50'), '2024-05-10', NULL);
SELECT isnt(pg_temp.run('2024-05-10'), NULL, 'run 2024-05-10');
SELECT lives_ok($$SELECT issue_debit_note(pg_temp.acct('ro'), 7.50, 'late fee', '2024-06-20')$$, 'a 7.50 debit note dated 2024-06-20');
SELECT results_eq(
	$$SELECT l.kind, l.service_period::text, s.period_month, s.amount
	  FROM invoice_line l JOIN revenue_schedule s USING (account_id, line_id)
	  WHERE l.account_id = pg_temp.acct('ro') ORDER BY l.line_id, s.period_month$$,
	$$VALUES ('recurring', '[2024-05-10,2024-06-10)', '2024-05-01'::date, 30.00),
			 ('one_time', NULL, '2024-05-01'::date, 50.00),
			 ('adjustment', NULL, '2024-06-01'::date, 7.50)$$,
	'an on_invoice price over [05-10,06-10) and a one-time line: all in May; a debit note''s line in June');
SELECT is(pg_temp.deferred('ro', '2024-05-10'), 0::numeric, 'nothing of them is deferred on the document date');

-- drafts have no schedule; posting writes it
INSERT INTO account (external_key, name, currency) VALUES ('rd', 'Drafted', 'USD');
INSERT INTO subscription (account_id, price_id, start_date, end_date)
VALUES (pg_temp.acct('rd'), pg_temp.price('m100'), '2024-09-01', '2024-10-01');
SELECT is((SELECT invoices FROM run_invoice_batch(target_date => '2024-09-01', auto_post => false)), 1,
	'a run without posting leaves a draft');
SELECT is_empty($$SELECT * FROM revenue_schedule s JOIN invoice_line l USING (account_id, line_id) WHERE l.account_id = pg_temp.acct('rd')$$,
	'a draft''s lines have no revenue schedule, and no revenue');
SELECT lives_ok($$SELECT post_invoice(invoice_id) FROM invoice WHERE account_id = pg_temp.acct('rd')$$, 'post it');
SELECT results_eq($$SELECT * FROM pg_temp.revenue('rd')$$, $$VALUES ('2024-09-01'::date, 100.00)$$,
	'once posted: September 100.00');

------------------------------------------------------------------------------
-- deferred_revenue(as_of): posted, not yet recognized by the end of the day
------------------------------------------------------------------------------
SELECT is(pg_temp.deferred('ry', '2025-07-19'), 0::numeric, 'yearly: before the invoice date nothing is posted');
SELECT is(pg_temp.deferred('ry', '2025-07-20'), 1196.71, 'yearly, 2025-07-20: one day (39.45 x 1/12 = 3.29) recognized, 1196.71 deferred');
SELECT is(pg_temp.deferred('ry', '2025-07-31'), 1160.55, 'yearly, 2025-07-31: July recognized, 1160.55 deferred');
SELECT is(pg_temp.deferred('ry', '2025-12-31'), 657.53, 'yearly, 2025-12-31: 542.47 recognized, 657.53 deferred');
SELECT is(pg_temp.deferred('ry', '2026-02-14'), 509.58,
	'yearly, 2026-02-14: half of February (92.05 x 14/28 = 46.025 -> 46.03) recognized, 509.58 deferred');
SELECT is(pg_temp.deferred('ry', '2026-07-18'), 3.29, 'yearly, 2026-07-18: one day left (62.46 x 1/19 = 3.29)');
SELECT is(pg_temp.deferred('ry', '2026-07-19'), 0::numeric, 'yearly, 2026-07-19 (last day of service): all recognized');
SELECT is_empty($$SELECT * FROM deferred_revenue('2026-07-19') WHERE account_id = pg_temp.acct('ry')$$,
	'no row once nothing is deferred');
SELECT is(pg_temp.deferred('rv', '2019-01-10'), 98.46, '100.00 line, 2019-01-10: 33.85 x 1/22 = 1.54 recognized, 98.46 deferred');
SELECT is(pg_temp.deferred('rv', '2019-02-28'), 23.07, '100.00 line, 2019-02-28: March''s 23.07 deferred');
SELECT is(pg_temp.deferred('rv', '2020-10-15'), 215.44,
	'2020-10-15: the 2019 line done; 500.00 line: Aug, Sep and 15/31 of Oct (60.98) recognized, 215.44 deferred');
SELECT is(pg_temp.deferred('rj', '2019-01-10'), 985::numeric, 'JPY, 2019-01-10: 338 x 1/22 = 15 recognized, 985 deferred');
SELECT results_eq($$SELECT currency, amount FROM deferred_revenue('2019-02-10') WHERE account_id = pg_temp.acct('rj')$$,
	$$VALUES ('JPY', 508::numeric)$$, 'deferred_revenue is per account and currency: JPY 508 on 2019-02-10 (431 x 10/28 = 154 of Feb recognized)');

-- a voided document: deferred until its void date, never in revenue_by_month
SELECT is(pg_temp.deferred('rx', '2024-01-31'), 197.80, '300.00 over Q1 2024, 2024-01-31: 102.20 recognized, 197.80 deferred');
SELECT lives_ok($$SELECT void_invoice((SELECT invoice_id FROM doc WHERE key = 'void'), 'issued in error', '2024-02-10')$$,
	'void it on 2024-02-10');
SELECT is(pg_temp.deferred('rx', '2024-02-09'), 168.13, 'the day before its void date it is still deferred (95.60 x 9/29 = 29.67 of Feb recognized)');
SELECT is(pg_temp.deferred('rx', '2024-02-10'), 0::numeric, 'from its void date nothing is deferred');
SELECT is_empty($$SELECT * FROM pg_temp.revenue('rx')$$, 'a void document has no revenue in revenue_by_month');

------------------------------------------------------------------------------
-- Views on a small EUR scenario: 31.00/month for two months from 2022-03-01
-- and 365.00/year for one year from 2022-03-16 (1.00 a day); payments 50 and
-- 100, 10 refunded.  (Subscriptions here end, so later runs owe them nothing.)
------------------------------------------------------------------------------
INSERT INTO account (external_key, name, currency, bill_cycle_day) VALUES ('eu', 'Euro customer', 'EUR', NULL);
INSERT INTO subscription (account_id, price_id, start_date, end_date) VALUES
	(pg_temp.acct('eu'), pg_temp.price('m31eur'), '2022-03-01', '2022-05-01'),
	(pg_temp.acct('eu'), pg_temp.price('y365eur'), '2022-03-16', '2023-03-16');
SELECT isnt(pg_temp.run('2022-03-16'), NULL, 'run 2022-03-16');
SELECT isnt(pg_temp.run('2022-04-01'), NULL, 'run 2022-04-01');
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('eu'), 50, '2022-03-20', 'eu-1')$$, 'payment 50.00 on 2022-03-20');
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('eu'), 100, '2022-04-05', 'eu-2', auto_apply => false)$$,
	'payment 100.00 on 2022-04-05, not applied');
SELECT lives_ok($$SELECT refund(payment_id, amount => 10, refunded_on => '2022-04-20') FROM payment WHERE reference = 'eu-2'$$,
	'refund 10.00 of it on 2022-04-20');
SELECT results_eq($$SELECT period_month, currency, revenue FROM revenue_by_month WHERE currency = 'EUR' ORDER BY 1$$,
	$$VALUES ('2022-03-01'::date, 'EUR', 47.00), ('2022-04-01', 'EUR', 61.00), ('2022-05-01', 'EUR', 31.00),
			 ('2022-06-01', 'EUR', 30.00), ('2022-07-01', 'EUR', 31.00), ('2022-08-01', 'EUR', 31.00),
			 ('2022-09-01', 'EUR', 30.00), ('2022-10-01', 'EUR', 31.00), ('2022-11-01', 'EUR', 30.00),
			 ('2022-12-01', 'EUR', 31.00), ('2023-01-01', 'EUR', 31.00), ('2023-02-01', 'EUR', 28.00),
			 ('2023-03-01', 'EUR', 15.00)$$,
	'revenue_by_month: Mar 31 + 16, Apr 31 + 30, then 1.00 a day of the yearly plan to 2023-03-15');
SELECT results_eq($$SELECT period_month, mrr, subscriptions FROM mrr_by_month WHERE currency = 'EUR' ORDER BY 1 LIMIT 3$$,
	$$VALUES ('2022-03-01'::date, 47.00, 2::bigint), ('2022-04-01', 61.00, 2::bigint), ('2022-05-01', 31.00, 1::bigint)$$,
	'mrr_by_month: recurring revenue and the subscriptions contributing');
SELECT is((SELECT sum(mrr) FROM mrr_by_month WHERE currency = 'EUR'), 427.00, 'EUR MRR over all months: 31 + 31 + 365');
SELECT results_eq($$SELECT period_month, received, refunded, net_cash FROM cash_by_month WHERE currency = 'EUR' ORDER BY 1$$,
	$$VALUES ('2022-03-01'::date, 50.00, 0::numeric, 50.00), ('2022-04-01', 100.00, 10.00, 90.00)$$,
	'cash_by_month: March 50 received; April 100 received, 10 refunded, 90 net');
SELECT results_eq(
	$$SELECT document_number ~ '^INV-[0-9]{6}$', document_type, status, invoice_date, due_date, total, open_amount,
			 days_overdue, account_name
	  FROM invoice_report WHERE account_id = pg_temp.acct('eu') ORDER BY invoice_id$$,
	$$VALUES (true, 'invoice', 'posted', '2022-03-16'::date, '2022-04-15'::date, 396.00, 346.00,
			  CURRENT_DATE - date '2022-04-15', 'Euro customer'),
			 (true, 'invoice', 'posted', '2022-04-01'::date, '2022-05-01'::date, 31.00, 31.00,
			  CURRENT_DATE - date '2022-05-01', 'Euro customer')$$,
	'invoice_report: numbers, dates, totals, open amounts and days overdue today');

------------------------------------------------------------------------------
-- Invariants
------------------------------------------------------------------------------
SELECT is_empty(
	$$SELECT l.line_id, l.amount, sum(s.amount) FROM invoice_line l JOIN invoice i USING (account_id, invoice_id)
	  LEFT JOIN revenue_schedule s USING (account_id, line_id)
	  WHERE i.status <> 'draft' GROUP BY l.line_id, l.amount HAVING l.amount IS DISTINCT FROM sum(s.amount)$$,
	'every posted line''s schedule sums exactly to its amount');
SELECT is_empty($$SELECT * FROM revenue_schedule WHERE period_month <> date_trunc('month', period_month)$$,
	'period_month is always the first day of a month');
SELECT throws_ok($$SELECT * FROM deferred_revenue(NULL)$$, '22004', NULL, 'deferred_revenue(as_of => NULL): 22004, not an empty answer');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the revenue scenarios');

SELECT * FROM finish();
ROLLBACK;
