//! /version.
//!
//! Same shape as Go's `version.Info` (component-base). major/minor are the *wardle* binary
//! version 1.2 (what the Go sample reports), so clients comparing versions see the same numbers;
//! gitVersion names this crate so a person can tell the Rust server apart.

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Go's GOARCH spelling of the running architecture.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The /version document.
pub fn info() -> Value {
    json!({
        "major": "1",
        "minor": "2",
        "emulationMajor": "1",
        "emulationMinor": "2",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "1",
        "gitVersion": format!("v1.2.0-wardle.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": env!("WARDLE_GIT_COMMIT"),
        "gitTreeState": "",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

/// `GET /version`: always indented JSON, whatever the Accept header (Go's WriteRawJSON).
pub fn version() -> Response {
    let (body, _) = super::negotiate::encode(&info(), super::negotiate::Format::Json, true);
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let v = info();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "2");
        assert_eq!(
            v["gitVersion"],
            format!("v1.2.0-wardle.{}", env!("CARGO_PKG_VERSION"))
        );
        let platform = v["platform"].as_str().unwrap();
        assert!(platform.starts_with(std::env::consts::OS), "{platform}");
        assert!(!platform.contains("x86_64"), "{platform}");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert!(keys.iter().any(|k| *k == "major") && keys.iter().any(|k| *k == "minor"));
        assert_eq!(keys.len(), 13);
    }

    #[test]
    fn response_is_json() {
        let r = version();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
    }
}
