-- How many flunders each namespace holds, and the resourceVersion of its newest change.
SELECT namespace, flunders, last_change_rv
FROM flunders_by_namespace
ORDER BY namespace;
