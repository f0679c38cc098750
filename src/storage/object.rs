//! `Obj`: one stored version of an object as the cache keeps it — its served JSON text plus the
//! labels selectors need — shared by the cache, its event window, lists and watch streams.
//!
//! Why text and not a `serde_json::Value`: a parsed tree costs about ten times its text in memory
//! and has to be cloned and serialized again on every read. Kept as text, a LIST is a
//! concatenation and a watch event a copy; the tree is rebuilt only where code needs it (writes,
//! conversion to another version, Table output).

use serde_json::Value;
use std::sync::{Arc, OnceLock};

use crate::apimachinery::gofmt::go_json_escape;

/// The length of `v` serialized as compact JSON, in bytes, without building the text.
pub fn json_len(v: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    // Writing a Value into a counter cannot fail.
    let _ = serde_json::to_writer(&mut n, v);
    n.0
}

/// A cheaply cloned, immutable object version (storage-version JSON, resourceVersion set).
#[derive(Clone)]
pub struct Obj(Arc<Inner>);

struct Inner {
    /// Compact JSON with Go's HTML-safe escaping, exactly as a JSON response carries it.
    json: Box<str>,
    /// `metadata.labels`, sorted by key; a non-string value reads as "" (as before).
    labels: Box<[(Box<str>, Box<str>)]>,
    /// The text in one other served version, made on first request (`(version, json)`).
    other: OnceLock<(&'static str, Box<str>)>,
}

impl Obj {
    /// From a parsed object (its `metadata.resourceVersion` must already be set).
    pub fn from_value(v: &Value) -> Obj {
        let json = go_json_escape(serde_json::to_string(v).unwrap_or_default());
        let mut labels: Vec<(Box<str>, Box<str>)> = v
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.as_str().into(), v.as_str().unwrap_or("").into()))
                    .collect()
            })
            .unwrap_or_default();
        labels.sort();
        Obj(Arc::new(Inner {
            json: json.into_boxed_str(),
            labels: labels.into_boxed_slice(),
            other: OnceLock::new(),
        }))
    }

    /// The JSON text as served in the storage version.
    pub fn json(&self) -> &str {
        &self.0.json
    }

    /// The object as a tree, for code that edits or converts it.
    pub fn value(&self) -> Value {
        // The text was made by serializing a Value, so it parses.
        serde_json::from_str(&self.0.json).unwrap_or(Value::Null)
    }

    /// The value of label `key`, if the object has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        let labels = &self.0.labels;
        labels
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| labels[i].1.as_ref())
    }

    /// The JSON text in `version`; `convert` turns the storage form into it. The first other
    /// version asked for is kept (a kind here has at most two), any further one is made anew.
    pub fn json_in(
        &self,
        version: &'static str,
        storage_version: &str,
        convert: impl FnOnce(Value) -> Value,
    ) -> std::borrow::Cow<'_, str> {
        if version == storage_version {
            return self.json().into();
        }
        if let Some((v, text)) = self.0.other.get()
            && *v == version
        {
            return text.as_ref().into();
        }
        let text =
            go_json_escape(serde_json::to_string(&convert(self.value())).unwrap_or_default())
                .into_boxed_str();
        match self.0.other.set((version, text)) {
            Ok(()) => self
                .0
                .other
                .get()
                .map(|(_, t)| t.as_ref())
                .unwrap_or("")
                .into(),
            Err((_, text)) => String::from(text).into(),
        }
    }
}

impl std::fmt::Debug for Obj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.json())
    }
}

impl PartialEq for Obj {
    fn eq(&self, other: &Obj) -> bool {
        self.json() == other.json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_the_served_text_and_the_labels() {
        let v = json!({"metadata": {"name": "a<b", "labels": {"z": "1", "a": "x", "n": 5}}});
        let o = Obj::from_value(&v);
        assert!(o.json().contains(r#""a\u003cb""#), "{}", o.json());
        assert_eq!(o.value(), v);
        assert_eq!(o.label("a"), Some("x"));
        assert_eq!(o.label("z"), Some("1"));
        assert_eq!(o.label("n"), Some(""));
        assert_eq!(o.label("b"), None);
        assert_eq!(Obj::from_value(&json!({})).label("a"), None);
    }

    #[test]
    fn other_versions_are_converted_once() {
        let o = Obj::from_value(&json!({"apiVersion": "g/v1", "x": 1}));
        let calls = std::cell::Cell::new(0);
        let to_v2 = |mut v: Value| {
            calls.set(calls.get() + 1);
            v["apiVersion"] = json!("g/v2");
            v
        };
        assert_eq!(o.json_in("v1", "v1", to_v2), o.json());
        assert_eq!(calls.get(), 0);
        assert_eq!(
            o.json_in("v2", "v1", to_v2),
            r#"{"apiVersion":"g/v2","x":1}"#
        );
        assert_eq!(
            o.json_in("v2", "v1", to_v2),
            r#"{"apiVersion":"g/v2","x":1}"#
        );
        assert_eq!(calls.get(), 1);
        // A third version is converted every time rather than evicting the second.
        assert!(o.json_in("v3", "v1", to_v2).contains("g/v2"));
        assert!(o.json_in("v3", "v1", to_v2).contains("g/v2"));
        assert_eq!(calls.get(), 3);
    }
}
