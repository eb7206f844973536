-- Money and quantities are finite numbers.  NaN passes "amount > 0" (it sorts
-- above every number) and "scale(x) <= 6" (scale(NaN) is NULL), so before the
-- checks of src/sql/95_finite_numbers.sql a NaN or an Infinity could be
-- stored.  Each entry point is tried with them: its SQLSTATE (22003 from the
-- money functions, 23514 from a table check)
-- and nothing written; then a run and check_integrity() over what is left.
BEGIN;
\ir include/session.sql

SELECT plan(25);

\ir include/lookups.sql
CREATE FUNCTION pg_temp.sub(key text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT min(subscription_id) FROM billing.subscription WHERE account_id = pg_temp.acct(key) $$;
-- what is written, as one text to compare before and after a refused call
CREATE FUNCTION pg_temp.written() RETURNS text LANGUAGE sql STABLE
AS $$ SELECT format('payments %s, allocations %s, documents %s, lines %s, changes %s, usage %s, subscriptions %s, prices %s, tax rates %s',
					(SELECT count(*) FROM billing.payment), (SELECT count(*) FROM billing.allocation),
					(SELECT count(*) FROM billing.invoice), (SELECT count(*) FROM billing.invoice_line),
					(SELECT count(*) FROM billing.subscription_change), (SELECT count(*) FROM billing.usage_record),
					(SELECT string_agg(format('%s:%s', quantity, coalesce(unit_amount::text, '-')), ',' ORDER BY subscription_id)
					 FROM billing.subscription),
					(SELECT count(*) FROM billing.price), (SELECT count(*) FROM billing.tax_rate)) $$;
-- two tests: the statement fails with this SQLSTATE, and nothing changed
CREATE FUNCTION pg_temp.refused(stmt text, errcode text, description text) RETURNS SETOF text LANGUAGE sql
AS $$ SELECT pg_temp.refused_unchanged(stmt, errcode, NULL, description, 'SELECT pg_temp.written()') $$;

INSERT INTO product (code, name) VALUES ('plan', 'Plan');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT product_id, v.code, 'USD', v.charge_type, 'month', v.timing, 'per_unit', 10
FROM product, (VALUES ('m10', 'recurring', 'in_advance'), ('u10', 'usage', 'in_arrears')) v(code, charge_type, timing)
WHERE product.code = 'plan';
INSERT INTO account (external_key, name, currency) VALUES ('f', 'Finite', 'USD');
INSERT INTO subscription (account_id, price_id, start_date)
SELECT pg_temp.acct('f'), pg_temp.price(p), '2026-01-01' FROM unnest(ARRAY['m10', 'u10']) p;
SELECT is((SELECT lines FROM run_invoice_batch('2026-01-01')), 1::bigint, 'January billed: one recurring line');

-- payments and documents: the money functions refuse them
SELECT pg_temp.refused($$SELECT record_payment(pg_temp.acct('f'), 'NaN', '2026-01-05')$$, '22003',
	'record_payment of NaN');
SELECT pg_temp.refused($$SELECT record_payment(pg_temp.acct('f'), '-Infinity', '2026-01-05')$$, '22003',
	'record_payment of -Infinity');
SELECT pg_temp.refused($$SELECT * FROM record_payments(ARRAY[pg_temp.acct('f'), pg_temp.acct('f')], ARRAY[5, 'Infinity']::numeric[])$$,
	'22003', 'record_payments with one Infinity among finite amounts');
SELECT pg_temp.refused($$SELECT issue_debit_note(pg_temp.acct('f'), 'Infinity', 'late fee', '2026-01-05')$$, '22003',
	'issue_debit_note of Infinity');

-- terms and usage: the table checks refuse them
SELECT pg_temp.refused($$SELECT change_subscription(pg_temp.sub('f'), '2026-01-15', quantity => 'Infinity')$$, '23514',
	'change_subscription to quantity Infinity');
SELECT pg_temp.refused($$SELECT change_subscription(pg_temp.sub('f'), '2026-01-15', unit_amount => 'NaN')$$, '23514',
	'change_subscription to unit amount NaN');
SELECT pg_temp.refused($$INSERT INTO usage_record (account_id, subscription_id, quantity, occurred_at)
	VALUES (pg_temp.acct('f'), (SELECT max(subscription_id) FROM subscription WHERE account_id = pg_temp.acct('f')), 'NaN', '2026-01-10')$$,
	'23514', 'usage of NaN');
SELECT pg_temp.refused($$INSERT INTO subscription (account_id, price_id, quantity, start_date)
	VALUES (pg_temp.acct('f'), pg_temp.price('m10'), 'NaN', '2026-01-01')$$, '23514', 'a subscription of quantity NaN');
SELECT pg_temp.refused($$INSERT INTO price (product_id, code, currency, charge_type, pricing_model, unit_amount, package_size)
	SELECT product_id, 'pk', 'USD', 'one_time', 'package', 10, 'Infinity' FROM product WHERE code = 'plan'$$, '23514',
	'a package price of package size Infinity');
SELECT pg_temp.refused($$INSERT INTO tax_rate (region, rate) VALUES ('CA', 'NaN')$$, '23514',
	'a tax rate of NaN');

-- finite values still pass, and the book stays whole
SELECT lives_ok($$SELECT change_subscription(pg_temp.sub('f'), '2026-01-15', quantity => 3)$$, 'a finite quantity is taken');
SELECT lives_ok($$INSERT INTO usage_record (account_id, subscription_id, quantity, occurred_at)
	VALUES (pg_temp.acct('f'), (SELECT max(subscription_id) FROM subscription WHERE account_id = pg_temp.acct('f')), 7, '2026-01-10')$$,
	'finite usage is taken');
SELECT is((SELECT lines FROM run_invoice_batch('2026-02-01')), 4::bigint,
	'February: proration credit and charge, usage, next period');
SELECT is_empty($$SELECT * FROM check_integrity()$$, 'integrity after the refused and accepted values');

SELECT * FROM finish();
ROLLBACK;
