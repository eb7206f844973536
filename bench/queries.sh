# shellcheck shell=bash
# shellcheck disable=SC2034  # the Q_* variables are used by bench/run.sh
# The benchmark queries of bench/run.sh, one shell variable each, so that
# run.sh, BENCHMARKS.md and anyone re-running a single query by hand use the
# same text.  Sourced by bench/run.sh.
#
# Every timed query returns exactly one row, so psql's \timing measures the
# server's work, not the transfer of a result set.  Grouped queries wrap the
# GROUP BY in an outer count(*), sum(x): the outer sum must reference x, or
# the planner would drop the unused aggregate from the subquery
# (remove_unused_subquery_outputs) and time nothing.

# ---------------------------------------------------------------- Figure A

# The number of days part and whole share, clamped at 0, as plain SQL.
A_USED_DAYS='greatest(0, least(billing.period_end(part), billing.period_end(whole)) - greatest(billing.period_start(part), billing.period_start(whole)))'
# prorate() written out in SQL: amount * used days / days(whole), per row.
A_SQL_TERM="amount * $A_USED_DAYS::numeric / billing.period_days(whole)"

Q_A_OURS='SELECT billing.prorate_agg(amount, part, whole) FROM proration_input'
Q_A_BASE="SELECT sum($A_SQL_TERM) FROM proration_input"

# Grouped queries are written once with @KEY@ for the group key column.
AG_OURS='SELECT count(*), sum(x) FROM (SELECT @KEY@, billing.prorate_agg(amount, part, whole) AS x FROM proration_input GROUP BY @KEY@) g'
AG_BASE="SELECT count(*), sum(x) FROM (SELECT @KEY@, sum($A_SQL_TERM) AS x FROM proration_input GROUP BY @KEY@) g"
Q_AG_OURS=${AG_OURS//@KEY@/grp}
Q_AG_BASE=${AG_BASE//@KEY@/grp}
# The same grouped by grp_seq: as many groups, but each group's rows stored
# together (as invoice lines are), so the hash table is not hit at random.
Q_AGC_OURS=${AG_OURS//@KEY@/grp_seq}
Q_AGC_BASE=${AG_BASE//@KEY@/grp_seq}

# Diagnostics (no baseline): the floors under Figure A.
Q_A_SCAN='SELECT count(*) FROM proration_input'
AG_SCAN='SELECT count(*), sum(x) FROM (SELECT @KEY@, count(*) AS x FROM proration_input GROUP BY @KEY@) g'
# prorate_agg's transition function with a trivial final function
# (bench_prorate_transonly, created by run.sh in the bench database only):
# the grouped time minus this one is the cost of prorate_agg_finalfn.
AG_TRANSONLY='SELECT count(*), sum(length(x)) FROM (SELECT @KEY@, bench_prorate_transonly(amount, part, whole) AS x FROM proration_input GROUP BY @KEY@) g'
Q_AG_SCAN=${AG_SCAN//@KEY@/grp}
Q_AGC_SCAN=${AG_SCAN//@KEY@/grp_seq}
Q_AG_TRANSONLY=${AG_TRANSONLY//@KEY@/grp}
Q_AGC_TRANSONLY=${AG_TRANSONLY//@KEY@/grp_seq}

# Per-group agreement of the grouped variant (not timed).
Q_AG_CHECK="SELECT count(*) AS groups,
	count(*) FILTER (WHERE o.x IS NULL OR b.x IS NULL) AS groups_missing,
	count(*) FILTER (WHERE round(o.x, 2) IS DISTINCT FROM round(b.x, 2)) AS groups_differing_at_2_decimals,
	max(abs(o.x - b.x)) AS max_abs_difference
FROM (SELECT grp, billing.prorate_agg(amount, part, whole) AS x FROM proration_input GROUP BY grp) o
FULL JOIN (SELECT grp, sum($A_SQL_TERM) AS x FROM proration_input GROUP BY grp) b USING (grp)"

# ---------------------------------------------------------------- Figure B

# billing_periods() over every subscription, as a LATERAL function scan.
B_OURS_FROM="bench_subscription s CROSS JOIN LATERAL billing.billing_periods(s.anchor, 'month', 1, s.from_date, s.to_date) AS p"

# The same periods from generate_series.  Boundary k of a monthly cycle is
# anchor + k months: PostgreSQL's date + interval clamps the day to the
# target month's length and is computed from the anchor every time, so a
# cycle on the 31st gives Jan 31, Feb 28, Mar 31 (generate_series(date,
# date, '1 month') would add to the previous value and drift to the 28th).
# make_interval(months => k) rather than k * interval '1 month': same
# result, about a third faster (no float multiplication).
# k runs from the month before from_date's month (the boundary in from_date's
# own month may lie after from_date: then the period containing from_date
# starts a month earlier) to to_date's month, and every period is clipped to
# [from_date, to_date); clipped periods that come out empty are dropped,
# which also gives no rows when from_date >= to_date.
B_BASE_K_FROM='(extract(year FROM s.from_date)::int * 12 + extract(month FROM s.from_date)::int) - (extract(year FROM s.anchor)::int * 12 + extract(month FROM s.anchor)::int) - 1'
B_BASE_K_TO='(extract(year FROM s.to_date)::int * 12 + extract(month FROM s.to_date)::int) - (extract(year FROM s.anchor)::int * 12 + extract(month FROM s.anchor)::int)'
B_BASE_FROM="bench_subscription s
	CROSS JOIN LATERAL generate_series($B_BASE_K_FROM, $B_BASE_K_TO) AS k
	CROSS JOIN LATERAL (SELECT greatest((s.anchor + make_interval(months => k))::date, s.from_date) AS pstart,
	                           least((s.anchor + make_interval(months => k + 1))::date, s.to_date) AS pend) AS b"
B_BASE_WHERE='b.pstart < b.pend'

Q_B_OURS="SELECT count(*), sum(billing.period_days(p)) FROM $B_OURS_FROM"
Q_B_BASE="SELECT count(*), sum(b.pend - b.pstart) FROM $B_BASE_FROM WHERE $B_BASE_WHERE"

# The same two, with the set-returning function in the SELECT list
# (ProjectSet: value per call, no tuplestore per subscription).
Q_BT_OURS="SELECT count(*), sum(billing.period_days(p)) FROM (SELECT billing.billing_periods(s.anchor, 'month', 1, s.from_date, s.to_date) AS p FROM bench_subscription s) x"
Q_BT_BASE="SELECT count(*), sum(pend - pstart) FROM (
	SELECT greatest((anchor + make_interval(months => k))::date, from_date) AS pstart,
	       least((anchor + make_interval(months => k + 1))::date, to_date) AS pend
	FROM (SELECT s.anchor, s.from_date, s.to_date,
	             generate_series($B_BASE_K_FROM, $B_BASE_K_TO) AS k
	      FROM bench_subscription s) x) y
WHERE pstart < pend"

# Checksums (not timed): row count, total days, and the sum of a hash of
# (subscription id, start day, end day) of every period.
B_HASH_EXPR='hashint8((s.id::bigint << 32) | ((%s - date '"'"'2000-01-01'"'"')::bigint << 16) | (%s - date '"'"'2000-01-01'"'"'))'
# shellcheck disable=SC2059
Q_B_OURS_CHECK="SELECT count(*), sum(billing.period_days(p)), sum($(printf "$B_HASH_EXPR" 'billing.period_start(p)' 'billing.period_end(p)')) FROM $B_OURS_FROM"
# shellcheck disable=SC2059
Q_B_BASE_CHECK="SELECT count(*), sum(b.pend - b.pstart), sum($(printf "$B_HASH_EXPR" 'b.pstart' 'b.pend')) FROM $B_BASE_FROM WHERE $B_BASE_WHERE"
