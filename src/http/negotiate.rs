//! Content negotiation: Accept (json, yaml, Table, PartialObjectMetadata) and request Content-Type.
//!
//! Mirrors Go's `negotiation.NegotiateOutputMediaType`: Accept clauses are ordered the way
//! goautoneg orders them, and the first clause this server can honour wins. Clauses we cannot
//! serve (protobuf, cbor, text/html, an unknown `as=`) are skipped rather than rejected, because
//! every real client lists a JSON fallback after them; only when nothing is left do we answer 406.

use crate::apimachinery::status::ApiError;
use serde_json::Value;

/// The media types Go's server advertises; its 406/415 messages list exactly these.
const GO_MEDIA_TYPES: &str =
    "application/json, application/yaml, application/vnd.kubernetes.protobuf";

pub const JSON: &str = "application/json";
pub const YAML: &str = "application/yaml";

/// How a response body is serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// The response `Content-Type` (plain, even for Table/PartialObjectMetadata, as in Go).
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON,
            Format::Yaml => YAML,
        }
    }
}

/// What the object is turned into before encoding (`as=` in the Accept header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Object,
    Table,
    PartialObjectMetadata,
    PartialObjectMetadataList,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub format: Format,
    pub target: Target,
    /// meta.k8s.io version of a Table/PartialObjectMetadata target (`v1` or `v1beta1`); "" for objects.
    pub target_version: &'static str,
}

/// One clause of an Accept header, after goautoneg-style parsing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Clause {
    pub typ: String,
    pub subtype: String,
    /// The quality, for ordering; an unparsable `q` orders as 0, as in goautoneg.
    pub q: f64,
    /// `q` was given as the number 0: the client refuses this type (see `refused`).
    pub q_zero: bool,
    /// Parameters other than `q`, names lowercased, values as sent.
    pub params: Vec<(String, String)>,
}

impl Clause {
    /// Does the client refuse this type? Only an explicit `q=0` does (RFC 9110, README
    /// `accept-q-zero`); garbage such as `q=abc` refuses nothing: Go ignores q values and serves
    /// the type.
    pub fn refused(&self) -> bool {
        self.q_zero
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Does the clause's type/subtype (with wildcards) cover `typ/subtype`?
    pub fn matches(&self, typ: &str, subtype: &str) -> bool {
        (self.typ == "*" && self.subtype == "*")
            || (self.typ == typ && (self.subtype == "*" || self.subtype == subtype))
    }
}

/// `(type, subtype, parameters)` of a parsed media type.
pub(crate) type MediaType = (String, String, Vec<(String, String)>);

/// Parse one media type like Go's `mime.ParseMediaType`: lowercased type and parameter names,
/// optional quoted values; `None` for anything malformed (Go skips such clauses).
pub(crate) fn parse_media_type(s: &str) -> Option<MediaType> {
    let mut parts = split_params(s)?.into_iter();
    let full = parts.next()?.trim().to_ascii_lowercase();
    let (typ, subtype) = match full.split_once('/') {
        Some((t, st)) => (t.trim().to_string(), st.trim().to_string()),
        // goautoneg accepts a bare "*" as "*/*".
        None if full == "*" => ("*".to_string(), "*".to_string()),
        None => return None,
    };
    if typ.is_empty() || subtype.is_empty() || !is_token(&typ) || !is_token(&subtype) {
        return None;
    }
    let mut params: Vec<(String, String)> = Vec::new();
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let (k, v) = p.split_once('=')?;
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim();
        let v = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
            v[1..v.len() - 1].replace("\\\"", "\"")
        } else {
            if !is_token(v) {
                return None;
            }
            v.to_string()
        };
        if k.is_empty() || !is_token(&k) || params.iter().any(|(pk, _)| *pk == k) {
            return None;
        }
        params.push((k, v));
    }
    Some((typ, subtype, params))
}

/// Split on `;` outside double quotes.
fn split_params(s: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    out.push(&s[start..]);
    Some(out)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?=".contains(c))
}

/// Parse an Accept header the way goautoneg's `ParseAccept` does, which every Go negotiation
/// here uses (resources, discovery, OpenAPI): clauses split on `,`, only spaces trimmed, a type
/// without a subtype skipped unless it is `*`; parameters split on `;`, one without exactly one
/// `=` skipped, names and values case-sensitive and unquoted, the last of a repeated name kept.
/// `q` that does not parse orders as 0 but refuses nothing (see `Clause::refused`).
/// Then goautoneg's order: its comparator (higher q first, then concrete types before
/// wildcards) applied with an insertion sort, which is what Go's `sort.Sort` runs for headers
/// of realistic length. This keeps the client's order otherwise.
pub(crate) fn parse_accept(header: &str) -> Vec<Clause> {
    let trim = |s: &str| s.trim_matches(' ').to_string();
    let mut clauses: Vec<Clause> = header
        .split(',')
        .filter_map(|part| {
            let part = part.trim_matches(' ');
            let (media, params) = part.split_once(';').unwrap_or((part, ""));
            let (t, st) = media.split_once('/').unwrap_or((media, ""));
            let typ = trim(t);
            let subtype = match st.split_once('/') {
                _ if st.is_empty() && typ == "*" => "*".to_string(),
                _ if st.is_empty() => return None,
                // `a/b/` is a/b; `a/b/c` nothing.
                Some((_, more)) if !more.is_empty() => return None,
                Some((sub, _)) => trim(sub),
                None => trim(st),
            };
            let (mut q, mut q_zero) = (1.0, false);
            let mut rest: Vec<(String, String)> = Vec::new();
            for param in params.split(';') {
                let Some((name, value)) = param.split_once('=') else {
                    continue;
                };
                if value.is_empty() || value.contains('=') {
                    continue;
                }
                let name = trim(name);
                if name == "q" {
                    // Go's ParseFloat(value, 32), its error ignored: garbage is 0.
                    let parsed = value.parse::<f32>().ok().map(f64::from);
                    q = parsed.unwrap_or(0.0);
                    q_zero = parsed == Some(0.0);
                } else {
                    rest.retain(|(k, _)| *k != name);
                    rest.push((name, trim(value)));
                }
            }
            Some(Clause {
                typ,
                subtype,
                q,
                q_zero,
                params: rest,
            })
        })
        .collect();
    let less = |a: &Clause, b: &Clause| {
        a.q > b.q || (a.typ != "*" && b.typ == "*") || (a.subtype != "*" && b.subtype == "*")
    };
    for i in 1..clauses.len() {
        let mut j = i;
        while j > 0 && less(&clauses[j], &clauses[j - 1]) {
            clauses.swap(j, j - 1);
            j -= 1;
        }
    }
    clauses
}

/// The serializers this server has, in Go's preference order (JSON first: `*/*` means JSON).
const SERIALIZERS: [(&str, &str, Format); 2] = [
    ("application", "json", Format::Json),
    ("application", "yaml", Format::Yaml),
];

/// What one clause asks for, if this server can produce it for this kind of endpoint.
fn accept_clause(c: &Clause) -> Option<Negotiated> {
    if c.refused() {
        return None;
    }
    for (typ, subtype, format) in SERIALIZERS {
        if !c.matches(typ, subtype) {
            continue;
        }
        // Only `stream=watch` is a known stream schema; anything else makes the clause unusable.
        if let Some(s) = c.param("stream")
            && !s.is_empty()
            && s != "watch"
        {
            return None;
        }
        let (kind, group, version) = (
            c.param("as"),
            c.param("g").unwrap_or(""),
            c.param("v").unwrap_or(""),
        );
        let Some(kind) = kind else {
            if c.param("g").is_some() || c.param("v").is_some() {
                // A conversion target without a kind is an empty GVK, which no endpoint allows.
                return None;
            }
            return Some(Negotiated {
                format,
                target: Target::Object,
                target_version: "",
            });
        };
        if group != "meta.k8s.io" {
            return None;
        }
        let target_version = match version {
            "v1" => "v1",
            "v1beta1" => "v1beta1",
            _ => return None,
        };
        let target = match kind {
            "Table" => Target::Table,
            "PartialObjectMetadata" => Target::PartialObjectMetadata,
            "PartialObjectMetadataList" => Target::PartialObjectMetadataList,
            _ => return None,
        };
        return Some(Negotiated {
            format,
            target,
            target_version,
        });
    }
    None
}

/// go-restful's route check, which runs before Go's handlers negotiate: unless some Accept clause
/// names exactly (parameters and `q` ignored, case-sensitive, no `application/*`) `*/*` or a type
/// the route produces, 406 in go-restful's words with empty details. `stream_route`: the
/// collection GET (list and watch), which also produces the `;stream=watch` types.
pub fn route_accepts(accept: Option<&str>, stream_route: bool) -> Result<(), ApiError> {
    let header = accept.unwrap_or("");
    if header.trim().is_empty() {
        return Ok(());
    }
    let produced = GO_MEDIA_TYPES.split(", ").collect::<Vec<_>>();
    let matched = header.split(',').any(|clause| {
        let t = clause.split(';').next().unwrap_or("").trim();
        t == "*/*" || produced.contains(&t)
    });
    if matched {
        return Ok(());
    }
    let streams = if stream_route {
        ", application/json;stream=watch, application/vnd.kubernetes.protobuf;stream=watch"
    } else {
        ""
    };
    Err(ApiError::route_not_acceptable(format!(
        "406: Not Acceptable\n\nAvailable representations: {GO_MEDIA_TYPES}{streams}"
    )))
}

fn not_acceptable() -> ApiError {
    ApiError::not_acceptable(format!(
        "only the following media types are accepted: {GO_MEDIA_TYPES}"
    ))
}

/// Negotiate the response for a resource endpoint. `is_list` says whether the handler returns a
/// list (list, watch of a collection, deletecollection) or a single object.
pub fn negotiate(accept: Option<&str>, is_list: bool) -> Result<Negotiated, ApiError> {
    let header = accept.map(str::trim).unwrap_or("");
    let chosen = if header.is_empty() {
        Negotiated {
            format: Format::Json,
            target: Target::Object,
            target_version: "",
        }
    } else {
        parse_accept(header)
            .iter()
            .find_map(accept_clause)
            .ok_or_else(not_acceptable)?
    };
    // Go accepts both PartialObjectMetadata kinds during negotiation and fails later, when the
    // object turns out to be of the other shape; the result is the same 406.
    match (chosen.target, is_list) {
        (Target::PartialObjectMetadata, true) => Err(ApiError::not_acceptable(
            "you requested PartialObjectMetadata, but the requested object is a list",
        )),
        (Target::PartialObjectMetadataList, false) => Err(ApiError::not_acceptable(
            "you requested PartialObjectMetadataList, but the requested object is not a list",
        )),
        _ => Ok(chosen),
    }
}

/// A watch's second negotiation (Go's `NegotiateOutputMediaTypeStream`, after the one every
/// GET makes): the chosen serializer must be able to stream, which YAML cannot, so a watch that
/// asked for YAML first is 406 naming the stream types. Go's protobuf is listed as it is there.
pub fn watch_stream(chosen: Negotiated) -> Result<Negotiated, ApiError> {
    match chosen.format {
        Format::Json => Ok(chosen),
        Format::Yaml => Err(ApiError::not_acceptable(
            "only the following media types are accepted: application/json;stream=watch, \
             application/vnd.kubernetes.protobuf;stream=watch",
        )),
    }
}

/// Negotiate for endpoints that serve only plain objects (discovery, /version): `as=` clauses
/// are not acceptable there (Go's DefaultEndpointRestrictions).
pub fn negotiate_plain(accept: Option<&str>) -> Result<Format, ApiError> {
    let header = accept.map(str::trim).unwrap_or("");
    if header.is_empty() {
        return Ok(Format::Json);
    }
    parse_accept(header)
        .iter()
        .filter_map(accept_clause)
        .find(|n| n.target == Target::Object)
        .map(|n| n.format)
        .ok_or_else(not_acceptable)
}

/// Go's isPrettyPrint: a non-empty `pretty` query value decides (strconv.ParseBool, garbage is
/// false); otherwise browsers and command-line HTTP tools get indented output.
pub fn wants_pretty(query_pretty: Option<&str>, user_agent: Option<&str>) -> bool {
    if let Some(p) = query_pretty
        && !p.is_empty()
    {
        return matches!(p, "1" | "t" | "T" | "TRUE" | "true" | "True");
    }
    let ua = user_agent.unwrap_or("");
    ua.starts_with("curl") || ua.starts_with("Wget") || ua.starts_with("Mozilla/5.0")
}

/// Encode a value. JSON matches Go's encoder: compact with a trailing newline and HTML-sensitive
/// characters escaped, or indented by two spaces without the newline when pretty. YAML has its
/// map keys sorted, as Go's JSON→YAML conversion produces. Returns the body and its Content-Type.
pub fn encode(value: &Value, format: Format, pretty: bool) -> (Vec<u8>, &'static str) {
    (encode_body(value, format, pretty), format.content_type())
}

fn encode_body(value: &Value, format: Format, pretty: bool) -> Vec<u8> {
    match format {
        Format::Json => {
            let text = if pretty {
                serde_json::to_string_pretty(value).unwrap_or_default()
            } else {
                let mut s = serde_json::to_string(value).unwrap_or_default();
                s.push('\n');
                s
            };
            crate::apimachinery::gofmt::go_json_escape(text).into_bytes()
        }
        Format::Yaml => serde_saphyr::to_string(&sorted(value))
            .unwrap_or_default()
            .into_bytes(),
    }
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// How a request body (POST/PUT) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Yaml,
}

/// The request body's format from its Content-Type: missing means JSON (Go defaults to its first
/// serializer); anything else than JSON/YAML is 415 with Go's message.
pub fn body_format(content_type: Option<&str>) -> Result<BodyFormat, ApiError> {
    let ct = content_type.map(str::trim).unwrap_or("");
    if ct.is_empty() {
        return Ok(BodyFormat::Json);
    }
    match parse_media_type(ct) {
        Some((t, st, _)) if t == "application" && st == "json" => Ok(BodyFormat::Json),
        Some((t, st, _)) if t == "application" && st == "yaml" => Ok(BodyFormat::Yaml),
        _ => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: {GO_MEDIA_TYPES}"
        ))),
    }
}

/// The envelope every Kubernetes protobuf body starts with (`k8s` and a NUL).
const PROTOBUF_PREFIX: &[u8] = b"k8s\0";

/// Go's protobuf serializer's words for a body sent as `application/vnd.kubernetes.protobuf`
/// that lacks the envelope (AM:`runtime/serializer/protobuf/protobuf.go` Decode): Go reads
/// those bytes before it knows anything else, so the answer is a 400, not the 415 wardle gives
/// a protobuf body it would have to decode (README difference `no-protobuf`). None for any
/// other Content-Type or a body with the envelope.
pub fn protobuf_without_envelope(content_type: Option<&str>, body: &[u8]) -> Option<String> {
    let (t, st, _) = parse_media_type(content_type?.trim())?;
    (t == "application" && st == "vnd.kubernetes.protobuf" && !body.starts_with(PROTOBUF_PREFIX))
        .then(|| {
            // Go prints the prefix with %v: `[107 56 115 0]`.
            let bytes: Vec<String> = PROTOBUF_PREFIX.iter().map(u8::to_string).collect();
            format!(
                "provided data does not appear to be a protobuf message, expected prefix [{}]",
                bytes.join(" ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apimachinery::status::Reason;

    /// What the Go server answered (tests/differential.rs checks the same against it).
    #[test]
    fn route_accept_check_is_go_restfuls() {
        for ok in [
            None,
            Some(""),
            Some("*/*"),
            Some("text/html, application/json;q=0"),
            Some("application/yaml"),
            Some("application/json;as=Table;v=v1;g=meta.k8s.io"),
        ] {
            assert!(route_accepts(ok, false).is_ok(), "{ok:?}");
        }
        for bad in [
            "text/html",
            "application/*",
            "Application/JSON",
            "application/xml",
        ] {
            let e = route_accepts(Some(bad), false).unwrap_err();
            assert_eq!(e.code, 406);
            assert_eq!(
                e.message,
                "406: Not Acceptable\n\nAvailable representations: application/json, \
                 application/yaml, application/vnd.kubernetes.protobuf"
            );
        }
        let e = route_accepts(Some("text/html"), true).unwrap_err();
        assert!(e.message.ends_with(
            ", application/json;stream=watch, application/vnd.kubernetes.protobuf;stream=watch"
        ));
    }
    use serde_json::json;

    const KUBECTL_GET: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    const KUBECTL_VERSION: &str = "application/json, */*";
    const METADATA_CLIENT: &str = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

    fn obj(format: Format) -> Negotiated {
        Negotiated {
            format,
            target: Target::Object,
            target_version: "",
        }
    }

    #[test]
    fn plain_types() {
        assert_eq!(negotiate(None, false).unwrap(), obj(Format::Json));
        assert_eq!(negotiate(Some(""), true).unwrap(), obj(Format::Json));
        assert_eq!(negotiate(Some("*/*"), false).unwrap(), obj(Format::Json));
        assert_eq!(
            negotiate(Some("application/*"), false).unwrap(),
            obj(Format::Json)
        );
        assert_eq!(
            negotiate(Some("application/json"), false).unwrap(),
            obj(Format::Json)
        );
        assert_eq!(
            negotiate(Some("application/yaml"), false).unwrap(),
            obj(Format::Yaml)
        );
        assert_eq!(
            negotiate(Some("application/yaml; charset=utf-8"), false).unwrap(),
            obj(Format::Yaml)
        );
        // goautoneg keeps the case and Go compares it exactly.
        assert_eq!(
            negotiate(Some("Application/YAML"), false).unwrap_err().code,
            406
        );
        assert_eq!(
            negotiate(Some(KUBECTL_VERSION), false).unwrap(),
            obj(Format::Json)
        );
        assert_eq!(
            negotiate(Some("application/json;stream=watch"), true).unwrap(),
            obj(Format::Json)
        );
    }

    #[test]
    fn kubectl_table_accept() {
        let n = negotiate(Some(KUBECTL_GET), true).unwrap();
        assert_eq!(
            n,
            Negotiated {
                format: Format::Json,
                target: Target::Table,
                target_version: "v1"
            }
        );
        let n = negotiate(
            Some("application/json;as=Table;v=v1beta1;g=meta.k8s.io"),
            false,
        )
        .unwrap();
        assert_eq!(n.target_version, "v1beta1");
        let n = negotiate(Some("application/yaml;as=Table;v=v1;g=meta.k8s.io"), false).unwrap();
        assert_eq!((n.format, n.target), (Format::Yaml, Target::Table));
    }

    #[test]
    fn unsupported_clauses_are_skipped() {
        let n = negotiate(Some(METADATA_CLIENT), true).unwrap();
        assert_eq!(n.target, Target::PartialObjectMetadataList);
        assert_eq!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf, application/json"),
                false
            )
            .unwrap(),
            obj(Format::Json)
        );
        assert_eq!(
            negotiate(Some("application/cbor,text/html,application/yaml"), false).unwrap(),
            obj(Format::Yaml)
        );
        // Unknown as=, Table without g/v, wrong group: skipped, the JSON fallback wins.
        assert_eq!(
            negotiate(
                Some("application/json;as=Foo;g=meta.k8s.io;v=v1,application/json"),
                false
            )
            .unwrap(),
            obj(Format::Json)
        );
        assert_eq!(
            negotiate(Some("application/json;as=Table,application/yaml"), false).unwrap(),
            obj(Format::Yaml)
        );
        assert_eq!(
            negotiate(
                Some("application/json;as=Table;g=x;v=v1,application/yaml"),
                false
            )
            .unwrap(),
            obj(Format::Yaml)
        );
        assert_eq!(
            negotiate(
                Some("application/json;as=Table;g=meta.k8s.io;v=v2,application/yaml"),
                false
            )
            .unwrap(),
            obj(Format::Yaml)
        );
        // goautoneg skips malformed parameters, not their clause.
        assert_eq!(
            negotiate(Some("application/json;;=x;,application/yaml"), false).unwrap(),
            obj(Format::Json)
        );
        // A malformed type is skipped.
        assert_eq!(
            negotiate(Some("application/json/x,application/yaml"), false).unwrap(),
            obj(Format::Yaml)
        );
    }

    #[test]
    fn nothing_acceptable_is_406_with_go_text() {
        for accept in [
            "text/html",
            "application/vnd.kubernetes.protobuf",
            "application/cbor",
            "image/*",
            "garbage",
        ] {
            let e = negotiate(Some(accept), false).unwrap_err();
            assert_eq!(e.code, 406, "{accept}");
            assert_eq!(e.reason, Reason::NotAcceptable);
            assert_eq!(
                e.message,
                "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
            );
        }
        assert_eq!(
            negotiate(Some("application/json;q=0"), false)
                .unwrap_err()
                .code,
            406
        );
        // Only a q that is 0 refuses; garbage orders last but is served, as Go serves it.
        for garbage in ["abc", "", "-1", " 1"] {
            assert_eq!(
                negotiate(Some(&format!("application/json;q={garbage}")), false).unwrap(),
                obj(Format::Json),
                "{garbage}"
            );
        }
        assert_eq!(
            negotiate(Some("application/yaml;q=abc, application/json"), false).unwrap(),
            obj(Format::Json)
        );
    }

    #[test]
    fn q_values_reorder() {
        assert_eq!(
            negotiate(Some("application/json;q=0.5,application/yaml"), false).unwrap(),
            obj(Format::Yaml)
        );
        assert_eq!(
            negotiate(Some("*/*,application/yaml"), false).unwrap(),
            obj(Format::Yaml)
        );
    }

    #[test]
    fn partial_object_metadata_shape_mismatch() {
        let item = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        let list = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert_eq!(
            negotiate(Some(item), false).unwrap().target,
            Target::PartialObjectMetadata
        );
        assert_eq!(
            negotiate(Some(list), true).unwrap().target,
            Target::PartialObjectMetadataList
        );
        let e = negotiate(Some(item), true).unwrap_err();
        assert_eq!(e.code, 406);
        assert!(e.message.starts_with(
            "you requested PartialObjectMetadata, but the requested object is a list"
        ));
        let e = negotiate(Some(&format!("{list},application/json")), false).unwrap_err();
        assert_eq!(e.code, 406);
        assert!(e.message.contains("is not a list"));
        let n = negotiate(
            Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1"),
            false,
        )
        .unwrap();
        assert_eq!(n.target_version, "v1beta1");
    }

    #[test]
    fn plain_endpoints_refuse_conversions() {
        assert_eq!(negotiate_plain(None).unwrap(), Format::Json);
        assert_eq!(negotiate_plain(Some(KUBECTL_GET)).unwrap(), Format::Json);
        assert_eq!(
            negotiate_plain(Some("application/yaml")).unwrap(),
            Format::Yaml
        );
        assert_eq!(
            negotiate_plain(Some("application/json;as=Table;v=v1;g=meta.k8s.io"))
                .unwrap_err()
                .code,
            406
        );
    }

    #[test]
    fn pretty_rules() {
        assert!(wants_pretty(Some("true"), None));
        assert!(wants_pretty(Some("1"), Some("kubectl/v1.32")));
        assert!(!wants_pretty(Some("false"), Some("curl/8.0")));
        assert!(!wants_pretty(Some("yes"), None));
        assert!(wants_pretty(Some(""), Some("curl/8.0")));
        assert!(wants_pretty(None, Some("Mozilla/5.0 (X11)")));
        assert!(wants_pretty(None, Some("Wget/1.21")));
        assert!(!wants_pretty(None, Some("kubectl/v1.32.4")));
        assert!(!wants_pretty(None, None));
    }

    #[test]
    fn encoding_matches_go() {
        let v = json!({"b": "<a&b>", "a": [1, {"d": 1, "c": 2}]});
        assert_eq!(
            encode(&v, Format::Json, false).0,
            b"{\"a\":[1,{\"c\":2,\"d\":1}],\"b\":\"\\u003ca\\u0026b\\u003e\"}\n".to_vec()
        );
        let pretty = String::from_utf8(encode(&json!({"a": 1}), Format::Json, true).0).unwrap();
        assert_eq!(pretty, "{\n  \"a\": 1\n}");
        let yaml = String::from_utf8(
            encode(
                &json!({"kind": "X", "apiVersion": "v1", "m": {"z": 1, "a": "s"}}),
                Format::Yaml,
                false,
            )
            .0,
        )
        .unwrap();
        let back: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(
            back,
            json!({"apiVersion": "v1", "kind": "X", "m": {"a": "s", "z": 1}})
        );
        assert!(
            yaml.find("apiVersion").unwrap() < yaml.find("kind").unwrap(),
            "{yaml}"
        );
        assert_eq!(
            encode(&json!({}), Format::Yaml, false).1,
            "application/yaml"
        );
    }

    #[test]
    fn request_body_formats() {
        assert_eq!(body_format(None).unwrap(), BodyFormat::Json);
        assert_eq!(body_format(Some("")).unwrap(), BodyFormat::Json);
        assert_eq!(
            body_format(Some("application/json")).unwrap(),
            BodyFormat::Json
        );
        assert_eq!(
            body_format(Some("application/json; charset=utf-8")).unwrap(),
            BodyFormat::Json
        );
        assert_eq!(
            body_format(Some("application/yaml")).unwrap(),
            BodyFormat::Yaml
        );
        for bad in [
            "text/plain",
            "application/vnd.kubernetes.protobuf",
            "application/x-www-form-urlencoded",
            ";;;",
        ] {
            let e = body_format(Some(bad)).unwrap_err();
            assert_eq!(e.code, 415, "{bad}");
            assert_eq!(
                e.message,
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
            );
        }
    }

    #[test]
    fn accept_parsing_order() {
        let c = parse_accept("text/*;q=0.5, application/json, */*;q=0.1");
        let names: Vec<String> = c
            .iter()
            .map(|c| format!("{}/{}", c.typ, c.subtype))
            .collect();
        assert_eq!(names, ["application/json", "text/*", "*/*"]);
        assert_eq!(parse_accept("*").first().map(|c| c.typ.as_str()), Some("*"));
        // goautoneg leaves quotes in values; the last of a repeated parameter wins.
        assert_eq!(
            parse_accept("application/json;v=\"v2\"")[0].param("v"),
            Some("\"v2\"")
        );
        assert_eq!(
            parse_accept("application/json; v = v1 ;v=v2")[0].param("v"),
            Some("v2")
        );
        assert!(parse_accept("application/,text/").is_empty());
        let c = parse_accept("*/,a/b/");
        assert_eq!((c[0].typ.as_str(), c[0].subtype.as_str()), ("a", "b"));
        assert_eq!((c[1].typ.as_str(), c[1].subtype.as_str()), ("*", "*"));
    }
}
