-- Receivables aging (SPEC §6, VECTORS.md "Receivables"): buckets as of any
-- date, their boundaries, custom bounds, the invoice-date basis, the order of
-- buckets, document counts, the detail rows, the wide ar_aging_report view and
-- bad arguments.  Documents are debit notes (an exact amount, due after the
-- account's payment terms) and payments through the API; each scenario on its
-- own account.
BEGIN;
\ir include/session.sql

SELECT plan(79);

CREATE FUNCTION pg_temp.acct(key text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT account_id FROM billing.account WHERE external_key = key $$;
-- a posted debit note of an exact amount; returns its id
CREATE FUNCTION pg_temp.dn(key text, amount numeric, issued_on date) RETURNS bigint LANGUAGE sql
AS $$ SELECT invoice_id FROM billing.issue_debit_note(pg_temp.acct(key), amount, 'aging test', issued_on) $$;
CREATE FUNCTION pg_temp.pay(key text, amount numeric, received_on date, auto_apply boolean DEFAULT true) RETURNS bigint
LANGUAGE sql
AS $$ SELECT payment_id FROM billing.record_payment(pg_temp.acct(key), amount, received_on, auto_apply => auto_apply) $$;
-- an account's aging rows, in bucket order
CREATE FUNCTION pg_temp.aging(key text, as_of date, bucket_days int[] DEFAULT '{30,60,90}', basis text DEFAULT 'due_date')
	RETURNS TABLE (bucket text, bucket_order int, amount numeric, documents int) LANGUAGE sql STABLE
AS $$ SELECT g.bucket, g.bucket_order, g.amount, g.documents FROM billing.ar_aging(as_of, bucket_days, basis) g
	  WHERE g.account_id = pg_temp.acct(key) ORDER BY g.bucket_order $$;
-- the bucket a single-document account sits in
CREATE FUNCTION pg_temp.bucket(key text, as_of date) RETURNS text LANGUAGE sql STABLE
AS $$ SELECT string_agg(g.bucket || ' ' || g.amount, ', ' ORDER BY g.bucket_order) FROM pg_temp.aging(key, as_of) g $$;

INSERT INTO account (external_key, name, currency, payment_terms_days) VALUES
	('v1', 'Aging vector', 'USD', 30), ('v2', 'Overpaid', 'USD', 30), ('v3', 'Underpaid by a cent', 'USD', 30),
	('v4', 'Unapplied later', 'USD', 30), ('v5', 'Voided', 'USD', 30), ('v6', 'Oldest due first', 'USD', 30),
	('b1', 'Boundaries', 'USD', 0), ('b2', 'Invoice-date basis', 'USD', 30), ('c1', 'Credits', 'USD', 30),
	('r1', 'Report', 'USD', 30), ('d1', 'Draft only', 'USD', 30), ('mc', 'Two currencies', 'USD', 30);

------------------------------------------------------------------------------
-- VECTORS: invoice 100 due 2024-03-31
------------------------------------------------------------------------------
DO $$ BEGIN PERFORM pg_temp.dn('v1', 100, '2024-03-01'); END $$;
SELECT results_eq($$SELECT document_type, invoice_date, due_date, total FROM invoice WHERE account_id = pg_temp.acct('v1')$$,
	$$VALUES ('debit_note', '2024-03-01'::date, '2024-03-31'::date, 100.00)$$,
	'debit note 100 dated 2024-03-01, terms 30: due 2024-03-31');
SELECT is(pg_temp.bucket('v1', '2024-03-31'), 'current 100.00', 'invoice 100 due 2024-03-31, as of 2024-03-31: current');
SELECT is(pg_temp.bucket('v1', '2024-04-01'), '1-30 100.00', 'as of 2024-04-01 (1 day overdue): 1-30');
SELECT is(pg_temp.bucket('v1', '2024-04-30'), '1-30 100.00', 'as of 2024-04-30 (30 days overdue): 1-30');
SELECT is(pg_temp.bucket('v1', '2024-05-01'), '31-60 100.00', 'as of 2024-05-01 (31 days overdue): 31-60');
SELECT is(pg_temp.bucket('v1', date '2024-03-31' + 90), '61-90 100.00', 'as of due + 90: 61-90');
SELECT is(pg_temp.bucket('v1', date '2024-03-31' + 91), '91+ 100.00', 'as of due + 91: 91+');
SELECT is(pg_temp.bucket('v1', '2024-02-29'), NULL, 'before its document date the debit note is not in aging');
SELECT results_eq(
	$$SELECT account_id, document_type, document_number, currency, document_date, due_date, days_overdue, bucket, open_amount
	  FROM ar_aging_detail('2024-05-01') WHERE account_id = pg_temp.acct('v1')$$,
	$$VALUES (pg_temp.acct('v1'), 'debit_note', 'DN-000001', 'USD', '2024-03-01'::date, '2024-03-31'::date, 31, '31-60', 100.00)$$,
	'ar_aging_detail: one row with document number, dates, days overdue 31, bucket and open amount');

-- invoice 100, payment 110: allocated 100, unapplied 10 (-10 in unapplied)
DO $$ BEGIN PERFORM pg_temp.dn('v2', 100, '2024-03-01'); END $$;
DO $$ BEGIN PERFORM pg_temp.pay('v2', 110, '2024-04-10'); END $$;
SELECT results_eq($$SELECT amount FROM allocation WHERE account_id = pg_temp.acct('v2')$$, ARRAY[100.00],
	'payment 110 on invoice 100: allocated 100');
SELECT results_eq($$SELECT * FROM pg_temp.aging('v2', '2024-04-10')$$, $$VALUES ('unapplied', 5, -10.00, 1)$$,
	'invoice 100, payment 110: aging shows only -10.00 unapplied (one payment)');
SELECT is(account_balance(pg_temp.acct('v2'), '2024-04-10'), -10.00, 'and the balance is -10.00');
-- payment dated after the as-of date
SELECT results_eq($$SELECT * FROM pg_temp.aging('v2', '2024-04-09')$$, $$VALUES ('1-30', 1, 100.00, 1)$$,
	'a payment dated after the as-of date is ignored: 100.00 still 1-30 on 2024-04-09');

-- invoice 100, payment 99.99: 0.01 still in aging
DO $$ BEGIN PERFORM pg_temp.dn('v3', 100, '2024-03-01'); END $$;
DO $$ BEGIN PERFORM pg_temp.pay('v3', 99.99, '2024-03-15'); END $$;
SELECT results_eq($$SELECT * FROM pg_temp.aging('v3', '2024-03-15')$$, $$VALUES ('current', 0, 0.01, 1)$$,
	'invoice 100, payment 99.99: open 0.01 current');
SELECT results_eq($$SELECT * FROM pg_temp.aging('v3', '2024-07-15')$$, $$VALUES ('91+', 4, 0.01, 1)$$,
	'and the 0.01 keeps aging: 91+ on 2024-07-15');

-- payment 20 applied, then unapplied 10 days later
DO $$ BEGIN PERFORM pg_temp.dn('v4', 100, '2024-03-01'); END $$;
DO $$ BEGIN PERFORM pg_temp.pay('v4', 20, '2024-03-10'); END $$;
SELECT lives_ok($$SELECT unapply(allocation_id, '2024-03-20') FROM allocation WHERE account_id = pg_temp.acct('v4')$$,
	'unapply the 20.00 allocation on 2024-03-20');
SELECT results_eq($$SELECT * FROM pg_temp.aging('v4', '2024-03-09')$$, $$VALUES ('current', 0, 100.00, 1)$$,
	'before the payment: 100.00 open');
SELECT results_eq($$SELECT * FROM pg_temp.aging('v4', '2024-03-10')$$, $$VALUES ('current', 0, 80.00, 1)$$,
	'on the payment date: 80.00 open');
SELECT results_eq($$SELECT * FROM pg_temp.aging('v4', '2024-03-19')$$, $$VALUES ('current', 0, 80.00, 1)$$,
	'the day before the unapply: 80.00 open');
SELECT results_eq($$SELECT * FROM pg_temp.aging('v4', '2024-03-20')$$,
	$$VALUES ('current', 0, 100.00, 1), ('unapplied', 5, -20.00, 1)$$,
	'from the unapply date: the invoice is 100.00 open again and the payment is -20.00 unapplied');
SELECT is(invoice_balance(invoice_id, '2024-04-15'), 100.00, 'invoice_balance agrees: 100.00 after the unapply')
FROM invoice WHERE account_id = pg_temp.acct('v4');

-- a voided document leaves aging from its void date
DO $$ BEGIN PERFORM pg_temp.dn('v5', 100, '2024-03-01'); END $$;
SELECT lives_ok($$SELECT void_invoice(invoice_id, 'issued in error', '2024-04-15') FROM invoice
				  WHERE account_id = pg_temp.acct('v5')$$, 'void the debit note on 2024-04-15');
SELECT is(pg_temp.bucket('v5', '2024-04-14'), '1-30 100.00', 'the day before its void date it is 1-30');
SELECT is(pg_temp.bucket('v5', '2024-04-15'), NULL, 'from its void date it is gone');

-- payments [150, 100] applied oldest due first to invoices [100, 120]
DO $$ BEGIN
	PERFORM pg_temp.dn('v6', 120, '2024-03-05');		-- due 2024-04-04
	PERFORM pg_temp.dn('v6', 100, '2024-03-01');		-- due 2024-03-31: the oldest due
	PERFORM pg_temp.pay('v6', 150, '2024-04-10');
END $$;
DO $$ BEGIN PERFORM pg_temp.pay('v6', 100, '2024-04-11'); END $$;
SELECT results_eq(
	$$SELECT i.total, a.amount FROM allocation a JOIN invoice i USING (account_id, invoice_id)
	  WHERE a.account_id = pg_temp.acct('v6') ORDER BY a.allocation_id$$,
	$$VALUES (100.00, 100.00), (120.00, 50.00), (120.00, 70.00)$$,
	'payments 150 then 100 on invoices 100 and 120: 100 -> I1, 50 -> I2, 70 -> I2');
SELECT results_eq($$SELECT * FROM pg_temp.aging('v6', '2024-04-11')$$, $$VALUES ('unapplied', 5, -30.00, 1)$$,
	'30.00 unapplied');
SELECT results_eq($$SELECT * FROM pg_temp.aging('v6', '2024-04-10')$$, $$VALUES ('1-30', 1, 70.00, 1)$$,
	'as of the first payment only: 70.00 of I2 open, 6 days overdue');

------------------------------------------------------------------------------
-- Bucket boundaries: terms 0 (due on the document date); documents 0, 1, 30,
-- 31, 60, 61, 90 and 91 days overdue on 2024-06-30, amounts powers of two
------------------------------------------------------------------------------
DO $$ BEGIN PERFORM pg_temp.dn('b1', v.amount, date '2024-06-30' - v.days)
FROM (VALUES (0, 1), (1, 2), (30, 4), (31, 8), (60, 16), (61, 32), (90, 64), (91, 128)) v(days, amount); END $$;
DO $$ BEGIN PERFORM pg_temp.pay('b1', 0.50, '2024-06-01', auto_apply => false); END $$;
SELECT results_eq(
	$$SELECT days_overdue, bucket, open_amount FROM ar_aging_detail('2024-06-30')
	  WHERE account_id = pg_temp.acct('b1') AND document_type = 'debit_note' ORDER BY days_overdue$$,
	$$VALUES (0, 'current', 1.00), (1, '1-30', 2.00), (30, '1-30', 4.00), (31, '31-60', 8.00), (60, '31-60', 16.00),
			 (61, '61-90', 32.00), (90, '61-90', 64.00), (91, '91+', 128.00)$$,
	'days overdue 0 | 1, 30 | 31, 60 | 61, 90 | 91: current, 1-30, 31-60, 61-90, 91+ (inclusive upper bounds)');
SELECT results_eq($$SELECT * FROM pg_temp.aging('b1', '2024-06-30')$$,
	$$VALUES ('current', 0, 1.00, 1), ('1-30', 1, 6.00, 2), ('31-60', 2, 24.00, 2), ('61-90', 3, 96.00, 2),
			 ('91+', 4, 128.00, 1), ('unapplied', 5, -0.50, 1)$$,
	'default buckets: amounts, documents per bucket, bucket_order 0 (current) upward and unapplied last');
SELECT results_eq($$SELECT * FROM pg_temp.aging('b1', '2024-06-30', '{15,45}')$$,
	$$VALUES ('current', 0, 1.00, 1), ('1-15', 1, 2.00, 1), ('16-45', 2, 12.00, 2), ('46+', 3, 240.00, 4),
			 ('unapplied', 4, -0.50, 1)$$,
	'bucket_days {15,45}: current, 1-15, 16-45, 46+, unapplied');
SELECT results_eq(
	$$SELECT days_overdue, bucket FROM ar_aging_detail('2024-06-30', '{15,45}')
	  WHERE account_id = pg_temp.acct('b1') AND document_type = 'debit_note' ORDER BY days_overdue$$,
	$$VALUES (0, 'current'), (1, '1-15'), (30, '16-45'), (31, '16-45'), (60, '46+'), (61, '46+'), (90, '46+'), (91, '46+')$$,
	'bucket_days {15,45} in the detail');
SELECT results_eq(
	$$SELECT bucket, amount FROM ar_aging('2024-06-30', '{1}') WHERE account_id = pg_temp.acct('b1') ORDER BY bucket_order$$,
	$$VALUES ('current', 1.00), ('1-1', 2.00), ('2+', 252.00), ('unapplied', -0.50)$$,
	'bucket_days {1}: current, 1-1, 2+');
SELECT results_eq(
	$$SELECT bucket, amount FROM ar_aging('2024-06-30', '{15,45,60,91}') WHERE account_id = pg_temp.acct('b1')
	  ORDER BY bucket_order$$,
	$$VALUES ('current', 1.00), ('1-15', 2.00), ('16-45', 12.00), ('46-60', 16.00), ('61-91', 224.00), ('unapplied', -0.50)$$,
	'bucket_days {15,45,60,91}: an empty last bucket (92+) is omitted');
SELECT results_eq($$SELECT * FROM pg_temp.aging('b1', '2024-03-31')$$,
	$$VALUES ('current', 0, 128.00, 1)$$,
	'as of 2024-03-31 only the oldest document exists (terms 0: current on its date); buckets with nothing are omitted');

------------------------------------------------------------------------------
-- basis => 'invoice_date'
------------------------------------------------------------------------------
DO $$ BEGIN PERFORM pg_temp.dn('b2', 100, '2024-05-01'); END $$;		-- due 2024-05-31
SELECT results_eq($$SELECT bucket FROM pg_temp.aging('b2', '2024-06-10')$$, ARRAY['1-30'],
	'due-date basis, 2024-06-10: 10 days past due, 1-30');
SELECT results_eq($$SELECT bucket FROM pg_temp.aging('b2', '2024-06-10', basis => 'invoice_date')$$, ARRAY['31-60'],
	'invoice-date basis, 2024-06-10: 40 days after the document date, 31-60');
SELECT results_eq($$SELECT bucket FROM pg_temp.aging('b2', '2024-05-20', basis => 'invoice_date')$$, ARRAY['1-30'],
	'invoice-date basis, 2024-05-20: 19 days, 1-30 (due-date basis: current)');
SELECT results_eq($$SELECT bucket FROM pg_temp.aging('b2', '2024-05-01', basis => 'invoice_date')$$, ARRAY['current'],
	'invoice-date basis on the document date: current');
SELECT results_eq(
	$$SELECT days_overdue, bucket FROM ar_aging_detail('2024-06-10', basis => 'invoice_date')
	  WHERE account_id = pg_temp.acct('b2')$$,
	$$VALUES (40, '31-60')$$, 'ar_aging_detail with the invoice-date basis: days counted from the document date');

------------------------------------------------------------------------------
-- Credit notes, refunds, drafts
------------------------------------------------------------------------------
DO $$ BEGIN PERFORM pg_temp.dn('c1', 100, '2024-03-01'); END $$;
SELECT lives_ok($$SELECT issue_credit_note(invoice_id, 30, 'goodwill', '2024-03-05', apply => false) FROM invoice
				  WHERE account_id = pg_temp.acct('c1')$$, 'an unapplied credit note of 30.00');
DO $$ BEGIN PERFORM pg_temp.pay('c1', 50, '2024-03-06', auto_apply => false); END $$;
SELECT lives_ok($$SELECT refund(payment_id => payment_id, amount => 20, refunded_on => '2024-03-08') FROM payment
				  WHERE account_id = pg_temp.acct('c1')$$, 'refund 20.00 of the 50.00 payment on 2024-03-08');
SELECT results_eq(
	$$SELECT document_type, invoice_id IS NOT NULL, payment_id IS NOT NULL, due_date, days_overdue, bucket, open_amount
	  FROM ar_aging_detail('2024-03-10') WHERE account_id = pg_temp.acct('c1') ORDER BY document_type$$,
	$$VALUES ('credit_note', true, false, NULL::date, NULL::int, 'unapplied', -30.00),
			 ('debit_note', true, false, '2024-03-31'::date, -21, 'current', 100.00),
			 ('payment', false, true, NULL::date, NULL::int, 'unapplied', -30.00)$$,
	'detail: an open credit note and an unapplied payment (less its refund) are negative in unapplied, without days overdue');
SELECT results_eq($$SELECT * FROM pg_temp.aging('c1', '2024-03-10')$$,
	$$VALUES ('current', 0, 100.00, 1), ('unapplied', 5, -60.00, 2)$$,
	'unapplied counts the credit note and the payment');
SELECT results_eq($$SELECT * FROM pg_temp.aging('c1', '2024-03-07')$$,
	$$VALUES ('current', 0, 100.00, 1), ('unapplied', 5, -80.00, 2)$$, 'before the refund: -80.00 unapplied');
SELECT lives_ok($$SELECT apply_credit_note(invoice_id, allocated_on => '2024-03-12') FROM invoice
				  WHERE account_id = pg_temp.acct('c1') AND document_type = 'credit_note'$$,
	'apply the credit note on 2024-03-12');
SELECT results_eq($$SELECT * FROM pg_temp.aging('c1', '2024-03-12')$$,
	$$VALUES ('current', 0, 70.00, 1), ('unapplied', 5, -30.00, 1)$$,
	'once applied, the credit note leaves unapplied and reduces the debit note');
INSERT INTO invoice (account_id, document_type, invoice_date, currency) VALUES (pg_temp.acct('d1'), 'invoice', '2024-01-01', 'USD');
INSERT INTO invoice_line (account_id, invoice_id, line_number, kind, amount, description)
SELECT account_id, invoice_id, 1, 'one_time', 500, 'draft' FROM invoice WHERE account_id = pg_temp.acct('d1');
SELECT is_empty($$SELECT * FROM ar_aging('2024-06-30') WHERE account_id = pg_temp.acct('d1')$$, 'drafts are not aged');

------------------------------------------------------------------------------
-- Two currencies: a USD account with a EUR subscription is aged per currency
------------------------------------------------------------------------------
INSERT INTO product (code, name) VALUES ('plan', 'Plan');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount)
SELECT product_id, 'eur10', 'EUR', 'recurring', 'month', 'in_advance', 'per_unit', 10 FROM product WHERE code = 'plan';
INSERT INTO subscription (account_id, price_id, start_date, end_date)
SELECT pg_temp.acct('mc'), price_id, '2024-03-01', '2024-04-01' FROM price WHERE code = 'eur10';
SELECT is((SELECT invoices FROM run_invoice_batch(target_date => '2024-03-01')), 1, 'run 2024-03-01: a EUR invoice for the USD account');
DO $$ BEGIN PERFORM pg_temp.dn('mc', 100, '2024-03-01'); END $$;
SELECT results_eq(
	$$SELECT currency, bucket, amount, documents FROM ar_aging('2024-05-01') WHERE account_id = pg_temp.acct('mc') ORDER BY currency$$,
	$$VALUES ('EUR', '31-60', 10.00, 1), ('USD', '31-60', 100.00, 1)$$,
	'each currency is aged in its own rows, never summed across currencies');
SELECT results_eq(
	$$SELECT currency, d91_plus, total FROM ar_aging_report WHERE account_id = pg_temp.acct('mc') ORDER BY currency$$,
	$$VALUES ('EUR', 10.00, 10.00), ('USD', 100.00, 100.00)$$,
	'ar_aging_report: one row per account and currency');

------------------------------------------------------------------------------
-- Σ buckets (in the account's currency) = account_balance, for every account
-- and many dates
------------------------------------------------------------------------------
SELECT is_empty(
	$$WITH days AS (SELECT day::date AS day FROM generate_series(date '2024-02-25', date '2024-08-01', interval '1 day') day),
	  buckets AS (SELECT t.day, x.account_id, x.currency, sum(x.amount) AS amount
				  FROM days t CROSS JOIN LATERAL ar_aging(t.day) x GROUP BY 1, 2, 3)
	  SELECT a.external_key, t.day, coalesce(g.amount, 0) AS buckets, account_balance(a.account_id, t.day) AS balance
	  FROM account a CROSS JOIN days t
	  LEFT JOIN buckets g ON g.account_id = a.account_id AND g.currency = a.currency AND g.day = t.day
	  WHERE coalesce(g.amount, 0) <> account_balance(a.account_id, t.day)$$,
	'every day 2024-02-25..2024-08-01, every account: the aging buckets (in its currency) sum to account_balance');
SELECT is_empty(
	$$WITH days AS (SELECT day::date AS day FROM generate_series(date '2024-02-25', date '2024-08-01', interval '7 days') day),
	  options AS (SELECT * FROM (VALUES ('{15,45}'::int[], 'due_date'), ('{30,60,90}', 'invoice_date'), ('{7}', 'due_date')) o(b, basis)),
	  buckets AS (SELECT t.day, o.b, o.basis, x.account_id, x.currency, sum(x.amount) AS amount
				  FROM days t CROSS JOIN options o CROSS JOIN LATERAL ar_aging(t.day, o.b, o.basis) x GROUP BY 1, 2, 3, 4, 5)
	  SELECT a.external_key, t.day, o.b, o.basis
	  FROM account a CROSS JOIN days t CROSS JOIN options o
	  LEFT JOIN buckets g ON g.account_id = a.account_id AND g.currency = a.currency AND g.day = t.day
							 AND g.b = o.b AND g.basis = o.basis
	  WHERE coalesce(g.amount, 0) <> account_balance(a.account_id, t.day)$$,
	'the buckets sum to account_balance with any bounds and either basis');
SELECT is_empty(
	$$SELECT g.account_id, g.currency, g.bucket FROM ar_aging('2024-06-30') g
	  FULL JOIN (SELECT account_id, currency, bucket, sum(open_amount) AS amount, count(*)::int AS documents
				 FROM ar_aging_detail('2024-06-30') GROUP BY 1, 2, 3) d USING (account_id, currency, bucket)
	  WHERE g.amount IS DISTINCT FROM d.amount OR g.documents IS DISTINCT FROM d.documents$$,
	'ar_aging is the detail summed and counted per account and bucket');
SELECT is_empty($$SELECT * FROM ar_aging_detail('2024-06-30') WHERE open_amount = 0$$, 'no zero rows in the detail');

------------------------------------------------------------------------------
-- Signatures
------------------------------------------------------------------------------
SELECT is(pg_get_function_result('billing.ar_aging(date, int[], text)'::regprocedure),
	'TABLE(account_id bigint, currency text, bucket text, bucket_order integer, amount numeric, documents integer)',
	'ar_aging returns account_id, currency, bucket, bucket_order, amount, documents');
SELECT is(pg_get_function_result('billing.ar_aging_detail(date, int[], text)'::regprocedure),
	'TABLE(account_id bigint, document_type text, invoice_id bigint, payment_id bigint, document_number text, '
	'currency text, document_date date, due_date date, days_overdue integer, bucket text, open_amount numeric)',
	'ar_aging_detail returns the SPEC columns');
SELECT is(pg_get_function_arguments('billing.ar_aging(date, int[], text)'::regprocedure),
	'as_of date DEFAULT CURRENT_DATE, bucket_days integer[] DEFAULT ''{30,60,90}''::integer[], basis text DEFAULT ''due_date''::text',
	'ar_aging(as_of, bucket_days, basis) with the SPEC defaults');

------------------------------------------------------------------------------
-- ar_aging_report: today, wide (data dated relative to CURRENT_DATE)
------------------------------------------------------------------------------
DO $$ BEGIN PERFORM pg_temp.dn('r1', v.amount, CURRENT_DATE - v.age)
FROM (VALUES (10, 10.00), (45, 20.00), (80, 30.00), (110, 40.00), (200, 50.00)) v(age, amount); END $$;
DO $$ BEGIN PERFORM pg_temp.pay('r1', 5, CURRENT_DATE - 1, auto_apply => false); END $$;
SELECT results_eq(
	$$SELECT account_name, currency, current, d1_30, d31_60, d61_90, d91_plus, unapplied, total
	  FROM ar_aging_report WHERE account_id = pg_temp.acct('r1')$$,
	$$VALUES ('Report', 'USD', 10.00, 20.00, 30.00, 40.00, 50.00, -5.00, 145.00)$$,
	'ar_aging_report: due in 20 days current, 15 days overdue d1_30, 50 d31_60, 80 d61_90, 170 d91_plus, unapplied, total');
SELECT is((SELECT total FROM ar_aging_report WHERE account_id = pg_temp.acct('r1')), account_balance(pg_temp.acct('r1')),
	'the report total is today''s account_balance');
SELECT results_eq(
	$$SELECT current, d1_30, d31_60, d61_90, d91_plus, unapplied, total FROM ar_aging_report
	  WHERE account_id = pg_temp.acct('v1')$$,
	$$VALUES (0::numeric, 0::numeric, 0::numeric, 0::numeric, 100.00, 0::numeric, 100.00)$$,
	'empty buckets are 0 in the wide view');
SELECT is_empty($$SELECT * FROM ar_aging_report WHERE account_id IN (pg_temp.acct('v5'), pg_temp.acct('d1'))$$,
	'accounts with nothing open have no row (voided, drafts only)');
SELECT is((SELECT count(*) FROM ar_aging_report), (SELECT count(DISTINCT (account_id, currency)) FROM ar_aging(CURRENT_DATE)),
	'one row per account and currency with something open today');
SELECT is_empty(
	$$SELECT * FROM ar_aging_report r
	  JOIN account a USING (account_id)
	  WHERE r.total <> r.current + r.d1_30 + r.d31_60 + r.d61_90 + r.d91_plus + r.unapplied
		 OR (r.currency = a.currency AND r.total <> account_balance(r.account_id))$$,
	'every report row: total = the sum of its columns; in the account''s currency = account_balance today');

------------------------------------------------------------------------------
-- Bad arguments: 22023
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM ar_aging('2024-06-30', '{}')$$, '22023', NULL, 'bucket_days {}: 22023');
SELECT throws_ok($$SELECT * FROM ar_aging('2024-06-30', '{0,30}')$$, '22023', NULL, 'bucket_days with 0: 22023');
SELECT throws_ok($$SELECT * FROM ar_aging('2024-06-30', '{-5}')$$, '22023', NULL, 'negative bucket_days: 22023');
SELECT throws_ok($$SELECT * FROM ar_aging('2024-06-30', '{60,30}')$$, '22023', NULL, 'decreasing bucket_days: 22023');
SELECT throws_ok($$SELECT * FROM ar_aging('2024-06-30', '{30,30}')$$, '22023', NULL, 'repeated bucket_days: 22023');
SELECT throws_ok($$SELECT * FROM ar_aging('2024-06-30', '{30,NULL}')$$, '22023', NULL, 'NULL in bucket_days: 22023');
SELECT throws_ok($$SELECT * FROM ar_aging('2024-06-30', NULL)$$, '22023', NULL, 'bucket_days NULL: 22023');
SELECT throws_ok($$SELECT * FROM ar_aging('2024-06-30', '{{30},{60}}')$$, '22023', NULL, 'two-dimensional bucket_days: 22023');
SELECT throws_ok($$SELECT * FROM ar_aging('2024-06-30', basis => 'posting_date')$$, '22023', NULL, 'unknown basis: 22023');
SELECT throws_ok($$SELECT * FROM ar_aging('2024-06-30', basis => NULL)$$, '22023', NULL, 'basis NULL: 22023');
SELECT throws_ok($$SELECT * FROM ar_aging_detail('2024-06-30', '{90,60,30}')$$, '22023', NULL, 'ar_aging_detail checks bucket_days: 22023');
SELECT throws_ok($$SELECT * FROM ar_aging_detail('2024-06-30', basis => 'Due_Date')$$, '22023', NULL, 'ar_aging_detail checks basis: 22023');

-- a NULL as-of date is bad input, not "no date" (SPEC principle 6; run_dunning(NULL) raises 22004 too):
-- ar_aging(NULL) answering nothing while account_balance(id, NULL) ignores every payment would break
-- "the buckets sum to account_balance"
SELECT throws_ok($$SELECT * FROM ar_aging(NULL)$$, '22004', NULL, 'ar_aging(as_of => NULL): 22004');
SELECT throws_ok($$SELECT * FROM ar_aging_detail(NULL)$$, '22004', NULL, 'ar_aging_detail(as_of => NULL): 22004');
SELECT throws_ok($$SELECT account_balance(pg_temp.acct('v3'), NULL)$$, '22004', NULL,
	'account_balance(id, as_of => NULL): 22004 (not the total with every payment ignored)');

SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the aging scenarios');

SELECT * FROM finish();
ROLLBACK;
