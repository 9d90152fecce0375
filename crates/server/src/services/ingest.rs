//! Native ingest: `POST /cairn/v1/records` (SigV4 service `cloudtrail-data`).
//!
//! The body is a CloudTrail log file, `{"Records":[...]}`, optionally gzip
//! (`Content-Encoding: gzip`), with at most 1 000 records and 5 MiB (after
//! decompression). Each record is validated on its own; the answer lists the
//! ones refused and is sent only after every accepted record is durable:
//!
//! ```json
//! {"accepted": 998, "failed": [{"index": 3, "errorCode": "FieldNotFound", "errorMessage": "..."}]}
//! ```

use std::io::Read;

use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use cairn_model::json_limits;
use cairn_pipeline::ingest::MAX_RECORDS_PER_REQUEST;

use crate::error::AwsError;
use crate::state::AppState;

/// The path of the native ingest endpoint.
pub const INGEST_PATH: &str = "/cairn/v1/records";

/// The largest body ingest accepts, after decompression.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<&'a RawValue>,
}

/// The answer: how many records were accepted, and why the others were refused.
#[derive(Debug, Serialize)]
pub struct PutRecordsResponse {
    /// Records made durable.
    pub accepted: usize,
    /// Records refused, by index in the request.
    pub failed: Vec<FailedRecord>,
}

/// One refused record.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedRecord {
    /// Its index in the request's `Records`.
    pub index: usize,
    /// Why, as a code.
    pub error_code: String,
    /// Why, in words.
    pub error_message: String,
}

/// Validates and ingests one request's records; answers once they are durable.
pub async fn put_records(
    state: &AppState,
    region: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<PutRecordsResponse, AwsError> {
    let gzip = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().eq_ignore_ascii_case("gzip")));
    let decoded;
    let text: &[u8] = if gzip {
        decoded = gunzip_capped(body, MAX_BODY_BYTES)?;
        &decoded
    } else {
        if body.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body
    };
    let ingestor = state.pipeline.ingestor();
    // Records that name no region are from the region the request was made in.
    // The records are found and their limits checked in one pass; a body of
    // any other shape, or with a record that does not parse, is parsed in
    // full and answered exactly as that parse decides.
    let scanned = std::str::from_utf8(text)
        .ok()
        .and_then(json_limits::split_log_file)
        .filter(|records| records.len() <= MAX_RECORDS_PER_REQUEST);
    let validated = scanned
        .map(|records| ingestor.validate_scanned(&records, region))
        .filter(|validated| !validated.holds_unparsed_records());
    let outcome = match validated {
        Some(validated) => ingestor.commit(validated).await?,
        None => {
            let records = parse_body(text)?;
            ingestor.ingest_in_region(&records, region).await?
        }
    };
    Ok(PutRecordsResponse {
        accepted: outcome.accepted,
        failed: outcome
            .failed
            .iter()
            .map(|f| FailedRecord {
                index: f.index,
                error_code: f.error_code.to_string(),
                error_message: f.error_message.to_string(),
            })
            .collect(),
    })
}

/// The records of a body, by a full parse (the shapes
/// [`json_limits::split_log_file`] leaves to it, and every refusal).
fn parse_body(text: &[u8]) -> Result<Vec<&str>, AwsError> {
    let parsed: Body = serde_json::from_slice(text).map_err(|e| {
        AwsError::client(
            "SerializationException",
            format!("The body must be a JSON object {{\"Records\": [...]}}: {e}"),
        )
    })?;
    if parsed.records.len() > MAX_RECORDS_PER_REQUEST {
        return Err(AwsError::client(
            "ValidationException",
            format!(
                "1 validation error detected: Value at 'Records' failed to satisfy constraint: Member must have length less than or equal to {MAX_RECORDS_PER_REQUEST} (got {}).",
                parsed.records.len()
            ),
        ));
    }
    Ok(parsed.records.iter().map(|r| r.get()).collect())
}

fn too_large() -> AwsError {
    AwsError::with_status(
        "RequestEntityTooLargeException",
        format!("The request body exceeds {MAX_BODY_BYTES} bytes."),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
}

/// Decompresses at most `cap` bytes; a larger body is refused, a broken one too.
pub fn gunzip_capped(body: &[u8], cap: usize) -> Result<Vec<u8>, AwsError> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(body).take(cap as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| {
        AwsError::client(
            "SerializationException",
            format!("The body is not valid gzip: {e}"),
        )
    })?;
    if out.len() > cap {
        return Err(too_large());
    }
    Ok(out)
}
