//! Watch: streaming changes to a client (JSON event framing, Table events, bookmarks).
//! Served from the watch cache, which is the next milestone (see the Watch issue); until it
//! lands, a watch request is refused with a clear Status instead of hanging.

use super::negotiate::Negotiated;
use super::router::AppState;
use crate::apimachinery::options::ListOptions;
use crate::apimachinery::status::{ApiError, ApiResult};
use crate::registry::Ctx;
use axum::response::Response;

pub async fn serve(
    _state: &AppState,
    _ctx: &Ctx<'_>,
    _name: &str,
    _opts: ListOptions,
    _neg: Negotiated,
    _query: Option<&str>,
) -> ApiResult<Response> {
    Err(ApiError::method_not_allowed())
}
