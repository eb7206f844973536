#!/usr/bin/env bash
# Build and install the billing extension, start the throwaway PostgreSQL 15
# cluster in tmp_cluster/ (see scripts/lib.sh), recreate database
# billing_demo with the extension, and run scripts/demo.sql in it.  Run as root.
#
#   bash scripts/demo.sh
#   BILLING_PGPORT=54400 bash scripts/demo.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

setup_all
[ -z "$SETUP_FAILED" ] || die "setup step '$SETUP_FAILED' failed (see its output above)"

recreate_db billing_demo
say "database: CREATE EXTENSION billing"
psql -X -q -v ON_ERROR_STOP=1 -d billing_demo -c 'CREATE EXTENSION billing CASCADE'

say "demo: psql -X -v ON_ERROR_STOP=1 -f scripts/demo.sql billing_demo"
echo
psql -X -v ON_ERROR_STOP=1 -f scripts/demo.sql billing_demo || die "scripts/demo.sql failed"
echo
say "demo: done. Explore with: bash scripts/psql.sh billing_demo"
