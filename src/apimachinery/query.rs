//! URL query decoding as Go's `url.ParseQuery` and the apimachinery query conversions
//! (`runtime.Convert_Slice_string_To_*`) do it: what request options (`ListOptions`,
//! `DeleteOptions`, ...) and the HTTP layer read parameters with.
//!
//! Go reads every scalar parameter from its *first* value (`(*in)[0]`); only `dryRun` keeps
//! them all. Booleans are true unless the first value is `0` or `false` (any case), so `?watch=`
//! and `?watch=maybe` are both true. Integers are `strconv.ParseInt(v, 10, 64)`.

use super::gofmt::Quoted;
use super::status::ApiError;

/// `strconv.ParseBool`: what Go's `pretty` parameter is read with (None: not a boolean).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A boolean query parameter's first value as Go's `runtime.Convert_Slice_string_To_bool`
/// reads it: false only for `0` and `false` in any case; anything else, the empty value
/// included, is true.
pub fn go_bool(v: &str) -> bool {
    !(v == "0" || v.eq_ignore_ascii_case("false"))
}

/// An integer query parameter as Go's `strconv.ParseInt(v, 10, 64)`: an optional sign then
/// ASCII digits. Errors are 400s worded as Go's (`strconv.ParseInt: parsing "x": invalid syntax`,
/// `... value out of range`), the message Go's query decoding answers with.
pub fn parse_int64(v: &str) -> Result<i64, ApiError> {
    let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
    let why = if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        "invalid syntax"
    } else {
        match v.parse::<i64>() {
            Ok(n) => return Ok(n),
            Err(_) => "value out of range",
        }
    };
    Err(ApiError::bad_request(format!(
        "strconv.ParseInt: parsing {}: {why}",
        Quoted(v)
    )))
}

/// Go's `time.ParseDuration`, for the `timeout` query parameter: an optional sign, then one or
/// more decimal numbers each with a unit (ns, us, µs, μs, ms, s, m, h), or "0". Returns signed
/// nanoseconds; errors in Go's words (`time: invalid duration "abc"`, `time: missing unit in
/// duration "5"`, `time: unknown unit "x" in duration "5x"`), overflow past int64 included.
pub fn parse_go_duration(orig: &str) -> Result<i64, String> {
    const LIMIT: u64 = 1 << 63;
    let invalid = || format!("time: invalid duration {}", go_time_quote(orig));
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some((&c, rest)) = s.split_first()
        && (c == b'-' || c == b'+')
    {
        neg = c == b'-';
        s = rest;
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // The integer part; overflow is an invalid duration.
        let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &s[..digits] {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(c - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
        }
        let pre = digits > 0;
        s = &s[digits..];
        // The fraction: digits past what fits are read and ignored, as Go's leadingFraction.
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for &c in &s[..digits] {
                if overflow || f > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = f * 10 + u64::from(c - b'0');
                if y > LIMIT {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10.0;
            }
            post = digits > 0;
            s = &s[digits..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        let unit_len = s
            .iter()
            .take_while(|&&c| c != b'.' && !c.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                go_time_quote(orig)
            ));
        }
        let (unit_bytes, rest) = s.split_at(unit_len);
        s = rest;
        let unit: u64 = match unit_bytes {
            b"ns" => 1,
            // us, µs (U+00B5 micro sign) and μs (U+03BC Greek mu).
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            other => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_time_quote(&String::from_utf8_lossy(other)),
                    go_time_quote(orig)
                ));
            }
        };
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            // Go's float64 arithmetic; `as` saturates where Go's conversion would not matter.
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        d += v;
        if d > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((d as i64).wrapping_neg());
    }
    if d > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(d as i64)
}

/// The `time` package's quote: ASCII as is (`"` and `\` escaped), other bytes as `\xNN`.
fn go_time_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c.is_ascii() && c >= ' ' {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out.push('"');
    out
}

/// The first value of a query parameter, percent-decoded.
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query_params(query)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// All query parameters in order, percent-decoded (`+` is a space, as in Go's url.ParseQuery).
pub fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

/// Decoded query parameters, read the way Go's `url.Values` conversions read them.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        Params(query_params(query))
    }

    /// The first value of `key` (Go's `Convert_Slice_string_To_string`); later ones are ignored.
    pub fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order (Go's slice parameters: `dryRun`).
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean parameter (`go_bool` of its first value); None when absent.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.first(key).map(go_bool)
    }

    /// An integer parameter (`parse_int64` of its first value); None when absent.
    pub fn int64(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.first(key).map(parse_int64).transpose()
    }
}

fn decode_component(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = query_params(Some("labelSelector=a%20in%20(b%2Cc)&x=1+2&flag"));
        assert_eq!(q[0], ("labelSelector".into(), "a in (b,c)".into()));
        assert_eq!(q[1], ("x".into(), "1 2".into()));
        assert_eq!(q[2], ("flag".into(), "".into()));
        assert_eq!(parse_bool("T"), Some(true));
        assert_eq!(parse_bool("yes"), None);
    }

    /// runtime.Convert_Slice_string_To_bool: only "0" and "false" (any case) are false.
    #[test]
    fn go_booleans() {
        for t in ["", "1", "true", "maybe", "T", "yes", "f", "no", " false"] {
            assert!(go_bool(t), "{t:?}");
        }
        for f in ["0", "false", "FALSE", "fAlSe"] {
            assert!(!go_bool(f), "{f:?}");
        }
        let p = Params::parse(Some("watch=0&watch=1&b=&dryRun=All&dryRun="));
        assert_eq!(p.bool("watch"), Some(false));
        assert_eq!(p.bool("b"), Some(true));
        assert_eq!(p.bool("absent"), None);
        assert_eq!(p.all("dryRun"), ["All", ""]);
    }

    /// strconv.ParseInt(v, 10, 64) and its error words.
    #[test]
    fn go_integers() {
        assert_eq!(parse_int64("+5").unwrap(), 5);
        assert_eq!(parse_int64("-5").unwrap(), -5);
        assert_eq!(parse_int64("007").unwrap(), 7);
        for (bad, why) in [
            ("", "invalid syntax"),
            ("+", "invalid syntax"),
            (" 5", "invalid syntax"),
            ("5 ", "invalid syntax"),
            ("1_000", "invalid syntax"),
            ("0x10", "invalid syntax"),
            ("++5", "invalid syntax"),
            ("9223372036854775808", "value out of range"),
            ("-99999999999999999999", "value out of range"),
        ] {
            let e = parse_int64(bad).unwrap_err();
            assert_eq!(
                (e.code, e.message),
                (400, format!("strconv.ParseInt: parsing {bad:?}: {why}"))
            );
        }
        let p = Params::parse(Some("limit=1&limit=x"));
        assert_eq!(p.int64("limit").unwrap(), Some(1));
    }

    /// time.ParseDuration's results and words (Go 1.25).
    #[test]
    fn go_durations() {
        for (text, ns) in [
            ("0", 0),
            ("-0", 0),
            ("5s", 5_000_000_000),
            ("+5s", 5_000_000_000),
            ("-5s", -5_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1.5h", 5_400_000_000_000),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("500µs", 500_000),
            ("500μs", 500_000),
            ("10ns", 10),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("1.00000000000000000000000001s", 1_000_000_000),
        ] {
            assert_eq!(parse_go_duration(text), Ok(ns), "{text}");
        }
        for (text, err) in [
            ("", r#"time: invalid duration """#),
            ("abc", r#"time: invalid duration "abc""#),
            ("-", r#"time: invalid duration "-""#),
            (".s", r#"time: invalid duration ".s""#),
            ("5", r#"time: missing unit in duration "5""#),
            ("1s5", r#"time: missing unit in duration "1s5""#),
            ("5x", r#"time: unknown unit "x" in duration "5x""#),
            ("5 s", r#"time: unknown unit " s" in duration "5 s""#),
            (
                "5é",
                r#"time: unknown unit "\xc3\xa9" in duration "5\xc3\xa9""#,
            ),
            (
                "9223372036854775808ns",
                r#"time: invalid duration "9223372036854775808ns""#,
            ),
            (
                "99999999999999999999s",
                r#"time: invalid duration "99999999999999999999s""#,
            ),
            ("3000000h", r#"time: invalid duration "3000000h""#),
        ] {
            assert_eq!(parse_go_duration(text), Err(err.to_string()), "{text}");
        }
    }
}
