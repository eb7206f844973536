-- Lookups by key, so a test file depends on no generated id.
CREATE FUNCTION pg_temp.acct(key text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT account_id FROM billing.account WHERE external_key = key $$;
CREATE FUNCTION pg_temp.price(code text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT p.price_id FROM billing.price p WHERE p.code = price.code $$;
-- Two tests: stmt fails with this SQLSTATE (and exactly this message, unless
-- it is NULL), and the query state (one value) reads the same after it.
CREATE FUNCTION pg_temp.refused_unchanged(stmt text, errcode text, message text, description text, state text)
	RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	before text;
	after text;
BEGIN
	EXECUTE state INTO before;
	RETURN NEXT throws_ok(stmt, errcode, message, description || ': ' || errcode);
	EXECUTE state INTO after;
	RETURN NEXT is(after, before, description || ': nothing written');
END $$;
