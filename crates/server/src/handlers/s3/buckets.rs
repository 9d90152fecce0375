//! Bucket operations: ListBuckets, CreateBucket, DeleteBucket, GetBucketLocation.

use std::fmt::Write;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use cairn_meta::Bucket;

use super::xml::{S3_NS, XML_DECL, owner_xml, parse_document, s3_time, xml_response};
use super::{S3Request, bucket_of, store_error};
use crate::error::{AwsError, xml_escape};
use crate::handlers::cloudtrail::valid_bucket_name;

/// The region S3 reports as an empty location constraint.
const US_EAST_1: &str = "us-east-1";

pub(super) fn list_buckets(r: &S3Request<'_>) -> Result<Response, AwsError> {
    let buckets = r.state.meta.buckets().map_err(AwsError::internal)?;
    let mut xml = format!("{XML_DECL}<ListAllMyBucketsResult xmlns=\"{S3_NS}\">");
    xml.push_str(&owner_xml(&r.ctx.account_id));
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

pub(super) fn create_bucket(r: &S3Request<'_>) -> Result<Response, AwsError> {
    let name = r.bucket.as_str();
    if !valid_bucket_name(name) {
        return Err(AwsError::client(
            "InvalidBucketName",
            "The specified bucket is not valid.",
        ));
    }
    let region = if r.body.iter().all(u8::is_ascii_whitespace) {
        US_EAST_1.to_owned()
    } else {
        let doc = parse_document(&r.body)?;
        if doc.root != "CreateBucketConfiguration" {
            return Err(super::xml::malformed_xml());
        }
        doc.fields
            .get("LocationConstraint")
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| US_EAST_1.to_owned())
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
    match r.state.meta.create_bucket(&bucket) {
        Ok(()) => {}
        // us-east-1 answers 200 to an owner re-creating its bucket; other regions 409.
        Err(cairn_meta::Error::AlreadyExists(_)) if region == US_EAST_1 => {}
        Err(cairn_meta::Error::AlreadyExists(_)) => {
            return Err(AwsError::with_status(
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
                StatusCode::CONFLICT,
            ));
        }
        Err(e) => return Err(AwsError::internal(e)),
    }
    // A trail parked on this missing bucket can deliver now.
    r.state.pipeline.configuration_changed();
    let mut response = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/{name}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

pub(super) async fn delete_bucket(r: &S3Request<'_>) -> Result<Response, AwsError> {
    let name = r.bucket.as_str();
    let listing = r
        .state
        .store
        .list(name, "", None, None, 1)
        .await
        .map_err(store_error)?;
    let uploads = r
        .state
        .store
        .list_uploads(name)
        .await
        .map_err(store_error)?;
    if !listing.objects.is_empty() || !uploads.is_empty() {
        return Err(AwsError::with_status(
            "BucketNotEmpty",
            "The bucket you tried to delete is not empty",
            StatusCode::CONFLICT,
        ));
    }
    let in_use = r
        .state
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
    r.state
        .meta
        .delete_bucket(name)
        .map_err(AwsError::internal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) fn location(r: &S3Request<'_>) -> Result<Response, AwsError> {
    let bucket = bucket_of(r.state, &r.bucket)?;
    // us-east-1 is reported as an empty constraint, as S3 does.
    let constraint = if bucket.region == US_EAST_1 {
        String::new()
    } else {
        xml_escape(&bucket.region)
    };
    Ok(xml_response(
        StatusCode::OK,
        format!(
            "{XML_DECL}<LocationConstraint xmlns=\"{S3_NS}\">{constraint}</LocationConstraint>"
        ),
    ))
}
