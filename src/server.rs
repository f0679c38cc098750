//! Wiring: build storage, registry, auth and the router from the config and serve until stopped.

use crate::admission::Admission;
use crate::admission::informer::Informer;
use crate::admission::namespace::{NamespaceLifecycle, Namespaces};
use crate::admission::policy::Policies;
use crate::admission::webhook::Webhooks;
use crate::authn::source::{AuthnSources, RequestHeaderFlags};
use crate::authn::{Authenticator, TokenReviewAuthenticator};
use crate::authz::Authorizer;
use crate::authz::webhook::SubjectAccessReviewer;
use crate::config::Config;
use crate::http::health::{Check, Health};
use crate::http::limits::Limits;
use crate::http::router::{AppState, router};
use crate::kubeclient;
use crate::registry::Store;
use crate::storage::Storage;
use crate::storage::cache::WatchCache;
use crate::storage::compaction::{self, CompactionStats};
use crate::tls;
use anyhow::Context;
use futures::FutureExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub async fn run(config: Config) -> anyhow::Result<()> {
    tls::server::install_crypto_provider();
    // First, so a bad policy or audit flag stops startup before anything else is touched.
    let auditor = crate::audit::Auditor::from_options(&config.audit)
        .await
        .context("setting up auditing")?;
    std::fs::create_dir_all(&config.cert_dir)
        .with_context(|| format!("creating --cert-dir {}", config.cert_dir.display()))?;

    let url = config.database_url();
    let storage = Storage::open(&url)
        .await
        .with_context(|| format!("opening storage {}", redact(&url)))?;

    // Serving cert and client CAs: given by flags, or made here (standalone mode).
    let mut client_cas: Vec<u8> = Vec::new();
    let public_url = format!(
        "https://{}:{}",
        url_host(&config.external_hostname),
        config.secure_port
    );
    let (cert_pem, key_pem, cert_paths, kubeconfig) = if config.standalone() {
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
        client_cas.extend_from_slice(pki.ca_pem.as_bytes());
        (
            pki.serving_cert_pem.into_bytes(),
            pki.serving_key_pem.into_bytes(),
            (pki.serving_cert_path, pki.serving_key_path),
            Some(kubeconfig),
        )
    } else {
        let cert = config.tls_cert_file.as_ref().expect("standalone() checked");
        let key = config
            .tls_private_key_file
            .as_ref()
            .context("--tls-private-key-file is required")?;
        (
            std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?,
            std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
            (cert.clone(), key.clone()),
            None,
        )
    };

    // Clients of the core cluster (delegated authn/authz, namespaces); None when standalone.
    let authn_client = kubeclient::client_for(
        config.authentication_kubeconfig.as_deref(),
        "--authentication-kubeconfig",
    )
    .await?;
    let authz_client = kubeclient::client_for(
        config.authorization_kubeconfig.as_deref(),
        "--authorization-kubeconfig",
    )
    .await?;
    let core_client = kubeclient::client_for(config.kubeconfig.as_deref(), "--kubeconfig").await?;

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
            authn_client.clone()
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
    if let Some(c) = &authn_client {
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
    let mut authorizer = Authorizer::with_groups(
        &["system:masters".to_string()],
        &config.authorization_always_allow_paths,
    )?;
    if let Some(c) = authz_client {
        authorizer = authorizer.with_webhook(SubjectAccessReviewer::new(
            c,
            config.authorization_webhook_cache_authorized_ttl,
            config.authorization_webhook_cache_unauthorized_ttl,
        ));
    }

    let disabled = |name: &str| config.disable_admission_plugins.iter().any(|p| p == name);
    let admission = admission_chain(core_client, &disabled);
    let cache = WatchCache::start(storage.clone())
        .await
        .context("starting the watch cache")?;
    let compaction_stats = Arc::new(CompactionStats::default());
    if !config.compaction_interval.is_zero() {
        compaction::spawn(
            storage.clone(),
            config.compaction_interval,
            config.history_retention,
            compaction_stats.clone(),
        );
    }
    let store = Store::new(storage.clone(), cache.clone(), admission);
    let health_storage = storage.clone();
    let storage_check: Check = Arc::new(move || {
        let s = health_storage.clone();
        async move { s.ready().await.map_err(|e| e.to_string()) }.boxed()
    });
    let state = Arc::new(AppState {
        store,
        cache: cache.clone(),
        compaction: compaction_stats,
        health: Health::new(vec![("storage".to_string(), storage_check)])
            .not_for_liveness("storage"),
        authenticator: authenticator.clone(),
        authorizer: Arc::new(authorizer),
        auditor: auditor.clone(),
        external_address: format!("{}:{}", config.external_hostname, config.secure_port),
        shutting_down: AtomicBool::new(false),
        limits: Limits::new(
            config.max_requests_inflight,
            config.max_mutating_requests_inflight,
            config.request_timeout,
        ),
    });

    let hints = authenticator.ca_bundles();
    let hint_refs: Vec<&[u8]> = hints.iter().map(Vec::as_slice).collect();
    let tls_config = tls::server::server_config_with_ca_hints(&cert_pem, &key_pem, &hint_refs)?;
    let rustls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls_config));
    let hints_of = authenticator.clone();
    tokio::spawn(tls::server::watch_serving_files(
        rustls.clone(),
        cert_paths.0,
        cert_paths.1,
        Arc::new(move || hints_of.ca_bundles()),
        config.config_reload_interval,
    ));
    let addr: SocketAddr = format!("{}:{}", url_host(&config.bind_address), config.secure_port)
        .parse()
        .with_context(|| format!("bad --bind-address {}", config.bind_address))?;
    let handle = axum_server::Handle::new();

    let app = router(state.clone());
    let mut server = axum_server::bind_rustls(addr, rustls)
        .handle(handle.clone())
        .first_request_timeout(config.http_header_read_timeout);
    tls::server::bound_connections(server.http_builder(), config.http_header_read_timeout);
    let server = server.serve(app.into_make_service_with_connect_info::<SocketAddr>());
    let shutdown_state = state.clone();
    let shutdown_handle = handle.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown_state.shutting_down.store(true, Ordering::Relaxed);
        // End watch streams now, so the graceful drain isn't held open by them.
        shutdown_state.cache.shutdown();
        shutdown_handle.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    tokio::spawn(async move {
        if let Some(addr) = handle.listening().await {
            tracing::info!(%addr, "serving");
            if let Some(kc) = &kubeconfig {
                eprintln!(
                    "\nwardle is serving on {public_url}; try:\n  kubectl --kubeconfig {} get flunders -A\n",
                    kc.display()
                );
            }
        }
    });
    server.await.context("serving")?;
    if let Some(a) = &auditor {
        // Buffered audit events are sent before exit (Go's backend Shutdown).
        a.shutdown(Duration::from_secs(10)).await;
    }
    storage.close().await;
    Ok(())
}

/// IPv6 literals need brackets in URLs and socket addresses.
fn url_host(h: &str) -> String {
    if h.contains(':') && !h.starts_with('[') {
        format!("[{h}]")
    } else {
        h.to_string()
    }
}

/// Don't log passwords in database URLs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
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
fn admission_chain(core: Option<kube::Client>, disabled: &dyn Fn(&str) -> bool) -> Admission {
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
        admission.webhooks = Some(Webhooks::new(mutating, validating, namespaces.clone()));
    }
    if !disabled("ValidatingAdmissionPolicy") {
        admission.policies = Some(Policies::start(client, namespaces));
    }
    admission
}
