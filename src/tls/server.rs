//! The rustls `ServerConfig` of the apiserver: ring only, ALPN h2 + http/1.1, and a client-cert
//! verifier that asks for a cert but accepts any, because (as in Go) the authenticators verify
//! the presented chain and an unknown CA must not break the handshake. The authenticators
//! remember a verified chain per CA bundle (`authn::x509::CaVerifier`), so a keep-alive
//! connection pays for the chain's signatures once, not on every request.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, ServerConfig, SignatureScheme};

/// Make ring the process-default provider. kube's client builds its TLS config from the process
/// default, so this must run before any kube client exists; calling it again is harmless.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want either way.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The ring provider, passed explicitly so our own configs never depend on the process default.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Serving config with no CA hints in the CertificateRequest (clients then offer any cert).
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<ServerConfig> {
    server_config_with_ca_hints(cert_pem, key_pem, &[])
}

/// Serving config that names the subjects of the given CA bundles (client CA, requestheader CA)
/// as acceptable issuers, like Go's `tls.Config.ClientCAs`. A cert from any other CA is still
/// accepted at the handshake.
pub fn server_config_with_ca_hints(
    cert_pem: &[u8],
    key_pem: &[u8],
    ca_hint_pems: &[&[u8]],
) -> Result<ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("parsing serving certificate PEM: {e:?}"))?;
    if certs.is_empty() {
        bail!("serving certificate PEM holds no certificate");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| anyhow!("parsing serving key PEM: {e:?}"))?;

    let mut hints = rustls::RootCertStore::empty();
    for pem in ca_hint_pems {
        let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("parsing CA bundle PEM: {e:?}"))?;
        let (_, bad) = hints.add_parsable_certificates(cas);
        if bad > 0 {
            tracing::warn!(
                count = bad,
                "ignoring unparsable CA certificates in the client-CA hints"
            );
        }
    }

    let provider = provider();
    let verifier = Arc::new(AcceptAnyClientCert {
        provider: provider.clone(),
        hints: hints.subjects(),
    });
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("serving certificate and key")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Go's `MaxHeaderBytes` (AS:`server/secure_serving.go`): 1 MiB of request line and headers.
pub const MAX_HEADER_BYTES: usize = 1 << 20;

/// How many headers an HTTP/1 request may have (hyper's default is 100; Go counts none, only
/// bytes). Past 100, hyper allocates and fills this many header slots (two arrays of ~40 bytes
/// each per slot) for every request it parses: at 8,192 that was ~15 % of the server's CPU at
/// 32 clients creating flunders (`SmallVec::from_elem` and the parse). 256 leaves room for a
/// user of a couple of hundred groups behind the aggregator (one `X-Remote-Group` header per
/// group) for a few hundred nanoseconds per request. More headers are hyper's bare 431.
pub const MAX_HEADERS: usize = 256;

/// Go's connection limits (AS:`server/secure_serving.go`) on the HTTP builder: a client has
/// `header_read` to send a request's headers, which is also how long an idle HTTP/1 keep-alive
/// connection is kept (hyper runs the header timer while waiting for the next request); HTTP/2
/// allows 100 concurrent streams per connection and pings idle peers, dropping dead ones.
/// A slow body is bounded by the request deadline (`http::limits`).
///
/// Request heads are bounded by bytes only, as in Go: net/http reads up to `MaxHeaderBytes`
/// plus 4096 bytes (`initialReadLimitSize`) and counts no headers; HTTP/2 advertises
/// `MaxHeaderBytes` + 320 (`http2adjustHTTP1MaxHeaderSize`) as its header-list size. hyper's
/// read buffer bounds the head (a longer one is 431). hyper also limits the count (100 by
/// default), which Go does not: see [`MAX_HEADERS`]. One limit cannot follow Go: hyper and the
/// `http` crate refuse a request target longer than 65,534 bytes (414), which Go accepts up to
/// the 1 MiB bound.
pub fn bound_connections(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    header_read: Duration,
) {
    const HEAD_BYTES: usize = MAX_HEADER_BYTES + 4096;
    builder
        .http1()
        .header_read_timeout(header_read)
        .max_buf_size(HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .max_concurrent_streams(100)
        .max_header_list_size((MAX_HEADER_BYTES + 10 * 32) as u32)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
}

/// Requests a client cert, never requires one, accepts whatever chain is sent. It still checks
/// the handshake signature, so a peer cannot present a cert whose key it does not hold. The key
/// is read from the certificate's SubjectPublicKeyInfo by x509-parser rather than by webpki,
/// which refuses X.509 v1 certificates (no extensions) outright; Go's crypto/tls accepts them
/// and its authenticators decide (`authn::x509`), so a v1 certificate must not end the handshake.
#[derive(Debug)]
struct AcceptAnyClientCert {
    provider: Arc<CryptoProvider>,
    hints: Vec<DistinguishedName>,
}

impl ClientCertVerifier for AcceptAnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let spki = subject_public_key_info(cert)?;
        let key = webpki::RawPublicKeyEntity::try_from(&spki).map_err(bad_key)?;
        // rustls's own TLS 1.2 check: every algorithm the scheme maps to is tried.
        let algs = self
            .provider
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
        let mut last = rustls::Error::PeerMisbehaved(
            rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        );
        for alg in algs {
            match key.verify_signature(*alg, message, dss.signature()) {
                Ok(()) => return Ok(HandshakeSignatureValid::assertion()),
                Err(e @ webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)) => {
                    last = bad_key(e);
                }
                Err(e) => return Err(bad_key(e)),
            }
        }
        Err(last)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &subject_public_key_info(cert)?,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The SubjectPublicKeyInfo (DER) of a certificate of any version; a certificate that does not
/// parse is a bad certificate (the handshake ends, as Go's does for an unparsable one).
fn subject_public_key_info(
    cert: &CertificateDer<'_>,
) -> Result<SubjectPublicKeyInfoDer<'static>, rustls::Error> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    Ok(SubjectPublicKeyInfoDer::from(
        parsed.public_key().raw.to_vec(),
    ))
}

/// A key or signature webpki refuses, as rustls reports it.
fn bad_key(e: webpki::Error) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(e),
    )))
}

/// Go's answer to plain HTTP on a TLS port (net/http `conn.serve`), byte for byte.
pub const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// The first five bytes of an HTTP request that Go recognises instead of a TLS record header
/// (net/http `tlsRecordHeaderLooksLikeHTTP`).
fn looks_like_http(header: &[u8]) -> bool {
    matches!(header, b"GET /" | b"HEAD " | b"POST " | b"PUT /" | b"OPTIO")
}

/// axum-server acceptor run before the TLS handshake: a connection whose first bytes are an HTTP
/// request gets Go's `400 Client sent an HTTP request to an HTTPS server.` instead of TLS alert
/// bytes. It peeks (reads nothing), so TLS clients are untouched. Other connections go on as a
/// [`Lingering`] stream, so their last answer is not lost to a reset when they close.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainHttpAnswer;

impl<S: Send + 'static> axum_server::accept::Accept<tokio::net::TcpStream, S> for PlainHttpAnswer {
    type Stream = Lingering;
    type Service = S;
    type Future = futures::future::BoxFuture<'static, std::io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        Box::pin(async move {
            // The same bound as the TLS handshake's, so a silent client is not held longer.
            let header = tokio::time::timeout(Duration::from_secs(10), peek_header(&stream))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            if looks_like_http(&header) {
                answer_plain_http(stream).await;
                return Err(std::io::Error::other(
                    "client sent an HTTP request to an HTTPS server",
                ));
            }
            Ok((Lingering::new(stream), service))
        })
    }
}

/// How long, and how many bytes, a closed connection is read for (see [`Lingering`]).
const LINGER_TIME: Duration = Duration::from_secs(5);
const LINGER_BYTES: usize = 64 << 20;

/// How many closed connections may linger at once, server-wide: past that a connection is
/// closed at once (as it would be without lingering), so a flood of refused uploads costs at
/// most this many tasks and read buffers.
const LINGERING: usize = 256;
static LINGER_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(LINGERING);

/// The read buffer of one lingering connection.
const LINGER_BUFFER: usize = 8 << 10;

/// The TCP stream under TLS, closed the way Go's net/http closes (`closeWriteAndWait`): when
/// the server ends a connection whose client is still sending (a body refused with 413 before
/// it was read, a request that closes the connection), closing the socket with unread input
/// would make the kernel send a reset, and a client that has not read the answer yet loses it
/// (curl: "Recv failure: Connection reset by peer"; Go: "write: broken pipe"). So on drop the
/// write side is shut (the client sees the end of the answer) and what the client still sends
/// is read and dropped, for at most [`LINGER_TIME`] and [`LINGER_BYTES`], in a task of its own,
/// at most [`LINGERING`] at once. A connection lingers only when an answer may still be
/// unread: input is waiting, or the last write was less than [`LINGER_TIME`] ago. A client
/// that has already hung up, or an idle keep-alive connection closed by the header timeout
/// (nothing written for 32 s, nothing sent), is closed at once. Go only waits 500 ms without
/// reading, which still loses answers to clients sending large bodies.
#[derive(Debug)]
pub struct Lingering {
    stream: Option<tokio::net::TcpStream>,
    /// When the server last wrote to the client (None: never).
    last_write: Option<std::time::Instant>,
}

impl Lingering {
    pub fn new(stream: tokio::net::TcpStream) -> Lingering {
        Lingering {
            stream: Some(stream),
            last_write: None,
        }
    }

    fn stream(&mut self) -> std::io::Result<&mut tokio::net::TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))
    }

    /// Notes a write that sent something.
    fn wrote(
        &mut self,
        result: std::task::Poll<std::io::Result<usize>>,
    ) -> std::task::Poll<std::io::Result<usize>> {
        if let std::task::Poll::Ready(Ok(n)) = &result
            && *n > 0
        {
            self.last_write = Some(std::time::Instant::now());
        }
        result
    }
}

impl tokio::io::AsyncRead for Lingering {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.stream()?).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Lingering {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let result = std::pin::Pin::new(self.stream()?).poll_write(cx, buf);
        self.wrote(result)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let result = std::pin::Pin::new(self.stream()?).poll_write_vectored(cx, bufs);
        self.wrote(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.stream()?).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.stream()?).poll_shutdown(cx)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let mut probe = [0u8; 1];
        let input_waiting = match stream.try_read(&mut probe) {
            // The client hung up first (the usual end of a keep-alive connection), or the
            // socket failed: nothing to wait for.
            Ok(0) => return,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return,
            Ok(_) => true,
            Err(_) => false,
        };
        // No input yet and no recent answer: nothing the client could still be reading.
        let recent_answer = self.last_write.is_some_and(|t| t.elapsed() < LINGER_TIME);
        if !input_waiting && !recent_answer {
            return;
        }
        let (Ok(permit), Ok(runtime)) = (
            LINGER_SLOTS.try_acquire(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        runtime.spawn(async move {
            let _permit = permit;
            linger(stream).await;
        });
    }
}

/// Shuts the write side, then reads and drops the client's input until it hangs up or the
/// bounds are reached; the socket is closed when this returns.
async fn linger(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.shutdown().await;
    let drain = async {
        let mut buf = vec![0u8; LINGER_BUFFER];
        let mut total = 0usize;
        while total < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

/// Up to the first five bytes (fewer if the client closes first).
async fn peek_header(stream: &tokio::net::TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = [0u8; 5];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == buf.len() || n == 0 {
            return Ok(buf[..n].to_vec());
        }
        // Part of the header has come; peek returns at once while the rest is missing.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Writes Go's 400, then reads (and drops) what the client sent for up to a second before
/// closing: closing with unread input would reset the connection and could lose the answer.
async fn answer_plain_http(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.write_all(PLAIN_HTTP_ANSWER).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0usize;
        while total < 64 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// The current client-CA bundles to name in the CertificateRequest. Go clients only send a
/// certificate whose issuer is among them, so they must follow authenticator reloads.
pub type CaHints = Arc<dyn Fn() -> Vec<Vec<u8>> + Send + Sync>;

/// Poll the serving cert/key files (and the CA hints) every `interval` and swap a rebuilt
/// config into `config` when their contents change (contents, not mtimes, so Kubernetes secret
/// symlink swaps and same-second rewrites are both seen). A half-written pair fails to build
/// and is retried on the next tick; the old config keeps serving meanwhile. Runs until the
/// task is dropped.
pub async fn watch_serving_files(
    config: axum_server::tls_rustls::RustlsConfig,
    cert_path: PathBuf,
    key_path: PathBuf,
    ca_hints: CaHints,
    interval: Duration,
) {
    let read = |p: &PathBuf| std::fs::read(p).ok();
    let mut loaded = (read(&cert_path), read(&key_path), ca_hints());
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate
    loop {
        ticker.tick().await;
        let current = (read(&cert_path), read(&key_path), ca_hints());
        if current == loaded {
            continue;
        }
        let (Some(cert), Some(key)) = (&current.0, &current.1) else {
            continue;
        };
        let hints: Vec<&[u8]> = current.2.iter().map(|v| v.as_slice()).collect();
        match server_config_with_ca_hints(cert, key, &hints) {
            Ok(cfg) => {
                config.reload_from_config(Arc::new(cfg));
                tracing::info!(cert = %cert_path.display(), "reloaded serving certificate");
                loaded = current;
            }
            Err(e) => {
                tracing::warn!(cert = %cert_path.display(), error = %e, "serving certificate not reloaded")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection the server drops, seen from its client: the client writes after the drop,
    /// then writes again. A lingering server reads and drops the writes; a server that closed
    /// at once answers the first with a reset, which fails the second.
    async fn after_drop(write_first: bool, answer_first: bool) -> std::io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut client = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        let mut server = Lingering::new(server);
        if write_first {
            client.write_all(b"more of a body").await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if answer_first {
            server.write_all(b"HTTP/1.1 413 ...").await?;
        }
        drop(server);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut answer = vec![0u8; 64];
        let n = client.read(&mut answer).await?;
        let want: &[u8] = if answer_first {
            b"HTTP/1.1 413 ..."
        } else {
            b""
        };
        assert_eq!(&answer[..n], want);
        client.write_all(b"the rest").await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.write_all(b"and more").await
    }

    #[tokio::test]
    async fn only_connections_with_an_answer_in_flight_linger() {
        // Input still coming, or an answer just written: the client's writes are drained.
        for (write_first, answer_first) in [(true, false), (false, true), (true, true)] {
            after_drop(write_first, answer_first)
                .await
                .unwrap_or_else(|e| panic!("{write_first} {answer_first}: {e}"));
        }
        // Idle (nothing written, nothing sent: the header timeout's close): closed at once.
        let e = after_drop(false, false).await.expect_err("reset");
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{e}"
        );
    }

    #[test]
    fn go_recognises_these_http_starts() {
        for h in ["GET /", "HEAD ", "POST ", "PUT /", "OPTIO"] {
            assert!(looks_like_http(h.as_bytes()), "{h}");
        }
        // A TLS ClientHello record header, and methods Go does not look for.
        for h in [
            &[0x16, 0x03, 0x01, 0x02, 0x00][..],
            b"PATCH",
            b"DELET",
            b"GET",
            b"",
        ] {
            assert!(!looks_like_http(h), "{h:?}");
        }
    }

    #[tokio::test]
    async fn watcher_swaps_config_when_files_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = crate::tls::pki::ensure_standalone(dir.path(), &[]).expect("pki");
        let cfg = server_config(
            pki.serving_cert_pem.as_bytes(),
            pki.serving_key_pem.as_bytes(),
        )
        .expect("cfg");
        let rcfg = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(cfg));
        let first = rcfg.get_inner();
        let task = tokio::spawn(watch_serving_files(
            rcfg.clone(),
            pki.serving_cert_path.clone(),
            pki.serving_key_path.clone(),
            Arc::new(Vec::new),
            Duration::from_millis(20),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            Arc::ptr_eq(&first, &rcfg.get_inner()),
            "unchanged files must not reload"
        );

        // A mismatched pair (new cert, old key) is refused; the old config keeps serving.
        let other = tempfile::tempdir().expect("tempdir");
        let fresh = crate::tls::pki::ensure_standalone(other.path(), &[]).expect("pki");
        std::fs::write(&pki.serving_cert_path, &fresh.serving_cert_pem).expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(Arc::ptr_eq(&first, &rcfg.get_inner()));

        std::fs::write(&pki.serving_key_path, &fresh.serving_key_pem).expect("write");
        let mut reloaded = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if !Arc::ptr_eq(&first, &rcfg.get_inner()) {
                reloaded = true;
                break;
            }
        }
        task.abort();
        assert!(reloaded, "new pair must be picked up");
    }
}
