-- Receivables, balances and allocation (SPEC §5, §6 open amounts; VECTORS.md
-- "Receivables"): payments applied oldest due first, credit notes, write-offs,
-- debit notes, refunds, unapply and void, and balances as of past dates that
-- later corrections never change.  Invoices come from real runs; every scenario
-- has its own account and subscriptions that end, so a later run bills only
-- what the scenario wants.  Documents are named per account by type and order
-- (I1, I2, CN1, DN1), payments by their reference, so no generated id matters.
BEGIN;
\ir include/session.sql

SELECT plan(118);

CREATE FUNCTION pg_temp.acct(key text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT account_id FROM billing.account WHERE external_key = key $$;
-- document of an account by label: I<n> (invoices), CN<n>, DN<n>, in id order
CREATE FUNCTION pg_temp.doc(key text, label text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT d.invoice_id FROM (
		SELECT i.invoice_id, CASE i.document_type WHEN 'invoice' THEN 'I' WHEN 'credit_note' THEN 'CN' ELSE 'DN' END
							 || row_number() OVER (PARTITION BY i.document_type ORDER BY i.invoice_id) AS label
		FROM billing.invoice i WHERE i.account_id = pg_temp.acct(key)) d
	  WHERE d.label = doc.label $$;
CREATE FUNCTION pg_temp.label(doc_id bigint) RETURNS text LANGUAGE sql STABLE
AS $$ SELECT d.label FROM (
		SELECT i.invoice_id, CASE i.document_type WHEN 'invoice' THEN 'I' WHEN 'credit_note' THEN 'CN' ELSE 'DN' END
							 || row_number() OVER (PARTITION BY i.document_type ORDER BY i.invoice_id) AS label
		FROM billing.invoice i
		WHERE i.account_id = (SELECT x.account_id FROM billing.invoice x WHERE x.invoice_id = doc_id)) d
	  WHERE d.invoice_id = doc_id $$;
CREATE FUNCTION pg_temp.pay(key text, ref text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT payment_id FROM billing.payment WHERE account_id = pg_temp.acct(key) AND reference = ref $$;
-- an account's allocations in creation order: target, source, amount, date, reversal?
CREATE FUNCTION pg_temp.allocs(key text)
	RETURNS TABLE (target text, source text, amount numeric, allocated_on date, reversal boolean) LANGUAGE sql STABLE
AS $$ SELECT pg_temp.label(a.invoice_id), coalesce('P:' || p.reference, pg_temp.label(a.credit_note_id)), a.amount,
			 a.allocated_on, a.reverses_allocation_id IS NOT NULL
	  FROM billing.allocation a LEFT JOIN billing.payment p ON p.account_id = a.account_id AND p.payment_id = a.payment_id
	  WHERE a.account_id = pg_temp.acct(key) ORDER BY a.allocation_id $$;
-- oracle for a payment's unapplied part as of a date, straight from the rows
CREATE FUNCTION pg_temp.unapplied(key text, ref text, as_of date) RETURNS numeric LANGUAGE sql STABLE
AS $$ SELECT p.amount
			 - coalesce((SELECT sum(a.amount) FROM billing.allocation a
						 WHERE a.account_id = p.account_id AND a.payment_id = p.payment_id AND a.allocated_on <= as_of), 0)
			 - coalesce((SELECT sum(r.amount) FROM billing.refund r
						 WHERE r.account_id = p.account_id AND r.payment_id = p.payment_id AND r.refunded_on <= as_of), 0)
	  FROM billing.payment p WHERE p.payment_id = pg_temp.pay(key, ref) AND p.received_on <= as_of $$;
CREATE FUNCTION pg_temp.bal(key text, label text, as_of date) RETURNS numeric LANGUAGE sql STABLE
AS $$ SELECT billing.invoice_balance(pg_temp.doc(key, label), as_of) $$;
CREATE FUNCTION pg_temp.acct_bal(key text, as_of date) RETURNS numeric LANGUAGE sql STABLE
AS $$ SELECT billing.account_balance(pg_temp.acct(key), as_of) $$;
CREATE FUNCTION pg_temp.new_account(key text, terms int DEFAULT 30) RETURNS bigint LANGUAGE sql
AS $$ INSERT INTO billing.account (external_key, name, currency, payment_terms_days)
	  VALUES (key, 'Receivables ' || key, 'USD', terms) RETURNING account_id $$;
CREATE FUNCTION pg_temp.subscribe(key text, amount numeric, start_on date, end_on date) RETURNS bigint LANGUAGE sql
AS $$ INSERT INTO billing.subscription (account_id, price_id, unit_amount, start_date, end_date)
	  SELECT pg_temp.acct(key), p.price_id, amount, start_on, end_on FROM billing.price p WHERE p.code = 'r_m100'
	  RETURNING subscription_id $$;

INSERT INTO product (code, name) VALUES ('r_plan', 'Receivables plan');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT product_id, 'r_m100', 'USD', 'recurring', 'month', 'in_advance', 'per_unit', 100 FROM product WHERE code = 'r_plan';

-- One 100.00 invoice dated 2024-03-01, due 2024-03-31, per account; 'oldest'
-- adds 120.00 on 2024-04-01, 'credit', 'hist' another 100.00 on 2024-04-01.
DO $$ BEGIN
	PERFORM pg_temp.new_account(k) FROM unnest(ARRAY['overpay', 'oldest', 'short', 'late', 'unapply', 'credit', 'cnlater',
													 'cnrefund', 'writeoff', 'void', 'hist', 'backdated']) k;
	PERFORM pg_temp.new_account('tiebreak', 20);
	PERFORM pg_temp.subscribe(k, 100, '2024-03-01', '2024-04-01')
	FROM unnest(ARRAY['overpay', 'oldest', 'short', 'late', 'unapply', 'cnlater', 'cnrefund', 'writeoff', 'void',
					  'tiebreak', 'backdated']) k;
	PERFORM pg_temp.subscribe('oldest', 120, '2024-04-01', '2024-05-01');
	PERFORM pg_temp.subscribe(k, 100, '2024-03-01', '2024-05-01') FROM unnest(ARRAY['credit', 'hist']) k;
END $$;

-- debit note before the run: dated 2024-03-11 with 20 days' terms, due 2024-03-31
SELECT lives_ok($$SELECT billing.issue_debit_note(pg_temp.acct('tiebreak'), 40.00, 'onboarding', '2024-03-11')$$,
				'issue_debit_note 40.00 on 2024-03-11');
SELECT results_eq(
	$$SELECT document_type, status, document_number LIKE 'DN-%', invoice_date, due_date, total
	  FROM invoice WHERE invoice_id = pg_temp.doc('tiebreak', 'DN1')$$,
	$$VALUES ('debit_note', 'posted', true, '2024-03-11'::date, '2024-03-31'::date, 40.00)$$,
	'a debit note is a posted DN- document due after the account''s payment terms');
UPDATE account SET payment_terms_days = 30 WHERE account_id = pg_temp.acct('tiebreak');

SELECT is((run_invoice_batch(target_date => '2024-03-01')).invoices, 13, 'run 2024-03-01: thirteen invoices');
SELECT is((SELECT count(*) FROM invoice
		   WHERE document_type = 'invoice' AND status = 'posted' AND invoice_date = '2024-03-01'
			 AND due_date = '2024-03-31' AND total = 100.00),
		  13::bigint, 'each 100.00, dated 2024-03-01, due 2024-03-31');

------------------------------------------------------------------------------
-- invoice 100, payment 110: allocated 100, unapplied 10, account -10
------------------------------------------------------------------------------
SELECT is((record_payment(pg_temp.acct('overpay'), 110.00, '2024-03-10', 'wire-1', 'wire')).amount, 110.00,
		  'record_payment 110.00 on 2024-03-10');
SELECT results_eq($$SELECT * FROM pg_temp.allocs('overpay')$$,
	$$VALUES ('I1', 'P:wire-1', 100.00, '2024-03-10'::date, false)$$,
	'payment 110 on invoice 100: 100 allocated, dated on the payment (the later date)');
SELECT is(pg_temp.unapplied('overpay', 'wire-1', '2024-03-10'), 10.00, '10.00 of the payment is unapplied');
SELECT is(pg_temp.bal('overpay', 'I1', '2024-03-10'), 0.00, 'the invoice is paid');
SELECT is(pg_temp.acct_bal('overpay', '2024-03-10'), -10.00, 'account balance -10.00: the unapplied payment');
SELECT is(pg_temp.acct_bal('overpay', '2024-03-09'), 100.00, 'account balance the day before the payment: 100.00');
SELECT is(pg_temp.bal('overpay', 'I1', '2024-02-29'), NULL, 'invoice_balance is NULL before the document date');
SELECT is(pg_temp.bal('overpay', 'I1', '2024-03-01'), 100.00, 'invoice_balance on its date: the total');

-- the same call again is the same payment, applied once
SELECT is((record_payment(pg_temp.acct('overpay'), 110.00, '2024-03-10', 'wire-1', 'wire')).payment_id,
		  pg_temp.pay('overpay', 'wire-1'), 'record_payment again with the same reference returns the first payment');
SELECT results_eq(
	$$SELECT (SELECT count(*) FROM payment WHERE account_id = pg_temp.acct('overpay')),
			 (SELECT count(*) FROM allocation WHERE account_id = pg_temp.acct('overpay'))$$,
	$$VALUES (1::bigint, 1::bigint)$$,
	'the repeated call writes no payment and no allocation');
SELECT is(pg_temp.acct_bal('overpay', '2024-03-10'), -10.00, 'account balance still -10.00');

-- refund of the unapplied part (NULL amount: all of it)
SELECT results_eq(
	$$SELECT amount, refunded_on, payment_id = pg_temp.pay('overpay', 'wire-1'), credit_note_id IS NULL
	  FROM refund(payment_id => pg_temp.pay('overpay', 'wire-1'), refunded_on => '2024-03-20', reference => 'rf-1')$$,
	$$VALUES (10.00, '2024-03-20'::date, true, true)$$,
	'refund of a payment with NULL amount pays back its unapplied 10.00');
SELECT is(pg_temp.unapplied('overpay', 'wire-1', '2024-03-20'), 0.00, 'nothing of the payment is left unapplied');
SELECT is(pg_temp.acct_bal('overpay', '2024-03-20'), 0.00, 'account balance after the refund: 0.00');
SELECT is(pg_temp.acct_bal('overpay', '2024-03-19'), -10.00, 'account balance the day before the refund: -10.00');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after overpayment and refund');

------------------------------------------------------------------------------
-- same due date: the older document first (debit note dated 03-11, invoice
-- 03-01, both due 03-31; the invoice has the higher id); debit notes are paid
-- like invoices
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('tiebreak'), 120.00, '2024-03-15', 't1')$$,
				'record_payment 120.00 on 2024-03-15');
SELECT results_eq($$SELECT * FROM pg_temp.allocs('tiebreak')$$,
	$$VALUES ('I1', 'P:t1', 100.00, '2024-03-15'::date, false), ('DN1', 'P:t1', 20.00, '2024-03-15'::date, false)$$,
	'equal due dates: the invoice dated 03-01 before the debit note dated 03-11, despite its higher id');
SELECT is(pg_temp.bal('tiebreak', 'DN1', '2024-03-15'), 20.00, 'the debit note has 20.00 open');
SELECT is(pg_temp.bal('tiebreak', 'DN1', '2024-03-10'), NULL, 'the debit note is NULL before its date');
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('tiebreak'), 20.00, '2024-03-20', 't2')$$,
				'record_payment 20.00 on 2024-03-20');
SELECT results_eq($$SELECT * FROM pg_temp.allocs('tiebreak') OFFSET 2$$,
	$$VALUES ('DN1', 'P:t2', 20.00, '2024-03-20'::date, false)$$,
	'the second payment pays the debit note');
SELECT results_eq(
	$$SELECT pg_temp.bal('tiebreak', 'DN1', '2024-03-20'), pg_temp.bal('tiebreak', 'I1', '2024-03-20'),
			 pg_temp.acct_bal('tiebreak', '2024-03-20'), pg_temp.acct_bal('tiebreak', '2024-03-19')$$,
	$$VALUES (0.00, 0.00, 0.00, 20.00)$$,
	'debit note and invoice paid; account 0.00 (20.00 the day before)');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the debit note scenario');

------------------------------------------------------------------------------
-- invoice 100, payment 99.99 (received before the invoice): open 0.01
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('short'), 99.99, '2024-02-20', 'sh1')$$,
				'record_payment 99.99 received 2024-02-20');
SELECT results_eq($$SELECT * FROM pg_temp.allocs('short')$$,
	$$VALUES ('I1', 'P:sh1', 99.99, '2024-03-01'::date, false)$$,
	'allocated 99.99, dated on the invoice (the later of the two dates)');
SELECT is(pg_temp.bal('short', 'I1', '2024-03-01'), 0.01, 'invoice 100, payment 99.99: open 0.01');
SELECT is(pg_temp.acct_bal('short', '2024-03-01'), 0.01, 'account balance 0.01');
SELECT is(pg_temp.acct_bal('short', '2024-02-20'), -99.99, 'before the invoice date the payment is account credit');
SELECT is(pg_temp.acct_bal('short', '2024-02-19'), 0.00, 'before the payment: nothing');
SELECT results_eq(
	$$SELECT total, invoice_date FROM issue_credit_note(pg_temp.doc('short', 'I1'), reason => 'rounding', issued_on => '2024-03-31')$$,
	$$VALUES (-0.01, '2024-03-31'::date)$$,
	'issue_credit_note with NULL amount credits the open 0.01');
SELECT results_eq(
	$$SELECT pg_temp.bal('short', 'I1', '2024-03-30'), pg_temp.bal('short', 'I1', '2024-03-31'),
			 pg_temp.bal('short', 'CN1', '2024-03-31'), pg_temp.acct_bal('short', '2024-03-31')$$,
	$$VALUES (0.01, 0.00, 0.00, 0.00)$$,
	'the credit note closes the invoice on its date and is used up');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the short payment');

------------------------------------------------------------------------------
-- payment dated after the as-of date: ignored as of that date
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('late'), 100.00, '2024-04-15', 'l1')$$,
				'record_payment 100.00 received 2024-04-15');
SELECT results_eq(
	$$SELECT pg_temp.bal('late', 'I1', '2024-04-14'), pg_temp.acct_bal('late', '2024-04-14'),
			 pg_temp.bal('late', 'I1', '2024-04-15'), pg_temp.acct_bal('late', '2024-04-15')$$,
	$$VALUES (100.00, 100.00, 0.00, 0.00)$$,
	'as of 04-14 the payment of 04-15 does not exist (100.00 open); from 04-15 the invoice is paid');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the late payment');

------------------------------------------------------------------------------
-- payment 20 applied 03-05, unapplied 03-15: 80 open between, 100 after
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('unapply'), 20.00, '2024-03-05', 'u1')$$,
				'record_payment 20.00 on 2024-03-05');
SELECT results_eq(
	$$SELECT amount, allocated_on, reverses_allocation_id = (SELECT min(allocation_id) FROM allocation
															  WHERE account_id = pg_temp.acct('unapply'))
	  FROM unapply((SELECT min(allocation_id) FROM allocation WHERE account_id = pg_temp.acct('unapply')), '2024-03-15')$$,
	$$VALUES (-20.00, '2024-03-15'::date, true)$$,
	'unapply adds a reversing row: -20.00 dated 2024-03-15');
SELECT results_eq($$SELECT * FROM pg_temp.allocs('unapply')$$,
	$$VALUES ('I1', 'P:u1', 20.00, '2024-03-05'::date, false), ('I1', 'P:u1', -20.00, '2024-03-15'::date, true)$$,
	'the allocation stays; the reversal is a new row');
SELECT results_eq(
	$$SELECT d, pg_temp.bal('unapply', 'I1', d), pg_temp.unapplied('unapply', 'u1', d), pg_temp.acct_bal('unapply', d)
	  FROM unnest('{2024-03-04,2024-03-05,2024-03-14,2024-03-15,2024-04-30}'::date[]) d$$,
	$$VALUES ('2024-03-04'::date, 100.00, NULL, 100.00),
			 ('2024-03-05'::date, 80.00, 0.00, 80.00),
			 ('2024-03-14'::date, 80.00, 0.00, 80.00),
			 ('2024-03-15'::date, 100.00, 20.00, 80.00),
			 ('2024-04-30'::date, 100.00, 20.00, 80.00)$$,
	'invoice open 80 between the two dates, 100 after; the 20 is unapplied again, the account owes 80 throughout');
SELECT results_eq(
	$$SELECT pg_temp.label(invoice_id), amount, allocated_on
	  FROM apply_payment(pg_temp.pay('unapply', 'u1'), pg_temp.doc('unapply', 'I1'), 5.00, allocated_on => '2024-04-01')$$,
	$$VALUES ('I1', 5.00, '2024-04-01'::date)$$,
	'apply_payment with an amount and allocated_on: 5.00 dated 2024-04-01');
SELECT results_eq(
	$$SELECT pg_temp.bal('unapply', 'I1', '2024-03-31'), pg_temp.bal('unapply', 'I1', '2024-04-01'),
			 pg_temp.unapplied('unapply', 'u1', '2024-04-01'), pg_temp.acct_bal('unapply', '2024-04-01')$$,
	$$VALUES (100.00, 95.00, 15.00, 80.00)$$,
	'the invoice is 95.00 open from 2024-04-01, 15.00 of the payment unapplied');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after unapply');

------------------------------------------------------------------------------
-- a payment recorded late with its real (past) received date, after another
-- payment that paid the invoice from 03-05 was unapplied on 03-20: its
-- allocation must not make the invoice open below zero on any past date
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('backdated'), 100.00, '2024-03-05', 'b1')$$,
				'record_payment 100.00 on 2024-03-05');
SELECT lives_ok($$SELECT unapply((SELECT min(allocation_id) FROM allocation WHERE account_id = pg_temp.acct('backdated')),
								 '2024-03-20')$$,
				'unapply it on 2024-03-20 (the invoice is open again, the payment unapplied)');
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('backdated'), 100.00, '2024-03-10', 'b2')$$,
				'record_payment 100.00 received 2024-03-10, recorded afterwards');
SELECT is_empty(
	$$SELECT d::date, pg_temp.bal('backdated', 'I1', d::date) FROM generate_series('2024-03-01'::date, '2024-03-31', '1 day') g(d)
	  WHERE pg_temp.bal('backdated', 'I1', d::date) NOT BETWEEN 0 AND 100$$,
	'the invoice is never open below 0.00 on any day (never paid twice between 03-10 and 03-19)');
SELECT results_eq(
	$$SELECT pg_temp.bal('backdated', 'I1', '2024-03-31'), pg_temp.acct_bal('backdated', '2024-03-31')$$,
	$$VALUES (0.00, -100.00)$$,
	'as of 2024-03-31: the invoice is paid and one payment is account credit');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the late-recorded payment');

------------------------------------------------------------------------------
-- credit note for later: apply => false, then apply_credit_note
------------------------------------------------------------------------------
SELECT results_eq(
	$$SELECT document_type, total, corrects_invoice_id = pg_temp.doc('cnlater', 'I1'), credit_kind
	  FROM issue_credit_note(pg_temp.doc('cnlater', 'I1'), 40.00, 'discount', '2024-03-10', apply => false)$$,
	$$VALUES ('credit_note', -40.00, true, 'credit')$$,
	'issue_credit_note 40.00, apply => false');
SELECT is_empty($$SELECT * FROM pg_temp.allocs('cnlater')$$, 'a credit note not applied allocates nothing');
SELECT results_eq(
	$$SELECT pg_temp.bal('cnlater', 'I1', '2024-03-10'), pg_temp.bal('cnlater', 'CN1', '2024-03-10'),
			 pg_temp.acct_bal('cnlater', '2024-03-10')$$,
	$$VALUES (100.00, -40.00, 60.00)$$,
	'invoice 100.00 open, the credit note -40.00 unapplied, account 60.00');
SELECT results_eq(
	$$SELECT pg_temp.label(invoice_id), amount, allocated_on FROM apply_credit_note(pg_temp.doc('cnlater', 'CN1'))$$,
	$$VALUES ('I1', 40.00, '2024-03-10'::date)$$,
	'apply_credit_note with no target: the oldest open invoice, dated on the later of the two documents');
SELECT results_eq(
	$$SELECT pg_temp.bal('cnlater', 'I1', '2024-03-10'), pg_temp.bal('cnlater', 'CN1', '2024-03-10'),
			 pg_temp.acct_bal('cnlater', '2024-03-10')$$,
	$$VALUES (60.00, 0.00, 60.00)$$,
	'invoice 60.00 open, credit note used up, account still 60.00');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after apply_credit_note');

------------------------------------------------------------------------------
-- credit note on a paid invoice is account credit; refund of a credit note
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('cnrefund'), 100.00, '2024-03-05', 'cr1')$$,
				'record_payment 100.00 on 2024-03-05');
SELECT is((issue_credit_note(pg_temp.doc('cnrefund', 'I1'), 25.00, 'late delivery', '2024-03-15')).total, -25.00,
		  'issue_credit_note 25.00 on the paid invoice');
SELECT results_eq($$SELECT * FROM pg_temp.allocs('cnrefund')$$,
	$$VALUES ('I1', 'P:cr1', 100.00, '2024-03-05'::date, false)$$,
	'nothing is open, so the credit note is not allocated');
SELECT results_eq(
	$$SELECT pg_temp.bal('cnrefund', 'CN1', '2024-03-15'), pg_temp.bal('cnrefund', 'CN1', '2024-03-14'),
			 pg_temp.acct_bal('cnrefund', '2024-03-15')$$,
	$$VALUES (-25.00, NULL::numeric, -25.00)$$,
	'the credit note is -25.00 unapplied credit (NULL before its date); account -25.00');
SELECT results_eq(
	$$SELECT amount, credit_note_id = pg_temp.doc('cnrefund', 'CN1'), payment_id IS NULL
	  FROM refund(credit_note_id => pg_temp.doc('cnrefund', 'CN1'), amount => 25.00, refunded_on => '2024-03-20')$$,
	$$VALUES (25.00, true, true)$$,
	'refund 25.00 from the credit note');
SELECT results_eq(
	$$SELECT pg_temp.bal('cnrefund', 'CN1', '2024-03-19'), pg_temp.bal('cnrefund', 'CN1', '2024-03-20'),
			 pg_temp.acct_bal('cnrefund', '2024-03-19'), pg_temp.acct_bal('cnrefund', '2024-03-20')$$,
	$$VALUES (-25.00, 0.00, -25.00, 0.00)$$,
	'after the refund the credit note and the account are at 0.00');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after a credit note refund');

------------------------------------------------------------------------------
-- write-off: part, then the rest (NULL amount: the open amount)
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('writeoff'), 60.00, '2024-03-10', 'w1')$$,
				'record_payment 60.00 on 2024-03-10');
SELECT results_eq(
	$$SELECT document_type, status, credit_kind, total, corrects_invoice_id = pg_temp.doc('writeoff', 'I1'), invoice_date
	  FROM write_off(pg_temp.doc('writeoff', 'I1'), 15.00, 'goodwill', '2024-06-15')$$,
	$$VALUES ('credit_note', 'posted', 'write_off', -15.00, true, '2024-06-15'::date)$$,
	'write_off 15.00: a posted credit note with credit_kind write_off');
SELECT results_eq(
	$$SELECT credit_kind, total FROM write_off(pg_temp.doc('writeoff', 'I1'), reason => 'uncollectible', on_date => '2024-06-30')$$,
	$$VALUES ('write_off', -25.00)$$,
	'write_off with NULL amount writes off the open 25.00');
SELECT results_eq($$SELECT * FROM pg_temp.allocs('writeoff')$$,
	$$VALUES ('I1', 'P:w1', 60.00, '2024-03-10'::date, false),
			 ('I1', 'CN1', 15.00, '2024-06-15'::date, false),
			 ('I1', 'CN2', 25.00, '2024-06-30'::date, false)$$,
	'write-offs are applied to the invoice on their dates');
SELECT results_eq(
	$$SELECT d, pg_temp.bal('writeoff', 'I1', d), pg_temp.acct_bal('writeoff', d)
	  FROM unnest('{2024-06-14,2024-06-15,2024-06-29,2024-06-30}'::date[]) d$$,
	$$VALUES ('2024-06-14'::date, 40.00, 40.00), ('2024-06-15'::date, 25.00, 25.00),
			 ('2024-06-29'::date, 25.00, 25.00), ('2024-06-30'::date, 0.00, 0.00)$$,
	'open 40.00, 25.00 after the first write-off, 0.00 after the second');
SELECT results_eq(
	$$SELECT l.kind, l.amount FROM invoice_line l WHERE l.invoice_id IN (pg_temp.doc('writeoff', 'CN1'), pg_temp.doc('writeoff', 'CN2'))
	  ORDER BY l.invoice_id$$,
	$$VALUES ('adjustment', -15.00), ('adjustment', -25.00)$$,
	'write-off credit notes carry one adjustment line each');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after write-offs');

------------------------------------------------------------------------------
-- void: refused while allocated, allowed after unapply; the period is re-billed
-- by the next run, which uses the unapplied payment
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('void'), 100.00, '2024-03-05', 'v1')$$,
				'record_payment 100.00 on 2024-03-05');
SELECT throws_ok($$SELECT void_invoice(pg_temp.doc('void', 'I1'), 'wrong customer', '2024-03-20')$$, '55000', NULL,
				 'void of an invoice with a live allocation is refused (55000)');
SELECT is((SELECT status FROM invoice WHERE invoice_id = pg_temp.doc('void', 'I1')), 'posted', 'the invoice stays posted');
SELECT lives_ok($$SELECT unapply((SELECT min(allocation_id) FROM allocation WHERE account_id = pg_temp.acct('void')),
								 '2024-03-20')$$,
				'unapply the payment on 2024-03-20');
SELECT results_eq(
	$$SELECT status, voided_on, void_reason FROM void_invoice(pg_temp.doc('void', 'I1'), 'wrong customer', '2024-03-20')$$,
	$$VALUES ('void', '2024-03-20'::date, 'wrong customer')$$,
	'after unapply the invoice can be voided');
SELECT results_eq(
	$$SELECT d, pg_temp.bal('void', 'I1', d), pg_temp.acct_bal('void', d)
	  FROM unnest('{2024-03-04,2024-03-05,2024-03-19,2024-03-20,2024-03-31}'::date[]) d$$,
	$$VALUES ('2024-03-04'::date, 100.00, 100.00), ('2024-03-05'::date, 0.00, 0.00),
			 ('2024-03-19'::date, 0.00, 0.00), ('2024-03-20'::date, 0.00, -100.00),
			 ('2024-03-31'::date, 0.00, -100.00)$$,
	'void from its void date: 0; the payment is account credit again');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after void');

------------------------------------------------------------------------------
-- credit note applied to its invoice first, the rest is account credit, used
-- by the next run (oldest credit first, dated on the new invoice's date)
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('credit'), 30.00, '2024-03-05', 'c1')$$,
				'record_payment 30.00 on 2024-03-05');
SELECT results_eq(
	$$SELECT document_type, status, document_number LIKE 'CN-%', invoice_date, due_date, total, credit_kind,
			 corrects_invoice_id = pg_temp.doc('credit', 'I1'), reason
	  FROM issue_credit_note(pg_temp.doc('credit', 'I1'), 100.00, 'service outage', '2024-03-20')$$,
	$$VALUES ('credit_note', 'posted', true, '2024-03-20'::date, NULL::date, -100.00, 'credit', true, 'service outage')$$,
	'issue_credit_note 100.00 on an invoice with 70.00 open: a posted CN- document of -100.00');
SELECT results_eq(
	$$SELECT kind, amount, subscription_id IS NULL, service_period IS NULL FROM invoice_line
	  WHERE invoice_id = pg_temp.doc('credit', 'CN1')$$,
	$$VALUES ('adjustment', -100.00, true, true)$$,
	'one adjustment line, not tied to a subscription period');
SELECT results_eq($$SELECT * FROM pg_temp.allocs('credit')$$,
	$$VALUES ('I1', 'P:c1', 30.00, '2024-03-05'::date, false), ('I1', 'CN1', 70.00, '2024-03-20'::date, false)$$,
	'the credit note pays the invoice''s open 70.00 first');
SELECT results_eq(
	$$SELECT pg_temp.bal('credit', 'I1', '2024-03-19'), pg_temp.bal('credit', 'I1', '2024-03-20'),
			 pg_temp.bal('credit', 'CN1', '2024-03-20'), pg_temp.acct_bal('credit', '2024-03-20')$$,
	$$VALUES (70.00, 0.00, -30.00, -30.00)$$,
	'invoice paid; the rest -30.00 is account credit');
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('credit'), 90.00, '2024-03-25', 'c2')$$,
				'record_payment 90.00 on 2024-03-25 (nothing open)');
SELECT is(pg_temp.acct_bal('credit', '2024-03-25'), -120.00, 'account credit -120.00: credit note 30 + payment 90');

------------------------------------------------------------------------------
-- as-of history, part 1: a payment in March
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('hist'), 60.00, '2024-03-10', 'h1')$$,
				'record_payment 60.00 on 2024-03-10');

------------------------------------------------------------------------------
-- run 2024-04-01
------------------------------------------------------------------------------
SELECT is((run_invoice_batch(target_date => '2024-04-01')).invoices, 4, 'run 2024-04-01: four invoices');
SELECT results_eq(
	$$SELECT a.external_key, i.total, i.invoice_date, i.due_date FROM invoice i JOIN account a USING (account_id)
	  WHERE i.invoice_date = '2024-04-01' ORDER BY a.external_key$$,
	$$VALUES ('credit', 100.00, '2024-04-01'::date, '2024-05-01'::date), ('hist', 100.00, '2024-04-01'::date, '2024-05-01'::date),
			 ('oldest', 120.00, '2024-04-01'::date, '2024-05-01'::date), ('void', 100.00, '2024-04-01'::date, '2024-05-01'::date)$$,
	'April for credit (the credit note does not reduce it), hist, oldest (120.00) and void (March re-billed)');

-- credit: credit note (03-20) before payment (03-25), both dated 2024-04-01
SELECT results_eq($$SELECT * FROM pg_temp.allocs('credit') OFFSET 2$$,
	$$VALUES ('I2', 'CN1', 30.00, '2024-04-01'::date, false), ('I2', 'P:c2', 70.00, '2024-04-01'::date, false)$$,
	'the run applies account credit oldest first: credit note 30.00, then 70.00 of the payment, on the invoice date');
SELECT results_eq(
	$$SELECT pg_temp.bal('credit', 'I2', '2024-04-01'), pg_temp.bal('credit', 'CN1', '2024-04-01'),
			 pg_temp.unapplied('credit', 'c2', '2024-04-01'), pg_temp.acct_bal('credit', '2024-04-01'),
			 pg_temp.acct_bal('credit', '2024-03-31')$$,
	$$VALUES (0.00, 0.00, 20.00, -20.00, -120.00)$$,
	'April paid from credit; 20.00 of the payment left; account -20.00 (-120.00 the day before)');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after credit note and the run');

-- void: the re-billed March takes the unapplied payment
SELECT results_eq($$SELECT * FROM pg_temp.allocs('void') OFFSET 2$$,
	$$VALUES ('I2', 'P:v1', 100.00, '2024-04-01'::date, false)$$,
	'the re-billed invoice is paid by the unapplied payment on its date');
SELECT results_eq(
	$$SELECT pg_temp.bal('void', 'I1', '2024-04-01'), pg_temp.bal('void', 'I2', '2024-04-01'), pg_temp.acct_bal('void', '2024-04-01')$$,
	$$VALUES (0.00, 0.00, 0.00)$$,
	'void invoice 0, re-billed invoice paid, account 0.00');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after void and re-bill');

------------------------------------------------------------------------------
-- payments [150, 100] oldest due first to invoices [100, 120]:
-- 100 -> I1, 50 -> I2, 70 -> I2; 30 unapplied
------------------------------------------------------------------------------
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('oldest'), 150.00, '2024-04-05', 'o1')$$,
				'record_payment 150.00 on 2024-04-05 (auto_apply)');
SELECT is_empty($$SELECT * FROM record_payment(pg_temp.acct('oldest'), 100.00, '2024-04-10', 'o2', auto_apply => false) p
				  JOIN allocation a ON a.account_id = p.account_id AND a.payment_id = p.payment_id$$,
				'record_payment 100.00 on 2024-04-10 with auto_apply => false allocates nothing');
SELECT results_eq(
	$$SELECT pg_temp.label(invoice_id), amount, allocated_on FROM apply_payment(pg_temp.pay('oldest', 'o2'))$$,
	$$VALUES ('I2', 70.00, '2024-04-10'::date)$$,
	'apply_payment with no invoice and no amount: all that is open, 70.00 to I2');
SELECT results_eq($$SELECT * FROM pg_temp.allocs('oldest')$$,
	$$VALUES ('I1', 'P:o1', 100.00, '2024-04-05'::date, false), ('I2', 'P:o1', 50.00, '2024-04-05'::date, false),
			 ('I2', 'P:o2', 70.00, '2024-04-10'::date, false)$$,
	'100 -> I1, 50 -> I2, 70 -> I2');
SELECT results_eq(
	$$SELECT pg_temp.bal('oldest', 'I1', '2024-04-10'), pg_temp.bal('oldest', 'I2', '2024-04-10'),
			 pg_temp.unapplied('oldest', 'o1', '2024-04-10'), pg_temp.unapplied('oldest', 'o2', '2024-04-10'),
			 pg_temp.acct_bal('oldest', '2024-04-10')$$,
	$$VALUES (0.00, 0.00, 0.00, 30.00, -30.00)$$,
	'both invoices paid, 30.00 unapplied, account -30.00');
SELECT results_eq(
	$$SELECT pg_temp.bal('oldest', 'I2', '2024-04-05'), pg_temp.acct_bal('oldest', '2024-04-05'),
			 pg_temp.acct_bal('oldest', '2024-04-04')$$,
	$$VALUES (70.00, 70.00, 220.00)$$,
	'as of 04-05: I2 70.00 open, account 70.00; the day before 220.00');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after oldest-due-first');

------------------------------------------------------------------------------
-- as-of history, part 2: record balances on past dates, then add payments,
-- unapplies, credit notes, write-offs and refunds dated later; the recorded
-- values must not move
------------------------------------------------------------------------------
CREATE TEMP TABLE hist_snapshot ON COMMIT DROP AS
SELECT w.what, d AS as_of,
	   CASE w.what WHEN 'account' THEN pg_temp.acct_bal('hist', d) ELSE pg_temp.bal('hist', w.what, d) END AS balance
FROM unnest('{2024-02-29,2024-03-01,2024-03-09,2024-03-10,2024-03-31,2024-04-01,2024-04-09}'::date[]) d,
	 unnest(ARRAY['I1', 'I2', 'account']) w(what);
SELECT results_eq(
	$$SELECT as_of, max(balance) FILTER (WHERE what = 'I1'), max(balance) FILTER (WHERE what = 'I2'),
			 max(balance) FILTER (WHERE what = 'account')
	  FROM hist_snapshot GROUP BY as_of ORDER BY as_of$$,
	$$VALUES ('2024-02-29'::date, NULL, NULL, 0.00), ('2024-03-01'::date, 100.00, NULL, 100.00),
			 ('2024-03-09'::date, 100.00, NULL, 100.00), ('2024-03-10'::date, 40.00, NULL, 40.00),
			 ('2024-03-31'::date, 40.00, NULL, 40.00), ('2024-04-01'::date, 40.00, 100.00, 140.00),
			 ('2024-04-09'::date, 40.00, 100.00, 140.00)$$,
	'balances recorded on seven dates');
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('hist'), 80.00, '2024-04-10', 'h2')$$,
				'later: record_payment 80.00 on 2024-04-10 (40 -> I1, 40 -> I2)');
SELECT lives_ok($$SELECT unapply((SELECT a.allocation_id FROM allocation a WHERE a.payment_id = pg_temp.pay('hist', 'h1')),
								 '2024-04-15')$$,
				'later: unapply the March allocation on 2024-04-15');
SELECT lives_ok($$SELECT issue_credit_note(pg_temp.doc('hist', 'I1'), 50.00, 'price correction', '2024-04-20')$$,
				'later: credit note 50.00 on I1 on 2024-04-20');
SELECT lives_ok($$SELECT write_off(pg_temp.doc('hist', 'I2'), NULL, 'bad debt', '2024-04-25')$$,
				'later: write off I2 on 2024-04-25');
SELECT lives_ok($$SELECT refund(payment_id => pg_temp.pay('hist', 'h1'), refunded_on => '2024-04-28')$$,
				'later: refund the unapplied 60.00 of the March payment on 2024-04-28');
SELECT results_eq($$SELECT * FROM pg_temp.allocs('hist')$$,
	$$VALUES ('I1', 'P:h1', 60.00, '2024-03-10'::date, false), ('I1', 'P:h2', 40.00, '2024-04-10'::date, false),
			 ('I2', 'P:h2', 40.00, '2024-04-10'::date, false), ('I1', 'P:h1', -60.00, '2024-04-15'::date, true),
			 ('I1', 'CN1', 50.00, '2024-04-20'::date, false), ('I2', 'CN2', 60.00, '2024-04-25'::date, false)$$,
	'the later corrections are new rows dated on their own dates');
SELECT is_empty(
	$$SELECT s.what, s.as_of, s.balance,
			 CASE s.what WHEN 'account' THEN pg_temp.acct_bal('hist', s.as_of) ELSE pg_temp.bal('hist', s.what, s.as_of) END
	  FROM hist_snapshot s
	  WHERE s.balance IS DISTINCT FROM
			CASE s.what WHEN 'account' THEN pg_temp.acct_bal('hist', s.as_of) ELSE pg_temp.bal('hist', s.what, s.as_of) END$$,
	'every balance recorded for a past date is unchanged by the later rows');
SELECT results_eq(
	$$SELECT d, pg_temp.bal('hist', 'I1', d), pg_temp.bal('hist', 'I2', d), pg_temp.acct_bal('hist', d)
	  FROM unnest('{2024-04-10,2024-04-15,2024-04-20,2024-04-25,2024-04-28}'::date[]) d$$,
	$$VALUES ('2024-04-10'::date, 0.00, 60.00, 60.00), ('2024-04-15'::date, 60.00, 60.00, 60.00),
			 ('2024-04-20'::date, 10.00, 60.00, 10.00), ('2024-04-25'::date, 10.00, 0.00, -50.00),
			 ('2024-04-28'::date, 10.00, 0.00, 10.00)$$,
	'the later dates show each correction: open I1, I2 and the account');
SELECT results_eq(
	$$SELECT pg_temp.bal('hist', 'CN1', '2024-04-28'), pg_temp.bal('hist', 'CN2', '2024-04-28'),
			 pg_temp.unapplied('hist', 'h1', '2024-04-27'), pg_temp.unapplied('hist', 'h1', '2024-04-28'),
			 pg_temp.unapplied('hist', 'h2', '2024-04-28')$$,
	$$VALUES (0.00, 0.00, 60.00, 0.00, 0.00)$$,
	'credit notes used up; the March payment unapplied 60.00 until its refund');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the as-of history');

------------------------------------------------------------------------------
-- SPEC §6 as an oracle: for every account, document and date used above,
-- invoice_balance = total - allocations dated <= D (NULL before the date, 0
-- from the void date), and account_balance = Σ open - Σ unapplied payments
------------------------------------------------------------------------------
SELECT is_empty(
	$$SELECT i.invoice_id, d, invoice_balance(i.invoice_id, d) AS got,
			 CASE WHEN i.invoice_date > d THEN NULL
				  WHEN i.voided_on <= d THEN 0
				  WHEN i.document_type = 'credit_note' THEN
					  i.total + coalesce((SELECT sum(a.amount) FROM allocation a
										  WHERE a.credit_note_id = i.invoice_id AND a.allocated_on <= d), 0)
							  + coalesce((SELECT sum(r.amount) FROM refund r
										  WHERE r.credit_note_id = i.invoice_id AND r.refunded_on <= d), 0)
				  ELSE i.total - coalesce((SELECT sum(a.amount) FROM allocation a
										   WHERE a.invoice_id = i.invoice_id AND a.allocated_on <= d), 0) END AS expected
	  FROM invoice i JOIN account ac USING (account_id), generate_series('2024-02-15'::date, '2024-07-01', '1 day') g(d0),
		   LATERAL (SELECT d0::date AS d) x
	  WHERE ac.external_key IN ('overpay', 'oldest', 'short', 'late', 'unapply', 'credit', 'cnlater', 'cnrefund',
								'writeoff', 'void', 'hist', 'tiebreak', 'backdated')
		AND invoice_balance(i.invoice_id, d) IS DISTINCT FROM
			CASE WHEN i.invoice_date > d THEN NULL
				 WHEN i.voided_on <= d THEN 0
				 WHEN i.document_type = 'credit_note' THEN
					 i.total + coalesce((SELECT sum(a.amount) FROM allocation a
										 WHERE a.credit_note_id = i.invoice_id AND a.allocated_on <= d), 0)
							 + coalesce((SELECT sum(r.amount) FROM refund r
										 WHERE r.credit_note_id = i.invoice_id AND r.refunded_on <= d), 0)
				 ELSE i.total - coalesce((SELECT sum(a.amount) FROM allocation a
										  WHERE a.invoice_id = i.invoice_id AND a.allocated_on <= d), 0) END$$,
	'invoice_balance on every day from 2024-02-15 to 2024-07-01 matches SPEC §6 for every document');
SELECT is_empty(
	$$SELECT ac.external_key, d, account_balance(ac.account_id, d)
	  FROM account ac, generate_series('2024-02-15'::date, '2024-07-01', '1 day') g(d0), LATERAL (SELECT d0::date AS d) x
	  WHERE ac.external_key IN ('overpay', 'oldest', 'short', 'late', 'unapply', 'credit', 'cnlater', 'cnrefund',
								'writeoff', 'void', 'hist', 'tiebreak', 'backdated')
		AND account_balance(ac.account_id, d) IS DISTINCT FROM
			coalesce((SELECT sum(invoice_balance(i.invoice_id, d)) FROM invoice i
					  WHERE i.account_id = ac.account_id AND i.status <> 'draft'), 0)
			- coalesce((SELECT sum(pg_temp.unapplied(ac.external_key, p.reference, d)) FROM payment p
						WHERE p.account_id = ac.account_id), 0)$$,
	'account_balance on every day = open documents minus unapplied payments');

SELECT is_empty(
	$$SELECT i.invoice_id, d, invoice_balance(i.invoice_id, d)
	  FROM invoice i, generate_series('2024-02-15'::date, '2024-07-01', '1 day') g(d0), LATERAL (SELECT d0::date AS d) x
	  WHERE (i.document_type <> 'credit_note' AND (invoice_balance(i.invoice_id, d) < 0
												   OR invoice_balance(i.invoice_id, d) > i.total))
		 OR (i.document_type = 'credit_note' AND (invoice_balance(i.invoice_id, d) > 0
												  OR invoice_balance(i.invoice_id, d) < i.total))
	  UNION ALL
	  SELECT p.payment_id, d, pg_temp.unapplied(a.external_key, p.reference, d)
	  FROM payment p JOIN account a USING (account_id),
		   generate_series('2024-02-15'::date, '2024-07-01', '1 day') g(d0), LATERAL (SELECT d0::date AS d) x
	  WHERE pg_temp.unapplied(a.external_key, p.reference, d) NOT BETWEEN 0 AND p.amount$$,
	'on no day is a document open below zero or above its total, nor a payment applied beyond its amount');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity at the end');

SELECT * FROM finish();
ROLLBACK;
