-- billing_period: text and binary I/O, validation, operators, opclasses, casts.
\i sql/include/session.psql
\set VERBOSITY default

-- Text input and canonical output
SELECT '[2026-01-15,2026-02-15)'::billing_period AS p;
SELECT '  [ 2026-01-15 , 2026-02-15 )  '::billing_period AS spaces_around_elements;
SELECT E'\t[2026-01-15,\n2026-02-15)'::billing_period AS tabs_and_newlines;
SELECT '[0001-01-01,9999-12-31)'::billing_period AS widest;
SELECT '[2024-02-28,2024-03-01)'::billing_period AS leap, period_days('[2024-02-28,2024-03-01)');
-- Output ignores DateStyle: always ISO
SET DateStyle = 'SQL, DMY';
SELECT '[2026-01-15,2026-02-15)'::billing_period AS iso_under_sql_datestyle;
SET DateStyle = 'ISO, YMD';

-- Constructor and accessors
SELECT billing_period('2026-01-15', '2026-02-15') AS p,
       period_start('[2026-01-15,2026-02-15)'),
       period_end('[2026-01-15,2026-02-15)'),
       period_days('[2026-01-15,2026-02-15)');
SELECT billing_period(start => '2026-03-01', "end" => '2026-03-02') AS named_args;
SELECT billing_period(NULL, '2026-01-01') IS NULL AS strict_null;

-- Malformed literals: 22P02 with the literal in the message
SELECT ''::billing_period;
SELECT ' '::billing_period;
SELECT 'empty'::billing_period;
SELECT '2026-01-15,2026-02-15)'::billing_period;
SELECT '(2026-01-15,2026-02-15)'::billing_period;
SELECT '[2026-01-15,2026-02-15]'::billing_period;
SELECT '[2026-01-15,2026-02-15'::billing_period;
SELECT '[2026-01-15 2026-02-15)'::billing_period;
SELECT '[2026-01-15;2026-02-15)'::billing_period;
SELECT '[2026-01-15,,2026-02-15)'::billing_period;
SELECT '[,2026-02-15)'::billing_period;
SELECT '[2026-01-15,)'::billing_period;
SELECT '[)'::billing_period;
SELECT '[2026-1-15,2026-02-15)'::billing_period;
SELECT '[2026-01-5,2026-02-15)'::billing_period;
SELECT '[26-01-15,2026-02-15)'::billing_period;
SELECT '[20260115,2026-02-15)'::billing_period;
SELECT '[2026/01/15,2026-02-15)'::billing_period;
SELECT '[2026-01-15T00:00,2026-02-15)'::billing_period;
SELECT '[2026-01-150,2026-02-15)'::billing_period;
SELECT '[12026-01-15,2026-02-15)'::billing_period;
SELECT '[-2026-01-15,2026-02-15)'::billing_period;
SELECT '[infinity,2026-02-15)'::billing_period;
SELECT '[2026-01-15,infinity)'::billing_period;
SELECT '[-infinity,infinity)'::billing_period;
SELECT '[today,tomorrow)'::billing_period;
SELECT '[Jan 15 2026,Feb 15 2026)'::billing_period;
SELECT '[2026-01-15,2026-02-15) x'::billing_period;
SELECT '[2026-01-15,2026-02-15))'::billing_period;
SELECT '[[2026-01-15,2026-02-15)'::billing_period;
SELECT '["2026-01-15","2026-02-15")'::billing_period;
SELECT '[2026-01-15,2026-02-15,2026-03-15)'::billing_period;
SELECT 'x[2026-01-15,2026-02-15)'::billing_period;
-- Impossible calendar dates: 22008
SELECT '[2026-02-30,2026-03-15)'::billing_period;
SELECT '[2026-13-01,2027-01-01)'::billing_period;
SELECT '[2025-02-29,2025-03-01)'::billing_period;
SELECT '[0000-01-01,2026-01-01)'::billing_period;
SELECT '[2026-00-10,2026-02-01)'::billing_period;
-- start >= end: 22000 with both dates
SELECT '[2026-01-15,2026-01-15)'::billing_period;
SELECT '[2026-02-15,2026-01-15)'::billing_period;
SELECT billing_period('2026-02-01', '2026-01-01');
SELECT billing_period('2026-01-01', 'infinity');
SELECT billing_period('-infinity', '2026-01-01');
SELECT billing_period('10000-01-01', '10000-02-01');
SELECT billing_period('0001-01-01 BC', '2026-02-01');

-- The SQLSTATEs, checked explicitly
DO $$
DECLARE
	lit text;
	state text;
BEGIN
	FOREACH lit IN ARRAY ARRAY['foo', '', '[2026-01-15,2026-02-15]', '[infinity,2026-01-01)',
							   '[2026-01-15 2026-02-15)', '[2026-01-15,2026-02-15) x',
							   '[2026-02-30,2026-03-01)', '[0000-01-01,2026-01-01)',
							   '[2026-01-15,2026-01-15)', '[2026-02-15,2026-01-15)']
	LOOP
		BEGIN
			PERFORM lit::billing.billing_period;
			state := 'no error';
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
		END;
		RAISE NOTICE '% -> %', lit, state;
	END LOOP;
END $$;

-- 10,000 random strings: only clean data errors, never a crash or an internal error
CREATE TEMP TABLE fuzz_result (sqlstate text, n int);
DO $$
DECLARE
	alphabet text := '[](),-0123456789 infty' || E'\t';
	s text;
	state text;
	counts jsonb := '{}';
BEGIN
	PERFORM setseed(0.42);
	FOR i IN 1..10000 LOOP
		IF i % 3 = 0 THEN
			-- near misses of a valid literal: one character changed
			s := '[2026-01-15,2026-02-15)';
			s := overlay(s placing substr(alphabet, 1 + floor(random() * length(alphabet))::int, 1)
						 from 1 + floor(random() * length(s))::int for 1);
		ELSE
			s := '';
			FOR j IN 1..floor(random() * 30)::int LOOP
				s := s || substr(alphabet, 1 + floor(random() * length(alphabet))::int, 1);
			END LOOP;
		END IF;
		BEGIN
			PERFORM s::billing.billing_period;
			state := 'valid';
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
		END;
		counts := jsonb_set(counts, ARRAY[state], to_jsonb(coalesce((counts ->> state)::int, 0) + 1));
	END LOOP;
	INSERT INTO fuzz_result SELECT key, value::int FROM jsonb_each_text(counts);
END $$;
SELECT sum(n) AS strings FROM fuzz_result;
SELECT sqlstate, n > 0 AS seen FROM fuzz_result ORDER BY sqlstate;
SELECT array_agg(sqlstate ORDER BY sqlstate) <@ ARRAY['valid', '22P02', '22008', '22000'] AS only_clean_errors
FROM fuzz_result;

-- Binary send/recv round trip, and recv validates like text input
SELECT billing_period_send('[2026-01-15,2026-02-15)') AS wire;
CREATE TEMP TABLE bin_roundtrip AS
SELECT p, billing_period_send(p) AS wire
FROM billing_periods('2020-01-01', 'month', 1, '2020-01-01', '2021-01-01') AS p;
SELECT count(*) AS roundtrips_ok FROM bin_roundtrip
WHERE p = billing_period('2000-01-01'::date + ('x' || encode(substr(wire, 1, 4), 'hex'))::bit(32)::int,
						 '2000-01-01'::date + ('x' || encode(substr(wire, 5, 4), 'hex'))::bit(32)::int);
-- COPY BINARY round trip goes through send and recv
CREATE TEMP TABLE bin_src (p billing_period);
INSERT INTO bin_src VALUES ('[2026-01-15,2026-02-15)'), ('[1999-12-31,2000-01-01)');
COPY bin_src TO '/tmp/billing_period_regress.bin' WITH (FORMAT binary);
CREATE TEMP TABLE bin_dst (p billing_period);
COPY bin_dst FROM '/tmp/billing_period_regress.bin' WITH (FORMAT binary);
SELECT p FROM bin_dst ORDER BY p;
-- A corrupted binary value (end before start) is rejected by recv: 22000
SELECT lo_from_bytea(424242, decode('5047434f50590aff0d0a00' || '00000000' || '00000000'
		|| '0001' || '00000008' || '000024ee' || '000024ce' || 'ffff', 'hex')) AS bad_wire_object;
SELECT lo_export(424242, '/tmp/billing_period_regress_bad.bin') AS bad_file_written;
SELECT lo_unlink(424242);
COPY bin_dst FROM '/tmp/billing_period_regress_bad.bin' WITH (FORMAT binary);
SELECT count(*) AS rows_after_bad_copy FROM bin_dst;

-- Ordering: by start, then end
SELECT p FROM (VALUES ('[2026-02-01,2026-03-01)'::billing_period), ('[2026-01-01,2026-03-01)'),
						('[2026-01-01,2026-02-01)'), ('[2025-12-01,2027-01-01)')) v(p)
ORDER BY p;
SELECT '[2026-01-01,2026-02-01)'::billing_period = '[2026-01-01,2026-02-01)' AS eq,
       '[2026-01-01,2026-02-01)'::billing_period <> '[2026-01-01,2026-02-02)' AS ne,
       '[2026-01-01,2026-02-01)'::billing_period < '[2026-01-01,2026-02-02)' AS lt_same_start,
       '[2026-01-01,2026-12-01)'::billing_period < '[2026-01-02,2026-01-03)' AS lt_by_start,
       '[2026-01-01,2026-02-01)'::billing_period <= '[2026-01-01,2026-02-01)' AS le,
       '[2026-01-02,2026-02-01)'::billing_period > '[2026-01-01,2026-02-01)' AS gt,
       '[2026-01-01,2026-02-01)'::billing_period >= '[2026-01-01,2026-02-01)' AS ge;

-- btree index and hash opclass are used
CREATE TEMP TABLE periods AS
SELECT p FROM billing_periods('2000-01-01', 'day', 1, '2000-01-01', '2010-01-01') AS p;
CREATE INDEX ON periods (p);
ANALYZE periods;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM periods WHERE p = '[2005-05-05,2005-05-06)';
SELECT * FROM periods WHERE p = '[2005-05-05,2005-05-06)';
RESET enable_seqscan;
SET enable_mergejoin = off;
SET enable_nestloop = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM periods a JOIN periods b USING (p);
SELECT count(*) FROM periods a JOIN periods b USING (p);
RESET enable_mergejoin;
RESET enable_nestloop;
SELECT count(DISTINCT p) FROM periods;
SELECT billing_period_hash('[2026-01-01,2026-02-01)') = billing_period_hash('[2026-01-01,2026-02-01)') AS hash_stable,
       billing_period_hash('[2026-01-01,2026-02-01)') <> billing_period_hash('[2026-01-01,2026-02-02)') AS hash_differs,
       billing_period_hash_extended('[2026-01-01,2026-02-01)', 0) <> billing_period_hash_extended('[2026-01-01,2026-02-01)', 1) AS seed_matters;
-- hash partitioning uses the extended hash
CREATE TEMP TABLE hp (p billing_period) PARTITION BY HASH (p);
CREATE TEMP TABLE hp0 PARTITION OF hp FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TEMP TABLE hp1 PARTITION OF hp FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO hp SELECT p FROM periods;
SELECT (SELECT count(*) FROM hp0) > 0 AND (SELECT count(*) FROM hp1) > 0 AS both_partitions_used,
       (SELECT count(*) FROM hp) AS total;

-- Overlap, containment, intersection (half-open: the end day is not covered)
SELECT '[2026-01-01,2026-02-01)'::billing_period && '[2026-01-31,2026-03-01)' AS overlap_one_day,
       '[2026-01-01,2026-02-01)'::billing_period && '[2026-02-01,2026-03-01)' AS adjacent_no_overlap,
       '[2026-01-01,2026-02-01)'::billing_period @> '2026-01-01'::date AS contains_start,
       '[2026-01-01,2026-02-01)'::billing_period @> '2026-01-31'::date AS contains_last_day,
       '[2026-01-01,2026-02-01)'::billing_period @> '2026-02-01'::date AS contains_end,
       '2026-01-15'::date <@ '[2026-01-01,2026-02-01)'::billing_period AS date_in,
       '[2026-01-01,2026-02-01)'::billing_period @> '[2026-01-10,2026-02-01)'::billing_period AS contains_period,
       '[2026-01-01,2026-02-01)'::billing_period @> '[2026-01-10,2026-02-02)'::billing_period AS not_contains,
       '[2026-01-10,2026-01-20)'::billing_period <@ '[2026-01-01,2026-02-01)'::billing_period AS contained_by,
       '[2026-01-01,2026-02-01)'::billing_period <@ '[2026-01-01,2026-02-01)'::billing_period AS self_contained;
SELECT '[2026-01-01,2026-03-01)'::billing_period * '[2026-02-10,2026-05-01)' AS intersection,
       '[2026-01-01,2026-02-01)'::billing_period * '[2026-02-01,2026-03-01)' AS disjoint_is_null;
SELECT '[2026-01-01,2026-02-01)'::billing_period OPERATOR(billing.&&) '[2026-01-15,2026-01-16)' AS qualified_operator;

-- Casts with daterange
SELECT '[2026-01-01,2026-02-01)'::billing_period::daterange AS to_daterange,
       daterange('2026-01-01', '2026-02-01')::billing_period AS from_daterange,
       daterange('2026-01-01', '2026-01-31', '[]')::billing_period AS from_closed,
       daterange('2025-12-31', '2026-02-01', '(]')::billing_period AS from_open_closed;
SELECT 'empty'::daterange::billing_period;
SELECT daterange(NULL, '2026-01-01')::billing_period;
SELECT daterange('2026-01-01', NULL)::billing_period;
SELECT daterange('2026-01-01', 'infinity')::billing_period;
-- no implicit cast: a daterange is not silently a billing_period
SELECT count(*) AS implicit_casts FROM pg_cast
WHERE (castsource = 'billing.billing_period'::regtype OR casttarget = 'billing.billing_period'::regtype)
  AND castcontext <> 'e';
