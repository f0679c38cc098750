-- A write batch in one round trip. The writer calls wardle_apply_batch once per batch, in
-- autocommit (one READ COMMITTED transaction): it takes the keys' advisory locks in id order,
-- reads their current rows in a new snapshot (so every earlier holder's commit is seen), decides
-- each write's preconditions (the same rules as the SQLite path's writer::verdict), gives the
-- writes that pass consecutive RVs under the counter row's lock (held until COMMIT, so RVs are
-- gapless and in commit order across replicas), appends their events, updates `objects`, and
-- queues a NOTIFY that Postgres delivers at commit, in commit order.
--
-- batch:      JSON array of {ord, op ('create'|'update'|'delete'), resource, namespace, name,
--             uid (of the new object, or null), object (null for delete), pre_uid, pre_rv,
--             actor, audit_id}, ord = 1..n, keys distinct.
-- lock_ids:   JSON array of the keys' advisory lock ids (bigint).
-- notify_tag: prefix of the NOTIFY payload (the writing process's tag; the RV follows), so a
--             process can ignore its own notifications.
-- Returns a JSON array in ord order of {status ('ok'|'exists'|'missing'|'uid'|'conflict'), rv
-- (the write's new RV when ok), cur_uid, cur_rv (the committed row's, or null), prev (the
-- committed object an ok update/delete replaced)}.
CREATE FUNCTION wardle_apply_batch(batch json, lock_ids json, notify_tag text) RETURNS json
LANGUAGE plpgsql AS $fn$
DECLARE
  result json;
  top bigint;
BEGIN
  -- Sorted ids: two replicas' batches always lock in the same order (no deadlock).
  PERFORM count(pg_advisory_xact_lock(id))
     FROM (SELECT value::bigint AS id FROM json_array_elements_text(lock_ids) ORDER BY 1) ids;
  WITH w AS (
    SELECT * FROM json_to_recordset(batch) AS x(ord bigint, op text, resource text,
      namespace text, name text, uid text, object json, pre_uid text, pre_rv bigint,
      actor text, audit_id text)
  ), d AS (
    SELECT w.*, o.uid AS cur_uid, o.rv AS cur_rv, o.create_rv AS cur_create_rv,
      o.object AS cur_object,
      CASE
        WHEN w.op = 'create' THEN CASE WHEN o.rv IS NULL THEN 'ok' ELSE 'exists' END
        WHEN o.rv IS NULL THEN 'missing'
        WHEN w.pre_uid IS NOT NULL AND w.pre_uid <> o.uid THEN 'uid'
        WHEN w.pre_rv IS NOT NULL AND w.pre_rv <> o.rv THEN 'conflict'
        ELSE 'ok'
      END AS status
    FROM w LEFT JOIN objects o
      ON o.resource = w.resource AND o.namespace = w.namespace AND o.name = w.name
  ), ok AS (
    SELECT d.*, row_number() OVER (ORDER BY d.ord) AS n, count(*) OVER () AS k
      FROM d WHERE d.status = 'ok'
  ), c AS (
    UPDATE rv_counter SET rv = rv + (SELECT count(*) FROM ok)
     WHERE EXISTS (SELECT 1 FROM ok) RETURNING rv
  ), r AS (
    SELECT (SELECT rv FROM c) - ok.k + ok.n AS new_rv,
      CASE ok.op WHEN 'create' THEN coalesce(ok.uid, '')
                 WHEN 'update' THEN coalesce(ok.uid, ok.cur_uid)
                 ELSE ok.cur_uid END AS new_uid,
      CASE ok.op WHEN 'create' THEN 'ADDED' WHEN 'update' THEN 'MODIFIED'
                 ELSE 'DELETED' END AS type,
      CASE ok.op WHEN 'delete' THEN ok.cur_object ELSE ok.object END AS new_object,
      ok.*
    FROM ok
  ), e AS (
    INSERT INTO events (rv, resource, namespace, name, uid, type, object, prev_rv, prev_object,
                        actor, audit_id)
    SELECT new_rv, resource, namespace, name, new_uid, type, new_object, cur_rv, cur_object,
           actor, audit_id FROM r
  ), u AS (
    INSERT INTO objects (resource, namespace, name, uid, rv, create_rv, object)
    SELECT resource, namespace, name, new_uid, new_rv, coalesce(cur_create_rv, new_rv), new_object
      FROM r WHERE op <> 'delete'
    ON CONFLICT (resource, namespace, name) DO UPDATE SET uid = excluded.uid, rv = excluded.rv,
      create_rv = excluded.create_rv, object = excluded.object
  ), x AS (
    DELETE FROM objects o USING r WHERE r.op = 'delete' AND o.resource = r.resource
       AND o.namespace = r.namespace AND o.name = r.name
  )
  SELECT json_agg(json_build_object('status', d.status, 'rv', r.new_rv, 'cur_uid', d.cur_uid,
           'cur_rv', d.cur_rv,
           'prev', CASE WHEN r.new_rv IS NOT NULL AND d.op <> 'create' THEN d.cur_object END)
         ORDER BY d.ord),
         max(r.new_rv)
    INTO result, top
    FROM d LEFT JOIN r ON r.ord = d.ord;
  IF top IS NOT NULL THEN
    PERFORM pg_notify('wardle', notify_tag || top);
  END IF;
  RETURN result;
END
$fn$;
