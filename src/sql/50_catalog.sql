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
