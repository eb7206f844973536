-- Behaviour of the C core as a finance user relies on it: VECTORS.md rows,
-- error SQLSTATEs, and invariants (parts sum to wholes, periods tile time).
BEGIN;
\ir include/session.sql

SELECT plan(41);

-- VECTORS.md "Billing periods"
SELECT results_eq(
	$$SELECT p::text FROM billing_periods('2012-07-15', 'month', 1, '2012-07-16', '2012-11-15') p$$,
	ARRAY['[2012-07-16,2012-08-15)', '[2012-08-15,2012-09-15)', '[2012-09-15,2012-10-15)', '[2012-10-15,2012-11-15)'],
	'anchor 07-15 monthly from 07-16: leading stub to the cycle day');
SELECT results_eq(
	$$SELECT p::text FROM billing_periods('2012-07-17', 'month', 1, '2012-07-16', '2012-10-17') p$$,
	ARRAY['[2012-07-16,2012-07-17)', '[2012-07-17,2012-08-17)', '[2012-08-17,2012-09-17)', '[2012-09-17,2012-10-17)'],
	'anchor 07-17 monthly from 07-16: one-day stub');
SELECT results_eq(
	$$SELECT p::text FROM billing_periods('2017-01-31', 'month', 1, '2017-01-31', '2017-04-30') p$$,
	ARRAY['[2017-01-31,2017-02-28)', '[2017-02-28,2017-03-31)', '[2017-03-31,2017-04-30)'],
	'cycle day 31 clamps to Feb 28 and returns to 31');
SELECT results_eq(
	$$SELECT p::text FROM billing_periods('2012-01-30', 'month', 1, '2012-01-30', '2012-03-30') p$$,
	ARRAY['[2012-01-30,2012-02-29)', '[2012-02-29,2012-03-30)'],
	'cycle day 30 in a leap February');
SELECT results_eq(
	$$SELECT p::text FROM billing_periods('2012-03-31', 'month', 1, '2012-04-30', '2012-05-31') p$$,
	ARRAY['[2012-04-30,2012-05-31)'],
	'returns to 31 after a 30-day month');
SELECT results_eq(
	$$SELECT p::text FROM billing_periods('2011-02-13', 'year', 1, '2011-02-01', '2012-02-13') p$$,
	ARRAY['[2011-02-01,2011-02-13)', '[2011-02-13,2012-02-13)'],
	'yearly with a leading stub');
SELECT results_eq(
	$$SELECT p::text FROM billing_periods('2022-06-03', 'week', 1, '2022-06-03', '2022-06-24') p$$,
	ARRAY['[2022-06-03,2022-06-10)', '[2022-06-10,2022-06-17)', '[2022-06-17,2022-06-24)'],
	'weekly from a Friday');

-- VECTORS.md "Proration" as factors: round(rate x factor) per line
CREATE TEMP TABLE proration_vector (rate numeric, unit text, cnt int, anchor date, start_date date,
									end_date date, target date, expected numeric[]) ON COMMIT DROP;
INSERT INTO proration_vector VALUES
	(10, 'month', 1, '2011-02-13', '2011-02-01', NULL,         '2011-02-01', '{3.87}'),
	(10, 'month', 1, '2011-02-13', '2011-02-01', NULL,         '2011-02-13', '{3.87,10.00}'),
	(10, 'month', 1, '2011-02-13', '2011-02-01', NULL,         '2011-04-13', '{3.87,10.00,10.00,10.00}'),
	(10, 'month', 1, '2011-02-13', '2011-02-01', '2011-04-13', '2011-04-10', '{3.87,10.00,10.00}'),
	(10, 'month', 1, '2010-06-17', '2010-06-17', '2010-07-25', '2010-07-17', '{10.00,2.58}'),
	(10, 'month', 1, '2011-01-15', '2011-01-01', '2011-02-27', '2011-02-26', '{4.52,10.00,4.29}'),
	(10, 'month', 1, '2011-01-01', '2011-01-01', '2011-01-15', '2011-01-01', '{4.52}'),
	(10, 'month', 1, '2012-02-01', '2012-02-01', '2012-02-15', '2012-02-19', '{4.83}'),
	(100, 'year', 1, '2011-02-13', '2011-02-01', NULL,         '2011-02-01', '{3.29}'),
	(100, 'month', 3, '2011-02-13', '2011-02-01', NULL,        '2011-02-01', '{13.04}');
-- in advance: every period that starts on or before the target date, each line
-- round_money(prorate(rate, period, cycle period containing it))
SELECT is(
	(SELECT array_agg(round_money(prorate(v.rate, p, cycle_period(v.anchor, v.unit, v.cnt, period_start(p))), 'USD') ORDER BY p)
	 FROM billing_periods(v.anchor, v.unit, v.cnt, v.start_date, coalesce(v.end_date, v.target + 400)) p
	 WHERE period_start(p) <= v.target),
	v.expected,
	format('%s/%s%s from %s%s, cycle anchor %s, target %s', v.rate, v.cnt, v.unit, v.start_date,
		   coalesce(' to ' || v.end_date, ''), v.anchor, v.target))
FROM proration_vector v;
SELECT is(
	(SELECT sum(round_money(prorate(90, p, cycle_period('2025-04-05', 'month', 1, period_start(p))), 'USD'))
	 FROM billing_periods('2025-04-05', 'month', 1, '2025-03-28', '2026-02-05') p
	 WHERE period_start(p) <= '2026-02-05'),
	923.23::numeric, '90/month from 2025-03-28, cycle day 5, to 2026-02-05: 23.23 + 10 x 90.00');

-- prorate / prorate_agg invariants
SELECT is(prorate(10, '[2011-09-16,2011-10-01)', '[2011-09-01,2011-10-01)'), 5::numeric,
		  'unused 15/30 of a $10 September is 5.00 (the cancellation credit)');
SELECT is(prorate(10, '[2011-10-01,2011-11-01)', '[2011-09-01,2011-10-01)'), 0::numeric, 'disjoint is 0');
SELECT is((SELECT prorate_agg(10, p, '[2026-02-01,2026-03-01)')
		   FROM billing_periods('2026-02-01', 'day', 1, '2026-02-01', '2026-03-01') p),
		  10::numeric, 'prorate_agg over the days of a period is exactly the full amount');
SELECT is((SELECT prorate_agg(a, p, w) FROM (SELECT 1::numeric a, NULL::billing_period p, NULL::billing_period w WHERE false) s),
		  NULL, 'prorate_agg over no rows is NULL');
-- one row per group, random amounts (0 to 6 decimals, up to 10^13, both
-- signs) and parts of a period (overlapping, inside or not): the fast path's
-- rounding and trailing zeros against
-- numeric division at 30 decimals rounded to 20 (SPEC: exact to 20 places)
SELECT setseed(0.3);
SELECT is((SELECT count(*) FROM (
			SELECT prorate_agg(x.amount, billing_period(x.s, x.e), billing_period(x.ws, x.we)) AS got,
				   trim_scale(round((x.amount * greatest(least(x.e, x.we) - greatest(x.s, x.ws), 0))::numeric(60, 30) / (x.we - x.ws), 20)) AS want
			FROM (SELECT g, round((random() * 10 ^ (1 + floor(random() * 12)))::numeric, floor(random() * 7)::int)
							* CASE WHEN random() < 0.3 THEN -1 ELSE 1 END AS amount,
						 d AS s, d + 1 + floor(random() * 40)::int AS e, w AS ws, w + 41 + floor(random() * 400)::int AS we
				  FROM generate_series(1, 20000) g,
					   LATERAL (SELECT date '2024-01-01' + floor(random() * 40)::int AS d, date '2023-12-01' AS w OFFSET 0) dw) x
			GROUP BY x.g, x.amount, x.s, x.e, x.ws, x.we) r
		   WHERE r.got IS DISTINCT FROM r.want),
		  0::bigint, 'prorate_agg of 20,000 random amounts and periods equals numeric division, to the last digit');

-- Money invariants
SELECT is(round_money(2.5, 'JPY'), 3::numeric, 'JPY rounds half away from zero to 0 decimals');
SELECT is(round_money(-0.005, 'USD'), -0.01::numeric, 'negative half rounds away from zero');
SELECT is(round_money(1.0005, 'KWD'), 1.001::numeric, 'KWD keeps 3 decimals');
SELECT is(allocate(100, '{1,1,1}', 'USD'), '{33.34,33.33,33.33}'::numeric[], 'thirds of 100.00');
SELECT is((SELECT sum(x) FROM unnest(allocate(1234.57, '{7,3,11,0,5}', 'USD')) x), 1234.57::numeric,
		  'parts sum exactly to the whole');

-- Error SQLSTATEs
SELECT throws_ok($$SELECT 'garbage'::billing.billing_period$$, '22P02',
	'invalid input syntax for type billing_period: "garbage"', 'bad literal: 22P02');
SELECT throws_ok($$SELECT '[2026-02-30,2026-03-01)'::billing.billing_period$$, '22008',
	NULL, 'impossible date: 22008');
SELECT throws_ok($$SELECT billing.billing_period('2026-02-01', '2026-01-01')$$, '22000',
	'billing_period start must be before its end', 'start after end: 22000');
SELECT throws_ok($$SELECT billing.billing_period('2026-02-01', '2026-02-01')$$, '22000',
	'billing_period start must be before its end', 'empty period: 22000');
SELECT throws_ok($$SELECT billing.billing_period('2026-02-01', 'infinity')$$, '22008',
	'billing_period end must be a finite date', 'infinity: 22008');
SELECT throws_ok($$SELECT * FROM billing.billing_periods('2026-01-01', 'fortnight', 1, '2026-01-01', '2026-03-01')$$,
	'22023', 'invalid billing interval unit: "fortnight"', 'bad unit: 22023');
SELECT throws_ok($$SELECT * FROM billing.billing_periods('2026-01-01', 'month', 0, '2026-01-01', '2026-03-01')$$,
	'22023', 'billing interval count must be between 1 and 1000', 'count 0: 22023');
SELECT throws_ok($$SELECT billing.round_money(1, 'XYZ')$$, '22023', 'unknown currency "XYZ"', 'unknown currency: 22023');
SELECT throws_ok($$SELECT billing.allocate(10.005, '{1,1}', 'USD')$$, '22023',
	'total 10.005 is not a whole number of minor units of USD', 'sub-cent total: 22023');
SELECT throws_ok($$SELECT billing.allocate(10, '{1,-1}', 'USD')$$, '22023', 'weights must not be negative',
	'negative weight: 22023');
SELECT throws_ok($$SELECT billing.allocate(10, '{1,NULL}', 'USD')$$, '22004', 'weights must not contain NULL',
	'NULL weight: 22004');
SELECT throws_ok($$INSERT INTO billing.currency (code, minor_units) VALUES ('usd', 2)$$, '23514', NULL,
	'lower-case currency code: 23514');
SELECT is((SELECT count(*) FROM billing.currency WHERE NOT builtin), 0::bigint, 'the failed insert wrote nothing');

SELECT * FROM finish();
ROLLBACK;
