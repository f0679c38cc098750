-- Every flunder with its reference, by namespace and name.
SELECT namespace, name, resource_version, reference_type, reference
FROM flunders
ORDER BY namespace, name;
