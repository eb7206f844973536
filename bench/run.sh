#!/usr/bin/env bash
# First benchmark of the billing extension.  Run as root:
#
#   bash bench/run.sh                      # 10M rows, ~10 minutes on 2 cores
#   BENCH_ROWS=1000000 bash bench/run.sh   # quick run
#
# Environment:
#   BENCH_ROWS     rows of proration_input (default 10000000); the
#                  subscriptions of Figure B are BENCH_ROWS / 10
#   BENCH_RUNS     timed runs per query after one warm-up (default 3)
#   BENCH_REUSE=1  keep the existing billing_bench database and its data if
#                  it was generated with the same BENCH_ROWS (skips the load)
#   BILLING_PGPORT as for scripts/test.sh
#
# What it does: installs missing packages, builds and installs the extension
# (make, make install in this checkout) and starts or reuses the throwaway
# cluster, all through scripts/lib.sh; recreates the database billing_bench
# with CREATE EXTENSION billing; loads bench/gen_core.sql; then times
#   Figure A   prorate_agg against the same sum written as a SQL expression,
#              over the whole table and grouped (~100k groups), serially,
#              plus parallel (2 workers) and scan-floor lines;
#   Figure B   billing_periods() against a generate_series equivalent,
#              as a LATERAL function scan and in the SELECT list,
# checks that ours and the baseline agree, and prints a table.
#
# Timing: psql's \timing (client wall clock) of queries that return one row,
# so it is the server's execution time plus under a millisecond of parse,
# plan and round trip.  Each query runs once as EXPLAIN (ANALYZE, TIMING OFF)
# as a warm-up (its plan goes to the raw log), then BENCH_RUNS times, ours and
# baseline alternating; the table shows the median.
#
# Raw output: bench/results/<UTC timestamp>-<rows>/ (summary.txt, one log per
# figure, the data load, the machine).  bench/results/latest points to it.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/lib.sh
source "$BENCH_DIR/../scripts/lib.sh"
# shellcheck source=bench/queries.sh
source "$BENCH_DIR/queries.sh"

BENCH_ROWS=${BENCH_ROWS:-10000000}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_REUSE=${BENCH_REUSE:-0}
BENCH_DB=billing_bench
case $BENCH_ROWS in '' | *[!0-9]* | 0) die "BENCH_ROWS must be a positive integer (got '$BENCH_ROWS')" ;; esac
case $BENCH_RUNS in '' | *[!0-9]* | 0) die "BENCH_RUNS must be a positive integer (got '$BENCH_RUNS')" ;; esac

# The grouped figure keeps ~100k aggregate states in memory: give the hash
# aggregate room so neither side spills to disk (both would, at 4MB).
GROUPED_WORK_MEM=512MB

START_SECONDS=$SECONDS

setup_all
[ -z "$SETUP_FAILED" ] || die "setup step '$SETUP_FAILED' failed (see its output above)"

RESULTS=$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)-$BENCH_ROWS
mkdir -p "$RESULTS"
ln -sfn "$(basename "$RESULTS")" "$BENCH_DIR/results/latest"
say "results: $RESULTS"

psql_bench() { psql -X -v ON_ERROR_STOP=1 -d "$BENCH_DB" "$@"; }

# ------------------------------------------------------------ machine info

{
	echo "date -u:    $(date -u)"
	echo "git HEAD:   $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
	echo "git status (src/, sql/, Makefile):"
	git -C "$REPO_ROOT" status --short -- src sql Makefile 2>/dev/null | sed 's/^/    /' || true
	echo "nproc:      $(nproc)"
	echo "uname -a:   $(uname -a)"
	echo
	echo "\$ free -h"
	free -h
	echo
	echo "\$ lscpu | head -20"
	lscpu | head -20
	echo
	echo "BENCH_ROWS=$BENCH_ROWS BENCH_RUNS=$BENCH_RUNS GROUPED_WORK_MEM=$GROUPED_WORK_MEM"
	echo
	psql -X -d postgres -c 'SELECT version()' \
		-c "SELECT name, setting, unit FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', 'hash_mem_multiplier', 'jit', 'jit_above_cost', 'max_parallel_workers_per_gather', 'max_parallel_workers', 'max_worker_processes', 'fsync', 'effective_cache_size') ORDER BY name"
} >"$RESULTS/machine.txt" 2>&1
PG_VERSION_STR=$(psql -X -At -d postgres -c 'SHOW server_version')

# ------------------------------------------------------------ data

data_ok() {
	[ "$BENCH_REUSE" = 1 ] || return 1
	local n
	n=$(psql -X -At -d "$BENCH_DB" -c 'SELECT count(*) FROM proration_input' 2>/dev/null) || return 1
	[ "$n" = "$BENCH_ROWS" ]
}

if data_ok; then
	say "data: reusing $BENCH_DB ($BENCH_ROWS rows)"
	psql_bench -c "ALTER EXTENSION billing UPDATE" >/dev/null 2>&1 || true
else
	recreate_db "$BENCH_DB"
	psql_bench -q -c 'CREATE EXTENSION billing'
	say "data: bench/gen_core.sql with rows=$BENCH_ROWS (10M rows take about a minute)"
	t0=$SECONDS
	psql_bench -v rows="$BENCH_ROWS" -f "$BENCH_DIR/gen_core.sql" >"$RESULTS/load.log" 2>&1 ||
		{ tail -n 20 "$RESULTS/load.log" >&2; die "data generation failed (see $RESULTS/load.log)"; }
	say "data: loaded in $((SECONDS - t0)) s"
fi
# A helper aggregate for the diagnostics only (not part of the extension):
# prorate_agg's transition function with its serial function as a trivial
# final function.
psql_bench -q -c 'SET client_min_messages = warning' \
	-c 'DROP AGGREGATE IF EXISTS bench_prorate_transonly(numeric, billing.billing_period, billing.billing_period)' \
	-c 'CREATE AGGREGATE bench_prorate_transonly(numeric, billing.billing_period, billing.billing_period) (
		SFUNC = billing.prorate_agg_transfn, STYPE = internal, SSPACE = 128,
		FINALFUNC = billing.prorate_agg_serialfn)'
psql_bench -c "SELECT pg_size_pretty(pg_table_size('proration_input')) AS proration_input,
	pg_size_pretty(pg_table_size('bench_subscription')) AS bench_subscription" >>"$RESULTS/load.log"

# ------------------------------------------------------------ timing

declare -A MEDIAN MINT MAXT RESULT

# time_queries FIGURE "SET ...;" LABEL SQL [LABEL SQL ...]
# One psql session: the settings, a warm-up EXPLAIN (ANALYZE, TIMING OFF) of
# each query, then BENCH_RUNS rounds running the queries in turn.  Sets
# MEDIAN/MINT/MAXT[FIGURE.LABEL] (seconds) and RESULT[FIGURE.LABEL] (the
# result row of the first timed run, "|"-separated).
time_queries() {
	local fig=$1 settings=$2
	shift 2
	local labels=() sqls=() i r
	while [ "$#" -gt 0 ]; do
		labels+=("$1")
		sqls+=("$2")
		shift 2
	done
	local script=$RESULTS/$fig.sql log=$RESULTS/$fig.log
	{
		echo "$settings"
		for i in "${!labels[@]}"; do
			echo "\\echo @@explain ${labels[$i]}"
			echo "EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF) ${sqls[$i]};"
		done
		echo '\timing on'
		for r in $(seq 1 "$BENCH_RUNS"); do
			for i in "${!labels[@]}"; do
				echo "\\echo @@run ${labels[$i]} $r"
				echo "${sqls[$i]};"
			done
		done
	} >"$script"
	say "figure $fig: ${labels[*]} (1 warm-up + $BENCH_RUNS runs each)"
	if ! psql_bench -q -At -f "$script" >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		die "figure $fig failed (see $log)"
	fi
	local label parsed
	for label in "${labels[@]}"; do
		# the "Time: N ms" lines and first result row of this label's runs
		parsed=$(awk -v want="$label" '
			/^@@/ { cur = ($1 == "@@run" && $2 == want); first = ($3 == "1"); next }
			cur && /^Time: / { print "T " $2 / 1000; next }
			cur && first && !seen { print "R " $0; seen = 1 }' "$log")
		RESULT[$fig.$label]=$(sed -n 's/^R //p' <<<"$parsed")
		read -r "MINT[$fig.$label]" "MEDIAN[$fig.$label]" "MAXT[$fig.$label]" < <(
			sed -n 's/^T //p' <<<"$parsed" | sort -g |
				awk '{ v[NR] = $1 } END { printf "%.3f %.3f %.3f\n", v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[NR] }')
		printf '    %-10s median %8.3f s   (min %.3f, max %.3f)   result %s\n' "$label" \
			"${MEDIAN[$fig.$label]}" "${MINT[$fig.$label]}" "${MAXT[$fig.$label]}" "${RESULT[$fig.$label]}" |
			tee -a "$RESULTS/timings.txt"
	done
}

SERIAL='SET max_parallel_workers_per_gather = 0;'
PARALLEL='SET max_parallel_workers_per_gather = 2; SET parallel_leader_participation = on;'
GROUPED="$SERIAL SET work_mem = '$GROUPED_WORK_MEM';"

time_queries A "$SERIAL" ours "$Q_A_OURS" baseline "$Q_A_BASE" scan "$Q_A_SCAN"
time_queries AG "$GROUPED" ours "$Q_AG_OURS" baseline "$Q_AG_BASE" scan "$Q_AG_SCAN" transonly "$Q_AG_TRANSONLY"
time_queries AP "$PARALLEL" ours "$Q_A_OURS" baseline "$Q_A_BASE"
time_queries B "$SERIAL" ours "$Q_B_OURS" baseline "$Q_B_BASE"
time_queries BT "$SERIAL" ours "$Q_BT_OURS" baseline "$Q_BT_BASE"

# ------------------------------------------------------------ checks

CHECKS=()
check() { # check NAME OK(0/1) DETAIL
	local status=OK
	[ "$2" = 1 ] || status=FAILED
	CHECKS+=("$(printf '%-58s %-6s %s' "$1" "$status" "$3")")
}

say "checks: comparing results"
# Figure A, whole table: the two printed sums, compared in numeric.
read -r a_eq a_diff < <(psql_bench -At -F ' ' -c "SELECT round('${RESULT[A.ours]}'::numeric, 2) = round('${RESULT[A.baseline]}'::numeric, 2),
	abs('${RESULT[A.ours]}'::numeric - '${RESULT[A.baseline]}'::numeric)")
check "A: prorate_agg = SQL sum, rounded to 2 decimals" "$([ "$a_eq" = t ] && echo 1)" \
	"ours ${RESULT[A.ours]}, baseline ${RESULT[A.baseline]}, |difference| $a_diff"
check "A: parallel prorate_agg identical to serial (all digits)" \
	"$([ "${RESULT[AP.ours]}" = "${RESULT[A.ours]}" ] && echo 1)" "parallel ${RESULT[AP.ours]}"

# Figure A grouped: every group, joined (runs both grouped queries once more).
ag_check=$(psql_bench -At -F ' ' -c "SET work_mem = '$GROUPED_WORK_MEM'" -c "$Q_AG_CHECK" | tail -n 1)
read -r ag_groups ag_missing ag_diff ag_maxdiff <<<"$ag_check"
check "AG: every group agrees, rounded to 2 decimals" \
	"$([ "$ag_missing" = 0 ] && [ "$ag_diff" = 0 ] && echo 1)" \
	"$ag_groups groups, $ag_missing missing, $ag_diff differing, max |difference| $ag_maxdiff"
check "AG: grouped totals agree, rounded to 2 decimals" \
	"$(psql_bench -At -c "SELECT CASE WHEN round(split_part('${RESULT[AG.ours]}', '|', 2)::numeric, 2) = round(split_part('${RESULT[AG.baseline]}', '|', 2)::numeric, 2) THEN 1 END")" \
	"ours ${RESULT[AG.ours]}, baseline ${RESULT[AG.baseline]}"

# Figure B: identical row count, total days and hash checksum.
b_ours=$(psql_bench -At -c "$SERIAL" -c "$Q_B_OURS_CHECK" | tail -n 1)
b_base=$(psql_bench -At -c "$SERIAL" -c "$Q_B_BASE_CHECK" | tail -n 1)
check "B: same periods (count | days | hash checksum)" "$([ "$b_ours" = "$b_base" ] && echo 1)" \
	"ours $b_ours, baseline $b_base"
check "BT: SELECT-list forms give the same count and days" \
	"$([ "${RESULT[BT.ours]}" = "${RESULT[B.ours]}" ] && [ "${RESULT[BT.baseline]}" = "${RESULT[B.ours]}" ] && echo 1)" \
	"ours ${RESULT[BT.ours]}, baseline ${RESULT[BT.baseline]}"

# ------------------------------------------------------------ table

B_ROWS=${b_ours%%|*}
ratio() { awk -v o="$1" -v b="$2" 'BEGIN { printf "%.1fx", b / o }'; }
row() { # row FIGURE OURS BASELINE ROWS
	printf '| %-58s | %8s | %12s | %22s | %12s |\n' "$1" "$2" "$3" "$4" "$5"
}
{
	echo "billing benchmark: $BENCH_ROWS rows, PostgreSQL $PG_VERSION_STR, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "median of $BENCH_RUNS runs after 1 warm-up, seconds; serial unless noted"
	echo
	row "figure" "ours (s)" "baseline (s)" "ratio (baseline/ours)" "rows"
	row "----------------------------------------------------------" "--------" "------------" "----------------------" "------------"
	row "A  prorate_agg vs SQL sum, whole table" "${MEDIAN[A.ours]}" "${MEDIAN[A.baseline]}" "$(ratio "${MEDIAN[A.ours]}" "${MEDIAN[A.baseline]}")" "$BENCH_ROWS"
	row "A  grouped, GROUP BY grp (${ag_groups} groups)" "${MEDIAN[AG.ours]}" "${MEDIAN[AG.baseline]}" "$(ratio "${MEDIAN[AG.ours]}" "${MEDIAN[AG.baseline]}")" "$BENCH_ROWS"
	row "A  parallel, 2 workers + leader, whole table" "${MEDIAN[AP.ours]}" "${MEDIAN[AP.baseline]}" "$(ratio "${MEDIAN[AP.ours]}" "${MEDIAN[AP.baseline]}")" "$BENCH_ROWS"
	row "B  billing_periods vs generate_series, LATERAL" "${MEDIAN[B.ours]}" "${MEDIAN[B.baseline]}" "$(ratio "${MEDIAN[B.ours]}" "${MEDIAN[B.baseline]}")" "$B_ROWS"
	row "B  same, set-returning function in SELECT list" "${MEDIAN[BT.ours]}" "${MEDIAN[BT.baseline]}" "$(ratio "${MEDIAN[BT.ours]}" "${MEDIAN[BT.baseline]}")" "$B_ROWS"
	echo
	echo "floors and diagnostics (seconds, median):"
	printf '    A  scan floor  SELECT count(*) FROM proration_input                 %8s\n' "${MEDIAN[A.scan]}"
	printf '    AG hash floor  GROUP BY grp with count(*)                           %8s\n' "${MEDIAN[AG.scan]}"
	printf '    AG prorate_agg transition only (trivial final function)             %8s\n' "${MEDIAN[AG.transonly]}"
	printf '    A  ours above the scan floor: %.3f s; baseline above it: %.3f s (%s)\n' \
		"$(awk -v a="${MEDIAN[A.ours]}" -v f="${MEDIAN[A.scan]}" 'BEGIN { print a - f }')" \
		"$(awk -v a="${MEDIAN[A.baseline]}" -v f="${MEDIAN[A.scan]}" 'BEGIN { print a - f }')" \
		"$(ratio "$(awk -v a="${MEDIAN[A.ours]}" -v f="${MEDIAN[A.scan]}" 'BEGIN { print a - f }')" "$(awk -v a="${MEDIAN[A.baseline]}" -v f="${MEDIAN[A.scan]}" 'BEGIN { print a - f }')")"
	printf '    AG prorate_agg_finalfn, per group: %.1f us\n' \
		"$(awk -v a="${MEDIAN[AG.ours]}" -v t="${MEDIAN[AG.transonly]}" -v g="$ag_groups" 'BEGIN { print (a - t) / g * 1e6 }')"
	echo
	echo "checks:"
	for c in "${CHECKS[@]}"; do echo "    $c"; done
	echo
	echo "raw output: $RESULTS (bench/results/latest); total run time $((SECONDS - START_SECONDS)) s"
} | tee "$RESULTS/summary.txt"

for c in "${CHECKS[@]}"; do
	case $c in *' FAILED '*) die "a check failed (see above)" ;; esac
done
