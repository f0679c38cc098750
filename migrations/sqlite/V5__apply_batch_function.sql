-- Postgres gains wardle_apply_batch (a write batch in one round trip). SQLite runs in-process,
-- where a round trip costs nothing, so its writer keeps applying a batch as statements in one
-- transaction; this migration only keeps both engines' migration lists identical.
SELECT 1;
