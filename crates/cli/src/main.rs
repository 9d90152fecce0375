//! The `cairn` binary: `serve`, the client commands `ingest`, `loadgen` and
//! `validate-logs`, and the data-dir tools `doctor` and `quarantine list`.

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
    /// Validate a trail's log files against its signed digest chain, as
    /// `aws cloudtrail validate-logs` does (same flags, lines and exit codes), online
    /// against a server or offline on a directory copy of the bucket.
    ValidateLogs(ValidateLogsArgs),
    /// Verify a data dir that refuses to start (damaged or missing WAL files) and,
    /// with --repair, salvage every intact record and say what was lost.
    Doctor(DoctorArgs),
    /// Records set aside because they can never be delivered (an object key the
    /// store refuses, a file too large), kept with their reason in the data dir.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Run SQL (Athena's dialect): against a server (an Athena statement, or a
    /// CloudTrail Lake query when it names an event data store), or with --logs over
    /// a directory of exported CloudTrail log files as table `cloudtrail_logs`,
    /// converted once into a cached Parquet copy.
    Query(QueryArgs),
    /// Import CloudTrail log files into an event data store: from `s3://bucket/prefix/`
    /// on the server, or from a local directory (uploaded to --bucket first).
    Import(ImportArgs),
}

/// How commands that call the server's AWS APIs find it, as the AWS CLI does.
#[derive(Debug, clap::Args)]
struct ApiArgs {
    /// The server, for every service (else AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL,
    /// the profile's, http://127.0.0.1:7447).
    #[arg(long)]
    endpoint_url: Option<String>,
    /// A profile of the shared credentials file (else AWS_PROFILE, default, then the local server's file).
    #[arg(long)]
    profile: Option<String>,
    /// The region (else AWS_REGION, AWS_DEFAULT_REGION, the profile's).
    #[arg(long)]
    region: Option<String>,
    /// The local server's data dir, whose credentials file is the last fallback.
    #[arg(long, default_value = "./cairn-data")]
    data_dir: PathBuf,
}

impl ApiArgs {
    /// The signer, and the endpoint of each service named by its variable.
    fn connect(
        &self,
        variables: &[&str],
    ) -> anyhow::Result<(cairn_client::api::AwsApi, Vec<String>)> {
        let mut endpoints = Vec::with_capacity(variables.len());
        let mut api = None;
        for variable in variables {
            let config = cairn_client::api::resolve_service(
                self.endpoint_url.as_deref(),
                self.profile.as_deref(),
                &self.data_dir,
                variable,
            )
            .context("finding the server and credentials")?;
            if api.is_none() {
                api = Some(cairn_client::api::AwsApi::new(
                    &config,
                    self.region.as_deref(),
                )?);
            }
            endpoints.push(config.endpoint);
        }
        let api = api.ok_or_else(|| anyhow::anyhow!("no service to call"))?;
        Ok((api, endpoints))
    }
}

#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// `s3://bucket/prefix/` on the server, or a local directory of log files.
    source: String,
    /// The event data store to import into (ID or ARN).
    #[arg(long)]
    event_data_store: String,
    /// For a local directory: the server's bucket the files are uploaded to first.
    #[arg(long)]
    bucket: Option<String>,
    /// For a local directory: the key prefix of the upload (default: cairn-import/<UTC time>/).
    #[arg(long)]
    prefix: Option<String>,
    /// Only events at or after this time, e.g. 2026-01-01T00:00:00Z.
    #[arg(long)]
    start_event_time: Option<String>,
    /// Only events at or before this time.
    #[arg(long)]
    end_event_time: Option<String>,
    /// The role CloudTrail Lake reads the bucket as.
    #[arg(long)]
    role_arn: Option<String>,
    /// Start the import and print its ID without waiting for it.
    #[arg(long)]
    no_wait: bool,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, clap::Args)]
struct QueryArgs {
    /// The statement, e.g. "SELECT eventname, count(*) FROM cloudtrail_logs GROUP BY 1".
    sql: String,
    /// Offline: a directory of CloudTrail log files (`.json.gz` or `.json`), e.g. an
    /// `AWSLogs/` export; digest files are left out. Never written to.
    #[arg(long)]
    logs: Option<PathBuf>,
    /// Against a server: the Athena database of unqualified table names.
    #[arg(long, default_value = "default", conflicts_with = "logs")]
    database: String,
    /// Against a server: where Athena writes results, s3://bucket/prefix/ (needed for
    /// Athena statements, not for CloudTrail Lake queries).
    #[arg(long, conflicts_with = "logs")]
    output_location: Option<String>,
    /// Against a server: the Athena workgroup.
    #[arg(long, default_value = "primary", conflicts_with = "logs")]
    work_group: String,
    #[command(flatten)]
    api: ApiArgs,
    /// Where the Parquet copy is kept (default: under $XDG_CACHE_HOME or ~/.cache).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// How rows are printed.
    #[arg(long, value_enum, default_value = "table")]
    output: QueryOutput,
    /// Memory the query may hold, in MiB, before it fails.
    #[arg(long, default_value_t = 1024)]
    memory_mib: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum QueryOutput {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
enum QuarantineCommand {
    /// List what is set aside: sink, time, reason, record count and eventIDs.
    List(QuarantineListArgs),
}

#[derive(Debug, clap::Args)]
struct QuarantineListArgs {
    /// The server's data dir.
    #[arg(long, default_value = "./cairn-data")]
    data_dir: PathBuf,
    /// Print one JSON document instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct DoctorArgs {
    /// The data dir to check (no server may be running on it).
    #[arg(long, default_value = "./cairn-data")]
    data_dir: PathBuf,
    /// Rewrite damaged ranges as lost-record markers so the server starts again.
    #[arg(long)]
    repair: bool,
}

/// Output formats of `validate-logs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    /// The AWS CLI's lines.
    Text,
    /// One JSON document on stdout.
    Json,
}

#[derive(Debug, clap::Args)]
struct ValidateLogsArgs {
    /// The ARN of the trail to validate.
    #[arg(long)]
    trail_arn: String,
    /// Validate log files delivered on or after this UTC time, e.g. 2026-01-08T05:21:42Z.
    #[arg(long)]
    start_time: String,
    /// Validate log files delivered on or before this UTC time (default: now).
    #[arg(long)]
    end_time: Option<String>,
    /// The bucket holding the digests, if not the trail's current one (skips DescribeTrails).
    #[arg(long)]
    s3_bucket: Option<String>,
    /// The key prefix of the digests (used with --s3-bucket or --local-dir).
    #[arg(long)]
    s3_prefix: Option<String>,
    /// The account to validate: required for organization trails.
    #[arg(long)]
    account_id: Option<String>,
    /// Print the valid files too.
    #[arg(long)]
    verbose: bool,
    /// The server, credentials and region (the region's digests are validated).
    #[command(flatten)]
    api: ApiArgs,
    /// Validate offline: a directory holding a copy of the trail's bucket.
    #[arg(long, requires = "public_keys")]
    local_dir: Option<PathBuf>,
    /// Offline: the output of `aws cloudtrail list-public-keys` for the digests' region.
    #[arg(long, requires = "local_dir")]
    public_keys: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
    /// Threads fetching and hashing log files (default: one per core offline; online,
    /// four per core and at least 8, so requests overlap with hashing).
    #[arg(long)]
    threads: Option<usize>,
    /// Only the AWS CLI's checks: skip the chain checks it does not make.
    #[arg(long)]
    no_chain_checks: bool,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
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

/// Standard error for the log, where a failed write (a full disk under a
/// redirected stderr) drops the line instead of failing: the log writer's
/// fallback for a failed write prints to stderr again, and printing to a
/// stderr that cannot be written panics, in whatever thread logged, locks
/// held and all.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(|| LossyStderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Ingest(args) => ingest(args),
        Command::Loadgen(args) => loadgen(args),
        Command::ValidateLogs(args) => validate_logs(args),
        Command::Doctor(args) => doctor(args),
        Command::Quarantine(QuarantineCommand::List(args)) => quarantine_list(args),
        Command::Query(args) => query(args),
        Command::Import(args) => import(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Exit 0: no damage (or repaired); 1: damage found (not repaired); 2: damage
/// that cannot be repaired.
fn doctor(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let report = cairn_server::doctor::doctor(&args.data_dir, args.repair)
        .with_context(|| format!("checking the data dir {}", args.data_dir.display()))?;
    for line in report.lines() {
        println!("{line}");
    }
    if report.has_unrepairable() {
        return Ok(ExitCode::from(2));
    }
    if !report.is_clean() && !args.repair {
        println!(
            "run `cairn doctor --data-dir {} --repair` to salvage every intact record",
            args.data_dir.display()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn query_format(output: QueryOutput) -> cairn_query::render::Format {
    use cairn_query::render::Format;
    match output {
        QueryOutput::Table => Format::Table,
        QueryOutput::Csv => Format::Csv,
        QueryOutput::Json => Format::Json,
    }
}

fn print_rows(text: &[u8], format: cairn_query::render::Format) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text)?;
    if format == cairn_query::render::Format::Table {
        writeln!(stdout)?;
    }
    Ok(())
}

/// `cairn query` against a server: CloudTrail Lake when the statement names an
/// event data store, else Athena.
fn query_server(args: &QueryArgs) -> anyhow::Result<ExitCode> {
    use cairn_client::api::{ATHENA, CLOUDTRAIL};
    use cairn_client::sql;
    let (api, endpoints) = args
        .api
        .connect(&[CLOUDTRAIL.endpoint_variable, ATHENA.endpoint_variable])?;
    let runtime = client_runtime()?;
    let outcome = runtime.block_on(async {
        let store = sql::event_data_store_named(&api, &endpoints[0], &args.sql).await?;
        match store {
            Some(_) => sql::run_lake(&api, &endpoints[0], &args.sql).await,
            None => {
                let Some(output_location) = args.output_location.clone() else {
                    return Err(cairn_client::Error::InvalidOption {
                        name: "--output-location",
                        reason:
                            "an Athena statement needs an output location (s3://bucket/prefix/); \
                                 a CloudTrail Lake query names its event data store in FROM"
                                .to_owned(),
                    });
                };
                let target = sql::AthenaTarget {
                    endpoint: endpoints[1].clone(),
                    database: args.database.clone(),
                    output_location,
                    work_group: args.work_group.clone(),
                };
                sql::run_athena(&api, &target, &args.sql).await
            }
        }
    });
    runtime.shutdown_background();
    let rows = match outcome {
        Ok(rows) => rows,
        Err(e @ (cairn_client::Error::QueryFailed { .. } | cairn_client::Error::Api { .. })) => {
            eprintln!("cairn: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    if rows.columns.is_empty() {
        // A statement without a result set (CREATE, DROP, ...): nothing to print.
        return Ok(ExitCode::SUCCESS);
    }
    let format = query_format(args.output);
    let text = cairn_query::render::render_text(&rows.columns, &rows.rows, format)?;
    print_rows(&text, format)?;
    Ok(ExitCode::SUCCESS)
}

fn query(args: QueryArgs) -> anyhow::Result<ExitCode> {
    use cairn_query::{Engine, EngineConfig, logs};
    let Some(logs_dir) = args.logs.clone() else {
        return query_server(&args);
    };
    keep_freed_memory();
    let cache_dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| logs::default_cache_dir(&logs_dir));
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "converting {pos}/{len} log files ({msg} records) {wide_bar} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let copy = logs::refresh(&logs::DirLogs::new(&logs_dir), &cache_dir, |progress| {
        bar.set_length(progress.files_total as u64);
        bar.set_position(progress.files_done as u64);
        bar.set_message(progress.records.to_string());
    })
    .with_context(|| format!("reading the log files under {}", logs_dir.display()))?;
    bar.finish_and_clear();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (engine, rows) = runtime.block_on(async {
        // Each part's statistics are kept beside it: the next query, another
        // process, plans without summarising every footer again.
        let engine = Engine::new_with_caches(
            EngineConfig {
                memory_limit_bytes: args.memory_mib.saturating_mul(1024 * 1024),
                ..EngineConfig::default()
            },
            &cairn_query::FileCaches::with_statistics_beside_parts(&copy.dir),
        )?;
        engine
            .register_parquet("cloudtrail_logs", &copy.dir.to_string_lossy())
            .await?;
        let rows = engine.sql_stream(&args.sql).await?;
        anyhow::Ok((engine, rows))
    })?;
    let format = query_format(args.output);
    // Written as they arrive, a batch at a time, through one buffer.
    let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    cairn_query::render::write_stream(runtime.handle(), rows, format, &mut stdout)?;
    if format == cairn_query::render::Format::Table {
        std::io::Write::write_all(&mut stdout, b"\n")?;
    }
    std::io::Write::flush(&mut stdout)?;
    // The process ends with the query: the engine's caches (the footer and
    // page index of every part the query opened, over a hundred for a
    // month) are left to the exit rather than freed one allocation at a
    // time, a few percent of a short query.
    std::mem::forget(engine);
    runtime.shutdown_background();
    Ok(ExitCode::SUCCESS)
}

/// Seconds since the epoch of an ISO-8601 time argument.
fn epoch_seconds(name: &str, value: Option<&str>) -> anyhow::Result<Option<i64>> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp())
                .with_context(|| format!("{name} {v:?} is not a time like 2026-01-01T00:00:00Z"))
        })
        .transpose()
}

fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    use cairn_client::api::{CLOUDTRAIL, S3_ENDPOINT_VARIABLE};
    use cairn_client::import;
    let start_event_time = epoch_seconds("--start-event-time", args.start_event_time.as_deref())?;
    let end_event_time = epoch_seconds("--end-event-time", args.end_event_time.as_deref())?;
    let (api, endpoints) = args
        .api
        .connect(&[CLOUDTRAIL.endpoint_variable, S3_ENDPOINT_VARIABLE])?;
    let runtime = client_runtime()?;
    let source_uri = if args.source.starts_with("s3://") {
        args.source.clone()
    } else {
        let dir = PathBuf::from(&args.source);
        anyhow::ensure!(
            dir.is_dir(),
            "{} is neither s3://bucket/prefix/ nor a directory",
            args.source
        );
        let bucket = args.bucket.clone().ok_or_else(|| {
            anyhow::anyhow!("importing a local directory needs --bucket: the server's bucket the log files are uploaded to first")
        })?;
        let prefix = args.prefix.clone().unwrap_or_else(|| {
            format!(
                "cairn-import/{}/",
                chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
            )
        });
        let plan = import::upload_plan(&dir, &prefix)?;
        anyhow::ensure!(
            !plan.is_empty(),
            "no CloudTrail log files (*.json, *.json.gz) under {}",
            dir.display()
        );
        let bytes: u64 = plan.iter().map(|u| u.size).sum();
        let bar = if args.no_progress {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new(bytes)
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "uploading {msg} log files [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(plan.len().to_string());
        runtime.block_on(import::upload(&api, &endpoints[1], &bucket, plan, &|n| {
            bar.inc(n)
        }))?;
        bar.finish_and_clear();
        format!("s3://{bucket}/{}", prefix.trim_start_matches('/'))
    };
    let request = import::ImportRequest {
        event_data_store: args.event_data_store.clone(),
        source_uri: source_uri.clone(),
        start_event_time,
        end_event_time,
        role_arn: args.role_arn.clone(),
    };
    let id = runtime.block_on(import::start_import(&api, &endpoints[0], &request))?;
    eprintln!("cairn: import {id} started from {source_uri}");
    if args.no_wait {
        println!("{id}");
        runtime.shutdown_background();
        return Ok(ExitCode::SUCCESS);
    }
    let bar = if args.no_progress {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let state = runtime.block_on(import::wait_import(&api, &endpoints[0], &id, &|state| {
        bar.set_message(format!(
            "{}: {} files, {} events imported, {} failed",
            state.status, state.files_completed, state.events_completed, state.failed_entries
        ));
    }))?;
    bar.finish_and_clear();
    runtime.shutdown_background();
    println!(
        "{id}\t{}\t{} files\t{} events\t{} failed",
        state.status, state.files_completed, state.events_completed, state.failed_entries
    );
    Ok(
        if state.status == "COMPLETED" && state.failed_entries == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

fn quarantine_list(args: QuarantineListArgs) -> anyhow::Result<ExitCode> {
    use cairn_pipeline::quarantine;
    let entries = quarantine::list(&args.data_dir)
        .with_context(|| format!("reading the quarantine of {}", args.data_dir.display()))?;
    if args.json {
        let listed: Vec<quarantine::ListedEntry<'_>> = entries.iter().map(Into::into).collect();
        println!("{}", serde_json::to_string_pretty(&listed)?);
    } else {
        for line in quarantine::list_lines(&entries) {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Keeps glibc's malloc from holding much more memory than the server uses.
///
/// Two settings, each skipped when the operator set glibc's own variable for
/// it (glibc has read that already):
///
/// - **Two arenas per core** (`MALLOC_ARENA_MAX`). By default glibc gives each
///   thread that meets contention an arena of its own, up to eight per core,
///   and each keeps the memory freed into it. Two per core keeps the CPU cost
///   of the default (`bench/ingest.py`: one arena per core cost 10 % more CPU
///   per event). Must run before the runtime starts any thread.
/// - **A trim every few seconds** (`MALLOC_TRIM_THRESHOLD_`). glibc gives back
///   only the free memory at the top of an arena; what is freed below a live
///   allocation stays resident until reused. The server frees in large waves
///   (a delivered batch, a replay after a restart, a burst of request bodies),
///   so `malloc_trim` returns those pages between waves. It costs a walk of
///   the free lists: well under a millisecond here.
///
/// See bench/README.md for the soak's peak RSS with each.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let arenas = libc::c_int::try_from(2 * cores.clamp(1, 64)).unwrap_or(2);
        // Called before any other thread exists.
        set_malloc_option(libc::M_ARENA_MAX, arenas);
    }
    if std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
        let trimmer = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(MALLOC_TRIM_INTERVAL);
                    // SAFETY: `malloc_trim` takes each arena's lock while it
                    // returns free pages; it is safe to call from any thread
                    // at any time.
                    unsafe { libc::malloc_trim(0) };
                }
            });
        if let Err(e) = trimmer {
            tracing::debug!(error = %e, "no thread to trim malloc's free memory");
        }
    }
}

/// How often the server hands malloc's free pages back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Other C libraries size their arenas and return memory themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

/// Lets glibc's malloc keep the memory an offline query frees, for the
/// buffers it allocates next.
///
/// A query decodes Parquet pages into buffers of a few hundred KiB to a few
/// MiB, frees them and allocates the same sizes again for the next pages. By
/// default glibc maps such a buffer afresh while its size is above a
/// threshold that only grows after a free, and gives the top of its heap
/// back whenever more than twice that is free, so the next buffers' pages are
/// faulted in and zeroed by the kernel again: on the guide's console-logins
/// query, 88 000 page faults and a quarter of its CPU time. Fixed thresholds
/// keep the memory (39 000 faults, 8 % faster; peak memory of a conversion
/// 5 % higher), and the process ends with the query. Skipped when the
/// operator tuned malloc through glibc's own variables.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    let tuned = [
        "MALLOC_MMAP_THRESHOLD_",
        "MALLOC_TRIM_THRESHOLD_",
        "GLIBC_TUNABLES",
    ];
    if tuned.iter().any(|name| std::env::var_os(name).is_some()) {
        return;
    }
    // Setting either threshold turns off glibc's adjusting of both: they
    // are set together.
    set_malloc_option(libc::M_MMAP_THRESHOLD, QUERY_MMAP_THRESHOLD);
    set_malloc_option(libc::M_TRIM_THRESHOLD, QUERY_TRIM_THRESHOLD);
}

/// Sets one of glibc malloc's tunables (`mallopt`); a refusal leaves its
/// default in place, which is harmless, and is only logged.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_malloc_option(parameter: libc::c_int, value: libc::c_int) {
    // SAFETY: `mallopt` only sets a tunable of the allocator, under its lock.
    if unsafe { libc::mallopt(parameter, value) } == 0 {
        tracing::debug!(parameter, value, "malloc kept its default");
    }
}

/// Allocations below this come from malloc's heap, not a fresh mapping:
/// glibc's own ceiling for the threshold it adjusts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const QUERY_MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// Free memory at the top of the heap is given back above this.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const QUERY_TRIM_THRESHOLD: libc::c_int = 256 << 20;

/// Other C libraries manage their own thresholds.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    tune_malloc();
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
        let server = match cairn_server::Server::start(&config, &root) {
            Ok(server) => server,
            Err(e) if e.is_damage() => {
                let dir = config.data_dir.display();
                let message = match e.damaged_file(&config.data_dir) {
                    Some(file) => format!(
                        "starting the server: {} is damaged; `cairn doctor --data-dir {dir}` lists \
                         every damaged row, and `cairn doctor --data-dir {dir} --repair` rebuilds \
                         damaged trail rows from the WAL",
                        file.display()
                    ),
                    None => format!(
                        "starting the server: the data dir is damaged; `cairn doctor --data-dir {dir}` \
                         shows what, and `cairn doctor --data-dir {dir} --repair` salvages every intact record"
                    ),
                };
                return Err(anyhow::Error::new(e).context(message));
            }
            Err(e) => return Err(anyhow::Error::new(e).context("starting the server")),
        };
        // Athena's engine (DataFusion) lives in this binary, not in the server.
        let engine = cairn_query::athena::AthenaEngine::new(
            &config.data_dir.join("query-cache"),
            cairn_query::EngineConfig {
                memory_limit_bytes: usize::try_from(config.query.memory_bytes).unwrap_or(usize::MAX),
                ..cairn_query::EngineConfig::default()
            },
        )
        .context("starting the SQL engine")?;
        let server = server.with_sql_engine(std::sync::Arc::new(engine), config.query.timeout);
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

/// A progress bar counting `unit` (hidden when asked, and by indicatif when stderr is no terminal).
fn progress_bar(hidden: bool, unit: &str) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}})"
        ))
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
        let bar = progress_bar(args.client.no_progress, "records");
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
        let bar = progress_bar(args.client.no_progress, "records");
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

/// Counts log files on a progress bar.
struct ValidationBar(indicatif::ProgressBar);

impl cairn_digest::validate::ValidationProgress for ValidationBar {
    fn log_queued(&self) {
        self.0.inc_length(1);
    }
    fn log_checked(&self) {
        self.0.inc(1);
    }
}

fn validate_logs(args: ValidateLogsArgs) -> anyhow::Result<ExitCode> {
    use cairn_digest::validate::{ValidateOptions, parse_cli_time, validate};

    // Bad times end the run as the AWS CLI ends it: the message, exit status 255.
    let times = parse_cli_time(&args.start_time).and_then(|start| {
        let end = match &args.end_time {
            Some(t) => parse_cli_time(t)?,
            None => chrono::Utc::now(),
        };
        Ok((start, end))
    });
    let (start, end) = match times {
        Ok(t) => t,
        Err(message) => {
            eprintln!("\n{message}");
            return Ok(ExitCode::from(255));
        }
    };
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = client_runtime()?;
    let online = args.local_dir.is_none();
    let (source, region): (
        Box<dyn cairn_digest::validate::ValidationSource + Send>,
        String,
    ) = match (&args.local_dir, &args.public_keys) {
        (Some(dir), Some(keys)) => {
            let source = cairn_client::validate::LocalDirSource::open(
                dir,
                args.s3_bucket.as_deref(),
                args.s3_prefix.as_deref(),
                args.account_id.as_deref(),
                keys,
            )?;
            let region = args
                .api
                .region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| {
                    args.trail_arn
                        .split(':')
                        .nth(3)
                        .unwrap_or_default()
                        .to_owned()
                });
            (Box::new(source), region)
        }
        _ => {
            let endpoints = cairn_client::validate::resolve_validate_endpoints(
                args.api.endpoint_url.as_deref(),
                args.api.profile.as_deref(),
                args.api.region.as_deref(),
                &args.api.data_dir,
            )
            .context("finding the server and credentials")?;
            let region = endpoints.cloudtrail.region.clone();
            let source =
                cairn_client::validate::OnlineSource::new(endpoints, runtime.handle().clone())?;
            (Box::new(source), region)
        }
    };
    let options = ValidateOptions {
        trail_arn: args.trail_arn.clone(),
        start,
        end,
        // Offline, the directory names the bucket; the walk must not skip organization detection.
        s3_bucket: if online { args.s3_bucket.clone() } else { None },
        s3_prefix: args.s3_prefix.clone(),
        account_id: args.account_id.clone(),
        source_region: region,
        threads: args
            .threads
            .unwrap_or(if online { (cores * 4).max(8) } else { cores })
            .max(1),
        chain_checks: !args.no_chain_checks,
    };
    let progress = ValidationBar(progress_bar(args.no_progress, "log files"));
    // The walk blocks; the runtime only carries its HTTP requests.
    let report = std::thread::scope(|scope| {
        scope
            .spawn(|| validate(source.as_ref(), &options, &progress))
            .join()
    })
    .map_err(|_| anyhow::anyhow!("the validation thread panicked"))?;
    progress.0.finish_and_clear();
    runtime.shutdown_background();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    match args.output {
        OutputFormat::Text => {
            report.write_text(args.verbose, &mut stdout.lock(), &mut stderr.lock())?;
        }
        OutputFormat::Json => {
            use std::io::Write as _;
            let mut out = stdout.lock();
            serde_json::to_writer_pretty(&mut out, &report.to_json())?;
            writeln!(out)?;
        }
    }
    Ok(ExitCode::from(report.exit_code().clamp(0, 255) as u8))
}
