//! MutatingAdmissionWebhook and ValidatingAdmissionWebhook (Go's
//! `pkg/admission/plugin/webhook/{generic,mutating,validating,request}`): the cluster's
//! webhook configurations (from informers) matched against a write, an `AdmissionReview`
//! v1 POSTed over HTTPS to each matching webhook, JSONPatch responses applied, denials and
//! call failures reported with Go's messages and per `failurePolicy`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhookConfiguration, RuleWithOperations,
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use super::attributes::{Attributes, Operation};
use super::cel;
use super::config::PluginConfigs;
use super::credentials::{self, AuthInfoResolver, Credentials};
use super::informer::Informer;
use super::matching::{self, Rule};
use super::namespace::Namespaces;
use super::warnings;
use crate::apimachinery::status::{ApiError, ApiResult, Reason, StatusCause};

/// Go's default `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest webhook response read (an object is at most 3 MiB; its patch and review
/// wrapper fit in this with room to spare).
const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// HTTP clients kept per (endpoint, caBundle); the cache is reset when it grows past this.
const MAX_CLIENTS: usize = 256;

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A cached client's key: URL, caBundle and the kubeconfig user whose credentials it presents.
type ClientKey = (String, Vec<u8>, String);

/// One webhook of either kind, as dispatch needs it.
struct Hook {
    name: String,
    client_config: WebhookClientConfig,
    rules: Vec<RuleWithOperations>,
    match_policy: Option<String>,
    namespace_selector: Option<LabelSelector>,
    object_selector: Option<LabelSelector>,
    match_conditions: Vec<MatchCondition>,
    /// failurePolicy Ignore (the v1 default is Fail).
    ignore_failures: bool,
    side_effects: String,
    timeout: Duration,
    /// reinvocationPolicy IfNeeded (mutating only).
    reinvoke: bool,
    review_versions: Vec<String>,
}

macro_rules! hook_from {
    ($w:expr, $reinvoke:expr) => {{
        let w = $w;
        Hook {
            name: w.name.clone(),
            client_config: w.client_config.clone(),
            rules: w.rules.clone().unwrap_or_default(),
            match_policy: w.match_policy.clone(),
            namespace_selector: w.namespace_selector.clone(),
            object_selector: w.object_selector.clone(),
            match_conditions: w.match_conditions.clone().unwrap_or_default(),
            ignore_failures: w.failure_policy.as_deref() == Some("Ignore"),
            side_effects: w.side_effects.clone(),
            timeout: w.timeout_seconds.map_or(DEFAULT_TIMEOUT, |s| {
                Duration::from_secs(s.clamp(1, 30) as u64)
            }),
            reinvoke: $reinvoke,
            review_versions: w.admission_review_versions.clone(),
        }
    }};
}

/// Both webhook plugins: the configuration informers, namespaces for namespaceSelector, and
/// the HTTP clients.
pub struct Webhooks {
    pub mutating: Option<Arc<Informer<MutatingWebhookConfiguration>>>,
    pub validating: Option<Arc<Informer<ValidatingWebhookConfiguration>>>,
    pub namespaces: Arc<Namespaces>,
    /// Client credentials of each plugin (`--admission-control-config-file`).
    mutating_auth: Option<Arc<AuthInfoResolver>>,
    validating_auth: Option<Arc<AuthInfoResolver>>,
    clients: Mutex<HashMap<ClientKey, HttpClient>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

/// Why a call failed (Go's `ErrCallingWebhook`): subject to failurePolicy.
struct CallError {
    reason: String,
}

impl CallError {
    fn new(reason: String) -> Self {
        CallError { reason }
    }
}

/// The outcome of one call that did not fail.
enum Verdict {
    /// A non-empty JSONPatch, when the webhook sent one.
    Allowed {
        patch: Option<json_patch::Patch>,
    },
    Denied(ApiError),
}

impl Webhooks {
    pub fn new(
        mutating: Option<Arc<Informer<MutatingWebhookConfiguration>>>,
        validating: Option<Arc<Informer<ValidatingWebhookConfiguration>>>,
        namespaces: Arc<Namespaces>,
        configs: &PluginConfigs,
    ) -> Arc<Self> {
        Arc::new(Webhooks {
            mutating,
            validating,
            namespaces,
            mutating_auth: configs.mutating_webhook_auth.clone(),
            validating_auth: configs.validating_webhook_auth.clone(),
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The mutating webhooks, configurations in name order (as Go sorts them).
    fn mutating_hooks(&self) -> Vec<Hook> {
        let Some(inf) = &self.mutating else {
            return Vec::new();
        };
        inf.snapshot()
            .values()
            .flat_map(|c| c.webhooks.iter().flatten())
            .map(|w| hook_from!(w, w.reinvocation_policy.as_deref() == Some("IfNeeded")))
            .collect()
    }

    fn validating_hooks(&self) -> Vec<Hook> {
        let Some(inf) = &self.validating else {
            return Vec::new();
        };
        inf.snapshot()
            .values()
            .flat_map(|c| c.webhooks.iter().flatten())
            .map(|w| hook_from!(w, false))
            .collect()
    }

    /// MutatingAdmissionWebhook: call every matching mutating webhook in order, applying its
    /// patch to `obj` (versioned JSON of the request's version); then once more those with
    /// `reinvocationPolicy: IfNeeded` that ran before a later webhook changed the object.
    /// Ok(true) if any webhook changed it.
    pub async fn mutate(&self, a: &Attributes<'_>, mut obj: Option<&mut Value>) -> ApiResult<bool> {
        let hooks = self.mutating_hooks();
        if hooks.is_empty() {
            return Ok(false);
        }
        // For each called hook: the number of changes made after it ran.
        let mut called: Vec<(usize, usize)> = Vec::new();
        let mut changes = 0usize;
        for (i, h) in hooks.iter().enumerate() {
            if self.call_mutating(a, h, obj.as_deref_mut()).await? {
                changes += 1;
                called.iter_mut().for_each(|(_, c)| *c += 1);
            }
            if let Some(c) = called.iter_mut().find(|(j, _)| *j == i) {
                c.1 = 0;
            } else {
                called.push((i, 0));
            }
        }
        if changes == 0 {
            return Ok(false);
        }
        for (i, later_changes) in called {
            if hooks[i].reinvoke && later_changes > 0 {
                self.call_mutating(a, &hooks[i], obj.as_deref_mut()).await?;
            }
        }
        Ok(true)
    }

    /// One mutating webhook; Ok(true) if it changed the object.
    async fn call_mutating(
        &self,
        a: &Attributes<'_>,
        h: &Hook,
        obj: Option<&mut Value>,
    ) -> ApiResult<bool> {
        let Some(version) = self.should_call(a, h, obj.as_deref()).await? else {
            return Ok(false);
        };
        let versioned = obj.as_deref().map(|o| a.convert(o, version));
        match self.call(a, h, version, versioned.as_ref(), true).await {
            Err(e) => fail(h, e).map(|()| false),
            Ok(Verdict::Denied(e)) => Err(e),
            Ok(Verdict::Allowed { patch: None }) => Ok(false),
            Ok(Verdict::Allowed { patch: Some(p) }) => {
                let (Some(current), Some(versioned)) = (obj, versioned) else {
                    return Err(ApiError::internal(format!(
                        "admission webhook {:?} attempted to modify the object, which is not supported for this operation",
                        h.name
                    )));
                };
                let patched = apply_json_patch(versioned.clone(), &p)?;
                if patched == versioned {
                    return Ok(false);
                }
                // Back to the request's version, as Go converts the patched object.
                let r = a.resource;
                *current = if version == a.version {
                    patched
                } else {
                    r.hub_to_version(a.version, r.to_hub(version, patched))
                };
                Ok(true)
            }
        }
    }

    /// ValidatingAdmissionWebhook: every matching webhook is called (concurrently, as in Go);
    /// the first denial or failure in webhook order is returned.
    pub async fn validate(&self, a: &Attributes<'_>, obj: Option<&Value>) -> ApiResult<()> {
        let hooks = self.validating_hooks();
        if hooks.is_empty() {
            return Ok(());
        }
        let mut calls = Vec::new();
        for h in &hooks {
            if let Some(version) = self.should_call(a, h, obj).await? {
                calls.push((h, version, obj.map(|o| a.convert(o, version))));
            }
        }
        let results = futures::future::join_all(
            calls
                .iter()
                .map(|(h, v, o)| self.call(a, h, v, o.as_ref(), false)),
        )
        .await;
        for ((h, _, _), r) in calls.iter().zip(results) {
            match r {
                Ok(Verdict::Allowed { .. }) => {}
                Ok(Verdict::Denied(e)) => return Err(e),
                Err(e) => fail(h, e)?,
            }
        }
        Ok(())
    }

    /// Go's `ShouldCallHook` + match conditions: the version the webhook is called in, or None.
    async fn should_call(
        &self,
        a: &Attributes<'_>,
        h: &Hook,
        obj: Option<&Value>,
    ) -> ApiResult<Option<&'static str>> {
        let Some(version) =
            matching::matched_version(a, h.match_policy.as_deref(), h.rules.iter().map(Rule::from))
        else {
            return Ok(None);
        };
        if !selectors_match(
            a,
            &self.namespaces,
            h.namespace_selector.as_ref(),
            h.object_selector.as_ref(),
            obj,
        )
        .await
        .map_err(|e| internal(&e))?
        {
            return Ok(None);
        }
        if h.match_conditions.is_empty() {
            return Ok(Some(version));
        }
        let mut act = cel::Activation::default();
        bind_request(&mut act, a, version, obj);
        let matched = cel::evaluate_blocking(|| {
            act.match_conditions(h.match_conditions.iter().map(|mc| mc.expression.as_str()))
        });
        match matched {
            Ok(true) => Ok(Some(version)),
            Ok(false) => Ok(None),
            // Go: not a call failure; Fail makes it Forbidden, Ignore skips the webhook.
            Err(_) if h.ignore_failures => Ok(None),
            Err(e) => Err(ApiError::forbidden(&a.group_resource(), &a.name, &e)),
        }
    }

    /// POST an AdmissionReview for `a` (objects already in `version`) and judge the response.
    async fn call(
        &self,
        a: &Attributes<'_>,
        h: &Hook,
        version: &'static str,
        obj: Option<&Value>,
        mutating: bool,
    ) -> Result<Verdict, CallError> {
        if a.dry_run && !matches!(h.side_effects.as_str(), "None" | "NoneOnDryRun") {
            // Go: not a call failure, so failurePolicy does not apply.
            return Ok(Verdict::Denied(ApiError::bad_request(format!(
                "admission webhook {:?} does not support dry run",
                h.name
            ))));
        }
        if !h.review_versions.iter().any(|v| v == "v1") {
            return Err(CallError::new(format!(
                "webhook does not accept known AdmissionReview versions {:?}",
                h.review_versions
            )));
        }
        let uid = uuid::Uuid::new_v4().to_string();
        let review = admission_review(a, &uid, version, obj);
        let auth = if mutating {
            &self.mutating_auth
        } else {
            &self.validating_auth
        };
        let endpoint = self
            .client(&h.client_config, auth.as_deref())
            .map_err(|reason| CallError::new(format!("could not get REST client: {reason}")))?;
        let response = endpoint.post(h.timeout, &review).await?;
        verify_response(&uid, mutating, &response)
            .map_err(|e| CallError::new(format!("received invalid webhook response: {e}")))?;
        judge(h, &response["response"])
    }

    /// The endpoint of `cc`: its URL, a cached client trusting only `caBundle` (or the system
    /// roots) and presenting the client certificate of `auth`'s matching user, and that
    /// user's request credentials.
    fn client(
        &self,
        cc: &WebhookClientConfig,
        auth: Option<&AuthInfoResolver>,
    ) -> Result<Endpoint, String> {
        let url = match (&cc.url, &cc.service) {
            (Some(u), _) => u.clone(),
            // Go's default service resolver: the service's cluster DNS name.
            (None, Some(s)) => format!(
                "https://{}.{}.svc:{}{}",
                s.name,
                s.namespace,
                s.port.unwrap_or(443),
                s.path.as_deref().unwrap_or("")
            ),
            (None, None) => return Err("neither url nor service is set".into()),
        };
        if !url.starts_with("https://") {
            return Err(format!("webhook URL {url:?} is not https"));
        }
        let creds = match auth {
            Some(r) => r.resolve(&credentials::target_of(&url))?,
            None => Credentials::default(),
        };
        let ca = cc
            .ca_bundle
            .as_ref()
            .map(|b| b.0.clone())
            .unwrap_or_default();
        let key = (url.clone(), ca, creds.user.clone());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let client = match clients.get(&key) {
            Some(c) => c.clone(),
            None => {
                let client = build_client(&key.1, creds.identity.as_ref())?;
                if clients.len() >= MAX_CLIENTS {
                    clients.clear();
                }
                clients.insert(key, client.clone());
                client
            }
        };
        Ok(Endpoint { url, client, creds })
    }
}

/// Where one call goes: URL, client and request credentials.
struct Endpoint {
    url: String,
    client: HttpClient,
    creds: Credentials,
}

impl Endpoint {
    /// POST `review` within `timeout`; the decoded JSON answer of a 2xx response.
    async fn post(&self, timeout: Duration, review: &Value) -> Result<Value, CallError> {
        let url = &self.url;
        let body = serde_json::to_vec(review).map_err(|e| CallError::new(e.to_string()))?;
        let mut req = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json");
        let c = &self.creds;
        if let Some(t) = &c.bearer_token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        } else if let Some((u, p)) = &c.basic {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req = req.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
        }
        for (k, v) in &c.impersonate {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CallError::new(format!("failed to call webhook: {e}")))?;
        let post = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| error_chain(&e))?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        };
        let (status, bytes) = match tokio::time::timeout(timeout, post).await {
            Err(_) => {
                return Err(CallError::new(format!(
                    "failed to call webhook: Post {url:?}: context deadline exceeded"
                )));
            }
            Ok(Err(e)) => {
                return Err(CallError::new(format!(
                    "failed to call webhook: Post {url:?}: {e}"
                )));
            }
            Ok(Ok(x)) => x,
        };
        if !status.is_success() {
            return Err(CallError::new(format!(
                "failed to call webhook: the server responded with the status code {} but did not return more information",
                status.as_u16()
            )));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| CallError::new(format!("failed to call webhook: {e}")))
    }
}

/// An error and its sources, joined with `: ` as Go prints wrapped errors.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// The AdmissionReview v1 request of one call: uid, and objects in `version`.
fn admission_review(a: &Attributes<'_>, uid: &str, version: &str, obj: Option<&Value>) -> Value {
    let mut request = admission_request(a, version);
    request["uid"] = json!(uid);
    request["object"] = obj.cloned().unwrap_or(Value::Null);
    request["oldObject"] = a
        .old
        .as_ref()
        .map_or(Value::Null, |o| a.convert(o, version));
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    })
}

/// A verified `response` judged: warnings and audit annotations recorded, then a denial as
/// Go formats it, or the JSONPatch (base64) decoded.
fn judge(h: &Hook, r: &Value) -> Result<Verdict, CallError> {
    for w in r["warnings"].as_array().into_iter().flatten() {
        if let Some(w) = w.as_str() {
            warnings::add(w);
        }
    }
    // Go: the webhook's auditAnnotations go into the audit event as `<webhook>/<key>`.
    for (k, v) in r["auditAnnotations"].as_object().into_iter().flatten() {
        if let Some(v) = v.as_str() {
            crate::audit::add_annotation(&format!("{}/{k}", h.name), v);
        }
    }
    if r["allowed"].as_bool() != Some(true) {
        return Ok(Verdict::Denied(denial(&h.name, &r["status"])));
    }
    let patch = base64::engine::general_purpose::STANDARD
        .decode(r["patch"].as_str().unwrap_or(""))
        .map_err(|e| CallError::new(format!("failed to call webhook: illegal base64 data: {e}")))?;
    if patch.is_empty() {
        return Ok(Verdict::Allowed { patch: None });
    }
    let ops: json_patch::Patch = serde_json::from_slice(&patch).map_err(|e| {
        CallError::new(format!(
            "received undecodable patch in webhook response: {e}"
        ))
    })?;
    if r["patchType"] != "JSONPatch" {
        return Err(CallError::new(format!(
            "unsupported patch type {:?}",
            r["patchType"].as_str().unwrap_or("")
        )));
    }
    Ok(Verdict::Allowed {
        patch: (!ops.0.is_empty()).then_some(ops),
    })
}

/// A rustls client (ring) trusting the PEM `ca_bundle`, or the system roots when it is empty,
/// presenting `identity` (PEM certificate chain, key) when given.
fn build_client(
    ca_bundle: &[u8],
    identity: Option<&(Vec<u8>, Vec<u8>)>,
) -> Result<HttpClient, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if ca_bundle.is_empty() {
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
    } else {
        let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(ca_bundle)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("invalid caBundle: {e}"))?;
        for c in certs {
            roots.add(c).map_err(|e| format!("invalid caBundle: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let tls = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = rustls_pki_types::CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("invalid client certificate: {e}"))?;
            let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| format!("invalid client key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("invalid client certificate: {e}"))?
        }
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

/// A call failure under the hook's failurePolicy: Ignore logs and goes on; Fail is Go's
/// InternalError `failed calling webhook "x": <reason>`.
fn fail(h: &Hook, e: CallError) -> ApiResult<()> {
    let msg = format!("failed calling webhook {:?}: {}", h.name, e.reason);
    if h.ignore_failures {
        tracing::warn!(webhook = %h.name, error = %msg, "failed calling webhook, failing open");
        return Ok(());
    }
    tracing::warn!(webhook = %h.name, error = %msg, "failed calling webhook, failing closed");
    Err(internal(&msg))
}

/// Go's `NewInternalError`: the message, and the same text as the one cause.
pub(super) fn internal(msg: &str) -> ApiError {
    let mut e = ApiError::internal(msg);
    e.details
        .get_or_insert_with(Box::default)
        .causes
        .push(StatusCause {
            reason: String::new(),
            message: msg.to_string(),
            field: String::new(),
        });
    e
}

/// Go's `VerifyAdmissionResponse` for v1, its checks in its order and with its messages.
fn verify_response(uid: &str, mutating: bool, review: &Value) -> Result<(), String> {
    let r = &review["response"];
    if !r.is_object() {
        return Err("webhook response was absent".into());
    }
    let got = r["uid"].as_str().unwrap_or("");
    if got != uid {
        return Err(format!("expected response.uid={uid:?}, got {got:?}"));
    }
    let av = review["apiVersion"].as_str().unwrap_or("");
    let kind = review["kind"].as_str().unwrap_or("");
    if av != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {av}, Kind={kind}"
        ));
    }
    let has_patch = r["patch"].as_str().is_some_and(|p| !p.is_empty());
    let patch_type = r.get("patchType").filter(|t| !t.is_null());
    match (mutating, has_patch, patch_type) {
        (true, true, None) => {
            Err("webhook returned response.patch but not response.patchType".into())
        }
        (true, false, Some(_)) => {
            Err("webhook returned response.patchType but not response.patch".into())
        }
        (true, _, Some(t)) if t.as_str().is_none_or(str::is_empty) => Err(format!(
            "webhook returned invalid response.patchType of {:?}",
            t.as_str().unwrap_or("")
        )),
        (false, true, _) => Err("validating webhook may not return response.patch".into()),
        (false, _, Some(_)) => Err("validating webhook may not return response.patchType".into()),
        _ => Ok(()),
    }
}

/// Go's `ToStatusErr`: the webhook's Status passes through — its reason (any text, as the
/// webhook sent it) and details — with a code of at least 400 (400 by default; wardle also
/// keeps it below 600, the codes HTTP has) and the message prefixed with
/// `admission webhook "name" denied the request`.
fn denial(name: &str, status: &Value) -> ApiError {
    let denied_by = format!("admission webhook {name:?} denied the request");
    let code = status["code"]
        .as_u64()
        .filter(|c| (400..600).contains(c))
        .unwrap_or(400) as u16;
    let message = status["message"].as_str().unwrap_or("");
    let reason = status["reason"].as_str().unwrap_or("");
    let text = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    let mut e = ApiError::new(code, Reason::parse(reason), text);
    if let Some(d) = status.get("details").filter(|d| d.is_object()) {
        let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
        let det = e.details.get_or_insert_with(Box::default);
        det.name = s("name");
        det.group = s("group");
        det.kind = s("kind");
        det.uid = s("uid");
        for c in d["causes"].as_array().into_iter().flatten() {
            det.causes.push(StatusCause {
                reason: c["reason"].as_str().unwrap_or("").into(),
                message: c["message"].as_str().unwrap_or("").into(),
                field: c["field"].as_str().unwrap_or("").into(),
            });
        }
    }
    e
}

/// The most operations a webhook's patch may have (Go's limit on a client's JSON patch).
const MAX_PATCH_OPERATIONS: usize = 10_000;
/// The most bytes a patch's `copy` operations may add together (Go's `JSONPatchMaxCopyBytes`).
const MAX_PATCH_COPY_BYTES: usize = 3 << 20;
/// The deepest a patched object may nest: what wardle's JSON decoder reads back (serde_json's
/// recursion limit), so a patch cannot store an object that could not be read again.
const MAX_PATCHED_DEPTH: usize = 100;

/// Apply a webhook's JSONPatch (RFC 6902) to `obj`, operation by operation, bounded: at most
/// `MAX_PATCH_OPERATIONS`, `MAX_PATCH_COPY_BYTES` copied in all (else repeated copies would
/// double the object each time), no deeper than `MAX_PATCHED_DEPTH`. A patch that does not
/// apply, or leaves no object, is an internal error, as in Go.
pub fn apply_json_patch(mut obj: Value, ops: &json_patch::Patch) -> ApiResult<Value> {
    use json_patch::PatchOperation as Op;
    if ops.0.len() > MAX_PATCH_OPERATIONS {
        return Err(internal(&format!(
            "the patch has {} operations, more than the {MAX_PATCH_OPERATIONS} allowed",
            ops.0.len()
        )));
    }
    let mut copied = 0usize;
    for op in &ops.0 {
        // Depth the operation gives its target: the pointer's tokens plus its value's depth.
        let (path, value_depth) = match op {
            Op::Add(o) => (&o.path, depth(&o.value)),
            Op::Replace(o) => (&o.path, depth(&o.value)),
            Op::Copy(o) => {
                let from = obj.pointer(o.from.as_str());
                let size = from.map_or(0, |v| serde_json::to_vec(v).map_or(0, |b| b.len()));
                copied += size;
                if copied > MAX_PATCH_COPY_BYTES {
                    return Err(internal(&format!(
                        "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_PATCH_COPY_BYTES}"
                    )));
                }
                (&o.path, from.map_or(0, depth))
            }
            Op::Move(o) => (&o.path, obj.pointer(o.from.as_str()).map_or(0, depth)),
            Op::Remove(_) | Op::Test(_) => {
                json_patch::patch(&mut obj, std::slice::from_ref(op))
                    .map_err(|e| internal(&e.to_string()))?;
                continue;
            }
        };
        if path.into_iter().count() + value_depth > MAX_PATCHED_DEPTH {
            return Err(internal(&format!(
                "the patched object would nest deeper than {MAX_PATCHED_DEPTH} levels"
            )));
        }
        json_patch::patch(&mut obj, std::slice::from_ref(op))
            .map_err(|e| internal(&e.to_string()))?;
    }
    if !obj.is_object() {
        return Err(internal("the patched object is not a JSON object"));
    }
    Ok(obj)
}

/// How deep `v` nests (a scalar is 1). Values here are bounded by `MAX_PATCHED_DEPTH` or by
/// the JSON decoder's recursion limit, so recursion is safe.
fn depth(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn gvk(version: &str, kind: &str) -> Value {
    json!({"group": crate::api::GROUP, "version": version, "kind": kind})
}

fn gvr(version: &str, resource: &str) -> Value {
    json!({"group": crate::api::GROUP, "version": version, "resource": resource})
}

/// The AdmissionRequest fields shared by webhooks and CEL's `request` (no uid or objects):
/// kind/resource in the matched `version`, requestKind/requestResource in the request's.
pub(super) fn admission_request(a: &Attributes<'_>, version: &str) -> Value {
    let r = a.resource;
    let mut req = json!({
        "kind": gvk(version, r.kind()),
        "resource": gvr(version, r.plural()),
        "requestKind": gvk(a.version, r.kind()),
        "requestResource": gvr(a.version, r.plural()),
        "operation": a.operation.as_str(),
        "userInfo": a.user_info(),
        "dryRun": a.dry_run,
        "options": a.options(),
    });
    if !a.name.is_empty() {
        req["name"] = json!(a.name);
    }
    if !a.namespace.is_empty() {
        req["namespace"] = json!(a.namespace);
    }
    req
}

/// Bind `object`, `oldObject` and `request` for CEL (match conditions, policies).
pub(super) fn bind_request(
    act: &mut cel::Activation,
    a: &Attributes<'_>,
    version: &str,
    obj: Option<&Value>,
) {
    // DELETE has no object; CREATE no oldObject: both are null in Go.
    let object = match a.operation {
        Operation::Delete => None,
        _ => obj.map(|o| a.convert(o, version)),
    };
    let old = a.old.as_ref().map(|o| a.convert(o, version));
    act.set(
        "object",
        object.as_ref().map_or(::cel::Value::Null, cel::from_json),
    );
    act.set(
        "oldObject",
        old.as_ref().map_or(::cel::Value::Null, cel::from_json),
    );
    act.set("request", cel::from_json(&admission_request(a, version)));
}

/// namespaceSelector and objectSelector of a webhook or policy. A cluster-scoped object is
/// never excluded by a namespaceSelector (Go). Errors: an invalid selector, or a namespace
/// that cannot be read.
pub(super) async fn selectors_match(
    a: &Attributes<'_>,
    namespaces: &Namespaces,
    ns_sel: Option<&LabelSelector>,
    obj_sel: Option<&LabelSelector>,
    obj: Option<&Value>,
) -> Result<bool, String> {
    let os = matching::label_selector(obj_sel)?;
    if !matching::object_selector_matches(&os, obj, a.old.as_ref()) {
        return Ok(false);
    }
    let ns = matching::label_selector(ns_sel)?;
    if ns.is_empty() || a.namespace.is_empty() {
        return Ok(true);
    }
    let Some(n) = namespaces.get(a.namespace).await.map_err(|e| e.message)? else {
        return Err(format!("namespace {:?} not found", a.namespace));
    };
    let labels = matching::labels_json(n.metadata.labels.as_ref());
    Ok(ns.matches(Some(&labels)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_patches_apply_in_order_and_bad_ones_are_internal_errors() {
        let obj = json!({"metadata": {"name": "f"}, "spec": {}});
        let patch = |v: Value| -> json_patch::Patch { serde_json::from_value(v).unwrap() };
        let p = patch(json!([{"op":"add","path":"/metadata/labels","value":{}},
                             {"op":"add","path":"/metadata/labels/a","value":"1"},
                             {"op":"replace","path":"/metadata/labels/a","value":"2"}]));
        let out = apply_json_patch(obj.clone(), &p).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "2"}));
        let e = apply_json_patch(obj.clone(), &patch(json!([{"op":"remove","path":"/nope"}])))
            .unwrap_err();
        assert_eq!(e.code, 500);
        let not_object = patch(json!([{"op":"replace","path":"","value":1}]));
        assert!(apply_json_patch(obj, &not_object).is_err());
    }

    #[test]
    fn hostile_patches_are_bounded_in_size_depth_and_operations() {
        let obj = json!({"metadata": {"name": "f"}, "spec": {"a": "x".repeat(1000)}});
        let patch = |v: Value| -> json_patch::Patch { serde_json::from_value(v).unwrap() };
        // Copying a growing subtree into itself doubles the object per operation.
        let mut doubling =
            vec![json!({"op":"add","path":"/spec/t","value":{"a":"x".repeat(1000)}})];
        for i in 0..40 {
            doubling.push(json!({"op":"copy","from":"/spec/t","path":format!("/spec/t/c{i}")}));
        }
        let e = apply_json_patch(obj.clone(), &patch(json!(doubling))).unwrap_err();
        assert!(
            e.message.contains("accumulated size increase of copy"),
            "{}",
            e.message
        );
        // Adds one level deeper each time: an object nothing could read back.
        let mut deep = Vec::new();
        let mut path = String::from("/spec");
        for _ in 0..200 {
            path.push_str("/d");
            deep.push(json!({"op":"add","path":path,"value":{}}));
        }
        let e = apply_json_patch(obj.clone(), &patch(json!(deep))).unwrap_err();
        assert!(e.message.contains("nest deeper"), "{}", e.message);
        // Copying a subtree into itself deepens it too.
        let mut self_copy = vec![json!({"op":"add","path":"/spec/n","value":{"x":{}}})];
        for _ in 0..100 {
            self_copy.push(json!({"op":"copy","from":"/spec/n","path":"/spec/n/x"}));
        }
        assert!(apply_json_patch(obj.clone(), &patch(json!(self_copy))).is_err());
        let many = vec![json!({"op":"test","path":"/spec","value":{}}); MAX_PATCH_OPERATIONS + 1];
        assert!(apply_json_patch(obj, &patch(json!(many))).is_err());
    }

    #[test]
    fn denials_are_formatted_as_go_does() {
        let e = denial(
            "deny.example.com",
            &json!({"code": 403, "message": "no blue", "reason": "Forbidden"}),
        );
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, Reason::Forbidden);
        assert_eq!(
            e.message,
            "admission webhook \"deny.example.com\" denied the request: no blue"
        );
        // A reason of the webhook's own passes through (Go keeps the whole Status).
        let e = denial("x", &json!({"code": 200, "reason": "Custom"}));
        assert_eq!((e.code, e.reason), (400, Reason::Other("Custom".into())));
        assert_eq!(
            e.message,
            "admission webhook \"x\" denied the request: Custom"
        );
        let e = denial(
            "x",
            &json!({"code": 429, "reason": "PolicyViolation", "message": "m"}),
        );
        assert_eq!((e.code, e.reason.as_str()), (429, "PolicyViolation"));
        assert_eq!(e.to_status()["reason"], "PolicyViolation");
        let e = denial("x", &Value::Null);
        assert_eq!(
            e.message,
            "admission webhook \"x\" denied the request without explanation"
        );
    }

    #[test]
    fn responses_are_verified() {
        let ok = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                        "response": {"uid": "u", "allowed": true}});
        assert!(verify_response("u", false, &ok).is_ok());
        assert!(
            verify_response("other", false, &ok)
                .unwrap_err()
                .contains("expected response.uid")
        );
        let mut v1beta1 = ok.clone();
        v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
        assert!(verify_response("u", false, &v1beta1).is_err());
        let mut patched = ok.clone();
        patched["response"]["patch"] = json!("W10=");
        patched["response"]["patchType"] = json!("JSONPatch");
        assert!(verify_response("u", true, &patched).is_ok());
        assert_eq!(
            verify_response("u", false, &patched).unwrap_err(),
            "validating webhook may not return response.patch"
        );
        // Go checks only that patchType is set; its value is judged when the patch applies.
        patched["response"]["patchType"] = json!("MergePatch");
        assert!(verify_response("u", true, &patched).is_ok());
        patched["response"]["patchType"] = json!("");
        assert!(
            verify_response("u", true, &patched)
                .unwrap_err()
                .contains("invalid response.patchType")
        );
        patched["response"]["patch"] = json!("");
        patched["response"]
            .as_object_mut()
            .unwrap()
            .remove("patchType");
        assert!(verify_response("u", true, &patched).is_ok());
        assert!(verify_response("u", false, &patched).is_ok());
        let mut absent = ok.clone();
        absent.as_object_mut().unwrap().remove("response");
        absent["apiVersion"] = json!("v1");
        assert_eq!(
            verify_response("u", true, &absent).unwrap_err(),
            "webhook response was absent"
        );
    }
}
