-- Fingerprint of the billing extension's catalog: every member object with its
-- definition, comment and privileges, the columns, constraints, indexes and
-- triggers of its tables, and the tables registered for pg_dump.  Run in a
-- fresh install and in a database updated from an older version; the outputs
-- must be identical (scripts/test.sh, suite "upgrade").
WITH member AS (
	SELECT d.classid, d.objid
	FROM pg_depend d
	JOIN pg_extension e ON e.oid = d.refobjid AND d.refclassid = 'pg_extension'::regclass
	WHERE e.extname = 'billing' AND d.deptype = 'e'
),
described AS (
	-- functions, procedures and aggregates: their whole definition
	SELECT pg_describe_object(m.classid, m.objid, 0) AS object,
		   CASE WHEN p.prokind = 'a'
				THEN format('aggregate %s(%s) sfunc=%s stype=%s final=%s combine=%s serial=%s deserial=%s init=%s parallel=%s',
							p.proname, pg_get_function_identity_arguments(p.oid), a.aggtransfn, format_type(a.aggtranstype, NULL),
							a.aggfinalfn, a.aggcombinefn, a.aggserialfn, a.aggdeserialfn, a.agginitval, p.proparallel)
				ELSE pg_get_functiondef(p.oid) END AS definition,
		   p.proacl::text AS acl
	FROM member m
	JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
	LEFT JOIN pg_aggregate a ON a.aggfnoid = p.oid
	UNION ALL
	-- tables, views, sequences, composite types: kind, options, view text
	SELECT pg_describe_object(m.classid, m.objid, 0),
		   format('kind=%s options=%s persistence=%s %s', c.relkind, c.reloptions, c.relpersistence,
				  CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END),
		   c.relacl::text
	FROM member m
	JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
	UNION ALL
	-- types (composite types' attributes come with their pg_class row below)
	SELECT pg_describe_object(m.classid, m.objid, 0),
		   format('type=%s input=%s output=%s receive=%s send=%s len=%s byval=%s align=%s enum=%s domain=%s %s',
				  t.typtype, t.typinput, t.typoutput, t.typreceive, t.typsend, t.typlen, t.typbyval, t.typalign,
				  (SELECT string_agg(en.enumlabel, ',' ORDER BY en.enumsortorder) FROM pg_enum en WHERE en.enumtypid = t.oid),
				  format_type(t.typbasetype, t.typtypmod),
				  (SELECT string_agg(pg_get_constraintdef(co.oid), ' ' ORDER BY co.conname) FROM pg_constraint co WHERE co.contypid = t.oid)),
		   t.typacl::text
	FROM member m
	JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
	UNION ALL
	-- operators, casts, operator classes and the rest: their identity is their definition
	SELECT pg_describe_object(m.classid, m.objid, 0),
		   CASE WHEN m.classid = 'pg_operator'::regclass
				THEN (SELECT format('%s %s %s %s commutator=%s negator=%s restrict=%s join=%s',
									o.oprleft::regtype, o.oprname, o.oprright::regtype, o.oprcode, o.oprcom::regoperator, o.oprnegate::regoperator,
									o.oprrest, o.oprjoin)
					  FROM pg_operator o WHERE o.oid = m.objid)
				WHEN m.classid = 'pg_cast'::regclass
				THEN (SELECT format('%s context=%s method=%s', ca.castfunc::regprocedure, ca.castcontext, ca.castmethod)
					  FROM pg_cast ca WHERE ca.oid = m.objid) END,
		   NULL
	FROM member m
	WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_class'::regclass, 'pg_type'::regclass)
	UNION ALL
	-- columns of member relations, in their order
	SELECT format('%s column %s %s', c.oid::regclass, a.attnum, a.attname),
		   format('%s not_null=%s default=%s', format_type(a.atttypid, a.atttypmod), a.attnotnull,
				  pg_get_expr(ad.adbin, ad.adrelid)),
		   a.attacl::text
	FROM member m
	JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
	JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	UNION ALL
	-- constraints of member tables
	SELECT format('%s constraint %s', co.conrelid::regclass, co.conname), pg_get_constraintdef(co.oid), NULL
	FROM pg_constraint co
	WHERE co.conrelid IN (SELECT m.objid FROM member m WHERE m.classid = 'pg_class'::regclass)
	UNION ALL
	-- indexes of member tables
	SELECT format('index %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid),
		   (SELECT format('options=%s', ic.reloptions) FROM pg_class ic WHERE ic.oid = i.indexrelid)
	FROM pg_index i
	WHERE i.indrelid IN (SELECT m.objid FROM member m WHERE m.classid = 'pg_class'::regclass)
	UNION ALL
	-- triggers of member tables, enabled or not
	SELECT format('%s trigger %s', tg.tgrelid::regclass, tg.tgname),
		   format('%s enabled=%s', pg_get_triggerdef(tg.oid), tg.tgenabled), NULL
	FROM pg_trigger tg
	WHERE tg.tgrelid IN (SELECT m.objid FROM member m WHERE m.classid = 'pg_class'::regclass)
	  AND NOT tg.tgisinternal
	UNION ALL
	-- foreign keys' internal triggers: enabled or disabled (statement-level checks replace some)
	SELECT format('%s internal trigger for %s %s', tg.tgrelid::regclass, co.conname, tg.tgfoid::regproc),
		   format('enabled=%s', tg.tgenabled), NULL
	FROM pg_trigger tg
	JOIN pg_constraint co ON co.oid = tg.tgconstraint
	WHERE tg.tgrelid IN (SELECT m.objid FROM member m WHERE m.classid = 'pg_class'::regclass)
	  AND tg.tgisinternal
	UNION ALL
	-- comments on anything in the schema, columns included
	SELECT format('comment on %s', pg_describe_object(ds.classoid, ds.objoid, ds.objsubid)), ds.description, NULL
	FROM pg_description ds
	WHERE (ds.classoid, ds.objoid) IN (SELECT m.classid, m.objid FROM member m)
	   OR (ds.classoid = 'pg_constraint'::regclass
		   AND ds.objoid IN (SELECT co.oid FROM pg_constraint co
							 WHERE co.connamespace = 'billing'::regnamespace))
	   OR (ds.classoid = 'pg_trigger'::regclass
		   AND ds.objoid IN (SELECT tg.oid FROM pg_trigger tg
							 WHERE tg.tgrelid IN (SELECT m.objid FROM member m WHERE m.classid = 'pg_class'::regclass)))
	UNION ALL
	-- what pg_dump dumps of the extension's tables
	SELECT 'extension config', format('%s where %s', cfg.tbl::regclass, cfg.cond), NULL
	FROM pg_extension e,
		 LATERAL unnest(e.extconfig, e.extcondition) AS cfg(tbl, cond)
	WHERE e.extname = 'billing'
)
SELECT object, definition, acl FROM described ORDER BY object, definition, acl;
