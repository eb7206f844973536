-- Loud, atomic errors (SPEC principle 6): every bad input raises its standard
-- SQLSTATE and writes nothing.  pg_temp.rejects(sql, sqlstate, description)
-- emits two tests: throws_ok() on the statement, then a comparison of a
-- fingerprint of every table of schema billing (row counts and contents)
-- taken just before with the one taken just after.
-- (run_invoice_batch under REPEATABLE READ is covered by
-- test/specs/run_concurrent.spec: SET TRANSACTION cannot follow pgTAP's queries.)
BEGIN;
\ir include/session.sql

SELECT plan(127);

\ir include/lookups.sql
CREATE FUNCTION pg_temp.sub(key text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT min(subscription_id) FROM billing.subscription WHERE account_id = pg_temp.acct(key) $$;
CREATE FUNCTION pg_temp.doc(key text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT min(invoice_id) FROM billing.invoice WHERE account_id = pg_temp.acct(key) $$;
CREATE FUNCTION pg_temp.run(target date, auto_post boolean DEFAULT true) RETURNS billing.invoice_batch LANGUAGE plpgsql
AS $$ BEGIN
	RETURN billing.run_invoice_batch(target_date => target, auto_post => auto_post);
EXCEPTION WHEN OTHERS THEN
	RAISE WARNING 'run_invoice_batch(%) failed: % %', target, SQLSTATE, SQLERRM;
	RETURN NULL;
END $$;
-- row count and content hash of every table of the extension's schema
CREATE FUNCTION pg_temp.fingerprint() RETURNS text LANGUAGE plpgsql
AS $$
DECLARE
	t regclass;
	n bigint;
	h text;
	result text := '';
BEGIN
	FOR t IN SELECT c.oid::regclass FROM pg_class c
			 WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY c.relname LOOP
		EXECUTE format('SELECT count(*), md5(coalesce(string_agg(x::text, %L ORDER BY x::text), %L)) FROM %s x', '|', '', t)
			INTO n, h;
		result := result || format('%s=%s:%s ', t, n, h);
	END LOOP;
	RETURN result;
END $$;
CREATE FUNCTION pg_temp.rejects(sql text, sqlstate text, description text) RETURNS SETOF text LANGUAGE plpgsql
AS $$
DECLARE
	before text := pg_temp.fingerprint();
BEGIN
	RETURN NEXT throws_ok(sql, sqlstate, NULL::text, format('%s: %s', description, sqlstate));
	RETURN NEXT is(pg_temp.fingerprint(), before, format('%s: nothing written', description));
END $$;

-- Data the bad inputs aim at
INSERT INTO product (code, name) VALUES ('plan', 'Plan');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT product_id, 'm10', 'USD', 'recurring', 'month', 'in_advance', 'per_unit', 10 FROM product;
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT product_id, 'm10eur', 'EUR', 'recurring', 'month', 'in_advance', 'per_unit', 10 FROM product;
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, tiers)
SELECT product_id, 'usage_grad', 'USD', 'usage', 'month', 'in_arrears', 'graduated',
	   '[{"up_to": 100, "unit_amount": 1}, {"up_to": null, "unit_amount": 0.5}]' FROM product;
INSERT INTO price (product_id, code, currency, charge_type, pricing_model, unit_amount)
SELECT product_id, 'setup', 'USD', 'one_time', 'flat', 25 FROM product;
INSERT INTO account (external_key, name, currency) VALUES
	('e', 'Errors', 'USD'), ('u', 'Usage', 'USD'), ('d', 'Draft', 'USD'), ('v', 'Void', 'USD'), ('c', 'Cancelled', 'USD'),
	('o', 'One-time', 'USD');
INSERT INTO subscription (account_id, price_id, start_date) VALUES
	(pg_temp.acct('e'), pg_temp.price('m10'), '2026-01-01'),
	(pg_temp.acct('u'), pg_temp.price('usage_grad'), '2026-01-01'),
	(pg_temp.acct('v'), pg_temp.price('m10'), '2026-01-01'),
	(pg_temp.acct('c'), pg_temp.price('m10'), '2026-01-01'),
	(pg_temp.acct('o'), pg_temp.price('setup'), '2026-01-01');
INSERT INTO usage_record (account_id, subscription_id, quantity, occurred_at, idempotency_key)
VALUES (pg_temp.acct('u'), pg_temp.sub('u'), 5, '2026-01-05 10:00+00', 'evt-1');
SELECT results_eq($$SELECT invoices FROM pg_temp.run('2026-01-01')$$, $$VALUES (4)$$,
	'setup: posted invoices for the accounts billed in advance');
INSERT INTO subscription (account_id, price_id, start_date) VALUES (pg_temp.acct('d'), pg_temp.price('m10'), '2026-01-15');
SELECT results_eq($$SELECT invoices FROM pg_temp.run('2026-01-15', auto_post => false)$$, $$VALUES (1)$$,
	'setup: a draft for the account starting 2026-01-15');
SELECT lives_ok($$SELECT billing.cancel_subscription(pg_temp.sub('c'), '2026-01-20')$$, 'setup: a cancelled subscription');

------------------------------------------------------------------------------
-- Catalog and accounts
------------------------------------------------------------------------------
SELECT pg_temp.rejects($$INSERT INTO billing.account (external_key, name, currency) VALUES ('x', 'X', 'XXQ')$$,
	'23503', 'account in an unknown currency');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
	  SELECT product_id, 'bad', 'XXQ', 'recurring', 'month', 'in_advance', 'per_unit', 1 FROM billing.product$$,
	'23503', 'price in an unknown currency');
SELECT pg_temp.rejects($$INSERT INTO billing.account (external_key, name, currency, bill_cycle_day) VALUES ('x', 'X', 'USD', 32)$$,
	'23514', 'account bill cycle day 32');
SELECT pg_temp.rejects($$INSERT INTO billing.account (external_key, name, currency, bill_cycle_day) VALUES ('x', 'X', 'USD', 0)$$,
	'23514', 'account bill cycle day 0');
SELECT pg_temp.rejects($$INSERT INTO billing.account (external_key, name, currency, timezone) VALUES ('x', 'X', 'USD', 'Mars/Olympus_Mons')$$,
	'22023', 'account in an unknown time zone');
SELECT pg_temp.rejects($$INSERT INTO billing.account (external_key, name, currency, payment_terms_days) VALUES ('x', 'X', 'USD', -1)$$,
	'23514', 'negative payment terms');
SELECT pg_temp.rejects($$UPDATE billing.account SET timezone = 'Nowhere/Nothing' WHERE external_key = 'e'$$,
	'22023', 'account moved to an unknown time zone');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, tiers)
	  SELECT product_id, 'bad', 'USD', 'recurring', 'month', 'in_advance', 'graduated',
			 '[{"up_to": 500, "unit_amount": 1}, {"up_to": 250, "unit_amount": 0.5}, {"up_to": null, "unit_amount": 0.1}]'
	  FROM billing.product$$,
	'23514', 'tiers out of order');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, tiers)
	  SELECT product_id, 'bad', 'USD', 'recurring', 'month', 'in_advance', 'volume',
			 '[{"up_to": 250, "unit_amount": 1}, {"up_to": 500, "unit_amount": 0.5}]'
	  FROM billing.product$$,
	'23514', 'last tier not open');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, tiers)
	  SELECT product_id, 'bad', 'USD', 'recurring', 'month', 'in_advance', 'volume', '[]' FROM billing.product$$,
	'23514', 'empty tiers');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
	  SELECT product_id, 'bad', 'USD', 'usage', 'month', 'in_advance', 'per_unit', 1 FROM billing.product$$,
	'23514', 'usage price billed in advance');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.price (product_id, code, currency, charge_type, billing_interval, pricing_model, unit_amount)
	  SELECT product_id, 'bad', 'USD', 'one_time', 'month', 'flat', 1 FROM billing.product$$,
	'23514', 'one-time price with an interval');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.price (product_id, code, currency, charge_type, pricing_model, unit_amount)
	  SELECT product_id, 'bad', 'USD', 'recurring', 'per_unit', 1 FROM billing.product$$,
	'23514', 'recurring price without an interval');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
	  SELECT product_id, 'bad', 'USD', 'recurring', 'month', 'in_advance', 'per_unit', 0.1234567 FROM billing.product$$,
	'23514', 'unit amount with 7 decimals');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
	  SELECT product_id, 'bad', 'USD', 'recurring', 'month', 'in_advance', 'per_unit', -1 FROM billing.product$$,
	'23514', 'negative unit amount');
SELECT pg_temp.rejects($$UPDATE billing.price SET unit_amount = 12 WHERE code = 'm10'$$,
	'55000', 'update of the amount of a price in use');
SELECT pg_temp.rejects(
	$$UPDATE billing.price SET tiers = '[{"up_to": 100, "unit_amount": 2}, {"up_to": null, "unit_amount": 1}]' WHERE code = 'usage_grad'$$,
	'55000', 'update of the tiers of a price in use');
SELECT pg_temp.rejects($$UPDATE billing.price SET billing_interval = 'year' WHERE code = 'm10'$$,
	'55000', 'update of the interval of a price in use');
SELECT throws_like($$UPDATE billing.price SET unit_amount = 12 WHERE code = 'm10'$$, '%m10%',
	'the error names the price');
SELECT pg_temp.rejects($$SELECT billing.price_amount(pg_temp.price('m10'), -1)$$, '22023', 'price_amount of a negative quantity');

------------------------------------------------------------------------------
-- Subscriptions
------------------------------------------------------------------------------
SELECT pg_temp.rejects(
	$$INSERT INTO billing.subscription (account_id, price_id, quantity, start_date) VALUES (pg_temp.acct('e'), pg_temp.price('m10'), -1, '2026-01-01')$$,
	'23514', 'subscription with a negative quantity');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.subscription (account_id, price_id, start_date, end_date) VALUES (pg_temp.acct('e'), pg_temp.price('m10'), '2026-01-01', '2025-12-31')$$,
	'23514', 'subscription ending before it starts');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.subscription (account_id, price_id, start_date, bill_cycle_day) VALUES (pg_temp.acct('e'), pg_temp.price('m10'), '2026-01-01', 32)$$,
	'23514', 'subscription bill cycle day 32');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.subscription (account_id, price_id, start_date) VALUES (-1, pg_temp.price('m10'), '2026-01-01')$$,
	'23503', 'subscription of an unknown account');
SELECT pg_temp.rejects($$SELECT billing.change_subscription(pg_temp.sub('e'), '2026-01-10', quantity => -2)$$,
	'22023', 'change to a negative quantity');
SELECT pg_temp.rejects($$SELECT billing.change_subscription(pg_temp.sub('e'), '2025-12-31', quantity => 2)$$,
	'22023', 'change effective before the start');
SELECT throws_like(format($$SELECT billing.change_subscription(%s, '2025-12-31', quantity => 2)$$, pg_temp.sub('e')),
	format('%%subscription %s%%', pg_temp.sub('e')), 'the error names the subscription');
SELECT pg_temp.rejects($$SELECT billing.change_subscription(pg_temp.sub('c'), '2026-01-20', quantity => 2)$$,
	'55000', 'change effective on the end date');
SELECT pg_temp.rejects($$SELECT billing.change_subscription(pg_temp.sub('c'), '2026-03-01', quantity => 2)$$,
	'55000', 'change effective after the end');
SELECT pg_temp.rejects($$SELECT billing.change_subscription(pg_temp.sub('e'), '2026-01-10')$$,
	'22023', 'change with nothing to change');
SELECT pg_temp.rejects($$SELECT billing.change_subscription(pg_temp.sub('e'), '2026-01-10', price_id => pg_temp.price('m10eur'))$$,
	'22023', 'change to a price in another currency');
SELECT pg_temp.rejects($$SELECT billing.change_subscription(pg_temp.sub('e'), '2026-01-10', price_id => -1)$$,
	'22023', 'change to an unknown price');
SELECT pg_temp.rejects($$SELECT billing.change_subscription(pg_temp.sub('o'), '2026-01-10', quantity => 2)$$,
	'55000', 'change of a one-time charge');
SELECT pg_temp.rejects($$SELECT billing.change_subscription(-1, '2026-01-10', quantity => 2)$$,
	'22023', 'change of an unknown subscription');
SELECT pg_temp.rejects($$SELECT billing.cancel_subscription(-1, '2026-01-10')$$,
	'22023', 'cancellation of an unknown subscription');
SELECT pg_temp.rejects($$SELECT billing.cancel_subscription(pg_temp.sub('e'), '2025-12-31')$$,
	'22023', 'cancellation before the start');
SELECT pg_temp.rejects($$SELECT billing.cancel_subscription(pg_temp.sub('c'), '2026-01-20')$$,
	'55000', 'cancelling twice');
SELECT pg_temp.rejects($$SELECT billing.cancel_subscription(pg_temp.sub('c'), '2026-02-10')$$,
	'55000', 'cancelling after the end');
SELECT pg_temp.rejects($$UPDATE billing.subscription SET quantity = 5 WHERE subscription_id = pg_temp.sub('e')$$,
	'55000', 'direct update of a subscription''s quantity');
SELECT pg_temp.rejects($$UPDATE billing.subscription SET price_id = pg_temp.price('usage_grad') WHERE subscription_id = pg_temp.sub('e')$$,
	'55000', 'direct update of a subscription''s price');
SELECT pg_temp.rejects($$UPDATE billing.subscription SET end_date = '2026-06-01' WHERE subscription_id = pg_temp.sub('e')$$,
	'55000', 'direct update of a subscription''s end date');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.usage_record (account_id, subscription_id, quantity, occurred_at, idempotency_key)
	  VALUES (pg_temp.acct('u'), pg_temp.sub('u'), 7, '2026-01-06 10:00+00', 'evt-1')$$,
	'23505', 'usage with a duplicate idempotency key');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.usage_record (account_id, subscription_id, quantity, occurred_at)
	  VALUES (pg_temp.acct('u'), pg_temp.sub('u'), -3, '2026-01-06 10:00+00')$$,
	'23514', 'usage with a negative quantity');
SELECT pg_temp.rejects($$UPDATE billing.usage_record SET quantity = 50$$, '55000', 'update of a usage record');

------------------------------------------------------------------------------
-- Documents
------------------------------------------------------------------------------
SELECT pg_temp.rejects($$UPDATE billing.invoice SET subtotal = 0, total = 0 WHERE invoice_id = pg_temp.doc('e')$$,
	'55000', 'update of the amounts of a posted invoice');
SELECT pg_temp.rejects($$UPDATE billing.invoice SET due_date = due_date + 30 WHERE invoice_id = pg_temp.doc('e')$$,
	'55000', 'update of the due date of a posted invoice');
SELECT pg_temp.rejects($$UPDATE billing.invoice SET status = 'draft', document_number = NULL WHERE invoice_id = pg_temp.doc('e')$$,
	'55000', 'a posted invoice set back to draft');
SELECT throws_like($$UPDATE billing.invoice SET subtotal = 0, total = 0 WHERE invoice_id = pg_temp.doc('e')$$, '%INV-000001%',
	'the error names the document');
SELECT pg_temp.rejects($$UPDATE billing.invoice_line SET amount = 1 WHERE invoice_id = pg_temp.doc('e')$$,
	'55000', 'update of the lines of a posted invoice');
SELECT pg_temp.rejects($$DELETE FROM billing.invoice_line WHERE invoice_id = pg_temp.doc('e')$$,
	'55000', 'delete of the lines of a posted invoice');
SELECT pg_temp.rejects(
	$$INSERT INTO billing.invoice_line (account_id, invoice_id, line_number, kind, amount)
	  VALUES (pg_temp.acct('e'), pg_temp.doc('e'), 2, 'one_time', 5)$$,
	'55000', 'a line added to a posted invoice');
SELECT pg_temp.rejects($$DELETE FROM billing.invoice WHERE invoice_id = pg_temp.doc('e')$$,
	'55000', 'delete of a posted invoice');
SELECT pg_temp.rejects($$SELECT billing.post_invoice(pg_temp.doc('e'))$$, '55000', 'posting a posted invoice');
SELECT pg_temp.rejects($$SELECT billing.post_invoice(-1)$$, '22023', 'posting an unknown document');
SELECT pg_temp.rejects($$SELECT billing.void_invoice(pg_temp.doc('d'), 'mistake', '2026-01-20')$$, '55000', 'voiding a draft');
SELECT pg_temp.rejects($$SELECT billing.void_invoice(-1, 'mistake', '2026-01-20')$$, '22023', 'voiding an unknown document');
SELECT pg_temp.rejects($$SELECT billing.void_invoice(pg_temp.doc('v'), 'mistake', '2025-12-31')$$,
	'22023', 'a void dated before the document');
SELECT lives_ok($$SELECT billing.void_invoice(pg_temp.doc('v'), 'mistake', '2026-01-02')$$, 'voiding once');
SELECT pg_temp.rejects($$SELECT billing.void_invoice(pg_temp.doc('v'), 'mistake', '2026-01-03')$$, '55000', 'voiding twice');
SELECT pg_temp.rejects($$UPDATE billing.invoice SET status = 'posted' WHERE invoice_id = pg_temp.doc('v')$$,
	'55000', 'a void invoice set back to posted');
INSERT INTO invoice (account_id, invoice_date, currency) VALUES (pg_temp.acct('e'), '2026-01-20', 'USD');
SELECT pg_temp.rejects(
	$$SELECT billing.post_invoice((SELECT max(invoice_id) FROM billing.invoice WHERE account_id = pg_temp.acct('e')))$$,
	'55000', 'posting an empty draft');

------------------------------------------------------------------------------
-- Runs and preview
------------------------------------------------------------------------------
SELECT pg_temp.rejects($$SELECT billing.preview_invoice(-1, '2026-02-01')$$, '22023', 'preview for an unknown account');
SELECT pg_temp.rejects($$SELECT billing.run_invoice_batch(target_date => NULL)$$, '22004', 'a run without target date');
SELECT is((SELECT count(*) FROM invoice WHERE status <> 'draft'), 4::bigint, 'the four posted invoices are still there');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after all the rejected inputs');

SELECT * FROM finish();
ROLLBACK;
