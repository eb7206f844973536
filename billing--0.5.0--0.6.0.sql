-- billing 0.5.0 -> 0.6.0.  Every change here is also in src/sql (which builds
-- billing--0.6.0.sql); scripts/test.sh (suite "upgrade") checks that a 0.5.0
-- database updated by this script has the same catalog as a fresh 0.6.0.

\echo Use "ALTER EXTENSION billing UPDATE TO '0.6.0'" to load this file. \quit

-- Payments applied oldest due first in one pass in C (src/payment_matching.c)
-- instead of running sums over payments and documents: the same allocations.
CREATE FUNCTION billing.oldest_first_allocations(account_ids bigint[], payment_ids bigint[], currencies text[],
												 received_dates date[], amounts numeric[], is_new boolean[],
												 doc_account_ids bigint[], doc_currencies text[], doc_invoice_ids bigint[],
												 doc_item_dates date[], doc_due_dates date[], doc_open_amounts numeric[])
	RETURNS TABLE (account_id bigint, invoice_id bigint, payment_id bigint, amount numeric, allocated_on date)
	AS 'MODULE_PATHNAME', 'billing_oldest_first_allocations' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.oldest_first_allocations(bigint[], bigint[], text[], date[], numeric[], boolean[], bigint[], text[], bigint[], date[], date[], numeric[]) IS
	'Allocations of payments (element i of the first six arrays; is_new false: skipped) to open documents (the last six arrays, any order) oldest due date (none: last), then document date, then id, first, per account and currency: rows by payment in array order, each the least of what is left on both sides, dated on the later date';
-- as every function of the schema: for the administrators (99_security.sql)
REVOKE EXECUTE ON FUNCTION billing.oldest_first_allocations(bigint[], bigint[], text[], date[], numeric[], boolean[], bigint[], text[], bigint[], date[], date[], numeric[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.oldest_first_allocations(bigint[], bigint[], text[], date[], numeric[], boolean[], bigint[], text[], bigint[], date[], date[], numeric[]) TO billing_admin;

CREATE OR REPLACE FUNCTION billing.new_payment_allocations(account_ids bigint[], payment_ids bigint[], currencies text[],
												received_dates date[], amounts numeric[], is_new boolean[])
	RETURNS SETOF billing.allocation
LANGUAGE sql STABLE
BEGIN ATOMIC
	SELECT NULL::bigint, m.account_id, m.invoice_id, m.payment_id, NULL::bigint, m.amount, m.allocated_on, NULL::bigint,
		   NULL::timestamptz
	-- (the documents' arrays are named apart from the parameters, which a
	-- column of the same name would hide)
	FROM (SELECT array_agg(o.account_id) AS doc_accounts, array_agg(o.currency) AS doc_currencies,
				 array_agg(o.id) AS doc_ids, array_agg(o.item_date) AS doc_item_dates,
				 array_agg(o.due_date) AS doc_due_dates, array_agg(o.open_amount) AS doc_open_amounts
		  FROM billing.open_items('infinity', account_ids) o
		  WHERE o.kind = 'document' AND o.document_type IN ('invoice', 'debit_note') AND o.status = 'posted'
			AND o.open_amount > 0) d,
		 billing.oldest_first_allocations(account_ids, payment_ids, currencies, received_dates, amounts, is_new,
										  d.doc_accounts, d.doc_currencies, d.doc_ids, d.doc_item_dates, d.doc_due_dates,
										  d.doc_open_amounts) m;
END;

-- lock_accounts: one generic plan (the index in key order), not a custom plan
-- that estimates every element of a large array.
ALTER FUNCTION billing.lock_accounts(bigint[]) SET plan_cache_mode = force_generic_plan;

-- ar_aging: serial (a parallel plan built the per-document sums of
-- allocations once per worker) and with the room to hash them in memory.
ALTER FUNCTION billing.ar_aging(date, int[], text) SET max_parallel_workers_per_gather = 0;
ALTER FUNCTION billing.ar_aging(date, int[], text) SET work_mem = '32MB';

-- record_payments: the same statements; only the reason for its work_mem changed.
CREATE OR REPLACE FUNCTION billing.record_payments(account_ids bigint[], amounts numeric[], received_dates date[] DEFAULT NULL,
										payment_references text[] DEFAULT NULL, methods text[] DEFAULT NULL,
										auto_apply boolean DEFAULT true)
	RETURNS SETOF billing.payment
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
-- the elements' checks and the payments written and returned each sort a
-- row per element: 12-14MB at 100,000 payments, in memory with room at 32MB
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
