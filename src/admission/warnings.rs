//! The warning recorder of one request (Go's `warning.AddWarning` on the request context and
//! the recorder of k8s.io/apiserver `pkg/endpoints/filters/warning.go`): admission and decoding
//! add warnings anywhere below the handler, the handler turns them into `Warning:` headers. A
//! task-local, so no signature between the two has to carry it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;

/// Go's `truncateAtTotalRunes`: once the warnings' text passes this many characters, every
/// warning is cut to `TRUNCATE_ITEM_RUNES` and, when the total passes it again, later
/// warnings are dropped.
const TRUNCATE_AT_TOTAL_RUNES: usize = 4 * 1024;
/// Go's `truncateItemRunes`.
const TRUNCATE_ITEM_RUNES: usize = 256;

/// Go's recorder state: every distinct warning in order, and the texts written as headers.
#[derive(Default)]
struct Recorder {
    recorded: HashSet<String>,
    ordered: Vec<String>,
    headers: Vec<String>,
    /// Characters of text in `headers`.
    written: usize,
    truncating: bool,
}

impl Recorder {
    /// Go's `recorder.AddWarning`, step for step.
    fn add(&mut self, text: &str) {
        if text.is_empty() || (self.written >= TRUNCATE_AT_TOTAL_RUNES && self.truncating) {
            return;
        }
        if !self.recorded.insert(text.to_string()) {
            return;
        }
        self.ordered.push(text.to_string());
        let (item, runes) = if self.truncating {
            cut(text)
        } else {
            (text, text.chars().count())
        };
        if !valid(item) {
            return;
        }
        if self.written + runes <= TRUNCATE_AT_TOTAL_RUNES || self.truncating {
            self.written += runes;
            self.headers.push(item.to_string());
            return;
        }
        // Over the limit for the first time: start again with every warning cut short.
        tracing::warn!("exceeded max warning header size, truncating");
        self.truncating = true;
        self.written = 0;
        self.headers.clear();
        for text in &self.ordered {
            let (item, runes) = cut(text);
            if valid(item) {
                self.written += runes;
                self.headers.push(item.to_string());
            }
        }
    }
}

/// `text` cut to its first `TRUNCATE_ITEM_RUNES` characters, and its length in characters.
fn cut(text: &str) -> (&str, usize) {
    match text.char_indices().nth(TRUNCATE_ITEM_RUNES) {
        Some((i, _)) => (&text[..i], TRUNCATE_ITEM_RUNES),
        None => (text, text.chars().count()),
    }
}

/// Go's `net.NewWarningHeader` check of the text: no control characters (Unicode Cc, which
/// `char::is_control` and Go's `unicode.IsControl` both mean). Other non-ASCII text is kept
/// and sent as UTF-8, as Go does.
fn valid(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

tokio::task_local! {
    static WARNINGS: RefCell<Recorder>;
}

/// Run `f` with a fresh recorder; returns its output and the warning texts to send, in order
/// (each becomes one `Warning: 299 - "<text>"` header).
pub async fn record<F: Future>(f: F) -> (F::Output, Vec<String>) {
    WARNINGS
        .scope(RefCell::new(Recorder::default()), async move {
            let out = f.await;
            let w = WARNINGS.with(|w| std::mem::take(&mut w.borrow_mut().headers));
            (out, w)
        })
        .await
}

/// Record a warning for the current request; a no-op outside `record` (tests, background work).
/// Duplicates and warnings with control characters (newlines included) are dropped, and the
/// total is bounded, as Go's recorder does.
pub fn add(text: &str) {
    let _ = WARNINGS.try_with(|w| w.borrow_mut().add(text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn warnings_are_recorded_per_scope_deduplicated_and_checked_like_go() {
        let ((), w) = record(async {
            add("a");
            add("a");
            add("");
            add("  ");
            add("two\nlines");
            add("bell\u{7}");
            add("c1 control \u{85}");
            add("ünïcödé ✓ \"quoted\"");
        })
        .await;
        assert_eq!(w, ["a", "  ", "ünïcödé ✓ \"quoted\""]);
        // Outside a scope nothing happens (and nothing panics).
        add("lost");
        let ((), w) = record(async {}).await;
        assert!(w.is_empty());
    }

    #[tokio::test]
    async fn past_4096_characters_every_warning_is_cut_to_256_then_later_ones_dropped() {
        let long = |c: char| c.to_string().repeat(1000);
        let ((), w) = record(async {
            // 4 × 1000 characters fit (multi-byte ones count once, as Go counts runes).
            for c in ['a', 'b', 'c', 'ü'] {
                add(&long(c));
            }
            assert_eq!(WARNINGS.with(|w| w.borrow().headers.len()), 4);
            // The fifth passes 4096: all five are written again, cut to 256 characters.
            add(&long('e'));
            // Each further warning is cut, until 4096 characters are written in all.
            for i in 0..20 {
                add(&format!("{i}{}", long('x')));
            }
        })
        .await;
        assert!(w.iter().all(|t| t.chars().count() == 256), "{w:?}");
        assert_eq!(w[3], "ü".repeat(256));
        assert_eq!(w[4], "e".repeat(256));
        // 16 × 256 = 4096: the 16th reaches the limit, the rest are dropped.
        assert_eq!(w.len(), 16);
        // Below the limit nothing is cut.
        let ((), w) = record(async { add(&long('a')) }).await;
        assert_eq!(w, [long('a')]);
    }
}
