//! get, list and deletecollection: reads at a resourceVersion, selectors and pagination.

use super::{Ctx, Deleted, Store};
use crate::apimachinery::continue_token;
use crate::apimachinery::options::{DeleteOptions, ListOptions, Rv, RvMatch};
use crate::apimachinery::status::{ApiError, ApiResult, Reason};
use crate::storage::types::{Chunk, Obj, StorageError};
use std::time::Duration;

/// A page of a list: storage JSON items, the list's resourceVersion and pagination state.
#[derive(Debug, Clone)]
pub struct ListResult {
    pub items: Vec<Obj>,
    pub rv: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

/// Where a list's scan starts: after this (namespace, name), at this resourceVersion.
struct Start {
    after: Option<(String, String)>,
    at_rv: Option<i64>,
}

/// Rows read per storage round trip when no limit bounds the page.
const CHUNK: usize = 500;
/// How long a read waits for a resourceVersion the server has not reached (Go's cacher: 3 s).
const RV_WAIT: Duration = Duration::from_secs(3);

impl Store {
    /// GET of one object, from the cache. `rv` is the request's resourceVersion (Go's cacher
    /// Get): unset, the latest committed state (the cache first catches up with the committed
    /// horizon: read-your-writes across replicas); `0`, whatever the cache holds; `N`, the
    /// cache's state once it has seen N — a resourceVersion from the future waits up to 3 s and
    /// then is a 504 `Too large resource version`.
    pub async fn get(&self, ctx: &Ctx<'_>, name: &str, rv: Rv) -> ApiResult<Obj> {
        match rv {
            Rv::Latest => {
                self.cache
                    .consistent_rv()
                    .await
                    .map_err(|e| ctx.storage_error(name, e))?;
            }
            Rv::Any => {}
            Rv::At(n) => self.wait_for_rv(ctx, n).await?,
        }
        match self.cache.get(&ctx.key(name)) {
            Some(s) => Ok(s.object),
            None => Err(ApiError::not_found(&ctx.resource.group_resource(), name)),
        }
    }

    /// Wait (up to 3 s, like Go's cacher) until this process has seen `rv`: another replica may
    /// be ahead of us, and a resourceVersion from the future is a 504.
    async fn wait_for_rv(&self, ctx: &Ctx<'_>, rv: i64) -> ApiResult<()> {
        self.cache
            .wait_for(rv, RV_WAIT)
            .await
            .map_err(|e| ctx.storage_error("", e))
    }

    /// One chunk of a list at `at_rv` (None: the cache's head). The cache answers when it is at
    /// exactly that RV; older states come from storage, which keeps them exact.
    async fn chunk(
        &self,
        resource: &str,
        ns: Option<&str>,
        at_rv: Option<i64>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Chunk, StorageError> {
        if at_rv.is_none_or(|rv| rv == self.cache.head()) {
            let c = self.cache.list(resource, ns, after, limit);
            if at_rv.is_none_or(|rv| rv == c.rv) {
                return Ok(c);
            }
        }
        self.storage
            .list_chunk(resource, ns, at_rv, after, limit)
            .await
    }

    /// Where a list starts: after the continue token's key at its resourceVersion, or from
    /// the first key at the resourceVersion the request names (None: the cache's head, once it
    /// is as fresh as the request asks). Errors: 400 for a bad token, 504 for a future
    /// resourceVersion, the storage mapping's errors.
    async fn list_start(&self, ctx: &Ctx<'_>, opts: &ListOptions) -> ApiResult<Start> {
        let all_namespaces = ctx.resource.namespaced() && ctx.namespace.is_empty();
        if let Some(token) = &opts.continue_token {
            let t = continue_token::decode(token, all_namespaces)?;
            if opts.rv_with_continue {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let ns = if all_namespaces {
                t.namespace.clone()
            } else {
                ctx.namespace.to_string()
            };
            return Ok(Start {
                after: Some((ns, t.name.clone())),
                at_rv: (t.rv > 0).then_some(t.rv),
            });
        }
        let mut at_rv = None;
        match (opts.resource_version, opts.rv_match) {
            (Rv::At(n), Some(RvMatch::Exact)) => at_rv = Some(n),
            // Go: a resourceVersion with a limit and no match rule is an exact read.
            (Rv::At(n), None) if opts.limit.is_some() => at_rv = Some(n),
            (Rv::At(n), _) => self.wait_for_rv(ctx, n).await?,
            // A consistent read: the cache must have caught up with the committed horizon.
            (Rv::Latest, _) => {
                self.cache
                    .consistent_rv()
                    .await
                    .map_err(|e| ctx.storage_error("", e))?;
            }
            (Rv::Any, _) => {}
        }
        if let Some(n) = at_rv {
            self.wait_for_rv(ctx, n).await?;
        }
        Ok(Start { after: None, at_rv })
    }

    /// LIST with label/field selectors, limit/continue and resourceVersion semantics.
    pub async fn list(&self, ctx: &Ctx<'_>, opts: &ListOptions) -> ApiResult<ListResult> {
        let r = ctx.resource;
        let all_namespaces = r.namespaced() && ctx.namespace.is_empty();
        let ns_filter = (!ctx.namespace.is_empty()).then_some(ctx.namespace);
        let from_continue = opts.continue_token.is_some();
        let Start {
            mut after,
            mut at_rv,
        } = self.list_start(ctx, opts).await?;

        let limit = opts.limit;
        let chunk_size = limit.map(|l| (l + 1).max(32)).unwrap_or(CHUNK);
        let mut items = Vec::new();
        let mut list_rv = None;
        let mut last_key: Option<(String, String)> = None;
        let mut more_after_last = false;
        'scan: loop {
            let a = after.as_ref().map(|(n, m)| (n.as_str(), m.as_str()));
            let chunk = match self
                .chunk(r.plural(), ns_filter, at_rv, a, chunk_size)
                .await
                .map_err(|e| ctx.storage_error("", e))
            {
                Ok(c) => c,
                Err(e) if e.reason == Reason::Expired && from_continue => {
                    let (ns, name) = after.clone().unwrap_or_default();
                    let mut e = ApiError::gone(EXPIRED_CONTINUE);
                    e.continue_token =
                        Some(continue_token::encode_fresh(all_namespaces, &ns, &name));
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            // Every later chunk is read at the first chunk's RV, so pages form one snapshot.
            at_rv = Some(chunk.rv);
            list_rv.get_or_insert(chunk.rv);
            let n = chunk.items.len();
            for s in chunk.items {
                after = Some((s.key.namespace.clone(), s.key.name.clone()));
                if let Some(l) = limit
                    && items.len() == l
                {
                    // One more row exists past the page: that's what a continue token means.
                    more_after_last = true;
                    break 'scan;
                }
                if super::selected(opts, &s.key, &s.object) {
                    last_key = Some((s.key.namespace.clone(), s.key.name.clone()));
                    items.push(s.object);
                }
            }
            if !chunk.more || n == 0 {
                break;
            }
        }
        let rv = list_rv.unwrap_or_default();
        let (continue_token, remaining) = match (more_after_last, &last_key) {
            (true, Some(last)) => {
                let token = continue_token::encode(rv, all_namespaces, &last.0, &last.1);
                let remaining = if opts.has_selectors() {
                    None
                } else {
                    self.remaining(ctx, rv, last).await?
                };
                (Some(token), remaining)
            }
            _ => (None, None),
        };
        Ok(ListResult {
            items,
            rv,
            continue_token,
            remaining,
        })
    }

    /// remainingItemCount: the objects after `last` at `rv`. The count is a second read:
    /// compaction may pass `rv` between the page and the count. The page is still a valid
    /// snapshot, and remainingItemCount is optional, so it is left out (None) rather than
    /// failing the page.
    async fn remaining(
        &self,
        ctx: &Ctx<'_>,
        rv: i64,
        (ns, name): &(String, String),
    ) -> ApiResult<Option<i64>> {
        let ns_filter = (!ctx.namespace.is_empty()).then_some(ctx.namespace);
        let plural = ctx.resource.plural();
        match self
            .storage
            .count_after(plural, ns_filter, rv, (ns.as_str(), name.as_str()))
            .await
            .map_err(|e| ctx.storage_error("", e))
        {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.reason == Reason::Expired => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// DELETE on a collection: every matching object goes through the normal delete path;
    /// admission sees each with name "" (Go's static attributes of the request) and its own
    /// namespace. Returns the matched objects as they were before deletion. As Go's
    /// Store.DeleteCollection, the list is the request's: it starts at `continue` (a bad token
    /// is its 400, dry run or not), and with a `limit` only that page is deleted and the answer
    /// carries the page's continue token.
    pub async fn delete_collection(
        &self,
        ctx: &Ctx<'_>,
        list: &ListOptions,
        del: &DeleteOptions,
    ) -> ApiResult<ListResult> {
        let page = self.list(ctx, list).await?;
        let mut deleted = Vec::with_capacity(page.items.len());
        for obj in page.items {
            let meta = &obj.value()["metadata"];
            let name = meta["name"].as_str().unwrap_or("").to_string();
            let ns = meta["namespace"].as_str().unwrap_or("").to_string();
            let item_ctx = Ctx {
                namespace: &ns,
                ..*ctx
            };
            match self.delete_admitted_as(&item_ctx, &name, del, "").await {
                Ok(Deleted::Gone(_)) | Ok(Deleted::Pending(_)) => deleted.push(obj),
                // Someone else deleted it meanwhile: the collection delete still succeeded for it.
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ListResult {
            items: deleted,
            ..page
        })
    }
}

const EXPIRED_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";
