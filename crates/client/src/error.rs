//! The one error type of this crate.
//!
//! No variant carries a secret: credentials appear in errors only as the
//! access key ID or the path of the file they were looked for in.

use std::path::PathBuf;

/// Everything that can go wrong on the client side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be signed (a header SigV4 cannot carry).
    #[error("cannot sign the request: {0}")]
    Signing(String),
    /// The endpoint is not an absolute `http://` or `https://` URL with a host.
    #[error("invalid endpoint URL {url:?}: {reason}")]
    InvalidEndpoint {
        /// The offending value.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A profile named explicitly (`--profile`, `AWS_PROFILE`) has no credentials.
    #[error("the config profile ({profile}) could not be found in {}", .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    ProfileNotFound {
        /// The profile.
        profile: String,
        /// The files looked in.
        searched: Vec<PathBuf>,
    },
    /// No credentials anywhere: environment, shared files or the data dir.
    #[error(
        "unable to locate credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
         configure a profile, or point at the server's data dir (looked in {})",
        .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoCredentials {
        /// The files looked in.
        searched: Vec<PathBuf>,
    },
    /// An access key ID without its secret, or the reverse.
    #[error("{location} has only one of the access key ID and the secret access key")]
    IncompleteCredentials {
        /// Where: `the environment`, or a profile and its file.
        location: String,
    },
    /// A caller-supplied option is out of range.
    #[error("invalid option {name}: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading local input failed.
    #[error("reading {}: {source}", .path.display())]
    Io {
        /// The file (or `-` for standard input).
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Local input is not in a format `cairn ingest` reads.
    #[error("{}: {reason}", .path.display())]
    InvalidInput {
        /// The file (or `-` for standard input).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Decompressed input, or a document loaded whole, exceeds the cap.
    #[error("{}: more than {limit} bytes once decompressed (raise the limit to read it)", .path.display())]
    InputTooLarge {
        /// The file (or `-` for standard input).
        path: PathBuf,
        /// The cap in bytes.
        limit: u64,
    },
    /// The request could not be sent or its answer not read, after all retries.
    #[error("request to {url} failed after {attempts} attempt(s): {source}")]
    Transport {
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an AWS error (after all retries, when retryable).
    #[error("{code} (HTTP {status}): {message}")]
    Service {
        /// The HTTP status.
        status: u16,
        /// The AWS error code, e.g. `ThrottlingException`.
        code: String,
        /// The server's message.
        message: String,
        /// `x-amzn-RequestId`, when the server sent one.
        request_id: Option<String>,
        /// Attempts made.
        attempts: u32,
    },
    /// A 2xx answer whose body is not the ingest response document.
    #[error("unexpected response from {url}: {reason}")]
    InvalidResponse {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An AWS API answered an operation with an error.
    #[error("An error occurred ({code}) when calling the {operation} operation: {message}")]
    Api {
        /// The operation, e.g. `StartQuery`.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// The AWS error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// A query (Athena or CloudTrail Lake) ended without succeeding.
    #[error("query {id} {state}: {reason}")]
    QueryFailed {
        /// The query's ID.
        id: String,
        /// Its final state, e.g. `FAILED`.
        state: String,
        /// Why, as the API says it.
        reason: String,
    },
    /// An AWS API call could not be made or its answer not read.
    #[error("calling {operation}: {reason}")]
    Call {
        /// The operation.
        operation: String,
        /// What went wrong.
        reason: String,
    },
    /// A background task (input reader, compression) failed to complete.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl Error {
    /// Whether retrying the same request later may succeed: throttling,
    /// server-side failures and transport errors.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Service { status, code, .. } => is_retryable_status(*status, code),
            Error::Transport { source, .. } => is_retryable_transport(source),
            _ => false,
        }
    }
}

/// Throttling by code or status, and the 5xx statuses AWS SDKs retry.
pub(crate) fn is_retryable_status(status: u16, code: &str) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
        || matches!(
            code,
            "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
        )
}

/// Connection failures and timeouts; not builder or redirect mistakes, which repeat.
pub(crate) fn is_retryable_transport(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
