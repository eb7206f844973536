-- Billing cycles: periods from an anchor, a unit and a count.

CREATE FUNCTION billing.billing_periods(anchor date, unit text, count int, from_date date, to_date date)
	RETURNS SETOF billing.billing_period
	AS 'MODULE_PATHNAME', 'billing_periods' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	ROWS 12;
COMMENT ON FUNCTION billing.billing_periods(date, text, int, date, date) IS
	'Periods of the cycle that anchor defines (unit day|week|month|year, every count units), clipped to [from_date, to_date); month/year cycles keep the anchor''s day of month, clamped to short months';

CREATE FUNCTION billing.cycle_period(anchor date, unit text, count int, on_date date)
	RETURNS billing.billing_period
	AS 'MODULE_PATHNAME', 'billing_cycle_period' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.cycle_period(date, text, int, date) IS
	'The regular, unclipped period of the cycle that contains on_date: the whole a stub is prorated against';
