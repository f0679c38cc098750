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
    init_logging(format);
    match wardle::server::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match format {
                LogFormat::Text => eprintln!("error: {e:#}"),
                LogFormat::Json => tracing::error!("{e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (refinery's own migration lines are left out: storage logs each applied
/// migration): text (coloured only on a terminal, and never when `NO_COLOR` is set, as
/// no-color.org asks) or one JSON object per line with the event's fields at the top level.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,refinery_core=warn")
    });
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(colour).init(),
        LogFormat::Json => logs.json().flatten_event(true).with_ansi(false).init(),
    }
}
