/*
 * pricing.h
 *		The pricing rule: what a quantity costs for one full period.  Shared by
 *		billing.pricing_amount() and the invoicing engine.
 */
#ifndef PRICING_H
#define PRICING_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/numeric.h"

/* Where the tiered models (billing.tiered_amount, PL/pgSQL) are called. */
typedef struct PricingCall
{
	MemoryContext cxt;			/* lives as long as the caller's cache */
	bool		ready;
	FmgrInfo	tiered;
} PricingCall;

/*
 * Unrounded amount of quantity under a model; NULL when the rule gives NULL
 * (no quantity, no unit amount, a volume tier that is not covered).  Any
 * argument but call may be NULL.
 */
extern Numeric pricing_amount(PricingCall *call, text *pricing_model, Numeric unit_amount,
							  Numeric package_size, Datum tiers, bool tiers_null, Numeric quantity);

#endif							/* PRICING_H */
