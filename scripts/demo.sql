-- billing demo: a small SaaS book of business, billed through one nightly run.
\set ON_ERROR_STOP 1
\pset footer off
SET client_min_messages = warning;
SET DateStyle = 'ISO, YMD';
SET TimeZone = 'UTC';
SET search_path = billing, public;

\echo '== The C core: periods, proration, money'
SELECT p AS "monthly periods, cycle day 31 (clamped, then back)"
FROM billing_periods('2026-01-31', 'month', 1, '2026-01-31', '2026-05-31') AS p;
SELECT prorate(90, '[2025-03-28,2025-04-05)', cycle_period('2025-03-05', 'month', 1, '2025-03-28')) AS "90/month, 8 of 31 days (unrounded)",
       round_money(prorate(90, '[2025-03-28,2025-04-05)', cycle_period('2025-03-05', 'month', 1, '2025-03-28')), 'USD') AS "rounded once",
       allocate(100, '{1,1,1}', 'USD') AS "100.00 split three ways";

\echo '== Catalog'
INSERT INTO product (code, name, tax_code) VALUES
	('starter', 'Starter plan', NULL), ('pro', 'Pro plan', NULL), ('api', 'API calls', NULL),
	('setup', 'Onboarding', 'services');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount, tiers)
SELECT p.product_id, v.code, v.currency, v.charge_type, v.billing_interval, v.billing_timing, v.pricing_model, v.unit_amount, v.tiers::jsonb
FROM (VALUES
	('starter', 'starter-monthly', 'USD', 'recurring', 'month', 'in_advance', 'per_unit', 29, NULL),
	('pro',     'pro-monthly',     'USD', 'recurring', 'month', 'in_advance', 'per_unit', 99, NULL),
	('pro',     'pro-annual',      'USD', 'recurring', 'year',  'in_advance', 'per_unit', 990, NULL),
	('api',     'api-usage',       'USD', 'usage',     'month', 'in_arrears', 'graduated', NULL,
	 '[{"up_to": 10000, "unit_amount": 0.002}, {"up_to": 100000, "unit_amount": 0.001}, {"up_to": null, "unit_amount": 0.0005}]'),
	('setup',   'setup-fee',       'USD', 'one_time',  NULL,    NULL,         'flat',     500, NULL)
) AS v(product, code, currency, charge_type, billing_interval, billing_timing, pricing_model, unit_amount, tiers)
JOIN product p ON p.code = v.product;
INSERT INTO tax_rate (region, tax_code, name, rate, priority) VALUES
	('CA', NULL, 'State tax', 0.0725, 0), ('CA', 'services', 'Services tax', 0.05, 0),
	('QC', NULL, 'GST', 0.05, 0), ('QC', NULL, 'QST', 0.09975, 1);
SELECT code, charge_type, billing_interval, billing_timing, pricing_model, unit_amount FROM price ORDER BY price_id;

\echo '== 36 accounts, mid-month starts, usage, an upgrade and a cancellation'
SELECT setseed(0.2026);
INSERT INTO account (external_key, name, currency, bill_cycle_day, payment_terms_days, tax_region, timezone)
SELECT 'cust-' || lpad(i::text, 3, '0'), 'Customer ' || i, 'USD',
	   CASE WHEN i % 3 = 0 THEN 1 END, (ARRAY[15, 30, 45])[1 + i % 3],
	   (ARRAY['CA', 'QC', NULL])[1 + i % 3], (ARRAY['UTC', 'America/Los_Angeles', 'Europe/Berlin'])[1 + i % 3]
FROM generate_series(1, 36) AS i;
INSERT INTO subscription (account_id, price_id, quantity, start_date)
SELECT a.account_id,
	   (SELECT price_id FROM price WHERE code = (ARRAY['starter-monthly', 'pro-monthly', 'pro-annual'])[1 + a.account_id % 3]),
	   1 + (a.account_id % 4), date '2026-08-01' + (a.account_id * 7 % 75)::int
FROM account a;
INSERT INTO subscription (account_id, price_id, start_date)
SELECT a.account_id, (SELECT price_id FROM price WHERE code = 'api-usage'), '2026-09-01'
FROM account a WHERE a.account_id % 4 = 0;
INSERT INTO subscription (account_id, price_id, start_date)
SELECT a.account_id, (SELECT price_id FROM price WHERE code = 'setup-fee'), date '2026-08-01' + (a.account_id * 7 % 75)::int
FROM account a WHERE a.account_id % 6 = 1;
INSERT INTO usage_record (account_id, subscription_id, quantity, occurred_at, idempotency_key)
SELECT s.account_id, s.subscription_id, (random() * 9000)::int, timestamptz '2026-09-01' + random() * interval '80 days', 'evt-' || s.subscription_id || '-' || g
FROM subscription s JOIN price p USING (price_id), generate_series(1, 10) AS g
WHERE p.charge_type = 'usage';

\echo '-- first run on 2026-10-01'
SELECT batch_id, target_date, accounts, invoices, lines, total_amount FROM run_invoice_batch('2026-10-01');

\echo '-- customer 3 upgrades Starter to Pro on 2026-10-16; customer 2 moves from annual to monthly billing on 2026-10-16 (a new cycle); customer 5 cancels on 2026-10-20'
SELECT subscription_id, price_id, quantity FROM change_subscription(
	(SELECT subscription_id FROM subscription WHERE account_id = 3 ORDER BY subscription_id LIMIT 1),
	'2026-10-16', price_id => (SELECT price_id FROM price WHERE code = 'pro-monthly'));
SELECT subscription_id, price_id, quantity FROM change_subscription(
	(SELECT subscription_id FROM subscription WHERE account_id = 2 ORDER BY subscription_id LIMIT 1),
	'2026-10-16', price_id => (SELECT price_id FROM price WHERE code = 'pro-monthly'));
SELECT subscription_id, end_date FROM cancel_subscription(
	(SELECT subscription_id FROM subscription WHERE account_id = 5 ORDER BY subscription_id LIMIT 1), '2026-10-20');

\echo '-- what the next run will add for customer 3 (preview, nothing written)'
SELECT kind, service_period, amount, tax_amount, description FROM preview_invoice(3, '2026-11-01');

\echo '== The nightly run on 2026-11-01'
SELECT batch_id, target_date, accounts, invoices, lines, total_amount FROM run_invoice_batch('2026-11-01');
\echo '-- the same run again adds nothing'
SELECT batch_id, accounts, invoices, lines FROM run_invoice_batch('2026-11-01');

\echo '== Documents of the 2026-11-01 run'
SELECT i.document_number, a.name AS customer, i.document_type, i.invoice_date, i.due_date, i.subtotal, i.tax_total, i.total
FROM invoice i JOIN account a USING (account_id)
WHERE i.invoice_date = '2026-11-01'
ORDER BY i.document_number;

\echo '== Lines of customers 2, 3 and 5'
SELECT i.document_number, l.line_number AS "#", l.kind, l.service_period, l.quantity, l.amount, l.tax_amount, l.description
FROM invoice i JOIN invoice_line l USING (account_id, invoice_id)
WHERE i.account_id IN (2, 3, 5)
ORDER BY i.document_number, l.line_number;

\echo '== Billed per account and currency (posted documents)'
SELECT a.name AS customer, i.currency, count(*) AS documents, sum(i.total) AS billed
FROM invoice i JOIN account a USING (account_id)
WHERE i.status = 'posted'
GROUP BY a.account_id, a.name, i.currency
ORDER BY a.account_id
LIMIT 12;

\echo '== Payments: a full payment, a partial one, a credit note and a refund'
SELECT payment_id, account_id, amount, received_on FROM record_payment(1, (SELECT total FROM invoice WHERE document_number = 'INV-000001'), '2026-10-12', 'wire-1001', 'wire');
SELECT payment_id, account_id, amount, received_on FROM record_payment(4, 100.00, '2026-11-05', 'card-2001', 'card');
SELECT document_number, total, corrects_invoice_id FROM issue_credit_note(
	(SELECT invoice_id FROM invoice WHERE account_id = 7 AND document_type = 'invoice' ORDER BY invoice_id LIMIT 1),
	50.00, 'service outage', '2026-11-03');
SELECT payment_id, account_id, amount FROM record_payment(10, 500.00, '2026-11-06', 'wire-3001', 'wire');
SELECT refund_id, payment_id, amount, refunded_on FROM refund(payment_id => (SELECT payment_id FROM payment WHERE reference = 'wire-3001'), refunded_on => '2026-11-10');
SELECT a.name AS customer, account_balance(a.account_id, '2026-11-30') AS balance_2026_11_30
FROM account a WHERE a.account_id IN (1, 4, 7, 10) ORDER BY a.account_id;

\echo '== Aging as of 2026-12-20 (due-date basis)'
SELECT a.name AS customer, g.currency, g.bucket, g.amount, g.documents
FROM ar_aging('2026-12-20') g JOIN account a USING (account_id)
WHERE g.account_id <= 12
ORDER BY g.account_id, g.bucket_order;
SELECT bucket, sum(amount) AS amount, sum(documents) AS documents
FROM ar_aging('2026-12-20') GROUP BY bucket, bucket_order ORDER BY bucket_order;

\echo '== Revenue by month (recognized daily over service periods)'
SELECT period_month, currency, sum(revenue) AS revenue FROM revenue_by_month GROUP BY 1, 2 ORDER BY 1;
SELECT sum(amount) AS deferred_revenue_2026_11_30 FROM deferred_revenue('2026-11-30');

\echo '== Integrity (no rows = healthy)'
SELECT * FROM check_integrity();
