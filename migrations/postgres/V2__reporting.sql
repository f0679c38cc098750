-- wardle reporting (Postgres): long-term change history and the views people query.
-- Mirrors migrations/sqlite/V2__reporting.sql: same tables, views, column names and order.
-- Booleans are `boolean` here and 0/1 on SQLite; the reports in reports/ print them the same way.

-- Events that compaction removed from `events`, moved here in the same statement, so history
-- outlives the watch window. Pruned by age (--history-retention), never read by watches.
CREATE TABLE history (
  rv           bigint PRIMARY KEY,
  resource     text   NOT NULL,
  namespace    text   COLLATE "C" NOT NULL,
  name         text   COLLATE "C" NOT NULL,
  uid          text   NOT NULL,
  type         text   NOT NULL,
  object       json   NOT NULL,
  prev_rv      bigint,
  prev_object  json,
  committed_at timestamptz NOT NULL,
  actor        text
);
CREATE INDEX history_committed_at ON history (committed_at);
CREATE INDEX history_key_rv ON history (resource, namespace, name, rv);

CREATE VIEW flunders_by_namespace AS
SELECT namespace, count(*) AS flunders, max(resource_version) AS last_change_rv
FROM flunders GROUP BY namespace;

-- One row per flunder with a reference; target_exists is false for a dangling one.
CREATE VIEW flunder_references AS
SELECT f.namespace, f.name AS flunder, f.reference_type, f.reference AS target,
       CASE f.reference_type
         WHEN 'Fischer' THEN EXISTS (SELECT 1 FROM fischers x WHERE x.name = f.reference)
         ELSE EXISTS (SELECT 1 FROM flunders y WHERE y.namespace = f.namespace AND y.name = f.reference)
       END AS target_exists
FROM flunders f WHERE coalesce(f.reference, '') <> '';

-- Every fischer and how many flunders reference it.
CREATE VIEW fischer_referrers AS
SELECT x.name AS fischer, count(r.flunder) AS referencing_flunders
FROM fischers x LEFT JOIN flunder_references r ON r.reference_type = 'Fischer' AND r.target = x.name
GROUP BY x.name;

-- Flunders that exist although a fischer disallows their name (created before the fischer):
-- what the BanFlunder admission plugin would reject now.
CREATE VIEW banned_flunders AS
SELECT f.namespace, f.name, x.name AS banned_by
FROM flunders f JOIN fischers x
  ON EXISTS (SELECT 1 FROM json_array_elements_text(
               CASE WHEN json_typeof(x.disallowed_flunders) = 'array' THEN x.disallowed_flunders END) d
             WHERE d = f.name);

-- Who changed what and when: the compacted history followed by the live event log. A row is in
-- exactly one of the two (compaction moves it in one statement). `before` is NULL for ADDED;
-- for DELETED `after` is the last state. Time is UTC text, formatted as on SQLite.
CREATE VIEW change_history AS
SELECT rv,
       to_char(committed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS committed_at,
       actor, type,
       CASE resource WHEN 'flunders' THEN 'Flunder' WHEN 'fischers' THEN 'Fischer' ELSE resource END AS kind,
       namespace, name, prev_object AS before, object AS after
FROM (SELECT rv, committed_at, actor, type, resource, namespace, name, prev_object, object FROM history
      UNION ALL
      SELECT rv, committed_at, actor, type, resource, namespace, name, prev_object, object FROM events) h;
