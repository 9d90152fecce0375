//! Multipart uploads: CreateMultipartUpload, UploadPart,
//! CompleteMultipartUpload, AbortMultipartUpload, ListParts and
//! ListMultipartUploads.

use std::collections::BTreeSet;
use std::fmt::Write;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use cairn_store::{MAX_PART_NUMBER, PartChecksum, Upload};

use super::integrity::ChecksumAlgorithm;
use super::objects::{
    attributes_from_headers, check_copy_conditions, copy_source, etag_response, parse_range,
    upload_body,
};
use super::xml::{
    Encoder, MAX_XML_BYTES, S3_NS, XML_DECL, malformed_xml, owner_xml, parse_document, quote_etag,
    s3_time, xml_response,
};
use super::{MAX_OBJECT_UPLOAD_BYTES, S3Request, bucket_of, store_error};
use crate::error::{AwsError, xml_escape};

/// The most parts or uploads one listing page holds.
const MAX_LISTED: usize = 1000;

fn upload_id<'r>(r: &'r S3Request<'_>) -> &'r str {
    r.query.get("uploadId").map(String::as_str).unwrap_or("")
}

fn no_such_upload() -> AwsError {
    store_error(cairn_store::Error::NoSuchUpload {
        bucket: String::new(),
        upload_id: String::new(),
    })
}

/// The upload the request names, which must be for the request's key.
async fn this_upload(r: &S3Request<'_>) -> Result<Upload, AwsError> {
    let upload = r
        .state
        .store
        .upload(&r.bucket, upload_id(r))
        .await
        .map_err(store_error)?;
    if upload.key != r.key {
        return Err(no_such_upload());
    }
    Ok(upload)
}

fn initiator_and_owner(account: &str) -> String {
    format!(
        "<Initiator><ID>{}</ID><DisplayName>{}</DisplayName></Initiator>{}",
        xml_escape(account),
        xml_escape(account),
        owner_xml(account)
    )
}

fn bounded(query_value: Option<&String>, name: &str) -> Result<usize, AwsError> {
    match query_value {
        None => Ok(MAX_LISTED),
        Some(v) => v.parse::<usize>().map(|n| n.min(MAX_LISTED)).map_err(|_| {
            AwsError::client(
                "InvalidArgument",
                format!("Provided {name} not an integer or within integer range"),
            )
        }),
    }
}

/// A full-object checksum of a multipart upload (`x-amz-checksum-type:
/// FULL_OBJECT`, or a whole-object `x-amz-checksum-*` on completion) would
/// need the assembled object's checksum, which Cairn does not compute: refused,
/// never ignored.
fn refuse_full_object_checksum(r: &S3Request<'_>, operation: &str) -> Result<(), AwsError> {
    let full_object = r
        .header("x-amz-checksum-type")
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("FULL_OBJECT"));
    let whole_value = operation == "CompleteMultipartUpload"
        && ChecksumAlgorithm::ALL
            .into_iter()
            .any(|a| r.parts.headers.contains_key(a.header()));
    if full_object || whole_value {
        return Err(AwsError::with_status(
            "NotImplemented",
            format!("{operation} with a full-object checksum is not implemented by this server."),
            StatusCode::NOT_IMPLEMENTED,
        ));
    }
    Ok(())
}

pub(super) async fn create_multipart_upload(r: &S3Request<'_>) -> Result<Response, AwsError> {
    refuse_full_object_checksum(r, "CreateMultipartUpload")?;
    let attributes = attributes_from_headers(&r.parts.headers)?;
    let upload = r
        .state
        .store
        .create_upload(&r.bucket, &r.key, attributes)
        .await
        .map_err(store_error)?;
    Ok(xml_response(
        StatusCode::OK,
        format!(
            "{XML_DECL}<InitiateMultipartUploadResult xmlns=\"{S3_NS}\"><Bucket>{}</Bucket><Key>{}</Key><UploadId>{}</UploadId></InitiateMultipartUploadResult>",
            xml_escape(&r.bucket),
            xml_escape(&r.key),
            xml_escape(&upload.upload_id)
        ),
    ))
}

fn part_number(r: &S3Request<'_>) -> Result<u32, AwsError> {
    r.query
        .get("partNumber")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            AwsError::client(
                "InvalidArgument",
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })
}

pub(super) async fn upload_part(r: &S3Request<'_>) -> Result<Response, AwsError> {
    let number = part_number(r)?;
    this_upload(r).await?;
    let (body, checksum) = upload_body(r).await?;
    let part_checksum = checksum.as_ref().map(|c| PartChecksum {
        algorithm: c.algorithm.name().to_ascii_lowercase(),
        value: c.value.clone(),
    });
    let etag = r
        .state
        .store
        .put_part(
            &r.bucket,
            upload_id(r),
            number,
            body,
            part_checksum.as_ref(),
        )
        .await
        .map_err(store_error)?;
    Ok(etag_response(&etag, checksum.as_ref()))
}

/// UploadPartCopy: a part copied from a byte range (`x-amz-copy-source-range`)
/// of an existing object. The range is read into memory, so a copied part is
/// bounded like an uploaded one.
pub(super) async fn upload_part_copy(r: &S3Request<'_>) -> Result<Response, AwsError> {
    let number = part_number(r)?;
    this_upload(r).await?;
    let (source_bucket, source_key) = copy_source(r.header("x-amz-copy-source").unwrap_or(""))?;
    bucket_of(r.state, &source_bucket)?;
    let range = match r.header("x-amz-copy-source-range") {
        None => None,
        Some(value) => {
            let mut as_range = axum::http::HeaderMap::new();
            if let Ok(v) = axum::http::HeaderValue::from_str(value) {
                as_range.insert(axum::http::header::RANGE, v);
            }
            Some(parse_range(&as_range).ok_or_else(|| {
                AwsError::client(
                    "InvalidArgument",
                    "The x-amz-copy-source-range value must be of the form bytes=first-last where \
                     first and last are the zero-based offsets of the first and last bytes to copy",
                )
            })?)
        }
    };
    let source = r
        .state
        .store
        .head(&source_bucket, &source_key)
        .await
        .map_err(store_error)?;
    check_copy_conditions(r, &source)?;
    let length = match &range {
        Some(cairn_store::GetRange::Bounded(b)) => b.end.saturating_sub(b.start),
        _ => source.size,
    };
    if length > MAX_OBJECT_UPLOAD_BYTES as u64 {
        return Err(AwsError::client(
            "EntityTooLarge",
            format!(
                "Your proposed upload exceeds the maximum allowed size ({MAX_OBJECT_UPLOAD_BYTES} \
                 bytes per copied part on this server)."
            ),
        ));
    }
    let got = r
        .state
        .store
        .get(&source_bucket, &source_key, range)
        .await
        .map_err(store_error)?;
    let etag = r
        .state
        .store
        .put_part(&r.bucket, upload_id(r), number, got.body, None)
        .await
        .map_err(store_error)?;
    Ok(xml_response(
        StatusCode::OK,
        format!(
            "{XML_DECL}<CopyPartResult xmlns=\"{S3_NS}\"><LastModified>{}</LastModified><ETag>{}</ETag></CopyPartResult>",
            s3_time(chrono::Utc::now()),
            xml_escape(&quote_etag(Some(&etag)))
        ),
    ))
}

pub(super) async fn complete_multipart_upload(r: &S3Request<'_>) -> Result<Response, AwsError> {
    this_upload(r).await?;
    refuse_full_object_checksum(r, "CompleteMultipartUpload")?;
    if r.body.len() > MAX_XML_BYTES {
        return Err(malformed_xml());
    }
    let doc = parse_document(&r.body)?;
    if doc.root != "CompleteMultipartUpload" {
        return Err(malformed_xml());
    }
    let mut chosen = Vec::new();
    for (name, fields) in &doc.records {
        if name != "Part" {
            continue;
        }
        let number = fields
            .get("PartNumber")
            .and_then(|n| n.trim().parse::<u32>().ok())
            .ok_or_else(malformed_xml)?;
        let etag = fields.get("ETag").ok_or_else(malformed_xml)?;
        let claimed = ChecksumAlgorithm::ALL.into_iter().find_map(|a| {
            fields
                .get(&format!("Checksum{}", a.name()))
                .map(|value| PartChecksum {
                    algorithm: a.name().to_ascii_lowercase(),
                    value: value.trim().to_owned(),
                })
        });
        chosen.push((number, etag.trim().to_owned(), claimed));
    }
    if chosen.is_empty() {
        return Err(AwsError::client(
            "InvalidRequest",
            "You must specify at least one part",
        ));
    }
    let (upload, etag) = r
        .state
        .store
        .complete_upload(&r.bucket, upload_id(r), &chosen)
        .await
        .map_err(store_error)?;
    let host = r.header("host").unwrap_or("localhost");
    Ok(xml_response(
        StatusCode::OK,
        format!(
            "{XML_DECL}<CompleteMultipartUploadResult xmlns=\"{S3_NS}\"><Location>http://{}/{}/{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
            xml_escape(host),
            xml_escape(&r.bucket),
            xml_escape(&upload.key),
            xml_escape(&r.bucket),
            xml_escape(&upload.key),
            xml_escape(&quote_etag(Some(&etag)))
        ),
    ))
}

pub(super) async fn abort_multipart_upload(r: &S3Request<'_>) -> Result<Response, AwsError> {
    this_upload(r).await?;
    r.state
        .store
        .abort_upload(&r.bucket, upload_id(r))
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_parts(r: &S3Request<'_>) -> Result<Response, AwsError> {
    this_upload(r).await?;
    let max = bounded(r.query.get("max-parts"), "max-parts")?;
    let marker: u32 = match r.query.get("part-number-marker") {
        None => 0,
        Some(m) => m.parse().map_err(|_| {
            AwsError::client(
                "InvalidArgument",
                "Provided part-number-marker not an integer or within integer range",
            )
        })?,
    };
    let parts = r
        .state
        .store
        .list_parts(&r.bucket, upload_id(r))
        .await
        .map_err(store_error)?;
    let after: Vec<_> = parts.iter().filter(|p| p.part_number > marker).collect();
    let truncated = after.len() > max;
    let page = &after[..after.len().min(max)];
    let mut xml = format!(
        "{XML_DECL}<ListPartsResult xmlns=\"{S3_NS}\"><Bucket>{}</Bucket><Key>{}</Key><UploadId>{}</UploadId>",
        xml_escape(&r.bucket),
        xml_escape(&r.key),
        xml_escape(upload_id(r))
    );
    xml.push_str(&initiator_and_owner(&r.state.settings.account_id));
    let _ = write!(
        xml,
        "<StorageClass>STANDARD</StorageClass><PartNumberMarker>{marker}</PartNumberMarker>"
    );
    if let Some(last) = page.last() {
        let _ = write!(
            xml,
            "<NextPartNumberMarker>{}</NextPartNumberMarker>",
            last.part_number
        );
    }
    let _ = write!(
        xml,
        "<MaxParts>{max}</MaxParts><IsTruncated>{truncated}</IsTruncated>"
    );
    for p in page {
        let _ = write!(
            xml,
            "<Part><PartNumber>{}</PartNumber><LastModified>{}</LastModified><ETag>{}</ETag><Size>{}</Size>",
            p.part_number,
            s3_time(p.last_modified),
            xml_escape(&quote_etag(Some(&p.e_tag))),
            p.size
        );
        if let Some(c) = &p.checksum
            && let Some(a) = ChecksumAlgorithm::ALL
                .into_iter()
                .find(|a| a.name().eq_ignore_ascii_case(&c.algorithm))
        {
            let name = a.name();
            let _ = write!(
                xml,
                "<Checksum{name}>{}</Checksum{name}>",
                xml_escape(&c.value)
            );
        }
        xml.push_str("</Part>");
    }
    xml.push_str("</ListPartsResult>");
    Ok(xml_response(StatusCode::OK, xml))
}

pub(super) async fn list_multipart_uploads(r: &S3Request<'_>) -> Result<Response, AwsError> {
    let enc = Encoder::from_query(&r.query)?;
    let max = bounded(r.query.get("max-uploads"), "max-uploads")?;
    let prefix = r.query.get("prefix").cloned().unwrap_or_default();
    let delimiter = r.query.get("delimiter").cloned().filter(|d| !d.is_empty());
    let key_marker = r.query.get("key-marker").cloned().unwrap_or_default();
    let upload_id_marker = r.query.get("upload-id-marker").cloned().unwrap_or_default();
    let uploads = r
        .state
        .store
        .list_uploads(&r.bucket)
        .await
        .map_err(store_error)?;
    let mut listed: Vec<&Upload> = Vec::new();
    let mut prefixes: BTreeSet<String> = BTreeSet::new();
    let mut truncated = false;
    for upload in &uploads {
        if !upload.key.starts_with(&prefix) {
            continue;
        }
        let past_marker = key_marker.is_empty()
            || upload.key > key_marker
            || (upload.key == key_marker
                && !upload_id_marker.is_empty()
                && upload.upload_id > upload_id_marker);
        if !past_marker {
            continue;
        }
        let rolled = delimiter.as_deref().and_then(|d| {
            upload.key[prefix.len()..]
                .find(d)
                .map(|i| upload.key[..prefix.len() + i + d.len()].to_owned())
        });
        if rolled.as_ref().is_some_and(|p| prefixes.contains(p)) {
            continue;
        }
        if listed.len() + prefixes.len() == max {
            truncated = true;
            break;
        }
        match rolled {
            Some(p) => {
                prefixes.insert(p);
            }
            None => listed.push(upload),
        }
    }
    let mut xml = format!(
        "{XML_DECL}<ListMultipartUploadsResult xmlns=\"{S3_NS}\"><Bucket>{}</Bucket><KeyMarker>{}</KeyMarker><UploadIdMarker>{}</UploadIdMarker>",
        xml_escape(&r.bucket),
        enc.text(&key_marker),
        xml_escape(&upload_id_marker)
    );
    if truncated && let Some(last) = listed.last() {
        let _ = write!(
            xml,
            "<NextKeyMarker>{}</NextKeyMarker><NextUploadIdMarker>{}</NextUploadIdMarker>",
            enc.text(&last.key),
            xml_escape(&last.upload_id)
        );
    }
    let _ = write!(
        xml,
        "<Prefix>{}</Prefix><MaxUploads>{max}</MaxUploads><IsTruncated>{truncated}</IsTruncated>",
        enc.text(&prefix)
    );
    if let Some(d) = &delimiter {
        let _ = write!(xml, "<Delimiter>{}</Delimiter>", enc.text(d));
    }
    for upload in listed {
        let _ = write!(
            xml,
            "<Upload><Key>{}</Key><UploadId>{}</UploadId>{}<StorageClass>STANDARD</StorageClass><Initiated>{}</Initiated></Upload>",
            enc.text(&upload.key),
            xml_escape(&upload.upload_id),
            initiator_and_owner(&r.state.settings.account_id),
            s3_time(upload.initiated)
        );
    }
    for p in &prefixes {
        let _ = write!(
            xml,
            "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
            enc.text(p)
        );
    }
    if enc.url {
        xml.push_str("<EncodingType>url</EncodingType>");
    }
    xml.push_str("</ListMultipartUploadsResult>");
    Ok(xml_response(StatusCode::OK, xml))
}
