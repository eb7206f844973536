-- billing 0.2.0 -> 0.3.0.  Every change here is also in src/sql (which builds
-- billing--0.3.0.sql); scripts/test.sh (suite "upgrade") checks that a 0.2.0
-- database updated by this script has the same catalog as a fresh 0.3.0.

\echo Use "ALTER EXTENSION billing UPDATE TO '0.3.0'" to load this file. \quit

-- The pricing rule moves to C (src/pricing.c), shared with the engine.
CREATE OR REPLACE FUNCTION billing.pricing_amount(pricing_model text, unit_amount numeric, package_size numeric,
									   tiers jsonb, quantity numeric)
	RETURNS numeric
	AS 'MODULE_PATHNAME', 'billing_pricing_amount' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION billing.pricing_amount(text, numeric, numeric, jsonb, numeric) IS
	'Unrounded amount of a quantity for one full period under a pricing model (flat, per_unit, package, graduated, volume); 0 for quantity 0';

-- The engine reconciles each subscription in C (src/due_items.c) instead of a
-- dozen SQL steps; its SQL helpers go.
CREATE OR REPLACE FUNCTION billing.due_items(target_date date, account_ids bigint[] DEFAULT NULL, full_history boolean DEFAULT false)
	RETURNS SETOF billing.due_item
	AS 'MODULE_PATHNAME', 'billing_due_items' LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp
-- a run's statement is costed high; compiling it with JIT saves nothing
SET jit = off
-- the candidates are sorted by key once, and the result is a tuplestore:
-- 16MB keeps both in memory up to about 100,000 subscriptions, and a run's
-- private memory under 512MB at a million
SET work_mem = '16MB';
COMMENT ON FUNCTION billing.due_items(date, bigint[], boolean) IS
	'What a run with this target date would bill: lines (expected minus billed per subscription period) and each candidate subscription''s new watermarks; full_history ignores the watermarks (used by check_integrity). Writes nothing';
DROP FUNCTION billing.reconcile_point(billing.billing_period, date);
DROP TYPE billing.period_terms;

-- A run writes its lines in the order the engine returns them (no sort), and
-- marks its document and line inserts as its own: the statement-level
-- integrity triggers skip them (src/run_statements.c).
CREATE FUNCTION billing.trust_run_statements(on_off boolean) RETURNS boolean
	AS 'MODULE_PATHNAME', 'billing_trust_run_statements' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION billing.trust_run_statements(boolean) IS
	'Marks (true) or unmarks (false) the statements the current transaction runs next as an invoice run''s own writes, which the statement-level integrity triggers skip; only for a superuser, returns whether the mark is set';
CREATE FUNCTION billing.run_statement_trusted() RETURNS boolean
	AS 'MODULE_PATHNAME', 'billing_run_statement_trusted' LANGUAGE C STABLE;
COMMENT ON FUNCTION billing.run_statement_trusted() IS
	'Whether the statement being checked is an invoice run''s own write (see billing.trust_run_statements)';
CREATE OR REPLACE FUNCTION billing.check_foreign_keys() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	fk record;
	own_xid xid := pg_catalog.pg_current_xact_id()::xid;
	wanted bigint;
	own bigint;
	locked bigint;
	missing text;
	saved_nestloop text;
BEGIN
	-- an invoice run's own documents and lines: keys it holds or just wrote
	IF billing.run_statement_trusted() THEN
		RETURN NULL;
	END IF;
	-- A transition table has no statistics: the planner guesses a few thousand
	-- distinct keys and probes the parent's index once per key.  For a
	-- statement of many rows (a run's million lines: 1M probes, 9 s) one hash
	-- join over the parent is several times faster.
	IF (SELECT count(*) FROM new_rows) > 10000 THEN
		saved_nestloop := pg_catalog.current_setting('enable_nestloop');
		PERFORM pg_catalog.set_config('enable_nestloop', 'off', true);
	END IF;
	FOR fk IN SELECT * FROM billing.foreign_key_sql(TG_RELID)
	LOOP
		-- the distinct keys once (MATCH SIMPLE: a key with a NULL column refers
		-- to nothing), and how many of their parents this transaction wrote
		EXECUTE format('WITH k AS MATERIALIZED (SELECT DISTINCT %s FROM new_rows n WHERE %s) '
					   'SELECT (SELECT count(*) FROM k), '
					   '(SELECT count(*) FROM %s p WHERE (%s) IN (SELECT * FROM k) AND p.xmin OPERATOR(pg_catalog.=) $1)',
					   fk.child_cols, fk.complete, fk.parent, fk.parent_cols)
		INTO wanted, own USING own_xid;
		CONTINUE WHEN own = wanted;
		-- the others found and locked
		EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %s p WHERE (%s) IN (SELECT DISTINCT %s FROM new_rows n WHERE %s) '
					   'AND p.xmin OPERATOR(pg_catalog.<>) $1 FOR KEY SHARE OF p) x',
					   fk.parent, fk.parent_cols, fk.child_cols, fk.complete)
		INTO locked USING own_xid;
		CONTINUE WHEN own + locked = wanted;
		EXECUTE format('SELECT %s FROM new_rows n WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s) LIMIT 1',
					   fk.key_text, fk.complete, fk.parent, fk.joined)
		INTO missing;
		RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"', TG_TABLE_NAME, fk.conname
			USING ERRCODE = 'foreign_key_violation',
				  DETAIL = format('Key (%s)=(%s) is not present in table "%s".', fk.key_names, missing,
								  (SELECT relname FROM pg_catalog.pg_class WHERE oid = fk.parent)),
				  SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, CONSTRAINT = fk.conname;
	END LOOP;
	IF saved_nestloop IS NOT NULL THEN
		PERFORM pg_catalog.set_config('enable_nestloop', saved_nestloop, true);
	END IF;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION billing.check_foreign_keys() IS
	'Trigger: the foreign keys of the new or changed rows of a statement, checked in one join per key; parents not written by this transaction are locked FOR KEY SHARE';
CREATE OR REPLACE FUNCTION billing.invoice_line_guard_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	doc billing.invoice;
BEGIN
	-- an invoice run's lines: summed into its documents' totals by the run
	IF billing.run_statement_trusted() THEN
		RETURN NULL;
	END IF;
	-- A non-draft document may receive lines only when this statement brings
	-- all of them and they add up to its recorded totals: a pg_dump restore.
	SELECT i.* INTO doc
	FROM billing.invoice i
	JOIN (SELECT n.account_id, n.invoice_id, count(*) AS lines, sum(n.amount) AS amount, sum(n.tax_amount) AS tax
		  FROM new_lines n GROUP BY n.account_id, n.invoice_id) n
	  ON n.account_id = i.account_id AND n.invoice_id = i.invoice_id
	WHERE i.status <> 'draft'
	  AND (n.amount <> i.subtotal OR n.tax <> i.tax_total
		   OR n.lines <> (SELECT count(*) FROM billing.invoice_line l
						  WHERE l.account_id = i.account_id AND l.invoice_id = i.invoice_id))
	LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'cannot add lines to % %: it is %', replace(doc.document_type, '_', ' '), doc.document_number, doc.status
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('total %s %s dated %s', doc.total, doc.currency, doc.invoice_date);
	END IF;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION billing.invoice_line_guard_insert() IS 'Trigger: lines are added to drafts only';
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

	-- the documents and then the lines are the run's own statements: their
	-- keys are accounts it has locked, a batch, subscriptions and documents it
	-- has just written, and prices its timelines reference, so the integrity
	-- triggers skip them (billing.trust_run_statements)
	PERFORM billing.trust_run_statements(true);
	INSERT INTO billing.invoice AS i
		(invoice_id, account_id, batch_id, document_type, document_number, status, invoice_date, due_date, currency,
		 subtotal, tax_total, total, posted_at)
	SELECT n.invoice_id, n.account_id, bill_accounts.batch_id, n.document_type, num.document_number,
		   CASE WHEN auto_post THEN 'posted' ELSE 'draft' END,
		   target_date, billing.document_due_date(n.document_type, target_date, a.payment_terms_days), n.currency,
		   n.subtotal, n.tax_total, n.subtotal + n.tax_total,
		   CASE WHEN auto_post THEN pg_catalog.now() END
	FROM billing_new_documents n
	JOIN billing.account a ON a.account_id = n.account_id
	LEFT JOIN billing.number_documents(doc_accounts, doc_ids, doc_types) num
		   ON num.account_id = n.account_id AND num.invoice_id = n.invoice_id
	ORDER BY n.invoice_id;
	PERFORM billing.trust_run_statements(false);

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
	PERFORM billing.trust_run_statements(true);
	INSERT INTO billing.invoice_line
		(account_id, invoice_id, line_number, subscription_id, price_id, kind, service_period, cycle_period,
		 quantity, unit_amount, amount, tax_amount, description)
	SELECT d.account_id, n.invoice_id, d.line_number, d.subscription_id, d.price_id, d.kind, d.service_period,
		   d.cycle_period, d.quantity, d.unit_amount, d.amount, d.tax_amount, d.description
	FROM billing_due d
	JOIN billing_new_documents n ON n.account_id = d.account_id AND n.currency = d.currency
	WHERE d.item = 'line';
	PERFORM billing.trust_run_statements(false);

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

-- A subscription's lines by the day their period key ends: a run reads only
-- the lines of its window, not a subscription's whole history.
DROP INDEX billing.invoice_line_subscription_idx;
CREATE INDEX invoice_line_subscription_idx
	ON billing.invoice_line (account_id, subscription_id, coalesce(billing.period_end(cycle_period), 'infinity'))
	WHERE subscription_id IS NOT NULL;

-- the new functions get the grants every function of the schema has
-- (src/sql/99_security.sql)
REVOKE EXECUTE ON FUNCTION billing.trust_run_statements(boolean), billing.run_statement_trusted() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.trust_run_statements(boolean), billing.run_statement_trusted() TO billing_admin;
