-- wardle audit link (Postgres): every change records the audit ID of the request that made it
-- (the Audit-Id response header, the auditID of its audit events), so a row of events, history
-- or change_history leads to the request's audit record. NULL for rows written before V3.
-- Mirrors migrations/sqlite/V3__audit_id.sql.

ALTER TABLE events ADD COLUMN audit_id text;
ALTER TABLE history ADD COLUMN audit_id text;
-- Only history is indexed: events holds the compaction window (small, scanned cheaply), and an
-- index there would cost every write; history is written by compaction, off the write path.
CREATE INDEX history_audit_id ON history (audit_id);

-- The same view as V2 with audit_id appended (appended, so reports that select by name or
-- position keep working).
DROP VIEW change_history;
CREATE VIEW change_history AS
SELECT rv,
       to_char(committed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS committed_at,
       actor, type,
       CASE resource WHEN 'flunders' THEN 'Flunder' WHEN 'fischers' THEN 'Fischer' ELSE resource END AS kind,
       namespace, name, prev_object AS before, object AS after, audit_id
FROM (SELECT rv, committed_at, actor, type, resource, namespace, name, prev_object, object, audit_id FROM history
      UNION ALL
      SELECT rv, committed_at, actor, type, resource, namespace, name, prev_object, object, audit_id FROM events) h;
