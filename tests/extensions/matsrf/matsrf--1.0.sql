/* matsrf--1.0.sql */
\echo Use "CREATE EXTENSION matsrf" to load this file. \quit

-- n rows (i, a 100-character label), materialized in one call
CREATE FUNCTION matsrf_rows(n int, OUT i int, OUT label text) RETURNS SETOF record
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;

-- The same, every row's values built in the query's memory (kept until the statement ends)
CREATE FUNCTION matsrf_rows_in_query_memory(n int, OUT i int, OUT label text) RETURNS SETOF record
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;
