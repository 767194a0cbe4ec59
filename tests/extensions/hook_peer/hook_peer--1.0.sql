/* hook_peer--1.0.sql */
\echo Use "CREATE EXTENSION hook_peer" to load this file. \quit

-- This backend's counters since the last reset: {"planner": n, ...}
CREATE FUNCTION hook_peer_counters() RETURNS jsonb
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION hook_peer_reset() RETURNS void
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;

-- A C function the peer's needs_fmgr_hook asks for (its name starts with peer_)
CREATE FUNCTION peer_c_add(int) RETURNS int
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;
