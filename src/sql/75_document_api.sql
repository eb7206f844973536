-- Posting and voiding documents.

-- The due date of a new document: after the account's payment terms; credit
-- notes are never due.
CREATE FUNCTION billing.document_due_date(document_type text, invoice_date date, payment_terms_days int) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN document_type <> 'credit_note' THEN invoice_date + payment_terms_days END;
COMMENT ON FUNCTION billing.document_due_date(text, date, int) IS
	'Due date of a new document: document date plus payment terms; NULL for credit notes';

-- Totals of drafts from their lines, and their due dates (a draft's own due
-- date kept).  Runs write their documents complete instead (bill_accounts).
CREATE FUNCTION billing.total_documents(account_ids bigint[], invoice_ids bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	-- Driven by the ids: each document is found by its key and its lines by
	-- index.  Only the key joins the target row, so a stale estimate of the
	-- drafts just written (one row) cannot put a rescanned side inside a loop.
	UPDATE billing.invoice i
	SET subtotal = t.subtotal,
		tax_total = t.tax_total,
		total = t.subtotal + t.tax_total,
		due_date = t.due_date
	FROM (SELECT d.account_id, d.invoice_id, x.subtotal, x.tax_total,
				 coalesce(CASE WHEN d.document_type <> 'credit_note' THEN d.due_date END,
						  billing.document_due_date(d.document_type, d.invoice_date, a.payment_terms_days)) AS due_date
		  FROM (SELECT i2.* FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
				JOIN billing.invoice i2 ON i2.account_id = k.account_id AND i2.invoice_id = k.invoice_id
				WHERE i2.status = 'draft') d
		  JOIN billing.account a ON a.account_id = d.account_id
		  CROSS JOIN LATERAL (SELECT coalesce(sum(l.amount), 0) AS subtotal, coalesce(sum(l.tax_amount), 0) AS tax_total
							  FROM billing.invoice_line l
							  WHERE l.account_id = d.account_id AND l.invoice_id = d.invoice_id) x) t
	WHERE i.account_id = t.account_id AND i.invoice_id = t.invoice_id;
END $$;
COMMENT ON FUNCTION billing.total_documents(bigint[], bigint[]) IS
	'Totals draft documents from their lines and dates them due after the account''s payment terms (credit notes: no due date)';

-- Post drafts: totalled, then numbered from each type's series in document
-- id order.  The caller holds the accounts' locks.
CREATE FUNCTION billing.post_documents(account_ids bigint[], invoice_ids bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	draft_accounts bigint[];
	draft_ids bigint[];
	draft_types text[];
BEGIN
	PERFORM billing.total_documents(account_ids, invoice_ids);
	SELECT array_agg(i.account_id), array_agg(i.invoice_id), array_agg(i.document_type)
	INTO draft_accounts, draft_ids, draft_types
	FROM unnest(account_ids, invoice_ids) AS d(account_id, invoice_id)
	JOIN billing.invoice i ON i.account_id = d.account_id AND i.invoice_id = d.invoice_id
	WHERE i.status = 'draft';
	UPDATE billing.invoice i
	SET status = 'posted',
		posted_at = pg_catalog.now(),
		document_number = n.document_number
	FROM billing.number_documents(draft_accounts, draft_ids, draft_types) n
	WHERE i.account_id = n.account_id AND i.invoice_id = n.invoice_id;
END $$;
COMMENT ON FUNCTION billing.post_documents(bigint[], bigint[]) IS
	'Posts draft documents: totals from lines, due dates, gapless numbers in id order';

-- Lock a document's account, then the document; 22023 for an unknown id.
CREATE FUNCTION billing.lock_document(invoice_id bigint) RETURNS billing.invoice
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owner bigint;
	doc billing.invoice;
BEGIN
	SELECT i.account_id INTO owner FROM billing.invoice i WHERE i.invoice_id = lock_document.invoice_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'document % does not exist', invoice_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM billing.lock_account(owner);
	SELECT * INTO doc FROM billing.invoice i
	WHERE i.account_id = owner AND i.invoice_id = lock_document.invoice_id
	FOR UPDATE;
	RETURN doc;
END $$;
COMMENT ON FUNCTION billing.lock_document(bigint) IS 'Locks a document''s account, then the document (the fixed lock order)';

CREATE FUNCTION billing.post_invoice(invoice_id bigint) RETURNS billing.invoice
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	doc billing.invoice;
BEGIN
	doc := billing.lock_document(invoice_id);
	IF doc.status <> 'draft' THEN
		RAISE EXCEPTION '% % is already %', replace(doc.document_type, '_', ' '), doc.document_number, doc.status
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('document %s, total %s %s', doc.invoice_id, doc.total, doc.currency);
	END IF;
	IF NOT EXISTS (SELECT 1 FROM billing.invoice_line l WHERE l.account_id = doc.account_id AND l.invoice_id = doc.invoice_id) THEN
		RAISE EXCEPTION 'draft % % has no lines', replace(doc.document_type, '_', ' '), doc.invoice_id
			USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'Empty documents are not posted; delete the draft.';
	END IF;
	PERFORM billing.post_documents(ARRAY[doc.account_id], ARRAY[doc.invoice_id]);
	SELECT * INTO doc FROM billing.invoice i WHERE i.account_id = doc.account_id AND i.invoice_id = doc.invoice_id;
	RETURN doc;
END $$;
COMMENT ON FUNCTION billing.post_invoice(bigint) IS
	'Posts a draft document: assigns the next number of its series (INV-, CN-, DN-) and makes it immutable';

CREATE FUNCTION billing.void_invoice(invoice_id bigint, reason text, voided_on date DEFAULT CURRENT_DATE)
	RETURNS billing.invoice
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	doc billing.invoice;
BEGIN
	IF reason IS NULL OR voided_on IS NULL THEN
		RAISE EXCEPTION 'voiding needs a reason and a date' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	doc := billing.lock_document(invoice_id);
	IF doc.status <> 'posted' THEN
		RAISE EXCEPTION '% % is %, only posted documents are voided', replace(doc.document_type, '_', ' '),
			coalesce(doc.document_number, doc.invoice_id::text), doc.status
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = CASE doc.status WHEN 'draft' THEN 'Delete a draft instead.' ELSE 'It is already void.' END;
	END IF;
	IF voided_on < doc.invoice_date THEN
		RAISE EXCEPTION 'void date of % precedes its document date', doc.document_number
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('voided on %s, dated %s', voided_on, doc.invoice_date);
	END IF;

	-- money applied to or from it must be unapplied (or refunds undone) first
	-- live on the void date or after it: net allocations by then, or any dated later
	PERFORM 1 FROM billing.allocation a
	WHERE a.account_id = doc.account_id AND (a.invoice_id = doc.invoice_id OR a.credit_note_id = doc.invoice_id)
	HAVING coalesce(sum(a.amount) FILTER (WHERE a.allocated_on <= voided_on), 0) <> 0
		OR bool_or(a.allocated_on > voided_on);
	IF FOUND OR EXISTS (SELECT 1 FROM billing.refund r WHERE r.account_id = doc.account_id AND r.credit_note_id = doc.invoice_id) THEN
		RAISE EXCEPTION '% % has live allocations', replace(doc.document_type, '_', ' '), doc.document_number
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('allocated %s %s', (SELECT sum(a.amount) FROM billing.allocation a
													  WHERE a.account_id = doc.account_id
														AND (a.invoice_id = doc.invoice_id OR a.credit_note_id = doc.invoice_id)),
								  doc.currency),
				  HINT = 'Unapply its allocations with billing.unapply() first.';
	END IF;

	PERFORM pg_catalog.set_config('billing.document_write', 'on', true);
	UPDATE billing.invoice i
	SET status = 'void', voided_on = void_invoice.voided_on, void_reason = void_invoice.reason
	WHERE i.account_id = doc.account_id AND i.invoice_id = doc.invoice_id;
	PERFORM pg_catalog.set_config('billing.document_write', 'off', true);

	-- its periods are unbilled again: the next run re-bills them
	UPDATE billing.subscription s
	SET reconcile_from = least(coalesce(s.reconcile_from, v.first_day), v.first_day)
	FROM (SELECT l.subscription_id, min(coalesce(billing.period_start(l.cycle_period), s2.start_date)) AS first_day
		  FROM billing.invoice_line l
		  JOIN billing.subscription s2 ON s2.account_id = l.account_id AND s2.subscription_id = l.subscription_id
		  WHERE l.account_id = doc.account_id AND l.invoice_id = doc.invoice_id
		  GROUP BY l.subscription_id) v
	WHERE s.account_id = doc.account_id AND s.subscription_id = v.subscription_id;

	SELECT * INTO doc FROM billing.invoice i WHERE i.account_id = doc.account_id AND i.invoice_id = doc.invoice_id;
	RETURN doc;
END $$;
COMMENT ON FUNCTION billing.void_invoice(bigint, text, date) IS
	'Voids a posted document without live allocations; its periods become unbilled and the next run re-bills them';
