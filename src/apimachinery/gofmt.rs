//! Go's formatting rules (`%q`, encoding/json kind names), so error messages match the Go
//! apiserver's byte for byte.

use serde_json::Value;

/// Go's `unicode.IsPrint` as `strconv.Quote` uses it (space is printable, other white space not).
pub fn is_go_printable(c: char) -> bool {
    c == ' '
        || !(c.is_control()
            || c.is_whitespace()
            || c == '\u{FEFF}'
            || ('\u{E000}'..='\u{F8FF}').contains(&c))
}

/// Go's `strconv.Quote` (`%q`), which differs from Rust's `{:?}` for control characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// `format!("{}", Quoted(s))` is `go_quote(s)`: Go's `%q` inside a format string, so messages
/// that Go builds with `%q` (`flunders "a\x00b" not found`) read the same here.
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&go_quote(self.0))
    }
}

/// Go's `encoding/json` name of a JSON value's kind, for "cannot unmarshal X into ..." messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's encoding/json escapes `<`, `>`, `&`, U+2028 and U+2029. These can only occur inside
/// JSON strings, so a textual pass over serialized output is exact.
pub fn go_json_escape(s: String) -> String {
    // Most bodies need no escaping: hand the buffer back instead of copying it.
    if !s.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\u{1}\n"), r#""\x01\n""#);
        assert_eq!(go_quote("tab\there"), r#""tab\there""#);
        assert_eq!(go_quote("é"), "\"é\"");
        assert_eq!(go_quote("\u{a0}"), r#""\u00a0""#);
        assert_eq!(go_quote("a\0b"), r#""a\x00b""#);
        assert_eq!(format!("x {} y", Quoted("a\u{1}b")), r#"x "a\x01b" y"#);
    }
}
