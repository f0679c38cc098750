//! wardle: the Kubernetes sample-apiserver (wardle.example.com) served from Postgres or SQLite.
//! The module order follows a request: TLS → authn → authz → http → registry → admission → storage.

pub mod config;
pub mod tls;
pub mod authn;
pub mod authz;
pub mod http;
pub mod apimachinery;
pub mod registry;
pub mod api;
pub mod admission;
pub mod storage;
pub mod server;
