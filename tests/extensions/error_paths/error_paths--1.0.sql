/* error_paths--1.0.sql */
\echo Use "CREATE EXTENSION error_paths" to load this file. \quit

-- Clean: a work area of mb MB in its own context, then an ERROR when it exceeds maintenance_work_mem
CREATE FUNCTION error_paths_build(mb int) RETURNS int
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;

-- Clean: per row, mb MB more in an accumulator context kept in fn_extra, then the same ERROR
CREATE FUNCTION error_paths_accumulate(mb int) RETURNS int
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;

-- Leaks: 16,000 bytes kept in TopMemoryContext (or malloc'd) before the ERROR
CREATE FUNCTION error_paths_top_leak() RETURNS int
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION error_paths_malloc_leak() RETURNS int
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;

-- What the leaks kept in this backend so far, in bytes (each chunk's real footprint)
CREATE FUNCTION error_paths_kept() RETURNS bigint
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;
