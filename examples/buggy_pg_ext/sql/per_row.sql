-- Per-row calls: a SQL function's executor runs once per row, and so does buggy_pg_ext_work().
SELECT sum(two_step(g)) FROM generate_series(1, 500) g;
SELECT sum(buggy_pg_ext_work(g)) FROM generate_series(1, 100) g;
