/* job_worker--1.0.sql */
\echo Use "CREATE EXTENSION job_worker" to load this file. \quit

-- Start the worker of a variant (leaky, clean, dsm_churn) unless one is running; returns its pid
CREATE FUNCTION job_worker_launch(variant text) RETURNS int
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;

-- Hand that variant's worker `jobs` jobs, one after the other (each a shm_mq in a DSM segment, answered by the
-- worker); waits for the worker to be ready first; returns the worker's job count after the last one
CREATE FUNCTION job_worker_run(variant text, jobs int) RETURNS bigint
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;

-- The variant's worker: pid (0: none), jobs done, bytes the leak kept (the handles' chunk footprints), DSM
-- segments it mapped over its life, the most it had mapped at once, and how much TopMemoryContext's used bytes
-- grew from the end of its first job to the end of its last
CREATE FUNCTION job_worker_status(variant text, OUT pid int, OUT jobs bigint, OUT kept_bytes bigint,
                                  OUT segments bigint, OUT max_mapped int, OUT top_growth bigint)
RETURNS record
AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;
