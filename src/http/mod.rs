//! The HTTP face: routing, content negotiation, Status responses, discovery, OpenAPI, health.

pub mod discovery;
pub mod handlers;
pub mod health;
pub mod limits;
pub mod negotiate;
pub mod openapi;
pub mod openapi_proto;
pub mod request_info;
pub mod response;
pub mod router;
pub mod table;
pub mod unread;
pub mod version;
pub mod watch;
