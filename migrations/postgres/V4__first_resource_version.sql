-- A fresh store's counter starts at 1, not 0: the resourceVersion a LIST of an empty store
-- answers must be a real point a watch can resume from ("0" means "any state" to a client),
-- as Go's answers are etcd revisions (>= 1). Nothing was ever written at 1, so the log starts
-- after it: 1 is also the compaction horizon (the first write is 2, the first event rv 2).
-- Only a store that never had a write is touched.
UPDATE storage_meta SET compacted_rv = 1
  WHERE compacted_rv = 0 AND (SELECT rv FROM rv_counter) = 0;
UPDATE rv_counter SET rv = 1 WHERE rv = 0;
