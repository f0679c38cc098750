//! Admission plugins run on writes: BanFlunder (and NamespaceLifecycle once a cluster is attached).
