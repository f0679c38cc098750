//! Kubernetes' CEL IP and CIDR libraries (`k8s.io/apiserver/pkg/cel/library/ip.go`,
//! `cidr.go`) on `std::net`, with Go's `netip` rules: no zones, no IPv4-mapped IPv6
//! addresses, no leading zeros in IPv4 octets or prefix lengths.

use std::net::IpAddr;

use cel::common::types::{CelBool, CelInt, CelString, Type};
use cel::{DeclarationError, Env, ExecutionError};

/// The CEL types, named as in Go.
pub static IP_TYPE: Type = Type::new_unspecified_type("net.IP");
pub static CIDR_TYPE: Type = Type::new_unspecified_type("net.CIDR");

/// An IP address (Go's `apiservercel.IP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ip(IpAddr);

/// A prefix as written, the address not masked (Go's `netip.Prefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

/// Go's `parseIPAddr`; errors are Go's messages (the parser's own reason is Rust's).
fn parse_ip(s: &str) -> Result<IpAddr, String> {
    if s.contains('%') {
        return Err(format!("IP address {s:?} with zone value is not allowed"));
    }
    let addr: IpAddr = s
        .parse()
        .map_err(|e| format!("IP Address {s:?} parse error during conversion from string: {e}"))?;
    if let IpAddr::V6(v6) = addr
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(format!("IPv4-mapped IPv6 address {s:?} is not allowed"));
    }
    Ok(addr)
}

/// Go's `parseCIDR`: `address/bits`, bits in decimal without leading zeros and within the
/// family's length.
fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let fail =
        |e: String| format!("network address parse error during conversion from string: {e}");
    let (addr, bits) = s
        .rsplit_once('/')
        .ok_or_else(|| fail(format!("netip.ParsePrefix({s:?}): no '/'")))?;
    let addr = parse_ip(addr).map_err(|e| fail(e.replace(addr, s)))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits
        .parse::<u8>()
        .ok()
        .filter(|b| *b <= max && bits.bytes().all(|c| c.is_ascii_digit()))
        .filter(|b| *b == 0 && bits == "0" || !bits.starts_with('0'))
        .ok_or_else(|| {
            fail(format!(
                "netip.ParsePrefix({s:?}): bad bits after slash: {bits:?}"
            ))
        })?;
    Ok(Cidr { addr, bits })
}

/// The address as a 128-bit number and its length in bits, for prefix arithmetic.
fn bits_of(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

impl Cidr {
    /// The address with the bits past the prefix cleared.
    fn masked_addr(&self) -> IpAddr {
        let (n, len) = bits_of(self.addr);
        let keep = if self.bits == 0 {
            0
        } else {
            u128::MAX << (len - self.bits) & (u128::MAX >> (128 - len))
        };
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(((n & keep) as u32).into()),
            IpAddr::V6(_) => IpAddr::V6((n & keep).into()),
        }
    }

    /// Go's `Prefix.Contains`: same family, same leading `bits`.
    fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.addr.is_ipv4()
            && Cidr {
                addr,
                bits: self.bits,
            }
            .masked_addr()
                == self.masked_addr()
    }
}

opaque_val!(Ip, IP_TYPE);
opaque_val!(Cidr, CIDR_TYPE);

fn ip(s: &CelString<'_>) -> Result<Ip, ExecutionError> {
    parse_ip(s.inner())
        .map(Ip)
        .map_err(|e| ExecutionError::function_error("ip", e))
}

fn is_ip(s: &CelString<'_>) -> CelBool {
    parse_ip(s.inner()).is_ok().into()
}

/// `ip.isCanonical(s)`: `s` is written as Go (and RFC 5952) would write the address.
fn is_canonical(s: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    let addr =
        parse_ip(s.inner()).map_err(|e| ExecutionError::function_error("ip.isCanonical", e))?;
    Ok((addr.to_string() == s.inner()).into())
}

fn ip_string(ip: &Ip) -> CelString<'static> {
    ip.0.to_string().into()
}

fn family(ip: &Ip) -> CelInt {
    if ip.0.is_ipv4() { 4 } else { 6 }.into()
}

fn is_unspecified(ip: &Ip) -> CelBool {
    ip.0.is_unspecified().into()
}

fn is_loopback(ip: &Ip) -> CelBool {
    ip.0.is_loopback().into()
}

/// Go: 224.0.0.0/24 and ff02::/16.
fn is_link_local_multicast(ip: &Ip) -> CelBool {
    match ip.0 {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.segments()[0] == 0xff02,
    }
    .into()
}

/// Go: 169.254.0.0/16 and fe80::/10.
fn link_local_unicast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn is_link_local_unicast(ip: &Ip) -> CelBool {
    link_local_unicast(ip.0).into()
}

/// Go's `IsGlobalUnicast`: none of unspecified, loopback, multicast, link-local unicast and
/// the IPv4 broadcast address (private ranges count as global).
fn is_global_unicast(ip: &Ip) -> CelBool {
    let a = ip.0;
    let broadcast = matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
    (!(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || broadcast
        || link_local_unicast(a)))
    .into()
}

fn cidr(s: &CelString<'_>) -> Result<Cidr, ExecutionError> {
    parse_cidr(s.inner()).map_err(|e| ExecutionError::function_error("cidr", e))
}

fn is_cidr(s: &CelString<'_>) -> CelBool {
    parse_cidr(s.inner()).is_ok().into()
}

fn contains_ip(c: &Cidr, ip: &Ip) -> CelBool {
    c.contains(ip.0).into()
}

fn contains_ip_string(c: &Cidr, s: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    let addr = parse_ip(s.inner()).map_err(|e| ExecutionError::function_error("containsIP", e))?;
    Ok(c.contains(addr).into())
}

/// Go: the prefixes overlap and `other` is at least as long.
fn contains_cidr(c: &Cidr, other: &Cidr) -> CelBool {
    (c.bits <= other.bits && c.contains(other.addr)).into()
}

fn contains_cidr_string(c: &Cidr, s: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    let other =
        parse_cidr(s.inner()).map_err(|e| ExecutionError::function_error("containsCIDR", e))?;
    Ok(contains_cidr(c, &other))
}

fn cidr_ip(c: &Cidr) -> Ip {
    Ip(c.addr)
}

fn prefix_length(c: &Cidr) -> CelInt {
    i64::from(c.bits).into()
}

fn masked(c: &Cidr) -> Cidr {
    Cidr {
        addr: c.masked_addr(),
        bits: c.bits,
    }
}

fn cidr_string(c: &Cidr) -> CelString<'static> {
    format!("{}/{}", c.addr, c.bits).into()
}

/// Registers Go's IP and CIDR libraries: `ip(string)`, `isIP(string)`,
/// `ip.isCanonical(string)`, `string(ip)`, and on IPs `family isUnspecified isLoopback
/// isLinkLocalMulticast isLinkLocalUnicast isGlobalUnicast`; `cidr(string)`,
/// `isCIDR(string)`, `string(cidr)`, and on CIDRs `containsIP(ip|string)`,
/// `containsCIDR(cidr|string)`, `ip() prefixLength() masked()`.
pub fn library(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(IP_TYPE.to_owned())?;
    env.add_type(CIDR_TYPE.to_owned())?;
    cel::add_overload!(env, fn ip: (CelString) -> Result<Ip>)?;
    cel::add_overload!(env, fn is_ip: (CelString) -> CelBool, name = "isIP")?;
    cel::add_overload!(env, fn is_canonical: (CelString) -> Result<CelBool>, name = "ip.isCanonical")?;
    cel::add_overload!(env, fn ip_string: (Ip) -> CelString, name = "string")?;
    cel::add_member_overload!(env, fn family: (Ip) -> CelInt)?;
    cel::add_member_overload!(env, fn is_unspecified: (Ip) -> CelBool)?;
    cel::add_member_overload!(env, fn is_loopback: (Ip) -> CelBool)?;
    cel::add_member_overload!(env, fn is_link_local_multicast: (Ip) -> CelBool)?;
    cel::add_member_overload!(env, fn is_link_local_unicast: (Ip) -> CelBool)?;
    cel::add_member_overload!(env, fn is_global_unicast: (Ip) -> CelBool)?;
    cel::add_overload!(env, fn cidr: (CelString) -> Result<Cidr>)?;
    cel::add_overload!(env, fn is_cidr: (CelString) -> CelBool, name = "isCIDR")?;
    cel::add_overload!(env, fn cidr_string: (Cidr) -> CelString, name = "string")?;
    cel::add_member_overload!(env, fn contains_ip: (Cidr, Ip) -> CelBool, name = "containsIP")?;
    cel::add_member_overload!(env, fn contains_ip_string: (Cidr, CelString) -> Result<CelBool>,
        name = "containsIP")?;
    cel::add_member_overload!(env, fn contains_cidr: (Cidr, Cidr) -> CelBool, name = "containsCIDR")?;
    cel::add_member_overload!(env, fn contains_cidr_string: (Cidr, CelString) -> Result<CelBool>,
        name = "containsCIDR")?;
    cel::add_member_overload!(env, fn cidr_ip: (Cidr) -> Ip, name = "ip")?;
    cel::add_member_overload!(env, fn prefix_length: (Cidr) -> CelInt)?;
    cel::add_member_overload!(env, fn masked: (Cidr) -> Cidr)?;
    Ok(())
}
