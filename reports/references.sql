-- Every flunder reference and whether its target exists.
SELECT namespace, flunder, reference_type, target,
       CASE WHEN target_exists THEN 'yes' ELSE 'no' END AS target_exists
FROM flunder_references
ORDER BY namespace, flunder;
