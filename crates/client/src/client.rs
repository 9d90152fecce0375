//! The SigV4-signed HTTP client for Cairn's native ingest endpoint.
//!
//! `POST {endpoint}/cairn/v1/records`, signed for service `cloudtrail-data`,
//! body `{"Records":[...]}` (optionally gzip). The answer is
//! `{"accepted": N, "failed": [{"index", "errorCode", "errorMessage"}]}`;
//! errors are AWS JSON errors `{"__type", "message"}`.
//!
//! Throttling (429, `ThrottlingException`), 5xx answers and transport
//! failures are retried with capped exponential backoff and jitter, for a
//! bounded number of attempts. Retrying is safe because the server drops
//! duplicates by `eventID`; records without an `eventID` get a new one per
//! attempt, so an ambiguous failure (a timeout after the server stored them)
//! can store them twice.

use std::borrow::Borrow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::batch::records_body;
use crate::config::ClientConfig;
use crate::error::{Error, Result, is_retryable_status, is_retryable_transport};

/// The path of the native ingest endpoint.
pub const INGEST_PATH: &str = "/cairn/v1/records";
/// The service name in the SigV4 credential scope.
pub const SIGNING_SERVICE: &str = "cloudtrail-data";
/// The largest response body read; ingest answers are far smaller.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// How failed requests are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The backoff before the second attempt; it doubles each time.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 8 attempts, 100 ms doubling to at most 10 s (about 25 s of waiting in all).
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` ("equal jitter": half fixed, half
    /// random, so waits still grow while clients spread out).
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let ceiling = exponential.min(self.max_delay);
        let half = ceiling / 2;
        let jitter_nanos =
            rand::rng().random_range(0..=half.as_nanos().min(u128::from(u64::MAX)) as u64);
        half + Duration::from_nanos(jitter_nanos)
    }
}

/// Transport settings of an [`IngestClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Send bodies gzip-compressed (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// Retries of throttled and failed requests.
    pub retry: RetryPolicy,
    /// The limit for one attempt, from connecting to the last byte of the answer.
    pub request_timeout: Duration,
    /// The limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Use `HTTP(S)_PROXY` from the environment (off by default: Cairn is
    /// usually local, and a proxy would see every record).
    pub use_env_proxy: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            gzip: false,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            use_env_proxy: false,
        }
    }
}

/// The server's answer to one ingest request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IngestResponse {
    /// Records accepted (stored, or duplicates of records already stored).
    pub accepted: u64,
    /// Records refused, by position in the request.
    #[serde(default)]
    pub failed: Vec<FailedRecord>,
}

/// One record the server refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedRecord {
    /// Position of the record in the request's `Records` array.
    pub index: usize,
    /// The error code, e.g. `FieldNotFound`, `InvalidRecipient`.
    pub error_code: String,
    /// The server's message.
    pub error_message: String,
}

#[derive(Deserialize)]
struct AwsErrorBody {
    #[serde(rename = "__type", default)]
    kind: Option<String>,
    #[serde(alias = "Message", default)]
    message: Option<String>,
}

/// A client for one server and one set of credentials; cheap to clone.
#[derive(Debug, Clone)]
pub struct IngestClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    url: reqwest::Url,
    /// The `Host` header exactly as sent (and signed).
    host: String,
    config: ClientConfig,
    options: ClientOptions,
}

impl IngestClient {
    /// A client with default [`ClientOptions`].
    pub fn new(config: ClientConfig) -> Result<Self> {
        Self::with_options(config, ClientOptions::default())
    }

    /// A client with the given transport settings.
    pub fn with_options(config: ClientConfig, options: ClientOptions) -> Result<Self> {
        if options.retry.max_attempts == 0 {
            return Err(Error::InvalidOption {
                name: "retry.max_attempts",
                reason: "must be at least 1".to_owned(),
            });
        }
        let endpoint = crate::config::normalize_endpoint(&config.endpoint)?;
        let invalid = |reason: String| Error::InvalidEndpoint {
            url: config.endpoint.clone(),
            reason,
        };
        let url = reqwest::Url::parse(&format!("{endpoint}{INGEST_PATH}"))
            .map_err(|e| invalid(e.to_string()))?;
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(invalid("there is no host".to_owned())),
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            // A redirect would replay a signed request somewhere else: never follow one.
            .redirect(reqwest::redirect::Policy::none());
        if !options.use_env_proxy {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| Error::InvalidOption {
            name: "client",
            reason: format!("cannot build the HTTP client: {e}"),
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                url,
                host,
                config,
                options,
            }),
        })
    }

    /// The configuration this client signs with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The full ingest URL.
    pub fn url(&self) -> &str {
        self.inner.url.as_str()
    }

    /// Sends records given as raw JSON (`&[&RawValue]` or `&[Box<RawValue>]`);
    /// their text is sent unchanged. At most 1000 records and 5 MiB of body
    /// are accepted by the server.
    pub async fn send_batch<R: Borrow<RawValue>>(&self, records: &[R]) -> Result<IngestResponse> {
        let texts: Vec<&str> = records.iter().map(|r| r.borrow().get()).collect();
        self.send_body(Bytes::from(records_body(&texts))).await
    }

    /// Sends a ready `{"Records":[...]}` body (uncompressed; the client
    /// compresses it when [`ClientOptions::gzip`] is set).
    pub async fn send_body(&self, body: Bytes) -> Result<IngestResponse> {
        let gzip = self.inner.options.gzip;
        // Compression and hashing of a 5 MiB body take milliseconds: keep them off the async workers.
        let (payload, payload_sha256) =
            tokio::task::spawn_blocking(move || -> std::io::Result<(Bytes, String)> {
                let payload = if gzip {
                    Bytes::from(gzip_bytes(&body)?)
                } else {
                    body
                };
                let hash = hex::encode(Sha256::digest(&payload));
                Ok((payload, hash))
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))?
            .map_err(|e| Error::Task(format!("compressing the body: {e}")))?;

        let policy = &self.inner.options.retry;
        let mut attempt = 1;
        loop {
            let outcome = self.attempt(&payload, &payload_sha256, attempt).await;
            match outcome {
                Ok(response) => return Ok(response),
                Err(Attempt::Retryable { error, retry_after }) if attempt < policy.max_attempts => {
                    let wait = policy
                        .backoff(attempt)
                        .max(retry_after.unwrap_or_default().min(policy.max_delay));
                    tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %error, "ingest request will be retried");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(Attempt::Retryable { error, .. } | Attempt::Final(error)) => return Err(error),
            }
        }
    }

    /// One signed attempt.
    async fn attempt(
        &self,
        payload: &Bytes,
        payload_sha256: &str,
        attempt: u32,
    ) -> Result<IngestResponse, Attempt> {
        let inner = &*self.inner;
        let config = &inner.config;
        let mut headers: Vec<(&str, &str)> =
            vec![("host", &inner.host), ("content-type", "application/json")];
        if inner.options.gzip {
            headers.push(("content-encoding", "gzip"));
        }
        // Signed anew each attempt: the server checks the signing time.
        let credentials = cairn_auth::Credentials {
            access_key_id: config.access_key_id.clone(),
            secret_access_key: config.secret_access_key.expose().into(),
            session_token: config.session_token.as_ref().map(|t| t.expose().to_owned()),
        };
        let parts = cairn_auth::RequestParts {
            method: "POST",
            raw_path: inner.url.path(),
            raw_query: "",
            headers: &headers,
        };
        let signed = cairn_auth::sign_request(
            &parts,
            cairn_auth::Payload::Sha256Hex(payload_sha256),
            &cairn_auth::SigningParams {
                credentials: &credentials,
                region: &config.region,
                service: SIGNING_SERVICE,
                time: chrono::Utc::now(),
            },
        )
        .map_err(|e| Attempt::Final(Error::Signing(e.to_string())))?
        .headers;
        let mut request = inner.http.post(inner.url.clone()).body(payload.clone());
        for (name, value) in headers
            .iter()
            .copied()
            .chain(signed.iter().map(|(k, v)| (*k, v.as_str())))
        {
            request = request.header(name, value);
        }
        let transport = |source: reqwest::Error| {
            let retryable = is_retryable_transport(&source);
            let error = Error::Transport {
                url: inner.url.to_string(),
                attempts: attempt,
                source,
            };
            if retryable {
                Attempt::Retryable {
                    error,
                    retry_after: None,
                }
            } else {
                Attempt::Final(error)
            }
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let request_id = header_text(response.headers(), "x-amzn-requestid");
        let error_type = header_text(response.headers(), "x-amzn-errortype");
        let retry_after = header_text(response.headers(), "retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Attempt::Final(Error::InvalidResponse {
                    url: inner.url.to_string(),
                    reason: format!("the response exceeds {MAX_RESPONSE_BYTES} bytes"),
                }));
            }
            body.extend_from_slice(&chunk);
        }

        if status.is_success() {
            return serde_json::from_slice::<IngestResponse>(&body).map_err(|e| {
                Attempt::Final(Error::InvalidResponse {
                    url: inner.url.to_string(),
                    reason: format!("HTTP {status} with a body that is not an ingest answer: {e}"),
                })
            });
        }
        let parsed: Option<AwsErrorBody> = serde_json::from_slice(&body).ok();
        let code = parsed
            .as_ref()
            .and_then(|b| b.kind.clone())
            .or(error_type)
            // `__type` may be namespaced (`com.amazonaws...#Code`) or carry a suffix (`Code:http://...`).
            .map(|t| {
                t.rsplit('#')
                    .next()
                    .unwrap_or(&t)
                    .split(':')
                    .next()
                    .unwrap_or(&t)
                    .to_owned()
            })
            .unwrap_or_else(|| format!("Http{}", status.as_u16()));
        let message = parsed
            .and_then(|b| b.message)
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
        let retryable = is_retryable_status(status.as_u16(), &code);
        let error = Error::Service {
            status: status.as_u16(),
            code,
            message,
            request_id,
            attempts: attempt,
        };
        Err(if retryable {
            Attempt::Retryable { error, retry_after }
        } else {
            Attempt::Final(error)
        })
    }
}

/// How one attempt failed.
enum Attempt {
    Retryable {
        error: Error,
        retry_after: Option<Duration>,
    },
    Final(Error),
}

fn header_text(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Gzip at level 1: JSON still shrinks several-fold, at a fraction of the CPU of level 6.
fn gzip_bytes(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body)?;
    encoder.finish()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Read;

    use super::*;
    use crate::config::{CredentialSource, Secret};
    use crate::testserver::{Reply, TestServer};

    pub(crate) fn config_for(endpoint: &str) -> ClientConfig {
        ClientConfig {
            endpoint: endpoint.to_owned(),
            region: "us-west-2".to_owned(),
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
            credential_source: CredentialSource::Environment,
        }
    }

    pub(crate) fn fast_options() -> ClientOptions {
        ClientOptions {
            retry: RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
            },
            request_timeout: Duration::from_secs(10),
            ..ClientOptions::default()
        }
    }

    /// A client for the test server with fast retries.
    pub(crate) fn client_for(server: &TestServer) -> IngestClient {
        IngestClient::with_options(config_for(&server.endpoint()), fast_options()).unwrap()
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[tokio::test]
    async fn test_throttling_is_retried_then_succeeds() {
        let server = TestServer::start(|n, _| {
            if n < 2 {
                Reply::json(429, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#)
            } else {
                Reply::json(200, r#"{"accepted":1,"failed":[{"index":1,"errorCode":"FieldNotFound","errorMessage":"Record is missing required field eventTime."}]}"#)
            }
        })
        .await;
        let client = client_for(&server);
        let records = [raw(r#"{"a" : 1.50E2}"#), raw(r#"{"b":2}"#)];
        let response = client.send_batch(&records).await.unwrap();
        assert_eq!(
            response,
            IngestResponse {
                accepted: 1,
                failed: vec![FailedRecord {
                    index: 1,
                    error_code: "FieldNotFound".into(),
                    error_message: "Record is missing required field eventTime.".into()
                }]
            }
        );
        let requests = server.requests();
        assert_eq!(requests.len(), 3);
        for r in &requests {
            assert_eq!(r.method, "POST");
            assert_eq!(r.path, INGEST_PATH);
            assert_eq!(r.body, br#"{"Records":[{"a" : 1.50E2},{"b":2}]}"#);
            r.verify_signature(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "us-west-2",
                SIGNING_SERVICE,
            );
        }
    }

    #[tokio::test]
    async fn test_throttling_gives_up_after_max_attempts() {
        let server = TestServer::start(|_, _| {
            Reply::json(
                429,
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            )
        })
        .await;
        let client = client_for(&server);
        let err = client.send_batch(&[raw("{}")]).await.unwrap_err();
        match &err {
            Error::Service {
                status,
                code,
                attempts,
                ..
            } => {
                assert_eq!(
                    (*status, code.as_str(), *attempts),
                    (429, "ThrottlingException", 4)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(err.is_retryable());
        assert_eq!(server.requests().len(), 4);
    }

    #[tokio::test]
    async fn test_client_errors_are_not_retried_and_are_parsed() {
        let server = TestServer::start(|_, _| {
            Reply::json(
                400,
                r#"{"__type":"com.amazonaws.cloudtraildata#UnrecognizedClientException","message":"The security token included in the request is invalid."}"#,
            )
            .header("x-amzn-RequestId", "req-123")
        })
        .await;
        let client = client_for(&server);
        let err = client.send_batch(&[raw("{}")]).await.unwrap_err();
        match err {
            Error::Service {
                status,
                code,
                message,
                request_id,
                attempts,
            } => {
                assert_eq!(status, 400);
                assert_eq!(code, "UnrecognizedClientException");
                assert_eq!(
                    message,
                    "The security token included in the request is invalid."
                );
                assert_eq!(request_id.as_deref(), Some("req-123"));
                assert_eq!(attempts, 1);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn test_server_errors_without_json_are_retried_and_reported() {
        let server = TestServer::start(|_, _| Reply::text(503, "upstream unavailable")).await;
        let client = client_for(&server);
        let err = client.send_batch(&[raw("{}")]).await.unwrap_err();
        assert!(
            matches!(&err, Error::Service { status: 503, code, message, .. } if code == "Http503" && message == "upstream unavailable"),
            "{err:?}"
        );
        assert_eq!(server.requests().len(), 4);
    }

    #[tokio::test]
    async fn test_dropped_connection_is_retried() {
        let server = TestServer::start(|n, _| {
            if n == 0 {
                Reply::Hangup
            } else {
                Reply::json(200, r#"{"accepted":1,"failed":[]}"#)
            }
        })
        .await;
        let client = client_for(&server);
        let response = client.send_batch(&[raw("{}")]).await.unwrap();
        assert_eq!(response.accepted, 1);
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn test_connection_refused_is_retried_then_reported() {
        // Bind then release a port, so nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let client = IngestClient::with_options(config_for(&endpoint), fast_options()).unwrap();
        let err = client.send_batch(&[raw("{}")]).await.unwrap_err();
        assert!(
            matches!(err, Error::Transport { attempts: 4, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn test_gzip_body_and_session_token_are_signed() {
        let server =
            TestServer::start(|_, _| Reply::json(200, r#"{"accepted":2,"failed":[]}"#)).await;
        let mut config = config_for(&server.endpoint());
        config.session_token = Some(Secret::new("token-example"));
        let options = ClientOptions {
            gzip: true,
            ..fast_options()
        };
        let client = IngestClient::with_options(config, options).unwrap();
        let body = Bytes::from_static(br#"{"Records":[{"x":1},{"y":"\u00e9"}]}"#);
        client.send_body(body.clone()).await.unwrap();
        let request = &server.requests()[0];
        assert_eq!(request.header("content-encoding"), Some("gzip"));
        assert_eq!(
            request.header("x-amz-security-token"),
            Some("token-example")
        );
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&request.body[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, body);
        let signed = request.verify_signature(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "us-west-2",
            SIGNING_SERVICE,
        );
        assert!(signed.contains(&"content-encoding".to_owned()));
        assert!(signed.contains(&"x-amz-security-token".to_owned()));
    }

    #[tokio::test]
    async fn test_malformed_success_body_is_an_error() {
        let server = TestServer::start(|_, _| Reply::json(200, r#"{"ok":true}"#)).await;
        let client = client_for(&server);
        let err = client.send_batch(&[raw("{}")]).await.unwrap_err();
        assert!(matches!(err, Error::InvalidResponse { .. }), "{err:?}");
    }

    #[test]
    fn test_backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let first = policy.backoff(1);
            assert!(
                (Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first),
                "{first:?}"
            );
            let third = policy.backoff(3);
            assert!(
                (Duration::from_millis(200)..=Duration::from_millis(400)).contains(&third),
                "{third:?}"
            );
            let late = policy.backoff(30);
            assert!(
                (Duration::from_millis(500)..=Duration::from_secs(1)).contains(&late),
                "{late:?}"
            );
        }
    }

    #[test]
    fn test_client_refuses_zero_attempts() {
        let mut options = ClientOptions::default();
        options.retry.max_attempts = 0;
        assert!(IngestClient::with_options(config_for("http://127.0.0.1:1"), options).is_err());
    }

    #[test]
    fn test_client_debug_hides_the_secret() {
        let client = IngestClient::new(config_for("http://127.0.0.1:1")).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("wJalrXUtnFEMI"), "{debug}");
    }
}
