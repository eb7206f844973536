-- VECTORS.md "Proration", "Mid-period changes", "Pricing" and "Tax, dates",
-- end to end: data in with plain INSERTs, changes through the API, bills out
-- of billing.run_invoice_batch().  Every amount is compared with numeric
-- equality, every period as text.  Runs go forward in time (as a scheduler's
-- would), each scenario on its own account, asserted right after its run.
BEGIN;
\ir include/session.sql

SELECT plan(87);

\ir include/lookups.sql
-- the account's subscription (to the given price, if several)
CREATE FUNCTION pg_temp.sub(key text, price_code text DEFAULT NULL) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT s.subscription_id FROM billing.subscription s JOIN billing.price p USING (price_id)
	  WHERE s.account_id = pg_temp.acct(key) AND (price_code IS NULL OR p.code = price_code)
	  ORDER BY s.subscription_id LIMIT 1 $$;
\ir include/run.sql
-- kind, service period and amount of an account's lines, in document and line order
CREATE FUNCTION pg_temp.lines(key text)
	RETURNS TABLE (kind text, service_period text, amount numeric) LANGUAGE sql STABLE
AS $$ SELECT l.kind, l.service_period::text, l.amount FROM billing.invoice_line l
	  WHERE l.account_id = pg_temp.acct(key) ORDER BY l.invoice_id, l.line_number $$;

INSERT INTO product (code, name) VALUES ('plan', 'Plan'), ('setup', 'Setup fee');
-- recurring prices, all in advance, per unit (quantity 1)
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, interval_count, billing_timing,
				   pricing_model, unit_amount)
SELECT pr.product_id, v.code, 'USD', 'recurring', v.unit, v.cnt, 'in_advance', 'per_unit', v.amount
FROM product pr,
	 (VALUES ('m5', 'month', 1, 5), ('m10', 'month', 1, 10), ('m20', 'month', 1, 20), ('m30', 'month', 1, 30),
			 ('m90', 'month', 1, 90), ('m100', 'month', 1, 100), ('m1000', 'month', 1, 1000),
			 ('m5000', 'month', 1, 5000), ('y100', 'year', 1, 100), ('q100', 'month', 3, 100)) v(code, unit, cnt, amount)
WHERE pr.code = 'plan';
INSERT INTO price (product_id, code, currency, charge_type, pricing_model, unit_amount)
SELECT product_id, 'setup10', 'USD', 'one_time', 'flat', 10 FROM product WHERE code = 'setup';
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, interval_count, billing_timing,
				   pricing_model, unit_amount, proration)
SELECT pr.product_id, v.code, 'USD', 'recurring', v.unit, 1, 'in_advance', 'per_unit', v.amount, v.proration
FROM product pr, (VALUES ('m10_none', 'month', 10, 'none'), ('w7', 'week', 7, 'daily')) v(code, unit, amount, proration)
WHERE pr.code = 'plan';

------------------------------------------------------------------------------
-- Pricing (billing.price_amount)
------------------------------------------------------------------------------
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model,
				   unit_amount, package_size, tiers)
SELECT pr.product_id, v.code, v.currency, 'recurring', 'month', 'in_advance', v.model, v.unit_amount, v.package_size,
	   v.tiers::jsonb
FROM product pr,
	 (VALUES
		-- VECTORS: 1-250 @ 0.50, 251-500 @ 0.40, 501+ @ 0.30 (the last tier is open)
		('grad_a', 'USD', 'graduated', NULL, NULL,
		 '[{"up_to": 250, "unit_amount": 0.50}, {"up_to": 500, "unit_amount": 0.40}, {"up_to": null, "unit_amount": 0.30}]'),
		('vol_a', 'USD', 'volume', NULL, NULL,
		 '[{"up_to": 250, "unit_amount": 0.50}, {"up_to": 500, "unit_amount": 0.40}, {"up_to": null, "unit_amount": 0.30}]'),
		-- VECTORS: 1-10 @ 1.50, 11-110 @ 1.00, 111+ @ 0.50
		('grad_b', 'USD', 'graduated', NULL, NULL,
		 '[{"up_to": 10, "unit_amount": 1.50}, {"up_to": 110, "unit_amount": 1.00}, {"up_to": null, "unit_amount": 0.50}]'),
		('vol_b', 'USD', 'volume', NULL, NULL,
		 '[{"up_to": 10, "unit_amount": 1.50}, {"up_to": 110, "unit_amount": 1.00}, {"up_to": null, "unit_amount": 0.50}]'),
		-- tiers with flat fees
		('grad_fee', 'USD', 'graduated', NULL, NULL,
		 '[{"up_to": 10, "unit_amount": 1, "flat_amount": 5}, {"up_to": null, "unit_amount": 0.5, "flat_amount": 20}]'),
		('vol_fee', 'USD', 'volume', NULL, NULL,
		 '[{"up_to": 10, "unit_amount": 1, "flat_amount": 5}, {"up_to": null, "unit_amount": 0.5, "flat_amount": 20}]'),
		('flat49', 'USD', 'flat', 49.99, NULL, NULL),
		('pack10', 'USD', 'package', 5.00, 10, NULL),
		('unit6', 'USD', 'per_unit', 0.123456, NULL, NULL),
		('unit_jpy', 'JPY', 'per_unit', 0.5, NULL, NULL)) v(code, currency, model, unit_amount, package_size, tiers)
WHERE pr.code = 'plan';

SELECT is(price_amount(pg_temp.price('grad_a'), 300), 145.00, 'graduated 250 @ 0.50 + 50 @ 0.40 = 145.00');
SELECT is(price_amount(pg_temp.price('vol_a'), 300), 120.00, 'volume 300 @ 0.40 = 120.00');
SELECT is(price_amount(pg_temp.price('grad_b'), 111), 115.50, 'graduated 10 @ 1.50 + 100 @ 1.00 + 1 @ 0.50 = 115.50');
SELECT is(price_amount(pg_temp.price('vol_b'), 111), 55.50, 'volume 111 @ 0.50 = 55.50');
SELECT is(price_amount(pg_temp.price('grad_a'), 250), 125.00, 'graduated: a tier''s upper bound is inclusive');
SELECT is(price_amount(pg_temp.price('vol_a'), 251), 100.40, 'volume: 251 falls in the second tier');
SELECT is(price_amount(pg_temp.price('grad_fee'), 11), 35.50, 'graduated with flat fees: 5 + 10 x 1 + 20 + 1 x 0.5');
SELECT is(price_amount(pg_temp.price('vol_fee'), 11), 25.50, 'volume with flat fee: 20 + 11 x 0.5');
SELECT is(price_amount(pg_temp.price('vol_fee'), 10), 15.00, 'volume with flat fee, first tier: 5 + 10 x 1');
SELECT is(price_amount(pg_temp.price('flat49'), 1), 49.99, 'flat: 49.99 for one');
SELECT is(price_amount(pg_temp.price('flat49'), 7), 49.99, 'flat: 49.99 for any positive quantity');
SELECT is(ARRAY[price_amount(pg_temp.price('pack10'), 1), price_amount(pg_temp.price('pack10'), 10),
				price_amount(pg_temp.price('pack10'), 11), price_amount(pg_temp.price('pack10'), 25)],
		  ARRAY[5.00, 5.00, 10.00, 15.00]::numeric[], 'package of 10 @ 5.00: ceil(quantity / 10) packages');
SELECT is(price_amount(pg_temp.price('unit6'), 1000), 123.46, 'per unit 0.123456 x 1000 = 123.456 rounds to 123.46');
SELECT is(price_amount(pg_temp.price('unit_jpy'), 3), 2::numeric, 'JPY 0.5 x 3 = 1.5 rounds half away from zero to 2');
SELECT is((SELECT array_agg(price_amount(p.price_id, 0) ORDER BY p.code) FROM price p
		   WHERE p.code IN ('grad_a', 'vol_a', 'grad_fee', 'vol_fee', 'flat49', 'pack10', 'unit6', 'm10')),
		  ARRAY[0, 0, 0, 0, 0, 0, 0, 0]::numeric[],
		  'quantity 0 costs 0 in every model, flat fees included (flat, graduated, volume, package, per_unit)');

------------------------------------------------------------------------------
-- Proration and mid-period changes, in date order
------------------------------------------------------------------------------

-- 10/month 2010-06-17 -> 2010-07-25, cycle day 17, target 2010-07-17: 10.00 + 8/31 (2.58)
INSERT INTO account (external_key, name, currency, bill_cycle_day) VALUES ('p5', 'Proration 5', 'USD', 17);
INSERT INTO subscription (account_id, price_id, start_date, end_date)
VALUES (pg_temp.acct('p5'), pg_temp.price('m10'), '2010-06-17', '2010-07-25');
SELECT is((pg_temp.run('2010-07-17')).invoices, 1, 'run 2010-07-17: one document');
SELECT results_eq($$SELECT * FROM pg_temp.lines('p5')$$,
	$$VALUES ('recurring', '[2010-06-17,2010-07-17)', 10.00), ('recurring', '[2010-07-17,2010-07-25)', 2.58)$$,
	'10/month 2010-06-17..2010-07-25, cycle day 17: 10.00 + trailing stub 8/31 = 2.58');
SELECT is((SELECT total FROM invoice WHERE account_id = pg_temp.acct('p5')), 12.58, 'the invoice totals 12.58');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2010-06-17..2010-07-25 vector');

-- 10/month 2011-01-01 -> 2011-01-15, cycle day 1: 14/31 = 4.52 at any target >= start
-- and (Mid-period changes) one-time 10 + recurring 5/month from 2011-01-01: first invoice 15.00
INSERT INTO account (external_key, name, currency, bill_cycle_day) VALUES ('p7', 'Proration 7', 'USD', 1);
INSERT INTO subscription (account_id, price_id, start_date, end_date)
VALUES (pg_temp.acct('p7'), pg_temp.price('m10'), '2011-01-01', '2011-01-15');
INSERT INTO account (external_key, name, currency) VALUES ('m6', 'One-time plus recurring', 'USD');
INSERT INTO subscription (account_id, price_id, start_date) VALUES
	(pg_temp.acct('m6'), pg_temp.price('setup10'), '2011-01-01'),
	(pg_temp.acct('m6'), pg_temp.price('m5'), '2011-01-01');
SELECT is((pg_temp.run('2011-01-01')).invoices, 2, 'run 2011-01-01: two documents');
SELECT results_eq($$SELECT * FROM pg_temp.lines('p7')$$,
	$$VALUES ('recurring', '[2011-01-01,2011-01-15)', 4.52)$$,
	'10/month 2011-01-01..2011-01-15, cycle day 1: 14/31 = 4.52');
SELECT results_eq(
	$$SELECT l.kind, l.service_period::text, l.amount FROM invoice_line l
	  WHERE l.account_id = pg_temp.acct('m6') ORDER BY l.line_number$$,
	$$VALUES ('one_time', NULL::text, 10.00), ('recurring', '[2011-01-01,2011-02-01)', 5.00)$$,
	'one-time 10 + recurring 5/month: a one_time line without period and the first month');
SELECT results_eq(
	$$SELECT document_type, document_number, invoice_date, due_date, total FROM invoice WHERE account_id = pg_temp.acct('m6')$$,
	$$VALUES ('invoice', 'INV-000003', '2011-01-01'::date, '2011-01-31'::date, 15.00)$$,
	'first invoice of one-time + recurring: 15.00, due after the default 30 days');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2011-01-01 run');

-- 2011-02-01: leading stubs against monthly, yearly and quarterly cycles on day 13
INSERT INTO account (external_key, name, currency, bill_cycle_day) VALUES
	('p1', 'Proration 1', 'USD', 13), ('p9', 'Proration 9', 'USD', 13), ('p10', 'Proration 10', 'USD', 13),
	('pn', 'Proration none', 'USD', 13);
INSERT INTO subscription (account_id, price_id, start_date) VALUES
	(pg_temp.acct('p1'), pg_temp.price('m10'), '2011-02-01'),
	(pg_temp.acct('p9'), pg_temp.price('y100'), '2011-02-01'),
	(pg_temp.acct('p10'), pg_temp.price('q100'), '2011-02-01'),
	(pg_temp.acct('pn'), pg_temp.price('m10_none'), '2011-02-01');
SELECT is((pg_temp.run('2011-02-01')).invoices, 5, 'run 2011-02-01: four new accounts and the one-time + recurring account');
SELECT results_eq($$SELECT * FROM pg_temp.lines('p1')$$,
	$$VALUES ('recurring', '[2011-02-01,2011-02-13)', 3.87)$$,
	'10/month from 2011-02-01, cycle day 13, target 2011-02-01: stub 12/31 = 3.87');
SELECT is((SELECT cycle_period::text FROM invoice_line WHERE account_id = pg_temp.acct('p1')), '[2011-01-13,2011-02-13)',
	'the leading stub is measured against the cycle period ending on the cycle day');
SELECT results_eq($$SELECT * FROM pg_temp.lines('p9')$$,
	$$VALUES ('recurring', '[2011-02-01,2011-02-13)', 3.29)$$,
	'100/year from 2011-02-01, cycle day 13: stub 12/365 = 3.29');
SELECT results_eq($$SELECT * FROM pg_temp.lines('p10')$$,
	$$VALUES ('recurring', '[2011-02-01,2011-02-13)', 13.04)$$,
	'100/quarter from 2011-02-01, cycle day 13: stub 12/92 = 13.04');
SELECT results_eq($$SELECT * FROM pg_temp.lines('pn')$$,
	$$VALUES ('recurring', '[2011-02-01,2011-02-13)', 10.00)$$,
	'proration none: the leading stub is billed as a full period');
SELECT results_eq(
	$$SELECT i.total, l.kind, l.service_period::text FROM invoice i JOIN invoice_line l USING (account_id, invoice_id)
	  WHERE i.account_id = pg_temp.acct('m6') AND i.invoice_date = '2011-02-01'$$,
	$$VALUES (5.00, 'recurring', '[2011-02-01,2011-03-01)')$$,
	'one-time + recurring, next month: 5.00, the one-time charge not again');
SELECT results_eq($$SELECT * FROM pg_temp.lines('p7')$$,
	$$VALUES ('recurring', '[2011-01-01,2011-01-15)', 4.52)$$,
	'the ended 2011-01-01..2011-01-15 subscription is not billed again');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2011-02-01 run');

-- 2011-02-13: 12/31 + 1, once billed in two runs (p1), once in one (p2)
INSERT INTO account (external_key, name, currency, bill_cycle_day) VALUES ('p2', 'Proration 2', 'USD', 13);
INSERT INTO subscription (account_id, price_id, start_date) VALUES (pg_temp.acct('p2'), pg_temp.price('m10'), '2011-02-01');
SELECT isnt(pg_temp.run('2011-02-13'), NULL, 'run 2011-02-13');
SELECT results_eq($$SELECT * FROM pg_temp.lines('p2')$$,
	$$VALUES ('recurring', '[2011-02-01,2011-02-13)', 3.87), ('recurring', '[2011-02-13,2011-03-13)', 10.00)$$,
	'10/month from 2011-02-01, cycle day 13, target 2011-02-13 in one run: 3.87 + 10.00 (a period starting on the target date is billed)');
SELECT results_eq($$SELECT * FROM pg_temp.lines('p1')$$, $$SELECT * FROM pg_temp.lines('p2')$$,
	'the same vector billed in two runs gives the same lines');
SELECT is((SELECT count(*) FROM invoice WHERE account_id = pg_temp.acct('p2')), 1::bigint,
	'a catch-up run puts every due period on one document');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2011-02-13 run');

-- 10/month 2011-01-01 -> 2011-02-27, cycle day 15, target 2011-02-26: 14/31 + 1 + 12/28
INSERT INTO account (external_key, name, currency, bill_cycle_day) VALUES ('p6', 'Proration 6', 'USD', 15);
INSERT INTO subscription (account_id, price_id, start_date, end_date)
VALUES (pg_temp.acct('p6'), pg_temp.price('m10'), '2011-01-01', '2011-02-27');
SELECT isnt(pg_temp.run('2011-02-26'), NULL, 'run 2011-02-26');
SELECT results_eq($$SELECT * FROM pg_temp.lines('p6')$$,
	$$VALUES ('recurring', '[2011-01-01,2011-01-15)', 4.52), ('recurring', '[2011-01-15,2011-02-15)', 10.00),
			 ('recurring', '[2011-02-15,2011-02-27)', 4.29)$$,
	'10/month 2011-01-01..2011-02-27, cycle day 15: 14/31 + 1 + 12/28 = 4.52 + 10.00 + 4.29');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2011-02-26 run');

-- 10/month 2011-02-01 -> 2011-04-13, cycle day 13, target 2011-04-10: 12/31 + 2, no trailing stub
INSERT INTO account (external_key, name, currency, bill_cycle_day) VALUES ('p4', 'Proration 4', 'USD', 13);
INSERT INTO subscription (account_id, price_id, start_date, end_date)
VALUES (pg_temp.acct('p4'), pg_temp.price('m10'), '2011-02-01', '2011-04-13');
SELECT isnt(pg_temp.run('2011-04-10'), NULL, 'run 2011-04-10');
SELECT results_eq($$SELECT * FROM pg_temp.lines('p4')$$,
	$$VALUES ('recurring', '[2011-02-01,2011-02-13)', 3.87), ('recurring', '[2011-02-13,2011-03-13)', 10.00),
			 ('recurring', '[2011-03-13,2011-04-13)', 10.00)$$,
	'10/month 2011-02-01..2011-04-13, cycle day 13, target 2011-04-10: 3.87 + 2 x 10.00');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2011-04-10 run');

-- 10/month from 2011-02-01, cycle day 13, target 2011-04-13: 12/31 + 3
INSERT INTO account (external_key, name, currency, bill_cycle_day) VALUES ('p3', 'Proration 3', 'USD', 13);
INSERT INTO subscription (account_id, price_id, start_date) VALUES (pg_temp.acct('p3'), pg_temp.price('m10'), '2011-02-01');
SELECT isnt(pg_temp.run('2011-04-13'), NULL, 'run 2011-04-13');
SELECT results_eq($$SELECT * FROM pg_temp.lines('p3')$$,
	$$VALUES ('recurring', '[2011-02-01,2011-02-13)', 3.87), ('recurring', '[2011-02-13,2011-03-13)', 10.00),
			 ('recurring', '[2011-03-13,2011-04-13)', 10.00), ('recurring', '[2011-04-13,2011-05-13)', 10.00)$$,
	'10/month from 2011-02-01, cycle day 13, target 2011-04-13: 3.87 + 3 x 10.00');
SELECT results_eq($$SELECT * FROM pg_temp.lines('p4')$$,
	$$VALUES ('recurring', '[2011-02-01,2011-02-13)', 3.87), ('recurring', '[2011-02-13,2011-03-13)', 10.00),
			 ('recurring', '[2011-03-13,2011-04-13)', 10.00)$$,
	'ending on a cycle date (2011-04-13): no trailing stub, nothing billed once the end has come');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2011-04-13 run');

-- Mid-period changes in September 2011 (cycle day 1 from the start day)
-- m3: 10/month billed Sep 2011, cancelled 2011-09-16 -> -5.00
-- m4: 10/month -> 20/month effective 2011-09-16 -> -5.00 + 10.00
INSERT INTO account (external_key, name, currency) VALUES ('m3', 'Cancelled mid-period', 'USD'), ('m4', 'Upgraded mid-period', 'USD');
INSERT INTO subscription (account_id, price_id, start_date) VALUES
	(pg_temp.acct('m3'), pg_temp.price('m10'), '2011-09-01'),
	(pg_temp.acct('m4'), pg_temp.price('m10'), '2011-09-01');
SELECT isnt(pg_temp.run('2011-09-01'), NULL, 'run 2011-09-01');
SELECT results_eq($$SELECT * FROM pg_temp.lines('m3') UNION ALL SELECT * FROM pg_temp.lines('m4')$$,
	$$VALUES ('recurring', '[2011-09-01,2011-10-01)', 10.00), ('recurring', '[2011-09-01,2011-10-01)', 10.00)$$,
	'September 2011 billed in advance for both');
SELECT lives_ok($$SELECT billing.cancel_subscription(pg_temp.sub('m3'), '2011-09-16')$$, 'cancel effective 2011-09-16');
SELECT lives_ok($$SELECT billing.change_subscription(pg_temp.sub('m4'), '2011-09-16', price_id => pg_temp.price('m20'))$$,
	'change to 20/month effective 2011-09-16');
SELECT isnt(pg_temp.run('2011-09-16'), NULL, 'run 2011-09-16');
SELECT results_eq(
	$$SELECT l.kind, l.service_period::text, l.amount FROM invoice_line l JOIN invoice i USING (account_id, invoice_id)
	  WHERE l.account_id = pg_temp.acct('m3') AND i.invoice_date = '2011-09-16'$$,
	$$VALUES ('proration', '[2011-09-16,2011-10-01)', -5.00)$$,
	'cancelled 2011-09-16: -5.00 for the unused 15/30');
SELECT results_eq(
	$$SELECT document_type, document_number, due_date, subtotal, total FROM invoice
	  WHERE account_id = pg_temp.acct('m3') AND invoice_date = '2011-09-16'$$,
	$$VALUES ('credit_note', 'CN-000001', NULL::date, -5.00, -5.00)$$,
	'a net credit is a credit note, without due date, first of its series');
SELECT results_eq(
	$$SELECT l.kind, l.service_period::text, l.amount FROM invoice_line l JOIN invoice i USING (account_id, invoice_id)
	  WHERE l.account_id = pg_temp.acct('m4') AND i.invoice_date = '2011-09-16' ORDER BY l.line_number$$,
	$$VALUES ('proration', '[2011-09-16,2011-10-01)', -5.00), ('proration', '[2011-09-16,2011-10-01)', 10.00)$$,
	'10 -> 20/month from day 16 of a 30-day period: credit -5.00, charge +10.00, both over [effective date, period end)');
SELECT results_eq(
	$$SELECT document_type, total FROM invoice WHERE account_id = pg_temp.acct('m4') AND invoice_date = '2011-09-16'$$,
	$$VALUES ('invoice', 5.00)$$, 'the upgrade nets 5.00 on an invoice');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the September 2011 changes');

-- m1: 10/month from 2011-09-01, target 2011-10-03 -> 10.00 + 10.00
-- m2: the same with cycle day 15 (the subscription's, over the account's 1) -> 4.52 + 10.00
INSERT INTO account (external_key, name, currency, bill_cycle_day) VALUES ('m1', 'Two months', 'USD', NULL), ('m2', 'Cycle day 15', 'USD', 1);
INSERT INTO subscription (account_id, price_id, start_date, bill_cycle_day) VALUES
	(pg_temp.acct('m1'), pg_temp.price('m10'), '2011-09-01', NULL),
	(pg_temp.acct('m2'), pg_temp.price('m10'), '2011-09-01', 15);
SELECT isnt(pg_temp.run('2011-10-03'), NULL, 'run 2011-10-03');
SELECT results_eq($$SELECT * FROM pg_temp.lines('m1')$$,
	$$VALUES ('recurring', '[2011-09-01,2011-10-01)', 10.00), ('recurring', '[2011-10-01,2011-11-01)', 10.00)$$,
	'10/month from 2011-09-01, target 2011-10-03: two lines, 10.00 + 10.00');
SELECT results_eq($$SELECT * FROM pg_temp.lines('m2')$$,
	$$VALUES ('recurring', '[2011-09-01,2011-09-15)', 4.52), ('recurring', '[2011-09-15,2011-10-15)', 10.00)$$,
	'10/month, cycle day 15, from 2011-09-01, target 2011-10-03: 4.52 + 10.00');
SELECT results_eq(
	$$SELECT l.kind, l.service_period::text, l.amount FROM invoice_line l JOIN invoice i USING (account_id, invoice_id)
	  WHERE l.account_id = pg_temp.acct('m4') AND i.invoice_date = '2011-10-03'$$,
	$$VALUES ('recurring', '[2011-10-01,2011-11-01)', 20.00)$$,
	'after the upgrade, October is billed at the new 20.00');
SELECT is((SELECT count(*) FROM invoice WHERE account_id = pg_temp.acct('m3') AND invoice_date = '2011-10-03'), 0::bigint,
	'the cancelled subscription gets nothing for October');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2011-10-03 run');

-- m5: 30/month from 2011-11-01, upgraded to 100/month effective 2011-11-16 -> -15.00 + 50.00 (due 35.00)
INSERT INTO account (external_key, name, currency) VALUES ('m5', 'Upgrade in November', 'USD');
INSERT INTO subscription (account_id, price_id, start_date) VALUES (pg_temp.acct('m5'), pg_temp.price('m30'), '2011-11-01');
SELECT isnt(pg_temp.run('2011-11-01'), NULL, 'run 2011-11-01');
SELECT lives_ok($$SELECT billing.change_subscription(pg_temp.sub('m5'), '2011-11-16', price_id => pg_temp.price('m100'))$$,
	'upgrade to 100/month effective 2011-11-16');
SELECT isnt(pg_temp.run('2011-11-16'), NULL, 'run 2011-11-16');
SELECT results_eq($$SELECT * FROM pg_temp.lines('m5')$$,
	$$VALUES ('recurring', '[2011-11-01,2011-12-01)', 30.00), ('proration', '[2011-11-16,2011-12-01)', -15.00),
			 ('proration', '[2011-11-16,2011-12-01)', 50.00)$$,
	'30 -> 100/month with 15 of 30 days left: -15.00 + 50.00');
SELECT results_eq(
	$$SELECT document_type, invoice_date, due_date, total FROM invoice WHERE account_id = pg_temp.acct('m5') ORDER BY invoice_id$$,
	$$VALUES ('invoice', '2011-11-01'::date, '2011-12-01'::date, 30.00), ('invoice', '2011-11-16'::date, '2011-12-16'::date, 35.00)$$,
	'the upgrade invoice is due 35.00');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the November 2011 upgrade');

-- 10/month 2012-02-01 -> 2012-02-15, cycle day 1, target 2012-02-19: 14/29 = 4.83 (leap February)
INSERT INTO account (external_key, name, currency, bill_cycle_day) VALUES ('p8', 'Proration 8', 'USD', 1);
INSERT INTO subscription (account_id, price_id, start_date, end_date)
VALUES (pg_temp.acct('p8'), pg_temp.price('m10'), '2012-02-01', '2012-02-15');
SELECT isnt(pg_temp.run('2012-02-19'), NULL, 'run 2012-02-19');
SELECT results_eq($$SELECT * FROM pg_temp.lines('p8')$$,
	$$VALUES ('recurring', '[2012-02-01,2012-02-15)', 4.83)$$,
	'10/month 2012-02-01..2012-02-15: 14/29 = 4.83');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2012-02-19 run');

------------------------------------------------------------------------------
-- Tax, dates (run 2018-03-01)
------------------------------------------------------------------------------
INSERT INTO tax_rate (region, tax_code, name, rate, priority) VALUES
	('TEN', NULL, 'VAT', 0.10, 0),
	('CMP', NULL, 'State', 0.15, 0),
	('CMP', NULL, 'Federal', 0.20, 1);
INSERT INTO account (external_key, name, currency, tax_region, payment_terms_days) VALUES
	('t1', '1000 at 10 %', 'USD', 'TEN', 30),
	('t2', '5000 at 15 % and 20 %', 'USD', 'CMP', 30),
	('t3', 'Terms 45', 'USD', NULL, 45);
INSERT INTO subscription (account_id, price_id, start_date) VALUES
	(pg_temp.acct('t1'), pg_temp.price('m1000'), '2018-03-01'),
	(pg_temp.acct('t2'), pg_temp.price('m5000'), '2018-03-01'),
	(pg_temp.acct('t3'), pg_temp.price('m100'), '2018-03-01');
SELECT isnt(pg_temp.run('2018-03-01'), NULL, 'run 2018-03-01');
SELECT results_eq(
	$$SELECT subtotal, tax_total, total FROM invoice WHERE account_id = pg_temp.acct('t1')$$,
	$$VALUES (1000.00, 100.00, 1100.00)$$, '1000 at 10 %: tax 100.00');
SELECT is((SELECT tax_amount FROM invoice_line WHERE account_id = pg_temp.acct('t1')), 100.00, 'the line carries the tax');
SELECT results_eq(
	$$SELECT subtotal, tax_total, total FROM invoice WHERE account_id = pg_temp.acct('t2')$$,
	$$VALUES (5000.00, 1900.00, 6900.00)$$, '5000 at 15 % (priority 0) then 20 % (priority 1): 750.00 + 1150.00 = 1900.00');
SELECT results_eq(
	$$SELECT document_type, invoice_date, due_date, tax_total FROM invoice WHERE account_id = pg_temp.acct('t3')$$,
	$$VALUES ('invoice', '2018-03-01'::date, '2018-04-15'::date, 0::numeric)$$,
	'invoice 2018-03-01 with 45 days terms is due 2018-04-15; no tax region, no tax');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2018-03-01 run');

------------------------------------------------------------------------------
-- 90/month 2025-03-28 -> 2026-02-05, cycle day 5, target 2026-02-05: 8/31 + 10 = 923.23
------------------------------------------------------------------------------
INSERT INTO account (external_key, name, currency, bill_cycle_day) VALUES ('p11', 'Proration 11', 'USD', 5);
INSERT INTO subscription (account_id, price_id, start_date, end_date)
VALUES (pg_temp.acct('p11'), pg_temp.price('m90'), '2025-03-28', '2026-02-05');
-- and two cycles end to end (VECTORS.md "Billing periods"): weekly from a Friday,
-- ignoring the account's cycle day; monthly on day 31, clamped to February
INSERT INTO account (external_key, name, currency, bill_cycle_day) VALUES ('wk', 'Weekly', 'USD', 15), ('eom', 'Day 31', 'USD', 31);
INSERT INTO subscription (account_id, price_id, start_date) VALUES
	(pg_temp.acct('wk'), pg_temp.price('w7'), '2026-01-09'),
	(pg_temp.acct('eom'), pg_temp.price('m10'), '2025-12-31');
SELECT isnt(pg_temp.run('2026-02-05'), NULL, 'run 2026-02-05');
SELECT results_eq($$SELECT * FROM pg_temp.lines('wk')$$,
	$$VALUES ('recurring', '[2026-01-09,2026-01-16)', 7.00), ('recurring', '[2026-01-16,2026-01-23)', 7.00),
			 ('recurring', '[2026-01-23,2026-01-30)', 7.00), ('recurring', '[2026-01-30,2026-02-06)', 7.00)$$,
	'weekly from Friday 2026-01-09: four weeks started by 2026-02-05, no stub for the account''s cycle day 15');
SELECT results_eq($$SELECT * FROM pg_temp.lines('eom')$$,
	$$VALUES ('recurring', '[2025-12-31,2026-01-31)', 10.00), ('recurring', '[2026-01-31,2026-02-28)', 10.00)$$,
	'cycle day 31: 2025-12-31, 2026-01-31, then clamped to 2026-02-28');
SELECT results_eq(
	$$SELECT * FROM pg_temp.lines('p11') LIMIT 2$$,
	$$VALUES ('recurring', '[2025-03-28,2025-04-05)', 23.23), ('recurring', '[2025-04-05,2025-05-05)', 90.00)$$,
	'90/month from 2025-03-28, cycle day 5: stub 8/31 = 23.23, then full months');
SELECT results_eq(
	$$SELECT count(*), sum(amount), min(service_period::text) FILTER (WHERE amount = 90),
			 max(service_period::text) FILTER (WHERE amount = 90)
	  FROM pg_temp.lines('p11')$$,
	$$VALUES (11::bigint, 923.23, '[2025-04-05,2025-05-05)', '[2026-01-05,2026-02-05)')$$,
	'... 10 full months 2025-04-05..2026-02-05: 23.23 + 10 x 90.00 = 923.23, no period after the end');
SELECT is((SELECT total FROM invoice WHERE account_id = pg_temp.acct('p11')), 923.23, 'one invoice of 923.23');
SELECT results_eq($$SELECT * FROM pg_temp.lines('p7')$$,
	$$VALUES ('recurring', '[2011-01-01,2011-01-15)', 4.52)$$,
	'fifteen years on, the 2011-01-01..2011-01-15 subscription still holds 4.52 only');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2026-02-05 run');

SELECT * FROM finish();
ROLLBACK;
