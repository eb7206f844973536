-- Receivables errors (SPEC §1.6, §5): every bad input raises its standard
-- SQLSTATE and writes nothing.  After each error the counts and sums of
-- payments, allocations, refunds, documents and lines are compared with the
-- fixture's, so a partial write (or an UPDATE that got through) shows.
BEGIN;
\ir include/session.sql

SELECT plan(137);

CREATE FUNCTION pg_temp.acct(key text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT account_id FROM billing.account WHERE external_key = key $$;
-- an account's document: its n-th of a type and currency and status, in id order
CREATE FUNCTION pg_temp.doc(key text, doc_type text, doc_status text, cur text DEFAULT 'USD', n int DEFAULT 1)
	RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT i.invoice_id FROM billing.invoice i
	  WHERE i.account_id = pg_temp.acct(key) AND i.document_type = doc_type AND i.status = doc_status AND i.currency = cur
	  ORDER BY i.invoice_id OFFSET n - 1 LIMIT 1 $$;
CREATE FUNCTION pg_temp.pay(key text, ref text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT payment_id FROM billing.payment WHERE account_id = pg_temp.acct(key) AND reference = ref $$;
-- the n-th allocation (in id order) of a payment
CREATE FUNCTION pg_temp.alloc(key text, ref text, n int) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT allocation_id FROM billing.allocation WHERE payment_id = pg_temp.pay(key, ref)
	  ORDER BY allocation_id OFFSET n - 1 LIMIT 1 $$;
-- what is written: counts and sums of every receivables table
CREATE FUNCTION pg_temp.written() RETURNS text LANGUAGE sql STABLE
AS $$ SELECT format('payments %s/%s/%s, allocations %s/%s/%s, refunds %s/%s, documents %s/%s/%s, lines %s/%s',
					(SELECT count(*) FROM billing.payment), (SELECT sum(amount) FROM billing.payment),
					(SELECT string_agg(received_on::text, ',' ORDER BY payment_id) FROM billing.payment),
					(SELECT count(*) FROM billing.allocation), (SELECT sum(amount) FROM billing.allocation),
					(SELECT string_agg(allocated_on::text, ',' ORDER BY allocation_id) FROM billing.allocation),
					(SELECT count(*) FROM billing.refund), (SELECT sum(amount) FROM billing.refund),
					(SELECT count(*) FROM billing.invoice), (SELECT sum(total) FROM billing.invoice),
					(SELECT string_agg(status, ',' ORDER BY invoice_id) FROM billing.invoice),
					(SELECT count(*) FROM billing.invoice_line), (SELECT sum(amount) FROM billing.invoice_line)) $$;
CREATE TEMP TABLE fixture_written (written text) ON COMMIT DROP;
-- throws_ok on a statement that is rolled back even when it succeeds (then it
-- fails with P0001), so a missing error cannot leak rows into later tests
CREATE FUNCTION pg_temp.rolled_back(stmt text) RETURNS void LANGUAGE plpgsql
AS $$ BEGIN
	EXECUTE stmt;
	RAISE EXCEPTION 'no error raised (statement rolled back)' USING ERRCODE = 'P0001';
END $$;
CREATE FUNCTION pg_temp.throws(stmt text, errcode text, description text) RETURNS text LANGUAGE sql
AS $$ SELECT throws_ok(format('SELECT pg_temp.rolled_back(%L)', stmt), errcode, NULL, description) $$;

INSERT INTO product (code, name) VALUES ('e_plan', 'Errors plan');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT product_id, v.code, v.currency, 'recurring', 'month', 'in_advance', 'per_unit', v.amount
FROM product, (VALUES ('e_usd', 'USD', 100), ('e_eur', 'EUR', 50)) v(code, currency, amount) WHERE product.code = 'e_plan';
INSERT INTO account (external_key, name, currency)
VALUES ('e1', 'Errors one', 'USD'), ('e2', 'Errors two', 'USD'), ('e3', 'Errors three', 'USD');
-- e1: USD 100/month March and April, EUR 50 for March; e2: USD 100 for March
INSERT INTO subscription (account_id, price_id, start_date, end_date)
SELECT pg_temp.acct(v.acct), p.price_id, v.start_date::date, v.end_date::date
FROM (VALUES ('e1', 'e_usd', '2024-03-01', '2024-05-01'), ('e1', 'e_eur', '2024-03-01', '2024-04-01'),
			 ('e2', 'e_usd', '2024-03-01', '2024-04-01')) v(acct, price, start_date, end_date)
JOIN price p ON p.code = v.price;

-- runs: March (e1 USD + EUR, e2 USD), April (e1 USD), the April invoice
-- voided, its re-bill left as a draft by a run without posting
SELECT is((run_invoice_batch(target_date => '2024-03-01')).invoices, 3, 'run 2024-03-01: three invoices');
SELECT is((run_invoice_batch(target_date => '2024-04-01')).invoices, 1, 'run 2024-04-01: one invoice');
SELECT is((void_invoice(pg_temp.doc('e1', 'invoice', 'posted', 'USD', 2), 'duplicate', '2024-04-02')).status, 'void',
		  'the April invoice of e1 is voided');
SELECT is((run_invoice_batch(target_date => '2024-05-01', auto_post => false)).invoices, 1,
		  'run 2024-05-01 without posting: one draft (April re-billed)');
SELECT results_eq(
	$$SELECT document_type, status, currency, total FROM invoice WHERE account_id = pg_temp.acct('e1') ORDER BY invoice_id$$,
	$$VALUES ('invoice', 'posted', 'EUR', 50.00), ('invoice', 'posted', 'USD', 100.00), ('invoice', 'void', 'USD', 100.00),
			 ('invoice', 'draft', 'USD', 100.00)$$,
	'e1 has a posted EUR and USD invoice, a void and a draft one');

-- money: e1 payment 200 (not applied) -> 30 to the March invoice, 20 applied and
-- unapplied, a 5.00 refund; a 10.00 credit note kept as credit; e2 paid in full
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('e1'), 200.00, '2024-03-05', 'e1-p1', auto_apply => false)$$,
				'fixture: record_payment 200.00, auto_apply => false');
SELECT lives_ok($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), pg_temp.doc('e1', 'invoice', 'posted'), 30.00)$$,
				'fixture: apply 30.00 to the USD March invoice');
SELECT lives_ok($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), pg_temp.doc('e1', 'invoice', 'posted'), 20.00)$$,
				'fixture: apply 20.00 more');
SELECT lives_ok($$SELECT unapply(pg_temp.alloc('e1', 'e1-p1', 2), '2024-03-10')$$, 'fixture: unapply the 20.00');
SELECT lives_ok($$SELECT refund(payment_id => pg_temp.pay('e1', 'e1-p1'), amount => 5.00, refunded_on => '2024-03-08')$$,
				'fixture: refund 5.00');
SELECT lives_ok($$SELECT issue_credit_note(pg_temp.doc('e1', 'invoice', 'posted'), 10.00, 'discount', '2024-03-06',
										   apply => false)$$,
				'fixture: credit note 10.00, not applied');
-- e2: paid 03-05, unapplied 03-20 (paid in full in between), a second payment
-- received 03-06 not applied; e3: a debit note paid in full
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('e2'), 100.00, '2024-03-05', 'e2-p1')$$,
				'fixture: e2 pays its invoice in full on 2024-03-05');
SELECT lives_ok($$SELECT unapply(pg_temp.alloc('e2', 'e2-p1', 1), '2024-03-20')$$, 'fixture: and unapplies it on 2024-03-20');
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('e2'), 100.00, '2024-03-06', 'e2-p2', auto_apply => false)$$,
				'fixture: e2 payment 100.00 received 2024-03-06, not applied');
SELECT lives_ok($$SELECT issue_debit_note(pg_temp.acct('e3'), 100.00, 'service', '2024-03-01')$$,
				'fixture: e3 debit note 100.00');
SELECT lives_ok($$SELECT record_payment(pg_temp.acct('e3'), 100.00, '2024-03-05', 'e3-p1')$$,
				'fixture: e3 pays it in full');
SELECT results_eq(
	$$SELECT invoice_balance(pg_temp.doc('e1', 'invoice', 'posted'), '2024-12-31'),
			 invoice_balance(pg_temp.doc('e1', 'invoice', 'posted', 'EUR'), '2024-12-31'),
			 invoice_balance(pg_temp.doc('e1', 'credit_note', 'posted'), '2024-12-31'),
			 invoice_balance(pg_temp.doc('e1', 'invoice', 'draft'), '2024-12-31'),
			 (SELECT amount - (SELECT sum(a.amount) FROM allocation a WHERE a.payment_id = p.payment_id)
					 - (SELECT sum(r.amount) FROM refund r WHERE r.payment_id = p.payment_id)
			  FROM payment p WHERE p.payment_id = pg_temp.pay('e1', 'e1-p1')),
			 invoice_balance(pg_temp.doc('e2', 'invoice', 'posted'), '2024-12-31'),
			 invoice_balance(pg_temp.doc('e3', 'debit_note', 'posted'), '2024-12-31')$$,
	$$VALUES (70.00, 50.00, -10.00, NULL::numeric, 165.00, 100.00, 0.00)$$,
	'fixture: e1 USD invoice 70.00 open, EUR 50.00, credit note -10.00, draft NULL, payment 165.00 unapplied; e2 100.00 open; e3 paid');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'fixture passes check_integrity');
INSERT INTO fixture_written SELECT pg_temp.written();

------------------------------------------------------------------------------
-- limits: 23514
------------------------------------------------------------------------------
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), pg_temp.doc('e1', 'invoice', 'posted'), 70.01)$$,
				 '23514', 'apply_payment 70.01 to an invoice with 70.00 open: 23514');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), NULL, 165.01)$$,
				 '23514', 'apply_payment 165.01 of a payment with 165.00 unapplied: 23514');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT refund(payment_id => pg_temp.pay('e1', 'e1-p1'), amount => 165.01, refunded_on => '2024-03-20')$$,
				 '23514', 'refund 165.01 of a payment with 165.00 unapplied: 23514');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT refund(credit_note_id => pg_temp.doc('e1', 'credit_note', 'posted'), amount => 10.01,
								 refunded_on => '2024-03-20')$$,
				 '23514', 'refund 10.01 of a credit note with 10.00 unapplied: 23514');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT refund(payment_id => pg_temp.pay('e3', 'e3-p1'), amount => 10.00, refunded_on => '2024-03-20')$$,
				 '23514', 'refund 10.00 of a fully applied payment (0.00 unapplied): 23514 like any refund above it');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_credit_note(pg_temp.doc('e1', 'credit_note', 'posted'), pg_temp.doc('e1', 'invoice', 'posted'),
											10.01)$$,
				 '23514', 'apply_credit_note 10.01 of a 10.00 credit note: 23514');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT issue_credit_note(pg_temp.doc('e1', 'invoice', 'posted'), 100.01, 'too much', '2024-03-20')$$,
				 '23514', 'credit note 100.01 on a 100.00 invoice: 23514');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT issue_credit_note(pg_temp.doc('e1', 'invoice', 'posted'), 90.01, 'too much', '2024-03-20')$$,
				 '23514', 'credit note 90.01 on a 100.00 invoice already credited 10.00: 23514 (credits above the total)');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT write_off(pg_temp.doc('e1', 'invoice', 'posted'), 70.01, 'bad debt', '2024-06-30')$$,
				 '23514', 'write_off 70.01 of an invoice with 70.00 open: 23514');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');

-- limits hold on every date, not only today (SPEC §1.4: balances as of any
-- date): e2's invoice was paid in full from 03-05 to 03-20 and e2-p1 was
-- fully applied then, so nothing more fits in that window
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e2', 'e2-p2'), pg_temp.doc('e2', 'invoice', 'posted'), 100.00,
											  allocated_on => '2024-03-10')$$,
				 '23514', 'allocation of 100.00 dated 2024-03-10 to an invoice with 0.00 open from 03-05 to 03-20: 23514');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT refund(payment_id => pg_temp.pay('e2', 'e2-p1'), amount => 100.00, refunded_on => '2024-03-10')$$,
				 '23514', 'refund dated 2024-03-10 of a payment fully applied from 03-05 to 03-20: 23514');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');

SELECT pg_temp.throws($$SELECT void_invoice(pg_temp.doc('e2', 'invoice', 'posted'), 'duplicate', '2024-03-10')$$,
				 '55000', 'void dated 2024-03-10 of an invoice whose payment is unapplied only on 03-20: 55000');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');

------------------------------------------------------------------------------
-- wrong targets and sources
------------------------------------------------------------------------------
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), pg_temp.doc('e1', 'invoice', 'posted', 'EUR'), 10.00)$$,
				 '22023', 'USD payment to an EUR invoice of the same account: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), pg_temp.doc('e1', 'invoice', 'posted', 'EUR'))$$,
				 '22023', 'the same with NULL amount: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_credit_note(pg_temp.doc('e1', 'credit_note', 'posted'), pg_temp.doc('e1', 'invoice', 'posted', 'EUR'))$$,
				 '22023', 'USD credit note to an EUR invoice: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), pg_temp.doc('e2', 'invoice', 'posted'), 10.00)$$,
				 '22023', 'payment to another account''s invoice: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_credit_note(pg_temp.doc('e1', 'credit_note', 'posted'), pg_temp.doc('e2', 'invoice', 'posted'))$$,
				 '22023', 'credit note to another account''s invoice: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), pg_temp.doc('e1', 'invoice', 'draft'), 10.00)$$,
				 '55000', 'payment to a draft invoice: 55000');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), pg_temp.doc('e1', 'invoice', 'void'), 10.00)$$,
				 '55000', 'payment to a void invoice: 55000');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), pg_temp.doc('e1', 'invoice', 'void'))$$,
				 '55000', 'payment with NULL amount to a void invoice: 55000');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), pg_temp.doc('e1', 'credit_note', 'posted'), 5.00)$$,
				 '22023', 'a credit note as the target of a payment: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT write_off(pg_temp.doc('e1', 'invoice', 'void'), 10.00, 'void', '2024-06-30')$$,
				 '55000', 'write_off of a void invoice: 55000');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT issue_credit_note(pg_temp.doc('e1', 'invoice', 'draft'), 10.00, 'draft', '2024-06-30')$$,
				 '55000', 'credit note on a draft invoice: 55000');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT refund(pg_temp.pay('e1', 'e1-p1'), pg_temp.doc('e1', 'credit_note', 'posted'), 1.00, '2024-03-20')$$,
				 '22023', 'refund with both a payment and a credit note: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT refund(amount => 1.00, refunded_on => '2024-03-20')$$,
				 '22023', 'refund with no source: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');

------------------------------------------------------------------------------
-- amounts
------------------------------------------------------------------------------
SELECT pg_temp.throws($$SELECT record_payment(pg_temp.acct('e1'), -5.00, '2024-03-20', 'neg')$$,
				 '22023', 'negative payment amount: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT record_payment(pg_temp.acct('e1'), 0, '2024-03-20', 'zero')$$,
				 '22023', 'zero payment amount: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT record_payment(pg_temp.acct('e1'), NULL, '2024-03-20', 'null')$$,
				 '22023', 'NULL payment amount: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT record_payment(pg_temp.acct('e1'), 10.001, '2024-03-20', 'mills')$$,
				 '22023', 'payment 10.001 USD (three decimals): 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), pg_temp.doc('e1', 'invoice', 'posted'), 10.005)$$,
				 '22023', 'apply_payment 10.005 USD: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), pg_temp.doc('e1', 'invoice', 'posted'), -10.00)$$,
				 '22023', 'apply_payment of a negative amount: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT refund(payment_id => pg_temp.pay('e1', 'e1-p1'), amount => 0, refunded_on => '2024-03-20')$$,
				 '22023', 'refund of 0: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT issue_credit_note(pg_temp.doc('e1', 'invoice', 'posted'), 1.234, 'mills', '2024-03-20')$$,
				 '22023', 'credit note of 1.234 USD: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT issue_debit_note(pg_temp.acct('e1'), 0, 'nothing', '2024-03-20')$$,
				 '22023', 'debit note of 0: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');

------------------------------------------------------------------------------
-- unknown ids: 22023
------------------------------------------------------------------------------
SELECT pg_temp.throws($$SELECT record_payment(-1, 10.00, '2024-03-20', 'nobody')$$, '22023',
				 'record_payment for an unknown account: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_payment(-1, pg_temp.doc('e1', 'invoice', 'posted'), 10.00)$$, '22023',
				 'apply_payment of an unknown payment: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), -1, 10.00)$$, '22023',
				 'apply_payment to an unknown document: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT unapply(-1, '2024-03-20')$$, '22023', 'unapply of an unknown allocation: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT refund(payment_id => -1, amount => 1.00, refunded_on => '2024-03-20')$$, '22023',
				 'refund of an unknown payment: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT refund(credit_note_id => -1, amount => 1.00, refunded_on => '2024-03-20')$$, '22023',
				 'refund of an unknown credit note: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_credit_note(-1)$$, '22023', 'apply_credit_note of an unknown document: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT issue_credit_note(-1, 1.00, 'x', '2024-03-20')$$, '22023',
				 'issue_credit_note for an unknown invoice: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT issue_debit_note(-1, 1.00, 'x', '2024-03-20')$$, '22023',
				 'issue_debit_note for an unknown account: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT invoice_balance(-1, '2024-03-20')$$, '22023', 'invoice_balance of an unknown document: 22023');
SELECT pg_temp.throws($$SELECT account_balance(-1, '2024-03-20')$$, '22023', 'account_balance of an unknown account: 22023');

------------------------------------------------------------------------------
-- unapply
------------------------------------------------------------------------------
SELECT pg_temp.throws($$SELECT unapply(pg_temp.alloc('e1', 'e1-p1', 2), '2024-03-20')$$, '55000',
				 'second unapply of the same allocation: 55000');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT unapply(pg_temp.alloc('e1', 'e1-p1', 3), '2024-03-20')$$, '55000',
				 'unapply of a reversal: 55000');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT unapply(pg_temp.alloc('e1', 'e1-p1', 1), '2024-03-04')$$, '22023',
				 'unapply dated before the allocation: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');

------------------------------------------------------------------------------
-- idempotency key reused with other values: 23505
------------------------------------------------------------------------------
SELECT pg_temp.throws($$SELECT record_payment(pg_temp.acct('e1'), 201.00, '2024-03-05', 'e1-p1')$$, '23505',
				 'record_payment with a used reference and another amount: 23505');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT record_payment(pg_temp.acct('e1'), 200.00, '2024-03-06', 'e1-p1')$$, '23505',
				 'record_payment with a used reference and another date: 23505');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');

------------------------------------------------------------------------------
-- append-only rows: 55000
------------------------------------------------------------------------------
SELECT pg_temp.throws($$UPDATE payment SET amount = 1.00 WHERE payment_id = pg_temp.pay('e1', 'e1-p1')$$, '55000',
				 'UPDATE of a payment: 55000');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$DELETE FROM payment WHERE payment_id = pg_temp.pay('e2', 'e2-p1')$$, '55000',
				 'DELETE of a payment: 55000');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$UPDATE allocation SET amount = 1.00 WHERE allocation_id = pg_temp.alloc('e1', 'e1-p1', 1)$$, '55000',
				 'UPDATE of an allocation: 55000');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$DELETE FROM allocation WHERE allocation_id = pg_temp.alloc('e1', 'e1-p1', 3)$$, '55000',
				 'DELETE of an allocation (a reversal): 55000');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$UPDATE refund SET amount = 1.00$$, '55000', 'UPDATE of a refund: 55000');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');

------------------------------------------------------------------------------
-- dates before their sources: 22023
------------------------------------------------------------------------------
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), pg_temp.doc('e1', 'invoice', 'posted'), 10.00,
										allocated_on => '2024-03-04')$$,
				 '22023', 'allocation dated before the payment (received 2024-03-05): 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT apply_credit_note(pg_temp.doc('e1', 'credit_note', 'posted'), pg_temp.doc('e1', 'invoice', 'posted'),
											5.00, '2024-03-05')$$,
				 '22023', 'allocation dated before the credit note (dated 2024-03-06): 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT refund(payment_id => pg_temp.pay('e1', 'e1-p1'), amount => 1.00, refunded_on => '2024-03-04')$$,
				 '22023', 'refund dated before the payment: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');
SELECT pg_temp.throws($$SELECT issue_credit_note(pg_temp.doc('e1', 'invoice', 'posted'), 1.00, 'early', '2024-02-29')$$,
				 '22023', 'credit note dated before its invoice: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');

------------------------------------------------------------------------------
-- an error inside a multi-document apply writes nothing: payment of 165.00
-- with NULL invoice would fill the USD invoice (70.00) and stop; with
-- allocated_on before the invoice it fails on the first document
------------------------------------------------------------------------------
SELECT pg_temp.throws($$SELECT apply_payment(pg_temp.pay('e1', 'e1-p1'), NULL, NULL, '2024-03-01')$$, '22023',
				 'apply_payment to open documents dated before the payment: 22023');
SELECT is(pg_temp.written(), (SELECT written FROM fixture_written), '... nothing written');

SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after all the errors');

SELECT * FROM finish();
ROLLBACK;
