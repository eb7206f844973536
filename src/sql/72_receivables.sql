-- Receivables: payments, allocations and refunds.  Append-only: corrections
-- are new rows (a reversing allocation), so every balance can be computed as
-- of any past date.

CREATE TABLE billing.payment (
	payment_id		bigserial,
	account_id		bigint NOT NULL REFERENCES billing.account,
	amount			numeric NOT NULL
		CONSTRAINT payment_amount_positive CHECK (amount > 0),
	currency		text NOT NULL REFERENCES billing.currency (code),
	received_on		date NOT NULL,
	method			text,
	reference		text,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (account_id, payment_id),
	UNIQUE (account_id, reference)
);
CREATE INDEX payment_id_idx ON billing.payment (payment_id);
COMMENT ON TABLE billing.payment IS 'Money received from a customer; applied to documents by allocations';
COMMENT ON COLUMN billing.payment.payment_id IS 'Payment id';
COMMENT ON COLUMN billing.payment.account_id IS 'Paying account';
COMMENT ON COLUMN billing.payment.amount IS 'Amount received, positive, in the account''s currency';
COMMENT ON COLUMN billing.payment.currency IS 'Currency of the payment';
COMMENT ON COLUMN billing.payment.received_on IS 'Date received: the payment counts from this date';
COMMENT ON COLUMN billing.payment.method IS 'Payment method, e.g. card, wire';
COMMENT ON COLUMN billing.payment.reference IS 'Caller''s reference: record_payment is idempotent on (account, reference)';
COMMENT ON COLUMN billing.payment.created_at IS 'When the row was created';

CREATE TABLE billing.allocation (
	allocation_id			bigserial,
	account_id				bigint NOT NULL,
	invoice_id				bigint NOT NULL,
	payment_id				bigint,
	credit_note_id			bigint,
	amount					numeric NOT NULL
		CONSTRAINT allocation_amount_not_zero CHECK (amount <> 0),
	allocated_on			date NOT NULL,
	reverses_allocation_id	bigint,
	created_at				timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (account_id, allocation_id),
	FOREIGN KEY (account_id, invoice_id) REFERENCES billing.invoice (account_id, invoice_id),
	FOREIGN KEY (account_id, payment_id) REFERENCES billing.payment (account_id, payment_id),
	FOREIGN KEY (account_id, credit_note_id) REFERENCES billing.invoice (account_id, invoice_id),
	FOREIGN KEY (account_id, reverses_allocation_id) REFERENCES billing.allocation (account_id, allocation_id),
	CONSTRAINT allocation_one_source CHECK ((payment_id IS NULL) <> (credit_note_id IS NULL)),
	CONSTRAINT allocation_reversal_negative CHECK ((reverses_allocation_id IS NULL) = (amount > 0)),
	CONSTRAINT allocation_reversed_once UNIQUE (account_id, reverses_allocation_id)
);
CREATE INDEX allocation_id_idx ON billing.allocation (allocation_id);
CREATE INDEX allocation_invoice_idx ON billing.allocation (account_id, invoice_id);
CREATE INDEX allocation_payment_idx ON billing.allocation (account_id, payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX allocation_credit_note_idx ON billing.allocation (account_id, credit_note_id) WHERE credit_note_id IS NOT NULL;
COMMENT ON TABLE billing.allocation IS 'Money from one source (a payment or a posted credit note) applied to an invoice or debit note; a reversal is a new row with the negated amount';
COMMENT ON COLUMN billing.allocation.allocation_id IS 'Allocation id';
COMMENT ON COLUMN billing.allocation.account_id IS 'Account of source and target';
COMMENT ON COLUMN billing.allocation.invoice_id IS 'Target document: an invoice or debit note';
COMMENT ON COLUMN billing.allocation.payment_id IS 'Source payment, or NULL';
COMMENT ON COLUMN billing.allocation.credit_note_id IS 'Source credit note (its invoice_id), or NULL';
COMMENT ON COLUMN billing.allocation.amount IS 'Amount applied; negative on a reversal';
COMMENT ON COLUMN billing.allocation.allocated_on IS 'Date the allocation counts from';
COMMENT ON COLUMN billing.allocation.reverses_allocation_id IS 'The allocation this row reverses (unapply)';
COMMENT ON COLUMN billing.allocation.created_at IS 'When the row was created';

CREATE TABLE billing.refund (
	refund_id		bigserial,
	account_id		bigint NOT NULL,
	payment_id		bigint,
	credit_note_id	bigint,
	amount			numeric NOT NULL
		CONSTRAINT refund_amount_positive CHECK (amount > 0),
	refunded_on		date NOT NULL,
	reference		text,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (account_id, refund_id),
	FOREIGN KEY (account_id, payment_id) REFERENCES billing.payment (account_id, payment_id),
	FOREIGN KEY (account_id, credit_note_id) REFERENCES billing.invoice (account_id, invoice_id),
	CONSTRAINT refund_one_source CHECK ((payment_id IS NULL) <> (credit_note_id IS NULL))
);
CREATE INDEX refund_payment_idx ON billing.refund (account_id, payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX refund_credit_note_idx ON billing.refund (account_id, credit_note_id) WHERE credit_note_id IS NOT NULL;
COMMENT ON TABLE billing.refund IS 'Money paid back from the unapplied part of a payment or credit note';
COMMENT ON COLUMN billing.refund.refund_id IS 'Refund id';
COMMENT ON COLUMN billing.refund.account_id IS 'Account refunded';
COMMENT ON COLUMN billing.refund.payment_id IS 'Source payment, or NULL';
COMMENT ON COLUMN billing.refund.credit_note_id IS 'Source credit note, or NULL';
COMMENT ON COLUMN billing.refund.amount IS 'Amount refunded, positive';
COMMENT ON COLUMN billing.refund.refunded_on IS 'Date refunded';
COMMENT ON COLUMN billing.refund.reference IS 'Caller''s reference';
COMMENT ON COLUMN billing.refund.created_at IS 'When the row was created';

CREATE FUNCTION billing.append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION '% rows are append-only', TG_TABLE_NAME
		USING ERRCODE = 'object_not_in_prerequisite_state',
			  DETAIL = format('%s of %s', lower(TG_OP), row_to_json(OLD)),
			  HINT = 'Record a correction instead: billing.unapply(), a credit note or a refund.';
END $$;
COMMENT ON FUNCTION billing.append_only() IS 'Trigger: payments, allocations and refunds are never updated or deleted';
CREATE TRIGGER payment_append_only BEFORE UPDATE OR DELETE ON billing.payment
	FOR EACH ROW EXECUTE FUNCTION billing.append_only();
CREATE TRIGGER allocation_append_only BEFORE UPDATE OR DELETE ON billing.allocation
	FOR EACH ROW EXECUTE FUNCTION billing.append_only();
CREATE TRIGGER refund_append_only BEFORE UPDATE OR DELETE ON billing.refund
	FOR EACH ROW EXECUTE FUNCTION billing.append_only();

-- Balances as of a date: the one place the receivable rules live.

-- What leaves a money source (a payment, or a posted credit note): its
-- allocations and its refunds, each positive and dated.  Inlined; a condition
-- on payment_id or credit_note_id reaches the partial indexes of both tables.
CREATE FUNCTION billing.source_movements(account_ids bigint[] DEFAULT NULL)
	RETURNS TABLE (account_id bigint, payment_id bigint, credit_note_id bigint, moved_on date, amount numeric)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT a.account_id, a.payment_id, a.credit_note_id, a.allocated_on, a.amount FROM billing.allocation a
	WHERE account_ids IS NULL OR a.account_id = ANY (account_ids)
	UNION ALL
	SELECT r.account_id, r.payment_id, r.credit_note_id, r.refunded_on, r.amount FROM billing.refund r
	WHERE account_ids IS NULL OR r.account_id = ANY (account_ids);
END;
COMMENT ON FUNCTION billing.source_movements(bigint[]) IS
	'Allocations from and refunds of payments and credit notes (positive, dated), optionally of some accounts only';

-- Every open item of the book as of D (SPEC §6), set-based: each posted or
-- void document dated <= D and each payment received <= D, with what is open
-- of it, signed by its effect on what the customer owes.  Invoices and debit
-- notes: total - allocations to them; credit notes: -(credit left) = total +
-- allocations from them + refunds of them; payments: -(unapplied) = -amount +
-- allocations from them + refunds of them; 0 once void.  Drafts and items
-- dated after D are not items (callers read NULL).
-- Documents and payments are two branches, each hash-joined to the sum of
-- the rows that move it (allocations to it; what left it as a source), so
-- each sum is no larger than its own items.  The function is inlined: a
-- caller's equality on account_id, or on account_id, kind and id, reaches the
-- indexes of every branch (the other kind's branch folds away), so one
-- account or one document costs its own rows only.  account_ids, when given,
-- restricts every branch to those accounts (a list does not propagate across
-- a join as an equality does).
CREATE FUNCTION billing.open_items(as_of date, account_ids bigint[] DEFAULT NULL)
	RETURNS TABLE (account_id bigint, kind text, id bigint, document_type text, document_number text,
				   currency text, item_date date, due_date date, status text, open_amount numeric)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT i.account_id, 'document', i.invoice_id, i.document_type, i.document_number, i.currency, i.invoice_date,
		   i.due_date, i.status, CASE WHEN i.voided_on <= as_of THEN 0 ELSE i.total + coalesce(u.moved, 0) END
	FROM billing.invoice i
	LEFT JOIN (
		SELECT m.account_id, m.invoice_id, billing.money_sum(m.amount)
		FROM (SELECT a.account_id, a.invoice_id, -a.amount FROM billing.allocation a
			  WHERE a.allocated_on <= as_of
				AND (account_ids IS NULL OR a.account_id = ANY (account_ids))
			  UNION ALL
			  SELECT s.account_id, s.credit_note_id, s.amount FROM billing.source_movements(account_ids) s
			  WHERE s.credit_note_id IS NOT NULL AND s.moved_on <= as_of) AS m (account_id, invoice_id, amount)
		GROUP BY m.account_id, m.invoice_id
	) AS u (account_id, invoice_id, moved) ON u.account_id = i.account_id AND u.invoice_id = i.invoice_id
	WHERE i.status <> 'draft' AND i.invoice_date <= as_of
	  AND (account_ids IS NULL OR i.account_id = ANY (account_ids))
	UNION ALL
	SELECT p.account_id, 'payment', p.payment_id, 'payment', p.reference, p.currency, p.received_on, NULL, 'posted',
		   -p.amount + coalesce(u.moved, 0)
	FROM billing.payment p
	LEFT JOIN (
		SELECT s.account_id, s.payment_id, billing.money_sum(s.amount) FROM billing.source_movements(account_ids) s
		WHERE s.payment_id IS NOT NULL AND s.moved_on <= as_of
		GROUP BY s.account_id, s.payment_id
	) AS u (account_id, payment_id, moved) ON u.account_id = p.account_id AND u.payment_id = p.payment_id
	WHERE p.received_on <= as_of
	  AND (account_ids IS NULL OR p.account_id = ANY (account_ids));
END;
COMMENT ON FUNCTION billing.open_items(date, bigint[]) IS
	'Every posted or void document (kind document, id its invoice_id) and every payment (kind payment, id its payment_id) as of a date with its open amount (owed positive, credit negative, void 0), optionally of some accounts only: the one definition of the open-amount rule';

-- One item of open_items, for callers holding a row.  PL/pgSQL, so the lookup
-- is planned once per session (a generic plan: the keys reach the indexes as
-- parameters), not once per calling statement as a SQL function would be.
CREATE FUNCTION billing.document_open_amount(doc billing.invoice, as_of date) RETURNS numeric
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
	RETURN (SELECT o.open_amount FROM billing.open_items(as_of) o
			WHERE o.account_id = doc.account_id AND o.kind = 'document' AND o.id = doc.invoice_id);
END $$;
COMMENT ON FUNCTION billing.document_open_amount(billing.invoice, date) IS
	'Open amount of a document as of a date: invoices and debit notes what is owed, credit notes the unapplied credit as a negative number; NULL before its date or while a draft, 0 once void';

CREATE FUNCTION billing.payment_unapplied(pay billing.payment, as_of date) RETURNS numeric
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
	RETURN (SELECT -o.open_amount FROM billing.open_items(as_of) o
			WHERE o.account_id = pay.account_id AND o.kind = 'payment' AND o.id = pay.payment_id);
END $$;
COMMENT ON FUNCTION billing.payment_unapplied(billing.payment, date) IS
	'Unapplied part of a payment as of a date: amount less allocations and refunds; NULL before it was received';

-- The least a document's open amount / a payment's unapplied part is on any
-- date from from_date on: a new allocation or refund dated from_date must fit
-- in it, or some past date's balance would go below zero.
CREATE FUNCTION billing.document_open_amount_from(doc billing.invoice, from_date date) RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT min(billing.document_open_amount(doc, t.day))
	FROM (SELECT from_date AS day
		  UNION SELECT a.allocated_on FROM billing.allocation a
		  WHERE a.account_id = doc.account_id AND (a.invoice_id = doc.invoice_id OR a.credit_note_id = doc.invoice_id)
			AND a.allocated_on > from_date
		  UNION SELECT r.refunded_on FROM billing.refund r
		  WHERE r.account_id = doc.account_id AND r.credit_note_id = doc.invoice_id AND r.refunded_on > from_date) t;
END;
COMMENT ON FUNCTION billing.document_open_amount_from(billing.invoice, date) IS
	'Least open amount of a document on any date from from_date on (credit notes: the largest negative, i.e. least credit left)';

CREATE FUNCTION billing.payment_unapplied_from(pay billing.payment, from_date date) RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT min(billing.payment_unapplied(pay, t.day))
	FROM (SELECT greatest(from_date, pay.received_on) AS day
		  UNION SELECT a.allocated_on FROM billing.allocation a
		  WHERE a.account_id = pay.account_id AND a.payment_id = pay.payment_id AND a.allocated_on > from_date
		  UNION SELECT r.refunded_on FROM billing.refund r
		  WHERE r.account_id = pay.account_id AND r.payment_id = pay.payment_id AND r.refunded_on > from_date) t;
END;
COMMENT ON FUNCTION billing.payment_unapplied_from(billing.payment, date) IS
	'Least unapplied part of a payment on any date from from_date on';

-- A balance needs a date: NULL would silently subtract nothing (22004).
CREATE FUNCTION billing.check_as_of(as_of date) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF as_of IS NULL THEN
		RAISE EXCEPTION 'as_of date must not be NULL' USING ERRCODE = 'null_value_not_allowed',
			HINT = 'Balances, aging and deferred revenue are computed as of a date; omit the argument for today.';
	END IF;
END $$;
COMMENT ON FUNCTION billing.check_as_of(date) IS 'Rejects a NULL as-of date';

CREATE FUNCTION billing.invoice_balance(invoice_id bigint, as_of date DEFAULT CURRENT_DATE) RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	doc billing.invoice;
BEGIN
	PERFORM billing.check_as_of(as_of);
	SELECT * INTO doc FROM billing.invoice i WHERE i.invoice_id = invoice_balance.invoice_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'document % does not exist', invoice_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN billing.document_open_amount(doc, as_of);
END $$;
COMMENT ON FUNCTION billing.invoice_balance(bigint, date) IS
	'Open amount of a document as of a date (credit notes: unapplied credit, negative); NULL before its date; 0 once void';

CREATE FUNCTION billing.account_balance(account_id bigint, as_of date DEFAULT CURRENT_DATE) RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM billing.check_as_of(as_of);
	IF NOT EXISTS (SELECT 1 FROM billing.account a WHERE a.account_id = account_balance.account_id) THEN
		RAISE EXCEPTION 'account % does not exist', account_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- in the account's currency: documents in other currencies are not summed into it
	RETURN coalesce((SELECT sum(o.open_amount)
					 FROM billing.open_items(as_of) o JOIN billing.account a ON a.account_id = o.account_id
					 WHERE o.account_id = account_balance.account_id AND o.currency = a.currency), 0);
END $$;
COMMENT ON FUNCTION billing.account_balance(bigint, date) IS
	'What the account owes as of a date, in its currency: open invoices and debit notes minus unapplied payments and credit notes';

SELECT pg_catalog.pg_extension_config_dump('billing.payment', '');
SELECT pg_catalog.pg_extension_config_dump('billing.payment_payment_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('billing.allocation', '');
SELECT pg_catalog.pg_extension_config_dump('billing.allocation_allocation_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('billing.refund', '');
SELECT pg_catalog.pg_extension_config_dump('billing.refund_refund_id_seq', '');
