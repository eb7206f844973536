/*
 * numeric_scaled.c
 *		Exact numeric <-> scaled integer conversions.
 *
 * numeric_datum_to_scaled_int64 reads numeric's on-disk format directly.
 * That format is fixed by pg_upgrade compatibility (it has not changed since
 * PostgreSQL 9.1 added the short header), and reading it lets prorate_agg add
 * a row without a single palloc.  Anything unusual falls back to the caller's
 * exact numeric path, so the shortcut can only be faster, never different.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "numeric_scaled.h"

/* From numeric.c: the on-disk header bits. */
#define NUM_SIGN_MASK			0xC000
#define NUM_NEG					0x4000
#define NUM_SHORT				0x8000
#define NUM_SPECIAL				0xC000
#define NUM_SHORT_SIGN_MASK		0x2000
#define NUM_SHORT_WEIGHT_SIGN	0x0040
#define NUM_SHORT_WEIGHT_MASK	0x003F
#define NUM_NBASE				10000
#define NUM_DEC_DIGITS			4

static const int64 pow10_table[19] = {
	1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL, 10000000LL,
	100000000LL, 1000000000LL, 10000000000LL, 100000000000LL,
	1000000000000LL, 10000000000000LL, 100000000000000LL,
	1000000000000000LL, 10000000000000000LL, 100000000000000000LL,
	1000000000000000000LL
};

bool
numeric_datum_to_scaled_int64(Datum num, int scale, int64 *result)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(num);
	const char *data;
	Size		len;
	uint16		header;
	int			weight;
	bool		negative;
	const int16 *digits;
	int			ndigits;
	int128		acc = 0;

	Assert(scale >= 0 && scale <= 18);

	/* compressed or out-of-line values take the slow path */
	if (VARATT_IS_EXTENDED(v) && !VARATT_IS_SHORT(v))
		return false;

	data = VARDATA_ANY(v);
	len = VARSIZE_ANY_EXHDR(v);
	if (len < sizeof(uint16))
		return false;
	memcpy(&header, data, sizeof(uint16));

	if ((header & NUM_SIGN_MASK) == NUM_SPECIAL)
		return false;			/* NaN, +/-Infinity */
	if ((header & NUM_SIGN_MASK) == NUM_SHORT)
	{
		negative = (header & NUM_SHORT_SIGN_MASK) != 0;
		weight = (header & NUM_SHORT_WEIGHT_SIGN) ?
			(int) (~NUM_SHORT_WEIGHT_MASK | (header & NUM_SHORT_WEIGHT_MASK)) :
			(int) (header & NUM_SHORT_WEIGHT_MASK);
		data += sizeof(uint16);
		len -= sizeof(uint16);
	}
	else
	{
		int16		w;

		if (len < 2 * sizeof(uint16))
			return false;
		negative = (header & NUM_SIGN_MASK) == NUM_NEG;
		memcpy(&w, data + sizeof(uint16), sizeof(int16));
		weight = w;
		data += 2 * sizeof(uint16);
		len -= 2 * sizeof(uint16);
	}

	/* digits are int16 base-10000 groups; short headers leave them unaligned */
	digits = (const int16 *) data;
	ndigits = (int) (len / sizeof(int16));

	for (int i = 0; i < ndigits; i++)
	{
		int16		d;
		int			exp10;		/* power of ten this group is worth, scaled */

		memcpy(&d, &digits[i], sizeof(int16));
		if (d == 0)
			continue;
		exp10 = (weight - i) * NUM_DEC_DIGITS + scale;
		if (exp10 < 0)
		{
			/* a group straddling the scale must have zeros below it */
			if (exp10 <= -NUM_DEC_DIGITS || d % pow10_table[-exp10] != 0)
				return false;
			acc += d / pow10_table[-exp10];
		}
		else
		{
			if (exp10 > 18)
				return false;
			acc += (int128) d * pow10_table[exp10];
		}
		if (acc > PG_INT64_MAX)
			return false;
	}

	*result = negative ? -(int64) acc : (int64) acc;
	return true;
}

Numeric
int128_scaled_to_numeric(int128 value, int scale)
{
	/* split into base-10^18 limbs so each converts through int64 */
	const int64 limb = pow10_table[18];
	bool		negative = value < 0;
	uint128		u = negative ? -(uint128) value : (uint128) value;
	int64		lo = (int64) (u % limb);
	int64		mid = (int64) ((u / limb) % limb);
	int64		hi = (int64) (u / limb / limb);
	Numeric		limb_n = int64_to_numeric(limb);
	Numeric		n;

	n = int64_to_numeric(hi);
	n = numeric_add_n(numeric_mul_n(n, limb_n), int64_to_numeric(mid));
	n = numeric_add_n(numeric_mul_n(n, limb_n), int64_to_numeric(lo));
	if (negative)
		n = DatumGetNumeric(DirectFunctionCall1(numeric_uminus, NumericGetDatum(n)));
	if (scale > 0)
		n = numeric_mul_n(n, int64_div_fast_to_numeric(1, scale));	/* exact */
	return n;
}

/*
 * Each int128 division is a library call, not an instruction: the zeros go
 * 18 at a time, then the rest are counted in the last 18 digits in int64 and
 * divided off at once, not one division per digit.
 */
void
scaled_trim_zeros(int128 *value, int *scale)
{
	const int64 limb = pow10_table[18];
	int128		v = *value;
	int			s = *scale;
	int64		low;
	int			n = 0;

	Assert(v >= 0);
	if (v == 0)
	{
		*scale = 0;
		return;
	}
	for (;;)
	{
		int128		high = v <= PG_INT64_MAX ? (int64) v / limb : v / limb;

		low = (int64) (v - high * limb);
		if (low != 0 || s < 18)
			break;
		v = high;
		s -= 18;
	}
	while (n < s && low % 10 == 0)
	{
		low /= 10;
		n++;
	}
	if (n > 0)
		v = v <= PG_INT64_MAX ? (int64) v / pow10_table[n] : v / pow10_table[n];
	*value = v;
	*scale = s - n;
}

Numeric
numeric_add_n(Numeric a, Numeric b)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_add,
											   NumericGetDatum(a), NumericGetDatum(b)));
}

Numeric
numeric_sub_n(Numeric a, Numeric b)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_sub,
											   NumericGetDatum(a), NumericGetDatum(b)));
}

int
numeric_cmp_n(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

Numeric
numeric_mul_n(Numeric a, Numeric b)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_mul,
											   NumericGetDatum(a), NumericGetDatum(b)));
}

Numeric
numeric_round_n(Numeric a, int scale)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_round,
											   NumericGetDatum(a), Int32GetDatum(scale)));
}

Numeric
numeric_div_round_trim(Numeric numerator, int64 denominator, int scale)
{
	Numeric		scaled,
				d,
				q,
				r;

	Assert(denominator > 0);

	/*
	 * Correct rounding without guard digits: q = trunc(numerator * 10^scale
	 * / d) exactly, then the exact remainder decides the last unit, half
	 * away from zero.  Rounding a rounded quotient again could be off by one.
	 */
	scaled = numeric_mul_n(numerator, numeric_pow10(scale));
	d = int64_to_numeric(denominator);
	q = DatumGetNumeric(DirectFunctionCall2(numeric_div_trunc,
											NumericGetDatum(scaled), NumericGetDatum(d)));
	r = DatumGetNumeric(DirectFunctionCall2(numeric_mod,
											NumericGetDatum(scaled), NumericGetDatum(d)));
	r = DatumGetNumeric(DirectFunctionCall1(numeric_abs, NumericGetDatum(r)));
	r = numeric_add_n(r, r);
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(r),
										  NumericGetDatum(d))) >= 0)
	{
		bool		negative = DatumGetInt32(DirectFunctionCall2(numeric_cmp,
																 NumericGetDatum(scaled),
																 NumericGetDatum(numeric_zero()))) < 0;

		q = numeric_add_n(q, int64_to_numeric(negative ? -1 : 1));
	}
	q = numeric_mul_n(q, int64_div_fast_to_numeric(1, scale));
	return DatumGetNumeric(DirectFunctionCall1(numeric_trim_scale, NumericGetDatum(q)));
}

/* 10^exponent as a numeric, exponent >= 0 */
Numeric
numeric_pow10(int exponent)
{
	Numeric		n = int64_to_numeric(1);

	while (exponent > 18)
	{
		n = numeric_mul_n(n, int64_to_numeric(pow10_table[18]));
		exponent -= 18;
	}
	return numeric_mul_n(n, int64_to_numeric(pow10_table[exponent]));
}

Numeric
numeric_zero(void)
{
	static Numeric zero = NULL;

	if (zero == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		zero = int64_to_numeric(0);
		MemoryContextSwitchTo(old);
	}
	return zero;
}

void
numeric_check_finite(Numeric value, const char *what)
{
	if (numeric_is_nan(value) || numeric_is_inf(value))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s must be a finite number", what),
				 errdetail("%s is %s.", what,
						   DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(value))))));
}
