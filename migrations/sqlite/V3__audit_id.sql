-- wardle audit link (SQLite): every change records the audit ID of the request that made it.
-- Mirrors migrations/postgres/V3__audit_id.sql: same columns, indexes and view.

ALTER TABLE events ADD COLUMN audit_id TEXT;
ALTER TABLE history ADD COLUMN audit_id TEXT;
-- Only history is indexed: events holds the compaction window (small, scanned cheaply), and an
-- index there would cost every write; history is written by compaction, off the write path.
CREATE INDEX history_audit_id ON history (audit_id);

DROP VIEW change_history;
CREATE VIEW change_history AS
SELECT rv, committed_at, actor, type,
       CASE resource WHEN 'flunders' THEN 'Flunder' WHEN 'fischers' THEN 'Fischer' ELSE resource END AS kind,
       namespace, name, prev_object AS before, object AS after, audit_id
FROM (SELECT rv, committed_at, actor, type, resource, namespace, name, prev_object, object, audit_id FROM history
      UNION ALL
      SELECT rv, committed_at, actor, type, resource, namespace, name, prev_object, object, audit_id FROM events) h;
