//! Field selectors: metadata.name and metadata.namespace with =, ==, !=.
