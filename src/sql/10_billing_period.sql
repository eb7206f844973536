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
