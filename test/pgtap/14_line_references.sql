-- The foreign keys of invoice lines (to the document, the subscription and
-- the price) stay declared, but their per-row checks of new and changed lines
-- are disabled and replaced by one statement-level trigger,
-- billing.check_foreign_keys() (src/sql/89_statement_foreign_keys.sql).  Here:
-- a line referring to a missing document, subscription or price raises 23503
-- naming the constraint and writes nothing, also as one bad row among many and
-- on UPDATE; deleting a referenced parent still raises 23503 (the parent-side
-- triggers are intact); valid bulk inserts and runs pass; only a run (a
-- superuser) can mark its own statements as trusted, and the mark ends with
-- them; the catalog holds
-- exactly the disabled row-level checks and the two statement triggers.
-- (That the statement-level check locks the parents FOR KEY SHARE, so a
-- concurrent delete waits, is test/specs/line_references.spec.)
-- Lines are written by hand, as superuser, into drafts of accounts no run
-- reconciles, so check_integrity() has nothing to say about them.
BEGIN;
\ir include/session.sql

SELECT plan(67);

\ir include/lookups.sql
CREATE FUNCTION pg_temp.sub(key text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT min(subscription_id) FROM billing.subscription WHERE account_id = pg_temp.acct(key) $$;
CREATE FUNCTION pg_temp.draft(key text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT min(invoice_id) FROM billing.invoice WHERE account_id = pg_temp.acct(key) AND status = 'draft' $$;
-- ids that exist nowhere (beyond every id handed out so far)
CREATE FUNCTION pg_temp.no_doc() RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT coalesce(max(invoice_id), 0) + 1000 FROM billing.invoice $$;
CREATE FUNCTION pg_temp.no_sub() RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT coalesce(max(subscription_id), 0) + 1000 FROM billing.subscription $$;
CREATE FUNCTION pg_temp.no_price() RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT coalesce(max(price_id), 0) + 1000 FROM billing.price $$;
CREATE FUNCTION pg_temp.lines() RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT count(*) FROM billing.invoice_line $$;
-- Two tests: the statement raises 23503 with exactly this message, and the
-- number of lines is what it was before.
CREATE FUNCTION pg_temp.refused(sql text, message text, description text) RETURNS SETOF text LANGUAGE sql
AS $$ SELECT pg_temp.refused_unchanged(sql, '23503', message, description, 'SELECT pg_temp.lines()') $$;

INSERT INTO product (code, name) VALUES ('plan', 'Plan'), ('setup', 'Setup');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT product_id, 'm10', 'USD', 'recurring', 'month', 'in_advance', 'per_unit', 10 FROM product WHERE code = 'plan';
-- one-time prices no subscription uses: only lines refer to them
INSERT INTO price (product_id, code, currency, charge_type, pricing_model, unit_amount)
SELECT product_id, v.code, 'USD', 'one_time', 'flat', 25 FROM product, (VALUES ('setup25'), ('spare25')) v(code)
WHERE product.code = 'setup';
INSERT INTO account (external_key, name, currency, billing_hold) VALUES
	('a', 'Lines by hand', 'USD', true), ('b', 'Another account', 'USD', true), ('r', 'Billed by runs', 'USD', false);
INSERT INTO subscription (account_id, price_id, start_date)
SELECT pg_temp.acct(k), pg_temp.price('m10'), '2026-01-01' FROM unnest(ARRAY['a', 'a', 'b', 'r']) k;
INSERT INTO invoice (account_id, invoice_date, currency)
SELECT pg_temp.acct(k), '2026-01-01', 'USD' FROM unnest(ARRAY['a', 'b']) k;
SELECT is((SELECT count(*) FROM invoice WHERE status = 'draft'), 2::bigint, 'two drafts, of accounts a and b');

------------------------------------------------------------------------------
-- Valid lines pass
------------------------------------------------------------------------------
SELECT lives_ok($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, service_period,
							  cycle_period, quantity, unit_amount, amount)
	VALUES (pg_temp.acct('a'), pg_temp.draft('a'), 1, pg_temp.sub('a'), pg_temp.price('m10'), 'recurring',
			'[2026-01-01,2026-02-01)', '[2026-01-01,2026-02-01)', 1, 10, 10.00)$$,
	'a recurring line referring to an existing document, subscription and price');
SELECT lives_ok($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, amount)
	VALUES (pg_temp.acct('a'), pg_temp.draft('a'), 2, pg_temp.sub('a'), pg_temp.price('setup25'), 'one_time', 25.00),
		   (pg_temp.acct('a'), pg_temp.draft('a'), 3, NULL, NULL, 'adjustment', -5.00)$$,
	'a one-time line of a price no subscription uses, and a line without subscription or price (NULL keys are not checked)');
SELECT is(pg_temp.lines(), 3::bigint, 'three lines written');

------------------------------------------------------------------------------
-- One missing parent: 23503 naming the line, nothing written
------------------------------------------------------------------------------
SELECT pg_temp.refused($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, amount)
	VALUES (pg_temp.acct('a'), pg_temp.no_doc(), 11, pg_temp.sub('a'), pg_temp.price('setup25'), 'one_time', 25.00)$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_account_id_invoice_id_fkey"', 'a line of a document that does not exist');
SELECT pg_temp.refused($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, amount)
	VALUES (pg_temp.acct('a'), pg_temp.draft('b'), 12, NULL, pg_temp.price('setup25'), 'one_time', 25.00)$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_account_id_invoice_id_fkey"', 'a line of account a in account b''s draft');
SELECT pg_temp.refused($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, amount)
	VALUES (pg_temp.acct('a'), pg_temp.draft('a'), 13, pg_temp.no_sub(), pg_temp.price('setup25'), 'one_time', 25.00)$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_account_id_subscription_id_fkey"', 'a line of a subscription that does not exist');
SELECT pg_temp.refused($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, service_period,
							  cycle_period, quantity, unit_amount, amount)
	VALUES (pg_temp.acct('a'), pg_temp.draft('a'), 14, pg_temp.sub('b'), pg_temp.price('m10'), 'recurring',
			'[2026-01-01,2026-02-01)', '[2026-01-01,2026-02-01)', 1, 10, 10.00)$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_account_id_subscription_id_fkey"', 'a line of account a for account b''s subscription');
SELECT pg_temp.refused($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, amount)
	VALUES (pg_temp.acct('a'), pg_temp.draft('a'), 15, pg_temp.sub('a'), pg_temp.no_price(), 'one_time', 25.00)$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_price_id_fkey"', 'a line of a price that does not exist');
SELECT pg_temp.refused($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, amount)
	VALUES (pg_temp.acct('a'), pg_temp.draft('a'), 16, NULL, pg_temp.no_price(), 'adjustment', 25.00)$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_price_id_fkey"', 'a line without subscription, of a price that does not exist');
SELECT pg_temp.refused($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, amount)
	VALUES (pg_temp.acct('a'), pg_temp.no_doc(), 17, pg_temp.no_sub(), pg_temp.no_price(), 'one_time', 25.00)$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_account_id_invoice_id_fkey"', 'a line with all three parents missing (the document is named)');

------------------------------------------------------------------------------
-- One bad row among many: the statement writes nothing
------------------------------------------------------------------------------
SELECT pg_temp.refused($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, amount)
	VALUES (pg_temp.acct('a'), pg_temp.draft('a'), 21, pg_temp.sub('a'), pg_temp.price('setup25'), 'one_time', 1.00),
		   (pg_temp.acct('a'), pg_temp.draft('a'), 22, NULL, NULL, 'adjustment', 2.00),
		   (pg_temp.acct('a'), pg_temp.draft('a'), 23, pg_temp.no_sub(), pg_temp.price('setup25'), 'one_time', 3.00),
		   (pg_temp.acct('a'), pg_temp.draft('a'), 24, pg_temp.sub('a'), pg_temp.price('spare25'), 'one_time', 4.00)$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_account_id_subscription_id_fkey"', 'four rows, the third of a missing subscription');
SELECT pg_temp.refused($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, amount)
	SELECT k.a, k.d, 1000 + g, k.s, CASE WHEN g = 2500 THEN k.no_price ELSE k.p END, 'one_time', 1.00
	FROM (SELECT pg_temp.acct('a') a, pg_temp.draft('a') d, pg_temp.sub('a') s, pg_temp.price('setup25') p,
				 pg_temp.no_price() no_price OFFSET 0) k, generate_series(1, 5000) g$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_price_id_fkey"', '5,000 rows, the 2,500th of a missing price');
SELECT pg_temp.refused($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, amount)
	SELECT k.a, CASE WHEN g = 5000 THEN k.no_doc ELSE k.d END, 1000 + g, k.s, k.p, 'one_time', 1.00
	FROM (SELECT pg_temp.acct('a') a, pg_temp.draft('a') d, pg_temp.sub('a') s, pg_temp.price('setup25') p,
				 pg_temp.no_doc() no_doc OFFSET 0) k, generate_series(1, 5000) g$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_account_id_invoice_id_fkey"', '5,000 rows, the last of a missing document');

------------------------------------------------------------------------------
-- UPDATE of a draft's line to a missing parent
------------------------------------------------------------------------------
SELECT pg_temp.refused($$UPDATE invoice_line SET subscription_id = pg_temp.no_sub()
						 WHERE account_id = pg_temp.acct('a') AND line_number = 1$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_account_id_subscription_id_fkey"', 'a line moved to a subscription that does not exist');
SELECT pg_temp.refused($$UPDATE invoice_line SET subscription_id = pg_temp.sub('b')
						 WHERE account_id = pg_temp.acct('a') AND line_number = 1$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_account_id_subscription_id_fkey"', 'a line moved to another account''s subscription');
SELECT pg_temp.refused($$UPDATE invoice_line SET price_id = pg_temp.no_price()
						 WHERE account_id = pg_temp.acct('a') AND line_number = 2$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_price_id_fkey"', 'a line moved to a price that does not exist');
SELECT pg_temp.refused($$UPDATE invoice_line SET invoice_id = pg_temp.no_doc()
						 WHERE account_id = pg_temp.acct('a') AND line_number = 3$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_account_id_invoice_id_fkey"', 'a line moved to a document that does not exist');
SELECT results_eq(
	$$SELECT line_number, subscription_id, price_id, invoice_id FROM invoice_line WHERE account_id = pg_temp.acct('a') ORDER BY line_number$$,
	$$VALUES (1, pg_temp.sub('a'), pg_temp.price('m10'), pg_temp.draft('a')),
			 (2, pg_temp.sub('a'), pg_temp.price('setup25'), pg_temp.draft('a')),
			 (3, NULL, NULL, pg_temp.draft('a'))$$,
	'the refused updates changed nothing');
SELECT lives_ok($$UPDATE invoice_line SET price_id = pg_temp.price('spare25'), subscription_id = (
					SELECT max(subscription_id) FROM subscription WHERE account_id = pg_temp.acct('a'))
				  WHERE account_id = pg_temp.acct('a') AND line_number = 2$$,
	'a line moved to another existing price and subscription of its account');
SELECT lives_ok($$UPDATE invoice_line SET description = 'every line touched' WHERE account_id = pg_temp.acct('a')$$,
	'an update of every line of the draft, keys unchanged');

------------------------------------------------------------------------------
-- Deleting a referenced parent: still refused by the parent-side triggers
------------------------------------------------------------------------------
SELECT throws_ok($$DELETE FROM subscription_change WHERE subscription_id = pg_temp.sub('a');
				   DELETE FROM subscription WHERE subscription_id = pg_temp.sub('a')$$,
	'23503', 'update or delete on table "subscription" violates foreign key constraint "invoice_line_account_id_subscription_id_fkey" on table "invoice_line"',
	'deleting a subscription lines refer to: 23503');
SELECT throws_ok($$DELETE FROM price WHERE price_id = pg_temp.price('spare25')$$,
	'23503', 'update or delete on table "price" violates foreign key constraint "invoice_line_price_id_fkey" on table "invoice_line"',
	'deleting a price only lines refer to: 23503');
SELECT throws_ok($$DELETE FROM invoice WHERE invoice_id = pg_temp.draft('a')$$,
	'23503', 'update or delete on table "invoice" violates foreign key constraint "invoice_line_account_id_invoice_id_fkey" on table "invoice_line"',
	'deleting a draft that has lines: 23503');
SELECT throws_ok($$UPDATE price SET price_id = pg_temp.no_price() WHERE price_id = pg_temp.price('spare25')$$,
	'23503', 'update or delete on table "price" violates foreign key constraint "invoice_line_price_id_fkey" on table "invoice_line"',
	'changing the key of a price lines refer to: 23503');
SELECT results_eq(
	$$SELECT (SELECT count(*) FROM subscription WHERE account_id = pg_temp.acct('a')),
			 (SELECT count(*) FROM price WHERE code IN ('setup25', 'spare25')),
			 (SELECT count(*) FROM invoice WHERE account_id = pg_temp.acct('a'))$$,
	$$VALUES (2::bigint, 2::bigint, 1::bigint)$$, 'the parents are all still there');
SELECT lives_ok($$DELETE FROM invoice WHERE invoice_id = pg_temp.draft('b')$$, 'a draft without lines can be deleted');

------------------------------------------------------------------------------
-- Many valid rows at once, and runs
------------------------------------------------------------------------------
SELECT lives_ok($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, amount)
	SELECT k.a, k.d, 10000 + g,
		   CASE WHEN g % 3 = 0 THEN NULL WHEN g % 2 = 0 THEN k.s1 ELSE k.s2 END,
		   CASE WHEN g % 5 = 0 THEN NULL WHEN g % 2 = 0 THEN k.p1 ELSE k.p2 END,
		   CASE WHEN g % 3 = 0 THEN 'adjustment' ELSE 'one_time' END, 1.00
	FROM (SELECT pg_temp.acct('a') a, pg_temp.draft('a') d, min(s.subscription_id) s1, max(s.subscription_id) s2,
				 pg_temp.price('setup25') p1, pg_temp.price('spare25') p2
		  FROM subscription s WHERE s.account_id = pg_temp.acct('a') OFFSET 0) k,
		 generate_series(1, 20000) g$$,
	'20,000 valid lines of one statement, two subscriptions, two prices and NULLs');
SELECT is((SELECT count(*) FROM invoice_line WHERE account_id = pg_temp.acct('a')), 20003::bigint, 'all 20,000 written');
SELECT lives_ok($$UPDATE invoice_line SET amount = 2.00 WHERE account_id = pg_temp.acct('a') AND line_number > 10000$$,
	'an update of the 20,000 lines');
SELECT is((SELECT sum(amount) FROM invoice_line WHERE account_id = pg_temp.acct('a') AND line_number > 10000), 40000.00,
	'all 20,000 updated');
SELECT lives_ok($$DELETE FROM invoice_line WHERE account_id = pg_temp.acct('a') AND line_number > 10000$$,
	'deleting draft lines needs no check');
SELECT is((SELECT lines FROM run_invoice_batch(target_date => '2026-01-01')), 1::bigint,
	'a run writes its line of account r (its lines pass the statement check)');
SELECT results_eq(
	$$SELECT l.subscription_id, l.price_id, i.status FROM invoice_line l JOIN invoice i USING (account_id, invoice_id)
	  WHERE l.account_id = pg_temp.acct('r')$$,
	$$VALUES (pg_temp.sub('r'), pg_temp.price('m10'), 'posted')$$, 'the run''s line refers to r''s subscription and the price');
SELECT throws_ok($$DELETE FROM subscription WHERE subscription_id = pg_temp.sub('r')$$,
	'23503', 'update or delete on table "subscription" violates foreign key constraint "invoice_line_account_id_subscription_id_fkey" on table "invoice_line"',
	'deleting a subscription a run billed: 23503 (its timeline rows would cascade, its lines do not)');

------------------------------------------------------------------------------
-- A run's own statements skip the checks (billing.trust_run_statements): the
-- mark is the run's alone, and never outlives its statement
------------------------------------------------------------------------------
SELECT is(billing.run_statement_trusted(), false, 'after the run, no statement is marked as the run''s');
SELECT pg_temp.refused($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, amount)
	VALUES (pg_temp.acct('a'), pg_temp.draft('a'), 21, pg_temp.no_sub(), pg_temp.price('setup25'), 'one_time', 25.00)$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_account_id_subscription_id_fkey"', 'a bad line in the run''s transaction, after the run');
CREATE ROLE tap_lines_admin IN ROLE billing_admin;
CREATE FUNCTION pg_temp.admin_try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	result text;
BEGIN
	BEGIN
		SET LOCAL ROLE tap_lines_admin;
		EXECUTE q INTO result;
		RAISE EXCEPTION 'undo' USING ERRCODE = 'P0099', DETAIL = coalesce(result, 'NULL');
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS result = PG_EXCEPTION_DETAIL;
		RETURN CASE SQLSTATE WHEN 'P0099' THEN result ELSE SQLSTATE END;
	END;
END $$;
SELECT is(pg_temp.admin_try($$SELECT billing.trust_run_statements(true)::text$$), 'false',
	'billing_admin cannot mark its statements as a run''s: trust_run_statements returns false');
SELECT is(pg_temp.admin_try($$
	SELECT billing.trust_run_statements(true)::text || ' ' || billing.run_statement_trusted()::text$$), 'false false',
	'... and nothing is marked');
SELECT is(pg_temp.admin_try(format($$WITH t AS (SELECT billing.trust_run_statements(true))
	INSERT INTO billing.invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, amount)
	SELECT %s, %s, 22, %s, NULL, 'one_time', 25.00 FROM t RETURNING 'written'$$,
	pg_temp.acct('a'), pg_temp.draft('a'), pg_temp.no_sub())), '23503',
	'a bad line billing_admin writes after trying to mark it: 23503');
SELECT is(billing.trust_run_statements(true), true, 'a superuser (the run''s SECURITY DEFINER functions) marks its statements');
SELECT is(billing.run_statement_trusted(), true, '... which the checks then trust');
SAVEPOINT marked_inside;
SELECT is(billing.run_statement_trusted(), false, 'not in a subtransaction begun after the mark');
ROLLBACK TO SAVEPOINT marked_inside;
SAVEPOINT mark_then_fail;
SELECT billing.trust_run_statements(true);
ROLLBACK TO SAVEPOINT mark_then_fail;
SELECT billing.trust_run_statements(false);
SAVEPOINT mark_then_fail;
SELECT billing.trust_run_statements(true);
ROLLBACK TO SAVEPOINT mark_then_fail;
SELECT is(billing.run_statement_trusted(), false, 'a mark set in a subtransaction that failed is gone');
SELECT pg_temp.refused($$
	INSERT INTO invoice_line (account_id, invoice_id, line_number, subscription_id, price_id, kind, amount)
	VALUES (pg_temp.acct('a'), pg_temp.draft('a'), 23, pg_temp.no_sub(), pg_temp.price('setup25'), 'one_time', 25.00)$$,
	'insert or update on table "invoice_line" violates foreign key constraint "invoice_line_account_id_subscription_id_fkey"', 'a bad line after that failed subtransaction');

------------------------------------------------------------------------------
-- The catalog
------------------------------------------------------------------------------
SELECT results_eq(
	$$SELECT c.conname::text COLLATE "default", c.confrelid::regclass FROM pg_constraint c
	  WHERE c.conrelid = 'billing.invoice_line'::regclass AND c.contype = 'f' ORDER BY 1$$,
	$$VALUES ('invoice_line_account_id_invoice_id_fkey', 'billing.invoice'::regclass),
			 ('invoice_line_account_id_subscription_id_fkey', 'billing.subscription'),
			 ('invoice_line_price_id_fkey', 'billing.price')$$,
	'the three foreign keys of invoice_line are still declared');
SELECT results_eq(
	$$SELECT c.conname::text COLLATE "default", p.proname::text COLLATE "default", t.tgenabled::text FROM pg_trigger t
	  JOIN pg_constraint c ON c.oid = t.tgconstraint JOIN pg_proc p ON p.oid = t.tgfoid
	  WHERE c.conrelid = 'billing.invoice_line'::regclass AND c.contype = 'f' AND t.tgrelid = 'billing.invoice_line'::regclass
	  ORDER BY 1, 2$$,
	$$VALUES ('invoice_line_account_id_invoice_id_fkey', 'RI_FKey_check_ins', 'D'),
			 ('invoice_line_account_id_invoice_id_fkey', 'RI_FKey_check_upd', 'D'),
			 ('invoice_line_account_id_subscription_id_fkey', 'RI_FKey_check_ins', 'D'),
			 ('invoice_line_account_id_subscription_id_fkey', 'RI_FKey_check_upd', 'D'),
			 ('invoice_line_price_id_fkey', 'RI_FKey_check_ins', 'D'),
			 ('invoice_line_price_id_fkey', 'RI_FKey_check_upd', 'D')$$,
	'their six row-level checks of the child side are disabled (tgenabled D)');
SELECT results_eq(
	$$SELECT c.conname::text COLLATE "default", t.tgrelid::regclass, p.proname::text COLLATE "default", t.tgenabled::text FROM pg_trigger t
	  JOIN pg_constraint c ON c.oid = t.tgconstraint JOIN pg_proc p ON p.oid = t.tgfoid
	  WHERE c.conrelid = 'billing.invoice_line'::regclass AND c.contype = 'f' AND t.tgrelid <> 'billing.invoice_line'::regclass
	  ORDER BY 1, 3$$,
	$$VALUES ('invoice_line_account_id_invoice_id_fkey', 'billing.invoice'::regclass, 'RI_FKey_noaction_del', 'O'),
			 ('invoice_line_account_id_invoice_id_fkey', 'billing.invoice', 'RI_FKey_noaction_upd', 'O'),
			 ('invoice_line_account_id_subscription_id_fkey', 'billing.subscription', 'RI_FKey_noaction_del', 'O'),
			 ('invoice_line_account_id_subscription_id_fkey', 'billing.subscription', 'RI_FKey_noaction_upd', 'O'),
			 ('invoice_line_price_id_fkey', 'billing.price', 'RI_FKey_noaction_del', 'O'),
			 ('invoice_line_price_id_fkey', 'billing.price', 'RI_FKey_noaction_upd', 'O')$$,
	'their parent-side triggers are enabled');
-- tgtype bits: 1 row, 4 insert, 16 update; BEFORE is 2 (absent: AFTER)
SELECT results_eq(
	$$SELECT t.tgname::text COLLATE "default", t.tgrelid::regclass, t.tgenabled::text, t.tgtype::int, t.tgnewtable::text COLLATE "default", t.tgoldtable::text COLLATE "default"
	  FROM pg_trigger t WHERE t.tgfoid = 'billing.check_foreign_keys()'::regprocedure AND t.tgrelid = 'billing.invoice_line'::regclass ORDER BY 1$$,
	$$VALUES ('check_foreign_keys_insert', 'billing.invoice_line'::regclass, 'O', 4, 'new_rows', NULL::text),
			 ('check_foreign_keys_update', 'billing.invoice_line', 'O', 16, 'new_rows', NULL::text)$$,
	'exactly two triggers run the statement check: AFTER INSERT and AFTER UPDATE, FOR EACH STATEMENT, enabled, new rows as new_rows');
SELECT results_eq(
	$$SELECT count(*) FILTER (WHERE t.tgenabled = 'D') AS disabled, count(*) AS triggers FROM pg_trigger t
	  WHERE t.tgrelid = 'billing.invoice_line'::regclass$$,
	$$VALUES (6::bigint, 10::bigint)$$,
	'invoice_line: 10 triggers, of which only the 6 row-level checks are disabled');

SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the refused and accepted lines');

SELECT * FROM finish();
ROLLBACK;
