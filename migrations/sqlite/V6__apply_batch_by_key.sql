-- Postgres replaces wardle_apply_batch with plans that read each write's row by key. SQLite has
-- no such function; this migration only keeps both engines' migration lists identical.
SELECT 1;
