//! wardle-apiserver: parse flags, set up logging, run the server.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = wardle::config::Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    wardle::server::run(config).await
}
