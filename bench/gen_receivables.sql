-- Receivables book for the aging and bulk-payment figures (BENCHMARKS.md,
-- "Receivables").  Run in a database with CREATE EXTENSION billing and
-- nothing else in it:
--   psql -v accounts=100000 -f bench/gen_receivables.sql
-- accounts (default 100000) USD accounts with 12 posted invoices each
-- (1.2M), due 30 days after their date, 2025-12 .. 2026-11; invoices 1 and 2
-- paid by a payment each, invoice 3 half paid, every 5th account overpaid by
-- 10.00 on invoice 2 (unapplied): 1M documents open on 2026-11-30.
-- Documents are inserted as posted rows without lines (aging and payments
-- read only the documents), so check_integrity() reports them.
\if :{?accounts}
\else
\set accounts 100000
\endif
SET client_min_messages = warning;
SELECT setseed(0.5);
INSERT INTO billing.account (account_id, external_key, name, currency)
SELECT g, 'b' || g, 'Bench ' || g, 'USD' FROM generate_series(1, :accounts) g;
SELECT setval('billing.account_account_id_seq', :accounts);
INSERT INTO billing.invoice (invoice_id, account_id, document_type, document_number, status, invoice_date, due_date,
							 currency, subtotal, tax_total, total, posted_at)
SELECT (a - 1) * 12 + k, a, 'invoice', 'INV-' || lpad(((a - 1) * 12 + k)::text, 8, '0'), 'posted', x.d, x.d + 30,
	   'USD', x.t, 0, x.t, now()
FROM generate_series(1, :accounts) a, generate_series(1, 12) k,
	 LATERAL (SELECT date '2025-12-01' + (k - 1) * 30 + (a % 28) AS d,
					 round((10 + random() * 490 + a * 0 + k * 0)::numeric, 2) AS t) x;
SELECT setval('billing.invoice_invoice_id_seq', :accounts * 12);
INSERT INTO billing.payment (payment_id, account_id, amount, currency, received_on, reference)
SELECT i.invoice_id, i.account_id,
	   CASE WHEN k.k = 3 THEN round(i.total / 2, 2) WHEN k.k = 2 AND i.account_id % 5 = 0 THEN i.total + 10
			ELSE i.total END,
	   'USD', i.due_date - 5, 'pay-' || i.invoice_id
FROM billing.invoice i, LATERAL (SELECT (i.invoice_id - 1) % 12 + 1 AS k) k
WHERE k.k <= 3;
SELECT setval('billing.payment_payment_id_seq', :accounts * 12);
INSERT INTO billing.allocation (account_id, invoice_id, payment_id, amount, allocated_on)
SELECT p.account_id, p.payment_id, p.payment_id, least(p.amount, i.total), p.received_on
FROM billing.payment p JOIN billing.invoice i ON i.account_id = p.account_id AND i.invoice_id = p.payment_id;
-- the bulk-payment input: one payment per account, 50.00 .. 1500.00, in random order
SELECT setseed(0.77);
CREATE TABLE bench_payment_input AS
SELECT array_agg(account_id ORDER BY o) AS account_ids, array_agg(amount ORDER BY o) AS amounts,
	   array_agg(received_on ORDER BY o) AS received_dates, array_agg('bulk-' || account_id ORDER BY o) AS refs
FROM (SELECT account_id, round((50 + random() * 1450)::numeric, 2) AS amount, date '2026-11-15' AS received_on,
			 random() AS o
	  FROM billing.account) x;
VACUUM ANALYZE;
SELECT (SELECT count(*) FROM billing.invoice) AS invoices, (SELECT count(*) FROM billing.payment) AS payments,
	   (SELECT count(*) FROM billing.allocation) AS allocations;
