//! Wiring: build storage, registry, auth and the router from the config and serve until stopped.

use crate::admission::Admission;
use crate::admission::informer::Informer;
use crate::admission::namespace::{NamespaceLifecycle, Namespaces};
use crate::admission::policy::Policies;
use crate::admission::webhook::Webhooks;
use crate::api::{self, Resource};
use crate::app::AppState;
use crate::authn::source::{AuthnSources, RequestHeaderFlags};
use crate::authn::{Authenticator, TokenReviewAuthenticator};
use crate::authz::Authorizer;
use crate::authz::webhook::SubjectAccessReviewer;
use crate::config::Config;
use crate::http::health::{Check, Health};
use crate::http::limits::Limits;
use crate::http::router::router;
use crate::kubeclient;
use crate::registry::Store;
use crate::storage::cache::WatchCache;
use crate::storage::compaction::{self, CompactionStats};
use crate::storage::{Engine, Storage};
use crate::tls;
use anyhow::Context;
use futures::FutureExt;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::net::TcpSocket;

/// Start-up, one log line per phase: the port is taken first (so a busy port fails before any
/// file or database is touched), then the database (waited for up to `--storage-wait`), the
/// certificates and kubeconfig, the watch cache; then serving. Errors name the cause and the fix.
pub async fn run(config: Config) -> anyhow::Result<()> {
    run_with(config, &[]).await
}

/// `run`, serving `kinds` next to the built-in ones (`api::register`): the way a program
/// embedding wardle (or a test) adds a kind. Each gets discovery, OpenAPI, Table, watch and SQL
/// storage from the generic machinery.
pub async fn run_with(config: Config, kinds: &[&'static dyn Resource]) -> anyhow::Result<()> {
    for kind in kinds {
        api::register(*kind).map_err(anyhow::Error::msg)?;
    }
    tls::server::install_crypto_provider();
    config.validate()?;
    let (socket, addr) = reserve_port(&config.bind_address, config.secure_port)?;
    // Then audit, so a bad policy or audit flag stops startup before anything else is touched.
    let auditor = crate::audit::Auditor::from_options(&config.audit)
        .await
        .context("setting up auditing")?;
    // And the admission configuration: its errors, too, come before any state is touched.
    let plugin_configs =
        crate::admission::config::load(config.admission_control_config_file.as_deref())?;
    std::fs::create_dir_all(&config.cert_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create --cert-dir {}: {e}; choose a directory you can write",
            config.cert_dir.display()
        )
    })?;
    let url = config.database_url();
    tracing::info!(database = %redact(&url), "using database");
    let storage = open_storage(&url, config.storage_wait).await?;
    let identity = ServingIdentity::load(&config, addr.port())?;
    let clients = Clients::connect(&config).await?;
    let authenticator = authenticator(&config, &clients, identity.client_cas.clone()).await?;
    let authorizer = authorizer(&config, clients.authz.clone())?;
    // Go's enabledPluginNames: every plugin is on unless disabled; an explicit enable wins.
    let disabled = |name: &str| !config.admission_plugin_enabled(name);
    let admission = admission_chain(clients.core.clone(), &disabled, &plugin_configs);
    let cache = WatchCache::start(storage.clone())
        .await
        .context("starting the watch cache")?;
    let compaction = start_compaction(&config, &storage);
    let state = Arc::new(AppState {
        store: Store::new(storage.clone(), cache, admission),
        compaction,
        health: Health::new(vec![("storage".to_string(), storage_check(&storage))])
            .not_for_liveness("storage"),
        authenticator,
        authorizer: Arc::new(authorizer),
        auditor: auditor.clone(),
        external_address: format!("{}:{}", config.external_hostname, addr.port()),
        shutting_down: AtomicBool::new(false),
        limits: Limits::new(
            config.max_requests_inflight,
            config.max_mutating_requests_inflight,
            config.request_timeout,
        ),
    });
    serve(&config, socket, addr, state, identity).await?;
    if let Some(a) = &auditor {
        // Buffered audit events are sent before exit (Go's backend Shutdown).
        a.shutdown(Duration::from_secs(10)).await;
    }
    storage.close().await;
    Ok(())
}

/// The serving certificate and key (given by flags, or made here in standalone mode with a CA,
/// an admin client certificate and a kubeconfig), and the client CAs standalone mode trusts.
struct ServingIdentity {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    /// Watched for rotation.
    cert_paths: (std::path::PathBuf, std::path::PathBuf),
    /// The admin kubeconfig written in standalone mode.
    kubeconfig: Option<std::path::PathBuf>,
    client_cas: Vec<u8>,
    public_url: String,
}

impl ServingIdentity {
    fn load(config: &Config, port: u16) -> anyhow::Result<ServingIdentity> {
        let public_url = format!("https://{}:{port}", url_host(&config.external_hostname));
        if config.standalone() {
            let pki = tls::pki::ensure_standalone(
                &config.cert_dir,
                std::slice::from_ref(&config.external_hostname),
            )?;
            let kubeconfig = config.cert_dir.join("admin.kubeconfig");
            tls::pki::write_kubeconfig(
                &kubeconfig,
                &public_url,
                &pki.ca_pem,
                &pki.admin_cert_pem,
                &pki.admin_key_pem,
                "wardle",
            )?;
            return Ok(ServingIdentity {
                cert_pem: pki.serving_cert_pem.into_bytes(),
                key_pem: pki.serving_key_pem.into_bytes(),
                cert_paths: (pki.serving_cert_path, pki.serving_key_path),
                kubeconfig: Some(kubeconfig),
                client_cas: pki.ca_pem.into_bytes(),
                public_url,
            });
        }
        let cert = config.tls_cert_file.as_ref().expect("standalone() checked");
        let key = config
            .tls_private_key_file
            .as_ref()
            .context("--tls-private-key-file is required")?;
        let read = |flag: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read {flag} {}: {e}; give a PEM file wardle can read",
                    path.display()
                )
            })
        };
        Ok(ServingIdentity {
            cert_pem: read("--tls-cert-file", cert)?,
            key_pem: read("--tls-private-key-file", key)?,
            cert_paths: (cert.clone(), key.clone()),
            kubeconfig: None,
            client_cas: Vec::new(),
            public_url,
        })
    }
}

/// Clients of the core cluster (delegated authn/authz, namespaces); None when standalone.
struct Clients {
    authn: Option<kube::Client>,
    authz: Option<kube::Client>,
    core: Option<kube::Client>,
}

impl Clients {
    async fn connect(config: &Config) -> anyhow::Result<Clients> {
        Ok(Clients {
            authn: kubeclient::client_for(
                config.authentication_kubeconfig.as_deref(),
                "--authentication-kubeconfig",
            )
            .await?,
            authz: kubeclient::client_for(
                config.authorization_kubeconfig.as_deref(),
                "--authorization-kubeconfig",
            )
            .await?,
            core: kubeclient::client_for(config.kubeconfig.as_deref(), "--kubeconfig").await?,
        })
    }
}

/// The authenticator from the flags and the cluster's authentication ConfigMap (kept fresh in
/// the background); TokenReview when a cluster is attached.
async fn authenticator(
    config: &Config,
    clients: &Clients,
    client_cas: Vec<u8>,
) -> anyhow::Result<Arc<Authenticator>> {
    let sources = AuthnSources {
        client_ca_file: config.client_ca_file.clone(),
        extra_client_ca_pem: (!client_cas.is_empty()).then_some(client_cas),
        request_header: RequestHeaderFlags {
            client_ca_file: config.requestheader_client_ca_file.clone(),
            allowed_names: config.requestheader_allowed_names.clone(),
            username_headers: config.requestheader_username_headers.clone(),
            uid_headers: config.requestheader_uid_headers.clone(),
            group_headers: config.requestheader_group_headers.clone(),
            extra_headers_prefixes: config.requestheader_extra_headers_prefix.clone(),
        },
        cluster: if config.authentication_skip_lookup {
            None
        } else {
            clients.authn.clone()
        },
        anonymous: true,
    };
    let authn_config = match sources.load().await {
        Ok(c) => c,
        Err(e) if config.authentication_tolerate_lookup_failure => {
            tracing::warn!(error = %format!("{e:#}"), "authentication lookup failed; going on without it");
            AuthnSources {
                cluster: None,
                ..sources.clone()
            }
            .load()
            .await?
        }
        Err(e) => return Err(e.context("loading the authentication configuration")),
    };
    let mut authenticator = Authenticator::with_config(&authn_config)?;
    if let Some(c) = &clients.authn {
        authenticator = authenticator.with_token_reviews(TokenReviewAuthenticator::new(
            c.clone(),
            config.authentication_token_webhook_cache_ttl,
        ));
    }
    let authenticator = Arc::new(authenticator);
    tokio::spawn(sources.keep_fresh(
        authenticator.clone(),
        authn_config,
        config.config_reload_interval,
    ));
    Ok(authenticator)
}

/// system:masters and the always-allowed paths; SubjectAccessReview when a cluster is attached.
fn authorizer(config: &Config, client: Option<kube::Client>) -> anyhow::Result<Authorizer> {
    let mut authorizer = Authorizer::with_groups(
        &["system:masters".to_string()],
        &config.authorization_always_allow_paths,
    )?;
    if let Some(c) = client {
        authorizer = authorizer.with_webhook(SubjectAccessReviewer::new(
            c,
            config.authorization_webhook_cache_authorized_ttl,
            config.authorization_webhook_cache_unauthorized_ttl,
        ));
    }
    Ok(authorizer)
}

/// Starts background compaction unless `--compaction-interval` is 0; its figures for /metrics.
fn start_compaction(config: &Config, storage: &Storage) -> Arc<CompactionStats> {
    let stats = Arc::new(CompactionStats::default());
    if !config.compaction_interval.is_zero() {
        compaction::spawn(
            storage.clone(),
            config.compaction_interval,
            config.history_retention,
            stats.clone(),
        );
    }
    stats
}

/// The readiness check of the database.
fn storage_check(storage: &Storage) -> Check {
    let storage = storage.clone();
    Arc::new(move || {
        let s = storage.clone();
        async move { s.ready().await.map_err(|e| e.to_string()) }.boxed()
    })
}

/// Serves HTTPS on the reserved socket until SIGTERM/SIGINT, reloading the serving certificate
/// when its files change, then drains for up to 10 s.
async fn serve(
    config: &Config,
    socket: TcpSocket,
    addr: SocketAddr,
    state: Arc<AppState>,
    identity: ServingIdentity,
) -> anyhow::Result<()> {
    let authenticator = state.authenticator.clone();
    let hints = authenticator.ca_bundles();
    let hint_refs: Vec<&[u8]> = hints.iter().map(Vec::as_slice).collect();
    let tls_config = tls::server::server_config_with_ca_hints(
        &identity.cert_pem,
        &identity.key_pem,
        &hint_refs,
    )?;
    let rustls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls_config));
    tokio::spawn(tls::server::watch_serving_files(
        rustls.clone(),
        identity.cert_paths.0,
        identity.cert_paths.1,
        Arc::new(move || authenticator.ca_bundles()),
        config.config_reload_interval,
    ));
    let handle = axum_server::Handle::new();
    let app = router(state.clone());
    let acceptor =
        axum_server::tls_rustls::RustlsAcceptor::new(rustls).acceptor(tls::server::PlainHttpAnswer);
    // Listening starts only now, so a client that finds the port open finds wardle serving.
    let listener = socket
        .listen(1024)
        .and_then(|l| l.into_std())
        .map_err(|e| listen_error(addr, e))?;
    let mut server = axum_server::from_tcp(listener)
        .context("serving")?
        .acceptor(acceptor)
        .handle(handle.clone())
        .first_request_timeout(config.http_header_read_timeout);
    tls::server::bound_connections(server.http_builder(), config.http_header_read_timeout);
    let server = server.serve(app.into_make_service_with_connect_info::<SocketAddr>());
    tokio::spawn(shut_down_on_signal(state, handle.clone()));
    tokio::spawn(announce(handle, identity.public_url, identity.kubeconfig));
    server.await.context("serving")
}

/// On SIGTERM/SIGINT: fail readiness, end watch streams (so the graceful drain isn't held open
/// by them) and drain for up to 10 s.
async fn shut_down_on_signal(state: Arc<AppState>, handle: axum_server::Handle<SocketAddr>) {
    wait_for_signal().await;
    tracing::info!("shutting down");
    state.shut_down();
    handle.graceful_shutdown(Some(Duration::from_secs(10)));
}

/// Logs the URL (and the admin kubeconfig) once the listener is up.
async fn announce(
    handle: axum_server::Handle<SocketAddr>,
    public_url: String,
    kubeconfig: Option<std::path::PathBuf>,
) {
    if let Some(addr) = handle.listening().await {
        tracing::info!(url = %public_url, listen = %addr, "serving");
        if let Some(kc) = &kubeconfig {
            let kc = kc.display();
            tracing::info!(
                kubeconfig = %kc,
                "admin kubeconfig written (try: kubectl --kubeconfig {kc} get flunders -A)"
            );
        }
    }
}

/// IPv6 literals need brackets in URLs and socket addresses.
fn url_host(h: &str) -> String {
    if h.contains(':') && !h.starts_with('[') {
        format!("[{h}]")
    } else {
        h.to_string()
    }
}

/// Binds the serving socket (without listening yet) before anything else is created, so a busy
/// port or a wrong address fails first. Returns the socket and its address (`--secure-port 0`
/// picks a free port). The errors say which address and what to change.
fn reserve_port(bind_address: &str, port: u16) -> anyhow::Result<(TcpSocket, SocketAddr)> {
    let ip: IpAddr = bind_address
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| {
            anyhow::anyhow!(
                "--bind-address {bind_address:?} is not an IP address; use 127.0.0.1 (this machine only), \
                 0.0.0.0 (every interface) or another address of this machine"
            )
        })?;
    let addr = SocketAddr::new(ip, port);
    let socket = if ip.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| listen_error(addr, e))?;
    // As std's and tokio's listeners do: a restart need not wait for old connections' TIME_WAIT.
    socket
        .set_reuseaddr(true)
        .and_then(|()| socket.bind(addr))
        .map_err(|e| listen_error(addr, e))?;
    let bound = socket.local_addr().map_err(|e| listen_error(addr, e))?;
    Ok((socket, bound))
}

/// The error for a socket that cannot serve on `addr`: the cause and what to change.
fn listen_error(addr: SocketAddr, e: std::io::Error) -> anyhow::Error {
    let port = addr.port();
    let fix = match e.kind() {
        ErrorKind::AddrInUse => format!(
            "another process (maybe another wardle-apiserver) is serving on port {port}; \
             stop it or choose a free port with --secure-port"
        ),
        ErrorKind::AddrNotAvailable => {
            "that is not an address of this machine; fix --bind-address".to_string()
        }
        ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges; choose --secure-port 1024 or higher".to_string()
        }
        _ => "check --bind-address and --secure-port".to_string(),
    };
    anyhow::anyhow!("cannot listen on {addr}: {e}; {fix}")
}

/// Opens the storage, first waiting (up to `wait`, a progress line every 2 s) for a Postgres
/// server that does not answer yet: in compose or a pod the database often starts after wardle.
/// Failures that waiting cannot fix (a refused login, a missing database, a bad URL) end at once.
async fn open_storage(url: &str, wait: Duration) -> anyhow::Result<Storage> {
    const RETRY_EVERY: Duration = Duration::from_secs(2);
    let shown = redact(url);
    let started = tokio::time::Instant::now();
    while let Some(cause) = postgres_unreachable(url).await? {
        let waited = started.elapsed();
        if waited >= wait {
            anyhow::bail!(
                "cannot reach the database {shown}: {cause} (waited {}s). Start the database or \
                 fix --database-url (or WARDLE_DATABASE_URL); --storage-wait sets how long to wait",
                waited.as_secs()
            );
        }
        tracing::warn!(
            database = %shown,
            %cause,
            waited_s = waited.as_secs(),
            storage_wait_s = wait.as_secs(),
            "database not reachable yet; retrying every 2s until --storage-wait"
        );
        tokio::time::sleep(RETRY_EVERY.min(wait - waited)).await;
    }
    let storage = Storage::open(url).await.map_err(|e| {
        if e.downcast_ref::<crate::storage::SchemaNewer>().is_some() {
            // The URL is right; the release is too old for the database.
            return anyhow::anyhow!("cannot open the database {shown}: {e:#}");
        }
        let hint = if matches!(Engine::of(url), Ok(Engine::Sqlite)) {
            " (a SQLite file's directory must exist and be writable)"
        } else {
            ""
        };
        anyhow::anyhow!(
            "cannot open the database {shown}: {e:#}; fix --database-url (or WARDLE_DATABASE_URL){hint}"
        )
    })?;
    tracing::info!(engine = storage.engine(), "database schema up to date");
    Ok(storage)
}

/// For a Postgres URL: one connection attempt, `Some(cause)` when it failed in a way waiting can
/// fix (connection refused, unknown host, server starting up), an error when it cannot. `None`
/// when the server answered, and for SQLite (opening a file needs no wait).
async fn postgres_unreachable(url: &str) -> anyhow::Result<Option<String>> {
    use sqlx::Connection;
    if !matches!(Engine::of(url), Ok(Engine::Postgres)) {
        return Ok(None);
    }
    let options: sqlx::postgres::PgConnectOptions = url.parse().map_err(|e| {
        anyhow::anyhow!(
            "--database-url {} is not a valid Postgres URL: {e}",
            redact(url)
        )
    })?;
    let attempt = sqlx::PgConnection::connect_with(&options);
    let error = match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Err(_) => return Ok(Some("no answer within 5s".to_string())),
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            return Ok(None);
        }
        Ok(Err(e)) => e,
    };
    let code = error
        .as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned());
    let fix = match code.as_deref() {
        // invalid_authorization_specification, invalid_password
        Some("28000" | "28P01") => "fix the user or password in --database-url",
        // invalid_catalog_name
        Some("3D000") => "create the database (createdb) or fix its name in --database-url",
        // cannot_connect_now (starting up, shutting down), too_many_connections: wait.
        Some(_) | None if !matches!(error, sqlx::Error::Configuration(_)) => {
            return Ok(Some(error.to_string()));
        }
        _ => "fix --database-url",
    };
    anyhow::bail!(
        "the database {} refused the connection: {error}; {fix}",
        redact(url)
    )
}

/// Database URLs as logged: the password (in the user info or a `password=` parameter) is
/// replaced by `***`; the rest (user, host, database) stays, so a wrong host or user can be seen.
pub fn redact(url: &str) -> String {
    match url.split_once('?') {
        Some((base, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            format!("{}?{}", redact_userinfo(base), params.join("&"))
        }
        None => redact_userinfo(url),
    }
}

fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
        .map_or(url.len(), |i| scheme_end + i);
    let Some(at) = url[scheme_end..authority_end]
        .rfind('@')
        .map(|i| scheme_end + i)
    else {
        return url.to_string();
    };
    match url[scheme_end..at].find(':').map(|i| scheme_end + i) {
        Some(colon) => format!("{}:***{}", &url[..colon], &url[at..]),
        None => url.to_string(),
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The admission chain: BanFlunder always (unless disabled); with a cluster attached also
/// NamespaceLifecycle, the webhooks and ValidatingAdmissionPolicy, each unless disabled.
fn admission_chain(
    core: Option<kube::Client>,
    disabled: &dyn Fn(&str) -> bool,
    configs: &crate::admission::config::PluginConfigs,
) -> Admission {
    let mut admission = Admission {
        ban_flunder: !disabled("BanFlunder"),
        ..Admission::default()
    };
    let Some(client) = core else {
        return admission;
    };
    let namespaces = Namespaces::start(client.clone());
    if !disabled("NamespaceLifecycle") {
        admission.namespace_lifecycle = Some(NamespaceLifecycle::new(namespaces.clone()));
    }
    let mutating = (!disabled("MutatingAdmissionWebhook"))
        .then(|| Informer::start(kube::Api::all(client.clone())));
    let validating = (!disabled("ValidatingAdmissionWebhook"))
        .then(|| Informer::start(kube::Api::all(client.clone())));
    if mutating.is_some() || validating.is_some() {
        admission.webhooks = Some(Webhooks::new(
            mutating,
            validating,
            namespaces.clone(),
            configs,
        ));
    }
    if !disabled("ValidatingAdmissionPolicy") {
        admission.policies = Some(Policies::start(client, namespaces));
    }
    admission
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://wardle:s3cret@db:5432/wardle?sslmode=disable"),
            "postgres://wardle:***@db:5432/wardle?sslmode=disable"
        );
        assert_eq!(
            redact("postgres://a:b@c@db/wardle"),
            "postgres://a:***@db/wardle"
        );
        assert_eq!(redact("postgres://wardle@db/w"), "postgres://wardle@db/w");
        assert_eq!(
            redact("postgres://db/w?user=a@b"),
            "postgres://db/w?user=a@b"
        );
        assert_eq!(
            redact("postgres://db/w?user=u&password=p@x"),
            "postgres://db/w?user=u&password=***"
        );
        assert_eq!(
            redact("sqlite://.wardle/wardle.db"),
            "sqlite://.wardle/wardle.db"
        );
    }
}
