//! Go's formatting rules (`%q`, encoding/json kind names), so error messages match the Go
//! apiserver's byte for byte.

use serde_json::Value;

/// Go's `unicode.IsPrint` (= `strconv.IsPrint`): letters, marks, numbers, punctuation and
/// symbols (general categories L, M, N, P, S) and the ASCII space; every other space, control,
/// format, private-use, surrogate and unassigned code point is not printable. The categories
/// come from unicode-properties, whose Unicode version may be newer than Go's (15.0.0 in Go
/// 1.26): a code point assigned since then is printable here and escaped by Go.
pub fn is_go_printable(c: char) -> bool {
    use unicode_properties::{GeneralCategoryGroup as G, UnicodeGeneralCategory};
    c == ' '
        || matches!(
            c.general_category_group(),
            G::Letter | G::Mark | G::Number | G::Punctuation | G::Symbol
        )
}

/// Go's `strconv.Quote` (`%q`), which differs from Rust's `{:?}`: `\a \b \f \n \r \t \v`,
/// other non-printable code points as `\xHH` (below U+0080), `\uHHHH` or `\UHHHHHHHH`.
pub fn go_quote(s: &str) -> String {
    go_quote_bytes(s.as_bytes())
}

/// `go_quote` of bytes that may not be UTF-8, as Go quotes a `string` holding them: each byte
/// of an invalid sequence is `\xHH` (`"a\xffb"`), valid text as in `go_quote`.
pub fn go_quote_bytes(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_escaped(&mut out, c);
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

/// Go's `appendEscapedRune` for a double-quoted string.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        c if is_go_printable(c) => out.push(c),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// Go's encoding/json `quoteChar`: a byte of the input as its syntax errors name it
/// (`'x'`, `'\''`, `'"'`, `'\x01'`); a byte above 0x7F is the code point of that number.
pub fn quote_char(b: u8) -> String {
    match b {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        _ => {
            let q = go_quote(&char::from(b).to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
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

    /// Expected texts printed by Go 1.26's `strconv.Quote` (a `go run` of each input).
    #[test]
    fn quotes_non_printables_like_go() {
        for (input, go) in [
            ("a\u{ad}b", r#""a\u00adb""#),
            ("\u{200b}", r#""\u200b""#),
            ("\u{378}", r#""\u0378""#),
            ("\u{feff}", r#""\ufeff""#),
            ("\u{e000}", r#""\ue000""#),
            ("\u{2028}", r#""\u2028""#),
            ("\u{3000}", r#""\u3000""#),
            ("\u{61c}", r#""\u061c""#),
            ("\u{180e}", r#""\u180e""#),
            ("\u{d7ff}", r#""\ud7ff""#),
            ("\u{10ffff}", r#""\U0010ffff""#),
            ("\u{e0001}", r#""\U000e0001""#),
            ("\u{f0000}", r#""\U000f0000""#),
            ("\u{7f}", r#""\x7f""#),
            ("\0\u{1b}", r#""\x00\x1b""#),
            ("e\u{301}", "\"e\u{301}\""),
            ("😀 🧿", "\"😀 🧿\""),
        ] {
            assert_eq!(go_quote(input), go, "{input:?}");
        }
        assert_eq!(go_quote_bytes(b"a\xffb"), r#""a\xffb""#);
        assert_eq!(go_quote_bytes(b"\xe2\x82"), r#""\xe2\x82""#);
        assert_eq!(go_quote_bytes("é\u{a0}".as_bytes()), r#""é\u00a0""#);
    }

    /// encoding/json's syntax errors name a byte as Go printed them.
    #[test]
    fn quote_char_like_encoding_json() {
        assert_eq!(quote_char(b'x'), "'x'");
        assert_eq!(quote_char(b'\''), r"'\''");
        assert_eq!(quote_char(b'"'), "'\"'");
        assert_eq!(quote_char(1), r"'\x01'");
        assert_eq!(quote_char(0xff), "'ÿ'");
        assert_eq!(quote_char(b'\\'), r"'\\'");
    }
}
