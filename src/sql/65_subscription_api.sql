-- Changing and cancelling subscriptions: each call appends to the dated
-- timeline and marks the subscription for reconciliation from the effective
-- date, so the next run bills the difference (prorations, backdating).

-- Lock an account, then one of its subscriptions (the fixed lock order of
-- every billing write: account first).  Raises 22023 for an unknown id.
CREATE FUNCTION billing.lock_subscription(subscription_id bigint) RETURNS billing.subscription
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owner bigint;
	s billing.subscription;
BEGIN
	SELECT x.account_id INTO owner FROM billing.subscription x WHERE x.subscription_id = lock_subscription.subscription_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'subscription % does not exist', subscription_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM billing.lock_account(owner);
	SELECT * INTO s FROM billing.subscription x
	WHERE x.account_id = owner AND x.subscription_id = lock_subscription.subscription_id
	FOR UPDATE;
	RETURN s;
END $$;
COMMENT ON FUNCTION billing.lock_subscription(bigint) IS 'Locks a subscription''s account, then the subscription (the fixed lock order)';

CREATE FUNCTION billing.change_subscription(subscription_id bigint, effective_date date, quantity numeric DEFAULT NULL,
											unit_amount numeric DEFAULT NULL, price_id bigint DEFAULT NULL)
	RETURNS billing.subscription
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s billing.subscription;
	cur billing.subscription_change;
	old_price billing.price;
	new_price billing.price;
	new_cycle boolean;
	new_unit_amount numeric;
BEGIN
	IF effective_date IS NULL THEN
		RAISE EXCEPTION 'effective_date of a change must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	s := billing.lock_subscription(subscription_id);
	IF quantity IS NULL AND unit_amount IS NULL AND price_id IS NULL THEN
		RAISE EXCEPTION 'change of subscription % changes nothing', s.subscription_id
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Give a quantity, unit_amount or price_id.';
	END IF;
	IF quantity < 0 THEN
		RAISE EXCEPTION 'quantity of subscription % must not be negative', s.subscription_id
			USING ERRCODE = 'invalid_parameter_value', DETAIL = format('quantity is %s', quantity);
	END IF;
	IF unit_amount < 0 OR scale(unit_amount) > 6 THEN
		RAISE EXCEPTION 'unit_amount of subscription % must be non-negative with at most 6 decimals', s.subscription_id
			USING ERRCODE = 'invalid_parameter_value', DETAIL = format('unit_amount is %s', unit_amount);
	END IF;
	IF effective_date < s.start_date THEN
		RAISE EXCEPTION 'change of subscription % is effective before its start', s.subscription_id
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('effective date %s, start date %s', effective_date, s.start_date);
	END IF;
	IF effective_date >= s.end_date THEN
		RAISE EXCEPTION 'subscription % has ended', s.subscription_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('effective date %s, end date %s', effective_date, s.end_date);
	END IF;

	PERFORM billing.record_start_terms(ARRAY[s.account_id], ARRAY[s.subscription_id]);
	-- the terms in force on the effective date
	SELECT * INTO cur FROM billing.subscription_change c
	WHERE c.account_id = s.account_id AND c.subscription_id = s.subscription_id
	  AND c.kind <> 'cancel' AND c.effective_date <= change_subscription.effective_date
	ORDER BY c.effective_date DESC, c.change_id DESC
	LIMIT 1;
	SELECT * INTO old_price FROM billing.price p WHERE p.price_id = cur.price_id;
	SELECT * INTO new_price FROM billing.price p WHERE p.price_id = coalesce(change_subscription.price_id, cur.price_id);
	IF NOT FOUND THEN
		RAISE EXCEPTION 'price % does not exist', change_subscription.price_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF old_price.charge_type = 'one_time' OR new_price.charge_type = 'one_time' THEN
		RAISE EXCEPTION 'subscription % is a one-time charge and cannot change', s.subscription_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('prices "%s" and "%s"', old_price.code, new_price.code);
	END IF;
	IF new_price.currency <> old_price.currency THEN
		RAISE EXCEPTION 'price "%" is in %, subscription % bills in %', new_price.code, new_price.currency,
			s.subscription_id, old_price.currency
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- another interval or timing ends the old terms and starts a new cycle that day
	new_cycle := (new_price.charge_type, new_price.billing_interval, new_price.interval_count, new_price.billing_timing)
		IS DISTINCT FROM (old_price.charge_type, old_price.billing_interval, old_price.interval_count, old_price.billing_timing);
	-- a new price drops the old override unless a unit_amount is given
	new_unit_amount := CASE
		WHEN change_subscription.unit_amount IS NOT NULL THEN change_subscription.unit_amount
		WHEN new_price.price_id <> old_price.price_id THEN NULL
		ELSE cur.unit_amount END;

	INSERT INTO billing.subscription_change
		(account_id, subscription_id, kind, effective_date, price_id, quantity, unit_amount, cycle_day)
	SELECT s.account_id, s.subscription_id, 'change', change_subscription.effective_date, new_price.price_id,
		   coalesce(change_subscription.quantity, cur.quantity), new_unit_amount,
		   CASE WHEN new_cycle
				THEN billing.start_cycle_day(s.bill_cycle_day, a.bill_cycle_day, change_subscription.effective_date)
				ELSE cur.cycle_day END
	FROM billing.account a WHERE a.account_id = s.account_id;

	PERFORM billing.sync_subscription_terms(s.account_id, s.subscription_id, change_subscription.effective_date);
	SELECT * INTO s FROM billing.subscription x WHERE x.account_id = s.account_id AND x.subscription_id = s.subscription_id;
	RETURN s;
END $$;
COMMENT ON FUNCTION billing.change_subscription(bigint, date, numeric, numeric, bigint) IS
	'Changes quantity, unit amount or price from effective_date (backdating allowed); the next run prorates the affected periods';

CREATE FUNCTION billing.cancel_subscription(subscription_id bigint, effective_date date, prorate boolean DEFAULT true)
	RETURNS billing.subscription
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s billing.subscription;
BEGIN
	IF effective_date IS NULL OR prorate IS NULL THEN
		RAISE EXCEPTION 'effective_date and prorate of a cancellation must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	s := billing.lock_subscription(subscription_id);
	IF effective_date < s.start_date THEN
		RAISE EXCEPTION 'cancellation of subscription % is effective before its start', s.subscription_id
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('effective date %s, start date %s', effective_date, s.start_date);
	END IF;
	IF effective_date >= s.end_date THEN
		RAISE EXCEPTION 'subscription % already ends on %', s.subscription_id, s.end_date
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('effective date %s, end date %s', effective_date, s.end_date);
	END IF;
	PERFORM billing.record_start_terms(ARRAY[s.account_id], ARRAY[s.subscription_id]);
	INSERT INTO billing.subscription_change (account_id, subscription_id, kind, effective_date, prorate)
	VALUES (s.account_id, s.subscription_id, 'cancel', effective_date, prorate);
	PERFORM pg_catalog.set_config('billing.timeline_write', 'on', true);
	UPDATE billing.subscription x
	SET end_date = cancel_subscription.effective_date,
		prorate_final_period = cancel_subscription.prorate
	WHERE x.account_id = s.account_id AND x.subscription_id = s.subscription_id;
	PERFORM pg_catalog.set_config('billing.timeline_write', 'off', true);
	PERFORM billing.sync_subscription_terms(s.account_id, s.subscription_id, cancel_subscription.effective_date);
	SELECT * INTO s FROM billing.subscription x WHERE x.account_id = s.account_id AND x.subscription_id = s.subscription_id;
	RETURN s;
END $$;
COMMENT ON FUNCTION billing.cancel_subscription(bigint, date, boolean) IS
	'Ends service on effective_date (the first day without service); prorate => false charges the final period in full';

-- Current terms = the latest effective terms; reconcile from the change date.
CREATE FUNCTION billing.sync_subscription_terms(account_id bigint, subscription_id bigint, changed_from date) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM pg_catalog.set_config('billing.timeline_write', 'on', true);
	UPDATE billing.subscription s
	SET price_id = c.price_id, quantity = c.quantity, unit_amount = c.unit_amount,
		reconcile_from = least(coalesce(s.reconcile_from, changed_from), changed_from)
	FROM (SELECT c.price_id, c.quantity, c.unit_amount
		  FROM billing.subscription_change c
		  WHERE c.account_id = sync_subscription_terms.account_id AND c.subscription_id = sync_subscription_terms.subscription_id
			AND c.kind <> 'cancel'
		  ORDER BY c.effective_date DESC, c.change_id DESC
		  LIMIT 1) c
	WHERE s.account_id = sync_subscription_terms.account_id AND s.subscription_id = sync_subscription_terms.subscription_id;
	PERFORM pg_catalog.set_config('billing.timeline_write', 'off', true);
END $$;
COMMENT ON FUNCTION billing.sync_subscription_terms(bigint, bigint, date) IS
	'Copies the latest terms of the timeline onto the subscription and marks it for reconciliation from a date';
