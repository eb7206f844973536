-- billing 0.4.0 -> 0.5.0.  Every change here is also in src/sql (which builds
-- billing--0.5.0.sql); scripts/test.sh (suite "upgrade") checks that a 0.4.0
-- database updated by this script has the same catalog as a fresh 0.5.0.

\echo Use "ALTER EXTENSION billing UPDATE TO '0.5.0'" to load this file. \quit

-- record_payments: one sort for the elements' checks, and its sorts in memory.
CREATE OR REPLACE FUNCTION billing.record_payments(account_ids bigint[], amounts numeric[], received_dates date[] DEFAULT NULL,
										payment_references text[] DEFAULT NULL, methods text[] DEFAULT NULL,
										auto_apply boolean DEFAULT true)
	RETURNS SETOF billing.payment
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
-- the running sums over open documents sort a row per document and payment:
-- in memory at 32MB for 100,000 payments (the largest sort takes 23MB; at
-- 16MB two of them spilled to disk)
SET work_mem = '32MB'
AS $$
DECLARE
	n int := coalesce(cardinality(account_ids), 0);
	-- per element, in array order
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
	-- before the call or by the first element that uses it.  The aggregates
	-- take the elements in array order from the sorted subquery, with nothing
	-- between that could reorder them: one sort instead of one per aggregate
	-- (PostgreSQL 15 sorts the input of each aggregate with its own ORDER BY)
	SELECT array_agg(c.money), array_agg(c.currency), array_agg(c.recorded_id), array_agg(c.is_new),
		   array_agg(c.first_ord),
		   min(c.ord) FILTER (WHERE c.problem IS NOT NULL),
		   (array_agg(c.problem) FILTER (WHERE c.problem IS NOT NULL))[1],
		   (array_agg(c.recorded_amount) FILTER (WHERE c.problem IS NOT NULL))[1],
		   (array_agg(c.recorded_on) FILTER (WHERE c.problem IS NOT NULL))[1],
		   (array_agg(c.recorded_currency) FILTER (WHERE c.problem IS NOT NULL))[1]
	INTO e_amount, e_currency, e_payment, e_new, e_first,
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
				-- references compared byte by byte, as equality compares them
				WINDOW w AS (PARTITION BY x.account_id, x.reference COLLATE "C" ORDER BY x.ord)) e
		  ORDER BY e.ord) c;

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
	-- the payments and their allocations are this call's own statements: their
	-- keys are accounts it holds locked (and their currencies), the payments it
	-- inserts and open documents of those accounts, which no one can delete
	-- without the account lock; the key checks skip them
	-- (billing.write_run_rows)
	PERFORM billing.write_run_rows('billing.payment', $run$
		SELECT x.payment_id, x.account_id, x.amount, x.currency, x.received_on, x.method, x.reference
		FROM unnest($1, $2, $3, $4, $5, $6, $7, $8)
			 AS x (payment_id, account_id, amount, currency, received_on, method, reference, is_new)
		WHERE x.is_new
		ORDER BY x.payment_id$run$,
		e_payment, account_ids, e_amount, e_currency, received_dates, methods, payment_references, e_new);

	IF auto_apply AND NOT EXISTS (
		-- no document of these accounts was unapplied after the earliest
		-- payment's date: every allocation is dated as planned
		SELECT 1 FROM billing.allocation r
		WHERE r.account_id = ANY (account_ids) AND r.reverses_allocation_id IS NOT NULL
		  AND r.allocated_on > (SELECT min(d) FROM unnest(received_dates) AS d)) THEN
		PERFORM billing.write_run_rows('billing.allocation', $run$
			SELECT x.account_id, x.invoice_id, x.payment_id, x.amount, x.allocated_on
			FROM billing.new_payment_allocations($1, $2, $3, $4, $5, $6) x$run$,
			account_ids, e_payment, e_currency, received_dates, e_amount, e_new);
	ELSIF auto_apply THEN
		plan := ARRAY(SELECT x FROM billing.new_payment_allocations(account_ids, e_payment, e_currency, received_dates,
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

		PERFORM billing.write_run_rows('billing.allocation', $run$
			SELECT x.account_id, x.invoice_id, x.payment_id, x.amount, x.allocated_on
			FROM unnest($1) WITH ORDINALITY AS x (allocation_id, account_id, invoice_id, payment_id, credit_note_id,
												  amount, allocated_on, reverses_allocation_id, created_at, k)
			ORDER BY x.k$run$,
			plan);
	END IF;

	RETURN QUERY
	SELECT p.* FROM unnest(account_ids, e_payment) WITH ORDINALITY AS x (account_id, payment_id, ord)
	JOIN billing.payment p ON p.account_id = x.account_id AND p.payment_id = x.payment_id
	ORDER BY x.ord;
END $$;
COMMENT ON FUNCTION billing.record_payments(bigint[], numeric[], date[], text[], text[], boolean) IS
	'Records many payments at once (element i: account_ids[i], amounts[i], received_dates[i] (NULL array: today), payment_references[i], methods[i]) exactly as record_payment called for each in array order, and by default applies them to open documents oldest due first; all or nothing';

-- The run's watermark update hashes its subscriptions in memory.
CREATE OR REPLACE FUNCTION billing.bill_accounts(target_date date, auto_post boolean, batch_id bigint, account_ids bigint[])
	RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- batch statements are costed high (set-returning functions are estimated at
-- 1000 rows); compiling them with JIT takes seconds and saves nothing
SET jit = off
-- the watermark update hashes every candidate subscription: a million fit in
-- memory at 64MB (at 16MB the join went through disk in 4 batches)
SET work_mem = '64MB'
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
	-- totals from its lines (summed by the engine as it made them: a GROUP BY
	-- over a catch-up run's ten million lines took 16 s), due date and, when
	-- posting, its number.  (Written as a draft and then totalled and
	-- numbered, each document row would be rewritten twice, with its checks,
	-- in the run's largest table.)  Net credit makes a credit note.  Ids
	-- follow (account, currency), numbers ids.
	IF to_regclass('pg_temp.billing_new_documents') IS NOT NULL THEN
		DROP TABLE pg_temp.billing_new_documents;
	END IF;
	CREATE TEMP TABLE billing_new_documents ON COMMIT DROP AS
	SELECT h.*, nextval('billing.invoice_invoice_id_seq') AS invoice_id
	FROM (SELECT d.account_id, d.currency,
				 CASE WHEN d.amount + d.tax_amount < 0 THEN 'credit_note' ELSE 'invoice' END AS document_type,
				 d.amount AS subtotal, d.tax_amount AS tax_total, d.line_number AS lines
		  FROM billing_due d
		  WHERE d.item = 'document'
		  ORDER BY d.account_id, d.currency) h;
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

	-- the batch's counters from the documents just written (a document's
	-- total is its subtotal plus its tax, as written above)
	UPDATE billing.invoice_batch b
	SET (accounts, invoices, lines, total_amount) =
		(SELECT b.accounts + count(DISTINCT n.account_id), b.invoices + count(*), b.lines + coalesce(sum(n.lines), 0),
				b.total_amount + coalesce(sum(n.subtotal + n.tax_total), 0)
		 FROM billing_new_documents n)
	WHERE b.batch_id = bill_accounts.batch_id;
END $$;
COMMENT ON FUNCTION billing.bill_accounts(date, boolean, bigint, bigint[]) IS
	'Bills the due work of the given accounts (NULL: all) into a batch: locks, lines, documents, posting, watermarks';

-- Line ids a thousand at a time per session.
ALTER SEQUENCE billing.invoice_line_line_id_seq CACHE 1000;
