//! Authenticator tests: the union chain with real certificates, and a TLS handshake end to end.

use super::*;
use http::{HeaderName, HeaderValue};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use sha2::Digest;

struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn test_ca(cn: &str) -> TestCa {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).expect("ca");
    TestCa {
        issuer: Issuer::new(p, key),
        pem: cert.pem(),
    }
}

/// A leaf signed by `ca`. Up to two O values (rcgen keeps one per type; the second goes in as
/// a custom type with the same OID), plus any extra subject attributes.
fn leaf(
    ca: &TestCa,
    cn: &str,
    orgs: &[&str],
    eku: ExtendedKeyUsagePurpose,
    extra: &[(Vec<u64>, &str)],
) -> Vec<u8> {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    if let Some(o) = orgs.first() {
        p.distinguished_name.push(DnType::OrganizationName, *o);
    }
    if let Some(o) = orgs.get(1) {
        p.distinguished_name
            .push(DnType::CustomDnType(vec![2, 5, 4, 10]), *o);
    }
    if !cn.is_empty() {
        p.distinguished_name.push(DnType::CommonName, cn);
    }
    for (oid, v) in extra {
        p.distinguished_name
            .push(DnType::CustomDnType(oid.clone()), *v);
    }
    p.extended_key_usages = vec![eku];
    let cert = p.signed_by(&key, &ca.issuer).expect("sign");
    cert.der().to_vec()
}

fn client_leaf(ca: &TestCa, cn: &str, orgs: &[&str]) -> Vec<u8> {
    leaf(ca, cn, orgs, ExtendedKeyUsagePurpose::ClientAuth, &[])
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

fn x509_only(ca: &TestCa) -> Authenticator {
    Authenticator::new(Some(ca.pem.as_bytes())).expect("authenticator")
}

#[test]
fn no_cert_is_anonymous_and_drops_authorization() {
    let ca = test_ca("client-ca");
    let auth = x509_only(&ca);
    let mut h = headers(&[("Authorization", "Bearer abc")]);
    let u = auth.authenticate(&[], &mut h).expect("anonymous");
    assert_eq!(u, UserInfo::anonymous());
    assert!(u.is_anonymous());
    assert_eq!(u.groups, ["system:unauthenticated"]);
    assert!(h.get("authorization").is_none());
}

#[test]
fn client_ca_cert_gives_cn_and_every_o() {
    let ca = test_ca("client-ca");
    let alice = client_leaf(&ca, "alice", &["dev", "ops"]);
    let u = x509_only(&ca)
        .authenticate(std::slice::from_ref(&alice), &mut HeaderMap::new())
        .expect("ok");
    assert_eq!(u.name, "alice");
    assert_eq!(u.groups, ["dev", "ops", "system:authenticated"]);
    assert_eq!(u.uid, "");
    let fp = hex::encode(sha2::Sha256::digest(&alice));
    assert_eq!(
        u.extra.get(x509::CREDENTIAL_ID_KEY),
        Some(&vec![format!("X509SHA256={fp}")])
    );
}

#[test]
fn authenticated_group_is_not_duplicated() {
    let ca = test_ca("client-ca");
    let c = client_leaf(&ca, "carol", &["system:authenticated"]);
    let u = x509_only(&ca)
        .authenticate(&[c], &mut HeaderMap::new())
        .expect("ok");
    assert_eq!(u.groups, ["system:authenticated"]);
}

#[test]
fn uid_attribute_is_read_and_bad_uid_is_401() {
    let ca = test_ca("client-ca");
    let uid_oid = vec![1, 3, 6, 1, 4, 1, 57683, 2];
    let c = leaf(
        &ca,
        "dave",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
        &[(uid_oid.clone(), "uid-123")],
    );
    let u = x509_only(&ca)
        .authenticate(&[c], &mut HeaderMap::new())
        .expect("ok");
    assert_eq!(u.uid, "uid-123");
    let empty = leaf(
        &ca,
        "dave",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
        &[(uid_oid, "")],
    );
    assert_eq!(
        x509_only(&ca)
            .authenticate(&[empty], &mut HeaderMap::new())
            .expect_err("401")
            .code,
        401
    );
}

#[test]
fn unverifiable_certs_are_401() {
    let ca = test_ca("client-ca");
    let other = test_ca("rogue-ca");
    let auth = x509_only(&ca);
    let rogue = client_leaf(&other, "mallory", &["system:masters"]);
    let e = auth
        .authenticate(std::slice::from_ref(&rogue), &mut HeaderMap::new())
        .expect_err("401");
    assert_eq!((e.code, e.message.as_str()), (401, "Unauthorized"));
    // Server-auth-only cert from the right CA: wrong usage.
    let server_only = leaf(&ca, "svc", &[], ExtendedKeyUsagePurpose::ServerAuth, &[]);
    assert!(
        auth.authenticate(&[server_only], &mut HeaderMap::new())
            .is_err()
    );
    // Garbage bytes as a "certificate".
    assert!(
        auth.authenticate(&[b"junk".to_vec()], &mut HeaderMap::new())
            .is_err()
    );
    // Without a client CA there is no x509 method: the same cert is just anonymous.
    let open = Authenticator::new(None).expect("authenticator");
    assert!(
        open.authenticate(&[rogue], &mut HeaderMap::new())
            .expect("anon")
            .is_anonymous()
    );
}

/// Go's `x509.Certificate.Verify` checks no basic constraints on the leaf: a CA certificate
/// signed by the client CA, or the client CA's own certificate, authenticates as its subject
/// (webpki refuses either as an end entity). Its usage, validity and signer still count.
#[test]
fn ca_certificates_as_client_certs_are_verified_like_go() {
    let ca = test_ca("client-ca");
    let auth = x509_only(&ca);
    let ca_leaf = |signer: &TestCa, eku: Option<ExtendedKeyUsagePurpose>, expired: bool| {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        p.distinguished_name.push(DnType::CommonName, "sub-ca");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.extended_key_usages = eku.into_iter().collect();
        if expired {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        p.signed_by(&key, &signer.issuer)
            .expect("sign")
            .der()
            .to_vec()
    };
    for eku in [None, Some(ExtendedKeyUsagePurpose::ClientAuth)] {
        let u = auth
            .authenticate(&[ca_leaf(&ca, eku.clone(), false)], &mut HeaderMap::new())
            .expect("a CA leaf with clientAuth or no usages authenticates");
        assert_eq!(u.name, "sub-ca", "{eku:?}");
        assert!(u.groups.contains(&"system:masters".to_string()));
    }
    let own =
        <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::from_pem_slice(
            ca.pem.as_bytes(),
        )
        .expect("pem");
    let u = auth
        .authenticate(&[own.to_vec()], &mut HeaderMap::new())
        .expect("the bundle's own CA certificate");
    assert_eq!(u.name, "client-ca");
    let other = test_ca("rogue-ca");
    for refused in [
        ca_leaf(&ca, Some(ExtendedKeyUsagePurpose::ServerAuth), false),
        ca_leaf(&ca, None, true),
        ca_leaf(&other, None, false),
    ] {
        let e = auth
            .authenticate(&[refused], &mut HeaderMap::new())
            .expect_err("401");
        assert_eq!(e.code, 401);
    }
}

#[test]
fn expired_cert_is_401() {
    let ca = test_ca("client-ca");
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, "old");
    p.not_before = rcgen::date_time_ymd(2000, 1, 1);
    p.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let cert = p.signed_by(&key, &ca.issuer).expect("sign");
    assert!(
        x509_only(&ca)
            .authenticate(&[cert.der().to_vec()], &mut HeaderMap::new())
            .is_err()
    );
}

#[test]
fn empty_cn_falls_through_to_anonymous() {
    let ca = test_ca("client-ca");
    let c = client_leaf(&ca, "", &["dev"]);
    assert!(
        x509_only(&ca)
            .authenticate(&[c], &mut HeaderMap::new())
            .expect("anon")
            .is_anonymous()
    );
}

#[test]
fn anonymous_disabled_is_401() {
    let cfg = AuthnConfig {
        anonymous: false,
        ..Default::default()
    };
    let auth = Authenticator::with_config(&cfg).expect("authenticator");
    assert_eq!(
        auth.authenticate(&[], &mut HeaderMap::new())
            .expect_err("401")
            .code,
        401
    );
}

#[test]
fn bad_ca_bundle_is_rejected() {
    assert!(Authenticator::new(Some(b"not pem")).is_err());
    assert!(Authenticator::new(Some(b"")).is_err());
}

struct FrontProxy {
    client_ca: TestCa,
    proxy_ca: TestCa,
    auth: Authenticator,
}

fn front_proxy(allowed: &[&str], uid_headers: &[&str]) -> FrontProxy {
    let client_ca = test_ca("client-ca");
    let proxy_ca = test_ca("front-proxy-ca");
    let mut rh = RequestHeaderConfig::new(proxy_ca.pem.clone().into_bytes());
    rh.allowed_names = allowed.iter().map(|s| s.to_string()).collect();
    rh.uid_headers = uid_headers.iter().map(|s| s.to_string()).collect();
    let cfg = AuthnConfig {
        client_ca_pem: Some(client_ca.pem.clone().into_bytes()),
        request_header: Some(rh),
        anonymous: true,
    };
    let auth = Authenticator::with_config(&cfg).expect("authenticator");
    FrontProxy {
        client_ca,
        proxy_ca,
        auth,
    }
}

#[test]
fn front_proxy_headers_become_the_user_and_are_removed() {
    let fp = front_proxy(&["front-proxy-client"], &["X-Remote-Uid"]);
    let proxy = client_leaf(&fp.proxy_ca, "front-proxy-client", &[]);
    let mut h = headers(&[
        ("x-remote-user", "bob"),
        ("X-Remote-Uid", "u-1"),
        ("X-Remote-Group", "g1"),
        ("X-Remote-Group", "  "),
        ("X-Remote-Group", "g2"),
        ("X-Remote-Extra-Foo%2fbar", "v"),
        ("X-Remote-Extra-Scopes", "a"),
        ("X-Remote-Extra-Scopes", "b"),
        ("Accept", "application/json"),
    ]);
    let u = fp.auth.authenticate(&[proxy], &mut h).expect("ok");
    assert_eq!(u.name, "bob");
    assert_eq!(u.uid, "u-1");
    assert_eq!(u.groups, ["g1", "g2", "system:authenticated"]);
    assert_eq!(u.extra.get("foo/bar"), Some(&vec!["v".to_string()]));
    assert_eq!(
        u.extra.get("scopes"),
        Some(&vec!["a".to_string(), "b".to_string()])
    );
    assert_eq!(h.len(), 1, "only Accept remains: {h:?}");
}

#[test]
fn masters_via_front_proxy() {
    let fp = front_proxy(&[], &[]);
    let proxy = client_leaf(&fp.proxy_ca, "any-cn", &[]);
    let mut h = headers(&[
        ("X-Remote-User", "system:kube-aggregator"),
        ("X-Remote-Group", "system:masters"),
    ]);
    let u = fp.auth.authenticate(&[proxy], &mut h).expect("ok");
    assert_eq!(u.groups, ["system:masters", "system:authenticated"]);
}

#[test]
fn front_proxy_cn_not_allowed_is_401() {
    let fp = front_proxy(&["front-proxy-client"], &[]);
    let proxy = client_leaf(&fp.proxy_ca, "someone-else", &[]);
    let mut h = headers(&[("X-Remote-User", "admin")]);
    assert_eq!(
        fp.auth
            .authenticate(&[proxy], &mut h)
            .expect_err("401")
            .code,
        401
    );
}

#[test]
fn front_proxy_cert_without_user_header_is_401() {
    let fp = front_proxy(&["front-proxy-client"], &[]);
    let proxy = client_leaf(&fp.proxy_ca, "front-proxy-client", &[]);
    assert_eq!(
        fp.auth
            .authenticate(&[proxy], &mut HeaderMap::new())
            .expect_err("401")
            .code,
        401
    );
}

#[test]
fn client_cert_ignores_remote_headers() {
    let fp = front_proxy(&["front-proxy-client"], &[]);
    let alice = client_leaf(&fp.client_ca, "alice", &["dev"]);
    let mut h = headers(&[
        ("X-Remote-User", "admin"),
        ("X-Remote-Group", "system:masters"),
    ]);
    let u = fp.auth.authenticate(&[alice], &mut h).expect("ok");
    assert_eq!(u.name, "alice");
    assert_eq!(u.groups, ["dev", "system:authenticated"]);
    // No cert at all: the requestheader method is skipped and the headers mean nothing.
    let u = fp.auth.authenticate(&[], &mut h).expect("anon");
    assert!(u.is_anonymous());
    assert_eq!(fp.auth.ca_bundles().len(), 2);
}

#[test]
fn reload_swaps_the_client_ca() {
    let old_ca = test_ca("old");
    let new_ca = test_ca("new");
    let auth = x509_only(&old_ca);
    let old_cert = client_leaf(&old_ca, "alice", &[]);
    let new_cert = client_leaf(&new_ca, "carol", &[]);
    assert!(
        auth.authenticate(std::slice::from_ref(&old_cert), &mut HeaderMap::new())
            .is_ok()
    );
    assert!(
        auth.authenticate(std::slice::from_ref(&new_cert), &mut HeaderMap::new())
            .is_err()
    );
    // A broken config is refused and the old chain keeps working.
    let broken = AuthnConfig {
        client_ca_pem: Some(b"junk".to_vec()),
        ..Default::default()
    };
    assert!(auth.reload(&broken).is_err());
    assert!(
        auth.authenticate(std::slice::from_ref(&old_cert), &mut HeaderMap::new())
            .is_ok()
    );
    let cfg = AuthnConfig {
        client_ca_pem: Some(new_ca.pem.into_bytes()),
        ..Default::default()
    };
    auth.reload(&cfg).expect("reload");
    assert!(
        auth.authenticate(&[old_cert], &mut HeaderMap::new())
            .is_err()
    );
    assert_eq!(
        auth.authenticate(&[new_cert], &mut HeaderMap::new())
            .expect("ok")
            .name,
        "carol"
    );
}

/// The flag files are re-read by `keep_fresh`: replacing --client-ca-file and
/// --requestheader-client-ca-file on disk changes who is accepted, with no restart.
#[tokio::test]
async fn ca_files_are_reloaded_from_disk() {
    use super::source::{AuthnSources, RequestHeaderFlags};
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca1, ca2, fp1, fp2) = (
        test_ca("client-1"),
        test_ca("client-2"),
        test_ca("fp-1"),
        test_ca("fp-2"),
    );
    let client_file = dir.path().join("client-ca.crt");
    let rh_file = dir.path().join("front-proxy-ca.crt");
    std::fs::write(&client_file, &ca1.pem).expect("write");
    std::fs::write(&rh_file, &fp1.pem).expect("write");
    let sources = AuthnSources {
        client_ca_file: Some(client_file.clone()),
        request_header: RequestHeaderFlags {
            client_ca_file: Some(rh_file.clone()),
            allowed_names: vec!["front-proxy-client".into()],
            username_headers: vec!["X-Remote-User".into()],
            group_headers: vec!["X-Remote-Group".into()],
            ..Default::default()
        },
        anonymous: true,
        ..Default::default()
    };
    let cfg = sources.load().await.expect("load");
    let auth = std::sync::Arc::new(Authenticator::with_config(&cfg).expect("auth"));
    let task =
        tokio::spawn(sources.keep_fresh(auth.clone(), cfg, std::time::Duration::from_millis(20)));
    let proxied = |ca: &TestCa| {
        let cert = client_leaf(ca, "front-proxy-client", &[]);
        let mut h = headers(&[("X-Remote-User", "mallory")]);
        auth.authenticate(&[cert], &mut h).map(|u| u.name)
    };
    let direct = |ca: &TestCa| {
        let cert = client_leaf(ca, "bob", &[]);
        auth.authenticate(&[cert], &mut HeaderMap::new())
            .map(|u| u.name)
    };
    assert_eq!(proxied(&fp1).as_deref(), Ok("mallory"));
    assert_eq!(direct(&ca1).as_deref(), Ok("bob"));
    assert!(proxied(&fp2).is_err() && direct(&ca2).is_err());

    std::fs::write(&client_file, &ca2.pem).expect("write");
    std::fs::write(&rh_file, &fp2.pem).expect("write");
    let mut swapped = false;
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if proxied(&fp2).is_ok() && direct(&ca2).is_ok() {
            swapped = true;
            break;
        }
    }
    task.abort();
    assert!(swapped, "new CA files were not picked up");
    assert!(proxied(&fp1).is_err() && direct(&ca1).is_err());
}

mod handshake {
    //! A real TLS server (axum-server + our ServerConfig) and a blocking rustls client.

    use super::*;
    use crate::tls::pki::ensure_standalone;
    use crate::tls::server::{provider, server_config};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use std::io::{Read, Write};
    use std::net::SocketAddr;

    fn client_config(
        ca_pem: &str,
        cert: Option<(&str, &str)>,
        alpn: &[&[u8]],
    ) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.expect("ca pem")).expect("root");
        }
        let b = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut cfg = match cert {
            Some((cert_pem, key_pem)) => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                        .collect::<Result<_, _>>()
                        .expect("cert pem");
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key pem");
                b.with_client_auth_cert(chain, key).expect("client auth")
            }
            None => b.with_no_client_auth(),
        };
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        cfg
    }

    /// GET / over HTTP/1.1; returns the negotiated ALPN protocol and the response body.
    fn get(addr: SocketAddr, cfg: rustls::ClientConfig) -> (Option<Vec<u8>>, String) {
        let name = ServerName::try_from("localhost").expect("name");
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).expect("conn");
        let sock = std::net::TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut buf = Vec::new();
        // Servers may close without close_notify; whatever arrived is the response.
        if let Err(e) = tls.read_to_end(&mut buf) {
            assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (tls.conn.alpn_protocol().map(<[u8]>::to_vec), body)
    }

    /// Handshake only, offering `alpn`; returns what the server picked.
    fn negotiate(addr: SocketAddr, cfg: rustls::ClientConfig) -> Option<Vec<u8>> {
        let name = ServerName::try_from("localhost").expect("name");
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).expect("conn");
        let mut sock = std::net::TcpStream::connect(addr).expect("connect");
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).expect("handshake");
        }
        conn.alpn_protocol().map(<[u8]>::to_vec)
    }

    /// An HTTPS server answering every request with `user|groups` (or the Status code and
    /// message) as `auth` sees the peer's chain; serves until the handle shuts it down.
    async fn serve_whoami(
        auth: std::sync::Arc<Authenticator>,
        pki: &crate::tls::pki::StandalonePki,
    ) -> (
        SocketAddr,
        axum_server::Handle<SocketAddr>,
        tokio::task::JoinHandle<()>,
    ) {
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let auth = auth.clone();
            async move {
                let chain = req
                    .extensions()
                    .get::<std::sync::Arc<axum_server::tls::TlsInfo>>()
                    .map(|t| t.peer_certificates.clone())
                    .unwrap_or_default();
                let mut h = req.headers().clone();
                match auth.authenticate(&chain, &mut h) {
                    Ok(u) => format!("{}|{}", u.name, u.groups.join(",")),
                    Err(e) => format!("{} {}", e.code, e.message),
                }
            }
        });
        let cfg = server_config(
            pki.serving_cert_pem.as_bytes(),
            pki.serving_key_pem.as_bytes(),
        )
        .expect("server cfg");
        let rcfg = axum_server::tls_rustls::RustlsConfig::from_config(std::sync::Arc::new(cfg));
        let handle = axum_server::Handle::new();
        let server = axum_server::bind_rustls(SocketAddr::from(([127, 0, 0, 1], 0)), rcfg)
            .handle(handle.clone())
            .serve(app.into_make_service());
        let task = tokio::spawn(async move {
            let _ = server.await;
        });
        let addr = handle.listening().await.expect("listening");
        (addr, handle, task)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn client_certs_over_real_tls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = ensure_standalone(dir.path(), &[]).expect("pki");
        let other_dir = tempfile::tempdir().expect("tempdir");
        let other = ensure_standalone(other_dir.path(), &[]).expect("other pki");

        let auth =
            std::sync::Arc::new(Authenticator::new(Some(pki.ca_pem.as_bytes())).expect("authn"));
        let (addr, handle, task) = serve_whoami(auth, &pki).await;

        let ca = pki.ca_pem.clone();
        let (admin_cert, admin_key) = (pki.admin_cert_pem.clone(), pki.admin_key_pem.clone());
        let (rogue_cert, rogue_key) = (other.admin_cert_pem.clone(), other.admin_key_pem.clone());
        let results = tokio::task::spawn_blocking(move || {
            let h11: &[&[u8]] = &[b"http/1.1"];
            let anon = get(addr, client_config(&ca, None, h11));
            let admin = get(
                addr,
                client_config(&ca, Some((&admin_cert, &admin_key)), h11),
            );
            let rogue = get(
                addr,
                client_config(&ca, Some((&rogue_cert, &rogue_key)), h11),
            );
            let h2 = negotiate(addr, client_config(&ca, None, &[b"h2", b"http/1.1"]));
            (anon, admin, rogue, h2)
        })
        .await
        .expect("client thread");
        handle.shutdown();
        let _ = task.await;

        let (anon, admin, rogue, h2) = results;
        assert_eq!(anon.0.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(anon.1, "system:anonymous|system:unauthenticated");
        assert_eq!(admin.1, "wardle-admin|system:masters,system:authenticated");
        // The handshake with an unknown CA's cert succeeds; authentication then refuses it.
        assert_eq!(rogue.1, "401 Unauthorized");
        assert_eq!(h2.as_deref(), Some(&b"h2"[..]));
    }

    /// One keep-alive HTTP/1.1 connection: each `ask` sends a GET and reads one response.
    struct KeepAlive(rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>);

    impl KeepAlive {
        fn open(addr: SocketAddr, cfg: rustls::ClientConfig) -> KeepAlive {
            let name = ServerName::try_from("localhost").expect("name");
            let conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).expect("conn");
            let sock = std::net::TcpStream::connect(addr).expect("connect");
            sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .expect("timeout");
            KeepAlive(rustls::StreamOwned::new(conn, sock))
        }

        /// The body of the answer to `GET /`, or "closed" when the server closed the connection.
        fn ask(&mut self) -> String {
            let req = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
            if self.0.write_all(req).is_err() {
                return "closed".into();
            }
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match self.0.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => return "closed".into(),
                }
            }
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            let mut body = vec![0u8; len];
            self.0.read_exact(&mut body).expect("body");
            String::from_utf8_lossy(&body).into_owned()
        }
    }

    /// A client cert and key from `ca` whose validity ends `seconds` from now.
    fn short_lived(ca: &TestCa, cn: &str, seconds: i64) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::minutes(1);
        p.not_after = now + time::Duration::seconds(seconds);
        let cert = p.signed_by(&key, &ca.issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    /// The chain is verified once and then remembered, yet a certificate that expires while its
    /// connection stays open is refused on the next request, and a reload that drops its CA
    /// refuses the next request on a connection opened before the reload (Go verifies on every
    /// request, so it answers the same).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_connections_see_expiry_and_ca_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = ensure_standalone(dir.path(), &[]).expect("pki");
        let ca = test_ca("client-ca");
        let auth = std::sync::Arc::new(x509_only(&ca));
        let (addr, handle, task) = serve_whoami(auth.clone(), &pki).await;
        let (brief_cert, brief_key) = short_lived(&ca, "brief", 2);
        let (long_cert, long_key) = short_lived(&ca, "steady", 3600);
        let server_ca = pki.ca_pem.clone();
        let h11: &[&[u8]] = &[b"http/1.1"];
        let brief_cfg = client_config(&server_ca, Some((&brief_cert, &brief_key)), h11);
        let long_cfg = client_config(&server_ca, Some((&long_cert, &long_key)), h11);

        let (before, after) = tokio::task::spawn_blocking(move || {
            let mut c = KeepAlive::open(addr, brief_cfg);
            let before = [c.ask(), c.ask()];
            // x509 times have whole seconds; 3 s is past the 2 s validity wherever it began.
            std::thread::sleep(std::time::Duration::from_secs(3));
            (before, c.ask())
        })
        .await
        .expect("client thread");
        assert_eq!(before, ["brief|system:authenticated"; 2]);
        assert_eq!(after, "401 Unauthorized");

        let mut steady = tokio::task::spawn_blocking(move || {
            let mut c = KeepAlive::open(addr, long_cfg);
            assert_eq!(c.ask(), "steady|system:authenticated");
            assert_eq!(c.ask(), "steady|system:authenticated");
            c
        })
        .await
        .expect("client thread");
        let other = test_ca("other-ca");
        let cfg = AuthnConfig {
            client_ca_pem: Some(other.pem.into_bytes()),
            ..Default::default()
        };
        auth.reload(&cfg).expect("reload");
        let after_reload = tokio::task::spawn_blocking(move || steady.ask())
            .await
            .expect("client thread");
        handle.shutdown();
        let _ = task.await;
        assert_eq!(after_reload, "401 Unauthorized");
    }

    #[test]
    fn bad_serving_material_is_an_error() {
        assert!(server_config(b"", b"").is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = ensure_standalone(dir.path(), &[]).expect("pki");
        assert!(server_config(pki.serving_cert_pem.as_bytes(), b"junk").is_err());
        // Key of another cert.
        assert!(
            server_config(
                pki.serving_cert_pem.as_bytes(),
                pki.admin_key_pem.as_bytes()
            )
            .is_err()
        );
        let hinted = crate::tls::server::server_config_with_ca_hints(
            pki.serving_cert_pem.as_bytes(),
            pki.serving_key_pem.as_bytes(),
            &[pki.ca_pem.as_bytes()],
        );
        assert!(hinted.is_ok());
    }
}
