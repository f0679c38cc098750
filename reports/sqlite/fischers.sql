-- Every fischer and the flunder names it disallows (comma-separated).
SELECT name, resource_version,
       coalesce((SELECT group_concat(d.value, ',' ORDER BY d.value)
                 FROM json_each(CASE WHEN json_type(disallowed_flunders) = 'array'
                                     THEN disallowed_flunders END) d), '') AS disallowed_flunders
FROM fischers
ORDER BY name;
