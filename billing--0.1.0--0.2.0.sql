-- billing 0.1.0 -> 0.2.0.  Every change here is also in src/sql (which builds
-- billing--0.2.0.sql); scripts/test.sh (suite "upgrade") checks that a 0.1.0
-- database updated by this script has the same catalog as a fresh 0.2.0.

\echo Use "ALTER EXTENSION billing UPDATE TO '0.2.0'" to load this file. \quit

-- Watermark updates are HOT: no index on a watermark column, room on each
-- page (pages written from now on; VACUUM FULL applies it to existing ones).
DROP INDEX billing.subscription_next_due_idx;
DROP INDEX billing.subscription_new_idx;
DROP INDEX billing.subscription_reconcile_idx;
ALTER TABLE billing.subscription SET (fillfactor = 50);

-- Direct updates of subscription terms are refused by an AFTER trigger: a
-- BEFORE ROW UPDATE trigger made every watermark update lock its row first.
DROP TRIGGER subscription_guard_terms ON billing.subscription;
CREATE OR REPLACE FUNCTION billing.subscription_guard_terms() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF pg_catalog.current_setting('billing.timeline_write', true) IS DISTINCT FROM 'on' THEN
		RAISE EXCEPTION 'terms of subscription % change only through billing.change_subscription() or billing.cancel_subscription()',
			OLD.subscription_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'price_id, quantity, unit_amount, start_date, end_date, bill_cycle_day and account_id are kept by the dated timeline.';
	END IF;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION billing.subscription_guard_terms() IS 'Trigger: rejects direct updates of subscription terms';

CREATE TRIGGER subscription_guard_terms
	AFTER UPDATE OF price_id, quantity, unit_amount, start_date, end_date, bill_cycle_day, account_id
	ON billing.subscription
	FOR EACH ROW
	WHEN ((OLD.price_id, OLD.quantity, OLD.unit_amount, OLD.start_date, OLD.end_date, OLD.bill_cycle_day, OLD.account_id)
		  IS DISTINCT FROM (NEW.price_id, NEW.quantity, NEW.unit_amount, NEW.start_date, NEW.end_date, NEW.bill_cycle_day, NEW.account_id))
	EXECUTE FUNCTION billing.subscription_guard_terms();

-- Key checks do not lock parents this transaction wrote, and hash-join the
-- parents of a large statement; a run updates its watermarks before writing
-- its start terms and lines;
-- bulk payments sort in memory.
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
	-- its totals: the only way billing.invoice_line_guard_insert lets them in
	INSERT INTO billing.invoice_line
		(account_id, invoice_id, line_number, subscription_id, price_id, kind, service_period, cycle_period,
		 quantity, unit_amount, amount, tax_amount, description)
	SELECT d.account_id, n.invoice_id, d.line_number, d.subscription_id, d.price_id, d.kind, d.service_period,
		   d.cycle_period, d.quantity, d.unit_amount, d.amount, d.tax_amount, d.description
	FROM billing_due d
	JOIN billing_new_documents n ON n.account_id = d.account_id AND n.currency = d.currency
	WHERE d.item = 'line'
	ORDER BY d.account_id, d.currency, d.line_number;

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

CREATE OR REPLACE FUNCTION billing.record_payments(account_ids bigint[], amounts numeric[], received_dates date[] DEFAULT NULL,
										payment_references text[] DEFAULT NULL, methods text[] DEFAULT NULL,
										auto_apply boolean DEFAULT true)
	RETURNS SETOF billing.payment
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
-- the running sums over open documents sort a row per document and payment:
-- in memory at 16MB for 100,000 payments (4MB spilled every sort to disk)
SET work_mem = '16MB'
AS $$
DECLARE
	n int := coalesce(cardinality(account_ids), 0);
	-- per element, in array order
	e_account bigint[];
	e_amount numeric[];		-- at the currency's scale
	e_currency text[];
	e_payment bigint[];		-- the payment the element records or names again
	e_new boolean[];
	e_first int[];			-- the first element with the same account and reference
	new_ids bigint[];
	bad_ord int;			-- the first bad element, its problem and the payment its reference names
	bad_problem text;
	recorded_amount numeric;
	recorded_on date;
	recorded_currency text;
	element text;
	msg text;
	det text;
	plan billing.allocation[];
	hemmed int[];
	k int;
	alloc billing.allocation;
	room numeric;
BEGIN
	IF auto_apply IS NULL THEN
		RAISE EXCEPTION 'received_on and auto_apply of a payment must not be NULL' USING ERRCODE = 'null_value_not_allowed',
			DETAIL = 'auto_apply is NULL';
	END IF;
	IF coalesce(cardinality(amounts), 0) <> n OR cardinality(received_dates) <> n OR cardinality(payment_references) <> n
	   OR cardinality(methods) <> n THEN
		RAISE EXCEPTION 'the arrays of record_payments must have the same length'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('account_ids %s, amounts %s, received_dates %s, payment_references %s, methods %s elements',
								  n, coalesce(cardinality(amounts), 0), coalesce(cardinality(received_dates)::text, 'NULL'),
								  coalesce(cardinality(payment_references)::text, 'NULL'),
								  coalesce(cardinality(methods)::text, 'NULL'));
	END IF;
	IF n = 0 THEN
		RETURN;
	END IF;
	received_dates := coalesce(received_dates, array_fill(CURRENT_DATE, ARRAY[n]));
	payment_references := coalesce(payment_references, array_fill(NULL::text, ARRAY[n]));
	methods := coalesce(methods, array_fill(NULL::text, ARRAY[n]));

	PERFORM billing.lock_accounts(account_ids);

	-- every element with what it records and its first problem, in the order
	-- record_payment checks them; a reference names the payment recorded
	-- before the call or by the first element that uses it
	SELECT array_agg(c.account_id ORDER BY c.ord), array_agg(c.money ORDER BY c.ord),
		   array_agg(c.currency ORDER BY c.ord), array_agg(c.recorded_id ORDER BY c.ord),
		   array_agg(c.is_new ORDER BY c.ord), array_agg(c.first_ord ORDER BY c.ord),
		   min(c.ord) FILTER (WHERE c.problem IS NOT NULL),
		   (array_agg(c.problem ORDER BY c.ord) FILTER (WHERE c.problem IS NOT NULL))[1],
		   (array_agg(c.recorded_amount ORDER BY c.ord) FILTER (WHERE c.problem IS NOT NULL))[1],
		   (array_agg(c.recorded_on ORDER BY c.ord) FILTER (WHERE c.problem IS NOT NULL))[1],
		   (array_agg(c.recorded_currency ORDER BY c.ord) FILTER (WHERE c.problem IS NOT NULL))[1]
	INTO e_account, e_amount, e_currency, e_payment, e_new, e_first,
		 bad_ord, bad_problem, recorded_amount, recorded_on, recorded_currency
	FROM (SELECT e.*,
				 CASE WHEN e.received_on IS NULL THEN 'received_on'
					  WHEN e.currency IS NULL THEN 'account'
					  WHEN e.amount IS NULL OR e.amount <= 0 OR e.money <> e.amount THEN 'amount'
					  WHEN NOT e.is_new AND (e.recorded_amount <> e.money OR e.recorded_on <> e.received_on) THEN 'reference'
				 END AS problem
		  FROM (SELECT x.ord::int AS ord, x.account_id, x.amount, x.received_on, x.reference, x.method, a.currency,
					   billing.round_money(x.amount, a.currency) AS money,
					   p.payment_id AS recorded_id,
					   coalesce(p.amount, first_value(billing.round_money(x.amount, a.currency)) OVER w) AS recorded_amount,
					   coalesce(p.received_on, first_value(x.received_on) OVER w) AS recorded_on,
					   coalesce(p.currency, a.currency) AS recorded_currency,
					   p.payment_id IS NULL AND (x.reference IS NULL OR first_value(x.ord) OVER w = x.ord) AS is_new,
					   first_value(x.ord) OVER w AS first_ord
				FROM unnest(account_ids, amounts, received_dates, payment_references, methods) WITH ORDINALITY
					 AS x (account_id, amount, received_on, reference, method, ord)
				LEFT JOIN billing.account a ON a.account_id = x.account_id
				LEFT JOIN billing.payment p ON p.account_id = x.account_id AND p.reference = x.reference
				WINDOW w AS (PARTITION BY x.account_id, x.reference ORDER BY x.ord)) e) c;

	IF bad_ord IS NOT NULL THEN
		element := format('element %s of %s: account %s, amount %s, received on %s, reference %s', bad_ord, n,
						  coalesce(account_ids[bad_ord]::text, 'NULL'), coalesce(amounts[bad_ord]::text, 'NULL'),
						  coalesce(received_dates[bad_ord]::text, 'NULL'), coalesce(payment_references[bad_ord], 'NULL'));
		CASE bad_problem
		WHEN 'received_on' THEN
			RAISE EXCEPTION 'received_on and auto_apply of a payment must not be NULL'
				USING ERRCODE = 'null_value_not_allowed', DETAIL = element;
		WHEN 'account' THEN
			RAISE EXCEPTION 'account % does not exist', account_ids[bad_ord]
				USING ERRCODE = 'invalid_parameter_value', DETAIL = element;
		WHEN 'amount' THEN
			BEGIN	-- the error check_money_amount raises, with the element named
				PERFORM billing.check_money_amount(amounts[bad_ord], e_currency[bad_ord], 'payment amount');
			EXCEPTION WHEN invalid_parameter_value THEN
				GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
				RAISE EXCEPTION '%', msg USING ERRCODE = 'invalid_parameter_value',
					DETAIL = concat_ws('; ', nullif(det, ''), element);
			END;
		ELSE
			RAISE EXCEPTION 'payment reference "%" of account % is already used', payment_references[bad_ord],
				account_ids[bad_ord]
				USING ERRCODE = 'unique_violation',
					  DETAIL = format('recorded: %s %s received %s; now: %s received %s; %s', recorded_amount,
									  recorded_currency, recorded_on, e_amount[bad_ord], received_dates[bad_ord], element);
		END CASE;
	END IF;

	-- new payments numbered in array order; a repeated reference names the
	-- payment recorded before the call or by the element that first used it
	new_ids := ARRAY(SELECT CASE WHEN e_new[o.ord] THEN nextval('billing.payment_payment_id_seq') END
					 FROM generate_series(1, n) AS o (ord) ORDER BY o.ord);
	e_payment := ARRAY(SELECT CASE WHEN e_new[o.ord] THEN new_ids[o.ord] ELSE coalesce(e_payment[o.ord], new_ids[e_first[o.ord]]) END
					   FROM generate_series(1, n) AS o (ord) ORDER BY o.ord);
	INSERT INTO billing.payment AS p (payment_id, account_id, amount, currency, received_on, method, reference)
	SELECT x.payment_id, x.account_id, x.amount, x.currency, x.received_on, x.method, x.reference
	FROM unnest(e_payment, e_account, e_amount, e_currency, received_dates, methods, payment_references, e_new)
		 AS x (payment_id, account_id, amount, currency, received_on, method, reference, is_new)
	WHERE x.is_new
	ORDER BY x.payment_id;

	IF auto_apply AND NOT EXISTS (
		-- no document of these accounts was unapplied after the earliest
		-- payment's date: every allocation is dated as planned
		SELECT 1 FROM billing.allocation r
		WHERE r.account_id = ANY (account_ids) AND r.reverses_allocation_id IS NOT NULL
		  AND r.allocated_on > (SELECT min(d) FROM unnest(received_dates) AS d)) THEN
		INSERT INTO billing.allocation AS a (account_id, invoice_id, payment_id, amount, allocated_on)
		SELECT x.account_id, x.invoice_id, x.payment_id, x.amount, x.allocated_on
		FROM billing.new_payment_allocations(e_account, e_payment, e_currency, received_dates, e_amount, e_new) x;
	ELSIF auto_apply THEN
		plan := ARRAY(SELECT x FROM billing.new_payment_allocations(e_account, e_payment, e_currency, received_dates,
																	e_amount, e_new) x);
		-- a document unapplied after an allocation's date may not have its open
		-- amount free on every date from then on: date those allocations as
		-- apply_source does, in order, counting the ones planned before them
		hemmed := ARRAY(
			SELECT x.k
			FROM unnest(plan) WITH ORDINALITY AS x (allocation_id, account_id, invoice_id, payment_id, credit_note_id,
													amount, allocated_on, reverses_allocation_id, created_at, k)
			JOIN (SELECT r.account_id, r.invoice_id, max(r.allocated_on) AS last_reversal
				  FROM billing.allocation r
				  WHERE r.account_id = ANY (account_ids) AND r.reverses_allocation_id IS NOT NULL
				  GROUP BY r.account_id, r.invoice_id) r
			  ON r.account_id = x.account_id AND r.invoice_id = x.invoice_id AND r.last_reversal > x.allocated_on
			ORDER BY x.k);
		FOREACH k IN ARRAY hemmed LOOP
			alloc := plan[k];
			room := (SELECT i.total - max(c.used)
					 FROM billing.invoice i,
						  LATERAL (SELECT t.day, sum(t.amount) OVER (ORDER BY t.day) AS used
								   FROM (SELECT a.allocated_on, a.amount FROM billing.allocation a
										 WHERE a.account_id = alloc.account_id AND a.invoice_id = alloc.invoice_id
										 UNION ALL
										 SELECT q.allocated_on, q.amount FROM unnest(plan[1:k - 1]) q
										 WHERE q.account_id = alloc.account_id AND q.invoice_id = alloc.invoice_id
										 UNION ALL
										 SELECT alloc.allocated_on, 0) AS t (day, amount)) c
					 WHERE i.account_id = alloc.account_id AND i.invoice_id = alloc.invoice_id
					   AND c.day >= alloc.allocated_on
					 GROUP BY i.total);
			IF room < alloc.amount THEN
				plan[k].allocated_on := greatest(alloc.allocated_on,
					(SELECT max(a.allocated_on) FROM billing.allocation a
					 WHERE a.account_id = alloc.account_id AND a.invoice_id = alloc.invoice_id),
					(SELECT max(q.allocated_on) FROM unnest(plan[1:k - 1]) q
					 WHERE q.account_id = alloc.account_id
					   AND (q.invoice_id = alloc.invoice_id OR q.payment_id = alloc.payment_id)));
			END IF;
		END LOOP;

		INSERT INTO billing.allocation AS a (account_id, invoice_id, payment_id, amount, allocated_on)
		SELECT x.account_id, x.invoice_id, x.payment_id, x.amount, x.allocated_on
		FROM unnest(plan) WITH ORDINALITY AS x (allocation_id, account_id, invoice_id, payment_id, credit_note_id,
												amount, allocated_on, reverses_allocation_id, created_at, k)
		ORDER BY x.k;
	END IF;

	RETURN QUERY
	SELECT p.* FROM unnest(e_account, e_payment) WITH ORDINALITY AS x (account_id, payment_id, ord)
	JOIN billing.payment p ON p.account_id = x.account_id AND p.payment_id = x.payment_id
	ORDER BY x.ord;
END $$;
COMMENT ON FUNCTION billing.record_payments(bigint[], numeric[], date[], text[], text[], boolean) IS
	'Records many payments at once (element i: account_ids[i], amounts[i], received_dates[i] (NULL array: today), payment_references[i], methods[i]) exactly as record_payment called for each in array order, and by default applies them to open documents oldest due first; all or nothing';


-- Payments join the tables whose foreign keys are checked per statement.
DO $$
DECLARE
	t regclass;
	tg name;
BEGIN
	FOREACH t IN ARRAY ARRAY['billing.payment']::regclass[]
	LOOP
		EXECUTE format('CREATE TRIGGER check_foreign_keys_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
					   'FOR EACH STATEMENT EXECUTE FUNCTION billing.check_foreign_keys()', t);
		EXECUTE format('CREATE TRIGGER check_foreign_keys_update AFTER UPDATE ON %s REFERENCING NEW TABLE AS new_rows '
					   'FOR EACH STATEMENT EXECUTE FUNCTION billing.check_foreign_keys()', t);
		-- the child-side per-row checks these triggers replace
		FOR tg IN SELECT g.tgname FROM pg_catalog.pg_trigger g
				  JOIN pg_catalog.pg_constraint c ON c.oid = g.tgconstraint
				  WHERE g.tgrelid = t AND c.contype = 'f' AND c.conrelid = t
					AND g.tgfoid IN ('pg_catalog."RI_FKey_check_ins"'::pg_catalog.regproc,
									 'pg_catalog."RI_FKey_check_upd"'::pg_catalog.regproc)
		LOOP
			EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', t, tg);
		END LOOP;
	END LOOP;
END $$;

-- The engine reads start terms from the timeline once a subscription was
-- billed, and carries reconcile_from through its steps.
CREATE OR REPLACE FUNCTION billing.due_items(target_date date, account_ids bigint[] DEFAULT NULL, full_history boolean DEFAULT false)
	RETURNS SETOF billing.due_item
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- Joins on (account_id, subscription_id) are correlated and the planner
-- estimates them at one row; nested loops over the materialized steps below
-- would then be quadratic.  Base tables are read by LATERAL index lookups
-- (which run as nested loops regardless), the steps are joined by hashing.
SET enable_nestloop = off
-- ... which inflates plan costs past the JIT thresholds: compiling this plan
-- would take seconds and save nothing.
SET jit = off
-- Its sorts and hashes hold one row per subscription due: at the default 4MB
-- they spill to disk from a few thousand subscriptions on.  16MB (32MB per
-- hash) keeps a run's private memory under 512MB with its dozen hashes,
-- sorts and tuplestores at once (32MB peaked at 549MB on a 1M-line run).
SET work_mem = '16MB'
AS $$
BEGIN
	RETURN QUERY
	WITH
	-- subscriptions with work due: a period due, a change to reconcile, or a first bill
	candidate AS (
		SELECT s.account_id, s.subscription_id, s.start_date, s.end_date, s.prorate_final_period,
			   s.billed_through, s.reconcile_from, s.next_due_date, s.last_target_date,
			   s.price_id, s.quantity, s.unit_amount,
			   billing.start_cycle_day(s.bill_cycle_day, a.bill_cycle_day, s.start_date) AS start_cycle_day,
			   CASE WHEN full_history THEN s.start_date
					ELSE least(coalesce(s.billed_through, s.start_date), coalesce(s.reconcile_from, 'infinity')) END AS window_from
		FROM billing.subscriptions_of(account_ids) s
		JOIN billing.account a ON a.account_id = s.account_id
		WHERE (full_history OR billing.has_work_due(s.start_date, s.next_due_date, s.reconcile_from, s.last_target_date, target_date))
		  AND s.start_date <= target_date
		  AND NOT a.billing_hold AND NOT s.billing_hold
		  AND (s.next_bill_date_override IS NULL OR s.next_bill_date_override <= target_date)
	),
	-- the timeline as segments [seg_start, seg_end) of constant terms
	segment_raw AS (
		SELECT c.account_id, c.subscription_id, c.window_from, c.end_date, c.prorate_final_period, c.reconcile_from,
			   ch.change_id, ch.price_id, ch.quantity, ch.unit_amount AS override_amount, ch.cycle_day,
			   ch.effective_date AS seg_start,
			   least(lead(ch.effective_date) OVER w, c.end_date) AS seg_end,
			   p.currency, p.charge_type, p.billing_interval, p.interval_count, p.billing_timing, p.proration,
			   billing.pricing_amount(p.pricing_model, coalesce(ch.unit_amount, p.unit_amount), p.package_size,
									  p.tiers, ch.quantity) AS rate,
			   p.pricing_model, coalesce(ch.unit_amount, p.unit_amount) AS unit_amount,
			   p.package_size, p.tiers, pr.name AS product_name
		FROM candidate c
		-- index lookups per candidate: the cost follows the subscriptions due
		CROSS JOIN LATERAL (
			SELECT ch.change_id, ch.price_id, ch.quantity, ch.unit_amount, ch.cycle_day, ch.effective_date
			FROM billing.subscription_change ch
			WHERE ch.account_id = c.account_id AND ch.subscription_id = c.subscription_id AND ch.kind <> 'cancel'
			UNION ALL
			-- start terms not yet written to the timeline: the subscription row's
			-- (a run writes them when it first bills a subscription, so only
			-- subscriptions never billed can lack them)
			SELECT 0, c.price_id, c.quantity, c.unit_amount, c.start_cycle_day, c.start_date
			WHERE c.last_target_date IS NULL
			  AND NOT EXISTS (SELECT 1 FROM billing.subscription_change ch
							  WHERE ch.account_id = c.account_id AND ch.subscription_id = c.subscription_id
								AND ch.kind = 'start')) ch
		JOIN billing.price p ON p.price_id = ch.price_id
		JOIN billing.product pr ON pr.product_id = p.product_id
		WINDOW w AS (PARTITION BY c.account_id, c.subscription_id ORDER BY ch.effective_date, ch.change_id)
	),
	segment AS (
		SELECT r.*,
			   -- a new cycle starts where the interval or timing changes
			   sum(r.new_cycle) OVER (PARTITION BY r.account_id, r.subscription_id ORDER BY r.seg_start, r.change_id) AS cycle_no,
			   -- a cycle keeps the cycle day of its first segment
			   CASE WHEN r.new_cycle = 1 THEN r.cycle_day END AS first_cycle_day
		FROM (SELECT r.*,
					 CASE WHEN (r.charge_type, r.billing_interval, r.interval_count, r.billing_timing)
							   IS NOT DISTINCT FROM
							   (lag(r.charge_type) OVER w, lag(r.billing_interval) OVER w,
								lag(r.interval_count) OVER w, lag(r.billing_timing) OVER w)
						  THEN 0 ELSE 1 END AS new_cycle
			  FROM segment_raw r
			  WHERE r.seg_end IS NULL OR r.seg_end > r.seg_start
			  WINDOW w AS (PARTITION BY r.account_id, r.subscription_id ORDER BY r.seg_start, r.change_id)) r
	),
	-- terms with one cycle: [cycle_start, cycle_end), cycle day of their first segment
	cycle AS (
		SELECT g.account_id, g.subscription_id, g.cycle_no, g.window_from, g.end_date, g.prorate_final_period,
			   g.reconcile_from, g.currency, g.charge_type, g.billing_interval, g.interval_count, g.billing_timing, g.proration,
			   min(g.seg_start) AS cycle_start,
			   CASE WHEN bool_or(g.seg_end IS NULL) THEN NULL ELSE max(g.seg_end) END AS cycle_end,
			   max(g.first_cycle_day) AS cycle_day
		FROM segment g
		GROUP BY g.account_id, g.subscription_id, g.cycle_no, g.window_from, g.end_date, g.prorate_final_period,
				 g.reconcile_from, g.currency, g.charge_type, g.billing_interval, g.interval_count, g.billing_timing, g.proration
	),
	-- billing periods of recurring and usage terms in the window, up to the target date
	period AS (
		SELECT y.*, cp.period, cp.whole,
			   CASE y.billing_timing WHEN 'in_advance' THEN billing.period_start(cp.period) <= target_date
									 ELSE billing.period_end(cp.period) <= target_date END AS due,
			   -- charged as a full period: proration none, or the final period of a cancel without proration
			   (y.proration = 'none'
				OR (NOT y.prorate_final_period AND billing.period_end(cp.period) = y.end_date)) AS full_period
		FROM cycle y,
			 LATERAL billing.cycle_periods(y.cycle_start, y.cycle_day, y.billing_interval, y.interval_count,
										   y.window_from, y.cycle_end, target_date) cp
		WHERE y.charge_type <> 'one_time'
	),
	-- expected amount of each due period, multiplied first and rounded once
	expected_recurring AS (
		SELECT pe.account_id, pe.subscription_id, pe.currency, pe.whole, pe.reconcile_from,
			   min(billing.period_start(pe.period)) AS key_start,
			   max(billing.period_end(pe.period)) AS key_end,
			   billing.round_money(
				   CASE WHEN bool_or(pe.full_period)
						THEN max(g.rate) FILTER (WHERE g.seg_start <= billing.period_start(pe.period))
						ELSE billing.prorate_agg(g.rate,
												 billing.billing_period(greatest(g.seg_start, billing.period_start(pe.period)),
																		least(coalesce(g.seg_end, 'infinity'), billing.period_end(pe.period))),
												 pe.whole) END,
				   pe.currency) AS expected,
			   -- the part before the change being reconciled: unchanged by it
			   billing.round_money(coalesce(
				   CASE WHEN bool_or(pe.full_period) THEN 0
						ELSE billing.prorate_agg(g.rate,
												 billing.billing_period(greatest(g.seg_start, billing.period_start(pe.period)),
																		least(coalesce(g.seg_end, 'infinity'), billing.period_end(pe.period), pe.reconcile_point)),
												 pe.whole)
							 FILTER (WHERE greatest(g.seg_start, billing.period_start(pe.period)) < pe.reconcile_point) END, 0),
				   pe.currency) AS unchanged,
			   -- the terms of the period's last segment (one ordered aggregate, not four)
			   (array_agg(ROW(g.price_id, g.quantity, g.unit_amount, g.product_name)::billing.period_terms
						  ORDER BY g.seg_start DESC))[1] AS terms
		FROM (SELECT pe.*, billing.reconcile_point(pe.whole, pe.reconcile_from) AS reconcile_point
			  FROM period pe
			  WHERE pe.due AND pe.charge_type = 'recurring') pe
		JOIN segment g ON g.account_id = pe.account_id AND g.subscription_id = pe.subscription_id
					  AND g.cycle_no = pe.cycle_no
					  AND g.seg_start < billing.period_end(pe.period)
					  AND (g.seg_end IS NULL OR g.seg_end > billing.period_start(pe.period))
		GROUP BY pe.account_id, pe.subscription_id, pe.currency, pe.whole, pe.reconcile_from
	),
	-- usage: quantities of the period's days (account time zone), rated over the whole period
	expected_usage AS (
		SELECT pe.account_id, pe.subscription_id, pe.currency, pe.whole, pe.period,
			   billing.round_money(billing.pricing_amount(g.pricing_model, g.unit_amount, g.package_size, g.tiers, u.used),
								   pe.currency) AS expected,
			   u.used, g.price_id, g.unit_amount, g.product_name
		FROM period pe
		JOIN segment g ON g.account_id = pe.account_id AND g.subscription_id = pe.subscription_id
					  AND g.cycle_no = pe.cycle_no
					  AND g.seg_start <= billing.period_start(pe.period)
					  AND (g.seg_end IS NULL OR g.seg_end > billing.period_start(pe.period))
		CROSS JOIN LATERAL (
			SELECT coalesce(sum(ur.quantity), 0) AS used
			FROM billing.usage_record ur
			WHERE ur.account_id = pe.account_id AND ur.subscription_id = pe.subscription_id
			  AND ur.usage_date >= billing.period_start(pe.period) AND ur.usage_date < billing.period_end(pe.period)) u
		WHERE pe.due AND pe.charge_type = 'usage'
	),
	-- one-time charges: once, when their start has come
	expected_one_time AS (
		SELECT g.account_id, g.subscription_id, g.currency,
			   billing.round_money(g.rate, g.currency) AS expected,
			   g.price_id, g.quantity, g.unit_amount, g.product_name
		FROM segment g
		WHERE g.charge_type = 'one_time' AND g.seg_start <= target_date
	),
	-- non-void lines of the candidates: period lines in the window, and one-time charges
	billed_line AS (
		SELECT l.account_id, l.subscription_id, l.kind, l.cycle_period, l.service_period, l.amount, l.price_id,
			   d.currency, c.reconcile_from
		FROM candidate c
		-- index lookups per candidate (OFFSET 0 keeps the planner from turning
		-- them into a hash join over every line ever billed: the cost follows
		-- the subscriptions due, not the history)
		CROSS JOIN LATERAL (
			SELECT l.* FROM billing.invoice_line l
			WHERE l.account_id = c.account_id AND l.subscription_id = c.subscription_id
			  AND (l.kind = 'one_time'
				   OR (l.cycle_period IS NOT NULL AND billing.period_end(l.cycle_period) > c.window_from))
			OFFSET 0) l
		CROSS JOIN LATERAL (SELECT i.status, i.currency FROM billing.invoice i
							WHERE i.account_id = l.account_id AND i.invoice_id = l.invoice_id
							OFFSET 0) d
		WHERE d.status <> 'void'
	),
	-- what they hold per period key ...
	billed AS (
		SELECT l.account_id, l.subscription_id, l.cycle_period AS whole, l.reconcile_from,
			   sum(l.amount) AS billed, count(*) AS lines, max(l.currency) AS currency, max(l.price_id) AS price_id,
			   min(billing.period_start(l.service_period)) AS billed_start,
			   max(billing.period_end(l.service_period)) AS billed_end
		FROM billed_line l
		WHERE l.cycle_period IS NOT NULL
		GROUP BY l.account_id, l.subscription_id, l.cycle_period, l.reconcile_from
	),
	-- ... and for one-time charges
	billed_one_time AS (
		SELECT l.account_id, l.subscription_id, sum(l.amount) AS billed, max(l.currency) AS currency,
			   max(l.price_id) AS price_id
		FROM billed_line l
		WHERE l.kind = 'one_time'
		GROUP BY l.account_id, l.subscription_id
	),
	-- billed keys reconciled as recurring: not usage keys, not keys whose period is not yet due
	billed_recurring AS (
		SELECT b.* FROM billed b
		WHERE NOT EXISTS (SELECT 1 FROM period pe
						  WHERE pe.account_id = b.account_id AND pe.subscription_id = b.subscription_id
							AND pe.whole OPERATOR(billing.=) b.whole AND (NOT pe.due OR pe.charge_type = 'usage'))
	),
	recurring_diff AS (
		SELECT k.*,
			   -- never before the key's first billed or expected day
			   greatest(billing.reconcile_point(k.whole, k.reconcile_from),
						coalesce(k.key_start, k.billed_start, billing.period_start(k.whole))) AS rp
		FROM (SELECT coalesce(e.account_id, b.account_id) AS account_id,
					 coalesce(e.subscription_id, b.subscription_id) AS subscription_id,
					 coalesce(e.whole, b.whole) AS whole,
					 coalesce(e.currency, b.currency) AS currency,
					 coalesce(e.reconcile_from, b.reconcile_from) AS reconcile_from,
					 e.key_start, e.key_end, coalesce(e.expected, 0) AS expected, coalesce(e.unchanged, 0) AS unchanged,
					 coalesce((e.terms).price_id, b.price_id) AS price_id, (e.terms).quantity, (e.terms).unit_amount,
					 coalesce((e.terms).product_name, 'subscription ' || coalesce(e.subscription_id, b.subscription_id)) AS product_name,
					 coalesce(b.billed, 0) AS billed, coalesce(b.lines, 0) AS billed_lines, b.billed_start, b.billed_end,
					 coalesce(b.price_id, (e.terms).price_id) AS billed_price_id
			  FROM expected_recurring e
			  FULL JOIN billed_recurring b
				ON b.account_id = e.account_id AND b.subscription_id = e.subscription_id AND b.whole OPERATOR(billing.=) e.whole) k
	),
	line AS (
		-- first bill of a period (or re-bill after a void): one recurring line
		SELECT d.account_id, d.subscription_id, d.currency, d.price_id, 'recurring'::text AS kind,
			   billing.billing_period(d.key_start, d.key_end) AS service_period, d.whole AS cycle_period,
			   d.quantity, d.unit_amount, d.expected AS amount,
			   d.product_name || ' ' || billing.billing_period(d.key_start, d.key_end)::text AS description,
			   d.key_start AS sort_date, 0 AS sort_seq
		FROM recurring_diff d
		WHERE d.billed_lines = 0 AND d.expected <> 0
		UNION ALL
		-- a billed period whose terms changed: credit what was billed for the
		-- days from the change on ...
		SELECT d.account_id, d.subscription_id, d.currency, d.billed_price_id, 'proration',
			   billing.billing_period(d.rp, CASE WHEN d.billed_end > d.rp THEN d.billed_end ELSE billing.period_end(d.whole) END),
			   d.whole, NULL, NULL, d.unchanged - d.billed,
			   'Unused time on ' || coalesce((SELECT pr.name FROM billing.price p JOIN billing.product pr ON pr.product_id = p.product_id
											 WHERE p.price_id = d.billed_price_id), d.product_name)
				   || ' from ' || d.rp::text,
			   d.rp, 1
		FROM recurring_diff d
		WHERE d.billed_lines > 0 AND d.expected <> d.billed AND d.unchanged - d.billed <> 0
		UNION ALL
		-- ... and charge the new terms for them
		SELECT d.account_id, d.subscription_id, d.currency, d.price_id, 'proration',
			   billing.billing_period(d.rp, CASE WHEN d.key_end > d.rp THEN d.key_end ELSE billing.period_end(d.whole) END),
			   d.whole, d.quantity, d.unit_amount, d.expected - d.unchanged,
			   'Remaining time on ' || d.product_name || ' from ' || d.rp::text,
			   d.rp, 2
		FROM recurring_diff d
		WHERE d.billed_lines > 0 AND d.expected <> d.billed AND d.expected - d.unchanged <> 0
		UNION ALL
		-- usage: the difference to what was billed for the period
		SELECT u.account_id, u.subscription_id, u.currency, u.price_id, 'usage',
			   u.period, u.whole, u.used, u.unit_amount, u.expected - coalesce(b.billed, 0),
			   u.product_name || ' usage ' || u.period::text,
			   billing.period_start(u.period), 0
		FROM expected_usage u
		LEFT JOIN billed b ON b.account_id = u.account_id AND b.subscription_id = u.subscription_id AND b.whole OPERATOR(billing.=) u.whole
		WHERE u.expected <> coalesce(b.billed, 0)
		UNION ALL
		-- one-time charges
		SELECT coalesce(o.account_id, b.account_id), coalesce(o.subscription_id, b.subscription_id),
			   coalesce(o.currency, b.currency), coalesce(o.price_id, b.price_id), 'one_time',
			   NULL, NULL, o.quantity, o.unit_amount, coalesce(o.expected, 0) - coalesce(b.billed, 0),
			   coalesce(o.product_name, 'subscription ' || b.subscription_id), NULL, 0
		FROM expected_one_time o
		FULL JOIN billed_one_time b ON b.account_id = o.account_id AND b.subscription_id = o.subscription_id
		WHERE coalesce(o.expected, 0) <> coalesce(b.billed, 0)
	),
	watermark AS (
		SELECT c.account_id, c.subscription_id,
			   coalesce(max(billing.period_end(pe.period)) FILTER (WHERE pe.due), c.billed_through) AS billed_through,
			   CASE
				   -- a not-yet-due period in arrears falls due at its end
				   WHEN bool_or(NOT pe.due) THEN min(billing.period_end(pe.period)) FILTER (WHERE NOT pe.due)
				   -- the period after the last one covered starts at its end
				   WHEN count(pe.period) > 0 AND max(billing.period_end(pe.period)) < coalesce(c.end_date, 'infinity')
					   THEN max(billing.period_end(pe.period))
				   -- every period through the end date is billed
				   WHEN count(pe.period) > 0 THEN NULL
				   -- no period in the window yet (e.g. a change dated ahead): keep what was
				   -- scheduled, or the start of terms not yet begun (one-time charges)
				   ELSE least(CASE WHEN c.next_due_date > target_date THEN c.next_due_date END,
							  (SELECT min(g.seg_start) FROM segment g
							   WHERE g.account_id = c.account_id AND g.subscription_id = c.subscription_id
								 AND g.seg_start > target_date))
			   END AS next_due_date,
			   c.reconcile_from
		FROM candidate c
		LEFT JOIN period pe ON pe.account_id = c.account_id AND pe.subscription_id = c.subscription_id
		GROUP BY c.account_id, c.subscription_id, c.billed_through, c.end_date, c.reconcile_from, c.next_due_date
	),
	-- tax: one effective rate per region and tax code on the document date
	tax AS (
		SELECT x.tax_region, x.tax_code, billing.effective_tax_rate(x.tax_region, x.tax_code, target_date) AS rate
		FROM (SELECT DISTINCT a.tax_region, pr.tax_code
			  FROM line l
			  JOIN billing.account a ON a.account_id = l.account_id
			  JOIN billing.price p ON p.price_id = l.price_id
			  JOIN billing.product pr ON pr.product_id = p.product_id
			  WHERE NOT a.tax_exempt AND a.tax_region IS NOT NULL) x
	)
	SELECT 'line'::text, l.account_id, l.subscription_id, l.currency, l.price_id, l.kind, l.service_period,
		   l.cycle_period, l.quantity, l.unit_amount, l.amount,
		   CASE WHEN a.tax_exempt OR t.rate IS NULL THEN 0
				ELSE billing.round_money(l.amount * t.rate, l.currency) END,
		   (row_number() OVER (PARTITION BY l.account_id, l.currency
							   ORDER BY l.subscription_id, l.sort_date NULLS FIRST, l.sort_seq))::int,
		   l.description, l.sort_date, l.sort_seq,
		   NULL::date, NULL::date, NULL::date
	FROM line l
	JOIN billing.account a ON a.account_id = l.account_id
	LEFT JOIN billing.price p ON p.price_id = l.price_id
	LEFT JOIN billing.product pr ON pr.product_id = p.product_id
	LEFT JOIN tax t ON t.tax_region = a.tax_region AND t.tax_code IS NOT DISTINCT FROM pr.tax_code
	UNION ALL
	SELECT 'watermark', w.account_id, w.subscription_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		   NULL, NULL, NULL, w.billed_through, w.next_due_date, w.reconcile_from
	FROM watermark w;
END $$;
COMMENT ON FUNCTION billing.due_items(date, bigint[], boolean) IS
	'What a run with this target date would bill: lines (expected minus billed per subscription period) and each candidate subscription''s new watermarks; full_history ignores the watermarks (used by check_integrity). Writes nothing';


-- Every stored number is finite: one check per numeric column (an existing
-- NaN or Infinity makes this update fail; correct the row, then update).
DO $$
DECLARE
	col record;
BEGIN
	FOR col IN
		SELECT c.oid::regclass AS tbl, c.relname, a.attname
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
		WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind = 'r'
		  AND a.atttypid = 'pg_catalog.numeric'::pg_catalog.regtype AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY c.relname, a.attnum
	LOOP
		-- NaN compares above Infinity, so one range excludes all three
		EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%I > ''-Infinity'' AND %I < ''Infinity'')',
					   col.tbl, col.relname || '_' || col.attname || '_finite', col.attname, col.attname);
	END LOOP;
END $$;
