-- pg_cron runs the nightly invoice run: schedule it, and let scripts/test.sh
-- wait for the job to succeed.  Runs in cron.database_name (billing_cron).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS billing CASCADE;
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE EXTENSION billing;
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'billing-nightly';
TRUNCATE cron.job_run_details;
INSERT INTO billing.account (name, currency) VALUES ('Cron customer', 'USD');
INSERT INTO billing.product (code, name) VALUES ('plan', 'Plan');
INSERT INTO billing.price (product_id, code, currency, charge_type, billing_interval, billing_timing, unit_amount)
SELECT product_id, 'plan-monthly', 'USD', 'recurring', 'month', 'in_advance', 10 FROM billing.product;
INSERT INTO billing.subscription (account_id, price_id, start_date)
SELECT a.account_id, p.price_id, CURRENT_DATE - 40 FROM billing.account a, billing.price p;
-- the README's schedule, plus an every-minute one so the test needn't wait for 02:00
SELECT cron.schedule('billing-nightly', '0 2 * * *', $$SELECT billing.run_invoice_batch()$$) > 0 AS scheduled_nightly;
SELECT cron.schedule('billing-test-now', '* * * * *', $$SELECT billing.run_invoice_batch()$$) > 0 AS scheduled_now;
