-- Statements of the extension's own bulk writers (an invoice run's documents,
-- lines and first timeline rows, record_payments' payments and allocations) that the
-- statement-level integrity triggers trust (src/run_statements.c says why and
-- how): they are computed from rows the writer holds locked or has just
-- written, and checking their keys again cost a join over every new row.
-- Only a superuser (the writers' SECURITY DEFINER functions) can set the
-- mark; the writer clears it after its statement.

CREATE FUNCTION billing.trust_run_statements(on_off boolean) RETURNS boolean
	AS 'MODULE_PATHNAME', 'billing_trust_run_statements' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION billing.trust_run_statements(boolean) IS
	'Marks (true) or unmarks (false) the statements the current transaction runs next as the extension''s own bulk writes (invoice runs, record_payments), which the statement-level integrity triggers skip; only for a superuser, returns whether the mark is set';

CREATE FUNCTION billing.run_statement_trusted() RETURNS boolean
	AS 'MODULE_PATHNAME', 'billing_run_statement_trusted' LANGUAGE C STABLE;
COMMENT ON FUNCTION billing.run_statement_trusted() IS
	'Whether the statement being checked is one of the extension''s own bulk writes (see billing.trust_run_statements)';

-- The bulk writer of the runs and record_payments (src/run_writer.c): the
-- rows of a query go into a table as one marked statement, in batches as COPY
-- writes them, with no transition tables for triggers that would skip them; a
-- plain INSERT when the table has any other insert trigger.  The arguments
-- after the query are its parameters $1, $2, ...
CREATE FUNCTION billing.write_run_rows(target regclass, source text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'billing_write_run_rows' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION billing.write_run_rows(regclass, text) IS
	'Writes the rows of the query source into target as one of the extension''s own bulk writes (columns by name, defaults for the rest, constraints and indexes as an INSERT); superuser only, returns the rows written';

CREATE FUNCTION billing.write_run_rows(target regclass, source text, VARIADIC params "any") RETURNS bigint
	AS 'MODULE_PATHNAME', 'billing_write_run_rows' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION billing.write_run_rows(regclass, text, "any") IS
	'billing.write_run_rows(target, source) with the parameters $1, $2, ... of source';
