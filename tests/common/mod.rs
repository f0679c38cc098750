//! Shared helpers for the integration tests (each `tests/*.rs` binary pulls in what it needs):
//! the engine matrix (`Engine`, `engine_tests!`), a server process (`server::Wardle`), a
//! storage-level database (`backend::Backend`), child processes and free ports (`procs`).

#![allow(dead_code)]

pub mod backend;
pub mod pki;
pub mod postgres;
pub mod procs;
pub mod raw;
pub mod server;

use std::path::Path;

/// The engines every test runs against.
#[derive(Clone, Copy, Debug)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// A fresh, empty database for one test (a SQLite file in `dir`, or a new database on the
    /// throwaway Postgres).
    pub fn fresh_url(self, dir: &Path) -> String {
        match self {
            Engine::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("wardle.db").display()),
            Engine::Postgres => postgres::fresh_database_url(),
        }
    }
}

/// Runs each async case as `sqlite::<case>` and `postgres::<case>`. A case takes anything made
/// `From<Engine>`: the `Engine` itself (server tests) or a `backend::Backend` (storage tests).
#[macro_export]
macro_rules! engine_tests {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                super::$case($crate::common::Engine::Sqlite.into()).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                super::$case($crate::common::Engine::Postgres.into()).await
            })*
        }
    };
}
