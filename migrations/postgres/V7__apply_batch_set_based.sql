-- wardle_apply_batch (V5, V6) rewritten so that a batch's inserts are set-based again: one
-- statement reads every write's committed row, decides it, numbers the writes that pass and
-- inserts all their events and all created objects. Same signature, result and rules as V5 (see
-- V5__apply_batch_function.sql; keys distinct within a batch, as the writer sends them), so a
-- replica still on an earlier release keeps writing during a rolling upgrade.
-- Why: V6 ran three statements per write (read, INSERT events, INSERT objects); starting each
-- one's executor, with its constraint and generated-column expressions, was most of the
-- Postgres CPU of a create. pgbench of this function, fsync on, Postgres CPU per batch:
--   1 create:   V6 ~215-225 us, V7 ~240-250 us
--   16 creates: V6 ~705 us,     V7 ~590 us (both including ~75 us to build the batch)
-- What V6 fixed stays fixed: every read of `objects` is by primary key. The LATERAL lookup has
-- LIMIT 1, so the planner cannot flatten it into a join (a hash join over the whole table, V5's
-- fault; measured here at 2.6 ms for 16 creates), and enable_seqscan stays off so a plan cached
-- while the table was small still reads by key once it is large.
-- The counter row is locked first and held to COMMIT, so the statement's snapshot sees every
-- earlier batch of every replica and RVs follow them gaplessly, in commit order. The reads all
-- happen before any write of the batch, which is right because keys are distinct. Updates and
-- deletes (one statement each, by key) follow the set-based statement.
CREATE OR REPLACE FUNCTION wardle_apply_batch(batch json, lock_ids json, notify_tag text)
RETURNS json
LANGUAGE plpgsql
AS $fn$
DECLARE
  start_rv bigint;
  top bigint;
  replies json;
  c_op text[]; c_resource text[]; c_namespace text[]; c_name text[]; c_uid text[];
  c_rv bigint[]; c_object json[];
BEGIN
  -- SET LOCAL ends with the function's transaction (the writer calls it in autocommit); jit
  -- off: a plan that still had to scan would be JIT-compiled on every call.
  SET LOCAL enable_seqscan = off;
  SET LOCAL jit = off;
  SELECT rv INTO start_rv FROM rv_counter WHERE only_row FOR UPDATE;
  WITH d AS MATERIALIZED (
    SELECT x.*, c.uid AS cur_uid, c.rv AS cur_rv, c.object AS cur_object,
      CASE
        WHEN x.op = 'create' THEN CASE WHEN c.rv IS NULL THEN 'ok' ELSE 'exists' END
        WHEN c.rv IS NULL THEN 'missing'
        WHEN x.pre_uid IS NOT NULL AND x.pre_uid <> c.uid THEN 'uid'
        WHEN x.pre_rv IS NOT NULL AND x.pre_rv <> c.rv THEN 'conflict'
        ELSE 'ok'
      END AS status
    FROM json_to_recordset(batch) AS x(ord bigint, op text, resource text, namespace text,
      name text, uid text, object json, pre_uid text, pre_rv bigint, actor text, audit_id text)
    LEFT JOIN LATERAL (
      SELECT o.uid, o.rv, o.object FROM objects o
       WHERE o.resource = x.resource AND o.namespace = x.namespace AND o.name = x.name
       LIMIT 1
    ) c ON true
  ), r AS MATERIALIZED (
    SELECT d.*, CASE WHEN d.status = 'ok' THEN start_rv
      + count(*) FILTER (WHERE d.status = 'ok') OVER (ORDER BY d.ord) END AS new_rv
    FROM d
  ), e AS (
    INSERT INTO events (rv, resource, namespace, name, uid, type, object, prev_rv, prev_object,
                        actor, audit_id)
    SELECT new_rv, resource, namespace, name,
      CASE op WHEN 'create' THEN coalesce(uid, '') WHEN 'update' THEN coalesce(uid, cur_uid)
              ELSE cur_uid END,
      CASE op WHEN 'create' THEN 'ADDED' WHEN 'update' THEN 'MODIFIED' ELSE 'DELETED' END,
      CASE op WHEN 'delete' THEN cur_object ELSE object END, cur_rv, cur_object, actor, audit_id
    FROM r WHERE status = 'ok' ORDER BY new_rv
  ), i AS (
    INSERT INTO objects (resource, namespace, name, uid, rv, create_rv, object)
    SELECT resource, namespace, name, coalesce(uid, ''), new_rv, new_rv, object
    FROM r WHERE status = 'ok' AND op = 'create'
  )
  SELECT max(new_rv),
    json_agg(json_build_object('status', status, 'rv', new_rv, 'cur_uid', cur_uid,
      'cur_rv', cur_rv, 'prev', CASE WHEN status = 'ok' AND op <> 'create' THEN cur_object END)
      ORDER BY ord),
    array_agg(op) FILTER (WHERE status = 'ok' AND op <> 'create'),
    array_agg(resource) FILTER (WHERE status = 'ok' AND op <> 'create'),
    array_agg(namespace) FILTER (WHERE status = 'ok' AND op <> 'create'),
    array_agg(name) FILTER (WHERE status = 'ok' AND op <> 'create'),
    array_agg(coalesce(uid, cur_uid)) FILTER (WHERE status = 'ok' AND op <> 'create'),
    array_agg(new_rv) FILTER (WHERE status = 'ok' AND op <> 'create'),
    array_agg(object) FILTER (WHERE status = 'ok' AND op <> 'create')
  INTO top, replies, c_op, c_resource, c_namespace, c_name, c_uid, c_rv, c_object
  FROM r;
  -- The committed rows updates and deletes replace were read above, before any change.
  FOR k IN 1 .. coalesce(array_length(c_op, 1), 0) LOOP
    IF c_op[k] = 'update' THEN
      UPDATE objects SET uid = c_uid[k], rv = c_rv[k], object = c_object[k]
       WHERE resource = c_resource[k] AND namespace = c_namespace[k] AND name = c_name[k];
    ELSE
      DELETE FROM objects
       WHERE resource = c_resource[k] AND namespace = c_namespace[k] AND name = c_name[k];
    END IF;
  END LOOP;
  IF top IS NOT NULL THEN
    UPDATE rv_counter SET rv = top WHERE only_row;
    PERFORM pg_notify('wardle', notify_tag || top);
  END IF;
  RETURN coalesce(replies, '[]'::json);
END
$fn$;
