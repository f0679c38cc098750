//! Resource request handlers: decode the request, call the registry, encode the answer.

use super::negotiate::{self, BodyFormat, Negotiated, Target};
use super::request_info::RequestInfo;
use super::response;
use super::table;
use crate::api::{self, Resource};
use crate::apimachinery::decode;
use crate::apimachinery::delete_body::DeleteBody;
use crate::apimachinery::options::{DeleteOptions, ListOptions, WriteOptions, parse_rv};
use crate::apimachinery::patch::{self, PatchType};
use crate::apimachinery::query::query_param;
use crate::apimachinery::status::{ApiError, ApiResult, FieldError};
use crate::apimachinery::verb::Verb;
use crate::app::AppState;
use crate::authn::UserInfo;
use crate::registry::{Ctx, Deleted, ListResult, Obj, Store, TypeErrors, check_fields};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};

/// Go's MaxRequestBodyBytes.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Everything a resource handler needs to know about the request.
pub struct ResourceRequest<'a> {
    pub info: &'a RequestInfo,
    pub user: &'a UserInfo,
    /// The request's audit ID, recorded with every change it makes.
    pub audit_id: &'a str,
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
    pub body: Body,
}

/// Read the whole body, refusing more than 3 MiB with 413 (Go's `limitedReadBody`). A body whose
/// declared length (Content-Length) is over the limit is refused before any of it is read, so
/// the client gets its 413 at once instead of after uploading 3 MiB; the connection layer
/// (`tls::server::Lingering`) keeps the unread rest from resetting the connection. HTTP/2
/// bodies come through `undeclared_over_limit` first.
pub async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    if axum::body::HttpBody::size_hint(&body).lower() > MAX_BODY_BYTES as u64 {
        return Err(ApiError::too_large_body());
    }
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(c) => {
            let bytes = c.to_bytes();
            crate::audit::note_request_body(&bytes);
            Ok(bytes)
        }
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large_body())
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "error reading request body: {e}"
        ))),
    }
}

/// An HTTP/2 request body declared over the 3 MiB limit, without its declared length, so that
/// `read_body` reads up to the limit before refusing, as Go's `limitedReadBody` reads
/// `limit + 1` bytes whatever the length says. A client that is still uploading when the 413
/// comes takes it (curl: "HTTP error before end of send, stop sending"); one refused before it
/// sent any DATA finds its stream reset (RST_STREAM NO_ERROR) while it still means to send,
/// which curl reports as "Stream error in the HTTP/2 framing layer" without the 413. HTTP/1
/// keeps the early refusal (hyper then sends no `100 Continue`, and the unread rest is
/// drained by the connection layer). Other bodies are returned as they are.
pub fn undeclared_over_limit(version: http::Version, body: Body) -> Body {
    use axum::body::HttpBody;
    if version == http::Version::HTTP_2 && body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        return Body::from_stream(body.into_data_stream());
    }
    body
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Find the declared resource and version a request names, or the 404/405 Go would give.
fn resolve(info: &RequestInfo) -> ApiResult<(&'static dyn Resource, &'static str)> {
    if info.api_group != api::GROUP || !info.subresource.is_empty() {
        return Err(ApiError::not_found_path());
    }
    let version = api::GROUP_VERSIONS
        .iter()
        .copied()
        .find(|v| *v == info.api_version)
        .ok_or_else(ApiError::not_found_path)?;
    let resource = api::resource(&info.resource)
        .filter(|r| r.serves(version))
        .ok_or_else(ApiError::not_found_path)?;
    let namespaced_path = info.namespace_in_path;
    if namespaced_path && !resource.namespaced() {
        return Err(ApiError::not_found_path());
    }
    // go-restful: a path no route serves is 404; a served path asked with another method 405.
    let all_namespaces = resource.namespaced() && !namespaced_path;
    if all_namespaces && info.name_in_path {
        return Err(ApiError::not_found_path());
    }
    let served = if all_namespaces || info.legacy_watch_path {
        matches!(info.verb, Verb::List | Verb::Watch)
    } else if info.name_in_path {
        matches!(
            info.verb,
            Verb::Get | Verb::Watch | Verb::Update | Verb::Patch | Verb::Delete
        )
    } else {
        matches!(
            info.verb,
            Verb::List | Verb::Watch | Verb::Create | Verb::DeleteCollection
        )
    };
    if !served {
        return Err(ApiError::method_not_allowed());
    }
    // Go's watch reads a name from the legacy `/watch/.../<name>` path only as a field selector
    // (its key function's error is ignored); every other named verb refuses a bad name.
    if info.name_in_path && info.verb != Verb::Watch {
        // Go's NamespaceKeyFunc: `namespaces//flunders/<name>` is routed, then has no key.
        if namespaced_path && info.namespace.is_empty() {
            return Err(ApiError::bad_request("Namespace parameter required."));
        }
        validate_path_name(&info.name)?;
    }
    Ok((resource, version))
}

/// Go's key functions refuse a name that cannot be one path segment (IsValidPathSegmentName):
/// 400 `Name parameter invalid: "a%b": may not contain '%'`.
fn validate_path_name(name: &str) -> ApiResult<()> {
    let problems = crate::apimachinery::meta::is_path_segment_name(name);
    if problems.is_empty() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "Name parameter invalid: {}: {}",
        crate::apimachinery::gofmt::go_quote(name),
        problems.join(";")
    )))
}

/// Serve one resource request; errors become Status responses.
pub async fn serve(state: &AppState, req: ResourceRequest<'_>) -> Response {
    let (resource, version) = match resolve(req.info) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    // Go's router refuses a PATCH body type no route consumes, then an Accept no route
    // produces, before any handler (or warning) runs.
    if req.info.verb == Verb::Patch
        && let Err(e) = patch::route_consumes(header_str(req.headers, header::CONTENT_TYPE))
    {
        return e.into_response();
    }
    let collection_get =
        req.info.name.is_empty() && matches!(req.info.verb, Verb::List | Verb::Watch);
    if let Err(e) =
        negotiate::route_accepts(header_str(req.headers, header::ACCEPT), collection_get)
    {
        return e.into_response();
    }
    // Go adds the deprecation warning to every response of a deprecated version's routes,
    // first; admission's warnings (webhooks, policies) are recorded below. All become headers
    // here, bounded in total as Go's recorder bounds them.
    let deprecation = resource
        .version(version)
        .and_then(|v| v.deprecation_warning);
    let (result, warnings) = crate::admission::warnings::record(Box::pin(async move {
        if let Some(w) = deprecation {
            crate::admission::warnings::add(w);
        }
        handle(state, resource, version, req).await
    }))
    .await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    response::add_warnings(&mut resp, &warnings);
    resp
}

/// The versioned (or Table / PartialObjectMetadata) form of one stored object.
fn render_item(
    r: &dyn Resource,
    version: &str,
    neg: &Negotiated,
    query: Option<&str>,
    obj: Value,
) -> ApiResult<Value> {
    Ok(match neg.target {
        Target::Object => r.storage_to_version(version, obj),
        Target::Table => {
            let include =
                table::parse_include_object(query_param(query, "includeObject").as_deref())?;
            table::table(r, version, neg.target_version, &[obj], None, include, true)
        }
        Target::PartialObjectMetadata => table::partial_object_metadata(&obj, neg.target_version),
        Target::PartialObjectMetadataList => {
            return Err(ApiError::not_acceptable(
                "you requested PartialObjectMetadataList, but the requested object is not a list",
            ));
        }
    })
}

/// Plain JSON, as the objects are cached: lists and objects can be written out from their
/// stored text without rebuilding trees.
fn is_plain_json(neg: &Negotiated, pretty: bool) -> bool {
    neg.target == Target::Object && neg.format == negotiate::Format::Json && !pretty
}

fn values(items: &[Obj]) -> Vec<Value> {
    items.iter().map(Obj::value).collect()
}

/// A list's `metadata`: resourceVersion, continue token and remainingItemCount.
fn list_meta(page: &ListResult) -> Value {
    let mut meta = serde_json::Map::new();
    meta.insert("resourceVersion".into(), json!(page.rv.to_string()));
    if let Some(c) = &page.continue_token {
        meta.insert("continue".into(), json!(c));
    }
    if let Some(n) = page.remaining {
        meta.insert("remainingItemCount".into(), json!(n));
    }
    Value::Object(meta)
}

/// One cached object as a plain JSON body in `version`.
fn object_json(r: &dyn Resource, version: &'static str, obj: &Obj) -> Vec<u8> {
    let text = obj.json_in(version, r.storage_version(), |v| {
        r.storage_to_version(version, v)
    });
    let mut body = Vec::with_capacity(text.len() + 1);
    body.extend_from_slice(text.as_bytes());
    body.push(b'\n');
    body
}

/// A list as a plain JSON body, the items spliced in from their cached text. Byte for byte what
/// serializing the list as a tree gives (keys sorted, Go's escaping).
fn list_json(r: &dyn Resource, version: &'static str, page: &ListResult) -> Vec<u8> {
    let texts: Vec<_> = page
        .items
        .iter()
        .map(|o| {
            o.json_in(version, r.storage_version(), |v| {
                r.storage_to_version(version, v)
            })
        })
        .collect();
    let size = texts.iter().map(|t| t.len() + 1).sum::<usize>() + 256;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(b"{\"apiVersion\":");
    body.extend_from_slice(
        json!(format!("{}/{}", api::GROUP, version))
            .to_string()
            .as_bytes(),
    );
    body.extend_from_slice(b",\"items\":[");
    // Items carry no apiVersion/kind, as Go encodes a typed list's items (the list says them
    // once). Keys are sorted, so both lead the cached text of an object.
    let type_meta = format!(
        "{{\"apiVersion\":{},\"kind\":{},",
        json!(format!("{}/{}", api::GROUP, version)),
        json!(r.kind())
    );
    for (i, t) in texts.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        match t.strip_prefix(type_meta.as_str()) {
            Some(rest) => {
                body.push(b'{');
                body.extend_from_slice(rest.as_bytes());
            }
            None => {
                // A kind with fields sorting before `kind` (a Fischer's disallowedFlunders).
                let mut item: Value = serde_json::from_str(t).unwrap_or_default();
                if let Some(m) = item.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                let text = crate::apimachinery::gofmt::go_json_escape(item.to_string());
                body.extend_from_slice(text.as_bytes());
            }
        }
    }
    body.extend_from_slice(b"],\"kind\":");
    body.extend_from_slice(json!(r.list_kind()).to_string().as_bytes());
    body.extend_from_slice(b",\"metadata\":");
    let meta = crate::apimachinery::gofmt::go_json_escape(list_meta(page).to_string());
    body.extend_from_slice(meta.as_bytes());
    body.extend_from_slice(b"}\n");
    body
}

fn render_list(
    r: &dyn Resource,
    version: &str,
    neg: &Negotiated,
    query: Option<&str>,
    page: ListResult,
) -> ApiResult<Value> {
    let rv = page.rv.to_string();
    Ok(match neg.target {
        Target::Object => {
            let items: Vec<Value> = page
                .items
                .iter()
                .map(|o| {
                    let mut item = r.storage_to_version(version, o.value());
                    if let Some(m) = item.as_object_mut() {
                        m.remove("apiVersion");
                        m.remove("kind");
                    }
                    item
                })
                .collect();
            json!({
                "kind": r.list_kind(),
                "apiVersion": format!("{}/{}", api::GROUP, version),
                "metadata": list_meta(&page),
                "items": items,
            })
        }
        Target::Table => {
            let include =
                table::parse_include_object(query_param(query, "includeObject").as_deref())?;
            table::table(
                r,
                version,
                neg.target_version,
                &values(&page.items),
                Some((rv, page.continue_token, page.remaining)),
                include,
                true,
            )
        }
        Target::PartialObjectMetadataList => table::partial_object_metadata_list(
            &values(&page.items),
            (rv, page.continue_token, page.remaining),
            neg.target_version,
        ),
        Target::PartialObjectMetadata => {
            return Err(ApiError::not_acceptable(
                "you requested PartialObjectMetadata, but the requested object is a list",
            ));
        }
    })
}

/// Decode a create/update body: format by Content-Type, duplicate and unknown fields by fieldValidation.
fn decode_body(
    ctx: &Ctx<'_>,
    headers: &HeaderMap,
    body: &[u8],
    opts: &WriteOptions,
) -> ApiResult<Value> {
    let content_type = header_str(headers, header::CONTENT_TYPE);
    if let Some(why) = negotiate::protobuf_without_envelope(content_type, body) {
        return Err(decode::unrecognized_body(ctx.resource.kind(), &why, body));
    }
    let format = negotiate::body_format(content_type)?;
    let mode = decode::parse_field_validation(opts.field_validation.as_deref())?;
    let kind = ctx.resource.kind();
    // A body whose apiVersion and kind cannot even be read gets Go's "unrecognized" answer.
    let (mut obj, dupes) = match format {
        BodyFormat::Json => decode::parse_json(body),
        BodyFormat::Yaml => decode::parse_yaml(body),
    }
    .map_err(|e| decode::unrecognized_body(kind, &e.message, body))?;
    if let Some(e) = decode::not_an_object(kind, &obj, body) {
        return Err(e);
    }
    if obj.is_null() {
        // `null` (or a YAML body of nothing but blanks and comments, even no bytes at all:
        // sigs.k8s.io/yaml makes that `null`) decodes into Go's empty object; an empty JSON
        // body does not decode at all: Go's `unexpected end of JSON input`.
        if body.is_empty() && matches!(format, BodyFormat::Json) {
            return Err(decode::unrecognized_body(
                kind,
                "couldn't get version/kind; json parse error: unexpected end of JSON input",
                body,
            ));
        }
        obj = Value::Object(Default::default());
    }
    check_fields(ctx, &mut obj, dupes, mode, false, TypeErrors::Body)?;
    // Go decodes the body into its types, whose metadata fields are all `omitempty`.
    crate::apimachinery::meta::drop_empty_fields(&mut obj);
    Ok(obj)
}

/// One resolved resource request: what each verb's handler reads.
struct Call<'a> {
    store: &'a Store,
    ctx: Ctx<'a>,
    info: &'a RequestInfo,
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    neg: Negotiated,
    pretty: bool,
}

impl Call<'_> {
    /// A response carrying `v` in the negotiated format. Warnings (strict decoding, admission)
    /// are on the request's recorder, sent by the caller.
    fn respond(&self, code: StatusCode, v: &Value) -> Response {
        response::object(code, v, self.neg.format, self.pretty, &[])
    }

    /// A response carrying one stored object in the form asked for.
    fn item(&self, code: StatusCode, obj: Value) -> ApiResult<Response> {
        let r = self.ctx.resource;
        let out = render_item(r, self.ctx.version, &self.neg, self.query, obj)?;
        Ok(self.respond(code, &out))
    }

    /// `item` for an object the watch cache holds: plain JSON is its cached text as it is;
    /// another form is built from `tree` (the same object as a tree).
    fn cached_item(
        &self,
        code: StatusCode,
        cached: &Obj,
        tree: impl FnOnce() -> Value,
    ) -> ApiResult<Response> {
        if is_plain_json(&self.neg, self.pretty) {
            let body = object_json(self.ctx.resource, self.ctx.version, cached);
            return Ok(response::raw_json(code, body));
        }
        self.item(code, tree())
    }

    /// A response carrying a list in the form asked for (plain JSON spliced from cached text).
    fn list(&self, page: ListResult) -> ApiResult<Response> {
        let (r, version) = (self.ctx.resource, self.ctx.version);
        if is_plain_json(&self.neg, self.pretty) {
            let body = list_json(r, version, &page);
            return Ok(response::raw_json(StatusCode::OK, body));
        }
        let out = render_list(r, version, &self.neg, self.query, page)?;
        Ok(self.respond(StatusCode::OK, &out))
    }

    /// The body decoded as an object of the request's kind and version.
    async fn object_body(&self, body: Body, opts: &WriteOptions) -> ApiResult<Value> {
        let body = read_body(body).await?;
        decode_body(&self.ctx, self.headers, &body, opts)
    }
}

/// Dispatches a resolved request to its verb's handler.
async fn handle(
    state: &AppState,
    resource: &'static dyn Resource,
    version: &'static str,
    req: ResourceRequest<'_>,
) -> ApiResult<Response> {
    let info = req.info;
    let user_agent = header_str(req.headers, header::USER_AGENT);
    // Watch events carry single objects: PartialObjectMetadata (not ...List) is what a metadata
    // informer asks for on a watch.
    let is_list = matches!(info.verb, Verb::List | Verb::DeleteCollection);
    let mut neg = negotiate::negotiate(header_str(req.headers, header::ACCEPT), is_list)?;
    if info.verb == Verb::Watch {
        neg = negotiate::watch_stream(neg)?;
    }
    let call = Call {
        store: &state.store,
        ctx: Ctx {
            verb: &info.verb,
            resource,
            version,
            namespace: &info.namespace,
            user: req.user,
            audit_id: req.audit_id,
            user_agent,
        },
        info,
        headers: req.headers,
        query: req.query,
        neg,
        pretty: negotiate::wants_pretty(query_param(req.query, "pretty").as_deref(), user_agent),
    };
    match &info.verb {
        Verb::Get => get(&call).await,
        Verb::List => list(&call).await,
        Verb::Watch => watch(&call).await,
        Verb::Create => create(&call, req.body).await,
        Verb::Update => update(&call, req.body).await,
        Verb::Patch => patch(&call, req.body).await,
        Verb::Delete => delete(&call, req.body).await,
        Verb::DeleteCollection => delete_collection(&call, req.body).await,
        Verb::Other(_) => Err(ApiError::method_not_allowed()),
    }
}

/// GET of one object (plain JSON straight from its cached text).
async fn get(call: &Call<'_>) -> ApiResult<Response> {
    let rv = parse_rv(query_param(call.query, "resourceVersion").as_deref())?;
    let obj = call.store.get(&call.ctx, &call.info.name, rv).await?;
    call.cached_item(StatusCode::OK, &obj, || obj.value())
}

async fn list(call: &Call<'_>) -> ApiResult<Response> {
    let opts = ListOptions::parse(call.query, false)?;
    let page = call.store.list(&call.ctx, &opts).await?;
    call.list(page)
}

async fn watch(call: &Call<'_>) -> ApiResult<Response> {
    let opts = ListOptions::parse(call.query, call.info.legacy_watch_path)?;
    let name = &call.info.name;
    super::watch::serve(call.store, &call.ctx, name, opts, call.neg, call.query).await
}

async fn create(call: &Call<'_>, body: Body) -> ApiResult<Response> {
    let opts = WriteOptions::parse(call.query, "CreateOptions")?;
    let obj = call.object_body(body, &opts).await?;
    let created = call.store.create(&call.ctx, obj, &opts).await?;
    // A stored create answers with the text GET and watches serve: the same bytes.
    match &created.served {
        Some(served) => call.cached_item(StatusCode::CREATED, served, || created.object),
        None => call.item(StatusCode::CREATED, created.object),
    }
}

async fn update(call: &Call<'_>, body: Body) -> ApiResult<Response> {
    let opts = WriteOptions::parse(call.query, "UpdateOptions")?;
    let obj = call.object_body(body, &opts).await?;
    let name = &call.info.name;
    let updated = call.store.update(&call.ctx, name, obj, &opts).await?;
    call.item(StatusCode::OK, updated)
}

/// PATCH: server-side apply (201 when it creates) or a JSON/merge/strategic patch.
async fn patch(call: &Call<'_>, body: Body) -> ApiResult<Response> {
    let opts = WriteOptions::parse(call.query, "PatchOptions")?;
    let patch_type = patch::patch_type(header_str(call.headers, header::CONTENT_TYPE))?;
    if opts.force.is_some() && patch_type != PatchType::Apply {
        return Err(decode::options_invalid(
            "PatchOptions",
            &[FieldError::forbidden(
                "force",
                "may not be specified for non-apply patch",
            )],
        ));
    }
    let mode = decode::parse_field_validation(opts.field_validation.as_deref())?;
    let body = read_body(body).await?;
    let (ctx, name) = (&call.ctx, &call.info.name);
    if patch_type == PatchType::Apply {
        let applied = call.store.apply(ctx, name, &body, &opts, mode).await?;
        let code = if applied.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        return call.item(code, applied.object);
    }
    let patched = call
        .store
        .patch(ctx, name, patch_type, &body, &opts, mode)
        .await?;
    call.item(StatusCode::OK, patched)
}

/// A DELETE request's body in the format its Content-Type names (415 for one Go's meta codecs
/// do not decode), or None when there is none (Go: a zero-length body; DeleteOptions then come
/// from the query).
fn delete_body<'b>(headers: &HeaderMap, body: &'b [u8]) -> ApiResult<Option<DeleteBody<'b>>> {
    if body.is_empty() {
        return Ok(None);
    }
    let content_type = header_str(headers, header::CONTENT_TYPE);
    if let Some(why) = negotiate::protobuf_without_envelope(content_type, body) {
        return Err(ApiError::bad_request(why));
    }
    Ok(Some(
        match negotiate::body_format(header_str(headers, header::CONTENT_TYPE))? {
            BodyFormat::Json => DeleteBody::Json(body),
            BodyFormat::Yaml => DeleteBody::Yaml(body),
        },
    ))
}

/// DELETE of one object: a Success Status when it is gone, the object while finalizers hold it.
async fn delete(call: &Call<'_>, body: Body) -> ApiResult<Response> {
    let body = read_body(body).await?;
    let opts = DeleteOptions::parse(call.query, delete_body(call.headers, &body)?)?;
    let name = &call.info.name;
    match call.store.delete(&call.ctx, name, &opts).await? {
        Deleted::Gone(last) => {
            let status = json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": api::GROUP,
                    "kind": call.ctx.resource.plural(),
                    "uid": last["metadata"]["uid"],
                },
            });
            let mut resp = call.respond(StatusCode::OK, &status);
            resp.extensions_mut()
                .insert(crate::audit::StatusObject(status));
            Ok(resp)
        }
        Deleted::Pending(obj) => call.item(StatusCode::OK, obj),
    }
}

/// DELETE of a collection: the deleted objects as a list.
async fn delete_collection(call: &Call<'_>, body: Body) -> ApiResult<Response> {
    let list = ListOptions::parse(call.query, false)?;
    let body = read_body(body).await?;
    let del = DeleteOptions::parse(call.query, delete_body(call.headers, &body)?)?;
    let page = call.store.delete_collection(&call.ctx, &list, &del).await?;
    let out = render_list(
        call.ctx.resource,
        call.ctx.version,
        &call.neg,
        call.query,
        page,
    )?;
    Ok(call.respond(StatusCode::OK, &out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fischer::Fischer;
    use crate::api::flunder::Flunder;

    fn flunder(name: &str, rv: i64) -> Obj {
        Obj::from_value(&json!({
            "apiVersion": "wardle.example.com/v1alpha1",
            "kind": "Flunder",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv.to_string(),
                         "labels": {"a": "<&>"}},
            "spec": {"reference": "x", "referenceType": "Flunder"},
        }))
    }

    /// The spliced list body must be exactly what encoding the list tree gives, in every version
    /// and with or without pagination metadata.
    #[test]
    fn spliced_lists_equal_encoded_trees() {
        let neg = negotiate::negotiate(Some("application/json"), true).unwrap();
        let pages = [
            ListResult {
                items: vec![],
                rv: 3,
                continue_token: None,
                remaining: None,
            },
            ListResult {
                items: vec![flunder("a", 1), flunder("b\u{2028}", 2)],
                rv: 7,
                continue_token: Some("eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ".into()),
                remaining: Some(4),
            },
        ];
        for version in ["v1alpha1", "v1beta1"] {
            for page in &pages {
                let tree = render_list(&Flunder, version, &neg, None, page.clone()).unwrap();
                let (want, _) = negotiate::encode(&tree, negotiate::Format::Json, false);
                let got = list_json(&Flunder, version, page);
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    String::from_utf8(want).unwrap()
                );
            }
            let fischers = ListResult {
                items: vec![Obj::from_value(&json!({
                    "apiVersion": "wardle.example.com/v1alpha1",
                    "kind": "Fischer",
                    "metadata": {"name": "f", "resourceVersion": "3"},
                    "disallowedFlunders": ["a"],
                }))],
                rv: 3,
                continue_token: None,
                remaining: None,
            };
            let tree = render_list(&Fischer, "v1alpha1", &neg, None, fischers.clone()).unwrap();
            let (want, _) = negotiate::encode(&tree, negotiate::Format::Json, false);
            let got = list_json(&Fischer, "v1alpha1", &fischers);
            let want = String::from_utf8(want).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), want);
            assert!(!want.contains("\"kind\":\"Fischer\""), "{want}");
            let one = flunder("c", 5);
            let tree = render_item(&Flunder, version, &neg, None, one.value()).unwrap();
            let (want, _) = negotiate::encode(&tree, negotiate::Format::Json, false);
            assert_eq!(object_json(&Flunder, version, &one), want);
        }
    }
}
