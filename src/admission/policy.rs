//! ValidatingAdmissionPolicy (Go's `pkg/admission/plugin/policy/validating`): the cluster's
//! policies and bindings (from informers) matched against a write; matchConditions, variables
//! and validations evaluated in CEL with `object`, `oldObject`, `request`, `params`,
//! `namespaceObject` and `variables`; decisions applied per the binding's validationActions
//! (Deny → the request fails, Warn → a `Warning:` header, Audit → logged).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, ParamKind, ParamRef, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec,
};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::Value;

use super::attributes::Attributes;
use super::cel::{self, Activation};
use super::informer::Informer;
use super::matching::{self, Rule};
use super::namespace::Namespaces;
use super::warnings;
use super::webhook::{bind_request, selectors_match};
use crate::apimachinery::status::{ApiError, ApiResult, Reason, StatusCause};

/// The ValidatingAdmissionPolicy plugin.
pub struct Policies {
    pub policies: Arc<Informer<ValidatingAdmissionPolicy>>,
    pub bindings: Arc<Informer<ValidatingAdmissionPolicyBinding>>,
    pub namespaces: Arc<Namespaces>,
    client: kube::Client,
    /// paramKind (apiVersion, kind) → its resource, found by discovery once.
    param_kinds: Mutex<HashMap<(String, String), (ApiResource, ApiCapabilities)>>,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies").finish_non_exhaustive()
    }
}

/// A policy decision that denies (Go's `policyDecisionWithMetadata`).
struct Denial {
    policy: String,
    binding: Option<String>,
    message: String,
    reason: String,
}

/// One policy being run against a request.
struct PolicyRun<'a> {
    name: String,
    spec: &'a ValidatingAdmissionPolicySpec,
    /// failurePolicy Fail (the default).
    fail_closed: bool,
}

impl PolicyRun<'_> {
    /// A configuration error of the policy (`binding` None) or a binding: a denial only when
    /// the policy fails closed.
    fn config_error(&self, binding: Option<String>, err: String) -> Option<Denial> {
        let what = if binding.is_some() {
            "binding"
        } else {
            "policy"
        };
        self.fail_closed.then(|| Denial {
            policy: self.name.clone(),
            binding,
            message: format!("failed to configure {what}: {err}"),
            reason: String::new(),
        })
    }

    /// A failed validation under the binding's validationActions: Deny → a denial, Warn → a
    /// warning, Audit → a log line (Go records an audit annotation).
    fn act_on(
        &self,
        bname: &str,
        actions: &[String],
        message: String,
        reason: String,
    ) -> Option<Denial> {
        let name = &self.name;
        let mut denial = None;
        for action in actions {
            match action.as_str() {
                "Deny" => {
                    denial = Some(Denial {
                        policy: name.clone(),
                        binding: Some(bname.to_string()),
                        message: message.clone(),
                        reason: reason.clone(),
                    })
                }
                "Warn" => warnings::add(&format!(
                    "Validation failed for ValidatingAdmissionPolicy '{name}' with binding '{bname}': {message}"
                )),
                _ => tracing::info!(
                    policy = %name, binding = %bname, %message,
                    "ValidatingAdmissionPolicy audit: validation failed"
                ),
            }
        }
        denial
    }
}

/// One validation's result.
enum Decision {
    Admit,
    /// Fails validation: the message and the reason (Invalid unless the validation names one).
    Deny(String, String),
}

impl Policies {
    pub fn start(client: kube::Client, namespaces: Arc<Namespaces>) -> Arc<Self> {
        Arc::new(Policies {
            policies: Informer::start(Api::all(client.clone())),
            bindings: Informer::start(Api::all(client.clone())),
            namespaces,
            client,
            param_kinds: Mutex::new(HashMap::new()),
        })
    }

    /// Run every policy that matches `a`; the first denial (policies in name order, then
    /// bindings in name order) fails the request as Go formats it.
    pub async fn validate(&self, a: &Attributes<'_>, obj: Option<&Value>) -> ApiResult<()> {
        let policies = self.policies.snapshot();
        if policies.is_empty() {
            return Ok(());
        }
        let bindings = self.bindings.snapshot();
        let mut denials: Vec<Denial> = Vec::new();
        for policy in policies.values() {
            let Some(spec) = &policy.spec else { continue };
            let p = PolicyRun {
                name: policy.metadata.name.clone().unwrap_or_default(),
                spec,
                fail_closed: spec.failure_policy.as_deref() != Some("Ignore"),
            };
            let version = match self
                .resources_match(a, spec.match_constraints.as_ref(), obj, true)
                .await
            {
                Err(e) => {
                    denials.extend(p.config_error(None, e));
                    continue;
                }
                Ok(None) => continue,
                Ok(Some(v)) => v,
            };
            for b in bindings.values() {
                let Some(bspec) = &b.spec else { continue };
                if bspec.policy_name.as_deref() != Some(p.name.as_str()) {
                    continue;
                }
                let bname = b.metadata.name.clone().unwrap_or_default();
                match self.run_binding(a, obj, &p, version, &bname, bspec).await? {
                    Ok(d) => denials.extend(d),
                    Err(e) => denials.extend(p.config_error(Some(bname), e)),
                }
            }
        }
        match denials.into_iter().next() {
            None => Ok(()),
            Some(d) => Err(denied(a, d)),
        }
    }

    /// One binding of a policy that matched (in `version`): its own matchResources, its
    /// params, then the policy evaluated once per param object, the failed validations
    /// handled per validationActions. The inner Err is a configuration error of the binding.
    async fn run_binding(
        &self,
        a: &Attributes<'_>,
        obj: Option<&Value>,
        p: &PolicyRun<'_>,
        version: &'static str,
        bname: &str,
        bspec: &ValidatingAdmissionPolicyBindingSpec,
    ) -> ApiResult<Result<Vec<Denial>, String>> {
        if bspec.match_resources.is_some() {
            match self
                .resources_match(a, bspec.match_resources.as_ref(), obj, false)
                .await
            {
                Err(e) => return Ok(Err(e)),
                Ok(None) => return Ok(Ok(Vec::new())),
                Ok(Some(_)) => {}
            }
        }
        let params = match self
            .params(
                p.spec.param_kind.as_ref(),
                bspec.param_ref.as_ref(),
                a.namespace,
            )
            .await
        {
            Ok(params) => params,
            Err(e) => return Ok(Err(e)),
        };
        let namespace_object = if a.namespace.is_empty() {
            Value::Null
        } else {
            match self.namespaces.get(a.namespace).await? {
                Some(ns) => namespace_object(&ns),
                None => Value::Null,
            }
        };
        let actions = bspec.validation_actions.clone().unwrap_or_default();
        let mut denials = Vec::new();
        for param in params {
            let mut act = Activation::default();
            bind_request(&mut act, a, version, obj);
            act.set("params", cel::from_json(&param));
            act.set("namespaceObject", cel::from_json(&namespace_object));
            let decisions = cel::evaluate_blocking(|| evaluate(p.spec, &mut act, p.fail_closed));
            for d in decisions {
                if let Decision::Deny(message, reason) = d {
                    denials.extend(p.act_on(bname, &actions, message, reason));
                }
            }
        }
        Ok(Ok(denials))
    }

    /// matchConstraints (policy) or matchResources (binding): the version the policy sees the
    /// request in, None when it does not apply. A policy's constraints must name resources; a
    /// binding's may leave them out (then only its selectors restrict).
    async fn resources_match(
        &self,
        a: &Attributes<'_>,
        m: Option<&MatchResources>,
        obj: Option<&Value>,
        rules_required: bool,
    ) -> Result<Option<&'static str>, String> {
        let Some(m) = m else { return Ok(None) };
        if !selectors_match(
            a,
            &self.namespaces,
            m.namespace_selector.as_ref(),
            m.object_selector.as_ref(),
            obj,
        )
        .await?
        {
            return Ok(None);
        }
        let excluded = m
            .exclude_resource_rules
            .iter()
            .flatten()
            .any(|r| Rule::from(r).matches(a, a.version));
        if excluded {
            return Ok(None);
        }
        let rules = m.resource_rules.as_deref().unwrap_or(&[]);
        if rules.is_empty() && !rules_required {
            return Ok(Some(a.version));
        }
        Ok(matching::matched_version(
            a,
            m.match_policy.as_deref(),
            rules.iter().map(Rule::from),
        ))
    }

    /// Go's `CollectParams`: the parameter objects a binding evaluates with; `[null]` when
    /// the policy takes none. Read live from the cluster (Go reads an informer).
    async fn params(
        &self,
        kind: Option<&ParamKind>,
        pref: Option<&ParamRef>,
        namespace: &str,
    ) -> Result<Vec<Value>, String> {
        let (Some(kind), Some(pref)) = (kind, pref) else {
            return Ok(vec![Value::Null]);
        };
        let (ar, caps) = self.param_kind(kind).await?;
        let ref_ns = pref.namespace.as_deref().unwrap_or("");
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                let ns = if ref_ns.is_empty() { namespace } else { ref_ns };
                if ns.is_empty() {
                    return Err("cannot use namespaced paramRef in policy binding that matches cluster-scoped resources".into());
                }
                Api::namespaced_with(self.client.clone(), ns, &ar)
            }
            Scope::Cluster => {
                if !ref_ns.is_empty() {
                    return Err(
                        "paramRef.namespace must not be provided for a cluster-scoped `paramKind`"
                            .into(),
                    );
                }
                Api::all_with(self.client.clone(), &ar)
            }
        };
        let found: Vec<DynamicObject> = match (&pref.name, &pref.selector) {
            (Some(n), None) if !n.is_empty() => api
                .get_opt(n)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .collect(),
            (Some(n), Some(_)) if !n.is_empty() => {
                return Err("paramRef.name and paramRef.selector are mutually exclusive".into());
            }
            (_, Some(sel)) => {
                let s = matching::label_selector(Some(sel))?;
                api.list(&ListParams::default().labels(&s.to_string()))
                    .await
                    .map_err(|e| e.to_string())?
                    .items
            }
            _ => return Err("one of name or selector must be provided".into()),
        };
        if found.is_empty() && pref.parameter_not_found_action.as_deref() == Some("Deny") {
            return Err(
                "no params found for policy binding with `Deny` parameterNotFoundAction".into(),
            );
        }
        found
            .into_iter()
            .map(|mut o| {
                o.types.get_or_insert_with(|| kube::api::TypeMeta {
                    api_version: ar.api_version.clone(),
                    kind: ar.kind.clone(),
                });
                serde_json::to_value(o).map_err(|e| e.to_string())
            })
            .collect()
    }

    async fn param_kind(&self, kind: &ParamKind) -> Result<(ApiResource, ApiCapabilities), String> {
        let av = kind.api_version.clone().unwrap_or_default();
        let k = kind.kind.clone().unwrap_or_default();
        let key = (av.clone(), k.clone());
        if let Some(hit) = self
            .param_kinds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let (group, version) = av.rsplit_once('/').unwrap_or(("", av.as_str()));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, &k);
        let found = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|_| format!("paramKind kind `{av}, Kind={k}` not known"))?;
        self.param_kinds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, found.clone());
        Ok(found)
    }
}

/// Evaluate a policy's matchConditions, variables and validations with `act` (Go's
/// `validator.Validate`). An evaluation error denies when the policy fails closed.
fn evaluate(
    spec: &ValidatingAdmissionPolicySpec,
    act: &mut Activation,
    fail_closed: bool,
) -> Vec<Decision> {
    let on_error = |msg: String| {
        if fail_closed {
            Decision::Deny(msg, "Invalid".into())
        } else {
            Decision::Admit
        }
    };
    let compiled = |src: &str| cel::compile_cached(src);
    let conditions = spec.match_conditions.iter().flatten();
    match act.match_conditions(conditions.map(|mc| mc.expression.as_str())) {
        Ok(true) => {}
        Ok(false) => return Vec::new(),
        Err(e) => return vec![on_error(e)],
    }
    let vars: Vec<(String, cel::Compiled)> = spec
        .variables
        .iter()
        .flatten()
        .map(|v| (v.name.clone(), compiled(&v.expression)))
        .collect();
    cel::bind_variables(act, &vars);
    let mut out = Vec::new();
    for v in spec.validations.iter().flatten() {
        let c = compiled(&v.expression);
        let r = act.eval_compiled_bool(&c);
        match r {
            Err(e) => out.push(on_error(e)),
            Ok(true) => out.push(Decision::Admit),
            Ok(false) => {
                let from_expr = v
                    .message_expression
                    .as_deref()
                    .and_then(|m| match compiled(m).as_ref() {
                        Ok(e) => match act.eval(e) {
                            Ok(::cel::Value::String(s)) => Some(s.trim().to_string()),
                            _ => None,
                        },
                        Err(_) => None,
                    })
                    // Go refuses long or multi-line evaluated messages (5 KiB limit).
                    .filter(|m| !m.is_empty() && m.len() <= 5 * 1024 && !m.contains('\n'));
                let message = from_expr
                    .or_else(|| {
                        v.message
                            .as_deref()
                            .map(|m| m.trim().to_string())
                            .filter(|m| !m.is_empty())
                    })
                    .unwrap_or_else(|| format!("failed expression: {}", v.expression.trim()));
                let reason = v.reason.clone().unwrap_or_else(|| "Invalid".into());
                out.push(Decision::Deny(message, reason));
            }
        }
    }
    out
}

/// Go's `CreateNamespaceObject`: the namespace's metadata (name, labels, annotations, ...),
/// spec and status.
fn namespace_object(ns: &k8s_openapi::api::core::v1::Namespace) -> Value {
    let m = &ns.metadata;
    serde_json::json!({
        "metadata": {
            "name": m.name,
            "generateName": m.generate_name,
            "namespace": m.namespace,
            "labels": m.labels,
            "annotations": m.annotations,
            "uid": m.uid,
            "creationTimestamp": m.creation_timestamp,
            "deletionTimestamp": m.deletion_timestamp,
        },
        "spec": ns.spec,
        "status": ns.status,
    })
}

/// The denial as Go builds it: Forbidden's message (`flunders.wardle.example.com "x" is
/// forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request: <message>`), then
/// the validation's reason (Invalid by default) and its code.
fn denied(a: &Attributes<'_>, d: Denial) -> ApiError {
    let message = match &d.binding {
        Some(b) => format!(
            "ValidatingAdmissionPolicy '{}' with binding '{b}' denied request: {}",
            d.policy, d.message
        ),
        None => format!(
            "ValidatingAdmissionPolicy '{}' denied request: {}",
            d.policy, d.message
        ),
    };
    let mut e = ApiError::forbidden(&a.group_resource(), &a.name, &message);
    // The API allows these four reasons (kube-apiserver validates the policy); any other
    // is Invalid.
    let (reason, code) = match Reason::parse(&d.reason) {
        r @ Reason::Forbidden => (r, 403),
        r @ Reason::Unauthorized => (r, 401),
        r @ Reason::RequestEntityTooLarge => (r, 413),
        _ => (Reason::Invalid, 422),
    };
    e.reason = reason;
    e.code = code;
    e.details
        .get_or_insert_with(Box::default)
        .causes
        .push(StatusCause {
            reason: String::new(),
            message,
            field: String::new(),
        });
    e
}
