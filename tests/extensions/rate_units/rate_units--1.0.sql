/* rate_units--1.0.sql */
\echo Use "CREATE EXTENSION rate_units" to load this file. \quit

-- The bytes one executed statement keeps (both chunks' real footprint), whatever rate_units.leak says
CREATE FUNCTION rate_units_bytes_per_statement() RETURNS bigint
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;

-- What the leak kept in this backend so far, in bytes, and the statements (ExecutorEnd calls) that kept it
CREATE FUNCTION rate_units_kept(OUT bytes bigint, OUT statements bigint) RETURNS record
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;
