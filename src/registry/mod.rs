//! The generic Store: every verb for every declared resource, on top of storage.
