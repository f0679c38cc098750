//! /healthz, /livez and /readyz with verbose and exclude, and the storage check.
