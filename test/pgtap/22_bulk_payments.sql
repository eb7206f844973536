-- Payments in bulk (record_payments): the same rows as record_payment called
-- for each element in array order, on a random book with several currencies,
-- back-dated payments and documents paid and unapplied later; idempotency;
-- every error with its SQLSTATE, the element named in DETAIL and nothing
-- written; multi-currency accounts; back-dated payments; check_integrity()
-- after each scenario.
BEGIN;
\ir include/session.sql

SELECT plan(72);

\ir include/lookups.sql
\ir include/bulk_payments.sql
CREATE FUNCTION pg_temp.pay(key text, ref text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT payment_id FROM billing.payment WHERE account_id = pg_temp.acct(key) AND reference = ref $$;
-- what is written: counts and sums of every receivables table
CREATE FUNCTION pg_temp.written() RETURNS text LANGUAGE sql STABLE
AS $$ SELECT format('payments %s/%s, allocations %s/%s/%s, refunds %s, documents %s/%s',
					(SELECT count(*) FROM billing.payment), (SELECT sum(amount) FROM billing.payment),
					(SELECT count(*) FROM billing.allocation), (SELECT sum(amount) FROM billing.allocation),
					(SELECT string_agg(allocated_on::text, ',' ORDER BY allocation_id) FROM billing.allocation),
					(SELECT count(*) FROM billing.refund), (SELECT count(*) FROM billing.invoice),
					(SELECT sum(total) FROM billing.invoice)) $$;
CREATE TEMP TABLE fixture_written (written text) ON COMMIT DROP;
-- the SQLSTATE and DETAIL of a statement's error (the statement is rolled back either way)
CREATE FUNCTION pg_temp.error_of(stmt text) RETURNS text LANGUAGE plpgsql
AS $$
DECLARE
	state text;
	detail text;
BEGIN
	BEGIN
		EXECUTE stmt;
		RAISE EXCEPTION 'no error raised (statement rolled back)' USING ERRCODE = 'P0001';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL;
	END;
	RETURN state || ': ' || detail;
END $$;

INSERT INTO product (code, name) VALUES ('bulk_plan', 'Bulk plan');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT product_id, v.code, v.currency, 'recurring', 'month', 'in_advance', 'per_unit', v.amount
FROM product, (VALUES ('bulk_eur', 'EUR', 40), ('bulk_usd', 'USD', 100)) v(code, currency, amount)
WHERE product.code = 'bulk_plan';

------------------------------------------------------------------------------
-- The same random book twice: 150 payments one by one on 'seq' (recorded,
-- then applied by apply_payment: apply_source's loop, as record_payment did
-- before), in one record_payments call on 'blk'; the rows must be the same
------------------------------------------------------------------------------
DO $$ BEGIN PERFORM pg_temp.build_book('seq'); PERFORM pg_temp.build_book('blk'); PERFORM pg_temp.build_book('one'); END $$;
CREATE TEMP TABLE batch ON COMMIT DROP AS SELECT * FROM pg_temp.batch();
SELECT is_empty($$SELECT * FROM pg_temp.book_rows('seq') EXCEPT ALL SELECT * FROM pg_temp.book_rows('blk')$$,
				'the two books start the same');
SELECT ok((SELECT count(*) FROM batch WHERE reference IS NOT NULL GROUP BY g, reference ORDER BY 1 DESC LIMIT 1) > 1,
		  'the batch repeats references');
-- one by one as record_payment did before it used record_payments: recorded,
-- then (when new) applied by apply_source's own oldest-due-first loop
CREATE FUNCTION pg_temp.record_and_apply(acct bigint, amount numeric, received_on date, ref text, method text)
	RETURNS billing.payment LANGUAGE plpgsql AS $$
DECLARE
	recorded boolean := EXISTS (SELECT 1 FROM billing.payment p WHERE p.account_id = acct AND p.reference = ref);
	pay billing.payment;
BEGIN
	pay := billing.record_payment(acct, amount, received_on, ref, method, auto_apply => false);
	IF NOT recorded THEN
		PERFORM billing.apply_payment(pay.payment_id);
	END IF;
	RETURN pay;
END $$;
CREATE TEMP TABLE seq_result ON COMMIT DROP AS
SELECT b.ord, p.* FROM batch b
CROSS JOIN LATERAL pg_temp.record_and_apply(pg_temp.acct(pg_temp.bk('seq', b.g)), b.amount, b.received_on, b.reference,
											b.method) p
ORDER BY b.ord;
CREATE TEMP TABLE blk_result ON COMMIT DROP AS
SELECT row_number() OVER () AS ord, p.*
FROM billing.record_payments(ARRAY(SELECT pg_temp.acct(pg_temp.bk('blk', g)) FROM batch ORDER BY ord),
							 ARRAY(SELECT amount FROM batch ORDER BY ord), ARRAY(SELECT received_on FROM batch ORDER BY ord),
							 ARRAY(SELECT reference FROM batch ORDER BY ord), ARRAY(SELECT method FROM batch ORDER BY ord)) p;
SELECT is((SELECT count(*) FROM blk_result), 150::bigint, 'record_payments returns one payment per element');
SELECT ok((SELECT count(*) FROM allocation a JOIN account c USING (account_id) WHERE c.external_key LIKE 'blk-%'
		   AND a.created_at = now() AND a.reverses_allocation_id IS NULL) >= 100,
		  'and applies them: at least 100 allocations');
SELECT is_empty(
	$$(SELECT * FROM pg_temp.book_rows('seq') EXCEPT ALL SELECT * FROM pg_temp.book_rows('blk'))
	  UNION ALL
	  (SELECT * FROM pg_temp.book_rows('blk') EXCEPT ALL SELECT * FROM pg_temp.book_rows('seq'))$$,
	'the same payments and allocations (amounts, dates, documents, order) as 150 payments applied one by one');
CREATE TEMP TABLE one_result ON COMMIT DROP AS
SELECT b.ord, p.* FROM batch b
CROSS JOIN LATERAL billing.record_payment(pg_temp.acct(pg_temp.bk('one', b.g)), b.amount, b.received_on, b.reference,
										  b.method) p
ORDER BY b.ord;
SELECT is((SELECT count(*) FROM one_result), 150::bigint,
		  'the batch once more, on ''one'', by record_payment calls (each a one-element record_payments)');
SELECT is_empty(
	$$(SELECT * FROM pg_temp.book_rows('seq') EXCEPT ALL SELECT * FROM pg_temp.book_rows('one'))
	  UNION ALL
	  (SELECT * FROM pg_temp.book_rows('one') EXCEPT ALL SELECT * FROM pg_temp.book_rows('seq'))$$,
	'record_payment one by one writes the same rows too');
SELECT is_empty(
	$$SELECT s.ord FROM seq_result s JOIN blk_result b USING (ord)
	  WHERE (s.amount, s.currency, s.received_on, s.reference, s.method) IS DISTINCT FROM
			(b.amount, b.currency, b.received_on, b.reference, b.method)
		 OR (SELECT count(*) FROM payment p WHERE p.account_id = s.account_id AND p.payment_id <= s.payment_id)
			<> (SELECT count(*) FROM payment p WHERE p.account_id = b.account_id AND p.payment_id <= b.payment_id)$$,
	'element by element, the same payment is returned (a repeated reference: the payment recorded first)');
SELECT ok((SELECT count(*) FROM allocation a JOIN invoice i USING (account_id, invoice_id) JOIN payment p USING (account_id, payment_id)
		   JOIN account c ON c.account_id = a.account_id
		   WHERE c.external_key LIKE 'blk-%' AND a.created_at = now() AND a.allocated_on > greatest(p.received_on, i.invoice_date)) > 0,
		  'some allocations are dated after both their payment and document (a document unapplied later)');
SELECT ok((SELECT count(*) FROM allocation a JOIN invoice i USING (account_id, invoice_id) JOIN payment p USING (account_id, payment_id)
		   JOIN account c ON c.account_id = a.account_id
		   WHERE c.external_key LIKE 'blk-%' AND a.created_at = now() AND p.received_on < i.invoice_date) > 0,
		  'some payments are received before the document they pay (dated on the document)');
SELECT is_empty(
	$$SELECT a.* FROM allocation a JOIN invoice i USING (account_id, invoice_id) JOIN payment p USING (account_id, payment_id)
	  WHERE i.currency <> p.currency OR i.status <> 'posted' OR i.document_type NOT IN ('invoice', 'debit_note')$$,
	'payments only pay posted invoices and debit notes of their own currency');
SELECT ok((SELECT count(*) FROM invoice i JOIN account c USING (account_id)
		   WHERE c.external_key LIKE 'blk-%' AND i.currency <> c.currency AND invoice_balance(i.invoice_id, 'infinity') > 0) > 0,
		  'documents in another currency than the account''s stay open');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the random batch');

-- the whole batch again: every element names a payment recorded, so nothing is written
INSERT INTO fixture_written SELECT pg_temp.written();
SELECT is_empty(
	$$SELECT b.ord FROM batch b
	  JOIN (SELECT row_number() OVER () AS ord, p.*
			FROM billing.record_payments(ARRAY(SELECT pg_temp.acct(pg_temp.bk('blk', g)) FROM batch ORDER BY ord),
										 ARRAY(SELECT amount FROM batch ORDER BY ord),
										 ARRAY(SELECT received_on FROM batch ORDER BY ord),
										 ARRAY(SELECT reference FROM batch ORDER BY ord),
										 ARRAY(SELECT method FROM batch ORDER BY ord)) p) x USING (ord)
	  JOIN blk_result r USING (ord)
	  WHERE b.reference IS NOT NULL AND x.payment_id <> r.payment_id$$,
	'the batch again: each element with a reference returns the payment recorded the first time');
SELECT is((SELECT count(*) FROM payment p JOIN account c USING (account_id) WHERE c.external_key LIKE 'blk-%'),
		  (SELECT count(*) FROM payment p JOIN account c USING (account_id) WHERE c.external_key LIKE 'seq-%')
		  + (SELECT count(*) FROM batch WHERE reference IS NULL),
		  '... and only the elements without a reference are new payments');
DELETE FROM fixture_written;

------------------------------------------------------------------------------
-- Idempotency, in one call and across calls
------------------------------------------------------------------------------
INSERT INTO account (external_key, name, currency, payment_terms_days) VALUES
	('i1', 'Idempotent', 'USD', 30), ('m1', 'Two currencies', 'USD', 30), ('d1', 'Back-dated', 'USD', 30),
	('e1', 'Errors', 'USD', 30), ('j1', 'Yen', 'JPY', 30);
SELECT lives_ok($$SELECT issue_debit_note(pg_temp.acct('i1'), 100.00, 'i1', '2024-03-01')$$, 'i1: debit note 100.00');
SELECT results_eq(
	$$SELECT reference, amount, received_on FROM record_payments(ARRAY[pg_temp.acct('i1'), pg_temp.acct('i1'), pg_temp.acct('i1')],
			 '{60, 60, 70}', '{2024-03-05, 2024-03-05, 2024-03-06}', '{i1-a, i1-a, i1-b}')$$,
	$$VALUES ('i1-a', 60.00, '2024-03-05'::date), ('i1-a', 60.00, '2024-03-05'::date), ('i1-b', 70.00, '2024-03-06'::date)$$,
	'the same reference twice in one call with the same amount and date: one payment, returned twice');
SELECT results_eq(
	$$SELECT p.reference, a.amount, a.allocated_on FROM allocation a JOIN payment p USING (account_id, payment_id)
	  WHERE a.account_id = pg_temp.acct('i1') ORDER BY a.allocation_id$$,
	$$VALUES ('i1-a', 60.00, '2024-03-05'::date), ('i1-b', 40.00, '2024-03-06'::date)$$,
	'applied once: 60.00, then 40.00 of the second payment');
INSERT INTO fixture_written SELECT pg_temp.written();
SELECT results_eq(
	$$SELECT payment_id FROM record_payments(ARRAY[pg_temp.acct('i1'), pg_temp.acct('i1')], '{70, 60}',
											 '{2024-03-06, 2024-03-05}', '{i1-b, i1-a}')$$,
	$$VALUES (pg_temp.pay('i1', 'i1-b')), (pg_temp.pay('i1', 'i1-a'))$$,
	'a second call with recorded references returns those payments, in element order');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... and writes nothing');
SELECT is((record_payment(pg_temp.acct('i1'), 60.00, '2024-03-05', 'i1-a')).payment_id, pg_temp.pay('i1', 'i1-a'),
		  'record_payment with the reference returns the same payment');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... and writes nothing');
SELECT is_empty($$SELECT * FROM record_payments('{}', '{}')$$, 'no elements: no payments');
SELECT is_empty($$SELECT * FROM record_payments(NULL, NULL)$$, 'NULL arrays: no payments');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... and nothing written');
DELETE FROM fixture_written;
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the idempotency scenario');

------------------------------------------------------------------------------
-- Errors: the first bad element's error, its SQLSTATE, the element in
-- DETAIL, and nothing written (not even the good elements before it)
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('e1'), 50.00, '2024-03-05', 'e1-p1')$$, 'e1: a payment e1-p1');
SELECT lives_ok($$SELECT issue_debit_note(pg_temp.acct('e1'), 80.00, 'e1', '2024-03-01')$$, 'e1: a debit note 80.00');
INSERT INTO fixture_written SELECT pg_temp.written();
SELECT is(pg_temp.error_of($$SELECT record_payments(ARRAY[pg_temp.acct('e1'), pg_temp.acct('e1')], '{10, 20}',
													 '{2024-03-06, NULL}')$$),
		  format('22004: element 2 of 2: account %s, amount 20, received on NULL, reference NULL', pg_temp.acct('e1')),
		  'a NULL received date: 22004, DETAIL names element 2');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT is(pg_temp.error_of($$SELECT record_payments(ARRAY[pg_temp.acct('e1')], '{10}', auto_apply => NULL)$$),
		  '22004: auto_apply is NULL', 'auto_apply NULL: 22004');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT is(pg_temp.error_of($$SELECT record_payments(ARRAY[pg_temp.acct('e1'), -1, pg_temp.acct('e1')], '{10, 20, 30}')$$),
		  format('22023: element 2 of 3: account -1, amount 20, received on %s, reference NULL', CURRENT_DATE),
		  'an unknown account: 22023, DETAIL names element 2');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT is(pg_temp.error_of($$SELECT record_payments(ARRAY[pg_temp.acct('e1'), pg_temp.acct('e1')], '{10, -5}',
													 '{2024-03-06, 2024-03-06}')$$),
		  format('22023: payment amount is -5; element 2 of 2: account %s, amount -5, received on 2024-03-06, reference NULL',
				 pg_temp.acct('e1')),
		  'a negative amount: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT is(left(pg_temp.error_of($$SELECT record_payments(ARRAY[pg_temp.acct('e1')], '{0}', '{2024-03-06}')$$), 37),
		  '22023: payment amount is 0; element 1', 'a zero amount: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT is(left(pg_temp.error_of($$SELECT record_payments(ARRAY[pg_temp.acct('e1'), pg_temp.acct('e1')], '{10, NULL}')$$), 40),
		  '22023: payment amount is NULL; element 2', 'a NULL amount: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT ok(pg_temp.error_of($$SELECT record_payments(ARRAY[pg_temp.acct('e1'), pg_temp.acct('j1')], '{10.01, 10.5}')$$)
		  LIKE '22023: element 2 of 2: account ' || pg_temp.acct('j1') || ', amount 10.5,%',
		  'JPY 10.5 (not a whole number of yen): 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT is(left(pg_temp.error_of($$SELECT record_payments(ARRAY[pg_temp.acct('e1')], '{10.001}')$$), 28),
		  '22023: element 1 of 1: accou', 'USD 10.001: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT is(pg_temp.error_of($$SELECT record_payments(ARRAY[pg_temp.acct('e1'), pg_temp.acct('e1')], '{10, 51}',
													 '{2024-03-06, 2024-03-05}', '{e1-new, e1-p1}')$$),
		  format('23505: recorded: 50.00 USD received 2024-03-05; now: 51.00 received 2024-03-05; element 2 of 2: account %s, amount 51, received on 2024-03-05, reference e1-p1',
				 pg_temp.acct('e1')),
		  'a recorded reference with another amount: 23505');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT is(left(pg_temp.error_of($$SELECT record_payments(ARRAY[pg_temp.acct('e1')], '{50}', '{2024-03-06}', '{e1-p1}')$$), 6),
		  '23505:', 'a recorded reference with another date: 23505');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT is(left(pg_temp.error_of($$SELECT record_payments(ARRAY[pg_temp.acct('e1'), pg_temp.acct('e1'), pg_temp.acct('e1')],
														  '{10, 20, 10}', '{2024-03-06, 2024-03-06, 2024-03-07}',
														  '{e1-x, e1-y, e1-x}')$$), 72),
		  '23505: recorded: 10.00 USD received 2024-03-06; now: 10.00 received 2024',
		  'a reference used twice in one call with another date: 23505 against the first use');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT is(pg_temp.error_of($$SELECT record_payments(ARRAY[pg_temp.acct('e1'), pg_temp.acct('e1')], '{10}')$$),
		  '22023: account_ids 2, amounts 1, received_dates NULL, payment_references NULL, methods NULL elements',
		  'arrays of different lengths: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT is(left(pg_temp.error_of($$SELECT record_payments(ARRAY[-1, pg_temp.acct('e1')], '{10, -1}')$$), 30),
		  '22023: element 1 of 2: account', 'two bad elements: the first one''s error');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT throws_ok($$SELECT record_payment(pg_temp.acct('e1'), -1, '2024-03-06')$$, '22023', 'payment amount must be positive',
				 'record_payment keeps its messages (one element)');
DELETE FROM fixture_written;
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the errors');

------------------------------------------------------------------------------
-- Two currencies on one account: payments in the account's currency pay only
-- its documents in that currency
------------------------------------------------------------------------------
INSERT INTO subscription (account_id, price_id, start_date, end_date)
SELECT pg_temp.acct('m1'), price_id, '2024-03-01', '2024-04-01' FROM price WHERE code = 'bulk_eur';
SELECT is((run_invoice_batch(target_date => '2024-03-01')).invoices, 1, 'm1: a EUR invoice for the USD account');
SELECT lives_ok($$SELECT issue_debit_note(pg_temp.acct('m1'), 30.00, 'm1', '2024-03-02')$$, 'm1: a USD debit note 30.00');
SELECT results_eq(
	$$SELECT currency, amount FROM record_payments(ARRAY[pg_temp.acct('m1'), pg_temp.acct('m1')], '{20, 25}',
												   '{2024-03-10, 2024-03-11}')$$,
	$$VALUES ('USD', 20.00), ('USD', 25.00)$$, 'm1: two payments, in USD');
SELECT results_eq(
	$$SELECT i.currency, a.amount, a.allocated_on FROM allocation a JOIN invoice i USING (account_id, invoice_id)
	  WHERE a.account_id = pg_temp.acct('m1') ORDER BY a.allocation_id$$,
	$$VALUES ('USD', 20.00, '2024-03-10'::date), ('USD', 10.00, '2024-03-11'::date)$$,
	'they pay the USD debit note only (20.00, then 10.00); the EUR invoice stays open');
SELECT results_eq(
	$$SELECT currency, bucket, amount FROM ar_aging('2024-03-11') WHERE account_id = pg_temp.acct('m1') ORDER BY currency, bucket_order$$,
	$$VALUES ('EUR', 'current', 40.00), ('USD', 'unapplied', -15.00)$$,
	'aging: EUR 40.00 open, USD 15.00 unapplied');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the two-currency scenario');

------------------------------------------------------------------------------
-- Back-dated payments: dated on the later of payment and document; a
-- document paid and unapplied later takes a payment only from the unapply
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT issue_debit_note(pg_temp.acct('d1'), 100.00, 'd1 A', '2024-03-01')$$, 'd1: A 100.00 on 2024-03-01');
SELECT lives_ok($$SELECT issue_debit_note(pg_temp.acct('d1'), 50.00, 'd1 B', '2024-03-20')$$, 'd1: B 50.00 on 2024-03-20');
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('d1'), 100.00, '2024-03-05', 'd1-p0')$$, 'd1: A paid on 2024-03-05');
SELECT lives_ok($$SELECT unapply(a.allocation_id, '2024-03-25') FROM allocation a WHERE a.account_id = pg_temp.acct('d1')$$,
				'd1: and unapplied on 2024-03-25');
SELECT lives_ok(
	$$SELECT record_payments(ARRAY[pg_temp.acct('d1'), pg_temp.acct('d1')], '{120, 30}', '{2024-03-10, 2024-02-01}',
							 '{d1-p1, d1-p2}')$$,
	'd1: payments received 2024-03-10 (120.00) and 2024-02-01 (30.00), recorded afterwards');
SELECT results_eq(
	$$SELECT p.reference, i.total, a.amount, a.allocated_on FROM allocation a JOIN payment p USING (account_id, payment_id)
	  JOIN invoice i USING (account_id, invoice_id)
	  WHERE a.account_id = pg_temp.acct('d1') AND p.reference <> 'd1-p0' ORDER BY a.allocation_id$$,
	$$VALUES ('d1-p1', 100.00, 100.00, '2024-03-25'::date), ('d1-p1', 50.00, 20.00, '2024-03-20'::date),
			 ('d1-p2', 50.00, 30.00, '2024-03-20'::date)$$,
	'A (paid until 03-25) takes 100.00 dated on the unapply; B takes the 20.00 left and 30.00 of the next, on its own date');
SELECT is_empty(
	$$SELECT d::date, billing.invoice_balance(i.invoice_id, d::date) FROM invoice i,
			 generate_series('2024-03-01'::date, '2024-04-30', '1 day') d
	  WHERE i.account_id = pg_temp.acct('d1') AND billing.invoice_balance(i.invoice_id, d::date) NOT BETWEEN 0 AND i.total$$,
	'no document is open below zero or above its total on any day');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the back-dated payments');

------------------------------------------------------------------------------
-- Who may call it: operators (who record payments), not PUBLIC
------------------------------------------------------------------------------
SELECT ok(has_function_privilege('billing_operator',
		  'billing.record_payments(bigint[], numeric[], date[], text[], text[], boolean)', 'EXECUTE'),
		  'billing_operator may call record_payments');
SELECT ok(NOT has_function_privilege('public',
		  'billing.record_payments(bigint[], numeric[], date[], text[], text[], boolean)', 'EXECUTE'),
		  'PUBLIC may not');

SELECT * FROM finish();
ROLLBACK;
