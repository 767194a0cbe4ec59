/* inline_site--1.0.sql */
\echo Use "CREATE EXTENSION inline_site" to load this file. \quit

CREATE FUNCTION inline_site_leak() RETURNS int
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;
