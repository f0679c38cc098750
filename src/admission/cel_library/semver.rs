//! Kubernetes' CEL semver library (`k8s.io/apiserver/pkg/cel/library/semverlib.go`) on the
//! `semver` crate: strict SemVer 2.0 as Go's `blang/semver` parses it, or, with
//! `normalize = true`, Go's `normalizeAndParse` first (a leading `v` dropped, leading zeros
//! removed, a missing minor or patch filled with 0). Build metadata does not take part in
//! comparisons or equality, as in Go. Parse errors are the `semver` crate's texts.

use std::cmp::Ordering;

use cel::common::types::{CelBool, CelInt, CelString, Type};
use cel::{DeclarationError, Env, ExecutionError};

/// The CEL type of versions, named as in Go.
pub static SEMVER_TYPE: Type = Type::new_unspecified_type("kubernetes.Semver");

/// A parsed version.
#[derive(Debug, Clone)]
pub struct Semver(semver::Version);

impl Semver {
    /// Go's `blang/semver` `Compare`: major, minor, patch, then prerelease precedence.
    fn compare(&self, other: &Semver) -> Ordering {
        let key = |v: &semver::Version| (v.major, v.minor, v.patch, v.pre.clone());
        key(&self.0).cmp(&key(&other.0))
    }
}

impl PartialEq for Semver {
    fn eq(&self, other: &Self) -> bool {
        self.compare(other) == Ordering::Equal
    }
}

opaque_val!(Semver, SEMVER_TYPE);

/// Go's `semver.Parse`, or `normalizeAndParse` when `normalize`.
fn parse(s: &str, normalize: bool) -> Result<Semver, String> {
    let normalized;
    let s = if normalize {
        let trimmed = s.strip_prefix('v').unwrap_or(s);
        let mut parts: Vec<String> = trimmed
            .splitn(3, '.')
            .map(|p| {
                if p.len() < 2 {
                    return p.to_string();
                }
                let t = p.trim_start_matches('0');
                if t.starts_with(|c: char| c.is_ascii_digit()) {
                    t.to_string()
                } else {
                    format!("0{t}")
                }
            })
            .collect();
        if parts.len() < 3 {
            if parts.last().is_some_and(|p| p.contains(['+', '-'])) {
                return Err("short version cannot contain PreRelease/Build meta data".into());
            }
            parts.resize(3, "0".into());
        }
        normalized = parts.join(".");
        normalized.as_str()
    } else {
        s
    };
    semver::Version::parse(s)
        .map(Semver)
        .map_err(|e| e.to_string())
}

fn semver_of(s: &CelString<'_>) -> Result<Semver, ExecutionError> {
    parse(s.inner(), false).map_err(|e| ExecutionError::function_error("semver", e))
}

fn semver_normalized(s: &CelString<'_>, normalize: &CelBool) -> Result<Semver, ExecutionError> {
    parse(s.inner(), *normalize.inner()).map_err(|e| ExecutionError::function_error("semver", e))
}

fn is_semver(s: &CelString<'_>) -> CelBool {
    parse(s.inner(), false).is_ok().into()
}

fn is_semver_normalized(s: &CelString<'_>, normalize: &CelBool) -> CelBool {
    parse(s.inner(), *normalize.inner()).is_ok().into()
}

fn major(v: &Semver) -> CelInt {
    (v.0.major as i64).into()
}

fn minor(v: &Semver) -> CelInt {
    (v.0.minor as i64).into()
}

fn patch(v: &Semver) -> CelInt {
    (v.0.patch as i64).into()
}

fn compare_to(v: &Semver, other: &Semver) -> CelInt {
    (v.compare(other) as i64).into()
}

fn is_less_than(v: &Semver, other: &Semver) -> CelBool {
    (v.compare(other) == Ordering::Less).into()
}

fn is_greater_than(v: &Semver, other: &Semver) -> CelBool {
    (v.compare(other) == Ordering::Greater).into()
}

/// Registers Go's semver library: `semver(string[, normalize])`, `isSemver(string[,
/// normalize])`, and the methods `major minor patch compareTo isLessThan isGreaterThan`.
pub fn library(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(SEMVER_TYPE.to_owned())?;
    cel::add_overload!(env, fn semver_of: (CelString) -> Result<Semver>, name = "semver")?;
    cel::add_overload!(env, fn semver_normalized: (CelString, CelBool) -> Result<Semver>,
        name = "semver")?;
    cel::add_overload!(env, fn is_semver: (CelString) -> CelBool)?;
    cel::add_overload!(env, fn is_semver_normalized: (CelString, CelBool) -> CelBool,
        name = "isSemver")?;
    cel::add_member_overload!(env, fn major: (Semver) -> CelInt)?;
    cel::add_member_overload!(env, fn minor: (Semver) -> CelInt)?;
    cel::add_member_overload!(env, fn patch: (Semver) -> CelInt)?;
    cel::add_member_overload!(env, fn compare_to: (Semver, Semver) -> CelInt)?;
    cel::add_member_overload!(env, fn is_less_than: (Semver, Semver) -> CelBool)?;
    cel::add_member_overload!(env, fn is_greater_than: (Semver, Semver) -> CelBool)?;
    Ok(())
}
