# billing: PostgreSQL extension built with PGXS.
EXTENSION  = billing
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" billing.control)

MODULE_big = billing
OBJS = \
	src/billing.o \
	src/billing_period.o \
	src/numeric_scaled.o \
	src/schedule.o \
	src/prorate.o \
	src/prorate_agg.o \
	src/pricing.o \
	src/due_items.o \
	src/keyed_scan.o \
	src/run_statements.o \
	src/run_writer.o \
	src/watermark_writer.o \
	src/currency.o \
	src/money.o \
	src/payment_matching.o \
	src/revenue.o

# The install script is assembled from the SQL sources in src/sql, in file-name order.
SQL_SOURCES = $(sort $(wildcard src/sql/*.sql))
DATA_built  = billing--$(EXTVERSION).sql
# Committed as they are: the install scripts of released versions (frozen,
# so that upgrades from them can be tested) and the upgrade scripts.
DATA        = $(filter-out billing--$(EXTVERSION).sql,$(wildcard billing--*.sql))

# pg_regress: sql/*.sql against expected/*.out
REGRESS      = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
# isolation tester: test/specs/*.spec against test/expected/*.out
ISOLATION      = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --outputdir=test/output_iso

# PostgreSQL's own headers have unused parameters (ilist.h, bufpage.h)
PG_CFLAGS  = -Wall -Wextra -Werror -Wno-unused-parameter
EXTRA_CLEAN = billing--$(EXTVERSION).sql results regression.diffs regression.out test/output_iso

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS passes its own --dbname; these name our test databases.
CONTRIB_TESTDB   = billing_regression
ISOLATION_TESTDB = billing_isolation

billing--$(EXTVERSION).sql: $(SQL_SOURCES)
	cat $^ > $@
