//! ListObjects (v1) and ListObjectsV2.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::http::StatusCode;
use axum::response::Response;

use super::xml::{Encoder, S3_NS, XML_DECL, owner_xml, quote_etag, s3_time, xml_response};
use super::{S3Request, store_error};
use crate::error::{AwsError, xml_escape};

/// The most keys one listing page holds.
pub(super) const MAX_KEYS: usize = 1000;

pub(super) fn max_keys(query: &BTreeMap<String, String>) -> Result<usize, AwsError> {
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

pub(super) async fn list_objects_v1(r: &S3Request<'_>) -> Result<Response, AwsError> {
    let query = &r.query;
    let enc = Encoder::from_query(query)?;
    let prefix = query.get("prefix").cloned().unwrap_or_default();
    let marker = query.get("marker").cloned().unwrap_or_default();
    let delimiter = query.get("delimiter").cloned().filter(|d| !d.is_empty());
    let max = max_keys(query)?;
    let listing = r
        .state
        .store
        .list(
            &r.bucket,
            &prefix,
            delimiter.as_deref(),
            (!marker.is_empty()).then_some(marker.as_str()),
            max,
        )
        .await
        .map_err(store_error)?;
    let mut xml = format!("{XML_DECL}<ListBucketResult xmlns=\"{S3_NS}\">");
    let _ = write!(
        xml,
        "<Name>{}</Name><Prefix>{}</Prefix><Marker>{}</Marker><MaxKeys>{max}</MaxKeys>",
        xml_escape(&r.bucket),
        enc.text(&prefix),
        enc.text(&marker)
    );
    if let Some(d) = &delimiter {
        let _ = write!(xml, "<Delimiter>{}</Delimiter>", enc.text(d));
    }
    let _ = write!(xml, "<IsTruncated>{}</IsTruncated>", listing.is_truncated);
    if listing.is_truncated
        && delimiter.is_some()
        && let Some(next) = last_listed(&listing)
    {
        let _ = write!(xml, "<NextMarker>{}</NextMarker>", enc.text(&next));
    }
    contents_xml(
        &mut xml,
        &listing.objects,
        &enc,
        Some(&r.state.settings.account_id),
    );
    finish_listing(xml, &listing, &enc)
}

pub(super) async fn list_objects_v2(r: &S3Request<'_>) -> Result<Response, AwsError> {
    let query = &r.query;
    let enc = Encoder::from_query(query)?;
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
    let listing = r
        .state
        .store
        .list(
            &r.bucket,
            &prefix,
            delimiter.as_deref(),
            after.as_deref(),
            max,
        )
        .await
        .map_err(store_error)?;
    let fetch_owner = query.get("fetch-owner").map(String::as_str) == Some("true");
    let mut xml = format!("{XML_DECL}<ListBucketResult xmlns=\"{S3_NS}\">");
    let _ = write!(
        xml,
        "<Name>{}</Name><Prefix>{}</Prefix><KeyCount>{}</KeyCount><MaxKeys>{max}</MaxKeys>",
        xml_escape(&r.bucket),
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
    if listing.is_truncated
        && let Some(next) = last_listed(&listing)
    {
        let _ = write!(
            xml,
            "<NextContinuationToken>{}</NextContinuationToken>",
            hex::encode(next.as_bytes())
        );
    }
    if let Some(s) = &start_after {
        let _ = write!(xml, "<StartAfter>{}</StartAfter>", enc.text(s));
    }
    let owner = fetch_owner.then_some(r.state.settings.account_id.as_str());
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
