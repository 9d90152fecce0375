//! `cairn import`: CloudTrail log files into an event data store, through
//! the CloudTrail Lake import API.
//!
//! From `s3://bucket/prefix/` the import is StartImport on that prefix. From
//! a local directory, the log files are first uploaded to a bucket of the
//! server (S3 PutObject, keys keeping their path under the directory), then
//! imported from there: the server only ever reads its own buckets, as
//! CloudTrail Lake only reads S3. Progress is GetImport's statistics.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::api::{AwsApi, CLOUDTRAIL};
use crate::error::{Error, Result};

/// Uploads in flight at once.
const UPLOADS_IN_FLIGHT: usize = 4;
/// The largest log file uploaded.
const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;
/// How long to wait between GetImport polls.
const POLL: Duration = Duration::from_millis(500);

/// An import's state as GetImport reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportState {
    /// The import's ID.
    pub id: String,
    /// `INITIALIZING`, `IN_PROGRESS`, `COMPLETED`, `FAILED` or `STOPPED`.
    pub status: String,
    /// Log files read so far.
    pub files_completed: u64,
    /// Events imported so far.
    pub events_completed: u64,
    /// Entries that could not be imported.
    pub failed_entries: u64,
}

impl ImportState {
    /// Whether the import has ended.
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "COMPLETED" | "FAILED" | "STOPPED")
    }
}

/// One log file to upload: where it is, its key, its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The file.
    pub file: PathBuf,
    /// Its key: the prefix, then its path below the directory, `/`-separated.
    pub key: String,
    /// Its size in bytes when planned.
    pub size: u64,
}

/// Every log file below `dir` with the key it is uploaded under and its
/// size; a file over the size bound is refused before anything is sent.
pub fn upload_plan(dir: &Path, prefix: &str) -> Result<Vec<Upload>> {
    let files = crate::input::log_files(dir)?;
    let prefix = prefix.trim_matches('/');
    files
        .into_iter()
        .map(|file| {
            let size = std::fs::metadata(&file)
                .map_err(|source| Error::Io {
                    path: file.clone(),
                    source,
                })?
                .len();
            if size > MAX_FILE_BYTES {
                return Err(Error::InputTooLarge {
                    path: file,
                    limit: MAX_FILE_BYTES,
                });
            }
            let relative = file
                .strip_prefix(dir)
                .unwrap_or(&file)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let key = if prefix.is_empty() {
                relative
            } else {
                format!("{prefix}/{relative}")
            };
            Ok(Upload { file, key, size })
        })
        .collect()
}

/// Uploads every file of `plan` to `bucket`; `progress` hears the bytes of
/// each file as it lands.
pub async fn upload(
    api: &AwsApi,
    s3_endpoint: &str,
    bucket: &str,
    plan: Vec<Upload>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let mut uploads = futures::stream::iter(plan)
        .map(|Upload { file, key, .. }| async move {
            let io = |source| Error::Io {
                path: file.clone(),
                source,
            };
            // Bounded again as it is read: the file may have grown since.
            let mut body = Vec::new();
            tokio::fs::File::open(&file)
                .await
                .map_err(io)?
                .take(MAX_FILE_BYTES + 1)
                .read_to_end(&mut body)
                .await
                .map_err(io)?;
            if body.len() as u64 > MAX_FILE_BYTES {
                return Err(Error::InputTooLarge {
                    path: file,
                    limit: MAX_FILE_BYTES,
                });
            }
            let size = body.len() as u64;
            api.put_object(s3_endpoint, bucket, &key, body).await?;
            Ok(size)
        })
        .buffer_unordered(UPLOADS_IN_FLIGHT);
    while let Some(done) = uploads.next().await {
        progress(done?);
    }
    Ok(())
}

/// What to import and where.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The event data store, by ID or ARN.
    pub event_data_store: String,
    /// `s3://bucket/prefix/`.
    pub source_uri: String,
    /// Only events at or after this time (seconds since the epoch).
    pub start_event_time: Option<i64>,
    /// Only events at or before this time (seconds since the epoch).
    pub end_event_time: Option<i64>,
    /// The role CloudTrail Lake reads the bucket as (default: a role of the store's account).
    pub role_arn: Option<String>,
}

/// Starts an import; returns its ID.
pub async fn start_import(api: &AwsApi, endpoint: &str, request: &ImportRequest) -> Result<String> {
    let store = api
        .call_json(
            CLOUDTRAIL,
            endpoint,
            "GetEventDataStore",
            &json!({"EventDataStore": request.event_data_store}),
        )
        .await?;
    let arn = store
        .get("EventDataStoreArn")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Call {
            operation: "GetEventDataStore".to_owned(),
            reason: "the answer has no EventDataStoreArn".to_owned(),
        })?
        .to_owned();
    let account = arn.split(':').nth(4).unwrap_or_default();
    let role = request
        .role_arn
        .clone()
        .unwrap_or_else(|| format!("arn:aws:iam::{account}:role/CloudTrailLakeImport"));
    let mut input = json!({
        "Destinations": [arn],
        "ImportSource": {"S3": {
            "S3LocationUri": request.source_uri,
            "S3BucketRegion": api.region(),
            "S3BucketAccessRoleArn": role,
        }},
    });
    if let Some(t) = request.start_event_time {
        input["StartEventTime"] = json!(t);
    }
    if let Some(t) = request.end_event_time {
        input["EndEventTime"] = json!(t);
    }
    let started = api
        .call_json(CLOUDTRAIL, endpoint, "StartImport", &input)
        .await?;
    started
        .get("ImportId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::Call {
            operation: "StartImport".to_owned(),
            reason: "the answer has no ImportId".to_owned(),
        })
}

/// Polls GetImport until the import ends; `progress` hears every state.
pub async fn wait_import(
    api: &AwsApi,
    endpoint: &str,
    id: &str,
    progress: &(dyn Fn(&ImportState) + Sync),
) -> Result<ImportState> {
    loop {
        let answer = api
            .call_json(CLOUDTRAIL, endpoint, "GetImport", &json!({"ImportId": id}))
            .await?;
        let count = |name: &str| {
            answer
                .pointer(&format!("/ImportStatistics/{name}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let state = ImportState {
            id: id.to_owned(),
            status: answer
                .get("ImportStatus")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            files_completed: count("FilesCompleted"),
            events_completed: count("EventsCompleted"),
            failed_entries: count("FailedEntries"),
        };
        progress(&state);
        if state.is_finished() {
            return Ok(state);
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_keep_the_path_below_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let day = dir
            .path()
            .join("AWSLogs/123456789012/CloudTrail/us-east-1/2026/01/02");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::write(day.join("a.json.gz"), b"x").unwrap();
        std::fs::write(day.join("notes.txt"), b"x").unwrap();
        let plan = upload_plan(dir.path(), "/import/run-1/").unwrap();
        let keys: Vec<&str> = plan.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(
            keys,
            ["import/run-1/AWSLogs/123456789012/CloudTrail/us-east-1/2026/01/02/a.json.gz"]
        );
        assert_eq!(plan[0].size, 1);
        let plan = upload_plan(dir.path(), "").unwrap();
        assert_eq!(
            plan[0].key,
            "AWSLogs/123456789012/CloudTrail/us-east-1/2026/01/02/a.json.gz"
        );
    }
}
