//! Kubernetes' CEL URL library (`k8s.io/apiserver/pkg/cel/library/urls.go`) with Go's
//! `net/url` semantics, which the WHATWG parser of the `url` crate does not have: the host
//! and port are kept as written (`https://x:443` keeps `:443`, `A.com` keeps its case), and a
//! scheme-less path such as `/a/b` is a URL. `url(s)` and `isURL(s)` accept what Go's
//! `url.ParseRequestURI` accepts; the parts are then those of `url.Parse` (fragment dropped).

use std::collections::HashMap;

use cel::common::types::{CelBool, CelList, CelMap, CelMapKey, CelString, Type};
use cel::common::value::Val;
use cel::{DeclarationError, Env, ExecutionError};

/// The CEL type of URLs, named as in Go.
pub static URL_TYPE: Type = Type::new_unspecified_type("kubernetes.URL");

/// The parts of a parsed URL the library exposes (Go's `url.URL` fields).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Url {
    scheme: String,
    /// `host[:port]` as written, userinfo removed.
    host: String,
    /// The path as written (still escaped); empty for an opaque URL such as `mailto:x`.
    raw_path: String,
    /// The unescaped path.
    path: String,
    raw_query: String,
}

/// Go's `url.ParseRequestURI` then `url.Parse`; errors are Go's messages.
pub fn parse(s: &str) -> Result<Url, String> {
    let fail =
        |e: String| format!("URL parse error during conversion from string: parse {s:?}: {e}");
    parse_go(s, true).map_err(fail)?;
    let without_fragment = s.split_once('#').map_or(s, |(u, _)| u);
    parse_go(without_fragment, false).map_err(fail)
}

/// Go's `url.ParseRequestURI(s)` error text, if `s` is not a request URI.
pub fn parse_request_uri_error(s: &str) -> Option<String> {
    parse_go(s, true).err().map(|e| format!("parse {s:?}: {e}"))
}

/// Go's `net/url.parse(rawURL, viaRequest)`.
fn parse_go(raw: &str, via_request: bool) -> Result<Url, String> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    if raw.is_empty() && via_request {
        return Err("empty url".into());
    }
    let mut u = Url::default();
    if raw == "*" {
        u.path = "*".into();
        u.raw_path = "*".into();
        return Ok(u);
    }
    let (scheme, mut rest) = split_scheme(raw)?;
    u.scheme = scheme.to_ascii_lowercase();
    if rest.ends_with('?') && rest.matches('?').count() == 1 {
        rest = &rest[..rest.len() - 1];
    } else if let Some((r, q)) = rest.split_once('?') {
        rest = r;
        u.raw_query = q.to_string();
    }
    if !rest.starts_with('/') {
        if !u.scheme.is_empty() {
            return Ok(u); // opaque: `mailto:x`
        }
        if via_request {
            return Err("invalid URI for request".into());
        }
        let segment = rest.split_once('/').map_or(rest, |(s, _)| s);
        if segment.contains(':') {
            return Err("first path segment in URL cannot contain colon".into());
        }
    }
    if (!u.scheme.is_empty() || !via_request && !rest.starts_with("///")) && rest.starts_with("//")
    {
        let after = &rest[2..];
        let end = after.find('/').unwrap_or(after.len());
        let authority = &after[..end];
        rest = &after[end..];
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        u.host = parse_host(host)?;
    }
    u.path = unescape(rest, false)?;
    u.raw_path = rest.to_string();
    Ok(u)
}

/// Go's `getScheme`: a scheme is a letter then letters, digits, `+-.`, ending at `:`.
fn split_scheme(raw: &str) -> Result<(&str, &str), String> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return Err("missing protocol scheme".into()),
            b':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

/// Go's `parseHost`: an optional `:digits` port, a bracketed IPv6 literal (with `%25` zone),
/// and only the characters a host may hold (bytes >= 0x80 allowed, escapes checked); the host
/// comes back unescaped, as Go keeps it (`[fe80::1%25en0]` is `[fe80::1%en0]`).
fn parse_host(host: &str) -> Result<String, String> {
    let valid_port = |p: &str| {
        p.is_empty()
            || p.strip_prefix(':')
                .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
    };
    if host.starts_with('[') {
        let i = host.rfind(']').ok_or("missing ']' in host")?;
        if !valid_port(&host[i + 1..]) {
            return Err(format!("invalid port {:?} after host", &host[i + 1..]));
        }
        let literal = &host[1..i];
        let address = literal.split_once("%25").map_or(literal, |(a, _)| a);
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("invalid IP-literal {:?}", &host[..=i]));
        }
    } else if let Some(i) = host.rfind(':')
        && !valid_port(&host[i..])
    {
        return Err(format!("invalid port {:?} after host", &host[i..]));
    }
    unescape(host, true)
}

/// Go's `unescape` in path mode, or in host mode (`host`), where only `%25` may be escaped
/// below 0x80 and characters outside the host set are errors.
fn unescape(s: &str, host: bool) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
                let Some(hex) = hex else {
                    let end = (i + 3).min(b.len());
                    return Err(format!(
                        "invalid URL escape {:?}",
                        String::from_utf8_lossy(&b[i..end])
                    ));
                };
                let byte =
                    u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("00"), 16).unwrap_or(0);
                if host && byte < 0x80 && &b[i..i + 3] != b"%25" {
                    return Err(format!("invalid URL escape {:?}", &s[i..i + 3]));
                }
                out.push(byte);
                i += 3;
            }
            c => {
                if host && c < 0x80 && !host_char(c) {
                    return Err(format!(
                        "invalid character {:?} in host name",
                        (c as char).to_string()
                    ));
                }
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn host_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]<>\"".contains(&c)
}

/// Go's `shouldEscape(c, encodePath)`.
fn path_escapes(c: u8) -> bool {
    !(c.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&c))
}

impl Url {
    /// Go's `URL.Hostname`: the host without port and brackets.
    fn hostname(&self) -> &str {
        let (h, _) = self.split_port();
        h.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h)
    }

    /// Go's `URL.Port`: the digits after the last `:` (empty without one).
    fn port(&self) -> &str {
        self.split_port().1
    }

    fn split_port(&self) -> (&str, &str) {
        match self.host.rfind(':') {
            Some(i) if self.host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
                (&self.host[..i], &self.host[i + 1..])
            }
            _ => (&self.host, ""),
        }
    }

    /// Go's `URL.EscapedPath`: the path as written when that is validly escaped, else the
    /// path escaped anew.
    fn escaped_path(&self) -> String {
        let valid = self
            .raw_path
            .bytes()
            .all(|c| b"!$&'()*+,;=:@[]%".contains(&c) || !path_escapes(c));
        if valid {
            return self.raw_path.clone();
        }
        let mut out = String::new();
        for c in self.path.bytes() {
            if path_escapes(c) {
                out.push_str(&format!("%{c:02X}"));
            } else {
                out.push(c as char);
            }
        }
        out
    }

    /// Go's `URL.Query`: `&`-separated `key=value` pairs, `+` as space, percent-decoded; a
    /// pair with `;` or a bad escape is skipped. Values keep their order.
    fn query(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for pair in self
            .raw_query
            .split('&')
            .filter(|p| !p.is_empty() && !p.contains(';'))
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| unescape(&s.replace('+', " "), false);
            let (Ok(k), Ok(v)) = (decode(k), decode(v)) else {
                continue;
            };
            match out.iter_mut().find(|(key, _)| *key == k) {
                Some((_, values)) => values.push(v),
                None => out.push((k, vec![v])),
            }
        }
        out
    }
}

opaque_val!(Url, URL_TYPE);

fn url(s: &CelString<'_>) -> Result<Url, ExecutionError> {
    parse(s.inner()).map_err(|e| ExecutionError::function_error("url", e))
}

fn is_url(s: &CelString<'_>) -> CelBool {
    parse_go(s.inner(), true).is_ok().into()
}

fn get_scheme(u: &Url) -> CelString<'static> {
    u.scheme.clone().into()
}

fn get_host(u: &Url) -> CelString<'static> {
    u.host.clone().into()
}

fn get_hostname(u: &Url) -> CelString<'static> {
    u.hostname().to_string().into()
}

fn get_port(u: &Url) -> CelString<'static> {
    u.port().to_string().into()
}

fn get_escaped_path(u: &Url) -> CelString<'static> {
    u.escaped_path().into()
}

fn get_query(u: &Url) -> CelMap<'static> {
    let map: HashMap<CelMapKey<'static>, Box<dyn Val>> = u
        .query()
        .into_iter()
        .map(|(k, values)| {
            let values: Vec<Box<dyn Val>> = values
                .into_iter()
                .map(|v| Box::new(CelString::from(v)) as Box<dyn Val>)
                .collect();
            (
                CelMapKey::from(k),
                Box::new(CelList::from(values)) as Box<dyn Val>,
            )
        })
        .collect();
    CelMap::from(map)
}

/// Registers Go's URL library: `url(string)`, `isURL(string)`, and the methods `getScheme
/// getHost getHostname getPort getEscapedPath getQuery` (the query as `map(string,
/// list(string))`).
pub fn library(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(URL_TYPE.to_owned())?;
    cel::add_overload!(env, fn url: (CelString) -> Result<Url>)?;
    cel::add_overload!(env, fn is_url: (CelString) -> CelBool, name = "isURL")?;
    cel::add_member_overload!(env, fn get_scheme: (Url) -> CelString)?;
    cel::add_member_overload!(env, fn get_host: (Url) -> CelString)?;
    cel::add_member_overload!(env, fn get_hostname: (Url) -> CelString)?;
    cel::add_member_overload!(env, fn get_port: (Url) -> CelString)?;
    cel::add_member_overload!(env, fn get_escaped_path: (Url) -> CelString)?;
    cel::add_member_overload!(env, fn get_query: (Url) -> CelMap)?;
    Ok(())
}
