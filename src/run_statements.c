/*
 * run_statements.c
 *		Statements of the extension's own bulk writers that the
 *		statement-level integrity triggers may trust.
 *
 * An invoice run writes its documents and lines from rows it has just
 * computed and checked: documents of accounts it holds locked, totals summed
 * from the very lines it inserts next, lines of subscriptions whose watermarks
 * it has just updated, prices its timelines reference, and the first
 * timeline rows of subscriptions its callers hold locked.  record_payments
 * writes payments of accounts it holds locked and allocations to their open
 * documents.  Checking those keys again costs a join over every new row (7.6
 * s of a 1M-line run), to find what cannot be missing.  The writers mark their
 * own statements (run_writer.c marks each statement it writes;
 * billing.trust_run_statements() marks the next one from SQL);
 * billing.check_foreign_keys() and billing.invoice_line_guard_insert() return
 * at once for them.
 *
 * The mark is the current top-level transaction and subtransaction, set only
 * by a superuser (the extension's SECURITY DEFINER run functions; anyone else
 * gets no mark and the usual checks) and cleared by the run right after its
 * statement.  A statement that fails takes its (sub)transaction with it, and
 * neither id comes back: a later statement never finds a stale mark.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"

#include "run_statements.h"

static TransactionId marked_xid = InvalidTransactionId;
static SubTransactionId marked_subxid = InvalidSubTransactionId;

bool
billing_mark_run_statement(bool on)
{
	marked_xid = InvalidTransactionId;
	marked_subxid = InvalidSubTransactionId;
	if (!on || !superuser())
		return false;
	marked_xid = GetTopTransactionId();
	marked_subxid = GetCurrentSubTransactionId();
	return true;
}

/*
 * trust_run_statements(on boolean) -> boolean
 *		Mark (or unmark) what the current (sub)transaction does next as the
 *		extension's own bulk writes; true when the mark is set.
 */
PG_FUNCTION_INFO_V1(billing_trust_run_statements);
Datum
billing_trust_run_statements(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(billing_mark_run_statement(!PG_ARGISNULL(0) && PG_GETARG_BOOL(0)));
}

/*
 * run_statement_trusted() -> boolean
 *		Whether the statement being checked is a marked one (see above).
 */
PG_FUNCTION_INFO_V1(billing_run_statement_trusted);
Datum
billing_run_statement_trusted(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(TransactionIdIsValid(marked_xid) &&
				   TransactionIdEquals(marked_xid, GetTopTransactionIdIfAny()) &&
				   marked_subxid == GetCurrentSubTransactionId());
}
