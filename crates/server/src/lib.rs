//! Cairn's HTTP edge.
//!
//! One listener serves every AWS service Cairn speaks. A request goes
//! HTTP → SigV4 → codec → operation table → service:
//!
//! 1. SigV4 ([`cairn_auth`]) names the service (the credential scope's signing
//!    name) and the region; the configured region is only the default.
//! 2. The service's protocol (from [`protocol::AWS_SERVICES`], generated from
//!    botocore) picks the [`protocol::Codec`] that decodes the request and
//!    encodes its answer or error.
//! 3. The row of [`operations::OPERATIONS`] for the decoded operation gives
//!    its IAM action, resources and handler; a [`services`] module does the work.
//!
//! A request for a service Cairn does not serve is answered in that
//! service's own protocol, naming it; an unknown operation of a served one
//! gets its protocol's unknown-operation error. Only `GET /health` and
//! `GET /metrics` are unauthenticated. Errors are mapped to AWS error codes
//! once, in [`error`].

pub mod config;
pub mod credentials;
pub mod data_dir;
pub mod doctor;
pub mod error;
pub mod handlers;
pub mod listener;
mod metrics;
pub mod monitoring;
pub mod operations;
pub mod protocol;
pub mod services;
mod sns_links;
pub mod state;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use cairn_auth::{RequestParts, SignatureLocation};
use cairn_meta::Metastore;
use cairn_pipeline::{DeliverySettings, IngestConfig, Organization, Pipeline, PipelineConfig};
use cairn_store::{BucketStore, StoreConfig};

use crate::config::ServerConfig;
use crate::credentials::RootCredentials;
use crate::error::{AwsError, UNKNOWN_OPERATION};
use crate::operations::Call;
use crate::protocol::Codec;
use crate::state::{
    AppState, OrganizationSettings, Principal, Principals, RequestContext, SecretKey, Settings,
};

/// The largest request body read from the network (ingest bodies are 5 MiB;
/// the rest is headroom for gzip framing and JSON APIs).
const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

/// A failure to start the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The metastore would not open.
    #[error("metastore: {0}")]
    Meta(#[from] cairn_meta::Error),
    /// The monitoring store would not open.
    #[error("monitoring store: {0}")]
    Monitor(#[from] cairn_monitor::Error),
    /// The event history would not open.
    #[error("event history: {0}")]
    History(#[from] cairn_history::Error),
    /// Stored documents of the monitoring store do not decode.
    #[error(
        "the monitoring store {MONITOR_FILE} is damaged:\n{}\n`cairn doctor` lists every damaged row",
        .0.join("\n")
    )]
    MonitorDamaged(Vec<String>),
    /// The object store would not open.
    #[error("object store: {0}")]
    Store(#[from] cairn_store::Error),
    /// The pipeline would not start.
    #[error("pipeline: {0}")]
    Pipeline(#[from] cairn_pipeline::Error),
    /// Local I/O failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The notification signing key or certificate could not be made.
    #[error("notifications: {0}")]
    Notifications(String),
    /// Another server uses the data dir.
    #[error(transparent)]
    DataDirInUse(#[from] data_dir::LockError),
}

impl StartError {
    /// Whether start-up stopped on damaged files that `cairn doctor` can
    /// verify (and, for the WAL, salvage).
    pub fn is_damage(&self) -> bool {
        match self {
            StartError::Pipeline(cairn_pipeline::Error::Wal(cairn_wal::Error::Corruption {
                ..
            })) => true,
            StartError::Meta(e) | StartError::Pipeline(cairn_pipeline::Error::Meta(e)) => {
                e.is_damage()
            }
            StartError::MonitorDamaged(_) => true,
            StartError::Monitor(e) => e.is_damage(),
            _ => false,
        }
    }

    /// The damaged file when its own error does not name it: the metastore
    /// (`meta.sqlite` in the data dir). A damaged WAL segment's error names
    /// the segment.
    pub fn damaged_file(&self, data_dir: &std::path::Path) -> Option<std::path::PathBuf> {
        match self {
            StartError::Meta(e) | StartError::Pipeline(cairn_pipeline::Error::Meta(e))
                if e.is_damage() =>
            {
                Some(data_dir.join(META_FILE))
            }
            StartError::MonitorDamaged(_) => Some(data_dir.join(MONITOR_FILE)),
            StartError::Monitor(e) if e.is_damage() => Some(data_dir.join(MONITOR_FILE)),
            _ => None,
        }
    }
}

/// The metastore's file in the data dir.
pub const META_FILE: &str = "meta.sqlite";

/// The monitoring store's file in the data dir (log groups, log events,
/// metric filters, metrics).
pub const MONITOR_FILE: &str = "monitor.sqlite";

/// The event history's file in the data dir (LookupEvents).
pub const HISTORY_FILE: &str = "history.sqlite";

/// How long metric samples are kept (CloudWatch's 15 months).
const METRIC_RETENTION_MS: i64 = 455 * 86_400_000;

/// How often log events past their group's retention are removed.
const RETENTION_SWEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes log events past their group's retention and metric samples past
/// 15 months every minute, on the
/// blocking pool, for as long as the runtime runs.
fn spawn_retention(monitor: Arc<cairn_monitor::Monitor>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RETENTION_SWEEP);
        loop {
            tick.tick().await;
            let monitor = monitor.clone();
            let swept = tokio::task::spawn_blocking(move || {
                let now = chrono::Utc::now().timestamp_millis();
                // CloudWatch keeps datapoints 15 months.
                monitor.expire_metric_samples(now - METRIC_RETENTION_MS)?;
                monitor.expire_log_events(now)
            })
            .await;
            match swept {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(events = n, "removed log events past their retention"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot remove log events past their retention")
                }
                Err(e) => tracing::warn!(error = %e, "the retention sweep failed"),
            }
        }
    });
}

/// A started server: state plus the pipeline to stop.
#[derive(Debug)]
pub struct Server {
    /// Shared state.
    pub state: AppState,
    /// Held while the server runs: one server per data dir.
    _lock: data_dir::DataDirLock,
}

impl Server {
    /// Opens the metastore, the store and the pipeline.
    pub fn start(config: &ServerConfig, root: &RootCredentials) -> Result<Self, StartError> {
        std::fs::create_dir_all(&config.data_dir)?;
        // Before anything in the data dir is opened.
        let lock = data_dir::DataDirLock::acquire(&config.data_dir)?;
        let meta = Arc::new(Metastore::open(&config.data_dir.join(META_FILE))?);
        let monitor = Arc::new(cairn_monitor::Monitor::open(
            &config.data_dir.join(MONITOR_FILE),
        )?);
        // A damaged alarm, topic or filter would fail quietly later, in the
        // evaluator or the delivery loop: refuse to start instead.
        let damaged = monitor.damaged_documents()?;
        if !damaged.is_empty() {
            return Err(StartError::MonitorDamaged(damaged));
        }
        let store = match &config.storage_url {
            Some(url) => BucketStore::open(&StoreConfig {
                url: url.clone(),
                options: config.storage_options.clone(),
            })?,
            None => BucketStore::local(&config.data_dir.join("objects"))?,
        };
        let organization = config.organization.as_ref().map(|o| OrganizationSettings {
            id: o.id.clone(),
            management_account: o.management_account.clone(),
            member_accounts: o.member_accounts.clone(),
        });
        let org_accounts = organization
            .as_ref()
            .map(|o| o.all_accounts())
            .unwrap_or_default();
        let history = if config.history_enabled {
            Some(Arc::new(cairn_history::History::open(
                &config.data_dir.join(HISTORY_FILE),
            )?))
        } else {
            None
        };
        let pipeline = Pipeline::start(
            PipelineConfig {
                data_dir: config.data_dir.clone(),
                wal_max_disk_bytes: config.wal_max_disk_bytes,
                wal_segment_bytes: config.wal_segment_bytes,
                dedup_window: config.dedup_window,
                dedup_max_entries: config.dedup_max_entries,
                ingest: IngestConfig {
                    account_id: config.account_id.clone(),
                    region: config.region.clone(),
                    organization_accounts: org_accounts.iter().cloned().collect(),
                },
                delivery: DeliverySettings {
                    interval: config.delivery_interval,
                    max_batch_bytes: config.max_batch_bytes,
                    gzip_level: config.gzip_level,
                    digest_interval: config.digest_interval,
                    ..DeliverySettings::default()
                },
                key_rotation: config.digest_key_rotation,
                organization: Organization {
                    id: organization.as_ref().map(|o| o.id.clone()),
                    accounts: org_accounts,
                },
            },
            meta.clone(),
            monitor.clone(),
            history.clone(),
            store.clone(),
            tokio::runtime::Handle::current(),
        )?;
        spawn_retention(monitor.clone());
        let public_url = config
            .notifications
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen));
        for root in &config.notifications.file_roots {
            std::fs::create_dir_all(root)?;
        }
        let monitoring = monitoring::Monitoring::open(
            monitor.clone(),
            &config.data_dir.join("sns-keys"),
            public_url,
            config.notifications.file_roots.clone(),
            Arc::new(monitoring::SystemClock),
        )
        .map_err(|e| StartError::Notifications(e.to_string()))?;
        monitoring.spawn();
        {
            let monitoring = monitoring.clone();
            pipeline.on_samples_arrived(Arc::new(move |metrics| {
                monitoring.samples_arrived(metrics);
            }));
        }
        {
            let monitoring = monitoring.clone();
            let meta = meta.clone();
            pipeline.on_log_files_delivered(Arc::new(move |trail, bucket, keys| {
                monitoring::notify_log_files(&monitoring, &meta, trail, bucket, keys);
            }));
        }
        let mut principals = HashMap::new();
        principals.insert(
            root.access_key_id.clone(),
            Principal {
                account_id: config.account_id.clone(),
                arn: format!("arn:aws:iam::{}:root", config.account_id),
                secret: SecretKey(root.secret_access_key.clone()),
            },
        );
        Ok(Self {
            state: AppState {
                settings: Arc::new(Settings {
                    account_id: config.account_id.clone(),
                    region: config.region.clone(),
                    organization,
                }),
                meta,
                monitor,
                monitoring,
                history,
                athena: None,
                store,
                data_dir: Arc::new(config.data_dir.clone()),
                pipeline,
                principals: Arc::new(Principals(principals)),
                body_budget: Arc::new(tokio::sync::Semaphore::new(
                    usize::try_from(config.limits.max_buffered_body_bytes)
                        .unwrap_or(usize::MAX)
                        .min(tokio::sync::Semaphore::MAX_PERMITS),
                )),
                limits: Arc::new(config.limits.clone()),
                connections: Arc::default(),
            },
            _lock: lock,
        })
    }

    /// Serves Athena with `engine` (the binary's; the server does not build
    /// one), each statement bounded by `timeout`.
    pub fn with_sql_engine(
        mut self,
        engine: Arc<dyn cairn_catalog::SqlEngine>,
        timeout: std::time::Duration,
    ) -> Self {
        self.state.athena = Some(Arc::new(services::athena::Athena::new(engine, timeout)));
        self
    }

    /// The HTTP application.
    pub fn app(&self) -> Router {
        app(self.state.clone())
    }

    /// Serves on a bound listener until `shutdown` resolves, then stops the pipeline.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if self.state.athena.is_some() {
            services::lake::spawn_compaction(self.state.clone());
        }
        let limits = self.state.limits.clone();
        let counters = self.state.connections.clone();
        listener::serve_with_limits(listener, self.app(), &limits, counters, shutdown).await;
        let result: std::io::Result<()> = Ok(());
        let pipeline = self.state.pipeline.clone();
        tokio::task::spawn_blocking(move || pipeline.shutdown())
            .await
            .map_err(std::io::Error::other)?;
        result
    }
}

/// Builds the router: health and metrics, everything else through SigV4 dispatch.
pub fn app(state: AppState) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

async fn dispatch(State(state): State<AppState>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    if parts.method == Method::GET && parts.uri.path() == "/health" {
        // Red when ingest cannot work, so a supervisor or load balancer acts
        // instead of clients meeting errors behind a green check.
        return match state.pipeline.health_problem() {
            None => (StatusCode::OK, "ok\n").into_response(),
            Some(problem) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("unhealthy: {problem}\n"),
            )
                .into_response(),
        };
    }
    if parts.method == Method::GET && parts.uri.path() == "/metrics" {
        return metrics::render(&state);
    }
    if let Some(response) = sns_links::answer(&state, &parts).await {
        return response;
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let head = parts.method == Method::HEAD;
    let resource = parts.uri.path().to_owned();
    let mut codec = Codec::guess(&parts);
    let fail =
        |codec: Codec, e: AwsError| codec.encode_error(&e, &request_id, Some(&resource), head);
    // Who signed is known from the headers alone: a request from an unknown
    // key or with a malformed signature is refused before its body is read.
    let (signer, principal) = match identify(&state, &parts, &mut codec) {
        Ok(found) => found,
        Err(e) => return fail(codec, e),
    };
    // S3 object uploads (PutObject, UploadPart) may carry more than the default.
    let s3_upload_limit = matches!(codec, Codec::S3)
        .then(|| handlers::s3::max_request_bytes(&parts.method, parts.uri.path()))
        .flatten();
    let limit = s3_upload_limit.unwrap_or(MAX_REQUEST_BYTES);
    // Held until the response is made: the body stays in memory that long.
    let (body, _budget) =
        match read_body(&state, &parts, body, limit, s3_upload_limit.is_some()).await {
            Ok(read) => read,
            Err(e) => return fail(codec, e),
        };
    let ctx = match verify(
        &state,
        &parts,
        &body,
        &signer,
        &principal,
        &request_id,
        codec,
    ) {
        Ok(ctx) => ctx,
        Err(e) => return fail(codec, e),
    };
    if !operations::serves(&ctx.service) {
        return fail(codec, not_served(&ctx.service, &parts));
    }
    let decoded = match codec.decode(parts, body) {
        Ok(d) => d,
        Err(e) => return fail(codec, e),
    };
    let Some(operation) =
        operations::find(&ctx.service, decoded.operation.as_deref(), &decoded.input)
    else {
        return fail(
            codec,
            unknown_operation(codec, &ctx.service, decoded.operation.as_deref()),
        );
    };
    tracing::debug!(
        service = operation.service,
        operation = operation.name,
        action = operation.action,
        resources = ?(operation.resources)(&ctx, &decoded.input),
        "dispatching"
    );
    let call = Call {
        state: state.clone(),
        ctx,
        input: decoded.input,
    };
    match (operation.handler)(call).await {
        Ok(output) => codec.encode_output(operation.name, output, &request_id),
        Err(e) => fail(codec, e),
    }
}

/// Reads a request body of at most `limit` bytes within the body deadline,
/// after reserving its bytes in the budget shared by all connections (so
/// many slow uploads cannot together exhaust memory). The reservation is
/// returned with the bytes and released when dropped.
async fn read_body(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: Body,
    limit: usize,
    s3_upload: bool,
) -> Result<(bytes::Bytes, tokio::sync::OwnedSemaphorePermit), AwsError> {
    let too_large = || {
        if s3_upload {
            AwsError::client(
                "EntityTooLarge",
                format!("Your proposed upload exceeds the maximum allowed size ({limit} bytes)."),
            )
        } else {
            AwsError::with_status(
                "RequestEntityTooLargeException",
                format!("The request body exceeds {limit} bytes."),
                StatusCode::PAYLOAD_TOO_LARGE,
            )
        }
    };
    // The declared length, as far as the limit: what is reserved and
    // allocated up front.
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|n| usize::try_from(n).unwrap_or(limit).min(limit));
    // Without a length (chunked), reserve the most the body may be. A body
    // declared larger than the limit is still read (see `DRAIN_AFTER_REFUSAL`)
    // before the refusal.
    let reserve = u32::try_from(declared.unwrap_or(limit).max(1)).unwrap_or(u32::MAX);
    let permit = Arc::clone(&state.body_budget)
        .try_acquire_many_owned(reserve)
        .map_err(|_| {
            AwsError::with_status(
                "ServiceUnavailable",
                "The server is receiving as many request bodies as it may at once; retry.",
                StatusCode::SERVICE_UNAVAILABLE,
            )
        })?;
    let read = tokio::time::timeout(
        state.limits.body_read_timeout,
        read_within(body, limit, declared.unwrap_or(0)),
    )
    .await
    .map_err(|_| {
        AwsError::with_status(
            "RequestTimeout",
            "Your socket connection to the server was not read from or written to within the timeout period.",
            StatusCode::REQUEST_TIMEOUT,
        )
    })?;
    match read {
        BodyRead::Whole(bytes) => Ok((bytes, permit)),
        BodyRead::TooLarge => Err(too_large()),
        // Malformed chunked encoding, a connection cut mid-body: the
        // request itself is bad, not too large.
        BodyRead::Failed => Err(AwsError::client(
            "IncompleteBody",
            "The request body could not be read: it is incomplete or its chunked encoding is malformed.",
        )),
    }
}

/// How much of a refused body is still read, and thrown away, before the
/// refusal is answered.
///
/// Why: a client that sends its whole body before reading the answer (most
/// do; urllib, botocore) is still sending when the refusal is ready. Had the
/// server closed the connection with the rest unread, its kernel would reset
/// it and the client would see a broken pipe instead of the error; HTTP
/// servers read on for a while after an error for the same reason. Bounded,
/// so a client declaring an endless body costs this much and no more.
const DRAIN_AFTER_REFUSAL: usize = 32 * 1024 * 1024;

/// What reading a request body came to.
enum BodyRead {
    /// The body, whole and within the limit.
    Whole(bytes::Bytes),
    /// Longer than the limit (what followed was drained, see
    /// [`DRAIN_AFTER_REFUSAL`]).
    TooLarge,
    /// Cut off or malformed.
    Failed,
}

/// Reads `body` if it is at most `limit` bytes, with room for `expected`
/// bytes made at once.
async fn read_within(mut body: Body, limit: usize, expected: usize) -> BodyRead {
    use http_body_util::BodyExt;
    let mut whole = bytes::BytesMut::with_capacity(expected);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return BodyRead::Failed;
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if whole.len() + data.len() > limit {
            drop(whole);
            let mut drained = data.len();
            while drained < DRAIN_AFTER_REFUSAL {
                match body.frame().await {
                    Some(Ok(frame)) => drained += frame.data_ref().map_or(0, |d| d.len()),
                    _ => break,
                }
            }
            return BodyRead::TooLarge;
        }
        whole.extend_from_slice(&data);
    }
    BodyRead::Whole(whole.freeze())
}

/// A credential scope whose region is not a region name, as AWS words it per protocol.
fn invalid_scope_region(codec: Codec, region: &str) -> AwsError {
    let message = format!("Credential should be scoped to a valid region, not '{region}'.");
    match codec {
        Codec::S3 | Codec::RestXml { .. } => AwsError::client(
            "AuthorizationHeaderMalformed",
            format!("The authorization header is malformed; the region '{region}' is wrong."),
        ),
        Codec::Query { .. } | Codec::Ec2 => {
            AwsError::with_status("SignatureDoesNotMatch", message, StatusCode::FORBIDDEN)
        }
        Codec::Json { .. } | Codec::RestJson => {
            AwsError::client("InvalidSignatureException", message)
        }
    }
}

/// The error for a service Cairn does not serve, naming it.
fn not_served(signing_name: &str, parts: &axum::http::request::Parts) -> AwsError {
    let named = protocol::aws_service(signing_name, &parts.headers)
        .map(|s| format!("{} ({})", s.full_name, s.service_name))
        .unwrap_or_else(|| format!("the service {signing_name:?}"));
    let served = operations::served_services().join(", ");
    AwsError::client(
        UNKNOWN_OPERATION,
        format!("Cairn does not serve {named}. It serves: {served}."),
    )
}

/// The error for an operation a served service does not have, in its protocol's terms.
fn unknown_operation(codec: Codec, service: &str, operation: Option<&str>) -> AwsError {
    match (codec, operation) {
        (Codec::S3, _) => AwsError::with_status(
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (_, Some(op)) => AwsError::client(
            UNKNOWN_OPERATION,
            format!("Cairn does not serve the operation {op} of {service}."),
        ),
        (Codec::Query { .. }, None) => AwsError::client(
            "MissingAction",
            "The request must contain the parameter Action.",
        ),
        (_, None) => AwsError::client(
            UNKNOWN_OPERATION,
            format!("The request names no operation of {service} that Cairn serves."),
        ),
    }
}

/// The request's signature as its headers (or query) state it, and the
/// principal whose key signed it. Once the signature names its service,
/// `codec` becomes that service's, so even a refusal is answered in the
/// service's own protocol.
fn identify(
    state: &AppState,
    parts: &axum::http::request::Parts,
    codec: &mut Codec,
) -> Result<(Signer, Principal), AwsError> {
    let headers = text_headers(parts);
    let request = request_parts(parts, &headers);
    // S3's SigV2 query-string URLs (`aws s3 presign`): GET and HEAD only.
    if let Some(sigv2) = cairn_auth::parse_sigv2_query(request.raw_query) {
        *codec = Codec::S3;
        if parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            return Err(auth_error(
                Codec::S3,
                cairn_auth::AuthError::MultipleMechanisms,
            ));
        }
        let query = sigv2.map_err(|e| auth_error(Codec::S3, e))?;
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return Err(AwsError::client(
                "InvalidRequest",
                "Signature Version 2 query-string authentication is accepted for GET and HEAD only; \
                 sign other requests with AWS4-HMAC-SHA256.",
            ));
        }
        let principal = state
            .principals
            .get(&query.access_key_id)
            .cloned()
            .ok_or_else(|| {
                auth_error(
                    Codec::S3,
                    cairn_auth::AuthError::UnknownAccessKey {
                        access_key_id: query.access_key_id.clone(),
                    },
                )
            })?;
        return Ok((Signer::V2(query), principal));
    }
    let parsed = cairn_auth::parse(&request).map_err(|e| auth_error(*codec, e))?;
    if let Some(service) = protocol::aws_service(&parsed.scope.service, &parts.headers) {
        *codec = Codec::for_request(service, &parts.headers);
    } else if parsed.location == SignatureLocation::Query {
        *codec = Codec::S3;
    }
    let codec = *codec;
    // The scope's region names keyring directories and ARNs: it must be a region name.
    if !parsed.scope.region.is_empty() && cairn_model::Region::new(&parsed.scope.region).is_err() {
        return Err(invalid_scope_region(codec, &parsed.scope.region));
    }
    let principal = state
        .principals
        .get(&parsed.scope.access_key_id)
        .cloned()
        .ok_or_else(|| {
            auth_error(
                codec,
                cairn_auth::AuthError::UnknownAccessKey {
                    access_key_id: parsed.scope.access_key_id.clone(),
                },
            )
        })?;
    Ok((Signer::V4(Box::new(parsed)), principal))
}

/// How a request was signed.
enum Signer {
    /// SigV4, in the headers or the query string.
    V4(Box<cairn_auth::ParsedSignature>),
    /// S3's SigV2 query-string form.
    V2(cairn_auth::SigV2Query),
}

fn request_parts<'a>(
    parts: &'a axum::http::request::Parts,
    headers: &'a [(&'a str, &'a str)],
) -> RequestParts<'a> {
    RequestParts {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        headers,
    }
}

/// The request's headers whose values are text, as SigV4 reads them.
fn text_headers(parts: &axum::http::request::Parts) -> Vec<(&str, &str)> {
    parts
        .headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
        .collect()
}

/// A SigV4 refusal in the terms of the request's protocol.
fn auth_error(codec: Codec, e: cairn_auth::AuthError) -> AwsError {
    match codec {
        Codec::S3 | Codec::RestXml { .. } | Codec::Query { .. } | Codec::Ec2 => {
            let (code, status, message) = if matches!(codec, Codec::S3 | Codec::RestXml { .. }) {
                e.s3_error()
            } else {
                e.query_error()
            };
            AwsError::with_status(
                code,
                message,
                StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
            )
        }
        Codec::Json { .. } | Codec::RestJson => {
            let (code, message) = e.json_error();
            AwsError::with_status(
                code,
                message,
                StatusCode::from_u16(e.json_status()).unwrap_or(StatusCode::BAD_REQUEST),
            )
        }
    }
}

/// Verifies the signature over the whole request, body included.
fn verify(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: &[u8],
    signer: &Signer,
    principal: &Principal,
    request_id: &str,
    codec: Codec,
) -> Result<RequestContext, AwsError> {
    let headers = text_headers(parts);
    let request = request_parts(parts, &headers);
    let parsed = match signer {
        Signer::V4(parsed) => parsed,
        Signer::V2(query) => {
            cairn_auth::verify_sigv2(&request, query, &principal.secret.0, chrono::Utc::now())
                .map_err(|e| {
                    tracing::info!(access_key_id = %query.access_key_id, error = %e, "sigv2 signature rejected");
                    auth_error(Codec::S3, e)
                })?;
            return Ok(RequestContext {
                service: "s3".to_owned(),
                region: state.settings.region.clone(),
                access_key_id: query.access_key_id.clone(),
                account_id: principal.account_id.clone(),
                principal_arn: principal.arn.clone(),
                request_id: request_id.to_owned(),
            });
        }
    };
    // Hash the body only when the signature can depend on it (not for
    // unsigned or presigned-S3 payloads).
    let body_hash = if parsed.needs_body_hash() {
        hex::encode(Sha256::digest(body))
    } else {
        String::new()
    };
    cairn_auth::verify(&request, parsed, &principal.secret.0, &body_hash, chrono::Utc::now()).map_err(|e| {
        tracing::info!(access_key_id = %parsed.scope.access_key_id, error = %e, "signature rejected");
        auth_error(codec, e)
    })?;
    // The scope's region is the request's region; the configured one is only
    // the default for a client that names none.
    let region = if parsed.scope.region.is_empty() {
        state.settings.region.clone()
    } else {
        parsed.scope.region.clone()
    };
    Ok(RequestContext {
        service: parsed.scope.service.clone(),
        region,
        access_key_id: parsed.scope.access_key_id.clone(),
        account_id: principal.account_id.clone(),
        principal_arn: principal.arn.clone(),
        request_id: request_id.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body arriving in `chunks` pieces of `size` bytes.
    fn body_of(chunks: usize, size: usize) -> Body {
        let pieces = (0..chunks).map(move |i| {
            Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'a' + (i % 26) as u8; size]))
        });
        Body::from_stream(futures::stream::iter(pieces))
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let BodyRead::Whole(bytes) = read_within(body_of(4, 1000), 4000, 4000).await else {
            panic!("not read whole");
        };
        assert_eq!(bytes.len(), 4000);
        assert_eq!(&bytes[..1], b"a");
        assert_eq!(&bytes[3999..], b"d");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_after_reading_on() {
        // The stream counts what is taken from it: everything, though the
        // limit was passed at the second piece.
        let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&taken);
        let pieces = (0..40).map(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0u8; 1000]))
        });
        let body = Body::from_stream(futures::stream::iter(pieces));
        assert!(matches!(
            read_within(body, 1500, 0).await,
            BodyRead::TooLarge
        ));
        assert_eq!(taken.load(std::sync::atomic::Ordering::Relaxed), 40);
    }

    #[tokio::test]
    async fn reading_on_after_a_refusal_is_bounded() {
        let piece = 1024 * 1024;
        let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&taken);
        // Endless.
        let pieces = std::iter::repeat_with(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0u8; piece]))
        });
        let body = Body::from_stream(futures::stream::iter(pieces));
        assert!(matches!(
            read_within(body, piece, 0).await,
            BodyRead::TooLarge
        ));
        let read = taken.load(std::sync::atomic::Ordering::Relaxed) * piece;
        assert!(read <= DRAIN_AFTER_REFUSAL + 2 * piece, "{read}");
    }

    #[tokio::test]
    async fn a_broken_body_is_not_taken_for_a_large_one() {
        let pieces = vec![
            Ok(bytes::Bytes::from_static(b"abc")),
            Err(std::io::Error::other("cut")),
        ];
        let body = Body::from_stream(futures::stream::iter(pieces));
        assert!(matches!(read_within(body, 10, 0).await, BodyRead::Failed));
    }
}
