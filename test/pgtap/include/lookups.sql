-- Lookups by key, so a test file depends on no generated id.
CREATE FUNCTION pg_temp.acct(key text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT account_id FROM billing.account WHERE external_key = key $$;
CREATE FUNCTION pg_temp.price(code text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT p.price_id FROM billing.price p WHERE p.code = price.code $$;
