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

use serde_json::{Value, json};

use crate::error::AwsError;

/// Writes one page of an offset-paged listing into `out`: `items[start..]`,
/// at most `max` of them rendered by `render`, as `out[list]`, and the next
/// page's offset as `NextToken` when there are more. Returns the page's
/// length. Each caller checks its own bounds and token (their error codes
/// differ by service).
pub(crate) fn put_page<T>(
    out: &mut Value,
    list: &str,
    items: &[T],
    start: usize,
    max: usize,
    render: impl Fn(&T) -> Value,
) -> usize {
    let end = start.saturating_add(max).min(items.len());
    let page: Vec<Value> = items
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(render)
        .collect();
    let len = page.len();
    out[list] = Value::Array(page);
    if end < items.len() {
        out["NextToken"] = json!(end.to_string());
    }
    len
}

/// Runs blocking work (metastore calls) on the blocking thread pool.
pub async fn blocking<T, F>(work: F) -> Result<T, AwsError>
where
    F: FnOnce() -> Result<T, AwsError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work).await?
}
