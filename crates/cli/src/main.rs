//! The `cairn` binary: `serve`, and the client commands `ingest` and `loadgen`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use cairn_server::config::ServerConfig;
use cairn_server::credentials::{self, CredentialSource};

/// Cairn: a self-hostable audit trail that speaks AWS CloudTrail.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: CloudTrail, S3 and ingest APIs on one endpoint.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7447")]
    listen: SocketAddr,
    /// Where Cairn keeps its WAL, metastore, credentials and (by default) buckets.
    #[arg(long, default_value = "./cairn-data")]
    data_dir: PathBuf,
    /// A TOML configuration file (see cairn.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServerConfig::load(args.listen, &args.data_dir, args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
        let root = credentials::load_or_create(&config.data_dir, |k| std::env::var(k).ok())
            .context("loading the root credentials")?;
        match &root.source {
            CredentialSource::Environment => tracing::info!("root credentials from the environment"),
            CredentialSource::File(p) => tracing::info!(path = %p.display(), "root credentials from the data dir"),
            CredentialSource::Generated(p) => tracing::info!(
                path = %p.display(),
                profile = credentials::PROFILE,
                "generated root credentials (use them with AWS_SHARED_CREDENTIALS_FILE and --profile cairn)"
            ),
        }
        let server = cairn_server::Server::start(&config, &root).context("starting the server")?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let local = listener.local_addr()?;
        // The first line on stdout says where the server listens (tests read it).
        println!("cairn listening on http://{local}");
        tracing::info!(address = %local, data_dir = %config.data_dir.display(), "serving");
        server.serve(listener, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
