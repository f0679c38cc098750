//! Client-certificate checks shared by the x509 and requestheader authenticators: verifying a
//! peer chain against one CA bundle (clientAuth, validity) and reading names from the leaf.
//!
//! A chain is verified once per CA bundle, not once per request: the verdict is kept with the
//! window in which every presented certificate is valid, and a request outside that window
//! verifies again (so expiry is still checked on every request). A reloaded bundle is a new
//! `CaVerifier` with an empty memory, so removing a CA refuses the next request even on a
//! connection opened before the reload. What the leaf says (user, groups, CN) is read once
//! with the verdict: parsing the certificate on every request was ~4 % of the server's CPU.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use anyhow::{Result, anyhow, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{ASN1Time, FromDer, X509Certificate, X509Version};

use super::UserInfo;

/// `user.CredentialIDKey`: the extra key Go fills with the cert fingerprint.
pub const CREDENTIAL_ID_KEY: &str = "authentication.kubernetes.io/credential-id";

/// The subject attribute Kubernetes reads a user UID from (AllowParsingUserUIDFromCertAuth,
/// beta and on by default since 1.34).
const UID_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57683, 2];

/// One CA bundle, ready to verify client chains against (Go's `x509.VerifyOptions` with
/// `KeyUsages: [ClientAuth]` and the peer's extra certs as intermediates).
#[derive(Debug)]
pub struct CaVerifier {
    verifier: Arc<dyn ClientCertVerifier>,
    /// The bundle's certificates (DER), for chains whose leaf webpki refuses but Go accepts:
    /// an X.509 v1 certificate or a CA certificate (see [`verify_chain_as_go`]).
    roots: Vec<Vec<u8>>,
    /// The bundle as given, so the TLS layer can hint its subjects.
    pem: Vec<u8>,
    /// Chains (DER, leaf first) that verified against this bundle, with the window in which
    /// that verdict holds. Only successes are kept, so only certificates this bundle signed can
    /// fill it; it is emptied when it reaches [`MAX_VERIFIED`] entries.
    verified: RwLock<HashMap<Chain, (Validity, Arc<Leaf>)>>,
}

/// A presented certificate chain: DER, leaf first.
type Chain = Vec<Vec<u8>>;

/// What a verified chain's leaf certificate names, read once per verdict.
#[derive(Debug)]
pub struct Leaf {
    /// [`user_from_cert`] of the leaf.
    pub user: Result<Option<UserInfo>, String>,
    /// [`common_name`] of the leaf.
    pub common_name: Result<String, String>,
}

impl Leaf {
    fn read(der: &[u8]) -> Leaf {
        Leaf {
            user: user_from_cert(der),
            common_name: common_name(der),
        }
    }
}

/// How many verified chains one bundle remembers (a few KB each).
const MAX_VERIFIED: usize = 1024;

/// The seconds (Unix time, inclusive) in which every certificate of a chain is valid: the
/// latest notBefore and the earliest notAfter, as webpki compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Validity {
    not_before: u64,
    not_after: u64,
}

impl Validity {
    /// None when a certificate does not parse or has a time before 1970 (never remembered).
    fn of(chain: &[Vec<u8>]) -> Option<Validity> {
        let mut v = Validity {
            not_before: 0,
            not_after: u64::MAX,
        };
        for der in chain {
            let (_, cert) = X509Certificate::from_der(der).ok()?;
            let validity = cert.validity();
            let from = u64::try_from(validity.not_before.timestamp()).ok()?;
            let until = u64::try_from(validity.not_after.timestamp()).ok()?;
            v.not_before = v.not_before.max(from);
            v.not_after = v.not_after.min(until);
        }
        Some(v)
    }

    fn holds_at(&self, now: u64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

impl CaVerifier {
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("parsing CA bundle: {e:?}"))?;
        if certs.is_empty() {
            bail!("CA bundle holds no certificate");
        }
        let mut roots = rustls::RootCertStore::empty();
        let ders: Vec<Vec<u8>> = certs.iter().map(|c| c.to_vec()).collect();
        for c in certs {
            roots.add(c).map_err(|e| anyhow!("CA bundle: {e}"))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            crate::tls::server::provider(),
        )
        .build()
        .map_err(|e| anyhow!("CA bundle: {e}"))?;
        Ok(CaVerifier {
            verifier,
            roots: ders,
            pem: pem.to_vec(),
            verified: RwLock::new(HashMap::new()),
        })
    }

    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// Verify `chain` (leaf first, as sent by the peer) against this bundle, now: a chain that
    /// verified before is accepted while all its certificates are still valid, anything else
    /// runs the full verification (Go's `x509.Certificate.Verify` on every request gives the
    /// same answers). On success, what the leaf names. The error text is for logs only; clients
    /// just see 401.
    pub fn verify(&self, chain: &[Vec<u8>]) -> Result<Arc<Leaf>, String> {
        let now = UnixTime::now();
        let remembered = self
            .verified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(chain)
            .filter(|(v, _)| v.holds_at(now.as_secs()))
            .map(|(_, leaf)| leaf.clone());
        if let Some(leaf) = remembered {
            return Ok(leaf);
        }
        self.verify_fully(chain, now)?;
        let leaf = Arc::new(Leaf::read(chain.first().map_or(&[][..], Vec::as_slice)));
        if let Some(validity) = Validity::of(chain) {
            let mut verified = self.verified.write().unwrap_or_else(|e| e.into_inner());
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
            verified.insert(chain.to_vec(), (validity, leaf.clone()));
        }
        Ok(leaf)
    }

    fn verify_fully(&self, chain: &[Vec<u8>], now: UnixTime) -> Result<(), String> {
        let Some((leaf, rest)) = chain.split_first() else {
            return Err("no client certificate".into());
        };
        if webpki_refuses_leaf(leaf) {
            return verify_chain_as_go(leaf, rest, &self.roots, now)
                .map_err(|e| format!("verifying certificate {} failed: {e}", describe(chain)));
        }
        let leaf = CertificateDer::from(leaf.as_slice());
        let intermediates: Vec<CertificateDer<'_>> = rest
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        self.verifier
            .verify_client_cert(&leaf, &intermediates, now)
            .map(|_| ())
            .map_err(|e| format!("verifying certificate {} failed: {e}", describe(chain)))
    }
}

/// Is `der` a leaf webpki refuses as an end entity but Go's `x509.Certificate.Verify` takes:
/// an X.509 v1 certificate (one without extensions), or a CA (basicConstraints CA:TRUE; Go
/// checks no basic constraints on the leaf, so a CA certificate, the bundle's own included,
/// authenticates as its subject).
fn webpki_refuses_leaf(der: &[u8]) -> bool {
    X509Certificate::from_der(der).is_ok_and(|(_, c)| {
        c.version() == X509Version::V1
            || matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
    })
}

/// How many certificates such a leaf's chain may have above the leaf before its root.
const MAX_CHAIN_DEPTH: usize = 8;

/// Go's `x509.Certificate.Verify` with `KeyUsages: [ClientAuth]` for a chain whose leaf webpki
/// refuses (`webpki_refuses_leaf`): the leaf must be valid `now` and allow clientAuth by its
/// extended key usages when it lists any (a v1 leaf has none: Go takes a missing ExtKeyUsage as
/// any usage); a leaf that is itself in `roots` is its own chain (Go's pool check), else each
/// certificate must be signed by its parent, the parent being one of `roots` (the trust
/// anchors, used as they are) or one of the client's `intermediates`, which Go requires to be
/// CAs (basicConstraints CA) and, when they list extended key usages, to allow clientAuth.
/// Parents are found by subject = issuer, as Go's pool finds candidates. Errors read like Go's
/// (`x509: certificate signed by unknown authority`).
fn verify_chain_as_go(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    roots: &[Vec<u8>],
    now: UnixTime,
) -> Result<(), String> {
    let now = i64::try_from(now.as_secs())
        .ok()
        .and_then(|t| ASN1Time::from_timestamp(t).ok())
        .ok_or("the clock is out of range")?;
    let mut current = parse(leaf).ok_or("the certificate does not parse")?;
    if !current.validity().is_valid_at(now) {
        return Err("x509: certificate has expired or is not yet valid".into());
    }
    if !allows_client_auth(&current) {
        return Err("x509: certificate specifies an incompatible key usage".into());
    }
    if roots.iter().any(|r| r.as_slice() == leaf) {
        return Ok(());
    }
    for _ in 0..=MAX_CHAIN_DEPTH {
        let issued_by = |parent: &X509Certificate<'_>| {
            parent.subject().as_raw() == current.issuer().as_raw()
                && parent.validity().is_valid_at(now)
                && current.verify_signature(Some(parent.public_key())).is_ok()
        };
        if roots.iter().filter_map(|r| parse(r)).any(|r| issued_by(&r)) {
            return Ok(());
        }
        let parent = intermediates
            .iter()
            .filter_map(|der| parse(der))
            .find(|c| issued_by(c) && may_sign_client_certs(c));
        match parent {
            Some(p) => current = p,
            None => break,
        }
    }
    Err("x509: certificate signed by unknown authority".into())
}

fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    X509Certificate::from_der(der).ok().map(|(_, c)| c)
}

/// Go's checks of an intermediate: a CA by its basic constraints, and clientAuth (or any usage)
/// among its extended key usages when it lists any.
fn may_sign_client_certs(c: &X509Certificate<'_>) -> bool {
    let ca = matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    ca && allows_client_auth(c)
}

/// Go's chain key-usage check for one certificate: no extended key usages, or any, or
/// clientAuth among them.
fn allows_client_auth(c: &X509Certificate<'_>) -> bool {
    match c.extended_key_usage() {
        Ok(None) => true,
        Ok(Some(eku)) => eku.value.any || eku.value.client_auth,
        Err(_) => false,
    }
}

/// `CN=…` of the leaf for log lines, or a placeholder when it does not parse.
fn describe(chain: &[Vec<u8>]) -> String {
    chain
        .first()
        .and_then(|der| X509Certificate::from_der(der).ok())
        .map(|(_, c)| format!("subject {:?}", c.subject().to_string()))
        .unwrap_or_else(|| "(unparsable)".into())
}

/// Go's `pkix.Name.CommonName`: the last CN attribute wins.
pub fn common_name(leaf_der: &[u8]) -> Result<String, String> {
    let (_, cert) = X509Certificate::from_der(leaf_der)
        .map_err(|e| format!("parsing client certificate: {e}"))?;
    Ok(cert
        .subject()
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .last()
        .unwrap_or_default()
        .to_string())
}

/// Go's `CommonNameUserConversion`: user = CN, groups = every O in order, uid from the UID
/// attribute, extra credential-id = SHA-256 of the leaf. `Ok(None)` when the CN is empty.
pub fn user_from_cert(leaf_der: &[u8]) -> Result<Option<UserInfo>, String> {
    let (_, cert) = X509Certificate::from_der(leaf_der)
        .map_err(|e| format!("parsing client certificate: {e}"))?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .last()
        .unwrap_or_default();
    if name.is_empty() {
        return Ok(None);
    }
    let groups = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_string)
        .collect();

    let mut uids = Vec::new();
    for attr in subject.iter_attributes() {
        let is_uid = attr
            .attr_type()
            .iter()
            .is_some_and(|arcs| arcs.eq(UID_OID.iter().copied()));
        if is_uid {
            uids.push(
                attr.as_str()
                    .map_err(|_| "unable to parse UID into a string".to_string())?
                    .to_string(),
            );
        }
    }
    let uid = match uids.as_slice() {
        [] => String::new(),
        [one] if one.is_empty() => return Err("UID cannot be an empty string".into()),
        [one] => one.clone(),
        many => return Err(format!("expected 1 UID, but found multiple: {many:?}")),
    };

    let fingerprint = hex::encode(Sha256::digest(leaf_der));
    let mut extra = BTreeMap::new();
    extra.insert(
        CREDENTIAL_ID_KEY.to_string(),
        vec![format!("X509SHA256={fingerprint}")],
    );
    Ok(Some(UserInfo {
        name: name.to_string(),
        uid,
        groups,
        extra,
    }))
}

/// The x509 authenticator (`--client-ca-file`): a chain that verifies becomes CN/O; one that
/// does not is an error (the union turns errors into 401 unless another method succeeds).
#[derive(Debug)]
pub struct X509Authenticator {
    pub(super) ca: CaVerifier,
}

impl X509Authenticator {
    pub fn authenticate(&self, chain: &[Vec<u8>]) -> Result<Option<UserInfo>, String> {
        if chain.is_empty() {
            return Ok(None);
        }
        self.ca.verify(chain)?.user.clone()
    }
}
