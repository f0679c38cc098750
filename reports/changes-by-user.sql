-- How many changes of each type every user made (most recently active last).
SELECT coalesce(actor, '') AS actor, type, count(*) AS changes, max(rv) AS last_rv
FROM change_history
GROUP BY coalesce(actor, ''), type
ORDER BY last_rv;
