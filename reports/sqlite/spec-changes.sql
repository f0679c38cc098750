-- Flunder spec before and after every change (JSON; empty before a creation).
SELECT rv, actor, type, namespace, name,
       coalesce(json_extract(before, '$.spec'), '') AS before_spec,
       coalesce(json_extract(after, '$.spec'), '') AS after_spec
FROM change_history
WHERE kind = 'Flunder'
ORDER BY rv;
