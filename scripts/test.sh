#!/usr/bin/env bash
# Build, install and test the billing extension against a throwaway
# PostgreSQL 15 cluster in tmp_cluster/ (see scripts/lib.sh).  Run as root.
#
#   bash scripts/test.sh                    # all suites
#   TEST_ONLY=regress bash scripts/test.sh  # one of: regress | isolation | pgtap | cron | dump
#   BILLING_PGPORT=54400 bash scripts/test.sh
#
# Suites: pg_regress (sql/*.sql vs expected/*.out), isolation
# (test/specs/*.spec vs test/expected/*.out), pgTAP (test/pgtap/*.sql via
# pg_prove in database billing_tap). Failures do not stop later suites.
# The last line of output is always "N passed, M failed"; the exit status is
# non-zero if M > 0 or if any step (packages, build, install, cluster, a test
# runner) failed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TEST_ONLY=${TEST_ONLY:-}
case $TEST_ONLY in
	'' | regress | isolation | pgtap | cron | dump | upgrade) ;;
	*) die "TEST_ONLY must be one of: regress, isolation, pgtap, cron, dump, upgrade (got '$TEST_ONLY')" ;;
esac

TOTAL_PASSED=0
TOTAL_FAILED=0
STEP_ERRORS=()   # steps that failed without being counted as a failed test
SUMMARY=()       # one line per suite

wanted() { [ -z "$TEST_ONLY" ] || [ "$TEST_ONLY" = "$1" ]; }

# record SUITE PASSED FAILED "failed names" [note]
record() {
	local suite=$1 passed=$2 failed=$3 names=$4 note=${5:-}
	TOTAL_PASSED=$((TOTAL_PASSED + passed))
	TOTAL_FAILED=$((TOTAL_FAILED + failed))
	local line
	line=$(printf '%-10s %3d passed, %3d failed' "$suite:" "$passed" "$failed")
	[ -z "$names" ] || line+="  (failed: $names)"
	[ -z "$note" ] || line+="  [$note]"
	SUMMARY+=("$line")
}

record_skip() { SUMMARY+=("$(printf '%-10s skipped (%s)' "$1:" "$2")"); }

# Parse pg_regress / pg_isolation_regress output into "PASS name" / "FAIL name".
# PG15 prints "test name ... ok|FAILED|failed (ignored)" (parallel-group
# members are indented by five spaces instead of "test "); PG16+ prints TAP
# ("ok 1 - name", "not ok 2 - name"), also understood here.
parse_pg_regress() {
	awk '
	/^(test |     )[^ ].* \.\.\. / {
		line = $0; sub(/^test /, "", line); sub(/^ +/, "", line)
		name = line; sub(/ +\.\.\. .*$/, "", name)
		res = line; sub(/^[^ ]+ +\.\.\. /, "", res)
		if (res ~ /^ok/ || res ~ /^failed \(ignored\)/) print "PASS " name
		else print "FAIL " name
		next
	}
	/^(not )?ok [0-9]+ +[-+] / {
		failed = ($0 ~ /^not ok/)
		line = $0; sub(/^(not )?ok [0-9]+ +[-+] +/, "", line)
		name = line; sub(/ .*$/, "", name)
		print (failed ? "FAIL " : "PASS ") name
	}' "$1"
}

# Parse pg_prove output. Files listed in the "Test Summary Report" with a
# non-zero wait status, failed tests or parse errors (e.g. bad plan) failed.
# Prints "FAIL file" lines.
parse_pg_prove_failures() {
	awk '
	/^Test Summary Report/ { in_report = 1; next }
	!in_report { next }
	/^[^ ].* \(Wstat: [0-9]+/ {
		file = $0; sub(/ +\(Wstat: .*$/, "", file)
		match($0, /Wstat: [0-9]+/); wstat = substr($0, RSTART + 7, RLENGTH - 7) + 0
		nfail = 0
		if (match($0, /Failed: [0-9]+/)) nfail = substr($0, RSTART + 8, RLENGTH - 8) + 0
		if (wstat != 0 || nfail > 0) bad[file] = 1
		next
	}
	/^  (Parse errors|Non-zero exit status|Non-zero wait status|Failed tests?):/ && file != "" { bad[file] = 1 }
	/^Files=[0-9]+, Tests=/ { in_report = 0 }
	END { for (f in bad) print "FAIL " f }' "$1"
}

# run_pg_regress_suite SUITE LOGNAME DIFFS MAKE-ARGS...
run_pg_regress_suite() {
	local suite=$1 log=$CLUSTER_LOGS/$2 diffs=$3 rc=0
	shift 3
	say "$suite: make installcheck $*"
	rm -f "$diffs"
	make -C "$REPO_ROOT" PG_CONFIG="$PG_CONFIG" installcheck "$@" 2>&1 | tee "$log" || rc=$?
	local parsed passed failed names
	parsed=$(parse_pg_regress "$log")
	passed=$(grep -c '^PASS ' <<<"$parsed" || true)
	failed=$(grep -c '^FAIL ' <<<"$parsed" || true)
	names=$(sed -n 's/^FAIL //p' <<<"$parsed" | paste -sd' ' -)
	if [ "$rc" -ne 0 ] && [ -s "$diffs" ]; then
		say "$suite: differences ($diffs):"
		cat "$diffs"
	fi
	local note=
	if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
		note="runner failed with exit status $rc, see $log"
		STEP_ERRORS+=("$suite runner")
	fi
	record "$suite" "$passed" "$failed" "$names" "$note"
}

suite_regress() {
	local files=("$REPO_ROOT"/sql/*.sql)
	if [ ! -e "${files[0]}" ]; then
		record_skip regress "no sql/*.sql"
		return 0
	fi
	run_pg_regress_suite regress regress.out "$REPO_ROOT/regression.diffs" ISOLATION=
}

suite_isolation() {
	local files=("$REPO_ROOT"/test/specs/*.spec)
	if [ ! -e "${files[0]}" ]; then
		record_skip isolation "no test/specs/*.spec"
		return 0
	fi
	run_pg_regress_suite isolation isolation.out "$REPO_ROOT/test/output_iso/regression.diffs" REGRESS=
}

suite_pgtap() {
	local files=(test/pgtap/*.sql)
	if [ ! -e "${files[0]}" ]; then
		record_skip pgtap "no test/pgtap/*.sql"
		return 0
	fi
	local log=$CLUSTER_LOGS/pgtap.out rc=0
	if ! recreate_db billing_tap ||
		! psql -X -q -v ON_ERROR_STOP=1 -d billing_tap -c 'CREATE EXTENSION pgtap' >/dev/null; then
		record pgtap 0 0 "" "could not prepare database billing_tap"
		STEP_ERRORS+=("pgtap setup")
		return 0
	fi
	say "pgtap: pg_prove -d billing_tap test/pgtap/*.sql"
	pg_prove -d billing_tap "${files[@]}" 2>&1 | tee "$log" || rc=$?
	local parsed failed names passed note=
	parsed=$(parse_pg_prove_failures "$log")
	failed=$(grep -c '^FAIL ' <<<"$parsed" || true)
	names=$(sed -n 's/^FAIL //p' <<<"$parsed" | sort | paste -sd' ' -)
	passed=$((${#files[@]} - failed))
	if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
		# pg_prove failed but no file was reported: count them all as failed.
		note="pg_prove failed with exit status $rc, see $log"
		failed=${#files[@]}
		passed=0
		names="(all)"
	fi
	record pgtap "$passed" "$failed" "$names" "$note"
}

# pg_cron: the README's nightly schedule really runs billing.run_invoice_batch().
suite_cron() {
	local log=$CLUSTER_LOGS/cron.out ok=0 i status batches
	say "cron: psql -d billing_cron -f test/cron/nightly_run.sql, then wait for the job"
	if ! psql -X -q -v ON_ERROR_STOP=1 -d billing_cron -f "$REPO_ROOT/test/cron/nightly_run.sql" >"$log" 2>&1; then
		cat "$log"
		record cron 0 1 "nightly_run" "setup failed, see $log"
		return 0
	fi
	for i in $(seq 1 90); do
		sleep 1
		status=$(psql -X -At -d billing_cron -c "SELECT string_agg(DISTINCT status, ',') FROM cron.job_run_details d JOIN cron.job j USING (jobid) WHERE j.jobname = 'billing-test-now' AND status IN ('succeeded', 'failed')" 2>>"$log")
		if [ -n "$status" ]; then break; fi
	done
	batches=$(psql -X -At -d billing_cron -c "SELECT count(*) FROM billing.invoice_batch WHERE status = 'completed'" 2>>"$log")
	psql -X -At -d billing_cron -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'billing-test-now'" >>"$log" 2>&1 || true
	say "cron: job status '${status:-none after 90 s}', completed batches ${batches:-?}"
	if [ "$status" = succeeded ] && [ "${batches:-0}" -ge 1 ] &&
		[ "$(psql -X -At -d billing_cron -c 'SELECT count(*) FROM billing.check_integrity()')" = 0 ]; then
		ok=1
	else
		psql -X -d billing_cron -c "SELECT status, return_message FROM cron.job_run_details ORDER BY runid DESC LIMIT 3" 2>&1 | tee -a "$log"
	fi
	if [ "$ok" = 1 ]; then record cron 1 0 ""; else record cron 0 1 "nightly_run"; fi
}

# A database holding the demo's book (restored, or updated to this version)
# is healthy: check_integrity() finds nothing, and a run for the demo's last
# date bills nothing again.  Returns non-zero, saying why, otherwise.
demo_book_healthy() { # demo_book_healthy DB LOG LABEL
	local db=$1 log=$2 label=$3 rc=0
	if [ "$(psql -X -At -d "$db" -c 'SELECT count(*) FROM billing.check_integrity()' 2>>"$log")" != 0 ]; then
		say "$label: check_integrity() reports findings"; rc=1
	fi
	if [ "$(psql -X -At -d "$db" -c "SELECT lines FROM billing.run_invoice_batch('2026-11-01')" 2>>"$log")" != 0 ]; then
		say "$label: a run billed again"; rc=1
	fi
	return $rc
}

# pg_dump / restore: every table is registered with pg_extension_config_dump;
# a restored database equals its source, stays healthy, and bills nothing twice.
suite_dump() {
	local log=$CLUSTER_LOGS/dump.out ok=1 src=billing_dump_src dst=billing_dump_dst
	say "dump: demo data in $src, pg_dump, restore into $dst, compare"
	{
		recreate_db "$src" && recreate_db "$dst" &&
			psql -X -q -v ON_ERROR_STOP=1 -d "$src" -c 'CREATE EXTENSION billing' &&
			psql -X -q -v ON_ERROR_STOP=1 -d "$src" -f "$REPO_ROOT/scripts/demo.sql" &&
			pg_dump -d "$src" -f "$CLUSTER_LOGS/dump.sql" &&
			psql -X -q -v ON_ERROR_STOP=1 -d "$dst" -f "$CLUSTER_LOGS/dump.sql"
	} >"$log" 2>&1 || ok=0
	if [ "$ok" = 1 ]; then
		psql -X -At -d "$src" -f "$REPO_ROOT/test/dump/compare.sql" >"$CLUSTER_LOGS/dump_src.txt" 2>&1
		psql -X -At -d "$dst" -f "$REPO_ROOT/test/dump/compare.sql" >"$CLUSTER_LOGS/dump_dst.txt" 2>&1
		if ! diff "$CLUSTER_LOGS/dump_src.txt" "$CLUSTER_LOGS/dump_dst.txt" >>"$log"; then
			say "dump: restored tables differ from the source"; ok=0
		fi
		demo_book_healthy "$dst" "$log" "dump: the restored database" || ok=0
	fi
	if [ "$ok" = 1 ]; then
		record dump 1 0 ""
	else
		tail -20 "$log"
		record dump 0 1 "restore_roundtrip" "see $log"
	fi
}

# Upgrades: every released version (a committed billing--X.sql) is installed,
# given the demo data, and updated to the current version with ALTER EXTENSION
# UPDATE.  Its catalog must equal a fresh install's, its data must stay
# healthy, and a run for the demo's date must bill nothing again.
suite_upgrade() {
	local log=$CLUSTER_LOGS/upgrade.out fresh=billing_upgrade_fresh old passed=0 failed=0 names=""
	local current
	current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$REPO_ROOT/billing.control")
	: >"$log"
	recreate_db "$fresh" >>"$log" 2>&1 &&
		psql -X -q -v ON_ERROR_STOP=1 -d "$fresh" -c 'CREATE EXTENSION billing' >>"$log" 2>&1 &&
		psql -X -At -d "$fresh" -f "$REPO_ROOT/test/upgrade/catalog.sql" >"$CLUSTER_LOGS/catalog_fresh.txt" 2>>"$log" ||
		{ STEP_ERRORS+=("upgrade:fresh_install"); return; }
	for old in $(cd "$REPO_ROOT" && ls billing--*.sql | sed -n 's/^billing--\([0-9.]*\)\.sql$/\1/p'); do
		[ "$old" != "$current" ] || continue
		local db=billing_upgrade_from_${old//./_} ok=1
		say "upgrade: $old with the demo data -> $current"
		{
			recreate_db "$db" &&
				psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION billing VERSION '$old'" &&
				psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$REPO_ROOT/scripts/demo.sql" &&
				psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c 'ALTER EXTENSION billing UPDATE'
		} >>"$log" 2>&1 || ok=0
		if [ "$ok" = 1 ]; then
			psql -X -At -d "$db" -f "$REPO_ROOT/test/upgrade/catalog.sql" >"$CLUSTER_LOGS/catalog_from_$old.txt" 2>>"$log"
			if ! diff "$CLUSTER_LOGS/catalog_fresh.txt" "$CLUSTER_LOGS/catalog_from_$old.txt" >>"$log"; then
				say "upgrade: the catalog updated from $old differs from a fresh $current (diff in $log)"; ok=0
			fi
			if [ "$(psql -X -At -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'billing'" 2>>"$log")" != "$current" ]; then
				say "upgrade: $old was not updated to $current"; ok=0
			fi
			demo_book_healthy "$db" "$log" "upgrade: the database updated from $old" || ok=0
		fi
		if [ "$ok" = 1 ]; then
			passed=$((passed + 1))
		else
			tail -20 "$log"
			failed=$((failed + 1)); names+="${names:+ }from_$old"
		fi
	done
	record upgrade "$passed" "$failed" "$names" "see $log"
}

finish() {
	echo
	say "Summary"
	local line
	for line in ${SUMMARY[@]+"${SUMMARY[@]}"}; do
		printf '    %s\n' "$line"
	done
	if [ -n "$SETUP_FAILED" ]; then
		printf '    setup step "%s" FAILED (see its output above); tests were not run\n' "$SETUP_FAILED"
	fi
	if [ "${#STEP_ERRORS[@]}" -gt 0 ]; then
		printf '    failed steps: %s\n' "${STEP_ERRORS[*]}"
	fi
	echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
	if [ -n "$SETUP_FAILED" ] || [ "${#STEP_ERRORS[@]}" -gt 0 ] || [ "$TOTAL_FAILED" -gt 0 ]; then
		exit 1
	fi
	exit 0
}

setup_all
if [ -n "$SETUP_FAILED" ]; then finish; fi

mkdir -p "$CLUSTER_LOGS"
if wanted regress; then suite_regress; fi
if wanted isolation; then suite_isolation; fi
if wanted pgtap; then suite_pgtap; fi
if wanted cron; then suite_cron; fi
if wanted dump; then suite_dump; fi
if wanted upgrade; then suite_upgrade; fi
finish
