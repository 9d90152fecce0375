//! `aws-chunked` request bodies (`Content-Encoding: aws-chunked`,
//! `x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER`), as botocore
//! sends PutObject and UploadPart over HTTPS:
//!
//! ```text
//! <hex size>[;chunk-signature=<sig>]\r\n<bytes>\r\n ... 0\r\n
//! <trailer name>:<value>\r\n ... \r\n
//! ```
//!
//! Chunk-signed streaming (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`) is refused
//! by authentication before a body gets here, so chunk signatures are
//! skipped, not trusted.

use axum::http::HeaderMap;
use bytes::{Bytes, BytesMut};

use super::integrity::{ChecksumAlgorithm, VerifiedChecksum, verify_checksum};
use crate::error::AwsError;

/// The decoded body and what its trailer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// The payload.
    pub(crate) body: Bytes,
    /// The trailer's checksum, verified against the payload.
    pub(crate) checksum: Option<VerifiedChecksum>,
}

/// Whether a request's body is `aws-chunked`.
pub(crate) fn is_aws_chunked(headers: &HeaderMap) -> bool {
    let encoded = headers
        .get_all("content-encoding")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| e.trim().eq_ignore_ascii_case("aws-chunked"));
    let streaming = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"));
    encoded || streaming
}

fn incomplete() -> AwsError {
    AwsError::client("IncompleteBody", "The request body terminated unexpectedly")
}

fn take_line(data: &[u8], at: &mut usize) -> Result<Vec<u8>, AwsError> {
    let rest = &data[*at..];
    let end = rest
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or_else(incomplete)?;
    *at += end + 2;
    Ok(rest[..end].to_vec())
}

/// Decodes an `aws-chunked` body, checks `x-amz-decoded-content-length`, and
/// verifies the trailing checksum named by `x-amz-trailer`.
pub(crate) fn decode(headers: &HeaderMap, data: &[u8]) -> Result<Decoded, AwsError> {
    let mut at = 0usize;
    let mut body = BytesMut::new();
    loop {
        let line = take_line(data, &mut at)?;
        let line = String::from_utf8(line).map_err(|_| incomplete())?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| incomplete())?;
        if size == 0 {
            break;
        }
        let end = at.checked_add(size).ok_or_else(incomplete)?;
        if end + 2 > data.len() || &data[end..end + 2] != b"\r\n" {
            return Err(incomplete());
        }
        body.extend_from_slice(&data[at..end]);
        at = end + 2;
    }
    let mut trailers = Vec::new();
    while at < data.len() {
        let line = take_line(data, &mut at)?;
        if line.is_empty() {
            break;
        }
        let line = String::from_utf8(line).map_err(|_| incomplete())?;
        let (name, value) = line.split_once(':').ok_or_else(incomplete)?;
        trailers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    if let Some(declared) = headers.get("x-amz-decoded-content-length") {
        let declared: usize = declared
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(incomplete)?;
        if declared != body.len() {
            return Err(incomplete());
        }
    }
    let announced = headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let mut checksum = None;
    if let Some(name) = announced {
        let algorithm = ChecksumAlgorithm::from_header(&name).ok_or_else(|| {
            AwsError::client(
                "InvalidRequest",
                format!("The value specified in the x-amz-trailer header is not supported: {name}"),
            )
        })?;
        let value = trailers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(incomplete)?;
        checksum = Some(verify_checksum(algorithm, value, &body)?);
    }
    Ok(Decoded {
        body: body.freeze(),
        checksum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
        h.insert(
            "x-amz-trailer",
            HeaderValue::from_static("x-amz-checksum-crc32"),
        );
        h.insert(
            "x-amz-decoded-content-length",
            HeaderValue::from_static("11"),
        );
        h
    }

    #[test]
    fn test_decode_with_trailer() {
        let h = headers();
        assert!(is_aws_chunked(&h));
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        let decoded = decode(&h, body).unwrap();
        assert_eq!(&decoded.body[..], b"hello world");
        assert_eq!(decoded.checksum.unwrap().value, "DUoRhQ==");
        let bad = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        assert_eq!(decode(&h, bad).unwrap_err().code, "BadDigest");
        let short = b"5\r\nhel";
        assert_eq!(decode(&h, short).unwrap_err().code, "IncompleteBody");
    }

    #[test]
    fn test_chunk_signatures_are_skipped() {
        let mut h = headers();
        h.remove("x-amz-trailer");
        let body = b"b;chunk-signature=abc\r\nhello world\r\n0;chunk-signature=def\r\n\r\n";
        assert_eq!(&decode(&h, body).unwrap().body[..], b"hello world");
    }
}
