-- wardle storage schema (SQLite): RV counter, current objects, append-only event log, reporting views.
-- Mirrors migrations/postgres/V1__initial_schema.sql; the two must keep the same versions and names.
-- JSON is TEXT (json_extract); the byte order of the default BINARY collation is what continue tokens need.

CREATE TABLE rv_counter (
  only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
  rv       INTEGER NOT NULL DEFAULT 0
);
INSERT INTO rv_counter (only_row, rv) VALUES (1, 0);

CREATE TABLE storage_meta (
  only_row       INTEGER PRIMARY KEY CHECK (only_row = 1),
  compacted_rv   INTEGER NOT NULL DEFAULT 0,
  schema_version INTEGER NOT NULL
);
INSERT INTO storage_meta (only_row, compacted_rv, schema_version) VALUES (1, 0, 1);

CREATE TABLE objects (
  resource  TEXT    NOT NULL,
  namespace TEXT    NOT NULL DEFAULT '',
  name      TEXT    NOT NULL,
  uid       TEXT    NOT NULL,
  rv        INTEGER NOT NULL,
  create_rv INTEGER NOT NULL,
  object    TEXT    NOT NULL CHECK (json_valid(object)),  -- without metadata.resourceVersion
  labels    TEXT    GENERATED ALWAYS AS (coalesce(json_extract(object, '$.metadata.labels'), '{}')) VIRTUAL,
  PRIMARY KEY (resource, namespace, name)
);

CREATE TABLE events (
  rv           INTEGER PRIMARY KEY,
  resource     TEXT    NOT NULL,
  namespace    TEXT    NOT NULL,
  name         TEXT    NOT NULL,
  uid          TEXT    NOT NULL,
  type         TEXT    NOT NULL CHECK (type IN ('ADDED', 'MODIFIED', 'DELETED')),
  object       TEXT    NOT NULL,
  prev_rv      INTEGER,
  prev_object  TEXT,
  committed_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  actor        TEXT
);
CREATE INDEX events_key_rv ON events (resource, namespace, name, rv);

CREATE VIEW flunders AS
SELECT namespace, name, uid, rv AS resource_version, create_rv,
       json_extract(object, '$.metadata.creationTimestamp') AS created_at, labels,
       json_extract(object, '$.spec.reference') AS reference,
       coalesce(json_extract(object, '$.spec.referenceType'),
                CASE WHEN json_type(object, '$.spec.reference') IS NOT NULL THEN 'Flunder' END) AS reference_type,
       object
FROM objects WHERE resource = 'flunders';

CREATE VIEW fischers AS
SELECT name, uid, rv AS resource_version, json_extract(object, '$.disallowedFlunders') AS disallowed_flunders, object
FROM objects WHERE resource = 'fischers';
