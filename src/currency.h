/*
 * currency.h
 *		Minor units of a currency, read from billing.currency.
 */
#ifndef CURRENCY_H
#define CURRENCY_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/numeric.h"

/*
 * Minor units (decimals) of a currency code.  The last few codes are cached
 * per call site for the duration of a query (the functions using it are
 * STABLE), a hit without an allocation; an unknown code raises 22023.
 */
extern int	billing_currency_minor_units(FunctionCallInfo fcinfo, text *code);

/* The same lookup, uncached, for C code with a code in hand. */
extern int	billing_currency_minor_units_of(const char *code);

/* round_money(): amount rounded half away from zero to minor_units decimals (money.c) */
extern Numeric money_round(Numeric amount, int minor_units);

#endif							/* CURRENCY_H */
