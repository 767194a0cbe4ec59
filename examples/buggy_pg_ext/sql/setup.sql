-- The example's regression suite (REGRESS in the Makefile): `make installcheck` runs it, and so does
-- pg-ext-memcheck when there is no memcheck.yml, each file a workload of its own.
CREATE EXTENSION buggy_pg_ext;
CREATE TABLE companies (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO companies SELECT g, 'company ' || g FROM generate_series(1, 100) g;
ANALYZE companies;
-- Two statements in the body keep the planner from inlining it: the executor runs once per call.
CREATE FUNCTION two_step(int) RETURNS int LANGUAGE sql AS $$ SELECT 1; SELECT $1 + 1; $$;
SELECT count(*) FROM companies;
