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
    /// Send records to a server: a CloudTrail log file (.json or .json.gz), JSON lines,
    /// a directory of exported log files, or `-` for standard input.
    Ingest(IngestArgs),
    /// Send deterministic, realistic CloudTrail events at a given rate or as fast as possible.
    Loadgen(LoadgenArgs),
}

/// How client commands find the server, as the AWS CLI does.
#[derive(Debug, clap::Args)]
struct ClientArgs {
    /// The server (else AWS_ENDPOINT_URL_CLOUDTRAIL_DATA, AWS_ENDPOINT_URL, http://127.0.0.1:7447).
    #[arg(long)]
    endpoint_url: Option<String>,
    /// A profile of the shared credentials file (else AWS_PROFILE, default, then the local server's file).
    #[arg(long)]
    profile: Option<String>,
    /// The local server's data dir, whose credentials file is the last fallback.
    #[arg(long, default_value = "./cairn-data")]
    data_dir: PathBuf,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, clap::Args)]
struct IngestArgs {
    /// A file, a directory, or `-` for standard input.
    source: String,
    /// Records per request (at most 1000).
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, clap::Args)]
struct LoadgenArgs {
    /// How many events to send (default 10000 when --duration is not given).
    #[arg(long)]
    count: Option<u64>,
    /// How long to send for, e.g. 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<std::time::Duration>,
    /// Events per second (default: as fast as the server takes them).
    #[arg(long)]
    rate: Option<f64>,
    /// Records per request.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Seed of the generator (default: random; the seed used is printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Accounts to generate events for (comma-separated; they must be the server's
    /// account or members of its organization).
    #[arg(long, value_delimiter = ',', default_value = "123456789012")]
    accounts: Vec<String>,
    #[command(flatten)]
    client: ClientArgs,
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
        Command::Ingest(args) => ingest(args),
        Command::Loadgen(args) => loadgen(args),
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
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn connect(args: &ClientArgs) -> anyhow::Result<cairn_client::IngestClient> {
    let config = cairn_client::resolve(
        args.endpoint_url.as_deref(),
        args.profile.as_deref(),
        &args.data_dir,
    )
    .context("finding the server and credentials")?;
    eprintln!(
        "cairn: sending to {} as {} ({})",
        config.endpoint,
        config.access_key_id,
        match &config.credential_source {
            cairn_client::CredentialSource::Environment =>
                "credentials from the environment".to_owned(),
            cairn_client::CredentialSource::Profile { profile, path } =>
                format!("profile {profile} of {}", path.display()),
            cairn_client::CredentialSource::DataDir { path } =>
                format!("credentials of {}", path.display()),
        }
    );
    Ok(cairn_client::IngestClient::new(config)?)
}

fn progress_bar(hidden: bool) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} records ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

fn ingest(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let runtime = client_runtime()?;
    let result = runtime.block_on(async {
        let client = connect(&args.client)?;
        let options = cairn_client::IngestOptions {
            max_records_per_batch: args.batch_size,
            concurrency: args.client.concurrency,
            ..Default::default()
        };
        let bar = progress_bar(args.client.no_progress);
        let source = cairn_client::IngestSource::from_arg(&args.source);
        let summary = cairn_client::ingest_source(&client, source, &options, &bar).await?;
        bar.finish_and_clear();
        anyhow::Ok(summary)
    });
    // A reader blocked on stdin must not hold the process open.
    runtime.shutdown_background();
    let summary = result?;
    println!(
        "{} records read, {} accepted, {} failed in {:.2}s ({:.0} records/s)",
        summary.records,
        summary.accepted,
        summary.failed,
        summary.elapsed.as_secs_f64(),
        summary.records as f64 / summary.elapsed.as_secs_f64().max(1e-9)
    );
    for f in &summary.failures {
        println!("record {}: {}: {}", f.index, f.error_code, f.error_message);
    }
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn loadgen(args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    let runtime = client_runtime()?;
    let summary = runtime.block_on(async {
        let client = connect(&args.client)?;
        let options = cairn_client::LoadgenOptions {
            count: args.count.or(if args.duration.is_none() {
                Some(10_000)
            } else {
                None
            }),
            duration: args.duration,
            rate: args.rate,
            batch_size: args.batch_size,
            concurrency: args.client.concurrency,
            seed: args.seed,
            accounts: args.accounts.clone(),
            ..Default::default()
        };
        let bar = progress_bar(args.client.no_progress);
        let summary = cairn_client::loadgen(&client, &options, &bar).await?;
        bar.finish_and_clear();
        anyhow::Ok(summary)
    })?;
    println!(
        "seed {}: {} sent, {} accepted, {} failed in {:.2}s: {:.0} events/s; batch latency p50 {:?} p99 {:?}",
        summary.seed,
        summary.sent,
        summary.accepted,
        summary.failed,
        summary.elapsed.as_secs_f64(),
        summary.events_per_second,
        summary.batch_latency.p50,
        summary.batch_latency.p99
    );
    for (code, n) in &summary.failures_by_code {
        println!("  {n} refused with {code}");
    }
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
