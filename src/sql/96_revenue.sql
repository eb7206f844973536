-- Revenue recognition: each posted line is recognized daily over its service
-- period, split by calendar month (each month round(amount x days / total
-- days), the last month takes the remainder); lines without a service period
-- and lines of on_invoice prices in the month of their document date.
-- Negative lines are recognized the same way, so credits reverse revenue.

-- The split itself is C (src/revenue.c), the one place it is computed.
CREATE FUNCTION billing.revenue_months(amount numeric, service_period billing.billing_period, document_date date,
									   minor_units int)
	RETURNS TABLE (period_month date, amount numeric)
	AS 'MODULE_PATHNAME', 'billing_revenue_months'
	LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 3;
COMMENT ON FUNCTION billing.revenue_months(numeric, billing.billing_period, date, int) IS
	'Revenue of an amount by calendar month: daily over the service period, each month round(amount x days / total days) to minor_units, the last month the remainder; no service period: the document date''s month';

-- The schedule is derived from posted lines when read, never stored: it
-- cannot disagree with its lines, and posting writes nothing for it (an
-- annual line would otherwise write thirteen rows).  Lines stay scheduled
-- when their document is voided; readers filter on the document.
--
-- line_revenue is the one place a line's schedule is derived: the months of
-- each posted line with what the readers filter and group on.
CREATE VIEW billing.line_revenue AS
SELECT l.account_id, l.line_id, l.subscription_id, l.kind, p.charge_type, i.currency, i.status, i.invoice_date,
	   i.voided_on, r.recognized_period, m.period_month, m.amount
FROM billing.invoice i
JOIN billing.invoice_line l ON l.account_id = i.account_id AND l.invoice_id = i.invoice_id
JOIN billing.currency c ON c.code = i.currency
LEFT JOIN billing.price p ON p.price_id = l.price_id
-- ratable lines over their service period, the others in the document's month
CROSS JOIN LATERAL (SELECT CASE WHEN coalesce(p.revenue_rule, 'ratable') = 'ratable' THEN l.service_period END
						   AS recognized_period) r
CROSS JOIN LATERAL billing.revenue_months(l.amount, r.recognized_period, i.invoice_date, c.minor_units) m
WHERE i.status <> 'draft';
COMMENT ON VIEW billing.line_revenue IS 'Revenue of each posted line by calendar month, with its document''s currency, status and dates (behind revenue_schedule and the revenue reports)';
COMMENT ON COLUMN billing.line_revenue.account_id IS 'Account of the line';
COMMENT ON COLUMN billing.line_revenue.line_id IS 'Invoice line recognized';
COMMENT ON COLUMN billing.line_revenue.subscription_id IS 'Subscription of the line, if any';
COMMENT ON COLUMN billing.line_revenue.kind IS 'Line kind';
COMMENT ON COLUMN billing.line_revenue.charge_type IS 'Charge type of the line''s price, if any';
COMMENT ON COLUMN billing.line_revenue.currency IS 'Currency of the document';
COMMENT ON COLUMN billing.line_revenue.status IS 'posted or void';
COMMENT ON COLUMN billing.line_revenue.invoice_date IS 'Document date';
COMMENT ON COLUMN billing.line_revenue.voided_on IS 'Void date of the document, if voided';
COMMENT ON COLUMN billing.line_revenue.recognized_period IS 'Days the line is recognized over; NULL: in the document''s month';
COMMENT ON COLUMN billing.line_revenue.period_month IS 'First day of the month recognized in';
COMMENT ON COLUMN billing.line_revenue.amount IS 'Amount recognized in that month';

CREATE VIEW billing.revenue_schedule AS
SELECT r.account_id, r.line_id, r.period_month, r.amount
FROM billing.line_revenue r;
COMMENT ON VIEW billing.revenue_schedule IS 'Revenue of each posted line by calendar month; the months of a line sum exactly to its amount';
COMMENT ON COLUMN billing.revenue_schedule.account_id IS 'Account of the line';
COMMENT ON COLUMN billing.revenue_schedule.line_id IS 'Invoice line recognized';
COMMENT ON COLUMN billing.revenue_schedule.period_month IS 'First day of the month recognized in';
COMMENT ON COLUMN billing.revenue_schedule.amount IS 'Amount recognized in that month';

-- Revenue of a schedule month recognized by the end of as_of: whole months
-- before as_of's month, nothing after it, and in its month the share of the
-- recognized days up to as_of.
CREATE FUNCTION billing.recognized_amount(period_month date, amount numeric, recognized_period billing.billing_period,
										  as_of date)
	RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT CASE
		WHEN period_month < date_trunc('month', as_of) THEN amount
		WHEN period_month > as_of THEN 0
		WHEN recognized_period IS NULL THEN amount
		ELSE amount
			 * greatest(0, least(billing.period_end(recognized_period), as_of + 1)
						   - greatest(billing.period_start(recognized_period), period_month))
			 / greatest(1, least(billing.period_end(recognized_period), (period_month + interval '1 month')::date)
						   - greatest(billing.period_start(recognized_period), period_month)) END;
END;
COMMENT ON FUNCTION billing.recognized_amount(date, numeric, billing.billing_period, date) IS
	'Part of a schedule month recognized by the end of a date (unrounded; the caller rounds to the currency)';

CREATE FUNCTION billing.deferred_revenue(as_of date DEFAULT CURRENT_DATE)
	RETURNS TABLE (account_id bigint, currency text, amount numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM billing.check_as_of(as_of);
	RETURN QUERY
	SELECT d.account_id, d.currency, d.amount
	FROM (SELECT r.account_id, r.currency,
				 sum(r.amount - billing.round_money(billing.recognized_amount(r.period_month, r.amount, r.recognized_period,
																			   as_of), r.currency)) AS amount
		  FROM billing.line_revenue r
		  WHERE r.invoice_date <= as_of AND (r.voided_on IS NULL OR r.voided_on > as_of)
		  GROUP BY r.account_id, r.currency) d
	WHERE d.amount <> 0
	ORDER BY 1, 2;
END $$;
COMMENT ON FUNCTION billing.deferred_revenue(date) IS
	'Revenue posted but not yet recognized as of the end of a date, by account and currency';
