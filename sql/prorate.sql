-- prorate() and prorate_agg(): factors, exactness, the parallel plan.
\i sql/include/session.psql

-- VECTORS.md "Proration" factors: part, and the whole it is measured against
-- (the regular cycle period containing the part), amount rounded once.
CREATE TEMP TABLE vector (name text, amount numeric, unit text, cnt int, anchor date, part billing_period,
						  expected_factor text, expected_amount numeric);
INSERT INTO vector VALUES
 ('10/month, cd 13, leading stub',        10, 'month', 1, '2011-02-13', '[2011-02-01,2011-02-13)', '12/31', 3.87),
 ('10/month, cd 17, trailing stub',       10, 'month', 1, '2010-06-17', '[2010-07-17,2010-07-25)', '8/31', 2.58),
 ('10/month, cd 15, leading stub Jan',    10, 'month', 1, '2011-01-15', '[2011-01-01,2011-01-15)', '14/31', 4.52),
 ('10/month, cd 15, trailing stub Feb',   10, 'month', 1, '2011-01-15', '[2011-02-15,2011-02-27)', '12/28', 4.29),
 ('10/month, cd 1, ends Jan 15',          10, 'month', 1, '2011-01-01', '[2011-01-01,2011-01-15)', '14/31', 4.52),
 ('10/month, cd 1, leap Feb, ends 15',    10, 'month', 1, '2012-02-01', '[2012-02-01,2012-02-15)', '14/29', 4.83),
 ('100/year, cd 13, leading stub',       100, 'year',  1, '2011-02-13', '[2011-02-01,2011-02-13)', '12/365', 3.29),
 ('100/quarter, cd 13, leading stub',    100, 'month', 3, '2011-02-13', '[2011-02-01,2011-02-13)', '12/92', 13.04),
 ('90/month, cd 5, stub 2025-03-28',      90, 'month', 1, '2025-04-05', '[2025-03-28,2025-04-05)', '8/31', 23.23),
 ('10/month, full period',                10, 'month', 1, '2011-02-13', '[2011-02-13,2011-03-13)', '28/28', 10.00);
SELECT name,
       period_days(part * w) || '/' || period_days(w) AS factor,
       period_days(part * w) || '/' || period_days(w) = expected_factor AS factor_ok,
       prorate(amount, part, w) AS unrounded,
       round_money(prorate(amount, part, w), 'USD') AS amount,
       round_money(prorate(amount, part, w), 'USD') = expected_amount AS amount_ok
FROM vector, LATERAL cycle_period(anchor, unit, cnt, period_start(part)) AS w
ORDER BY name;
-- 90/month from 2025-03-28, cycle day 5, to 2026-02-05: 8/31 + 10 full periods = 923.23, rounded once
SELECT round_money(prorate_agg(90, p, cycle_period('2025-04-05', 'month', 1, period_start(p))), 'USD') AS total,
       count(*) AS periods
FROM billing_periods('2025-04-05', 'month', 1, '2025-03-28', '2026-02-05') AS p;

-- prorate: edges
SELECT prorate(10, '[2026-01-01,2026-01-16)', '[2026-01-01,2026-02-01)') AS half_ish,
       prorate(10, '[2026-03-01,2026-04-01)', '[2026-01-01,2026-02-01)') AS disjoint_is_zero,
       prorate(10, '[2025-12-01,2026-03-01)', '[2026-01-01,2026-02-01)') AS part_covers_whole,
       prorate(-10, '[2026-01-01,2026-01-16)', '[2026-01-01,2026-02-01)') AS negative,
       prorate(1, '[2026-01-01,2026-01-02)', '[2026-01-01,2026-01-04)') AS one_third_20_decimals,
       prorate(0.000001, '[2026-01-01,2026-01-02)', '[2026-01-01,2026-01-04)') AS tiny,
       prorate(123456789012345678.123456, '[2026-01-01,2026-01-02)', '[2026-01-01,2026-01-08)') AS huge;
-- half away from zero at the 20th decimal: 2/3 * 10^-19 and its negative
SELECT prorate(0.0000000000000000002, '[2026-01-01,2026-01-02)', '[2026-01-01,2026-01-04)') AS round_up,
       prorate(-0.0000000000000000002, '[2026-01-01,2026-01-02)', '[2026-01-01,2026-01-04)') AS round_down;
SELECT prorate(NULL, '[2026-01-01,2026-01-02)', '[2026-01-01,2026-01-04)') IS NULL AS strict;

-- prorate_agg: NULL over no rows, skips NULL arguments, 0 for disjoint rows
SELECT prorate_agg(a, p, w) IS NULL AS no_rows
FROM (SELECT 1::numeric, '[2026-01-01,2026-01-02)'::billing_period, '[2026-01-01,2026-01-02)'::billing_period WHERE false) v(a, p, w);
SELECT prorate_agg(a, p, w) AS only_nulls
FROM (VALUES (NULL::numeric, '[2026-01-01,2026-01-02)'::billing_period, '[2026-01-01,2026-01-02)'::billing_period)) v(a, p, w);
SELECT prorate_agg(a, p, w) AS disjoint_rows
FROM (VALUES (5::numeric, '[2026-03-01,2026-03-02)'::billing_period, '[2026-01-01,2026-02-01)'::billing_period)) v(a, p, w);
-- the exact sum: thirds add up to a whole, where summing rounded parts would not
SELECT prorate_agg(10, p, '[2026-01-01,2026-01-04)') AS thirds_sum_to_10,
       sum(prorate(10, p, '[2026-01-01,2026-01-04)')) AS sum_of_rounded_parts
FROM billing_periods('2026-01-01', 'day', 1, '2026-01-01', '2026-01-04') AS p;
-- amounts off the fast path (more than 6 decimals, or beyond int64) are exact too
SELECT prorate_agg(a, '[2026-01-01,2026-01-02)', '[2026-01-01,2026-01-04)') AS mixed_paths
FROM (VALUES (1.0000001), (2), (99999999999999999999.5), (-0.0000001)) v(a);
-- a segmented timeline inside one period: 10/month for 10 days, then 20/month
SELECT round_money(prorate_agg(rate, seg, '[2026-04-01,2026-05-01)'), 'USD') AS april
FROM (VALUES (10::numeric, '[2026-04-01,2026-04-11)'::billing_period), (20, '[2026-04-11,2026-05-01)')) v(rate, seg);
-- as a window function and with GROUP BY
SELECT g, prorate_agg(10, p, '[2026-01-01,2026-02-01)') OVER (PARTITION BY g ORDER BY p) AS running
FROM (VALUES (1, '[2026-01-01,2026-01-11)'::billing_period), (1, '[2026-01-11,2026-02-01)'), (2, '[2026-01-05,2026-01-06)')) v(g, p)
ORDER BY g, p;

-- prorate_agg = sum(prorate()) on 100,000 random rows, in 100 groups
SELECT setseed(0.17);
CREATE TABLE prorate_random AS
SELECT i % 100 AS grp,
       round((random() * 20000 - 5000)::numeric, (i % 7)) AS amount,
       billing_period(s, s + 1 + (random() * 60)::int) AS part,
       billing_period(w, w + 1 + (random() * 400)::int) AS whole
FROM (SELECT i, '2020-01-01'::date + (random() * 1500)::int AS s, '2020-01-01'::date + (random() * 1500)::int AS w
      FROM generate_series(1, 100000) AS i) r;
INSERT INTO prorate_random VALUES (7, 1.123456789012, '[2020-01-01,2020-01-05)', '[2020-01-01,2020-02-01)');
SELECT count(*) AS groups,
       sum(n) AS rows,
       max(abs(agg - summed)) < 1e-14 AS agg_equals_sum,
       bool_and(round(agg, 2) = round(summed, 2)) AS same_cents
FROM (SELECT grp, count(*) AS n, prorate_agg(amount, part, whole) AS agg, sum(prorate(amount, part, whole)) AS summed
      FROM prorate_random GROUP BY grp) g;

-- one denominator per group (the engine's case: one subscription period) takes
-- an all-integer final step; it must agree with prorate() all the same
SELECT count(*) AS single_whole_groups,
       max(abs(agg - summed)) < 1e-15 AS agg_equals_sum,
       bool_and(round(agg, 2) = round(summed, 2)) AS same_cents
FROM (SELECT whole, prorate_agg(amount, part, whole) AS agg, sum(prorate(amount, part, whole)) AS summed
      FROM prorate_random GROUP BY whole) g;

-- Forced parallel plan: Partial Aggregate in workers, combined in the leader
ANALYZE prorate_random;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT prorate_agg(amount, part, whole) FROM prorate_random;
SELECT prorate_agg(amount, part, whole) AS parallel_result FROM prorate_random \gset
SET max_parallel_workers_per_gather = 0;
SELECT prorate_agg(amount, part, whole) = :'parallel_result' AS parallel_equals_serial FROM prorate_random;
EXPLAIN (COSTS OFF) SELECT grp, prorate_agg(amount, part, whole) FROM prorate_random GROUP BY grp;
RESET max_parallel_workers_per_gather;
DROP TABLE prorate_random;
