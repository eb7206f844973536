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

CREATE FUNCTION billing.first_cycle_date(start_date date, unit text, count int, cycle_day int)
	RETURNS date
	AS 'MODULE_PATHNAME', 'billing_first_cycle_date' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.first_cycle_date(date, text, int, int) IS
	'First cycle date of terms starting on start_date: month/year cycles on cycle_day (clamped to short months) in start''s month plus whole intervals, on or after start_date; week/day cycles start on start_date';

CREATE FUNCTION billing.cycle_periods(start_date date, cycle_day int, unit text, count int,
									  from_date date, end_date date, until_date date)
	RETURNS TABLE (period billing.billing_period, whole billing.billing_period)
	AS 'MODULE_PATHNAME', 'billing_cycle_periods' LANGUAGE C IMMUTABLE PARALLEL SAFE
	ROWS 3;
COMMENT ON FUNCTION billing.cycle_periods(date, int, text, int, date, date, date) IS
	'Billing periods of terms running [start_date, end_date) (NULL end: open) on the cycle of start_date and cycle_day (NULL: start''s day), each with the regular cycle period it belongs to; only periods ending after from_date and starting on or before until_date';
