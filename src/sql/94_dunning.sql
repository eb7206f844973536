-- Dunning: notices for overdue documents, fees as debit notes, billing holds.

CREATE TABLE billing.dunning_level (
	level			int PRIMARY KEY
		CONSTRAINT dunning_level_positive CHECK (level > 0),
	days_overdue	int NOT NULL
		CONSTRAINT dunning_level_days_positive CHECK (days_overdue > 0),
	fee_amount		numeric NOT NULL DEFAULT 0
		CONSTRAINT dunning_level_fee_not_negative CHECK (fee_amount >= 0),
	hold_billing	boolean NOT NULL DEFAULT false,
	CONSTRAINT dunning_level_days_unique UNIQUE (days_overdue)
);
COMMENT ON TABLE billing.dunning_level IS 'Dunning configuration: the levels an overdue document goes through';
COMMENT ON COLUMN billing.dunning_level.level IS 'Level number: 1 is the first reminder';
COMMENT ON COLUMN billing.dunning_level.days_overdue IS 'Days past the due date at which the level is reached';
COMMENT ON COLUMN billing.dunning_level.fee_amount IS 'Fee charged as a debit note when the level is reached (in the document''s currency); 0: none';
COMMENT ON COLUMN billing.dunning_level.hold_billing IS 'When true, reaching the level puts the account on billing hold';

CREATE TABLE billing.dunning_notice (
	notice_id		bigserial,
	account_id		bigint NOT NULL,
	invoice_id		bigint NOT NULL,
	level			int NOT NULL REFERENCES billing.dunning_level,
	issued_on		date NOT NULL,
	fee_invoice_id	bigint,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (account_id, notice_id),
	UNIQUE (account_id, invoice_id, level),
	FOREIGN KEY (account_id, invoice_id) REFERENCES billing.invoice (account_id, invoice_id),
	FOREIGN KEY (account_id, fee_invoice_id) REFERENCES billing.invoice (account_id, invoice_id)
);
COMMENT ON TABLE billing.dunning_notice IS 'One notice per overdue document and level reached';
COMMENT ON COLUMN billing.dunning_notice.notice_id IS 'Notice id (sent with NOTIFY billing_dunning)';
COMMENT ON COLUMN billing.dunning_notice.account_id IS 'Account dunned';
COMMENT ON COLUMN billing.dunning_notice.invoice_id IS 'Overdue invoice or debit note';
COMMENT ON COLUMN billing.dunning_notice.level IS 'Dunning level reached';
COMMENT ON COLUMN billing.dunning_notice.issued_on IS 'Date of the notice (the as_of date of the run)';
COMMENT ON COLUMN billing.dunning_notice.fee_invoice_id IS 'Debit note charging the level''s fee, if any';
COMMENT ON COLUMN billing.dunning_notice.created_at IS 'When the row was created';

CREATE FUNCTION billing.run_dunning(as_of date DEFAULT CURRENT_DATE) RETURNS SETOF billing.dunning_notice
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	due record;
	acct billing.account;
	fee_doc billing.invoice;
	notice billing.dunning_notice;
BEGIN
	IF as_of IS NULL THEN
		RAISE EXCEPTION 'as_of of a dunning run must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM billing.lock_accounts(ARRAY(
		SELECT DISTINCT i.account_id FROM billing.invoice i
		WHERE i.status = 'posted' AND i.document_type IN ('invoice', 'debit_note') AND i.due_date < as_of));

	FOR due IN
		-- the open overdue documents, found once for the book (not per level)
		WITH overdue AS MATERIALIZED (
			SELECT o.account_id, o.id AS invoice_id FROM billing.open_items(as_of) o
			WHERE o.kind = 'document' AND o.document_type IN ('invoice', 'debit_note') AND o.status = 'posted'
			  AND o.due_date < as_of AND o.open_amount > 0
		)
		SELECT i.account_id, i.invoice_id, i.document_number, i.currency, l.level, l.fee_amount, l.hold_billing
		FROM overdue o
		JOIN billing.invoice i ON i.account_id = o.account_id AND i.invoice_id = o.invoice_id
		JOIN billing.dunning_level l ON as_of - i.due_date >= l.days_overdue
		-- fee debit notes are not dunned themselves
		WHERE NOT EXISTS (SELECT 1 FROM billing.dunning_notice n
						  WHERE n.account_id = i.account_id AND n.fee_invoice_id = i.invoice_id)
		  AND NOT EXISTS (SELECT 1 FROM billing.dunning_notice n
						  WHERE n.account_id = i.account_id AND n.invoice_id = i.invoice_id AND n.level = l.level)
		ORDER BY i.account_id, i.invoice_id, l.level
	LOOP
		SELECT * INTO acct FROM billing.account a WHERE a.account_id = due.account_id;
		fee_doc := NULL;
		IF billing.round_money(due.fee_amount, due.currency) > 0 THEN
			acct.currency := due.currency;	-- the fee is charged in the document's currency
			fee_doc := billing.create_debit_note(acct, billing.round_money(due.fee_amount, due.currency),
												 format('Dunning fee, level %s, %s', due.level, due.document_number),
												 as_of, 'fee');
		END IF;
		INSERT INTO billing.dunning_notice AS n (account_id, invoice_id, level, issued_on, fee_invoice_id)
		VALUES (due.account_id, due.invoice_id, due.level, as_of, fee_doc.invoice_id)
		RETURNING * INTO notice;
		IF due.hold_billing THEN
			UPDATE billing.account a SET billing_hold = true WHERE a.account_id = due.account_id AND NOT a.billing_hold;
		END IF;
		PERFORM pg_catalog.pg_notify('billing_dunning', notice.notice_id::text);
		RETURN NEXT notice;
	END LOOP;
END $$;
COMMENT ON FUNCTION billing.run_dunning(date) IS
	'Issues one notice per open overdue invoice or debit note and level reached (idempotent); fees become debit notes, hold_billing holds the account, each notice sends NOTIFY billing_dunning';

SELECT pg_catalog.pg_extension_config_dump('billing.dunning_level', '');
SELECT pg_catalog.pg_extension_config_dump('billing.dunning_notice', '');
SELECT pg_catalog.pg_extension_config_dump('billing.dunning_notice_notice_id_seq', '');
