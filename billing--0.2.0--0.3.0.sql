-- billing 0.2.0 -> 0.3.0.  Every change here is also in src/sql (which builds
-- billing--0.3.0.sql); scripts/test.sh (suite "upgrade") checks that a 0.2.0
-- database updated by this script has the same catalog as a fresh 0.3.0.

\echo Use "ALTER EXTENSION billing UPDATE TO '0.3.0'" to load this file. \quit

-- The pricing rule moves to C (src/pricing.c), shared with the engine.
CREATE OR REPLACE FUNCTION billing.pricing_amount(pricing_model text, unit_amount numeric, package_size numeric,
									   tiers jsonb, quantity numeric)
	RETURNS numeric
	AS 'MODULE_PATHNAME', 'billing_pricing_amount' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION billing.pricing_amount(text, numeric, numeric, jsonb, numeric) IS
	'Unrounded amount of a quantity for one full period under a pricing model (flat, per_unit, package, graduated, volume); 0 for quantity 0';

-- The engine reconciles each subscription in C (src/due_items.c) instead of a
-- dozen SQL steps; its helpers go with the SQL version.
CREATE OR REPLACE FUNCTION billing.due_items(target_date date, account_ids bigint[] DEFAULT NULL, full_history boolean DEFAULT false)
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
	'What a run with this target date would bill: lines (expected minus billed per subscription period) and each candidate subscription''s new watermarks; full_history ignores the watermarks (used by check_integrity). Writes nothing';
DROP FUNCTION billing.reconcile_point(billing.billing_period, date);
DROP TYPE billing.period_terms;
