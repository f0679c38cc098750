-- Flunders that a fischer's disallowedFlunders would ban today (BanFlunder admission).
SELECT namespace, name, banned_by
FROM banned_flunders
ORDER BY namespace, name, banned_by;
