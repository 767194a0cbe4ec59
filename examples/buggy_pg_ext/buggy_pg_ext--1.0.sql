/* buggy_pg_ext--1.0.sql */
\echo Use "CREATE EXTENSION buggy_pg_ext" to load this file. \quit

-- Creating a C function loads the library, so its hooks work in this session
-- even when it is not preloaded.
CREATE FUNCTION buggy_pg_ext_bugs() RETURNS text
AS 'MODULE_PATHNAME', 'buggy_pg_ext_bugs'
LANGUAGE C STRICT VOLATILE;

-- A C function with bugs of its own (func_top_leak, func_row_leak, func_malloc_leak).
CREATE FUNCTION buggy_pg_ext_work(int) RETURNS int
AS 'MODULE_PATHNAME', 'buggy_pg_ext_work'
LANGUAGE C STRICT VOLATILE;

-- Always 42; with the use_after_reset bug it reads a pointer it kept into
-- per-query memory of an earlier query.
CREATE FUNCTION buggy_pg_ext_cached() RETURNS int
AS 'MODULE_PATHNAME', 'buggy_pg_ext_cached'
LANGUAGE C STRICT VOLATILE;

-- Always 'buggy label'; with the use_after_reset bug it follows a pointer kept
-- in per-query memory of an earlier query.
CREATE FUNCTION buggy_pg_ext_cached_label() RETURNS text
AS 'MODULE_PATHNAME', 'buggy_pg_ext_cached_label'
LANGUAGE C STRICT VOLATILE;

-- The handle of the last DSM segment a bug created in this backend (0: none),
-- for ext_memcheck.track_dsm_handle().
CREATE FUNCTION buggy_pg_ext_last_dsm_handle() RETURNS bigint
AS 'MODULE_PATHNAME', 'buggy_pg_ext_last_dsm_handle'
LANGUAGE C STRICT VOLATILE;
