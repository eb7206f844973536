/*
 * run_statements.h
 *		The mark on the extension's own bulk-writer statements
 *		(run_statements.c).
 */
#ifndef RUN_STATEMENTS_H
#define RUN_STATEMENTS_H

/*
 * Mark (true) what the current (sub)transaction does next as the extension's
 * own bulk writes, or clear the mark (false).  Returns whether the mark is
 * set: only a superuser sets it.
 */
extern bool billing_mark_run_statement(bool on);

#endif							/* RUN_STATEMENTS_H */
