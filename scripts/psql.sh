#!/usr/bin/env bash
# psql connected to the throwaway cluster in tmp_cluster/ as user postgres.
#   bash scripts/psql.sh                 # database postgres
#   bash scripts/psql.sh billing_demo
#   bash scripts/psql.sh -d billing_demo -c 'SELECT 1'
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cluster_env
if ! pg_ready "$PGPORT"; then
	die "the throwaway cluster is not running on port $PGPORT (socket $PGHOST); start it with: bash scripts/cluster.sh start (or bash scripts/demo.sh)"
fi
exec psql "$@"
