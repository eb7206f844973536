-- round_money(), allocate() and the currency table.
\i sql/include/session.psql

-- The seed: active ISO 4217 currencies
SELECT count(*) >= 150 AS seeded, count(*) FILTER (WHERE NOT builtin) AS user_rows FROM currency;
SELECT code, minor_units FROM currency WHERE code IN ('USD', 'EUR', 'JPY', 'KWD', 'BHD', 'CLF', 'CLP', 'ISK', 'UYW', 'GBP', 'CHF') ORDER BY code;
SELECT minor_units, count(*) FROM currency GROUP BY minor_units ORDER BY minor_units;

-- round_money: half away from zero, to the minor unit, with that many decimals
SELECT round_money(3.875, 'USD') AS usd_up, round_money(-3.875, 'USD') AS usd_neg,
       round_money(3.874999, 'USD') AS usd_down, round_money(2.5, 'JPY') AS jpy_half,
       round_money(-2.5, 'JPY') AS jpy_neg_half, round_money(1.0005, 'KWD') AS kwd,
       round_money(7, 'USD') AS usd_scale, round_money(0.00005, 'CLF') AS clf;
SELECT round_money(amount, 'USD') FROM (VALUES (0.005), (0.015), (0.025), (-0.005), (1.004999999999)) v(amount);

-- allocate: largest remainder, ties to the earlier part
SELECT allocate(100, '{1,1,1}', 'USD') AS thirds,
       allocate(-100, '{1,1,1}', 'USD') AS negative_thirds,
       allocate(0.05, '{1,1,1}', 'USD') AS tie_goes_first,
       allocate(10, '{1,1,1}', 'JPY') AS yen,
       allocate(1, '{1,1,1}', 'KWD') AS dinar,
       allocate(100, '{0,0,1}', 'USD') AS zero_weights,
       allocate(100, '{3}', 'USD') AS single,
       allocate(0, '{1,2}', 'USD') AS zero_total,
       allocate(100, '{0.5,0.25,0.25}', 'USD') AS fractional_weights,
       allocate(10, '{1,2,3,4}', 'USD') AS exact_split;
-- largest remainder, not first come: 1.00 by 0.333 / 0.333 / 0.334 -> the last has the largest remainder
SELECT allocate(1, '{0.333,0.333,0.334}', 'USD') AS largest_remainder,
       allocate(0.10, '{3,3,3,1}', 'USD') AS remainders_3_3_3_1;

-- 10,000 random splits in currencies with 0, 2 and 3 minor units: parts sum exactly,
-- none negative, each within one minor unit of its exact share
SELECT setseed(0.31);
CREATE TEMP TABLE split AS
SELECT i, cur, mu, total, weights, allocate(total, weights, cur) AS parts
FROM (SELECT i, cur, mu,
             round((random() * 100000)::numeric, mu) AS total,
             ARRAY(SELECT round((random() * 1000)::numeric, (random() * 3)::int)
                   FROM generate_series(1, 1 + (random() * 12)::int + 0 * i)) AS weights
      FROM generate_series(1, 10000) AS i,
           LATERAL (SELECT (ARRAY['JPY', 'USD', 'KWD'])[1 + i % 3] AS cur) c,
           LATERAL (SELECT minor_units AS mu FROM currency WHERE code = c.cur) m) r
WHERE (SELECT sum(w) FROM unnest(weights) w) > 0;
SELECT count(*) AS splits,
       count(DISTINCT cur) AS currencies,
       bool_and((SELECT sum(p) FROM unnest(parts) p) = total) AS sums_exact,
       bool_and((SELECT min(p) FROM unnest(parts) p) >= 0) AS none_negative,
       bool_and(array_length(parts, 1) = array_length(weights, 1)) AS same_length,
       bool_and((SELECT bool_and(scale(p) = mu) FROM unnest(parts) p)) AS minor_unit_scale,
       bool_and((SELECT bool_and(abs(p - total * w / (SELECT sum(x) FROM unnest(weights) x)) < power(10::numeric, -mu))
                 FROM unnest(parts, weights) AS u(p, w))) AS within_one_unit
FROM split;

-- Errors: unknown currency, bad totals, bad weights
SELECT round_money(1, 'XYZ');
SELECT round_money(1, 'usd');
SELECT round_money(1, 'A-VERY-LONG-CURRENCY-CODE');
SELECT round_money('NaN', 'USD');
SELECT round_money('Infinity', 'USD');
SELECT allocate(10.005, '{1,1}', 'USD');
SELECT allocate(10.5, '{1,1}', 'JPY');
SELECT allocate(10, '{}', 'USD');
SELECT allocate(10, '{1,NULL}', 'USD');
SELECT allocate(10, '{1,-1,2}', 'USD');
SELECT allocate(10, '{0,0}', 'USD');
SELECT allocate(10, '{{1,2},{3,4}}', 'USD');
SELECT allocate(10, '{1,NaN}', 'USD');
SELECT allocate(10, '{1}', 'XYZ');
SELECT allocate('NaN', '{1}', 'USD');

-- The currency table rejects bad rows
INSERT INTO currency (code, minor_units) VALUES ('usd', 2);
INSERT INTO currency (code, minor_units) VALUES ('ABC', 7);
INSERT INTO currency (code, minor_units) VALUES ('USD', 2);
SELECT count(*) AS no_rows_written FROM currency WHERE NOT builtin;

-- A user-defined currency is used at once, and only it is dumped by pg_dump
BEGIN;
INSERT INTO currency (code, minor_units) VALUES ('XTS', 4);
SELECT round_money(1.23456, 'XTS') AS test_currency;
ROLLBACK;
SELECT x.cond AS currency_dump_filter
FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(rel, cond)
WHERE e.extname = 'billing' AND x.rel = 'billing.currency'::regclass;
