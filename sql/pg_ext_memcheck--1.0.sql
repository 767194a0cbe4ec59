/* pg_ext_memcheck--1.0.sql */

\echo Use "CREATE EXTENSION pg_ext_memcheck" to load this file. \quit

-- Violations moved out of the shared ring buffer by flush_violations().
CREATE TABLE violation_log (
    id                  bigserial PRIMARY KEY,
    seq                 bigint NOT NULL UNIQUE,
    ts                  timestamptz NOT NULL,
    backend_pid         int NOT NULL,
    check_type          text NOT NULL,
    severity            text NOT NULL,
    detail              text NOT NULL,
    source_lib          text,
    context_name        text,
    context_path        text,
    depth               int,
    used_before         bigint,
    used_after          bigint,
    used_delta          bigint,
    allocated_delta     bigint,
    bytes_per_iteration float8,
    iterations          bigint,
    phase               text,
    nest_level          int,
    query               text
);
CREATE INDEX violation_log_backend_pid_idx ON violation_log (backend_pid, seq);

CREATE FUNCTION pending_violations(
    OUT seq bigint, OUT ts timestamptz, OUT backend_pid int, OUT check_type text,
    OUT severity text, OUT detail text, OUT source_lib text, OUT context_name text,
    OUT context_path text, OUT depth int, OUT used_before bigint, OUT used_after bigint,
    OUT used_delta bigint, OUT allocated_delta bigint, OUT bytes_per_iteration float8,
    OUT iterations bigint, OUT phase text, OUT nest_level int, OUT query text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mc_pending_violations'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION status(
    OUT capacity int, OUT pending bigint, OUT written bigint, OUT dropped bigint,
    OUT flushed_upto bigint, OUT next_seq bigint, OUT mode text)
RETURNS record
AS 'MODULE_PATHNAME', 'mc_status'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION _mark_flushed(upto bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'mc_mark_flushed'
LANGUAGE C STRICT VOLATILE;

-- Exactly once: ON CONFLICT waits for a concurrent flusher's outcome, and the
-- ring releases the entries only when this transaction commits.
CREATE FUNCTION flush_violations()
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = ext_memcheck, pg_catalog
AS $$
DECLARE
    inserted bigint;
    upto bigint;
BEGIN
    WITH pending AS MATERIALIZED (
        SELECT * FROM ext_memcheck.pending_violations()
    ), ins AS (
        INSERT INTO ext_memcheck.violation_log
            (seq, ts, backend_pid, check_type, severity, detail, source_lib, context_name,
             context_path, depth, used_before, used_after, used_delta, allocated_delta,
             bytes_per_iteration, iterations, phase, nest_level, query)
        SELECT p.seq, p.ts, p.backend_pid, p.check_type, p.severity, p.detail, p.source_lib,
               p.context_name, p.context_path, p.depth, p.used_before, p.used_after,
               p.used_delta, p.allocated_delta, p.bytes_per_iteration, p.iterations, p.phase,
               p.nest_level, p.query
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

CREATE FUNCTION begin(pattern text DEFAULT '', options jsonb DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'mc_begin'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION _end_window(OUT start_seq bigint, OUT pattern text, OUT allowed text[])
RETURNS record
AS 'MODULE_PATHNAME', 'mc_end_window'
LANGUAGE C STRICT VOLATILE;

-- This backend's violations since begin(), flushed or not, filtered by the
-- begin() pattern and allowlist.
CREATE FUNCTION "end"()
RETURNS TABLE (
    ts timestamptz, backend_pid int, check_type text, severity text, detail text,
    source_lib text, context_name text, context_path text, depth int,
    used_delta bigint, allocated_delta bigint, bytes_per_iteration float8, phase text,
    query text)
LANGUAGE plpgsql VOLATILE
SET search_path = ext_memcheck, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
    w record;
BEGIN
    SELECT * INTO w FROM ext_memcheck._end_window();
    RETURN QUERY
    SELECT x.ts, x.backend_pid, x.check_type, x.severity, x.detail, x.source_lib,
           x.context_name, x.context_path, x.depth, x.used_delta, x.allocated_delta,
           x.bytes_per_iteration, x.phase, x.query
    FROM (
        SELECT v.seq, v.ts, v.backend_pid, v.check_type, v.severity, v.detail, v.source_lib,
               v.context_name, v.context_path, v.depth, v.used_delta, v.allocated_delta,
               v.bytes_per_iteration, v.phase, v.query
        FROM ext_memcheck.violation_log v
        WHERE v.backend_pid = pg_backend_pid() AND v.seq >= w.start_seq
        UNION ALL
        SELECT p.seq, p.ts, p.backend_pid, p.check_type, p.severity, p.detail, p.source_lib,
               p.context_name, p.context_path, p.depth, p.used_delta, p.allocated_delta,
               p.bytes_per_iteration, p.phase, p.query
        FROM ext_memcheck.pending_violations() p
        WHERE p.backend_pid = pg_backend_pid() AND p.seq >= w.start_seq
          AND NOT EXISTS (SELECT 1 FROM ext_memcheck.violation_log l WHERE l.seq = p.seq)
    ) x
    WHERE (w.pattern = '' OR x.context_name LIKE w.pattern)
      AND NOT (x.check_type = 'wrong_ctx_alloc' AND x.context_name = ANY (w.allowed))
    ORDER BY x.seq;
END;
$$;

CREATE FUNCTION run_scenario(scenario_name text, iterations int, workload text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'mc_run_scenario'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

-- Nothing for PUBLIC; monitoring roles may read; flushing and scenarios stay
-- with superusers unless granted.
REVOKE ALL ON SCHEMA ext_memcheck FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA ext_memcheck FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA ext_memcheck FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ext_memcheck FROM PUBLIC;
GRANT USAGE ON SCHEMA ext_memcheck TO pg_read_all_stats;
GRANT SELECT ON violation_log TO pg_read_all_stats;
GRANT EXECUTE ON FUNCTION pending_violations(), status(), begin(text, jsonb),
    _end_window(), "end"() TO pg_read_all_stats;
