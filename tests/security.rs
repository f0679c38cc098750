//! Forged front-proxy headers, straight to wardle over HTTPS: only a client certificate from
//! the requestheader CA with an allowed CN makes `X-Remote-User` / `X-Remote-Group` count.
//! Every other way in (no cert, a client-CA cert, a requestheader-CA cert with another CN, a
//! rogue CA's cert) must never be the claimed user. The audit log records each way in: the user
//! it became, or the 401 with the methods the client attempted.

mod common;

use common::pki::{Ca, Pair};
use common::raw;
use common::server::Wardle;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const LIST: &str = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders";
const FORGED: [(&str, &str); 3] = [
    ("X-Remote-User", "mallory"),
    ("X-Remote-Group", "system:masters"),
    ("X-Remote-Extra-Scopes", "all"),
];

/// A client for `w` that presents `cert` (or no certificate at all).
async fn client_with(w: &Wardle, cert: Option<&Pair>) -> kube::Client {
    let mut kc = kube::config::Kubeconfig::read_from(&w.kubeconfig).expect("kubeconfig");
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for u in &mut kc.auth_infos {
        if let Some(a) = u.auth_info.as_mut() {
            a.client_certificate_data = cert.map(|c| b64(&c.cert_pem));
            a.client_key_data = cert.map(|c| b64(&c.key_pem).into());
        }
    }
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    cfg.default_retry = false;
    kube::Client::try_from(cfg).expect("client")
}

async fn list_with(client: &kube::Client, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    list_audited(client, "", headers).await
}

/// `list_with`, sent with the client's own `Audit-Id` (kept by the server) unless it is empty.
async fn list_audited(
    client: &kube::Client,
    audit_id: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut b = Request::builder().method(Method::GET).uri(LIST);
    if !audit_id.is_empty() {
        b = b.header("Audit-Id", audit_id);
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client
        .send(
            b.body(kube::client::Body::from(Vec::new()))
                .expect("request"),
        )
        .await
        .expect("transport");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&body)
            .unwrap_or(Value::String(String::from_utf8_lossy(&body).into_owned())),
    )
}

/// The audit events of request `audit_id` in the JSON log at `path`, once its last stage is
/// written (ResponseComplete, or ResponseStarted for a failed authentication).
async fn audit_events(path: &Path, audit_id: &str) -> Vec<Value> {
    for _ in 0..200 {
        let events: Vec<Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["auditID"] == audit_id)
            .collect();
        if events.iter().any(|e| {
            e["stage"] == "ResponseComplete"
                || (e["stage"] == "ResponseStarted" && e["responseStatus"]["code"] == 401)
        }) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no final audit event for {audit_id}");
}

fn forbidden_for(user: &str) -> String {
    format!(
        r#"flunders.wardle.example.com is forbidden: User "{user}" cannot list resource "flunders" in API group "wardle.example.com" in the namespace "default""#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_remote_headers_never_authenticate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let front_proxy_ca = Ca::new("front-proxy-ca");
    let client_ca = Ca::new("client-ca");
    let rogue_ca = Ca::new("front-proxy-ca"); // same name, different key
    let rh_ca_file = front_proxy_ca.write(tmp.path(), "front-proxy-ca.crt");
    let client_ca_file = client_ca.write(tmp.path(), "client-ca.crt");
    let url = format!("sqlite://{}?mode=rwc", tmp.path().join("w.db").display());
    let policy = tmp.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
    )
    .expect("policy");
    let log = tmp.path().join("audit.log");
    let w = Wardle::start_with(
        tmp.path(),
        &url,
        &[
            "--audit-policy-file",
            policy.to_str().expect("utf8"),
            "--audit-log-path",
            log.to_str().expect("utf8"),
            "--requestheader-client-ca-file",
            rh_ca_file.to_str().expect("utf8"),
            "--requestheader-allowed-names",
            "front-proxy-client",
            "--client-ca-file",
            client_ca_file.to_str().expect("utf8"),
        ],
    )
    .await;

    // The real front proxy: its headers are the user (system:masters may list).
    let proxy = front_proxy_ca.client("front-proxy-client", &[]);
    let (code, body) = list_audited(&client_with(&w, Some(&proxy)).await, "proxy", &FORGED).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, body) = list_with(
        &client_with(&w, Some(&proxy)).await,
        &[("X-Remote-User", "mallory")],
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["message"], forbidden_for("mallory"));

    // No certificate: the headers are ignored, the request is anonymous.
    let (code, body) = list_audited(&client_with(&w, None).await, "no-cert", &FORGED).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["message"], forbidden_for("system:anonymous"));

    // A client-CA certificate is its own CN, whatever the headers say; even one named like
    // the front proxy.
    for cn in ["bob", "front-proxy-client"] {
        let c = client_ca.client(cn, &["devs"]);
        let (code, body) = list_audited(&client_with(&w, Some(&c)).await, cn, &FORGED).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{cn}: {body}");
        assert_eq!(body["message"], forbidden_for(cn));
    }

    // The requestheader CA but a CN that is not allowed: 401, never mallory.
    let other = front_proxy_ca.client("someone-else", &[]);
    let (code, body) =
        list_audited(&client_with(&w, Some(&other)).await, "other-cn", &FORGED).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["reason"], "Unauthorized");

    // A rogue CA with the front proxy's names: 401.
    let rogue = rogue_ca.client("front-proxy-client", &["system:masters"]);
    let rogue_client = client_with(&w, Some(&rogue)).await;
    let (code, body) = list_audited(&rogue_client, "rogue", &FORGED).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
    // Again on the same connection, now with a bearer token as well.
    let (code, body) = list_audited(
        &rogue_client,
        "rogue-bearer",
        &[("Authorization", "Bearer nothing")],
    )
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");

    // A bearer token with no TokenReview configured proves nothing: anonymous.
    let (code, body) = list_with(
        &client_with(&w, None).await,
        &[
            ("Authorization", "Bearer admin-token"),
            ("X-Remote-User", "mallory"),
        ],
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["message"], forbidden_for("system:anonymous"));

    // The audit log: who each request became, or what a refused one attempted.
    let user_of = |events: &[Value]| {
        let last = events.last().expect("an event");
        assert_eq!(last["stage"], "ResponseComplete", "{events:?}");
        last["user"].clone()
    };
    let user = user_of(&audit_events(&log, "proxy").await);
    assert_eq!(user["username"], "mallory", "{user}");
    assert_eq!(user["groups"][0], "system:masters", "{user}");
    assert_eq!(user["extra"]["scopes"][0], "all", "{user}");
    let user = user_of(&audit_events(&log, "no-cert").await);
    assert_eq!(user["username"], "system:anonymous", "{user}");
    for cn in ["bob", "front-proxy-client"] {
        let user = user_of(&audit_events(&log, cn).await);
        assert_eq!(user["username"], cn, "{user}");
        assert_eq!(user["groups"][0], "devs", "{user}");
    }
    for (id, attempted) in [
        ("other-cn", "x509"),
        ("rogue", "x509"),
        ("rogue-bearer", "bearer, x509"),
    ] {
        let events = audit_events(&log, id).await;
        assert_eq!(events.len(), 1, "{id}: {events:?}");
        assert_eq!(events[0]["stage"], "ResponseStarted", "{id}");
        assert_eq!(events[0]["responseStatus"]["code"], 401, "{id}");
        assert_eq!(
            events[0]["responseStatus"]["message"],
            format!("Authentication failed, attempted: {attempted}"),
            "{id}"
        );
    }
}

/// An X.509 v1 client certificate (no extensions), or one that is a CA (basicConstraints
/// CA:TRUE), is authenticated as Go's crypto/x509 authenticates it: signed by the client CA it
/// is its CN and O (200 for system:masters); signed by another CA it is 401. The handshake must
/// complete either way (webpki alone would refuse a v1 certificate with an alert, and a CA
/// certificate as an end entity), over TLS 1.3 and TLS 1.2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_v1_client_certificates_are_verified_like_go() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let client_ca = Ca::new("wr-client-ca");
    let rogue_ca = Ca::new("wr-client-ca"); // the same name, another key
    let client_ca_file = client_ca.write(tmp.path(), "wr-client-ca.crt");
    let url = format!("sqlite://{}?mode=rwc", tmp.path().join("w.db").display());
    let w = Wardle::start_with(
        tmp.path(),
        &url,
        &["--client-ca-file", client_ca_file.to_str().expect("utf8")],
    )
    .await;
    let trusted = client_ca.client_v1("wr-v1-admin", "system:masters");
    let untrusted = rogue_ca.client_v1("wr-v1-admin", "system:masters");
    let trusted_ca = client_ca.client_that_is_a_ca("wr-ca-admin", "system:masters");
    let untrusted_ca = rogue_ca.client_that_is_a_ca("wr-ca-admin", "system:masters");
    {
        use rustls::pki_types::pem::PemObject;
        use x509_parser::prelude::{FromDer, X509Certificate, X509Version};
        let der = rustls::pki_types::CertificateDer::from_pem_slice(trusted.cert_pem.as_bytes())
            .expect("PEM");
        let (_, cert) = X509Certificate::from_der(&der).expect("DER");
        assert_eq!(cert.version(), X509Version::V1);
        assert!(cert.extensions().is_empty());
    }
    let request = b"GET /apis/wardle.example.com/v1beta1/namespaces/ns-wire/flunders HTTP/1.1\r\n\
                    Host: x\r\nConnection: close\r\n\r\n";
    let limit = Duration::from_secs(10);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        for (cert, want) in [
            (&trusted, "200"),
            (&untrusted, "401"),
            (&trusted_ca, "200"),
            (&untrusted_ca, "401"),
        ] {
            let mut c =
                raw::connect_as(&w.dir, w.port, &cert.cert_pem, &cert.key_pem, version).await;
            raw::send(&mut c, request).await;
            let answer = raw::read_until_closed(&mut c, limit).await;
            let status = answer.split(' ').nth(1).unwrap_or_default();
            assert_eq!(status, want, "{version:?}: {answer}");
            if want == "401" {
                assert!(answer.contains(r#""reason":"Unauthorized""#), "{answer}");
            }
        }
    }
}
