//! This process's recent commits, handed from the writer to the watch cache so the cache need not
//! read back from the database what this process just wrote. Only an optimisation: a batch that
//! is not (or no longer) here is read from the event log as before.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::types::Event;

/// Committed batches kept (each up to `writer::MAX_BATCH` events); older ones are dropped.
const KEEP: usize = 256;

/// The last `KEEP` batches this process committed, each a run of consecutive RVs, in RV order
/// (one writer task commits them one after another).
#[derive(Debug, Default)]
pub(crate) struct Journal {
    batches: Mutex<VecDeque<Arc<[Event]>>>,
}

impl Journal {
    /// Records a committed batch; `events` have consecutive RVs above every earlier batch's.
    pub fn push(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let mut batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        if batches.len() == KEEP {
            batches.pop_front();
        }
        batches.push_back(events.into());
    }

    /// The batch this process committed right after `rv` (its first event is `rv + 1`), if kept.
    pub fn after(&self, rv: i64) -> Option<Arc<[Event]>> {
        let batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        let i = batches.partition_point(|b| b.first().is_some_and(|e| e.rv <= rv));
        batches
            .get(i)
            .filter(|b| b.first().is_some_and(|e| e.rv == rv + 1))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::types::{EventType, Key, Obj};

    fn batch(rvs: std::ops::RangeInclusive<i64>) -> Vec<Event> {
        rvs.map(|rv| Event {
            rv,
            kind: EventType::Added,
            key: Key::new("flunders", "ns", &format!("n{rv}")),
            object: Obj::from_value(&serde_json::json!({"metadata": {"name": "n"}})),
            prev_object: None,
        })
        .collect()
    }

    #[test]
    fn finds_only_the_batch_that_continues_the_head() {
        let j = Journal::default();
        j.push(batch(3..=5));
        j.push(batch(9..=9));
        assert_eq!(j.after(2).map(|b| b.len()), Some(3));
        assert_eq!(j.after(8).map(|b| b[0].rv), Some(9));
        // 6..=8 were another process's: not here, so the log must be read.
        assert!(j.after(5).is_none());
        assert!(j.after(3).is_none(), "mid-batch heads are not served");
        assert!(j.after(9).is_none());
    }

    #[test]
    fn keeps_a_bounded_number_of_batches() {
        let j = Journal::default();
        for i in 0..(KEEP as i64 + 10) {
            j.push(batch(i * 2 + 1..=i * 2 + 2));
        }
        assert!(j.after(0).is_none(), "the oldest batches were dropped");
        assert!(j.after(KEEP as i64 * 2 + 18).is_some());
    }
}
