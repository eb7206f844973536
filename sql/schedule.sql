-- billing_periods() and cycle_period(): cycles, clamping, stubs, errors.
\i sql/include/session.psql

-- VECTORS.md "Billing periods"
SELECT * FROM billing_periods('2012-07-15', 'month', 1, '2012-07-16', '2012-11-15');
SELECT * FROM billing_periods('2012-07-17', 'month', 1, '2012-07-16', '2012-10-17');
SELECT * FROM billing_periods('2017-01-31', 'month', 1, '2017-01-31', '2017-04-30');
SELECT * FROM billing_periods('2012-01-30', 'month', 1, '2012-01-30', '2012-03-30');
SELECT * FROM billing_periods('2012-03-31', 'month', 1, '2012-04-30', '2012-05-31');
SELECT * FROM billing_periods('2011-02-13', 'year', 1, '2011-02-01', '2012-02-13');
SELECT * FROM billing_periods('2022-06-03', 'week', 1, '2022-06-03', '2022-06-24');

-- Clamping returns to the anchor day in longer months: Jan 31 -> Feb 28 -> Mar 31 -> Apr 30
SELECT * FROM billing_periods('2026-01-31', 'month', 1, '2026-01-31', '2026-06-30');

-- Cycle days 28, 29, 30, 31 across two years including the leap February of 2028
SELECT d AS cycle_day,
       string_agg(to_char(period_start(p), 'MM-DD'), ' ' ORDER BY p) AS period_starts,
       count(*) AS periods,
       sum(period_days(p)) AS days
FROM unnest(ARRAY[28, 29, 30, 31]) AS d,
     LATERAL billing_periods(make_date(2027, 1, d), 'month', 1, make_date(2027, 1, d), make_date(2029, 1, d)) AS p
GROUP BY d ORDER BY d;
SELECT d AS cycle_day, p
FROM unnest(ARRAY[28, 29, 30, 31]) AS d,
     LATERAL billing_periods(make_date(2027, 1, d), 'month', 1, '2028-01-15', '2028-04-15') AS p
ORDER BY d, p;
-- Every day of the window is covered exactly once, with no gaps
SELECT d AS cycle_day,
       bool_and(period_end(p) = lead_start OR lead_start IS NULL) AS contiguous,
       min(period_start(p)) AS first_day, max(period_end(p)) AS end_day
FROM (SELECT d, p, lead(period_start(p)) OVER (PARTITION BY d ORDER BY p) AS lead_start
      FROM unnest(ARRAY[28, 29, 30, 31]) AS d,
           LATERAL billing_periods(make_date(2027, 1, d), 'month', 1, '2027-01-01', '2029-01-01') AS p) s
GROUP BY d ORDER BY d;

-- Yearly on Feb 29 clamps to Feb 28 in common years and returns on leap years
SELECT * FROM billing_periods('2024-02-29', 'year', 1, '2024-02-29', '2029-01-01');
-- Quarterly (every 3 months), biweekly, every 10 days
SELECT * FROM billing_periods('2026-01-31', 'month', 3, '2026-01-01', '2027-01-01');
SELECT * FROM billing_periods('2026-01-05', 'week', 2, '2026-01-01', '2026-02-15');
SELECT * FROM billing_periods('2026-01-01', 'day', 10, '2026-01-01', '2026-02-01');
-- The anchor may lie after the window: the cycle extends backwards
SELECT * FROM billing_periods('2030-03-15', 'month', 1, '2026-01-01', '2026-03-01');
-- A window inside one period is one stub
SELECT * FROM billing_periods('2026-01-01', 'month', 1, '2026-01-10', '2026-01-20');
-- Empty window: no rows
SELECT count(*) AS empty_window FROM billing_periods('2026-01-01', 'month', 1, '2026-02-01', '2026-02-01');
SELECT count(*) AS reversed_window FROM billing_periods('2026-01-01', 'month', 1, '2026-03-01', '2026-02-01');
-- Edges of the supported range
SELECT * FROM billing_periods('0001-01-01', 'year', 1000, '0001-01-01', '3001-01-01');
SELECT * FROM billing_periods('9999-01-15', 'month', 1, '9999-11-01', '9999-12-31');
-- Many periods: 100 years of days in one call
SELECT count(*), min(period_start(p)), max(period_end(p)) FROM billing_periods('1950-01-01', 'day', 1, '1950-01-01', '2050-01-01') AS p;

-- cycle_period: the regular period containing a date (the "whole" of a stub)
SELECT cycle_period('2011-02-13', 'month', 1, '2011-02-01') AS leading_stub_whole,
       cycle_period('2025-03-05', 'month', 1, '2025-03-28') AS cycle_day_5,
       cycle_period('2017-01-31', 'month', 1, '2017-02-28') AS clamped,
       cycle_period('2011-02-13', 'year', 1, '2011-02-01') AS yearly,
       cycle_period('2011-02-13', 'month', 3, '2011-02-01') AS quarterly,
       cycle_period('2022-06-03', 'week', 1, '2022-06-02') AS weekly_before_anchor;

-- Errors
SELECT * FROM billing_periods('2026-01-01', 'fortnight', 1, '2026-01-01', '2026-02-01');
SELECT * FROM billing_periods('2026-01-01', 'Month', 1, '2026-01-01', '2026-02-01');
SELECT * FROM billing_periods('2026-01-01', 'month', 0, '2026-01-01', '2026-02-01');
SELECT * FROM billing_periods('2026-01-01', 'month', -3, '2026-01-01', '2026-02-01');
SELECT * FROM billing_periods('2026-01-01', 'month', 1001, '2026-01-01', '2026-02-01');
SELECT * FROM billing_periods('infinity', 'month', 1, '2026-01-01', '2026-02-01');
SELECT * FROM billing_periods('2026-01-01', 'month', 1, '-infinity', '2026-02-01');
SELECT * FROM billing_periods('2026-01-01', 'month', 1, '2026-01-01', 'infinity');
SELECT * FROM billing_periods('2026-01-01', 'month', 1, '2026-01-01', '10000-01-01');
SELECT cycle_period('2026-01-01', 'month', 1, 'infinity');
SELECT cycle_period('9999-12-15', 'month', 1, '9999-12-20');
SELECT count(*) AS null_args FROM billing_periods(NULL, 'month', 1, '2026-01-01', '2026-02-01');
