-- Revenue recognition: each posted line is recognized daily over its service
-- period, split by calendar month (each month round(amount x days / total
-- days), the last month takes the remainder); lines without a service period
-- and lines of on_invoice prices in the month of their document date.
-- Negative lines are recognized the same way, so credits reverse revenue.

CREATE TABLE billing.revenue_schedule (
	account_id		bigint NOT NULL,
	line_id			bigint NOT NULL,
	period_month	date NOT NULL
		CONSTRAINT revenue_schedule_first_of_month CHECK (extract(day FROM period_month) = 1),
	amount			numeric NOT NULL,
	PRIMARY KEY (account_id, line_id, period_month),
	FOREIGN KEY (account_id, line_id) REFERENCES billing.invoice_line (account_id, line_id)
);
COMMENT ON TABLE billing.revenue_schedule IS 'Revenue of each posted line by calendar month; the months of a line sum exactly to its amount';
COMMENT ON COLUMN billing.revenue_schedule.account_id IS 'Account of the line';
COMMENT ON COLUMN billing.revenue_schedule.line_id IS 'Invoice line recognized';
COMMENT ON COLUMN billing.revenue_schedule.period_month IS 'First day of the month recognized in';
COMMENT ON COLUMN billing.revenue_schedule.amount IS 'Amount recognized in that month';

CREATE FUNCTION billing.schedule_revenue(account_ids bigint[], invoice_ids bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off AS $$
BEGIN
	INSERT INTO billing.revenue_schedule (account_id, line_id, period_month, amount)
	SELECT m.account_id, m.line_id, m.period_month,
		   CASE WHEN m.month_no = m.months
				THEN m.amount - coalesce(sum(m.share) OVER (PARTITION BY m.line_id ORDER BY m.period_month
															ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
				ELSE m.share END
	FROM (SELECT l.account_id, l.line_id, l.amount, mo.period_month,
				 billing.round_money(l.amount * mo.days / billing.period_days(l.service_period), i.currency) AS share,
				 row_number() OVER (PARTITION BY l.line_id ORDER BY mo.period_month) AS month_no,
				 count(*) OVER (PARTITION BY l.line_id) AS months
		  FROM unnest(account_ids, invoice_ids) AS d(account_id, invoice_id)
		  JOIN billing.invoice i ON i.account_id = d.account_id AND i.invoice_id = d.invoice_id
		  JOIN billing.invoice_line l ON l.account_id = i.account_id AND l.invoice_id = i.invoice_id
		  LEFT JOIN billing.price p ON p.price_id = l.price_id
		  CROSS JOIN LATERAL (
			  SELECT m::date AS period_month,
					 least(billing.period_end(l.service_period), (m + interval '1 month')::date)
					 - greatest(billing.period_start(l.service_period), m::date) AS days
			  FROM generate_series(date_trunc('month', billing.period_start(l.service_period)),
								   billing.period_end(l.service_period) - 1, interval '1 month') AS m) mo
		  WHERE l.service_period IS NOT NULL AND coalesce(p.revenue_rule, 'ratable') = 'ratable') m
	UNION ALL
	SELECT l.account_id, l.line_id, date_trunc('month', i.invoice_date)::date, l.amount
	FROM unnest(account_ids, invoice_ids) AS d(account_id, invoice_id)
	JOIN billing.invoice i ON i.account_id = d.account_id AND i.invoice_id = d.invoice_id
	JOIN billing.invoice_line l ON l.account_id = i.account_id AND l.invoice_id = i.invoice_id
	LEFT JOIN billing.price p ON p.price_id = l.price_id
	WHERE l.service_period IS NULL OR p.revenue_rule = 'on_invoice';
END $$;
COMMENT ON FUNCTION billing.schedule_revenue(bigint[], bigint[]) IS
	'Writes the revenue schedule of documents being posted: daily by calendar month over the service period, last month takes the remainder';

-- Revenue of a schedule month recognized by the end of as_of: whole months
-- before as_of's month, nothing after it, and in its month the share of the
-- service days up to as_of.
CREATE FUNCTION billing.recognized_amount(s billing.revenue_schedule, service_period billing.billing_period, as_of date)
	RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT CASE
		WHEN s.period_month < date_trunc('month', as_of) THEN s.amount
		WHEN s.period_month > as_of THEN 0
		WHEN service_period IS NULL THEN s.amount
		ELSE s.amount
			 * greatest(0, least(billing.period_end(service_period), as_of + 1) - greatest(billing.period_start(service_period), s.period_month))
			 / greatest(1, least(billing.period_end(service_period), (s.period_month + interval '1 month')::date)
						   - greatest(billing.period_start(service_period), s.period_month)) END;
END;
COMMENT ON FUNCTION billing.recognized_amount(billing.revenue_schedule, billing.billing_period, date) IS
	'Part of a schedule month recognized by the end of a date (unrounded; the caller rounds to the currency)';

CREATE FUNCTION billing.deferred_revenue(as_of date DEFAULT CURRENT_DATE)
	RETURNS TABLE (account_id bigint, currency text, amount numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM billing.check_as_of(as_of);
	RETURN QUERY
	SELECT i.account_id, i.currency,
		   sum(s.amount - billing.round_money(billing.recognized_amount(s, CASE WHEN coalesce(p.revenue_rule, 'ratable') = 'ratable'
																				 THEN l.service_period END, as_of), i.currency))
	FROM billing.invoice i
	JOIN billing.invoice_line l ON l.account_id = i.account_id AND l.invoice_id = i.invoice_id
	JOIN billing.revenue_schedule s ON s.account_id = l.account_id AND s.line_id = l.line_id
	LEFT JOIN billing.price p ON p.price_id = l.price_id
	WHERE i.status <> 'draft' AND i.invoice_date <= as_of AND (i.voided_on IS NULL OR i.voided_on > as_of)
	GROUP BY i.account_id, i.currency
	HAVING sum(s.amount - billing.round_money(billing.recognized_amount(s, CASE WHEN coalesce(p.revenue_rule, 'ratable') = 'ratable'
																				 THEN l.service_period END, as_of), i.currency)) <> 0
	ORDER BY 1, 2;
END $$;
COMMENT ON FUNCTION billing.deferred_revenue(date) IS
	'Revenue posted but not yet recognized as of the end of a date, by account and currency';

SELECT pg_catalog.pg_extension_config_dump('billing.revenue_schedule', '');
