//! Label selectors: the apimachinery string grammar, parsed by hand, and matching against labels.
//!
//! The grammar, the token rules and the error texts follow `k8s.io/apimachinery/pkg/labels`
//! (`Parse`), because clients show these messages verbatim and tests compare them:
//! `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>5`, `k<5`, comma = AND.

use super::gofmt::go_quote;
use super::meta::{is_label_value, is_qualified_name};
use super::status::ApiError;
use serde_json::{Map, Value};

/// The relation a requirement expresses between a label key and its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One condition on one key. Values are sorted and deduplicated (Go keeps them in a string set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Builds a validated requirement, like Go's `NewRequirement`. The error is the bare Go text
    /// (an aggregate of field errors) without the `unable to parse requirement: ` prefix.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Requirement, String> {
        let mut values = values;
        values.sort();
        values.dedup();
        let mut errs: Vec<String> = Vec::new();
        let key_errs = is_qualified_name(key);
        if !key_errs.is_empty() {
            errs.push(format!(
                "key: Invalid value: {}: {}",
                go_quote(key),
                key_errs.join("; ")
            ));
        }
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                errs.push("values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty".into())
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
                errs.push(format!(
                    "values: Invalid value: {}: exact-match compatibility requires one single value",
                    go_string_slice(&values)
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(format!(
                "values: Invalid value: {}: values set must be empty for exists and does not exist",
                go_string_slice(&values)
            )),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                        go_string_slice(&values)
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(format!(
                            "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                            go_quote(v)
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let v_errs = is_label_value(v);
            if !v_errs.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: {}: {}",
                    go_quote(v),
                    v_errs.join("; ")
                ));
            }
        }
        if errs.is_empty() {
            Ok(Requirement {
                key: key.to_string(),
                operator,
                values,
            })
        } else {
            Err(aggregate(errs))
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted and without duplicates.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, v: &str) -> bool {
        self.values.iter().any(|x| x == v)
    }

    /// Go's `Requirement.Matches`: `!=` and `notin` also match objects *without* the key.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.matches_with(|key| label_in(labels, key))
    }

    /// The same, reading labels through `label` (the cache keeps them outside a JSON tree).
    pub fn matches_with<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        let got = label(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                got.is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => got.is_none_or(|v| !self.has_value(v)),
            Operator::Exists => got.is_some(),
            Operator::DoesNotExist => got.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(have) = got.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let Some(want) = self.values.first().and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let joined = self.values.join(",");
        match self.operator {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::Equals => write!(f, "{}={}", self.key, joined),
            Operator::DoubleEquals => write!(f, "{}=={}", self.key, joined),
            Operator::NotEquals => write!(f, "{}!={}", self.key, joined),
            Operator::GreaterThan => write!(f, "{}>{}", self.key, joined),
            Operator::LessThan => write!(f, "{}<{}", self.key, joined),
            Operator::In => write!(f, "{} in ({})", self.key, joined),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, joined),
        }
    }
}

/// Label `key` of a `metadata.labels` map. A label that is present but not a string cannot come
/// out of a decoded object; its value reads as "" rather than panicking.
fn label_in<'a>(labels: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    labels
        .and_then(|m| m.get(key))
        .map(|v| v.as_str().unwrap_or(""))
}

/// A parsed label selector: the AND of its requirements, sorted by key (as Go does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches everything (the empty string).
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// The AND of `requirements` (a structured `metav1.LabelSelector`, already validated).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Selector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Selector { requirements }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.matches_with(|key| label_in(labels, key))
    }

    /// The same, reading labels through `label`.
    pub fn matches_with<'a>(&self, label: impl Fn(&str) -> Option<&'a str> + Copy) -> bool {
        self.requirements.iter().all(|r| r.matches_with(label))
    }

    /// Matches against `metadata.labels` of a whole object.
    pub fn matches_object(&self, obj: &Value) -> bool {
        let labels = obj
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object);
        self.matches(labels)
    }

    /// Go's `RequiresExactMatch`: the single value the selector demands for `key`, if any.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match r.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In if r.values.len() == 1 => {
                Some(r.values[0].as_str())
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Selector {
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

/// Parses a `labelSelector` parameter. Errors are 400 BadRequest carrying Go's message.
pub fn parse(s: &str) -> Result<Selector, ApiError> {
    parse_selector(s).map_err(ApiError::bad_request)
}

/// The parser proper, returning Go's error text.
pub fn parse_selector(s: &str) -> Result<Selector, String> {
    let tokens = lex(s);
    let mut p = Parser { tokens, pos: 0 };
    let mut requirements = p.parse()?;
    // Go sorts by key (not stably; a stable sort gives the same result for distinct keys).
    requirements.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Selector { requirements })
}

// ---------------------------------------------------------------------------------------------
// Lexer. It works on bytes like Go's: every special symbol and blank is ASCII, so identifiers are
// always slices of the input at char boundaries.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    lit: String,
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn symbol_token(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

/// Splits the whole input into tokens, ending with exactly one `End`.
fn lex(s: &str) -> Vec<Token> {
    let bytes = s.as_bytes();
    let mut pos = 0usize;
    let mut out = Vec::new();
    loop {
        while pos < bytes.len() && is_blank(bytes[pos]) {
            pos += 1;
        }
        // Go's reader returns 0 at the end of input, so a NUL byte also ends the selector.
        if pos >= bytes.len() || bytes[pos] == 0 {
            out.push(Token {
                tok: Tok::End,
                lit: String::new(),
            });
            return out;
        }
        if is_special(bytes[pos]) {
            // Longest run of symbols that still forms a known token ("!=", "=="), else the
            // shortest one ("=" in "=!", "(" in "()"). Every single symbol is a token.
            let start = pos;
            let mut best: Option<(Tok, usize)> = None;
            while pos < bytes.len() && is_special(bytes[pos]) {
                match symbol_token(&s[start..=pos]) {
                    Some(t) => {
                        best = Some((t, pos + 1));
                        pos += 1;
                    }
                    None => break,
                }
            }
            // `best` is always set because the first byte is itself a token.
            let (tok, end) = best.unwrap_or((Tok::Identifier, start + 1));
            pos = end;
            // Go's symbol scanner stops on a NUL by reading it, so the NUL is skipped.
            if pos < bytes.len() && bytes[pos] == 0 {
                pos += 1;
            }
            out.push(Token {
                tok,
                lit: s[start..end].to_string(),
            });
        } else {
            let start = pos;
            while pos < bytes.len()
                && bytes[pos] != 0
                && !is_special(bytes[pos])
                && !is_blank(bytes[pos])
            {
                pos += 1;
            }
            let lit = &s[start..pos];
            // A NUL inside an identifier ends it and is swallowed (Go reads it and stops).
            if pos < bytes.len() && bytes[pos] == 0 {
                pos += 1;
            }
            let tok = match symbol_token(lit) {
                Some(t) => t,
                None => Tok::Identifier,
            };
            out.push(Token {
                tok,
                lit: lit.to_string(),
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser: recursive descent over the token list, with Go's two contexts (in the "values" context
// the words `in` and `notin` are ordinary identifiers, so `in in (in)` is a valid selector).

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn at(&self, i: usize, ctx: Ctx) -> (Tok, String) {
        // The list always ends with End and parsing never goes past it; clamp for safety.
        let t = &self.tokens[i.min(self.tokens.len() - 1)];
        let tok = match (ctx, t.tok) {
            (Ctx::Values, Tok::In | Tok::NotIn) => Tok::Identifier,
            (_, tok) => tok,
        };
        (tok, t.lit.clone())
    }

    fn lookahead(&self, ctx: Ctx) -> (Tok, String) {
        self.at(self.pos, ctx)
    }

    fn consume(&mut self, ctx: Ctx) -> (Tok, String) {
        let r = self.at(self.pos, ctx);
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        r
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Ctx::Values);
            match tok {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Ctx::Values);
                    match t {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Ctx::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, unary) = self.key_and_inferred_operator()?;
        if let Some(op) = unary {
            return Requirement::new(&key, op, Vec::new());
        }
        let op = self.operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, op, values)
    }

    /// Reads `[!]KEY`; returns the unary operator when one applies (`!k`, or `k` followed by
    /// `,`/end).
    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut op = None;
        let (mut tok, mut lit) = self.consume(Ctx::Values);
        if tok == Tok::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Ctx::Values);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let errs = is_qualified_name(&lit);
        if !errs.is_empty() {
            // Go validates the key against a nil field path here, hence the "<nil>" prefix.
            return Err(format!(
                "<nil>: Invalid value: {}: {}",
                go_quote(&lit),
                errs.join("; ")
            ));
        }
        let (next, _) = self.lookahead(Ctx::Values);
        if (next == Tok::End || next == Tok::Comma) && op.is_none() {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.consume(Ctx::KeyAndOperator);
        Ok(match tok {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{lit}', expected: {BINARY_OPERATORS}")),
        })
    }

    /// `( v1, v2, ... )`; empty members are the empty string, `()` is `{""}`.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Ctx::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Ctx::Values);
        match tok {
            Tok::Identifier | Tok::Comma => {
                let set = self.identifier_list()?;
                let (tok, _) = self.consume(Ctx::Values);
                if tok != Tok::ClosedPar {
                    // Go reports the token seen *before* the list here.
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set)
            }
            Tok::ClosedPar => {
                self.consume(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn identifier_list(&mut self) -> Result<Vec<String>, String> {
        let mut set: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.consume(Ctx::Values);
            match tok {
                Tok::Identifier => {
                    set.push(lit);
                    let (t2, l2) = self.lookahead(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(set),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        set.push(String::new()); // "(,"
                    }
                    let (t2, _) = self.lookahead(Ctx::Values);
                    if t2 == Tok::ClosedPar {
                        set.push(String::new()); // ",)"
                        return Ok(set);
                    }
                    if t2 == Tok::Comma {
                        self.consume(Ctx::Values);
                        set.push(String::new()); // ",,"
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    /// The value after `=`, `==`, `!=`, `>`, `<`; nothing before `,`/end means "".
    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Ctx::Values);
        if tok == Tok::End || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Ctx::Values);
        if tok == Tok::Identifier {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

/// Go's `utilerrors.Aggregate` text: one error bare, several as `[e1, e2]` without repeats.
fn aggregate(errs: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    if seen.len() == 1 {
        seen.remove(0)
    } else {
        format!("[{}]", seen.join(", "))
    }
}

/// `%#v` of a `[]string`, for the (unreachable from the parser) value-count errors.
fn go_string_slice(v: &[String]) -> String {
    format!(
        "[]string{{{}}}",
        v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apimachinery::status::Reason;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn sel(s: &str) -> Selector {
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
    fn empty_selects_everything() {
        for s in ["", "   ", "\t\n"] {
            let x = sel(s);
            assert!(x.is_empty());
            assert!(x.matches(None));
            assert!(x.matches(Some(&labels(json!({"a": "b"})))));
            assert_eq!(x.to_string(), "");
        }
    }

    #[test]
    fn every_operator() {
        let l = labels(json!({"env": "prod", "tier": "web", "n": "7"}));
        let cases: &[(&str, bool)] = &[
            ("env=prod", true),
            ("env=dev", false),
            ("env==prod", true),
            ("env!=prod", false),
            ("env!=dev", true),
            ("missing!=x", true),
            ("env in (dev,prod)", true),
            ("env in (dev)", false),
            ("missing in (x)", false),
            ("env notin (dev,prod)", false),
            ("env notin (dev)", true),
            ("missing notin (x)", true),
            ("env", true),
            ("missing", false),
            ("!env", false),
            ("!missing", true),
            ("n>5", true),
            ("n>7", false),
            ("n<8", true),
            ("n<7", false),
            ("env>5", false),
            ("missing<5", false),
            ("env=prod,tier=web", true),
            ("env=prod,tier=db", false),
        ];
        for (s, want) in cases {
            assert_eq!(sel(s).matches(Some(&l)), *want, "{s}");
        }
        assert!(sel("a!=b").matches(None));
        assert!(!sel("a=b").matches(None));
    }

    #[test]
    fn operator_kinds_and_values() {
        let x = sel("b in (z,y,z), a notin (q), !c, d, e==f, g<3");
        let ops: Vec<(String, Operator, Vec<String>)> = x
            .requirements()
            .iter()
            .map(|r| (r.key().to_string(), r.operator(), r.values().to_vec()))
            .collect();
        assert_eq!(
            ops,
            vec![
                ("a".into(), Operator::NotIn, vec!["q".into()]),
                ("b".into(), Operator::In, vec!["y".into(), "z".into()]),
                ("c".into(), Operator::DoesNotExist, vec![]),
                ("d".into(), Operator::Exists, vec![]),
                ("e".into(), Operator::DoubleEquals, vec!["f".into()]),
                ("g".into(), Operator::LessThan, vec!["3".into()]),
            ]
        );
    }

    #[test]
    fn canonical_string() {
        assert_eq!(
            sel("  z = 1 ,a in ( c , b ),!x,y,w!=2, v==3, u>4 , t<5").to_string(),
            "a in (b,c),t<5,u>4,v==3,w!=2,!x,y,z=1"
        );
        assert_eq!(sel("k notin (b,a)").to_string(), "k notin (a,b)");
        assert_eq!(sel("k in ()").to_string(), "k in ()");
        assert_eq!(
            sel("x in (foo,,baz),y,z notin ()").to_string(),
            "x in (,baz,foo),y,z notin ()"
        );
    }

    #[test]
    fn whitespace_and_empty_values() {
        assert_eq!(sel("a\t=\nb").to_string(), "a=b");
        assert_eq!(sel("a=").requirements()[0].values(), &[String::new()]);
        assert_eq!(sel("a==").requirements()[0].values(), &[String::new()]);
        assert_eq!(sel("a=,b").requirements().len(), 2);
        assert!(sel("a=").matches(Some(&labels(json!({"a": ""})))));
        assert_eq!(sel("k in (,)").requirements()[0].values(), &[String::new()]);
        assert_eq!(
            sel("k in (a,)").requirements()[0].values(),
            &["".to_string(), "a".to_string()]
        );
    }

    #[test]
    fn keywords_as_keys_and_values() {
        let x = sel("in in (in,notin)");
        assert_eq!(x.requirements()[0].key(), "in");
        assert!(x.matches(Some(&labels(json!({"in": "notin"})))));
        assert_eq!(sel("notin=in").to_string(), "notin=in");
    }

    #[test]
    fn prefixed_keys() {
        let x = sel("example.com/app=web,app.kubernetes.io/name");
        assert_eq!(x.requirements()[0].key(), "app.kubernetes.io/name");
        assert_eq!(x.to_string(), "app.kubernetes.io/name,example.com/app=web");
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(
            err("a in (b"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            err("=b"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(err("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(err("a,,b"), "found ',', expected: identifier after ','");
        assert_eq!(
            err("a in b"),
            "unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(
            err("a in (b c)"),
            "unable to parse requirement: found 'c', expected: ',' or ')'"
        );
        assert_eq!(
            err("a in (="),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            err("a in (,="),
            "unable to parse requirement: found '=', expected: ',', or identifier"
        );
        assert_eq!(
            err("a===b"),
            "unable to parse requirement: found '=', expected: identifier"
        );
        assert_eq!(
            err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(err("!a=b"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(
            err(","),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err("(a)"),
            "found '(', expected: !, identifier, or 'end of string'"
        );
    }

    #[test]
    fn bad_keys() {
        let e = err("a b/c/d=x");
        assert!(
            e.starts_with("unable to parse requirement: found 'b/c/d'"),
            "{e}"
        );
        let e = err("a/b/c=x");
        assert_eq!(
            e,
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        );
        let e = err("-a=x");
        assert!(e.starts_with("unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of"), "{e}");
        let e = err("Bad_Prefix/a=x");
        assert!(
            e.contains("prefix part a lowercase RFC 1123 subdomain"),
            "{e}"
        );
        let e = err("/a");
        assert!(e.contains("prefix part must be non-empty"), "{e}");
        let long = "k".repeat(64);
        let e = err(&format!("{long}=x"));
        assert!(e.contains("name part must be no more than 63 bytes"), "{e}");
        let e = err("é=x");
        assert!(e.contains("Invalid value: \"é\""), "{e}");
    }

    #[test]
    fn bad_values() {
        let long = "v".repeat(64);
        let e = err(&format!("a={long}"));
        assert_eq!(
            e,
            format!(
                "unable to parse requirement: values[0][a]: Invalid value: \"{long}\": must be no more than 63 bytes"
            )
        );
        let e = err("a=-x");
        assert!(e.starts_with("unable to parse requirement: values[0][a]: Invalid value: \"-x\": a valid label must be"), "{e}");
        let e = err("a in (ok,b@d)");
        assert!(e.contains("values[0][a]: Invalid value: \"b@d\""), "{e}");
        assert_eq!(
            err("a>b"),
            "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        let e = err("a<-");
        assert!(
            e.starts_with(
                "unable to parse requirement: [values[0]: Invalid value: \"-\": for 'Gt'"
            ),
            "{e}"
        );
        assert!(
            e.contains(", values[0][a]: Invalid value: \"-\": a valid label"),
            "{e}"
        );
        assert!(e.ends_with(']'), "{e}");
        assert!(parse_selector("a>99999999999999999999").is_err());
    }

    #[test]
    fn nul_bytes_like_go() {
        // Go's reader yields 0 at the end of input, so a NUL where a token starts ends the
        // selector, a NUL inside a token just ends that token.
        assert_eq!(sel("a=b \0garbage").to_string(), "a=b");
        assert_eq!(err("a=b\0c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(sel("a=\0b").to_string(), "a=b");
    }

    #[test]
    fn parse_gives_bad_request() {
        let e = match parse("a in (b") {
            Err(e) => e,
            Ok(_) => panic!("must fail"),
        };
        assert_eq!(e.code, 400);
        assert_eq!(e.reason, Reason::BadRequest);
        assert!(e.message.starts_with("unable to parse requirement"));
    }

    #[test]
    fn matches_object_reads_metadata_labels() {
        let obj = json!({"metadata": {"name": "x", "labels": {"a": "1"}}});
        assert!(sel("a=1").matches_object(&obj));
        assert!(!sel("a=2").matches_object(&obj));
        assert!(sel("b!=1").matches_object(&json!({"metadata": {}})));
        assert!(!sel("b").matches_object(&json!({})));
        assert!(!sel("a=1").matches_object(&json!({"metadata": {"labels": {"a": 1}}})));
    }

    #[test]
    fn exact_match_introspection() {
        let x = sel("a=1,b in (2),c in (3,4),d!=5");
        assert_eq!(x.requires_exact_match("a"), Some("1"));
        assert_eq!(x.requires_exact_match("b"), Some("2"));
        assert_eq!(x.requires_exact_match("c"), None);
        assert_eq!(x.requires_exact_match("d"), None);
        assert_eq!(x.requires_exact_match("z"), None);
    }
}
