-- revenue_months(): the revenue split of one line (SPEC §6 "Revenue"): daily
-- over the service period [start, end) by calendar month, each month
-- round(amount x days in month / total days) to the currency's minor units
-- (half away from zero), the last month the remainder; no service period:
-- the whole amount in the document date's month.  revenue_schedule is a view
-- applying it to posted lines.
\i sql/include/session.psql
\set VERBOSITY default

-- The declaration: a set-returning, immutable C function; revenue_schedule a view
SELECT p.proname, p.provolatile, p.proretset, p.proisstrict, p.proparallel, l.lanname,
       pg_get_function_arguments(p.oid) AS arguments, pg_get_function_result(p.oid) AS result
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid = 'billing.revenue_months(numeric, billing.billing_period, date, int)'::regprocedure;
SELECT relname, relkind FROM pg_class WHERE oid = 'billing.revenue_schedule'::regclass;

-- SPEC vector: 100.00 over [2019-01-10,2019-03-16) = 22 + 28 + 15 = 65 days:
-- 100 x 22/65 = 33.846 -> 33.85, 100 x 28/65 = 43.077 -> 43.08, 100 - 76.93 = 23.07
SELECT * FROM revenue_months(100.00, '[2019-01-10,2019-03-16)', '2019-01-10', 2);
-- the same from the currency table's minor units, and the sum
SELECT count(*) AS months, sum(r.amount) AS total
FROM currency c, revenue_months(100.00, '[2019-01-10,2019-03-16)', '2019-01-10', c.minor_units) r
WHERE c.code = 'USD';

-- Negative amounts are split the same way, mirrored
SELECT * FROM revenue_months(-100.00, '[2019-01-10,2019-03-16)', '2019-01-10', 2);
-- half away from zero in both directions: 0.05 over 2 days, one in each month
-- (0.025 -> 0.03, the last 0.02; -0.025 -> -0.03, the last -0.02)
SELECT * FROM revenue_months(0.05, '[2019-01-31,2019-02-02)', '2019-01-31', 2);
SELECT * FROM revenue_months(-0.05, '[2019-01-31,2019-02-02)', '2019-01-31', 2);
-- zero stays zero
SELECT * FROM revenue_months(0.00, '[2019-01-10,2019-03-16)', '2019-01-10', 2);

-- One day: one row
SELECT * FROM revenue_months(12.34, '[2024-02-29,2024-03-01)', '2024-02-29', 2);
SELECT * FROM revenue_months(12.34, '[2024-12-31,2025-01-01)', '2024-12-31', 2);

-- Inside one month: one row, the whole amount (the end is exclusive, so a
-- period ending on the 1st has no row for that month)
SELECT * FROM revenue_months(50.00, '[2024-04-05,2024-04-20)', '2024-04-05', 2);
SELECT * FROM revenue_months(50.00, '[2024-04-01,2024-05-01)', '2024-04-01', 2);
SELECT * FROM revenue_months(50.00, '[2024-03-15,2024-04-01)', '2024-03-15', 2);

-- Crossing a year end: 31 days, 15 in December (100 x 15/31 = 48.387 -> 48.39), January 51.61
SELECT * FROM revenue_months(100.00, '[2023-12-17,2024-01-17)', '2023-12-17', 2);

-- Two years, [2023-03-01,2025-03-01) = 366 + 365 = 731 days at exactly 10.00 a day:
-- every month is 10.00 x its days (Feb 2024 290.00, Feb 2025 280.00)
SELECT * FROM revenue_months(7310.00, '[2023-03-01,2025-03-01)', '2023-03-01', 2);
-- two years from mid-month, 1000.00 over [2024-01-15,2026-01-15) = 731 days: 25 months
SELECT * FROM revenue_months(1000.00, '[2024-01-15,2026-01-15)', '2024-01-15', 2);

-- Leap February: 29 days of it; 59.00 from the 15th for a month is 15/29 in a
-- leap year (30.5172 -> 30.52) and 14/28 otherwise (29.50)
SELECT * FROM revenue_months(290.00, '[2024-02-01,2024-03-01)', '2024-02-01', 2);
SELECT * FROM revenue_months(59.00, '[2024-02-15,2024-03-15)', '2024-02-15', 2);
SELECT * FROM revenue_months(59.00, '[2023-02-15,2023-03-15)', '2023-02-15', 2);

-- JPY, no minor unit: 1000 x 22/65 = 338.46 -> 338, 1000 x 28/65 = 430.77 -> 431, 231;
-- 5 over two days: 2.5 -> 3, the last 2
SELECT * FROM revenue_months(1000, '[2019-01-10,2019-03-16)', '2019-01-10',
                             (SELECT minor_units FROM currency WHERE code = 'JPY'));
SELECT * FROM revenue_months(5, '[2019-01-31,2019-02-02)', '2019-01-31', 0);
-- KWD, three: 100 x 22/65 = 33.84615 -> 33.846, 100 x 28/65 = 43.07692 -> 43.077, 23.077
SELECT * FROM revenue_months(100.000, '[2019-01-10,2019-03-16)', '2019-01-10',
                             (SELECT minor_units FROM currency WHERE code = 'KWD'));
SELECT * FROM revenue_months(1.000, '[2019-01-10,2019-03-16)', '2019-01-10', 3);

-- No service period: the whole amount in the document date's month
SELECT * FROM revenue_months(100.00, NULL, '2019-05-17', 2);
SELECT * FROM revenue_months(-7.50, NULL, '2024-12-31', 2);
SELECT * FROM revenue_months(1000, NULL, '2024-01-01', 0);

-- Any other NULL argument: no rows
SELECT count(*) AS null_amount FROM revenue_months(NULL, '[2019-01-10,2019-03-16)', '2019-01-10', 2);
SELECT count(*) AS null_document_date FROM revenue_months(100.00, '[2019-01-10,2019-03-16)', NULL, 2);
SELECT count(*) AS null_minor_units FROM revenue_months(100.00, '[2019-01-10,2019-03-16)', '2019-01-10', NULL);
SELECT count(*) AS null_period_and_date FROM revenue_months(100.00, NULL, NULL, 2);
SELECT count(*) AS all_null FROM revenue_months(NULL, NULL, NULL, NULL);

-- minor_units must be 0 .. 18
SELECT * FROM revenue_months(100.00, '[2019-01-10,2019-03-16)', '2019-01-10', -1);
SELECT * FROM revenue_months(100.00, '[2019-01-10,2019-03-16)', '2019-01-10', 19);
SELECT * FROM revenue_months(100.00, NULL, '2019-01-10', 2147483647);
DO $$
DECLARE
	mu int;
	state text;
	msg text;
	detail text;
BEGIN
	FOREACH mu IN ARRAY ARRAY[-2147483648, -1, 19, 2147483647] LOOP
		BEGIN
			PERFORM * FROM billing.revenue_months(1, '[2019-01-10,2019-03-16)', '2019-01-10', mu);
			state := 'no error';
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
		END;
		RAISE NOTICE '% -> % "%" "%"', mu, state, msg, detail;
	END LOOP;
END $$;
-- the bounds themselves are fine: 1 over 65 days to 18 decimals
-- (22/65 = 0.338461538461538461|538 -> ...462, 28/65 = 0.430769230769230769|230 -> ...769)
SELECT * FROM revenue_months(1, '[2019-01-10,2019-03-16)', '2019-01-10', 18);
SELECT * FROM revenue_months(1, '[2019-01-10,2019-03-16)', '2019-01-10', 0);

-- An amount with more decimals than the currency (or too large for a scaled
-- 64-bit integer) takes the numeric path: the same rounding, and the last month
-- keeps every decimal, so the months still sum exactly to the amount.
-- 100.005 x 22/65 = 33.8478 -> 33.85, x 28/65 = 43.0790 -> 43.08, last 23.075
SELECT * FROM revenue_months(100.005, '[2019-01-10,2019-03-16)', '2019-01-10', 2);
SELECT * FROM revenue_months(-100.005, '[2019-01-10,2019-03-16)', '2019-01-10', 2);
-- Every month but the last is a rounded amount with exactly minor_units
-- decimals, as round() and round_money() give it, whichever path computed it;
-- the last keeps the amount's decimals.
-- 59.001 over 31 + 28 days: 59.001 x 31/59 = 31.00053 -> 31.00, last 28.001
SELECT period_month, amount, scale(amount) FROM revenue_months(59.001, '[2019-01-01,2019-03-01)', '2019-01-01', 2);
SELECT sum(amount) AS total FROM revenue_months(59.001, '[2019-01-01,2019-03-01)', '2019-01-01', 2);
-- 59.00 (exact path) for comparison: 31.00, 28.00
SELECT period_month, amount, scale(amount) FROM revenue_months(59.00, '[2019-01-01,2019-03-01)', '2019-01-01', 2);
-- 2 x 10^17 to the cent (numeric path, too large for int64) over one day in each month: 10^17.00 each
SELECT period_month, amount, scale(amount)
FROM revenue_months(200000000000000000.00, '[2019-01-31,2019-02-02)', '2019-01-31', 2);
-- 10^17 to the cent is 10^19 units, beyond int64:
-- 10^17 x 22/65 = 33846153846153846.1538 -> .15, x 28/65 = 43076923076923076.9230 -> .92
SELECT * FROM revenue_months(100000000000000000.00, '[2019-01-10,2019-03-16)', '2019-01-10', 2);
-- 10 to 18 decimals is 10^19 units too: the same digits as 1 above, times ten
SELECT * FROM revenue_months(10, '[2019-01-10,2019-03-16)', '2019-01-10', 18);
-- the widest period: 9999 years of months, summing exactly
SELECT count(*) AS months, min(period_month), max(period_month), sum(amount) AS total
FROM revenue_months(1000000.00, '[0001-01-01,9999-12-31)', '0001-01-01', 2);

-- 10,000 random lines: amounts of both signs with 0 .. 18 minor units (one in
-- ten with up to three decimals more than the currency), periods from one day
-- to ten years (one in fifty without a period).  For each: the months are
-- exactly the calendar months the period touches, each the first of its
-- month; every month but the last is round(amount x days / total days,
-- minor_units) computed here in plain SQL (the quotient carried to 40
-- decimals, so round() sees an exact half as such), with minor_units
-- decimals; the months sum exactly to the amount.
SELECT setseed(0.19);
CREATE TEMP TABLE rm_case AS
SELECT i, mu, document_date,
       round(((random() * 2 - 1) * power(10, floor(random() * 8)))::numeric,
             mu + CASE WHEN i % 10 = 0 THEN 1 + floor(random() * 3)::int ELSE 0 END) AS amount,
       CASE WHEN i % 50 = 0 THEN NULL
            ELSE billing_period(document_date,
                                document_date + 1 + floor(random() * CASE WHEN i % 20 = 1 THEN 3653
                                                                          WHEN i % 4 = 1 THEN 800
                                                                          ELSE 120 END)::int)
       END AS period
FROM (SELECT i, (ARRAY[0, 2, 2, 2, 3, 4, 6, 18])[1 + floor(random() * 8)::int] AS mu,
             date '1995-01-01' + floor(random() * 12000)::int AS document_date
      FROM generate_series(1, 10000) AS i) c;
-- the calendar months each line should have, in plain SQL
CREATE TEMP TABLE rm_expected AS
SELECT c.i, m::date AS period_month,
       least(period_end(p.p), (m + interval '1 month')::date) - greatest(period_start(p.p), m::date) AS days,
       period_days(p.p) AS total_days,
       m::date = date_trunc('month', (period_end(p.p) - 1)::timestamp)::date AS last
FROM rm_case c,
     LATERAL (SELECT coalesce(c.period, billing_period(c.document_date, c.document_date + 1)) AS p) p,
     LATERAL generate_series(date_trunc('month', period_start(p.p)::timestamp),
                             (period_end(p.p) - 1)::timestamp, interval '1 month') AS m;
CREATE TEMP TABLE rm_actual AS
SELECT c.i, r.period_month, r.amount
FROM rm_case c, LATERAL revenue_months(c.amount, c.period, c.document_date, c.mu) r;
SELECT count(*) AS lines,
       count(*) FILTER (WHERE amount < 0) > 1000 AS negatives,
       count(*) FILTER (WHERE scale(amount) > mu) > 500 AS numeric_path,
       count(*) FILTER (WHERE period IS NULL) > 100 AS without_period,
       count(*) FILTER (WHERE period_days(period) = 1) > 0 AS one_day,
       count(*) FILTER (WHERE period_days(period) > 1000) > 100 AS multi_year,
       count(DISTINCT mu) AS minor_unit_kinds
FROM rm_case;
SELECT count(*) AS month_rows,
       count(*) FILTER (WHERE e.i IS NULL) AS unexpected_months,
       count(*) FILTER (WHERE a.i IS NULL) AS missing_months,
       bool_and(extract(day FROM a.period_month) = 1) AS first_of_month,
       bool_and(a.amount = round((c.amount * e.days)::numeric(1000, 40) / e.total_days, c.mu))
           FILTER (WHERE NOT e.last) AS non_last_months_rounded,
       bool_and(scale(a.amount) = c.mu) FILTER (WHERE NOT e.last) AS non_last_months_minor_unit_scale
FROM rm_actual a
FULL JOIN rm_expected e ON e.i = a.i AND e.period_month = a.period_month
LEFT JOIN rm_case c ON c.i = coalesce(a.i, e.i);
SELECT count(*) AS lines_checked,
       count(*) FILTER (WHERE s.total IS DISTINCT FROM c.amount) AS sums_not_exact,
       count(*) FILTER (WHERE s.months > 1) > 5000 AS multi_month,
       count(*) FILTER (WHERE s.first_month < date_trunc('month', period_start(coalesce(c.period, billing_period(c.document_date, c.document_date + 1)))::timestamp)
                          OR s.last_month >= period_end(coalesce(c.period, billing_period(c.document_date, c.document_date + 1))))
           AS months_outside_period
FROM rm_case c
LEFT JOIN (SELECT i, sum(amount) AS total, count(*) AS months, min(period_month) AS first_month,
                  max(period_month) AS last_month
           FROM rm_actual GROUP BY i) s ON s.i = c.i;
