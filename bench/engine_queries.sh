# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are used by bench/engine.sh
# The SQL of bench/engine.sh that is not a call of the engine, one shell
# variable each, so that engine.sh, BENCHMARKS.md and anyone re-running a
# statement by hand use the same text.  Sourced by bench/engine.sh.
#
# Only public tables and functions of SPEC.md are used (billing.invoice,
# invoice_line, invoice_batch, payment, allocation, refund; run_invoice_batch,
# record_payment, ar_aging), so the harness runs against any engine that
# keeps the contract.  Timed statements return one row, so psql's \timing
# measures the server's work, not the transfer of a result set.

ENGINE_TARGET=2026-10-31          # the measured run's target date
PAYMENT_DATE=2026-11-15           # received_on of the generated payments
AGING_AS_OF=2026-11-30            # as-of date of the aging figure
CHUNK_ACCOUNTS=1000               # chunk size of run_invoice_batch_chunked

# ---------------------------------------------------------------- engine run

Q_ENGINE="SELECT batch_id, invoices, lines, total_amount FROM billing.run_invoice_batch('$ENGINE_TARGET')"
Q_CHUNKED="CALL billing.run_invoice_batch_chunked('$ENGINE_TARGET', $CHUNK_ACCOUNTS)"

# The rows of the latest batch (the run just made, inside its transaction),
# in the order the engine inserted them: the floor writes exactly these.
Q_EXPORT_INVOICES='SELECT i.* FROM billing.invoice i WHERE i.batch_id = (SELECT max(b.batch_id) FROM billing.invoice_batch b) ORDER BY i.invoice_id'
Q_EXPORT_LINES='SELECT l.* FROM billing.invoice_line l JOIN billing.invoice i ON i.account_id = l.account_id AND i.invoice_id = l.invoice_id WHERE i.batch_id = (SELECT max(b.batch_id) FROM billing.invoice_batch b) ORDER BY l.line_id'

# ---------------------------------------------------------------- floors

# Staging (unlogged, loaded once from the export, untimed) and floor tables:
# the columns, primary key and indexes (same definitions) of the billing
# table, no foreign keys, no triggers, no CHECK constraints.
# @T@ is the table name.
SQL_FLOOR_TABLE='DROP TABLE IF EXISTS bench_stage.@T@, bench_floor.@T@;
CREATE UNLOGGED TABLE bench_stage.@T@ (LIKE billing.@T@);
CREATE TABLE bench_floor.@T@ (LIKE billing.@T@ INCLUDING INDEXES);'
Q_FLOOR_INSERT='INSERT INTO bench_floor.@T@ SELECT * FROM bench_stage.@T@'

# ---------------------------------------------------------------- payments

# One payment per account that owes money (round robin when BENCH_PAYMENTS
# exceeds the accounts), received 2026-11-15, deterministic (setseed):
# 50% pay the oldest document exactly, 30% the whole balance, 15% 40% of
# it, 5% the balance plus 100 (the rest stays unapplied).  :payments is a
# psql variable.
SQL_PAYMENT_INPUT="SELECT setseed(0.7);
DROP TABLE IF EXISTS bench_pay.input;
CREATE TABLE bench_pay.input AS
WITH owed AS (
	SELECT row_number() OVER (ORDER BY i.account_id) AS account_no, i.account_id, sum(i.total) AS balance,
		   (array_agg(i.total ORDER BY i.due_date, i.invoice_date, i.invoice_id))[1] AS oldest
	FROM billing.invoice i
	WHERE i.status = 'posted' AND i.document_type IN ('invoice', 'debit_note')
	GROUP BY i.account_id
	HAVING sum(i.total) > 0
), draw AS MATERIALIZED (
	SELECT g AS payment_no, random() AS r FROM generate_series(1, :payments) AS g
)
SELECT d.payment_no, o.account_id,
	   CASE WHEN d.r < 0.5 THEN greatest(o.oldest, 0.01)
			WHEN d.r < 0.8 THEN o.balance
			WHEN d.r < 0.95 THEN greatest(round(o.balance * 0.4, 2), 0.01)
			ELSE o.balance + 100 END AS amount,
	   date '$PAYMENT_DATE' AS received_on, 'BENCH-PAY-' || d.payment_no AS reference, 'wire' AS method
FROM draw d
JOIN owed o ON o.account_no = (d.payment_no - 1) % (SELECT count(*) FROM owed) + 1
ORDER BY d.payment_no;
ALTER TABLE bench_pay.input ADD PRIMARY KEY (payment_no);
ANALYZE bench_pay.input;
-- the call's arguments, built before the clock starts (as the floor's rows are)
DROP TABLE IF EXISTS bench_pay.call;
CREATE TABLE bench_pay.call AS
SELECT array_agg(p.account_id ORDER BY p.payment_no) AS a, array_agg(p.amount ORDER BY p.payment_no) AS m,
	   array_agg(p.received_on ORDER BY p.payment_no) AS d, array_agg(p.reference ORDER BY p.payment_no) AS r,
	   array_agg(p.method ORDER BY p.payment_no) AS t
FROM bench_pay.input p;"

# the bulk entry point: one call records and applies every payment, in payment_no order
Q_PAYMENTS='SELECT count(*) FROM bench_pay.call x, billing.record_payments(x.a, x.m, x.d, x.r, x.t, true)'
Q_PAYMENT_COUNTS="SELECT (SELECT count(*) FROM billing.payment WHERE reference LIKE 'BENCH-PAY-%'),
	(SELECT count(*) FROM billing.allocation a JOIN billing.payment p ON p.account_id = a.account_id AND p.payment_id = a.payment_id WHERE p.reference LIKE 'BENCH-PAY-%')"
Q_EXPORT_PAYMENTS="SELECT p.* FROM billing.payment p WHERE p.reference LIKE 'BENCH-PAY-%' ORDER BY p.payment_id"
Q_EXPORT_ALLOCATIONS="SELECT a.* FROM billing.allocation a JOIN billing.payment p ON p.account_id = a.account_id AND p.payment_id = a.payment_id WHERE p.reference LIKE 'BENCH-PAY-%' ORDER BY a.allocation_id"

# ---------------------------------------------------------------- aging

Q_AGING_OURS="SELECT count(*), sum(amount), sum(documents) FROM billing.ar_aging('$AGING_AS_OF')"

# The same buckets as a plain GROUP BY (SPEC §6): open amount of a posted,
# not (yet) void document = total - allocations to it dated <= D (credit
# notes: total + allocations from them + refunds, bucket unapplied);
# unapplied payments = -(amount - allocations - refunds); days overdue =
# D - due_date into current / 1-30 / 31-60 / 61-90 / 91+ by CASE.
AGING_ROWS="SELECT o.account_id, o.currency, o.bucket, sum(o.open_amount) AS amount, count(*)::int AS documents
FROM (
	SELECT i.account_id, i.currency,
		   CASE WHEN i.document_type = 'credit_note' THEN 'unapplied'
				WHEN date '$AGING_AS_OF' - i.due_date <= 0 THEN 'current'
				WHEN date '$AGING_AS_OF' - i.due_date <= 30 THEN '1-30'
				WHEN date '$AGING_AS_OF' - i.due_date <= 60 THEN '31-60'
				WHEN date '$AGING_AS_OF' - i.due_date <= 90 THEN '61-90'
				ELSE '91+' END AS bucket,
		   CASE WHEN i.document_type = 'credit_note' THEN i.total + coalesce(f.amount, 0) + coalesce(r.amount, 0)
				ELSE i.total - coalesce(t.amount, 0) END AS open_amount
	FROM billing.invoice i
	LEFT JOIN (SELECT a.account_id, a.invoice_id, sum(a.amount) AS amount FROM billing.allocation a
			   WHERE a.allocated_on <= '$AGING_AS_OF' GROUP BY a.account_id, a.invoice_id) t
		   ON t.account_id = i.account_id AND t.invoice_id = i.invoice_id
	LEFT JOIN (SELECT a.account_id, a.credit_note_id, sum(a.amount) AS amount FROM billing.allocation a
			   WHERE a.credit_note_id IS NOT NULL AND a.allocated_on <= '$AGING_AS_OF' GROUP BY a.account_id, a.credit_note_id) f
		   ON f.account_id = i.account_id AND f.credit_note_id = i.invoice_id
	LEFT JOIN (SELECT r.account_id, r.credit_note_id, sum(r.amount) AS amount FROM billing.refund r
			   WHERE r.credit_note_id IS NOT NULL AND r.refunded_on <= '$AGING_AS_OF' GROUP BY r.account_id, r.credit_note_id) r
		   ON r.account_id = i.account_id AND r.credit_note_id = i.invoice_id
	WHERE i.status <> 'draft' AND i.invoice_date <= '$AGING_AS_OF' AND (i.voided_on IS NULL OR i.voided_on > '$AGING_AS_OF')
	UNION ALL
	SELECT p.account_id, p.currency, 'unapplied', -(p.amount - coalesce(t.amount, 0) - coalesce(r.amount, 0))
	FROM billing.payment p
	LEFT JOIN (SELECT a.account_id, a.payment_id, sum(a.amount) AS amount FROM billing.allocation a
			   WHERE a.payment_id IS NOT NULL AND a.allocated_on <= '$AGING_AS_OF' GROUP BY a.account_id, a.payment_id) t
		   ON t.account_id = p.account_id AND t.payment_id = p.payment_id
	LEFT JOIN (SELECT r.account_id, r.payment_id, sum(r.amount) AS amount FROM billing.refund r
			   WHERE r.payment_id IS NOT NULL AND r.refunded_on <= '$AGING_AS_OF' GROUP BY r.account_id, r.payment_id) r
		   ON r.account_id = p.account_id AND r.payment_id = p.payment_id
	WHERE p.received_on <= '$AGING_AS_OF'
) o
WHERE o.open_amount <> 0
GROUP BY o.account_id, o.currency, o.bucket"
Q_AGING_BASE="SELECT count(*), sum(amount), sum(documents) FROM ($AGING_ROWS) g"

# Agreement, group by group (not timed): groups, missing on either side,
# differing in amount or documents, and the two totals.
Q_AGING_CHECK="SELECT count(*) AS groups,
	count(*) FILTER (WHERE o.amount IS NULL OR b.amount IS NULL) AS missing,
	count(*) FILTER (WHERE o.amount <> b.amount OR o.documents <> b.documents) AS differing,
	sum(o.amount) AS ours_total, sum(b.amount) AS baseline_total
FROM billing.ar_aging('$AGING_AS_OF') o
FULL JOIN ($AGING_ROWS) b ON b.account_id = o.account_id AND b.currency = o.currency AND b.bucket = o.bucket"
