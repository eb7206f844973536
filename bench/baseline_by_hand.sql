-- bench/baseline_by_hand.sql: the "by hand" baseline of bench/engine.sh.
--
--   psql -f bench/baseline_by_hand.sql DB            -- once, after the book is generated
--   SELECT bench_hand.reset();                       -- before each run (untimed)
--   SELECT * FROM bench_hand.run_invoices('2026-10-31');   -- the timed run
--
-- What: the invoice run a competent team would write without the engine: a
-- row-by-row PL/pgSQL loop.  For each account with a subscription that may
-- be due (one scan), one invoice (INSERT ... RETURNING, created with its
-- first line); for each of its subscriptions (an index lookup), a loop over
-- the periods due from its billed-through date: cycle day clamped to short
-- months by date arithmetic with intervals, leading stubs and trailing stubs
-- (end_date) prorated by days against the regular period around them, one
-- INSERT per line with amount = round(unit amount x quantity x days /
-- period days, 2) (usage: the sum of the period's usage records by an index
-- lookup on (account, subscription) x the unit amount, days in the
-- account's time zone), tax round(amount x region rate, 2); then one
-- UPDATE of the subscription's billed-through date, and at the end of the
-- account one UPDATE of the invoice's totals.
--
-- Why: the figure "engine / by hand" says what running the whole batch as
-- a few set-based statements buys over the obvious procedural code on the
-- same data, in the same database.
--
-- It writes only its own tables:
--   bench_hand.invoice, bench_hand.invoice_line   the columns, primary keys,
--       indexes, defaults and CHECK constraints of billing.invoice /
--       billing.invoice_line (CREATE TABLE ... LIKE), their own id sequences,
--       no triggers, plus the foreign key line -> invoice;
--   bench_hand.subscription_state(subscription_id PK, billed_through)  its
--       own watermark, reset before each run from bench_hand.initial_state:
--       the end of the last period billed on a non-void document, per
--       subscription (from billing.invoice_line; NULL: nothing billed yet).
-- It reads billing.account, billing.subscription, billing.price,
-- billing.product, billing.tax_rate and billing.usage_record (columns of
-- SPEC.md §3), and fills invoice_line.line_number and cycle_period, which
-- the current schema requires on recurring and usage lines.
--
-- What it leaves out (so its counts are close to the engine's, not equal,
-- and its amounts need not match to the cent): mid-period changes (no
-- proration lines: it bills every period at the subscription's current
-- quantity), a change's effect on a period billed before, credit notes,
-- account credit, document numbering under a lock, revenue schedules.
-- Monthly/yearly cycles, in advance and in arrears, per-unit prices only
-- (what bench/gen_book.sql generates).

\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench_hand CASCADE;
CREATE SCHEMA bench_hand;

CREATE TABLE bench_hand.invoice (LIKE billing.invoice INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench_hand.invoice_line (LIKE billing.invoice_line INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
-- own sequences (LIKE copied the defaults that draw from billing's)
CREATE SEQUENCE bench_hand.invoice_id_seq;
CREATE SEQUENCE bench_hand.line_id_seq;
ALTER TABLE bench_hand.invoice ALTER COLUMN invoice_id SET DEFAULT nextval('bench_hand.invoice_id_seq');
ALTER TABLE bench_hand.invoice_line ALTER COLUMN line_id SET DEFAULT nextval('bench_hand.line_id_seq');
ALTER TABLE bench_hand.invoice_line
	ADD FOREIGN KEY (account_id, invoice_id) REFERENCES bench_hand.invoice (account_id, invoice_id);

CREATE TABLE bench_hand.subscription_state (
	subscription_id	bigint PRIMARY KEY,
	billed_through	date
);

-- Where the book stands before the measured run: what non-void documents
-- already hold (month_end: the 2026-09-30 run; catch_up: nothing).
CREATE TABLE bench_hand.initial_state AS
SELECT s.subscription_id, b.billed_through
FROM billing.subscription s
LEFT JOIN (SELECT l.account_id, l.subscription_id, max(billing.period_end(l.service_period)) AS billed_through
		   FROM billing.invoice_line l
		   JOIN billing.invoice i ON i.account_id = l.account_id AND i.invoice_id = l.invoice_id
		   WHERE i.status <> 'void' AND l.subscription_id IS NOT NULL AND l.service_period IS NOT NULL
		   GROUP BY l.account_id, l.subscription_id) b
  ON b.account_id = s.account_id AND b.subscription_id = s.subscription_id;
ALTER TABLE bench_hand.initial_state ADD PRIMARY KEY (subscription_id);

-- Empty tables and the initial watermarks: before each run.
CREATE FUNCTION bench_hand.reset() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	TRUNCATE bench_hand.invoice_line, bench_hand.invoice, bench_hand.subscription_state;
	INSERT INTO bench_hand.subscription_state SELECT * FROM bench_hand.initial_state ORDER BY subscription_id;
	PERFORM setval('bench_hand.invoice_id_seq', 1, false), setval('bench_hand.line_id_seq', 1, false);
	ANALYZE bench_hand.subscription_state;
END $$;

-- The cycle date month_offset months after anchor_month (a first of month),
-- on cycle_day clamped to that month's length.
CREATE FUNCTION bench_hand.cycle_date(anchor_month date, month_offset int, cycle_day int) RETURNS date
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	first_day date := (anchor_month + make_interval(months => month_offset))::date;
BEGIN
	RETURN first_day + least(cycle_day, (first_day + interval '1 month')::date - first_day) - 1;
END $$;

CREATE FUNCTION bench_hand.run_invoices(target_date date, OUT invoices int, OUT lines bigint)
LANGUAGE plpgsql AS $$
DECLARE
	acct record;
	sub record;
	doc_id bigint;
	last_number bigint := 0;
	line_number int;
	doc_subtotal numeric;
	doc_tax numeric;
	tax_rate numeric;
	months int;
	anchor_month date;
	k int;
	whole_start date;
	whole_end date;
	period_start date;
	period_end date;
	billed_to date;
	used numeric;
	line_amount numeric;
	line_tax numeric;
BEGIN
	invoices := 0;
	lines := 0;
	FOR acct IN
		SELECT a.account_id, a.currency, a.payment_terms_days, a.tax_region, a.tax_exempt, a.bill_cycle_day, a.timezone
		FROM billing.account a
		WHERE NOT a.billing_hold
		  AND EXISTS (SELECT 1 FROM billing.subscription s
					  JOIN bench_hand.subscription_state st ON st.subscription_id = s.subscription_id
					  WHERE s.account_id = a.account_id AND NOT s.billing_hold
						AND coalesce(st.billed_through, s.start_date) <= target_date
						AND (s.end_date IS NULL OR coalesce(st.billed_through, s.start_date) < s.end_date))
		ORDER BY a.account_id
	LOOP
		doc_id := NULL;
		line_number := 0;
		doc_subtotal := 0;
		doc_tax := 0;
		-- the region's general rate on the document date
		SELECT coalesce(sum(t.rate), 0) INTO tax_rate
		FROM billing.tax_rate t
		WHERE t.region = acct.tax_region AND t.tax_code IS NULL
		  AND t.valid_from <= target_date AND (t.valid_to IS NULL OR t.valid_to > target_date);
		IF acct.tax_exempt THEN
			tax_rate := 0;
		END IF;

		FOR sub IN
			SELECT s.subscription_id, s.price_id, s.quantity, coalesce(s.unit_amount, p.unit_amount) AS unit_amount,
				   s.start_date, s.end_date,
				   coalesce(s.bill_cycle_day, acct.bill_cycle_day, extract(day FROM s.start_date)::int) AS cycle_day,
				   p.charge_type, p.billing_interval, p.interval_count, p.billing_timing, pr.name AS product_name,
				   st.billed_through
			FROM billing.subscription s
			JOIN bench_hand.subscription_state st ON st.subscription_id = s.subscription_id
			JOIN billing.price p ON p.price_id = s.price_id
			JOIN billing.product pr ON pr.product_id = p.product_id
			WHERE s.account_id = acct.account_id AND s.start_date <= target_date AND NOT s.billing_hold
			ORDER BY s.subscription_id
		LOOP
			months := CASE sub.billing_interval WHEN 'year' THEN 12 ELSE 1 END * sub.interval_count;
			anchor_month := date_trunc('month', sub.start_date)::date;
			billed_to := coalesce(sub.billed_through, sub.start_date);
			LOOP
				EXIT WHEN billed_to >= sub.end_date;
				-- the regular period around billed_to: cycle dates k and k + 1
				k := ((extract(year FROM billed_to) - extract(year FROM anchor_month)) * 12
					  + extract(month FROM billed_to) - extract(month FROM anchor_month))::int / months;
				whole_start := bench_hand.cycle_date(anchor_month, k * months, sub.cycle_day);
				IF whole_start > billed_to THEN
					k := k - 1;		-- a leading stub: the period ending on the first cycle date
					whole_start := bench_hand.cycle_date(anchor_month, k * months, sub.cycle_day);
				END IF;
				whole_end := bench_hand.cycle_date(anchor_month, (k + 1) * months, sub.cycle_day);
				period_start := billed_to;
				period_end := least(whole_end, sub.end_date);	-- least() ignores a NULL end
				IF sub.billing_timing = 'in_advance' THEN
					EXIT WHEN period_start > target_date;
				ELSE
					EXIT WHEN period_end > target_date;
				END IF;

				IF sub.charge_type = 'usage' THEN
					-- the period's days in the account's time zone
					SELECT coalesce(sum(u.quantity), 0) INTO used
					FROM billing.usage_record u
					WHERE u.account_id = acct.account_id AND u.subscription_id = sub.subscription_id
					  AND u.occurred_at >= period_start::timestamp AT TIME ZONE acct.timezone
					  AND u.occurred_at < period_end::timestamp AT TIME ZONE acct.timezone;
					line_amount := round(used * sub.unit_amount, 2);
				ELSE
					used := sub.quantity;
					line_amount := round(sub.unit_amount * sub.quantity * (period_end - period_start)
										 / (whole_end - whole_start), 2);
				END IF;

				IF line_amount <> 0 THEN
					IF doc_id IS NULL THEN
						last_number := last_number + 1;
						INSERT INTO bench_hand.invoice AS i
							(account_id, document_type, document_number, status, invoice_date, due_date, currency, posted_at)
						VALUES (acct.account_id, 'invoice', 'INV-' || lpad(last_number::text, 6, '0'), 'posted',
								target_date, target_date + acct.payment_terms_days, acct.currency, now())
						RETURNING i.invoice_id INTO doc_id;
						invoices := invoices + 1;
					END IF;
					line_number := line_number + 1;
					line_tax := round(line_amount * tax_rate, 2);
					INSERT INTO bench_hand.invoice_line
						(account_id, invoice_id, line_number, subscription_id, price_id, kind, service_period, cycle_period,
						 quantity, unit_amount, amount, tax_amount, description)
					VALUES (acct.account_id, doc_id, line_number, sub.subscription_id, sub.price_id,
							CASE sub.charge_type WHEN 'usage' THEN 'usage' ELSE 'recurring' END,
							billing.billing_period(period_start, period_end), billing.billing_period(whole_start, whole_end),
							used, sub.unit_amount, line_amount, line_tax,
							sub.product_name || ' ' || period_start || ' - ' || period_end);
					doc_subtotal := doc_subtotal + line_amount;
					doc_tax := doc_tax + line_tax;
					lines := lines + 1;
				END IF;
				billed_to := period_end;
			END LOOP;

			IF billed_to IS DISTINCT FROM sub.billed_through THEN
				UPDATE bench_hand.subscription_state st SET billed_through = billed_to
				WHERE st.subscription_id = sub.subscription_id;
			END IF;
		END LOOP;

		-- every line is a charge here, so the document is always an invoice
		IF doc_id IS NOT NULL THEN
			UPDATE bench_hand.invoice i
			SET subtotal = doc_subtotal, tax_total = doc_tax, total = doc_subtotal + doc_tax
			WHERE i.account_id = acct.account_id AND i.invoice_id = doc_id;
		END IF;
	END LOOP;
END $$;
