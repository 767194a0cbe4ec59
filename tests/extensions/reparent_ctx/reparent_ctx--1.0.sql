/* reparent_ctx--1.0.sql */
\echo Use "CREATE EXTENSION reparent_ctx" to load this file. \quit

-- SPI_prepare + SPI_keepplan (PostgreSQL moves the plan's context under CacheMemoryContext), run, SPI_freeplan
CREATE FUNCTION reparent_ctx_keepplan(int) RETURNS int
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;
