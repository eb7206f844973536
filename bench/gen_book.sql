-- bench/gen_book.sql: a book of business for bench/engine.sh.
--
--   psql -v accounts=100000 -v subs_per_account=10 -v scenario=month_end -f bench/gen_book.sql DB
--
-- What: accounts, a small USD catalog, subscriptions, usage records and
-- mid-period changes, in one of two states before an invoice run with
-- target date T = 2026-10-31:
--
--   month_end  the book is billed through the previous period: monthly and
--              usage subscriptions start on a day of September 2026, annual
--              ones on a day of October 2025, and a run at 2026-09-30 bills
--              them and commits.  After it: ~3% of the subscriptions change
--              quantity (+1) on 2026-09-30, inside a billed period (the
--              month-end run adds two proration lines each), and usage
--              subscriptions get usage dated from 2026-09-30 to the day
--              before their October cycle date.  The month-end run then
--              bills about one line per subscription (~1M lines, ~100k
--              invoices at the default size).
--   catch_up   nothing billed yet: starts spread uniformly over 2024-11-01 ..
--              2026-10-31, ended subscriptions end between start and T,
--              usage and changes (quantity +1) between start and T.  The run
--              bills every period so far, ~10 lines per subscription
--              (~10M lines at the default size).
--
-- Why: the engine's cost must follow the work that is due (SPEC §4); the two
-- scenarios are the nightly month-end run of a mature book and the first run
-- over two years of history, at a size given by two variables.
--
-- Variables (psql -v):
--   accounts          accounts (default 100000)
--   subs_per_account  subscriptions per account (default 10)
--   scenario          month_end (default) or catch_up
--   seed              setseed() argument (default 0.42)
--
-- Shape of the book:
--   catalog    USD; tax rate 'US-CA' 8.25%; monthly in-advance per-unit
--              prices 9.00 / 29.00 / 49.99 / 99.00, annual in-advance
--              per-unit prices 990.00 / 4800.00, one monthly in-arrears usage
--              price at 0.0125 per unit (per_unit)
--   accounts   bill_cycle_day NULL, payment terms 30 days, every second
--              account in tax region 'US-CA' (the others pay no tax)
--   subs       70% monthly, 10% usage, 20% annual; cycle day 1..31 on the
--              subscription (bill_cycle_day); quantity 1..20 (monthly,
--              skewed to small), 1..3 (annual), 1 (usage); 5% ended
--              (month_end: end_date in October after the cycle date, a
--              trailing stub; catch_up: between start and T); ~3% of all
--              subscriptions (recurring ones only) change quantity +1 through
--              billing.change_subscription
--   usage      10 records per usage subscription, 1..1000 units each, inserted
--              into billing.usage_record with occurred_at (UTC) and an
--              idempotency key
--
-- Needs a fresh database with CREATE EXTENSION billing (ids are assigned
-- explicitly from 1).  Deterministic: setseed() once, then every random()
-- is drawn while scanning a single generate_series in this one session, in
-- a fixed order, before anything else runs; the same variables give the
-- same book.  Everything is inserted set-based (INSERT ... SELECT); the
-- changes go through billing.change_subscription (one call per change), as
-- the API requires.  Ends with VACUUM ANALYZE.

\set ON_ERROR_STOP 1
\if :{?accounts}
\else
	\set accounts 100000
\endif
\if :{?subs_per_account}
\else
	\set subs_per_account 10
\endif
\if :{?scenario}
\else
	\set scenario month_end
\endif
\if :{?seed}
\else
	\set seed 0.42
\endif

SELECT :'scenario' IN ('month_end', 'catch_up') AS scenario_known,
	   :'scenario' = 'month_end' AS is_month_end,
	   (:accounts)::bigint > 0 AND (:subs_per_account)::int > 0 AS sizes_positive \gset
\if :scenario_known
\else
	-- fails with the message in it (ON_ERROR_STOP)
	SELECT ('scenario must be month_end or catch_up, not ' || :'scenario')::int;
\endif
\if :sizes_positive
\else
	SELECT 'accounts and subs_per_account must be positive'::int;
\endif

\echo gen_book.sql: scenario :scenario, :accounts accounts x :subs_per_account subscriptions
SELECT setseed(:seed);

-- ---------------------------------------------------------------- catalog

INSERT INTO billing.tax_rate (region, name, rate) VALUES ('US-CA', 'California sales tax', 0.0825);

INSERT INTO billing.product (code, name) VALUES
	('seat', 'Team seat'),
	('platform', 'Platform licence'),
	('api', 'API calls');

INSERT INTO billing.price (product_id, code, currency, charge_type, billing_interval, billing_timing,
						   pricing_model, unit_amount)
SELECT p.product_id, v.code, 'USD', v.charge_type, v.billing_interval, v.billing_timing, 'per_unit', v.unit_amount
FROM (VALUES
		('seat', 'seat-monthly-9', 'recurring', 'month', 'in_advance', 9.00),
		('seat', 'seat-monthly-29', 'recurring', 'month', 'in_advance', 29.00),
		('seat', 'seat-monthly-49', 'recurring', 'month', 'in_advance', 49.99),
		('seat', 'seat-monthly-99', 'recurring', 'month', 'in_advance', 99.00),
		('platform', 'platform-annual-990', 'recurring', 'year', 'in_advance', 990.00),
		('platform', 'platform-annual-4800', 'recurring', 'year', 'in_advance', 4800.00),
		('api', 'api-usage-monthly', 'usage', 'month', 'in_arrears', 0.0125)
	 ) AS v(product, code, charge_type, billing_interval, billing_timing, unit_amount)
JOIN billing.product p ON p.code = v.product
ORDER BY v.code;

SELECT array_agg(price_id ORDER BY code) FILTER (WHERE code LIKE 'seat-monthly-%') AS monthly_prices,
	   array_agg(price_id ORDER BY code) FILTER (WHERE code LIKE 'platform-annual-%') AS annual_prices,
	   min(price_id) FILTER (WHERE code = 'api-usage-monthly') AS usage_price
FROM billing.price \gset

-- ---------------------------------------------------------------- accounts

INSERT INTO billing.account (account_id, external_key, name, currency, bill_cycle_day, payment_terms_days, tax_region)
SELECT g, 'bench-' || g, 'Bench account ' || g, 'USD', NULL, 30, CASE WHEN g % 2 = 0 THEN 'US-CA' END
FROM generate_series(1, :accounts) AS g;
SELECT setval('billing.account_account_id_seq', :accounts);

-- ---------------------------------------------------------------- draws

-- Every random number of the book, drawn in one scan of generate_series.
CREATE TEMP TABLE gen_draw AS
SELECT n, random() AS r_kind, random() AS r_price, random() AS r_qty, random() AS r_start, random() AS r_cycle,
	   random() AS r_end, random() AS r_end_day, random() AS r_change, random() AS r_change_day
FROM generate_series(1, (:accounts)::bigint * :subs_per_account) AS n;

-- The subscriptions, with the dates of their scenario.  ~3% of all
-- subscriptions change: recurring ones only, so 3% / 90% of those.
CREATE TEMP TABLE gen_sub AS
SELECT s.*,
	   CASE WHEN s.ended THEN
			CASE WHEN :'is_month_end'::boolean
				 -- after the October cycle date (31: the stub is 2026-10-31 .. 2026-11-01)
				 THEN make_date(2026, 10, s.cycle_day) + 1 + floor(s.r_end_day * greatest(31 - s.cycle_day, 1))::int
				 ELSE s.start_date + 1 + floor(s.r_end_day * greatest(date '2026-10-31' - s.start_date, 1))::int END
	   END AS end_date
FROM (SELECT d.n AS subscription_id, (d.n - 1) / :subs_per_account + 1 AS account_id,
			 k.kind,
			 CASE k.kind WHEN 'monthly' THEN (:'monthly_prices'::bigint[])[1 + floor(d.r_price * 4)::int]
						 WHEN 'annual' THEN (:'annual_prices'::bigint[])[1 + floor(d.r_price * 2)::int]
						 ELSE :usage_price END AS price_id,
			 CASE k.kind WHEN 'monthly' THEN 1 + floor(d.r_qty ^ 2 * 20)
						 WHEN 'annual' THEN 1 + floor(d.r_qty * 3)
						 ELSE 1 END::numeric AS quantity,
			 CASE WHEN NOT :'is_month_end'::boolean THEN date '2024-11-01' + floor(d.r_start * 730)::int
				  WHEN k.kind = 'annual' THEN date '2025-10-01' + floor(d.r_start * 31)::int
				  ELSE date '2026-09-01' + floor(d.r_start * 30)::int END AS start_date,
			 1 + floor(d.r_cycle * 31)::int AS cycle_day,
			 d.r_end < 0.05 AS ended,
			 d.r_end_day,
			 k.kind <> 'usage' AND d.r_change < 0.03 / 0.9 AS changes,
			 d.r_change_day
	  FROM gen_draw d
	  CROSS JOIN LATERAL (SELECT CASE WHEN d.r_kind < 0.7 THEN 'monthly' WHEN d.r_kind < 0.8 THEN 'usage'
									  ELSE 'annual' END AS kind) k) s;
ALTER TABLE gen_sub ADD PRIMARY KEY (subscription_id);

-- the change date: month_end inside the billed period; catch_up any day of service up to T
CREATE TEMP TABLE gen_change AS
SELECT s.subscription_id, s.quantity,
	   CASE WHEN :'is_month_end'::boolean THEN date '2026-09-30'
			ELSE s.start_date + floor(s.r_change_day * (least(s.end_date, date '2026-11-01') - s.start_date))::int END
		   AS effective_date
FROM gen_sub s
WHERE s.changes;

-- 10 usage records per usage subscription, in the days the first run after
-- them bills: month_end [2026-09-30, October cycle date), catch_up [start, min(end, T + 1))
CREATE TEMP TABLE gen_usage_sub AS
SELECT row_number() OVER (ORDER BY s.subscription_id) AS usage_no, s.account_id, s.subscription_id,
	   CASE WHEN :'is_month_end'::boolean THEN date '2026-09-30' ELSE s.start_date END AS first_day,
	   CASE WHEN :'is_month_end'::boolean THEN make_date(2026, 10, s.cycle_day)
			ELSE least(s.end_date, date '2026-11-01') END AS after_last_day
FROM gen_sub s
WHERE s.kind = 'usage';
CREATE TEMP TABLE gen_usage AS
SELECT g AS usage_seq, random() AS r_day, random() AS r_time, random() AS r_qty
FROM generate_series(1, (SELECT count(*) FROM gen_usage_sub) * 10) AS g;

-- ---------------------------------------------------------------- subscriptions

INSERT INTO billing.subscription (subscription_id, account_id, price_id, quantity, start_date, end_date, bill_cycle_day)
SELECT s.subscription_id, s.account_id, s.price_id, s.quantity, s.start_date, s.end_date, s.cycle_day
FROM gen_sub s
ORDER BY s.subscription_id;
SELECT setval('billing.subscription_subscription_id_seq', (:accounts)::bigint * :subs_per_account);
ANALYZE billing.account;
ANALYZE billing.subscription;

\if :is_month_end
	-- billed through the previous period: the run of 2026-09-30, committed
	\echo gen_book.sql: setup run at 2026-09-30
	SELECT batch_id, target_date, accounts, invoices, lines, total_amount
	FROM billing.run_invoice_batch('2026-09-30');
\endif

-- the changes, through the API (inside a billed period for month_end)
SELECT count(billing.change_subscription(c.subscription_id, c.effective_date, quantity => c.quantity + 1)) AS changes
FROM (SELECT * FROM gen_change ORDER BY subscription_id) c;

INSERT INTO billing.usage_record (account_id, subscription_id, quantity, occurred_at, idempotency_key)
SELECT s.account_id, s.subscription_id, 1 + floor(u.r_qty * 1000),
	   ((s.first_day + floor(u.r_day * (s.after_last_day - s.first_day))::int) + u.r_time * interval '1 day')
		   AT TIME ZONE 'UTC',
	   'bench-' || s.subscription_id || '-' || (u.usage_seq - 1) % 10 + 1
FROM gen_usage u
JOIN gen_usage_sub s ON s.usage_no = (u.usage_seq - 1) / 10 + 1
ORDER BY u.usage_seq;

SELECT count(*) AS subscriptions,
	   count(*) FILTER (WHERE kind = 'monthly') AS monthly,
	   count(*) FILTER (WHERE kind = 'annual') AS annual,
	   count(*) FILTER (WHERE kind = 'usage') AS usage,
	   count(*) FILTER (WHERE ended) AS ended,
	   count(*) FILTER (WHERE changes) AS changed
FROM gen_sub;

DROP TABLE gen_draw, gen_sub, gen_change, gen_usage_sub, gen_usage;
VACUUM ANALYZE;
