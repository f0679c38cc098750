//! Forged front-proxy headers, straight to wardle over HTTPS: only a client certificate from
//! the requestheader CA with an allowed CN makes `X-Remote-User` / `X-Remote-Group` count.
//! Every other way in (no cert, a client-CA cert, a requestheader-CA cert with another CN, a
//! rogue CA's cert) must never be the claimed user.

mod common;

use common::pki::{Ca, Pair};
use common::server::Wardle;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

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
    let mut b = Request::builder().method(Method::GET).uri(LIST);
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
    let w = Wardle::start_with(
        tmp.path(),
        &url,
        &[
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
    let (code, body) = list_with(&client_with(&w, Some(&proxy)).await, &FORGED).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, body) = list_with(
        &client_with(&w, Some(&proxy)).await,
        &[("X-Remote-User", "mallory")],
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["message"], forbidden_for("mallory"));

    // No certificate: the headers are ignored, the request is anonymous.
    let (code, body) = list_with(&client_with(&w, None).await, &FORGED).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["message"], forbidden_for("system:anonymous"));

    // A client-CA certificate is its own CN, whatever the headers say; even one named like
    // the front proxy.
    for cn in ["bob", "front-proxy-client"] {
        let c = client_ca.client(cn, &["devs"]);
        let (code, body) = list_with(&client_with(&w, Some(&c)).await, &FORGED).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{cn}: {body}");
        assert_eq!(body["message"], forbidden_for(cn));
    }

    // The requestheader CA but a CN that is not allowed: 401, never mallory.
    let other = front_proxy_ca.client("someone-else", &[]);
    let (code, body) = list_with(&client_with(&w, Some(&other)).await, &FORGED).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["reason"], "Unauthorized");

    // A rogue CA with the front proxy's names: 401.
    let rogue = rogue_ca.client("front-proxy-client", &["system:masters"]);
    let (code, body) = list_with(&client_with(&w, Some(&rogue)).await, &FORGED).await;
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
}
