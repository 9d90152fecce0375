//! One module per served AWS service: the control-plane rules, below the
//! codecs. A service function takes a typed request and returns a typed result
//! or an [`crate::error::AwsError`]; it knows nothing of HTTP or wire formats.
//! Blocking work (the SQLite metastore) runs on the blocking pool
//! ([`blocking`]), never on the async threads.

pub mod athena;
pub mod cloudtrail;
pub mod cloudwatch;
pub mod glue;
pub mod ingest;
pub mod lake;
pub mod logs;
pub mod organizations;
pub mod sns;
pub mod sts;

use crate::error::AwsError;

/// Runs blocking work (metastore calls) on the blocking thread pool.
pub async fn blocking<T, F>(work: F) -> Result<T, AwsError>
where
    F: FnOnce() -> Result<T, AwsError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work).await?
}
