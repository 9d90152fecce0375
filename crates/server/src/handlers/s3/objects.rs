//! Object operations: GetObject, HeadObject, PutObject, CopyObject,
//! DeleteObject and DeleteObjects.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use percent_encoding::percent_decode_str;

use cairn_store::{GetRange, ObjectAttributes};

use super::integrity::{VerifiedChecksum, verify_upload};
use super::xml::{
    MAX_XML_BYTES, S3_NS, XML_DECL, http_date, malformed_xml, parse_document, quote_etag, s3_time,
    xml_response,
};
use super::{MAX_KEY_BYTES, S3Request, bucket_of, chunked, store_error};
use crate::error::{AwsError, xml_escape};

/// The most user metadata S3 accepts on one object (names and values, in bytes).
const MAX_METADATA_BYTES: usize = 2048;

/// The most keys one DeleteObjects request may name.
const MAX_DELETE_KEYS: usize = 1000;

/// The `x-amz-meta-` prefix of user metadata headers.
const META_PREFIX: &str = "x-amz-meta-";

/// `GetObject` query parameters that set an answer header, as S3 has them.
const RESPONSE_OVERRIDES: [(&str, HeaderName); 6] = [
    ("response-content-type", header::CONTENT_TYPE),
    ("response-content-language", header::CONTENT_LANGUAGE),
    ("response-expires", header::EXPIRES),
    ("response-cache-control", header::CACHE_CONTROL),
    ("response-content-disposition", header::CONTENT_DISPOSITION),
    ("response-content-encoding", header::CONTENT_ENCODING),
];

fn no_such_version() -> AwsError {
    AwsError::with_status(
        "NoSuchVersion",
        "The specified version does not exist.",
        StatusCode::NOT_FOUND,
    )
}

/// Buckets are unversioned: only the `null` version exists.
fn check_version(version_id: Option<&String>) -> Result<(), AwsError> {
    match version_id.map(String::as_str) {
        None | Some("null") => Ok(()),
        Some(_) => Err(no_such_version()),
    }
}

/// The object attributes a write request carries: `x-amz-meta-*` and `Content-Type`.
pub(super) fn attributes_from_headers(headers: &HeaderMap) -> Result<ObjectAttributes, AwsError> {
    let mut metadata = BTreeMap::new();
    let mut size = 0usize;
    for (name, value) in headers {
        let Some(meta_name) = name.as_str().strip_prefix(META_PREFIX) else {
            continue;
        };
        let value = value.to_str().map_err(|_| {
            AwsError::client(
                "InvalidArgument",
                format!("Invalid value for header {}", name.as_str()),
            )
        })?;
        size += meta_name.len() + value.len();
        metadata.insert(meta_name.to_ascii_lowercase(), value.to_owned());
    }
    if size > MAX_METADATA_BYTES {
        return Err(AwsError::client(
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size",
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(ObjectAttributes {
        metadata,
        content_type,
    })
}

/// The payload of a PutObject or UploadPart: `aws-chunked` decoded, and
/// every checksum the client sent verified against it. Hashing up to 64 MiB
/// is CPU work, so it runs off the async threads.
pub(super) async fn upload_body(
    r: &S3Request<'_>,
) -> Result<(Bytes, Option<VerifiedChecksum>), AwsError> {
    let headers = r.parts.headers.clone();
    let raw = r.body.clone();
    tokio::task::spawn_blocking(move || {
        let (body, trailer) = if chunked::is_aws_chunked(&headers) {
            let decoded = chunked::decode(&headers, &raw)?;
            (decoded.body, decoded.checksum)
        } else {
            (raw, None)
        };
        let header_checksum = verify_upload(&headers, &body)?;
        Ok((body, trailer.or(header_checksum)))
    })
    .await
    .map_err(AwsError::internal)?
}

/// An answer header with the ETag and the verified checksum, as S3 echoes it.
pub(super) fn etag_response(etag: &str, checksum: Option<&VerifiedChecksum>) -> Response {
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&quote_etag(Some(etag))) {
        h.insert(header::ETAG, v);
    }
    if let Some(c) = checksum
        && let Ok(v) = HeaderValue::from_str(&c.value)
    {
        h.insert(c.algorithm.header(), v);
    }
    response
}

pub(super) async fn put_object(r: &S3Request<'_>) -> Result<Response, AwsError> {
    let attributes = attributes_from_headers(&r.parts.headers)?;
    let (body, checksum) = upload_body(r).await?;
    let etag = r
        .state
        .store
        .put_object(&r.bucket, &r.key, body, &attributes)
        .await
        .map_err(store_error)?;
    Ok(etag_response(&etag, checksum.as_ref()))
}

pub(super) async fn delete_object(r: &S3Request<'_>) -> Result<Response, AwsError> {
    check_version(r.query.get("versionId"))?;
    r.state
        .store
        .delete(&r.bucket, &r.key)
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Parses a single-range `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`).
/// Anything else is ignored, as S3 does, and the whole object is returned.
pub(super) fn parse_range(headers: &HeaderMap) -> Option<GetRange> {
    let value = headers.get(header::RANGE)?.to_str().ok()?.trim();
    let spec = value.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    match (start.trim(), end.trim()) {
        ("", n) => n
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(GetRange::Suffix),
        (a, "") => a.parse::<u64>().ok().map(GetRange::Offset),
        (a, b) => {
            let (a, b) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
            (b >= a).then_some(GetRange::Bounded(a..b + 1))
        }
    }
}

pub(super) async fn get_object(r: &S3Request<'_>, head: bool) -> Result<Response, AwsError> {
    check_version(r.query.get("versionId"))?;
    if r.query.get("partNumber").is_some_and(|n| n != "1") {
        return Err(AwsError::with_status(
            "NotImplemented",
            "GetObject and HeadObject of one part (partNumber other than 1) are not implemented \
             by this server.",
            StatusCode::NOT_IMPLEMENTED,
        ));
    }
    let store = &r.state.store;
    let range = if head {
        None
    } else {
        parse_range(&r.parts.headers)
    };
    let ranged = range.is_some();
    let (body, info, returned) = if head {
        let info = store.head(&r.bucket, &r.key).await.map_err(store_error)?;
        let size = info.size;
        (Body::empty(), info, 0..size)
    } else {
        let out = store
            .get_stream(&r.bucket, &r.key, range)
            .await
            .map_err(store_error)?;
        (Body::from_stream(out.body), out.info, out.range)
    };
    let status = if ranged {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let length = if head {
        info.size
    } else {
        returned.end.saturating_sub(returned.start)
    };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    let content_type = info
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&length.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&quote_etag(info.e_tag.as_deref())) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(info.last_modified)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if ranged
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{}",
            returned.start,
            returned.end.saturating_sub(1),
            info.size
        ))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    for (name, value) in &info.metadata {
        // Header names must reach botocore in lower case: its validator looks them up exactly.
        let name = format!("{META_PREFIX}{}", name.to_ascii_lowercase());
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.insert(n, v);
        }
    }
    for (parameter, name) in RESPONSE_OVERRIDES {
        if let Some(value) = r.query.get(parameter)
            && let Ok(v) = HeaderValue::from_str(value)
        {
            h.insert(name, v);
        }
    }
    Ok(response)
}

/// Reads `x-amz-copy-source` (`[/]bucket/key[?versionId=...]`, URL-encoded).
pub(super) fn copy_source(value: &str) -> Result<(String, String), AwsError> {
    let invalid = || {
        AwsError::client(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        )
    };
    let (path, query) = value.split_once('?').unwrap_or((value, ""));
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("versionId", "null")) => {}
            Some(("versionId", _)) => return Err(no_such_version()),
            _ => return Err(invalid()),
        }
    }
    let decoded = percent_decode_str(path.trim_start_matches('/'))
        .decode_utf8()
        .map_err(|_| invalid())?;
    let (bucket, key) = decoded.split_once('/').ok_or_else(invalid)?;
    if bucket.is_empty() || key.is_empty() {
        return Err(invalid());
    }
    Ok((bucket.to_owned(), key.to_owned()))
}

fn precondition_failed() -> AwsError {
    AwsError::with_status(
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        StatusCode::PRECONDITION_FAILED,
    )
}

/// The `x-amz-copy-source-if-*` conditions of CopyObject and UploadPartCopy,
/// against the source object: S3 answers `PreconditionFailed` (412) when one fails.
pub(super) fn check_copy_conditions(
    r: &S3Request<'_>,
    source: &cairn_store::ObjectInfo,
) -> Result<(), AwsError> {
    let etag = quote_etag(source.e_tag.as_deref());
    let matches = |list: &str| {
        list.split(',')
            .map(str::trim)
            .any(|e| e == "*" || quote_etag(Some(e.trim_matches('"'))) == etag)
    };
    let date = |name: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, AwsError> {
        match r.header(name) {
            None => Ok(None),
            Some(v) => chrono::DateTime::parse_from_rfc2822(v.trim())
                .map(|t| Some(t.with_timezone(&chrono::Utc)))
                .map_err(|_| {
                    AwsError::client("InvalidArgument", format!("Invalid date in {name}"))
                }),
        }
    };
    // Last-Modified has one-second resolution on the wire.
    let modified = source.last_modified.timestamp();
    if let Some(list) = r.header("x-amz-copy-source-if-match")
        && !matches(list)
    {
        return Err(precondition_failed());
    }
    if let Some(list) = r.header("x-amz-copy-source-if-none-match")
        && matches(list)
    {
        return Err(precondition_failed());
    }
    if let Some(t) = date("x-amz-copy-source-if-unmodified-since")?
        && modified > t.timestamp()
    {
        return Err(precondition_failed());
    }
    if let Some(t) = date("x-amz-copy-source-if-modified-since")?
        && modified <= t.timestamp()
    {
        return Err(precondition_failed());
    }
    Ok(())
}

pub(super) async fn copy_object(r: &S3Request<'_>) -> Result<Response, AwsError> {
    let source = r.header("x-amz-copy-source").unwrap_or("");
    let (source_bucket, source_key) = copy_source(source)?;
    let replace = match r.header("x-amz-metadata-directive").map(str::trim) {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(_) => {
            return Err(AwsError::client(
                "InvalidArgument",
                "Unknown metadata directive.",
            ));
        }
    };
    if source_bucket == r.bucket && source_key == r.key && !replace {
        return Err(AwsError::client(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself \
             without changing the object's metadata, storage class, website redirect location or \
             encryption attributes.",
        ));
    }
    if source_key.len() > MAX_KEY_BYTES {
        return Err(AwsError::client("KeyTooLongError", "Your key is too long"));
    }
    bucket_of(r.state, &source_bucket)?;
    let source = r
        .state
        .store
        .head(&source_bucket, &source_key)
        .await
        .map_err(store_error)?;
    check_copy_conditions(r, &source)?;
    let attributes = if replace {
        Some(attributes_from_headers(&r.parts.headers)?)
    } else {
        None
    };
    let info = r
        .state
        .store
        .copy_object(&source_bucket, &source_key, &r.bucket, &r.key, attributes)
        .await
        .map_err(store_error)?;
    Ok(xml_response(
        StatusCode::OK,
        format!(
            "{XML_DECL}<CopyObjectResult xmlns=\"{S3_NS}\"><LastModified>{}</LastModified><ETag>{}</ETag></CopyObjectResult>",
            s3_time(info.last_modified),
            xml_escape(&quote_etag(info.e_tag.as_deref()))
        ),
    ))
}

pub(super) async fn delete_objects(r: &S3Request<'_>) -> Result<Response, AwsError> {
    if r.body.len() > MAX_XML_BYTES {
        return Err(malformed_xml());
    }
    let has_integrity = r.parts.headers.contains_key("content-md5")
        || r.parts
            .headers
            .keys()
            .any(|n| n.as_str().starts_with("x-amz-checksum-"));
    if !has_integrity {
        return Err(AwsError::client(
            "InvalidRequest",
            "Missing required header for this request: Content-MD5",
        ));
    }
    verify_upload(&r.parts.headers, &r.body)?;
    let doc = parse_document(&r.body)?;
    if doc.root != "Delete" {
        return Err(malformed_xml());
    }
    let quiet = doc
        .fields
        .get("Quiet")
        .is_some_and(|q| q.trim().eq_ignore_ascii_case("true"));
    let objects: Vec<&BTreeMap<String, String>> = doc
        .records
        .iter()
        .filter(|(name, _)| name == "Object")
        .map(|(_, fields)| fields)
        .collect();
    if objects.is_empty() || objects.len() > MAX_DELETE_KEYS {
        return Err(malformed_xml());
    }
    let mut xml = format!("{XML_DECL}<DeleteResult xmlns=\"{S3_NS}\">");
    for object in objects {
        let Some(key) = object.get("Key") else {
            return Err(malformed_xml());
        };
        let outcome = if key.len() > MAX_KEY_BYTES {
            Err(AwsError::client("KeyTooLongError", "Your key is too long"))
        } else if let Err(e) = check_version(object.get("VersionId")) {
            Err(e)
        } else {
            r.state
                .store
                .delete(&r.bucket, key)
                .await
                .map_err(store_error)
        };
        match outcome {
            Ok(()) if quiet => {}
            Ok(()) => {
                let _ = write!(xml, "<Deleted><Key>{}</Key>", xml_escape(key));
                if let Some(v) = object.get("VersionId") {
                    let _ = write!(xml, "<VersionId>{}</VersionId>", xml_escape(v));
                }
                xml.push_str("</Deleted>");
            }
            Err(e) => {
                let _ = write!(
                    xml,
                    "<Error><Key>{}</Key><Code>{}</Code><Message>{}</Message></Error>",
                    xml_escape(key),
                    xml_escape(e.code),
                    xml_escape(&e.message)
                );
            }
        }
    }
    xml.push_str("</DeleteResult>");
    Ok(xml_response(StatusCode::OK, xml))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_range_parsing() {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-9"));
        assert!(matches!(parse_range(&h), Some(GetRange::Bounded(r)) if r == (0..10)));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=5-"));
        assert!(matches!(parse_range(&h), Some(GetRange::Offset(5))));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=-3"));
        assert!(matches!(parse_range(&h), Some(GetRange::Suffix(3))));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=9-2"));
        assert!(parse_range(&h).is_none());
    }

    #[test]
    fn test_copy_source() {
        assert_eq!(
            copy_source("/b/a%20b/c").unwrap(),
            ("b".to_owned(), "a b/c".to_owned())
        );
        assert_eq!(
            copy_source("b/k?versionId=null").unwrap(),
            ("b".to_owned(), "k".to_owned())
        );
        assert_eq!(
            copy_source("b/k?versionId=x").unwrap_err().code,
            "NoSuchVersion"
        );
        assert_eq!(copy_source("b").unwrap_err().code, "InvalidArgument");
    }

    #[test]
    fn test_metadata_from_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-amz-meta-Color", HeaderValue::from_static("blue"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let a = attributes_from_headers(&h).unwrap();
        assert_eq!(a.metadata.get("color").unwrap(), "blue");
        assert_eq!(a.content_type.as_deref(), Some("text/plain"));
        h.insert(
            "x-amz-meta-big",
            HeaderValue::from_str(&"x".repeat(3000)).unwrap(),
        );
        assert_eq!(
            attributes_from_headers(&h).unwrap_err().code,
            "MetadataTooLarge"
        );
    }
}
