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

/// A create's or update's object as the database stores it: compact JSON without
/// `metadata.resourceVersion` (what the write batch carries), and where that member goes once the
/// write has its RV. The served text (`Obj::from_stored`) is this text with the member spliced
/// in, so a write serializes its object once, in the request's task, instead of once for the
/// batch and again in the writer (which every batch waits on) for the watch cache.
pub struct StoredText {
    text: Box<str>,
    slot: Option<RvSlot>,
    /// Where the value of `metadata.labels` is in `text`, if the object has one.
    labels: Option<std::ops::Range<usize>>,
}

/// Where `"resourceVersion":"<rv>"` goes in a `StoredText`: at byte `at`, after a comma when
/// members precede it, before one when it opens a non-empty `metadata`.
#[derive(Clone, Copy)]
struct RvSlot {
    at: usize,
    comma_before: bool,
    comma_after: bool,
}

impl StoredText {
    /// Serializes `object` (compact, as `serde_json::to_string`). With no `metadata` object, or
    /// one that still has a `resourceVersion`, there is no slot and `Obj::from_stored` serializes
    /// the object itself. `Err` is serde_json's writer error, which writing into memory never
    /// gives.
    pub fn new(object: &Value) -> Result<StoredText, serde_json::Error> {
        let written = match object {
            Value::Object(top) => write_with_slot(top)?,
            _ => Written {
                text: serde_json::to_string(object)?,
                slot: None,
                labels: None,
            },
        };
        Ok(StoredText {
            text: written.text.into_boxed_str(),
            slot: written.slot,
            labels: written.labels,
        })
    }

    /// The stored JSON, for the write batch.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its length in bytes.
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    /// `metadata.labels` as JSON text, whatever its JSON type, and `{}` when the object has none
    /// (or no `metadata` object): the Postgres `objects.labels` column, which until migration V8
    /// was generated as `coalesce((object->'metadata'->'labels')::jsonb, '{}')`.
    pub fn labels_json(&self) -> &str {
        match &self.labels {
            Some(at) => &self.text[at.clone()],
            None => "{}",
        }
    }

    /// The text with `"resourceVersion":"<rv>"` in the place `serde_json` writes it after
    /// `inject_rv`: maps keep their keys sorted (serde_json without `preserve_order`).
    fn with_rv(&self, rv: i64) -> Option<String> {
        let slot = self.slot?;
        let text = &*self.text;
        let (head, tail) = text.split_at_checked(slot.at)?;
        let mut out = String::with_capacity(text.len() + 40);
        out.push_str(head);
        if slot.comma_before {
            out.push(',');
        }
        out.push_str("\"resourceVersion\":\"");
        out.push_str(&rv.to_string());
        out.push('"');
        if slot.comma_after {
            out.push(',');
        }
        out.push_str(tail);
        Some(out)
    }
}

/// What `write_with_slot` wrote: the text, the RV slot, and where `metadata.labels`' value is.
struct Written {
    text: String,
    slot: Option<RvSlot>,
    labels: Option<std::ops::Range<usize>>,
}

/// Writes a top-level object as `serde_json::to_string` would, noting where the
/// `resourceVersion` member of its `metadata` would sort (no slot: no `metadata` object, or one
/// that has the member already) and where the value of `metadata.labels` is.
fn write_with_slot(top: &serde_json::Map<String, Value>) -> Result<Written, serde_json::Error> {
    let mut out = Vec::with_capacity(1024);
    let mut slot = None;
    let mut labels = None;
    out.push(b'{');
    for (i, (key, value)) in top.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key)?;
        out.push(b':');
        match value {
            Value::Object(meta) if key == "metadata" => {
                let keeps_rv = meta.contains_key("resourceVersion");
                out.push(b'{');
                for (j, (k, v)) in meta.iter().enumerate() {
                    if !keeps_rv && slot.is_none() && k.as_str() > "resourceVersion" {
                        slot = Some(RvSlot {
                            at: out.len(),
                            comma_before: j > 0,
                            comma_after: j == 0,
                        });
                    }
                    if j > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut out, k)?;
                    out.push(b':');
                    let start = out.len();
                    serde_json::to_writer(&mut out, v)?;
                    if k == "labels" {
                        labels = Some(start..out.len());
                    }
                }
                if !keeps_rv {
                    slot.get_or_insert(RvSlot {
                        at: out.len(),
                        comma_before: !meta.is_empty(),
                        comma_after: false,
                    });
                }
                out.push(b'}');
            }
            _ => serde_json::to_writer(&mut out, value)?,
        }
    }
    out.push(b'}');
    // serde_json writes UTF-8 only.
    let text = String::from_utf8(out).map_err(serde::ser::Error::custom)?;
    Ok(Written { text, slot, labels })
}

/// `metadata.labels`, sorted by key; a non-string value reads as "".
fn labels_of(v: &Value) -> Box<[(Box<str>, Box<str>)]> {
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
    labels.into_boxed_slice()
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
        Obj::new(json, v)
    }

    /// From a write's stored text and the RV it committed at; `v` is the same object with that
    /// RV injected (for its labels, and serialized itself if the text has no RV slot).
    pub fn from_stored(stored: &StoredText, rv: i64, v: &Value) -> Obj {
        match stored.with_rv(rv) {
            Some(text) => Obj::new(go_json_escape(text), v),
            None => Obj::from_value(v),
        }
    }

    fn new(json: String, v: &Value) -> Obj {
        Obj(Arc::new(Inner {
            json: json.into_boxed_str(),
            labels: labels_of(v),
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

    /// The spliced text is what serializing the object with its RV gives, wherever the member
    /// sorts among the metadata's keys, with or without neighbours.
    #[test]
    fn stored_text_takes_the_resource_version_where_serde_puts_it() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "a<b", "namespace": "n",
                "uid": "u", "labels": {"x": "y"}, "managedFields": [{"f": {"a": 1}}]},
                "spec": {"s": "é\u{2028}"}}),
            json!({"metadata": {}}),
            json!({"metadata": {"a": 1}}),
            json!({"metadata": {"z": 1}}),
            json!({"metadata": {"a": 1, "z": 2}, "z": {"metadata": {"q": 1}}}),
            json!({"a": [1, 2.5, null, true], "metadata": {"resourceVersiom": 1, "resourceVersioo": 2}}),
            json!({"metadata": {"namespace": "n"}, "zz": "\"\\"}),
        ];
        for object in objects {
            let stored = StoredText::new(&object).expect("stored");
            assert_eq!(stored.text(), serde_json::to_string(&object).unwrap());
            assert_eq!(
                stored.bytes() as u64,
                json_len(&object),
                "the size limit's measure"
            );
            let mut served = object.clone();
            crate::storage::inject_rv(&mut served, 42);
            let obj = Obj::from_stored(&stored, 42, &served);
            assert_eq!(obj.json(), Obj::from_value(&served).json(), "{object}");
            assert_eq!(obj.value(), served);
        }
        // No slot: no metadata object, or one that still has its RV; the object is serialized.
        for object in [
            json!({"kind": "K"}),
            json!({"metadata": {"resourceVersion": "3"}}),
            json!(7),
        ] {
            let stored = StoredText::new(&object).expect("stored");
            assert!(stored.slot.is_none());
            assert_eq!(stored.text(), serde_json::to_string(&object).unwrap());
            let obj = Obj::from_stored(&stored, 9, &object);
            assert_eq!(obj.json(), Obj::from_value(&object).json());
        }
    }

    /// The labels text is `metadata.labels` serialized, whatever its type, and `{}` without it;
    /// Postgres stores it as the `labels` column (tests/storage.rs checks it against the
    /// expression the column was generated with).
    #[test]
    fn stored_text_gives_the_labels_as_json() {
        let cases = [
            (
                json!({"metadata": {"labels": {"b": "2", "a": "x\"y"}}}),
                r#"{"a":"x\"y","b":"2"}"#,
            ),
            (
                json!({"metadata": {"labels": {}, "resourceVersion": "3"}}),
                "{}",
            ),
            (json!({"metadata": {"labels": null}}), "null"),
            (json!({"metadata": {"labels": [1, "a"]}}), r#"[1,"a"]"#),
            (
                json!({"metadata": {"name": "n"}, "labels": {"a": "b"}}),
                "{}",
            ),
            (json!({"metadata": "labels", "x": {"labels": 1}}), "{}"),
            (json!({"kind": "K"}), "{}"),
            (json!(["labels"]), "{}"),
        ];
        for (object, labels) in cases {
            let stored = StoredText::new(&object).expect("stored");
            assert_eq!(stored.labels_json(), labels, "{object}");
            assert_eq!(stored.text(), serde_json::to_string(&object).unwrap());
        }
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
