-- Flunders whose reference names a Flunder or Fischer that does not exist.
SELECT namespace, flunder, reference_type, target
FROM flunder_references
WHERE NOT target_exists
ORDER BY namespace, flunder;
