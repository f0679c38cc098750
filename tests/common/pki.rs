//! Test PKI: CAs and certificates made with rcgen, written as PEM files for the servers and
//! kubeconfigs under test (front-proxy CA and client, serving CA and cert, rogue CAs).

#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
}

/// A PEM certificate and its key.
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pair {
    /// Write `<stem>.crt` and `<stem>.key` into `dir`; returns both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let c = dir.join(format!("{stem}.crt"));
        let k = dir.join(format!("{stem}.key"));
        std::fs::write(&c, &self.cert_pem).expect("write cert");
        std::fs::write(&k, &self.key_pem).expect("write key");
        (c, k)
    }
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let cert = p.self_signed(&key).expect("self-signed CA");
        Ca {
            issuer: Issuer::new(p, key),
            cert_pem: cert.pem(),
        }
    }

    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, &self.cert_pem).expect("write CA");
        p
    }

    /// A client certificate: CN is the user, up to two O values the groups.
    pub fn client(&self, cn: &str, groups: &[&str]) -> Pair {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        if let Some(g) = groups.first() {
            p.distinguished_name.push(DnType::OrganizationName, *g);
        }
        if let Some(g) = groups.get(1) {
            // rcgen keeps one value per DnType; a second O goes in under O's raw OID.
            p.distinguished_name
                .push(DnType::CustomDnType(vec![2, 5, 4, 10]), *g);
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.issuer).expect("sign client");
        Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A client certificate that is itself a CA (basicConstraints CA:TRUE, keyCertSign, no
    /// extended key usages), CN the user and O the group, signed by this CA.
    pub fn client_that_is_a_ca(&self, cn: &str, group: &str) -> Pair {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, group);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.signed_by(&key, &self.issuer).expect("sign client CA");
        Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// An X.509 v1 client certificate (no version field, no extensions, as `openssl x509 -req`
    /// without an extension file makes), CN the user and O the group, signed by this CA. rcgen
    /// only writes v3, so the DER is put together here: ECDSA P-256 with SHA-256, valid
    /// 2020-2049.
    pub fn client_v1(&self, cn: &str, group: &str) -> Pair {
        use rcgen::{PublicKeyData, SigningKey};
        use x509_parser::prelude::{FromDer, X509Certificate};
        let key = KeyPair::generate().expect("key");
        let ca_der = rustls::pki_types::pem::PemObject::from_pem_slice(self.cert_pem.as_bytes())
            .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
            .expect("CA PEM");
        let (_, ca) = X509Certificate::from_der(&ca_der).expect("CA DER");
        let ecdsa_sha256 = der(
            0x30,
            &der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
        );
        let rdn = |oid: u8, value: &str| {
            let atv = [der(0x06, &[0x55, 0x04, oid]), der(0x0c, value.as_bytes())].concat();
            der(0x31, &der(0x30, &atv))
        };
        let subject = der(0x30, &[rdn(3, cn), rdn(10, group)].concat());
        let validity = der(
            0x30,
            &[der(0x17, b"200101000000Z"), der(0x17, b"491231235959Z")].concat(),
        );
        let serial: [u8; 8] = rand::random::<[u8; 8]>().map(|b| b & 0x7f);
        let tbs = der(
            0x30,
            &[
                der(0x02, &serial),
                ecdsa_sha256.clone(),
                ca.subject().as_raw().to_vec(),
                validity,
                subject,
                key.subject_public_key_info(),
            ]
            .concat(),
        );
        let signature = self.issuer.key().sign(&tbs).expect("sign");
        let cert = der(
            0x30,
            &[
                tbs,
                ecdsa_sha256,
                der(0x03, &[&[0u8][..], &signature].concat()),
            ]
            .concat(),
        );
        Pair {
            cert_pem: pem_certificate(&cert),
            key_pem: key.serialize_pem(),
        }
    }

    /// A serving certificate for DNS names and IP addresses.
    pub fn serving(&self, hosts: &[&str]) -> Pair {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(
            DnType::CommonName,
            hosts.first().copied().unwrap_or("server"),
        );
        p.subject_alt_names = hosts
            .iter()
            .map(|h| match h.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*h).try_into().expect("dns name")),
            })
            .collect();
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &self.issuer).expect("sign serving");
        Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A kubeconfig for `server`, trusting `ca_pem`, with either a client cert or a bearer token.
pub fn kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: &str,
    cert: Option<&Pair>,
    token: Option<&str>,
) {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut user = serde_json::Map::new();
    if let Some(c) = cert {
        user.insert("client-certificate-data".into(), b64(&c.cert_pem).into());
        user.insert("client-key-data".into(), b64(&c.key_pem).into());
    }
    if let Some(t) = token {
        user.insert("token".into(), t.into());
    }
    let kc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    });
    // JSON is YAML: kubectl and kube read it as a kubeconfig.
    std::fs::write(path, serde_json::to_vec_pretty(&kc).expect("json")).expect("write kubeconfig");
}

/// One DER TLV: `tag`, the definite length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A DER certificate as PEM.
fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}
