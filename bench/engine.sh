#!/usr/bin/env bash
# Engine benchmark of the billing extension: the invoice run over a book of
# 1M subscriptions, next to the floor and a row-by-row baseline.  Run as root:
#
#   bash bench/engine.sh                              # 100k accounts x 10 subscriptions
#   BENCH_ACCOUNTS=5000 bash bench/engine.sh          # quick run
#
# Environment:
#   BENCH_ACCOUNTS      accounts (default 100000)
#   BENCH_SUBS          subscriptions per account (default 10)
#   BENCH_RUNS          timed runs per figure; the table shows the median (default 3)
#   BENCH_SCENARIOS     "month_end catch_up" (default) or one of them
#   BENCH_PAYMENTS      payments recorded by the payment figure (default
#                       BENCH_ACCOUNTS: one per account, 100,000 at the default size)
#   BENCH_SKIP_BY_HAND=1  skip the row-by-row baseline (slow at scale): "skipped"
#   BENCH_REUSE=1       keep the generated template databases, and reuse them
#                       when the sizes, bench/gen_book.sql and the installed
#                       extension (SQL script and billing.so) are unchanged
#   BENCH_SKIP_SETUP=1  do not install packages, build, install or start the
#                       throwaway cluster (scripts/lib.sh): use the server that
#                       PGHOST / PGPORT / PGUSER point to, with the extension
#                       already installed there
#   BILLING_PGPORT      as for scripts/test.sh
#
# What it does, per scenario (bench/gen_book.sql: month_end = the book billed
# through September, the month-end run bills ~1 line per subscription;
# catch_up = nothing billed, the first run bills two years, ~10 lines per
# subscription):
#   1. generates the book into a template database (untimed; month_end
#      includes the committed run at 2026-09-30) and counts the findings of
#      billing.check_integrity() on it;
#   2. BENCH_RUNS times, each on a fresh copy of the template, in BEGIN ...
#      ROLLBACK:
#        engine   SELECT ... FROM billing.run_invoice_batch('2026-10-31')
#        second   the same again in the same transaction (nothing left to bill)
#      after one untimed warm-up run (on the work copy) whose statements are logged with
#      auto_explain (ANALYZE, BUFFERS, nested) and whose invoices and lines
#      are exported (\copy) for the floor;
#        floor    the exported invoice and line rows written by two plain
#                 INSERT ... SELECT from unlogged staging tables into tables
#                 with the same columns, primary keys and indexes and no
#                 foreign keys, triggers or checks (the sum of both statements)
#        by hand  bench/baseline_by_hand.sql: a row-by-row PL/pgSQL run into
#                 its own tables
#   3. CALL billing.run_invoice_batch_chunked('2026-10-31', 1000), BENCH_RUNS
#      times, each on a fresh copy of the template (it commits);
#   4. on the last chunked copy (the run committed): BENCH_PAYMENTS calls of
#      billing.record_payments(..., auto_apply => true), one bulk call
#      (BEGIN ... ROLLBACK), against the floor of writing the same payment
#      and allocation rows; then, with the payments committed,
#      billing.ar_aging('2026-11-30') against a plain GROUP BY of the same
#      open amounts, checked group by group; check_integrity() again.
#   The peak private memory (RssAnon of /proc/<pid>/status, sampled every
#   ~50 ms; shared buffers are not in it) of the backend of each engine run,
#   second run, chunked run and by-hand run.
#
# Timing: psql's \timing (client wall clock) of one statement returning one
# row: the server's execution plus under a millisecond of round trip.  The
# transactions are rolled back, so no commit is timed (the chunked procedure
# commits each chunk, and that is timed).
#
# Raw output: bench/results/<UTC timestamp>-engine/: summary.txt (the table,
# also printed), timings.txt (every run), machine.txt, and per scenario
# generation log, *.log of every session (plans in engine_warmup.log,
# payments_warmup.log, floor.log, aging.log), *.sql (the scripts run),
# *.mem (memory samples).  bench/results/latest-engine points to the newest.
#
# The session scripts are written with echo: bash's echo prints the
# backslashes of psql meta-commands (\timing, \echo) as they are.
# shellcheck disable=SC2028
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/lib.sh
source "$BENCH_DIR/../scripts/lib.sh"
# shellcheck source=bench/engine_queries.sh
source "$BENCH_DIR/engine_queries.sh"

BENCH_ACCOUNTS=${BENCH_ACCOUNTS:-100000}
BENCH_SUBS=${BENCH_SUBS:-10}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_SCENARIOS=${BENCH_SCENARIOS:-month_end catch_up}
BENCH_PAYMENTS=${BENCH_PAYMENTS:-$BENCH_ACCOUNTS}
BENCH_SKIP_BY_HAND=${BENCH_SKIP_BY_HAND:-0}
BENCH_REUSE=${BENCH_REUSE:-0}
BENCH_SKIP_SETUP=${BENCH_SKIP_SETUP:-0}
for v in BENCH_ACCOUNTS BENCH_SUBS BENCH_RUNS BENCH_PAYMENTS; do
	case ${!v} in '' | *[!0-9]* | 0) die "$v must be a positive integer (got '${!v}')" ;; esac
done
read -r -a SCENARIOS <<<"$BENCH_SCENARIOS"
[ "${#SCENARIOS[@]}" -gt 0 ] || die "BENCH_SCENARIOS is empty (use month_end, catch_up or both)"
for sc in "${SCENARIOS[@]}"; do
	case $sc in month_end | catch_up) ;; *) die "unknown scenario '$sc' in BENCH_SCENARIOS (month_end, catch_up)" ;; esac
done

DB_PREFIX=bench_engine
START_SECONDS=$SECONDS
LOAD_AT_START=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD_AT_START" 'BEGIN { exit !(l > 0.7) }'; then
	warn "load average is $LOAD_AT_START before the benchmark: something else is running; figures may be noisy"
fi

if [ "$BENCH_SKIP_SETUP" = 1 ]; then
	say "setup skipped (BENCH_SKIP_SETUP=1): server PGHOST=${PGHOST:-<default>} PGPORT=${PGPORT:-<default>} PGUSER=${PGUSER:-<default>}"
	command -v psql >/dev/null || die "psql not found in PATH"
else
	setup_all
	[ -z "$SETUP_FAILED" ] || die "setup step '$SETUP_FAILED' failed (see its output above)"
fi

RESULTS=$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)-engine
mkdir -p "$RESULTS/tmp"
ln -sfn "$(basename "$RESULTS")" "$BENCH_DIR/results/latest-engine"
say "results: $RESULTS"

psql_db() { # psql_db DB [ARGS...]
	local db=$1
	shift
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"
}
psql_val() { psql_db "$1" -At -c "$2"; } # a query returning one value

psql_val postgres 'SELECT 1' >/dev/null || die "cannot connect to the server (PGHOST=${PGHOST:-} PGPORT=${PGPORT:-})"
[ "$(psql_val postgres "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")" = t ] ||
	die "the benchmark needs a superuser connection (CREATE DATABASE, auto_explain, pg_read_file)"
[ "$(psql_val postgres "SELECT count(*) FROM pg_available_extensions WHERE name = 'billing'")" = 1 ] ||
	die "the billing extension is not installed on this server"

# ------------------------------------------------------------ machine info

# What identifies the engine under test: the installed SQL script and
# library, read by the server itself (works for a relocated installation).
ENGINE_ID=$(psql_val postgres "SELECT e.default_version || ' sql ' || md5(pg_read_file(d.setting || '/extension/billing--' || e.default_version || '.sql'))
	|| ' so ' || md5(pg_read_binary_file(l.setting || '/billing.so'))
	FROM pg_available_extensions e, pg_config d, pg_config l
	WHERE e.name = 'billing' AND d.name = 'SHAREDIR' AND l.name = 'PKGLIBDIR'")
PG_VERSION_STR=$(psql_val postgres 'SHOW server_version')
GIT_HEAD=$(git -C "$BENCH_DIR/.." rev-parse --short HEAD 2>/dev/null || echo '?')
GIT_DIRTY=$(git -C "$BENCH_DIR/.." status --porcelain -- src sql Makefile billing.control 2>/dev/null | head -n 1)
MEM_TOTAL=$(awk '/^MemTotal:/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)
SETTINGS=$(psql_val postgres "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings
	WHERE name IN ('shared_buffers', 'work_mem', 'jit', 'fsync', 'synchronous_commit', 'wal_level', 'max_parallel_workers_per_gather', 'max_wal_size')")
{
	echo "date -u:      $(date -u)"
	echo "git HEAD:     $GIT_HEAD${GIT_DIRTY:+ (engine sources modified: git status src/ sql/ Makefile)}"
	echo "engine:       billing $ENGINE_ID"
	echo "nproc:        $(nproc)"
	echo "memory:       $MEM_TOTAL"
	echo "uname -a:     $(uname -a)"
	echo "server:       $(psql_val postgres 'SELECT version()')"
	echo "settings:     $SETTINGS"
	echo "connection:   PGHOST=${PGHOST:-} PGPORT=${PGPORT:-} (BENCH_SKIP_SETUP=$BENCH_SKIP_SETUP)"
	echo "parameters:   BENCH_ACCOUNTS=$BENCH_ACCOUNTS BENCH_SUBS=$BENCH_SUBS BENCH_RUNS=$BENCH_RUNS BENCH_SCENARIOS='$BENCH_SCENARIOS' BENCH_PAYMENTS=$BENCH_PAYMENTS BENCH_SKIP_BY_HAND=$BENCH_SKIP_BY_HAND BENCH_REUSE=$BENCH_REUSE"
	echo
	echo "\$ free -h"
	free -h
	echo
	echo "\$ lscpu | head -20"
	lscpu | head -20
} >"$RESULTS/machine.txt" 2>&1

# ------------------------------------------------------------ helpers

# Background memory sampler of one backend: waits for PIDFILE (written by
# the session's first statement), then every ~50 ms reads the backend's
# RssAnon (private memory: shared buffers are RssShmem, not counted; VmHWM
# would count them) and the current phase from PHASEFILE (written by the
# session with \! echo PHASE > PHASEFILE); appends "PHASE kB" to OUT each
# time a phase's peak grows.  Stops when the backend is gone or the phase
# is "end".
SAMPLER_PID=
mem_sampler() {
	local pidfile=$1 phasefile=$2 out=$3 pid='' phase key val _unit
	local -A peak=()
	while [ ! -s "$pidfile" ]; do
		read -r phase <"$phasefile" 2>/dev/null || phase=idle
		[ "$phase" != end ] || return 0
		sleep 0.05
	done
	read -r pid <"$pidfile"
	case $pid in '' | *[!0-9]*) return 0 ;; esac
	while [ -r "/proc/$pid/status" ]; do
		read -r phase <"$phasefile" 2>/dev/null || phase=idle
		[ "$phase" != end ] || break
		while read -r key val _unit; do
			if [ "$key" = RssAnon: ]; then
				if [ "$val" -gt "${peak[$phase]:-0}" ]; then
					peak[$phase]=$val
					echo "$phase $val" >>"$out"
				fi
				break
			fi
		done <"/proc/$pid/status" 2>/dev/null || break
		sleep 0.05
	done
	return 0
}
stop_sampler() {
	if [ -n "$SAMPLER_PID" ]; then
		kill "$SAMPLER_PID" 2>/dev/null || true
		wait "$SAMPLER_PID" 2>/dev/null || true
		SAMPLER_PID=
	fi
}
trap stop_sampler EXIT

# The first lines of every session script: the backend pid for the sampler.
session_head() { # session_head TAG
	printf '\\o %s\nSELECT pg_backend_pid();\n\\o\n' "$RESULTS/tmp/$1.pid"
}
phase() { printf '\\! echo %s > %s\n' "$2" "$RESULTS/tmp/$1.phase"; } # phase TAG NAME

# run_session DB TAG: runs $RESULTS/<scenario>/TAG.sql into TAG.log with the
# memory sampler on its backend (samples in TAG.mem).  Dies on an error.
# The floor statements of a figure: one INSERT ... SELECT per table from its
# staging copy into bench_floor.<table>, planned once with EXPLAIN ANALYZE,
# then BENCH_RUNS timed runs (each table's time as "@@t floor_<table>"),
# all rolled back; the floor tables are left empty.
# Every run writes into empty tables: TRUNCATE inside its transaction gives
# it fresh files, and its ROLLBACK keeps the next run from inserting next to
# the dead rows and index entries of this one (which made later runs 2x
# slower than the first).
floor_script() { # floor_script TABLE...
	local r t truncate
	truncate="TRUNCATE $(printf 'bench_floor.%s, ' "$@" | sed 's/, $//');"
	echo "$truncate"
	echo 'BEGIN;'
	echo "$truncate"
	for t in "$@"; do echo "EXPLAIN (ANALYZE, BUFFERS) ${Q_FLOOR_INSERT//@T@/$t};"; done
	echo 'ROLLBACK;'
	for r in $(seq 1 "$BENCH_RUNS"); do
		echo 'CHECKPOINT;'
		echo 'BEGIN;'
		echo "$truncate"
		echo '\timing on'
		for t in "$@"; do
			echo "\\echo @@t floor_$t"
			echo "${Q_FLOOR_INSERT//@T@/$t};"
		done
		echo '\timing off'
		echo 'ROLLBACK;'
	done
}

run_session() {
	local db=$1 tag=$2 rc=0
	local script=$SC_DIR/$tag.sql log=$SC_DIR/$tag.log
	rm -f "$RESULTS/tmp/$tag.pid"
	echo idle >"$RESULTS/tmp/$tag.phase"
	: >"$SC_DIR/$tag.mem"
	mem_sampler "$RESULTS/tmp/$tag.pid" "$RESULTS/tmp/$tag.phase" "$SC_DIR/$tag.mem" &
	SAMPLER_PID=$!
	psql_db "$db" -At -f "$script" >"$log" 2>&1 || rc=$?
	echo end >"$RESULTS/tmp/$tag.phase"
	wait "$SAMPLER_PID" 2>/dev/null || true
	SAMPLER_PID=
	if [ "$rc" -ne 0 ]; then
		tail -n 25 "$log" >&2
		die "$SC: session $tag failed (see $log)"
	fi
}

# Values in seconds of the "Time:" line after each "@@t LABEL" marker.
times_of() { # times_of LOG LABEL
	awk -v want="$2" '/^@@t / { cur = ($2 == want); next } cur && /^Time: / { print $2 / 1000; cur = 0 }' "$1"
}
# The rest of each "@@r LABEL ..." line.
results_of() { # results_of LOG LABEL
	awk -v want="$2" '$1 == "@@r" && $2 == want { $1 = ""; $2 = ""; sub(/^ +/, ""); print }' "$1"
}
# Peak kB of a phase in memory sample files.
mem_peak() { # mem_peak PHASE FILE...
	local ph=$1
	shift
	cat "$@" 2>/dev/null | awk -v ph="$ph" '$1 == ph && $2 > m { m = $2 } END { print m + 0 }'
}
# Largest growth of a phase over its first sample (the backend's level when
# the phase began): a backend keeps memory it freed, so the peak of a phase
# that follows another in the same session would show the earlier one's.
mem_growth() { # mem_growth PHASE FILE...
	local ph=$1 f g=0 x
	shift
	for f in "$@"; do
		x=$(awk -v ph="$ph" '$1 == ph { if (!seen) { s = $2; seen = 1 } if ($2 > m) m = $2 } END { print m - s }' "$f" 2>/dev/null)
		[ "${x:-0}" -le "$g" ] || g=$x
	done
	echo "$g"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else printf "%.3f\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
# record FIGURE LABEL VALUES...: median into FIG[FIGURE], every value into timings.txt
declare -A FIG=()
record() {
	local key=$1 label=$2
	shift 2
	FIG[$key]=$(printf '%s\n' "$@" | median)
	printf '%-10s %-30s median %9s s   load %s   runs: %s\n' "$SC" "$label" "${FIG[$key]}" "$(cut -d' ' -f1-3 /proc/loadavg)" "$*" >>"$RESULTS/timings.txt"
}
# record_sum KEY LABEL LOG A B: records, per run, the time of "@@t A" plus
# that of "@@t B" in LOG (a floor's two INSERT statements).
record_sum() {
	local key=$1 label=$2 log=$3 r sums=() a b
	mapfile -t a < <(times_of "$log" "$4")
	mapfile -t b < <(times_of "$log" "$5")
	for r in "${!a[@]}"; do sums+=("$(awk -v x="${a[$r]}" -v y="${b[$r]}" 'BEGIN { print x + y }')"); done
	record "$key" "$label" "${sums[@]}"
}
# thousands separators
fmt_int() {
	awk -v n="$1" 'BEGIN { if (n !~ /^-?[0-9]+$/) { print n; exit } s = n; neg = (substr(s, 1, 1) == "-"); if (neg) s = substr(s, 2)
		out = ""; while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
		print (neg ? "-" : "") s out }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2fx\n", a / b }'; }
mb() { if [ -z "$1" ]; then echo -; else awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; fi; }

db_exists() { [ "$(psql_val postgres "SELECT count(*) FROM pg_database WHERE datname = '$1'")" = 1 ]; }
drop_db() { psql_db postgres -c 'SET client_min_messages = warning' -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null; }
# A copy of a template: FILE_COPY copies the files (one checkpoint) instead
# of WAL-logging every block, much faster for gigabytes.
copy_db() { # copy_db TEMPLATE NEW
	drop_db "$2"
	psql_db postgres -c "CREATE DATABASE \"$2\" TEMPLATE \"$1\" STRATEGY = FILE_COPY" >/dev/null
}
# Load shared buffers with the copy's billing tables and indexes when
# pg_prewarm is available, so a fresh copy starts as warm as the work copy
# (the files themselves are in the OS cache, just copied).
prewarm() {
	if [ "$(psql_val "$1" "SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_prewarm'")" = 1 ]; then
		psql_db "$1" -c 'CREATE EXTENSION IF NOT EXISTS pg_prewarm' \
			-c "SELECT count(pg_prewarm(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = 'billing' AND c.relkind IN ('r', 'i') ORDER BY 1" >/dev/null
	fi
}

# auto_explain for a warm-up session: every statement over MIN_MS, nested
# ones included, with ANALYZE, BUFFERS and trigger times (foreign keys), to
# the client (the log), not to the server log.
auto_explain() { # auto_explain MIN_MS
	cat <<EOF
LOAD 'auto_explain';
SET auto_explain.log_min_duration = '$1ms';
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_triggers = on;
SET client_min_messages = log;
SET log_min_messages = error;
EOF
}
no_auto_explain() { printf 'SET auto_explain.log_min_duration = -1;\nSET client_min_messages = notice;\nRESET log_min_messages;\n'; }

GEN_MD5=$(md5sum "$BENCH_DIR/gen_book.sql" | cut -d' ' -f1)

# ------------------------------------------------------------ 1. template

prepare_template() {
	local tpl=$DB_PREFIX"_${SC}_tpl"
	local want="accounts=$BENCH_ACCOUNTS subs=$BENCH_SUBS scenario=$SC gen=$GEN_MD5 engine=$ENGINE_ID"
	TPL=$tpl
	if [ "$BENCH_REUSE" = 1 ] && db_exists "$tpl" &&
		[ "$(psql_val postgres "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '$tpl'")" = "$want" ]; then
		say "$SC: reusing template database $tpl"
		FIG[$SC.gen]=reused
	else
		if [ "$BENCH_REUSE" = 1 ] && db_exists "$tpl"; then
			say "$SC: template $tpl was made with other sizes, generator or engine: regenerating"
		fi
		drop_db "$tpl"
		psql_db postgres -c "CREATE DATABASE \"$tpl\"" >/dev/null
		psql_db "$tpl" -c 'CREATE EXTENSION billing'
		say "$SC: generating $BENCH_ACCOUNTS accounts x $BENCH_SUBS subscriptions (bench/gen_book.sql)"
		local t0=$SECONDS
		psql_db "$tpl" -v accounts="$BENCH_ACCOUNTS" -v subs_per_account="$BENCH_SUBS" -v scenario="$SC" \
			-f "$BENCH_DIR/gen_book.sql" >"$SC_DIR/generate.log" 2>&1 ||
			{ tail -n 20 "$SC_DIR/generate.log" >&2; die "$SC: data generation failed (see $SC_DIR/generate.log)"; }
		FIG[$SC.gen]="$((SECONDS - t0)) s"
		say "$SC: generated in $((SECONDS - t0)) s"
		psql_db postgres -c "COMMENT ON DATABASE \"$tpl\" IS '$want'" >/dev/null
	fi
	psql_db "$tpl" -c 'SELECT pg_size_pretty(pg_database_size(current_database())) AS size' >>"$SC_DIR/generate.log"
	say "$SC: check_integrity() after the setup"
	local t0=$SECONDS
	psql_db "$tpl" -At -c 'SELECT * FROM billing.check_integrity()' >"$SC_DIR/integrity_setup.txt" 2>&1 ||
		die "$SC: check_integrity() failed (see $SC_DIR/integrity_setup.txt)"
	FIG[$SC.integrity_setup]=$(wc -l <"$SC_DIR/integrity_setup.txt")
	FIG[$SC.integrity_setup_s]=$((SECONDS - t0))
	say "$SC: check_integrity(): ${FIG[$SC.integrity_setup]} findings ($((SECONDS - t0)) s)"
}

# ------------------------------------------------------------ 2. engine, floor, by hand

engine_script() { # engine_script TAG WARMUP(0/1)
	local tag=$1 warm=$2
	session_head "$tag"
	[ "$warm" = 0 ] || auto_explain 1
	echo 'BEGIN;'
	phase "$tag" engine
	echo '\echo @@t engine'
	echo '\timing on'
	echo "$Q_ENGINE \\gset run1_"
	echo '\timing off'
	phase "$tag" idle
	echo '\echo @@r engine :run1_batch_id :run1_invoices :run1_lines :run1_total_amount'
	if [ "$warm" = 1 ]; then
		no_auto_explain
		echo "\\copy ($Q_EXPORT_INVOICES) TO '$RESULTS/tmp/$SC.invoice.copy'"
		echo "\\copy ($Q_EXPORT_LINES) TO '$RESULTS/tmp/$SC.invoice_line.copy'"
		auto_explain 1
	fi
	phase "$tag" second
	echo '\echo @@t second'
	echo '\timing on'
	echo "$Q_ENGINE \\gset run2_"
	echo '\timing off'
	phase "$tag" idle
	echo '\echo @@r second :run2_batch_id :run2_invoices :run2_lines :run2_total_amount'
	echo 'ROLLBACK;'
}

measure_engine() {
	local work=$1 r tag
	say "$SC: engine run, warm-up with auto_explain and export"
	engine_script engine_warmup 1 >"$SC_DIR/engine_warmup.sql"
	run_session "$work" engine_warmup
	psql_db "$work" -c 'VACUUM' >/dev/null
	local engine=() second=() lines='' invoices='' mem_files=() copy=$work"_run"
	for r in $(seq 1 "$BENCH_RUNS"); do
		tag=engine_$r
		engine_script "$tag" 0 >"$SC_DIR/$tag.sql"
		# each timed run on a fresh copy of the book, as the floor writes
		# into emptied tables: a run rolled back in the same database leaves
		# its lines' index entries and page splits behind (runs 2 and 3 were
		# 20-50% slower than run 1 there)
		copy_db "$TPL" "$copy"
		prewarm "$copy"
		run_session "$copy" "$tag"
		drop_db "$copy"
		engine+=("$(times_of "$SC_DIR/$tag.log" engine)")
		second+=("$(times_of "$SC_DIR/$tag.log" second)")
		read -r _ invoices lines _ < <(results_of "$SC_DIR/$tag.log" engine)
		FIG[$SC.second_lines]=$(results_of "$SC_DIR/$tag.log" second | awk '{ print $3 }')
		mem_files+=("$SC_DIR/$tag.mem")
		say "$SC: run $r: engine ${engine[-1]} s ($lines lines, $invoices invoices), second run ${second[-1]} s"
	done
	record "$SC.engine" "engine run" "${engine[@]}"
	record "$SC.second" "second run, same date" "${second[@]}"
	FIG[$SC.lines]=$lines
	FIG[$SC.invoices]=$invoices
	FIG[$SC.engine_min]=$(printf '%s\n' "${engine[@]}" | sort -g | awk 'NR == 1 { printf "%.3f", $1 }')
	FIG[$SC.engine_max]=$(printf '%s\n' "${engine[@]}" | sort -g | awk '{ m = $1 } END { printf "%.3f", m }')
	FIG[$SC.mem_engine]=$(mem_peak engine "${mem_files[@]}")
	FIG[$SC.mem_second]=$(mem_growth second "${mem_files[@]}")
}

measure_floor() {
	local work=$1 r t
	say "$SC: floor (INSERT ... SELECT of the same rows)"
	{
		echo 'SET client_min_messages = warning;'
		echo 'CREATE SCHEMA IF NOT EXISTS bench_stage; CREATE SCHEMA IF NOT EXISTS bench_floor;'
		for t in invoice invoice_line; do
			echo "${SQL_FLOOR_TABLE//@T@/$t}"
			echo "\\copy bench_stage.$t FROM '$RESULTS/tmp/$SC.$t.copy'"
		done
		echo 'VACUUM ANALYZE bench_stage.invoice, bench_stage.invoice_line;'
		echo '\echo @@r staged'
		echo 'SELECT (SELECT count(*) FROM bench_stage.invoice) || '"' '"' || (SELECT count(*) FROM bench_stage.invoice_line);'
	} >"$SC_DIR/floor_load.sql"
	psql_db "$work" -At -f "$SC_DIR/floor_load.sql" >"$SC_DIR/floor_load.log" 2>&1 ||
		{ tail -n 20 "$SC_DIR/floor_load.log" >&2; die "$SC: loading the floor's staging tables failed"; }
	rm -f "$RESULTS/tmp/$SC.invoice.copy" "$RESULTS/tmp/$SC.invoice_line.copy"
	{
		session_head floor
		floor_script invoice invoice_line
	} >"$SC_DIR/floor.sql"
	run_session "$work" floor
	record_sum "$SC.floor" "floor (invoices + lines)" "$SC_DIR/floor.log" floor_invoice floor_invoice_line
	FIG[$SC.floor_rows]=$(sed -n '/^@@r staged/{n;p}' "$SC_DIR/floor_load.log")

	# The same rows into tables that already hold the book's documents and
	# lines, as the engine's tables do (at month-end, the previous period's
	# million lines): each run on a fresh copy of them, after a checkpoint
	# (the engine's copy of the book is made by one), rolled back.
	say "$SC: floor into tables holding the book's rows"
	{
		session_head floor_held
		echo 'SET client_min_messages = warning;'
		echo 'CREATE SCHEMA IF NOT EXISTS bench_held;'
		for r in $(seq 1 "$BENCH_RUNS"); do
			for t in invoice invoice_line; do
				echo "DROP TABLE IF EXISTS bench_held.$t;"
				echo "CREATE TABLE bench_held.$t (LIKE billing.$t INCLUDING INDEXES);"
				echo "INSERT INTO bench_held.$t SELECT * FROM billing.$t;"
			done
			echo 'VACUUM ANALYZE bench_held.invoice, bench_held.invoice_line;'
			echo '\echo @@r held'
			echo 'SELECT (SELECT count(*) FROM bench_held.invoice) || '"' '"' || (SELECT count(*) FROM bench_held.invoice_line);'
			echo 'CHECKPOINT;'
			echo 'BEGIN;'
			echo '\timing on'
			for t in invoice invoice_line; do
				echo "\\echo @@t held_$t"
				echo "INSERT INTO bench_held.$t SELECT * FROM bench_stage.$t;"
			done
			echo '\timing off'
			echo 'ROLLBACK;'
		done
		echo 'DROP SCHEMA bench_held CASCADE;'
	} >"$SC_DIR/floor_held.sql"
	run_session "$work" floor_held
	record_sum "$SC.floor_held" "floor into held tables" "$SC_DIR/floor_held.log" held_invoice held_invoice_line
	FIG[$SC.floor_held_rows]=$(sed -n '/^@@r held/{n;p}' "$SC_DIR/floor_held.log" | tail -n 1)
}

measure_by_hand() {
	local work=$1 r
	if [ "$BENCH_SKIP_BY_HAND" = 1 ]; then
		FIG[$SC.byhand]=skipped
		return 0
	fi
	say "$SC: by hand (row-by-row PL/pgSQL), $BENCH_RUNS runs"
	psql_db "$work" -f "$BENCH_DIR/baseline_by_hand.sql" >"$SC_DIR/by_hand_load.log" 2>&1 ||
		{ tail -n 20 "$SC_DIR/by_hand_load.log" >&2; die "$SC: loading bench/baseline_by_hand.sql failed"; }
	{
		session_head by_hand
		for r in $(seq 1 "$BENCH_RUNS"); do
			echo 'SELECT bench_hand.reset();'
			echo 'VACUUM bench_hand.subscription_state;'
			echo 'CHECKPOINT;'
			echo 'BEGIN;'
			phase by_hand by_hand
			echo '\echo @@t by_hand'
			echo '\timing on'
			echo "SELECT invoices AS hand_invoices, lines AS hand_lines FROM bench_hand.run_invoices('$ENGINE_TARGET') \\gset"
			echo '\timing off'
			phase by_hand idle
			echo 'SELECT sum(total) AS hand_total FROM bench_hand.invoice \gset'
			echo '\echo @@r by_hand :hand_invoices :hand_lines :hand_total'
			echo 'ROLLBACK;'
		done
		echo 'SELECT bench_hand.reset();'
	} >"$SC_DIR/by_hand.sql"
	run_session "$work" by_hand
	local times
	mapfile -t times < <(times_of "$SC_DIR/by_hand.log" by_hand)
	record "$SC.byhand" "by hand" "${times[@]}"
	read -r "FIG[$SC.byhand_invoices]" "FIG[$SC.byhand_lines]" "FIG[$SC.byhand_total]" < <(results_of "$SC_DIR/by_hand.log" by_hand | tail -n 1)
	FIG[$SC.mem_byhand]=$(mem_peak by_hand "$SC_DIR/by_hand.mem")
	say "$SC: by hand ${FIG[$SC.byhand]} s (${FIG[$SC.byhand_lines]} lines, ${FIG[$SC.byhand_invoices]} invoices)"
}

# ------------------------------------------------------------ 3. chunked

measure_chunked() {
	local copy=$1 r tag times=() mem_files=()
	for r in $(seq 1 "$BENCH_RUNS"); do
		tag=chunked_$r
		copy_db "$TPL" "$copy"
		prewarm "$copy"
		{
			session_head "$tag"
			phase "$tag" chunked
			echo '\echo @@t chunked'
			echo '\timing on'
			echo "$Q_CHUNKED;"
			echo '\timing off'
			phase "$tag" idle
			echo '\echo @@r chunked'
			echo "SELECT count(*) || ' ' || sum(invoices) || ' ' || sum(lines) FROM billing.invoice_batch WHERE target_date = '$ENGINE_TARGET';"
		} >"$SC_DIR/$tag.sql"
		run_session "$copy" "$tag"
		times+=("$(times_of "$SC_DIR/$tag.log" chunked)")
		mem_files+=("$SC_DIR/$tag.mem")
		FIG[$SC.chunked_result]=$(sed -n '/^@@r chunked/{n;p}' "$SC_DIR/$tag.log")
		say "$SC: chunked run $r: ${times[-1]} s (batches, invoices, lines: ${FIG[$SC.chunked_result]})"
	done
	record "$SC.chunked" "chunked procedure" "${times[@]}"
	FIG[$SC.mem_chunked]=$(mem_peak chunked "${mem_files[@]}")
	psql_db "$copy" -c 'VACUUM ANALYZE' >/dev/null
}

# ------------------------------------------------------------ 4. payments, aging

measure_payments() {
	local db=$1 r t
	say "$SC: $BENCH_PAYMENTS payments recorded and auto-applied"
	{
		echo 'SET client_min_messages = warning;'
		echo 'CREATE SCHEMA IF NOT EXISTS bench_pay; CREATE SCHEMA IF NOT EXISTS bench_stage; CREATE SCHEMA IF NOT EXISTS bench_floor;'
		echo "$SQL_PAYMENT_INPUT"
		for t in payment allocation; do echo "${SQL_FLOOR_TABLE//@T@/$t}"; done
	} >"$SC_DIR/payments_setup.sql"
	psql_db "$db" -v payments="$BENCH_PAYMENTS" -f "$SC_DIR/payments_setup.sql" >"$SC_DIR/payments_setup.log" 2>&1 ||
		{ tail -n 20 "$SC_DIR/payments_setup.log" >&2; die "$SC: generating the payments failed"; }
	{
		session_head payments_warmup
		auto_explain 20
		echo 'BEGIN;'
		echo "EXPLAIN (ANALYZE, BUFFERS) $Q_PAYMENTS;"
		no_auto_explain
		echo "\\copy ($Q_EXPORT_PAYMENTS) TO '$RESULTS/tmp/$SC.payment.copy'"
		echo "\\copy ($Q_EXPORT_ALLOCATIONS) TO '$RESULTS/tmp/$SC.allocation.copy'"
		echo 'ROLLBACK;'
		echo 'VACUUM;'
		for t in payment allocation; do echo "\\copy bench_stage.$t FROM '$RESULTS/tmp/$SC.$t.copy'"; done
		echo 'VACUUM ANALYZE bench_stage.payment, bench_stage.allocation;'
	} >"$SC_DIR/payments_warmup.sql"
	run_session "$db" payments_warmup
	rm -f "$RESULTS/tmp/$SC.payment.copy" "$RESULTS/tmp/$SC.allocation.copy"
	{
		session_head payments
		for r in $(seq 1 "$BENCH_RUNS"); do
			echo 'BEGIN;'
			phase payments payments
			echo '\echo @@t payments'
			echo '\timing on'
			echo "$Q_PAYMENTS;"
			echo '\timing off'
			phase payments idle
			echo '\echo @@r payments'
			echo "$Q_PAYMENT_COUNTS;"
			echo 'ROLLBACK;'
			echo 'VACUUM;'
		done
		floor_script payment allocation
		# the payments stay, for the aging figure
		echo "$Q_PAYMENTS;"
		echo 'VACUUM ANALYZE;'
	} >"$SC_DIR/payments.sql"
	run_session "$db" payments
	local times
	mapfile -t times < <(times_of "$SC_DIR/payments.log" payments)
	record "$SC.payments" "payments" "${times[@]}"
	FIG[$SC.payment_rows]=$(sed -n '/^@@r payments/{n;p}' "$SC_DIR/payments.log" | tail -n 1 | tr '|' ' ')
	record_sum "$SC.payments_floor" "payments floor" "$SC_DIR/payments.log" floor_payment floor_allocation
	say "$SC: payments ${FIG[$SC.payments]} s (payments, allocations: ${FIG[$SC.payment_rows]}), floor ${FIG[$SC.payments_floor]} s"
}

measure_aging() {
	local db=$1 r
	say "$SC: ar_aging('$AGING_AS_OF') against a plain GROUP BY"
	{
		session_head aging
		echo "EXPLAIN (ANALYZE, BUFFERS) $Q_AGING_BASE;"
		auto_explain 10
		echo "EXPLAIN (ANALYZE, BUFFERS) $Q_AGING_OURS;"
		no_auto_explain
		echo '\timing on'
		for r in $(seq 1 "$BENCH_RUNS"); do
			echo '\echo @@t aging'
			echo "$Q_AGING_OURS;"
			echo '\echo @@t aging_base'
			echo "$Q_AGING_BASE;"
		done
		echo '\timing off'
		echo '\echo @@r check'
		echo "$Q_AGING_CHECK;"
	} >"$SC_DIR/aging.sql"
	run_session "$db" aging
	local times
	mapfile -t times < <(times_of "$SC_DIR/aging.log" aging)
	record "$SC.aging" "ar_aging" "${times[@]}"
	mapfile -t times < <(times_of "$SC_DIR/aging.log" aging_base)
	record "$SC.aging_base" "aging as plain GROUP BY" "${times[@]}"
	FIG[$SC.aging_check]=$(sed -n '/^@@r check/{n;p}' "$SC_DIR/aging.log")
	say "$SC: ar_aging ${FIG[$SC.aging]} s, GROUP BY ${FIG[$SC.aging_base]} s; groups|missing|differing|ours|baseline: ${FIG[$SC.aging_check]}"
}

final_integrity() {
	local db=$1 t0=$SECONDS
	psql_db "$db" -At -c 'SELECT * FROM billing.check_integrity()' >"$SC_DIR/integrity_after.txt" 2>&1 ||
		die "$SC: check_integrity() failed (see $SC_DIR/integrity_after.txt)"
	FIG[$SC.integrity_after]=$(wc -l <"$SC_DIR/integrity_after.txt")
	say "$SC: check_integrity() after the run and the payments: ${FIG[$SC.integrity_after]} findings ($((SECONDS - t0)) s)"
}

# ------------------------------------------------------------ main

for SC in "${SCENARIOS[@]}"; do
	SC_DIR=$RESULTS/$SC
	mkdir -p "$SC_DIR"
	echo "$SC:" >>"$RESULTS/timings.txt"
	prepare_template
	WORK=$DB_PREFIX"_$SC"
	CHUNKED=$DB_PREFIX"_${SC}_chunked"
	copy_db "$TPL" "$WORK"
	measure_engine "$WORK"
	measure_floor "$WORK"
	measure_by_hand "$WORK"
	drop_db "$WORK"
	measure_chunked "$CHUNKED"
	measure_payments "$CHUNKED"
	measure_aging "$CHUNKED"
	final_integrity "$CHUNKED"
	drop_db "$CHUNKED"
	if [ "$BENCH_REUSE" != 1 ]; then
		drop_db "$TPL"
	fi
done
rm -rf "$RESULTS/tmp"

# ------------------------------------------------------------ table

cell() { # cell FIGURE-SUFFIX FORMATTER: one cell per scenario
	local suffix=$1 sc out=()
	for sc in "${SCENARIOS[@]}"; do out+=("$("$2" "$sc" "$suffix")"); done
	printf '%s\n' "${out[@]}"
}
row() { # row LABEL VALUE...
	local label=$1
	shift
	printf '| %-58s |' "$label"
	printf ' %24s |' "$@"
	printf '\n'
}
# The cells, per scenario.
c_secs() { local v=${FIG[$1.$2]:-}; [ -n "$v" ] && echo "$v" || echo "-"; }
c_engine() { echo "${FIG[$1.engine]} (${FIG[$1.engine_min]}-${FIG[$1.engine_max]})"; }
c_lines() { echo "$(fmt_int "${FIG[$1.lines]}") / $(fmt_int "${FIG[$1.invoices]}")"; }
c_rate() { fmt_int "$(awk -v l="${FIG[$1.lines]}" -v s="${FIG[$1.engine]}" 'BEGIN { printf "%d", (s > 0 ? l / s : 0) }')"; }
c_floor_ratio() { ratio "${FIG[$1.engine]}" "${FIG[$1.floor]}"; }
c_floor_rows() { read -r i l <<<"${FIG[$1.floor_rows]}"; echo "$(fmt_int "$l") / $(fmt_int "$i")"; }
c_held_ratio() { ratio "${FIG[$1.engine]}" "${FIG[$1.floor_held]}"; }
c_held_rows() { read -r i l <<<"${FIG[$1.floor_held_rows]}"; echo "$(fmt_int "$l") / $(fmt_int "$i")"; }
c_byhand() { echo "${FIG[$1.byhand]}"; }
c_byhand_ratio() {
	if [ "${FIG[$1.byhand]}" = skipped ]; then echo skipped; else ratio "${FIG[$1.engine]}" "${FIG[$1.byhand]}"; fi
}
c_byhand_lines() {
	if [ "${FIG[$1.byhand]}" = skipped ]; then echo skipped; else echo "$(fmt_int "${FIG[$1.byhand_lines]}") / $(fmt_int "${FIG[$1.byhand_invoices]}")"; fi
}
c_second() { echo "${FIG[$1.second]} ($(awk -v a="${FIG[$1.second]}" -v b="${FIG[$1.engine]}" 'BEGIN { printf "%.1f%%", (b > 0 ? 100 * a / b : 0) }'), ${FIG[$1.second_lines]} lines)"; }
c_chunked_ratio() { ratio "${FIG[$1.chunked]}" "${FIG[$1.engine]}"; }
c_mem() { echo "$(mb "${FIG[$1.mem_engine]:-}") / +$(mb "${FIG[$1.mem_second]:-}") / $(mb "${FIG[$1.mem_chunked]:-}") / $(mb "${FIG[$1.mem_byhand]:-}")"; }
c_pay_rows() { read -r p a <<<"${FIG[$1.payment_rows]}"; echo "$(fmt_int "$p") / $(fmt_int "$a")"; }
c_pay_ratio() { ratio "${FIG[$1.payments]}" "${FIG[$1.payments_floor]}"; }
c_aging_ratio() { ratio "${FIG[$1.aging]}" "${FIG[$1.aging_base]}"; }
c_aging_check() {
	IFS='|' read -r g m d _ _ <<<"${FIG[$1.aging_check]}"
	echo "$(fmt_int "$g") groups, $((m + d)) differ"
}
c_aging_total() { IFS='|' read -r _ _ _ o _ <<<"${FIG[$1.aging_check]}"; echo "$o"; }
c_integrity() { echo "${FIG[$1.$2]} findings"; }
c_gen() { echo "${FIG[$1.gen]}"; }

mapfile -t scenario_names < <(printf '%s\n' "${SCENARIOS[@]}")
{
	echo "billing engine benchmark: $(fmt_int "$BENCH_ACCOUNTS") accounts x $BENCH_SUBS subscriptions, target date $ENGINE_TARGET"
	echo "PostgreSQL $PG_VERSION_STR, $(nproc) cores, $MEM_TOTAL RAM, git $GIT_HEAD${GIT_DIRTY:+ (modified)}, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "settings: $SETTINGS"
	echo "seconds, median of $BENCH_RUNS runs (engine: min-max); runs in BEGIN ... ROLLBACK unless noted"
	echo
	row "figure" "${scenario_names[@]}"
	row "----------------------------------------------------------" "${scenario_names[@]//?/-}"
	mapfile -t v < <(cell engine c_engine); row "engine: run_invoice_batch('$ENGINE_TARGET') (s)" "${v[@]}"
	mapfile -t v < <(cell lines c_lines); row "  lines / invoices" "${v[@]}"
	mapfile -t v < <(cell lines c_rate); row "  lines per second" "${v[@]}"
	mapfile -t v < <(cell floor c_secs); row "floor: INSERT ... SELECT of the same rows (s)" "${v[@]}"
	mapfile -t v < <(cell floor c_floor_rows); row "  floor lines / invoices" "${v[@]}"
	mapfile -t v < <(cell floor c_floor_ratio); row "  engine / floor" "${v[@]}"
	mapfile -t v < <(cell floor_held c_secs); row "floor into tables holding the book's rows (s)" "${v[@]}"
	mapfile -t v < <(cell floor_held c_held_rows); row "  lines / invoices held before" "${v[@]}"
	mapfile -t v < <(cell floor_held c_held_ratio); row "  engine / floor into held tables" "${v[@]}"
	mapfile -t v < <(cell byhand c_byhand); row "by hand: row-by-row PL/pgSQL (s)" "${v[@]}"
	mapfile -t v < <(cell byhand c_byhand_ratio); row "  engine / by hand" "${v[@]}"
	mapfile -t v < <(cell byhand c_byhand_lines); row "  by-hand lines / invoices (close, not equal: see below)" "${v[@]}"
	mapfile -t v < <(cell second c_second); row "second run, same date, same transaction (s, % of first)" "${v[@]}"
	mapfile -t v < <(cell chunked c_secs); row "chunked: CALL run_invoice_batch_chunked(.., $CHUNK_ACCOUNTS) (s)" "${v[@]}"
	mapfile -t v < <(cell chunked c_chunked_ratio); row "  chunked / single run (fresh copy, commits)" "${v[@]}"
	mapfile -t v < <(cell mem c_mem); row "peak RssAnon MB: run / second (growth) / chunked / by hand" "${v[@]}"
	mapfile -t v < <(cell payments c_secs); row "payments: record_payments(.., auto_apply), N in one call (s)" "${v[@]}"
	mapfile -t v < <(cell payments c_pay_rows); row "  payments / allocations" "${v[@]}"
	mapfile -t v < <(cell payments_floor c_secs); row "  floor: INSERT ... SELECT of the same rows (s)" "${v[@]}"
	mapfile -t v < <(cell payments c_pay_ratio); row "  payments / floor" "${v[@]}"
	mapfile -t v < <(cell aging c_secs); row "aging: ar_aging('$AGING_AS_OF') (s)" "${v[@]}"
	mapfile -t v < <(cell aging_base c_secs); row "  plain GROUP BY of the same open amounts (s)" "${v[@]}"
	mapfile -t v < <(cell aging c_aging_ratio); row "  ar_aging / GROUP BY" "${v[@]}"
	mapfile -t v < <(cell aging c_aging_check); row "  agreement (account, currency, bucket)" "${v[@]}"
	mapfile -t v < <(cell aging c_aging_total); row "  total open amount" "${v[@]}"
	mapfile -t v < <(cell integrity_setup c_integrity); row "check_integrity() after the setup" "${v[@]}"
	mapfile -t v < <(cell integrity_after c_integrity); row "check_integrity() after run + payments" "${v[@]}"
	mapfile -t v < <(cell gen c_gen); row "generation (untimed setup)" "${v[@]}"
	echo
	echo "floor: the engine's invoice and line rows (exported from its run) written by two INSERT ... SELECT"
	echo "  into tables with the same columns, primary keys and indexes, no FKs/triggers/checks; payments likewise."
	echo "floor into held tables: the same, into copies of the book's invoice and line tables as they are"
	echo "  before the run (with their rows and indexes), after a checkpoint, as the engine writes into its tables."
	echo "by hand: bench/baseline_by_hand.sql; its lines and invoices are close to the engine's, not equal: it"
	echo "  has no proration lines for mid-period changes (it bills every period at the current quantity),"
	echo "  and amounts need not match to the cent."
	if [ "$BENCH_SKIP_BY_HAND" != 1 ]; then
		for sc in "${SCENARIOS[@]}"; do
			echo "  $sc: by-hand total ${FIG[$sc.byhand_total]}, lines ${FIG[$sc.byhand_lines]}; engine lines ${FIG[$sc.lines]}"
		done
	fi
	echo "engine: $ENGINE_ID"
	echo "load average at start $LOAD_AT_START, at end $(cut -d' ' -f1 /proc/loadavg)"
	echo "raw output: $RESULTS (bench/results/latest-engine); total run time $((SECONDS - START_SECONDS)) s"
} | tee "$RESULTS/summary.txt"

fails=0
for sc in "${SCENARIOS[@]}"; do
	[ "${FIG[$sc.integrity_setup]}" = 0 ] || { warn "$sc: check_integrity() reported findings after the setup (see $RESULTS/$sc/integrity_setup.txt)"; fails=1; }
	[ "${FIG[$sc.integrity_after]}" = 0 ] || { warn "$sc: check_integrity() reported findings after the run (see $RESULTS/$sc/integrity_after.txt)"; fails=1; }
	IFS='|' read -r _ m d _ _ <<<"${FIG[$sc.aging_check]}"
	[ "$((m + d))" = 0 ] || { warn "$sc: ar_aging and the GROUP BY baseline disagree"; fails=1; }
done
[ "$fails" = 0 ] || die "a check failed (see above)"
