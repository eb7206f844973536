-- Usage (dated in the account's time zone, rated over the period, late usage
-- as a difference), tax (priorities, tax codes, exemption, validity, negative
-- lines), billing holds and next_bill_date_override, end to end through
-- billing.run_invoice_batch().  One 2026 timeline, runs in date order.
BEGIN;
\ir include/session.sql

SELECT plan(56);

\ir include/lookups.sql
CREATE FUNCTION pg_temp.sub(key text, price_code text DEFAULT NULL) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT s.subscription_id FROM billing.subscription s
	  WHERE s.account_id = pg_temp.acct(key) AND (price_code IS NULL OR s.price_id = pg_temp.price(price_code))
	  ORDER BY s.subscription_id LIMIT 1 $$;
\ir include/run.sql
-- an account's lines on documents dated on_date (all when NULL)
CREATE FUNCTION pg_temp.lines(key text, on_date date DEFAULT NULL)
	RETURNS TABLE (price text, kind text, service_period text, quantity numeric, amount numeric, tax_amount numeric)
	LANGUAGE sql STABLE
AS $$ SELECT p.code, l.kind, l.service_period::text, l.quantity, l.amount, l.tax_amount
	  FROM billing.invoice_line l
	  JOIN billing.invoice i ON i.account_id = l.account_id AND i.invoice_id = l.invoice_id
	  LEFT JOIN billing.price p ON p.price_id = l.price_id
	  WHERE l.account_id = pg_temp.acct(key) AND (on_date IS NULL OR i.invoice_date = on_date)
	  ORDER BY l.invoice_id, l.line_number $$;
CREATE FUNCTION pg_temp.docs(key text, on_date date DEFAULT NULL)
	RETURNS TABLE (document_type text, invoice_date date, due_date date, subtotal numeric, tax_total numeric, total numeric)
	LANGUAGE sql STABLE
AS $$ SELECT i.document_type, i.invoice_date, i.due_date, i.subtotal, i.tax_total, i.total FROM billing.invoice i
	  WHERE i.account_id = pg_temp.acct(key) AND (on_date IS NULL OR i.invoice_date = on_date)
	  ORDER BY i.invoice_id $$;

INSERT INTO product (code, name, tax_code) VALUES
	('plan', 'Plan', NULL), ('meter', 'API calls', NULL), ('book', 'E-book', 'reduced'), ('digital', 'Digital service', 'digital');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT pr.product_id, v.code, 'USD', 'recurring', 'month', v.timing, 'per_unit', v.amount
FROM (VALUES ('plan', 'm10', 'in_advance', 10), ('plan', 'm20', 'in_advance', 20), ('plan', 'a10', 'in_arrears', 10),
			 ('plan', 'm1000', 'in_advance', 1000), ('plan', 'm5000', 'in_advance', 5000),
			 ('book', 'b100', 'in_advance', 100), ('digital', 'd100', 'in_advance', 100)) v(product, code, timing, amount)
JOIN product pr ON pr.code = v.product;
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT pr.product_id, v.code, v.currency, 'recurring', 'month', 'in_advance', 'per_unit', v.amount
FROM product pr, (VALUES ('m1000jpy', 'JPY', 1000), ('m10eur', 'EUR', 10)) v(code, currency, amount)
WHERE pr.code = 'plan';
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount, tiers)
SELECT pr.product_id, v.code, 'USD', 'usage', 'month', 'in_arrears', v.model, v.unit_amount, v.tiers::jsonb
FROM product pr,
	 (VALUES ('u1', 'per_unit', 1.00, NULL),
			 ('ugrad', 'graduated', NULL,
			  '[{"up_to": 250, "unit_amount": 0.50}, {"up_to": 500, "unit_amount": 0.40}, {"up_to": null, "unit_amount": 0.30}]'),
			 ('uvol', 'volume', NULL,
			  '[{"up_to": 250, "unit_amount": 0.50}, {"up_to": 500, "unit_amount": 0.40}, {"up_to": null, "unit_amount": 0.30}]'))
	 v(code, model, unit_amount, tiers)
WHERE pr.code = 'meter';
INSERT INTO tax_rate (region, tax_code, name, rate, priority, valid_from, valid_to) VALUES
	('CMP', NULL, 'State', 0.15, 0, '-infinity', NULL),
	('CMP', NULL, 'Federal', 0.20, 1, '-infinity', NULL),
	('ADD', NULL, 'State', 0.05, 0, '-infinity', NULL),
	('ADD', NULL, 'City', 0.03, 0, '-infinity', NULL),
	('R1', NULL, 'VAT', 0.10, 0, '-infinity', NULL),
	('R1', 'reduced', 'VAT reduced', 0.05, 0, '-infinity', NULL),
	('VAL', NULL, 'Old VAT', 0.10, 0, '-infinity', '2026-03-01'),
	('VAL', NULL, 'New VAT', 0.20, 0, '2026-03-01', NULL);

INSERT INTO account (external_key, name, currency, timezone, tax_region, tax_exempt, billing_hold) VALUES
	('tz', 'Berlin usage', 'USD', 'Europe/Berlin', NULL, false, false),
	('utc', 'UTC usage', 'USD', 'UTC', NULL, false, false),
	('tiered', 'Tiered usage', 'USD', 'UTC', NULL, false, false),
	('tx_cmp', 'Compound tax', 'USD', 'UTC', 'CMP', false, false),
	('tx_add', 'Added tax', 'USD', 'UTC', 'ADD', false, false),
	('tx_code', 'Tax codes', 'USD', 'UTC', 'R1', false, false),
	('tx_ex', 'Exempt', 'USD', 'UTC', 'R1', true, false),
	('tx_val', 'Rate change', 'USD', 'UTC', 'VAL', false, false),
	('tx_neg', 'Negative tax', 'USD', 'UTC', 'R1', false, false),
	('h_acct', 'Account on hold', 'USD', 'UTC', NULL, false, true),
	('h_sub', 'Subscription on hold', 'USD', 'UTC', NULL, false, false),
	('ov_adv', 'Override in advance', 'USD', 'UTC', NULL, false, false),
	('ov_arr', 'Override in arrears', 'USD', 'UTC', NULL, false, false),
	('jpy', 'Yen', 'JPY', 'UTC', 'R1', false, false),
	('multi', 'Two currencies', 'USD', 'UTC', NULL, false, false);
UPDATE account SET bill_cycle_day = 1 WHERE external_key = 'jpy';
INSERT INTO subscription (account_id, price_id, start_date, billing_hold, next_bill_date_override)
SELECT pg_temp.acct(v.key), pg_temp.price(v.price), v.start_date::date, v.hold, v.override::date
FROM (VALUES ('tz', 'u1', '2026-01-01', false, NULL), ('utc', 'u1', '2026-01-01', false, NULL),
			 ('tiered', 'ugrad', '2026-01-01', false, NULL), ('tiered', 'uvol', '2026-01-01', false, NULL),
			 ('tx_cmp', 'm5000', '2026-02-01', false, NULL), ('tx_add', 'm1000', '2026-02-01', false, NULL),
			 ('tx_code', 'm1000', '2026-02-01', false, NULL), ('tx_code', 'b100', '2026-02-01', false, NULL),
			 ('tx_code', 'd100', '2026-02-01', false, NULL), ('tx_ex', 'm1000', '2026-02-01', false, NULL),
			 ('tx_val', 'm1000', '2026-02-01', false, NULL), ('tx_neg', 'm1000', '2026-03-01', false, NULL),
			 ('h_acct', 'm10', '2026-01-01', false, NULL),
			 ('h_sub', 'm10', '2026-01-01', true, NULL), ('h_sub', 'm20', '2026-01-01', false, NULL),
			 ('ov_adv', 'm10', '2026-01-01', false, '2026-01-10'),
			 ('ov_arr', 'a10', '2026-01-01', false, NULL),
			 ('jpy', 'm1000jpy', '2026-01-20', false, NULL),
			 ('multi', 'm10', '2026-02-01', false, NULL), ('multi', 'm10eur', '2026-02-01', false, NULL)) v(key, price, start_date, hold, override);
UPDATE subscription SET next_bill_date_override = '2026-02-10' WHERE subscription_id = pg_temp.sub('ov_arr');

-- Usage: instants become dates in the account's time zone
INSERT INTO usage_record (account_id, subscription_id, quantity, occurred_at, idempotency_key)
SELECT pg_temp.acct(k.key), pg_temp.sub(k.key), v.quantity, v.occurred_at::timestamptz, v.idem
FROM (VALUES ('tz'), ('utc')) k(key),
	 (VALUES (7, '2025-12-31 23:30+00', 'a'), (5, '2026-01-31 22:30+00', 'b'), (3, '2026-01-31 23:30+00', 'c')) v(quantity, occurred_at, idem);
INSERT INTO usage_record (account_id, subscription_id, quantity, occurred_at)
SELECT s.account_id, s.subscription_id, 150, v.occurred_at::timestamptz
FROM subscription s, (VALUES ('2026-01-10 12:00+00'), ('2026-01-20 12:00+00')) v(occurred_at)
WHERE s.account_id = pg_temp.acct('tiered');
SELECT results_eq(
	$$SELECT a.external_key, u.idempotency_key, u.usage_date FROM usage_record u JOIN account a USING (account_id)
	  WHERE u.idempotency_key IS NOT NULL ORDER BY 1, 2$$,
	$$VALUES ('tz', 'a', '2026-01-01'::date), ('tz', 'b', '2026-01-31'::date), ('tz', 'c', '2026-02-01'::date),
			 ('utc', 'a', '2025-12-31'::date), ('utc', 'b', '2026-01-31'::date), ('utc', 'c', '2026-01-31'::date)$$,
	'usage dates in the account time zone: 23:30 UTC on Jan 31 is Feb 1 in Berlin, Jan 31 in UTC');

------------------------------------------------------------------------------
-- 2026-01-01: holds and overrides hold things back
------------------------------------------------------------------------------
SELECT isnt(pg_temp.run('2026-01-01'), NULL, 'run 2026-01-01');
SELECT is_empty($$SELECT * FROM pg_temp.docs('h_acct')$$, 'an account on hold is skipped');
SELECT results_eq($$SELECT price, kind, service_period, amount FROM pg_temp.lines('h_sub')$$,
	$$VALUES ('m20', 'recurring', '[2026-01-01,2026-02-01)', 20.00)$$,
	'a subscription on hold is skipped, the account''s other subscription billed');
SELECT is_empty($$SELECT * FROM pg_temp.docs('ov_adv')$$, 'next_bill_date_override 2026-01-10: the 2026-01-01 run skips the subscription');
SELECT is((SELECT next_bill_date_override FROM subscription WHERE subscription_id = pg_temp.sub('ov_adv')), '2026-01-10'::date,
	'... and keeps the override');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity with held accounts and subscriptions');

SELECT isnt(pg_temp.run('2026-01-10'), NULL, 'run 2026-01-10');
SELECT results_eq($$SELECT price, kind, service_period, amount FROM pg_temp.lines('ov_adv')$$,
	$$VALUES ('m10', 'recurring', '[2026-01-01,2026-02-01)', 10.00)$$,
	'the run on the override date bills the delayed period');
SELECT is((SELECT next_bill_date_override FROM subscription WHERE subscription_id = pg_temp.sub('ov_adv')), NULL::date,
	'... and clears the override');

-- in arrears: nothing before the end of the period
SELECT isnt(pg_temp.run('2026-01-31'), NULL, 'run 2026-01-31');
SELECT is((SELECT count(*) FROM invoice_line WHERE kind = 'usage'), 0::bigint, 'usage is not billed before its period has ended');
SELECT results_eq($$SELECT price, kind, service_period, amount, tax_amount FROM pg_temp.lines('jpy')$$,
	$$VALUES ('m1000jpy', 'recurring', '[2026-01-20,2026-02-01)', 387::numeric, 39::numeric)$$,
	'JPY: 1000 x 12/31 = 387.10 rounds to 387, tax 38.7 to 39 (no minor unit)');
SELECT results_eq($$SELECT document_type, currency, subtotal, tax_total, total FROM invoice WHERE account_id = pg_temp.acct('jpy')$$,
	$$VALUES ('invoice', 'JPY', 387::numeric, 39::numeric, 426::numeric)$$, 'the JPY invoice totals 426');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the January runs');

------------------------------------------------------------------------------
-- 2026-02-01: usage for January, taxes on the first invoices
------------------------------------------------------------------------------
SELECT isnt(pg_temp.run('2026-02-01'), NULL, 'run 2026-02-01');
SELECT results_eq($$SELECT price, kind, service_period, quantity, amount FROM pg_temp.lines('tz')$$,
	$$VALUES ('u1', 'usage', '[2026-01-01,2026-02-01)', 12::numeric, 12.00)$$,
	'Berlin: January holds 7 (Jan 1 local) + 5 (Jan 31 local), not the 3 of Feb 1 local');
SELECT results_eq($$SELECT price, kind, service_period, quantity, amount FROM pg_temp.lines('utc')$$,
	$$VALUES ('u1', 'usage', '[2026-01-01,2026-02-01)', 8::numeric, 8.00)$$,
	'UTC: January holds 5 + 3, the 7 of Dec 31 is before the start');
SELECT results_eq($$SELECT price, kind, service_period, quantity, amount FROM pg_temp.lines('tiered')$$,
	$$VALUES ('ugrad', 'usage', '[2026-01-01,2026-02-01)', 300::numeric, 145.00),
			 ('uvol', 'usage', '[2026-01-01,2026-02-01)', 300::numeric, 120.00)$$,
	'usage summed over the period, then rated: graduated 300 = 145.00, volume 300 = 120.00');
SELECT results_eq($$SELECT * FROM pg_temp.docs('tx_cmp')$$,
	$$VALUES ('invoice', '2026-02-01'::date, '2026-03-03'::date, 5000.00, 1900.00, 6900.00)$$,
	'5000 at 15 % (priority 0) compounded by 20 % (priority 1): tax 750.00 + 1150.00 = 1900.00');
SELECT results_eq($$SELECT * FROM pg_temp.docs('tx_add')$$,
	$$VALUES ('invoice', '2026-02-01'::date, '2026-03-03'::date, 1000.00, 80.00, 1080.00)$$,
	'rates of equal priority add: 1000 at 5 % + 3 % = 80.00');
SELECT results_eq($$SELECT price, amount, tax_amount FROM pg_temp.lines('tx_code')$$,
	$$VALUES ('m1000', 1000.00, 100.00), ('b100', 100.00, 5.00), ('d100', 100.00, 10.00)$$,
	'a product tax code''s rates replace the region''s general rate (5 % not 10 %); a code without rates of its own pays the general rate');
SELECT results_eq($$SELECT subtotal, tax_total, total FROM pg_temp.docs('tx_code')$$,
	$$VALUES (1200.00, 115.00, 1315.00)$$, 'the document''s tax total is the sum of its lines'' taxes');
SELECT results_eq($$SELECT * FROM pg_temp.docs('tx_ex')$$,
	$$VALUES ('invoice', '2026-02-01'::date, '2026-03-03'::date, 1000.00, 0::numeric, 1000.00)$$,
	'a tax-exempt account pays no tax');
SELECT results_eq($$SELECT subtotal, tax_total FROM pg_temp.docs('tx_val')$$,
	$$VALUES (1000.00, 100.00)$$, 'the rate valid on the document date 2026-02-01: 10 %');
SELECT is_empty($$SELECT * FROM pg_temp.docs('ov_arr')$$,
	'in arrears with override 2026-02-10: January is not billed on 2026-02-01');
SELECT results_eq(
	$$SELECT i.currency, i.document_type, i.total, l.service_period::text FROM invoice i JOIN invoice_line l USING (account_id, invoice_id)
	  WHERE i.account_id = pg_temp.acct('multi') ORDER BY i.currency$$,
	$$VALUES ('EUR', 'invoice', 10.00, '[2026-02-01,2026-03-01)'), ('USD', 'invoice', 10.00, '[2026-02-01,2026-03-01)')$$,
	'one document per account and currency');
SELECT is((SELECT array_agg(i.currency ORDER BY i.invoice_id) FROM invoice i WHERE i.account_id = pg_temp.acct('multi')),
	ARRAY['EUR', 'USD'], 'an account''s documents take their ids in currency order');
SELECT is_empty($$SELECT 1 FROM invoice_line l JOIN invoice i USING (account_id, invoice_id) JOIN price p USING (price_id)
				  WHERE i.account_id = pg_temp.acct('multi') AND p.currency <> i.currency$$,
	'each line is on the document of its price''s currency');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2026-02-01 run');

------------------------------------------------------------------------------
-- Late usage in billed January: the next run bills the difference
------------------------------------------------------------------------------
INSERT INTO usage_record (account_id, subscription_id, quantity, occurred_at)
SELECT s.account_id, s.subscription_id, 250, '2026-01-25 08:00+00' FROM subscription s WHERE s.account_id = pg_temp.acct('tiered');
INSERT INTO usage_record (account_id, subscription_id, quantity, occurred_at)
VALUES (pg_temp.acct('tz'), pg_temp.sub('tz'), 4, '2026-01-15 10:00+00');
SELECT results_eq(
	$$SELECT kind, service_period::text, amount FROM preview_invoice(pg_temp.acct('tiered'), '2026-02-05') ORDER BY line_number$$,
	$$VALUES ('usage', '[2026-01-01,2026-02-01)', 95.00), ('usage', '[2026-01-01,2026-02-01)', 45.00)$$,
	'preview shows the late usage differences');
SELECT isnt(pg_temp.run('2026-02-05'), NULL, 'run 2026-02-05');
SELECT results_eq($$SELECT price, kind, service_period, amount FROM pg_temp.lines('tiered', '2026-02-05')$$,
	$$VALUES ('ugrad', 'usage', '[2026-01-01,2026-02-01)', 95.00), ('uvol', 'usage', '[2026-01-01,2026-02-01)', 45.00)$$,
	'late usage: graduated 550 = 240.00 less 145.00 billed = 95.00; volume 550 = 165.00 less 120.00 = 45.00');
SELECT results_eq($$SELECT price, kind, service_period, amount FROM pg_temp.lines('tz', '2026-02-05')$$,
	$$VALUES ('u1', 'usage', '[2026-01-01,2026-02-01)', 4.00)$$,
	'late usage: 4 more units in January = 4.00');
SELECT results_eq(
	$$SELECT sum(l.amount) FROM invoice_line l WHERE l.account_id = pg_temp.acct('tiered') AND l.kind = 'usage'
	  GROUP BY l.price_id ORDER BY l.price_id$$,
	$$VALUES (240.00), (165.00)$$, 'January usage now holds the rating of the whole 550 units');
SELECT is_empty($$SELECT * FROM pg_temp.docs('ov_arr')$$, 'override 2026-02-10: still nothing on 2026-02-05');
SELECT results_eq($$SELECT accounts, invoices, lines FROM pg_temp.run('2026-02-05')$$,
	$$VALUES (0, 0, 0::bigint)$$, 'the late usage is billed once');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the late usage');

SELECT isnt(pg_temp.run('2026-02-10'), NULL, 'run 2026-02-10');
SELECT results_eq($$SELECT price, kind, service_period, amount FROM pg_temp.lines('ov_arr')$$,
	$$VALUES ('a10', 'recurring', '[2026-01-01,2026-02-01)', 10.00)$$,
	'in arrears: the run on the override date bills the delayed January');
SELECT is((SELECT next_bill_date_override FROM subscription WHERE subscription_id = pg_temp.sub('ov_arr')), NULL::date,
	'... and clears the override');

------------------------------------------------------------------------------
-- Holds released: the 2026-03-01 run catches up
------------------------------------------------------------------------------
UPDATE account SET billing_hold = false WHERE external_key = 'h_acct';
UPDATE subscription SET billing_hold = false WHERE subscription_id = pg_temp.sub('h_sub', 'm10');
SELECT isnt(pg_temp.run('2026-03-01'), NULL, 'run 2026-03-01');
SELECT results_eq($$SELECT price, kind, service_period, amount FROM pg_temp.lines('h_acct')$$,
	$$VALUES ('m10', 'recurring', '[2026-01-01,2026-02-01)', 10.00), ('m10', 'recurring', '[2026-02-01,2026-03-01)', 10.00),
			 ('m10', 'recurring', '[2026-03-01,2026-04-01)', 10.00)$$,
	'account hold released: January to March caught up on one invoice');
SELECT is((SELECT count(*) FROM invoice WHERE account_id = pg_temp.acct('h_acct')), 1::bigint, '... one invoice');
SELECT results_eq($$SELECT price, kind, service_period, amount FROM pg_temp.lines('h_sub', '2026-03-01')$$,
	$$VALUES ('m10', 'recurring', '[2026-01-01,2026-02-01)', 10.00), ('m10', 'recurring', '[2026-02-01,2026-03-01)', 10.00),
			 ('m10', 'recurring', '[2026-03-01,2026-04-01)', 10.00), ('m20', 'recurring', '[2026-03-01,2026-04-01)', 20.00)$$,
	'subscription hold released: its three months caught up beside the other subscription''s March');
SELECT results_eq($$SELECT subtotal, tax_total FROM pg_temp.docs('tx_val', '2026-03-01')$$,
	$$VALUES (1000.00, 200.00)$$, 'the new rate valid from 2026-03-01: 20 %');
SELECT results_eq($$SELECT price, kind, service_period, quantity, amount FROM pg_temp.lines('tz', '2026-03-01')$$,
	$$VALUES ('u1', 'usage', '[2026-02-01,2026-03-01)', 3::numeric, 3.00)$$,
	'Berlin: February holds the 3 units of Feb 1 local time');
SELECT is_empty($$SELECT * FROM pg_temp.docs('tiered', '2026-03-01')$$, 'no usage in February: no line, no document');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the 2026-03-01 run');

------------------------------------------------------------------------------
-- Negative lines carry negative tax
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT billing.cancel_subscription(pg_temp.sub('tx_neg'), '2026-03-16')$$, 'cancel 1000/month on 2026-03-16');
-- usage in the final stub of a cancelled usage subscription, and after its end
SELECT lives_ok($$SELECT billing.cancel_subscription(pg_temp.sub('utc'), '2026-03-16')$$, 'cancel the UTC usage on 2026-03-16');
INSERT INTO usage_record (account_id, subscription_id, quantity, occurred_at) VALUES
	(pg_temp.acct('utc'), pg_temp.sub('utc'), 2, '2026-03-10 09:00+00'),
	(pg_temp.acct('utc'), pg_temp.sub('utc'), 9, '2026-03-17 09:00+00');
SELECT isnt(pg_temp.run('2026-03-20'), NULL, 'run 2026-03-20');
SELECT results_eq($$SELECT price, kind, service_period, amount, tax_amount FROM pg_temp.lines('tx_neg', '2026-03-20')$$,
	$$VALUES ('m1000', 'proration', '[2026-03-16,2026-04-01)', -516.13, -51.61)$$,
	'credit for 16/31 of 1000 = -516.13 with tax -51.61');
SELECT results_eq($$SELECT * FROM pg_temp.docs('tx_neg', '2026-03-20')$$,
	$$VALUES ('credit_note', '2026-03-20'::date, NULL::date, -516.13, -51.61, -567.74)$$,
	'a credit note of -567.74, tax included, without due date');
SELECT results_eq($$SELECT price, kind, service_period, quantity, amount FROM pg_temp.lines('utc', '2026-03-20')$$,
	$$VALUES ('u1', 'usage', '[2026-03-01,2026-03-16)', 2::numeric, 2.00)$$,
	'cancelled usage: the final stub is billed once it has ended, without the usage after the end');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the credit note');

SELECT * FROM finish();
ROLLBACK;
