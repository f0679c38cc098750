//! Field selectors: metadata.name and metadata.namespace with =, ==, !=.
//!
//! Parsing follows `k8s.io/apimachinery/pkg/fields` (`ParseSelector`: split on unescaped commas,
//! sort the terms, split each at the first `!=`/`==`/`=`, unescape `\\`, `\,`, `\=` in values),
//! then Go's default field-label conversion, which knows only the two metadata fields.

use super::gofmt::go_quote;
use super::status::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOp {
    /// `=` or `==` (Go keeps no difference between them).
    Equals,
    NotEquals,
}

/// One `field op value` term; the value is unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub op: FieldOp,
    pub value: String,
}

impl FieldRequirement {
    fn matches(&self, namespace: &str, name: &str) -> bool {
        let have = if self.field == "metadata.name" {
            name
        } else {
            namespace
        };
        match self.op {
            FieldOp::Equals => have == self.value,
            FieldOp::NotEquals => have != self.value,
        }
    }
}

impl std::fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            FieldOp::Equals => "=",
            FieldOp::NotEquals => "!=",
        };
        write!(f, "{}{}{}", self.field, op, escape_value(&self.value))
    }
}

/// A parsed field selector: the AND of its terms, in Go's (sorted-by-text) order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    pub fn matches(&self, namespace: &str, name: &str) -> bool {
        self.requirements.iter().all(|r| r.matches(namespace, name))
    }

    /// The value of the first `metadata.name=`/`==` term (Go's `RequiresExactMatch`).
    pub fn name_equals(&self) -> Option<&str> {
        self.exact("metadata.name")
    }

    /// The value of the first `metadata.namespace=`/`==` term.
    pub fn namespace_equals(&self) -> Option<&str> {
        self.exact("metadata.namespace")
    }

    fn exact(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.op == FieldOp::Equals)
            .map(|r| r.value.as_str())
    }
}

impl std::fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Parses a `fieldSelector` parameter. Errors are 400 BadRequest with Go's message.
pub fn parse(s: &str) -> Result<FieldSelector, ApiError> {
    parse_selector(s).map_err(ApiError::bad_request)
}

/// The parser proper, returning Go's error text.
pub fn parse_selector(s: &str) -> Result<FieldSelector, String> {
    let mut terms = split_terms(s);
    terms.sort();
    let mut requirements = Vec::new();
    for term in terms {
        if term.is_empty() {
            continue;
        }
        let Some((field, op, raw)) = split_term(term) else {
            return Err(format!(
                "invalid selector: '{s}'; can't understand '{term}'"
            ));
        };
        let value = unescape_value(raw)?;
        requirements.push(FieldRequirement {
            field: field.to_string(),
            op,
            value,
        });
    }
    // Go's DefaultMetaV1FieldSelectorConversion, applied after parsing (so syntax errors win).
    for r in &requirements {
        if r.field != "metadata.name" && r.field != "metadata.namespace" {
            return Err(format!(
                "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                go_quote(&r.field)
            ));
        }
    }
    Ok(FieldSelector { requirements })
}

/// Splits on commas that are not escaped by a backslash; escapes stay in the terms.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    if s.is_empty() {
        return out;
    }
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// Splits at the first operator; at one position `!=` wins over `==` over `=`. The field part
/// is not unescaped (Go doesn't either).
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (tok, op) in [
            ("!=", FieldOp::NotEquals),
            ("==", FieldOp::Equals),
            ("=", FieldOp::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(tok) {
                return Some((&term[..i], op, value));
            }
        }
    }
    None
}

/// Go's `UnescapeValue`: `\\`, `\,`, `\=` are the only escapes; bare `,`/`=` are errors.
pub fn unescape_value(s: &str) -> Result<String, String> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    ));
                }
            }
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            // Go prints the rune with %v, i.e. as its number.
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ));
            }
            _ => out.push(c),
        }
    }
    if escaped {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// Go's `EscapeValue`: the inverse of `unescape_value`.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> FieldSelector {
        match parse_selector(s) {
            Ok(x) => x,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn err(s: &str) -> String {
        match parse_selector(s) {
            Ok(x) => panic!("{s:?} should fail, got {x}"),
            Err(e) => e,
        }
    }

    #[test]
    fn empty_matches_everything() {
        for s in ["", ",", ",,"] {
            let x = sel(s);
            assert!(x.is_empty());
            assert!(x.matches("ns", "n"));
            assert_eq!(x.name_equals(), None);
        }
    }

    #[test]
    fn operators() {
        assert!(sel("metadata.name=a").matches("ns", "a"));
        assert!(!sel("metadata.name=a").matches("ns", "b"));
        assert!(sel("metadata.name==a").matches("ns", "a"));
        assert!(sel("metadata.name!=a").matches("ns", "b"));
        assert!(!sel("metadata.name!=a").matches("ns", "a"));
        assert!(sel("metadata.namespace=ns").matches("ns", "x"));
        assert!(sel("metadata.namespace=").matches("", "x"));
        assert!(!sel("metadata.namespace=").matches("ns", "x"));
        let x = sel("metadata.namespace=ns,metadata.name!=a");
        assert!(x.matches("ns", "b"));
        assert!(!x.matches("ns", "a"));
        assert!(!x.matches("other", "b"));
    }

    #[test]
    fn requirements_and_string() {
        let x = sel("metadata.namespace==ns,metadata.name!=a");
        assert_eq!(
            x.requirements(),
            &[
                FieldRequirement {
                    field: "metadata.name".into(),
                    op: FieldOp::NotEquals,
                    value: "a".into()
                },
                FieldRequirement {
                    field: "metadata.namespace".into(),
                    op: FieldOp::Equals,
                    value: "ns".into()
                },
            ]
        );
        assert_eq!(x.to_string(), "metadata.name!=a,metadata.namespace=ns");
        assert_eq!(x.namespace_equals(), Some("ns"));
        assert_eq!(x.name_equals(), None);
    }

    #[test]
    fn name_equals() {
        assert_eq!(sel("metadata.name=x").name_equals(), Some("x"));
        assert_eq!(
            sel("metadata.name==x,metadata.namespace=y").name_equals(),
            Some("x")
        );
        assert_eq!(sel("metadata.name!=x").name_equals(), None);
    }

    #[test]
    fn escaping() {
        let x = sel(r"metadata.name=a\,b\=c\\d");
        assert_eq!(x.name_equals(), Some(r"a,b=c\d"));
        assert!(x.matches("", r"a,b=c\d"));
        assert_eq!(x.to_string(), r"metadata.name=a\,b\=c\\d");
        assert_eq!(escape_value(r"a,b=c\d"), r"a\,b\=c\\d");
        // The first operator splits; `!` is no escape.
        assert_eq!(
            err(r"metadata.name=a\!b"),
            r"invalid field selector: invalid escape sequence: \!"
        );
        assert_eq!(
            err(r"metadata.name=a\"),
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(
            err("metadata.name=a=b"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(sel("metadata.name=a!b").name_equals(), Some("a!b"));
    }

    #[test]
    fn unknown_fields() {
        assert_eq!(
            err("spec.x=1"),
            r#""spec.x" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        // Go does not trim blanks around the field.
        assert_eq!(
            err("metadata.name =a"),
            r#""metadata.name " is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        assert_eq!(
            err("=a"),
            r#""" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(
            err("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            err("metadata.name=a,bogus"),
            "invalid selector: 'metadata.name=a,bogus'; can't understand 'bogus'"
        );
        let e = match parse("x") {
            Err(e) => e,
            Ok(_) => panic!("must fail"),
        };
        assert_eq!((e.code, &*e.reason), (400, "BadRequest"));
    }
}
