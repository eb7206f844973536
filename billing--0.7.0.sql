-- billing: subscription billing and accounts receivable inside PostgreSQL.
-- This install script is assembled from src/sql/*.sql by the Makefile.

\echo Use "CREATE EXTENSION billing" to load this file. \quit
-- billing_period: a half-open [start, end) range of dates, 8 bytes, by value.

CREATE TYPE billing.billing_period;

CREATE FUNCTION billing.billing_period_in(cstring) RETURNS billing.billing_period
	AS 'MODULE_PATHNAME', 'billing_period_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION billing.billing_period_out(billing.billing_period) RETURNS cstring
	AS 'MODULE_PATHNAME', 'billing_period_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION billing.billing_period_recv(internal) RETURNS billing.billing_period
	AS 'MODULE_PATHNAME', 'billing_period_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION billing.billing_period_send(billing.billing_period) RETURNS bytea
	AS 'MODULE_PATHNAME', 'billing_period_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE billing.billing_period (
	INPUT = billing.billing_period_in,
	OUTPUT = billing.billing_period_out,
	RECEIVE = billing.billing_period_recv,
	SEND = billing.billing_period_send,
	INTERNALLENGTH = 8,
	PASSEDBYVALUE,
	ALIGNMENT = double,
	STORAGE = plain
);
COMMENT ON TYPE billing.billing_period IS
	'Half-open range of dates [start, end): end is the first day not covered. Text form [2026-01-15,2026-02-15).';
COMMENT ON FUNCTION billing.billing_period_in(cstring) IS 'billing_period text input';
COMMENT ON FUNCTION billing.billing_period_out(billing.billing_period) IS 'billing_period text output (ISO dates)';
COMMENT ON FUNCTION billing.billing_period_recv(internal) IS 'billing_period binary input';
COMMENT ON FUNCTION billing.billing_period_send(billing.billing_period) IS 'billing_period binary output';

-- Constructor and accessors
CREATE FUNCTION billing.billing_period(start date, "end" date) RETURNS billing.billing_period
	AS 'MODULE_PATHNAME', 'billing_period_construct' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.billing_period(date, date) IS
	'The period [start, end); start must be before end';

CREATE FUNCTION billing.period_start(p billing.billing_period) RETURNS date
	AS 'MODULE_PATHNAME', 'billing_period_start' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.period_start(billing.billing_period) IS 'First day covered by the period';

CREATE FUNCTION billing.period_end(p billing.billing_period) RETURNS date
	AS 'MODULE_PATHNAME', 'billing_period_end' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.period_end(billing.billing_period) IS 'First day not covered by the period (exclusive end)';

CREATE FUNCTION billing.period_days(p billing.billing_period) RETURNS int
	AS 'MODULE_PATHNAME', 'billing_period_days_fn' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.period_days(billing.billing_period) IS 'Number of days the period covers';

-- Comparison: by start, then by end
CREATE FUNCTION billing.billing_period_eq(billing.billing_period, billing.billing_period) RETURNS bool
	AS 'MODULE_PATHNAME', 'billing_period_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION billing.billing_period_ne(billing.billing_period, billing.billing_period) RETURNS bool
	AS 'MODULE_PATHNAME', 'billing_period_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION billing.billing_period_lt(billing.billing_period, billing.billing_period) RETURNS bool
	AS 'MODULE_PATHNAME', 'billing_period_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION billing.billing_period_le(billing.billing_period, billing.billing_period) RETURNS bool
	AS 'MODULE_PATHNAME', 'billing_period_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION billing.billing_period_gt(billing.billing_period, billing.billing_period) RETURNS bool
	AS 'MODULE_PATHNAME', 'billing_period_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION billing.billing_period_ge(billing.billing_period, billing.billing_period) RETURNS bool
	AS 'MODULE_PATHNAME', 'billing_period_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION billing.billing_period_cmp(billing.billing_period, billing.billing_period) RETURNS int
	AS 'MODULE_PATHNAME', 'billing_period_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION billing.billing_period_hash(billing.billing_period) RETURNS int
	AS 'MODULE_PATHNAME', 'billing_period_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION billing.billing_period_hash_extended(billing.billing_period, bigint) RETURNS bigint
	AS 'MODULE_PATHNAME', 'billing_period_hash_extended' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
COMMENT ON FUNCTION billing.billing_period_eq(billing.billing_period, billing.billing_period) IS 'implementation of = for billing_period';
COMMENT ON FUNCTION billing.billing_period_ne(billing.billing_period, billing.billing_period) IS 'implementation of <> for billing_period';
COMMENT ON FUNCTION billing.billing_period_lt(billing.billing_period, billing.billing_period) IS 'implementation of < for billing_period';
COMMENT ON FUNCTION billing.billing_period_le(billing.billing_period, billing.billing_period) IS 'implementation of <= for billing_period';
COMMENT ON FUNCTION billing.billing_period_gt(billing.billing_period, billing.billing_period) IS 'implementation of > for billing_period';
COMMENT ON FUNCTION billing.billing_period_ge(billing.billing_period, billing.billing_period) IS 'implementation of >= for billing_period';
COMMENT ON FUNCTION billing.billing_period_cmp(billing.billing_period, billing.billing_period) IS 'btree comparison: by start, then end';
COMMENT ON FUNCTION billing.billing_period_hash(billing.billing_period) IS 'hash support for billing_period';
COMMENT ON FUNCTION billing.billing_period_hash_extended(billing.billing_period, bigint) IS 'seeded hash support for billing_period';

CREATE OPERATOR billing.= (
	LEFTARG = billing.billing_period, RIGHTARG = billing.billing_period,
	FUNCTION = billing.billing_period_eq, COMMUTATOR = OPERATOR(billing.=), NEGATOR = OPERATOR(billing.<>),
	RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
CREATE OPERATOR billing.<> (
	LEFTARG = billing.billing_period, RIGHTARG = billing.billing_period,
	FUNCTION = billing.billing_period_ne, COMMUTATOR = OPERATOR(billing.<>), NEGATOR = OPERATOR(billing.=),
	RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR billing.< (
	LEFTARG = billing.billing_period, RIGHTARG = billing.billing_period,
	FUNCTION = billing.billing_period_lt, COMMUTATOR = OPERATOR(billing.>), NEGATOR = OPERATOR(billing.>=),
	RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR billing.<= (
	LEFTARG = billing.billing_period, RIGHTARG = billing.billing_period,
	FUNCTION = billing.billing_period_le, COMMUTATOR = OPERATOR(billing.>=), NEGATOR = OPERATOR(billing.>),
	RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR billing.> (
	LEFTARG = billing.billing_period, RIGHTARG = billing.billing_period,
	FUNCTION = billing.billing_period_gt, COMMUTATOR = OPERATOR(billing.<), NEGATOR = OPERATOR(billing.<=),
	RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
CREATE OPERATOR billing.>= (
	LEFTARG = billing.billing_period, RIGHTARG = billing.billing_period,
	FUNCTION = billing.billing_period_ge, COMMUTATOR = OPERATOR(billing.<=), NEGATOR = OPERATOR(billing.<),
	RESTRICT = scalargesel, JOIN = scalargejoinsel
);
COMMENT ON OPERATOR billing.= (billing.billing_period, billing.billing_period) IS 'same start and end';
COMMENT ON OPERATOR billing.<> (billing.billing_period, billing.billing_period) IS 'different start or end';
COMMENT ON OPERATOR billing.< (billing.billing_period, billing.billing_period) IS 'earlier start, or same start and earlier end';
COMMENT ON OPERATOR billing.<= (billing.billing_period, billing.billing_period) IS 'less than or equal, by start then end';
COMMENT ON OPERATOR billing.> (billing.billing_period, billing.billing_period) IS 'later start, or same start and later end';
COMMENT ON OPERATOR billing.>= (billing.billing_period, billing.billing_period) IS 'greater than or equal, by start then end';

CREATE OPERATOR CLASS billing.billing_period_ops
	DEFAULT FOR TYPE billing.billing_period USING btree AS
	OPERATOR 1 billing.<,
	OPERATOR 2 billing.<=,
	OPERATOR 3 billing.=,
	OPERATOR 4 billing.>=,
	OPERATOR 5 billing.>,
	FUNCTION 1 billing.billing_period_cmp(billing.billing_period, billing.billing_period);
COMMENT ON OPERATOR CLASS billing.billing_period_ops USING btree IS 'btree ordering of billing_period by start, then end';

CREATE OPERATOR CLASS billing.billing_period_hash_ops
	DEFAULT FOR TYPE billing.billing_period USING hash AS
	OPERATOR 1 billing.=,
	FUNCTION 1 billing.billing_period_hash(billing.billing_period),
	FUNCTION 2 billing.billing_period_hash_extended(billing.billing_period, bigint);
COMMENT ON OPERATOR CLASS billing.billing_period_hash_ops USING hash IS 'hash equality of billing_period';

-- Overlap, containment, intersection
CREATE FUNCTION billing.billing_period_overlaps(billing.billing_period, billing.billing_period) RETURNS bool
	AS 'MODULE_PATHNAME', 'billing_period_overlaps' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION billing.billing_period_contains_date(billing.billing_period, date) RETURNS bool
	AS 'MODULE_PATHNAME', 'billing_period_contains_date' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION billing.billing_date_contained_by(date, billing.billing_period) RETURNS bool
	AS 'MODULE_PATHNAME', 'billing_date_contained_by' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION billing.billing_period_contains(billing.billing_period, billing.billing_period) RETURNS bool
	AS 'MODULE_PATHNAME', 'billing_period_contains' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION billing.billing_period_contained_by(billing.billing_period, billing.billing_period) RETURNS bool
	AS 'MODULE_PATHNAME', 'billing_period_contained_by' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION billing.billing_period_intersect(billing.billing_period, billing.billing_period) RETURNS billing.billing_period
	AS 'MODULE_PATHNAME', 'billing_period_intersect' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.billing_period_overlaps(billing.billing_period, billing.billing_period) IS 'implementation of && for billing_period';
COMMENT ON FUNCTION billing.billing_period_contains_date(billing.billing_period, date) IS 'implementation of billing_period @> date';
COMMENT ON FUNCTION billing.billing_date_contained_by(date, billing.billing_period) IS 'implementation of date <@ billing_period';
COMMENT ON FUNCTION billing.billing_period_contains(billing.billing_period, billing.billing_period) IS 'implementation of billing_period @> billing_period';
COMMENT ON FUNCTION billing.billing_period_contained_by(billing.billing_period, billing.billing_period) IS 'implementation of billing_period <@ billing_period';
COMMENT ON FUNCTION billing.billing_period_intersect(billing.billing_period, billing.billing_period) IS 'implementation of * for billing_period: shared days, NULL when disjoint';

CREATE OPERATOR billing.&& (
	LEFTARG = billing.billing_period, RIGHTARG = billing.billing_period,
	FUNCTION = billing.billing_period_overlaps, COMMUTATOR = OPERATOR(billing.&&),
	RESTRICT = areasel, JOIN = areajoinsel
);
CREATE OPERATOR billing.@> (
	LEFTARG = billing.billing_period, RIGHTARG = date,
	FUNCTION = billing.billing_period_contains_date, COMMUTATOR = OPERATOR(billing.<@),
	RESTRICT = contsel, JOIN = contjoinsel
);
CREATE OPERATOR billing.<@ (
	LEFTARG = date, RIGHTARG = billing.billing_period,
	FUNCTION = billing.billing_date_contained_by, COMMUTATOR = OPERATOR(billing.@>),
	RESTRICT = contsel, JOIN = contjoinsel
);
CREATE OPERATOR billing.@> (
	LEFTARG = billing.billing_period, RIGHTARG = billing.billing_period,
	FUNCTION = billing.billing_period_contains, COMMUTATOR = OPERATOR(billing.<@),
	RESTRICT = contsel, JOIN = contjoinsel
);
CREATE OPERATOR billing.<@ (
	LEFTARG = billing.billing_period, RIGHTARG = billing.billing_period,
	FUNCTION = billing.billing_period_contained_by, COMMUTATOR = OPERATOR(billing.@>),
	RESTRICT = contsel, JOIN = contjoinsel
);
CREATE OPERATOR billing.* (
	LEFTARG = billing.billing_period, RIGHTARG = billing.billing_period,
	FUNCTION = billing.billing_period_intersect, COMMUTATOR = OPERATOR(billing.*)
);
COMMENT ON OPERATOR billing.&& (billing.billing_period, billing.billing_period) IS 'the periods share at least one day';
COMMENT ON OPERATOR billing.@> (billing.billing_period, date) IS 'the period covers the date';
COMMENT ON OPERATOR billing.<@ (date, billing.billing_period) IS 'the date lies in the period';
COMMENT ON OPERATOR billing.@> (billing.billing_period, billing.billing_period) IS 'the left period covers every day of the right one';
COMMENT ON OPERATOR billing.<@ (billing.billing_period, billing.billing_period) IS 'every day of the left period lies in the right one';
COMMENT ON OPERATOR billing.* (billing.billing_period, billing.billing_period) IS 'intersection: the shared days, NULL when disjoint';

-- Casts with daterange (explicit: a daterange may be empty or unbounded)
CREATE FUNCTION billing.billing_period_to_daterange(billing.billing_period) RETURNS daterange
	AS 'MODULE_PATHNAME', 'billing_period_to_daterange' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION billing.daterange_to_billing_period(daterange) RETURNS billing.billing_period
	AS 'MODULE_PATHNAME', 'daterange_to_billing_period' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.billing_period_to_daterange(billing.billing_period) IS 'billing_period as the daterange [start, end)';
COMMENT ON FUNCTION billing.daterange_to_billing_period(daterange) IS 'non-empty bounded daterange as a billing_period';

CREATE CAST (billing.billing_period AS daterange)
	WITH FUNCTION billing.billing_period_to_daterange(billing.billing_period);
CREATE CAST (daterange AS billing.billing_period)
	WITH FUNCTION billing.daterange_to_billing_period(daterange);
COMMENT ON CAST (billing.billing_period AS daterange) IS 'the same days as a daterange';
COMMENT ON CAST (daterange AS billing.billing_period) IS 'a non-empty, bounded daterange as a billing_period';
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
-- Proration: the share of a full-period amount that part of the period is worth.

CREATE FUNCTION billing.prorate(amount numeric, part billing.billing_period, whole billing.billing_period)
	RETURNS numeric
	AS 'MODULE_PATHNAME', 'billing_prorate' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.prorate(numeric, billing.billing_period, billing.billing_period) IS
	'amount * days(part * whole) / days(whole), unrounded (exact to 20 decimals); 0 when disjoint';

CREATE FUNCTION billing.prorate_agg_transfn(internal, numeric, billing.billing_period, billing.billing_period)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'prorate_agg_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION billing.prorate_agg_combinefn(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'prorate_agg_combinefn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION billing.prorate_agg_serialfn(internal) RETURNS bytea
	AS 'MODULE_PATHNAME', 'prorate_agg_serialfn' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION billing.prorate_agg_deserialfn(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'prorate_agg_deserialfn' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION billing.prorate_agg_finalfn(internal) RETURNS numeric
	AS 'MODULE_PATHNAME', 'prorate_agg_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION billing.prorate_agg_transfn(internal, numeric, billing.billing_period, billing.billing_period) IS 'prorate_agg transition: adds amount * used days to its denominator''s numerator';
COMMENT ON FUNCTION billing.prorate_agg_combinefn(internal, internal) IS 'prorate_agg combine: merges partial states of parallel workers';
COMMENT ON FUNCTION billing.prorate_agg_serialfn(internal) IS 'prorate_agg state serialization';
COMMENT ON FUNCTION billing.prorate_agg_deserialfn(bytea, internal) IS 'prorate_agg state deserialization';
COMMENT ON FUNCTION billing.prorate_agg_finalfn(internal) IS 'prorate_agg final: one division per distinct period length';

CREATE AGGREGATE billing.prorate_agg(amount numeric, part billing.billing_period, whole billing.billing_period) (
	SFUNC = billing.prorate_agg_transfn,
	STYPE = internal,
	SSPACE = 128,
	FINALFUNC = billing.prorate_agg_finalfn,
	COMBINEFUNC = billing.prorate_agg_combinefn,
	SERIALFUNC = billing.prorate_agg_serialfn,
	DESERIALFUNC = billing.prorate_agg_deserialfn,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE billing.prorate_agg(numeric, billing.billing_period, billing.billing_period) IS
	'Exact sum of prorate(amount, part, whole) over the group (to 20 decimals), so the caller rounds once; NULL over no rows';
-- Currencies: ISO 4217 codes and their minor units (decimal places).

CREATE TABLE billing.currency (
	code		text PRIMARY KEY
		CONSTRAINT currency_code_format CHECK (code ~ '^[A-Z]{3}$'),
	minor_units	smallint NOT NULL
		CONSTRAINT currency_minor_units_range CHECK (minor_units BETWEEN 0 AND 6),
	builtin		boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE billing.currency IS 'Currencies money is kept in: ISO 4217 code and minor units; every stored amount is rounded to its currency''s minor unit';
COMMENT ON COLUMN billing.currency.code IS 'ISO 4217 alphabetic code, e.g. USD';
COMMENT ON COLUMN billing.currency.minor_units IS 'Decimal places of the minor unit: USD 2, JPY 0, KWD 3';
COMMENT ON COLUMN billing.currency.builtin IS 'Seeded by the extension (not dumped by pg_dump); rows you add have false';

-- Active ISO 4217 currencies with a minor unit (funds and metals without one are left out).
INSERT INTO billing.currency (code, minor_units, builtin) VALUES
	('AED', 2, true),
	('AFN', 2, true),
	('ALL', 2, true),
	('AMD', 2, true),
	('ANG', 2, true),
	('AOA', 2, true),
	('ARS', 2, true),
	('AUD', 2, true),
	('AWG', 2, true),
	('AZN', 2, true),
	('BAM', 2, true),
	('BBD', 2, true),
	('BDT', 2, true),
	('BGN', 2, true),
	('BHD', 3, true),
	('BIF', 0, true),
	('BMD', 2, true),
	('BND', 2, true),
	('BOB', 2, true),
	('BOV', 2, true),
	('BRL', 2, true),
	('BSD', 2, true),
	('BTN', 2, true),
	('BWP', 2, true),
	('BYN', 2, true),
	('BZD', 2, true),
	('CAD', 2, true),
	('CDF', 2, true),
	('CHE', 2, true),
	('CHF', 2, true),
	('CHW', 2, true),
	('CLF', 4, true),
	('CLP', 0, true),
	('CNY', 2, true),
	('COP', 2, true),
	('COU', 2, true),
	('CRC', 2, true),
	('CUP', 2, true),
	('CVE', 2, true),
	('CZK', 2, true),
	('DJF', 0, true),
	('DKK', 2, true),
	('DOP', 2, true),
	('DZD', 2, true),
	('EGP', 2, true),
	('ERN', 2, true),
	('ETB', 2, true),
	('EUR', 2, true),
	('FJD', 2, true),
	('FKP', 2, true),
	('GBP', 2, true),
	('GEL', 2, true),
	('GHS', 2, true),
	('GIP', 2, true),
	('GMD', 2, true),
	('GNF', 0, true),
	('GTQ', 2, true),
	('GYD', 2, true),
	('HKD', 2, true),
	('HNL', 2, true),
	('HTG', 2, true),
	('HUF', 2, true),
	('IDR', 2, true),
	('ILS', 2, true),
	('INR', 2, true),
	('IQD', 3, true),
	('IRR', 2, true),
	('ISK', 0, true),
	('JMD', 2, true),
	('JOD', 3, true),
	('JPY', 0, true),
	('KES', 2, true),
	('KGS', 2, true),
	('KHR', 2, true),
	('KMF', 0, true),
	('KPW', 2, true),
	('KRW', 0, true),
	('KWD', 3, true),
	('KYD', 2, true),
	('KZT', 2, true),
	('LAK', 2, true),
	('LBP', 2, true),
	('LKR', 2, true),
	('LRD', 2, true),
	('LSL', 2, true),
	('LYD', 3, true),
	('MAD', 2, true),
	('MDL', 2, true),
	('MGA', 2, true),
	('MKD', 2, true),
	('MMK', 2, true),
	('MNT', 2, true),
	('MOP', 2, true),
	('MRU', 2, true),
	('MUR', 2, true),
	('MVR', 2, true),
	('MWK', 2, true),
	('MXN', 2, true),
	('MXV', 2, true),
	('MYR', 2, true),
	('MZN', 2, true),
	('NAD', 2, true),
	('NGN', 2, true),
	('NIO', 2, true),
	('NOK', 2, true),
	('NPR', 2, true),
	('NZD', 2, true),
	('OMR', 3, true),
	('PAB', 2, true),
	('PEN', 2, true),
	('PGK', 2, true),
	('PHP', 2, true),
	('PKR', 2, true),
	('PLN', 2, true),
	('PYG', 0, true),
	('QAR', 2, true),
	('RON', 2, true),
	('RSD', 2, true),
	('RUB', 2, true),
	('RWF', 0, true),
	('SAR', 2, true),
	('SBD', 2, true),
	('SCR', 2, true),
	('SDG', 2, true),
	('SEK', 2, true),
	('SGD', 2, true),
	('SHP', 2, true),
	('SLE', 2, true),
	('SOS', 2, true),
	('SRD', 2, true),
	('SSP', 2, true),
	('STN', 2, true),
	('SVC', 2, true),
	('SYP', 2, true),
	('SZL', 2, true),
	('THB', 2, true),
	('TJS', 2, true),
	('TMT', 2, true),
	('TND', 3, true),
	('TOP', 2, true),
	('TRY', 2, true),
	('TTD', 2, true),
	('TWD', 2, true),
	('TZS', 2, true),
	('UAH', 2, true),
	('UGX', 0, true),
	('USD', 2, true),
	('USN', 2, true),
	('UYI', 0, true),
	('UYU', 2, true),
	('UYW', 4, true),
	('UZS', 2, true),
	('VED', 2, true),
	('VES', 2, true),
	('VND', 0, true),
	('VUV', 0, true),
	('WST', 2, true),
	('XAF', 0, true),
	('XCD', 2, true),
	('XCG', 2, true),
	('XOF', 0, true),
	('XPF', 0, true),
	('YER', 2, true),
	('ZAR', 2, true),
	('ZMW', 2, true),
	('ZWG', 2, true);

-- pg_dump keeps the rows users add; the seeded ones come back with CREATE EXTENSION.
SELECT pg_catalog.pg_extension_config_dump('billing.currency', 'WHERE NOT builtin');
-- Money: rounding to a currency's minor unit, and exact splits.

CREATE FUNCTION billing.round_money(amount numeric, currency text) RETURNS numeric
	AS 'MODULE_PATHNAME', 'billing_round_money' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.round_money(numeric, text) IS
	'amount rounded half away from zero to the currency''s minor unit (reads billing.currency)';

CREATE FUNCTION billing.allocate(total numeric, weights numeric[], currency text) RETURNS numeric[]
	AS 'MODULE_PATHNAME', 'billing_allocate' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.allocate(numeric, numeric[], text) IS
	'Split total in proportion to non-negative weights by the largest-remainder method: parts truncated to the minor unit, left-over units to the largest remainders (ties: earlier part); parts sum exactly to total';

-- sum() of numeric keeps a large state per group (for avg and variance too),
-- so a hash aggregate over many small groups (a sum per document) spills at
-- a fraction of the groups; this one keeps the running total only.
CREATE AGGREGATE billing.money_sum(numeric) (
	SFUNC = pg_catalog.numeric_add,
	STYPE = numeric,
	COMBINEFUNC = pg_catalog.numeric_add,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE billing.money_sum(numeric) IS
	'Sum of money amounts (NULL over no rows, like sum) with a state of one numeric: for hash aggregates of many groups';
-- Catalog and accounts: who is billed, for what, at which price.

CREATE TABLE billing.account (
	account_id			bigserial PRIMARY KEY,
	external_key		text UNIQUE,
	name				text NOT NULL,
	currency			text NOT NULL REFERENCES billing.currency (code),
	bill_cycle_day		smallint
		CONSTRAINT account_bill_cycle_day_range CHECK (bill_cycle_day BETWEEN 1 AND 31),
	payment_terms_days	int NOT NULL DEFAULT 30
		CONSTRAINT account_payment_terms_days_range CHECK (payment_terms_days BETWEEN 0 AND 3650),
	timezone			text NOT NULL DEFAULT 'UTC'
		-- timezone() raises 22023 for a name PostgreSQL does not know
		CONSTRAINT account_timezone_known CHECK (pg_catalog.timezone(timezone, '2000-01-01 00:00+00'::timestamptz) IS NOT NULL),
	billing_hold		boolean NOT NULL DEFAULT false,
	tax_region			text,
	tax_exempt			boolean NOT NULL DEFAULT false,
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE billing.account IS 'Billed customers: one row per account, the unit every document, payment and balance belongs to';
COMMENT ON COLUMN billing.account.account_id IS 'Account id (distribution key on Citus)';
COMMENT ON COLUMN billing.account.external_key IS 'The application''s own key for the account';
COMMENT ON COLUMN billing.account.name IS 'Customer name printed on documents';
COMMENT ON COLUMN billing.account.currency IS 'Default currency of the account';
COMMENT ON COLUMN billing.account.bill_cycle_day IS 'Day of month monthly/yearly subscriptions bill on; NULL: each subscription''s own start day';
COMMENT ON COLUMN billing.account.payment_terms_days IS 'Days from document date to due date';
COMMENT ON COLUMN billing.account.timezone IS 'Time zone usage instants are turned into dates in';
COMMENT ON COLUMN billing.account.billing_hold IS 'When true, invoice runs skip the account; released, the next run catches up';
COMMENT ON COLUMN billing.account.tax_region IS 'Region whose tax rates apply (billing.tax_rate.region)';
COMMENT ON COLUMN billing.account.tax_exempt IS 'When true, no tax is charged';
COMMENT ON COLUMN billing.account.created_at IS 'When the account row was created';

-- The fixed lock order of every billing write: account rows first, in
-- account_id order, then the rows of those accounts.  Row locks, so the order
-- also holds on Citus, where advisory locks are node-local.
-- Lock an account row (22023 when it does not exist).
CREATE FUNCTION billing.lock_account(account_id bigint) RETURNS billing.account
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	a billing.account;
BEGIN
	SELECT * INTO a FROM billing.account x WHERE x.account_id = lock_account.account_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'account % does not exist', account_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN a;
END $$;
COMMENT ON FUNCTION billing.lock_account(bigint) IS 'Locks an account row: the first lock of every billing write';

CREATE FUNCTION billing.lock_accounts(account_ids bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
-- one plan for every call: the index walked in key order, for one account or
-- a run's hundred thousand (a custom plan estimates the selectivity of every
-- element of the array, which took longer than locking them)
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
	PERFORM 1 FROM billing.account a
	WHERE a.account_id = ANY (account_ids)
	ORDER BY a.account_id
	FOR UPDATE;
END $$;
COMMENT ON FUNCTION billing.lock_accounts(bigint[]) IS 'Locks account rows in account_id order, as batch writes do first';

CREATE TABLE billing.product (
	product_id	bigserial PRIMARY KEY,
	code		text NOT NULL UNIQUE,
	name		text NOT NULL,
	tax_code	text
);
COMMENT ON TABLE billing.product IS 'What is sold; prices hang off products';
COMMENT ON COLUMN billing.product.product_id IS 'Product id';
COMMENT ON COLUMN billing.product.code IS 'Unique product code';
COMMENT ON COLUMN billing.product.name IS 'Name printed on invoice lines';
COMMENT ON COLUMN billing.product.tax_code IS 'Tax code: rates for this code replace the region''s general rates';

CREATE TABLE billing.price (
	price_id			bigserial PRIMARY KEY,
	product_id			bigint NOT NULL REFERENCES billing.product,
	code				text NOT NULL UNIQUE,
	currency			text NOT NULL REFERENCES billing.currency (code),
	charge_type			text NOT NULL
		CONSTRAINT price_charge_type_valid CHECK (charge_type IN ('recurring', 'usage', 'one_time')),
	billing_interval	text
		CONSTRAINT price_billing_interval_valid CHECK (billing_interval IN ('month', 'year', 'week', 'day')),
	interval_count		int NOT NULL DEFAULT 1
		CONSTRAINT price_interval_count_range CHECK (interval_count BETWEEN 1 AND 1000),
	billing_timing		text
		CONSTRAINT price_billing_timing_valid CHECK (billing_timing IN ('in_advance', 'in_arrears')),
	pricing_model		text NOT NULL DEFAULT 'per_unit'
		CONSTRAINT price_pricing_model_valid CHECK (pricing_model IN ('flat', 'per_unit', 'graduated', 'volume', 'package')),
	unit_amount			numeric
		CONSTRAINT price_unit_amount_valid CHECK (unit_amount >= 0 AND scale(unit_amount) <= 6),
	package_size		numeric
		CONSTRAINT price_package_size_positive CHECK (package_size > 0),
	tiers				jsonb,
	proration			text NOT NULL DEFAULT 'daily'
		CONSTRAINT price_proration_valid CHECK (proration IN ('daily', 'none')),
	revenue_rule		text NOT NULL DEFAULT 'ratable'
		CONSTRAINT price_revenue_rule_valid CHECK (revenue_rule IN ('ratable', 'on_invoice')),
	-- one-time prices have no cycle; recurring and usage prices need one
	CONSTRAINT price_cycle_matches_charge_type CHECK (
		CASE charge_type
			WHEN 'one_time' THEN billing_interval IS NULL AND billing_timing IS NULL
			ELSE billing_interval IS NOT NULL AND billing_timing IS NOT NULL
		END),
	-- usage is known only once the period is over
	CONSTRAINT price_usage_in_arrears CHECK (charge_type <> 'usage' OR billing_timing = 'in_arrears'),
	CONSTRAINT price_model_has_amounts CHECK (
		CASE pricing_model
			WHEN 'package' THEN unit_amount IS NOT NULL AND package_size IS NOT NULL
			WHEN 'graduated' THEN tiers IS NOT NULL
			WHEN 'volume' THEN tiers IS NOT NULL
			ELSE unit_amount IS NOT NULL
		END)
);
COMMENT ON TABLE billing.price IS 'How a product is charged: cycle, timing and pricing model. Immutable once a subscription uses it: create a new price instead';
COMMENT ON COLUMN billing.price.price_id IS 'Price id';
COMMENT ON COLUMN billing.price.product_id IS 'Product the price belongs to';
COMMENT ON COLUMN billing.price.code IS 'Unique price code';
COMMENT ON COLUMN billing.price.currency IS 'Currency of every amount of the price';
COMMENT ON COLUMN billing.price.charge_type IS 'recurring (every period), usage (metered, in arrears) or one_time';
COMMENT ON COLUMN billing.price.billing_interval IS 'Cycle unit: month, year, week or day (NULL for one_time)';
COMMENT ON COLUMN billing.price.interval_count IS 'Cycle length in units: 3 months is a quarter';
COMMENT ON COLUMN billing.price.billing_timing IS 'in_advance: billed when the period starts; in_arrears: once it has ended (NULL for one_time)';
COMMENT ON COLUMN billing.price.pricing_model IS 'flat (fixed fee for any positive quantity), per_unit, graduated, volume or package';
COMMENT ON COLUMN billing.price.unit_amount IS 'Amount per unit (flat: the fee; package: per package), up to 6 decimals';
COMMENT ON COLUMN billing.price.package_size IS 'Units per package (package model)';
COMMENT ON COLUMN billing.price.tiers IS 'Tiers of graduated/volume prices: [{"up_to": 250, "unit_amount": 0.5, "flat_amount": 0}, ..., {"up_to": null, ...}]';
COMMENT ON COLUMN billing.price.proration IS 'daily: stubs and mid-period changes are prorated by days; none: a stub is billed as a full period and changes apply from the next period';
COMMENT ON COLUMN billing.price.revenue_rule IS 'ratable: revenue recognized daily over the service period; on_invoice: in the month of the document';

-- Tiers: a non-empty array, up_to strictly increasing, the last open (null).
CREATE FUNCTION billing.price_check_tiers() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tier jsonb;
	n int;
	previous numeric := 0;
	up_to numeric;
	i int := 0;
BEGIN
	IF NEW.tiers IS NULL THEN
		RETURN NEW;
	END IF;
	IF jsonb_typeof(NEW.tiers) <> 'array' OR jsonb_array_length(NEW.tiers) = 0 THEN
		RAISE EXCEPTION 'tiers of price "%" must be a non-empty JSON array', NEW.code
			USING ERRCODE = 'check_violation', DETAIL = format('tiers is %s', NEW.tiers);
	END IF;
	n := jsonb_array_length(NEW.tiers);
	FOR tier IN SELECT value FROM jsonb_array_elements(NEW.tiers) LOOP
		i := i + 1;
		IF jsonb_typeof(tier) <> 'object'
		   OR jsonb_typeof(tier -> 'unit_amount') IS DISTINCT FROM 'number'
		   OR (tier ? 'flat_amount' AND jsonb_typeof(tier -> 'flat_amount') <> 'number')
		   OR (tier -> 'unit_amount')::numeric < 0
		   OR coalesce((tier -> 'flat_amount')::numeric, 0) < 0 THEN
			RAISE EXCEPTION 'tier % of price "%" needs a non-negative unit_amount and flat_amount', i, NEW.code
				USING ERRCODE = 'check_violation', DETAIL = format('tier %s is %s', i, tier);
		END IF;
		IF i < n THEN
			IF jsonb_typeof(tier -> 'up_to') IS DISTINCT FROM 'number' THEN
				RAISE EXCEPTION 'tier % of price "%" needs a numeric up_to; only the last tier is open', i, NEW.code
					USING ERRCODE = 'check_violation', DETAIL = format('tier %s is %s', i, tier);
			END IF;
			up_to := (tier -> 'up_to')::numeric;
			IF up_to <= previous THEN
				RAISE EXCEPTION 'tiers of price "%" are out of order', NEW.code
					USING ERRCODE = 'check_violation',
						  DETAIL = format('tier %s ends at %s, not above the previous tier''s %s', i, up_to, previous);
			END IF;
			previous := up_to;
		ELSIF (tier -> 'up_to') IS NOT NULL AND jsonb_typeof(tier -> 'up_to') <> 'null' THEN
			RAISE EXCEPTION 'the last tier of price "%" must be open (up_to null)', NEW.code
				USING ERRCODE = 'check_violation', DETAIL = format('tier %s ends at %s', i, tier -> 'up_to');
		END IF;
	END LOOP;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION billing.price_check_tiers() IS 'Trigger: validates the tiers of a price';
CREATE TRIGGER price_check_tiers BEFORE INSERT OR UPDATE OF tiers ON billing.price
	FOR EACH ROW EXECUTE FUNCTION billing.price_check_tiers();

-- The tiered models of the pricing rule (graduated, volume); any other model
-- reaching here is unknown.
CREATE FUNCTION billing.tiered_amount(pricing_model text, tiers jsonb, quantity numeric)
	RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tier jsonb;
	lower_bound numeric := 0;
	upper_bound numeric;
	total numeric := 0;
BEGIN
	CASE pricing_model
		WHEN 'graduated' THEN
			-- each unit in its own tier, plus the flat fee of every tier reached
			FOR tier IN SELECT value FROM jsonb_array_elements(tiers) LOOP
				upper_bound := (tier ->> 'up_to')::numeric;
				total := total + coalesce((tier ->> 'flat_amount')::numeric, 0)
					+ (least(quantity, coalesce(upper_bound, quantity)) - lower_bound) * (tier ->> 'unit_amount')::numeric;
				EXIT WHEN upper_bound IS NULL OR quantity <= upper_bound;
				lower_bound := upper_bound;
			END LOOP;
			RETURN total;
		WHEN 'volume' THEN
			-- every unit at the tier the total falls in, plus that tier's flat fee
			FOR tier IN SELECT value FROM jsonb_array_elements(tiers) LOOP
				upper_bound := (tier ->> 'up_to')::numeric;
				IF upper_bound IS NULL OR quantity <= upper_bound THEN
					RETURN coalesce((tier ->> 'flat_amount')::numeric, 0) + quantity * (tier ->> 'unit_amount')::numeric;
				END IF;
			END LOOP;
			RETURN NULL;
		ELSE
			RAISE EXCEPTION 'unknown pricing model "%"', pricing_model USING ERRCODE = 'invalid_parameter_value';
	END CASE;
END $$;
COMMENT ON FUNCTION billing.tiered_amount(text, jsonb, numeric) IS
	'Unrounded amount of a non-zero quantity under a tiered pricing model (graduated, volume); part of billing.pricing_amount';

-- The pricing rule, unrounded: what "quantity" costs for a full period
-- (src/pricing.c; the engine rates usage with the same code).  Only tiered
-- models call billing.tiered_amount().  A quantity of 0 costs 0 in every
-- model, flat fees included.
CREATE FUNCTION billing.pricing_amount(pricing_model text, unit_amount numeric, package_size numeric,
									   tiers jsonb, quantity numeric)
	RETURNS numeric
	AS 'MODULE_PATHNAME', 'billing_pricing_amount' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION billing.pricing_amount(text, numeric, numeric, jsonb, numeric) IS
	'Unrounded amount of a quantity for one full period under a pricing model (flat, per_unit, package, graduated, volume); 0 for quantity 0';

CREATE FUNCTION billing.price_amount(price_id bigint, quantity numeric) RETURNS numeric
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p billing.price;
BEGIN
	SELECT * INTO p FROM billing.price WHERE billing.price.price_id = price_amount.price_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'price % does not exist', price_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF quantity < 0 THEN
		RAISE EXCEPTION 'quantity for price "%" must not be negative', p.code
			USING ERRCODE = 'invalid_parameter_value', DETAIL = format('quantity is %s', quantity);
	END IF;
	RETURN billing.round_money(billing.pricing_amount(p.pricing_model, p.unit_amount, p.package_size, p.tiers, quantity),
							   p.currency);
END $$;
COMMENT ON FUNCTION billing.price_amount(bigint, numeric) IS
	'What quantity costs for one full period of the price, rounded to the price''s currency';

CREATE TABLE billing.tax_rate (
	tax_rate_id	bigserial PRIMARY KEY,
	region		text NOT NULL,
	tax_code	text,
	name		text,
	rate		numeric NOT NULL
		CONSTRAINT tax_rate_rate_range CHECK (rate >= 0 AND rate < 10),
	priority	int NOT NULL DEFAULT 0,
	valid_from	date NOT NULL DEFAULT '-infinity',
	valid_to	date,
	CONSTRAINT tax_rate_validity CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX tax_rate_region_idx ON billing.tax_rate (region, tax_code);
COMMENT ON TABLE billing.tax_rate IS 'Tax rates by region and product tax code, valid over [valid_from, valid_to) of the document date';
COMMENT ON COLUMN billing.tax_rate.tax_rate_id IS 'Tax rate id';
COMMENT ON COLUMN billing.tax_rate.region IS 'Region the rate applies in (account.tax_region)';
COMMENT ON COLUMN billing.tax_rate.tax_code IS 'Product tax code it applies to; NULL: the region''s general rate. Code rates replace general ones';
COMMENT ON COLUMN billing.tax_rate.name IS 'Name printed on documents, e.g. VAT';
COMMENT ON COLUMN billing.tax_rate.rate IS 'Rate as a fraction: 0.10 is 10 %';
COMMENT ON COLUMN billing.tax_rate.priority IS 'Rates of equal priority add; a higher priority compounds on the amount plus lower-priority tax';
COMMENT ON COLUMN billing.tax_rate.valid_from IS 'First document date the rate applies to';
COMMENT ON COLUMN billing.tax_rate.valid_to IS 'First document date it no longer applies to; NULL: open';

-- Effective rate of a region and tax code on a date: Π(1 + Σ rates of a priority) - 1,
-- so a line's tax is rounded once: round(amount × effective rate).
CREATE FUNCTION billing.effective_tax_rate(region text, tax_code text, on_date date) RETURNS numeric
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	factor numeric := 1;
	level_rate numeric;
	use_code boolean;
BEGIN
	IF region IS NULL THEN
		RETURN 0;
	END IF;
	use_code := tax_code IS NOT NULL AND EXISTS (
		SELECT 1 FROM billing.tax_rate t
		WHERE t.region = effective_tax_rate.region AND t.tax_code = effective_tax_rate.tax_code
		  AND t.valid_from <= on_date AND (t.valid_to IS NULL OR on_date < t.valid_to));
	FOR level_rate IN
		SELECT sum(t.rate)
		FROM billing.tax_rate t
		WHERE t.region = effective_tax_rate.region
		  AND t.tax_code IS NOT DISTINCT FROM CASE WHEN use_code THEN effective_tax_rate.tax_code END
		  AND t.valid_from <= on_date AND (t.valid_to IS NULL OR on_date < t.valid_to)
		GROUP BY t.priority
		ORDER BY t.priority
	LOOP
		factor := factor * (1 + level_rate);
	END LOOP;
	RETURN factor - 1;
END $$;
COMMENT ON FUNCTION billing.effective_tax_rate(text, text, date) IS
	'Combined tax rate of a region and product tax code on a date: equal priorities add, higher priorities compound';

SELECT pg_catalog.pg_extension_config_dump('billing.account', '');
SELECT pg_catalog.pg_extension_config_dump('billing.account_account_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('billing.product', '');
SELECT pg_catalog.pg_extension_config_dump('billing.product_product_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('billing.price', '');
SELECT pg_catalog.pg_extension_config_dump('billing.price_price_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('billing.tax_rate', '');
SELECT pg_catalog.pg_extension_config_dump('billing.tax_rate_tax_rate_id_seq', '');
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
-- Receivables: payments, allocations and refunds.  Append-only: corrections
-- are new rows (a reversing allocation), so every balance can be computed as
-- of any past date.

CREATE TABLE billing.payment (
	payment_id		bigserial,
	account_id		bigint NOT NULL REFERENCES billing.account,
	amount			numeric NOT NULL
		CONSTRAINT payment_amount_positive CHECK (amount > 0),
	currency		text NOT NULL REFERENCES billing.currency (code),
	received_on		date NOT NULL,
	method			text,
	reference		text,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (account_id, payment_id),
	UNIQUE (account_id, reference)
);
CREATE INDEX payment_id_idx ON billing.payment (payment_id);
COMMENT ON TABLE billing.payment IS 'Money received from a customer; applied to documents by allocations';
COMMENT ON COLUMN billing.payment.payment_id IS 'Payment id';
COMMENT ON COLUMN billing.payment.account_id IS 'Paying account';
COMMENT ON COLUMN billing.payment.amount IS 'Amount received, positive, in the account''s currency';
COMMENT ON COLUMN billing.payment.currency IS 'Currency of the payment';
COMMENT ON COLUMN billing.payment.received_on IS 'Date received: the payment counts from this date';
COMMENT ON COLUMN billing.payment.method IS 'Payment method, e.g. card, wire';
COMMENT ON COLUMN billing.payment.reference IS 'Caller''s reference: record_payment is idempotent on (account, reference)';
COMMENT ON COLUMN billing.payment.created_at IS 'When the row was created';

CREATE TABLE billing.allocation (
	allocation_id			bigserial,
	account_id				bigint NOT NULL,
	invoice_id				bigint NOT NULL,
	payment_id				bigint,
	credit_note_id			bigint,
	amount					numeric NOT NULL
		CONSTRAINT allocation_amount_not_zero CHECK (amount <> 0),
	allocated_on			date NOT NULL,
	reverses_allocation_id	bigint,
	created_at				timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (account_id, allocation_id),
	FOREIGN KEY (account_id, invoice_id) REFERENCES billing.invoice (account_id, invoice_id),
	FOREIGN KEY (account_id, payment_id) REFERENCES billing.payment (account_id, payment_id),
	FOREIGN KEY (account_id, credit_note_id) REFERENCES billing.invoice (account_id, invoice_id),
	FOREIGN KEY (account_id, reverses_allocation_id) REFERENCES billing.allocation (account_id, allocation_id),
	CONSTRAINT allocation_one_source CHECK ((payment_id IS NULL) <> (credit_note_id IS NULL)),
	CONSTRAINT allocation_reversal_negative CHECK ((reverses_allocation_id IS NULL) = (amount > 0)),
	CONSTRAINT allocation_reversed_once UNIQUE (account_id, reverses_allocation_id)
);
CREATE INDEX allocation_id_idx ON billing.allocation (allocation_id);
CREATE INDEX allocation_invoice_idx ON billing.allocation (account_id, invoice_id);
CREATE INDEX allocation_payment_idx ON billing.allocation (account_id, payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX allocation_credit_note_idx ON billing.allocation (account_id, credit_note_id) WHERE credit_note_id IS NOT NULL;
COMMENT ON TABLE billing.allocation IS 'Money from one source (a payment or a posted credit note) applied to an invoice or debit note; a reversal is a new row with the negated amount';
COMMENT ON COLUMN billing.allocation.allocation_id IS 'Allocation id';
COMMENT ON COLUMN billing.allocation.account_id IS 'Account of source and target';
COMMENT ON COLUMN billing.allocation.invoice_id IS 'Target document: an invoice or debit note';
COMMENT ON COLUMN billing.allocation.payment_id IS 'Source payment, or NULL';
COMMENT ON COLUMN billing.allocation.credit_note_id IS 'Source credit note (its invoice_id), or NULL';
COMMENT ON COLUMN billing.allocation.amount IS 'Amount applied; negative on a reversal';
COMMENT ON COLUMN billing.allocation.allocated_on IS 'Date the allocation counts from';
COMMENT ON COLUMN billing.allocation.reverses_allocation_id IS 'The allocation this row reverses (unapply)';
COMMENT ON COLUMN billing.allocation.created_at IS 'When the row was created';

CREATE TABLE billing.refund (
	refund_id		bigserial,
	account_id		bigint NOT NULL,
	payment_id		bigint,
	credit_note_id	bigint,
	amount			numeric NOT NULL
		CONSTRAINT refund_amount_positive CHECK (amount > 0),
	refunded_on		date NOT NULL,
	reference		text,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (account_id, refund_id),
	FOREIGN KEY (account_id, payment_id) REFERENCES billing.payment (account_id, payment_id),
	FOREIGN KEY (account_id, credit_note_id) REFERENCES billing.invoice (account_id, invoice_id),
	CONSTRAINT refund_one_source CHECK ((payment_id IS NULL) <> (credit_note_id IS NULL))
);
CREATE INDEX refund_payment_idx ON billing.refund (account_id, payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX refund_credit_note_idx ON billing.refund (account_id, credit_note_id) WHERE credit_note_id IS NOT NULL;
COMMENT ON TABLE billing.refund IS 'Money paid back from the unapplied part of a payment or credit note';
COMMENT ON COLUMN billing.refund.refund_id IS 'Refund id';
COMMENT ON COLUMN billing.refund.account_id IS 'Account refunded';
COMMENT ON COLUMN billing.refund.payment_id IS 'Source payment, or NULL';
COMMENT ON COLUMN billing.refund.credit_note_id IS 'Source credit note, or NULL';
COMMENT ON COLUMN billing.refund.amount IS 'Amount refunded, positive';
COMMENT ON COLUMN billing.refund.refunded_on IS 'Date refunded';
COMMENT ON COLUMN billing.refund.reference IS 'Caller''s reference';
COMMENT ON COLUMN billing.refund.created_at IS 'When the row was created';

CREATE FUNCTION billing.append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION '% rows are append-only', TG_TABLE_NAME
		USING ERRCODE = 'object_not_in_prerequisite_state',
			  DETAIL = format('%s of %s', lower(TG_OP), row_to_json(OLD)),
			  HINT = 'Record a correction instead: billing.unapply(), a credit note or a refund.';
END $$;
COMMENT ON FUNCTION billing.append_only() IS 'Trigger: payments, allocations and refunds are never updated or deleted';
CREATE TRIGGER payment_append_only BEFORE UPDATE OR DELETE ON billing.payment
	FOR EACH ROW EXECUTE FUNCTION billing.append_only();
CREATE TRIGGER allocation_append_only BEFORE UPDATE OR DELETE ON billing.allocation
	FOR EACH ROW EXECUTE FUNCTION billing.append_only();
CREATE TRIGGER refund_append_only BEFORE UPDATE OR DELETE ON billing.refund
	FOR EACH ROW EXECUTE FUNCTION billing.append_only();

-- Balances as of a date: the one place the receivable rules live.

-- What leaves a money source (a payment, or a posted credit note): its
-- allocations and its refunds, each positive and dated.  Inlined; a condition
-- on payment_id or credit_note_id reaches the partial indexes of both tables.
CREATE FUNCTION billing.source_movements(account_ids bigint[] DEFAULT NULL)
	RETURNS TABLE (account_id bigint, payment_id bigint, credit_note_id bigint, moved_on date, amount numeric)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT a.account_id, a.payment_id, a.credit_note_id, a.allocated_on, a.amount FROM billing.allocation a
	WHERE account_ids IS NULL OR a.account_id = ANY (account_ids)
	UNION ALL
	SELECT r.account_id, r.payment_id, r.credit_note_id, r.refunded_on, r.amount FROM billing.refund r
	WHERE account_ids IS NULL OR r.account_id = ANY (account_ids);
END;
COMMENT ON FUNCTION billing.source_movements(bigint[]) IS
	'Allocations from and refunds of payments and credit notes (positive, dated), optionally of some accounts only';

-- Every open item of the book as of D (SPEC §6), set-based: each posted or
-- void document dated <= D and each payment received <= D, with what is open
-- of it, signed by its effect on what the customer owes.  Invoices and debit
-- notes: total - allocations to them; credit notes: -(credit left) = total +
-- allocations from them + refunds of them; payments: -(unapplied) = -amount +
-- allocations from them + refunds of them; 0 once void.  Drafts and items
-- dated after D are not items (callers read NULL).
-- Documents and payments are two branches, each hash-joined to the sum of
-- the rows that move it (allocations to it; what left it as a source), so
-- each sum is no larger than its own items.  The function is inlined: a
-- caller's equality on account_id, or on account_id, kind and id, reaches the
-- indexes of every branch (the other kind's branch folds away), so one
-- account or one document costs its own rows only.  account_ids, when given,
-- restricts every branch to those accounts (a list does not propagate across
-- a join as an equality does).
CREATE FUNCTION billing.open_items(as_of date, account_ids bigint[] DEFAULT NULL)
	RETURNS TABLE (account_id bigint, kind text, id bigint, document_type text, document_number text,
				   currency text, item_date date, due_date date, status text, open_amount numeric)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT i.account_id, 'document', i.invoice_id, i.document_type, i.document_number, i.currency, i.invoice_date,
		   i.due_date, i.status, CASE WHEN i.voided_on <= as_of THEN 0 ELSE i.total + coalesce(u.moved, 0) END
	FROM billing.invoice i
	LEFT JOIN (
		SELECT m.account_id, m.invoice_id, billing.money_sum(m.amount)
		FROM (SELECT a.account_id, a.invoice_id, -a.amount FROM billing.allocation a
			  WHERE a.allocated_on <= as_of
				AND (account_ids IS NULL OR a.account_id = ANY (account_ids))
			  UNION ALL
			  SELECT s.account_id, s.credit_note_id, s.amount FROM billing.source_movements(account_ids) s
			  WHERE s.credit_note_id IS NOT NULL AND s.moved_on <= as_of) AS m (account_id, invoice_id, amount)
		GROUP BY m.account_id, m.invoice_id
	) AS u (account_id, invoice_id, moved) ON u.account_id = i.account_id AND u.invoice_id = i.invoice_id
	WHERE i.status <> 'draft' AND i.invoice_date <= as_of
	  AND (account_ids IS NULL OR i.account_id = ANY (account_ids))
	UNION ALL
	SELECT p.account_id, 'payment', p.payment_id, 'payment', p.reference, p.currency, p.received_on, NULL, 'posted',
		   -p.amount + coalesce(u.moved, 0)
	FROM billing.payment p
	LEFT JOIN (
		SELECT s.account_id, s.payment_id, billing.money_sum(s.amount) FROM billing.source_movements(account_ids) s
		WHERE s.payment_id IS NOT NULL AND s.moved_on <= as_of
		GROUP BY s.account_id, s.payment_id
	) AS u (account_id, payment_id, moved) ON u.account_id = p.account_id AND u.payment_id = p.payment_id
	WHERE p.received_on <= as_of
	  AND (account_ids IS NULL OR p.account_id = ANY (account_ids));
END;
COMMENT ON FUNCTION billing.open_items(date, bigint[]) IS
	'Every posted or void document (kind document, id its invoice_id) and every payment (kind payment, id its payment_id) as of a date with its open amount (owed positive, credit negative, void 0), optionally of some accounts only: the one definition of the open-amount rule';

-- One item of open_items, for callers holding a row.  PL/pgSQL, so the lookup
-- is planned once per session (a generic plan: the keys reach the indexes as
-- parameters), not once per calling statement as a SQL function would be.
CREATE FUNCTION billing.document_open_amount(doc billing.invoice, as_of date) RETURNS numeric
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
	RETURN (SELECT o.open_amount FROM billing.open_items(as_of) o
			WHERE o.account_id = doc.account_id AND o.kind = 'document' AND o.id = doc.invoice_id);
END $$;
COMMENT ON FUNCTION billing.document_open_amount(billing.invoice, date) IS
	'Open amount of a document as of a date: invoices and debit notes what is owed, credit notes the unapplied credit as a negative number; NULL before its date or while a draft, 0 once void';

CREATE FUNCTION billing.payment_unapplied(pay billing.payment, as_of date) RETURNS numeric
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
	RETURN (SELECT -o.open_amount FROM billing.open_items(as_of) o
			WHERE o.account_id = pay.account_id AND o.kind = 'payment' AND o.id = pay.payment_id);
END $$;
COMMENT ON FUNCTION billing.payment_unapplied(billing.payment, date) IS
	'Unapplied part of a payment as of a date: amount less allocations and refunds; NULL before it was received';

-- The least a document's open amount / a payment's unapplied part is on any
-- date from from_date on: a new allocation or refund dated from_date must fit
-- in it, or some past date's balance would go below zero.
CREATE FUNCTION billing.document_open_amount_from(doc billing.invoice, from_date date) RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT min(billing.document_open_amount(doc, t.day))
	FROM (SELECT from_date AS day
		  UNION SELECT a.allocated_on FROM billing.allocation a
		  WHERE a.account_id = doc.account_id AND (a.invoice_id = doc.invoice_id OR a.credit_note_id = doc.invoice_id)
			AND a.allocated_on > from_date
		  UNION SELECT r.refunded_on FROM billing.refund r
		  WHERE r.account_id = doc.account_id AND r.credit_note_id = doc.invoice_id AND r.refunded_on > from_date) t;
END;
COMMENT ON FUNCTION billing.document_open_amount_from(billing.invoice, date) IS
	'Least open amount of a document on any date from from_date on (credit notes: the largest negative, i.e. least credit left)';

CREATE FUNCTION billing.payment_unapplied_from(pay billing.payment, from_date date) RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT min(billing.payment_unapplied(pay, t.day))
	FROM (SELECT greatest(from_date, pay.received_on) AS day
		  UNION SELECT a.allocated_on FROM billing.allocation a
		  WHERE a.account_id = pay.account_id AND a.payment_id = pay.payment_id AND a.allocated_on > from_date
		  UNION SELECT r.refunded_on FROM billing.refund r
		  WHERE r.account_id = pay.account_id AND r.payment_id = pay.payment_id AND r.refunded_on > from_date) t;
END;
COMMENT ON FUNCTION billing.payment_unapplied_from(billing.payment, date) IS
	'Least unapplied part of a payment on any date from from_date on';

-- A balance needs a date: NULL would silently subtract nothing (22004).
CREATE FUNCTION billing.check_as_of(as_of date) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF as_of IS NULL THEN
		RAISE EXCEPTION 'as_of date must not be NULL' USING ERRCODE = 'null_value_not_allowed',
			HINT = 'Balances, aging and deferred revenue are computed as of a date; omit the argument for today.';
	END IF;
END $$;
COMMENT ON FUNCTION billing.check_as_of(date) IS 'Rejects a NULL as-of date';

CREATE FUNCTION billing.invoice_balance(invoice_id bigint, as_of date DEFAULT CURRENT_DATE) RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	doc billing.invoice;
BEGIN
	PERFORM billing.check_as_of(as_of);
	SELECT * INTO doc FROM billing.invoice i WHERE i.invoice_id = invoice_balance.invoice_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'document % does not exist', invoice_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN billing.document_open_amount(doc, as_of);
END $$;
COMMENT ON FUNCTION billing.invoice_balance(bigint, date) IS
	'Open amount of a document as of a date (credit notes: unapplied credit, negative); NULL before its date; 0 once void';

CREATE FUNCTION billing.account_balance(account_id bigint, as_of date DEFAULT CURRENT_DATE) RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM billing.check_as_of(as_of);
	IF NOT EXISTS (SELECT 1 FROM billing.account a WHERE a.account_id = account_balance.account_id) THEN
		RAISE EXCEPTION 'account % does not exist', account_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- in the account's currency: documents in other currencies are not summed into it
	RETURN coalesce((SELECT sum(o.open_amount)
					 FROM billing.open_items(as_of) o JOIN billing.account a ON a.account_id = o.account_id
					 WHERE o.account_id = account_balance.account_id AND o.currency = a.currency), 0);
END $$;
COMMENT ON FUNCTION billing.account_balance(bigint, date) IS
	'What the account owes as of a date, in its currency: open invoices and debit notes minus unapplied payments and credit notes';

SELECT pg_catalog.pg_extension_config_dump('billing.payment', '');
SELECT pg_catalog.pg_extension_config_dump('billing.payment_payment_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('billing.allocation', '');
SELECT pg_catalog.pg_extension_config_dump('billing.allocation_allocation_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('billing.refund', '');
SELECT pg_catalog.pg_extension_config_dump('billing.refund_refund_id_seq', '');
-- Posting and voiding documents.

-- The due date of a new document: after the account's payment terms; credit
-- notes are never due.
CREATE FUNCTION billing.document_due_date(document_type text, invoice_date date, payment_terms_days int) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN document_type <> 'credit_note' THEN invoice_date + payment_terms_days END;
COMMENT ON FUNCTION billing.document_due_date(text, date, int) IS
	'Due date of a new document: document date plus payment terms; NULL for credit notes';

-- Totals of drafts from their lines, and their due dates (a draft's own due
-- date kept).  Runs write their documents complete instead (bill_accounts).
CREATE FUNCTION billing.total_documents(account_ids bigint[], invoice_ids bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	-- Driven by the ids: each document is found by its key and its lines by
	-- index.  Only the key joins the target row, so a stale estimate of the
	-- drafts just written (one row) cannot put a rescanned side inside a loop.
	UPDATE billing.invoice i
	SET subtotal = t.subtotal,
		tax_total = t.tax_total,
		total = t.subtotal + t.tax_total,
		due_date = t.due_date
	FROM (SELECT d.account_id, d.invoice_id, x.subtotal, x.tax_total,
				 coalesce(CASE WHEN d.document_type <> 'credit_note' THEN d.due_date END,
						  billing.document_due_date(d.document_type, d.invoice_date, a.payment_terms_days)) AS due_date
		  FROM (SELECT i2.* FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
				JOIN billing.invoice i2 ON i2.account_id = k.account_id AND i2.invoice_id = k.invoice_id
				WHERE i2.status = 'draft') d
		  JOIN billing.account a ON a.account_id = d.account_id
		  CROSS JOIN LATERAL (SELECT coalesce(sum(l.amount), 0) AS subtotal, coalesce(sum(l.tax_amount), 0) AS tax_total
							  FROM billing.invoice_line l
							  WHERE l.account_id = d.account_id AND l.invoice_id = d.invoice_id) x) t
	WHERE i.account_id = t.account_id AND i.invoice_id = t.invoice_id;
END $$;
COMMENT ON FUNCTION billing.total_documents(bigint[], bigint[]) IS
	'Totals draft documents from their lines and dates them due after the account''s payment terms (credit notes: no due date)';

-- Post drafts: totalled, then numbered from each type's series in document
-- id order.  The caller holds the accounts' locks.
CREATE FUNCTION billing.post_documents(account_ids bigint[], invoice_ids bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	draft_accounts bigint[];
	draft_ids bigint[];
	draft_types text[];
BEGIN
	PERFORM billing.total_documents(account_ids, invoice_ids);
	SELECT array_agg(i.account_id), array_agg(i.invoice_id), array_agg(i.document_type)
	INTO draft_accounts, draft_ids, draft_types
	FROM unnest(account_ids, invoice_ids) AS d(account_id, invoice_id)
	JOIN billing.invoice i ON i.account_id = d.account_id AND i.invoice_id = d.invoice_id
	WHERE i.status = 'draft';
	UPDATE billing.invoice i
	SET status = 'posted',
		posted_at = pg_catalog.now(),
		document_number = n.document_number
	FROM billing.number_documents(draft_accounts, draft_ids, draft_types) n
	WHERE i.account_id = n.account_id AND i.invoice_id = n.invoice_id;
END $$;
COMMENT ON FUNCTION billing.post_documents(bigint[], bigint[]) IS
	'Posts draft documents: totals from lines, due dates, gapless numbers in id order';

-- Lock a document's account, then the document; 22023 for an unknown id.
CREATE FUNCTION billing.lock_document(invoice_id bigint) RETURNS billing.invoice
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owner bigint;
	doc billing.invoice;
BEGIN
	SELECT i.account_id INTO owner FROM billing.invoice i WHERE i.invoice_id = lock_document.invoice_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'document % does not exist', invoice_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM billing.lock_account(owner);
	SELECT * INTO doc FROM billing.invoice i
	WHERE i.account_id = owner AND i.invoice_id = lock_document.invoice_id
	FOR UPDATE;
	RETURN doc;
END $$;
COMMENT ON FUNCTION billing.lock_document(bigint) IS 'Locks a document''s account, then the document (the fixed lock order)';

CREATE FUNCTION billing.post_invoice(invoice_id bigint) RETURNS billing.invoice
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	doc billing.invoice;
BEGIN
	doc := billing.lock_document(invoice_id);
	IF doc.status <> 'draft' THEN
		RAISE EXCEPTION '% % is already %', replace(doc.document_type, '_', ' '), doc.document_number, doc.status
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('document %s, total %s %s', doc.invoice_id, doc.total, doc.currency);
	END IF;
	IF NOT EXISTS (SELECT 1 FROM billing.invoice_line l WHERE l.account_id = doc.account_id AND l.invoice_id = doc.invoice_id) THEN
		RAISE EXCEPTION 'draft % % has no lines', replace(doc.document_type, '_', ' '), doc.invoice_id
			USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'Empty documents are not posted; delete the draft.';
	END IF;
	PERFORM billing.post_documents(ARRAY[doc.account_id], ARRAY[doc.invoice_id]);
	SELECT * INTO doc FROM billing.invoice i WHERE i.account_id = doc.account_id AND i.invoice_id = doc.invoice_id;
	RETURN doc;
END $$;
COMMENT ON FUNCTION billing.post_invoice(bigint) IS
	'Posts a draft document: assigns the next number of its series (INV-, CN-, DN-) and makes it immutable';

CREATE FUNCTION billing.void_invoice(invoice_id bigint, reason text, voided_on date DEFAULT CURRENT_DATE)
	RETURNS billing.invoice
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	doc billing.invoice;
BEGIN
	IF reason IS NULL OR voided_on IS NULL THEN
		RAISE EXCEPTION 'voiding needs a reason and a date' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	doc := billing.lock_document(invoice_id);
	IF doc.status <> 'posted' THEN
		RAISE EXCEPTION '% % is %, only posted documents are voided', replace(doc.document_type, '_', ' '),
			coalesce(doc.document_number, doc.invoice_id::text), doc.status
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = CASE doc.status WHEN 'draft' THEN 'Delete a draft instead.' ELSE 'It is already void.' END;
	END IF;
	IF voided_on < doc.invoice_date THEN
		RAISE EXCEPTION 'void date of % precedes its document date', doc.document_number
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('voided on %s, dated %s', voided_on, doc.invoice_date);
	END IF;

	-- money applied to or from it must be unapplied (or refunds undone) first
	-- live on the void date or after it: net allocations by then, or any dated later
	PERFORM 1 FROM billing.allocation a
	WHERE a.account_id = doc.account_id AND (a.invoice_id = doc.invoice_id OR a.credit_note_id = doc.invoice_id)
	HAVING coalesce(sum(a.amount) FILTER (WHERE a.allocated_on <= voided_on), 0) <> 0
		OR bool_or(a.allocated_on > voided_on);
	IF FOUND OR EXISTS (SELECT 1 FROM billing.refund r WHERE r.account_id = doc.account_id AND r.credit_note_id = doc.invoice_id) THEN
		RAISE EXCEPTION '% % has live allocations', replace(doc.document_type, '_', ' '), doc.document_number
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('allocated %s %s', (SELECT sum(a.amount) FROM billing.allocation a
													  WHERE a.account_id = doc.account_id
														AND (a.invoice_id = doc.invoice_id OR a.credit_note_id = doc.invoice_id)),
								  doc.currency),
				  HINT = 'Unapply its allocations with billing.unapply() first.';
	END IF;

	PERFORM pg_catalog.set_config('billing.document_write', 'on', true);
	UPDATE billing.invoice i
	SET status = 'void', voided_on = void_invoice.voided_on, void_reason = void_invoice.reason
	WHERE i.account_id = doc.account_id AND i.invoice_id = doc.invoice_id;
	PERFORM pg_catalog.set_config('billing.document_write', 'off', true);

	-- its periods are unbilled again: the next run re-bills them
	UPDATE billing.subscription s
	SET reconcile_from = least(coalesce(s.reconcile_from, v.first_day), v.first_day)
	FROM (SELECT l.subscription_id, min(coalesce(billing.period_start(l.cycle_period), s2.start_date)) AS first_day
		  FROM billing.invoice_line l
		  JOIN billing.subscription s2 ON s2.account_id = l.account_id AND s2.subscription_id = l.subscription_id
		  WHERE l.account_id = doc.account_id AND l.invoice_id = doc.invoice_id
		  GROUP BY l.subscription_id) v
	WHERE s.account_id = doc.account_id AND s.subscription_id = v.subscription_id;

	SELECT * INTO doc FROM billing.invoice i WHERE i.account_id = doc.account_id AND i.invoice_id = doc.invoice_id;
	RETURN doc;
END $$;
COMMENT ON FUNCTION billing.void_invoice(bigint, text, date) IS
	'Voids a posted document without live allocations; its periods become unbilled and the next run re-bills them';
-- Receivables API.  Every function locks the account row first, then its
-- source, then target documents in id order: allocation limits hold under
-- concurrency by row locks alone (also on Citus, where advisory locks are
-- node-local).

-- The amount must be positive and a whole number of the currency's minor units.
CREATE FUNCTION billing.check_money_amount(amount numeric, currency text, what text) RETURNS numeric
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF amount IS NULL OR amount <= 0 THEN
		RAISE EXCEPTION '% must be positive', what
			USING ERRCODE = 'invalid_parameter_value', DETAIL = format('%s is %s', what, coalesce(amount::text, 'NULL'));
	END IF;
	IF billing.round_money(amount, currency) <> amount THEN
		RAISE EXCEPTION '% % is not a whole number of minor units of %', what, amount, currency
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN billing.round_money(amount, currency);	-- same value, the currency's scale
END $$;
COMMENT ON FUNCTION billing.check_money_amount(numeric, text, text) IS 'Validates a money amount (positive, rounded to the currency) and returns it at the currency''s scale';


-- A money source: a payment, or a posted credit note.  Locks its row (the
-- caller holds the account lock) and describes it for messages and dates.
CREATE FUNCTION billing.lock_source(account_id bigint, payment_id bigint, credit_note_id bigint,
									OUT label text, OUT source_date date, OUT currency text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pay billing.payment;
	cn billing.invoice;
BEGIN
	IF payment_id IS NOT NULL THEN
		SELECT * INTO pay FROM billing.payment p
		WHERE p.account_id = lock_source.account_id AND p.payment_id = lock_source.payment_id FOR UPDATE;
		label := format('payment %s', pay.payment_id);
		source_date := pay.received_on;
		currency := pay.currency;
	ELSE
		SELECT * INTO cn FROM billing.invoice i
		WHERE i.account_id = lock_source.account_id AND i.invoice_id = lock_source.credit_note_id FOR UPDATE;
		IF cn.document_type <> 'credit_note' OR cn.status <> 'posted' THEN
			RAISE EXCEPTION 'document % is not a posted credit note', coalesce(cn.document_number, cn.invoice_id::text)
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  DETAIL = format('%s, status %s', cn.document_type, cn.status);
		END IF;
		label := format('credit note %s', cn.document_number);
		source_date := cn.invoice_date;
		currency := cn.currency;
	END IF;
END $$;
COMMENT ON FUNCTION billing.lock_source(bigint, bigint, bigint) IS
	'Locks a payment or posted credit note and returns its label, date and currency; caller holds the account lock';

-- What a source has free on every date from from_date on ('infinity': now).
CREATE FUNCTION billing.source_unapplied_from(account_id bigint, payment_id bigint, credit_note_id bigint, from_date date)
	RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT coalesce(
		(SELECT billing.payment_unapplied_from(p, from_date) FROM billing.payment p
		 WHERE p.account_id = source_unapplied_from.account_id AND p.payment_id = source_unapplied_from.payment_id),
		(SELECT -billing.document_open_amount_from(i, from_date) FROM billing.invoice i
		 WHERE i.account_id = source_unapplied_from.account_id AND i.invoice_id = source_unapplied_from.credit_note_id));
END;
COMMENT ON FUNCTION billing.source_unapplied_from(bigint, bigint, bigint, date) IS
	'Least unapplied amount of a payment or credit note on any date from from_date on';

-- What an allocation dated from_date may take: the least that the document
-- has open and the source has free on every date from then on.
CREATE FUNCTION billing.allocation_room(doc billing.invoice, payment_id bigint, credit_note_id bigint, from_date date)
	RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
RETURN least(billing.document_open_amount_from(doc, from_date),
			 billing.source_unapplied_from(doc.account_id, payment_id, credit_note_id, from_date));
COMMENT ON FUNCTION billing.allocation_room(billing.invoice, bigint, bigint, date) IS
	'Most an allocation from a source to a document, dated from_date, may take without any date''s balance going below zero';

-- Apply a source (payment or posted credit note) to one document or to the
-- open invoices and debit notes oldest due first.  The caller holds the
-- account lock.  amount NULL: as much as possible.
CREATE FUNCTION billing.apply_source(account_id bigint, payment_id bigint, credit_note_id bigint,
									 invoice_id bigint, amount numeric, allocated_on date)
	RETURNS SETOF billing.allocation
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	src record;
	doc billing.invoice;
	available numeric;
	remaining numeric;
	open_amount numeric;
	room numeric;
	alloc_date date;
	alloc billing.allocation;
BEGIN
	src := billing.lock_source(account_id, payment_id, credit_note_id);
	available := billing.source_unapplied_from(account_id, payment_id, credit_note_id, 'infinity');

	IF amount IS NOT NULL THEN
		amount := billing.check_money_amount(amount, src.currency, 'amount');
		IF amount > available THEN
			RAISE EXCEPTION 'amount exceeds the unapplied part of %', src.label
				USING ERRCODE = 'check_violation',
					  DETAIL = format('amount %s, unapplied %s %s', amount, available, src.currency);
		END IF;
	END IF;

	IF invoice_id IS NOT NULL THEN
		SELECT * INTO doc FROM billing.invoice i WHERE i.invoice_id = apply_source.invoice_id;
		IF NOT FOUND OR doc.account_id <> apply_source.account_id THEN
			RAISE EXCEPTION 'document % does not belong to account %', invoice_id, account_id
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF doc.status <> 'posted' THEN
			RAISE EXCEPTION '% % is %; only posted documents are paid', replace(doc.document_type, '_', ' '),
				coalesce(doc.document_number, doc.invoice_id::text), doc.status
				USING ERRCODE = 'object_not_in_prerequisite_state';
		END IF;
		IF doc.document_type = 'credit_note' THEN
			RAISE EXCEPTION 'credit note % cannot receive an allocation', doc.document_number
				USING ERRCODE = 'invalid_parameter_value', HINT = 'Apply money to invoices and debit notes.';
		END IF;
		IF doc.currency <> src.currency THEN
			RAISE EXCEPTION '% is in %, % is in %', src.label, src.currency, doc.document_number, doc.currency
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		open_amount := billing.document_open_amount(doc, 'infinity');
		IF amount > open_amount THEN
			RAISE EXCEPTION 'amount exceeds the open amount of %', doc.document_number
				USING ERRCODE = 'check_violation',
					  DETAIL = format('amount %s, open %s %s', amount, open_amount, doc.currency);
		END IF;
	END IF;

	remaining := coalesce(amount, available);
	FOR doc IN
		SELECT i.* FROM billing.invoice i
		WHERE i.account_id = apply_source.account_id
		  AND (apply_source.invoice_id IS NULL OR i.invoice_id = apply_source.invoice_id)
		  AND i.status = 'posted' AND i.document_type IN ('invoice', 'debit_note') AND i.currency = src.currency
		ORDER BY i.due_date, i.invoice_date, i.invoice_id
		FOR UPDATE
	LOOP
		EXIT WHEN remaining <= 0;
		IF allocated_on < greatest(src.source_date, doc.invoice_date) THEN
			RAISE EXCEPTION 'allocation date % precedes % or document %', allocated_on, src.label, doc.document_number
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = format('source dated %s, document dated %s', src.source_date, doc.invoice_date);
		END IF;
		alloc_date := coalesce(allocated_on, greatest(src.source_date, doc.invoice_date));
		room := billing.allocation_room(doc, payment_id, credit_note_id, alloc_date);
		-- a default date hemmed in by a later-dated row (an unapply, a refund):
		-- date the allocation when both sides are free, never in the past window
		IF allocated_on IS NULL
		   AND room < least(remaining, billing.allocation_room(doc, payment_id, credit_note_id, 'infinity')) THEN
			alloc_date := greatest(alloc_date,
				(SELECT max(a.allocated_on) FROM billing.allocation a
				 WHERE a.account_id = apply_source.account_id
				   AND (a.invoice_id = doc.invoice_id OR a.payment_id = apply_source.payment_id
						OR a.credit_note_id = apply_source.credit_note_id)),
				(SELECT max(r.refunded_on) FROM billing.refund r
				 WHERE r.account_id = apply_source.account_id
				   AND (r.payment_id = apply_source.payment_id OR r.credit_note_id = apply_source.credit_note_id)));
			room := billing.allocation_room(doc, payment_id, credit_note_id, alloc_date);
		END IF;
		IF apply_source.amount IS NOT NULL AND apply_source.invoice_id IS NOT NULL AND room < apply_source.amount THEN
			RAISE EXCEPTION 'amount exceeds what % and % have free from %', src.label, doc.document_number, alloc_date
				USING ERRCODE = 'check_violation',
					  DETAIL = format('amount %s; least free on any date from %s on: %s %s',
									  apply_source.amount, alloc_date, room, doc.currency);
		END IF;
		CONTINUE WHEN least(remaining, room) <= 0;
		INSERT INTO billing.allocation AS x (account_id, invoice_id, payment_id, credit_note_id, amount, allocated_on)
		VALUES (apply_source.account_id, doc.invoice_id, apply_source.payment_id, apply_source.credit_note_id,
				least(remaining, room), alloc_date)
		RETURNING * INTO alloc;
		remaining := remaining - alloc.amount;
		RETURN NEXT alloc;
	END LOOP;
END $$;
COMMENT ON FUNCTION billing.apply_source(bigint, bigint, bigint, bigint, numeric, date) IS
	'Applies a payment or credit note to a document or to open documents oldest due first; caller holds the account lock';

-- The matching of step 4 of record_payments, in C (src/payment_matching.c):
-- per account and currency, the new payments in array order fill the open
-- documents oldest due date, then oldest document, first; each allocation is
-- the least of what the payment has left and the document has open, dated
-- on the later of their dates.  One pass in minor units: the running sums of
-- the set-based form sorted every payment and document twice more.
CREATE FUNCTION billing.oldest_first_allocations(account_ids bigint[], payment_ids bigint[], currencies text[],
												 received_dates date[], amounts numeric[], is_new boolean[],
												 doc_account_ids bigint[], doc_currencies text[], doc_invoice_ids bigint[],
												 doc_item_dates date[], doc_due_dates date[], doc_open_amounts numeric[])
	RETURNS TABLE (account_id bigint, invoice_id bigint, payment_id bigint, amount numeric, allocated_on date)
	AS 'MODULE_PATHNAME', 'billing_oldest_first_allocations' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.oldest_first_allocations(bigint[], bigint[], text[], date[], numeric[], boolean[], bigint[], text[], bigint[], date[], date[], numeric[]) IS
	'Allocations of payments (element i of the first six arrays; is_new false: skipped) to open documents (the last six arrays, any order) oldest due date (none: last), then document date, then id, first, per account and currency: rows by payment in array order, each the least of what is left on both sides, dated on the later date';

-- The allocations new payments make, in the order they are written: the
-- open invoices and debit notes of the accounts (open_items) matched by
-- oldest_first_allocations.  Inlined into record_payments.
CREATE FUNCTION billing.new_payment_allocations(account_ids bigint[], payment_ids bigint[], currencies text[],
												received_dates date[], amounts numeric[], is_new boolean[])
	RETURNS SETOF billing.allocation
LANGUAGE sql STABLE
BEGIN ATOMIC
	SELECT NULL::bigint, m.account_id, m.invoice_id, m.payment_id, NULL::bigint, m.amount, m.allocated_on, NULL::bigint,
		   NULL::timestamptz
	-- (the documents' arrays are named apart from the parameters, which a
	-- column of the same name would hide)
	FROM (SELECT array_agg(o.account_id) AS doc_accounts, array_agg(o.currency) AS doc_currencies,
				 array_agg(o.id) AS doc_ids, array_agg(o.item_date) AS doc_item_dates,
				 array_agg(o.due_date) AS doc_due_dates, array_agg(o.open_amount) AS doc_open_amounts
		  FROM billing.open_items('infinity', account_ids) o
		  WHERE o.kind = 'document' AND o.document_type IN ('invoice', 'debit_note') AND o.status = 'posted'
			AND o.open_amount > 0) d,
		 billing.oldest_first_allocations(account_ids, payment_ids, currencies, received_dates, amounts, is_new,
										  d.doc_accounts, d.doc_currencies, d.doc_ids, d.doc_item_dates, d.doc_due_dates,
										  d.doc_open_amounts) m;
END;
COMMENT ON FUNCTION billing.new_payment_allocations(bigint[], bigint[], text[], date[], numeric[], boolean[]) IS
	'Allocations (ids NULL) that new payments make to open invoices and debit notes oldest due first, as record_payments writes them';

-- Payments in bulk.  Element i of the arrays is the payment
-- record_payment(account_ids[i], amounts[i], received_dates[i],
-- payment_references[i], methods[i], auto_apply) records, and the outcome is
-- that of those calls made one after the other in array order (the same
-- payment ids, allocation rows, ids and dates, and the first element's error),
-- done in a few statements over all elements:
--   1. lock the accounts (lock_accounts: account_id order);
--   2. validate every element in one query and raise the first bad one's error
--      (DETAIL names the element); nothing is written before;
--   3. number the new payments in array order and insert them at once; a
--      reference already recorded (before, or by an earlier element) with the
--      same amount and date is that payment again and applies nothing;
--   4. auto_apply: per account, the new payments in array order fill its open
--      invoices and debit notes in the account's currency, oldest due date,
--      then oldest document, first, each dated on the later of payment and
--      document (new_payment_allocations, over open_items).  That is what
--      apply_source gives one payment after another: an allocation always
--      takes the least of what the payment has left and the document has
--      open; only its date can depend on the order, when the document was
--      paid and unapplied after that date (a reversal dated later): then the
--      planned allocations are dated one by one, in order, as apply_source
--      dates them (rare: only accounts with such a reversal take that path);
--   5. insert the allocations at once, in call order.
CREATE FUNCTION billing.record_payments(account_ids bigint[], amounts numeric[], received_dates date[] DEFAULT NULL,
										payment_references text[] DEFAULT NULL, methods text[] DEFAULT NULL,
										auto_apply boolean DEFAULT true)
	RETURNS SETOF billing.payment
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
-- the elements' checks and the payments written and returned each sort a
-- row per element: 12-14MB at 100,000 payments, in memory with room at 32MB
SET work_mem = '32MB'
AS $$
DECLARE
	n int := coalesce(cardinality(account_ids), 0);
	-- per element, in array order
	e_amount numeric[];		-- at the currency's scale
	e_currency text[];
	e_payment bigint[];		-- the payment the element records or names again
	e_new boolean[];
	e_first int[];			-- the first element with the same account and reference
	new_ids bigint[];
	bad_ord int;			-- the first bad element, its problem and the payment its reference names
	bad_problem text;
	recorded_amount numeric;
	recorded_on date;
	recorded_currency text;
	element text;
	msg text;
	det text;
	plan billing.allocation[];
	hemmed int[];
	k int;
	alloc billing.allocation;
	room numeric;
BEGIN
	IF auto_apply IS NULL THEN
		RAISE EXCEPTION 'received_on and auto_apply of a payment must not be NULL' USING ERRCODE = 'null_value_not_allowed',
			DETAIL = 'auto_apply is NULL';
	END IF;
	IF coalesce(cardinality(amounts), 0) <> n OR cardinality(received_dates) <> n OR cardinality(payment_references) <> n
	   OR cardinality(methods) <> n THEN
		RAISE EXCEPTION 'the arrays of record_payments must have the same length'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('account_ids %s, amounts %s, received_dates %s, payment_references %s, methods %s elements',
								  n, coalesce(cardinality(amounts), 0), coalesce(cardinality(received_dates)::text, 'NULL'),
								  coalesce(cardinality(payment_references)::text, 'NULL'),
								  coalesce(cardinality(methods)::text, 'NULL'));
	END IF;
	IF n = 0 THEN
		RETURN;
	END IF;
	received_dates := coalesce(received_dates, array_fill(CURRENT_DATE, ARRAY[n]));
	payment_references := coalesce(payment_references, array_fill(NULL::text, ARRAY[n]));
	methods := coalesce(methods, array_fill(NULL::text, ARRAY[n]));

	PERFORM billing.lock_accounts(account_ids);

	-- every element with what it records and its first problem, in the order
	-- record_payment checks them; a reference names the payment recorded
	-- before the call or by the first element that uses it.  The aggregates
	-- take the elements in array order from the sorted subquery, with nothing
	-- between that could reorder them: one sort instead of one per aggregate
	-- (PostgreSQL 15 sorts the input of each aggregate with its own ORDER BY)
	SELECT array_agg(c.money), array_agg(c.currency), array_agg(c.recorded_id), array_agg(c.is_new),
		   array_agg(c.first_ord),
		   min(c.ord) FILTER (WHERE c.problem IS NOT NULL),
		   (array_agg(c.problem) FILTER (WHERE c.problem IS NOT NULL))[1],
		   (array_agg(c.recorded_amount) FILTER (WHERE c.problem IS NOT NULL))[1],
		   (array_agg(c.recorded_on) FILTER (WHERE c.problem IS NOT NULL))[1],
		   (array_agg(c.recorded_currency) FILTER (WHERE c.problem IS NOT NULL))[1]
	INTO e_amount, e_currency, e_payment, e_new, e_first,
		 bad_ord, bad_problem, recorded_amount, recorded_on, recorded_currency
	FROM (SELECT e.*,
				 CASE WHEN e.received_on IS NULL THEN 'received_on'
					  WHEN e.currency IS NULL THEN 'account'
					  WHEN e.amount IS NULL OR e.amount <= 0 OR e.money <> e.amount THEN 'amount'
					  WHEN NOT e.is_new AND (e.recorded_amount <> e.money OR e.recorded_on <> e.received_on) THEN 'reference'
				 END AS problem
		  FROM (SELECT x.ord::int AS ord, x.account_id, x.amount, x.received_on, x.reference, x.method, a.currency,
					   billing.round_money(x.amount, a.currency) AS money,
					   p.payment_id AS recorded_id,
					   coalesce(p.amount, first_value(billing.round_money(x.amount, a.currency)) OVER w) AS recorded_amount,
					   coalesce(p.received_on, first_value(x.received_on) OVER w) AS recorded_on,
					   coalesce(p.currency, a.currency) AS recorded_currency,
					   p.payment_id IS NULL AND (x.reference IS NULL OR first_value(x.ord) OVER w = x.ord) AS is_new,
					   first_value(x.ord) OVER w AS first_ord
				FROM unnest(account_ids, amounts, received_dates, payment_references, methods) WITH ORDINALITY
					 AS x (account_id, amount, received_on, reference, method, ord)
				LEFT JOIN billing.account a ON a.account_id = x.account_id
				LEFT JOIN billing.payment p ON p.account_id = x.account_id AND p.reference = x.reference
				-- references compared byte by byte, as equality compares them
				WINDOW w AS (PARTITION BY x.account_id, x.reference COLLATE "C" ORDER BY x.ord)) e
		  ORDER BY e.ord) c;

	IF bad_ord IS NOT NULL THEN
		element := format('element %s of %s: account %s, amount %s, received on %s, reference %s', bad_ord, n,
						  coalesce(account_ids[bad_ord]::text, 'NULL'), coalesce(amounts[bad_ord]::text, 'NULL'),
						  coalesce(received_dates[bad_ord]::text, 'NULL'), coalesce(payment_references[bad_ord], 'NULL'));
		CASE bad_problem
		WHEN 'received_on' THEN
			RAISE EXCEPTION 'received_on and auto_apply of a payment must not be NULL'
				USING ERRCODE = 'null_value_not_allowed', DETAIL = element;
		WHEN 'account' THEN
			RAISE EXCEPTION 'account % does not exist', account_ids[bad_ord]
				USING ERRCODE = 'invalid_parameter_value', DETAIL = element;
		WHEN 'amount' THEN
			BEGIN	-- the error check_money_amount raises, with the element named
				PERFORM billing.check_money_amount(amounts[bad_ord], e_currency[bad_ord], 'payment amount');
			EXCEPTION WHEN invalid_parameter_value THEN
				GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
				RAISE EXCEPTION '%', msg USING ERRCODE = 'invalid_parameter_value',
					DETAIL = concat_ws('; ', nullif(det, ''), element);
			END;
		ELSE
			RAISE EXCEPTION 'payment reference "%" of account % is already used', payment_references[bad_ord],
				account_ids[bad_ord]
				USING ERRCODE = 'unique_violation',
					  DETAIL = format('recorded: %s %s received %s; now: %s received %s; %s', recorded_amount,
									  recorded_currency, recorded_on, e_amount[bad_ord], received_dates[bad_ord], element);
		END CASE;
	END IF;

	-- new payments numbered in array order; a repeated reference names the
	-- payment recorded before the call or by the element that first used it
	new_ids := ARRAY(SELECT CASE WHEN e_new[o.ord] THEN nextval('billing.payment_payment_id_seq') END
					 FROM generate_series(1, n) AS o (ord) ORDER BY o.ord);
	e_payment := ARRAY(SELECT CASE WHEN e_new[o.ord] THEN new_ids[o.ord] ELSE coalesce(e_payment[o.ord], new_ids[e_first[o.ord]]) END
					   FROM generate_series(1, n) AS o (ord) ORDER BY o.ord);
	-- the payments and their allocations are this call's own statements: their
	-- keys are accounts it holds locked (and their currencies), the payments it
	-- inserts and open documents of those accounts, which no one can delete
	-- without the account lock; the key checks skip them
	-- (billing.write_run_rows)
	PERFORM billing.write_run_rows('billing.payment', $run$
		SELECT x.payment_id, x.account_id, x.amount, x.currency, x.received_on, x.method, x.reference
		FROM unnest($1, $2, $3, $4, $5, $6, $7, $8)
			 AS x (payment_id, account_id, amount, currency, received_on, method, reference, is_new)
		WHERE x.is_new
		ORDER BY x.payment_id$run$,
		e_payment, account_ids, e_amount, e_currency, received_dates, methods, payment_references, e_new);

	IF auto_apply AND NOT EXISTS (
		-- no document of these accounts was unapplied after the earliest
		-- payment's date: every allocation is dated as planned
		SELECT 1 FROM billing.allocation r
		WHERE r.account_id = ANY (account_ids) AND r.reverses_allocation_id IS NOT NULL
		  AND r.allocated_on > (SELECT min(d) FROM unnest(received_dates) AS d)) THEN
		PERFORM billing.write_run_rows('billing.allocation', $run$
			SELECT x.account_id, x.invoice_id, x.payment_id, x.amount, x.allocated_on
			FROM billing.new_payment_allocations($1, $2, $3, $4, $5, $6) x$run$,
			account_ids, e_payment, e_currency, received_dates, e_amount, e_new);
	ELSIF auto_apply THEN
		plan := ARRAY(SELECT x FROM billing.new_payment_allocations(account_ids, e_payment, e_currency, received_dates,
																	e_amount, e_new) x);
		-- a document unapplied after an allocation's date may not have its open
		-- amount free on every date from then on: date those allocations as
		-- apply_source does, in order, counting the ones planned before them
		hemmed := ARRAY(
			SELECT x.k
			FROM unnest(plan) WITH ORDINALITY AS x (allocation_id, account_id, invoice_id, payment_id, credit_note_id,
													amount, allocated_on, reverses_allocation_id, created_at, k)
			JOIN (SELECT r.account_id, r.invoice_id, max(r.allocated_on) AS last_reversal
				  FROM billing.allocation r
				  WHERE r.account_id = ANY (account_ids) AND r.reverses_allocation_id IS NOT NULL
				  GROUP BY r.account_id, r.invoice_id) r
			  ON r.account_id = x.account_id AND r.invoice_id = x.invoice_id AND r.last_reversal > x.allocated_on
			ORDER BY x.k);
		FOREACH k IN ARRAY hemmed LOOP
			alloc := plan[k];
			room := (SELECT i.total - max(c.used)
					 FROM billing.invoice i,
						  LATERAL (SELECT t.day, sum(t.amount) OVER (ORDER BY t.day) AS used
								   FROM (SELECT a.allocated_on, a.amount FROM billing.allocation a
										 WHERE a.account_id = alloc.account_id AND a.invoice_id = alloc.invoice_id
										 UNION ALL
										 SELECT q.allocated_on, q.amount FROM unnest(plan[1:k - 1]) q
										 WHERE q.account_id = alloc.account_id AND q.invoice_id = alloc.invoice_id
										 UNION ALL
										 SELECT alloc.allocated_on, 0) AS t (day, amount)) c
					 WHERE i.account_id = alloc.account_id AND i.invoice_id = alloc.invoice_id
					   AND c.day >= alloc.allocated_on
					 GROUP BY i.total);
			IF room < alloc.amount THEN
				plan[k].allocated_on := greatest(alloc.allocated_on,
					(SELECT max(a.allocated_on) FROM billing.allocation a
					 WHERE a.account_id = alloc.account_id AND a.invoice_id = alloc.invoice_id),
					(SELECT max(q.allocated_on) FROM unnest(plan[1:k - 1]) q
					 WHERE q.account_id = alloc.account_id
					   AND (q.invoice_id = alloc.invoice_id OR q.payment_id = alloc.payment_id)));
			END IF;
		END LOOP;

		PERFORM billing.write_run_rows('billing.allocation', $run$
			SELECT x.account_id, x.invoice_id, x.payment_id, x.amount, x.allocated_on
			FROM unnest($1) WITH ORDINALITY AS x (allocation_id, account_id, invoice_id, payment_id, credit_note_id,
												  amount, allocated_on, reverses_allocation_id, created_at, k)
			ORDER BY x.k$run$,
			plan);
	END IF;

	RETURN QUERY
	SELECT p.* FROM unnest(account_ids, e_payment) WITH ORDINALITY AS x (account_id, payment_id, ord)
	JOIN billing.payment p ON p.account_id = x.account_id AND p.payment_id = x.payment_id
	ORDER BY x.ord;
END $$;
COMMENT ON FUNCTION billing.record_payments(bigint[], numeric[], date[], text[], text[], boolean) IS
	'Records many payments at once (element i: account_ids[i], amounts[i], received_dates[i] (NULL array: today), payment_references[i], methods[i]) exactly as record_payment called for each in array order, and by default applies them to open documents oldest due first; all or nothing';

CREATE FUNCTION billing.record_payment(account_id bigint, amount numeric, received_on date DEFAULT CURRENT_DATE,
									   reference text DEFAULT NULL, method text DEFAULT NULL, auto_apply boolean DEFAULT true)
	RETURNS billing.payment
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pay billing.payment;
BEGIN
	SELECT * INTO pay
	FROM billing.record_payments(ARRAY[record_payment.account_id], ARRAY[record_payment.amount],
								 ARRAY[record_payment.received_on], ARRAY[record_payment.reference],
								 ARRAY[record_payment.method], record_payment.auto_apply) p;
	RETURN pay;
END $$;
COMMENT ON FUNCTION billing.record_payment(bigint, numeric, date, text, text, boolean) IS
	'Records money received (idempotent on reference) and, by default, applies it to open documents oldest due first (record_payments with one element)';

CREATE FUNCTION billing.apply_payment(payment_id bigint, invoice_id bigint DEFAULT NULL, amount numeric DEFAULT NULL,
									  allocated_on date DEFAULT NULL)
	RETURNS SETOF billing.allocation
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owner bigint;
BEGIN
	SELECT p.account_id INTO owner FROM billing.payment p WHERE p.payment_id = apply_payment.payment_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'payment % does not exist', payment_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM billing.lock_account(owner);
	RETURN QUERY SELECT * FROM billing.apply_source(owner, payment_id, NULL, invoice_id, amount, allocated_on);
END $$;
COMMENT ON FUNCTION billing.apply_payment(bigint, bigint, numeric, date) IS
	'Applies a payment to a document (or to open documents oldest due first), never beyond its unapplied amount or their open amounts';

CREATE FUNCTION billing.apply_credit_note(credit_note_id bigint, invoice_id bigint DEFAULT NULL, amount numeric DEFAULT NULL,
										  allocated_on date DEFAULT NULL)
	RETURNS SETOF billing.allocation
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	cn billing.invoice;
BEGIN
	cn := billing.lock_document(credit_note_id);
	RETURN QUERY SELECT * FROM billing.apply_source(cn.account_id, NULL, cn.invoice_id, invoice_id, amount, allocated_on);
END $$;
COMMENT ON FUNCTION billing.apply_credit_note(bigint, bigint, numeric, date) IS
	'Applies a posted credit note''s unapplied credit to a document (or to open documents oldest due first)';

CREATE FUNCTION billing.unapply(allocation_id bigint, on_date date DEFAULT CURRENT_DATE) RETURNS billing.allocation
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	a billing.allocation;
	reversal billing.allocation;
BEGIN
	SELECT * INTO a FROM billing.allocation x WHERE x.allocation_id = unapply.allocation_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'allocation % does not exist', allocation_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM billing.lock_account(a.account_id);
	IF on_date IS NULL OR on_date < a.allocated_on THEN
		RAISE EXCEPTION 'allocation % cannot be unapplied before it was made', a.allocation_id
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('allocated on %s, unapply on %s', a.allocated_on, coalesce(on_date::text, 'NULL'));
	END IF;
	IF a.reverses_allocation_id IS NOT NULL THEN
		RAISE EXCEPTION 'allocation % is itself a reversal', a.allocation_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('it reverses allocation %s', a.reverses_allocation_id);
	END IF;
	SELECT * INTO reversal FROM billing.allocation x
	WHERE x.account_id = a.account_id AND x.reverses_allocation_id = a.allocation_id;
	IF FOUND THEN
		RAISE EXCEPTION 'allocation % is already unapplied', a.allocation_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('reversed by allocation %s on %s, amount %s', reversal.allocation_id,
								  reversal.allocated_on, reversal.amount);
	END IF;
	INSERT INTO billing.allocation AS x
		(account_id, invoice_id, payment_id, credit_note_id, amount, allocated_on, reverses_allocation_id)
	VALUES (a.account_id, a.invoice_id, a.payment_id, a.credit_note_id, -a.amount, on_date, a.allocation_id)
	RETURNING * INTO reversal;
	RETURN reversal;
END $$;
COMMENT ON FUNCTION billing.unapply(bigint, date) IS
	'Reverses an allocation with a new negated row dated on_date; the money is unapplied again';

-- A posted credit note with one adjustment line crediting "amount" (tax
-- included, split in the corrected document's proportion of tax), applied to
-- that document first when apply.  The caller holds the account lock.
CREATE FUNCTION billing.create_credit_note(doc billing.invoice, amount numeric, reason text, issued_on date,
										   apply boolean, credit_kind text)
	RETURNS billing.invoice
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tax numeric;
	cn billing.invoice;
	open_amount numeric;
	credited numeric;
BEGIN
	IF doc.status <> 'posted' THEN
		RAISE EXCEPTION '% % is %; only posted documents are credited', replace(doc.document_type, '_', ' '),
			coalesce(doc.document_number, doc.invoice_id::text), doc.status
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	IF doc.document_type = 'credit_note' THEN
		RAISE EXCEPTION 'credit note % cannot be credited', doc.document_number USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF issued_on IS NULL OR issued_on < doc.invoice_date THEN
		RAISE EXCEPTION 'credit note for % dated before it', doc.document_number
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('issued on %s, document dated %s', coalesce(issued_on::text, 'NULL'), doc.invoice_date);
	END IF;
	amount := billing.check_money_amount(amount, doc.currency, 'credit amount');
	-- all credit notes correcting a document together stay within its total
	credited := coalesce((SELECT -sum(c.total) FROM billing.invoice c
						  WHERE c.account_id = doc.account_id AND c.corrects_invoice_id = doc.invoice_id
							AND c.status = 'posted'), 0);
	IF amount > doc.total - credited THEN
		RAISE EXCEPTION 'credit for % exceeds its total', doc.document_number
			USING ERRCODE = 'check_violation',
				  DETAIL = format('credit %s, total %s, already credited %s %s', amount, doc.total, credited, doc.currency);
	END IF;
	tax := CASE WHEN doc.total = 0 THEN 0 ELSE billing.round_money(amount * doc.tax_total / doc.total, doc.currency) END;

	INSERT INTO billing.invoice AS i (account_id, document_type, invoice_date, currency, corrects_invoice_id, credit_kind, reason)
	VALUES (doc.account_id, 'credit_note', issued_on, doc.currency, doc.invoice_id, credit_kind, reason)
	RETURNING * INTO cn;
	INSERT INTO billing.invoice_line (account_id, invoice_id, line_number, kind, amount, tax_amount, description)
	VALUES (doc.account_id, cn.invoice_id, 1, 'adjustment', -(amount - tax), -tax,
			CASE credit_kind WHEN 'write_off' THEN 'Write-off of ' ELSE 'Credit for ' END || doc.document_number
				|| coalesce(': ' || reason, ''));
	PERFORM billing.post_documents(ARRAY[doc.account_id], ARRAY[cn.invoice_id]);

	IF apply THEN
		open_amount := billing.document_open_amount(doc, 'infinity');
		IF open_amount > 0 THEN
			PERFORM billing.apply_source(doc.account_id, NULL, cn.invoice_id, doc.invoice_id, least(amount, open_amount),
										 greatest(issued_on, doc.invoice_date));
		END IF;
	END IF;
	SELECT * INTO cn FROM billing.invoice i WHERE i.account_id = cn.account_id AND i.invoice_id = cn.invoice_id;
	RETURN cn;
END $$;
COMMENT ON FUNCTION billing.create_credit_note(billing.invoice, numeric, text, date, boolean, text) IS
	'Issues and posts a credit note correcting a document, applied to it first; caller holds the account lock';

CREATE FUNCTION billing.issue_credit_note(invoice_id bigint, amount numeric DEFAULT NULL, reason text DEFAULT NULL,
										  issued_on date DEFAULT CURRENT_DATE, apply boolean DEFAULT true)
	RETURNS billing.invoice
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	doc billing.invoice;
BEGIN
	doc := billing.lock_document(invoice_id);
	RETURN billing.create_credit_note(doc, coalesce(amount, billing.document_open_amount(doc, 'infinity')), reason,
									  issued_on, coalesce(apply, true), 'credit');
END $$;
COMMENT ON FUNCTION billing.issue_credit_note(bigint, numeric, text, date, boolean) IS
	'Posts a credit note correcting an invoice (adjustment lines, not tied to periods); NULL amount: its open amount. Applied to it first, the rest is account credit';

CREATE FUNCTION billing.write_off(invoice_id bigint, amount numeric DEFAULT NULL, reason text DEFAULT NULL,
								  on_date date DEFAULT CURRENT_DATE)
	RETURNS billing.invoice
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	doc billing.invoice;
	open_amount numeric;
BEGIN
	doc := billing.lock_document(invoice_id);
	open_amount := billing.document_open_amount(doc, 'infinity');
	IF doc.status = 'posted' AND doc.document_type <> 'credit_note' AND amount > open_amount THEN
		RAISE EXCEPTION 'write-off exceeds the open amount of %', doc.document_number
			USING ERRCODE = 'check_violation', DETAIL = format('write-off %s, open %s %s', amount, open_amount, doc.currency);
	END IF;
	RETURN billing.create_credit_note(doc, coalesce(amount, open_amount), reason, on_date, true, 'write_off');
END $$;
COMMENT ON FUNCTION billing.write_off(bigint, numeric, text, date) IS
	'Writes off (part of) a document''s open amount: a credit note with credit_kind write_off, applied to it';

-- A posted debit note with one line of the given kind, due after the
-- account's payment terms.  The caller holds the account lock.
CREATE FUNCTION billing.create_debit_note(acct billing.account, amount numeric, reason text, issued_on date, line_kind text)
	RETURNS billing.invoice
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	dn billing.invoice;
BEGIN
	amount := billing.check_money_amount(amount, acct.currency, 'debit amount');
	IF issued_on IS NULL THEN
		RAISE EXCEPTION 'issued_on of a debit note must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	INSERT INTO billing.invoice AS i (account_id, document_type, invoice_date, currency, reason)
	VALUES (acct.account_id, 'debit_note', issued_on, acct.currency, reason)
	RETURNING * INTO dn;
	INSERT INTO billing.invoice_line (account_id, invoice_id, line_number, kind, amount, tax_amount, description)
	VALUES (acct.account_id, dn.invoice_id, 1, line_kind, amount, 0, reason);
	PERFORM billing.post_documents(ARRAY[acct.account_id], ARRAY[dn.invoice_id]);
	SELECT * INTO dn FROM billing.invoice i WHERE i.account_id = dn.account_id AND i.invoice_id = dn.invoice_id;
	RETURN dn;
END $$;
COMMENT ON FUNCTION billing.create_debit_note(billing.account, numeric, text, date, text) IS
	'Issues and posts a debit note with one line; caller holds the account lock';

CREATE FUNCTION billing.issue_debit_note(account_id bigint, amount numeric, reason text, issued_on date DEFAULT CURRENT_DATE)
	RETURNS billing.invoice
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RETURN billing.create_debit_note(billing.lock_account(account_id), amount, reason, issued_on, 'adjustment');
END $$;
COMMENT ON FUNCTION billing.issue_debit_note(bigint, numeric, text, date) IS
	'Posts a debit note: an extra charge, due after the account''s payment terms, aged and paid like an invoice';

CREATE FUNCTION billing.refund(payment_id bigint DEFAULT NULL, credit_note_id bigint DEFAULT NULL, amount numeric DEFAULT NULL,
							   refunded_on date DEFAULT CURRENT_DATE, reference text DEFAULT NULL)
	RETURNS billing.refund
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owner bigint;
	src record;
	available numeric;
	r billing.refund;
BEGIN
	IF (payment_id IS NULL) = (credit_note_id IS NULL) THEN
		RAISE EXCEPTION 'a refund needs exactly one source: a payment or a credit note'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('payment_id %s, credit_note_id %s', coalesce(payment_id::text, 'NULL'), coalesce(credit_note_id::text, 'NULL'));
	END IF;
	IF payment_id IS NOT NULL THEN
		SELECT p.account_id INTO owner FROM billing.payment p WHERE p.payment_id = refund.payment_id;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'payment % does not exist', payment_id USING ERRCODE = 'invalid_parameter_value';
		END IF;
	ELSE
		SELECT i.account_id INTO owner FROM billing.invoice i WHERE i.invoice_id = refund.credit_note_id;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'document % does not exist', credit_note_id USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END IF;
	PERFORM billing.lock_account(owner);
	src := billing.lock_source(owner, payment_id, credit_note_id);
	available := billing.source_unapplied_from(owner, payment_id, credit_note_id, coalesce(refunded_on, src.source_date));
	IF amount IS NULL AND available <= 0 THEN
		RAISE EXCEPTION 'nothing of % is unapplied to refund', src.label
			USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = format('unapplied %s %s', available, src.currency);
	END IF;
	amount := coalesce(amount, available);
	amount := billing.check_money_amount(amount, src.currency, 'refund amount');
	IF amount > available THEN
		RAISE EXCEPTION 'refund exceeds the unapplied part of %', src.label
			USING ERRCODE = 'check_violation',
				  DETAIL = format('refund %s, unapplied %s %s (the least on any date from the refund date on)',
								  amount, available, src.currency);
	END IF;
	IF refunded_on IS NULL OR refunded_on < src.source_date THEN
		RAISE EXCEPTION 'refund of % dated before it', src.label
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('refunded on %s, source dated %s', coalesce(refunded_on::text, 'NULL'), src.source_date);
	END IF;
	INSERT INTO billing.refund AS x (account_id, payment_id, credit_note_id, amount, refunded_on, reference)
	VALUES (owner, refund.payment_id, refund.credit_note_id, amount, refunded_on, reference)
	RETURNING * INTO r;
	RETURN r;
END $$;
COMMENT ON FUNCTION billing.refund(bigint, bigint, numeric, date, text) IS
	'Pays back (part of) the unapplied amount of a payment or credit note; NULL amount: all of it';

-- Account credit applied to the documents a run just posted: unapplied
-- payments and open credit notes, oldest first, dated on the document date.
-- The caller (the run) holds the accounts' locks.
CREATE FUNCTION billing.apply_account_credit(account_ids bigint[], invoice_ids bigint[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- the run's new invoices have no statistics yet and are estimated at one row;
-- hash them against the sources found once, never loop over them (as due_items)
SET enable_nestloop = off
SET jit = off
AS $$
DECLARE
	pair record;
BEGIN
	-- each new invoice with each credit source of its account and currency, in
	-- the order credit is used: invoice by invoice, oldest source first.
	-- apply_source takes what is still free on both sides (nothing once either
	-- is exhausted), dated on the invoice date (or later, see apply_source).
	FOR pair IN
		WITH doc AS (
			SELECT i.account_id, i.invoice_id, i.currency
			FROM unnest(account_ids, invoice_ids) AS d(account_id, invoice_id)
			JOIN billing.invoice i ON i.account_id = d.account_id AND i.invoice_id = d.invoice_id
			WHERE i.status = 'posted' AND i.document_type = 'invoice' AND i.total > 0
		), source AS MATERIALIZED (
			SELECT p.account_id, p.currency, p.received_on AS source_date, p.payment_id, NULL::bigint AS credit_note_id
			FROM billing.payment p
			WHERE p.account_id IN (SELECT doc.account_id FROM doc)
			UNION ALL
			SELECT c.account_id, c.currency, c.invoice_date, NULL, c.invoice_id
			FROM billing.invoice c
			WHERE c.account_id IN (SELECT doc.account_id FROM doc)
			  AND c.document_type = 'credit_note' AND c.status = 'posted'
		)
		SELECT doc.account_id, doc.invoice_id, s.payment_id, s.credit_note_id
		FROM doc
		JOIN source s ON s.account_id = doc.account_id AND s.currency = doc.currency
		WHERE billing.source_unapplied_from(s.account_id, s.payment_id, s.credit_note_id, 'infinity') > 0
		ORDER BY doc.account_id, doc.invoice_id, s.source_date, s.payment_id NULLS LAST, s.credit_note_id
	LOOP
		PERFORM billing.apply_source(pair.account_id, pair.payment_id, pair.credit_note_id, pair.invoice_id, NULL, NULL);
	END LOOP;
END $$;
COMMENT ON FUNCTION billing.apply_account_credit(bigint[], bigint[]) IS
	'Applies unapplied payments and open credit notes, oldest first, to invoices a run posted';
-- The invoicing engine: recompute and reconcile (SPEC principle 3).
--
-- For every subscription with work due, and every period in its window:
--   expected = what the dated timeline says the period costs (rounded once),
--   billed   = what non-void documents already hold for that period,
-- and the difference becomes lines.  Periods are keyed by their regular
-- cycle period ("whole"), so a stub, a cancellation or a change inside a
-- period all reconcile against the same key.  Mid-period changes, backdated
-- changes, cancellations, late usage and void-and-rebill are all this rule.

CREATE TYPE billing.due_item AS (
	item			text,			-- 'line', 'watermark' or 'document'
	account_id		bigint,
	subscription_id	bigint,
	currency		text,
	price_id		bigint,
	kind			text,
	service_period	billing.billing_period,
	cycle_period	billing.billing_period,
	quantity		numeric,
	unit_amount		numeric,
	amount			numeric,
	tax_amount		numeric,
	line_number		int,
	description		text,
	sort_date		date,
	sort_seq		int,
	billed_through	date,
	next_due_date	date,
	seen_reconcile_from date,
	invoice_id		bigint			-- a document's (and its lines') id, from billing.write_due_lines()
);
COMMENT ON TYPE billing.due_item IS 'Output of billing.due_items(): a line to bill, a subscription''s new watermarks, or the totals of the document an account''s lines in a currency make (amount, tax_amount, line_number = its line count); billing.write_due_lines() also gives the document''s invoice_id';

-- The rule itself is in src/due_items.c: one query streams each candidate's
-- timeline, billed lines and usage, and each subscription is reconciled in
-- memory (see there why).
CREATE FUNCTION billing.due_items(target_date date, account_ids bigint[] DEFAULT NULL, full_history boolean DEFAULT false)
	RETURNS SETOF billing.due_item
	AS 'MODULE_PATHNAME', 'billing_due_items' LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp
-- a run's statement is costed high; compiling it with JIT saves nothing
SET jit = off
-- the candidates are sorted by key once, and the result is a tuplestore:
-- 16MB keeps both in memory up to about 100,000 subscriptions, and a run's
-- private memory under 512MB at a million
SET work_mem = '16MB';
COMMENT ON FUNCTION billing.due_items(date, bigint[], boolean) IS
	'What a run with this target date would bill: lines (expected minus billed per subscription period), each candidate subscription''s new watermarks, and per account and currency the totals of the document its lines make; full_history ignores the watermarks (used by check_integrity). Writes nothing';

-- An invoice run's lines and watermarks, written as the engine makes them
-- (src/due_items.c, src/watermark_writer.c say why): returns the documents
-- with their invoice ids.
CREATE FUNCTION billing.write_due_lines(target_date date, account_ids bigint[])
	RETURNS SETOF billing.due_item
	AS 'MODULE_PATHNAME', 'billing_write_due_lines' LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '16MB';
COMMENT ON FUNCTION billing.write_due_lines(date, bigint[]) IS
	'Bills the due lines of the given accounts (NULL: all) into billing.invoice_line, each account''s documents numbered from the invoice id sequence in currency order, and writes each candidate subscription''s new watermarks; returns the documents (with invoice_id) for the run to write, and the lines or the watermarks only when someone''s insert trigger on invoice_line or update trigger on subscription needs the run''s own statement; superuser only (the run''s functions)';
-- Invoice runs: the scheduled entry point, its chunked form, and preview.

-- Bill the due work of some accounts (NULL: all) into batch_id.  Accounts are
-- locked in account_id order first, so concurrent runs and subscription
-- changes serialize per account without deadlocks; what is due is read after
-- the locks, so a run waiting on another sees its documents and adds nothing.
CREATE FUNCTION billing.bill_accounts(target_date date, auto_post boolean, batch_id bigint, account_ids bigint[])
	RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- batch statements are costed high (set-returning functions are estimated at
-- 1000 rows); compiling them with JIT takes seconds and saves nothing
SET jit = off
-- a catch-up run's start terms join a million subscriptions (and the UPDATE
-- of the watermarks, when a trigger needs it, hashes every candidate): they
-- fit in memory at 64MB (at 16MB the join went through disk in 4 batches);
-- the peak of a 1M catch-up run, 298MB, is that statement
SET work_mem = '64MB'
AS $$
DECLARE
	doc_accounts bigint[];
	doc_ids bigint[];
	doc_types text[];
	start_accounts bigint[];
	start_subscriptions bigint[];
BEGIN
	PERFORM billing.lock_accounts(ARRAY(
		SELECT DISTINCT s.account_id FROM billing.subscriptions_of(account_ids) s
		WHERE billing.has_work_due(s.start_date, s.next_due_date, s.reconcile_from, s.last_target_date, target_date)));

	-- subscriptions billed for the first time: their start terms join the
	-- timeline (written below; until then the engine reads them from the row)
	SELECT array_agg(s.account_id), array_agg(s.subscription_id)
	INTO start_accounts, start_subscriptions
	FROM billing.subscriptions_of(account_ids) s
	WHERE s.last_target_date IS NULL AND s.start_date <= target_date;

	IF to_regclass('pg_temp.billing_due') IS NOT NULL THEN
		DROP TABLE pg_temp.billing_due;
	END IF;
	-- the lines and the watermarks are written here already
	-- (billing.write_due_lines); what comes back is the documents, with their
	-- ids (and, when someone's triggers need the statements below, the lines
	-- or the watermarks)
	CREATE TEMP TABLE billing_due ON COMMIT DROP AS
	SELECT * FROM billing.write_due_lines(target_date, account_ids);
	-- statistics after the bulk load: planned at the default guess, the joins
	-- below would sort and merge a million rows through disk
	ANALYZE billing_due;

	-- One document per account and currency, written once in its final form:
	-- totals from its lines (summed by the engine as it made them: a GROUP BY
	-- over a catch-up run's ten million lines took 16 s), due date and, when
	-- posting, its number.  (Written as a draft and then totalled and
	-- numbered, each document row would be rewritten twice, with its checks,
	-- in the run's largest table.)  Net credit makes a credit note.  Ids
	-- follow (account, currency) (the engine gave them), numbers ids.
	IF to_regclass('pg_temp.billing_new_documents') IS NOT NULL THEN
		DROP TABLE pg_temp.billing_new_documents;
	END IF;
	CREATE TEMP TABLE billing_new_documents ON COMMIT DROP AS
	SELECT d.account_id, d.currency,
		   CASE WHEN d.amount + d.tax_amount < 0 THEN 'credit_note' ELSE 'invoice' END AS document_type,
		   d.amount AS subtotal, d.tax_amount AS tax_total, d.line_number AS lines, d.invoice_id
	FROM billing_due d
	WHERE d.item = 'document';
	ANALYZE billing_new_documents;

	-- posting: the documents' numbers (none taken for drafts)
	IF auto_post THEN
		SELECT array_agg(n.account_id ORDER BY n.invoice_id), array_agg(n.invoice_id ORDER BY n.invoice_id),
			   array_agg(n.document_type ORDER BY n.invoice_id)
		INTO doc_accounts, doc_ids, doc_types
		FROM billing_new_documents n;
	END IF;

	-- the documents and then the lines are the run's own statements, written
	-- by its bulk writer: their keys are accounts it has locked, a batch,
	-- subscriptions and documents it has just written, and prices its
	-- timelines reference, so the integrity triggers skip them
	-- (billing.trust_run_statements, billing.write_run_rows)
	PERFORM billing.write_run_rows('billing.invoice', $run$
		SELECT n.invoice_id, n.account_id, $1 AS batch_id, n.document_type, num.document_number,
			   CASE WHEN $3 THEN 'posted' ELSE 'draft' END AS status, $2 AS invoice_date,
			   billing.document_due_date(n.document_type, $2, a.payment_terms_days) AS due_date, n.currency,
			   n.subtotal, n.tax_total, n.subtotal + n.tax_total AS total,
			   CASE WHEN $3 THEN pg_catalog.now() END AS posted_at
		FROM pg_temp.billing_new_documents n
		JOIN billing.account a ON a.account_id = n.account_id
		LEFT JOIN billing.number_documents($4, $5, $6) num
			   ON num.account_id = n.account_id AND num.invoice_id = n.invoice_id
		ORDER BY n.invoice_id$run$,
		batch_id, target_date, auto_post, doc_accounts, doc_ids, doc_types);

	-- watermarks, when billing.subscription has an update trigger that must
	-- see this statement (else the engine wrote them, by the same rule): keep
	-- a reconcile_from that moved while we ran (late usage).  Written before
	-- the lines and the start terms: a subscription this transaction updated
	-- needs no FOR KEY SHARE lock from their key checks
	-- (billing.check_foreign_keys).
	UPDATE billing.subscription s
	SET billed_through = w.billed_through,
		next_due_date = w.next_due_date,
		last_target_date = greatest(s.last_target_date, target_date),
		reconcile_from = CASE WHEN s.reconcile_from IS NOT DISTINCT FROM w.seen_reconcile_from
							  THEN NULL ELSE s.reconcile_from END,
		next_bill_date_override = NULL
	FROM billing_due w
	WHERE w.item = 'watermark' AND s.account_id = w.account_id AND s.subscription_id = w.subscription_id;

	IF start_subscriptions IS NOT NULL THEN
		PERFORM billing.record_start_terms(start_accounts, start_subscriptions);
	END IF;

	-- the lines of a posted document all come in one statement, summing to its
	-- totals (as billing.invoice_line_guard_insert requires of anyone else):
	-- billing.write_due_lines() wrote them, or, when invoice_line has an
	-- insert trigger of someone else's, returned them for this INSERT, which
	-- that trigger sees.  No ORDER BY: they come by account and line number
	-- already, and sorting a million lines again cost a quarter of the insert.
	PERFORM billing.write_run_rows('billing.invoice_line', $run$
		SELECT d.account_id, d.invoice_id, d.line_number, d.subscription_id, d.price_id, d.kind, d.service_period,
			   d.cycle_period, d.quantity, d.unit_amount, d.amount, d.tax_amount, d.description
		FROM pg_temp.billing_due d
		WHERE d.item = 'line'$run$);

	IF doc_ids IS NOT NULL THEN
		PERFORM billing.apply_account_credit(doc_accounts, doc_ids);
	END IF;

	-- the batch's counters from the documents just written (a document's
	-- total is its subtotal plus its tax, as written above)
	UPDATE billing.invoice_batch b
	SET (accounts, invoices, lines, total_amount) =
		(SELECT b.accounts + count(DISTINCT n.account_id), b.invoices + count(*), b.lines + coalesce(sum(n.lines), 0),
				b.total_amount + coalesce(sum(n.subtotal + n.tax_total), 0)
		 FROM billing_new_documents n)
	WHERE b.batch_id = bill_accounts.batch_id;
END $$;
COMMENT ON FUNCTION billing.bill_accounts(date, boolean, bigint, bigint[]) IS
	'Bills the due work of the given accounts (NULL: all) into a batch: locks, lines, documents, posting, watermarks';

CREATE FUNCTION billing.check_run_isolation() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	-- under a frozen snapshot a run could not see a concurrent run's documents
	IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'invoice runs need READ COMMITTED isolation'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('transaction_isolation is %s', pg_catalog.current_setting('transaction_isolation'));
	END IF;
END $$;
COMMENT ON FUNCTION billing.check_run_isolation() IS 'Rejects invoice runs outside READ COMMITTED';

CREATE FUNCTION billing.run_invoice_batch(target_date date DEFAULT CURRENT_DATE, auto_post boolean DEFAULT true)
	RETURNS billing.invoice_batch
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	batch billing.invoice_batch;
BEGIN
	batch := billing.open_invoice_batch(target_date, auto_post);
	PERFORM billing.bill_accounts(target_date, auto_post, batch.batch_id, NULL);
	UPDATE billing.invoice_batch b SET status = 'completed', finished_at = pg_catalog.clock_timestamp()
	WHERE b.batch_id = batch.batch_id
	RETURNING * INTO batch;
	RETURN batch;
END $$;
COMMENT ON FUNCTION billing.run_invoice_batch(date, boolean) IS
	'The nightly invoice run: bills every period due by target_date that is not yet billed (or billed differently), one document per account and currency; idempotent';

-- The chunked run: the procedure only loops and commits (PostgreSQL forbids
-- COMMIT in SECURITY DEFINER code); each step is a SECURITY DEFINER function.
CREATE FUNCTION billing.open_invoice_batch(target_date date, auto_post boolean) RETURNS billing.invoice_batch
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	batch billing.invoice_batch;
BEGIN
	IF target_date IS NULL OR auto_post IS NULL THEN
		RAISE EXCEPTION 'target_date and auto_post of an invoice run must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM billing.check_run_isolation();
	INSERT INTO billing.invoice_batch AS b (target_date, invoice_date, auto_post)
	VALUES (target_date, target_date, auto_post)
	RETURNING * INTO batch;
	RETURN batch;
END $$;
COMMENT ON FUNCTION billing.open_invoice_batch(date, boolean) IS 'Starts an invoice batch row (used by the chunked run)';

-- Bill the next chunk of accounts after after_account; returns the last
-- account billed, NULL when nothing is left.
CREATE FUNCTION billing.run_invoice_chunk(batch_id bigint, after_account bigint, chunk_accounts int) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	batch billing.invoice_batch;
	chunk bigint[];
BEGIN
	SELECT * INTO batch FROM billing.invoice_batch b WHERE b.batch_id = run_invoice_chunk.batch_id;
	IF NOT FOUND OR batch.status <> 'running' THEN
		RAISE EXCEPTION 'invoice batch % is not running', batch_id USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	IF chunk_accounts IS NULL OR chunk_accounts < 1 THEN
		RAISE EXCEPTION 'chunk_accounts must be positive' USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('chunk_accounts is %s', coalesce(chunk_accounts::text, 'NULL'));
	END IF;
	SELECT array_agg(x.account_id ORDER BY x.account_id) INTO chunk
	FROM (SELECT DISTINCT s.account_id
		  FROM billing.subscription s
		  WHERE billing.has_work_due(s.start_date, s.next_due_date, s.reconcile_from, s.last_target_date,
									 batch.target_date)
			AND s.account_id > coalesce(after_account, 0)
		  ORDER BY s.account_id
		  LIMIT chunk_accounts) x;
	IF chunk IS NULL THEN
		RETURN NULL;
	END IF;
	PERFORM billing.bill_accounts(batch.target_date, batch.auto_post, batch.batch_id, chunk);
	RETURN chunk[array_upper(chunk, 1)];
END $$;
COMMENT ON FUNCTION billing.run_invoice_chunk(bigint, bigint, int) IS
	'Bills the next chunk of accounts of a running batch; returns the last account billed, NULL when done';

CREATE FUNCTION billing.close_invoice_batch(batch_id bigint) RETURNS billing.invoice_batch
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	batch billing.invoice_batch;
BEGIN
	UPDATE billing.invoice_batch b SET status = 'completed', finished_at = pg_catalog.clock_timestamp()
	WHERE b.batch_id = close_invoice_batch.batch_id AND b.status = 'running'
	RETURNING * INTO batch;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'invoice batch % is not running', batch_id USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	RETURN batch;
END $$;
COMMENT ON FUNCTION billing.close_invoice_batch(bigint) IS 'Marks a running invoice batch completed';

CREATE PROCEDURE billing.run_invoice_batch_chunked(target_date date DEFAULT CURRENT_DATE, chunk_accounts int DEFAULT 1000,
												   auto_post boolean DEFAULT true)
-- no SET clause: a procedure with one cannot COMMIT; every name below is qualified
LANGUAGE plpgsql AS $$
DECLARE
	batch_id bigint;
	last_account bigint;
BEGIN
	IF chunk_accounts IS NULL OR chunk_accounts < 1 THEN
		RAISE EXCEPTION 'chunk_accounts must be positive' USING ERRCODE = 'invalid_parameter_value',
			DETAIL = pg_catalog.format('chunk_accounts is %s', coalesce(chunk_accounts::text, 'NULL'));
	END IF;
	batch_id := (billing.open_invoice_batch(target_date, auto_post)).batch_id;
	COMMIT;
	LOOP
		last_account := billing.run_invoice_chunk(batch_id, last_account, chunk_accounts);
		COMMIT;
		EXIT WHEN last_account IS NULL;
	END LOOP;
	PERFORM billing.close_invoice_batch(batch_id);
	COMMIT;
END $$;
COMMENT ON PROCEDURE billing.run_invoice_batch_chunked(date, int, boolean) IS
	'The invoice run in chunks of accounts, committing each chunk so a crash keeps the progress; CALL it outside a transaction block';

CREATE FUNCTION billing.preview_invoice(account_id bigint, target_date date DEFAULT CURRENT_DATE)
	RETURNS SETOF billing.invoice_line
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM billing.account a WHERE a.account_id = preview_invoice.account_id) THEN
		RAISE EXCEPTION 'account % does not exist', account_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT NULL::bigint, d.account_id, NULL::bigint, d.line_number, d.subscription_id, d.price_id, d.kind,
		   d.service_period, d.cycle_period, d.quantity, d.unit_amount, d.amount, d.tax_amount, d.description
	FROM billing.due_items(target_date, ARRAY[preview_invoice.account_id]) d
	WHERE d.item = 'line'
	ORDER BY d.currency, d.line_number;
END $$;
COMMENT ON FUNCTION billing.preview_invoice(bigint, date) IS
	'The lines a run with this target date would create for the account now (ids NULL); writes nothing';
-- Statements of the extension's own bulk writers (an invoice run's documents,
-- lines and first timeline rows, record_payments' payments and allocations) that the
-- statement-level integrity triggers trust (src/run_statements.c says why and
-- how): they are computed from rows the writer holds locked or has just
-- written, and checking their keys again cost a join over every new row.
-- Only a superuser (the writers' SECURITY DEFINER functions) can set the
-- mark; the writer clears it after its statement.

CREATE FUNCTION billing.trust_run_statements(on_off boolean) RETURNS boolean
	AS 'MODULE_PATHNAME', 'billing_trust_run_statements' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION billing.trust_run_statements(boolean) IS
	'Marks (true) or unmarks (false) the statements the current transaction runs next as the extension''s own bulk writes (invoice runs, record_payments), which the statement-level integrity triggers skip; only for a superuser, returns whether the mark is set';

CREATE FUNCTION billing.run_statement_trusted() RETURNS boolean
	AS 'MODULE_PATHNAME', 'billing_run_statement_trusted' LANGUAGE C STABLE;
COMMENT ON FUNCTION billing.run_statement_trusted() IS
	'Whether the statement being checked is one of the extension''s own bulk writes (see billing.trust_run_statements)';

-- The bulk writer of the runs and record_payments (src/run_writer.c): the
-- rows of a query go into a table as one marked statement, in batches as COPY
-- writes them, with no transition tables for triggers that would skip them; a
-- plain INSERT when the table has any other insert trigger.  The arguments
-- after the query are its parameters $1, $2, ...
CREATE FUNCTION billing.write_run_rows(target regclass, source text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'billing_write_run_rows' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION billing.write_run_rows(regclass, text) IS
	'Writes the rows of the query source into target as one of the extension''s own bulk writes (columns by name, defaults for the rest, constraints and indexes as an INSERT); superuser only, returns the rows written';

CREATE FUNCTION billing.write_run_rows(target regclass, source text, VARIADIC params "any") RETURNS bigint
	AS 'MODULE_PATHNAME', 'billing_write_run_rows' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION billing.write_run_rows(regclass, text, "any") IS
	'billing.write_run_rows(target, source) with the parameters $1, $2, ... of source';
-- Foreign keys checked once per statement on the tables runs write in bulk.
--
-- A row-level foreign key check runs one query per new row and key: a run
-- writing a million lines (three keys each) spent most of its time there.
-- On the tables below (invoices, lines, the timeline, allocations, payments) the
-- foreign keys stay declared, so their parent-side triggers still refuse
-- deleting or re-keying a referenced row, and pg_dump still restores parents
-- first; only the child-side per-row checks
-- (RI_FKey_check_ins/_upd) are disabled.  billing.check_foreign_keys() does
-- their work once per statement: for each key it finds the referenced rows
-- with one semi-join and locks them FOR KEY SHARE, as the per-row checks
-- would, so a concurrent delete of a parent still waits for the writer and
-- then fails.  A missing parent raises PostgreSQL's own error (23503).
--
-- Parents this transaction wrote itself (inserted, or updated at top level:
-- their xmin is our xid) are not locked again: no one else can see an
-- inserted row, and a delete of an updated one waits for us anyway, then
-- finds our committed children.  A run inserts its documents and updates
-- every billed subscription's watermarks before writing the lines, so the
-- lines' keys lock nothing; locking a million subscriptions FOR KEY SHARE
-- (a WAL-logged write per row) was 8% of a 1M-subscription run.  Rows
-- written in a subtransaction have another xid and are locked as usual.

-- The foreign keys of a table, as SQL fragments over aliases n (child) and p
-- (parent), for the statement-level check and for check_integrity.
CREATE FUNCTION billing.foreign_key_sql(child regclass)
	RETURNS TABLE (conname name, parent regclass, child_cols text, parent_cols text, joined text, complete text,
				   key_names text, key_text text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT c.conname, c.confrelid::regclass,
		   string_agg(format('n.%I', ca.attname), ', ' ORDER BY k.i),
		   string_agg(format('p.%I', pa.attname), ', ' ORDER BY k.i),
		   string_agg(format('p.%I = n.%I', pa.attname, ca.attname), ' AND ' ORDER BY k.i),
		   string_agg(format('n.%I IS NOT NULL', ca.attname), ' AND ' ORDER BY k.i),
		   string_agg(quote_ident(ca.attname), ', ' ORDER BY k.i),
		   string_agg(format('n.%I::text', ca.attname), ' || '', '' || ' ORDER BY k.i)
	FROM pg_catalog.pg_constraint c
	CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(child_att, parent_att, i)
	JOIN pg_catalog.pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k.child_att
	JOIN pg_catalog.pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.parent_att
	WHERE c.conrelid = child AND c.contype = 'f'
	GROUP BY c.conname, c.confrelid
	ORDER BY c.conname;
END;
COMMENT ON FUNCTION billing.foreign_key_sql(regclass) IS
	'The foreign keys of a table as SQL fragments (child alias n, parent alias p), for checks written once for every key';

-- Runs as the owner, as PostgreSQL's own foreign key checks do: locking a
-- parent row FOR KEY SHARE needs more than SELECT on it.
CREATE FUNCTION billing.check_foreign_keys() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	fk record;
	own_xid xid := pg_catalog.pg_current_xact_id()::xid;
	wanted bigint;
	own bigint;
	locked bigint;
	missing text;
	saved_nestloop text;
BEGIN
	-- an invoice run's own documents and lines: keys it holds or just wrote
	IF billing.run_statement_trusted() THEN
		RETURN NULL;
	END IF;
	-- A transition table has no statistics: the planner guesses a few thousand
	-- distinct keys and probes the parent's index once per key.  For a
	-- statement of many rows (a run's million lines: 1M probes, 9 s) one hash
	-- join over the parent is several times faster.
	IF (SELECT count(*) FROM new_rows) > 10000 THEN
		saved_nestloop := pg_catalog.current_setting('enable_nestloop');
		PERFORM pg_catalog.set_config('enable_nestloop', 'off', true);
	END IF;
	FOR fk IN SELECT * FROM billing.foreign_key_sql(TG_RELID)
	LOOP
		-- the distinct keys once (MATCH SIMPLE: a key with a NULL column refers
		-- to nothing), and how many of their parents this transaction wrote
		EXECUTE format('WITH k AS MATERIALIZED (SELECT DISTINCT %s FROM new_rows n WHERE %s) '
					   'SELECT (SELECT count(*) FROM k), '
					   '(SELECT count(*) FROM %s p WHERE (%s) IN (SELECT * FROM k) AND p.xmin OPERATOR(pg_catalog.=) $1)',
					   fk.child_cols, fk.complete, fk.parent, fk.parent_cols)
		INTO wanted, own USING own_xid;
		CONTINUE WHEN own = wanted;
		-- the others found and locked
		EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %s p WHERE (%s) IN (SELECT DISTINCT %s FROM new_rows n WHERE %s) '
					   'AND p.xmin OPERATOR(pg_catalog.<>) $1 FOR KEY SHARE OF p) x',
					   fk.parent, fk.parent_cols, fk.child_cols, fk.complete)
		INTO locked USING own_xid;
		CONTINUE WHEN own + locked = wanted;
		EXECUTE format('SELECT %s FROM new_rows n WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s) LIMIT 1',
					   fk.key_text, fk.complete, fk.parent, fk.joined)
		INTO missing;
		RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"', TG_TABLE_NAME, fk.conname
			USING ERRCODE = 'foreign_key_violation',
				  DETAIL = format('Key (%s)=(%s) is not present in table "%s".', fk.key_names, missing,
								  (SELECT relname FROM pg_catalog.pg_class WHERE oid = fk.parent)),
				  SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, CONSTRAINT = fk.conname;
	END LOOP;
	IF saved_nestloop IS NOT NULL THEN
		PERFORM pg_catalog.set_config('enable_nestloop', saved_nestloop, true);
	END IF;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION billing.check_foreign_keys() IS
	'Trigger: the foreign keys of the new or changed rows of a statement, checked in one join per key; parents not written by this transaction are locked FOR KEY SHARE';

DO $$
DECLARE
	t regclass;
	tg name;
BEGIN
	FOREACH t IN ARRAY ARRAY['billing.invoice', 'billing.invoice_line', 'billing.subscription_change', 'billing.allocation',
							 'billing.payment']::regclass[]
	LOOP
		EXECUTE format('CREATE TRIGGER check_foreign_keys_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
					   'FOR EACH STATEMENT EXECUTE FUNCTION billing.check_foreign_keys()', t);
		EXECUTE format('CREATE TRIGGER check_foreign_keys_update AFTER UPDATE ON %s REFERENCING NEW TABLE AS new_rows '
					   'FOR EACH STATEMENT EXECUTE FUNCTION billing.check_foreign_keys()', t);
		-- the child-side per-row checks these triggers replace
		FOR tg IN SELECT g.tgname FROM pg_catalog.pg_trigger g
				  JOIN pg_catalog.pg_constraint c ON c.oid = g.tgconstraint
				  WHERE g.tgrelid = t AND c.contype = 'f' AND c.conrelid = t
					AND g.tgfoid IN ('pg_catalog."RI_FKey_check_ins"'::pg_catalog.regproc,
									 'pg_catalog."RI_FKey_check_upd"'::pg_catalog.regproc)
		LOOP
			EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', t, tg);
		END LOOP;
	END LOOP;
END $$;
-- check_integrity(): the invariants finance relies on, as rows of findings.
-- No rows means healthy.  Every check names what it found and the numbers.

CREATE FUNCTION billing.check_integrity() RETURNS TABLE (check_name text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	target date;
	latest date;
	fk record;
BEGIN
	-- foreign keys checked per statement (89_statement_foreign_keys.sql): no
	-- row refers to a missing parent
	FOR fk IN SELECT t.child, f.*
			  FROM (SELECT DISTINCT g.tgrelid::regclass AS child FROM pg_catalog.pg_trigger g
					WHERE g.tgfoid = 'pg_catalog."RI_FKey_check_ins"'::pg_catalog.regproc AND g.tgenabled = 'D'
					  AND g.tgrelid IN (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = 'billing'::regnamespace)) t
			  CROSS JOIN LATERAL billing.foreign_key_sql(t.child) f
	LOOP
		RETURN QUERY EXECUTE format(
			'SELECT ''foreign_key''::text, format(''%s: key (%s)=(%%s) is not present in %s'', %s) '
			'FROM %s n WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s)',
			fk.conname, fk.key_names, fk.parent, fk.key_text, fk.child, fk.complete, fk.parent, fk.joined);
	END LOOP;

	-- document totals equal the sum of their lines
	RETURN QUERY
	SELECT 'document_totals'::text,
		   format('%s %s (document %s): subtotal %s, tax %s, total %s; lines sum to %s and tax %s',
				  i.document_type, coalesce(i.document_number, 'draft'), i.invoice_id, i.subtotal, i.tax_total, i.total,
				  coalesce(l.amount, 0), coalesce(l.tax, 0))
	FROM billing.invoice i
	LEFT JOIN (SELECT l.account_id, l.invoice_id, sum(l.amount) AS amount, sum(l.tax_amount) AS tax
			   FROM billing.invoice_line l GROUP BY l.account_id, l.invoice_id) l
		   ON l.account_id = i.account_id AND l.invoice_id = i.invoice_id
	WHERE i.status <> 'draft'
	  AND (i.subtotal <> coalesce(l.amount, 0) OR i.tax_total <> coalesce(l.tax, 0) OR i.total <> i.subtotal + i.tax_total);

	-- every stored amount is rounded to its currency's minor unit
	RETURN QUERY
	SELECT 'money_rounding'::text,
		   format('line %s of document %s: amount %s, tax %s not rounded to %s (%s decimals)',
				  l.line_id, l.invoice_id, l.amount, l.tax_amount, i.currency, c.minor_units)
	FROM billing.invoice_line l
	JOIN billing.invoice i ON i.account_id = l.account_id AND i.invoice_id = l.invoice_id
	JOIN billing.currency c ON c.code = i.currency
	WHERE round(l.amount, c.minor_units) <> l.amount OR round(l.tax_amount, c.minor_units) <> l.tax_amount;

	-- credit notes credit, invoices and debit notes charge
	RETURN QUERY
	SELECT 'document_sign'::text,
		   format('%s %s (document %s) has total %s', i.document_type, i.document_number, i.invoice_id, i.total)
	FROM billing.invoice i
	WHERE i.status <> 'draft'
	  AND ((i.document_type = 'credit_note' AND i.total > 0) OR (i.document_type <> 'credit_note' AND i.total < 0));

	-- one continuous series per document type: 1..last_number, each once
	RETURN QUERY
	SELECT 'gapless_numbering'::text,
		   format('%s series: %s numbers used, %s distinct, highest %s, series at %s',
				  coalesce(n.document_type, s.document_type), coalesce(n.used, 0), coalesce(n.distinct_numbers, 0),
				  coalesce(n.highest, 0), coalesce(s.last_number, 0))
	FROM (SELECT i.document_type, count(*) AS used, count(DISTINCT i.document_number) AS distinct_numbers,
				 max(substring(i.document_number FROM '[0-9]+$')::bigint) AS highest,
				 bool_and(i.document_number = billing.format_document_number(i.document_type,
											   substring(i.document_number FROM '[0-9]+$')::bigint)) AS well_formed
		  FROM billing.invoice i WHERE i.status <> 'draft' GROUP BY i.document_type) n
	FULL JOIN billing.document_series s ON s.document_type = n.document_type
	WHERE NOT (coalesce(n.used, 0) = coalesce(s.last_number, 0)
			   AND coalesce(n.distinct_numbers, 0) = coalesce(n.used, 0)
			   AND coalesce(n.highest, 0) = coalesce(s.last_number, 0)
			   AND coalesce(n.well_formed, true));

	-- money sources (payments, credit notes): on every date, allocations and
	-- refunds within what they hold, never before their date, none live once void
	RETURN QUERY
	SELECT CASE WHEN src.payment_id IS NOT NULL THEN 'payment_limits' ELSE 'credit_note_limits' END,
		   format('%s of account %s: holds %s, applied and refunded %s as of %s', src.label, src.account_id,
				  src.capacity, m.used, m.day)
	FROM (SELECT p.account_id, p.payment_id, NULL::bigint AS credit_note_id, format('payment %s', p.payment_id) AS label,
				 p.amount AS capacity, p.received_on AS source_date, NULL::date AS voided_on
		  FROM billing.payment p
		  UNION ALL
		  SELECT c.account_id, NULL, c.invoice_id, format('credit note %s', c.document_number), -c.total, c.invoice_date,
				 c.voided_on
		  FROM billing.invoice c
		  WHERE c.document_type = 'credit_note' AND c.status <> 'draft') src
	JOIN LATERAL (
		SELECT d.day, sum(sum(d.amount)) OVER (ORDER BY d.day) AS used
		FROM (SELECT a.allocated_on AS day, a.amount FROM billing.allocation a
			  WHERE a.account_id = src.account_id
				AND (a.payment_id = src.payment_id OR a.credit_note_id = src.credit_note_id)
			  UNION ALL
			  SELECT r.refunded_on, r.amount FROM billing.refund r
			  WHERE r.account_id = src.account_id
				AND (r.payment_id = src.payment_id OR r.credit_note_id = src.credit_note_id)) d
		GROUP BY d.day
	) m ON m.used > src.capacity OR m.used < 0 OR m.day < src.source_date
		   OR (m.day >= src.voided_on AND m.used <> 0);

	-- invoices and debit notes: on every date, never open below zero, never
	-- allocated to before their date; allocations only to posted (or later
	-- voided) invoices and debit notes, none live once void
	RETURN QUERY
	SELECT 'document_allocations'::text,
		   format('%s %s (%s): total %s, allocated %s as of %s', i.document_type, coalesce(i.document_number, 'draft'),
				  i.status, i.total, m.used, m.day)
	FROM billing.invoice i
	JOIN LATERAL (
		SELECT a.allocated_on AS day, sum(sum(a.amount)) OVER (ORDER BY a.allocated_on) AS used
		FROM billing.allocation a
		WHERE a.account_id = i.account_id AND a.invoice_id = i.invoice_id
		GROUP BY a.allocated_on
	) m ON m.used > i.total OR m.used < 0 OR m.day < i.invoice_date OR i.document_type = 'credit_note'
		   OR i.status = 'draft' OR (i.status = 'void' AND m.day >= i.voided_on AND m.used <> 0);
	RETURN QUERY
	SELECT 'allocation_currency'::text,
		   format('allocation %s: source in %s, document %s in %s', a.allocation_id, coalesce(p.currency, c.currency),
				  i.document_number, i.currency)
	FROM billing.allocation a
	JOIN billing.invoice i ON i.account_id = a.account_id AND i.invoice_id = a.invoice_id
	LEFT JOIN billing.payment p ON p.account_id = a.account_id AND p.payment_id = a.payment_id
	LEFT JOIN billing.invoice c ON c.account_id = a.account_id AND c.invoice_id = a.credit_note_id
	WHERE coalesce(p.currency, c.currency) <> i.currency;

	-- revenue schedules sum exactly to their posted lines
	RETURN QUERY
	SELECT 'revenue_schedule'::text,
		   format('line %s of %s: amount %s, scheduled %s', l.line_id, i.document_number, l.amount, coalesce(s.amount, 0))
	FROM billing.invoice_line l
	JOIN billing.invoice i ON i.account_id = l.account_id AND i.invoice_id = l.invoice_id
	LEFT JOIN (SELECT s.account_id, s.line_id, sum(s.amount) AS amount FROM billing.revenue_schedule s GROUP BY 1, 2) s
	  ON s.account_id = l.account_id AND s.line_id = l.line_id
	WHERE i.status <> 'draft' AND l.amount <> coalesce(s.amount, 0);

	-- principle 3: after a run with target T, every period of a subscription due
	-- by T holds exactly its expected amount.  Held subscriptions, pending
	-- changes and those no run has reconciled yet are exempt.
	-- Each subscription is checked at the later of its own last run and the
	-- latest completed run, so one that fell off the schedule is caught.
	latest := (SELECT max(b.target_date) FROM billing.invoice_batch b WHERE b.status = 'completed');
	FOR target IN SELECT DISTINCT greatest(s.last_target_date, latest) FROM billing.subscription s
				  WHERE s.last_target_date IS NOT NULL LOOP
		RETURN QUERY
		SELECT 'reconciliation'::text,
			   format('subscription %s, period %s: expected minus billed is %s %s as of target date %s',
					  d.subscription_id, coalesce(d.cycle_period::text, 'one-time'), sum(d.amount), d.currency, target)
		FROM billing.due_items(target,
							   ARRAY(SELECT DISTINCT s.account_id FROM billing.subscription s
									 WHERE greatest(s.last_target_date, latest) = target),
							   true) d
		JOIN billing.subscription s ON s.account_id = d.account_id AND s.subscription_id = d.subscription_id
		WHERE d.item = 'line' AND greatest(s.last_target_date, latest) = target AND s.reconcile_from IS NULL
		GROUP BY d.subscription_id, d.cycle_period, d.currency
		HAVING sum(d.amount) <> 0;
	END LOOP;
END $$;
COMMENT ON FUNCTION billing.check_integrity() IS
	'Invariant checks; no rows when healthy: foreign keys checked per statement, document totals, money rounding, document signs, gapless numbering, allocation and refund limits, revenue schedules, reconciliation of every due period';
-- Receivables aging as of any date, built on the one open-amount rule
-- (billing.open_items), so the buckets always sum to account_balance.

-- Buckets are numbered: 0 'current' (days overdue <= 0), 1 .. n the inclusive
-- ranges the n bounds define ('1-30', '31-60', '61-90'), n + 1 the open end
-- ('91+'), n + 2 'unapplied' (payments and credit notes, no days overdue).
-- The number is a binary search over the bounds (width_bucket counts the
-- bounds <= its operand, so bounds < days).  Both functions are inlined into
-- the aging queries: every operator in them is immutable (int || text is
-- only stable, hence the casts).
CREATE FUNCTION billing.aging_bucket_order(days_overdue int, bucket_days int[]) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN days_overdue IS NULL THEN pg_catalog.cardinality(bucket_days) + 2
			WHEN days_overdue <= 0 THEN 0
			ELSE pg_catalog.width_bucket(days_overdue - 1, bucket_days) + 1 END;
COMMENT ON FUNCTION billing.aging_bucket_order(int, int[]) IS
	'Aging bucket number of a number of days overdue: 0 current (<= 0), 1..n the inclusive ranges of the n bounds, n+1 beyond the last, n+2 unapplied (NULL days)';

CREATE FUNCTION billing.aging_bucket_label(bucket_order int, bucket_days int[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN bucket_order = 0 THEN 'current'
			WHEN bucket_order = pg_catalog.cardinality(bucket_days) + 2 THEN 'unapplied'
			WHEN bucket_order = pg_catalog.cardinality(bucket_days) + 1 THEN (bucket_days[bucket_order - 1] + 1)::text || '+'
			ELSE (coalesce(bucket_days[bucket_order - 1], 0) + 1)::text || '-' || bucket_days[bucket_order]::text END;
COMMENT ON FUNCTION billing.aging_bucket_label(int, int[]) IS
	'Name of an aging bucket number: current, 1-30, 31-60, 61-90, 91+ (for bounds {30,60,90}), unapplied';

CREATE FUNCTION billing.check_aging_arguments(as_of date, bucket_days int[], basis text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM billing.check_as_of(as_of);
	IF bucket_days IS NULL OR cardinality(bucket_days) = 0 OR array_ndims(bucket_days) <> 1
	   OR EXISTS (SELECT 1 FROM generate_subscripts(bucket_days, 1) AS i
				  WHERE bucket_days[i] IS NULL OR bucket_days[i] <= coalesce(bucket_days[i - 1], 0)) THEN
		RAISE EXCEPTION 'aging bucket bounds must be positive and increasing'
			USING ERRCODE = 'invalid_parameter_value', DETAIL = format('bucket_days is %s', coalesce(bucket_days::text, 'NULL'));
	END IF;
	IF basis IS NULL OR basis NOT IN ('due_date', 'invoice_date') THEN
		RAISE EXCEPTION 'aging basis must be due_date or invoice_date'
			USING ERRCODE = 'invalid_parameter_value', DETAIL = format('basis is %s', coalesce(basis, 'NULL'));
	END IF;
END $$;
COMMENT ON FUNCTION billing.check_aging_arguments(date, int[], text) IS 'Validates the as-of date, aging bucket bounds and basis';

-- The open items of open_items as of D with their days overdue and bucket
-- number (inlined into both aging functions).  The caller checks the arguments.
CREATE FUNCTION billing.aging_items(as_of date, bucket_days int[], basis text)
	RETURNS TABLE (account_id bigint, document_type text, invoice_id bigint, payment_id bigint, document_number text,
				   currency text, document_date date, due_date date, days_overdue int, bucket_order int,
				   open_amount numeric)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT o.account_id, o.document_type, CASE o.kind WHEN 'document' THEN o.id END, CASE o.kind WHEN 'payment' THEN o.id END,
		   o.document_number, o.currency, o.item_date, o.due_date, d.days_overdue,
		   billing.aging_bucket_order(d.days_overdue, bucket_days), o.open_amount
	FROM billing.open_items(as_of) o
	CROSS JOIN LATERAL (
		SELECT CASE WHEN o.document_type IN ('invoice', 'debit_note')
					THEN as_of - CASE basis WHEN 'invoice_date' THEN o.item_date ELSE o.due_date END END
	) AS d (days_overdue)
	WHERE o.open_amount <> 0;
END;
COMMENT ON FUNCTION billing.aging_items(date, int[], text) IS
	'Open documents and unapplied payments as of a date with days overdue and aging bucket number; arguments unchecked';

CREATE FUNCTION billing.ar_aging_detail(as_of date DEFAULT CURRENT_DATE, bucket_days int[] DEFAULT '{30,60,90}',
										basis text DEFAULT 'due_date')
	RETURNS TABLE (account_id bigint, document_type text, invoice_id bigint, payment_id bigint, document_number text,
				   currency text, document_date date, due_date date, days_overdue int, bucket text, open_amount numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM billing.check_aging_arguments(as_of, bucket_days, basis);
	RETURN QUERY
	SELECT d.account_id, d.document_type, d.invoice_id, d.payment_id, d.document_number, d.currency, d.document_date,
		   d.due_date, d.days_overdue, billing.aging_bucket_label(d.bucket_order, bucket_days), d.open_amount
	FROM billing.aging_items(as_of, bucket_days, basis) d;
END $$;
COMMENT ON FUNCTION billing.ar_aging_detail(date, int[], text) IS
	'One row per open document or unapplied payment as of a date, with days overdue and aging bucket; unapplied payments and credit notes are negative in bucket unapplied';

CREATE FUNCTION billing.ar_aging(as_of date DEFAULT CURRENT_DATE, bucket_days int[] DEFAULT '{30,60,90}',
								 basis text DEFAULT 'due_date')
	RETURNS TABLE (account_id bigint, currency text, bucket text, bucket_order int, amount numeric, documents int)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
-- the allocations are summed per document in a hash table, which a parallel
-- plan builds again in every worker: serial, the aging of 200,000 open
-- documents took 0.41 s against 0.47 s on 2 cores (BENCHMARKS.md)
SET max_parallel_workers_per_gather = 0
-- that hash table takes 7MB per 100,000 documents: at the default 4MB it
-- spilled to disk in five batches
SET work_mem = '32MB' AS $$
BEGIN
	PERFORM billing.check_aging_arguments(as_of, bucket_days, basis);
	-- grouped by bucket number; each group is named once.  No ORDER BY: a
	-- sort of every row would cost a sixth of the whole; callers order
	RETURN QUERY
	SELECT g.account_id, g.currency, billing.aging_bucket_label(g.bucket_order, bucket_days), g.bucket_order,
		   g.amount, g.documents
	FROM (SELECT d.account_id, d.currency, d.bucket_order, billing.money_sum(d.open_amount) AS amount,
				 count(*)::int AS documents
		  FROM billing.aging_items(as_of, bucket_days, basis) d
		  GROUP BY d.account_id, d.currency, d.bucket_order) g;
END $$;
COMMENT ON FUNCTION billing.ar_aging(date, int[], text) IS
	'Receivables by account, currency and aging bucket as of a date (current, 1-30, 31-60, 61-90, 91+, unapplied); buckets sum to account_balance';
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
-- Every number the extension stores is finite.
--
-- numeric accepts NaN, Infinity and -Infinity, and most comparisons let them
-- through: NaN sorts above every number, so "amount > 0" holds for it, and
-- scale(NaN) is NULL, so "scale(amount) <= 6" does not refuse it either.  One
-- check per numeric column of every billing table, named <table>_<column>_finite,
-- refuses them (23514).  Written as a loop over the catalog, so a numeric
-- column added to a table above this file gets its check too; the C functions
-- refuse them in their arguments with 22003 (numeric_check_finite).
DO $$
DECLARE
	col record;
BEGIN
	FOR col IN
		SELECT c.oid::regclass AS tbl, c.relname, a.attname
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
		WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind = 'r'
		  AND a.atttypid = 'pg_catalog.numeric'::pg_catalog.regtype AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY c.relname, a.attnum
	LOOP
		-- NaN compares above Infinity, so one range excludes all three
		EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%I > ''-Infinity'' AND %I < ''Infinity'')',
					   col.tbl, col.relname || '_' || col.attname || '_finite', col.attname, col.attname);
	END LOOP;
END $$;
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
-- Views for BI tools: plain relations any client can read over a connection.

CREATE VIEW billing.invoice_report AS
SELECT i.invoice_id, i.document_number, i.document_type, i.status, i.account_id, a.external_key, a.name AS account_name,
	   i.invoice_date, i.due_date, i.currency, i.subtotal, i.tax_total, i.total,
	   o.open_amount,
	   CASE WHEN i.document_type <> 'credit_note' AND i.status = 'posted' THEN CURRENT_DATE - i.due_date END AS days_overdue,
	   i.batch_id, i.corrects_invoice_id, i.credit_kind, i.reason, i.voided_on, i.void_reason
FROM billing.invoice i
JOIN billing.account a ON a.account_id = i.account_id
LEFT JOIN billing.open_items(CURRENT_DATE) o ON o.account_id = i.account_id AND o.kind = 'document' AND o.id = i.invoice_id
WHERE i.status <> 'draft';
COMMENT ON VIEW billing.invoice_report IS 'Posted and void documents with their open amount today';
COMMENT ON COLUMN billing.invoice_report.invoice_id IS 'Document id';
COMMENT ON COLUMN billing.invoice_report.document_number IS 'Document number (INV-, CN-, DN-)';
COMMENT ON COLUMN billing.invoice_report.document_type IS 'invoice, credit_note or debit_note';
COMMENT ON COLUMN billing.invoice_report.status IS 'posted or void';
COMMENT ON COLUMN billing.invoice_report.account_id IS 'Account id';
COMMENT ON COLUMN billing.invoice_report.external_key IS 'The application''s key of the account';
COMMENT ON COLUMN billing.invoice_report.account_name IS 'Account name';
COMMENT ON COLUMN billing.invoice_report.invoice_date IS 'Document date';
COMMENT ON COLUMN billing.invoice_report.due_date IS 'Due date (NULL for credit notes)';
COMMENT ON COLUMN billing.invoice_report.currency IS 'Currency';
COMMENT ON COLUMN billing.invoice_report.subtotal IS 'Amount before tax';
COMMENT ON COLUMN billing.invoice_report.tax_total IS 'Tax';
COMMENT ON COLUMN billing.invoice_report.total IS 'Total, tax included; negative for credit notes';
COMMENT ON COLUMN billing.invoice_report.open_amount IS 'Open amount today (credit notes: unapplied credit, negative; void: 0)';
COMMENT ON COLUMN billing.invoice_report.days_overdue IS 'Days past the due date today';
COMMENT ON COLUMN billing.invoice_report.batch_id IS 'Invoice run that created it';
COMMENT ON COLUMN billing.invoice_report.corrects_invoice_id IS 'Credit notes: the document corrected';
COMMENT ON COLUMN billing.invoice_report.credit_kind IS 'Credit notes: credit or write_off';
COMMENT ON COLUMN billing.invoice_report.reason IS 'Why it was issued';
COMMENT ON COLUMN billing.invoice_report.voided_on IS 'Void date';
COMMENT ON COLUMN billing.invoice_report.void_reason IS 'Why it was voided';

CREATE VIEW billing.ar_aging_report AS
SELECT g.account_id, a.name AS account_name, g.currency,
	   coalesce(sum(g.amount) FILTER (WHERE g.bucket = 'current'), 0) AS current,
	   coalesce(sum(g.amount) FILTER (WHERE g.bucket = '1-30'), 0) AS d1_30,
	   coalesce(sum(g.amount) FILTER (WHERE g.bucket = '31-60'), 0) AS d31_60,
	   coalesce(sum(g.amount) FILTER (WHERE g.bucket = '61-90'), 0) AS d61_90,
	   coalesce(sum(g.amount) FILTER (WHERE g.bucket = '91+'), 0) AS d91_plus,
	   coalesce(sum(g.amount) FILTER (WHERE g.bucket = 'unapplied'), 0) AS unapplied,
	   sum(g.amount) AS total
FROM billing.ar_aging(CURRENT_DATE) g
JOIN billing.account a ON a.account_id = g.account_id
GROUP BY g.account_id, a.name, g.currency;
COMMENT ON VIEW billing.ar_aging_report IS 'Receivables aging today, one row per account and currency, buckets as columns';
COMMENT ON COLUMN billing.ar_aging_report.account_id IS 'Account id';
COMMENT ON COLUMN billing.ar_aging_report.account_name IS 'Account name';
COMMENT ON COLUMN billing.ar_aging_report.currency IS 'Currency';
COMMENT ON COLUMN billing.ar_aging_report.current IS 'Open amount not yet overdue';
COMMENT ON COLUMN billing.ar_aging_report.d1_30 IS 'Open amount 1 to 30 days overdue';
COMMENT ON COLUMN billing.ar_aging_report.d31_60 IS 'Open amount 31 to 60 days overdue';
COMMENT ON COLUMN billing.ar_aging_report.d61_90 IS 'Open amount 61 to 90 days overdue';
COMMENT ON COLUMN billing.ar_aging_report.d91_plus IS 'Open amount more than 90 days overdue';
COMMENT ON COLUMN billing.ar_aging_report.unapplied IS 'Unapplied payments and credit notes (negative)';
COMMENT ON COLUMN billing.ar_aging_report.total IS 'Balance: the sum of the buckets';

CREATE VIEW billing.revenue_by_month AS
SELECT r.period_month, r.currency, r.account_id, sum(r.amount) AS revenue
FROM billing.line_revenue r
WHERE r.status = 'posted'
GROUP BY r.period_month, r.currency, r.account_id;
COMMENT ON VIEW billing.revenue_by_month IS 'Recognized revenue by calendar month, currency and account (posted, non-void documents)';
COMMENT ON COLUMN billing.revenue_by_month.period_month IS 'First day of the month';
COMMENT ON COLUMN billing.revenue_by_month.currency IS 'Currency';
COMMENT ON COLUMN billing.revenue_by_month.account_id IS 'Account id';
COMMENT ON COLUMN billing.revenue_by_month.revenue IS 'Revenue recognized in the month';

CREATE VIEW billing.mrr_by_month AS
SELECT r.period_month, r.currency, sum(r.amount) AS mrr, count(DISTINCT r.subscription_id) AS subscriptions
FROM billing.line_revenue r
WHERE r.status = 'posted' AND r.charge_type = 'recurring' AND r.kind IN ('recurring', 'proration')
GROUP BY r.period_month, r.currency;
COMMENT ON VIEW billing.mrr_by_month IS 'Monthly recurring revenue: revenue of recurring charges (and their prorations) recognized in each month; an annual plan counts a twelfth a month';
COMMENT ON COLUMN billing.mrr_by_month.period_month IS 'First day of the month';
COMMENT ON COLUMN billing.mrr_by_month.currency IS 'Currency';
COMMENT ON COLUMN billing.mrr_by_month.mrr IS 'Recurring revenue recognized in the month';
COMMENT ON COLUMN billing.mrr_by_month.subscriptions IS 'Subscriptions contributing';

CREATE VIEW billing.cash_by_month AS
SELECT m.period_month, m.currency, sum(m.received) AS received, sum(m.refunded) AS refunded,
	   sum(m.received) - sum(m.refunded) AS net_cash
FROM (SELECT date_trunc('month', p.received_on)::date AS period_month, p.currency, p.amount AS received, 0 AS refunded
	  FROM billing.payment p
	  UNION ALL
	  SELECT date_trunc('month', r.refunded_on)::date, coalesce(p.currency, c.currency), 0, r.amount
	  FROM billing.refund r
	  LEFT JOIN billing.payment p ON p.account_id = r.account_id AND p.payment_id = r.payment_id
	  LEFT JOIN billing.invoice c ON c.account_id = r.account_id AND c.invoice_id = r.credit_note_id) m
GROUP BY m.period_month, m.currency;
COMMENT ON VIEW billing.cash_by_month IS 'Cash received and refunded by calendar month and currency';
COMMENT ON COLUMN billing.cash_by_month.period_month IS 'First day of the month';
COMMENT ON COLUMN billing.cash_by_month.currency IS 'Currency';
COMMENT ON COLUMN billing.cash_by_month.received IS 'Payments received';
COMMENT ON COLUMN billing.cash_by_month.refunded IS 'Refunds paid';
COMMENT ON COLUMN billing.cash_by_month.net_cash IS 'Received minus refunded';
-- Roles and privileges.  Tables are never writable by PUBLIC; functions that
-- write are SECURITY DEFINER, executable by the billing roles only.

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'billing_reader') THEN
		CREATE ROLE billing_reader NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'billing_operator') THEN
		CREATE ROLE billing_operator NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'billing_admin') THEN
		CREATE ROLE billing_admin NOLOGIN;
	END IF;
END $$;

GRANT billing_reader TO billing_operator;
GRANT billing_operator TO billing_admin;
-- the schema is visible to all (the pure calculations are public); its tables are not
GRANT USAGE ON SCHEMA billing TO PUBLIC;

-- functions: every writer and every reader of data is for the billing roles only;
-- the pure calculations (periods, proration, rounding) stay public
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA billing FROM PUBLIC;
REVOKE EXECUTE ON ALL PROCEDURES IN SCHEMA billing FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA billing TO billing_admin;
GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA billing TO billing_admin;
DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
			 WHERE p.pronamespace = 'billing'::regnamespace AND p.provolatile = 'i' AND NOT p.prosecdef
	LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
	END LOOP;
END $$;

-- reader: the views and the read-only functions behind them
GRANT SELECT ON billing.invoice_report, billing.ar_aging_report, billing.revenue_by_month,
	billing.mrr_by_month, billing.cash_by_month TO billing_reader;
-- functions the views call run with the caller's rights, so readers read the tables too
GRANT SELECT ON ALL TABLES IN SCHEMA billing TO billing_reader;
GRANT EXECUTE ON FUNCTION
	billing.invoice_balance(bigint, date), billing.account_balance(bigint, date),
	billing.ar_aging(date, int[], text), billing.ar_aging_detail(date, int[], text),
	billing.deferred_revenue(date), billing.check_integrity(), billing.preview_invoice(bigint, date),
	billing.price_amount(bigint, numeric), billing.round_money(numeric, text), billing.allocate(numeric, numeric[], text),
	billing.open_items(date, bigint[]), billing.source_movements(bigint[]), billing.money_sum(numeric),
	billing.document_open_amount(billing.invoice, date), billing.payment_unapplied(billing.payment, date),
	billing.recognized_amount(date, numeric, billing.billing_period, date)
	TO billing_reader;

-- operator: runs batches and dunning, records and applies payments
GRANT EXECUTE ON FUNCTION
	billing.run_invoice_batch(date, boolean), billing.run_dunning(date),
	billing.record_payment(bigint, numeric, date, text, text, boolean),
	billing.record_payments(bigint[], numeric[], date[], text[], text[], boolean),
	billing.apply_payment(bigint, bigint, numeric, date), billing.unapply(bigint, date),
	billing.apply_credit_note(bigint, bigint, numeric, date), billing.post_invoice(bigint)
	TO billing_operator;
GRANT EXECUTE ON PROCEDURE billing.run_invoice_batch_chunked(date, int, boolean) TO billing_operator;
GRANT EXECUTE ON FUNCTION billing.open_invoice_batch(date, boolean), billing.run_invoice_chunk(bigint, bigint, int),
	billing.close_invoice_batch(bigint) TO billing_operator;

-- admin: the catalog, accounts and subscriptions, and every function
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA billing TO billing_admin;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA billing TO billing_admin;
