-- Money is a finite number: NaN, Infinity and -Infinity are refused by the C
-- functions (22003, numeric_check_finite) and by a check on every numeric
-- column of every billing table (23514, src/sql/95_finite_numbers.sql).
\i sql/include/session.psql
\set VERBOSITY default

-- C functions: the amount argument, on every path (exact and numeric)
SELECT prorate('NaN', '[2026-01-01,2026-01-11)', '[2026-01-01,2026-02-01)');
SELECT prorate('Infinity', '[2026-01-01,2026-02-01)', '[2026-01-01,2026-02-01)');
-- disjoint periods return 0 for any finite amount, but not for a non-finite one
SELECT prorate('-Infinity', '[2026-03-01,2026-03-11)', '[2026-01-01,2026-02-01)');
SELECT prorate_agg(a, '[2026-01-01,2026-01-11)', '[2026-01-01,2026-02-01)')
FROM (VALUES (10.00), ('NaN'::numeric)) v(a);
SELECT * FROM revenue_months('Infinity', '[2026-01-01,2026-03-11)', '2026-01-01', 2);
SELECT * FROM revenue_months('NaN', NULL, '2026-01-01', 2);
SELECT round_money('-Infinity', 'USD');
SELECT allocate('NaN', ARRAY[1, 2], 'USD');
SELECT allocate(10.00, ARRAY[1, 'Infinity']::numeric[], 'USD');
-- finite amounts still pass
SELECT prorate(31.00, '[2026-01-01,2026-01-11)', '[2026-01-01,2026-02-01)') AS ten_days;

-- Tables: each numeric column has a check named <table>_<column>_finite
SELECT c.relname, a.attname,
       EXISTS (SELECT 1 FROM pg_constraint k
               WHERE k.conrelid = c.oid AND k.conname = c.relname || '_' || a.attname || '_finite'
                 AND pg_get_constraintdef(k.oid) = format('CHECK (((%I > ''-Infinity''::numeric) AND (%I < ''Infinity''::numeric)))',
                                                          a.attname, a.attname)) AS checked
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind = 'r'
  AND a.atttypid = 'numeric'::regtype AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY 1, 2;

-- and refuses them: NaN passes "unit_amount >= 0" and "scale(unit_amount) <= 6"
-- (terse: the failing row's DETAIL holds generated ids)
\set VERBOSITY terse
INSERT INTO product (code, name) VALUES ('finite', 'Finite');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, unit_amount)
SELECT product_id, 'finite-nan', 'USD', 'recurring', 'month', 'in_advance', 'NaN' FROM product WHERE code = 'finite';
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, unit_amount)
SELECT product_id, 'finite-inf', 'USD', 'recurring', 'month', 'in_advance', 'Infinity' FROM product WHERE code = 'finite';
INSERT INTO tax_rate (region, rate, valid_from) VALUES ('XX', 'NaN', '2026-01-01');
SELECT count(*) AS prices_written FROM price WHERE code LIKE 'finite-%';
SELECT count(*) AS rates_written FROM tax_rate WHERE region = 'XX';
DELETE FROM product WHERE code = 'finite';
