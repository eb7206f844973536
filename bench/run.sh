#!/usr/bin/env bash
# First benchmark of the billing extension.  Run as root:
#
#   bash bench/run.sh                      # 10M rows, ~8 minutes on 2 idle cores
#   BENCH_ROWS=1000000 bash bench/run.sh   # quick run
#
# Environment:
#   BENCH_ROWS     rows of proration_input (default 10000000); the
#                  subscriptions of Figure B are BENCH_ROWS / 10
#   BENCH_RUNS     timed runs per query after one warm-up (default 3)
#   BENCH_REUSE=1  keep the existing billing_bench database and its data if
#                  it was generated with the same BENCH_ROWS (skips the load)
#   BENCH_QUIET_WAIT  seconds to wait, before each figure, for the machine to
#                  go idle (default 90; 0: don't wait).  Other work on a
#                  2-core machine (a test run, another cluster) is measured
#                  too; activity.txt in the results shows what ran.
#   BILLING_PGPORT as for scripts/test.sh
#
# What it does: installs missing packages, builds and installs the extension
# (make, make install in this checkout) and starts or reuses the throwaway
# cluster, all through scripts/lib.sh; recreates the database billing_bench
# with CREATE EXTENSION billing; loads bench/gen_core.sql; then times
#   Figure A   prorate_agg against the same sum written as a SQL expression,
#              over the whole table and grouped (~100k groups: by a random
#              key, and by a key whose rows are stored together), serially,
#              plus parallel (2 workers) and scan/hash-floor lines;
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
# Raw output: bench/results/<UTC timestamp>-<rows>/: summary.txt, timings.txt,
# <figure>.sql and <figure>.log (plans and every run), load.log, machine.txt,
# activity.txt (load and other work during each figure).  bench/results/latest
# points to the newest.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/lib.sh
source "$BENCH_DIR/../scripts/lib.sh"
# shellcheck source=bench/queries.sh
source "$BENCH_DIR/queries.sh"

BENCH_ROWS=${BENCH_ROWS:-10000000}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_REUSE=${BENCH_REUSE:-0}
BENCH_QUIET_WAIT=${BENCH_QUIET_WAIT:-90}
BENCH_DB=billing_bench
case $BENCH_ROWS in '' | *[!0-9]* | 0) die "BENCH_ROWS must be a positive integer (got '$BENCH_ROWS')" ;; esac
case $BENCH_RUNS in '' | *[!0-9]* | 0) die "BENCH_RUNS must be a positive integer (got '$BENCH_RUNS')" ;; esac
case $BENCH_QUIET_WAIT in '' | *[!0-9]*) die "BENCH_QUIET_WAIT must be a number of seconds (got '$BENCH_QUIET_WAIT')" ;; esac

# The grouped figure keeps ~100k aggregate states in memory: give the hash
# aggregate room so neither side spills to disk (both would, at 4MB).
GROUPED_WORK_MEM=512MB

START_SECONDS=$SECONDS
# A benchmark on a busy 2-core machine measures the other work: say so.
LOAD_AT_START=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD_AT_START" 'BEGIN { exit !(l > 0.7) }'; then
	warn "load average is $LOAD_AT_START before the benchmark: something else is running; figures may be noisy (activity.txt in the results lists the busy processes)"
fi

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
# Another `make install` during the run (e.g. from a test run) would swap the
# library between figures: remember what was installed.
SO_PATH=$("$PG_CONFIG" --pkglibdir)/billing.so
SO_SUM=$(md5sum "$SO_PATH" | cut -d' ' -f1)
echo "billing.so: $SO_PATH md5 $SO_SUM" >>"$RESULTS/machine.txt"

# ------------------------------------------------------------ data

data_ok() {
	[ "$BENCH_REUSE" = 1 ] || return 1
	local n
	n=$(psql -X -At -d "$BENCH_DB" -c 'SELECT count(grp_seq) FROM proration_input' \
		-c 'SELECT count(*) FROM bench_subscription' 2>/dev/null | head -n 1) || return 1
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

declare -A MEDIAN MINT MAXT RESULT TIMES
NOISY=()

# Percent of all CPUs busy over the next 2 seconds.
cpu_busy() {
	local a b
	read -r -a a < /proc/stat
	sleep 2
	read -r -a b < /proc/stat
	awk -v u1="${a[1]}" -v n1="${a[2]}" -v s1="${a[3]}" -v i1="${a[4]}" -v w1="${a[5]}" -v q1="${a[6]}" -v r1="${a[7]}" -v t1="${a[8]}" \
		-v u2="${b[1]}" -v n2="${b[2]}" -v s2="${b[3]}" -v i2="${b[4]}" -v w2="${b[5]}" -v q2="${b[6]}" -v r2="${b[7]}" -v t2="${b[8]}" \
		'BEGIN { tot = (u2+n2+s2+i2+w2+q2+r2+t2) - (u1+n1+s1+i1+w1+q1+r1+t1); idle = (i2+w2) - (i1+w1)
		         printf "%d\n", (tot > 0 ? 100 * (tot - idle) / tot : 0) }'
}

# Before each figure, wait up to BENCH_QUIET_WAIT seconds for the machine
# to be idle (under 10% CPU busy for 3 samples of 2 s): on a shared 2-core
# machine, a test run elsewhere would otherwise be measured too.
wait_quiet() {
	local waited=0 quiet=0 busy
	[ "$BENCH_QUIET_WAIT" -gt 0 ] || return 0
	while [ "$quiet" -lt 3 ]; do
		busy=$(cpu_busy)
		waited=$((waited + 2))
		if [ "$busy" -lt 10 ]; then quiet=$((quiet + 1)); else quiet=0; fi
		if [ "$waited" -ge "$BENCH_QUIET_WAIT" ]; then
			warn "figure $1: the machine is still busy (${busy}% CPU) after ${waited} s; measuring anyway"
			echo "$(date -u +%H:%M:%S)  figure $1: still busy (${busy}%) after ${waited} s, measured anyway" >>"$RESULTS/activity.txt"
			return 0
		fi
	done
	[ "$waited" -le 6 ] || echo "$(date -u +%H:%M:%S)  figure $1: waited ${waited} s for an idle machine" >>"$RESULTS/activity.txt"
}

# The load average, other sessions doing work on this cluster (e.g. a test
# run) and the busiest processes of the machine (other clusters, compilers),
# into activity.txt: the first thing to look at when a figure is noisy.
activity() {
	{
		printf '%s  %s  load %s  other active sessions here: ' "$(date -u +%H:%M:%S)" "$1" "$(cut -d' ' -f1-3 /proc/loadavg)"
		psql -X -At -d postgres -c "SELECT count(*) || coalesce(' (' || string_agg(DISTINCT datname, ', ') || ')', '')
			FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
		ps -eo pcpu=,etime=,args= --sort=-pcpu | awk '$1 >= 20 { print "        busy: " substr($0, 1, 110) }'
	} >>"$RESULTS/activity.txt" 2>&1 || true
}


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
			echo "EXPLAIN (ANALYZE, TIMING OFF) ${sqls[$i]};"
		done
		echo '\timing on'
		for r in $(seq 1 "$BENCH_RUNS"); do
			for i in "${!labels[@]}"; do
				echo "\\echo @@run ${labels[$i]} $r"
				echo "${sqls[$i]};"
			done
		done
	} >"$script"
	wait_quiet "$fig"
	say "figure $fig: ${labels[*]} (1 warm-up + $BENCH_RUNS runs each)"
	activity "before figure $fig"
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
		TIMES[$fig.$label]=$(sed -n 's/^T //p' <<<"$parsed" | paste -sd' ' -)
		read -r "MINT[$fig.$label]" "MEDIAN[$fig.$label]" "MAXT[$fig.$label]" < <(
			sed -n 's/^T //p' <<<"$parsed" | sort -g |
				awk '{ v[NR] = $1 } END { printf "%.3f %.3f %.3f\n", v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[NR] }')
		printf '    %-10s median %8.3f s   (min %.3f, max %.3f)   result %s\n' "$label" \
			"${MEDIAN[$fig.$label]}" "${MINT[$fig.$label]}" "${MAXT[$fig.$label]}" "${RESULT[$fig.$label]}" |
			sed "s/^    /    $fig /" | tee -a "$RESULTS/timings.txt"
		if awk -v lo="${MINT[$fig.$label]}" -v hi="${MAXT[$fig.$label]}" 'BEGIN { exit !(hi > 1.25 * lo && hi - lo > 0.05) }'; then
			NOISY+=("$fig.$label (min ${MINT[$fig.$label]}, max ${MAXT[$fig.$label]})")
		fi
	done
	activity "after figure $fig"
}

SERIAL='SET max_parallel_workers_per_gather = 0;'
PARALLEL='SET max_parallel_workers_per_gather = 2; SET parallel_leader_participation = on;'
GROUPED="$SERIAL SET work_mem = '$GROUPED_WORK_MEM';"

time_queries A "$SERIAL" ours "$Q_A_OURS" baseline "$Q_A_BASE" scan "$Q_A_SCAN"
time_queries AG "$GROUPED" ours "$Q_AG_OURS" baseline "$Q_AG_BASE" scan "$Q_AG_SCAN" transonly "$Q_AG_TRANSONLY"
time_queries AGC "$GROUPED" ours "$Q_AGC_OURS" baseline "$Q_AGC_BASE" scan "$Q_AGC_SCAN" transonly "$Q_AGC_TRANSONLY"
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

check "AGC: grouped (grp_seq) totals agree, rounded to 2 decimals" \
	"$(psql_bench -At -c "SELECT CASE WHEN round(split_part('${RESULT[AGC.ours]}', '|', 2)::numeric, 2) = round(split_part('${RESULT[AGC.baseline]}', '|', 2)::numeric, 2) THEN 1 END")" \
	"ours ${RESULT[AGC.ours]}, baseline ${RESULT[AGC.baseline]}"

# Figure B: identical row count, total days and hash checksum.
b_ours=$(psql_bench -At -c "$SERIAL" -c "$Q_B_OURS_CHECK" | tail -n 1)
b_base=$(psql_bench -At -c "$SERIAL" -c "$Q_B_BASE_CHECK" | tail -n 1)
check "B: same periods (count | days | hash checksum)" "$([ "$b_ours" = "$b_base" ] && echo 1)" \
	"ours $b_ours, baseline $b_base"
check "BT: SELECT-list forms give the same count and days" \
	"$([ "${RESULT[BT.ours]}" = "${RESULT[B.ours]}" ] && [ "${RESULT[BT.baseline]}" = "${RESULT[B.ours]}" ] && echo 1)" \
	"ours ${RESULT[BT.ours]}, baseline ${RESULT[BT.baseline]}"

# Not a failed check, but the figures may mix two builds: say so.
so_sum_now=$(md5sum "$SO_PATH" | cut -d' ' -f1)
SO_NOTE="installed billing.so unchanged during the run (md5 $SO_SUM)"
if [ "$so_sum_now" != "$SO_SUM" ]; then
	SO_NOTE="WARNING: billing.so was reinstalled during the run (another make install?): md5 $SO_SUM at start, $so_sum_now at end; figures after the change used the new build"
fi

# ------------------------------------------------------------ table

B_ROWS=${b_ours%%|*}
ratio() { awk -v o="$1" -v b="$2" 'BEGIN { printf "%.1fx", b / o }'; }
# Ratio of each round (ours and baseline run back to back), lowest..highest:
# steadier than the ratio of medians when the machine speeds up or slows down
# between rounds (steal time on a VM).
round_ratios() {
	awk -v o="${TIMES[$1.ours]}" -v b="${TIMES[$1.baseline]}" 'BEGIN {
		n = split(o, ov, " "); split(b, bv, " "); lo = hi = bv[1] / ov[1]
		for (i = 2; i <= n; i++) { r = bv[i] / ov[i]; if (r < lo) lo = r; if (r > hi) hi = r }
		printf "%.1fx..%.1fx", lo, hi }'
}
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
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
	row "A  grouped, GROUP BY grp_seq (rows of a group adjacent)" "${MEDIAN[AGC.ours]}" "${MEDIAN[AGC.baseline]}" "$(ratio "${MEDIAN[AGC.ours]}" "${MEDIAN[AGC.baseline]}")" "$BENCH_ROWS"
	row "A  parallel, 2 workers + leader, whole table" "${MEDIAN[AP.ours]}" "${MEDIAN[AP.baseline]}" "$(ratio "${MEDIAN[AP.ours]}" "${MEDIAN[AP.baseline]}")" "$BENCH_ROWS"
	row "B  billing_periods vs generate_series, LATERAL" "${MEDIAN[B.ours]}" "${MEDIAN[B.baseline]}" "$(ratio "${MEDIAN[B.ours]}" "${MEDIAN[B.baseline]}")" "$B_ROWS"
	row "B  same, set-returning function in SELECT list" "${MEDIAN[BT.ours]}" "${MEDIAN[BT.baseline]}" "$(ratio "${MEDIAN[BT.ours]}" "${MEDIAN[BT.baseline]}")" "$B_ROWS"
	echo
	printf 'ratio per round (ours and baseline back to back): A %s, grouped grp %s, grouped grp_seq %s, parallel %s, B %s, B SELECT list %s\n' \
		"$(round_ratios A)" "$(round_ratios AG)" "$(round_ratios AGC)" "$(round_ratios AP)" "$(round_ratios B)" "$(round_ratios BT)"
	echo
	echo "floors and diagnostics (seconds, median):"
	printf '    A   scan floor: SELECT count(*) FROM proration_input             %8s\n' "${MEDIAN[A.scan]}"
	printf '    A   above the scan floor: ours %.3f, baseline %.3f (%s)\n' "$(sub "${MEDIAN[A.ours]}" "${MEDIAN[A.scan]}")" \
		"$(sub "${MEDIAN[A.baseline]}" "${MEDIAN[A.scan]}")" "$(ratio "$(sub "${MEDIAN[A.ours]}" "${MEDIAN[A.scan]}")" "$(sub "${MEDIAN[A.baseline]}" "${MEDIAN[A.scan]}")")"
	for g in AG AGC; do
		printf '    %-3s hash floor (GROUP BY with count(*)) %8s; prorate_agg transition only %8s\n' "$g" "${MEDIAN[$g.scan]}" "${MEDIAN[$g.transonly]}"
		printf '    %-3s above the hash floor: ours %.3f, baseline %.3f (%s); prorate_agg_finalfn %.1f us per group\n' "$g" \
			"$(sub "${MEDIAN[$g.ours]}" "${MEDIAN[$g.scan]}")" "$(sub "${MEDIAN[$g.baseline]}" "${MEDIAN[$g.scan]}")" \
			"$(ratio "$(sub "${MEDIAN[$g.ours]}" "${MEDIAN[$g.scan]}")" "$(sub "${MEDIAN[$g.baseline]}" "${MEDIAN[$g.scan]}")")" \
			"$(awk -v a="${MEDIAN[$g.ours]}" -v t="${MEDIAN[$g.transonly]}" -v g="${RESULT[$g.ours]%%|*}" 'BEGIN { print (a - t) / g * 1e6 }')"
	done
	echo
	if [ "${#NOISY[@]}" -gt 0 ]; then
		echo "noisy (slowest run > 1.25 x fastest; see activity.txt, consider re-running):"
		for c in "${NOISY[@]}"; do echo "    $c"; done
	else
		echo "noise: every query's slowest run within 1.25 x its fastest"
	fi
	echo
	echo "checks:"
	for c in "${CHECKS[@]}"; do echo "    $c"; done
	echo
	echo "$SO_NOTE"
	echo "load average at start $LOAD_AT_START, at end $(cut -d' ' -f1 /proc/loadavg)"
	echo "raw output: $RESULTS (bench/results/latest); total run time $((SECONDS - START_SECONDS)) s"
} | tee "$RESULTS/summary.txt"

for c in "${CHECKS[@]}"; do
	case $c in *' FAILED '*) die "a check failed (see above)" ;; esac
done
