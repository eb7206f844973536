-- Security (SPEC §7): billing_reader reads the BI views (and the read
-- functions behind them) but writes nothing; billing_operator also runs
-- batches and dunning and records payments, but does not edit the catalog;
-- PUBLIC writes no table; writing functions are SECURITY DEFINER with a safe
-- search_path; every view column is commented.  Login roles are created here
-- (rolled back with the rest) and used with SET ROLE.
BEGIN;
\ir include/session.sql

SELECT plan(56);

CREATE ROLE tap_ar_reader LOGIN IN ROLE billing_reader;
CREATE ROLE tap_ar_operator LOGIN IN ROLE billing_operator;
CREATE ROLE tap_ar_admin LOGIN IN ROLE billing_admin;
CREATE ROLE tap_ar_nobody LOGIN;

-- Runs q as role r in a subtransaction that is always rolled back (writes and
-- the role switch alike); returns 'ok' or the SQLSTATE it raised.
CREATE FUNCTION pg_temp.try_as(r text, q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		EXECUTE format('SET LOCAL ROLE %I', r);
		EXECUTE q;
		RAISE EXCEPTION 'undo' USING ERRCODE = 'P0099';
	EXCEPTION WHEN OTHERS THEN
		RETURN CASE SQLSTATE WHEN 'P0099' THEN 'ok' ELSE SQLSTATE END;
	END;
END $$;
-- every table of the extension and the outcome of INSERT, UPDATE, DELETE and
-- TRUNCATE on it as role r
CREATE FUNCTION pg_temp.table_writes(r text) RETURNS TABLE (table_name name, statement text, outcome text) LANGUAGE sql AS $$
	SELECT c.relname, s.op,
		   pg_temp.try_as(r, CASE s.op
				WHEN 'INSERT' THEN format('INSERT INTO billing.%I DEFAULT VALUES', c.relname)
				WHEN 'UPDATE' THEN format('UPDATE billing.%I SET %I = %I WHERE false', c.relname, a.attname, a.attname)
				WHEN 'DELETE' THEN format('DELETE FROM billing.%I WHERE false', c.relname)
				ELSE format('TRUNCATE billing.%I CASCADE', c.relname) END)
	FROM pg_class c
	JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1
	CROSS JOIN (VALUES ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE')) s(op)
	WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind IN ('r', 'p')
$$;

-- ids the roles use, readable by all of them
CREATE TEMP TABLE ids (name text PRIMARY KEY, id bigint) ON COMMIT DROP;
GRANT SELECT ON ids TO PUBLIC;
CREATE FUNCTION pg_temp.id(key text) RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT id FROM ids WHERE name = key $$;

-- Some data, so that every view has rows: a monthly subscription billed, a
-- payment with a refund, a debit note, an overdue document dunned.
INSERT INTO product (code, name) VALUES ('plan', 'Plan');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT product_id, 'm100', 'USD', 'recurring', 'month', 'in_advance', 'per_unit', 100 FROM product WHERE code = 'plan';
INSERT INTO account (external_key, name, currency) VALUES ('acme', 'Acme', 'USD');
INSERT INTO ids SELECT 'acme', account_id FROM account WHERE external_key = 'acme';
INSERT INTO subscription (account_id, price_id, start_date)
SELECT pg_temp.id('acme'), price_id, '2024-01-01' FROM price WHERE code = 'm100';
INSERT INTO dunning_level (level, days_overdue, fee_amount) VALUES (1, 10, 5.00);
DO $$ BEGIN
	PERFORM billing.run_invoice_batch(target_date => '2024-01-01');
	PERFORM billing.issue_debit_note(pg_temp.id('acme'), 20, 'extra', '2024-01-05');
	INSERT INTO ids SELECT 'pay', payment_id FROM billing.record_payment(pg_temp.id('acme'), 150, '2024-01-10', 'p-1');
	PERFORM billing.refund(pg_temp.id('pay'), amount => 10, refunded_on => '2024-01-12');
	PERFORM billing.run_dunning('2024-02-15');
END $$;
INSERT INTO ids SELECT 'invoice', min(invoice_id) FROM invoice;
SELECT ok((SELECT count(*) FROM invoice_report) > 0 AND (SELECT count(*) FROM ar_aging_report) > 0
		  AND (SELECT count(*) FROM revenue_by_month) > 0 AND (SELECT count(*) FROM mrr_by_month) > 0
		  AND (SELECT count(*) FROM cash_by_month) > 0, 'every view has rows');

------------------------------------------------------------------------------
-- billing_reader
------------------------------------------------------------------------------
SET ROLE tap_ar_reader;
SELECT lives_ok($$SELECT count(*) FROM billing.invoice_report$$, 'reader: count(*) from invoice_report');
SELECT lives_ok($$SELECT count(*) FROM billing.ar_aging_report$$, 'reader: count(*) from ar_aging_report');
SELECT lives_ok($$SELECT count(*) FROM billing.revenue_by_month$$, 'reader: count(*) from revenue_by_month');
SELECT lives_ok($$SELECT count(*) FROM billing.mrr_by_month$$, 'reader: count(*) from mrr_by_month');
SELECT lives_ok($$SELECT count(*) FROM billing.cash_by_month$$, 'reader: count(*) from cash_by_month');
-- a BI tool reads the columns, not just the count
SELECT lives_ok($$SELECT * FROM billing.invoice_report$$, 'reader: every column of invoice_report (open_amount included)');
SELECT lives_ok($$SELECT * FROM billing.ar_aging_report$$, 'reader: every column of ar_aging_report');
SELECT lives_ok($$SELECT * FROM billing.revenue_by_month$$, 'reader: every column of revenue_by_month');
SELECT lives_ok($$SELECT * FROM billing.mrr_by_month$$, 'reader: every column of mrr_by_month');
SELECT lives_ok($$SELECT * FROM billing.cash_by_month$$, 'reader: every column of cash_by_month');
SELECT lives_ok($$SELECT * FROM billing.ar_aging('2024-03-01'); SELECT * FROM billing.ar_aging_detail('2024-03-01')$$,
	'reader: ar_aging and ar_aging_detail');
SELECT lives_ok($$SELECT billing.account_balance(pg_temp.id('acme'), '2024-03-01'),
						 billing.invoice_balance(pg_temp.id('invoice'), '2024-03-01')$$,
	'reader: account_balance and invoice_balance');
SELECT lives_ok($$SELECT * FROM billing.deferred_revenue('2024-01-15'); SELECT * FROM billing.check_integrity()$$,
	'reader: deferred_revenue and check_integrity');
SELECT throws_ok($$SELECT billing.run_invoice_batch(target_date => '2024-02-01')$$, '42501', NULL,
	'reader: run_invoice_batch is denied');
SELECT throws_ok($$SELECT billing.record_payment(pg_temp.id('acme'), 1, '2024-02-01')$$, '42501', NULL,
	'reader: record_payment is denied');
SELECT throws_ok($$SELECT billing.run_dunning('2024-03-01')$$, '42501', NULL, 'reader: run_dunning is denied');
SELECT throws_ok($$SELECT billing.issue_debit_note(pg_temp.id('acme'), 1, 'x', '2024-02-01')$$, '42501', NULL,
	'reader: issue_debit_note is denied');
SELECT throws_ok($$INSERT INTO billing.payment (account_id, amount, currency, received_on) VALUES (pg_temp.id('acme'), 1, 'USD', '2024-02-01')$$,
	'42501', NULL, 'reader: INSERT INTO payment is denied');
SELECT throws_ok($$UPDATE billing.account SET billing_hold = true$$, '42501', NULL, 'reader: UPDATE account is denied');
SELECT throws_ok($$DELETE FROM billing.invoice$$, '42501', NULL, 'reader: DELETE FROM invoice is denied');
RESET ROLE;
SELECT is_empty(
	$$SELECT * FROM pg_temp.table_writes('tap_ar_admin')
	  WHERE (statement IN ('UPDATE', 'DELETE') AND outcome <> 'ok') OR (statement = 'INSERT' AND outcome = '42501')$$,
	'(the probe works: billing_admin may write every table; its INSERT DEFAULT VALUES fails on constraints, not privileges)');
SELECT is_empty($$SELECT * FROM pg_temp.table_writes('tap_ar_reader') WHERE outcome <> '42501'$$,
	'reader: INSERT, UPDATE, DELETE and TRUNCATE on every table raise 42501');

------------------------------------------------------------------------------
-- billing_operator
------------------------------------------------------------------------------
SET ROLE tap_ar_operator;
SELECT lives_ok($$SELECT * FROM billing.cash_by_month$$, 'operator: reads the views (a reader too)');
SELECT lives_ok($$SELECT billing.run_invoice_batch(target_date => '2024-02-01')$$, 'operator: run_invoice_batch works');
SELECT lives_ok($$SELECT billing.record_payment(pg_temp.id('acme'), 25, '2024-02-02', 'op-1')$$, 'operator: record_payment works');
SELECT lives_ok($$SELECT billing.run_dunning('2024-03-20')$$, 'operator: run_dunning works');
SELECT throws_ok($$INSERT INTO billing.product (code, name) VALUES ('op', 'Operator product')$$, '42501', NULL,
	'operator: INSERT INTO product is denied');
SELECT throws_ok($$INSERT INTO billing.price (product_id, code, currency, charge_type, pricing_model, unit_amount)
				  SELECT 1, 'op', 'USD', 'one_time', 'flat', 1$$, '42501', NULL,
	'operator: INSERT INTO price is denied');
SELECT throws_ok($$INSERT INTO billing.account (name, currency) VALUES ('Operator account', 'USD')$$, '42501', NULL,
	'operator: INSERT INTO account is denied');
SELECT throws_ok($$UPDATE billing.price SET unit_amount = 1$$, '42501', NULL, 'operator: UPDATE price is denied');
SELECT throws_ok($$DELETE FROM billing.allocation$$, '42501', NULL, 'operator: DELETE FROM allocation is denied');
RESET ROLE;
SELECT is((SELECT count(*) FROM invoice WHERE invoice_date = '2024-02-01' AND status = 'posted'), 1::bigint,
	'the operator''s run posted February''s invoice');
SELECT is((SELECT count(*) FROM payment WHERE reference = 'op-1'), 1::bigint, 'the operator''s payment is recorded');
SELECT is_empty($$SELECT * FROM pg_temp.table_writes('tap_ar_operator') WHERE outcome <> '42501'$$,
	'operator: INSERT, UPDATE, DELETE and TRUNCATE on every table raise 42501');

------------------------------------------------------------------------------
-- billing_admin: the catalog, accounts and subscriptions
------------------------------------------------------------------------------
SET ROLE tap_ar_admin;
SELECT lives_ok($$INSERT INTO billing.product (code, name) VALUES ('adm', 'Admin product')$$, 'admin: INSERT INTO product works');
SELECT lives_ok($$INSERT INTO billing.price (product_id, code, currency, charge_type, pricing_model, unit_amount)
				  SELECT product_id, 'adm', 'USD', 'one_time', 'flat', 1 FROM billing.product WHERE code = 'adm'$$,
	'admin: INSERT INTO price works');
SELECT lives_ok($$INSERT INTO billing.account (name, currency) VALUES ('Admin account', 'USD')$$, 'admin: INSERT INTO account works');
RESET ROLE;

------------------------------------------------------------------------------
-- PUBLIC: a role without billing roles
------------------------------------------------------------------------------
SET ROLE tap_ar_nobody;
SELECT throws_ok($$INSERT INTO billing.account (name, currency) VALUES ('Nobody', 'USD')$$, '42501', NULL,
	'PUBLIC: INSERT INTO account is denied');
SELECT throws_ok($$SELECT * FROM billing.invoice_report$$, '42501', NULL, 'PUBLIC: the views are not readable');
SELECT throws_ok($$SELECT billing.record_payment(pg_temp.id('acme'), 1, '2024-02-01')$$, '42501', NULL,
	'PUBLIC: record_payment is denied');
RESET ROLE;
SELECT is_empty($$SELECT * FROM pg_temp.table_writes('tap_ar_nobody') WHERE outcome <> '42501'$$,
	'PUBLIC: INSERT, UPDATE, DELETE and TRUNCATE on every table raise 42501');
SELECT is_empty(
	$$SELECT c.relname, p.privilege_type FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) p
	  WHERE c.relnamespace = 'billing'::regnamespace AND p.grantee = 0
		AND p.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')$$,
	'no table or view of the extension grants a write to PUBLIC');
-- README: "the pure calculations (periods, proration, rounding) stay public"
SET ROLE tap_ar_nobody;
SELECT lives_ok($$SELECT billing.prorate(10, '[2011-09-16,2011-10-01)'::billing.billing_period, '[2011-09-01,2011-10-01)')$$,
	'PUBLIC: billing.prorate() and the billing_period type are usable (README: the pure calculations stay public)');
RESET ROLE;

------------------------------------------------------------------------------
-- Catalog checks
------------------------------------------------------------------------------
SELECT is(current_user, 'postgres'::name, 'RESET ROLE: back to the test''s own role');
SELECT is_empty(
	$$SELECT v FROM unnest(ARRAY['invoice_report', 'ar_aging_report', 'revenue_by_month', 'mrr_by_month', 'cash_by_month']) v
	  WHERE to_regclass('billing.' || v) IS NULL$$,
	'the five BI views exist');
SELECT is_empty(
	$$SELECT c.relname, a.attname FROM pg_class c
	  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	  LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = a.attnum
	  WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind IN ('v', 'm') AND coalesce(d.description, '') = ''$$,
	'every column of every view has a comment');
SELECT is_empty(
	$$SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind IN ('v', 'm')
	  AND coalesce(obj_description(c.oid, 'pg_class'), '') = ''$$,
	'every view has a comment');
SELECT is_empty(
	$$SELECT x FROM unnest(ARRAY['current', 'd1_30', 'd31_60', 'd61_90', 'd91_plus', 'unapplied', 'total']) x
	  EXCEPT SELECT attname::text FROM pg_attribute WHERE attrelid = 'billing.ar_aging_report'::regclass$$,
	'ar_aging_report has the wide columns current, d1_30, d31_60, d61_90, d91_plus, unapplied, total');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM pg_proc p
	  WHERE p.pronamespace = 'billing'::regnamespace AND p.prosecdef
		AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)$$,
	'every SECURITY DEFINER function sets search_path = pg_catalog, pg_temp');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM pg_proc p
	  WHERE p.pronamespace = 'billing'::regnamespace AND p.provolatile = 'v' AND p.prokind = 'f'
		AND has_function_privilege('billing_reader', p.oid, 'EXECUTE')$$,
	'billing_reader executes no volatile function (nothing that writes)');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM pg_proc p
	  WHERE p.pronamespace = 'billing'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')
		AND (p.prosecdef OR p.provolatile <> 'i')$$,
	'PUBLIC executes only immutable, non-definer functions');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM pg_proc p
	  WHERE p.oid IN ('billing.run_invoice_batch(date, boolean)'::regprocedure, 'billing.record_payment(bigint, numeric, date, text, text, boolean)'::regprocedure,
					  'billing.run_dunning(date)'::regprocedure, 'billing.apply_payment(bigint, bigint, numeric, date)'::regprocedure,
					  'billing.unapply(bigint, date)'::regprocedure, 'billing.issue_debit_note(bigint, numeric, text, date)'::regprocedure,
					  'billing.issue_credit_note(bigint, numeric, text, date, boolean)'::regprocedure,
					  'billing.void_invoice(bigint, text, date)'::regprocedure, 'billing.post_invoice(bigint)'::regprocedure,
					  'billing.refund(bigint, bigint, numeric, date, text)'::regprocedure,
					  'billing.write_off(bigint, numeric, text, date)'::regprocedure)
		AND NOT p.prosecdef$$,
	'the writing entry points are SECURITY DEFINER');
SELECT ok(pg_has_role('billing_admin', 'billing_operator', 'MEMBER') AND pg_has_role('billing_operator', 'billing_reader', 'MEMBER'),
	'billing_admin is an operator, billing_operator a reader');
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname IN ('billing_reader', 'billing_operator', 'billing_admin')
					  AND (rolcanlogin OR rolsuper)), 'the billing roles are NOLOGIN, not superusers');

SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the role scenarios');

SELECT * FROM finish();
ROLLBACK;
