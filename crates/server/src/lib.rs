//! Cairn's HTTP edge.
//!
//! One listener serves every AWS service Cairn speaks. Each request is
//! authenticated with SigV4 and routed by its credential scope's service name:
//!
//! | service           | protocol                          | handler                 |
//! |-------------------|-----------------------------------|-------------------------|
//! | `cloudtrail`      | JSON 1.1, `X-Amz-Target`          | [`handlers::cloudtrail`] |
//! | `cloudtrail-data` | REST-JSON, `POST /cairn/v1/records` | [`handlers::ingest`]   |
//! | `s3`              | REST-XML, path-style              | [`handlers::s3`]        |
//! | `organizations`   | JSON 1.1, `X-Amz-Target`          | [`handlers::organizations`] (DescribeOrganization) |
//!
//! Only `GET /health` and `GET /metrics` are unauthenticated. Errors are
//! mapped to AWS error codes once, in [`error`].

pub mod config;
pub mod credentials;
pub mod error;
pub mod handlers;
mod metrics;
pub mod state;

use std::collections::HashMap;
use std::net::SocketAddr;
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
use crate::error::AwsError;
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
    /// The object store would not open.
    #[error("object store: {0}")]
    Store(#[from] cairn_store::Error),
    /// The pipeline would not start.
    #[error("pipeline: {0}")]
    Pipeline(#[from] cairn_pipeline::Error),
    /// Local I/O failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A started server: state plus the pipeline to stop.
#[derive(Debug)]
pub struct Server {
    /// Shared state.
    pub state: AppState,
}

impl Server {
    /// Opens the metastore, the store and the pipeline.
    pub fn start(config: &ServerConfig, root: &RootCredentials) -> Result<Self, StartError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let meta = Arc::new(Metastore::open(&config.data_dir.join("meta.sqlite"))?);
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
            store.clone(),
            tokio::runtime::Handle::current(),
        )?;
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
                store,
                pipeline,
                principals: Arc::new(Principals(principals)),
            },
        })
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
        let app = self
            .app()
            .into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
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

fn guess_is_json(parts: &axum::http::request::Parts) -> bool {
    parts.headers.contains_key("x-amz-target") || parts.uri.path() == handlers::ingest::INGEST_PATH
}

async fn dispatch(State(state): State<AppState>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    if parts.method == Method::GET && path == "/health" {
        return (StatusCode::OK, "ok\n").into_response();
    }
    if parts.method == Method::GET && path == "/metrics" {
        return metrics::render(&state);
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let json = guess_is_json(&parts);
    let fail = |e: AwsError| {
        if json {
            e.into_json_response(&request_id)
        } else {
            e.into_s3_response(&request_id, Some(parts.uri.path()))
        }
    };
    // S3 object uploads (PutObject, UploadPart) may carry more than the default.
    let limit = handlers::s3::max_request_bytes(&parts.method, path)
        .filter(|_| !json)
        .unwrap_or(MAX_REQUEST_BYTES);
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) if limit != MAX_REQUEST_BYTES => {
            return fail(AwsError::client(
                "EntityTooLarge",
                format!("Your proposed upload exceeds the maximum allowed size ({limit} bytes)."),
            ));
        }
        Err(_) => {
            return fail(AwsError::with_status(
                "RequestEntityTooLargeException",
                format!("The request body exceeds {MAX_REQUEST_BYTES} bytes."),
                StatusCode::PAYLOAD_TOO_LARGE,
            ));
        }
    };

    let ctx = match authenticate(&state, &parts, &body, &request_id) {
        Ok(ctx) => ctx,
        Err(e) => return fail(e),
    };
    match ctx.service.as_str() {
        "cloudtrail" => {
            let target = parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok());
            handlers::cloudtrail::handle(&state, &ctx, target, &body).await
        }
        "cloudtrail-data"
            if path == handlers::ingest::INGEST_PATH && parts.method == Method::POST =>
        {
            handlers::ingest::handle(&state, &ctx, &parts.headers, &body).await
        }
        "s3" => handlers::s3::handle(&state, &ctx, &parts, body).await,
        "organizations" => {
            let target = parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok());
            handlers::organizations::handle(&state, &ctx, target)
        }
        other => fail(AwsError::client(
            "UnknownOperationException",
            format!(
                "This server does not serve {other} {} {path}.",
                parts.method
            ),
        )),
    }
}

/// Verifies the request's SigV4 signature against the known principals.
fn authenticate(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: &[u8],
    request_id: &str,
) -> Result<RequestContext, AwsError> {
    let s3_style = !guess_is_json(parts);
    let to_aws = |e: cairn_auth::AuthError| {
        if s3_style {
            let (code, status, message) = e.s3_error();
            AwsError::with_status(
                code,
                message,
                StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
            )
        } else {
            let (code, message) = e.json_error();
            AwsError::client(code, message)
        }
    };
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
        .collect();
    let raw_query = parts.uri.query().unwrap_or("");
    let request = RequestParts {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query,
        headers: &headers,
    };
    if let Some(sigv2) = cairn_auth::parse_sigv2_query(raw_query) {
        if parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            return Err(to_aws(cairn_auth::AuthError::MultipleMechanisms));
        }
        return authenticate_sigv2(state, parts, &request, sigv2, request_id);
    }
    let parsed = cairn_auth::parse(&request).map_err(to_aws)?;
    let s3_style =
        parsed.scope.service == "s3" || (s3_style && parsed.location == SignatureLocation::Query);
    let principal = state
        .principals
        .get(&parsed.scope.access_key_id)
        .ok_or_else(|| {
            if s3_style {
                AwsError::with_status(
                    "InvalidAccessKeyId",
                    "The AWS Access Key Id you provided does not exist in our records.",
                    StatusCode::FORBIDDEN,
                )
            } else {
                AwsError::client(
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                )
            }
        })?;
    // Hash the body only when the signature can depend on it (not for
    // unsigned or presigned-S3 payloads).
    let body_hash = if parsed.needs_body_hash() {
        hex::encode(Sha256::digest(body))
    } else {
        String::new()
    };
    cairn_auth::verify(&request, &parsed, &principal.secret.0, &body_hash, chrono::Utc::now()).map_err(|e| {
        tracing::info!(access_key_id = %parsed.scope.access_key_id, error = %e, "signature rejected");
        to_aws(e)
    })?;
    Ok(RequestContext {
        service: parsed.scope.service.clone(),
        region: parsed.scope.region.clone(),
        access_key_id: parsed.scope.access_key_id.clone(),
        account_id: principal.account_id.clone(),
        principal_arn: principal.arn.clone(),
        request_id: request_id.to_owned(),
    })
}

/// Verifies an S3 SigV2 presigned URL (`AWSAccessKeyId`, `Expires`,
/// `Signature`), the AWS CLI's `s3 presign` default: GET and HEAD only, as
/// S3, in the configured region.
fn authenticate_sigv2(
    state: &AppState,
    parts: &axum::http::request::Parts,
    request: &RequestParts<'_>,
    sigv2: Result<cairn_auth::SigV2Query, cairn_auth::AuthError>,
    request_id: &str,
) -> Result<RequestContext, AwsError> {
    let to_aws = |e: cairn_auth::AuthError| {
        let (code, status, message) = e.s3_error();
        AwsError::with_status(
            code,
            message,
            StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
        )
    };
    let query = sigv2.map_err(to_aws)?;
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Err(AwsError::client(
            "InvalidRequest",
            "Signature Version 2 query-string authentication is accepted for GET and HEAD only; \
             sign other requests with AWS4-HMAC-SHA256.",
        ));
    }
    let principal = state.principals.get(&query.access_key_id).ok_or_else(|| {
        to_aws(cairn_auth::AuthError::UnknownAccessKey {
            access_key_id: query.access_key_id.clone(),
        })
    })?;
    cairn_auth::verify_sigv2(request, &query, &principal.secret.0, chrono::Utc::now()).map_err(
        |e| {
            tracing::info!(access_key_id = %query.access_key_id, error = %e, "sigv2 signature rejected");
            to_aws(e)
        },
    )?;
    Ok(RequestContext {
        service: "s3".to_owned(),
        region: state.settings.region.clone(),
        access_key_id: query.access_key_id.clone(),
        account_id: principal.account_id.clone(),
        principal_arn: principal.arn.clone(),
        request_id: request_id.to_owned(),
    })
}
