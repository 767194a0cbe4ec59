-- Plain queries: the planner and executor hooks run once per statement.
SELECT count(*) FROM companies;
SELECT name FROM companies WHERE id = 42;
SELECT count(*) FROM companies WHERE name LIKE 'company 1%';
SELECT min(id), max(id) FROM companies;
