//! Continue tokens for paginated lists, in the Go apiserver's format, pinned to the first page's RV.
//!
//! A token is base64url (no padding) of `{"v":"meta.k8s.io/v1","rv":<rv>,"start":"<key>\u0000"}`
//! where `<key>` is the last returned object's storage key relative to the list prefix: `name`
//! within one namespace or for a cluster-scoped kind, `namespace/name` across all namespaces. The
//! trailing NUL makes the next page start strictly after that key. Keeping Go's byte format lets
//! tokens pass through clients (and mixed deployments) unchanged.

use super::gofmt::json_kind;
use super::status::ApiError;
use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;

const VERSION: &str = "meta.k8s.io/v1";

/// Go's `base64.RawURLEncoding`: no padding, and (being non-strict) it tolerates non-zero
/// trailing bits.
const RAW_URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// A decoded token: the snapshot RV (-1 = "latest", from the token of a 410) and the last key
/// already returned; the next page starts strictly after `(namespace, name)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinueToken {
    pub rv: i64,
    /// Empty unless the list spans all namespaces.
    pub namespace: String,
    pub name: String,
}

/// The token for continuing after `namespace/name` at snapshot `rv`.
pub fn encode(rv: i64, all_namespaces: bool, namespace: &str, name: &str) -> String {
    let key = if all_namespaces {
        format!("{namespace}/{name}")
    } else {
        name.to_string()
    };
    let start = format!("{key}\u{0}");
    let json = format!(
        "{{\"v\":\"{VERSION}\",\"rv\":{rv},\"start\":{}}}",
        go_json_string(&start)
    );
    RAW_URL.encode(json.as_bytes())
}

/// The token carried by a 410 "continue too old" Status: same start, rv -1 (list at latest).
pub fn encode_fresh(all_namespaces: bool, namespace: &str, name: &str) -> String {
    encode(-1, all_namespaces, namespace, name)
}

/// Decodes a `continue` parameter, with Go's checks (`storage.DecodeContinue`) and its messages
/// under `invalid continue token: ` as 400 BadRequest.
pub fn decode(token: &str, all_namespaces: bool) -> Result<ContinueToken, ApiError> {
    decode_inner(token, all_namespaces)
        .map_err(|e| ApiError::bad_request(format!("invalid continue token: {e}")))
}

const GENERIC: &str = "continue key is not valid";

fn decode_inner(token: &str, all_namespaces: bool) -> Result<ContinueToken, String> {
    // Go's decoder skips CR and LF anywhere in the input.
    let cleaned: String = token.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let data = RAW_URL
        .decode(cleaned.as_bytes())
        .map_err(|e| format!("{GENERIC}: {}", base64_error(&e)))?;
    let doc: Value = serde_json::from_slice(&data).map_err(|e| format!("{GENERIC}: {e}"))?;
    let Some(obj) = doc.as_object() else {
        return Err(format!(
            "{GENERIC}: json: cannot unmarshal {} into Go value of type storage.continueToken",
            json_kind(&doc)
        ));
    };

    // encoding/json matches field names case-insensitively and ignores unknown ones and nulls.
    let mut version = String::new();
    let mut rv: i64 = 0;
    let mut start = String::new();
    for (k, v) in obj {
        let k = k.to_ascii_lowercase();
        if v.is_null() {
            continue;
        }
        match k.as_str() {
            "v" => {
                version = v
                    .as_str()
                    .ok_or_else(|| type_error(v, "v", "string"))?
                    .to_string()
            }
            "rv" => rv = v.as_i64().ok_or_else(|| type_error(v, "rv", "int64"))?,
            "start" => {
                start = v
                    .as_str()
                    .ok_or_else(|| type_error(v, "start", "string"))?
                    .to_string()
            }
            _ => {}
        }
    }

    if version != VERSION {
        return Err(format!(
            "{GENERIC}: server does not recognize this encoded version {version}"
        ));
    }
    if rv == 0 {
        return Err(format!(
            "{GENERIC}: incorrect encoded start resourceVersion (version {VERSION})"
        ));
    }
    if start.is_empty() {
        return Err(format!(
            "{GENERIC}: encoded start key empty (version {VERSION})"
        ));
    }
    // Go guards against path traversal: the key, rooted at "/", must already be path.Clean.
    if !is_clean_path(&start) {
        return Err(format!("{GENERIC}: {start}"));
    }

    // This server only issues keys that name an object and end in NUL ("start after it"); any
    // other start could not be resumed faithfully, so it is rejected like a traversal attempt.
    // Go appends the cleaned key minus its root to the prefix, so "/a" means "a".
    let relative = start.strip_prefix('/').unwrap_or(&start);
    let Some(key) = relative.strip_suffix('\u{0}') else {
        return Err(format!("{GENERIC}: {start}"));
    };
    // Names never hold a NUL, so a key with another one was not issued here.
    if key.contains('\u{0}') {
        return Err(format!("{GENERIC}: {start}"));
    }
    let (namespace, name) = if all_namespaces {
        match key.split_once('/') {
            Some((ns, n)) if !ns.is_empty() && !n.is_empty() && !n.contains('/') => (ns, n),
            _ => return Err(format!("{GENERIC}: {start}")),
        }
    } else {
        if key.is_empty() || key.contains('/') {
            return Err(format!("{GENERIC}: {start}"));
        }
        ("", key)
    };
    Ok(ContinueToken {
        rv,
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// True when `"/" + key` (or `key` if already rooted) is unchanged by Go's `path.Clean`: no
/// empty, `.` or `..` segments and no trailing slash.
fn is_clean_path(key: &str) -> bool {
    let rooted = key.strip_prefix('/').unwrap_or(key);
    if rooted.is_empty() {
        return true; // "/" cleans to itself
    }
    rooted
        .split('/')
        .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

fn base64_error(e: &base64::DecodeError) -> String {
    use base64::DecodeError::*;
    let at = match e {
        InvalidByte(i, _) | InvalidLastSymbol(i, _) => *i,
        InvalidLength(n) => *n,
        InvalidPadding => 0,
    };
    format!("illegal base64 data at input byte {at}")
}

fn type_error(v: &Value, field: &str, go_type: &str) -> String {
    format!(
        "{GENERIC}: json: cannot unmarshal {} into Go struct field continueToken.{field} of type {go_type}",
        json_kind(v)
    )
}

/// A JSON string literal exactly as Go's `encoding/json` writes it (HTML-safe escapes for
/// `<`, `>`, `&`, `\u00XX` for other control characters, `\u2028`/`\u2029` escaped).
fn go_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> String {
        RAW_URL.encode(json.as_bytes())
    }

    fn bad(token: &str, all: bool) -> String {
        match decode(token, all) {
            Ok(t) => panic!("{token:?} should fail, got {t:?}"),
            Err(e) => {
                assert_eq!((e.code, &*e.reason), (400, "BadRequest"));
                e.message
            }
        }
    }

    #[test]
    fn reference_example() {
        let t = "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIsInN0YXJ0IjoiYlx1MDAwMCJ9";
        let d = decode(t, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            d,
            ContinueToken {
                rv: 12,
                namespace: String::new(),
                name: "b".into()
            }
        );
        assert_eq!(encode(12, false, "ignored", "b"), t);
    }

    #[test]
    fn round_trips() {
        let t = encode(42, true, "ns1", "obj");
        let d = decode(&t, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            d,
            ContinueToken {
                rv: 42,
                namespace: "ns1".into(),
                name: "obj".into()
            }
        );
        let json = String::from_utf8(RAW_URL.decode(&t).unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"v":"meta.k8s.io/v1","rv":42,"start":"ns1/obj\u0000"}"#
        );
        assert!(!t.contains('=') && !t.contains('+') && !t.contains('/'));

        let f = encode_fresh(false, "", "x&y<z>");
        let d = decode(&f, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.rv, -1);
        assert_eq!(d.name, "x&y<z>");
        let json = String::from_utf8(RAW_URL.decode(&f).unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"v":"meta.k8s.io/v1","rv":-1,"start":"x\u0026y\u003cz\u003e\u0000"}"#
        );
        let odd = encode(7, false, "", "Ünï\"co\\de");
        assert_eq!(
            decode(&odd, false).map(|d| d.name).unwrap_or_default(),
            "Ünï\"co\\de"
        );
    }

    #[test]
    fn bad_base64_and_json() {
        assert_eq!(
            bad("!!!", false),
            "invalid continue token: continue key is not valid: illegal base64 data at input byte 0"
        );
        let padded = format!(
            "{}=",
            raw(r#"{"v":"meta.k8s.io/v1","rv":1,"start":"a\u0000"}"#)
        );
        assert!(
            bad(&padded, false).starts_with(
                "invalid continue token: continue key is not valid: illegal base64 data"
            )
        );
        assert!(
            bad(&raw("{nope"), false)
                .starts_with("invalid continue token: continue key is not valid: ")
        );
        assert_eq!(
            bad(&raw("[1]"), false),
            "invalid continue token: continue key is not valid: json: cannot unmarshal array into Go value of type storage.continueToken"
        );
        assert_eq!(
            bad(
                &raw(r#"{"v":"meta.k8s.io/v1","rv":"12","start":"a\u0000"}"#),
                false
            ),
            "invalid continue token: continue key is not valid: json: cannot unmarshal string into Go struct field continueToken.rv of type int64"
        );
    }

    #[test]
    fn bad_contents() {
        assert_eq!(
            bad(&raw(r#"{"v":"v2","rv":1,"start":"a\u0000"}"#), false),
            "invalid continue token: continue key is not valid: server does not recognize this encoded version v2"
        );
        assert_eq!(
            bad(
                &raw(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"a\u0000"}"#),
                false
            ),
            "invalid continue token: continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        );
        assert_eq!(
            bad(&raw(r#"{"v":"meta.k8s.io/v1","rv":3}"#), false),
            "invalid continue token: continue key is not valid: encoded start key empty (version meta.k8s.io/v1)"
        );
        for start in [
            "../x\\u0000",
            "a/../b\\u0000",
            "a//b\\u0000",
            "./a\\u0000",
            "a/\\u0000/",
        ] {
            let m = bad(
                &raw(&format!(
                    r#"{{"v":"meta.k8s.io/v1","rv":3,"start":"{start}"}}"#
                )),
                true,
            );
            assert!(
                m.starts_with("invalid continue token: continue key is not valid: "),
                "{m}"
            );
        }
        // No trailing NUL, or the wrong shape for the list scope.
        assert!(decode(&raw(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"a"}"#), false).is_err());
        assert!(decode(&encode(3, true, "ns", "a"), false).is_err());
        assert!(decode(&encode(3, false, "", "a"), true).is_err());
    }

    #[test]
    fn lenient_like_go() {
        // Case-insensitive names, unknown fields, embedded newlines.
        let t = raw(r#"{"V":"meta.k8s.io/v1","RV":9,"Start":"a\u0000","extra":true}"#);
        let wrapped = format!("{}\n{}", &t[..10], &t[10..]);
        assert_eq!(decode(&wrapped, false).map(|d| d.rv).unwrap_or_default(), 9);
        // The start may also be given already rooted.
        let d = decode(
            &raw(r#"{"v":"meta.k8s.io/v1","rv":9,"start":"/a\u0000"}"#),
            false,
        );
        assert_eq!(d.map(|d| d.name).unwrap_or_default(), "a");
    }
}
