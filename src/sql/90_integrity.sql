-- check_integrity(): the invariants finance relies on, as rows of findings.
-- No rows means healthy.  Every check names what it found and the numbers.

CREATE FUNCTION billing.check_integrity() RETURNS TABLE (check_name text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	target date;
	latest date;
	fk record;
BEGIN
	-- foreign keys checked per statement (89_statement_foreign_keys.sql): no
	-- row refers to a missing parent
	FOR fk IN SELECT t.child, f.*
			  FROM (SELECT DISTINCT g.tgrelid::regclass AS child FROM pg_catalog.pg_trigger g
					WHERE g.tgfoid = 'pg_catalog."RI_FKey_check_ins"'::pg_catalog.regproc AND g.tgenabled = 'D'
					  AND g.tgrelid IN (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = 'billing'::regnamespace)) t
			  CROSS JOIN LATERAL billing.foreign_key_sql(t.child) f
	LOOP
		RETURN QUERY EXECUTE format(
			'SELECT ''foreign_key''::text, format(''%s: key (%s)=(%%s) is not present in %s'', %s) '
			'FROM %s n WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s)',
			fk.conname, fk.key_names, fk.parent, fk.key_text, fk.child, fk.complete, fk.parent, fk.joined);
	END LOOP;

	-- document totals equal the sum of their lines
	RETURN QUERY
	SELECT 'document_totals'::text,
		   format('%s %s (document %s): subtotal %s, tax %s, total %s; lines sum to %s and tax %s',
				  i.document_type, coalesce(i.document_number, 'draft'), i.invoice_id, i.subtotal, i.tax_total, i.total,
				  coalesce(l.amount, 0), coalesce(l.tax, 0))
	FROM billing.invoice i
	LEFT JOIN (SELECT l.account_id, l.invoice_id, sum(l.amount) AS amount, sum(l.tax_amount) AS tax
			   FROM billing.invoice_line l GROUP BY l.account_id, l.invoice_id) l
		   ON l.account_id = i.account_id AND l.invoice_id = i.invoice_id
	WHERE i.status <> 'draft'
	  AND (i.subtotal <> coalesce(l.amount, 0) OR i.tax_total <> coalesce(l.tax, 0) OR i.total <> i.subtotal + i.tax_total);

	-- every stored amount is rounded to its currency's minor unit
	RETURN QUERY
	SELECT 'money_rounding'::text,
		   format('line %s of document %s: amount %s, tax %s not rounded to %s (%s decimals)',
				  l.line_id, l.invoice_id, l.amount, l.tax_amount, i.currency, c.minor_units)
	FROM billing.invoice_line l
	JOIN billing.invoice i ON i.account_id = l.account_id AND i.invoice_id = l.invoice_id
	JOIN billing.currency c ON c.code = i.currency
	WHERE round(l.amount, c.minor_units) <> l.amount OR round(l.tax_amount, c.minor_units) <> l.tax_amount;

	-- credit notes credit, invoices and debit notes charge
	RETURN QUERY
	SELECT 'document_sign'::text,
		   format('%s %s (document %s) has total %s', i.document_type, i.document_number, i.invoice_id, i.total)
	FROM billing.invoice i
	WHERE i.status <> 'draft'
	  AND ((i.document_type = 'credit_note' AND i.total > 0) OR (i.document_type <> 'credit_note' AND i.total < 0));

	-- one continuous series per document type: 1..last_number, each once
	RETURN QUERY
	SELECT 'gapless_numbering'::text,
		   format('%s series: %s numbers used, %s distinct, highest %s, series at %s',
				  coalesce(n.document_type, s.document_type), coalesce(n.used, 0), coalesce(n.distinct_numbers, 0),
				  coalesce(n.highest, 0), coalesce(s.last_number, 0))
	FROM (SELECT i.document_type, count(*) AS used, count(DISTINCT i.document_number) AS distinct_numbers,
				 max(substring(i.document_number FROM '[0-9]+$')::bigint) AS highest,
				 bool_and(i.document_number = billing.format_document_number(i.document_type,
											   substring(i.document_number FROM '[0-9]+$')::bigint)) AS well_formed
		  FROM billing.invoice i WHERE i.status <> 'draft' GROUP BY i.document_type) n
	FULL JOIN billing.document_series s ON s.document_type = n.document_type
	WHERE NOT (coalesce(n.used, 0) = coalesce(s.last_number, 0)
			   AND coalesce(n.distinct_numbers, 0) = coalesce(n.used, 0)
			   AND coalesce(n.highest, 0) = coalesce(s.last_number, 0)
			   AND coalesce(n.well_formed, true));

	-- money sources (payments, credit notes): on every date, allocations and
	-- refunds within what they hold, never before their date, none live once void
	RETURN QUERY
	SELECT CASE WHEN src.payment_id IS NOT NULL THEN 'payment_limits' ELSE 'credit_note_limits' END,
		   format('%s of account %s: holds %s, applied and refunded %s as of %s', src.label, src.account_id,
				  src.capacity, m.used, m.day)
	FROM (SELECT p.account_id, p.payment_id, NULL::bigint AS credit_note_id, format('payment %s', p.payment_id) AS label,
				 p.amount AS capacity, p.received_on AS source_date, NULL::date AS voided_on
		  FROM billing.payment p
		  UNION ALL
		  SELECT c.account_id, NULL, c.invoice_id, format('credit note %s', c.document_number), -c.total, c.invoice_date,
				 c.voided_on
		  FROM billing.invoice c
		  WHERE c.document_type = 'credit_note' AND c.status <> 'draft') src
	JOIN LATERAL (
		SELECT d.day, sum(sum(d.amount)) OVER (ORDER BY d.day) AS used
		FROM (SELECT a.allocated_on AS day, a.amount FROM billing.allocation a
			  WHERE a.account_id = src.account_id
				AND (a.payment_id = src.payment_id OR a.credit_note_id = src.credit_note_id)
			  UNION ALL
			  SELECT r.refunded_on, r.amount FROM billing.refund r
			  WHERE r.account_id = src.account_id
				AND (r.payment_id = src.payment_id OR r.credit_note_id = src.credit_note_id)) d
		GROUP BY d.day
	) m ON m.used > src.capacity OR m.used < 0 OR m.day < src.source_date
		   OR (m.day >= src.voided_on AND m.used <> 0);

	-- invoices and debit notes: on every date, never open below zero, never
	-- allocated to before their date; allocations only to posted (or later
	-- voided) invoices and debit notes, none live once void
	RETURN QUERY
	SELECT 'document_allocations'::text,
		   format('%s %s (%s): total %s, allocated %s as of %s', i.document_type, coalesce(i.document_number, 'draft'),
				  i.status, i.total, m.used, m.day)
	FROM billing.invoice i
	JOIN LATERAL (
		SELECT a.allocated_on AS day, sum(sum(a.amount)) OVER (ORDER BY a.allocated_on) AS used
		FROM billing.allocation a
		WHERE a.account_id = i.account_id AND a.invoice_id = i.invoice_id
		GROUP BY a.allocated_on
	) m ON m.used > i.total OR m.used < 0 OR m.day < i.invoice_date OR i.document_type = 'credit_note'
		   OR i.status = 'draft' OR (i.status = 'void' AND m.day >= i.voided_on AND m.used <> 0);
	RETURN QUERY
	SELECT 'allocation_currency'::text,
		   format('allocation %s: source in %s, document %s in %s', a.allocation_id, coalesce(p.currency, c.currency),
				  i.document_number, i.currency)
	FROM billing.allocation a
	JOIN billing.invoice i ON i.account_id = a.account_id AND i.invoice_id = a.invoice_id
	LEFT JOIN billing.payment p ON p.account_id = a.account_id AND p.payment_id = a.payment_id
	LEFT JOIN billing.invoice c ON c.account_id = a.account_id AND c.invoice_id = a.credit_note_id
	WHERE coalesce(p.currency, c.currency) <> i.currency;

	-- revenue schedules sum exactly to their posted lines
	RETURN QUERY
	SELECT 'revenue_schedule'::text,
		   format('line %s of %s: amount %s, scheduled %s', l.line_id, i.document_number, l.amount, coalesce(s.amount, 0))
	FROM billing.invoice_line l
	JOIN billing.invoice i ON i.account_id = l.account_id AND i.invoice_id = l.invoice_id
	LEFT JOIN (SELECT s.account_id, s.line_id, sum(s.amount) AS amount FROM billing.revenue_schedule s GROUP BY 1, 2) s
	  ON s.account_id = l.account_id AND s.line_id = l.line_id
	WHERE i.status <> 'draft' AND l.amount <> coalesce(s.amount, 0);

	-- principle 3: after a run with target T, every period of a subscription due
	-- by T holds exactly its expected amount.  Held subscriptions, pending
	-- changes and those no run has reconciled yet are exempt.
	-- Each subscription is checked at the later of its own last run and the
	-- latest completed run, so one that fell off the schedule is caught.
	latest := (SELECT max(b.target_date) FROM billing.invoice_batch b WHERE b.status = 'completed');
	FOR target IN SELECT DISTINCT greatest(s.last_target_date, latest) FROM billing.subscription s
				  WHERE s.last_target_date IS NOT NULL LOOP
		RETURN QUERY
		SELECT 'reconciliation'::text,
			   format('subscription %s, period %s: expected minus billed is %s %s as of target date %s',
					  d.subscription_id, coalesce(d.cycle_period::text, 'one-time'), sum(d.amount), d.currency, target)
		FROM billing.due_items(target,
							   ARRAY(SELECT DISTINCT s.account_id FROM billing.subscription s
									 WHERE greatest(s.last_target_date, latest) = target),
							   true) d
		JOIN billing.subscription s ON s.account_id = d.account_id AND s.subscription_id = d.subscription_id
		WHERE d.item = 'line' AND greatest(s.last_target_date, latest) = target AND s.reconcile_from IS NULL
		GROUP BY d.subscription_id, d.cycle_period, d.currency
		HAVING sum(d.amount) <> 0;
	END LOOP;
END $$;
COMMENT ON FUNCTION billing.check_integrity() IS
	'Invariant checks; no rows when healthy: foreign keys checked per statement, document totals, money rounding, document signs, gapless numbering, allocation and refund limits, revenue schedules, reconciliation of every due period';
