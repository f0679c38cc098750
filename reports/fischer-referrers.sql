-- Every fischer and how many flunders reference it.
SELECT fischer, referencing_flunders
FROM fischer_referrers
ORDER BY fischer;
