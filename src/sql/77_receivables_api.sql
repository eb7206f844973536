-- Receivables API.  Every function locks the account row first, then its
-- source, then target documents in id order: allocation limits hold under
-- concurrency by row locks alone (also on Citus, where advisory locks are
-- node-local).

-- The amount must be positive and a whole number of the currency's minor units.
CREATE FUNCTION billing.check_money_amount(amount numeric, currency text, what text) RETURNS numeric
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF amount IS NULL OR amount <= 0 THEN
		RAISE EXCEPTION '% must be positive', what
			USING ERRCODE = 'invalid_parameter_value', DETAIL = format('%s is %s', what, coalesce(amount::text, 'NULL'));
	END IF;
	IF billing.round_money(amount, currency) <> amount THEN
		RAISE EXCEPTION '% % is not a whole number of minor units of %', what, amount, currency
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN billing.round_money(amount, currency);	-- same value, the currency's scale
END $$;
COMMENT ON FUNCTION billing.check_money_amount(numeric, text, text) IS 'Validates a money amount (positive, rounded to the currency) and returns it at the currency''s scale';


-- A money source: a payment, or a posted credit note.  Locks its row (the
-- caller holds the account lock) and describes it for messages and dates.
CREATE FUNCTION billing.lock_source(account_id bigint, payment_id bigint, credit_note_id bigint,
									OUT label text, OUT source_date date, OUT currency text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pay billing.payment;
	cn billing.invoice;
BEGIN
	IF payment_id IS NOT NULL THEN
		SELECT * INTO pay FROM billing.payment p
		WHERE p.account_id = lock_source.account_id AND p.payment_id = lock_source.payment_id FOR UPDATE;
		label := format('payment %s', pay.payment_id);
		source_date := pay.received_on;
		currency := pay.currency;
	ELSE
		SELECT * INTO cn FROM billing.invoice i
		WHERE i.account_id = lock_source.account_id AND i.invoice_id = lock_source.credit_note_id FOR UPDATE;
		IF cn.document_type <> 'credit_note' OR cn.status <> 'posted' THEN
			RAISE EXCEPTION 'document % is not a posted credit note', coalesce(cn.document_number, cn.invoice_id::text)
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  DETAIL = format('%s, status %s', cn.document_type, cn.status);
		END IF;
		label := format('credit note %s', cn.document_number);
		source_date := cn.invoice_date;
		currency := cn.currency;
	END IF;
END $$;
COMMENT ON FUNCTION billing.lock_source(bigint, bigint, bigint) IS
	'Locks a payment or posted credit note and returns its label, date and currency; caller holds the account lock';

-- What a source has free on every date from from_date on ('infinity': now).
CREATE FUNCTION billing.source_unapplied_from(account_id bigint, payment_id bigint, credit_note_id bigint, from_date date)
	RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT coalesce(
		(SELECT billing.payment_unapplied_from(p, from_date) FROM billing.payment p
		 WHERE p.account_id = source_unapplied_from.account_id AND p.payment_id = source_unapplied_from.payment_id),
		(SELECT -billing.document_open_amount_from(i, from_date) FROM billing.invoice i
		 WHERE i.account_id = source_unapplied_from.account_id AND i.invoice_id = source_unapplied_from.credit_note_id));
END;
COMMENT ON FUNCTION billing.source_unapplied_from(bigint, bigint, bigint, date) IS
	'Least unapplied amount of a payment or credit note on any date from from_date on';

-- What an allocation dated from_date may take: the least that the document
-- has open and the source has free on every date from then on.
CREATE FUNCTION billing.allocation_room(doc billing.invoice, payment_id bigint, credit_note_id bigint, from_date date)
	RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
RETURN least(billing.document_open_amount_from(doc, from_date),
			 billing.source_unapplied_from(doc.account_id, payment_id, credit_note_id, from_date));
COMMENT ON FUNCTION billing.allocation_room(billing.invoice, bigint, bigint, date) IS
	'Most an allocation from a source to a document, dated from_date, may take without any date''s balance going below zero';

-- Apply a source (payment or posted credit note) to one document or to the
-- open invoices and debit notes oldest due first.  The caller holds the
-- account lock.  amount NULL: as much as possible.
CREATE FUNCTION billing.apply_source(account_id bigint, payment_id bigint, credit_note_id bigint,
									 invoice_id bigint, amount numeric, allocated_on date)
	RETURNS SETOF billing.allocation
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	src record;
	doc billing.invoice;
	available numeric;
	remaining numeric;
	open_amount numeric;
	room numeric;
	alloc_date date;
	alloc billing.allocation;
BEGIN
	src := billing.lock_source(account_id, payment_id, credit_note_id);
	available := billing.source_unapplied_from(account_id, payment_id, credit_note_id, 'infinity');

	IF amount IS NOT NULL THEN
		amount := billing.check_money_amount(amount, src.currency, 'amount');
		IF amount > available THEN
			RAISE EXCEPTION 'amount exceeds the unapplied part of %', src.label
				USING ERRCODE = 'check_violation',
					  DETAIL = format('amount %s, unapplied %s %s', amount, available, src.currency);
		END IF;
	END IF;

	IF invoice_id IS NOT NULL THEN
		SELECT * INTO doc FROM billing.invoice i WHERE i.invoice_id = apply_source.invoice_id;
		IF NOT FOUND OR doc.account_id <> apply_source.account_id THEN
			RAISE EXCEPTION 'document % does not belong to account %', invoice_id, account_id
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF doc.status <> 'posted' THEN
			RAISE EXCEPTION '% % is %; only posted documents are paid', replace(doc.document_type, '_', ' '),
				coalesce(doc.document_number, doc.invoice_id::text), doc.status
				USING ERRCODE = 'object_not_in_prerequisite_state';
		END IF;
		IF doc.document_type = 'credit_note' THEN
			RAISE EXCEPTION 'credit note % cannot receive an allocation', doc.document_number
				USING ERRCODE = 'invalid_parameter_value', HINT = 'Apply money to invoices and debit notes.';
		END IF;
		IF doc.currency <> src.currency THEN
			RAISE EXCEPTION '% is in %, % is in %', src.label, src.currency, doc.document_number, doc.currency
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		open_amount := billing.document_open_amount(doc, 'infinity');
		IF amount > open_amount THEN
			RAISE EXCEPTION 'amount exceeds the open amount of %', doc.document_number
				USING ERRCODE = 'check_violation',
					  DETAIL = format('amount %s, open %s %s', amount, open_amount, doc.currency);
		END IF;
	END IF;

	remaining := coalesce(amount, available);
	FOR doc IN
		SELECT i.* FROM billing.invoice i
		WHERE i.account_id = apply_source.account_id
		  AND (apply_source.invoice_id IS NULL OR i.invoice_id = apply_source.invoice_id)
		  AND i.status = 'posted' AND i.document_type IN ('invoice', 'debit_note') AND i.currency = src.currency
		ORDER BY i.due_date, i.invoice_date, i.invoice_id
		FOR UPDATE
	LOOP
		EXIT WHEN remaining <= 0;
		IF allocated_on < greatest(src.source_date, doc.invoice_date) THEN
			RAISE EXCEPTION 'allocation date % precedes % or document %', allocated_on, src.label, doc.document_number
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = format('source dated %s, document dated %s', src.source_date, doc.invoice_date);
		END IF;
		alloc_date := coalesce(allocated_on, greatest(src.source_date, doc.invoice_date));
		room := billing.allocation_room(doc, payment_id, credit_note_id, alloc_date);
		-- a default date hemmed in by a later-dated row (an unapply, a refund):
		-- date the allocation when both sides are free, never in the past window
		IF allocated_on IS NULL
		   AND room < least(remaining, billing.allocation_room(doc, payment_id, credit_note_id, 'infinity')) THEN
			alloc_date := greatest(alloc_date,
				(SELECT max(a.allocated_on) FROM billing.allocation a
				 WHERE a.account_id = apply_source.account_id
				   AND (a.invoice_id = doc.invoice_id OR a.payment_id = apply_source.payment_id
						OR a.credit_note_id = apply_source.credit_note_id)),
				(SELECT max(r.refunded_on) FROM billing.refund r
				 WHERE r.account_id = apply_source.account_id
				   AND (r.payment_id = apply_source.payment_id OR r.credit_note_id = apply_source.credit_note_id)));
			room := billing.allocation_room(doc, payment_id, credit_note_id, alloc_date);
		END IF;
		IF apply_source.amount IS NOT NULL AND apply_source.invoice_id IS NOT NULL AND room < apply_source.amount THEN
			RAISE EXCEPTION 'amount exceeds what % and % have free from %', src.label, doc.document_number, alloc_date
				USING ERRCODE = 'check_violation',
					  DETAIL = format('amount %s; least free on any date from %s on: %s %s',
									  apply_source.amount, alloc_date, room, doc.currency);
		END IF;
		CONTINUE WHEN least(remaining, room) <= 0;
		INSERT INTO billing.allocation AS x (account_id, invoice_id, payment_id, credit_note_id, amount, allocated_on)
		VALUES (apply_source.account_id, doc.invoice_id, apply_source.payment_id, apply_source.credit_note_id,
				least(remaining, room), alloc_date)
		RETURNING * INTO alloc;
		remaining := remaining - alloc.amount;
		RETURN NEXT alloc;
	END LOOP;
END $$;
COMMENT ON FUNCTION billing.apply_source(bigint, bigint, bigint, bigint, numeric, date) IS
	'Applies a payment or credit note to a document or to open documents oldest due first; caller holds the account lock';

-- The matching of step 4 of record_payments, in C (src/payment_matching.c):
-- per account and currency, the new payments in array order fill the open
-- documents oldest due date, then oldest document, first; each allocation is
-- the least of what the payment has left and the document has open, dated
-- on the later of their dates.  One pass in minor units: the running sums of
-- the set-based form sorted every payment and document twice more.
CREATE FUNCTION billing.oldest_first_allocations(account_ids bigint[], payment_ids bigint[], currencies text[],
												 received_dates date[], amounts numeric[], is_new boolean[],
												 doc_account_ids bigint[], doc_currencies text[], doc_invoice_ids bigint[],
												 doc_item_dates date[], doc_due_dates date[], doc_open_amounts numeric[])
	RETURNS TABLE (account_id bigint, invoice_id bigint, payment_id bigint, amount numeric, allocated_on date)
	AS 'MODULE_PATHNAME', 'billing_oldest_first_allocations' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.oldest_first_allocations(bigint[], bigint[], text[], date[], numeric[], boolean[], bigint[], text[], bigint[], date[], date[], numeric[]) IS
	'Allocations of payments (element i of the first six arrays; is_new false: skipped) to open documents (the last six arrays, any order) oldest due date (none: last), then document date, then id, first, per account and currency: rows by payment in array order, each the least of what is left on both sides, dated on the later date';

-- The allocations new payments make, in the order they are written: the
-- open invoices and debit notes of the accounts (open_items) matched by
-- oldest_first_allocations.  Inlined into record_payments.
CREATE FUNCTION billing.new_payment_allocations(account_ids bigint[], payment_ids bigint[], currencies text[],
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
COMMENT ON FUNCTION billing.new_payment_allocations(bigint[], bigint[], text[], date[], numeric[], boolean[]) IS
	'Allocations (ids NULL) that new payments make to open invoices and debit notes oldest due first, as record_payments writes them';

-- Payments in bulk.  Element i of the arrays is the payment
-- record_payment(account_ids[i], amounts[i], received_dates[i],
-- payment_references[i], methods[i], auto_apply) records, and the outcome is
-- that of those calls made one after the other in array order (the same
-- payment ids, allocation rows, ids and dates, and the first element's error),
-- done in a few statements over all elements:
--   1. lock the accounts (lock_accounts: account_id order);
--   2. validate every element in one query and raise the first bad one's error
--      (DETAIL names the element); nothing is written before;
--   3. number the new payments in array order and insert them at once; a
--      reference already recorded (before, or by an earlier element) with the
--      same amount and date is that payment again and applies nothing;
--   4. auto_apply: per account, the new payments in array order fill its open
--      invoices and debit notes in the account's currency, oldest due date,
--      then oldest document, first, each dated on the later of payment and
--      document (new_payment_allocations, over open_items).  That is what
--      apply_source gives one payment after another: an allocation always
--      takes the least of what the payment has left and the document has
--      open; only its date can depend on the order, when the document was
--      paid and unapplied after that date (a reversal dated later): then the
--      planned allocations are dated one by one, in order, as apply_source
--      dates them (rare: only accounts with such a reversal take that path);
--   5. insert the allocations at once, in call order.
CREATE FUNCTION billing.record_payments(account_ids bigint[], amounts numeric[], received_dates date[] DEFAULT NULL,
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
COMMENT ON FUNCTION billing.record_payments(bigint[], numeric[], date[], text[], text[], boolean) IS
	'Records many payments at once (element i: account_ids[i], amounts[i], received_dates[i] (NULL array: today), payment_references[i], methods[i]) exactly as record_payment called for each in array order, and by default applies them to open documents oldest due first; all or nothing';

CREATE FUNCTION billing.record_payment(account_id bigint, amount numeric, received_on date DEFAULT CURRENT_DATE,
									   reference text DEFAULT NULL, method text DEFAULT NULL, auto_apply boolean DEFAULT true)
	RETURNS billing.payment
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pay billing.payment;
BEGIN
	SELECT * INTO pay
	FROM billing.record_payments(ARRAY[record_payment.account_id], ARRAY[record_payment.amount],
								 ARRAY[record_payment.received_on], ARRAY[record_payment.reference],
								 ARRAY[record_payment.method], record_payment.auto_apply) p;
	RETURN pay;
END $$;
COMMENT ON FUNCTION billing.record_payment(bigint, numeric, date, text, text, boolean) IS
	'Records money received (idempotent on reference) and, by default, applies it to open documents oldest due first (record_payments with one element)';

CREATE FUNCTION billing.apply_payment(payment_id bigint, invoice_id bigint DEFAULT NULL, amount numeric DEFAULT NULL,
									  allocated_on date DEFAULT NULL)
	RETURNS SETOF billing.allocation
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owner bigint;
BEGIN
	SELECT p.account_id INTO owner FROM billing.payment p WHERE p.payment_id = apply_payment.payment_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'payment % does not exist', payment_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM billing.lock_account(owner);
	RETURN QUERY SELECT * FROM billing.apply_source(owner, payment_id, NULL, invoice_id, amount, allocated_on);
END $$;
COMMENT ON FUNCTION billing.apply_payment(bigint, bigint, numeric, date) IS
	'Applies a payment to a document (or to open documents oldest due first), never beyond its unapplied amount or their open amounts';

CREATE FUNCTION billing.apply_credit_note(credit_note_id bigint, invoice_id bigint DEFAULT NULL, amount numeric DEFAULT NULL,
										  allocated_on date DEFAULT NULL)
	RETURNS SETOF billing.allocation
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	cn billing.invoice;
BEGIN
	cn := billing.lock_document(credit_note_id);
	RETURN QUERY SELECT * FROM billing.apply_source(cn.account_id, NULL, cn.invoice_id, invoice_id, amount, allocated_on);
END $$;
COMMENT ON FUNCTION billing.apply_credit_note(bigint, bigint, numeric, date) IS
	'Applies a posted credit note''s unapplied credit to a document (or to open documents oldest due first)';

CREATE FUNCTION billing.unapply(allocation_id bigint, on_date date DEFAULT CURRENT_DATE) RETURNS billing.allocation
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	a billing.allocation;
	reversal billing.allocation;
BEGIN
	SELECT * INTO a FROM billing.allocation x WHERE x.allocation_id = unapply.allocation_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'allocation % does not exist', allocation_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM billing.lock_account(a.account_id);
	IF on_date IS NULL OR on_date < a.allocated_on THEN
		RAISE EXCEPTION 'allocation % cannot be unapplied before it was made', a.allocation_id
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('allocated on %s, unapply on %s', a.allocated_on, coalesce(on_date::text, 'NULL'));
	END IF;
	IF a.reverses_allocation_id IS NOT NULL THEN
		RAISE EXCEPTION 'allocation % is itself a reversal', a.allocation_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('it reverses allocation %s', a.reverses_allocation_id);
	END IF;
	SELECT * INTO reversal FROM billing.allocation x
	WHERE x.account_id = a.account_id AND x.reverses_allocation_id = a.allocation_id;
	IF FOUND THEN
		RAISE EXCEPTION 'allocation % is already unapplied', a.allocation_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('reversed by allocation %s on %s, amount %s', reversal.allocation_id,
								  reversal.allocated_on, reversal.amount);
	END IF;
	INSERT INTO billing.allocation AS x
		(account_id, invoice_id, payment_id, credit_note_id, amount, allocated_on, reverses_allocation_id)
	VALUES (a.account_id, a.invoice_id, a.payment_id, a.credit_note_id, -a.amount, on_date, a.allocation_id)
	RETURNING * INTO reversal;
	RETURN reversal;
END $$;
COMMENT ON FUNCTION billing.unapply(bigint, date) IS
	'Reverses an allocation with a new negated row dated on_date; the money is unapplied again';

-- A posted credit note with one adjustment line crediting "amount" (tax
-- included, split in the corrected document's proportion of tax), applied to
-- that document first when apply.  The caller holds the account lock.
CREATE FUNCTION billing.create_credit_note(doc billing.invoice, amount numeric, reason text, issued_on date,
										   apply boolean, credit_kind text)
	RETURNS billing.invoice
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tax numeric;
	cn billing.invoice;
	open_amount numeric;
	credited numeric;
BEGIN
	IF doc.status <> 'posted' THEN
		RAISE EXCEPTION '% % is %; only posted documents are credited', replace(doc.document_type, '_', ' '),
			coalesce(doc.document_number, doc.invoice_id::text), doc.status
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	IF doc.document_type = 'credit_note' THEN
		RAISE EXCEPTION 'credit note % cannot be credited', doc.document_number USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF issued_on IS NULL OR issued_on < doc.invoice_date THEN
		RAISE EXCEPTION 'credit note for % dated before it', doc.document_number
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('issued on %s, document dated %s', coalesce(issued_on::text, 'NULL'), doc.invoice_date);
	END IF;
	amount := billing.check_money_amount(amount, doc.currency, 'credit amount');
	-- all credit notes correcting a document together stay within its total
	credited := coalesce((SELECT -sum(c.total) FROM billing.invoice c
						  WHERE c.account_id = doc.account_id AND c.corrects_invoice_id = doc.invoice_id
							AND c.status = 'posted'), 0);
	IF amount > doc.total - credited THEN
		RAISE EXCEPTION 'credit for % exceeds its total', doc.document_number
			USING ERRCODE = 'check_violation',
				  DETAIL = format('credit %s, total %s, already credited %s %s', amount, doc.total, credited, doc.currency);
	END IF;
	tax := CASE WHEN doc.total = 0 THEN 0 ELSE billing.round_money(amount * doc.tax_total / doc.total, doc.currency) END;

	INSERT INTO billing.invoice AS i (account_id, document_type, invoice_date, currency, corrects_invoice_id, credit_kind, reason)
	VALUES (doc.account_id, 'credit_note', issued_on, doc.currency, doc.invoice_id, credit_kind, reason)
	RETURNING * INTO cn;
	INSERT INTO billing.invoice_line (account_id, invoice_id, line_number, kind, amount, tax_amount, description)
	VALUES (doc.account_id, cn.invoice_id, 1, 'adjustment', -(amount - tax), -tax,
			CASE credit_kind WHEN 'write_off' THEN 'Write-off of ' ELSE 'Credit for ' END || doc.document_number
				|| coalesce(': ' || reason, ''));
	PERFORM billing.post_documents(ARRAY[doc.account_id], ARRAY[cn.invoice_id]);

	IF apply THEN
		open_amount := billing.document_open_amount(doc, 'infinity');
		IF open_amount > 0 THEN
			PERFORM billing.apply_source(doc.account_id, NULL, cn.invoice_id, doc.invoice_id, least(amount, open_amount),
										 greatest(issued_on, doc.invoice_date));
		END IF;
	END IF;
	SELECT * INTO cn FROM billing.invoice i WHERE i.account_id = cn.account_id AND i.invoice_id = cn.invoice_id;
	RETURN cn;
END $$;
COMMENT ON FUNCTION billing.create_credit_note(billing.invoice, numeric, text, date, boolean, text) IS
	'Issues and posts a credit note correcting a document, applied to it first; caller holds the account lock';

CREATE FUNCTION billing.issue_credit_note(invoice_id bigint, amount numeric DEFAULT NULL, reason text DEFAULT NULL,
										  issued_on date DEFAULT CURRENT_DATE, apply boolean DEFAULT true)
	RETURNS billing.invoice
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	doc billing.invoice;
BEGIN
	doc := billing.lock_document(invoice_id);
	RETURN billing.create_credit_note(doc, coalesce(amount, billing.document_open_amount(doc, 'infinity')), reason,
									  issued_on, coalesce(apply, true), 'credit');
END $$;
COMMENT ON FUNCTION billing.issue_credit_note(bigint, numeric, text, date, boolean) IS
	'Posts a credit note correcting an invoice (adjustment lines, not tied to periods); NULL amount: its open amount. Applied to it first, the rest is account credit';

CREATE FUNCTION billing.write_off(invoice_id bigint, amount numeric DEFAULT NULL, reason text DEFAULT NULL,
								  on_date date DEFAULT CURRENT_DATE)
	RETURNS billing.invoice
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	doc billing.invoice;
	open_amount numeric;
BEGIN
	doc := billing.lock_document(invoice_id);
	open_amount := billing.document_open_amount(doc, 'infinity');
	IF doc.status = 'posted' AND doc.document_type <> 'credit_note' AND amount > open_amount THEN
		RAISE EXCEPTION 'write-off exceeds the open amount of %', doc.document_number
			USING ERRCODE = 'check_violation', DETAIL = format('write-off %s, open %s %s', amount, open_amount, doc.currency);
	END IF;
	RETURN billing.create_credit_note(doc, coalesce(amount, open_amount), reason, on_date, true, 'write_off');
END $$;
COMMENT ON FUNCTION billing.write_off(bigint, numeric, text, date) IS
	'Writes off (part of) a document''s open amount: a credit note with credit_kind write_off, applied to it';

-- A posted debit note with one line of the given kind, due after the
-- account's payment terms.  The caller holds the account lock.
CREATE FUNCTION billing.create_debit_note(acct billing.account, amount numeric, reason text, issued_on date, line_kind text)
	RETURNS billing.invoice
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	dn billing.invoice;
BEGIN
	amount := billing.check_money_amount(amount, acct.currency, 'debit amount');
	IF issued_on IS NULL THEN
		RAISE EXCEPTION 'issued_on of a debit note must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	INSERT INTO billing.invoice AS i (account_id, document_type, invoice_date, currency, reason)
	VALUES (acct.account_id, 'debit_note', issued_on, acct.currency, reason)
	RETURNING * INTO dn;
	INSERT INTO billing.invoice_line (account_id, invoice_id, line_number, kind, amount, tax_amount, description)
	VALUES (acct.account_id, dn.invoice_id, 1, line_kind, amount, 0, reason);
	PERFORM billing.post_documents(ARRAY[acct.account_id], ARRAY[dn.invoice_id]);
	SELECT * INTO dn FROM billing.invoice i WHERE i.account_id = dn.account_id AND i.invoice_id = dn.invoice_id;
	RETURN dn;
END $$;
COMMENT ON FUNCTION billing.create_debit_note(billing.account, numeric, text, date, text) IS
	'Issues and posts a debit note with one line; caller holds the account lock';

CREATE FUNCTION billing.issue_debit_note(account_id bigint, amount numeric, reason text, issued_on date DEFAULT CURRENT_DATE)
	RETURNS billing.invoice
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RETURN billing.create_debit_note(billing.lock_account(account_id), amount, reason, issued_on, 'adjustment');
END $$;
COMMENT ON FUNCTION billing.issue_debit_note(bigint, numeric, text, date) IS
	'Posts a debit note: an extra charge, due after the account''s payment terms, aged and paid like an invoice';

CREATE FUNCTION billing.refund(payment_id bigint DEFAULT NULL, credit_note_id bigint DEFAULT NULL, amount numeric DEFAULT NULL,
							   refunded_on date DEFAULT CURRENT_DATE, reference text DEFAULT NULL)
	RETURNS billing.refund
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owner bigint;
	src record;
	available numeric;
	r billing.refund;
BEGIN
	IF (payment_id IS NULL) = (credit_note_id IS NULL) THEN
		RAISE EXCEPTION 'a refund needs exactly one source: a payment or a credit note'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('payment_id %s, credit_note_id %s', coalesce(payment_id::text, 'NULL'), coalesce(credit_note_id::text, 'NULL'));
	END IF;
	IF payment_id IS NOT NULL THEN
		SELECT p.account_id INTO owner FROM billing.payment p WHERE p.payment_id = refund.payment_id;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'payment % does not exist', payment_id USING ERRCODE = 'invalid_parameter_value';
		END IF;
	ELSE
		SELECT i.account_id INTO owner FROM billing.invoice i WHERE i.invoice_id = refund.credit_note_id;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'document % does not exist', credit_note_id USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END IF;
	PERFORM billing.lock_account(owner);
	src := billing.lock_source(owner, payment_id, credit_note_id);
	available := billing.source_unapplied_from(owner, payment_id, credit_note_id, coalesce(refunded_on, src.source_date));
	IF amount IS NULL AND available <= 0 THEN
		RAISE EXCEPTION 'nothing of % is unapplied to refund', src.label
			USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = format('unapplied %s %s', available, src.currency);
	END IF;
	amount := coalesce(amount, available);
	amount := billing.check_money_amount(amount, src.currency, 'refund amount');
	IF amount > available THEN
		RAISE EXCEPTION 'refund exceeds the unapplied part of %', src.label
			USING ERRCODE = 'check_violation',
				  DETAIL = format('refund %s, unapplied %s %s (the least on any date from the refund date on)',
								  amount, available, src.currency);
	END IF;
	IF refunded_on IS NULL OR refunded_on < src.source_date THEN
		RAISE EXCEPTION 'refund of % dated before it', src.label
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('refunded on %s, source dated %s', coalesce(refunded_on::text, 'NULL'), src.source_date);
	END IF;
	INSERT INTO billing.refund AS x (account_id, payment_id, credit_note_id, amount, refunded_on, reference)
	VALUES (owner, refund.payment_id, refund.credit_note_id, amount, refunded_on, reference)
	RETURNING * INTO r;
	RETURN r;
END $$;
COMMENT ON FUNCTION billing.refund(bigint, bigint, numeric, date, text) IS
	'Pays back (part of) the unapplied amount of a payment or credit note; NULL amount: all of it';

-- Account credit applied to the documents a run just posted: unapplied
-- payments and open credit notes, oldest first, dated on the document date.
-- The caller (the run) holds the accounts' locks.
CREATE FUNCTION billing.apply_account_credit(account_ids bigint[], invoice_ids bigint[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- the run's new invoices have no statistics yet and are estimated at one row;
-- hash them against the sources found once, never loop over them (as due_items)
SET enable_nestloop = off
SET jit = off
AS $$
DECLARE
	pair record;
BEGIN
	-- each new invoice with each credit source of its account and currency, in
	-- the order credit is used: invoice by invoice, oldest source first.
	-- apply_source takes what is still free on both sides (nothing once either
	-- is exhausted), dated on the invoice date (or later, see apply_source).
	FOR pair IN
		WITH doc AS (
			SELECT i.account_id, i.invoice_id, i.currency
			FROM unnest(account_ids, invoice_ids) AS d(account_id, invoice_id)
			JOIN billing.invoice i ON i.account_id = d.account_id AND i.invoice_id = d.invoice_id
			WHERE i.status = 'posted' AND i.document_type = 'invoice' AND i.total > 0
		), source AS MATERIALIZED (
			SELECT p.account_id, p.currency, p.received_on AS source_date, p.payment_id, NULL::bigint AS credit_note_id
			FROM billing.payment p
			WHERE p.account_id IN (SELECT doc.account_id FROM doc)
			UNION ALL
			SELECT c.account_id, c.currency, c.invoice_date, NULL, c.invoice_id
			FROM billing.invoice c
			WHERE c.account_id IN (SELECT doc.account_id FROM doc)
			  AND c.document_type = 'credit_note' AND c.status = 'posted'
		)
		SELECT doc.account_id, doc.invoice_id, s.payment_id, s.credit_note_id
		FROM doc
		JOIN source s ON s.account_id = doc.account_id AND s.currency = doc.currency
		WHERE billing.source_unapplied_from(s.account_id, s.payment_id, s.credit_note_id, 'infinity') > 0
		ORDER BY doc.account_id, doc.invoice_id, s.source_date, s.payment_id NULLS LAST, s.credit_note_id
	LOOP
		PERFORM billing.apply_source(pair.account_id, pair.payment_id, pair.credit_note_id, pair.invoice_id, NULL, NULL);
	END LOOP;
END $$;
COMMENT ON FUNCTION billing.apply_account_credit(bigint[], bigint[]) IS
	'Applies unapplied payments and open credit notes, oldest first, to invoices a run posted';
