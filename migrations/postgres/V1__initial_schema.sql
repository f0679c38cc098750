-- wardle storage schema (Postgres): RV counter, current objects, append-only event log, reporting views.
-- Mirrors migrations/sqlite/V1__initial_schema.sql; the two must keep the same versions and names.

-- The resourceVersion sequence. One hot row and nothing else, so the lock writers take on it
-- (last, held to COMMIT) serialises only the RV assignment. Its value is the committed horizon.
CREATE TABLE rv_counter (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  rv       bigint  NOT NULL DEFAULT 0
);
INSERT INTO rv_counter (only_row, rv) VALUES (true, 0);

-- Compaction horizon and schema information, kept apart from the hot counter row.
CREATE TABLE storage_meta (
  only_row       boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  compacted_rv   bigint  NOT NULL DEFAULT 0,
  schema_version integer NOT NULL
);
INSERT INTO storage_meta (only_row, compacted_rv, schema_version) VALUES (true, 0, 1);

-- Current state. COLLATE "C" makes (namespace, name) order byte order, which continue tokens rely on.
CREATE TABLE objects (
  resource  text   NOT NULL,
  namespace text   COLLATE "C" NOT NULL DEFAULT '',
  name      text   COLLATE "C" NOT NULL,
  uid       text   NOT NULL,
  rv        bigint NOT NULL,
  create_rv bigint NOT NULL,
  -- Storage-version JSON without metadata.resourceVersion. `json`, not `jsonb`: it keeps the text
  -- as written (field order, exact numbers), so both engines serve byte-identical objects.
  object    json   NOT NULL,
  labels    jsonb  GENERATED ALWAYS AS (coalesce((object->'metadata'->'labels')::jsonb, '{}'::jsonb)) STORED,
  PRIMARY KEY (resource, namespace, name)
);
CREATE INDEX objects_labels ON objects USING gin (labels jsonb_path_ops);

-- Append-only log: one row per RV, gapless. prev_object makes any state at RV >= compacted_rv
-- reconstructible from events with a larger RV.
CREATE TABLE events (
  rv           bigint PRIMARY KEY,
  resource     text   NOT NULL,
  namespace    text   COLLATE "C" NOT NULL,
  name         text   COLLATE "C" NOT NULL,
  uid          text   NOT NULL,
  type         text   NOT NULL CHECK (type IN ('ADDED', 'MODIFIED', 'DELETED')),
  object       json   NOT NULL,
  prev_rv      bigint,
  prev_object  json,
  committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor        text
);
CREATE INDEX events_key_rv ON events (resource, namespace, name, rv);

-- Reporting views (the same columns on SQLite).
CREATE VIEW flunders AS
SELECT namespace, name, uid, rv AS resource_version, create_rv,
       object->'metadata'->>'creationTimestamp' AS created_at, labels,
       object->'spec'->>'reference' AS reference,
       coalesce(object->'spec'->>'referenceType',
                CASE WHEN object->'spec'->'reference' IS NOT NULL THEN 'Flunder' END) AS reference_type,
       object
FROM objects WHERE resource = 'flunders';

CREATE VIEW fischers AS
SELECT name, uid, rv AS resource_version, object->'disallowedFlunders' AS disallowed_flunders, object
FROM objects WHERE resource = 'fischers';
