//! Storage over Postgres or SQLite: migrations, the group-commit writer, reads at a resourceVersion.

pub mod types;
