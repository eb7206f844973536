-- Foreign keys checked once per statement on the tables runs write in bulk.
--
-- A row-level foreign key check runs one query per new row and key: a run
-- writing a million lines (three keys each) spent most of its time there.
-- On the tables below (invoices, lines, the timeline, allocations, payments) the
-- foreign keys stay declared, so their parent-side triggers still refuse
-- deleting or re-keying a referenced row, and pg_dump still restores parents
-- first; only the child-side per-row checks
-- (RI_FKey_check_ins/_upd) are disabled.  billing.check_foreign_keys() does
-- their work once per statement: for each key it finds the referenced rows
-- with one semi-join and locks them FOR KEY SHARE, as the per-row checks
-- would, so a concurrent delete of a parent still waits for the writer and
-- then fails.  A missing parent raises PostgreSQL's own error (23503).
--
-- Parents this transaction wrote itself (inserted, or updated at top level:
-- their xmin is our xid) are not locked again: no one else can see an
-- inserted row, and a delete of an updated one waits for us anyway, then
-- finds our committed children.  A run inserts its documents and updates
-- every billed subscription's watermarks before writing the lines, so the
-- lines' keys lock nothing; locking a million subscriptions FOR KEY SHARE
-- (a WAL-logged write per row) was 8% of a 1M-subscription run.  Rows
-- written in a subtransaction have another xid and are locked as usual.

-- The foreign keys of a table, as SQL fragments over aliases n (child) and p
-- (parent), for the statement-level check and for check_integrity.
CREATE FUNCTION billing.foreign_key_sql(child regclass)
	RETURNS TABLE (conname name, parent regclass, child_cols text, parent_cols text, joined text, complete text,
				   key_names text, key_text text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT c.conname, c.confrelid::regclass,
		   string_agg(format('n.%I', ca.attname), ', ' ORDER BY k.i),
		   string_agg(format('p.%I', pa.attname), ', ' ORDER BY k.i),
		   string_agg(format('p.%I = n.%I', pa.attname, ca.attname), ' AND ' ORDER BY k.i),
		   string_agg(format('n.%I IS NOT NULL', ca.attname), ' AND ' ORDER BY k.i),
		   string_agg(quote_ident(ca.attname), ', ' ORDER BY k.i),
		   string_agg(format('n.%I::text', ca.attname), ' || '', '' || ' ORDER BY k.i)
	FROM pg_catalog.pg_constraint c
	CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(child_att, parent_att, i)
	JOIN pg_catalog.pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k.child_att
	JOIN pg_catalog.pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.parent_att
	WHERE c.conrelid = child AND c.contype = 'f'
	GROUP BY c.conname, c.confrelid
	ORDER BY c.conname;
END;
COMMENT ON FUNCTION billing.foreign_key_sql(regclass) IS
	'The foreign keys of a table as SQL fragments (child alias n, parent alias p), for checks written once for every key';

-- Runs as the owner, as PostgreSQL's own foreign key checks do: locking a
-- parent row FOR KEY SHARE needs more than SELECT on it.
CREATE FUNCTION billing.check_foreign_keys() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	fk record;
	own_xid xid := pg_catalog.pg_current_xact_id()::xid;
	wanted bigint;
	own bigint;
	locked bigint;
	missing text;
	saved_nestloop text;
BEGIN
	-- an invoice run's own documents and lines: keys it holds or just wrote
	IF billing.run_statement_trusted() THEN
		RETURN NULL;
	END IF;
	-- A transition table has no statistics: the planner guesses a few thousand
	-- distinct keys and probes the parent's index once per key.  For a
	-- statement of many rows (a run's million lines: 1M probes, 9 s) one hash
	-- join over the parent is several times faster.
	IF (SELECT count(*) FROM new_rows) > 10000 THEN
		saved_nestloop := pg_catalog.current_setting('enable_nestloop');
		PERFORM pg_catalog.set_config('enable_nestloop', 'off', true);
	END IF;
	FOR fk IN SELECT * FROM billing.foreign_key_sql(TG_RELID)
	LOOP
		-- the distinct keys once (MATCH SIMPLE: a key with a NULL column refers
		-- to nothing), and how many of their parents this transaction wrote
		EXECUTE format('WITH k AS MATERIALIZED (SELECT DISTINCT %s FROM new_rows n WHERE %s) '
					   'SELECT (SELECT count(*) FROM k), '
					   '(SELECT count(*) FROM %s p WHERE (%s) IN (SELECT * FROM k) AND p.xmin OPERATOR(pg_catalog.=) $1)',
					   fk.child_cols, fk.complete, fk.parent, fk.parent_cols)
		INTO wanted, own USING own_xid;
		CONTINUE WHEN own = wanted;
		-- the others found and locked
		EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %s p WHERE (%s) IN (SELECT DISTINCT %s FROM new_rows n WHERE %s) '
					   'AND p.xmin OPERATOR(pg_catalog.<>) $1 FOR KEY SHARE OF p) x',
					   fk.parent, fk.parent_cols, fk.child_cols, fk.complete)
		INTO locked USING own_xid;
		CONTINUE WHEN own + locked = wanted;
		EXECUTE format('SELECT %s FROM new_rows n WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s) LIMIT 1',
					   fk.key_text, fk.complete, fk.parent, fk.joined)
		INTO missing;
		RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"', TG_TABLE_NAME, fk.conname
			USING ERRCODE = 'foreign_key_violation',
				  DETAIL = format('Key (%s)=(%s) is not present in table "%s".', fk.key_names, missing,
								  (SELECT relname FROM pg_catalog.pg_class WHERE oid = fk.parent)),
				  SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, CONSTRAINT = fk.conname;
	END LOOP;
	IF saved_nestloop IS NOT NULL THEN
		PERFORM pg_catalog.set_config('enable_nestloop', saved_nestloop, true);
	END IF;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION billing.check_foreign_keys() IS
	'Trigger: the foreign keys of the new or changed rows of a statement, checked in one join per key; parents not written by this transaction are locked FOR KEY SHARE';

DO $$
DECLARE
	t regclass;
	tg name;
BEGIN
	FOREACH t IN ARRAY ARRAY['billing.invoice', 'billing.invoice_line', 'billing.subscription_change', 'billing.allocation',
							 'billing.payment']::regclass[]
	LOOP
		EXECUTE format('CREATE TRIGGER check_foreign_keys_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
					   'FOR EACH STATEMENT EXECUTE FUNCTION billing.check_foreign_keys()', t);
		EXECUTE format('CREATE TRIGGER check_foreign_keys_update AFTER UPDATE ON %s REFERENCING NEW TABLE AS new_rows '
					   'FOR EACH STATEMENT EXECUTE FUNCTION billing.check_foreign_keys()', t);
		-- the child-side per-row checks these triggers replace
		FOR tg IN SELECT g.tgname FROM pg_catalog.pg_trigger g
				  JOIN pg_catalog.pg_constraint c ON c.oid = g.tgconstraint
				  WHERE g.tgrelid = t AND c.contype = 'f' AND c.conrelid = t
					AND g.tgfoid IN ('pg_catalog."RI_FKey_check_ins"'::pg_catalog.regproc,
									 'pg_catalog."RI_FKey_check_upd"'::pg_catalog.regproc)
		LOOP
			EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', t, tg);
		END LOOP;
	END LOOP;
END $$;
