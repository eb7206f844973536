-- Helpers of 22_bulk_payments.sql: a reproducible random book built twice
-- (under two key prefixes), so one copy takes record_payment calls one by one
-- and the other one record_payments call, and their rows can be compared.

-- key of the g-th account of a book
CREATE FUNCTION pg_temp.bk(prefix text, g int) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT prefix || '-' || g $$;

-- A book of 30 accounts: USD accounts (a few in EUR, JPY), each with debit
-- notes dated 2024-01-01 .. 2024-03-30 on random terms, every third with a
-- EUR subscription billed by a run (a second currency on a USD account), some
-- paid earlier and unapplied later (documents whose open amount dips: the
-- hemmed dates), some credit notes applied or kept as account credit.  The
-- same seed gives the same book under any prefix.
CREATE FUNCTION pg_temp.build_book(prefix text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	g int;
	k int;
	acct bigint;
	cur text;
	doc bigint;
	pay billing.payment;
BEGIN
	PERFORM setseed(0.2207);
	FOR g IN 1 .. 30 LOOP
		cur := CASE WHEN g % 10 = 0 THEN 'JPY' WHEN g % 7 = 0 THEN 'EUR' ELSE 'USD' END;
		INSERT INTO billing.account (external_key, name, currency, payment_terms_days)
		VALUES (pg_temp.bk(prefix, g), 'Bulk ' || pg_temp.bk(prefix, g), cur, 30)
		RETURNING account_id INTO acct;
		IF cur = 'USD' AND g % 3 = 0 THEN
			INSERT INTO billing.subscription (account_id, price_id, start_date, end_date)
			SELECT acct, p.price_id, '2024-01-01', '2024-03-01' FROM billing.price p WHERE p.code = 'bulk_eur';
		END IF;
		FOR k IN 1 .. 1 + floor(random() * 6)::int LOOP
			UPDATE billing.account SET payment_terms_days = (ARRAY[0, 15, 30, 45])[1 + floor(random() * 4)::int]
			WHERE account_id = acct;
			doc := (billing.issue_debit_note(acct,
						greatest(billing.round_money((random() * 300 * CASE cur WHEN 'JPY' THEN 100 ELSE 1 END)::numeric, cur),
								 1), 'bulk test', date '2024-01-01' + floor(random() * 90)::int)).invoice_id;
			IF random() < 0.3 THEN
				-- paid on its date, unapplied some days later
				pay := billing.record_payment(acct, billing.document_open_amount(
							(SELECT i FROM billing.invoice i WHERE i.invoice_id = doc), 'infinity'),
						(SELECT invoice_date FROM billing.invoice WHERE invoice_id = doc), auto_apply => false);
				PERFORM billing.apply_payment(pay.payment_id, doc);
				PERFORM billing.unapply(a.allocation_id, a.allocated_on + 1 + floor(random() * 40)::int)
				FROM billing.allocation a WHERE a.account_id = acct AND a.payment_id = pay.payment_id;
				PERFORM billing.refund(pay.payment_id, refunded_on => '2024-06-30');
			ELSIF random() < 0.2 THEN
				PERFORM billing.issue_credit_note(doc, least((SELECT total FROM billing.invoice WHERE invoice_id = doc),
														billing.round_money(1 + random()::numeric * 20, cur)), 'bulk credit',
												  (SELECT invoice_date FROM billing.invoice WHERE invoice_id = doc) + 3,
												  apply => random() < 0.5);
			END IF;
		END LOOP;
	END LOOP;
	PERFORM billing.run_invoice_batch(target_date => '2024-02-01');
END $$;

-- The payments of the batch: element, account number, amount, date,
-- reference (some repeated, some recorded before), method; the same seed
-- gives the same batch.
CREATE FUNCTION pg_temp.batch()
	RETURNS TABLE (ord int, g int, amount numeric, received_on date, reference text, method text)
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM setseed(0.3141);
	RETURN QUERY
	WITH b AS (
		SELECT x.ord, x.g,
			   billing.round_money((random() * 250 * CASE WHEN x.g % 10 = 0 THEN 100 ELSE 1 END)::numeric + 1,
								   CASE WHEN x.g % 10 = 0 THEN 'JPY' WHEN x.g % 7 = 0 THEN 'EUR' ELSE 'USD' END) AS amount,
			   date '2023-12-15' + floor(random() * 120)::int AS received_on,
			   CASE WHEN random() < 0.6 THEN 'ref-' || x.ord END AS reference,
			   (ARRAY['card', 'wire', NULL])[1 + floor(random() * 3)::int] AS method
		FROM (SELECT o AS ord, 1 + floor(random() * 30)::int AS g FROM generate_series(1, 150) o) x
	)
	-- every 17th element repeats the one 5 before it: the same payment again
	SELECT b.ord::int, coalesce(r.g, b.g), coalesce(r.amount, b.amount), coalesce(r.received_on, b.received_on),
		   CASE WHEN r.ord IS NOT NULL THEN r.reference ELSE b.reference END, coalesce(r.method, b.method)
	FROM b LEFT JOIN b r ON b.ord % 17 = 0 AND r.ord = b.ord - 5 AND r.reference IS NOT NULL
	ORDER BY b.ord;
END $$;

-- What a book holds, relative to its accounts: every allocation and payment
-- with the account's number, documents and payments by their rank in the
-- account, in the order the rows were written.
CREATE FUNCTION pg_temp.book_rows(prefix text)
	RETURNS TABLE (what text, g int, row_rank bigint, target bigint, source text, amount numeric, on_date date,
				   extra text)
LANGUAGE sql STABLE AS $$
	WITH acct AS (
		SELECT a.account_id, substring(a.external_key FROM '[0-9]+$')::int AS g FROM billing.account a
		WHERE a.external_key LIKE prefix || '-%'
	), doc AS (
		SELECT i.account_id, i.invoice_id, rank() OVER (PARTITION BY i.account_id ORDER BY i.invoice_id) AS r
		FROM billing.invoice i JOIN acct USING (account_id)
	), pay AS (
		SELECT p.*, rank() OVER (PARTITION BY p.account_id ORDER BY p.payment_id) AS r
		FROM billing.payment p JOIN acct USING (account_id)
	)
	SELECT 'allocation', acct.g, rank() OVER (PARTITION BY a.account_id ORDER BY a.allocation_id), d.r,
		   coalesce('P' || p.r, 'D' || c.r), a.amount, a.allocated_on, (a.reverses_allocation_id IS NOT NULL)::text
	FROM billing.allocation a JOIN acct USING (account_id)
	JOIN doc d ON d.account_id = a.account_id AND d.invoice_id = a.invoice_id
	LEFT JOIN pay p ON p.account_id = a.account_id AND p.payment_id = a.payment_id
	LEFT JOIN doc c ON c.account_id = a.account_id AND c.invoice_id = a.credit_note_id
	UNION ALL
	SELECT 'payment', acct.g, p.r, NULL, p.currency, p.amount, p.received_on, concat_ws('/', p.reference, p.method)
	FROM pay p JOIN acct USING (account_id)
$$;
