//! Enough S3 to reach the buckets (REST-XML, path-style): CreateBucket,
//! HeadBucket, GetBucketLocation, ListBuckets, ListObjects (v1 and v2),
//! GetObject (with Range), HeadObject, DeleteObject, DeleteBucket.
//!
//! Buckets are registered in the metastore and their objects live in the
//! bucket store. User metadata comes back as lower-case `x-amz-meta-*` headers,
//! as the AWS CLI's validator requires.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use cairn_meta::Bucket;
use cairn_store::GetRange;

use crate::error::{AwsError, xml_escape};
use crate::handlers::cloudtrail::valid_bucket_name;
use crate::state::{AppState, RequestContext};

const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
const MAX_KEYS: usize = 1000;

/// What S3 leaves unescaped with `encoding-type=url` (RFC 3986 unreserved plus `/`).
const URL_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Handles one S3 request.
pub async fn handle(
    state: &AppState,
    ctx: &RequestContext,
    parts: &Parts,
    body: Bytes,
) -> Response {
    let path = parts.uri.path();
    let resource = path.to_owned();
    let result = route(state, ctx, parts, body).await;
    match result {
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

fn no_such_bucket(bucket: &str) -> AwsError {
    AwsError::with_status(
        "NoSuchBucket",
        format!("The specified bucket does not exist: {bucket}"),
        StatusCode::NOT_FOUND,
    )
}

fn not_implemented(what: &str) -> AwsError {
    AwsError::with_status(
        "NotImplemented",
        format!("{what} is not implemented by this server."),
        StatusCode::NOT_IMPLEMENTED,
    )
}

fn store_error(e: cairn_store::Error) -> AwsError {
    match e {
        cairn_store::Error::NotFound { .. } => AwsError::with_status(
            "NoSuchKey",
            "The specified key does not exist.",
            StatusCode::NOT_FOUND,
        ),
        cairn_store::Error::InvalidKey { key, .. } => {
            AwsError::client("InvalidArgument", format!("Invalid key: {key}"))
        }
        cairn_store::Error::InvalidRange { .. } => AwsError::with_status(
            "InvalidRange",
            "The requested range is not satisfiable",
            StatusCode::RANGE_NOT_SATISFIABLE,
        ),
        other => AwsError::internal(other),
    }
}

async fn route(
    state: &AppState,
    ctx: &RequestContext,
    parts: &Parts,
    body: Bytes,
) -> Result<Response, AwsError> {
    let raw_path = parts.uri.path().trim_start_matches('/');
    let query = query_map(parts.uri.query().unwrap_or(""));
    let (bucket_raw, key_raw) = match raw_path.split_once('/') {
        Some((b, k)) => (b, Some(k)),
        None => (raw_path, None),
    };
    let bucket = decode_component_path(bucket_raw);
    let key = key_raw.filter(|k| !k.is_empty()).map(decode_component_path);
    let method = &parts.method;
    if bucket.is_empty() {
        return if *method == Method::GET {
            list_buckets(state, ctx)
        } else {
            Err(AwsError::with_status(
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
                StatusCode::METHOD_NOT_ALLOWED,
            ))
        };
    }
    match (method.clone(), key) {
        (Method::PUT, None) => create_bucket(state, ctx, &bucket, &body),
        (Method::HEAD, None) => {
            bucket_of(state, &bucket)?;
            Ok(StatusCode::OK.into_response())
        }
        (Method::DELETE, None) => delete_bucket(state, &bucket).await,
        (Method::GET, None) if query.contains_key("location") => location(state, &bucket),
        (Method::GET, None) if query.get("list-type").map(String::as_str) == Some("2") => {
            list_objects_v2(state, &bucket, &query).await
        }
        (Method::GET, None) => {
            for unsupported in [
                "policy",
                "acl",
                "versioning",
                "tagging",
                "lifecycle",
                "cors",
                "website",
                "uploads",
                "versions",
                "encryption",
                "object-lock",
            ] {
                if query.contains_key(unsupported) {
                    return Err(not_implemented(&format!(
                        "Bucket subresource ?{unsupported}"
                    )));
                }
            }
            list_objects_v1(state, &bucket, &query).await
        }
        (Method::GET, Some(key)) => get_object(state, &bucket, &key, &parts.headers, false).await,
        (Method::HEAD, Some(key)) => get_object(state, &bucket, &key, &parts.headers, true).await,
        (Method::DELETE, Some(key)) => {
            bucket_of(state, &bucket)?;
            state
                .store
                .delete(&bucket, &key)
                .await
                .map_err(store_error)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::PUT, Some(_)) => Err(not_implemented("PutObject (Cairn writes log files itself)")),
        (m, _) => Err(AwsError::with_status(
            "MethodNotAllowed",
            format!("The specified method {m} is not allowed against this resource."),
            StatusCode::METHOD_NOT_ALLOWED,
        )),
    }
}

fn decode_component_path(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

fn bucket_of(state: &AppState, name: &str) -> Result<Bucket, AwsError> {
    state
        .meta
        .bucket(name)
        .map_err(AwsError::internal)?
        .ok_or_else(|| no_such_bucket(name))
}

fn xml_response(status: StatusCode, xml: String) -> Response {
    let mut response = (status, xml).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    response
}

fn s3_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn owner_xml(ctx_account: &str) -> String {
    format!(
        "<Owner><ID>{}</ID><DisplayName>{}</DisplayName></Owner>",
        xml_escape(ctx_account),
        xml_escape(ctx_account)
    )
}

fn list_buckets(state: &AppState, ctx: &RequestContext) -> Result<Response, AwsError> {
    let buckets = state.meta.buckets().map_err(AwsError::internal)?;
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult xmlns=\"{S3_NS}\">"
    );
    xml.push_str(&owner_xml(&ctx.account_id));
    xml.push_str("<Buckets>");
    for b in buckets {
        let _ = write!(
            xml,
            "<Bucket><Name>{}</Name><CreationDate>{}</CreationDate></Bucket>",
            xml_escape(&b.name),
            s3_time(b.created_at)
        );
    }
    xml.push_str("</Buckets></ListAllMyBucketsResult>");
    Ok(xml_response(StatusCode::OK, xml))
}

fn create_bucket(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    body: &[u8],
) -> Result<Response, AwsError> {
    if !valid_bucket_name(name) {
        return Err(AwsError::client(
            "InvalidBucketName",
            "The specified bucket is not valid.",
        ));
    }
    let text = String::from_utf8_lossy(body);
    let region = match (
        text.find("<LocationConstraint>"),
        text.find("</LocationConstraint>"),
    ) {
        (Some(start), Some(end)) if end > start => text[start + "<LocationConstraint>".len()..end]
            .trim()
            .to_owned(),
        _ => "us-east-1".to_owned(),
    };
    let region = if region.is_empty() {
        "us-east-1".to_owned()
    } else {
        region
    };
    if cairn_model::Region::new(&region).is_err() {
        return Err(AwsError::client(
            "InvalidLocationConstraint",
            "The specified location-constraint is not valid",
        ));
    }
    let bucket = Bucket {
        name: name.to_owned(),
        region: region.clone(),
        created_at: Utc::now(),
    };
    match state.meta.create_bucket(&bucket) {
        Ok(()) => {}
        // us-east-1 answers 200 to an owner re-creating its bucket; other regions 409.
        Err(cairn_meta::Error::AlreadyExists(_)) if region == "us-east-1" => {}
        Err(cairn_meta::Error::AlreadyExists(_)) => {
            return Err(AwsError::with_status(
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
                StatusCode::CONFLICT,
            ));
        }
        Err(e) => return Err(AwsError::internal(e)),
    }
    let _ = ctx;
    let mut response = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/{name}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

async fn delete_bucket(state: &AppState, name: &str) -> Result<Response, AwsError> {
    bucket_of(state, name)?;
    let listing = state
        .store
        .list(name, "", None, None, 1)
        .await
        .map_err(store_error)?;
    if !listing.objects.is_empty() {
        return Err(AwsError::with_status(
            "BucketNotEmpty",
            "The bucket you tried to delete is not empty",
            StatusCode::CONFLICT,
        ));
    }
    let in_use = state
        .meta
        .trails()
        .map_err(AwsError::internal)?
        .iter()
        .any(|t| t.config.s3_bucket_name == name);
    if in_use {
        return Err(AwsError::with_status(
            "BucketNotEmpty",
            "The bucket is the destination of a trail; delete or update the trail first.",
            StatusCode::CONFLICT,
        ));
    }
    state.meta.delete_bucket(name).map_err(AwsError::internal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn location(state: &AppState, name: &str) -> Result<Response, AwsError> {
    let bucket = bucket_of(state, name)?;
    // us-east-1 is reported as an empty constraint, as S3 does.
    let constraint = if bucket.region == "us-east-1" {
        String::new()
    } else {
        xml_escape(&bucket.region)
    };
    Ok(xml_response(
        StatusCode::OK,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"{S3_NS}\">{constraint}</LocationConstraint>"
        ),
    ))
}

fn max_keys(query: &BTreeMap<String, String>) -> Result<usize, AwsError> {
    match query.get("max-keys") {
        None => Ok(MAX_KEYS),
        Some(v) => v.parse::<usize>().map(|n| n.min(MAX_KEYS)).map_err(|_| {
            AwsError::client(
                "InvalidArgument",
                "Provided max-keys not an integer or within integer range",
            )
        }),
    }
}

struct Encoder {
    url: bool,
}

impl Encoder {
    fn text(&self, value: &str) -> String {
        if self.url {
            xml_escape(&utf8_percent_encode(value, URL_ENCODE_SET).to_string())
        } else {
            xml_escape(value)
        }
    }
}

fn encoder(query: &BTreeMap<String, String>) -> Result<Encoder, AwsError> {
    match query.get("encoding-type").map(String::as_str) {
        None => Ok(Encoder { url: false }),
        Some("url") => Ok(Encoder { url: true }),
        Some(_) => Err(AwsError::client(
            "InvalidArgument",
            "Invalid Encoding Method specified in Request",
        )),
    }
}

fn contents_xml(
    xml: &mut String,
    objects: &[cairn_store::ListedObject],
    enc: &Encoder,
    owner: Option<&str>,
) {
    for o in objects {
        let _ = write!(
            xml,
            "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag><Size>{}</Size>",
            enc.text(&o.key),
            s3_time(o.last_modified),
            xml_escape(&quote_etag(o.e_tag.as_deref())),
            o.size
        );
        if let Some(owner) = owner {
            xml.push_str(&owner_xml(owner));
        }
        xml.push_str("<StorageClass>STANDARD</StorageClass></Contents>");
    }
}

fn quote_etag(etag: Option<&str>) -> String {
    match etag {
        Some(e) if e.starts_with('"') => e.to_owned(),
        Some(e) => format!("\"{e}\""),
        None => "\"\"".to_owned(),
    }
}

async fn list_objects_v1(
    state: &AppState,
    bucket: &str,
    query: &BTreeMap<String, String>,
) -> Result<Response, AwsError> {
    let b = bucket_of(state, bucket)?;
    let enc = encoder(query)?;
    let prefix = query.get("prefix").cloned().unwrap_or_default();
    let marker = query.get("marker").cloned().unwrap_or_default();
    let delimiter = query.get("delimiter").cloned().filter(|d| !d.is_empty());
    let max = max_keys(query)?;
    let listing = state
        .store
        .list(
            bucket,
            &prefix,
            delimiter.as_deref(),
            (!marker.is_empty()).then_some(marker.as_str()),
            max,
        )
        .await
        .map_err(store_error)?;
    let mut xml =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"{S3_NS}\">");
    let _ = write!(
        xml,
        "<Name>{}</Name><Prefix>{}</Prefix><Marker>{}</Marker><MaxKeys>{max}</MaxKeys>",
        xml_escape(&b.name),
        enc.text(&prefix),
        enc.text(&marker)
    );
    if let Some(d) = &delimiter {
        let _ = write!(xml, "<Delimiter>{}</Delimiter>", enc.text(d));
    }
    let _ = write!(xml, "<IsTruncated>{}</IsTruncated>", listing.is_truncated);
    if listing.is_truncated && delimiter.is_some() {
        if let Some(next) = last_listed(&listing) {
            let _ = write!(xml, "<NextMarker>{}</NextMarker>", enc.text(&next));
        }
    }
    contents_xml(
        &mut xml,
        &listing.objects,
        &enc,
        Some(&state.settings.account_id),
    );
    finish_listing(xml, &listing, &enc)
}

async fn list_objects_v2(
    state: &AppState,
    bucket: &str,
    query: &BTreeMap<String, String>,
) -> Result<Response, AwsError> {
    let b = bucket_of(state, bucket)?;
    let enc = encoder(query)?;
    let prefix = query.get("prefix").cloned().unwrap_or_default();
    let delimiter = query.get("delimiter").cloned().filter(|d| !d.is_empty());
    let max = max_keys(query)?;
    let token = query.get("continuation-token").cloned();
    let start_after = query.get("start-after").cloned().filter(|s| !s.is_empty());
    let after = match &token {
        Some(t) => Some(
            hex::decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    AwsError::client(
                        "InvalidArgument",
                        "The continuation token provided is incorrect",
                    )
                })?,
        ),
        None => start_after.clone(),
    };
    let listing = state
        .store
        .list(bucket, &prefix, delimiter.as_deref(), after.as_deref(), max)
        .await
        .map_err(store_error)?;
    let fetch_owner = query.get("fetch-owner").map(String::as_str) == Some("true");
    let mut xml =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"{S3_NS}\">");
    let _ = write!(
        xml,
        "<Name>{}</Name><Prefix>{}</Prefix><KeyCount>{}</KeyCount><MaxKeys>{max}</MaxKeys>",
        xml_escape(&b.name),
        enc.text(&prefix),
        listing.objects.len() + listing.common_prefixes.len()
    );
    if let Some(d) = &delimiter {
        let _ = write!(xml, "<Delimiter>{}</Delimiter>", enc.text(d));
    }
    let _ = write!(xml, "<IsTruncated>{}</IsTruncated>", listing.is_truncated);
    if let Some(t) = &token {
        let _ = write!(
            xml,
            "<ContinuationToken>{}</ContinuationToken>",
            xml_escape(t)
        );
    }
    if listing.is_truncated {
        if let Some(next) = last_listed(&listing) {
            let _ = write!(
                xml,
                "<NextContinuationToken>{}</NextContinuationToken>",
                hex::encode(next.as_bytes())
            );
        }
    }
    if let Some(s) = &start_after {
        let _ = write!(xml, "<StartAfter>{}</StartAfter>", enc.text(s));
    }
    let owner = fetch_owner.then_some(state.settings.account_id.as_str());
    contents_xml(&mut xml, &listing.objects, &enc, owner);
    finish_listing(xml, &listing, &enc)
}

/// The common tail of both listing versions: common prefixes, encoding, close.
fn finish_listing(
    mut xml: String,
    listing: &cairn_store::ListObjectsOutput,
    enc: &Encoder,
) -> Result<Response, AwsError> {
    for p in &listing.common_prefixes {
        let _ = write!(
            xml,
            "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
            enc.text(p)
        );
    }
    if enc.url {
        xml.push_str("<EncodingType>url</EncodingType>");
    }
    xml.push_str("</ListBucketResult>");
    Ok(xml_response(StatusCode::OK, xml))
}

/// The key a truncated listing continues after: its last key or common prefix.
fn last_listed(listing: &cairn_store::ListObjectsOutput) -> Option<String> {
    let last_key = listing.objects.last().map(|o| o.key.clone());
    let last_prefix = listing.common_prefixes.last().cloned();
    [last_key, last_prefix].into_iter().flatten().max()
}

/// Parses a single-range `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`).
/// Anything else is ignored, as S3 does, and the whole object is returned.
fn parse_range(headers: &HeaderMap) -> Option<GetRange> {
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

async fn get_object(
    state: &AppState,
    bucket: &str,
    key: &str,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, AwsError> {
    bucket_of(state, bucket)?;
    let range = if head { None } else { parse_range(headers) };
    let ranged = range.is_some();
    let (body, info, returned) = if head {
        let info = state.store.head(bucket, key).await.map_err(store_error)?;
        let size = info.size;
        (Bytes::new(), info, 0..size)
    } else {
        let out = state
            .store
            .get(bucket, key, range)
            .await
            .map_err(store_error)?;
        (out.body, out.info, out.range)
    };
    let status = if ranged {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let length = if head { info.size } else { body.len() as u64 };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&length.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&quote_etag(info.e_tag.as_deref())) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(
        &info
            .last_modified
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string(),
    ) {
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
        let name = format!("x-amz-meta-{}", name.to_ascii_lowercase());
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.insert(n, v);
        }
    }
    Ok(response)
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
    fn test_url_encoding_of_keys() {
        let enc = Encoder { url: true };
        assert_eq!(enc.text("a b/c+d"), "a%20b/c%2Bd");
    }
}
