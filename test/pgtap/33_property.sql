-- Property test of receivables and revenue (SPEC §5, §6, principle 4): a
-- reproducible random history (setseed) of 50 accounts over 15 months - runs
-- of subscriptions with changes and cancellations, debit notes, payments
-- applied automatically and by hand, unapplies, credit notes, write-offs,
-- refunds, voids and dunning fees, every action dated on the day it happens -
-- then, for 50 random as-of dates, the aging and balance invariants, and for
-- every posted line its revenue schedule.  Last, back-dated corrections: the
-- same as-of invariants must hold whatever order dated operations are made in.
BEGIN;
\ir include/session.sql

SELECT plan(26);

-- Errors the generator met: every action is valid, so there must be none.
CREATE TEMP TABLE generator_error (day date, action text, sqlstate text, message text) ON COMMIT DROP;
CREATE TEMP TABLE action_count (action text PRIMARY KEY, n int NOT NULL DEFAULT 0) ON COMMIT DROP;
CREATE FUNCTION pg_temp.counted(a text) RETURNS void LANGUAGE sql
AS $$ INSERT INTO action_count VALUES (a, 1) ON CONFLICT (action) DO UPDATE SET n = action_count.n + 1 $$;
-- a random amount (double precision) as money of the currency, at least one minor unit
CREATE FUNCTION pg_temp.money(amount double precision, currency text) RETURNS numeric LANGUAGE sql
AS $$ SELECT greatest(billing.round_money(amount::numeric, currency), CASE currency WHEN 'JPY' THEN 1 ELSE 0.01 END) $$;

------------------------------------------------------------------------------
-- Catalog, accounts, subscriptions, dunning levels
------------------------------------------------------------------------------
DO $$ BEGIN PERFORM setseed(0.20240229); END $$;
INSERT INTO product (code, name) VALUES ('plan', 'Plan'), ('setup', 'Setup');
INSERT INTO price (product_id, code, currency, charge_type, billing_interval, interval_count, billing_timing, pricing_model,
				   unit_amount, revenue_rule)
SELECT pr.product_id, v.code, v.currency, 'recurring', v.unit, v.cnt, v.timing, 'per_unit', v.amount, v.rule
FROM product pr,
	 (VALUES ('usd_m', 'USD', 'month', 1, 'in_advance', 19.99, 'ratable'),
			 ('usd_y', 'USD', 'year', 1, 'in_advance', 240.00, 'ratable'),
			 ('usd_q', 'USD', 'month', 3, 'in_arrears', 75.50, 'ratable'),
			 ('usd_w', 'USD', 'week', 2, 'in_advance', 12.34, 'ratable'),
			 ('usd_oi', 'USD', 'month', 1, 'in_advance', 9.99, 'on_invoice'),
			 ('jpy_m', 'JPY', 'month', 1, 'in_advance', 1500, 'ratable'),
			 ('jpy_y', 'JPY', 'year', 1, 'in_advance', 18000, 'ratable')) v(code, currency, unit, cnt, timing, amount, rule)
WHERE pr.code = 'plan';
INSERT INTO price (product_id, code, currency, charge_type, pricing_model, unit_amount)
SELECT product_id, v.code, v.currency, 'one_time', 'flat', v.amount FROM product, (VALUES ('usd_setup', 'USD', 49.00), ('jpy_setup', 'JPY', 5000)) v(code, currency, amount)
WHERE product.code = 'setup';
INSERT INTO account (external_key, name, currency, payment_terms_days, bill_cycle_day)
SELECT 'prop' || g, 'Property ' || g, CASE WHEN g % 10 = 0 THEN 'JPY' ELSE 'USD' END,
	   (ARRAY[0, 15, 30, 45, 60])[1 + floor(random() * 5)::int],
	   CASE WHEN random() < 0.5 THEN NULL ELSE 1 + floor(random() * 28)::int END
FROM generate_series(1, 50) g;
INSERT INTO subscription (account_id, price_id, quantity, start_date, end_date)
SELECT a.account_id, p.price_id, CASE WHEN p.charge_type = 'one_time' THEN 1 ELSE 1 + floor(random() * 3) END,
	   s.start_date, CASE WHEN random() < 0.2 THEN s.start_date + 60 + floor(random() * 300)::int END
FROM account a
CROSS JOIN LATERAL generate_series(1, 1 + floor(random() * 2)::int + (a.account_id * 0)::int) k
CROSS JOIN LATERAL (SELECT date '2023-01-01' + floor(random() * 300)::int + (k * 0) AS start_date) s
CROSS JOIN LATERAL (SELECT x.price_id, x.charge_type FROM price x WHERE x.currency = a.currency
					ORDER BY random() + (k * 0) + (a.account_id * 0) LIMIT 1) p;
INSERT INTO dunning_level (level, days_overdue, fee_amount, hold_billing) VALUES (1, 15, 5.00, false), (2, 45, 0, false);

------------------------------------------------------------------------------
-- The history: every day from 2023-01-01 to 2024-03-31, in date order
------------------------------------------------------------------------------
DO $$
DECLARE
	d date;
	r record;
	n int;
	amt numeric;
BEGIN
	FOR d IN SELECT g::date FROM generate_series(date '2023-01-01', date '2024-03-31', interval '1 day') g LOOP
		-- invoice runs on the 1st and the 15th
		IF extract(day FROM d) IN (1, 15) THEN
			BEGIN
				PERFORM billing.run_invoice_batch(target_date => d);
				PERFORM pg_temp.counted('run');
			EXCEPTION WHEN OTHERS THEN
				INSERT INTO generator_error VALUES (d, 'run_invoice_batch', SQLSTATE, SQLERRM);
			END;
		END IF;
		-- debit notes
		FOR n IN 1 .. floor(random() * 4)::int LOOP
			SELECT * INTO r FROM billing.account ORDER BY random() LIMIT 1;
			BEGIN
				PERFORM billing.issue_debit_note(r.account_id,
					pg_temp.money(CASE r.currency WHEN 'JPY' THEN 100 ELSE 1 END * random() * 500, r.currency), 'random', d);
				PERFORM pg_temp.counted('debit_note');
			EXCEPTION WHEN OTHERS THEN
				INSERT INTO generator_error VALUES (d, 'issue_debit_note', SQLSTATE, SQLERRM);
			END;
		END LOOP;
		-- payments, mostly applied automatically
		FOR n IN 1 .. floor(random() * 3)::int LOOP
			SELECT * INTO r FROM billing.account ORDER BY random() LIMIT 1;
			BEGIN
				PERFORM billing.record_payment(r.account_id,
					pg_temp.money(CASE r.currency WHEN 'JPY' THEN 100 ELSE 1 END * random() * 800, r.currency), d,
					auto_apply => random() < 0.7);
				PERFORM pg_temp.counted('payment');
			EXCEPTION WHEN OTHERS THEN
				INSERT INTO generator_error VALUES (d, 'record_payment', SQLSTATE, SQLERRM);
			END;
		END LOOP;
		-- a payment applied by hand: to one open document (part or all) or oldest due first
		IF random() < 0.4 THEN
			SELECT p.payment_id, p.account_id, billing.payment_unapplied(p, 'infinity') AS free INTO r
			FROM billing.payment p WHERE billing.payment_unapplied(p, 'infinity') > 0 ORDER BY random() LIMIT 1;
			IF FOUND THEN
				BEGIN
					IF random() < 0.5 THEN
						PERFORM billing.apply_payment(r.payment_id, allocated_on => d);
					ELSE
						SELECT r.payment_id, r.free, i.invoice_id, i.currency, billing.document_open_amount(i, 'infinity') AS open
						INTO r
						FROM billing.invoice i
						WHERE i.account_id = r.account_id AND i.status = 'posted' AND i.document_type <> 'credit_note'
						  AND billing.document_open_amount(i, 'infinity') > 0
						ORDER BY random() LIMIT 1;
						IF FOUND THEN
							PERFORM billing.apply_payment(r.payment_id, r.invoice_id,
								least(r.free, r.open, pg_temp.money(random() * r.open, r.currency)), d);
						END IF;
					END IF;
					PERFORM pg_temp.counted('apply_payment');
				EXCEPTION WHEN OTHERS THEN
					INSERT INTO generator_error VALUES (d, 'apply_payment', SQLSTATE, SQLERRM);
				END;
			END IF;
		END IF;
		-- an allocation unapplied
		IF random() < 0.3 THEN
			SELECT a.allocation_id INTO r FROM billing.allocation a
			WHERE a.reverses_allocation_id IS NULL
			  AND NOT EXISTS (SELECT 1 FROM billing.allocation x WHERE x.account_id = a.account_id AND x.reverses_allocation_id = a.allocation_id)
			ORDER BY random() LIMIT 1;
			IF FOUND THEN
				BEGIN
					PERFORM billing.unapply(r.allocation_id, d);
					PERFORM pg_temp.counted('unapply');
				EXCEPTION WHEN OTHERS THEN
					INSERT INTO generator_error VALUES (d, 'unapply', SQLSTATE, SQLERRM);
				END;
			END IF;
		END IF;
		-- a credit note (applied or kept as account credit) or a write-off
		IF random() < 0.25 THEN
			-- creditable: what earlier credit notes correcting it left of its total
			SELECT i.invoice_id, i.total, i.currency, billing.document_open_amount(i, 'infinity') AS open,
				   i.total + coalesce((SELECT sum(c.total) FROM billing.invoice c
									   WHERE c.account_id = i.account_id AND c.corrects_invoice_id = i.invoice_id
										 AND c.status = 'posted'), 0) AS creditable
			INTO r
			FROM billing.invoice i WHERE i.status = 'posted' AND i.document_type <> 'credit_note'
			  AND billing.document_open_amount(i, 'infinity') > 0
			ORDER BY random() LIMIT 1;
			IF FOUND AND r.creditable > 0 THEN
				BEGIN
					IF random() < 0.8 OR r.open > r.creditable THEN
						PERFORM billing.issue_credit_note(r.invoice_id, least(r.creditable, pg_temp.money(random() * r.total, r.currency)),
														  'random credit', d, apply => random() < 0.6);
						PERFORM pg_temp.counted('credit_note');
					ELSE
						PERFORM billing.write_off(r.invoice_id, least(r.open, r.creditable, pg_temp.money(random() * r.open * 2, r.currency)),
												  'random write-off', d);
						PERFORM pg_temp.counted('write_off');
					END IF;
				EXCEPTION WHEN OTHERS THEN
					INSERT INTO generator_error VALUES (d, 'credit_note', SQLSTATE, SQLERRM);
				END;
			END IF;
		END IF;
		-- a refund of (part of) an unapplied payment
		IF random() < 0.1 THEN
			SELECT p.payment_id, p.currency, billing.payment_unapplied(p, 'infinity') AS free INTO r
			FROM billing.payment p WHERE billing.payment_unapplied(p, 'infinity') > 0 ORDER BY random() LIMIT 1;
			IF FOUND THEN
				BEGIN
					PERFORM billing.refund(payment_id => r.payment_id,
										   amount => least(r.free, pg_temp.money(random() * r.free * 1.5, r.currency)), refunded_on => d);
					PERFORM pg_temp.counted('refund');
				EXCEPTION WHEN OTHERS THEN
					INSERT INTO generator_error VALUES (d, 'refund', SQLSTATE, SQLERRM);
				END;
			END IF;
		END IF;
		-- a document without live allocations voided
		IF random() < 0.08 THEN
			SELECT i.invoice_id INTO r FROM billing.invoice i
			WHERE i.status = 'posted' AND i.document_type <> 'credit_note'
			  AND coalesce((SELECT sum(a.amount) FROM billing.allocation a
							WHERE a.account_id = i.account_id AND a.invoice_id = i.invoice_id), 0) = 0
			ORDER BY random() LIMIT 1;
			IF FOUND THEN
				BEGIN
					PERFORM billing.void_invoice(r.invoice_id, 'random void', d);
					PERFORM pg_temp.counted('void');
				EXCEPTION WHEN OTHERS THEN
					INSERT INTO generator_error VALUES (d, 'void_invoice', SQLSTATE, SQLERRM);
				END;
			END IF;
		END IF;
		-- a subscription changed or cancelled today
		IF random() < 0.08 THEN
			SELECT s.subscription_id INTO r FROM billing.subscription s JOIN billing.price p USING (price_id)
			WHERE p.charge_type = 'recurring' AND s.start_date <= d AND (s.end_date IS NULL OR s.end_date > d)
			ORDER BY random() LIMIT 1;
			IF FOUND THEN
				BEGIN
					IF random() < 0.7 THEN
						PERFORM billing.change_subscription(r.subscription_id, d, quantity => (1 + floor(random() * 5))::numeric);
						PERFORM pg_temp.counted('change');
					ELSE
						PERFORM billing.cancel_subscription(r.subscription_id, d);
						PERFORM pg_temp.counted('cancel');
					END IF;
				EXCEPTION WHEN OTHERS THEN
					INSERT INTO generator_error VALUES (d, 'change_subscription', SQLSTATE, SQLERRM);
				END;
			END IF;
		END IF;
		-- dunning on Mondays
		IF extract(isodow FROM d) = 1 THEN
			BEGIN
				PERFORM billing.run_dunning(d);
				PERFORM pg_temp.counted('dunning');
			EXCEPTION WHEN OTHERS THEN
				INSERT INTO generator_error VALUES (d, 'run_dunning', SQLSTATE, SQLERRM);
			END;
		END IF;
	END LOOP;
END $$;

SELECT is_empty($$SELECT * FROM generator_error ORDER BY day$$, 'every generated action succeeded');
SELECT cmp_ok((SELECT count(*) FROM invoice WHERE status <> 'draft'), '>=', 1000::bigint, 'at least 1,000 documents');
SELECT is((SELECT count(DISTINCT account_id) FROM invoice), 50::bigint, 'across 50 accounts');
SELECT is_empty(
	$$SELECT x FROM unnest(ARRAY['run', 'debit_note', 'payment', 'apply_payment', 'unapply', 'credit_note', 'write_off',
								 'refund', 'void', 'change', 'cancel', 'dunning']) x
	  WHERE NOT EXISTS (SELECT 1 FROM action_count c WHERE c.action = x AND c.n > 0)$$,
	'the history exercised every kind of action');
SELECT ok((SELECT count(*) FROM invoice_line WHERE kind = 'proration' AND amount < 0) > 0
		  AND (SELECT count(*) FROM invoice_line WHERE kind = 'fee') > 0
		  AND (SELECT count(*) FROM invoice_line WHERE kind = 'recurring' AND service_period IS NOT NULL) > 0,
	'with proration credits, dunning fees and recurring lines');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the random history');

------------------------------------------------------------------------------
-- 50 random as-of dates (and the edges of the history)
------------------------------------------------------------------------------
CREATE TEMP TABLE as_of_date ON COMMIT DROP AS
SELECT DISTINCT date '2022-12-31' + floor(random() * 500)::int AS d FROM generate_series(1, 50)
UNION SELECT unnest(ARRAY[date '2022-12-31', '2023-01-01', '2024-03-31', '2024-04-01', '2030-01-01']);
SELECT cmp_ok((SELECT count(*) FROM as_of_date), '>=', 50::bigint, 'at least 50 as-of dates');
CREATE TEMP TABLE balance_at ON COMMIT DROP AS
SELECT a.account_id, a.currency, t.d, billing.account_balance(a.account_id, t.d) AS balance
FROM account a CROSS JOIN as_of_date t;
CREATE TEMP TABLE aging_at ON COMMIT DROP AS
SELECT t.d, g.* FROM as_of_date t CROSS JOIN LATERAL billing.ar_aging(t.d) g;
CREATE TEMP TABLE detail_at ON COMMIT DROP AS
SELECT t.d, g.* FROM as_of_date t CROSS JOIN LATERAL billing.ar_aging_detail(t.d) g;

SELECT is_empty(
	$$SELECT b.account_id, b.d, b.balance, g.amount FROM balance_at b
	  LEFT JOIN (SELECT account_id, d, sum(amount) AS amount FROM aging_at GROUP BY 1, 2) g USING (account_id, d)
	  WHERE coalesce(g.amount, 0) <> b.balance$$,
	'for every account and as-of date: the aging buckets sum to account_balance');
SELECT is_empty(
	$$SELECT b.account_id, b.d, b.balance, x.balance FROM balance_at b
	  JOIN LATERAL (
		SELECT coalesce((SELECT sum(i.total) FROM billing.invoice i
						 WHERE i.account_id = b.account_id AND i.status <> 'draft' AND i.invoice_date <= b.d
						   AND (i.voided_on IS NULL OR i.voided_on > b.d)), 0)
			 - coalesce((SELECT sum(p.amount) FROM billing.payment p WHERE p.account_id = b.account_id AND p.received_on <= b.d), 0)
			 + coalesce((SELECT sum(r.amount) FROM billing.refund r WHERE r.account_id = b.account_id AND r.refunded_on <= b.d), 0)
			   AS balance) x ON true
	  WHERE x.balance <> b.balance$$,
	'account_balance = documents not void - payments + refunds, as of every date (computed from the raw rows)');
SELECT is_empty(
	$$SELECT b.account_id, b.d, b.balance, g.amount FROM balance_at b
	  LEFT JOIN (SELECT t.d, x.account_id, sum(x.amount) AS amount
				 FROM as_of_date t CROSS JOIN LATERAL billing.ar_aging(t.d, '{15,45}', 'invoice_date') x GROUP BY 1, 2) g
		USING (account_id, d)
	  WHERE coalesce(g.amount, 0) <> b.balance$$,
	'with bounds {15,45} and the invoice-date basis too');
SELECT is_empty(
	$$SELECT * FROM aging_at g
	  FULL JOIN (SELECT d, account_id, currency, bucket, sum(open_amount) AS amount, count(*)::int AS documents
				 FROM detail_at GROUP BY 1, 2, 3, 4) x USING (d, account_id, currency, bucket)
	  WHERE g.amount IS DISTINCT FROM x.amount OR g.documents IS DISTINCT FROM x.documents$$,
	'ar_aging is ar_aging_detail summed and counted, on every date');
SELECT is_empty(
	$$SELECT * FROM aging_at g WHERE g.bucket_order <> CASE g.bucket WHEN 'current' THEN 0 WHEN '1-30' THEN 1 WHEN '31-60' THEN 2
																   WHEN '61-90' THEN 3 WHEN '91+' THEN 4 WHEN 'unapplied' THEN 5 END
		 OR g.amount = 0 OR g.documents < 1$$,
	'buckets and their order are the SPEC''s; no empty bucket');
SELECT is_empty(
	$$SELECT * FROM detail_at x
	  WHERE (x.document_type IN ('invoice', 'debit_note')
			 AND (x.open_amount <= 0 OR x.bucket = 'unapplied' OR x.days_overdue IS DISTINCT FROM x.d - x.due_date))
		 OR (x.document_type IN ('credit_note', 'payment') AND (x.open_amount >= 0 OR x.bucket <> 'unapplied'
																OR x.days_overdue IS NOT NULL))$$,
	'detail rows: invoices and debit notes positive and aged from their due date; credit notes and payments negative in unapplied');
SELECT is_empty(
	$$SELECT * FROM (SELECT t.d, i.invoice_id, i.document_type, i.total, billing.document_open_amount(i, t.d) AS open
					 FROM as_of_date t JOIN invoice i ON i.invoice_date <= t.d AND i.status <> 'draft') x
	  WHERE CASE WHEN x.document_type = 'credit_note' THEN x.open NOT BETWEEN x.total AND 0
				 ELSE x.open NOT BETWEEN 0 AND x.total END$$,
	'on every date every document''s open amount lies between 0 and its total');
SELECT is_empty(
	$$SELECT * FROM (SELECT t.d, p.payment_id, p.amount, billing.payment_unapplied(p, t.d) AS unapplied
					 FROM as_of_date t JOIN payment p ON p.received_on <= t.d) x
	  WHERE x.unapplied NOT BETWEEN 0 AND x.amount$$,
	'on every date every payment''s unapplied part lies between 0 and its amount');
SELECT is_empty(
	$$SELECT t.d, x.invoice_id FROM detail_at x JOIN as_of_date t USING (d)
	  WHERE x.invoice_id IS NOT NULL AND x.open_amount <> billing.invoice_balance(x.invoice_id, x.d)$$,
	'detail open amounts are invoice_balance');
SELECT is_empty($$SELECT * FROM aging_at WHERE d = '2022-12-31'$$, 'nothing before the history');
SELECT is_empty(
	$$SELECT * FROM ar_aging_report r
	  FULL JOIN (SELECT account_id, currency, sum(amount) AS total FROM ar_aging(CURRENT_DATE) GROUP BY 1, 2) g USING (account_id, currency)
	  WHERE r.total IS DISTINCT FROM g.total$$,
	'ar_aging_report totals are today''s aging');

------------------------------------------------------------------------------
-- Revenue of every posted line
------------------------------------------------------------------------------
SELECT is_empty(
	$$SELECT l.line_id, l.amount, sum(s.amount) FROM invoice_line l JOIN invoice i USING (account_id, invoice_id)
	  LEFT JOIN revenue_schedule s USING (account_id, line_id)
	  WHERE i.status <> 'draft' GROUP BY l.line_id, l.amount HAVING sum(s.amount) IS DISTINCT FROM l.amount$$,
	'every posted line''s revenue schedule sums exactly to its amount');
-- the schedule recomputed independently: months of the service period, each
-- round(amount x days in month / days), the last month the remainder
SELECT is_empty(
	$$WITH expected AS (
		SELECT l.account_id, l.line_id, m.period_month,
			   CASE WHEN m.period_month = max(m.period_month) OVER w
					THEN l.amount - sum(round(l.amount * m.days / billing.period_days(l.service_period), c.minor_units)) OVER w
						 + round(l.amount * m.days / billing.period_days(l.service_period), c.minor_units)
					ELSE round(l.amount * m.days / billing.period_days(l.service_period), c.minor_units) END AS amount
		FROM invoice_line l
		JOIN invoice i USING (account_id, invoice_id)
		JOIN currency c ON c.code = i.currency
		LEFT JOIN price p ON p.price_id = l.price_id
		CROSS JOIN LATERAL (
			SELECT mm::date AS period_month,
				   least(billing.period_end(l.service_period), (mm + interval '1 month')::date)
				   - greatest(billing.period_start(l.service_period), mm::date) AS days
			FROM generate_series(date_trunc('month', billing.period_start(l.service_period)),
								 billing.period_end(l.service_period) - 1, interval '1 month') mm) m
		WHERE i.status <> 'draft' AND l.service_period IS NOT NULL AND coalesce(p.revenue_rule, 'ratable') = 'ratable'
		WINDOW w AS (PARTITION BY l.line_id)
		UNION ALL
		SELECT l.account_id, l.line_id, date_trunc('month', i.invoice_date)::date, l.amount
		FROM invoice_line l JOIN invoice i USING (account_id, invoice_id) LEFT JOIN price p ON p.price_id = l.price_id
		WHERE i.status <> 'draft' AND (l.service_period IS NULL OR p.revenue_rule = 'on_invoice'))
	  SELECT * FROM expected e FULL JOIN revenue_schedule s USING (account_id, line_id, period_month)
	  WHERE e.amount IS DISTINCT FROM s.amount$$,
	'every schedule row is the daily split by calendar month (last month the remainder), or the document month');
SELECT is_empty($$SELECT * FROM deferred_revenue('2030-01-01')$$, 'by 2030 everything posted is recognized');
SELECT is_empty(
	$$WITH expected AS (
		SELECT t.d, i.account_id, i.currency,
			   sum(CASE WHEN s.period_month > t.d THEN s.amount
						WHEN s.period_month = date_trunc('month', t.d) AND l.service_period IS NOT NULL
							 AND coalesce(p.revenue_rule, 'ratable') = 'ratable'
						THEN s.amount - round(s.amount
								* greatest(0, least(billing.period_end(l.service_period), t.d + 1)
											  - greatest(billing.period_start(l.service_period), s.period_month))
								/ (least(billing.period_end(l.service_period), (s.period_month + interval '1 month')::date)
								   - greatest(billing.period_start(l.service_period), s.period_month)), c.minor_units)
						ELSE 0 END) AS amount
		FROM as_of_date t
		JOIN invoice i ON i.status <> 'draft' AND i.invoice_date <= t.d AND (i.voided_on IS NULL OR i.voided_on > t.d)
		JOIN currency c ON c.code = i.currency
		JOIN invoice_line l USING (account_id, invoice_id)
		JOIN revenue_schedule s USING (account_id, line_id)
		LEFT JOIN price p ON p.price_id = l.price_id
		GROUP BY 1, 2, 3),
	  actual AS (SELECT t.d, x.* FROM as_of_date t CROSS JOIN LATERAL deferred_revenue(t.d) x)
	  SELECT * FROM expected e FULL JOIN actual a USING (d, account_id, currency)
	  WHERE coalesce(e.amount, 0) <> coalesce(a.amount, 0)$$,
	'deferred_revenue = later months + the unelapsed part of the as-of month, for every account and date');
SELECT is_empty($$SELECT * FROM billing.check_integrity()$$, 'integrity after the property checks');

------------------------------------------------------------------------------
-- Back-dated corrections: dated operations made out of date order must keep
-- every as-of balance sound (SPEC principle 4, §5 "never more than the
-- payment's unapplied amount nor the document's open amount").  Each step may
-- be refused; whatever is accepted must keep the invariants on every day.
------------------------------------------------------------------------------
INSERT INTO account (external_key, name, currency) VALUES
	('bd_apply', 'Back-dated apply', 'USD'), ('bd_refund', 'Back-dated refund', 'USD'), ('bd_void', 'Void before unapply', 'USD');
CREATE TEMP TABLE backdated_step (account text, step text, outcome text) ON COMMIT DROP;
CREATE FUNCTION pg_temp.step(account text, step text, q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		EXECUTE q;
		INSERT INTO backdated_step VALUES (account, step, 'ok');
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO backdated_step VALUES (account, step, SQLSTATE);
	END;
END $$;
CREATE FUNCTION pg_temp.acct(key text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT account_id FROM billing.account WHERE external_key = key $$;
DO $$
DECLARE
	a bigint;
BEGIN
	-- payment 100 on 03-01 pays A; on 03-20 it is unapplied from A and applied to B back-dated to 03-05
	a := pg_temp.acct('bd_apply');
	PERFORM billing.issue_debit_note(a, 100, 'A', '2024-03-01');
	PERFORM billing.issue_debit_note(a, 100, 'B', '2024-03-02');
	PERFORM billing.record_payment(a, 100, '2024-03-01');
	PERFORM pg_temp.step('bd_apply', 'unapply on 03-20',
		format('SELECT billing.unapply(allocation_id, %L) FROM billing.allocation WHERE account_id = %s', '2024-03-20', a));
	PERFORM pg_temp.step('bd_apply', 'apply to B on 03-05',
		format('SELECT billing.apply_payment(payment_id, (SELECT max(invoice_id) FROM billing.invoice WHERE account_id = %s), NULL, %L)
				FROM billing.payment WHERE account_id = %s', a, '2024-03-05', a));
	-- payment 100 on 03-01 pays C; unapplied on 03-20; refunded back-dated to 03-05
	a := pg_temp.acct('bd_refund');
	PERFORM billing.issue_debit_note(a, 100, 'C', '2024-03-01');
	PERFORM billing.record_payment(a, 100, '2024-03-01');
	PERFORM pg_temp.step('bd_refund', 'unapply on 03-20',
		format('SELECT billing.unapply(allocation_id, %L) FROM billing.allocation WHERE account_id = %s', '2024-03-20', a));
	PERFORM pg_temp.step('bd_refund', 'refund on 03-05',
		format('SELECT billing.refund(payment_id, amount => 100, refunded_on => %L) FROM billing.payment WHERE account_id = %s',
			   '2024-03-05', a));
	-- payment 100 on 03-01 pays D; unapplied as of 03-20; D voided as of 03-10
	a := pg_temp.acct('bd_void');
	PERFORM billing.issue_debit_note(a, 100, 'D', '2024-03-01');
	PERFORM billing.record_payment(a, 100, '2024-03-01');
	PERFORM pg_temp.step('bd_void', 'unapply on 03-20',
		format('SELECT billing.unapply(allocation_id, %L) FROM billing.allocation WHERE account_id = %s', '2024-03-20', a));
	PERFORM pg_temp.step('bd_void', 'void on 03-10',
		format('SELECT billing.void_invoice(invoice_id, %L, %L) FROM billing.invoice WHERE account_id = %s', 'error', '2024-03-10', a));
END $$;
SELECT is_empty(
	$$SELECT k.key, g::date, p.amount, billing.payment_unapplied(p, g::date) AS unapplied
	  FROM unnest(ARRAY['bd_apply', 'bd_refund']) k(key)
	  JOIN payment p ON p.account_id = pg_temp.acct(k.key)
	  CROSS JOIN generate_series(date '2024-03-01', date '2024-03-31', interval '1 day') g
	  WHERE billing.payment_unapplied(p, g::date) NOT BETWEEN 0 AND p.amount$$,
	'back-dated apply or refund after a later unapply: the payment is never over-applied on any day');
SELECT is_empty(
	$$SELECT k.key, g::date, b.bucket, b.amount
	  FROM unnest(ARRAY['bd_apply', 'bd_refund', 'bd_void']) k(key)
	  CROSS JOIN generate_series(date '2024-03-01', date '2024-03-31', interval '1 day') g
	  CROSS JOIN LATERAL ar_aging(g::date) b
	  WHERE b.account_id = pg_temp.acct(k.key) AND ((b.bucket = 'unapplied') <> (b.amount < 0))$$,
	'back-dated corrections: on every day the unapplied bucket is negative and the others positive');
SELECT is_empty(
	$$SELECT k.key, g::date, account_balance(pg_temp.acct(k.key), g::date) AS balance, x.balance AS expected
	  FROM unnest(ARRAY['bd_apply', 'bd_refund', 'bd_void']) k(key)
	  CROSS JOIN generate_series(date '2024-03-01', date '2024-03-31', interval '1 day') g
	  CROSS JOIN LATERAL (
		SELECT coalesce((SELECT sum(i.total) FROM billing.invoice i
						 WHERE i.account_id = pg_temp.acct(k.key) AND i.status <> 'draft' AND i.invoice_date <= g::date
						   AND (i.voided_on IS NULL OR i.voided_on > g::date)), 0)
			 - coalesce((SELECT sum(p.amount) FROM billing.payment p WHERE p.account_id = pg_temp.acct(k.key) AND p.received_on <= g::date), 0)
			 + coalesce((SELECT sum(r.amount) FROM billing.refund r WHERE r.account_id = pg_temp.acct(k.key) AND r.refunded_on <= g::date), 0)
			   AS balance) x
	  WHERE account_balance(pg_temp.acct(k.key), g::date) <> x.balance$$,
	'back-dated corrections: on every day account_balance = documents not void - payments + refunds');

SELECT * FROM finish();
ROLLBACK;
