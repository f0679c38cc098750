-- Flunder spec before and after every change (JSON; empty before a creation).
SELECT rv, actor, type, namespace, name,
       coalesce((before -> 'spec')::text, '') AS before_spec,
       coalesce((after -> 'spec')::text, '') AS after_spec
FROM change_history
WHERE kind = 'Flunder'
ORDER BY rv;
