/*
 * prorate_sum.h
 *		The exact sum behind prorate_agg(): Σ amount * days(part ∩ whole) /
 *		days(whole), divided once per denominator.  Shared by the aggregate
 *		and the invoicing engine.
 */
#ifndef PRORATE_SUM_H
#define PRORATE_SUM_H

#include "postgres.h"

#include "utils/numeric.h"

#include "billing_period.h"

typedef struct ProrateAggState ProrateAggState;
typedef ProrateAggState ProrateSum;

extern ProrateSum *prorate_sum_create(MemoryContext cxt);
extern void prorate_sum_add(ProrateSum *sum, Datum amount, BillingPeriod part, BillingPeriod whole,
							MemoryContext cxt);
/* NULL when nothing was added */
extern Numeric prorate_sum_result(const ProrateSum *sum);

#endif							/* PRORATE_SUM_H */
