-- wardle reporting (SQLite): long-term change history and the views people query.
-- Mirrors migrations/postgres/V2__reporting.sql: same tables, views, column names and order.
-- Booleans are 0/1 here (SQLite has no boolean type); JSON columns are TEXT.

CREATE TABLE history (
  rv           INTEGER PRIMARY KEY,
  resource     TEXT    NOT NULL,
  namespace    TEXT    NOT NULL,
  name         TEXT    NOT NULL,
  uid          TEXT    NOT NULL,
  type         TEXT    NOT NULL,
  object       TEXT    NOT NULL,
  prev_rv      INTEGER,
  prev_object  TEXT,
  committed_at TEXT    NOT NULL,
  actor        TEXT
);
CREATE INDEX history_committed_at ON history (committed_at);
CREATE INDEX history_key_rv ON history (resource, namespace, name, rv);

CREATE VIEW flunders_by_namespace AS
SELECT namespace, count(*) AS flunders, max(resource_version) AS last_change_rv
FROM flunders GROUP BY namespace;

CREATE VIEW flunder_references AS
SELECT f.namespace, f.name AS flunder, f.reference_type, f.reference AS target,
       CASE f.reference_type
         WHEN 'Fischer' THEN EXISTS (SELECT 1 FROM fischers x WHERE x.name = f.reference)
         ELSE EXISTS (SELECT 1 FROM flunders y WHERE y.namespace = f.namespace AND y.name = f.reference)
       END AS target_exists
FROM flunders f WHERE coalesce(f.reference, '') <> '';

CREATE VIEW fischer_referrers AS
SELECT x.name AS fischer, count(r.flunder) AS referencing_flunders
FROM fischers x LEFT JOIN flunder_references r ON r.reference_type = 'Fischer' AND r.target = x.name
GROUP BY x.name;

CREATE VIEW banned_flunders AS
SELECT f.namespace, f.name, x.name AS banned_by
FROM flunders f JOIN fischers x
  ON EXISTS (SELECT 1 FROM json_each(
               CASE WHEN json_type(x.disallowed_flunders) = 'array' THEN x.disallowed_flunders END) d
             WHERE d.value = f.name);

-- committed_at is already UTC text in the same format as the Postgres view produces.
CREATE VIEW change_history AS
SELECT rv, committed_at, actor, type,
       CASE resource WHEN 'flunders' THEN 'Flunder' WHEN 'fischers' THEN 'Fischer' ELSE resource END AS kind,
       namespace, name, prev_object AS before, object AS after
FROM (SELECT rv, committed_at, actor, type, resource, namespace, name, prev_object, object FROM history
      UNION ALL
      SELECT rv, committed_at, actor, type, resource, namespace, name, prev_object, object FROM events) h;
