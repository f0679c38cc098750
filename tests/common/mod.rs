//! Shared helpers for the integration tests (each `tests/*.rs` binary pulls in what it needs).

pub mod backend;
pub mod pki;
pub mod postgres;
pub mod procs;
pub mod raw;
pub mod server;
