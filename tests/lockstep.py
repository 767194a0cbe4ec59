"""Workloads that make concurrent sessions meet on row locks because they wait for each other, not because a
sleep was long enough (the machine is shared: a session may be descheduled for longer than any sleep).

Both need `CREATE TABLE d (id int PRIMARY KEY, v int); INSERT INTO d VALUES (1, 0), (2, 0); CREATE SEQUENCE side`.
Each wait polls a real condition and gives up after POLLS polls (about three seconds), so that a session left alone
(its peers stopped after their deadlock) finishes instead of hanging.
"""

from __future__ import annotations

POLLS = 300

# Sessions alternate between two sides. Each takes its side's row, waits until a session of the other side holds
# the other row (a FOR UPDATE NOWAIT on it fails; the probe's own lock is rolled back with its subtransaction),
# then takes that row too: two sessions that hold one row each and want the other's are a deadlock, every time.
DEADLOCK = f"""DO $$
DECLARE
  s int := nextval('side') % 2;
  polls int := 0;
BEGIN
  UPDATE d SET v = v + 1 WHERE id = 1 + s;
  LOOP
    BEGIN
      PERFORM 1 FROM d WHERE id = 2 - s FOR UPDATE NOWAIT;
      RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'the other row is free';
    EXCEPTION
      WHEN lock_not_available THEN EXIT;
      WHEN raise_exception THEN NULL;
    END;
    polls := polls + 1;
    EXIT WHEN polls >= {POLLS};
    PERFORM pg_sleep(0.01);
  END LOOP;
  UPDATE d SET v = v + 1 WHERE id = 2 - s;
END$$"""

# Every session wants row 1. The one that gets it holds it until a session that waited for it has stopped waiting
# (its lock_timeout ended the wait: the holder never let go), so every run has a lock timeout.
LOCK_HOLDER = f"""DO $$
DECLARE
  waited boolean := false;
  polls int := 0;
BEGIN
  UPDATE d SET v = v + 1 WHERE id = 1;
  LOOP
    IF EXISTS (SELECT 1 FROM pg_stat_activity WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))) THEN
      waited := true;
    ELSIF waited THEN
      EXIT;
    END IF;
    polls := polls + 1;
    EXIT WHEN polls >= {POLLS};
    PERFORM pg_sleep(0.01);
  END LOOP;
END$$"""
