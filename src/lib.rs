//! wardle: the Kubernetes sample-apiserver (wardle.example.com) served from Postgres or SQLite.
//! The module order follows a request: TLS → authn → authz → http → registry → admission → storage.

pub mod admission;
pub mod api;
pub mod apimachinery;
pub mod app;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod config;
pub mod http;
pub mod kubeclient;
pub mod metrics;
pub mod registry;
pub mod report;
pub mod server;
pub mod storage;
pub mod tls;

/// `--version`: the crate version and the git commit it was built from (build.rs; `unknown`
/// outside a git checkout, e.g. in the container build).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("WARDLE_GIT_COMMIT_OR_UNKNOWN"),
    ")"
);
