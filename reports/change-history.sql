-- Every change still in the history: when, who, what.
SELECT rv, committed_at, actor, type, kind, namespace, name
FROM change_history
ORDER BY rv;
