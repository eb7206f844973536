-- billing 0.1.0 -> 0.2.0.  Every change here is also in src/sql (which builds
-- billing--0.2.0.sql); scripts/test.sh (suite "upgrade") checks that a 0.1.0
-- database updated by this script has the same catalog as a fresh 0.2.0.

\echo Use "ALTER EXTENSION billing UPDATE TO '0.2.0'" to load this file. \quit
