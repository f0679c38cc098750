//! wardle-apiserver: parse flags, set up logging, run the server (or the `report` subcommand).

use clap::Parser;
use wardle::config::{Command, Config, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = Config::parse();
    if let Some(Command::Report(args)) = config.command.take() {
        return wardle::report::main(args).await;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => logs.init(),
        // One object per line with the event's fields at the top level, for log shippers.
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    wardle::server::run(config).await
}
