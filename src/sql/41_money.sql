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
