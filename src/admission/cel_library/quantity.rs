//! Kubernetes' CEL quantity library (`k8s.io/apiserver/pkg/cel/library/quantity.go`) over
//! `resource.Quantity`'s parser and exact arithmetic (`k8s.io/apimachinery/pkg/api/resource`).
//!
//! A quantity is held as the exact decimal `unscaled × 10^exp`, as Go's `inf.Dec` holds it.
//! Differences from Go, both where Go's answer is plainly wrong or unbounded:
//! - `isInteger()`/`asInteger()` go by the value: Go answers by its internal representation,
//!   so that `quantity('1.0')`, `quantity('1000m')` and `quantity('-9223372036854775808')` are
//!   not integers there although `quantity('1000m') == quantity('1')`.
//! - A mantissa longer than `MAX_DIGITS` digits, and a sum whose operands lie more than
//!   `MAX_DIGITS` decimal places apart (`quantity('1e2000000000').add(1)`), are errors: Go
//!   would build numbers of billions of digits.

use std::cmp::Ordering;

use cel::common::types::{CelBool, CelDouble, CelInt, CelString, Type};
use cel::{DeclarationError, Env, ExecutionError};
use num_bigint::{BigInt, Sign};

/// The CEL type of quantities, named as in Go.
pub static QUANTITY_TYPE: Type = Type::new_unspecified_type("kubernetes.Quantity");

/// The most mantissa digits a quantity, or the alignment of two for a sum, may take.
const MAX_DIGITS: i64 = 1000;

/// Go's `ErrFormatWrong` message.
const FORMAT_WRONG: &str = "quantities must match the regular expression \
     '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// Go's `ErrSuffix` message.
const SUFFIX_WRONG: &str = "unable to parse quantity's suffix";

/// An exact quantity: `unscaled × 10^exp`; `exp >= -9` for parsed ones (Go rounds to nano).
#[derive(Debug, Clone)]
pub struct Quantity {
    unscaled: BigInt,
    exp: i64,
}

impl Quantity {
    /// Parse as Go's `resource.ParseQuantity`: `[+-]digits[.digits][suffix]`, the suffix one of
    /// `n u m "" k M G T P E`, `Ki … Ei`, or `e`/`E` and an int64 exponent (truncated to int32,
    /// as Go does). Values are rounded up (away from zero) to a multiple of 1n, and binary-SI
    /// magnitudes capped at the int64 maximum. Errors are Go's messages.
    pub fn parse(s: &str) -> Result<Quantity, String> {
        if s.is_empty() {
            return Err(FORMAT_WRONG.into());
        }
        let b = s.as_bytes();
        let mut pos = 0;
        let negative = b[0] == b'-';
        if matches!(b[0], b'-' | b'+') {
            pos = 1;
        }
        let digits =
            |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
        let num_end = digits(pos);
        let num = &s[pos..num_end];
        let mut denom = "";
        pos = num_end;
        if b.get(pos) == Some(&b'.') {
            let end = digits(pos + 1);
            denom = &s[pos + 1..end];
            pos = end;
        }
        let suffix_start = pos;
        pos += b[pos..]
            .iter()
            .take_while(|c| b"eEinumkKMGTP".contains(c))
            .count();
        if matches!(b.get(pos), Some(b'+' | b'-')) {
            pos += 1;
        }
        if digits(pos) != b.len() {
            return Err(FORMAT_WRONG.into());
        }
        let (binary, exponent) = interpret_suffix(&s[suffix_start..]).ok_or(SUFFIX_WRONG)?;
        let mantissa = format!("{num}{denom}");
        let mantissa = mantissa.trim_start_matches('0');
        if mantissa.len() as i64 > MAX_DIGITS {
            return Err(format!("quantity has more than {MAX_DIGITS} digits"));
        }
        let mut unscaled: BigInt = if mantissa.is_empty() {
            BigInt::ZERO
        } else {
            mantissa.parse().map_err(|_| FORMAT_WRONG.to_string())?
        };
        let mut exp = -(denom.len() as i64);
        if binary {
            unscaled <<= exponent as usize;
        } else {
            exp += exponent;
        }
        if negative {
            unscaled = -unscaled;
        }
        let mut q = Quantity { unscaled, exp }.round_up_to_nano();
        if binary && q.unscaled.magnitude() > &max_int64_at(q.exp) {
            q = Quantity {
                unscaled: BigInt::from(i64::MAX) * q.unscaled.sign_i64(),
                exp: 0,
            };
        }
        Ok(q)
    }

    /// Go's `Quantity.Sign`: -1, 0 or 1.
    pub fn sign(&self) -> i64 {
        self.unscaled.sign_i64()
    }

    /// Go's `Quantity.Cmp`, by value. Cheap whatever the exponents: magnitudes of different
    /// length are ordered by their length, and equal lengths align within `MAX_DIGITS`.
    pub fn cmp(&self, other: &Quantity) -> Ordering {
        let (a, b) = (self.sign(), other.sign());
        if a != b || a == 0 {
            return a.cmp(&b);
        }
        let magnitude_order = self.magnitude_digits().cmp(&other.magnitude_digits());
        let order = if magnitude_order != Ordering::Equal {
            magnitude_order
        } else {
            let exp = self.exp.min(other.exp);
            self.scaled_to(exp)
                .magnitude()
                .cmp(other.scaled_to(exp).magnitude())
        };
        if a < 0 { order.reverse() } else { order }
    }

    /// Go's `Quantity.Add` (exact); `sub` negates `other` first. Errors when the operands lie
    /// more than `MAX_DIGITS` decimal places apart.
    pub fn add(&self, other: &Quantity, sub: bool) -> Result<Quantity, String> {
        if other.sign() == 0 {
            return Ok(self.clone());
        }
        let other_unscaled = if sub {
            -other.unscaled.clone()
        } else {
            other.unscaled.clone()
        };
        if self.sign() == 0 {
            return Ok(Quantity {
                unscaled: other_unscaled,
                exp: other.exp,
            });
        }
        if (self.exp - other.exp).abs() > MAX_DIGITS {
            return Err(format!(
                "quantities more than {MAX_DIGITS} decimal places apart cannot be added"
            ));
        }
        let exp = self.exp.min(other.exp);
        let other = Quantity {
            unscaled: other_unscaled,
            exp: other.exp,
        };
        Ok(Quantity {
            unscaled: self.scaled_to(exp) + other.scaled_to(exp),
            exp,
        })
    }

    /// The value as an int64 if it is a whole number in int64's range.
    pub fn as_i64(&self) -> Option<i64> {
        if self.sign() == 0 {
            return Some(0);
        }
        if self.magnitude_digits() > 19 {
            return None;
        }
        let whole = if self.exp >= 0 {
            self.scaled_to(0)
        } else {
            let divisor = pow10(-self.exp);
            if &self.unscaled % &divisor != BigInt::ZERO {
                return None;
            }
            &self.unscaled / divisor
        };
        i64::try_from(&whole).ok()
    }

    /// Go's `AsApproximateFloat64`: the unscaled value as a float times `10^exp`
    /// (±Inf beyond float range, 0 below it).
    pub fn as_approximate_float(&self) -> f64 {
        let base: f64 = self.unscaled.to_string().parse().unwrap_or(f64::NAN);
        if self.exp == 0 {
            return base;
        }
        base * 10f64.powi(self.exp.clamp(-400, 400) as i32)
    }

    /// The unscaled value at exponent `exp <= self.exp` (callers bound `self.exp - exp`).
    fn scaled_to(&self, exp: i64) -> BigInt {
        &self.unscaled * pow10(self.exp - exp)
    }

    /// Digits of the magnitude left of the decimal point, as if written out: `exp` plus the
    /// unscaled digits (nonzero values only).
    fn magnitude_digits(&self) -> i64 {
        self.unscaled.magnitude().to_string().len() as i64 + self.exp
    }

    /// Go's `amount.Round(amount, Nano, inf.RoundUp)` on the magnitude.
    fn round_up_to_nano(self) -> Quantity {
        if self.exp >= -9 || self.sign() == 0 {
            return self;
        }
        let sign = self.sign();
        let drop = -9 - self.exp;
        let digits = self.unscaled.magnitude().to_string().len() as i64;
        let magnitude = if drop > digits {
            BigInt::from(1)
        } else {
            let divisor = pow10(drop);
            let m = BigInt::from_biguint(Sign::Plus, self.unscaled.magnitude().clone());
            let (q, r) = (&m / &divisor, &m % &divisor);
            if r == BigInt::ZERO { q } else { q + 1 }
        };
        Quantity {
            unscaled: magnitude * sign,
            exp: -9,
        }
    }
}

trait SignI64 {
    fn sign_i64(&self) -> i64;
}

impl SignI64 for BigInt {
    fn sign_i64(&self) -> i64 {
        match self.sign() {
            Sign::Minus => -1,
            Sign::NoSign => 0,
            Sign::Plus => 1,
        }
    }
}

/// `10^n` for `0 <= n`, callers keeping `n` within a few `MAX_DIGITS`.
fn pow10(n: i64) -> BigInt {
    BigInt::from(10u32).pow(n as u32)
}

/// `i64::MAX` expressed as an unscaled magnitude at exponent `exp` (rounded up when `exp > 0`:
/// only used for the binary-SI cap, where `exp` is 0 or the nano rounding's -9).
fn max_int64_at(exp: i64) -> num_bigint::BigUint {
    let max = BigInt::from(i64::MAX);
    let scaled = if exp <= 0 {
        max * pow10(-exp)
    } else {
        max / pow10(exp) + 1
    };
    scaled.magnitude().clone()
}

/// Go's `suffixHandler.interpret`: `(binary, exponent)`, or `None` for an unknown suffix.
fn interpret_suffix(suffix: &str) -> Option<(bool, i64)> {
    let decimal = ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"];
    if let Some(i) = decimal.iter().position(|s| *s == suffix) {
        return Some((false, 3 * i as i64 - 9));
    }
    let binary = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if let Some(i) = binary.iter().position(|s| *s == suffix) {
        return Some((true, 10 * (i as i64 + 1)));
    }
    let rest = suffix.strip_prefix(['e', 'E']).filter(|r| !r.is_empty())?;
    // Go: `int32(strconv.ParseInt(rest, 10, 64))`, truncation included.
    rest.parse::<i64>().ok().map(|e| (false, e as i32 as i64))
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

opaque_val!(Quantity, QUANTITY_TYPE);

fn err(function: &str, e: String) -> ExecutionError {
    ExecutionError::function_error(function, e)
}

fn quantity(s: &CelString<'_>) -> Result<Quantity, ExecutionError> {
    Quantity::parse(s.inner()).map_err(|e| err("quantity", e))
}

fn is_quantity(s: &CelString<'_>) -> CelBool {
    Quantity::parse(s.inner()).is_ok().into()
}

fn sign(q: &Quantity) -> CelInt {
    q.sign().into()
}

fn is_integer(q: &Quantity) -> CelBool {
    q.as_i64().is_some().into()
}

fn as_integer(q: &Quantity) -> Result<CelInt, ExecutionError> {
    q.as_i64()
        .map(CelInt::from)
        .ok_or_else(|| err("asInteger", "cannot convert value to integer".into()))
}

fn as_approximate_float(q: &Quantity) -> CelDouble {
    q.as_approximate_float().into()
}

fn compare_to(q: &Quantity, other: &Quantity) -> CelInt {
    (q.cmp(other) as i64).into()
}

fn is_less_than(q: &Quantity, other: &Quantity) -> CelBool {
    (q.cmp(other) == Ordering::Less).into()
}

fn is_greater_than(q: &Quantity, other: &Quantity) -> CelBool {
    (q.cmp(other) == Ordering::Greater).into()
}

fn add(q: &Quantity, other: &Quantity) -> Result<Quantity, ExecutionError> {
    q.add(other, false).map_err(|e| err("add", e))
}

fn sub(q: &Quantity, other: &Quantity) -> Result<Quantity, ExecutionError> {
    q.add(other, true).map_err(|e| err("sub", e))
}

fn of_int(i: &CelInt) -> Quantity {
    Quantity {
        unscaled: BigInt::from(*i.inner()),
        exp: 0,
    }
}

fn add_int(q: &Quantity, i: &CelInt) -> Result<Quantity, ExecutionError> {
    q.add(&of_int(i), false).map_err(|e| err("add", e))
}

fn sub_int(q: &Quantity, i: &CelInt) -> Result<Quantity, ExecutionError> {
    q.add(&of_int(i), true).map_err(|e| err("sub", e))
}

/// Registers Go's quantity library: `quantity(string)`, `isQuantity(string)`,
/// `sign(quantity)` (a global function in Go, not a method), and the methods
/// `isInteger asInteger asApproximateFloat compareTo isLessThan isGreaterThan add sub`.
pub fn library(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(QUANTITY_TYPE.to_owned())?;
    cel::add_overload!(env, fn quantity: (CelString) -> Result<Quantity>)?;
    cel::add_overload!(env, fn is_quantity: (CelString) -> CelBool, name = "isQuantity")?;
    cel::add_overload!(env, fn sign: (Quantity) -> CelInt, id = "quantity_sign")?;
    cel::add_member_overload!(env, fn is_integer: (Quantity) -> CelBool)?;
    cel::add_member_overload!(env, fn as_integer: (Quantity) -> Result<CelInt>)?;
    cel::add_member_overload!(env, fn as_approximate_float: (Quantity) -> CelDouble)?;
    cel::add_member_overload!(env, fn compare_to: (Quantity, Quantity) -> CelInt)?;
    cel::add_member_overload!(env, fn is_less_than: (Quantity, Quantity) -> CelBool)?;
    cel::add_member_overload!(env, fn is_greater_than: (Quantity, Quantity) -> CelBool)?;
    cel::add_member_overload!(env, fn add: (Quantity, Quantity) -> Result<Quantity>)?;
    cel::add_member_overload!(env, fn add_int: (Quantity, CelInt) -> Result<Quantity>, name = "add")?;
    cel::add_member_overload!(env, fn sub: (Quantity, Quantity) -> Result<Quantity>)?;
    cel::add_member_overload!(env, fn sub_int: (Quantity, CelInt) -> Result<Quantity>, name = "sub")?;
    Ok(())
}
