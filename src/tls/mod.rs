//! TLS serving: rustls config that accepts any client cert, standalone PKI and kubeconfig.

pub mod pki;
pub mod server;
