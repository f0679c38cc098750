-- wardle_apply_batch (V5) rewritten as one pass over the batch with statements by key. The same
-- signature, result and rules as V5 (see V5__apply_batch_function.sql), so a replica still on
-- the previous release keeps writing during a rolling upgrade; `lock_ids` is no longer read.
-- What changed is how:
-- - Every read of `objects` is by primary key and cannot become a scan (below). V5
--   joined the batch to `objects`; planned as a hash join while the table was small (or its
--   statistics stale) and cached for the connection's life, every batch then read the whole
--   table: Postgres CPU per create grew with the number of objects.
-- - The counter row is locked first and held to COMMIT, so the batch's reads see every earlier
--   batch of every replica (each statement here takes a new snapshot) and its RVs follow them
--   gaplessly, in commit order. That lock serialises writers, so V5's per-key advisory locks
--   are gone; the work done while holding it is a few index lookups per write more than before.
-- - One statement per write and table instead of a statement of eight materialised CTEs: a
--   batch of one costs Postgres ~220 µs of CPU instead of ~280 µs (pgbench, fsync on).
CREATE OR REPLACE FUNCTION wardle_apply_batch(batch json, lock_ids json, notify_tag text)
RETURNS json
LANGUAGE plpgsql
AS $fn$
DECLARE
  w record;
  cur record;
  status text;
  start_rv bigint;
  top bigint;
  replies json[] := '{}';
BEGIN
  -- Plans are cached for the connection's life: one made while a table was small must not scan
  -- it once it is large, and every statement here reads by key. SET LOCAL ends with this
  -- function's transaction (the writer calls it in autocommit). jit off: a plan that still had
  -- to scan would carry the planner's disable cost and be JIT-compiled on every call.
  SET LOCAL enable_seqscan = off;
  SET LOCAL jit = off;
  SELECT rv INTO start_rv FROM rv_counter WHERE only_row FOR UPDATE;
  top := start_rv;
  FOR w IN
    SELECT * FROM json_to_recordset(batch) AS x(ord bigint, op text, resource text,
      namespace text, name text, uid text, object json, pre_uid text, pre_rv bigint,
      actor text, audit_id text)
    ORDER BY ord
  LOOP
    SELECT o.uid, o.rv, o.create_rv, o.object INTO cur FROM objects o
     WHERE o.resource = w.resource AND o.namespace = w.namespace AND o.name = w.name;
    status := CASE
      WHEN w.op = 'create' THEN CASE WHEN cur.rv IS NULL THEN 'ok' ELSE 'exists' END
      WHEN cur.rv IS NULL THEN 'missing'
      WHEN w.pre_uid IS NOT NULL AND w.pre_uid <> cur.uid THEN 'uid'
      WHEN w.pre_rv IS NOT NULL AND w.pre_rv <> cur.rv THEN 'conflict'
      ELSE 'ok'
    END;
    IF status = 'ok' THEN
      top := top + 1;
      IF w.op = 'create' THEN
        INSERT INTO events (rv, resource, namespace, name, uid, type, object, actor, audit_id)
        VALUES (top, w.resource, w.namespace, w.name, coalesce(w.uid, ''), 'ADDED', w.object,
                w.actor, w.audit_id);
        INSERT INTO objects (resource, namespace, name, uid, rv, create_rv, object)
        VALUES (w.resource, w.namespace, w.name, coalesce(w.uid, ''), top, top, w.object);
      ELSIF w.op = 'update' THEN
        INSERT INTO events (rv, resource, namespace, name, uid, type, object, prev_rv,
                            prev_object, actor, audit_id)
        VALUES (top, w.resource, w.namespace, w.name, coalesce(w.uid, cur.uid), 'MODIFIED',
                w.object, cur.rv, cur.object, w.actor, w.audit_id);
        UPDATE objects SET uid = coalesce(w.uid, cur.uid), rv = top, object = w.object
         WHERE resource = w.resource AND namespace = w.namespace AND name = w.name;
      ELSE
        INSERT INTO events (rv, resource, namespace, name, uid, type, object, prev_rv,
                            prev_object, actor, audit_id)
        VALUES (top, w.resource, w.namespace, w.name, cur.uid, 'DELETED', cur.object, cur.rv,
                cur.object, w.actor, w.audit_id);
        DELETE FROM objects
         WHERE resource = w.resource AND namespace = w.namespace AND name = w.name;
      END IF;
    END IF;
    replies := replies || json_build_object('status', status,
      'rv', CASE WHEN status = 'ok' THEN top END, 'cur_uid', cur.uid, 'cur_rv', cur.rv,
      'prev', CASE WHEN status = 'ok' AND w.op <> 'create' THEN cur.object END);
  END LOOP;
  IF top > start_rv THEN
    UPDATE rv_counter SET rv = top WHERE only_row;
    PERFORM pg_notify('wardle', notify_tag || top);
  END IF;
  RETURN array_to_json(replies);
END
$fn$;
