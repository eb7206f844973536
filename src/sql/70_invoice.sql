-- Billing documents: invoices, credit notes and debit notes share one table,
-- one line table and one numbering machinery.

CREATE TABLE billing.invoice_batch (
	batch_id		bigserial PRIMARY KEY,
	target_date		date NOT NULL,
	invoice_date	date NOT NULL,
	auto_post		boolean NOT NULL DEFAULT true,
	started_at		timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	finished_at		timestamptz,
	status			text NOT NULL DEFAULT 'running'
		CONSTRAINT invoice_batch_status_valid CHECK (status IN ('running', 'completed')),
	accounts		int NOT NULL DEFAULT 0,
	invoices		int NOT NULL DEFAULT 0,
	lines			bigint NOT NULL DEFAULT 0,
	total_amount	numeric NOT NULL DEFAULT 0
);
COMMENT ON TABLE billing.invoice_batch IS 'One row per invoice run: what it was asked for and what it created';
COMMENT ON COLUMN billing.invoice_batch.batch_id IS 'Batch id';
COMMENT ON COLUMN billing.invoice_batch.target_date IS 'Date billed up to: periods due on or before it';
COMMENT ON COLUMN billing.invoice_batch.invoice_date IS 'Document date of the documents created';
COMMENT ON COLUMN billing.invoice_batch.auto_post IS 'Whether the documents were posted (numbered) by the run';
COMMENT ON COLUMN billing.invoice_batch.started_at IS 'When the run started';
COMMENT ON COLUMN billing.invoice_batch.finished_at IS 'When the run finished';
COMMENT ON COLUMN billing.invoice_batch.status IS 'running or completed (a failed run rolls back and leaves no row)';
COMMENT ON COLUMN billing.invoice_batch.accounts IS 'Accounts that received a document';
COMMENT ON COLUMN billing.invoice_batch.invoices IS 'Documents created (invoices and credit notes)';
COMMENT ON COLUMN billing.invoice_batch.lines IS 'Lines created';
COMMENT ON COLUMN billing.invoice_batch.total_amount IS 'Sum of the documents'' totals, tax included, across currencies';

CREATE TABLE billing.invoice (
	invoice_id			bigserial,
	account_id			bigint NOT NULL REFERENCES billing.account,
	batch_id			bigint REFERENCES billing.invoice_batch,
	document_type		text NOT NULL DEFAULT 'invoice'
		CONSTRAINT invoice_document_type_valid CHECK (document_type IN ('invoice', 'credit_note', 'debit_note')),
	document_number		text,
	status				text NOT NULL DEFAULT 'draft'
		CONSTRAINT invoice_status_valid CHECK (status IN ('draft', 'posted', 'void')),
	invoice_date		date NOT NULL,
	due_date			date,
	currency			text NOT NULL REFERENCES billing.currency (code),
	subtotal			numeric NOT NULL DEFAULT 0,
	tax_total			numeric NOT NULL DEFAULT 0,
	total				numeric NOT NULL DEFAULT 0,
	corrects_invoice_id	bigint,
	credit_kind			text
		CONSTRAINT invoice_credit_kind_valid CHECK (credit_kind IN ('credit', 'write_off')),
	reason				text,
	posted_at			timestamptz,
	voided_on			date,
	void_reason			text,
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (account_id, invoice_id),
	FOREIGN KEY (account_id, corrects_invoice_id) REFERENCES billing.invoice (account_id, invoice_id),
	CONSTRAINT invoice_credit_note_not_due CHECK (document_type <> 'credit_note' OR due_date IS NULL),
	CONSTRAINT invoice_credit_kind_on_credit_notes CHECK (credit_kind IS NULL OR document_type = 'credit_note'),
	CONSTRAINT invoice_posted_numbered CHECK ((status = 'draft') = (document_number IS NULL)),
	CONSTRAINT invoice_void_dated CHECK ((status = 'void') = (voided_on IS NOT NULL)),
	CONSTRAINT invoice_total_is_sum CHECK (total = subtotal + tax_total)
);
CREATE INDEX invoice_id_idx ON billing.invoice (invoice_id);
CREATE INDEX invoice_number_idx ON billing.invoice (document_number) WHERE document_number IS NOT NULL;
CREATE INDEX invoice_batch_idx ON billing.invoice (batch_id) WHERE batch_id IS NOT NULL;
COMMENT ON TABLE billing.invoice IS 'Billing documents: invoices, credit notes and debit notes. Amounts are signed by their effect on what the customer owes; posted documents are immutable';
COMMENT ON COLUMN billing.invoice.invoice_id IS 'Document id';
COMMENT ON COLUMN billing.invoice.account_id IS 'Account billed';
COMMENT ON COLUMN billing.invoice.batch_id IS 'Invoice run that created it; NULL for documents created by hand';
COMMENT ON COLUMN billing.invoice.document_type IS 'invoice, credit_note or debit_note';
COMMENT ON COLUMN billing.invoice.document_number IS 'INV-000001, CN-000001, DN-000001: one gapless series per type, assigned when posted';
COMMENT ON COLUMN billing.invoice.status IS 'draft (editable, unnumbered), posted (immutable) or void';
COMMENT ON COLUMN billing.invoice.invoice_date IS 'Document date';
COMMENT ON COLUMN billing.invoice.due_date IS 'Due date: document date plus the account''s payment terms; NULL for credit notes';
COMMENT ON COLUMN billing.invoice.currency IS 'Currency of every amount of the document';
COMMENT ON COLUMN billing.invoice.subtotal IS 'Sum of line amounts';
COMMENT ON COLUMN billing.invoice.tax_total IS 'Sum of line tax amounts';
COMMENT ON COLUMN billing.invoice.total IS 'subtotal + tax_total; negative for credit notes';
COMMENT ON COLUMN billing.invoice.corrects_invoice_id IS 'Credit notes: the invoice corrected';
COMMENT ON COLUMN billing.invoice.credit_kind IS 'Credit notes: credit or write_off';
COMMENT ON COLUMN billing.invoice.reason IS 'Why the document was issued';
COMMENT ON COLUMN billing.invoice.posted_at IS 'When it was posted';
COMMENT ON COLUMN billing.invoice.voided_on IS 'Date it was voided; NULL while not void';
COMMENT ON COLUMN billing.invoice.void_reason IS 'Why it was voided';
COMMENT ON COLUMN billing.invoice.created_at IS 'When the row was created';

CREATE TABLE billing.invoice_line (
	line_id			bigserial,
	account_id		bigint NOT NULL,
	invoice_id		bigint NOT NULL,
	line_number		int NOT NULL,
	subscription_id	bigint,
	price_id		bigint REFERENCES billing.price,
	kind			text NOT NULL
		CONSTRAINT invoice_line_kind_valid CHECK (kind IN ('recurring', 'usage', 'one_time', 'proration', 'adjustment', 'fee')),
	service_period	billing.billing_period,
	cycle_period	billing.billing_period,
	quantity		numeric,
	unit_amount		numeric,
	amount			numeric NOT NULL,
	tax_amount		numeric NOT NULL DEFAULT 0,
	description		text,
	PRIMARY KEY (account_id, line_id),
	FOREIGN KEY (account_id, invoice_id) REFERENCES billing.invoice,
	FOREIGN KEY (account_id, subscription_id) REFERENCES billing.subscription,
	CONSTRAINT invoice_line_period_kinds CHECK (
		CASE WHEN kind IN ('recurring', 'usage', 'proration')
			 THEN service_period IS NOT NULL AND cycle_period IS NOT NULL AND subscription_id IS NOT NULL
			 ELSE cycle_period IS NULL END)
);
CREATE INDEX invoice_line_invoice_idx ON billing.invoice_line (account_id, invoice_id, line_number);
-- A subscription's lines by the day their period key ends (infinity: no
-- period, as one-time charges): a run reads only the lines of its window, by
-- index, not every line a subscription was ever billed.
CREATE INDEX invoice_line_subscription_idx
	ON billing.invoice_line (account_id, subscription_id, coalesce(billing.period_end(cycle_period), 'infinity'))
	WHERE subscription_id IS NOT NULL;
-- A month-end run takes a million line ids: each session takes them a
-- thousand at a time, not one by one (a session that ends leaves a gap; line
-- ids identify a line and order nothing).
ALTER SEQUENCE billing.invoice_line_line_id_seq CACHE 1000;
COMMENT ON TABLE billing.invoice_line IS 'Lines of billing documents; charges positive, credits negative';
COMMENT ON COLUMN billing.invoice_line.line_id IS 'Line id';
COMMENT ON COLUMN billing.invoice_line.account_id IS 'Account of the document';
COMMENT ON COLUMN billing.invoice_line.invoice_id IS 'Document the line belongs to';
COMMENT ON COLUMN billing.invoice_line.line_number IS 'Position on the document: by subscription, then period';
COMMENT ON COLUMN billing.invoice_line.subscription_id IS 'Subscription charged; NULL for adjustments and fees';
COMMENT ON COLUMN billing.invoice_line.price_id IS 'Price charged';
COMMENT ON COLUMN billing.invoice_line.kind IS 'recurring, usage, one_time, proration (both halves of a mid-period change), adjustment (credit notes) or fee (dunning)';
COMMENT ON COLUMN billing.invoice_line.service_period IS 'Days the line charges or credits; NULL for one_time, adjustment and fee lines';
COMMENT ON COLUMN billing.invoice_line.cycle_period IS 'Regular cycle period the line is reconciled under (its service period''s whole)';
COMMENT ON COLUMN billing.invoice_line.quantity IS 'Quantity charged';
COMMENT ON COLUMN billing.invoice_line.unit_amount IS 'Unit amount charged';
COMMENT ON COLUMN billing.invoice_line.amount IS 'Line amount before tax, rounded to the currency''s minor unit';
COMMENT ON COLUMN billing.invoice_line.tax_amount IS 'Tax on the line: round(amount x effective rate)';
COMMENT ON COLUMN billing.invoice_line.description IS 'Text printed on the document';

-- Gapless numbering: one row per document type, its last number.  The row
-- lock serializes posting; a rolled-back posting leaves no gap.
CREATE TABLE billing.document_series (
	document_type	text PRIMARY KEY
		CONSTRAINT document_series_type_valid CHECK (document_type IN ('invoice', 'credit_note', 'debit_note')),
	last_number		bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE billing.document_series IS 'Last number of each document type''s continuous series (never reset)';
COMMENT ON COLUMN billing.document_series.document_type IS 'invoice, credit_note or debit_note';
COMMENT ON COLUMN billing.document_series.last_number IS 'Last number assigned';

-- Reserve "count" consecutive numbers of a series; returns the first.
CREATE FUNCTION billing.take_document_numbers(document_type text, count bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	last bigint;
BEGIN
	INSERT INTO billing.document_series AS s (document_type)
	VALUES (take_document_numbers.document_type)
	ON CONFLICT ON CONSTRAINT document_series_pkey DO NOTHING;
	UPDATE billing.document_series s SET last_number = s.last_number + count
	WHERE s.document_type = take_document_numbers.document_type
	RETURNING s.last_number INTO last;
	RETURN last - count + 1;
END $$;
COMMENT ON FUNCTION billing.take_document_numbers(text, bigint) IS 'Reserves consecutive numbers of a document series (row-locked until commit); returns the first';

CREATE FUNCTION billing.format_document_number(document_type text, number bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE document_type WHEN 'invoice' THEN 'INV-' WHEN 'credit_note' THEN 'CN-' ELSE 'DN-' END
	   || pg_catalog.lpad(number::text, 6, '0');
COMMENT ON FUNCTION billing.format_document_number(text, bigint) IS 'Document number text: INV-000001, CN-000001, DN-000001 (the one place the prefixes are defined)';

-- The numbers of documents being posted: a block of each series, taken in a
-- fixed order of the series (their rows are the locks), and within a type
-- the next number for each document in id order.  The one place documents
-- are numbered (post_documents, and runs that post what they write).
CREATE FUNCTION billing.number_documents(account_ids bigint[], invoice_ids bigint[], document_types text[])
	RETURNS TABLE (account_id bigint, invoice_id bigint, document_number text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	doc_type text;
	doc_count bigint;
	first_number bigint;
BEGIN
	FOR doc_type, doc_count IN
		SELECT d.document_type, count(*) FROM unnest(document_types) AS d(document_type) GROUP BY 1 ORDER BY 1
	LOOP
		first_number := billing.take_document_numbers(doc_type, doc_count);
		RETURN QUERY
		SELECT d.account_id, d.invoice_id,
			   billing.format_document_number(doc_type, first_number + row_number() OVER (ORDER BY d.invoice_id) - 1)
		FROM unnest(account_ids, invoice_ids, document_types) AS d(account_id, invoice_id, document_type)
		WHERE d.document_type = doc_type;
	END LOOP;
END $$;
COMMENT ON FUNCTION billing.number_documents(bigint[], bigint[], text[]) IS
	'Takes the numbers of documents being posted: one block per series in a fixed order, numbers in document id order';

-- Posted and void documents are immutable, but for voiding a posted one.
CREATE FUNCTION billing.invoice_guard_posted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_OP = 'UPDATE' AND OLD.status = 'posted' AND NEW.status = 'void'
	   AND (NEW.account_id, NEW.batch_id, NEW.document_type, NEW.document_number, NEW.invoice_date, NEW.due_date,
			NEW.currency, NEW.subtotal, NEW.tax_total, NEW.total, NEW.corrects_invoice_id, NEW.credit_kind,
			NEW.reason, NEW.posted_at)
		   IS NOT DISTINCT FROM
		   (OLD.account_id, OLD.batch_id, OLD.document_type, OLD.document_number, OLD.invoice_date, OLD.due_date,
			OLD.currency, OLD.subtotal, OLD.tax_total, OLD.total, OLD.corrects_invoice_id, OLD.credit_kind,
			OLD.reason, OLD.posted_at)
	   AND pg_catalog.current_setting('billing.document_write', true) = 'on' THEN
		RETURN NEW;
	END IF;
	RAISE EXCEPTION '% % is % and cannot be %', replace(OLD.document_type, '_', ' '), OLD.document_number,
		OLD.status, CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'changed' END
		USING ERRCODE = 'object_not_in_prerequisite_state',
			  DETAIL = format('total %s %s dated %s', OLD.total, OLD.currency, OLD.invoice_date),
			  HINT = 'Correct a posted document with a credit note, or void it with billing.void_invoice().';
END $$;
COMMENT ON FUNCTION billing.invoice_guard_posted() IS 'Trigger: posted documents are immutable; void them or credit them';
CREATE TRIGGER invoice_guard_posted BEFORE UPDATE OR DELETE ON billing.invoice
	FOR EACH ROW WHEN (OLD.status <> 'draft')
	EXECUTE FUNCTION billing.invoice_guard_posted();

CREATE FUNCTION billing.invoice_line_guard_update() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	doc billing.invoice;
BEGIN
	SELECT * INTO doc FROM billing.invoice i WHERE i.account_id = OLD.account_id AND i.invoice_id = OLD.invoice_id;
	IF doc.status <> 'draft' THEN
		RAISE EXCEPTION 'lines of % % are % and cannot be %', replace(doc.document_type, '_', ' '), doc.document_number,
			doc.status, CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'changed' END
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('line %s amount %s %s', OLD.line_number, OLD.amount, doc.currency);
	END IF;
	RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END $$;
COMMENT ON FUNCTION billing.invoice_line_guard_update() IS 'Trigger: lines of posted documents are immutable';
CREATE TRIGGER invoice_line_guard_update BEFORE UPDATE OR DELETE ON billing.invoice_line
	FOR EACH ROW EXECUTE FUNCTION billing.invoice_line_guard_update();

-- New lines only on drafts: one check per statement, so bulk runs pay little.
CREATE FUNCTION billing.invoice_line_guard_insert() RETURNS trigger
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
CREATE TRIGGER invoice_line_guard_insert AFTER INSERT ON billing.invoice_line
	REFERENCING NEW TABLE AS new_lines
	FOR EACH STATEMENT EXECUTE FUNCTION billing.invoice_line_guard_insert();

SELECT pg_catalog.pg_extension_config_dump('billing.invoice_batch', '');
SELECT pg_catalog.pg_extension_config_dump('billing.invoice_batch_batch_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('billing.invoice', '');
SELECT pg_catalog.pg_extension_config_dump('billing.invoice_invoice_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('billing.invoice_line', '');
SELECT pg_catalog.pg_extension_config_dump('billing.invoice_line_line_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('billing.document_series', '');
