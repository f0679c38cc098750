-- Postgres makes wardle_apply_batch set-based again (fewer statements per write). SQLite has no
-- such function; this migration only keeps both engines' migration lists identical.
SELECT 1;
