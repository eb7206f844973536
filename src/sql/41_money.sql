-- Money: rounding to a currency's minor unit, and exact splits.

CREATE FUNCTION billing.round_money(amount numeric, currency text) RETURNS numeric
	AS 'MODULE_PATHNAME', 'billing_round_money' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.round_money(numeric, text) IS
	'amount rounded half away from zero to the currency''s minor unit (reads billing.currency)';

CREATE FUNCTION billing.allocate(total numeric, weights numeric[], currency text) RETURNS numeric[]
	AS 'MODULE_PATHNAME', 'billing_allocate' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billing.allocate(numeric, numeric[], text) IS
	'Split total in proportion to non-negative weights by the largest-remainder method: parts truncated to the minor unit, left-over units to the largest remainders (ties: earlier part); parts sum exactly to total';
