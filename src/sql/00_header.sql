-- billing: subscription billing and accounts receivable inside PostgreSQL.
-- This install script is assembled from src/sql/*.sql by the Makefile.

\echo Use "CREATE EXTENSION billing" to load this file. \quit
