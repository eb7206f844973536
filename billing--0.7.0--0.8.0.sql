-- billing 0.7.0 -> 0.8.0.  Every change here is also in src/sql (which builds
-- billing--0.8.0.sql); scripts/test.sh (suite "upgrade") checks that a 0.7.0
-- database updated by this script has the same catalog as a fresh 0.8.0.
-- The engine's C changes of 0.8.0 (src/keyed_scan.c) need nothing here.

\echo Use "ALTER EXTENSION billing UPDATE TO '0.8.0'" to load this file. \quit

-- A run with nothing due stops after finding that (one scan of the
-- subscriptions instead of three).
CREATE OR REPLACE FUNCTION billing.bill_accounts(target_date date, auto_post boolean, batch_id bigint, account_ids bigint[])
	RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- batch statements are costed high (set-returning functions are estimated at
-- 1000 rows); compiling them with JIT takes seconds and saves nothing
SET jit = off
-- a catch-up run's start terms join a million subscriptions (and the UPDATE
-- of the watermarks, when a trigger needs it, hashes every candidate): they
-- fit in memory at 64MB (at 16MB the join went through disk in 4 batches);
-- the peak of a 1M catch-up run, 298MB, is that statement
SET work_mem = '64MB'
AS $$
DECLARE
	due_accounts bigint[];
	doc_accounts bigint[];
	doc_ids bigint[];
	doc_types text[];
	start_accounts bigint[];
	start_subscriptions bigint[];
BEGIN
	due_accounts := ARRAY(
		SELECT DISTINCT s.account_id FROM billing.subscriptions_of(account_ids) s
		WHERE billing.has_work_due(s.start_date, s.next_due_date, s.reconcile_from, s.last_target_date, target_date));
	PERFORM billing.lock_accounts(due_accounts);
	-- nothing due (a second run for the same date): the scan above was the
	-- whole run; the engine would scan every subscription again to find that
	IF cardinality(due_accounts) = 0 THEN
		RETURN;
	END IF;

	-- subscriptions billed for the first time: their start terms join the
	-- timeline (written below; until then the engine reads them from the row)
	SELECT array_agg(s.account_id), array_agg(s.subscription_id)
	INTO start_accounts, start_subscriptions
	FROM billing.subscriptions_of(account_ids) s
	WHERE s.last_target_date IS NULL AND s.start_date <= target_date;

	IF to_regclass('pg_temp.billing_due') IS NOT NULL THEN
		DROP TABLE pg_temp.billing_due;
	END IF;
	-- the lines and the watermarks are written here already
	-- (billing.write_due_lines); what comes back is the documents, with their
	-- ids (and, when someone's triggers need the statements below, the lines
	-- or the watermarks)
	CREATE TEMP TABLE billing_due ON COMMIT DROP AS
	SELECT * FROM billing.write_due_lines(target_date, account_ids);
	-- statistics after the bulk load: planned at the default guess, the joins
	-- below would sort and merge a million rows through disk
	ANALYZE billing_due;

	-- One document per account and currency, written once in its final form:
	-- totals from its lines (summed by the engine as it made them: a GROUP BY
	-- over a catch-up run's ten million lines took 16 s), due date and, when
	-- posting, its number.  (Written as a draft and then totalled and
	-- numbered, each document row would be rewritten twice, with its checks,
	-- in the run's largest table.)  Net credit makes a credit note.  Ids
	-- follow (account, currency) (the engine gave them), numbers ids.
	IF to_regclass('pg_temp.billing_new_documents') IS NOT NULL THEN
		DROP TABLE pg_temp.billing_new_documents;
	END IF;
	CREATE TEMP TABLE billing_new_documents ON COMMIT DROP AS
	SELECT d.account_id, d.currency,
		   CASE WHEN d.amount + d.tax_amount < 0 THEN 'credit_note' ELSE 'invoice' END AS document_type,
		   d.amount AS subtotal, d.tax_amount AS tax_total, d.line_number AS lines, d.invoice_id
	FROM billing_due d
	WHERE d.item = 'document';
	ANALYZE billing_new_documents;

	-- posting: the documents' numbers (none taken for drafts)
	IF auto_post THEN
		SELECT array_agg(n.account_id ORDER BY n.invoice_id), array_agg(n.invoice_id ORDER BY n.invoice_id),
			   array_agg(n.document_type ORDER BY n.invoice_id)
		INTO doc_accounts, doc_ids, doc_types
		FROM billing_new_documents n;
	END IF;

	-- the documents and then the lines are the run's own statements, written
	-- by its bulk writer: their keys are accounts it has locked, a batch,
	-- subscriptions and documents it has just written, and prices its
	-- timelines reference, so the integrity triggers skip them
	-- (billing.trust_run_statements, billing.write_run_rows)
	PERFORM billing.write_run_rows('billing.invoice', $run$
		SELECT n.invoice_id, n.account_id, $1 AS batch_id, n.document_type, num.document_number,
			   CASE WHEN $3 THEN 'posted' ELSE 'draft' END AS status, $2 AS invoice_date,
			   billing.document_due_date(n.document_type, $2, a.payment_terms_days) AS due_date, n.currency,
			   n.subtotal, n.tax_total, n.subtotal + n.tax_total AS total,
			   CASE WHEN $3 THEN pg_catalog.now() END AS posted_at
		FROM pg_temp.billing_new_documents n
		JOIN billing.account a ON a.account_id = n.account_id
		LEFT JOIN billing.number_documents($4, $5, $6) num
			   ON num.account_id = n.account_id AND num.invoice_id = n.invoice_id
		ORDER BY n.invoice_id$run$,
		batch_id, target_date, auto_post, doc_accounts, doc_ids, doc_types);

	-- watermarks, when billing.subscription has an update trigger that must
	-- see this statement (else the engine wrote them, by the same rule): keep
	-- a reconcile_from that moved while we ran (late usage).  Written before
	-- the lines and the start terms: a subscription this transaction updated
	-- needs no FOR KEY SHARE lock from their key checks
	-- (billing.check_foreign_keys).
	UPDATE billing.subscription s
	SET billed_through = w.billed_through,
		next_due_date = w.next_due_date,
		last_target_date = greatest(s.last_target_date, target_date),
		reconcile_from = CASE WHEN s.reconcile_from IS NOT DISTINCT FROM w.seen_reconcile_from
							  THEN NULL ELSE s.reconcile_from END,
		next_bill_date_override = NULL
	FROM billing_due w
	WHERE w.item = 'watermark' AND s.account_id = w.account_id AND s.subscription_id = w.subscription_id;

	IF start_subscriptions IS NOT NULL THEN
		PERFORM billing.record_start_terms(start_accounts, start_subscriptions);
	END IF;

	-- the lines of a posted document all come in one statement, summing to its
	-- totals (as billing.invoice_line_guard_insert requires of anyone else):
	-- billing.write_due_lines() wrote them, or, when invoice_line has an
	-- insert trigger of someone else's, returned them for this INSERT, which
	-- that trigger sees.  No ORDER BY: they come by account and line number
	-- already, and sorting a million lines again cost a quarter of the insert.
	PERFORM billing.write_run_rows('billing.invoice_line', $run$
		SELECT d.account_id, d.invoice_id, d.line_number, d.subscription_id, d.price_id, d.kind, d.service_period,
			   d.cycle_period, d.quantity, d.unit_amount, d.amount, d.tax_amount, d.description
		FROM pg_temp.billing_due d
		WHERE d.item = 'line'$run$);

	IF doc_ids IS NOT NULL THEN
		PERFORM billing.apply_account_credit(doc_accounts, doc_ids);
	END IF;

	-- the batch's counters from the documents just written (a document's
	-- total is its subtotal plus its tax, as written above)
	UPDATE billing.invoice_batch b
	SET (accounts, invoices, lines, total_amount) =
		(SELECT b.accounts + count(DISTINCT n.account_id), b.invoices + count(*), b.lines + coalesce(sum(n.lines), 0),
				b.total_amount + coalesce(sum(n.subtotal + n.tax_total), 0)
		 FROM billing_new_documents n)
	WHERE b.batch_id = bill_accounts.batch_id;
END $$;
