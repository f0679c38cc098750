//! Child processes of a test (kine, kube-apiserver, etcd, the Go sample-apiserver, ...): each
//! logs to a file, is killed when the test ends, and its log tail goes into failure messages.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A free TCP port on 127.0.0.1 (bound, then released for the process that will listen on it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The stdout (UTF-8) of a command that must have succeeded; else a panic naming `what`, with
/// its stderr.
pub fn succeeded(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap_or_else(|e| panic!("{what}: stdout: {e}"))
}

/// Child processes killed (last started first) when the test ends, with their logs.
#[derive(Default)]
pub struct Procs {
    children: Vec<(String, Child, PathBuf)>,
}

impl Procs {
    pub fn spawn(&mut self, name: &str, cmd: &mut Command, dir: &Path) {
        let log = dir.join(format!("{name}.log"));
        let f = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.children.push((name.to_string(), child, log));
    }

    /// Panic (with the logs) if a process has exited: no point waiting for it.
    pub fn check_alive(&mut self) {
        let dead: Vec<String> = self
            .children
            .iter_mut()
            .filter_map(|(n, c, _)| c.try_wait().ok().flatten().map(|_| n.clone()))
            .collect();
        if !dead.is_empty() {
            panic!("{dead:?} exited\n{}", self.report());
        }
    }

    /// The last lines of every log, and which processes have died.
    pub fn report(&mut self) -> String {
        let mut s = String::new();
        for (name, child, log) in &mut self.children {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let exited = child.try_wait().ok().flatten();
            s.push_str(&format!(
                "---- {name} ({}) ----\n{}\n",
                exited.map_or("running".to_string(), |e| format!("exited: {e}")),
                lines[lines.len().saturating_sub(25)..]
                    .iter()
                    .map(|l| l.chars().take(400).collect::<String>())
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        s
    }

    pub fn log_of(&self, name: &str) -> String {
        self.children
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, l)| std::fs::read_to_string(l).unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        // Reverse order: later processes use earlier ones (wardle before kube-apiserver before kine).
        for (_, child, _) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
