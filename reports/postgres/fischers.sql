-- Every fischer and the flunder names it disallows (comma-separated).
SELECT name, resource_version,
       coalesce((SELECT string_agg(d, ',' ORDER BY d COLLATE "C")
                 FROM json_array_elements_text(CASE WHEN json_typeof(disallowed_flunders) = 'array'
                                                    THEN disallowed_flunders END) d), '') AS disallowed_flunders
FROM fischers
ORDER BY name;
