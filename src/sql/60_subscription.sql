-- Subscriptions and their dated timeline.
--
-- subscription holds the current terms and the engine's watermarks;
-- subscription_change is the timeline the expected charge of any period is
-- recomputed from: each 'start'/'change' row sets the full terms from its
-- effective_date until the next row (the latest row wins on equal dates).

CREATE TABLE billing.subscription (
	subscription_id			bigserial,
	account_id				bigint NOT NULL REFERENCES billing.account,
	price_id				bigint NOT NULL REFERENCES billing.price,
	quantity				numeric NOT NULL DEFAULT 1
		CONSTRAINT subscription_quantity_not_negative CHECK (quantity >= 0),
	unit_amount				numeric
		CONSTRAINT subscription_unit_amount_valid CHECK (unit_amount >= 0 AND scale(unit_amount) <= 6),
	start_date				date NOT NULL
		CONSTRAINT subscription_start_date_finite CHECK (start_date > '0001-01-01' AND start_date < '9999-01-01'),
	end_date				date,
	bill_cycle_day			smallint
		CONSTRAINT subscription_bill_cycle_day_range CHECK (bill_cycle_day BETWEEN 1 AND 31),
	next_bill_date_override	date,
	billing_hold			boolean NOT NULL DEFAULT false,
	prorate_final_period	boolean NOT NULL DEFAULT true,
	billed_through			date,
	reconcile_from			date,
	next_due_date			date,
	last_target_date		date,
	created_at				timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (account_id, subscription_id),
	CONSTRAINT subscription_end_after_start CHECK (end_date >= start_date)
)
-- Every run rewrites the watermarks of the subscriptions it bills.  With no
-- index on a watermark column and room left on each page, that update is HOT
-- (no index entries, 2.7x faster); a run finds its subscriptions by scanning
-- the table, which costs less than one update.
WITH (fillfactor = 50);
CREATE INDEX subscription_id_idx ON billing.subscription (subscription_id);
COMMENT ON TABLE billing.subscription IS 'An account''s subscription to a price. Change terms with billing.change_subscription() and billing.cancel_subscription(), which keep the dated timeline';
COMMENT ON COLUMN billing.subscription.subscription_id IS 'Subscription id';
COMMENT ON COLUMN billing.subscription.account_id IS 'Account billed';
COMMENT ON COLUMN billing.subscription.price_id IS 'Current price';
COMMENT ON COLUMN billing.subscription.quantity IS 'Current quantity';
COMMENT ON COLUMN billing.subscription.unit_amount IS 'Current unit amount overriding the price''s (flat, per_unit, package models); NULL: the price''s';
COMMENT ON COLUMN billing.subscription.start_date IS 'First day of service';
COMMENT ON COLUMN billing.subscription.end_date IS 'First day without service (set by cancel_subscription); NULL: open-ended';
COMMENT ON COLUMN billing.subscription.bill_cycle_day IS 'Day of month to bill on; NULL: the account''s, else the start day';
COMMENT ON COLUMN billing.subscription.next_bill_date_override IS 'Runs before this date skip the subscription; the run that bills on or after it clears it';
COMMENT ON COLUMN billing.subscription.billing_hold IS 'When true, invoice runs skip the subscription; released, the next run catches up';
COMMENT ON COLUMN billing.subscription.prorate_final_period IS 'false after cancel_subscription(prorate => false): the final period is charged in full';
COMMENT ON COLUMN billing.subscription.billed_through IS 'Engine watermark: end of the last reconciled period';
COMMENT ON COLUMN billing.subscription.reconcile_from IS 'Engine watermark: earliest date touched by a change, void or late usage since the last run; NULL: none';
COMMENT ON COLUMN billing.subscription.next_due_date IS 'Engine watermark: first date on which something may fall due once reconciled; NULL: nothing scheduled';
COMMENT ON COLUMN billing.subscription.last_target_date IS 'Target date of the last run that reconciled the subscription: every period due by it is billed as expected';
COMMENT ON COLUMN billing.subscription.created_at IS 'When the subscription row was created';

CREATE TABLE billing.subscription_change (
	change_id		bigserial,
	account_id		bigint NOT NULL,
	subscription_id	bigint NOT NULL,
	kind			text NOT NULL
		CONSTRAINT subscription_change_kind_valid CHECK (kind IN ('start', 'change', 'cancel')),
	effective_date	date NOT NULL,
	price_id		bigint REFERENCES billing.price,
	quantity		numeric,
	unit_amount		numeric,
	cycle_day		smallint,
	prorate			boolean NOT NULL DEFAULT true,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (account_id, change_id),
	FOREIGN KEY (account_id, subscription_id) REFERENCES billing.subscription ON DELETE CASCADE,
	CONSTRAINT subscription_change_terms CHECK (kind = 'cancel' OR (price_id IS NOT NULL AND quantity IS NOT NULL))
);
CREATE INDEX subscription_change_timeline_idx
	ON billing.subscription_change (account_id, subscription_id, effective_date, change_id);
COMMENT ON TABLE billing.subscription_change IS 'Dated timeline of a subscription: start, each change of terms, cancellation';
COMMENT ON COLUMN billing.subscription_change.change_id IS 'Change id; on equal effective dates the later change wins';
COMMENT ON COLUMN billing.subscription_change.account_id IS 'Account of the subscription';
COMMENT ON COLUMN billing.subscription_change.subscription_id IS 'Subscription changed';
COMMENT ON COLUMN billing.subscription_change.kind IS 'start (initial terms), change (new terms from effective_date) or cancel (service ends on effective_date)';
COMMENT ON COLUMN billing.subscription_change.effective_date IS 'First day the change applies to';
COMMENT ON COLUMN billing.subscription_change.price_id IS 'Price from effective_date (NULL for cancel)';
COMMENT ON COLUMN billing.subscription_change.quantity IS 'Quantity from effective_date';
COMMENT ON COLUMN billing.subscription_change.unit_amount IS 'Unit amount override from effective_date; NULL: the price''s';
COMMENT ON COLUMN billing.subscription_change.cycle_day IS 'Cycle day resolved when terms with a new cycle start here';
COMMENT ON COLUMN billing.subscription_change.prorate IS 'cancel only: false charges the final period in full';
COMMENT ON COLUMN billing.subscription_change.created_at IS 'When the change was recorded';

-- Whether a run with a target date has work for a subscription: a period
-- due, a change to reconcile, or a first bill.  No insert trigger sets
-- watermarks, so a pg_dump restore leaves them exactly as they were.
CREATE FUNCTION billing.has_work_due(start_date date, next_due_date date, reconcile_from date,
									 last_target_date date, target_date date) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN start_date <= target_date
	   AND (next_due_date <= target_date OR reconcile_from IS NOT NULL OR last_target_date IS NULL);
COMMENT ON FUNCTION billing.has_work_due(date, date, date, date, date) IS
	'Whether a run up to target_date has work for a subscription with these watermarks';

-- The subscriptions of some accounts (NULL: all).  Written as two branches so
-- that a chunk of a run reads its accounts' rows by index and a whole run
-- scans the table: "account_ids IS NULL OR account_id = ANY (account_ids)"
-- can only be planned as a scan of every subscription, which made a chunked
-- run cost the whole table once per chunk.  Inlined into its callers.
CREATE FUNCTION billing.subscriptions_of(account_ids bigint[]) RETURNS SETOF billing.subscription
LANGUAGE sql STABLE
AS $$
	SELECT s.* FROM billing.subscription s WHERE account_ids IS NULL
	UNION ALL
	SELECT s.* FROM billing.subscription s WHERE s.account_id = ANY (account_ids)
$$;
COMMENT ON FUNCTION billing.subscriptions_of(bigint[]) IS
	'Subscriptions of the given accounts (NULL: every subscription); the accounts'' rows by index';

-- The timeline's first row, the terms a subscription started with, is
-- written from the subscription row the first time it is billed or changed
-- (not by an insert trigger, so a pg_dump restore does not write it twice);
-- until then the engine reads those terms from the subscription row itself.
-- Its callers hold the subscriptions locked (a run has just updated their
-- watermarks, the API locks the row FOR UPDATE), and the prices are the
-- subscriptions' own: the rows go in through the run's bulk writer, which the
-- key checks trust (a catch-up run writes a million start rows: 20 s as a
-- checked INSERT).
CREATE FUNCTION billing.record_start_terms(account_ids bigint[], subscription_ids bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM billing.write_run_rows('billing.subscription_change', $run$
		SELECT s.account_id, s.subscription_id, 'start'::text AS kind, s.start_date AS effective_date, s.price_id,
			   s.quantity, s.unit_amount,
			   billing.start_cycle_day(s.bill_cycle_day, a.bill_cycle_day, s.start_date) AS cycle_day
		FROM unnest($1, $2) AS x (account_id, subscription_id)
		JOIN billing.subscription s ON s.account_id = x.account_id AND s.subscription_id = x.subscription_id
		JOIN billing.account a ON a.account_id = s.account_id
		WHERE NOT EXISTS (SELECT 1 FROM billing.subscription_change c
						  WHERE c.account_id = s.account_id AND c.subscription_id = s.subscription_id
							AND c.kind = 'start')$run$,
		account_ids, subscription_ids);
END $$;
COMMENT ON FUNCTION billing.record_start_terms(bigint[], bigint[]) IS
	'Writes the start row of the timeline (initial terms, resolved cycle day) of subscriptions that have none';

-- The cycle day terms starting on a date get: the subscription's, else the
-- account's, else that date's day of month.
CREATE FUNCTION billing.start_cycle_day(subscription_day smallint, account_day smallint, start_date date) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(subscription_day, account_day, extract(day FROM start_date)::smallint);
COMMENT ON FUNCTION billing.start_cycle_day(smallint, smallint, date) IS
	'Cycle day of terms starting on a date: subscription''s, else account''s, else the start day';

-- Terms change only through the API, which keeps the timeline in step.  An
-- AFTER trigger: a BEFORE ROW UPDATE trigger makes every update of the table
-- lock each row first (a WAL-logged write), even when its column list leaves
-- it out, and a run updates the watermarks of every subscription it bills.
CREATE FUNCTION billing.subscription_guard_terms() RETURNS trigger
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

-- Prices are immutable once a subscription uses them (create a new price).
CREATE FUNCTION billing.price_guard_in_use() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM billing.subscription s WHERE s.price_id = OLD.price_id)
	   OR EXISTS (SELECT 1 FROM billing.subscription_change c WHERE c.price_id = OLD.price_id) THEN
		RAISE EXCEPTION 'price "%" is used by subscriptions and cannot change', OLD.code
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Create a new price and move subscriptions with billing.change_subscription().';
	END IF;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION billing.price_guard_in_use() IS 'Trigger: rejects changes to the billing terms of a price in use';
CREATE TRIGGER price_guard_in_use
	BEFORE UPDATE OF currency, charge_type, billing_interval, interval_count, billing_timing, pricing_model,
		unit_amount, package_size, tiers, proration
	ON billing.price
	FOR EACH ROW EXECUTE FUNCTION billing.price_guard_in_use();

CREATE TABLE billing.usage_record (
	usage_id		bigserial,
	account_id		bigint NOT NULL,
	subscription_id	bigint NOT NULL,
	quantity		numeric NOT NULL
		CONSTRAINT usage_record_quantity_not_negative CHECK (quantity >= 0),
	occurred_at		timestamptz NOT NULL,
	usage_date		date,
	idempotency_key	text,
	recorded_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (account_id, usage_id),
	UNIQUE (account_id, subscription_id, idempotency_key),
	FOREIGN KEY (account_id, subscription_id) REFERENCES billing.subscription ON DELETE CASCADE
);
CREATE INDEX usage_record_day_idx ON billing.usage_record (account_id, subscription_id, usage_date);
COMMENT ON TABLE billing.usage_record IS 'Metered usage of usage-priced subscriptions; append-only';
COMMENT ON COLUMN billing.usage_record.usage_id IS 'Usage record id';
COMMENT ON COLUMN billing.usage_record.account_id IS 'Account of the subscription';
COMMENT ON COLUMN billing.usage_record.subscription_id IS 'Subscription the usage counts for';
COMMENT ON COLUMN billing.usage_record.quantity IS 'Units used';
COMMENT ON COLUMN billing.usage_record.occurred_at IS 'When the usage happened';
COMMENT ON COLUMN billing.usage_record.usage_date IS 'occurred_at as a date in the account''s time zone, set on insert: the day it is billed under';
COMMENT ON COLUMN billing.usage_record.idempotency_key IS 'Caller''s key: the same key twice for a subscription is rejected (23505)';
COMMENT ON COLUMN billing.usage_record.recorded_at IS 'When the record was inserted';

-- Instants become dates once, in the account's time zone.
CREATE FUNCTION billing.usage_record_before_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	SELECT (NEW.occurred_at AT TIME ZONE a.timezone)::date INTO NEW.usage_date
	FROM billing.account a WHERE a.account_id = NEW.account_id;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION billing.usage_record_before_insert() IS 'Trigger: dates usage in the account''s time zone';
CREATE TRIGGER usage_record_before_insert BEFORE INSERT ON billing.usage_record
	FOR EACH ROW EXECUTE FUNCTION billing.usage_record_before_insert();

-- Late usage (in an already reconciled period) marks the subscription for
-- reconciliation.  The account share lock orders this after a running batch,
-- so the check below sees the batch's new watermark.
CREATE FUNCTION billing.usage_record_after_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM 1 FROM billing.account a
	WHERE a.account_id IN (SELECT n.account_id FROM new_usage n)
	ORDER BY a.account_id
	FOR SHARE;
	UPDATE billing.subscription s
	SET reconcile_from = least(coalesce(s.reconcile_from, n.first_day), n.first_day)
	FROM (SELECT n.account_id, n.subscription_id, min(n.usage_date) AS first_day
		  FROM new_usage n GROUP BY n.account_id, n.subscription_id) n
	WHERE s.account_id = n.account_id AND s.subscription_id = n.subscription_id
	  AND n.first_day < s.billed_through;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION billing.usage_record_after_insert() IS 'Trigger: marks subscriptions that received late usage for reconciliation';
CREATE TRIGGER usage_record_after_insert AFTER INSERT ON billing.usage_record
	REFERENCING NEW TABLE AS new_usage
	FOR EACH STATEMENT EXECUTE FUNCTION billing.usage_record_after_insert();

CREATE FUNCTION billing.usage_record_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION 'usage record % is append-only', OLD.usage_id
		USING ERRCODE = 'object_not_in_prerequisite_state',
			  DETAIL = format('quantity %s on %s for subscription %s', OLD.quantity, OLD.usage_date, OLD.subscription_id);
END $$;
COMMENT ON FUNCTION billing.usage_record_append_only() IS 'Trigger: usage records are never updated or deleted';
CREATE TRIGGER usage_record_append_only BEFORE UPDATE OR DELETE ON billing.usage_record
	FOR EACH ROW EXECUTE FUNCTION billing.usage_record_append_only();

SELECT pg_catalog.pg_extension_config_dump('billing.subscription', '');
SELECT pg_catalog.pg_extension_config_dump('billing.subscription_subscription_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('billing.subscription_change', '');
SELECT pg_catalog.pg_extension_config_dump('billing.subscription_change_change_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('billing.usage_record', '');
SELECT pg_catalog.pg_extension_config_dump('billing.usage_record_usage_id_seq', '');
