//! Standalone-mode PKI: a private CA, the serving cert and an admin client cert under a cert dir,
//! reused across restarts, plus a kubeconfig with everything embedded for kubectl.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::asn1_rs::Tag;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The admin identity written into the kubeconfig: user `wardle-admin`, group `system:masters`.
pub const ADMIN_USER: &str = "wardle-admin";
pub const ADMIN_GROUP: &str = "system:masters";

/// Names every serving cert carries, so `https://localhost:…` and loopback IPs always verify.
const DEFAULT_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

const CA_VALIDITY: time::Duration = time::Duration::days(3650);
const LEAF_VALIDITY: time::Duration = time::Duration::days(365);
/// Leaf certs closer than this to expiry are reissued on start, so a long-lived dev setup
/// does not break overnight.
const RENEW_BEFORE: Duration = Duration::from_secs(7 * 24 * 3600);
/// A CA closer than this to expiry is replaced (and every leaf with it).
const CA_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The files of the standalone PKI and their PEM contents.
#[derive(Debug, Clone)]
pub struct StandalonePki {
    pub ca_cert_path: PathBuf,
    pub ca_key_path: PathBuf,
    pub serving_cert_path: PathBuf,
    pub serving_key_path: PathBuf,
    pub admin_cert_path: PathBuf,
    pub admin_key_path: PathBuf,
    pub ca_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
}

/// The CA, loaded or freshly made: the issuer (key + exact subject DN) signs the leaves.
struct Ca {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// Create the PKI under `cert_dir`, or reuse what is there. Files are only (re)written when
/// missing, expiring, or (serving cert) not covering `hosts`; a new CA reissues both leaves.
pub fn ensure_standalone(cert_dir: &Path, hosts: &[String]) -> Result<StandalonePki> {
    std::fs::create_dir_all(cert_dir)
        .with_context(|| format!("creating cert dir {}", cert_dir.display()))?;
    let paths = StandalonePki {
        ca_cert_path: cert_dir.join("ca.crt"),
        ca_key_path: cert_dir.join("ca.key"),
        serving_cert_path: cert_dir.join("apiserver.crt"),
        serving_key_path: cert_dir.join("apiserver.key"),
        admin_cert_path: cert_dir.join("admin.crt"),
        admin_key_path: cert_dir.join("admin.key"),
        ca_pem: String::new(),
        serving_cert_pem: String::new(),
        serving_key_pem: String::new(),
        admin_cert_pem: String::new(),
        admin_key_pem: String::new(),
    };

    // Validate before anything is written.
    let serving_hosts = serving_hosts(hosts)?;
    let (ca, ca_is_new) = load_or_create_ca(&paths.ca_cert_path, &paths.ca_key_path)?;

    let serving = match (!ca_is_new)
        .then(|| load_pair(&paths.serving_cert_path, &paths.serving_key_path))
        .flatten()
    {
        Some((cert, key)) if serving_cert_ok(&ca, &cert, &serving_hosts) => (cert, key),
        found => {
            if found.is_some() {
                tracing::info!(path = %paths.serving_cert_path.display(), "reissuing serving certificate");
            }
            let (cert, key) = issue_serving(&ca, &serving_hosts)?;
            write_file(&paths.serving_key_path, key.as_bytes(), 0o600)?;
            write_file(&paths.serving_cert_path, cert.as_bytes(), 0o644)?;
            (cert, key)
        }
    };

    let admin = match (!ca_is_new)
        .then(|| load_pair(&paths.admin_cert_path, &paths.admin_key_path))
        .flatten()
    {
        Some((cert, key)) if admin_cert_ok(&ca, &cert) => (cert, key),
        found => {
            if found.is_some() {
                tracing::info!(path = %paths.admin_cert_path.display(), "reissuing admin client certificate");
            }
            let (cert, key) = issue_admin(&ca)?;
            write_file(&paths.admin_key_path, key.as_bytes(), 0o600)?;
            write_file(&paths.admin_cert_path, cert.as_bytes(), 0o644)?;
            (cert, key)
        }
    };

    Ok(StandalonePki {
        ca_pem: ca.cert_pem,
        serving_cert_pem: serving.0,
        serving_key_pem: serving.1,
        admin_cert_pem: admin.0,
        admin_key_pem: admin.1,
        ..paths
    })
}

/// The default names plus the caller's, without empties or duplicates (order kept). Each must
/// be an IP address or a DNS name (optionally `*.`-wildcarded).
fn serving_hosts(extra: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for h in DEFAULT_HOSTS
        .iter()
        .map(|s| s.to_string())
        .chain(extra.iter().map(|s| s.trim().to_string()))
    {
        if h.is_empty() || out.iter().any(|o| o.eq_ignore_ascii_case(&h)) {
            continue;
        }
        if probe_name(&h).is_none() {
            bail!("invalid serving host name {h:?}");
        }
        out.push(h);
    }
    Ok(out)
}

/// The name a client would check against this SAN (a wildcard is probed with a sample label).
fn probe_name(host: &str) -> Option<ServerName<'static>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ServerName::from(ip));
    }
    let probe = match host.strip_prefix("*.") {
        Some(rest) => format!("wardle-probe.{rest}"),
        None => host.to_string(),
    };
    match ServerName::try_from(probe) {
        Ok(n @ ServerName::DnsName(_)) => Some(n),
        _ => None,
    }
}

fn load_or_create_ca(cert_path: &Path, key_path: &Path) -> Result<(Ca, bool)> {
    match (cert_path.exists(), key_path.exists()) {
        (false, false) => {}
        (true, true) => {
            let ca = load_ca(cert_path, key_path)?;
            if let Some(ca) = ca {
                return Ok((ca, false));
            }
            tracing::warn!(path = %cert_path.display(), "standalone CA expires soon; creating a new one");
        }
        // Half a CA is somebody's mistake; overwriting it could destroy the half that matters.
        _ => bail!(
            "only one of {} and {} exists; restore the other or remove both to generate a new CA",
            cert_path.display(),
            key_path.display()
        ),
    }
    let ca = create_ca()?;
    write_file(key_path, ca.issuer.key().serialize_pem().as_bytes(), 0o600)?;
    write_file(cert_path, ca.cert_pem.as_bytes(), 0o644)?;
    Ok((ca, true))
}

/// Load an existing CA; `None` if it expires soon (the caller replaces it).
fn load_ca(cert_path: &Path, key_path: &Path) -> Result<Option<Ca>> {
    let cert_pem = std::fs::read_to_string(cert_path)
        .with_context(|| format!("reading {}", cert_path.display()))?;
    let key_pem = std::fs::read_to_string(key_path)
        .with_context(|| format!("reading {}", key_path.display()))?;
    let cert_der = first_cert_der(cert_pem.as_bytes())
        .with_context(|| format!("parsing {}", cert_path.display()))?;
    let key =
        KeyPair::from_pem(&key_pem).map_err(|e| anyhow!("parsing {}: {e}", key_path.display()))?;
    let (_, x509) = X509Certificate::from_der(&cert_der)
        .map_err(|e| anyhow!("parsing {}: {e}", cert_path.display()))?;
    if x509.public_key().raw != key.subject_public_key_info().as_slice() {
        bail!(
            "{} does not belong to {}",
            key_path.display(),
            cert_path.display()
        );
    }
    let renew_at = x509.validity().not_after.timestamp() - CA_RENEW_BEFORE.as_secs() as i64;
    if renew_at <= time::OffsetDateTime::now_utc().unix_timestamp() {
        return Ok(None);
    }
    // rcgen cannot read a CA back (its x509-parser feature is off), so rebuild the issuer from
    // the subject as written, keeping each attribute's string type: chain building compares
    // the issuer name byte for byte.
    let mut params = CertificateParams::default();
    params.distinguished_name =
        rcgen_dn(&x509).with_context(|| format!("reading subject of {}", cert_path.display()))?;
    params.key_usages = ca_key_usages();
    let cert_der = CertificateDer::from(cert_der).into_owned();
    Ok(Some(Ca {
        cert_pem,
        cert_der,
        issuer: Issuer::new(params, key),
    }))
}

fn rcgen_dn(cert: &X509Certificate<'_>) -> Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    for attr in cert.subject().iter_attributes() {
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| anyhow!("subject OID too large"))?
            .collect();
        let text = attr
            .as_str()
            .map_err(|e| anyhow!("unsupported subject attribute: {e}"))?
            .to_string();
        let value = match attr.attr_value().tag() {
            Tag::PrintableString => DnValue::PrintableString(text.try_into()?),
            Tag::Ia5String => DnValue::Ia5String(text.try_into()?),
            Tag::Utf8String => DnValue::Utf8String(text),
            other => bail!("unsupported subject string type {other:?}"),
        };
        let ty = DnType::from_oid(&oid);
        if dn.get(&ty).is_some() {
            bail!("subject repeats an attribute type; cannot reissue certificates from this CA");
        }
        dn.push(ty, value);
    }
    Ok(dn)
}

fn ca_key_usages() -> Vec<KeyUsagePurpose> {
    vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ]
}

fn create_ca() -> Result<Ca> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    // Go's self-signed certs carry a timestamp in the CN so that two CAs are never confused.
    let cn = format!(
        "wardle-ca@{}",
        time::OffsetDateTime::now_utc().unix_timestamp()
    );
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = ca_key_usages();
    set_validity(&mut params, CA_VALIDITY);
    let cert = params.self_signed(&key)?;
    let cert_der = cert.der().clone();
    Ok(Ca {
        cert_pem: cert.pem(),
        cert_der,
        issuer: Issuer::new(params, key),
    })
}

fn set_validity(params: &mut CertificateParams, validity: time::Duration) {
    let now = time::OffsetDateTime::now_utc();
    // Back-date a little so a peer with a slightly slow clock accepts the cert at once.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + validity;
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f; // a positive INTEGER
    params.serial_number = Some(SerialNumber::from_slice(&serial));
}

fn issue_serving(ca: &Ca, hosts: &[String]) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(hosts.to_vec()).context("serving certificate host names")?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "wardle-apiserver");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_VALIDITY);
    let cert = params.signed_by(&key, &ca.issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn issue_admin(ca: &Ca) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, ADMIN_GROUP);
    params
        .distinguished_name
        .push(DnType::CommonName, ADMIN_USER);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_VALIDITY);
    let cert = params.signed_by(&key, &ca.issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Read a cert+key pair; `None` when either is missing or unreadable (the caller reissues).
fn load_pair(cert_path: &Path, key_path: &Path) -> Option<(String, String)> {
    let cert = std::fs::read_to_string(cert_path).ok()?;
    let key = std::fs::read_to_string(key_path).ok()?;
    let kp = KeyPair::from_pem(&key).ok()?;
    let der = first_cert_der(cert.as_bytes()).ok()?;
    let (_, x509) = X509Certificate::from_der(&der).ok()?;
    (x509.public_key().raw == kp.subject_public_key_info().as_slice()).then_some((cert, key))
}

fn roots_of(ca: &Ca) -> Option<Arc<rustls::RootCertStore>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der.clone()).ok()?;
    Some(Arc::new(roots))
}

/// Still valid a week from now, issued by this CA for server auth, and valid for every host.
fn serving_cert_ok(ca: &Ca, cert_pem: &str, hosts: &[String]) -> bool {
    let (Some(roots), Ok(der)) = (roots_of(ca), first_cert_der(cert_pem.as_bytes())) else {
        return false;
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(verifier) =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider).build()
    else {
        return false;
    };
    let at =
        UnixTime::since_unix_epoch(Duration::from_secs(UnixTime::now().as_secs()) + RENEW_BEFORE);
    let leaf = CertificateDer::from(der);
    hosts.iter().all(|h| {
        probe_name(h).is_some_and(|name| {
            verifier
                .verify_server_cert(&leaf, &[], &name, &[], at)
                .is_ok()
        })
    })
}

/// Still valid a week from now, issued by this CA for client auth, and naming the admin identity.
fn admin_cert_ok(ca: &Ca, cert_pem: &str) -> bool {
    let (Some(roots), Ok(der)) = (roots_of(ca), first_cert_der(cert_pem.as_bytes())) else {
        return false;
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(verifier) =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider).build()
    else {
        return false;
    };
    let at =
        UnixTime::since_unix_epoch(Duration::from_secs(UnixTime::now().as_secs()) + RENEW_BEFORE);
    let leaf = CertificateDer::from(der.clone());
    if verifier.verify_client_cert(&leaf, &[], at).is_err() {
        return false;
    }
    let Ok((_, x509)) = X509Certificate::from_der(&der) else {
        return false;
    };
    let cn: Vec<&str> = x509
        .subject()
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .collect();
    let orgs: Vec<&str> = x509
        .subject()
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .collect();
    cn == [ADMIN_USER] && orgs.contains(&ADMIN_GROUP)
}

/// DER of the first CERTIFICATE block of a PEM bundle.
pub(crate) fn first_cert_der(pem: &[u8]) -> Result<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    let first = CertificateDer::pem_slice_iter(pem)
        .next()
        .ok_or_else(|| anyhow!("no certificate found in PEM"))?;
    Ok(first
        .map_err(|e| anyhow!("bad PEM certificate: {e:?}"))?
        .to_vec())
}

/// Write through a temp file and rename, so a crash never leaves half a key behind, with `mode`
/// set at creation (keys are never world-readable, even for an instant).
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", path.display()))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all()
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// Write a kubeconfig whose cluster, user and context are all called `context_name`, with the CA
/// and client credentials embedded (`*-data`), current-context set, file mode 0600.
pub fn write_kubeconfig(
    path: &Path,
    server_url: &str,
    ca_pem: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
    context_name: &str,
) -> Result<()> {
    if context_name.is_empty() {
        bail!("kubeconfig context name must not be empty");
    }
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    // JSON strings are valid YAML double-quoted scalars, so any name or URL is quoted safely.
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let name = q(context_name);
    let text = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {name}\n  \
           cluster:\n    \
             server: {server}\n    \
             certificate-authority-data: {ca}\n\
         users:\n\
         - name: {name}\n  \
           user:\n    \
             client-certificate-data: {cert}\n    \
             client-key-data: {key}\n\
         contexts:\n\
         - name: {name}\n  \
           context:\n    \
             cluster: {name}\n    \
             user: {name}\n\
         current-context: {name}\n\
         preferences: {{}}\n",
        server = q(server_url),
        ca = b64(ca_pem),
        cert = b64(client_cert_pem),
        key = b64(client_key_pem),
    );
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_file(path, text.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    fn subject(pem: &str) -> (Vec<String>, Vec<String>) {
        let der = first_cert_der(pem.as_bytes()).expect("der");
        let (_, c) = X509Certificate::from_der(&der).expect("parse");
        let cn = c
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().expect("cn").to_string())
            .collect();
        let o = c
            .subject()
            .iter_organization()
            .map(|a| a.as_str().expect("o").to_string())
            .collect();
        (cn, o)
    }

    #[test]
    fn generates_then_reuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = ensure_standalone(dir.path(), &["wardle.example".to_string()]).expect("pki");
        for p in [&pki.ca_key_path, &pki.serving_key_path, &pki.admin_key_path] {
            assert_eq!(mode(p), 0o600, "{}", p.display());
        }
        assert_eq!(
            subject(&pki.admin_cert_pem),
            (vec![ADMIN_USER.to_string()], vec![ADMIN_GROUP.to_string()])
        );
        let ca = load_ca(&pki.ca_cert_path, &pki.ca_key_path)
            .expect("load")
            .expect("fresh");
        let hosts = serving_hosts(&["wardle.example".to_string()]).expect("hosts");
        assert!(serving_cert_ok(&ca, &pki.serving_cert_pem, &hosts));
        assert!(admin_cert_ok(&ca, &pki.admin_cert_pem));

        let again =
            ensure_standalone(dir.path(), &["wardle.example".to_string()]).expect("pki again");
        assert_eq!(again.ca_pem, pki.ca_pem);
        assert_eq!(again.serving_cert_pem, pki.serving_cert_pem);
        assert_eq!(again.serving_key_pem, pki.serving_key_pem);
        assert_eq!(again.admin_cert_pem, pki.admin_cert_pem);
    }

    #[test]
    fn new_host_reissues_only_the_serving_cert() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = ensure_standalone(dir.path(), &[]).expect("pki");
        let more = ensure_standalone(
            dir.path(),
            &["10.0.0.7".to_string(), "api.local".to_string()],
        )
        .expect("pki");
        assert_eq!(more.ca_pem, pki.ca_pem);
        assert_eq!(more.admin_cert_pem, pki.admin_cert_pem);
        assert_ne!(more.serving_cert_pem, pki.serving_cert_pem);
        // The reissued cert chains to the reloaded CA (issuer DN rebuilt byte for byte).
        let ca = load_ca(&more.ca_cert_path, &more.ca_key_path)
            .expect("load")
            .expect("fresh");
        let hosts =
            serving_hosts(&["10.0.0.7".to_string(), "api.local".to_string()]).expect("hosts");
        assert!(serving_cert_ok(&ca, &more.serving_cert_pem, &hosts));
        assert!(!serving_cert_ok(&ca, &pki.serving_cert_pem, &hosts));
    }

    #[test]
    fn lost_ca_reissues_everything_and_half_ca_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = ensure_standalone(dir.path(), &[]).expect("pki");
        std::fs::remove_file(&pki.ca_cert_path).expect("rm");
        assert!(ensure_standalone(dir.path(), &[]).is_err());
        std::fs::remove_file(&pki.ca_key_path).expect("rm");
        let fresh = ensure_standalone(dir.path(), &[]).expect("pki");
        assert_ne!(fresh.ca_pem, pki.ca_pem);
        assert_ne!(fresh.admin_cert_pem, pki.admin_cert_pem);
        assert_ne!(fresh.serving_cert_pem, pki.serving_cert_pem);
    }

    #[test]
    fn garbage_leaf_is_replaced_and_garbage_ca_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = ensure_standalone(dir.path(), &[]).expect("pki");
        std::fs::write(&pki.admin_cert_path, "not a cert").expect("write");
        let fixed = ensure_standalone(dir.path(), &[]).expect("pki");
        assert_ne!(fixed.admin_cert_pem, pki.admin_cert_pem);
        assert_eq!(fixed.serving_cert_pem, pki.serving_cert_pem);
        std::fs::write(&pki.ca_key_path, "garbage").expect("write");
        assert!(ensure_standalone(dir.path(), &[]).is_err());
    }

    #[test]
    fn bad_host_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(ensure_standalone(dir.path(), &["bad host\u{0}".to_string()]).is_err());
        assert!(ensure_standalone(dir.path(), &["a..b".to_string()]).is_err());
        // A wildcard is fine, and a second start with it reuses the cert.
        let w = ensure_standalone(dir.path(), &["*.wardle.svc".to_string()]).expect("wildcard");
        let again = ensure_standalone(dir.path(), &["*.wardle.svc".to_string()]).expect("wildcard");
        assert_eq!(w.serving_cert_pem, again.serving_cert_pem);
    }

    #[test]
    fn kubeconfig_parses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = ensure_standalone(dir.path(), &[]).expect("pki");
        let path = dir.path().join("sub").join("kubeconfig");
        write_kubeconfig(
            &path,
            "https://127.0.0.1:8443",
            &pki.ca_pem,
            &pki.admin_cert_pem,
            &pki.admin_key_pem,
            "wardle",
        )
        .expect("write");
        assert_eq!(mode(&path), 0o600);
        let kc = kube::config::Kubeconfig::read_from(&path).expect("parse");
        assert_eq!(kc.current_context.as_deref(), Some("wardle"));
        let cluster = kc.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:8443"));
        let ca = cluster
            .certificate_authority_data
            .as_deref()
            .expect("ca data");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(ca)
            .expect("b64");
        assert_eq!(decoded, pki.ca_pem.as_bytes());
        let user = kc.auth_infos[0].auth_info.as_ref().expect("user");
        assert!(user.client_certificate_data.is_some());
        assert!(user.client_key_data.is_some());
        assert_eq!(
            kc.contexts[0]
                .context
                .as_ref()
                .expect("ctx")
                .user
                .as_deref(),
            Some("wardle")
        );
        assert!(write_kubeconfig(&path, "https://x", "", "", "", "").is_err());
    }
}
