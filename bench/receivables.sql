-- Timings of the receivables figures (BENCHMARKS.md, "Receivables") on the
-- book of bench/gen_receivables.sql:  psql -f bench/receivables.sql
-- Each statement runs once; repeat the file and take medians.  Writes are
-- rolled back.  Serial plans, as measured.
\timing on
SET max_parallel_workers_per_gather = 0;

\echo '== aging: ours'
SELECT count(*), sum(amount) FROM billing.ar_aging('2026-11-30');
\echo '== aging: plain GROUP BY over the documents'
SELECT count(*), sum(amount) FROM (
	SELECT x.account_id, x.currency,
		   CASE WHEN x.days <= 0 THEN 'current' WHEN x.days <= 30 THEN '1-30' WHEN x.days <= 60 THEN '31-60'
				WHEN x.days <= 90 THEN '61-90' ELSE '91+' END AS bucket,
		   sum(x.open) AS amount, count(*) AS documents
	FROM (SELECT i.account_id, i.currency, date '2026-11-30' - i.due_date AS days, i.total - coalesce(a.used, 0) AS open
		  FROM billing.invoice i
		  LEFT JOIN (SELECT a.account_id, a.invoice_id, sum(a.amount) AS used FROM billing.allocation a
					 WHERE a.allocated_on <= '2026-11-30' GROUP BY 1, 2) a USING (account_id, invoice_id)
		  WHERE i.status = 'posted' AND i.invoice_date <= '2026-11-30') x
	WHERE x.open <> 0
	GROUP BY 1, 2, 3) g;
\echo '== aging: plain GROUP BY over documents and payments (the same rows as ours)'
SELECT count(*), sum(amount) FROM (
	SELECT x.account_id, x.currency,
		   CASE WHEN x.days IS NULL THEN 'unapplied' WHEN x.days <= 0 THEN 'current' WHEN x.days <= 30 THEN '1-30'
				WHEN x.days <= 60 THEN '31-60' WHEN x.days <= 90 THEN '61-90' ELSE '91+' END AS bucket,
		   sum(x.open) AS amount, count(*) AS documents
	FROM (SELECT i.account_id, i.currency, date '2026-11-30' - i.due_date AS days, i.total - coalesce(a.used, 0) AS open
		  FROM billing.invoice i
		  LEFT JOIN (SELECT a.account_id, a.invoice_id, sum(a.amount) AS used FROM billing.allocation a
					 WHERE a.allocated_on <= '2026-11-30' GROUP BY 1, 2) a USING (account_id, invoice_id)
		  WHERE i.status = 'posted' AND i.invoice_date <= '2026-11-30'
		  UNION ALL
		  SELECT p.account_id, p.currency, NULL, -p.amount + coalesce(a.used, 0)
		  FROM billing.payment p
		  LEFT JOIN (SELECT a.account_id, a.payment_id, sum(a.amount) AS used FROM billing.allocation a
					 WHERE a.allocated_on <= '2026-11-30' AND a.payment_id IS NOT NULL GROUP BY 1, 2) a
			USING (account_id, payment_id)
		  WHERE p.received_on <= '2026-11-30') x
	WHERE x.open <> 0
	GROUP BY 1, 2, 3) g;

\echo '== payments: one record_payments call, a payment per account, auto-applied (rolled back)'
BEGIN;
SELECT count(*) FROM bench_payment_input i,
	LATERAL billing.record_payments(i.account_ids, i.amounts, i.received_dates, i.refs) p;
\timing off
-- its allocation rows, kept (client side) for the floors
CREATE TEMP TABLE t AS SELECT * FROM billing.allocation WHERE created_at = now();
\copy t TO '/tmp/billing_bench_bulk_rows.copy'
ROLLBACK;
CREATE TEMP TABLE bulk_rows (LIKE billing.allocation);
\copy bulk_rows FROM '/tmp/billing_bench_bulk_rows.copy'
SELECT count(*) AS allocation_rows, sum(amount) FROM bulk_rows;
CREATE TABLE copy_of_allocation (LIKE billing.allocation INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
INSERT INTO copy_of_allocation SELECT * FROM billing.allocation;
VACUUM ANALYZE copy_of_allocation;
\timing on
\echo '== payments floor: the same rows into a copy of allocation (same columns, PK, indexes, rows; no FKs, no triggers)'
BEGIN;
INSERT INTO copy_of_allocation SELECT * FROM bulk_rows;
ROLLBACK;
\echo '== payments, FK floor: the same rows into billing.allocation itself (its payments inserted first, not timed)'
BEGIN;
\timing off
SELECT count(*) FROM bench_payment_input i,
	LATERAL billing.record_payments(i.account_ids, i.amounts, i.received_dates, i.refs, auto_apply => false) p;
SELECT min(payment_id) - (SELECT min(payment_id) FROM bulk_rows) AS payment_offset FROM billing.payment
WHERE created_at = now() \gset
\timing on
INSERT INTO billing.allocation (account_id, invoice_id, payment_id, amount, allocated_on)
SELECT account_id, invoice_id, payment_id + :payment_offset, amount, allocated_on FROM bulk_rows ORDER BY allocation_id;
ROLLBACK;
DROP TABLE copy_of_allocation;
