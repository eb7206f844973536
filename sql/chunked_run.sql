-- run_invoice_batch_chunked: a procedure that commits every chunk of accounts.
\i sql/include/session.psql
DROP EXTENSION billing CASCADE;
CREATE EXTENSION billing;

INSERT INTO product (code, name) VALUES ('plan', 'Plan');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, billing_timing, unit_amount)
VALUES (1, 'plan-monthly', 'USD', 'recurring', 'month', 'in_advance', 10);
INSERT INTO account (name, currency) SELECT 'Customer ' || i, 'USD' FROM generate_series(1, 7) AS i;
INSERT INTO subscription (account_id, price_id, start_date) SELECT account_id, 1, '2026-01-01' FROM account;

-- bad arguments: nothing is written
CALL run_invoice_batch_chunked('2026-02-01', 0);
SELECT count(*) AS batches_after_error FROM invoice_batch;

-- three chunks of at most 3 accounts, each committed
CALL run_invoice_batch_chunked('2026-02-01', 3);
SELECT batch_id, target_date, status, accounts, invoices, lines, total_amount, finished_at IS NOT NULL AS finished
FROM invoice_batch ORDER BY batch_id;
SELECT document_number, account_id, total FROM invoice ORDER BY document_number;
-- the same target again adds nothing
CALL run_invoice_batch_chunked('2026-02-01', 3);
SELECT batch_id, status, accounts, invoices, lines FROM invoice_batch ORDER BY batch_id;
SELECT count(*) AS invoices FROM invoice;
-- inside a transaction block the procedure cannot commit
BEGIN;
CALL run_invoice_batch_chunked('2026-03-01', 3);
ROLLBACK;
-- a row trigger of someone's on subscription: the engine writes the
-- watermarks itself and fires it for each row, and each chunk commits clean
-- (no warning of a pin or a descriptor left behind)
CREATE TABLE public.watermark_seen (subscription_id bigint, billed_through date, next_due_date date);
CREATE FUNCTION public.watermark_seen() RETURNS trigger LANGUAGE plpgsql
AS $$ BEGIN INSERT INTO public.watermark_seen VALUES (NEW.subscription_id, NEW.billed_through, NEW.next_due_date); RETURN NULL; END $$;
CREATE TRIGGER watermark_seen AFTER UPDATE ON subscription FOR EACH ROW EXECUTE FUNCTION public.watermark_seen();
CALL run_invoice_batch_chunked('2026-03-01', 3);
SELECT count(*) AS rows_seen, count(DISTINCT subscription_id) AS subscriptions, min(billed_through), max(next_due_date)
FROM public.watermark_seen;
DROP TRIGGER watermark_seen ON subscription;
DROP TABLE public.watermark_seen;
DROP FUNCTION public.watermark_seen();
SELECT * FROM check_integrity();
DROP EXTENSION billing CASCADE;
