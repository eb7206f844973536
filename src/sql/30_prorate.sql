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
