-- Long histories: the engine reads a candidate's billed lines and usage from
-- an index scan that steps forward from one subscription to the next and
-- descends again when more than 32 entries lie between (keyed_scan.c).  Here
-- subscriptions with 56 weekly lines, 14 monthly ones and 56 usage records
-- sit next to each other, so runs step over short histories, descend past
-- long ones, and read windows that open in the middle of a history (a void,
-- late usage).  What is billed is checked against arithmetic done here, not
-- against the engine: every week, month and usage record billed exactly once.
BEGIN;
\ir include/session.sql

SELECT plan(17);

\ir include/lookups.sql
\ir include/run.sql
CREATE FUNCTION pg_temp.sub(key text, price_code text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT s.subscription_id FROM billing.subscription s
	  WHERE s.account_id = pg_temp.acct(key) AND s.price_id = pg_temp.price(price_code) $$;
-- what non-void documents hold per subscription: periods and amount
CREATE FUNCTION pg_temp.billed() RETURNS TABLE (key text, price text, periods bigint, amount numeric) LANGUAGE sql STABLE
AS $$ SELECT a.external_key, p.code, count(DISTINCT l.cycle_period), sum(l.amount)
	  FROM billing.invoice_line l
	  JOIN billing.invoice i ON i.account_id = l.account_id AND i.invoice_id = l.invoice_id
	  JOIN billing.account a ON a.account_id = l.account_id
	  JOIN billing.price p ON p.price_id = l.price_id
	  WHERE i.status <> 'void'
	  GROUP BY a.external_key, p.code ORDER BY 1, 2 $$;

INSERT INTO product (code, name) VALUES ('plan', 'Plan'), ('meter', 'Meter');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT pr.product_id, v.code, 'USD', v.charge_type, v.unit, v.timing, 'per_unit', v.amount
FROM product pr,
	 (VALUES ('plan', 'w10', 'recurring', 'week', 'in_advance', 10),
			 ('plan', 'm30', 'recurring', 'month', 'in_advance', 30),
			 ('meter', 'u1', 'usage', 'month', 'in_arrears', 1)) v(product, code, charge_type, unit, timing, amount)
WHERE pr.code = v.product;
INSERT INTO account (external_key, name, currency) VALUES
	('a', 'Weekly, monthly and metered', 'USD'), ('b', 'Monthly', 'USD'), ('c', 'Weekly and metered', 'USD');
-- in key order: a's three, b's one, c's two
INSERT INTO subscription (account_id, price_id, start_date)
SELECT pg_temp.acct(v.key), pg_temp.price(v.price), v.start_date::date
FROM (VALUES (1, 'a', 'w10', '2025-01-06'), (2, 'a', 'm30', '2025-01-01'), (3, 'a', 'u1', '2025-01-01'),
			 (4, 'b', 'm30', '2025-01-01'), (5, 'c', 'w10', '2025-01-06'), (6, 'c', 'u1', '2025-01-01')) v(n, key, price, start_date)
ORDER BY v.n;
-- a usage record every week of 2025 and January 2026 (quantity 1, 2, ... 56)
INSERT INTO usage_record (account_id, subscription_id, quantity, occurred_at)
SELECT pg_temp.acct(k.key), pg_temp.sub(k.key, 'u1'), w + 1, ('2025-01-03 12:00+00'::timestamptz + w * interval '7 days')
FROM (VALUES ('a'), ('c')) k(key), generate_series(0, 55) w;

-- Runs on the first of every month, 2025-01-01 to 2026-01-01
SELECT is((SELECT count(*)::int FROM generate_series(date '2025-01-01', date '2026-01-01', interval '1 month') d
		   WHERE pg_temp.run(d::date) IS NULL), 0, 'thirteen monthly runs');
SELECT ok((SELECT count(*) FROM invoice_line WHERE subscription_id = pg_temp.sub('a', 'w10')) > 32,
	'a weekly subscription holds more lines than the scan steps over (32)');

-- Weeks from 2025-01-06 starting on or before the target, billed in advance;
-- months from 2025-01, likewise; usage of the months that ended by the target.
CREATE FUNCTION pg_temp.expected(target date) RETURNS TABLE (key text, price text, periods bigint, amount numeric)
	LANGUAGE sql STABLE
AS $$ SELECT * FROM (
		SELECT k.key, 'w10', count(*), 10 * count(*)::numeric
		FROM (VALUES ('a'), ('c')) k(key), generate_series(date '2025-01-06', target, interval '7 days') w GROUP BY k.key
		UNION ALL
		SELECT k.key, 'm30', count(*), 30 * count(*)::numeric
		FROM (VALUES ('a'), ('b')) k(key), generate_series(date '2025-01-01', target, interval '1 month') m GROUP BY k.key
		UNION ALL
		SELECT k.key, 'u1', count(DISTINCT date_trunc('month', u.usage_date)), sum(u.quantity)
		FROM (VALUES ('a'), ('c')) k(key)
		JOIN billing.usage_record u ON u.account_id = pg_temp.acct(k.key)
		WHERE u.usage_date < date_trunc('month', target)
		GROUP BY k.key) e ORDER BY 1, 2 $$;

SELECT results_eq($$SELECT * FROM pg_temp.billed()$$, $$SELECT * FROM pg_temp.expected('2026-01-01')$$,
	'after a year of runs: every week, month and closed month of usage billed once');
SELECT is((SELECT count(*)::int FROM billing.due_items('2026-01-01', NULL, true) WHERE item = 'line'), 0,
	'reconciled from their starts, all six subscriptions are billed: every billed line was found');

-- 2026-02-01: the runs step over a year of lines and usage to the window
SELECT is((pg_temp.run('2026-02-01')).lines, 12::bigint, '2026-02-01: twelve lines (four weeks each, a month each, January usage)');
SELECT results_eq($$SELECT * FROM pg_temp.billed()$$, $$SELECT * FROM pg_temp.expected('2026-02-01')$$,
	'2026-02-01: every week, month and usage record billed once');
SELECT is((pg_temp.run('2026-02-01')).lines, 0::bigint, '2026-02-01 again: nothing');

-- Void a's document of 2025-06-01: the window of a's subscriptions opens in
-- the middle of their histories; the run bills that document's lines again.
CREATE TEMP TABLE voided ON COMMIT DROP AS
SELECT i.invoice_id, i.subtotal, (SELECT count(*) FROM invoice_line l WHERE l.account_id = i.account_id AND l.invoice_id = i.invoice_id) AS lines
FROM invoice i WHERE i.account_id = pg_temp.acct('a') AND i.invoice_date = '2025-06-01';
SELECT is((SELECT count(*)::int FROM voided), 1, 'a has one document of 2025-06-01');
SELECT lives_ok($$SELECT billing.void_invoice((SELECT invoice_id FROM voided), reason => 'test', voided_on => '2026-02-01')$$,
	'void a''s document of 2025-06-01');
SELECT results_eq($$SELECT (r).lines::bigint, (r).total_amount FROM (SELECT pg_temp.run('2026-02-01') r) x$$,
	$$SELECT lines, subtotal FROM voided$$,
	'the next run bills the voided document''s lines again, no more');
SELECT results_eq($$SELECT * FROM pg_temp.billed()$$, $$SELECT * FROM pg_temp.expected('2026-02-01')$$,
	'after void and re-bill: every week, month and usage record billed once');

-- Late usage for March 2025 on c: its window opens eleven months back
INSERT INTO usage_record (account_id, subscription_id, quantity, occurred_at)
VALUES (pg_temp.acct('c'), pg_temp.sub('c', 'u1'), 1000, '2025-03-15 12:00+00');
CREATE TEMP TABLE late_run ON COMMIT DROP AS SELECT * FROM pg_temp.run('2026-02-01');
SELECT results_eq($$SELECT l.kind, l.service_period::text, l.quantity, l.amount
					FROM invoice_line l JOIN invoice i ON i.account_id = l.account_id AND i.invoice_id = l.invoice_id
					WHERE i.batch_id = (SELECT batch_id FROM late_run)$$,
	$$VALUES ('usage', '[2025-03-01,2025-04-01)', (SELECT sum(quantity) FROM usage_record
												  WHERE subscription_id = pg_temp.sub('c', 'u1')
													AND usage_date >= '2025-03-01' AND usage_date < '2025-04-01'), 1000.00)$$,
	'late usage of March 2025: one line for the difference, the period rated with all its usage');
SELECT results_eq($$SELECT * FROM pg_temp.billed()$$, $$SELECT * FROM pg_temp.expected('2026-02-01')$$,
	'after late usage: every week, month and usage record billed once');

-- Reconciled from their starts, nothing is due; nothing from a chunk of one account either
SELECT is((SELECT count(*)::int FROM billing.due_items('2026-02-01', NULL, true) WHERE item = 'line'), 0,
	'reconciled from their starts at 2026-02-01: nothing due');
SELECT is((SELECT count(*)::int FROM billing.due_items('2026-02-01', ARRAY[pg_temp.acct('c')], true) WHERE item = 'line'), 0,
	'the same for account c alone');
SELECT results_eq($$SELECT kind, count(*) FROM billing.due_items('2026-03-01', NULL) WHERE item = 'line' GROUP BY kind$$,
	$$VALUES ('recurring', 10::bigint)$$,
	'2026-03-01 preview: four weeks each, a month each, and no usage line (no usage in February)');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity at the end');

SELECT * FROM finish();
ROLLBACK;
