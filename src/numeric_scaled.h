/*
 * numeric_scaled.h
 *		Exact conversions between numeric and scaled integers, so hot loops
 *		can add money in int64/int128 instead of allocating numerics.
 */
#ifndef NUMERIC_SCALED_H
#define NUMERIC_SCALED_H

#include "postgres.h"

#include "utils/numeric.h"

/*
 * Read a numeric datum (possibly with a short varlena header, never
 * detoasted into a copy) as value * 10^scale in an int64.  Returns false
 * when the value is NaN/infinite, has more than "scale" decimals, or does not
 * fit; the caller then takes its exact numeric path.
 */
extern bool numeric_datum_to_scaled_int64(Datum num, int scale, int64 *result);

/* value / 10^scale as a numeric with exactly "scale" decimals. */
extern Numeric int128_scaled_to_numeric(int128 value, int scale);

/*
 * Trailing zeros off a non-negative value * 10^scale, as trim_scale would:
 * value and scale shrink together.
 */
extern void scaled_trim_zeros(int128 *value, int *scale);

/* Thin wrappers over numeric.c's SQL-callable functions. */
extern Numeric numeric_add_n(Numeric a, Numeric b);
extern Numeric numeric_sub_n(Numeric a, Numeric b);
extern int	numeric_cmp_n(Numeric a, Numeric b);
extern Numeric numeric_mul_n(Numeric a, Numeric b);
extern Numeric numeric_round_n(Numeric a, int scale);
extern Numeric numeric_pow10(int exponent);

/*
 * Zero, made once per backend and shared: numerics are never changed in
 * place, and a run asks for zero several times per subscription.
 */
extern Numeric numeric_zero(void);

/*
 * numerator / denominator rounded half away from zero to "scale" decimals,
 * trailing zeros removed.  Used for every unrounded proration result.
 */
extern Numeric numeric_div_round_trim(Numeric numerator, int64 denominator, int scale);

/*
 * Raise 22003 when an amount is NaN or infinite: money is a finite number.
 * "what" names the argument in the message ("amount", "weight").
 */
extern void numeric_check_finite(Numeric value, const char *what);

/* Digits kept by prorate() and prorate_agg(): exact to this many decimals. */
#define PRORATE_RESULT_SCALE	20

#endif							/* NUMERIC_SCALED_H */
