/*
 * currency.h
 *		Minor units of a currency, read from billing.currency.
 */
#ifndef CURRENCY_H
#define CURRENCY_H

#include "postgres.h"

#include "fmgr.h"

/*
 * Minor units (decimals) of a currency code.  Cached per call site for the
 * duration of a query (the functions using it are STABLE); an unknown code
 * raises 22023.
 */
extern int	billing_currency_minor_units(FunctionCallInfo fcinfo, text *code);

#endif							/* CURRENCY_H */
