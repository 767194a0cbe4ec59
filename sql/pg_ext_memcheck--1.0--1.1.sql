/* pg_ext_memcheck--1.0--1.1.sql */

\echo Use "ALTER EXTENSION pg_ext_memcheck UPDATE TO '1.1'" to load this file. \quit

ALTER TABLE violation_log
    ADD COLUMN lifetime text, ADD COLUMN verdict text, ADD COLUMN rate_bytes float8,
    ADD COLUMN rate_unit text, ADD COLUMN calls bigint, ADD COLUMN occurrences bigint,
    ADD COLUMN entry text, ADD COLUMN sites jsonb, ADD COLUMN finding_id int;

DROP FUNCTION flush_violations();
DROP FUNCTION pending_violations();
DROP FUNCTION status();
DROP FUNCTION "end"();
DROP FUNCTION _end_window();
DROP FUNCTION run_scenario(text, int, text);

CREATE FUNCTION pending_violations(
    OUT seq bigint, OUT ts timestamptz, OUT backend_pid int, OUT check_type text,
    OUT severity text, OUT detail text, OUT source_lib text, OUT context_name text,
    OUT context_path text, OUT depth int, OUT used_before bigint, OUT used_after bigint,
    OUT used_delta bigint, OUT allocated_delta bigint, OUT bytes_per_iteration float8,
    OUT iterations bigint, OUT phase text, OUT nest_level int, OUT query text,
    OUT lifetime text, OUT verdict text, OUT rate_bytes float8, OUT rate_unit text,
    OUT calls bigint, OUT occurrences bigint, OUT entry text, OUT sites jsonb,
    OUT finding_id int)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mc_pending_violations'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION status(
    OUT capacity int, OUT pending bigint, OUT written bigint, OUT dropped bigint,
    OUT flushed_upto bigint, OUT next_seq bigint, OUT mode text, OUT ring_full boolean,
    OUT refused bigint, OUT libraries text[], OUT tracked_allocations bigint,
    OUT untracked_allocations bigint, OUT findings int, OUT window_open boolean,
    OUT coverage_gaps int)
RETURNS record
AS 'MODULE_PATHNAME', 'mc_status'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION coverage(OUT kind text, OUT name text, OUT measured boolean, OUT detail text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mc_coverage'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION _publish()
RETURNS void
AS 'MODULE_PATHNAME', 'mc_publish'
LANGUAGE C STRICT VOLATILE;

-- Exactly once: ON CONFLICT waits for a concurrent flusher's outcome, and the
-- ring releases the entries only when this transaction commits.  SECURITY
-- DEFINER: a role granted USAGE on the schema and EXECUTE on this function
-- can flush without rights on the table.
CREATE FUNCTION flush_violations()
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    inserted bigint;
    upto bigint;
BEGIN
    PERFORM ext_memcheck._publish();
    WITH pending AS MATERIALIZED (
        SELECT * FROM ext_memcheck.pending_violations()
    ), ins AS (
        INSERT INTO ext_memcheck.violation_log
            (seq, ts, backend_pid, check_type, severity, detail, source_lib, context_name,
             context_path, depth, used_before, used_after, used_delta, allocated_delta,
             bytes_per_iteration, iterations, phase, nest_level, query, lifetime, verdict,
             rate_bytes, rate_unit, calls, occurrences, entry, sites, finding_id)
        SELECT p.seq, p.ts, p.backend_pid, p.check_type, p.severity, p.detail, p.source_lib,
               p.context_name, p.context_path, p.depth, p.used_before, p.used_after,
               p.used_delta, p.allocated_delta, p.bytes_per_iteration, p.iterations, p.phase,
               p.nest_level, p.query, p.lifetime, p.verdict, p.rate_bytes, p.rate_unit,
               p.calls, p.occurrences, p.entry, p.sites, p.finding_id
        FROM pending p
        ORDER BY p.seq
        ON CONFLICT (seq) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM ins), (SELECT max(seq) + 1 FROM pending)
    INTO inserted, upto;
    IF upto IS NOT NULL THEN
        PERFORM ext_memcheck._mark_flushed(upto);
    END IF;
    RETURN inserted;
END;
$$;

-- This backend's findings since begin(), whatever the ring's state, filtered
-- by the begin() pattern and allowlist.
CREATE FUNCTION "end"()
RETURNS TABLE (
    ts timestamptz, backend_pid int, check_type text, severity text, detail text,
    source_lib text, context_name text, context_path text, depth int,
    used_delta bigint, allocated_delta bigint, bytes_per_iteration float8, phase text,
    query text, lifetime text, verdict text, rate_bytes float8, rate_unit text,
    calls bigint, occurrences bigint, entry text, sites jsonb, finding_id int)
AS 'MODULE_PATHNAME', 'mc_end'
LANGUAGE C STRICT VOLATILE;

-- The original tool's form; runs in the calling transaction.  Arguments as
-- the original documents them: iterations defaults to the scenario's own
-- (ext_memcheck.scenarios), workload to 'SELECT 1'; target names a function
-- called without arguments instead; args are JSON objects merged into
-- options; reset_frequency is context_reset_storm's, workers
-- concurrent_backends'.
CREATE FUNCTION run_scenario(scenario_name text, iterations int DEFAULT NULL,
                             workload text DEFAULT NULL, options jsonb DEFAULT NULL,
                             target text DEFAULT NULL, args text[] DEFAULT NULL,
                             reset_frequency int DEFAULT NULL, workers int DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'mc_run_scenario'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

-- A transaction per iteration (CALL it at top level).
CREATE PROCEDURE scenario(scenario_name text, iterations int DEFAULT NULL,
                          workload text DEFAULT NULL, options jsonb DEFAULT NULL,
                          target text DEFAULT NULL, args text[] DEFAULT NULL,
                          reset_frequency int DEFAULT NULL, workers int DEFAULT NULL,
                          INOUT result jsonb DEFAULT NULL)
AS 'MODULE_PATHNAME', 'mc_scenario_proc'
LANGUAGE C;

CREATE FUNCTION _scenarios(OUT name text, OUT description text, OUT default_iterations int)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mc_scenarios'
LANGUAGE C STRICT IMMUTABLE;

-- The scenarios run_scenario() knows.
CREATE VIEW scenarios AS SELECT * FROM ext_memcheck._scenarios();

-- Empties violation_log (the ring buffer is not touched).
CREATE FUNCTION clear_violations()
RETURNS void
LANGUAGE sql VOLATILE
AS $$ DELETE FROM ext_memcheck.violation_log $$;

-- DSM segments: every one the extension under test maps is followed; these
-- are the original's manual registration and its table.
CREATE FUNCTION track_dsm_handle(handle bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'mc_track_dsm_handle'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION dsm_tracking()
RETURNS TABLE (segid bigint, backend_pid int, attach_at timestamptz, size_bytes bigint,
               detached boolean, source_lib text, pinned boolean, origin text)
AS 'MODULE_PATHNAME', 'mc_dsm_tracking'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION clear_dsm_tracking()
RETURNS void
AS 'MODULE_PATHNAME', 'mc_clear_dsm_tracking'
LANGUAGE C STRICT VOLATILE;

-- Guard bytes behind shared-memory allocations (shmem_overrun).
CREATE FUNCTION shmem_guards()
RETURNS TABLE (name text, owner text, size bigint, allocated_size bigint, guard_bytes int,
               guarded boolean, overruns int, detected_at timestamptz, detail text)
AS 'MODULE_PATHNAME', 'mc_shmem_guards'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION clear_shmem_registry()
RETURNS void
AS 'MODULE_PATHNAME', 'mc_clear_shmem_registry'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION register_shmem_probe(seg_name text, allocated_size bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'mc_register_shmem_probe'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION probe_check(seg_name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'mc_probe_check'
LANGUAGE C STRICT VOLATILE;

-- Nothing for PUBLIC; monitoring roles may read; flushing and scenarios stay
-- with superusers unless granted.
REVOKE ALL ON SCHEMA ext_memcheck FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA ext_memcheck FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA ext_memcheck FROM PUBLIC;
REVOKE ALL ON ALL ROUTINES IN SCHEMA ext_memcheck FROM PUBLIC;
GRANT USAGE ON SCHEMA ext_memcheck TO pg_read_all_stats;
GRANT SELECT ON violation_log, scenarios TO pg_read_all_stats;
GRANT EXECUTE ON FUNCTION pending_violations(), status(), coverage(), begin(text, jsonb),
    "end"(), _scenarios(), dsm_tracking(), shmem_guards() TO pg_read_all_stats;
