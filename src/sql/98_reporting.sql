-- Views for BI tools: plain relations any client can read over a connection.

CREATE VIEW billing.invoice_report AS
SELECT i.invoice_id, i.document_number, i.document_type, i.status, i.account_id, a.external_key, a.name AS account_name,
	   i.invoice_date, i.due_date, i.currency, i.subtotal, i.tax_total, i.total,
	   o.open_amount,
	   CASE WHEN i.document_type <> 'credit_note' AND i.status = 'posted' THEN CURRENT_DATE - i.due_date END AS days_overdue,
	   i.batch_id, i.corrects_invoice_id, i.credit_kind, i.reason, i.voided_on, i.void_reason
FROM billing.invoice i
JOIN billing.account a ON a.account_id = i.account_id
LEFT JOIN billing.open_items(CURRENT_DATE) o ON o.account_id = i.account_id AND o.kind = 'document' AND o.id = i.invoice_id
WHERE i.status <> 'draft';
COMMENT ON VIEW billing.invoice_report IS 'Posted and void documents with their open amount today';
COMMENT ON COLUMN billing.invoice_report.invoice_id IS 'Document id';
COMMENT ON COLUMN billing.invoice_report.document_number IS 'Document number (INV-, CN-, DN-)';
COMMENT ON COLUMN billing.invoice_report.document_type IS 'invoice, credit_note or debit_note';
COMMENT ON COLUMN billing.invoice_report.status IS 'posted or void';
COMMENT ON COLUMN billing.invoice_report.account_id IS 'Account id';
COMMENT ON COLUMN billing.invoice_report.external_key IS 'The application''s key of the account';
COMMENT ON COLUMN billing.invoice_report.account_name IS 'Account name';
COMMENT ON COLUMN billing.invoice_report.invoice_date IS 'Document date';
COMMENT ON COLUMN billing.invoice_report.due_date IS 'Due date (NULL for credit notes)';
COMMENT ON COLUMN billing.invoice_report.currency IS 'Currency';
COMMENT ON COLUMN billing.invoice_report.subtotal IS 'Amount before tax';
COMMENT ON COLUMN billing.invoice_report.tax_total IS 'Tax';
COMMENT ON COLUMN billing.invoice_report.total IS 'Total, tax included; negative for credit notes';
COMMENT ON COLUMN billing.invoice_report.open_amount IS 'Open amount today (credit notes: unapplied credit, negative; void: 0)';
COMMENT ON COLUMN billing.invoice_report.days_overdue IS 'Days past the due date today';
COMMENT ON COLUMN billing.invoice_report.batch_id IS 'Invoice run that created it';
COMMENT ON COLUMN billing.invoice_report.corrects_invoice_id IS 'Credit notes: the document corrected';
COMMENT ON COLUMN billing.invoice_report.credit_kind IS 'Credit notes: credit or write_off';
COMMENT ON COLUMN billing.invoice_report.reason IS 'Why it was issued';
COMMENT ON COLUMN billing.invoice_report.voided_on IS 'Void date';
COMMENT ON COLUMN billing.invoice_report.void_reason IS 'Why it was voided';

CREATE VIEW billing.ar_aging_report AS
SELECT g.account_id, a.name AS account_name, g.currency,
	   coalesce(sum(g.amount) FILTER (WHERE g.bucket = 'current'), 0) AS current,
	   coalesce(sum(g.amount) FILTER (WHERE g.bucket = '1-30'), 0) AS d1_30,
	   coalesce(sum(g.amount) FILTER (WHERE g.bucket = '31-60'), 0) AS d31_60,
	   coalesce(sum(g.amount) FILTER (WHERE g.bucket = '61-90'), 0) AS d61_90,
	   coalesce(sum(g.amount) FILTER (WHERE g.bucket = '91+'), 0) AS d91_plus,
	   coalesce(sum(g.amount) FILTER (WHERE g.bucket = 'unapplied'), 0) AS unapplied,
	   sum(g.amount) AS total
FROM billing.ar_aging(CURRENT_DATE) g
JOIN billing.account a ON a.account_id = g.account_id
GROUP BY g.account_id, a.name, g.currency;
COMMENT ON VIEW billing.ar_aging_report IS 'Receivables aging today, one row per account and currency, buckets as columns';
COMMENT ON COLUMN billing.ar_aging_report.account_id IS 'Account id';
COMMENT ON COLUMN billing.ar_aging_report.account_name IS 'Account name';
COMMENT ON COLUMN billing.ar_aging_report.currency IS 'Currency';
COMMENT ON COLUMN billing.ar_aging_report.current IS 'Open amount not yet overdue';
COMMENT ON COLUMN billing.ar_aging_report.d1_30 IS 'Open amount 1 to 30 days overdue';
COMMENT ON COLUMN billing.ar_aging_report.d31_60 IS 'Open amount 31 to 60 days overdue';
COMMENT ON COLUMN billing.ar_aging_report.d61_90 IS 'Open amount 61 to 90 days overdue';
COMMENT ON COLUMN billing.ar_aging_report.d91_plus IS 'Open amount more than 90 days overdue';
COMMENT ON COLUMN billing.ar_aging_report.unapplied IS 'Unapplied payments and credit notes (negative)';
COMMENT ON COLUMN billing.ar_aging_report.total IS 'Balance: the sum of the buckets';

CREATE VIEW billing.revenue_by_month AS
SELECT r.period_month, r.currency, r.account_id, sum(r.amount) AS revenue
FROM billing.line_revenue r
WHERE r.status = 'posted'
GROUP BY r.period_month, r.currency, r.account_id;
COMMENT ON VIEW billing.revenue_by_month IS 'Recognized revenue by calendar month, currency and account (posted, non-void documents)';
COMMENT ON COLUMN billing.revenue_by_month.period_month IS 'First day of the month';
COMMENT ON COLUMN billing.revenue_by_month.currency IS 'Currency';
COMMENT ON COLUMN billing.revenue_by_month.account_id IS 'Account id';
COMMENT ON COLUMN billing.revenue_by_month.revenue IS 'Revenue recognized in the month';

CREATE VIEW billing.mrr_by_month AS
SELECT r.period_month, r.currency, sum(r.amount) AS mrr, count(DISTINCT r.subscription_id) AS subscriptions
FROM billing.line_revenue r
WHERE r.status = 'posted' AND r.charge_type = 'recurring' AND r.kind IN ('recurring', 'proration')
GROUP BY r.period_month, r.currency;
COMMENT ON VIEW billing.mrr_by_month IS 'Monthly recurring revenue: revenue of recurring charges (and their prorations) recognized in each month; an annual plan counts a twelfth a month';
COMMENT ON COLUMN billing.mrr_by_month.period_month IS 'First day of the month';
COMMENT ON COLUMN billing.mrr_by_month.currency IS 'Currency';
COMMENT ON COLUMN billing.mrr_by_month.mrr IS 'Recurring revenue recognized in the month';
COMMENT ON COLUMN billing.mrr_by_month.subscriptions IS 'Subscriptions contributing';

CREATE VIEW billing.cash_by_month AS
SELECT m.period_month, m.currency, sum(m.received) AS received, sum(m.refunded) AS refunded,
	   sum(m.received) - sum(m.refunded) AS net_cash
FROM (SELECT date_trunc('month', p.received_on)::date AS period_month, p.currency, p.amount AS received, 0 AS refunded
	  FROM billing.payment p
	  UNION ALL
	  SELECT date_trunc('month', r.refunded_on)::date, coalesce(p.currency, c.currency), 0, r.amount
	  FROM billing.refund r
	  LEFT JOIN billing.payment p ON p.account_id = r.account_id AND p.payment_id = r.payment_id
	  LEFT JOIN billing.invoice c ON c.account_id = r.account_id AND c.invoice_id = r.credit_note_id) m
GROUP BY m.period_month, m.currency;
COMMENT ON VIEW billing.cash_by_month IS 'Cash received and refunded by calendar month and currency';
COMMENT ON COLUMN billing.cash_by_month.period_month IS 'First day of the month';
COMMENT ON COLUMN billing.cash_by_month.currency IS 'Currency';
COMMENT ON COLUMN billing.cash_by_month.received IS 'Payments received';
COMMENT ON COLUMN billing.cash_by_month.refunded IS 'Refunds paid';
COMMENT ON COLUMN billing.cash_by_month.net_cash IS 'Received minus refunded';
