-- The SQL statement of the rule src/due_items.c implements (billing.due_items,
-- SPEC principle 3: recompute and reconcile), kept as the test oracle: the
-- set-based PL/pgSQL engine the C code replaced, verbatim but for its names
-- and one later fix made in both (a price with another proration rule on the
-- same cycle continues the cycle; the rule is that of the terms in effect on a
-- period's first day: before, the cycle split in two and billed twice).
-- It is created as temporary objects - pg_temp.reconcile_point(), the type
-- pg_temp.period_terms and pg_temp.due_items_oracle() - that return the same
-- billing.due_item rows, so a test can compare the two engines on any book.
-- Only the references to its own helpers point to pg_temp; everything else is
-- schema-qualified as in the original.  Must return exactly what
-- billing.due_items() returns for the same arguments.

-- Where the change being reconciled starts inside a period key: its date when
-- it falls inside the period, else the period's start (the whole key changed).
-- Days before it keep their billed terms; the proration lines start there.
CREATE FUNCTION pg_temp.reconcile_point(whole billing.billing_period, reconcile_from date) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN reconcile_from > billing.period_start(whole) AND reconcile_from < billing.period_end(whole)
			THEN reconcile_from ELSE billing.period_start(whole) END;

CREATE TYPE pg_temp.period_terms AS (price_id bigint, quantity numeric, unit_amount numeric, product_name text);

CREATE FUNCTION pg_temp.due_items_oracle(target_date date, account_ids bigint[] DEFAULT NULL, full_history boolean DEFAULT false)
	RETURNS SETOF billing.due_item
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- Joins on (account_id, subscription_id) are correlated and the planner
-- estimates them at one row; nested loops over the materialized steps below
-- would then be quadratic.  Base tables are read by LATERAL index lookups
-- (which run as nested loops regardless), the steps are joined by hashing.
SET enable_nestloop = off
-- ... which inflates plan costs past the JIT thresholds: compiling this plan
-- would take seconds and save nothing.
SET jit = off
-- Its sorts and hashes hold one row per subscription due: at the default 4MB
-- they spill to disk from a few thousand subscriptions on.  16MB (32MB per
-- hash) keeps a run's private memory under 512MB with its dozen hashes,
-- sorts and tuplestores at once (32MB peaked at 549MB on a 1M-line run).
SET work_mem = '16MB'
AS $$
BEGIN
	RETURN QUERY
	WITH
	-- subscriptions with work due: a period due, a change to reconcile, or a first bill
	candidate AS (
		SELECT s.account_id, s.subscription_id, s.start_date, s.end_date, s.prorate_final_period,
			   s.billed_through, s.reconcile_from, s.next_due_date, s.last_target_date,
			   s.price_id, s.quantity, s.unit_amount,
			   billing.start_cycle_day(s.bill_cycle_day, a.bill_cycle_day, s.start_date) AS start_cycle_day,
			   CASE WHEN full_history THEN s.start_date
					ELSE least(coalesce(s.billed_through, s.start_date), coalesce(s.reconcile_from, 'infinity')) END AS window_from
		FROM billing.subscriptions_of(account_ids) s
		JOIN billing.account a ON a.account_id = s.account_id
		WHERE (full_history OR billing.has_work_due(s.start_date, s.next_due_date, s.reconcile_from, s.last_target_date, target_date))
		  AND s.start_date <= target_date
		  AND NOT a.billing_hold AND NOT s.billing_hold
		  AND (s.next_bill_date_override IS NULL OR s.next_bill_date_override <= target_date)
	),
	-- the timeline as segments [seg_start, seg_end) of constant terms
	segment_raw AS (
		SELECT c.account_id, c.subscription_id, c.window_from, c.end_date, c.prorate_final_period, c.reconcile_from,
			   ch.change_id, ch.price_id, ch.quantity, ch.unit_amount AS override_amount, ch.cycle_day,
			   ch.effective_date AS seg_start,
			   least(lead(ch.effective_date) OVER w, c.end_date) AS seg_end,
			   p.currency, p.charge_type, p.billing_interval, p.interval_count, p.billing_timing, p.proration,
			   billing.pricing_amount(p.pricing_model, coalesce(ch.unit_amount, p.unit_amount), p.package_size,
									  p.tiers, ch.quantity) AS rate,
			   p.pricing_model, coalesce(ch.unit_amount, p.unit_amount) AS unit_amount,
			   p.package_size, p.tiers, pr.name AS product_name
		FROM candidate c
		-- index lookups per candidate: the cost follows the subscriptions due
		CROSS JOIN LATERAL (
			SELECT ch.change_id, ch.price_id, ch.quantity, ch.unit_amount, ch.cycle_day, ch.effective_date
			FROM billing.subscription_change ch
			WHERE ch.account_id = c.account_id AND ch.subscription_id = c.subscription_id AND ch.kind <> 'cancel'
			UNION ALL
			-- start terms not yet written to the timeline: the subscription row's
			-- (a run writes them when it first bills a subscription, so only
			-- subscriptions never billed can lack them)
			SELECT 0, c.price_id, c.quantity, c.unit_amount, c.start_cycle_day, c.start_date
			WHERE c.last_target_date IS NULL
			  AND NOT EXISTS (SELECT 1 FROM billing.subscription_change ch
							  WHERE ch.account_id = c.account_id AND ch.subscription_id = c.subscription_id
								AND ch.kind = 'start')) ch
		JOIN billing.price p ON p.price_id = ch.price_id
		JOIN billing.product pr ON pr.product_id = p.product_id
		WINDOW w AS (PARTITION BY c.account_id, c.subscription_id ORDER BY ch.effective_date, ch.change_id)
	),
	segment AS (
		SELECT r.*,
			   -- a new cycle starts where the interval or timing changes
			   sum(r.new_cycle) OVER (PARTITION BY r.account_id, r.subscription_id ORDER BY r.seg_start, r.change_id) AS cycle_no,
			   -- a cycle keeps the cycle day of its first segment
			   CASE WHEN r.new_cycle = 1 THEN r.cycle_day END AS first_cycle_day
		FROM (SELECT r.*,
					 CASE WHEN (r.charge_type, r.billing_interval, r.interval_count, r.billing_timing)
							   IS NOT DISTINCT FROM
							   (lag(r.charge_type) OVER w, lag(r.billing_interval) OVER w,
								lag(r.interval_count) OVER w, lag(r.billing_timing) OVER w)
						  THEN 0 ELSE 1 END AS new_cycle
			  FROM segment_raw r
			  WHERE r.seg_end IS NULL OR r.seg_end > r.seg_start
			  WINDOW w AS (PARTITION BY r.account_id, r.subscription_id ORDER BY r.seg_start, r.change_id)) r
	),
	-- terms with one cycle: [cycle_start, cycle_end), cycle day of their first
	-- segment (another proration rule on the same cycle continues it)
	cycle AS (
		SELECT g.account_id, g.subscription_id, g.cycle_no, g.window_from, g.end_date, g.prorate_final_period,
			   g.reconcile_from, g.currency, g.charge_type, g.billing_interval, g.interval_count, g.billing_timing,
			   min(g.seg_start) AS cycle_start,
			   CASE WHEN bool_or(g.seg_end IS NULL) THEN NULL ELSE max(g.seg_end) END AS cycle_end,
			   max(g.first_cycle_day) AS cycle_day
		FROM segment g
		GROUP BY g.account_id, g.subscription_id, g.cycle_no, g.window_from, g.end_date, g.prorate_final_period,
				 g.reconcile_from, g.currency, g.charge_type, g.billing_interval, g.interval_count, g.billing_timing
	),
	-- billing periods of recurring and usage terms in the window, up to the target date
	period AS (
		SELECT y.*, cp.period, cp.whole,
			   CASE y.billing_timing WHEN 'in_advance' THEN billing.period_start(cp.period) <= target_date
									 ELSE billing.period_end(cp.period) <= target_date END AS due,
			   -- charged as a full period: proration none in the terms in effect on its
			   -- first day, or the final period of a cancel without proration
			   (coalesce((SELECT g.proration = 'none' FROM segment g
						  WHERE g.account_id = y.account_id AND g.subscription_id = y.subscription_id
							AND g.cycle_no = y.cycle_no AND g.seg_start <= billing.period_start(cp.period)
							AND (g.seg_end IS NULL OR g.seg_end > billing.period_start(cp.period))), false)
				OR (NOT y.prorate_final_period AND billing.period_end(cp.period) = y.end_date)) AS full_period
		FROM cycle y,
			 LATERAL billing.cycle_periods(y.cycle_start, y.cycle_day, y.billing_interval, y.interval_count,
										   y.window_from, y.cycle_end, target_date) cp
		WHERE y.charge_type <> 'one_time'
	),
	-- expected amount of each due period, multiplied first and rounded once
	expected_recurring AS (
		SELECT pe.account_id, pe.subscription_id, pe.currency, pe.whole, pe.reconcile_from,
			   min(billing.period_start(pe.period)) AS key_start,
			   max(billing.period_end(pe.period)) AS key_end,
			   billing.round_money(
				   CASE WHEN bool_or(pe.full_period)
						THEN max(g.rate) FILTER (WHERE g.seg_start <= billing.period_start(pe.period))
						ELSE billing.prorate_agg(g.rate,
												 billing.billing_period(greatest(g.seg_start, billing.period_start(pe.period)),
																		least(coalesce(g.seg_end, 'infinity'), billing.period_end(pe.period))),
												 pe.whole) END,
				   pe.currency) AS expected,
			   -- the part before the change being reconciled: unchanged by it
			   billing.round_money(coalesce(
				   CASE WHEN bool_or(pe.full_period) THEN 0
						ELSE billing.prorate_agg(g.rate,
												 billing.billing_period(greatest(g.seg_start, billing.period_start(pe.period)),
																		least(coalesce(g.seg_end, 'infinity'), billing.period_end(pe.period), pe.reconcile_point)),
												 pe.whole)
							 FILTER (WHERE greatest(g.seg_start, billing.period_start(pe.period)) < pe.reconcile_point) END, 0),
				   pe.currency) AS unchanged,
			   -- the terms of the period's last segment (one ordered aggregate, not four)
			   (array_agg(ROW(g.price_id, g.quantity, g.unit_amount, g.product_name)::pg_temp.period_terms
						  ORDER BY g.seg_start DESC))[1] AS terms
		FROM (SELECT pe.*, pg_temp.reconcile_point(pe.whole, pe.reconcile_from) AS reconcile_point
			  FROM period pe
			  WHERE pe.due AND pe.charge_type = 'recurring') pe
		JOIN segment g ON g.account_id = pe.account_id AND g.subscription_id = pe.subscription_id
					  AND g.cycle_no = pe.cycle_no
					  AND g.seg_start < billing.period_end(pe.period)
					  AND (g.seg_end IS NULL OR g.seg_end > billing.period_start(pe.period))
		GROUP BY pe.account_id, pe.subscription_id, pe.currency, pe.whole, pe.reconcile_from
	),
	-- usage: quantities of the period's days (account time zone), rated over the whole period
	expected_usage AS (
		SELECT pe.account_id, pe.subscription_id, pe.currency, pe.whole, pe.period,
			   billing.round_money(billing.pricing_amount(g.pricing_model, g.unit_amount, g.package_size, g.tiers, u.used),
								   pe.currency) AS expected,
			   u.used, g.price_id, g.unit_amount, g.product_name
		FROM period pe
		JOIN segment g ON g.account_id = pe.account_id AND g.subscription_id = pe.subscription_id
					  AND g.cycle_no = pe.cycle_no
					  AND g.seg_start <= billing.period_start(pe.period)
					  AND (g.seg_end IS NULL OR g.seg_end > billing.period_start(pe.period))
		CROSS JOIN LATERAL (
			SELECT coalesce(sum(ur.quantity), 0) AS used
			FROM billing.usage_record ur
			WHERE ur.account_id = pe.account_id AND ur.subscription_id = pe.subscription_id
			  AND ur.usage_date >= billing.period_start(pe.period) AND ur.usage_date < billing.period_end(pe.period)) u
		WHERE pe.due AND pe.charge_type = 'usage'
	),
	-- one-time charges: once, when their start has come
	expected_one_time AS (
		SELECT g.account_id, g.subscription_id, g.currency,
			   billing.round_money(g.rate, g.currency) AS expected,
			   g.price_id, g.quantity, g.unit_amount, g.product_name
		FROM segment g
		WHERE g.charge_type = 'one_time' AND g.seg_start <= target_date
	),
	-- non-void lines of the candidates: period lines in the window, and one-time charges
	billed_line AS (
		SELECT l.account_id, l.subscription_id, l.kind, l.cycle_period, l.service_period, l.amount, l.price_id,
			   d.currency, c.reconcile_from
		FROM candidate c
		-- index lookups per candidate (OFFSET 0 keeps the planner from turning
		-- them into a hash join over every line ever billed: the cost follows
		-- the subscriptions due, not the history)
		CROSS JOIN LATERAL (
			SELECT l.* FROM billing.invoice_line l
			WHERE l.account_id = c.account_id AND l.subscription_id = c.subscription_id
			  AND (l.kind = 'one_time'
				   OR (l.cycle_period IS NOT NULL AND billing.period_end(l.cycle_period) > c.window_from))
			OFFSET 0) l
		CROSS JOIN LATERAL (SELECT i.status, i.currency FROM billing.invoice i
							WHERE i.account_id = l.account_id AND i.invoice_id = l.invoice_id
							OFFSET 0) d
		WHERE d.status <> 'void'
	),
	-- what they hold per period key ...
	billed AS (
		SELECT l.account_id, l.subscription_id, l.cycle_period AS whole, l.reconcile_from,
			   sum(l.amount) AS billed, count(*) AS lines, max(l.currency) AS currency, max(l.price_id) AS price_id,
			   min(billing.period_start(l.service_period)) AS billed_start,
			   max(billing.period_end(l.service_period)) AS billed_end
		FROM billed_line l
		WHERE l.cycle_period IS NOT NULL
		GROUP BY l.account_id, l.subscription_id, l.cycle_period, l.reconcile_from
	),
	-- ... and for one-time charges
	billed_one_time AS (
		SELECT l.account_id, l.subscription_id, sum(l.amount) AS billed, max(l.currency) AS currency,
			   max(l.price_id) AS price_id
		FROM billed_line l
		WHERE l.kind = 'one_time'
		GROUP BY l.account_id, l.subscription_id
	),
	-- billed keys reconciled as recurring: not usage keys, not keys whose period is not yet due
	billed_recurring AS (
		SELECT b.* FROM billed b
		WHERE NOT EXISTS (SELECT 1 FROM period pe
						  WHERE pe.account_id = b.account_id AND pe.subscription_id = b.subscription_id
							AND pe.whole OPERATOR(billing.=) b.whole AND (NOT pe.due OR pe.charge_type = 'usage'))
	),
	recurring_diff AS (
		SELECT k.*,
			   -- never before the key's first billed or expected day
			   greatest(pg_temp.reconcile_point(k.whole, k.reconcile_from),
						coalesce(k.key_start, k.billed_start, billing.period_start(k.whole))) AS rp
		FROM (SELECT coalesce(e.account_id, b.account_id) AS account_id,
					 coalesce(e.subscription_id, b.subscription_id) AS subscription_id,
					 coalesce(e.whole, b.whole) AS whole,
					 coalesce(e.currency, b.currency) AS currency,
					 coalesce(e.reconcile_from, b.reconcile_from) AS reconcile_from,
					 e.key_start, e.key_end, coalesce(e.expected, 0) AS expected, coalesce(e.unchanged, 0) AS unchanged,
					 coalesce((e.terms).price_id, b.price_id) AS price_id, (e.terms).quantity, (e.terms).unit_amount,
					 coalesce((e.terms).product_name, 'subscription ' || coalesce(e.subscription_id, b.subscription_id)) AS product_name,
					 coalesce(b.billed, 0) AS billed, coalesce(b.lines, 0) AS billed_lines, b.billed_start, b.billed_end,
					 coalesce(b.price_id, (e.terms).price_id) AS billed_price_id
			  FROM expected_recurring e
			  FULL JOIN billed_recurring b
				ON b.account_id = e.account_id AND b.subscription_id = e.subscription_id AND b.whole OPERATOR(billing.=) e.whole) k
	),
	line AS (
		-- first bill of a period (or re-bill after a void): one recurring line
		SELECT d.account_id, d.subscription_id, d.currency, d.price_id, 'recurring'::text AS kind,
			   billing.billing_period(d.key_start, d.key_end) AS service_period, d.whole AS cycle_period,
			   d.quantity, d.unit_amount, d.expected AS amount,
			   d.product_name || ' ' || billing.billing_period(d.key_start, d.key_end)::text AS description,
			   d.key_start AS sort_date, 0 AS sort_seq
		FROM recurring_diff d
		WHERE d.billed_lines = 0 AND d.expected <> 0
		UNION ALL
		-- a billed period whose terms changed: credit what was billed for the
		-- days from the change on ...
		SELECT d.account_id, d.subscription_id, d.currency, d.billed_price_id, 'proration',
			   billing.billing_period(d.rp, CASE WHEN d.billed_end > d.rp THEN d.billed_end ELSE billing.period_end(d.whole) END),
			   d.whole, NULL, NULL, d.unchanged - d.billed,
			   'Unused time on ' || coalesce((SELECT pr.name FROM billing.price p JOIN billing.product pr ON pr.product_id = p.product_id
											 WHERE p.price_id = d.billed_price_id), d.product_name)
				   || ' from ' || d.rp::text,
			   d.rp, 1
		FROM recurring_diff d
		WHERE d.billed_lines > 0 AND d.expected <> d.billed AND d.unchanged - d.billed <> 0
		UNION ALL
		-- ... and charge the new terms for them
		SELECT d.account_id, d.subscription_id, d.currency, d.price_id, 'proration',
			   billing.billing_period(d.rp, CASE WHEN d.key_end > d.rp THEN d.key_end ELSE billing.period_end(d.whole) END),
			   d.whole, d.quantity, d.unit_amount, d.expected - d.unchanged,
			   'Remaining time on ' || d.product_name || ' from ' || d.rp::text,
			   d.rp, 2
		FROM recurring_diff d
		WHERE d.billed_lines > 0 AND d.expected <> d.billed AND d.expected - d.unchanged <> 0
		UNION ALL
		-- usage: the difference to what was billed for the period
		SELECT u.account_id, u.subscription_id, u.currency, u.price_id, 'usage',
			   u.period, u.whole, u.used, u.unit_amount, u.expected - coalesce(b.billed, 0),
			   u.product_name || ' usage ' || u.period::text,
			   billing.period_start(u.period), 0
		FROM expected_usage u
		LEFT JOIN billed b ON b.account_id = u.account_id AND b.subscription_id = u.subscription_id AND b.whole OPERATOR(billing.=) u.whole
		WHERE u.expected <> coalesce(b.billed, 0)
		UNION ALL
		-- one-time charges
		SELECT coalesce(o.account_id, b.account_id), coalesce(o.subscription_id, b.subscription_id),
			   coalesce(o.currency, b.currency), coalesce(o.price_id, b.price_id), 'one_time',
			   NULL, NULL, o.quantity, o.unit_amount, coalesce(o.expected, 0) - coalesce(b.billed, 0),
			   coalesce(o.product_name, 'subscription ' || b.subscription_id), NULL, 0
		FROM expected_one_time o
		FULL JOIN billed_one_time b ON b.account_id = o.account_id AND b.subscription_id = o.subscription_id
		WHERE coalesce(o.expected, 0) <> coalesce(b.billed, 0)
	),
	watermark AS (
		SELECT c.account_id, c.subscription_id,
			   coalesce(max(billing.period_end(pe.period)) FILTER (WHERE pe.due), c.billed_through) AS billed_through,
			   CASE
				   -- a not-yet-due period in arrears falls due at its end
				   WHEN bool_or(NOT pe.due) THEN min(billing.period_end(pe.period)) FILTER (WHERE NOT pe.due)
				   -- the period after the last one covered starts at its end
				   WHEN count(pe.period) > 0 AND max(billing.period_end(pe.period)) < coalesce(c.end_date, 'infinity')
					   THEN max(billing.period_end(pe.period))
				   -- every period through the end date is billed
				   WHEN count(pe.period) > 0 THEN NULL
				   -- no period in the window yet (e.g. a change dated ahead): keep what was
				   -- scheduled, or the start of terms not yet begun (one-time charges)
				   ELSE least(CASE WHEN c.next_due_date > target_date THEN c.next_due_date END,
							  (SELECT min(g.seg_start) FROM segment g
							   WHERE g.account_id = c.account_id AND g.subscription_id = c.subscription_id
								 AND g.seg_start > target_date))
			   END AS next_due_date,
			   c.reconcile_from
		FROM candidate c
		LEFT JOIN period pe ON pe.account_id = c.account_id AND pe.subscription_id = c.subscription_id
		GROUP BY c.account_id, c.subscription_id, c.billed_through, c.end_date, c.reconcile_from, c.next_due_date
	),
	-- tax: one effective rate per region and tax code on the document date
	tax AS (
		SELECT x.tax_region, x.tax_code, billing.effective_tax_rate(x.tax_region, x.tax_code, target_date) AS rate
		FROM (SELECT DISTINCT a.tax_region, pr.tax_code
			  FROM line l
			  JOIN billing.account a ON a.account_id = l.account_id
			  JOIN billing.price p ON p.price_id = l.price_id
			  JOIN billing.product pr ON pr.product_id = p.product_id
			  WHERE NOT a.tax_exempt AND a.tax_region IS NOT NULL) x
	)
	SELECT 'line'::text, l.account_id, l.subscription_id, l.currency, l.price_id, l.kind, l.service_period,
		   l.cycle_period, l.quantity, l.unit_amount, l.amount,
		   CASE WHEN a.tax_exempt OR t.rate IS NULL THEN 0
				ELSE billing.round_money(l.amount * t.rate, l.currency) END,
		   (row_number() OVER (PARTITION BY l.account_id, l.currency
							   ORDER BY l.subscription_id, l.sort_date NULLS FIRST, l.sort_seq))::int,
		   l.description, l.sort_date, l.sort_seq,
		   NULL::date, NULL::date, NULL::date, NULL::bigint
	FROM line l
	JOIN billing.account a ON a.account_id = l.account_id
	LEFT JOIN billing.price p ON p.price_id = l.price_id
	LEFT JOIN billing.product pr ON pr.product_id = p.product_id
	LEFT JOIN tax t ON t.tax_region = a.tax_region AND t.tax_code IS NOT DISTINCT FROM pr.tax_code
	UNION ALL
	SELECT 'watermark', w.account_id, w.subscription_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		   NULL, NULL, NULL, w.billed_through, w.next_due_date, w.reconcile_from, NULL
	FROM watermark w;
END $$;
