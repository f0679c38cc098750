//! Kubernetes' CEL format library (`k8s.io/apiserver/pkg/cel/library/format.go`):
//! `format.<name>()` and `format.named(name)` give a named format whose
//! `validate(string)` is `optional.none()` for a valid string, else `optional.of` Go's error
//! texts. The Kubernetes name checks are the ones object metadata uses
//! (`apimachinery::meta`); `uri` is Go's `url.ParseRequestURI`; `uuid`, `byte`, `date` and
//! `datetime` follow kube-openapi's `strfmt`.

use std::sync::LazyLock;

use cel::common::types::{CelList, CelOptional, CelString, Type};
use cel::common::value::Val;
use cel::{DeclarationError, Env};

use crate::apimachinery::meta;

/// The CEL type of formats, named as in Go.
pub static FORMAT_TYPE: Type = Type::new_unspecified_type("kubernetes.NamedFormat");

/// A named format: its name in `format.<name>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format(&'static str);

opaque_val!(Format, FORMAT_TYPE);

/// `NAMES`, the formats by the names Go gives them, and `constants`, which registers
/// `format.<name>()` for each (an overload is a plain function, so one is written per name).
macro_rules! formats {
    ($($name:literal),*) => {
        const NAMES: &[&str] = &[$($name),*];

        fn constants(env: &mut Env) -> Result<(), DeclarationError> {
            $({
                fn f() -> Format {
                    Format($name)
                }
                cel::add_overload!(env, fn f: () -> Format, name = concat!("format.", $name))?;
            })*
            Ok(())
        }
    };
}

formats!(
    "dns1123Label",
    "dns1123Subdomain",
    "dns1035Label",
    "qualifiedName",
    "dns1123LabelPrefix",
    "dns1123SubdomainPrefix",
    "dns1035LabelPrefix",
    "labelValue",
    "uri",
    "uuid",
    "byte",
    "date",
    "datetime"
);

impl Format {
    /// Go's `ValidateFunc` of the format: the error texts, empty when `s` is valid.
    fn validate(&self, s: &str) -> Vec<String> {
        let one = |ok: bool, message: &str| {
            if ok {
                vec![]
            } else {
                vec![message.to_string()]
            }
        };
        match self.0 {
            "dns1123Label" => meta::is_dns1123_label(s),
            "dns1123Subdomain" => meta::is_dns1123_subdomain(s),
            "dns1035Label" => is_dns1035_label(s),
            "qualifiedName" => meta::is_qualified_name(s),
            "dns1123LabelPrefix" => meta::is_dns1123_label(&mask_trailing_dash(s)),
            "dns1123SubdomainPrefix" => meta::is_dns1123_subdomain(&mask_trailing_dash(s)),
            "dns1035LabelPrefix" => is_dns1035_label(&mask_trailing_dash(s)),
            "labelValue" => meta::is_label_value(s),
            "uri" => super::url::parse_request_uri_error(s).into_iter().collect(),
            "uuid" => one(UUID.is_match(s), "does not match the UUID format"),
            "byte" => one(BASE64.is_match(s), "invalid base64"),
            "date" => one(is_date(s), "invalid date"),
            _ => one(is_date_time(s), "invalid datetime"),
        }
    }
}

/// Go's `maskTrailingDash` for the `*Prefix` formats (a generateName prefix may end in `-`):
/// its quirk of dropping the character before the dash too is kept.
fn mask_trailing_dash(s: &str) -> String {
    match s.strip_suffix('-') {
        Some(rest) if s.len() > 1 => {
            let mut kept = rest.to_string();
            kept.pop();
            kept + "a"
        }
        _ => s.to_string(),
    }
}

/// Go's `IsDNS1035Label`.
fn is_dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(meta::max_len_error(63));
    }
    let b = s.as_bytes();
    let ok = b.first().is_some_and(u8::is_ascii_lowercase)
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        errs.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start \
             with an alphabetic character, and end with an alphanumeric character (e.g. \
             'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .to_string(),
        );
    }
    errs
}

static UUID: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
        .expect("a valid constant pattern")
});

/// govalidator's `IsBase64` pattern (padded standard alphabet, not empty).
static BASE64: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$",
    )
    .expect("a valid constant pattern")
});

/// Go's `time.Parse("2006-01-02", s)`: four-digit year, a real month and day.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let number = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) = (number(0..4), number(5..7), number(8..10)) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// strfmt's `IsDateTime`: lower-cased and split at `t`, a date, then
/// `hh:mm:ss[<any char>digits](z|±hh:mm)` with hours up to 23 and minutes and seconds up to 59.
fn is_date_time(s: &str) -> bool {
    static TIME: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$",
        )
        .expect("a valid constant pattern")
    });
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if s.len() < 4 || parts.len() < 2 || !is_date(parts[0]) {
        return false;
    }
    TIME.captures(parts[1])
        .is_some_and(|m| &m[1] <= "23" && &m[2] <= "59" && &m[3] <= "59")
}

fn named(name: &CelString<'_>) -> CelOptional<'static> {
    match NAMES.iter().find(|n| **n == name.inner()) {
        Some(n) => CelOptional::of(Box::new(Format(n))),
        None => CelOptional::none(),
    }
}

fn validate(f: &Format, s: &CelString<'_>) -> CelOptional<'static> {
    let errors = f.validate(s.inner());
    if errors.is_empty() {
        return CelOptional::none();
    }
    let errors: Vec<Box<dyn Val>> = errors
        .into_iter()
        .map(|e| Box::new(CelString::from(e)) as Box<dyn Val>)
        .collect();
    CelOptional::of(Box::new(CelList::from(errors)))
}

/// Registers Go's format library: `format.<name>()` for each of `NAMES`,
/// `format.named(string)` (optional), and `<format>.validate(string)` (optional list of errors).
pub fn library(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(FORMAT_TYPE.to_owned())?;
    cel::add_overload!(env, fn named: (CelString) -> CelOptional, name = "format.named")?;
    cel::add_member_overload!(env, fn validate: (Format, CelString) -> CelOptional)?;
    constants(env)
}
