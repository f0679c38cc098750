-- Postgres passes wardle_apply_batch typed arrays and writes objects.labels itself. SQLite has
-- no such function (its labels column stays generated); this migration only keeps both engines'
-- migration lists identical.
SELECT 1;
