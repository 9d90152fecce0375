//! S3 (REST-XML, path-style): buckets, objects, listings and multipart uploads.
//!
//! A request is first named ([`operation::route`], a pure function of
//! method, bucket, key, query and a few headers), then the bucket is checked
//! (`NoSuchBucket` comes before anything else, as on S3), then
//! [`dispatch`] runs the operation's handler, or answers `NotImplemented`
//! (501) naming the operation, with nothing changed. Every operation of
//! botocore's S3 model has a row in [`S3Operation`].
//!
//! Buckets are registered in the metastore and their objects live in the
//! bucket store. User metadata comes back as lower-case `x-amz-meta-*`
//! headers, as the AWS CLI's validator requires.

mod buckets;
mod chunked;
mod integrity;
mod listing;
mod multipart;
mod objects;
pub mod operation;
mod xml;

use std::collections::BTreeMap;

use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use percent_encoding::percent_decode_str;

use cairn_meta::Bucket;

use crate::error::AwsError;
use crate::state::{AppState, RequestContext};

pub use operation::{RouteError, RouteHeaders, S3Operation, Support, route};

/// The longest object key S3 accepts, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// The largest body of a PutObject or UploadPart Cairn accepts. Bodies are
/// read into memory before the signature is checked, so this is a bound on
/// memory per request, well under S3's 5 GiB; the AWS CLI uploads files above
/// 8 MiB in 8 MiB parts, so exports of any size go through multipart.
pub const MAX_OBJECT_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// The largest request body `lib.rs` should read for this request: object
/// uploads (a PUT to a key) may carry [`MAX_OBJECT_UPLOAD_BYTES`]; `None`
/// leaves the server's default.
pub fn max_request_bytes(method: &Method, path: &str) -> Option<usize> {
    let is_object = path
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(_, key)| !key.is_empty());
    (*method == Method::PUT && is_object).then_some(MAX_OBJECT_UPLOAD_BYTES)
}

/// Handles one S3 request.
pub async fn handle(
    state: &AppState,
    ctx: &RequestContext,
    parts: &Parts,
    body: Bytes,
) -> Response {
    let resource = parts.uri.path().to_owned();
    match run(state, ctx, parts, body).await {
        Ok(response) => with_request_id(response, &ctx.request_id),
        Err(e) if parts.method == Method::HEAD => {
            // HEAD answers carry no body.
            let mut response = e.status.into_response();
            if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
                response.headers_mut().insert("x-amz-request-id", v);
            }
            response
        }
        Err(e) => e.into_s3_response(&ctx.request_id, Some(&resource)),
    }
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amz-request-id", v);
    }
    response
}

/// A request after routing: what every handler reads.
pub(crate) struct S3Request<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) ctx: &'a RequestContext,
    pub(crate) parts: &'a Parts,
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) query: BTreeMap<String, String>,
    pub(crate) body: Bytes,
}

impl S3Request<'_> {
    /// A header's value, if it is text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request's bucket, key and query parameters, decoded.
struct Named {
    bucket: String,
    key: Option<String>,
    query: BTreeMap<String, String>,
}

fn name_request(parts: &Parts) -> Named {
    let raw_path = parts.uri.path().trim_start_matches('/');
    let (bucket_raw, key_raw) = match raw_path.split_once('/') {
        Some((b, k)) => (b, Some(k)),
        None => (raw_path, None),
    };
    Named {
        bucket: decode_path(bucket_raw),
        key: key_raw.filter(|k| !k.is_empty()).map(decode_path),
        query: query_map(parts.uri.query().unwrap_or("")),
    }
}

fn route_named(parts: &Parts, named: &Named) -> Result<S3Operation, RouteError> {
    let copy_source = parts
        .headers
        .get("x-amz-copy-source")
        .and_then(|v| v.to_str().ok());
    route(
        &parts.method,
        &named.bucket,
        named.key.as_deref(),
        &named.query,
        RouteHeaders { copy_source },
    )
}

/// The S3 operation a request is (the server's operation table finds its
/// row, IAM action included, by this), or `None` for a method the path has
/// no operation for.
pub fn operation_of(parts: &Parts) -> Option<S3Operation> {
    route_named(parts, &name_request(parts)).ok()
}

async fn run(
    state: &AppState,
    ctx: &RequestContext,
    parts: &Parts,
    body: Bytes,
) -> Result<Response, AwsError> {
    let named = name_request(parts);
    let op = route_named(parts, &named)
        .map_err(|RouteError::MethodNotAllowed| method_not_allowed(&parts.method))?;
    let Named { bucket, key, query } = named;
    if op.needs_bucket() {
        bucket_of(state, &bucket)?;
    }
    if let Some(key) = &key
        && key.len() > MAX_KEY_BYTES
    {
        return Err(AwsError::client("KeyTooLongError", "Your key is too long"));
    }
    let request = S3Request {
        state,
        ctx,
        parts,
        bucket,
        key: key.unwrap_or_default(),
        query,
        body,
    };
    dispatch(op, &request).await
}

/// Runs an operation's handler; every operation without one is refused
/// with `NotImplemented`, naming it.
pub(crate) async fn dispatch(op: S3Operation, r: &S3Request<'_>) -> Result<Response, AwsError> {
    use S3Operation as Op;
    let response = match op {
        Op::ListBuckets => buckets::list_buckets(r),
        Op::CreateBucket => buckets::create_bucket(r),
        Op::DeleteBucket => buckets::delete_bucket(r).await,
        Op::HeadBucket => Ok(StatusCode::OK.into_response()),
        Op::GetBucketLocation => buckets::location(r),
        Op::ListObjects => listing::list_objects_v1(r).await,
        Op::ListObjectsV2 => listing::list_objects_v2(r).await,
        Op::ListMultipartUploads => multipart::list_multipart_uploads(r).await,
        Op::DeleteObjects => objects::delete_objects(r).await,
        Op::GetObject => objects::get_object(r, false).await,
        Op::HeadObject => objects::get_object(r, true).await,
        Op::PutObject => objects::put_object(r).await,
        Op::CopyObject => objects::copy_object(r).await,
        Op::DeleteObject => objects::delete_object(r).await,
        Op::CreateMultipartUpload => multipart::create_multipart_upload(r).await,
        Op::UploadPart => multipart::upload_part(r).await,
        Op::UploadPartCopy => multipart::upload_part_copy(r).await,
        Op::CompleteMultipartUpload => multipart::complete_multipart_upload(r).await,
        Op::AbortMultipartUpload => multipart::abort_multipart_upload(r).await,
        Op::ListParts => multipart::list_parts(r).await,
        other => {
            debug_assert_eq!(other.support(), Support::NotImplemented, "{other:?}");
            Err(not_implemented(other))
        }
    };
    debug_assert!(
        op.support() == Support::Served || response.is_err(),
        "{op:?} is marked NotImplemented but was served"
    );
    response
}

/// S3's `NotImplemented`, naming the operation.
pub(crate) fn not_implemented(op: S3Operation) -> AwsError {
    AwsError::with_status(
        "NotImplemented",
        format!(
            "{} is not implemented by this server; nothing was changed.",
            op.name()
        ),
        StatusCode::NOT_IMPLEMENTED,
    )
}

fn method_not_allowed(method: &Method) -> AwsError {
    AwsError::with_status(
        "MethodNotAllowed",
        format!("The specified method {method} is not allowed against this resource."),
        StatusCode::METHOD_NOT_ALLOWED,
    )
}

fn query_map(raw: &str) -> BTreeMap<String, String> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

fn decode_path(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

pub(crate) fn no_such_bucket(bucket: &str) -> AwsError {
    AwsError::with_status(
        "NoSuchBucket",
        format!("The specified bucket does not exist: {bucket}"),
        StatusCode::NOT_FOUND,
    )
}

pub(crate) fn bucket_of(state: &AppState, name: &str) -> Result<Bucket, AwsError> {
    state
        .meta
        .bucket(name)
        .map_err(AwsError::internal)?
        .ok_or_else(|| no_such_bucket(name))
}

/// The one mapping from store errors to S3 errors.
pub(crate) fn store_error(e: cairn_store::Error) -> AwsError {
    use cairn_store::Error as E;
    match e {
        E::NotFound { .. } => AwsError::with_status(
            "NoSuchKey",
            "The specified key does not exist.",
            StatusCode::NOT_FOUND,
        ),
        E::InvalidKey { key, .. } => {
            AwsError::client("InvalidArgument", format!("Invalid key: {key}"))
        }
        E::InvalidRange { .. } => AwsError::with_status(
            "InvalidRange",
            "The requested range is not satisfiable",
            StatusCode::RANGE_NOT_SATISFIABLE,
        ),
        E::NoSuchUpload { .. } => AwsError::with_status(
            "NoSuchUpload",
            "The specified upload does not exist. The upload ID may be invalid, or the upload \
             may have been aborted or completed.",
            StatusCode::NOT_FOUND,
        ),
        E::InvalidPart { .. } => AwsError::client(
            "InvalidPart",
            "One or more of the specified parts could not be found.  The part may not have been \
             uploaded, or the specified entity tag may not match the part's entity tag.",
        ),
        E::InvalidPartOrder => AwsError::client(
            "InvalidPartOrder",
            "The list of parts was not in ascending order. Parts must be ordered by part number.",
        ),
        E::EntityTooSmall { .. } => AwsError::client(
            "EntityTooSmall",
            "Your proposed upload is smaller than the minimum allowed object size.",
        ),
        other => AwsError::internal(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_object_uploads_get_a_larger_body_limit() {
        assert_eq!(
            max_request_bytes(&Method::PUT, "/b/k"),
            Some(MAX_OBJECT_UPLOAD_BYTES)
        );
        assert_eq!(max_request_bytes(&Method::PUT, "/b"), None);
        assert_eq!(max_request_bytes(&Method::PUT, "/b/"), None);
        assert_eq!(max_request_bytes(&Method::POST, "/b/k"), None);
    }

    #[test]
    fn test_every_served_row_has_a_handler() {
        // The served rows are exactly the ones `dispatch` names.
        let served: Vec<_> = S3Operation::ALL
            .iter()
            .filter(|op| op.support() == Support::Served)
            .map(|op| op.name())
            .collect();
        assert_eq!(served.len(), 20, "{served:?}");
    }
}
