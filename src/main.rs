//! wardle-apiserver: parse flags, set up logging, run the server (or the `report` subcommand).
//! A failure to start ends with one message naming the cause and the fix, and exit code 1
//! (bad flags: clap's message and exit code 2).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use wardle::config::{Command, Config, LogFormat};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let mut config = Config::parse();
    if let Some(Command::Report(args)) = config.command.take() {
        return match wardle::report::main(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let format = config.log_format;
    let logs = init_logging(format);
    let result = wardle::server::run(config).await;
    if let (Err(e), LogFormat::Json) = (&result, format) {
        tracing::error!("{e:#}");
    }
    // Every line logged so far reaches stderr before the message below.
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if format == LogFormat::Text {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Log lines waiting for stderr before further ones are dropped (~300 bytes each).
const LOG_LINES_BUFFERED: usize = 16_384;

/// Bytes of log lines the log thread gathers before a write to stderr. It writes once it has
/// taken every waiting line (tracing-appender flushes whenever its queue is empty), so a line is
/// never held back: under load, one write(2) carries many lines instead of one each.
const LOG_WRITE_BUFFER: usize = 64 * 1024;

/// How long the log thread rests after each write before it looks at its queue again. Without
/// the rest it empties the queue at every line under load and parks, so each request's line
/// costs a futex wake of the thread (and its spin) — ~9 % of the server's CPU at 12k creates/s in
/// a perf profile. With it, a thread that has just written wakes at most once per rest and finds
/// the lines of that millisecond waiting; senders do not wake it then (it is not parked). A line
/// reaches stderr at most this much later; an idle thread still parks until the next line.
const LOG_REST: std::time::Duration = std::time::Duration::from_millis(1);

/// stderr behind a buffer, for the log thread: a flush writes the buffer out and then rests
/// (`LOG_REST`).
struct RestingStderr(std::io::BufWriter<std::io::Stderr>);

impl std::io::Write for RestingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let written = self.0.flush();
        std::thread::sleep(LOG_REST);
        written
    }
}

/// Logs go to stderr (refinery's own migration lines are left out: storage logs each applied
/// migration): text (coloured only on a terminal, and never when `NO_COLOR` is set, as
/// no-color.org asks) or one JSON object per line with the event's fields at the top level.
/// Lines are written by a thread of their own (tracing-appender): every request logs one, and a
/// reader that stops draining stderr (a paused pager, a stuck log shipper) would otherwise block
/// the threads serving requests; past `LOG_LINES_BUFFERED` waiting lines, new ones are dropped.
/// The thread writes what it took in one go (`LOG_WRITE_BUFFER`) and rests a moment after each
/// write (`LOG_REST`).
/// Dropping the returned guard writes out what is queued.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let (stderr, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_LINES_BUFFERED)
        .lossy(true)
        .thread_name("wardle-log")
        .finish(RestingStderr(std::io::BufWriter::with_capacity(
            LOG_WRITE_BUFFER,
            std::io::stderr(),
        )));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,refinery_core=warn")
    });
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(stderr);
    match format {
        LogFormat::Text => logs.with_ansi(colour).init(),
        LogFormat::Json => logs.json().flatten_event(true).with_ansi(false).init(),
    }
    guard
}
