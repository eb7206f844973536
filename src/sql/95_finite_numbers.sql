-- Every number the extension stores is finite.
--
-- numeric accepts NaN, Infinity and -Infinity, and most comparisons let them
-- through: NaN sorts above every number, so "amount > 0" holds for it, and
-- scale(NaN) is NULL, so "scale(amount) <= 6" does not refuse it either.  One
-- check per numeric column of every billing table, named <table>_<column>_finite,
-- refuses them (23514).  Written as a loop over the catalog, so a numeric
-- column added to a table above this file gets its check too; the C functions
-- refuse them in their arguments with 22003 (numeric_check_finite).
DO $$
DECLARE
	col record;
BEGIN
	FOR col IN
		SELECT c.oid::regclass AS tbl, c.relname, a.attname
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
		WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind = 'r'
		  AND a.atttypid = 'pg_catalog.numeric'::pg_catalog.regtype AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY c.relname, a.attnum
	LOOP
		-- NaN compares above Infinity, so one range excludes all three
		EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%I > ''-Infinity'' AND %I < ''Infinity'')',
					   col.tbl, col.relname || '_' || col.attname || '_finite', col.attname, col.attname);
	END LOOP;
END $$;
