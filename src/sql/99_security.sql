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
