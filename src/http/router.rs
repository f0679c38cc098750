//! The axum router: static routes plus one resource dispatcher driven by RequestInfo.
