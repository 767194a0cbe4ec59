/* subxact_keep--1.0.sql */
\echo Use "CREATE EXTENSION subxact_keep" to load this file. \quit

-- Since the last call (or the backend's start): subtransactions committed while enabled, how many of their
-- CurTransactionContexts PostgreSQL keeps only because of the copy, and those contexts' bytes
CREATE FUNCTION subxact_keep_stats(OUT subxacts bigint, OUT kept_contexts bigint, OUT kept_bytes bigint)
RETURNS record
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;
