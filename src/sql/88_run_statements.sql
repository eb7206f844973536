-- Statements of an invoice run that the statement-level integrity triggers
-- trust (src/run_statements.c says why and how): a run computes its
-- documents and lines from rows it holds locked or has just written, and
-- checking their keys again cost a join over every new row.  Only a superuser
-- (the run's SECURITY DEFINER functions) can set the mark; the run clears it
-- after its statement.

CREATE FUNCTION billing.trust_run_statements(on_off boolean) RETURNS boolean
	AS 'MODULE_PATHNAME', 'billing_trust_run_statements' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION billing.trust_run_statements(boolean) IS
	'Marks (true) or unmarks (false) the statements the current transaction runs next as an invoice run''s own writes, which the statement-level integrity triggers skip; only for a superuser, returns whether the mark is set';

CREATE FUNCTION billing.run_statement_trusted() RETURNS boolean
	AS 'MODULE_PATHNAME', 'billing_run_statement_trusted' LANGUAGE C STABLE;
COMMENT ON FUNCTION billing.run_statement_trusted() IS
	'Whether the statement being checked is an invoice run''s own write (see billing.trust_run_statements)';
