//! Watch and list history checking: wardle replicas under a concurrent workload and faults, every
//! watch frame, list and write recorded, then checked against the server's own event log with the
//! etcd robustness suite's watch validators. `WARDLE_HISTORY_SECONDS` sets the workload length
//! (default: a short CI run); the checker is also tested on synthetic histories.

mod common;

#[path = "history/checker.rs"]
mod checker;

#[cfg(test)]
#[path = "history/synthetic.rs"]
mod synthetic;

#[path = "history/driver.rs"]
mod driver;

use common::Engine;

/// Workload seconds: `WARDLE_HISTORY_SECONDS`, else a short CI run.
fn seconds(default: u64) -> u64 {
    std::env::var("WARDLE_HISTORY_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs the workload (8 writers, 20 watchers, 2 listers, staged compaction keeping 40 RVs, a
/// random seed) on `replicas` processes of `engine` for `seconds`, then checks its history.
async fn run_and_check(engine: Engine, seconds: u64, replicas: usize) {
    let cfg = driver::Config {
        engine,
        seconds,
        replicas,
        writers: 8,
        watchers: 20,
        listers: 2,
        retain: 40,
        seed: rand::random(),
    };
    let name = format!("{:?}", cfg.engine).to_lowercase();
    eprintln!("history[{name}]: {cfg:?}");
    let out = driver::run(cfg).await;
    let report = checker::check(&out.history);
    eprintln!("history[{name}]: {}", report.summary());
    eprintln!(
        "history[{name}]: faults injected {} ({}), staged compactions {}, lists recorded {}",
        out.faults.len(),
        out.faults.join("; "),
        out.compactions,
        out.history.lists.len()
    );
    let exact: Vec<_> = out.history.lists.iter().filter(|l| l.exact).collect();
    eprintln!(
        "history[{name}]: exact lists {} (below the horizon when sent: {}; outcomes {:?})",
        exact.len(),
        exact
            .iter()
            .filter(|l| l
                .rv_param
                .parse::<u64>()
                .is_ok_and(|x| x < l.horizon_before))
            .count(),
        exact
            .iter()
            .rev()
            .take(5)
            .map(|l| (&l.rv_param, l.horizon_before, &l.outcome, l.rv, l.min_rv))
            .collect::<Vec<_>>()
    );
    for n in out.notes.iter().take(20) {
        eprintln!("history[{name}]: note: {n}");
    }
    let shown: Vec<String> = report
        .violations
        .iter()
        .take(40)
        .map(|v| format!("[{}] {}", v.validator, v.detail))
        .collect();
    assert!(
        report.violations.is_empty(),
        "history[{name}]: {} violations {:?}:\n{}",
        report.violations.len(),
        report.failed(),
        shown.join("\n")
    );
    assert!(
        report.events_checked > 0 && report.truth_events > 0,
        "nothing was checked"
    );
}

/// Two replicas on one Postgres: 8 writers, 20 watchers, listers, staged compaction every second,
/// a LISTEN backend terminated twice, a replica killed and restarted, Postgres crash-restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_under_faults() {
    run_and_check(Engine::Postgres, seconds(30), 2).await;
}

/// One process on SQLite, killed and restarted twice, with staged compaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_process_restarts() {
    run_and_check(Engine::Sqlite, seconds(20), 1).await;
}
