//! Cairn's client side: everything `cairn ingest` and `cairn loadgen` need
//! except argument parsing.
//!
//! * [`config`]: finds the endpoint, credentials and region the way the AWS
//!   CLI does, falling back to the credentials file a local server writes into
//!   its data dir ([`resolve`]).
//! * [`client`]: a SigV4-signed HTTP client for the native ingest endpoint
//!   `POST /cairn/v1/records` ([`IngestClient`]), with bounded retries of
//!   throttling and transport failures.
//! * [`input`] and [`ingest`]: reads CloudTrail log files (plain or gzip), JSON
//!   lines, or directory trees of log files, and sends them in batches within
//!   the server's limits (1000 records, 5 MiB) with bounded concurrency
//!   ([`ingest_source`]).
//! * [`Generator`] (re-exported from `cairn-gen`): a deterministic generator
//!   of realistic CloudTrail records: the same seed gives the same bytes on
//!   every machine.
//! * [`loadgen`](mod@loadgen): rate-limited, bounded load generation with latency
//!   percentiles ([`loadgen()`]).
//! * [`api`]: signed JSON 1.1 calls (CloudTrail, Athena, Organizations) and
//!   S3 object requests, for `cairn query`, `cairn import` and validate-logs.
//! * [`validate`]: what `cairn validate-logs` reads: a server over the AWS
//!   wire protocols, or a directory copy of a trail's bucket.
//!
//! **Invariants.** Records are never parsed and re-serialised: the bytes read
//! (or generated) are the bytes sent. Memory stays bounded whatever the input
//! size (streamed lines, capped documents and gzip streams, a bounded number
//! of batches in flight). Secrets never reach `Debug`, errors or logs. The
//! library prints nothing; progress goes through [`Progress`].
//!
//! This crate knows nothing of the server's internals: it speaks the wire
//! protocol only, so it works against any Cairn reachable over HTTP.

pub mod api;
pub mod batch;
pub mod client;
pub mod config;
mod dispatch;
pub mod error;
pub mod import;
pub mod ingest;
mod ini;
pub mod input;
pub mod loadgen;
pub mod progress;
pub mod sql;
#[cfg(test)]
mod testserver;
pub mod validate;

pub use batch::{MAX_BATCH_BYTES, MAX_RECORDS_PER_BATCH, records_body};
pub use cairn_gen::{Generator, GeneratorOptions, generator};
pub use client::{
    ClientOptions, FailedRecord, INGEST_PATH, IngestClient, IngestResponse, RetryPolicy,
    SIGNING_SERVICE,
};
pub use config::{ClientConfig, CredentialSource, Secret, resolve, resolve_with_env};
pub use dispatch::RecordFailure;
pub use error::{Error, Result};
pub use ingest::{IngestOptions, IngestSummary, ingest_source};
pub use input::IngestSource;
pub use loadgen::{LatencySummary, LoadgenOptions, LoadgenSummary, loadgen};
pub use progress::{NoProgress, Progress};
