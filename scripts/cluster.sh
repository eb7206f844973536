#!/usr/bin/env bash
# Manage the throwaway PostgreSQL 15 cluster in tmp_cluster/ (see scripts/lib.sh).
#
#   bash scripts/cluster.sh start    # install packages if missing, start (or reuse) the cluster
#   bash scripts/cluster.sh stop     # stop it
#   bash scripts/cluster.sh status
#   bash scripts/cluster.sh env      # print export lines: eval "$(bash scripts/cluster.sh env)"
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cluster_env

case ${1:-} in
	start)
		ensure_packages
		ensure_cluster
		;;
	stop)
		require_root
		cluster_stop
		;;
	status)
		if postmaster_alive && pg_ready "$PM_PORT"; then
			say "cluster: running (pid $PM_PID) on 127.0.0.1:$PM_PORT, socket $CLUSTER_SOCK"
		else
			say "cluster: not running"
			exit 3
		fi
		;;
	env)
		printf 'export PGHOST=%q PGPORT=%q PGUSER=%q\n' "$PGHOST" "$PGPORT" "$PGUSER"
		;;
	*)
		echo "usage: bash scripts/cluster.sh start|stop|status|env" >&2
		exit 2
		;;
esac
