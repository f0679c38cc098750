//! Raw TLS connections to a test server with the admin client certificate, for what an HTTP
//! client library hides: slow or partial requests, idle keep-alive connections.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A TLS connection to 127.0.0.1:`port` as the standalone admin (cert dir `dir`), HTTP/1.1.
pub async fn connect(dir: &Path, port: u16) -> TlsStream<TcpStream> {
    connect_alpn(dir, port, b"http/1.1").await
}

/// `connect`, offering the one ALPN protocol `alpn` (`h2` for HTTP/2).
pub async fn connect_alpn(dir: &Path, port: u16, alpn: &[u8]) -> TlsStream<TcpStream> {
    super::server::install_crypto();
    let read = |name: &str| std::fs::read(dir.join(name)).expect(name);
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read("ca.crt")) {
        roots.add(c.expect("ca")).expect("add ca");
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read("admin.crt"))
        .collect::<Result<_, _>>()
        .expect("admin cert");
    let key = PrivateKeyDer::from_pem_slice(&read("admin.key")).expect("admin key");
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client config");
    cfg.alpn_protocols = vec![alpn.to_vec()];
    handshake(cfg, port).await
}

/// A TLS connection to 127.0.0.1:`port` (cert dir `dir`) presenting `cert_pem`/`key_pem`
/// without rustls's client-side checks of that certificate (which refuse X.509 v1), over
/// `version` (TLS 1.2 or 1.3), HTTP/1.1.
pub async fn connect_as(
    dir: &Path,
    port: u16,
    cert_pem: &str,
    key_pem: &str,
    version: &'static rustls::SupportedProtocolVersion,
) -> TlsStream<TcpStream> {
    super::server::install_crypto();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&std::fs::read(dir.join("ca.crt")).expect("ca.crt")) {
        roots.add(c.expect("ca")).expect("add ca");
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("client cert");
    let provider = rustls::crypto::ring::default_provider();
    let key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key"))
        .expect("signing key");
    let certified = Arc::new(rustls::sign::CertifiedKey::new(chain, key));
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    handshake(cfg, port).await
}

/// TCP to 127.0.0.1:`port`, then the TLS handshake under `cfg` (server name 127.0.0.1).
async fn handshake(cfg: rustls::ClientConfig, port: u16) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
        .expect("tls handshake")
}

/// Reads until the server closes the connection (or `limit` passes, then panics: a hang).
/// Returns what was read.
pub async fn read_until_closed(conn: &mut TlsStream<TcpStream>, limit: Duration) -> String {
    let mut out = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("the server closed the connection");
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns (head, body).
pub async fn read_response(conn: &mut TlsStream<TcpStream>, limit: Duration) -> (String, String) {
    let read = async {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&data).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let head = text[..end].to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if data.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&data[end + 4..end + 4 + len]).into_owned();
                    return (head, body);
                }
            }
            let n = conn.read(&mut buf).await.expect("read");
            assert!(n > 0, "connection closed mid-response: {text}");
            data.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("a response arrived")
}

/// Writes raw bytes.
pub async fn send(conn: &mut TlsStream<TcpStream>, bytes: &[u8]) {
    conn.write_all(bytes).await.expect("write");
    conn.flush().await.expect("flush");
}
