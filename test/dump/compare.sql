-- Fingerprint of every billing table: run in the source and the restored
-- database; the outputs must be identical.  subscription.reconcile_from is left
-- out: restoring usage records marks their subscriptions for reconciliation
-- (the late-usage trigger cannot tell a restore from late usage); the next run
-- recomputes them and adds nothing, which scripts/test.sh checks.
SELECT c.relname,
	   (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM billing.%I', c.relname), false, true, '')))[1]::text AS rows,
	   (xpath('/row/h/text()', query_to_xml(format('SELECT md5(string_agg((to_jsonb(t) - ''reconcile_from'')::text, ''|'' ORDER BY (to_jsonb(t) - ''reconcile_from'')::text)) AS h FROM billing.%I t',
												   c.relname), false, true, '')))[1]::text AS content
FROM pg_class c
WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind = 'r'
ORDER BY c.relname;
SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'billing' ORDER BY 1;
