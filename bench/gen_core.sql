-- bench/gen_core.sql: benchmark data for bench/run.sh.
--
--   psql -v rows=10000000 -f bench/gen_core.sql billing_bench
--
-- Variables (psql -v):
--   rows   rows of proration_input              (default 10000000)
--   subs   subscriptions of bench_subscription  (default rows / 10)
--   seed   setseed() argument                    (default 0.4242)
--
-- Needs CREATE EXTENSION billing in the database.  Drops and recreates both
-- tables.  Deterministic: setseed() once, then every random() call runs in
-- this one session in a fixed order (INSERT ... SELECT is never parallel),
-- so the same variables give the same rows on any run.
--
-- proration_input (Figure A): one row per prorated line.
--   amount  money with 2 decimals, 0.01 .. 10000.00, log-uniform (many
--           small prices, few large ones, as in real price lists)
--   whole   the regular period being prorated against: 70% month, 20%
--           quarter, 10% year, starting on any day of 2021-01-01 ..
--           2025-12-31, so its length is 28..31, 89..92 or 365..366 days
--   part    the days actually billed, always inside whole: 50% the whole
--           period, 20% a leading stub (sign-up mid period), 20% a trailing
--           stub (cancellation mid period), 10% an inner slice (pause)
--   grp     group key for the grouped variant: rows / 100 groups (~100k)
--           of ~100 rows, assigned at random, so a group's rows are spread
--           over the whole table (worst case for the hash aggregate)
--   grp_seq the same number of groups of exactly 100 rows, each group's rows
--           stored next to each other (as invoice lines are: inserted
--           together), so the hash aggregate works on one group at a time
--
-- bench_subscription (Figure B): one row per subscription.
--   anchor     the cycle anchor: any day 1..31 of a 31-day month of
--              2022..2024, so cycle days 29..31 (the month-end clamping
--              cases) are as frequent as the others
--   from_date  anchor - 31 .. anchor + 364 days: usually mid cycle (leading
--              stub), sometimes before the anchor (cycle extended backwards)
--   to_date    from_date + 290..320 days (~10 months; trailing stub)

\set ON_ERROR_STOP 1
\if :{?rows}
\else
\set rows 10000000
\endif
\if :{?subs}
\else
SELECT greatest(1, :rows / 10) AS subs \gset
\endif
\if :{?seed}
\else
\set seed 0.4242
\endif

SET client_min_messages = warning;
SET max_parallel_workers_per_gather = 0;

DROP TABLE IF EXISTS proration_input;
DROP TABLE IF EXISTS bench_subscription;

CREATE TABLE proration_input (
	amount numeric NOT NULL,
	part billing.billing_period NOT NULL,
	whole billing.billing_period NOT NULL,
	grp int NOT NULL,
	grp_seq int NOT NULL
);

CREATE TABLE bench_subscription (
	id int PRIMARY KEY,
	anchor date NOT NULL,
	from_date date NOT NULL,
	to_date date NOT NULL
);

SELECT setseed(:seed);

-- Each level of nesting draws its random numbers once per row (OFFSET 0
-- keeps the planner from flattening the subqueries and duplicating the
-- volatile expressions).
INSERT INTO proration_input (amount, part, whole, grp, grp_seq)
SELECT amount,
	billing.billing_period(
		CASE WHEN shape < 0.50 THEN ws               -- whole period
			 WHEN shape < 0.70 THEN ws + cut         -- leading stub
			 WHEN shape < 0.90 THEN ws               -- trailing stub
			 ELSE ws + cut - 1 END,                  -- inner slice
		CASE WHEN shape < 0.50 THEN we
			 WHEN shape < 0.70 THEN we
			 WHEN shape < 0.90 THEN ws + cut
			 ELSE ws + cut - 1 + greatest(1, floor(r2 * (days - cut))::int) END),
	billing.billing_period(ws, we),
	grp, grp_seq
FROM (
	SELECT amount, grp, grp_seq, shape, r2, ws, we, days,
		1 + floor(r1 * (days - 1))::int AS cut      -- 1 .. days - 1
	FROM (
		SELECT amount, grp, grp_seq, shape, r1, r2, ws, we, we - ws AS days
		FROM (
			SELECT amount, grp, grp_seq, shape, r1, r2, ws,
				(ws + CASE WHEN kind < 0.70 THEN interval '1 month'
						   WHEN kind < 0.90 THEN interval '3 months'
						   ELSE interval '1 year' END)::date AS we
			FROM (
				SELECT
					floor(exp(random() * ln(1000001::float8)))::int * 0.01 AS amount,
					floor(random() * greatest(1, :rows / 100))::int AS grp,
					((i - 1) / 100)::int AS grp_seq,
					random() AS kind,
					random() AS shape,
					random() AS r1,
					random() AS r2,
					date '2021-01-01' + floor(random() * 1826)::int AS ws
				FROM generate_series(1, :rows) AS i
				OFFSET 0
			) a
			OFFSET 0
		) b
		OFFSET 0
	) c
	OFFSET 0
) d;

INSERT INTO bench_subscription (id, anchor, from_date, to_date)
SELECT id, anchor, from_date, from_date + 290 + floor(random() * 31)::int
FROM (
	SELECT id, anchor, anchor - 31 + floor(random() * 396)::int AS from_date
	FROM (
		SELECT i AS id,
			make_date(2022 + floor(random() * 3)::int,
					  (ARRAY[1, 3, 5, 7, 8, 10, 12])[1 + floor(random() * 7)::int],
					  1 + floor(random() * 31)::int) AS anchor
		FROM generate_series(1, :subs) AS i
		OFFSET 0
	) a
	OFFSET 0
) b;

VACUUM ANALYZE proration_input;
VACUUM ANALYZE bench_subscription;

SELECT count(*) AS rows,
	count(DISTINCT grp) AS groups,
	count(DISTINCT grp_seq) AS groups_seq,
	min(amount) AS min_amount, max(amount) AS max_amount,
	round(avg(amount), 2) AS avg_amount,
	min(billing.period_days(whole)) AS min_whole_days,
	max(billing.period_days(whole)) AS max_whole_days,
	count(*) FILTER (WHERE part OPERATOR(billing.=) whole) AS full_periods,
	count(*) FILTER (WHERE NOT part OPERATOR(billing.<@) whole) AS parts_outside_whole,
	pg_size_pretty(pg_table_size('proration_input')) AS table_size
FROM proration_input;

SELECT count(*) AS subscriptions,
	count(*) FILTER (WHERE extract(day FROM anchor) > 28) AS anchors_day_29_31,
	count(*) FILTER (WHERE from_date < anchor) AS from_before_anchor,
	min(to_date - from_date) AS min_window_days,
	max(to_date - from_date) AS max_window_days
FROM bench_subscription;
