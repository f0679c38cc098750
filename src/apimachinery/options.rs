//! Query and body options of the verbs (ListOptions, Create/Update/PatchOptions, DeleteOptions),
//! parsed and validated with the Go apiserver's messages.

use super::delete_body::{DeleteBody, RawDelete};
use super::fields::{self, FieldSelector};
use super::gofmt::Quoted;
use super::labels::{self, Selector};
use super::query::Params;
use super::status::{ApiError, ApiResult, FieldError, GroupKind};
use serde_json::json;

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

/// `resourceVersion` as Go's storage reads it (`strconv.ParseUint`: digits only, no sign or
/// space). Errors: 400 `invalid resource version: resourceVersion: Invalid value: "+5":
/// strconv.ParseUint: parsing "+5": invalid syntax` (Go's list; Go's GET and watch answer the
/// same words as a 500, which wardle does not copy).
pub fn parse_rv(s: Option<&str>) -> ApiResult<Rv> {
    let v = match s {
        None | Some("") => return Ok(Rv::Latest),
        Some("0") => return Ok(Rv::Any),
        Some(v) => v,
    };
    let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    let why = match v.parse::<u64>() {
        Ok(n) if digits && n <= i64::MAX as u64 => return Ok(Rv::At(n as i64)),
        // Past the store's int64 revisions (Go: a 504 "Too large resource version" after 3 s).
        Ok(_) if digits => "invalid syntax",
        Err(_) if digits => "value out of range",
        _ => "invalid syntax",
    };
    Err(ApiError::bad_request(format!(
        "invalid resource version: resourceVersion: Invalid value: {q}: strconv.ParseUint: parsing {q}: {why}",
        q = Quoted(v)
    )))
}

#[derive(Debug, Clone)]
pub struct ListOptions {
    pub label_selector: Selector,
    pub field_selector: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    /// `continue` came with a resourceVersion other than "" or "0": a 400 once the token
    /// decodes (`specifying resource version is not allowed when using continue`).
    pub rv_with_continue: bool,
    pub resource_version: Rv,
    pub rv_match: Option<RvMatch>,
    pub watch: bool,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    /// As given: 0 or absent is Go's random default, negative ends a watch at once.
    pub timeout_seconds: Option<i64>,
}

fn list_invalid(errs: Vec<FieldError>) -> ApiError {
    ApiError::invalid(&GroupKind::options("ListOptions"), "", &errs)
}

/// Go's ValidateDryRun: every value must be `All` (so `?dryRun=` is refused, not ignored); the
/// error names the whole list (`Unsupported value: [""]`). Returns whether it is a dry run.
fn check_dry_run(values: &[String], errs: &mut Vec<FieldError>) -> bool {
    if values.iter().any(|d| d != "All") {
        errs.push(FieldError::not_supported("dryRun", json!(values), &["All"]));
    }
    !values.is_empty()
}

/// The list/watch parameters as Go's query conversion leaves them, before validation.
struct RawList<'a> {
    watch: bool,
    resource_version: &'a str,
    rv_match: &'a str,
    continued: bool,
    send_initial_events: Option<bool>,
}

impl RawList<'_> {
    /// Go's SetListOptionsDefaults with WatchList on (Go 1.35's default): a `watch` (the
    /// parameter, not a `/watch/` path) from "" or "0" with neither sendInitialEvents nor
    /// resourceVersionMatch is a watch-list: sendInitialEvents=true, NotOlderThan. So it is
    /// validated as one, and with allowWatchBookmarks its initial events end with the
    /// `k8s.io/initial-events-end` bookmark. Returns (sendInitialEvents, resourceVersionMatch).
    fn watch_list_defaults(&self) -> (Option<bool>, &str) {
        let legacy = self.watch
            && self.send_initial_events.is_none()
            && self.rv_match.is_empty()
            && matches!(self.resource_version, "" | "0");
        if legacy {
            (Some(true), "NotOlderThan")
        } else {
            (self.send_initial_events, self.rv_match)
        }
    }
}

impl ListOptions {
    /// Parse list/watch parameters (each from its first value, as Go reads them);
    /// `force_watch` is set for the legacy `/watch/` paths.
    ///
    /// Order of errors as Go's ListResource: integer parameters (400 `strconv.ParseInt: ...`),
    /// then ValidateListOptions (422), then selectors, then the resourceVersion and
    /// continue rules its storage applies (400). Go validates by the `watch` parameter alone
    /// (`opts.Watch`, not its `forceWatch`): a `/watch/` path without `?watch=true` is checked
    /// as a list (`sendInitialEvents` forbidden, `resourceVersionMatch` with a resourceVersion
    /// allowed) and then served as a watch, which ignores `continue` and the match.
    pub fn parse(query: Option<&str>, force_watch: bool) -> ApiResult<ListOptions> {
        let p = Params::parse(query);
        let timeout_seconds = p.int64("timeoutSeconds")?;
        let limit = p.int64("limit")?;
        let raw = RawList {
            watch: p.bool("watch").unwrap_or(false),
            resource_version: p.first("resourceVersion").unwrap_or(""),
            rv_match: p.first("resourceVersionMatch").unwrap_or(""),
            continued: p.first("continue").is_some_and(|c| !c.is_empty()),
            send_initial_events: p.bool("sendInitialEvents"),
        };
        let errs = if raw.watch {
            watch_option_errors(&raw)
        } else {
            list_option_errors(&raw)
        };
        if !errs.is_empty() {
            return Err(list_invalid(errs));
        }
        let label_selector = labels::parse(p.first("labelSelector").unwrap_or(""))?;
        let field_selector = fields::parse(p.first("fieldSelector").unwrap_or(""))?;
        // A watch ignores `continue` (Go's watch never reads it). A list continued at a named
        // resourceVersion is refused by the registry once the token decodes (Go's storage
        // order: token, then this, then the resourceVersion's syntax).
        let watch = raw.watch || force_watch;
        let continued = raw.continued && !watch;
        let rv_with_continue = continued && !matches!(raw.resource_version, "" | "0");
        let (send_initial_events, rv_match) = raw.watch_list_defaults();
        let resource_version = if rv_with_continue {
            Rv::Latest
        } else {
            parse_rv(Some(raw.resource_version))?
        };
        Ok(ListOptions {
            label_selector,
            field_selector,
            // Go treats limit <= 0 as "no limit".
            limit: limit.filter(|n| *n > 0).map(|n| n as usize),
            continue_token: p
                .first("continue")
                .filter(|_| continued)
                .map(str::to_string),
            rv_with_continue,
            resource_version,
            rv_match: match rv_match {
                "Exact" => Some(RvMatch::Exact),
                "NotOlderThan" => Some(RvMatch::NotOlderThan),
                _ => None,
            },
            watch,
            allow_watch_bookmarks: p.bool("allowWatchBookmarks").unwrap_or(false),
            send_initial_events,
            timeout_seconds,
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

/// Go's validateWatchOptions, after SetListOptionsDefaults (WatchList is on in Go 1.35): a watch
/// from "" or "0" with neither sendInitialEvents nor resourceVersionMatch is validated as
/// sendInitialEvents=true, resourceVersionMatch=NotOlderThan (so `continue` is refused).
fn watch_option_errors(raw: &RawList) -> Vec<FieldError> {
    let (initial, m) = raw.watch_list_defaults();
    let forbidden = |detail: &str| FieldError::forbidden("resourceVersionMatch", detail);
    let mut errs = Vec::new();
    if initial.is_some() && m != "NotOlderThan" {
        errs.push(forbidden(
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    if !m.is_empty() {
        if initial.is_none() {
            errs.push(forbidden(
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        if m != "NotOlderThan" {
            errs.push(
                FieldError::not_supported("resourceVersionMatch", m, &["NotOlderThan"])
                    .of_named_type(),
            );
        }
        if raw.continued {
            errs.push(forbidden(
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
    }
    errs
}

/// Go's ValidateListOptions for a list (not a watch), in its order.
fn list_option_errors(raw: &RawList) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let forbidden = |detail: &str| FieldError::forbidden("resourceVersionMatch", detail);
    let m = raw.rv_match;
    if !m.is_empty() {
        if raw.resource_version.is_empty() {
            errs.push(forbidden(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if raw.continued {
            errs.push(forbidden(
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if m != "Exact" && m != "NotOlderThan" {
            errs.push(
                FieldError::not_supported(
                    "resourceVersionMatch",
                    m,
                    &["Exact", "NotOlderThan", ""],
                )
                .of_named_type(),
            );
        }
        if m == "Exact" && raw.resource_version == "0" {
            errs.push(forbidden(
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
    }
    if raw.send_initial_events.is_some() {
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
    /// PatchOptions only (Create/UpdateOptions have no `force`: Go ignores the parameter).
    pub force: Option<bool>,
}

impl WriteOptions {
    /// `kind` names the options kind in errors: CreateOptions, UpdateOptions or PatchOptions.
    /// Scalars come from their first value, `dryRun` from all (Go's url.Values conversions).
    pub fn parse(query: Option<&str>, kind: &str) -> ApiResult<WriteOptions> {
        let p = Params::parse(query);
        let mut o = WriteOptions {
            dry_run: false,
            field_manager: p.first("fieldManager").map(str::to_string),
            field_validation: p.first("fieldValidation").map(str::to_string),
            force: if kind == "PatchOptions" {
                p.bool("force")
            } else {
                None
            },
        };
        // Go's order (ValidateCreateOptions and friends): fieldManager, dryRun, fieldValidation.
        let mut errs = Vec::new();
        if let Some(m) = &o.field_manager {
            errs.extend(super::managed_fields::manager_errors(m));
        }
        o.dry_run = check_dry_run(&p.all("dryRun"), &mut errs);
        if let Some(v) = &o.field_validation {
            errs.extend(super::decode::field_validation_error(Some(v)));
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

/// DeleteOptions from the body or, when the body is empty, from the query (Go's DeleteResource
/// and DeleteCollection read one or the other, never both).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub grace_period_seconds: Option<i64>,
}

impl DeleteOptions {
    /// `body`: None when the request has none (Go: an empty body; then the query is read),
    /// otherwise the body as sent in its format (Go decodes any non-empty body, even a blank
    /// one, and ignores the query; `null` is no options). Errors: 400 for a body that does not
    /// decode (`super::delete_body`) or an integer query parameter that does not parse; 422
    /// from ValidateDeleteOptions.
    pub fn parse(query: Option<&str>, body: Option<DeleteBody<'_>>) -> ApiResult<DeleteOptions> {
        let raw = match body {
            None => RawDelete::from_query(&Params::parse(query))?,
            Some(body) => super::delete_body::decode(body)?,
        };
        raw.validate()
    }
}

impl RawDelete {
    /// Go's Convert_url_Values_To_v1_DeleteOptions: first values, `uid` and `resourceVersion`
    /// become preconditions, an empty propagationPolicy is still a (refused) policy.
    fn from_query(p: &Params) -> ApiResult<RawDelete> {
        let nonempty = |k: &str| p.first(k).filter(|v| !v.is_empty()).map(str::to_string);
        Ok(RawDelete {
            grace_period_seconds: p.int64("gracePeriodSeconds")?,
            uid: nonempty("uid"),
            resource_version: nonempty("resourceVersion"),
            orphan: p.bool("orphanDependents"),
            policy: p.first("propagationPolicy").map(str::to_string),
            dry_run: p.all("dryRun"),
        })
    }

    /// Go's ValidateDeleteOptions, in its order.
    fn validate(self) -> ApiResult<DeleteOptions> {
        let mut errs = Vec::new();
        let policy = self.policy.as_deref();
        if self.orphan.is_some()
            && let Some(p) = policy
        {
            errs.push(
                FieldError::invalid(
                    "propagationPolicy",
                    p,
                    "orphanDependents and deletionPropagation cannot be both set",
                )
                .of_named_type(),
            );
        }
        let from_policy = match policy {
            None => None,
            Some("Orphan") => Some(Propagation::Orphan),
            Some("Background") => Some(Propagation::Background),
            Some("Foreground") => Some(Propagation::Foreground),
            Some(other) => {
                errs.push(
                    FieldError::not_supported(
                        "propagationPolicy",
                        other,
                        &["Foreground", "Background", "Orphan", "nil"],
                    )
                    .of_named_type(),
                );
                None
            }
        };
        let dry_run = check_dry_run(&self.dry_run, &mut errs);
        if !errs.is_empty() {
            return Err(ApiError::invalid(
                &GroupKind::options("DeleteOptions"),
                "",
                &errs,
            ));
        }
        let propagation = from_policy.or(self.orphan.map(|o| {
            if o {
                Propagation::Orphan
            } else {
                Propagation::Background
            }
        }));
        Ok(DeleteOptions {
            dry_run,
            propagation,
            precondition_uid: self.uid,
            precondition_rv: self.resource_version,
            grace_period_seconds: self.grace_period_seconds,
        })
    }
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
        let o = ListOptions::parse(Some("continue=abc&resourceVersion=x"), false).unwrap();
        assert!(o.rv_with_continue);
        let o = ListOptions::parse(Some("continue=abc&resourceVersion=0"), false).unwrap();
        assert!(!o.rv_with_continue);
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
        // First values; Go's booleans; signed integers.
        let o = ListOptions::parse(
            Some("limit=1&limit=3&watch=maybe&allowWatchBookmarks=&timeoutSeconds=-5&timeoutSeconds=x"),
            false,
        )
        .unwrap();
        assert_eq!(
            (o.limit, o.watch, o.allow_watch_bookmarks),
            (Some(1), true, true)
        );
        assert_eq!(o.timeout_seconds, Some(-5));
        let o = ListOptions::parse(Some("watch=FALSE&limit=%2B2"), false).unwrap();
        assert_eq!((o.watch, o.limit), (false, Some(2)));
        // strconv.ParseUint refuses signs and spaces.
        for rv in ["%2B5", "-5", "%205", "5x"] {
            let e = ListOptions::parse(Some(&format!("resourceVersion={rv}")), false).unwrap_err();
            assert_eq!(e.code, 400, "{rv}");
            assert!(e.message.contains("strconv.ParseUint"), "{}", e.message);
        }
        let e =
            ListOptions::parse(Some("resourceVersion=99999999999999999999"), false).unwrap_err();
        assert!(e.message.ends_with("value out of range"), "{}", e.message);
        // A legacy /watch/ path is validated by its `watch` parameter (a list without it),
        // then served as a watch that ignores `continue` and the match.
        let e = ListOptions::parse(Some("sendInitialEvents=true"), true).unwrap_err();
        assert!(
            e.message
                .contains("sendInitialEvents is forbidden for list"),
            "{}",
            e.message
        );
        let o = ListOptions::parse(Some("continue=abc&resourceVersion=5"), true).unwrap();
        assert!(o.watch && o.continue_token.is_none());
        assert_eq!(o.resource_version, Rv::At(5));
        let o =
            ListOptions::parse(Some("resourceVersionMatch=Exact&resourceVersion=5"), true).unwrap();
        assert!(o.watch);
        let e =
            ListOptions::parse(Some("continue=abc&resourceVersionMatch=Exact"), true).unwrap_err();
        assert!(
            e.message
                .contains("resourceVersionMatch is forbidden unless resourceVersion is provided"),
            "{}",
            e.message
        );
        let e = ListOptions::parse(Some("watch=true&continue=abc"), true).unwrap_err();
        assert!(
            e.message
                .contains("resourceVersionMatch is forbidden when continue is provided"),
            "{}",
            e.message
        );
        // A watch from "" or "0" is validated as sendInitialEvents (Go's SetListOptionsDefaults).
        let e = ListOptions::parse(Some("watch=1&continue=abc"), false).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .contains("resourceVersionMatch is forbidden when continue is provided")
        );
        let o = ListOptions::parse(Some("watch=1&continue=zzz&resourceVersion=5"), false).unwrap();
        assert_eq!(o.continue_token, None);
        // ... and served as one: its initial events end with the initial-events-end bookmark.
        for q in ["watch=1&allowWatchBookmarks=1", "watch=1&resourceVersion=0"] {
            let o = ListOptions::parse(Some(q), false).unwrap();
            assert_eq!(o.send_initial_events, Some(true), "{q}");
            assert_eq!(o.rv_match, Some(RvMatch::NotOlderThan), "{q}");
        }
        // Not from a resourceVersion, not when either is given, not on a /watch/ path.
        for (q, force) in [
            ("watch=1&resourceVersion=5", false),
            (
                "watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan",
                false,
            ),
            ("resourceVersion=0&allowWatchBookmarks=1", true),
        ] {
            let o = ListOptions::parse(Some(q), force).unwrap();
            assert_ne!(o.send_initial_events, Some(true), "{q}");
        }
        // Go's order and supported values for a bad match rule.
        let e = ListOptions::parse(Some("resourceVersionMatch=Foo"), false).unwrap_err();
        assert!(e.message.starts_with("ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided, resourceVersionMatch: Unsupported value: \"Foo\": supported values: \"Exact\", \"NotOlderThan\", \"\"]"), "{}", e.message);
        let e = ListOptions::parse(Some("watch=1&resourceVersionMatch=Foo"), false).unwrap_err();
        assert!(
            e.message
                .contains(r#"Unsupported value: "Foo": supported values: "NotOlderThan""#),
            "{}",
            e.message
        );
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
        // Create/UpdateOptions have no `force`: Go ignores it; PatchOptions reads it as a bool.
        let w = WriteOptions::parse(Some("force=true"), "UpdateOptions").unwrap();
        assert_eq!(w.force, None);
        let w = WriteOptions::parse(Some("force=maybe&force=false"), "PatchOptions").unwrap();
        assert_eq!(w.force, Some(true));
        // ValidateDryRun refuses an empty value instead of ignoring it.
        let e = WriteOptions::parse(Some("dryRun="), "CreateOptions").unwrap_err();
        assert!(
            e.message.contains(r#"dryRun: Unsupported value: [""]"#),
            "{}",
            e.message
        );
        let e = WriteOptions::parse(Some("dryRun=All&dryRun="), "CreateOptions").unwrap_err();
        assert!(
            e.message.contains(r#"[\"All\",\"\"]"#) || e.message.contains(r#"["All",""]"#),
            "{}",
            e.message
        );
        // The first value of a scalar counts.
        let w = WriteOptions::parse(
            Some("fieldValidation=Strict&fieldValidation=Bogus&fieldManager=a&fieldManager=b"),
            "CreateOptions",
        )
        .unwrap();
        assert_eq!(w.field_validation.as_deref(), Some("Strict"));
        assert_eq!(w.field_manager.as_deref(), Some("a"));

        let json = |b: &'static str| Some(DeleteBody::Json(b.as_bytes()));
        let d = DeleteOptions::parse(None, json(r#"{"propagationPolicy":"Background"}"#)).unwrap();
        assert_eq!(d.propagation, Some(Propagation::Background));
        let d = DeleteOptions::parse(
            None,
            json(r#"{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":"u"}}"#),
        )
        .unwrap();
        assert_eq!(d.precondition_uid.as_deref(), Some("u"));
        let bad = |q: &str| DeleteOptions::parse(Some(q), None).unwrap_err();
        assert_eq!(bad("propagationPolicy=Bogus").code, 422);
        assert_eq!(
            bad("orphanDependents=true&propagationPolicy=Orphan").code,
            422
        );
        // An empty policy is a policy Go refuses; orphanDependents= is true.
        assert_eq!(bad("propagationPolicy=").code, 422);
        assert_eq!(bad("orphanDependents=&propagationPolicy=Orphan").code, 422);
        assert_eq!(bad("dryRun=").code, 422);
        let e = bad("gracePeriodSeconds=abc");
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, r#"strconv.ParseInt: parsing "abc": invalid syntax"#)
        );
        assert_eq!(
            DeleteOptions::parse(None, json("{not json"))
                .unwrap_err()
                .code,
            400
        );
        // A body is read instead of the query, never with it.
        let d = DeleteOptions::parse(
            Some("gracePeriodSeconds=abc&dryRun=Bogus"),
            json(r#"{"gracePeriodSeconds":3}"#),
        )
        .unwrap();
        assert_eq!((d.grace_period_seconds, d.dry_run), (Some(3), false));
        let d = DeleteOptions::parse(Some("dryRun=All"), json("null")).unwrap();
        assert!(!d.dry_run);
        // Query preconditions (Go's Convert_url_Values_To_v1_DeleteOptions), first values.
        let d = DeleteOptions::parse(
            Some("uid=u1&uid=u2&resourceVersion=7&gracePeriodSeconds=%2B5&gracePeriodSeconds=x&orphanDependents=maybe"),
            None,
        )
        .unwrap();
        assert_eq!(d.precondition_uid.as_deref(), Some("u1"));
        assert_eq!(d.precondition_rv.as_deref(), Some("7"));
        assert_eq!(d.grace_period_seconds, Some(5));
        assert_eq!(d.propagation, Some(Propagation::Orphan));
    }
}
