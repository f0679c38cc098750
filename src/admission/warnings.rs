//! The warning recorder of one request (Go's `warning.AddWarning` on the request context):
//! admission adds warnings anywhere below the handler, the handler turns them into `Warning:`
//! headers. A task-local, so no signature between the two has to carry it.

use std::cell::RefCell;
use std::future::Future;

/// At most this many warnings per response, so a misbehaving webhook cannot grow a response's
/// headers without bound (Go truncates its warning headers by total size instead).
const MAX_WARNINGS: usize = 64;
/// Each warning is cut to this many bytes.
const MAX_WARNING_BYTES: usize = 4096;

tokio::task_local! {
    static WARNINGS: RefCell<Vec<String>>;
}

/// Run `f` with a fresh recorder; returns its output and the warnings it recorded.
pub async fn record<F: Future>(f: F) -> (F::Output, Vec<String>) {
    WARNINGS
        .scope(RefCell::new(Vec::new()), async move {
            let out = f.await;
            let w = WARNINGS.with(|w| std::mem::take(&mut *w.borrow_mut()));
            (out, w)
        })
        .await
}

/// Record a warning for the current request; a no-op outside `record` (tests, background work).
/// Duplicates are dropped, as Go's recorder does.
pub fn add(text: &str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    let mut text = text.to_string();
    if text.len() > MAX_WARNING_BYTES {
        let mut cut = MAX_WARNING_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let _ = WARNINGS.try_with(|w| {
        let mut w = w.borrow_mut();
        if w.len() < MAX_WARNINGS && !w.contains(&text) {
            w.push(text);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn warnings_are_recorded_per_scope_deduplicated_and_bounded() {
        let ((), w) = record(async {
            add("a");
            add("a");
            add("  ");
            for i in 0..100 {
                add(&format!("w{i}"));
            }
        })
        .await;
        assert_eq!(w[0], "a");
        assert_eq!(w.len(), MAX_WARNINGS);
        // Outside a scope nothing happens (and nothing panics).
        add("lost");
        let ((), w) = record(async {}).await;
        assert!(w.is_empty());
    }
}
