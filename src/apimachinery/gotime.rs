//! Go's `time.Parse(time.RFC3339, s)`, the parser behind `metav1.Time`'s JSON decoding, with
//! Go's exact error texts: a request carrying a malformed timestamp is refused with the words
//! Go's decoder uses (`parsing time "x" as "2006-01-02T15:04:05Z07:00": cannot parse "x" as
//! "2006"`, `parsing time "2020-13-01T00:00:00Z": month out of range`).
//!
//! Mirrors `$GOROOT/src/time/format.go` (`parse`, `getnum`, `skip`, `parseNanoseconds`,
//! `ParseError.Error`, `quote`) for the one layout RFC 3339 is. Go's fast path
//! (`parseRFC3339`) accepts a subset of what the general parser accepts, and every error comes
//! from the general parser, so only the latter is needed.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// `time.RFC3339`.
pub const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

/// The layout's elements in order: literal text before each, then the element itself.
const CHUNKS: &[(&str, Elem)] = &[
    ("", Elem::LongYear),
    ("-", Elem::ZeroMonth),
    ("-", Elem::ZeroDay),
    ("T", Elem::Hour),
    (":", Elem::ZeroMinute),
    (":", Elem::ZeroSecond),
    ("", Elem::Iso8601ColonTz),
];

#[derive(Clone, Copy)]
enum Elem {
    LongYear,
    ZeroMonth,
    ZeroDay,
    Hour,
    ZeroMinute,
    ZeroSecond,
    Iso8601ColonTz,
}

impl Elem {
    /// The element as the layout spells it (Go's `stdstr`).
    fn text(self) -> &'static str {
        match self {
            Elem::LongYear => "2006",
            Elem::ZeroMonth => "01",
            Elem::ZeroDay => "02",
            Elem::Hour => "15",
            Elem::ZeroMinute => "04",
            Elem::ZeroSecond => "05",
            Elem::Iso8601ColonTz => "Z07:00",
        }
    }
}

/// Go's `time.quote`: ASCII printable bytes as they are (`"` and `\` escaped), every other byte
/// of a non-ASCII or control character as `\xNN`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if (c as u32) < 0x20 || (c as u32) >= 0x80 {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Go's `ParseError.Error()` without a message: which part of the value failed which element.
fn cannot_parse(value: &str, value_elem: &str, layout_elem: &str) -> String {
    format!(
        "parsing time {} as {}: cannot parse {} as {}",
        quote(value),
        quote(RFC3339),
        quote(value_elem),
        quote(layout_elem)
    )
}

/// Go's `ParseError.Error()` with a message (`: month out of range`).
fn with_message(value: &str, message: &str) -> String {
    format!("parsing time {}{message}", quote(value))
}

fn digit(s: &[u8], i: usize) -> bool {
    s.get(i).is_some_and(u8::is_ascii_digit)
}

/// Go's `getnum`: one or two digits (`fixed`: exactly two).
fn getnum(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    if !digit(s, 0) {
        return None;
    }
    if !digit(s, 1) {
        if fixed {
            return None;
        }
        return Some((i64::from(s[0] - b'0'), &s[1..]));
    }
    Some((
        i64::from(s[0] - b'0') * 10 + i64::from(s[1] - b'0'),
        &s[2..],
    ))
}

/// Go's `atoi` on the layout's four-digit year (an optional sign, then digits only).
fn atoi(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Four bytes at most: no overflow.
    let x = digits
        .iter()
        .fold(0i64, |x, d| x * 10 + i64::from(d - b'0'));
    Some(if neg { -x } else { x })
}

fn days_in(month: i64, year: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses `value` as Go's `time.Parse(time.RFC3339, value)` does. The error is Go's
/// `ParseError` text. Years Go accepts but `time` cannot hold (negative ones, via `-` in the
/// year) are out of range for Kubernetes too; they are refused with Go's `year out of range`
/// wording of `Time.MarshalJSON`.
pub fn parse_rfc3339(value: &str) -> Result<OffsetDateTime, String> {
    let whole = value;
    let mut v = value.as_bytes();
    let (mut year, mut month, mut day, mut hour, mut min, mut sec) = (0, -1, -1, 0, 0, 0);
    let mut nanos = 0i64;
    let mut offset: Option<i64> = None;
    // Byte offsets always land on char boundaries: only ASCII bytes are ever consumed.
    let rest = |v: &[u8]| whole[whole.len() - v.len()..].to_string();
    for (prefix, elem) in CHUNKS {
        for p in prefix.bytes() {
            if v.first() != Some(&p) {
                return Err(cannot_parse(whole, &rest(v), prefix));
            }
            v = &v[1..];
        }
        let hold = v;
        let mut range = "";
        let ok = match elem {
            Elem::LongYear => {
                if v.len() < 4 || !digit(v, 0) {
                    None
                } else {
                    let y = atoi(&v[..4]);
                    v = &v[4..];
                    y.map(|y| year = y)
                }
            }
            Elem::ZeroMonth => getnum(v, true).map(|(m, r)| {
                month = m;
                v = r;
                if !(1..=12).contains(&m) {
                    range = "month";
                }
            }),
            Elem::ZeroDay => getnum(v, true).map(|(d, r)| {
                day = d;
                v = r;
            }),
            Elem::Hour => getnum(v, false).map(|(h, r)| {
                hour = h;
                v = r;
                if h >= 24 {
                    range = "hour";
                }
            }),
            Elem::ZeroMinute => getnum(v, true).map(|(m, r)| {
                min = m;
                v = r;
                if m >= 60 {
                    range = "minute";
                }
            }),
            Elem::ZeroSecond => getnum(v, true).map(|(s, r)| {
                sec = s;
                v = r;
                if s >= 60 {
                    range = "second";
                } else if v.len() >= 2 && matches!(v[0], b'.' | b',') && digit(v, 1) {
                    // A fractional second the layout does not name: any number of digits.
                    let n = 1 + v[1..].iter().take_while(|b| b.is_ascii_digit()).count();
                    let frac = &v[1..n.min(10)];
                    let scale = 10i64.pow(9 - frac.len() as u32);
                    nanos = frac.iter().fold(0i64, |x, d| x * 10 + i64::from(d - b'0')) * scale;
                    v = &v[n..];
                }
            }),
            Elem::Iso8601ColonTz => {
                if v.first() == Some(&b'Z') {
                    v = &v[1..];
                    offset = Some(0);
                    Some(())
                } else if v.len() < 6 || v[3] != b':' {
                    None
                } else {
                    let (sign, h, m) = (v[0], &v[1..3], &v[4..6]);
                    v = &v[6..];
                    match (getnum(h, true), getnum(m, true)) {
                        (Some((h, _)), Some((m, _))) => {
                            if h > 24 {
                                range = "time zone offset hour";
                            }
                            if m > 60 {
                                range = "time zone offset minute";
                            }
                            let secs = (h * 60 + m) * 60;
                            let signed = match sign {
                                b'+' => Some(secs),
                                b'-' => Some(-secs),
                                _ => None,
                            };
                            offset = signed;
                            signed.map(|_| ())
                        }
                        _ => None,
                    }
                }
            }
        };
        if !range.is_empty() {
            return Err(with_message(whole, &format!(": {range} out of range")));
        }
        if ok.is_none() {
            return Err(cannot_parse(whole, &rest(hold), elem.text()));
        }
    }
    if !v.is_empty() {
        let extra = rest(v);
        return Err(with_message(
            whole,
            &format!(": extra text: {}", quote(&extra)),
        ));
    }
    if day < 1 || day > days_in(month, year) {
        return Err(with_message(whole, ": day out of range"));
    }
    build(
        year,
        month,
        day,
        (hour, min, sec, nanos),
        offset.unwrap_or(0),
    )
    .ok_or_else(|| with_message(whole, ": year out of range"))
}

/// The instant, in UTC. Go normalises an offset of 24 hours or 60 minutes rather than refusing
/// it; so does this (the offset is applied as seconds).
fn build(
    year: i64,
    month: i64,
    day: i64,
    (hour, min, sec, nanos): (i64, i64, i64, i64),
    offset: i64,
) -> Option<OffsetDateTime> {
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let time = Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(min).ok()?,
        u8::try_from(sec).ok()?,
        u32::try_from(nanos).ok()?,
    )
    .ok()?;
    let utc = PrimitiveDateTime::new(date, time).assume_offset(UtcOffset::UTC);
    utc.checked_sub(time::Duration::seconds(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each text was produced by Go 1.26's `time.Parse(time.RFC3339, s)` (the Go sample-apiserver
    /// answered the first few with the same words).
    #[test]
    fn errors_are_go_s() {
        let cases = [
            (
                "garbage",
                r#"parsing time "garbage" as "2006-01-02T15:04:05Z07:00": cannot parse "garbage" as "2006""#,
            ),
            (
                "",
                r#"parsing time "" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "2006""#,
            ),
            (
                "2020-13-45T99:00:00Z",
                r#"parsing time "2020-13-45T99:00:00Z": month out of range"#,
            ),
            (
                "2020-01-01",
                r#"parsing time "2020-01-01" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "T""#,
            ),
            (
                "2020-01-01T00:00:00",
                r#"parsing time "2020-01-01T00:00:00" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "Z07:00""#,
            ),
            (
                "2020-02-30T00:00:00Z",
                r#"parsing time "2020-02-30T00:00:00Z": day out of range"#,
            ),
            (
                "2020-01-01T25:00:00Z",
                r#"parsing time "2020-01-01T25:00:00Z": hour out of range"#,
            ),
            (
                "2020-01-01T00:00:00+25:00",
                r#"parsing time "2020-01-01T00:00:00+25:00": time zone offset hour out of range"#,
            ),
            (
                "2020-01-01 00:00:00Z",
                r#"parsing time "2020-01-01 00:00:00Z" as "2006-01-02T15:04:05Z07:00": cannot parse " 00:00:00Z" as "T""#,
            ),
            (
                "2020-01-01T00:00:00Zjunk",
                r#"parsing time "2020-01-01T00:00:00Zjunk": extra text: "junk""#,
            ),
            (
                "2020-01-01T00:60:00Z",
                r#"parsing time "2020-01-01T00:60:00Z": minute out of range"#,
            ),
            (
                "2020-01-01T00:00:60Z",
                r#"parsing time "2020-01-01T00:00:60Z": second out of range"#,
            ),
            (
                "2020-1-01T00:00:00Z",
                r#"parsing time "2020-1-01T00:00:00Z" as "2006-01-02T15:04:05Z07:00": cannot parse "1-01T00:00:00Z" as "01""#,
            ),
            (
                "2020-01-01T00:00:00+0100",
                r#"parsing time "2020-01-01T00:00:00+0100" as "2006-01-02T15:04:05Z07:00": cannot parse "+0100" as "Z07:00""#,
            ),
            (
                "2020-01-01T00:00:00*01:00",
                r#"parsing time "2020-01-01T00:00:00*01:00" as "2006-01-02T15:04:05Z07:00": cannot parse "*01:00" as "Z07:00""#,
            ),
            (
                "é2020",
                r#"parsing time "\xc3\xa92020" as "2006-01-02T15:04:05Z07:00": cannot parse "\xc3\xa92020" as "2006""#,
            ),
            (
                "2020-01-01T00:00:00+01:61",
                r#"parsing time "2020-01-01T00:00:00+01:61": time zone offset minute out of range"#,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_rfc3339(input).unwrap_err(), want, "{input:?}");
        }
    }

    #[test]
    fn valid_times_are_instants() {
        let t = parse_rfc3339("2020-01-01T01:30:00+01:00").unwrap();
        assert_eq!(t.unix_timestamp(), 1_577_838_600);
        let t = parse_rfc3339("2020-01-01T00:00:00.123456789Z").unwrap();
        assert_eq!(t.nanosecond(), 123_456_789);
        // Go's general parser takes a one-digit hour and a 24-hour offset.
        assert!(parse_rfc3339("2020-01-01T1:00:00Z").is_ok());
        assert!(parse_rfc3339("2020-01-01T00:00:00+24:00").is_ok());
        assert!(parse_rfc3339("2020-02-29T00:00:00Z").is_ok());
    }
}
