-- billing 0.3.0 -> 0.4.0.  Every change here is also in src/sql (which builds
-- billing--0.4.0.sql); scripts/test.sh (suite "upgrade") checks that a 0.3.0
-- database updated by this script has the same catalog as a fresh 0.4.0.

\echo Use "ALTER EXTENSION billing UPDATE TO '0.4.0'" to load this file. \quit

-- The run's bulk writer (src/run_writer.c).
CREATE FUNCTION billing.write_run_rows(target regclass, source text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'billing_write_run_rows' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION billing.write_run_rows(regclass, text) IS
	'Writes the rows of the query source into target as one of the extension''s own bulk writes (columns by name, defaults for the rest, constraints and indexes as an INSERT); superuser only, returns the rows written';

-- The run writes its documents and lines with it.
CREATE OR REPLACE FUNCTION billing.bill_accounts(target_date date, auto_post boolean, batch_id bigint, account_ids bigint[])
	RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- batch statements are costed high (set-returning functions are estimated at
-- 1000 rows); compiling them with JIT takes seconds and saves nothing
SET jit = off
-- sorts of a run's lines fit in memory (see billing.due_items)
SET work_mem = '16MB'
AS $$
DECLARE
	doc_accounts bigint[];
	doc_ids bigint[];
	doc_types text[];
	start_accounts bigint[];
	start_subscriptions bigint[];
BEGIN
	PERFORM billing.lock_accounts(ARRAY(
		SELECT DISTINCT s.account_id FROM billing.subscriptions_of(account_ids) s
		WHERE billing.has_work_due(s.start_date, s.next_due_date, s.reconcile_from, s.last_target_date, target_date)));

	-- subscriptions billed for the first time: their start terms join the
	-- timeline (written below; until then the engine reads them from the row)
	SELECT array_agg(s.account_id), array_agg(s.subscription_id)
	INTO start_accounts, start_subscriptions
	FROM billing.subscriptions_of(account_ids) s
	WHERE s.last_target_date IS NULL AND s.start_date <= target_date;

	IF to_regclass('pg_temp.billing_due') IS NOT NULL THEN
		DROP TABLE pg_temp.billing_due;
	END IF;
	CREATE TEMP TABLE billing_due ON COMMIT DROP AS
	SELECT * FROM billing.due_items(target_date, account_ids);
	-- statistics after the bulk load: planned at the default guess, the joins
	-- below would sort and merge a million rows through disk
	ANALYZE billing_due;

	-- One document per account and currency, written once in its final form:
	-- totals from its lines, due date and, when posting, its number.  (Written
	-- as a draft and then totalled and numbered, each document row would be
	-- rewritten twice, with its checks, in the run's largest table.)  Net
	-- credit makes a credit note.  Ids follow (account, currency), numbers ids.
	IF to_regclass('pg_temp.billing_new_documents') IS NOT NULL THEN
		DROP TABLE pg_temp.billing_new_documents;
	END IF;
	CREATE TEMP TABLE billing_new_documents ON COMMIT DROP AS
	SELECT h.*, nextval('billing.invoice_invoice_id_seq') AS invoice_id
	FROM (SELECT d.account_id, d.currency,
				 CASE WHEN sum(d.amount + d.tax_amount) < 0 THEN 'credit_note' ELSE 'invoice' END AS document_type,
				 sum(d.amount) AS subtotal, sum(d.tax_amount) AS tax_total
		  FROM billing_due d
		  WHERE d.item = 'line'
		  GROUP BY d.account_id, d.currency
		  ORDER BY d.account_id, d.currency) h;
	ANALYZE billing_new_documents;

	-- posting: the documents' numbers (none taken for drafts)
	IF auto_post THEN
		SELECT array_agg(n.account_id ORDER BY n.invoice_id), array_agg(n.invoice_id ORDER BY n.invoice_id),
			   array_agg(n.document_type ORDER BY n.invoice_id)
		INTO doc_accounts, doc_ids, doc_types
		FROM billing_new_documents n;
	END IF;

	IF to_regclass('pg_temp.billing_document_numbers') IS NOT NULL THEN
		DROP TABLE pg_temp.billing_document_numbers;
	END IF;
	CREATE TEMP TABLE billing_document_numbers ON COMMIT DROP AS
	SELECT * FROM billing.number_documents(doc_accounts, doc_ids, doc_types);

	-- the documents and then the lines are the run's own statements, written
	-- by its bulk writer: their keys are accounts it has locked, a batch,
	-- subscriptions and documents it has just written, and prices its
	-- timelines reference, so the integrity triggers skip them
	-- (billing.trust_run_statements, billing.write_run_rows)
	PERFORM billing.write_run_rows('billing.invoice', format($run$
		SELECT n.invoice_id, n.account_id, %1$L::bigint AS batch_id, n.document_type, num.document_number,
			   %2$L::text AS status, %3$L::date AS invoice_date,
			   billing.document_due_date(n.document_type, %3$L::date, a.payment_terms_days) AS due_date, n.currency,
			   n.subtotal, n.tax_total, n.subtotal + n.tax_total AS total,
			   CASE WHEN %4$L::boolean THEN pg_catalog.now() END AS posted_at
		FROM pg_temp.billing_new_documents n
		JOIN billing.account a ON a.account_id = n.account_id
		LEFT JOIN pg_temp.billing_document_numbers num ON num.account_id = n.account_id AND num.invoice_id = n.invoice_id
		ORDER BY n.invoice_id$run$,
		batch_id, CASE WHEN auto_post THEN 'posted' ELSE 'draft' END, target_date, auto_post));

	-- watermarks: keep a reconcile_from that moved while we ran (late usage).
	-- Written before the lines and the start terms: a subscription this
	-- transaction updated needs no FOR KEY SHARE lock from their key checks
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

	-- the lines of a posted document all come in this one statement, summing to
	-- its totals (as billing.invoice_line_guard_insert requires of anyone else).
	-- No ORDER BY: billing.due_items() returns them by account and line number
	-- already, and sorting a million lines again cost a quarter of the insert.
	PERFORM billing.write_run_rows('billing.invoice_line', $run$
		SELECT d.account_id, n.invoice_id, d.line_number, d.subscription_id, d.price_id, d.kind, d.service_period,
			   d.cycle_period, d.quantity, d.unit_amount, d.amount, d.tax_amount, d.description
		FROM pg_temp.billing_due d
		JOIN pg_temp.billing_new_documents n ON n.account_id = d.account_id AND n.currency = d.currency
		WHERE d.item = 'line'$run$);

	IF doc_ids IS NOT NULL THEN
		PERFORM billing.apply_account_credit(doc_accounts, doc_ids);
	END IF;

	UPDATE billing.invoice_batch b
	SET accounts = b.accounts + (SELECT count(DISTINCT n.account_id) FROM billing_new_documents n),
		invoices = b.invoices + (SELECT count(*) FROM billing_new_documents n),
		lines = b.lines + (SELECT count(*) FROM billing_due d WHERE d.item = 'line'),
		total_amount = b.total_amount + (SELECT coalesce(sum(i.total), 0) FROM billing_new_documents n
										 JOIN billing.invoice i ON i.account_id = n.account_id AND i.invoice_id = n.invoice_id)
	WHERE b.batch_id = bill_accounts.batch_id;
END $$;
COMMENT ON FUNCTION billing.bill_accounts(date, boolean, bigint, bigint[]) IS
	'Bills the due work of the given accounts (NULL: all) into a batch: locks, lines, documents, posting, watermarks';

REVOKE EXECUTE ON FUNCTION billing.write_run_rows(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.write_run_rows(regclass, text) TO billing_admin;
