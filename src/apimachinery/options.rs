//! Query and body options of the verbs (ListOptions, Create/Update/PatchOptions, DeleteOptions),
//! parsed and validated with the Go apiserver's messages.

use super::fields::{self, FieldSelector};
use super::gofmt::Quoted;
use super::labels::{self, Selector};
use super::query::{parse_bool, query_params};
use super::status::{ApiError, ApiResult, FieldError, GroupKind};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RvMatch {
    Exact,
    NotOlderThan,
}

/// A parsed `resourceVersion` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rv {
    /// Unset or "": the most recent state (a consistent read).
    Latest,
    /// "0": any state the server has.
    Any,
    At(i64),
}

pub fn parse_rv(s: Option<&str>) -> ApiResult<Rv> {
    match s {
        None | Some("") => Ok(Rv::Latest),
        Some("0") => Ok(Rv::Any),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n <= i64::MAX as u64 => Ok(Rv::At(n as i64)),
            _ => Err(ApiError::bad_request(format!(
                "invalid resource version: resourceVersion: Invalid value: {q}: strconv.ParseUint: parsing {q}: invalid syntax",
                q = Quoted(v)
            ))),
        },
    }
}

#[derive(Debug, Clone)]
pub struct ListOptions {
    pub label_selector: Selector,
    pub field_selector: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Rv,
    pub rv_match: Option<RvMatch>,
    pub watch: bool,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub timeout_seconds: Option<u64>,
}

fn list_invalid(errs: Vec<FieldError>) -> ApiError {
    ApiError::invalid(&GroupKind::options("ListOptions"), "", &errs)
}

fn bad_param(name: &str, value: &str) -> ApiError {
    ApiError::bad_request(format!(
        "invalid value {} for query parameter {}",
        Quoted(value),
        Quoted(name)
    ))
}

/// An integer query parameter that does not parse, worded as Go's query conversion does
/// (`strconv.ParseInt` errors).
fn bad_int_param(value: &str) -> ApiError {
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    let why = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        "value out of range"
    } else {
        "invalid syntax"
    };
    ApiError::bad_request(format!(
        "strconv.ParseInt: parsing {}: {why}",
        Quoted(value)
    ))
}

/// Whether `dryRun` values ask for a dry run; any value but `All` is one error naming them all,
/// as Go's ValidateDryRun reports the list (`Unsupported value: ["Foo"]`).
fn check_dry_run(values: &[String], errs: &mut Vec<FieldError>) -> bool {
    let values: Vec<&String> = values.iter().filter(|d| !d.is_empty()).collect();
    if values.iter().any(|d| *d != "All") {
        errs.push(FieldError::not_supported("dryRun", json!(values), &["All"]));
    }
    !values.is_empty()
}

fn parse_bool_param(name: &str, value: &str) -> ApiResult<bool> {
    if value.is_empty() {
        return Ok(true);
    }
    parse_bool(value).ok_or_else(|| bad_param(name, value))
}

impl ListOptions {
    /// Parse list/watch parameters; `force_watch` is set for the legacy `/watch/` paths.
    pub fn parse(query: Option<&str>, force_watch: bool) -> ApiResult<ListOptions> {
        let mut label = None;
        let mut field = None;
        let mut limit = None;
        let mut cont = None;
        let mut rv = None;
        let mut rv_match = None;
        let mut watch = force_watch;
        let mut bookmarks = false;
        let mut initial = None;
        let mut timeout = None;
        for (k, v) in query_params(query) {
            match k.as_str() {
                "labelSelector" => label = Some(v),
                "fieldSelector" => field = Some(v),
                "limit" => {
                    let n: i64 = v.parse().map_err(|_| bad_int_param(&v))?;
                    // Go treats limit <= 0 as "no limit".
                    limit = (n > 0).then_some(n as usize);
                }
                "continue" => cont = (!v.is_empty()).then_some(v),
                "resourceVersion" => rv = Some(v),
                "resourceVersionMatch" => rv_match = Some(v),
                "watch" => watch = watch || parse_bool_param("watch", &v)?,
                "allowWatchBookmarks" => bookmarks = parse_bool_param("allowWatchBookmarks", &v)?,
                "sendInitialEvents" => initial = Some(parse_bool_param("sendInitialEvents", &v)?),
                "timeoutSeconds" => {
                    timeout = Some(v.parse::<u64>().map_err(|_| bad_int_param(&v))?)
                }
                _ => {}
            }
        }
        let resource_version = parse_rv(rv.as_deref())?;
        let rv_given = !matches!(rv.as_deref(), None | Some(""));
        let mut errs = Vec::new();
        let rv_match = parse_rv_match(rv_match.as_deref(), &mut errs);
        if watch {
            errs.extend(watch_option_errors(rv_match, initial));
        } else {
            let given = ListGiven {
                rv_given,
                resource_version,
                continued: cont.is_some(),
            };
            errs.extend(list_option_errors(rv_match, initial, given));
        }
        if !errs.is_empty() {
            return Err(list_invalid(errs));
        }
        if cont.is_some() && matches!(resource_version, Rv::At(_)) {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        Ok(ListOptions {
            label_selector: labels::parse(label.as_deref().unwrap_or(""))?,
            field_selector: fields::parse(field.as_deref().unwrap_or(""))?,
            limit,
            continue_token: cont,
            resource_version,
            rv_match,
            watch,
            allow_watch_bookmarks: bookmarks,
            send_initial_events: initial,
            timeout_seconds: timeout,
        })
    }

    pub fn has_selectors(&self) -> bool {
        !self.label_selector.is_empty() || !self.field_selector.is_empty()
    }

    /// Does the object at `namespace`/`name` pass both selectors? Labels are read through `label`
    /// (the cache keeps them beside the object's text, not in a JSON tree).
    pub fn matches_parts<'a>(
        &self,
        namespace: &str,
        name: &str,
        label: impl Fn(&str) -> Option<&'a str> + Copy,
    ) -> bool {
        self.field_selector.matches(namespace, name) && self.label_selector.matches_with(label)
    }
}

fn parse_rv_match(value: Option<&str>, errs: &mut Vec<FieldError>) -> Option<RvMatch> {
    match value {
        None | Some("") => None,
        Some("Exact") => Some(RvMatch::Exact),
        Some("NotOlderThan") => Some(RvMatch::NotOlderThan),
        Some(other) => {
            errs.push(FieldError::not_supported(
                "resourceVersionMatch",
                other,
                &["Exact", "NotOlderThan", ""],
            ));
            None
        }
    }
}

/// Go's validateWatchOptions: the match rule only goes with sendInitialEvents.
fn watch_option_errors(rv_match: Option<RvMatch>, initial: Option<bool>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if initial.is_some() && rv_match != Some(RvMatch::NotOlderThan) {
        errs.push(FieldError::forbidden(
            "resourceVersionMatch",
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    if let Some(m) = rv_match {
        if initial.is_none() {
            errs.push(FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        if m != RvMatch::NotOlderThan {
            errs.push(FieldError::not_supported(
                "resourceVersionMatch",
                "Exact",
                &["NotOlderThan"],
            ));
        }
    }
    errs
}

/// What a list request gave besides the match rule (for `list_option_errors`).
struct ListGiven {
    rv_given: bool,
    resource_version: Rv,
    continued: bool,
}

/// Go's ValidateListOptions for a list (not a watch).
fn list_option_errors(
    rv_match: Option<RvMatch>,
    initial: Option<bool>,
    given: ListGiven,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let forbidden = |detail: &str| FieldError::forbidden("resourceVersionMatch", detail);
    if let Some(m) = rv_match {
        if !given.rv_given {
            errs.push(forbidden(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if given.continued {
            errs.push(forbidden(
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if m == RvMatch::Exact && given.resource_version == Rv::Any {
            errs.push(forbidden(
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
    }
    if initial.is_some() {
        errs.push(FieldError::forbidden(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for list",
        ));
    }
    errs
}

/// dryRun, fieldManager, fieldValidation and force of create/update/patch.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: Option<String>,
    pub force: Option<bool>,
}

impl WriteOptions {
    /// `kind` names the options kind in errors: CreateOptions, UpdateOptions or PatchOptions.
    pub fn parse(query: Option<&str>, kind: &str) -> ApiResult<WriteOptions> {
        let mut o = WriteOptions::default();
        let mut dry_run = Vec::new();
        for (k, v) in query_params(query) {
            match k.as_str() {
                "dryRun" => dry_run.push(v),
                "fieldManager" => o.field_manager = Some(v),
                "fieldValidation" => o.field_validation = Some(v),
                "force" => o.force = Some(parse_bool_param("force", &v)?),
                _ => {}
            }
        }
        // Go's order (ValidateCreateOptions and friends): fieldManager, dryRun, fieldValidation.
        let mut errs = Vec::new();
        if let Some(m) = &o.field_manager {
            errs.extend(super::managed_fields::manager_errors(m));
        }
        o.dry_run = check_dry_run(&dry_run, &mut errs);
        if let Some(v) = &o.field_validation {
            errs.extend(super::decode::field_validation_error(Some(v)));
        }
        if o.force.is_some() && kind != "PatchOptions" {
            errs.push(FieldError::forbidden(
                "force",
                "may not be specified for non-apply patch",
            ));
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid(&GroupKind::options(kind), "", &errs));
        }
        Ok(o)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

/// DeleteOptions from the body (any apiVersion Go accepts) merged with query parameters.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub grace_period_seconds: Option<i64>,
}

impl DeleteOptions {
    pub fn parse(query: Option<&str>, body: &[u8]) -> ApiResult<DeleteOptions> {
        let mut o = DeleteOptions::default();
        let mut errs = Vec::new();
        let Raw {
            mut orphan,
            mut policy,
            mut dry_run,
        } = o.read_body(body)?;
        for (k, v) in query_params(query) {
            match k.as_str() {
                "dryRun" => dry_run.push(v),
                "propagationPolicy" => policy = Some(v),
                "orphanDependents" => orphan = Some(parse_bool_param("orphanDependents", &v)?),
                "gracePeriodSeconds" => {
                    o.grace_period_seconds = Some(v.parse().map_err(|_| bad_int_param(&v))?)
                }
                _ => {}
            }
        }
        o.dry_run = check_dry_run(&dry_run, &mut errs);
        o.propagation = propagation(policy.as_deref(), orphan, &mut errs);
        if !errs.is_empty() {
            return Err(ApiError::invalid(
                &GroupKind::options("DeleteOptions"),
                "",
                &errs,
            ));
        }
        Ok(o)
    }
}

/// The parameters of a DELETE body that query parameters may still override.
#[derive(Default)]
struct Raw {
    orphan: Option<bool>,
    policy: Option<String>,
    dry_run: Vec<String>,
}

impl DeleteOptions {
    /// Reads a DeleteOptions body (blank: none) into `self`; what the query may add to or
    /// override is returned.
    fn read_body(&mut self, body: &[u8]) -> ApiResult<Raw> {
        let mut raw = Raw::default();
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(raw);
        }
        // Syntax errors read as Go's decoder words them (`couldn't get version/kind; ...`).
        let (v, _) = super::decode::parse_json(body)?;
        if !v.is_object() {
            return Err(ApiError::bad_request(
                "error decoding DeleteOptions: not a JSON object",
            ));
        }
        if let Some(k) = v.get("kind").and_then(Value::as_str)
            && k != "DeleteOptions"
        {
            return Err(ApiError::bad_request(format!(
                "expected DeleteOptions, got {k}"
            )));
        }
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        raw.policy = text(v.get("propagationPolicy"));
        raw.orphan = v.get("orphanDependents").and_then(Value::as_bool);
        self.grace_period_seconds = v.get("gracePeriodSeconds").and_then(Value::as_i64);
        if let Some(p) = v.get("preconditions") {
            self.precondition_uid = text(p.get("uid"));
            self.precondition_rv = text(p.get("resourceVersion"));
        }
        if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
            raw.dry_run
                .extend(d.iter().filter_map(Value::as_str).map(str::to_string));
        }
        Ok(raw)
    }
}

/// The propagation policy from `propagationPolicy` and the legacy `orphanDependents`, which
/// may not both be set.
fn propagation(
    policy: Option<&str>,
    orphan: Option<bool>,
    errs: &mut Vec<FieldError>,
) -> Option<Propagation> {
    let from_policy = match policy {
        None | Some("") => None,
        Some("Orphan") => Some(Propagation::Orphan),
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some(other) => {
            errs.push(FieldError::not_supported(
                "propagationPolicy",
                other,
                &["Foreground", "Background", "Orphan", "nil"],
            ));
            None
        }
    };
    let Some(orphan) = orphan else {
        return from_policy;
    };
    if policy.is_some_and(|p| !p.is_empty()) {
        errs.push(FieldError::invalid(
            "propagationPolicy",
            policy.unwrap_or_default(),
            "orphanDependents and deletionPropagation cannot be both set",
        ));
        return from_policy;
    }
    Some(if orphan {
        Propagation::Orphan
    } else {
        Propagation::Background
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_option_rules() {
        let e = ListOptions::parse(Some("resourceVersionMatch=Exact"), false).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .contains("resourceVersionMatch is forbidden unless resourceVersion is provided"),
            "{}",
            e.message
        );
        assert!(
            e.message
                .starts_with("ListOptions.meta.k8s.io \"\" is invalid")
        );
        let e = ListOptions::parse(Some("resourceVersion=0&resourceVersionMatch=Exact"), false)
            .unwrap_err();
        assert_eq!(e.code, 422);
        let e = ListOptions::parse(Some("continue=abc&resourceVersion=5"), false).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "specifying resource version is not allowed when using continue"
            )
        );
        let e = ListOptions::parse(Some("watch=true&sendInitialEvents=true"), false).unwrap_err();
        assert!(
            e.message.contains(
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
            )
        );
        let e = ListOptions::parse(
            Some("sendInitialEvents=true&resourceVersionMatch=NotOlderThan"),
            false,
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("sendInitialEvents is forbidden for list")
        );
        let ok = ListOptions::parse(
            Some("watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"),
            false,
        )
        .unwrap();
        assert!(ok.watch && ok.allow_watch_bookmarks);
        let e = ListOptions::parse(Some("resourceVersion=abc"), false).unwrap_err();
        assert_eq!(e.code, 400);
        let e = ListOptions::parse(Some("limit=x"), false).unwrap_err();
        assert_eq!(e.code, 400);
        let o = ListOptions::parse(Some("limit=0&resourceVersion=12"), false).unwrap();
        assert_eq!((o.limit, o.resource_version), (None, Rv::At(12)));
    }

    #[test]
    fn write_and_delete_options() {
        let e = WriteOptions::parse(Some("dryRun=Foo"), "CreateOptions").unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .contains(r#"dryRun: Unsupported value: ["Foo"]: supported values: "All""#),
            "{}",
            e.message
        );
        assert!(
            WriteOptions::parse(Some("dryRun=All"), "CreateOptions")
                .unwrap()
                .dry_run
        );
        assert_eq!(
            WriteOptions::parse(Some("force=true"), "UpdateOptions")
                .unwrap_err()
                .code,
            422
        );
        let d = DeleteOptions::parse(None, br#"{"propagationPolicy":"Background"}"#).unwrap();
        assert_eq!(d.propagation, Some(Propagation::Background));
        let d = DeleteOptions::parse(
            None,
            br#"{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":"u"}}"#,
        )
        .unwrap();
        assert_eq!(d.precondition_uid.as_deref(), Some("u"));
        assert_eq!(
            DeleteOptions::parse(Some("propagationPolicy=Bogus"), b"")
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            DeleteOptions::parse(Some("orphanDependents=true&propagationPolicy=Orphan"), b"")
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            DeleteOptions::parse(None, b"{not json").unwrap_err().code,
            400
        );
    }
}
