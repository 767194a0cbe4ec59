/* minibloom--1.0.sql */
\echo Use "CREATE EXTENSION minibloom" to load this file. \quit

CREATE FUNCTION minibloom_handler(internal) RETURNS index_am_handler
AS 'MODULE_PATHNAME' LANGUAGE C;

CREATE ACCESS METHOD minibloom TYPE INDEX HANDLER minibloom_handler;
COMMENT ON ACCESS METHOD minibloom IS 'minimal index access method (equality on int4)';

CREATE OPERATOR CLASS int4_minibloom_ops
DEFAULT FOR TYPE int4 USING minibloom AS
    OPERATOR 1 =(int4, int4);

-- What the insert_leak bug kept in this backend so far, in bytes (each chunk's real footprint), and its calls
CREATE FUNCTION minibloom_kept(OUT bytes bigint, OUT calls bigint) RETURNS record
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;
