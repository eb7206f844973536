-- The C engine against its SQL statement (SPEC principle 3): billing.due_items()
-- must return exactly the rows of the set-based SQL engine it replaced
-- (include/due_items_oracle.sql, kept as the oracle), on a random but
-- reproducible book (setseed) of 40 accounts: monthly, yearly, weekly, 10-day
-- and quarterly prices in advance and in arrears, proration daily and none,
-- every pricing model, usage, one-time charges, account and subscription cycle
-- days (29-31 too), end dates, unit amount overrides, holds,
-- next_bill_date_override, taxes (tax codes, compounding, a rate change,
-- exemption), EUR and JPY.  At 14 target dates over a year and a half both
-- engines are compared as multisets of whole rows - lines (amounts, tax,
-- descriptions; line numbers on their own, as the oracle numbers tied lines in
-- no fixed order) and watermarks; the C engine's document rows against the
-- sums of its lines - for every account, with
-- full_history, and for a few accounts; then the run bills.  Between runs the
-- generator changes quantities, prices and unit amounts (backdated and dated
-- ahead, to other cycles, timings and proration rules), cancels with and
-- without proration, records usage (much of it late, into billed periods),
-- voids posted documents (void and re-bill), holds and releases accounts and
-- subscriptions, sets overrides and adds backdated subscriptions.  Last, what
-- was compared and exercised is counted (the test cannot pass on an empty
-- book) and the book must pass billing.check_integrity().
BEGIN;
\ir include/session.sql

SELECT plan(66);

\ir include/run.sql
\ir include/due_items_oracle.sql

-- Errors the generator met: every action is valid, so there must be none.
CREATE TEMP TABLE generator_error (day date, action text, sqlstate text, message text) ON COMMIT DROP;
-- What the generator did, by kind of action.
CREATE TEMP TABLE action_count (action text PRIMARY KEY, n int NOT NULL DEFAULT 0) ON COMMIT DROP;
CREATE FUNCTION pg_temp.counted(a text) RETURNS void LANGUAGE sql
AS $$ INSERT INTO action_count VALUES (a, 1) ON CONFLICT (action) DO UPDATE SET n = action_count.n + 1 $$;
-- Every row either engine returned, as text: the comparison and its coverage.
-- due_row is the row without its line number: the oracle numbers lines that tie
-- on (subscription, sort date, sequence) in no fixed order, so line numbers are
-- checked on their own (each call, account and currency: 1..n in that order).
CREATE TEMP TABLE compared (target date, variant text, side text, item text, kind text, account_id bigint, price_id bigint,
							tax_amount numeric, currency text, subscription_id bigint, sort_date date, sort_seq int,
							line_number int, due_row text) ON COMMIT DROP;

-- a random element of an array
CREATE FUNCTION pg_temp.pick(a anyarray) RETURNS anyelement LANGUAGE sql
AS $$ SELECT a[1 + floor(random() * cardinality(a))::int] $$;
-- a random quantity for a price's pricing model
CREATE FUNCTION pg_temp.quantity(model text) RETURNS numeric LANGUAGE sql
AS $$ SELECT CASE WHEN model IN ('graduated', 'volume', 'package') THEN 1 + floor(random() * 40)::numeric
				  WHEN random() < 0.05 THEN 0
				  WHEN random() < 0.1 THEN 1.5
				  ELSE 1 + floor(random() * 4)::numeric END $$;
-- a random unit amount override in a currency
CREATE FUNCTION pg_temp.unit_amount(currency text) RETURNS numeric LANGUAGE sql
AS $$ SELECT CASE currency WHEN 'JPY' THEN round((100 + random() * 3000)::numeric)
					   ELSE round((1 + random() * 60)::numeric, CASE WHEN random() < 0.2 THEN 4 ELSE 2 END) END $$;
-- Run an action of the generator, counted under its labels; an error is
-- recorded, not raised.
CREATE FUNCTION pg_temp.attempt(day date, labels text[], q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	PERFORM pg_temp.counted(l) FROM unnest(labels) l WHERE l IS NOT NULL;
EXCEPTION WHEN OTHERS THEN
	INSERT INTO generator_error VALUES (day, labels[1], SQLSTATE, SQLERRM || ' [' || q || ']');
END $$;

-- Both engines on the same arguments, their rows kept; one bag_eq result.
CREATE FUNCTION pg_temp.compare(target date, variant text, account_ids bigint[], full_history boolean) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO compared
	SELECT target, variant, 'C', x.item, x.kind, x.account_id, x.price_id, x.tax_amount, x.currency, x.subscription_id,
		   x.sort_date, x.sort_seq, x.line_number, (to_jsonb(x) - 'line_number')::text
	FROM billing.due_items(target, account_ids, full_history) x;
	INSERT INTO compared
	SELECT target, variant, 'SQL', x.item, x.kind, x.account_id, x.price_id, x.tax_amount, x.currency, x.subscription_id,
		   x.sort_date, x.sort_seq, x.line_number, (to_jsonb(x) - 'line_number')::text
	FROM pg_temp.due_items_oracle(target, account_ids, full_history) x;
	RETURN bag_eq(
		format($q$SELECT due_row FROM compared WHERE target = %L AND variant = %L AND side = %L AND item <> 'document'$q$,
			   target, variant, 'C'),
		format('SELECT due_row FROM compared WHERE target = %L AND variant = %L AND side = %L', target, variant, 'SQL'),
		format('%s: billing.due_items(%s%s%s) returns the oracle''s rows', target, target,
			   CASE WHEN account_ids IS NOT NULL THEN format(', %s accounts', cardinality(account_ids)) ELSE '' END,
			   CASE WHEN full_history THEN ', full_history' ELSE '' END));
END $$;

-- A target date: the engines compared for every account, with full_history,
-- and for a few accounts (full_history every other month); then the run.
CREATE FUNCTION pg_temp.step(target date) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	few bigint[];
BEGIN
	few := ARRAY(SELECT a.account_id FROM billing.account a
				 WHERE a.external_key LIKE 'eo%'
				   AND (substring(a.external_key FROM 3)::int + extract(month FROM target)::int) % 8 = 0
				 ORDER BY a.account_id);
	RETURN NEXT pg_temp.compare(target, 'due', NULL, false);
	RETURN NEXT pg_temp.compare(target, 'full_history', NULL, true);
	RETURN NEXT pg_temp.compare(target, 'accounts', few, extract(month FROM target)::int % 2 = 0);
	RETURN NEXT isnt(pg_temp.run(target), NULL, format('%s: run_invoice_batch', target));
END $$;

-- Between the run on d and the next target date d2: usage (some late, into
-- periods billed), changes of quantity, price and unit amount (backdated and
-- ahead), cancellations, voids, holds, overrides, a new backdated subscription.
-- Random choices pick from lists in a fixed order - ids in creation order,
-- prices by code - never ORDER BY random() over a table, whose order follows
-- the physical layout and the plan: the same seed makes the same book on every
-- run, in any database.
CREATE FUNCTION pg_temp.act(d date, d2 date) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	s record;
	i int;
	k int;
	e date;
	r double precision;
	same_cycle boolean;
	id bigint;
	voided bigint;
	new_price bigint;
BEGIN
	-- usage, mostly on usage subscriptions, dated from 50 days before the run on
	FOR s IN SELECT x.account_id, x.subscription_id, x.billed_through, p.charge_type
			 FROM billing.subscription x JOIN billing.price p ON p.price_id = x.price_id
			 JOIN billing.account a ON a.account_id = x.account_id
			 WHERE a.external_key LIKE 'eo%' ORDER BY x.subscription_id LOOP
		CONTINUE WHEN s.charge_type <> 'usage' AND random() > 0.05;
		FOR i IN 1 .. floor(random() * 5)::int LOOP
			e := d - 50 + floor(random() * (d2 - d + 50))::int;
			PERFORM pg_temp.attempt(d, ARRAY['usage', CASE WHEN e < s.billed_through THEN 'late usage (in a billed period)' END],
				format('INSERT INTO billing.usage_record (account_id, subscription_id, quantity, occurred_at)'
					   ' VALUES (%s, %s, %s, %L)',
					   s.account_id, s.subscription_id,
					   CASE WHEN random() < 0.3 THEN round((random() * 400)::numeric, 1) ELSE floor(random() * 300)::numeric END,
					   (e + make_interval(hours => floor(random() * 24)::int, mins => floor(random() * 60)::int)) AT TIME ZONE 'UTC'));
		END LOOP;
	END LOOP;

	-- changes, from 60 days before the run to 40 days after the next target
	FOR i IN 1 .. 10 LOOP
		id := pg_temp.pick(ARRAY(
			SELECT x.subscription_id FROM billing.subscription x JOIN billing.price p ON p.price_id = x.price_id
			JOIN billing.account a ON a.account_id = x.account_id
			WHERE a.external_key LIKE 'eo%' AND p.charge_type <> 'one_time' AND x.start_date <= d2
			  AND (x.end_date IS NULL OR x.end_date > x.start_date)
			ORDER BY x.subscription_id));
		SELECT x.subscription_id, x.start_date, x.end_date, p.currency, p.charge_type, p.billing_interval,
			   p.interval_count, p.billing_timing, p.pricing_model, x.price_id
		INTO s
		FROM billing.subscription x JOIN billing.price p ON p.price_id = x.price_id
		WHERE x.subscription_id = id;
		e := greatest(s.start_date, d - 60 + floor(random() * (d2 - d + 100))::int);
		IF e >= s.end_date THEN
			e := s.end_date - 1 - floor(random() * least(20, s.end_date - 1 - s.start_date))::int;
		END IF;
		-- another price: half the time one on the same cycle (no new cycle)
		same_cycle := random() < 0.5;
		new_price := pg_temp.pick(ARRAY(
			SELECT p.price_id FROM billing.price p
			WHERE p.currency = s.currency AND p.charge_type <> 'one_time' AND p.price_id <> s.price_id
			  AND (NOT same_cycle OR (p.charge_type, p.billing_interval, p.interval_count, p.billing_timing)
									  = (s.charge_type, s.billing_interval, s.interval_count, s.billing_timing))
			ORDER BY p.code COLLATE "C"));
		r := random();
		PERFORM pg_temp.attempt(d, ARRAY[
			CASE WHEN r < 0.4 OR new_price IS NULL THEN 'change quantity' WHEN r < 0.7 THEN 'change price'
				 WHEN r < 0.85 THEN 'change unit amount' ELSE 'change quantity and price' END,
			CASE WHEN e <= d THEN 'change backdated (on or before the last run)' END,
			CASE WHEN e > d2 THEN 'change dated ahead (after the next run)' END,
			CASE WHEN new_price IS NOT NULL AND ((r >= 0.4 AND r < 0.7) OR r >= 0.85) THEN
					 (SELECT CASE WHEN (p.charge_type, p.billing_interval, p.interval_count, p.billing_timing)
										 IS DISTINCT FROM (s.charge_type, s.billing_interval, s.interval_count, s.billing_timing)
									   THEN 'change to another cycle or timing'
									   WHEN p.proration <> (SELECT o.proration FROM billing.price o WHERE o.price_id = s.price_id)
									   THEN 'change to another proration in the cycle'
									   ELSE 'change to another price in the cycle' END
					  FROM billing.price p WHERE p.price_id = new_price) END],
			CASE
			WHEN r < 0.4 OR new_price IS NULL THEN
				format('SELECT billing.change_subscription(%s, %L, quantity => %s)', s.subscription_id, e,
					   pg_temp.quantity(s.pricing_model))
			WHEN r < 0.7 THEN
				format('SELECT billing.change_subscription(%s, %L, price_id => %s)', s.subscription_id, e, new_price)
			WHEN r < 0.85 THEN
				format('SELECT billing.change_subscription(%s, %L, unit_amount => %s)', s.subscription_id, e,
					   pg_temp.unit_amount(s.currency))
			ELSE
				format('SELECT billing.change_subscription(%s, %L, quantity => %s, price_id => %s)', s.subscription_id, e,
					   1 + floor(random() * 5), new_price) END);
	END LOOP;

	-- cancellations, with and without proration, from 45 days back to 60 days ahead
	FOR i IN 1 .. 3 LOOP
		id := pg_temp.pick(ARRAY(
			SELECT x.subscription_id FROM billing.subscription x JOIN billing.account a ON a.account_id = x.account_id
			WHERE a.external_key LIKE 'eo%' AND x.start_date <= d2 AND (x.end_date IS NULL OR x.end_date > x.start_date)
			ORDER BY x.subscription_id));
		SELECT x.subscription_id, x.start_date, x.end_date INTO s FROM billing.subscription x WHERE x.subscription_id = id;
		e := greatest(s.start_date, d - 45 + floor(random() * (d2 - d + 105))::int);
		IF e >= s.end_date THEN
			e := s.end_date - 1 - floor(random() * least(20, s.end_date - 1 - s.start_date))::int;
		END IF;
		r := random();
		PERFORM pg_temp.attempt(d, ARRAY[CASE WHEN r < 0.6 THEN 'cancel prorated' ELSE 'cancel not prorated' END,
										 CASE WHEN e <= d THEN 'cancel backdated (on or before the last run)' END,
										 CASE WHEN e > d2 THEN 'cancel dated ahead (after the next run)' END],
			format('SELECT billing.cancel_subscription(%s, %L, prorate => %L)', s.subscription_id, e, r < 0.6));
	END LOOP;

	-- void and re-bill: two posted run documents no money was applied to or from
	voided := NULL;
	FOR i IN 1 .. 2 LOOP
		id := pg_temp.pick(ARRAY(
			SELECT v.invoice_id FROM billing.invoice v JOIN billing.account a ON a.account_id = v.account_id
			WHERE a.external_key LIKE 'eo%' AND v.status = 'posted' AND v.batch_id IS NOT NULL
			  AND v.invoice_id IS DISTINCT FROM voided
			  AND NOT EXISTS (SELECT 1 FROM billing.allocation l
							  WHERE l.account_id = v.account_id AND (l.invoice_id = v.invoice_id OR l.credit_note_id = v.invoice_id))
			ORDER BY v.invoice_id));
		CONTINUE WHEN id IS NULL;
		PERFORM pg_temp.attempt(d, ARRAY['void'], format('SELECT billing.void_invoice(%s, %L, %L)', id, 'oracle test', d));
		voided := id;
	END LOOP;

	-- holds: each released at random, then one account and one subscription held at random
	FOR id IN SELECT a.account_id FROM billing.account a WHERE a.billing_hold ORDER BY a.account_id LOOP
		IF random() < 0.5 THEN
			UPDATE billing.account a SET billing_hold = false WHERE a.account_id = id;
		END IF;
	END LOOP;
	FOR id IN SELECT x.subscription_id FROM billing.subscription x WHERE x.billing_hold ORDER BY x.subscription_id LOOP
		IF random() < 0.5 THEN
			UPDATE billing.subscription x SET billing_hold = false WHERE x.subscription_id = id;
		END IF;
	END LOOP;
	IF random() < 0.5 THEN
		id := pg_temp.pick(ARRAY(SELECT b.account_id FROM billing.account b WHERE b.external_key LIKE 'eo%'
								 ORDER BY b.account_id));
		UPDATE billing.account a SET billing_hold = true WHERE a.account_id = id;
		PERFORM pg_temp.counted('account hold');
	END IF;
	IF random() < 0.6 THEN
		id := pg_temp.pick(ARRAY(SELECT y.subscription_id FROM billing.subscription y ORDER BY y.subscription_id));
		UPDATE billing.subscription x SET billing_hold = true WHERE x.subscription_id = id;
		PERFORM pg_temp.counted('subscription hold');
	END IF;
	-- an override before or after the next target date
	id := pg_temp.pick(ARRAY(SELECT y.subscription_id FROM billing.subscription y ORDER BY y.subscription_id));
	UPDATE billing.subscription x SET next_bill_date_override = d2 - 10 + floor(random() * 35)::int
	WHERE x.subscription_id = id;
	PERFORM pg_temp.counted('next_bill_date_override');

	-- two new subscriptions (the second a one-time charge), started up to 90
	-- days back (caught up) or ahead
	FOR k IN 1 .. 2 LOOP
		id := pg_temp.pick(ARRAY(SELECT a.account_id FROM billing.account a WHERE a.external_key LIKE 'eo%'
								 ORDER BY a.account_id));
		new_price := pg_temp.pick(ARRAY(SELECT q.price_id FROM billing.price q JOIN billing.account a ON a.currency = q.currency
										WHERE a.account_id = id AND (k = 1 OR q.charge_type = 'one_time')
										ORDER BY q.code COLLATE "C"));
		SELECT a.account_id, p.price_id, p.currency, p.pricing_model INTO s
		FROM billing.account a JOIN billing.price p ON p.currency = a.currency
		WHERE a.account_id = id AND p.price_id = new_price;
		e := d - 90 + floor(random() * (d2 - d + 120))::int;
		PERFORM pg_temp.attempt(d, ARRAY[CASE WHEN e <= d THEN 'subscribe backdated' ELSE 'subscribe' END],
			format('INSERT INTO billing.subscription (account_id, price_id, quantity, start_date, bill_cycle_day)'
				   ' VALUES (%s, %s, %s, %L, %s)',
				   s.account_id, s.price_id, pg_temp.quantity(s.pricing_model), e,
				   coalesce(CASE WHEN random() < 0.3 THEN pg_temp.pick(ARRAY[29, 30, 31, 10]) END::text, 'NULL')));
	END LOOP;
END $$;

------------------------------------------------------------------------------
-- The catalog, taxes, accounts and subscriptions
------------------------------------------------------------------------------
DO $$ BEGIN PERFORM setseed(0.2404); END $$;
INSERT INTO product (code, name, tax_code) VALUES
	('plan', 'Plan', NULL), ('seat', 'Seats', 'reduced'), ('meter', 'API calls', NULL), ('digital', 'Digital service', 'digital'),
	('setup', 'Setup fee', NULL);
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, interval_count, billing_timing, pricing_model,
				   unit_amount, package_size, tiers, proration)
SELECT pr.product_id, v.code, v.currency, v.charge_type, v.unit, v.cnt, v.timing, v.model, v.amount, v.package_size,
	   v.tiers::jsonb, v.proration
FROM (VALUES
	-- USD recurring
	('plan', 'm_adv', 'USD', 'recurring', 'month', 1, 'in_advance', 'per_unit', 19.99, NULL, NULL, 'daily'),
	('plan', 'm_adv2', 'USD', 'recurring', 'month', 1, 'in_advance', 'per_unit', 29.99, NULL, NULL, 'daily'),
	('plan', 'm_arr', 'USD', 'recurring', 'month', 1, 'in_arrears', 'per_unit', 15.50, NULL, NULL, 'daily'),
	('plan', 'm_none', 'USD', 'recurring', 'month', 1, 'in_advance', 'per_unit', 30, NULL, NULL, 'none'),
	('plan', 'm_arr_none', 'USD', 'recurring', 'month', 1, 'in_arrears', 'flat', 45, NULL, NULL, 'none'),
	('plan', 'm_flat', 'USD', 'recurring', 'month', 1, 'in_advance', 'flat', 99, NULL, NULL, 'daily'),
	('seat', 'm_pkg', 'USD', 'recurring', 'month', 1, 'in_advance', 'package', 10, 5, NULL, 'daily'),
	('seat', 'm_grad', 'USD', 'recurring', 'month', 1, 'in_advance', 'graduated', NULL, NULL,
	 '[{"up_to": 5, "unit_amount": 4.99, "flat_amount": 10}, {"up_to": 20, "unit_amount": 3.333}, {"up_to": null, "unit_amount": 2.5, "flat_amount": 1}]',
	 'daily'),
	('seat', 'm_vol', 'USD', 'recurring', 'month', 1, 'in_arrears', 'volume', NULL, NULL,
	 '[{"up_to": 10, "unit_amount": 6}, {"up_to": 25, "unit_amount": 5.125, "flat_amount": 7.5}, {"up_to": null, "unit_amount": 4}]',
	 'daily'),
	('plan', 'y_adv', 'USD', 'recurring', 'year', 1, 'in_advance', 'per_unit', 240, NULL, NULL, 'daily'),
	('plan', 'y_none', 'USD', 'recurring', 'year', 1, 'in_advance', 'flat', 199, NULL, NULL, 'none'),
	('plan', 'w_adv', 'USD', 'recurring', 'week', 1, 'in_advance', 'per_unit', 7.77, NULL, NULL, 'daily'),
	('plan', 'w2_arr', 'USD', 'recurring', 'week', 2, 'in_arrears', 'flat', 25, NULL, NULL, 'daily'),
	('plan', 'q_adv', 'USD', 'recurring', 'month', 3, 'in_advance', 'per_unit', 75.50, NULL, NULL, 'daily'),
	('plan', 'q_arr', 'USD', 'recurring', 'month', 3, 'in_arrears', 'per_unit', 60, NULL, NULL, 'daily'),
	('plan', 'q_none', 'USD', 'recurring', 'month', 3, 'in_advance', 'per_unit', 70, NULL, NULL, 'none'),
	('digital', 'd10_adv', 'USD', 'recurring', 'day', 10, 'in_advance', 'per_unit', 3.33, NULL, NULL, 'daily'),
	-- USD usage
	('meter', 'u_unit', 'USD', 'usage', 'month', 1, 'in_arrears', 'per_unit', 0.10, NULL, NULL, 'daily'),
	('meter', 'u_grad', 'USD', 'usage', 'month', 1, 'in_arrears', 'graduated', NULL, NULL,
	 '[{"up_to": 100, "unit_amount": 0.05, "flat_amount": 2}, {"up_to": 400, "unit_amount": 0.0375}, {"up_to": null, "unit_amount": 0.02}]',
	 'daily'),
	('meter', 'u_vol', 'USD', 'usage', 'month', 1, 'in_arrears', 'volume', NULL, NULL,
	 '[{"up_to": 250, "unit_amount": 0.05}, {"up_to": 500, "unit_amount": 0.04, "flat_amount": 3}, {"up_to": null, "unit_amount": 0.033}]',
	 'daily'),
	('meter', 'u_pkg', 'USD', 'usage', 'month', 1, 'in_arrears', 'package', 2.50, 100, NULL, 'daily'),
	('meter', 'u_w', 'USD', 'usage', 'week', 1, 'in_arrears', 'per_unit', 0.05, NULL, NULL, 'daily'),
	('meter', 'u_q_flat', 'USD', 'usage', 'month', 3, 'in_arrears', 'flat', 15, NULL, NULL, 'daily'),
	-- USD one-time
	('setup', 'setup', 'USD', 'one_time', NULL, 1, NULL, 'flat', 49, NULL, NULL, 'daily'),
	('setup', 'onboard', 'USD', 'one_time', NULL, 1, NULL, 'per_unit', 12.5, NULL, NULL, 'daily'),
	-- EUR
	('plan', 'eur_m_adv', 'EUR', 'recurring', 'month', 1, 'in_advance', 'per_unit', 9.99, NULL, NULL, 'daily'),
	('plan', 'eur_y_adv', 'EUR', 'recurring', 'year', 1, 'in_advance', 'per_unit', 99, NULL, NULL, 'daily'),
	('plan', 'eur_m_arr', 'EUR', 'recurring', 'month', 1, 'in_arrears', 'per_unit', 12, NULL, NULL, 'daily'),
	('plan', 'eur_q_none', 'EUR', 'recurring', 'month', 3, 'in_advance', 'per_unit', 33, NULL, NULL, 'none'),
	('meter', 'eur_u', 'EUR', 'usage', 'month', 1, 'in_arrears', 'per_unit', 0.07, NULL, NULL, 'daily'),
	('setup', 'eur_setup', 'EUR', 'one_time', NULL, 1, NULL, 'flat', 39, NULL, NULL, 'daily'),
	-- JPY
	('plan', 'jpy_m_adv', 'JPY', 'recurring', 'month', 1, 'in_advance', 'per_unit', 1500, NULL, NULL, 'daily'),
	('plan', 'jpy_q_arr', 'JPY', 'recurring', 'month', 3, 'in_arrears', 'per_unit', 4000, NULL, NULL, 'daily'),
	('plan', 'jpy_w_adv', 'JPY', 'recurring', 'week', 1, 'in_advance', 'per_unit', 333, NULL, NULL, 'none'),
	('meter', 'jpy_u', 'JPY', 'usage', 'month', 1, 'in_arrears', 'graduated', NULL, NULL,
	 '[{"up_to": 100, "unit_amount": 3}, {"up_to": null, "unit_amount": 1.5, "flat_amount": 50}]', 'daily'),
	('setup', 'jpy_setup', 'JPY', 'one_time', NULL, 1, NULL, 'flat', 5000, NULL, NULL, 'daily'))
	v(product, code, currency, charge_type, unit, cnt, timing, model, amount, package_size, tiers, proration)
JOIN product pr ON pr.code = v.product;
INSERT INTO tax_rate (region, tax_code, name, rate, priority, valid_from, valid_to) VALUES
	('R1', NULL, 'VAT', 0.10, 0, '-infinity', NULL),
	('R1', 'reduced', 'VAT reduced', 0.05, 0, '-infinity', NULL),
	('CMP', NULL, 'State', 0.0725, 0, '-infinity', NULL),
	('CMP', NULL, 'Federal', 0.05, 1, '-infinity', NULL),
	('CMP', 'digital', 'Digital', 0.19, 0, '-infinity', NULL),
	('VAL', NULL, 'Old VAT', 0.16, 0, '-infinity', '2024-09-01'),
	('VAL', NULL, 'New VAT', 0.19, 0, '2024-09-01', NULL);
INSERT INTO account (external_key, name, currency, bill_cycle_day, timezone, tax_region, tax_exempt)
SELECT 'eo' || g, 'Oracle ' || g, CASE WHEN g % 10 = 0 THEN 'JPY' WHEN g % 7 = 0 THEN 'EUR' ELSE 'USD' END,
	   pg_temp.pick(ARRAY[NULL, NULL, NULL, 1, 15, 28, 29, 30, 31]),
	   pg_temp.pick(ARRAY['UTC', 'UTC', 'America/New_York', 'Asia/Tokyo']),
	   pg_temp.pick(ARRAY[NULL, 'R1', 'CMP', 'VAL']),
	   g % 9 = 0
FROM generate_series(1, 40) g;
-- 1 to 3 subscriptions per account, the first one round robin over the
-- currency's prices (every price is used); every fourth USD account also has
-- an EUR subscription (a second currency on one account)
DO $$
DECLARE
	a record;
	p record;
	k int;
	rr int;
	st date;
	id bigint;
BEGIN
	FOR a IN SELECT * FROM billing.account x WHERE x.external_key LIKE 'eo%' ORDER BY x.account_id LOOP
		rr := (SELECT count(*) FROM billing.account b
			   WHERE b.external_key LIKE 'eo%' AND b.currency = a.currency AND b.account_id < a.account_id);
		FOR k IN 0 .. floor(random() * 3)::int + CASE WHEN a.currency = 'USD' AND rr % 4 = 0 THEN 1 ELSE 0 END LOOP
			IF k = 0 THEN
				SELECT * INTO p FROM billing.price x WHERE x.currency = a.currency ORDER BY x.code COLLATE "C"
				OFFSET rr % (SELECT count(*) FROM billing.price y WHERE y.currency = a.currency) LIMIT 1;
			ELSIF a.currency = 'USD' AND rr % 4 = 0 AND k = 1 THEN
				SELECT * INTO p FROM billing.price x WHERE x.currency = 'EUR' ORDER BY x.code COLLATE "C"
				OFFSET (rr / 4) % (SELECT count(*) FROM billing.price y WHERE y.currency = 'EUR') LIMIT 1;
			ELSE
				id := pg_temp.pick(ARRAY(SELECT y.price_id FROM billing.price y WHERE y.currency = a.currency
										 ORDER BY y.code COLLATE "C"));
				SELECT * INTO p FROM billing.price x WHERE x.price_id = id;
			END IF;
			st := date '2024-01-01' + floor(random() * 200)::int;
			INSERT INTO billing.subscription (account_id, price_id, quantity, unit_amount, start_date, end_date, bill_cycle_day,
											  next_bill_date_override)
			VALUES (a.account_id, p.price_id, pg_temp.quantity(p.pricing_model),
					CASE WHEN p.pricing_model IN ('per_unit', 'flat', 'package') AND random() < 0.15
						 THEN pg_temp.unit_amount(p.currency) END,
					st,
					CASE WHEN random() < 0.15 THEN st + 20 + floor(random() * 400)::int END,
					CASE WHEN random() < 0.2 THEN pg_temp.pick(ARRAY[29, 30, 31, 5, 15]) END,
					CASE WHEN random() < 0.08 THEN st + 5 + floor(random() * 50)::int END);
		END LOOP;
	END LOOP;
END $$;
UPDATE account SET billing_hold = true WHERE external_key IN ('eo5', 'eo23');
UPDATE subscription SET billing_hold = true
WHERE subscription_id IN (SELECT s.subscription_id FROM subscription s ORDER BY s.subscription_id OFFSET 11 LIMIT 1);

------------------------------------------------------------------------------
-- 14 target dates, the generator acting between them
------------------------------------------------------------------------------
SELECT * FROM pg_temp.step('2024-01-31');
SELECT pg_temp.act('2024-01-31', '2024-02-29');
SELECT * FROM pg_temp.step('2024-02-29');
SELECT pg_temp.act('2024-02-29', '2024-03-31');
SELECT * FROM pg_temp.step('2024-03-31');
SELECT pg_temp.act('2024-03-31', '2024-04-15');
SELECT * FROM pg_temp.step('2024-04-15');
SELECT pg_temp.act('2024-04-15', '2024-05-31');
SELECT * FROM pg_temp.step('2024-05-31');
SELECT pg_temp.act('2024-05-31', '2024-06-30');
SELECT * FROM pg_temp.step('2024-06-30');
SELECT pg_temp.act('2024-06-30', '2024-08-15');
SELECT * FROM pg_temp.step('2024-08-15');
SELECT pg_temp.act('2024-08-15', '2024-09-30');
SELECT * FROM pg_temp.step('2024-09-30');
SELECT pg_temp.act('2024-09-30', '2024-10-31');
SELECT * FROM pg_temp.step('2024-10-31');
SELECT pg_temp.act('2024-10-31', '2024-12-15');
SELECT * FROM pg_temp.step('2024-12-15');
SELECT pg_temp.act('2024-12-15', '2024-12-31');
SELECT * FROM pg_temp.step('2024-12-31');
SELECT pg_temp.act('2024-12-31', '2025-02-28');
SELECT * FROM pg_temp.step('2025-02-28');
SELECT pg_temp.act('2025-02-28', '2025-04-30');
SELECT * FROM pg_temp.step('2025-04-30');
-- the last run with every hold and override released: everything catches up
SELECT pg_temp.act('2025-04-30', '2025-06-30');
UPDATE account SET billing_hold = false WHERE billing_hold;
UPDATE subscription SET billing_hold = false, next_bill_date_override = NULL
WHERE billing_hold OR next_bill_date_override IS NOT NULL;
SELECT * FROM pg_temp.step('2025-06-30');

------------------------------------------------------------------------------
-- Not vacuous: what was compared, and what the book exercised
------------------------------------------------------------------------------
-- the lines the runs billed (the C engine's rows of the run's own call), by
-- kind; every variant's rows as well
SELECT diag(format('compared, every variant (rows of the C engine): %s',
				   (SELECT string_agg(format('%s %s', coalesce(kind, item), n), ', ' ORDER BY coalesce(kind, item))
					FROM (SELECT item, kind, count(*) AS n FROM compared WHERE side = 'C' GROUP BY item, kind) c)));
SELECT diag(format('compared, the runs'' own calls (rows of the C engine): %s',
				   (SELECT string_agg(format('%s %s', coalesce(kind, item), n), ', ' ORDER BY coalesce(kind, item))
					FROM (SELECT item, kind, count(*) AS n FROM compared WHERE side = 'C' AND variant = 'due' GROUP BY item, kind) c)));
-- features: lines the runs billed of each kind of price and account, and the
-- generator's actions
CREATE TEMP VIEW coverage AS
WITH billed AS (
	SELECT c.target, c.variant, c.item, c.kind, c.account_id, c.price_id, c.tax_amount,
		   p.charge_type, p.billing_interval, p.interval_count, p.billing_timing, p.pricing_model, p.proration,
		   p.currency, a.tax_exempt, a.bill_cycle_day
	FROM compared c JOIN billing.price p ON p.price_id = c.price_id JOIN billing.account a ON a.account_id = c.account_id
	WHERE c.side = 'C' AND c.variant = 'due' AND c.item = 'line'
), fact AS (
	SELECT 'lines: ' || b.charge_type
			   || CASE WHEN b.billing_interval IS NOT NULL
					   THEN format(' every %s %s %s', b.interval_count, b.billing_interval, b.billing_timing) ELSE '' END
			   AS feature, count(*) AS n
	FROM billed b GROUP BY 1
	UNION ALL SELECT 'lines: ' || b.pricing_model || ' pricing', count(*) FROM billed b GROUP BY 1
	UNION ALL SELECT 'lines: proration ' || b.proration, count(*) FROM billed b WHERE b.charge_type = 'recurring' GROUP BY 1
	UNION ALL SELECT 'lines: in ' || b.currency, count(*) FROM billed b GROUP BY 1
	UNION ALL SELECT 'lines: taxed', count(*) FROM billed b WHERE b.tax_amount <> 0
	UNION ALL SELECT 'lines: tax-exempt account', count(*) FROM billed b WHERE b.tax_exempt
	UNION ALL SELECT 'lines: account cycle day 29-31', count(*) FROM billed b WHERE b.bill_cycle_day >= 29
	UNION ALL SELECT 'subscriptions: own cycle day 29-31', count(*) FROM billing.subscription x WHERE x.bill_cycle_day >= 29
	UNION ALL SELECT 'action: ' || x.action, x.n FROM action_count x
)
SELECT f.feature, coalesce(sum(fact.n), 0)::int AS n
FROM (VALUES
	('lines: recurring every 1 month in_advance'), ('lines: recurring every 1 month in_arrears'),
	('lines: recurring every 1 year in_advance'), ('lines: recurring every 1 week in_advance'),
	('lines: recurring every 2 week in_arrears'), ('lines: recurring every 3 month in_advance'),
	('lines: recurring every 3 month in_arrears'), ('lines: recurring every 10 day in_advance'),
	('lines: usage every 1 month in_arrears'), ('lines: usage every 1 week in_arrears'),
	('lines: usage every 3 month in_arrears'), ('lines: one_time'),
	('lines: per_unit pricing'), ('lines: flat pricing'), ('lines: package pricing'), ('lines: graduated pricing'),
	('lines: volume pricing'), ('lines: proration daily'), ('lines: proration none'),
	('lines: in USD'), ('lines: in EUR'), ('lines: in JPY'), ('lines: taxed'), ('lines: tax-exempt account'),
	('lines: account cycle day 29-31'), ('subscriptions: own cycle day 29-31'),
	('action: usage'), ('action: late usage (in a billed period)'),
	('action: change quantity'), ('action: change price'), ('action: change unit amount'), ('action: change quantity and price'),
	('action: change backdated (on or before the last run)'), ('action: change dated ahead (after the next run)'),
	('action: change to another cycle or timing'), ('action: change to another proration in the cycle'),
	('action: change to another price in the cycle'),
	('action: cancel prorated'), ('action: cancel not prorated'), ('action: cancel backdated (on or before the last run)'),
	('action: cancel dated ahead (after the next run)'), ('action: void'), ('action: account hold'),
	('action: subscription hold'), ('action: next_bill_date_override'), ('action: subscribe backdated'), ('action: subscribe'))
	f(feature)
LEFT JOIN fact ON fact.feature = f.feature
GROUP BY f.feature;
SELECT diag(format('coverage: %s', (SELECT string_agg(format('%s %s', feature, n), '; ' ORDER BY feature) FROM coverage)));

SELECT is_empty($$SELECT * FROM generator_error$$, 'every action of the generator was accepted');
SELECT is_empty($$SELECT feature FROM coverage WHERE n = 0$$, 'the book exercised every kind of price, account and action');
SELECT cmp_ok((SELECT count(*)::int FROM compared WHERE side = 'C' AND variant = 'due' AND kind = 'recurring'), '>=', 300,
	'at least 300 recurring lines billed and compared');
SELECT cmp_ok((SELECT count(*)::int FROM compared WHERE side = 'C' AND variant = 'due' AND kind = 'proration'), '>=', 60,
	'at least 60 proration lines billed and compared');
SELECT cmp_ok((SELECT count(*)::int FROM compared WHERE side = 'C' AND variant = 'due' AND kind = 'usage'), '>=', 60,
	'at least 60 usage lines billed and compared');
SELECT cmp_ok((SELECT count(*)::int FROM compared WHERE side = 'C' AND variant = 'due' AND kind = 'one_time'), '>=', 12,
	'at least 12 one-time lines billed and compared');
-- Line numbers of the C engine: per call, account and currency, 1..n in the
-- order of subscription, sort date (none first) and sequence.
SELECT is_empty($$
	SELECT target, variant, account_id, currency, line_number, expected_number
	FROM (SELECT c.*, row_number() OVER (PARTITION BY target, variant, account_id, currency
										 ORDER BY subscription_id, sort_date NULLS FIRST, sort_seq, line_number) AS expected_number
		  FROM compared c WHERE c.side = 'C' AND c.item = 'line') c
	WHERE line_number <> expected_number$$,
	'the C engine numbers the lines of each account and currency 1..n by subscription, sort date and sequence');
-- Document rows of the C engine (the oracle has none: the run summed lines):
-- per call, one per account and currency with lines, with their totals and
-- count.
SELECT bag_eq(
	$$SELECT target, variant, account_id, currency, (due_row::jsonb ->> 'amount')::numeric AS subtotal,
			 tax_amount AS tax_total, line_number AS lines
	  FROM compared WHERE side = 'C' AND item = 'document'$$,
	$$SELECT target, variant, account_id, currency, sum((due_row::jsonb ->> 'amount')::numeric) AS subtotal,
			 sum(tax_amount) AS tax_total, count(*)::int AS lines
	  FROM compared WHERE side = 'C' AND item = 'line' GROUP BY target, variant, account_id, currency$$,
	'the C engine''s document rows hold the totals and the count of the lines of each account and currency');
SELECT cmp_ok((SELECT count(*)::int FROM compared WHERE side = 'C' AND variant = 'due' AND item = 'document'), '>=', 200,
	'at least 200 document rows compared');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity at the end');

SELECT * FROM finish();
ROLLBACK;
