//! Build script: records the git commit the binary is built from for `--version` and /version,
//! and rebuilds the crate when a migration changes.
//! Outside a git checkout (a source tarball) and without WARDLE_GIT_COMMIT it is left empty.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    // WARDLE_GIT_COMMIT wins (the container build passes it: its context has no .git).
    println!("cargo:rerun-if-env-changed=WARDLE_GIT_COMMIT");
    let commit = std::env::var("WARDLE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_default();
    println!("cargo:rustc-env=WARDLE_GIT_COMMIT={commit}");
    let shown = if commit.is_empty() {
        "unknown"
    } else {
        &commit
    };
    println!("cargo:rustc-env=WARDLE_GIT_COMMIT_OR_UNKNOWN={shown}");
    // Rebuild when HEAD moves: HEAD itself (branch switches) and the branch it points at (commits).
    // Paths come from git because a worktree's .git is a file, not a directory. Only existing
    // files are named: cargo reruns the script on every build for a path that does not exist.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for name in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        if let Some(p) = git(&["rev-parse", "--git-path", name])
            && std::path::Path::new(&p).exists()
        {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    // refinery's embed_migrations! reads migrations/ at compile time, out of cargo's sight: a new
    // or edited migration must rebuild the crate (cargo scans a directory recursively).
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=build.rs");
}
