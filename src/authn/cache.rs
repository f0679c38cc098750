//! The answers of the core cluster's reviews (TokenReview, SubjectAccessReview), each kept for
//! its own time to live in a bounded map, as Go's webhook authenticator and authorizer cache
//! theirs (`cache.NewLRUExpireCache` in k8s.io/apiserver's webhook packages).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `max` answers by key, each with the instant it was stored and its time to live.
pub struct ReviewCache<K, V> {
    max: usize,
    entries: Mutex<HashMap<K, (Instant, Duration, V)>>,
}

impl<K: Hash + Eq, V: Clone> ReviewCache<K, V> {
    pub fn new(max: usize) -> Self {
        ReviewCache {
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The answer stored for `key`, unless its time to live has run out.
    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, ttl, _)| at.elapsed() < *ttl)
            .map(|(_, _, v)| v.clone())
    }

    /// Keeps `value` for `ttl` (a zero `ttl` keeps nothing). When the map is full, the expired
    /// answers are dropped, and if that frees no room, all of them.
    pub fn put(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.max {
            entries.retain(|_, (at, ttl, _)| at.elapsed() < *ttl);
            if entries.len() >= self.max {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), ttl, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn answers_live_for_their_ttl_and_the_map_stays_bounded() {
        let c = ReviewCache::new(2);
        c.put("zero", 0, Duration::ZERO);
        assert_eq!(c.get(&"zero"), None, "a zero TTL keeps nothing");
        c.put("a", 1, HOUR);
        assert_eq!(c.get(&"a"), Some(1));
        c.put("short", 2, Duration::from_nanos(1));
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(c.get(&"short"), None, "expired");
        // Full: the expired answer makes room, the live one stays.
        c.put("b", 3, HOUR);
        assert_eq!((c.get(&"a"), c.get(&"b")), (Some(1), Some(3)));
        // Full of live answers: all are dropped for the new one.
        c.put("c", 4, HOUR);
        assert_eq!(
            (c.get(&"a"), c.get(&"b"), c.get(&"c")),
            (None, None, Some(4))
        );
    }
}
