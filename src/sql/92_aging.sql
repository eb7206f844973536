-- Receivables aging as of any date, built on the one open-amount rule
-- (billing.document_open_amount, billing.payment_unapplied).

-- The bucket a number of days overdue falls in: 'current' (<= 0), then the
-- inclusive ranges the bounds define ('1-30', '31-60', '61-90', '91+').
CREATE FUNCTION billing.aging_bucket(days_overdue int, bucket_days int[], OUT bucket text, OUT bucket_order int)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT CASE WHEN days_overdue <= 0 THEN 'current'
				WHEN b.i IS NULL THEN (bucket_days[array_length(bucket_days, 1)] + 1) || '+'
				ELSE (coalesce(bucket_days[b.i - 1], 0) + 1) || '-' || bucket_days[b.i] END,
		   CASE WHEN days_overdue <= 0 THEN 0 ELSE coalesce(b.i, array_length(bucket_days, 1) + 1) END
	FROM (SELECT min(i) AS i FROM generate_subscripts(bucket_days, 1) AS i WHERE days_overdue <= bucket_days[i]) b;
END;
COMMENT ON FUNCTION billing.aging_bucket(int, int[]) IS
	'Aging bucket of a number of days overdue: current (<= 0), inclusive ranges from the bounds, then N+';

CREATE FUNCTION billing.check_aging_arguments(as_of date, bucket_days int[], basis text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM billing.check_as_of(as_of);
	IF bucket_days IS NULL OR cardinality(bucket_days) = 0 OR array_ndims(bucket_days) <> 1
	   OR EXISTS (SELECT 1 FROM generate_subscripts(bucket_days, 1) AS i
				  WHERE bucket_days[i] IS NULL OR bucket_days[i] <= coalesce(bucket_days[i - 1], 0)) THEN
		RAISE EXCEPTION 'aging bucket bounds must be positive and increasing'
			USING ERRCODE = 'invalid_parameter_value', DETAIL = format('bucket_days is %s', coalesce(bucket_days::text, 'NULL'));
	END IF;
	IF basis IS NULL OR basis NOT IN ('due_date', 'invoice_date') THEN
		RAISE EXCEPTION 'aging basis must be due_date or invoice_date'
			USING ERRCODE = 'invalid_parameter_value', DETAIL = format('basis is %s', coalesce(basis, 'NULL'));
	END IF;
END $$;
COMMENT ON FUNCTION billing.check_aging_arguments(date, int[], text) IS 'Validates the as-of date, aging bucket bounds and basis';

CREATE FUNCTION billing.ar_aging_detail(as_of date DEFAULT CURRENT_DATE, bucket_days int[] DEFAULT '{30,60,90}',
										basis text DEFAULT 'due_date')
	RETURNS TABLE (account_id bigint, document_type text, invoice_id bigint, payment_id bigint, document_number text,
				   currency text, document_date date, due_date date, days_overdue int, bucket text, open_amount numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM billing.check_aging_arguments(as_of, bucket_days, basis);
	RETURN QUERY
	SELECT d.account_id, d.document_type, d.invoice_id, NULL::bigint, d.document_number, d.currency, d.invoice_date,
		   d.due_date, d.days_overdue,
		   CASE WHEN d.document_type = 'credit_note' THEN 'unapplied' ELSE (billing.aging_bucket(d.days_overdue, bucket_days)).bucket END,
		   d.open_amount
	FROM (SELECT i.*, billing.document_open_amount(i, as_of) AS open_amount,
				 CASE WHEN i.document_type = 'credit_note' THEN NULL
					  ELSE as_of - CASE basis WHEN 'invoice_date' THEN i.invoice_date ELSE i.due_date END END AS days_overdue
		  FROM billing.invoice i
		  WHERE i.status <> 'draft' AND i.invoice_date <= as_of AND (i.voided_on IS NULL OR i.voided_on > as_of)) d
	WHERE d.open_amount <> 0
	UNION ALL
	SELECT p.account_id, 'payment', NULL, p.payment_id, p.reference, p.currency, p.received_on, NULL, NULL,
		   'unapplied', -p.unapplied
	FROM (SELECT p.*, billing.payment_unapplied(p, as_of) AS unapplied
		  FROM billing.payment p WHERE p.received_on <= as_of) p
	WHERE p.unapplied <> 0;
END $$;
COMMENT ON FUNCTION billing.ar_aging_detail(date, int[], text) IS
	'One row per open document or unapplied payment as of a date, with days overdue and aging bucket; unapplied payments and credit notes are negative in bucket unapplied';

CREATE FUNCTION billing.ar_aging(as_of date DEFAULT CURRENT_DATE, bucket_days int[] DEFAULT '{30,60,90}',
								 basis text DEFAULT 'due_date')
	RETURNS TABLE (account_id bigint, currency text, bucket text, bucket_order int, amount numeric, documents int)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RETURN QUERY
	SELECT d.account_id, d.currency, d.bucket,
		   CASE d.bucket WHEN 'unapplied' THEN cardinality(bucket_days) + 2
						 ELSE (billing.aging_bucket(min(d.days_overdue), bucket_days)).bucket_order END,
		   sum(d.open_amount), count(*)::int
	FROM billing.ar_aging_detail(as_of, bucket_days, basis) d
	GROUP BY d.account_id, d.currency, d.bucket
	ORDER BY 1, 2, 4;
END $$;
COMMENT ON FUNCTION billing.ar_aging(date, int[], text) IS
	'Receivables by account, currency and aging bucket as of a date (current, 1-30, 31-60, 61-90, 91+, unapplied); buckets sum to account_balance';
