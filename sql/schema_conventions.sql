-- Conventions every object of the extension follows.
\i sql/include/session.psql

-- every table (and its sequences) is dumped with pg_dump
SELECT c.relname AS table_not_dumped
FROM pg_class c
JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'billing'
WHERE c.relkind IN ('r', 'S')
  AND c.oid <> ALL (e.extconfig)
ORDER BY 1;

-- every table, column, function, type and view carries a comment
SELECT 'table ' || c.relname AS missing_comment
FROM pg_class c WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind IN ('r', 'v')
  AND obj_description(c.oid, 'pg_class') IS NULL
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind IN ('r', 'v')
  AND col_description(c.oid, a.attnum) IS NULL
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text
FROM pg_proc p WHERE p.pronamespace = 'billing'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
UNION ALL
SELECT 'type ' || t.typname
FROM pg_type t WHERE t.typnamespace = 'billing'::regnamespace AND t.typtype IN ('b', 'c', 'd', 'e')
  AND t.typrelid = 0 AND t.typcategory <> 'A' AND obj_description(t.oid, 'pg_type') IS NULL
ORDER BY 1;

-- SECURITY DEFINER functions pin their search_path
SELECT p.oid::regprocedure AS definer_without_search_path
FROM pg_proc p
WHERE p.pronamespace = 'billing'::regnamespace AND p.prosecdef
  AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)
ORDER BY 1;

-- no table is writable by PUBLIC
SELECT c.relname AS public_writable
FROM pg_class c
WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind = 'r'
  AND (has_table_privilege('public', c.oid, 'INSERT') OR has_table_privilege('public', c.oid, 'UPDATE')
	   OR has_table_privilege('public', c.oid, 'DELETE'))
ORDER BY 1;

-- volatility labels of the C functions are honest: pure ones IMMUTABLE, currency readers STABLE
SELECT p.proname, p.provolatile, p.proparallel
FROM pg_proc p
WHERE p.pronamespace = 'billing'::regnamespace
  AND p.proname IN ('billing_periods', 'cycle_period', 'cycle_periods', 'first_cycle_date', 'prorate',
					'prorate_agg', 'round_money', 'allocate', 'period_days')
ORDER BY 1;
