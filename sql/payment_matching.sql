-- oldest_first_allocations(): new payments matched to open documents oldest
-- due first (SPEC §5: open invoices and debit notes, oldest due date first,
-- then oldest document), the matching record_payments writes.
-- Per account and currency the payments, in array order, fill the documents
-- ordered by due date, document date, id; each allocation is the least of
-- what the payment has left and the document has open, dated on the later
-- of the two dates.
\i sql/include/session.psql
\set VERBOSITY default

-- The declaration: a set-returning C function, STABLE (reads the currency
-- table), STRICT (no payments or no documents: no allocations)
SELECT p.proname, p.provolatile, p.proretset, p.proisstrict, p.proparallel, l.lanname,
       pg_get_function_result(p.oid) AS result
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.proname = 'oldest_first_allocations';

-- Account 1 (USD) owes three documents, passed out of order: 7 due
-- 2026-02-01, 5 and 6 due 2026-01-15 (5 dated earlier).  Payment 100 (60.00)
-- pays 5 (50.00) and 10.00 of 6; payment 101 (30.00) the rest of 6 (20.00)
-- and 10.00 of 7; payment 102 names a payment recorded before (is_new
-- false) and takes nothing.  Account 2 (JPY) has one document of 1000; its
-- payment of 1500 leaves 500 unapplied.  Account 3 owes in EUR only: its USD
-- payment finds nothing.
SELECT * FROM oldest_first_allocations(
	ARRAY[1, 2, 1, 3, 1]::bigint[], ARRAY[100, 200, 101, 300, 102]::bigint[],
	ARRAY['USD', 'JPY', 'USD', 'USD', 'USD'],
	ARRAY['2026-01-20', '2026-01-05', '2026-01-03', '2026-01-20', '2026-01-20']::date[],
	ARRAY[60.00, 1500, 30.00, 10.00, 99.00], ARRAY[true, true, true, true, false],
	ARRAY[1, 1, 1, 2, 3]::bigint[], ARRAY['USD', 'USD', 'USD', 'JPY', 'EUR'],
	ARRAY[7, 6, 5, 8, 9]::bigint[],
	ARRAY['2026-01-02', '2026-01-01', '2025-12-31', '2026-01-01', '2026-01-01']::date[],
	ARRAY['2026-02-01', '2026-01-15', '2026-01-15', '2026-01-31', '2026-01-31']::date[],
	ARRAY[40.00, 30.00, 50.00, 1000, 25.00]);

-- A document shared by the amounts of several payments, to the cent; a
-- 3-decimal currency keeps its scale
SELECT * FROM oldest_first_allocations(
	ARRAY[4, 4, 4, 5]::bigint[], ARRAY[1, 2, 3, 4]::bigint[], ARRAY['USD', 'USD', 'USD', 'KWD'],
	ARRAY['2026-03-01', '2026-03-02', '2026-03-03', '2026-03-01']::date[],
	ARRAY[0.01, 0.02, 100.00, 1.005], ARRAY[true, true, true, true],
	ARRAY[4, 5]::bigint[], ARRAY['USD', 'KWD'], ARRAY[40, 50]::bigint[],
	ARRAY['2026-03-05', '2026-02-01']::date[], ARRAY['2026-04-04', '2026-03-03']::date[], ARRAY[0.04, 2.000]);

-- A document without a due date (document 60, dated first) comes after those
-- with one, whatever their dates
SELECT * FROM oldest_first_allocations(
	ARRAY[6]::bigint[], ARRAY[7]::bigint[], ARRAY['USD'], ARRAY['2026-05-01']::date[], ARRAY[15.00], ARRAY[true],
	ARRAY[6, 6]::bigint[], ARRAY['USD', 'USD'], ARRAY[60, 61]::bigint[],
	ARRAY['2026-01-01', '2026-04-01']::date[], ARRAY[NULL, '2026-12-31']::date[], ARRAY[10.00, 10.00]);

-- No documents, or no payments: no allocations (STRICT on the NULL arrays
-- array_agg gives over no rows; empty arrays match nothing)
SELECT count(*) FROM oldest_first_allocations('{1}', '{1}', '{USD}', '{2026-01-01}', '{10}', '{t}',
											  NULL, NULL, NULL, NULL, NULL, NULL);
SELECT count(*) FROM oldest_first_allocations('{}', '{}', '{}', '{}', '{}', '{}',
											  '{1}', '{USD}', '{1}', '{2026-01-01}', '{2026-01-01}', '{10}');

-- Errors, with their SQLSTATEs: arrays of different lengths, a NULL element,
-- an amount finer than its currency, an unknown currency, a 2-D array
DO $$
DECLARE
	call text;
	state text;
	msg text;
	det text;
BEGIN
	FOREACH call IN ARRAY ARRAY[
		$c$'{1, 2}', '{1}', '{USD}', '{2026-01-01}', '{10}', '{t}', '{1}', '{USD}', '{1}', '{2026-01-01}', '{2026-01-01}', '{10}'$c$,
		$c$'{1}', '{1}', '{USD}', '{2026-01-01}', '{10}', '{t}', '{1, 1}', '{USD, USD}', '{1, 2}', '{2026-01-01, 2026-01-01}', '{2026-01-01}', '{10, 5}'$c$,
		$c$'{1}', '{1}', '{USD}', '{2026-01-01}', '{NULL}', '{t}', '{1}', '{USD}', '{1}', '{2026-01-01}', '{2026-01-01}', '{10}'$c$,
		$c$'{1}', '{1}', '{USD}', '{2026-01-01}', '{10.001}', '{t}', '{1}', '{USD}', '{1}', '{2026-01-01}', '{2026-01-01}', '{10}'$c$,
		$c$'{1}', '{1}', '{USD}', '{2026-01-01}', '{10}', '{t}', '{1}', '{USD}', '{1}', '{2026-01-01}', '{2026-01-01}', '{10.5005}'$c$,
		$c$'{1}', '{1}', '{XXX}', '{2026-01-01}', '{10}', '{t}', '{1}', '{XXX}', '{1}', '{2026-01-01}', '{2026-01-01}', '{10}'$c$,
		$c$'{{1}}', '{1}', '{USD}', '{2026-01-01}', '{10}', '{t}', '{1}', '{USD}', '{1}', '{2026-01-01}', '{2026-01-01}', '{10}'$c$]
	LOOP
		BEGIN
			EXECUTE 'SELECT count(*) FROM billing.oldest_first_allocations(' || call || ')';
			RAISE NOTICE 'no error';
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
			RAISE NOTICE '%: % (%)', state, msg, det;
		END;
	END LOOP;
END $$;

-- 3,000 random payments over 400 accounts against 2,000 random documents in
-- three currencies, checked against the definition by running sums: per
-- account and currency, payment p (in array order) covers the interval
-- (sum of the payments before it, that plus its amount], document d (oldest
-- due first) likewise over open amounts; an allocation is the overlap of
-- the two intervals where it is not empty.
SELECT setseed(0.61);
CREATE TEMP TABLE pay AS
SELECT g AS ord, 1 + (random() * 399)::int::bigint AS account_id, 10000 + g::bigint AS payment_id,
       (ARRAY['USD', 'JPY', 'KWD'])[1 + (random() * 2)::int] AS currency,
       date '2026-01-01' + (random() * 60)::int AS received_on,
       random() < 0.95 AS is_new, random() AS r
FROM generate_series(1, 3000) AS g;
ALTER TABLE pay ADD amount numeric;
UPDATE pay SET amount = round((0.01 + r * 300)::numeric, CASE currency WHEN 'JPY' THEN 0 WHEN 'KWD' THEN 3 ELSE 2 END);
UPDATE pay SET amount = 1 WHERE amount = 0;
CREATE TEMP TABLE doc AS
SELECT 1 + (random() * 399)::int::bigint AS account_id, g::bigint AS invoice_id,
       (ARRAY['USD', 'JPY', 'KWD'])[1 + (random() * 2)::int] AS currency,
       date '2025-12-01' + (random() * 60)::int AS item_date, random() AS r
FROM generate_series(1, 2000) AS g;
ALTER TABLE doc ADD due_date date, ADD open_amount numeric;
UPDATE doc SET due_date = item_date + (r * 3)::int * 15,
			   open_amount = greatest(round((r * 500)::numeric, CASE currency WHEN 'JPY' THEN 0 WHEN 'KWD' THEN 3 ELSE 2 END), 1);
CREATE TEMP TABLE got AS
SELECT m.*, row_number() OVER () AS k
FROM (SELECT array_agg(account_id ORDER BY ord) a, array_agg(payment_id ORDER BY ord) p, array_agg(currency ORDER BY ord) c,
			 array_agg(received_on ORDER BY ord) d, array_agg(amount ORDER BY ord) m, array_agg(is_new ORDER BY ord) n
	  FROM pay) p,
	 (SELECT array_agg(account_id) a, array_agg(currency) c, array_agg(invoice_id) i, array_agg(item_date) d,
			 array_agg(due_date) u, array_agg(open_amount) o
	  FROM doc) d,
	 oldest_first_allocations(p.a, p.p, p.c, p.d, p.m, p.n, d.a, d.c, d.i, d.d, d.u, d.o) m;
CREATE TEMP TABLE want AS
WITH p AS (
	SELECT *, sum(amount) OVER (PARTITION BY account_id, currency ORDER BY ord) AS upto FROM pay WHERE is_new
), d AS (
	SELECT *, sum(open_amount) OVER (PARTITION BY account_id, currency ORDER BY due_date, item_date, invoice_id) AS upto FROM doc
)
SELECT p.account_id, d.invoice_id, p.payment_id,
	   least(p.upto, d.upto) - greatest(p.upto - p.amount, d.upto - d.open_amount) AS amount,
	   greatest(p.received_on, d.item_date) AS allocated_on,
	   row_number() OVER (ORDER BY p.ord, d.due_date, d.item_date, d.invoice_id) AS k
FROM p JOIN d ON d.account_id = p.account_id AND d.currency = p.currency
			 AND d.upto - d.open_amount < p.upto AND p.upto - p.amount < d.upto;
SELECT (SELECT count(*) FROM want) > 1000 AS enough_rows,
	   (SELECT count(*) FROM (SELECT account_id, invoice_id, payment_id, amount::text, allocated_on, k FROM got
							  EXCEPT ALL
							  SELECT account_id, invoice_id, payment_id, amount::text, allocated_on, k FROM want) x) AS unexpected,
	   (SELECT count(*) FROM (SELECT account_id, invoice_id, payment_id, amount::text, allocated_on, k FROM want
							  EXCEPT ALL
							  SELECT account_id, invoice_id, payment_id, amount::text, allocated_on, k FROM got) x) AS missing;
-- no payment gives more than it has, no document takes more than it owes
SELECT count(*) AS overpaid FROM (SELECT payment_id, sum(amount) s FROM got GROUP BY payment_id) g JOIN pay USING (payment_id) WHERE g.s > pay.amount;
SELECT count(*) AS overfilled FROM (SELECT invoice_id, sum(amount) s FROM got GROUP BY invoice_id) g JOIN doc USING (invoice_id) WHERE g.s > doc.open_amount;
