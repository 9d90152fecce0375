//! Upload integrity: `Content-MD5` and the flexible checksums
//! (`x-amz-checksum-crc32`, `-crc32c`, `-crc64nvme`, `-sha1`, `-sha256`).
//!
//! Over plain HTTP botocore 1.43 sends PutObject and UploadPart bodies whole,
//! signed (`x-amz-content-sha256` is the body's SHA-256), with
//! `x-amz-checksum-crc32` and `x-amz-sdk-checksum-algorithm: CRC32` by default
//! (`request_checksum_calculation = when_supported`); over HTTPS it sends
//! `aws-chunked` bodies with the checksum in a trailer (see `chunked`). Either
//! way the checksum is verified over the decoded bytes before anything is
//! stored, and echoed back as S3 does.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::AwsError;

/// A flexible checksum algorithm S3 knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChecksumAlgorithm {
    /// CRC-32 (ISO-HDLC), as zlib computes it.
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl ChecksumAlgorithm {
    /// Every algorithm.
    pub(crate) const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];

    /// The header that carries it.
    pub(crate) fn header(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
            ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
            ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// S3's name in messages and `x-amz-sdk-checksum-algorithm`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
        }
    }

    /// The algorithm a header or trailer name carries.
    pub(crate) fn from_header(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.header().eq_ignore_ascii_case(name.trim()))
    }

    /// The base64 checksum of `data`.
    pub(crate) fn compute(self, data: &[u8]) -> String {
        let raw: Vec<u8> = match self {
            ChecksumAlgorithm::Crc32 => crc32fast::hash(data).to_be_bytes().to_vec(),
            ChecksumAlgorithm::Crc32c => crc32c::crc32c(data).to_be_bytes().to_vec(),
            ChecksumAlgorithm::Crc64Nvme => crc::Crc::<u64>::new(&crc::CRC_64_NVME)
                .checksum(data)
                .to_be_bytes()
                .to_vec(),
            ChecksumAlgorithm::Sha1 => Sha1::digest(data).to_vec(),
            ChecksumAlgorithm::Sha256 => Sha256::digest(data).to_vec(),
        };
        STANDARD.encode(raw)
    }

    fn raw_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
            ChecksumAlgorithm::Crc64Nvme => 8,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }
}

/// A checksum the client sent, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifiedChecksum {
    /// The algorithm.
    pub(crate) algorithm: ChecksumAlgorithm,
    /// The base64 value.
    pub(crate) value: String,
}

/// Checks one checksum value against `data`: S3's `InvalidRequest` when the
/// value cannot be one of that algorithm, `BadDigest` when it differs.
pub(crate) fn verify_checksum(
    algorithm: ChecksumAlgorithm,
    value: &str,
    data: &[u8],
) -> Result<VerifiedChecksum, AwsError> {
    let value = value.trim();
    let decodes = STANDARD
        .decode(value)
        .is_ok_and(|raw| raw.len() == algorithm.raw_len());
    if !decodes {
        return Err(AwsError::client(
            "InvalidRequest",
            format!("Value for {} header is invalid.", algorithm.header()),
        ));
    }
    if algorithm.compute(data) != value {
        return Err(AwsError::client(
            "BadDigest",
            format!(
                "The {} you specified did not match the calculated checksum.",
                algorithm.name()
            ),
        ));
    }
    Ok(VerifiedChecksum {
        algorithm,
        value: value.to_owned(),
    })
}

/// Verifies `Content-MD5` and any `x-amz-checksum-*` header against the
/// (decoded) body. At most one checksum header may be sent, as on S3.
pub(crate) fn verify_upload(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<VerifiedChecksum>, AwsError> {
    if let Some(md5) = headers.get("content-md5") {
        let expected = md5
            .to_str()
            .ok()
            .and_then(|v| STANDARD.decode(v.trim()).ok())
            .filter(|raw| raw.len() == 16)
            .ok_or_else(|| {
                AwsError::client(
                    "InvalidDigest",
                    "The Content-MD5 you specified was not valid.",
                )
            })?;
        if Md5::digest(body).as_slice() != expected.as_slice() {
            return Err(AwsError::client(
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    let sent: Vec<(ChecksumAlgorithm, &str)> = ChecksumAlgorithm::ALL
        .into_iter()
        .filter_map(|a| {
            headers
                .get(a.header())
                .map(|v| (a, v.to_str().unwrap_or("")))
        })
        .collect();
    match sent.as_slice() {
        [] => Ok(None),
        [(algorithm, value)] => verify_checksum(*algorithm, value, body).map(Some),
        _ => Err(AwsError::client(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn test_checksums_match_known_values() {
        // Values S3's documentation and botocore give for b"hello world".
        let data = b"hello world";
        assert_eq!(ChecksumAlgorithm::Crc32.compute(data), "DUoRhQ==");
        assert_eq!(ChecksumAlgorithm::Crc32c.compute(data), "yZRlqg==");
        assert_eq!(ChecksumAlgorithm::Crc64Nvme.compute(data), "jSnVw/bqjr4=");
        assert_eq!(
            ChecksumAlgorithm::Sha1.compute(data),
            "Kq5sNclPz7QV2+lfQIuc6R7oRu0="
        );
        assert_eq!(
            ChecksumAlgorithm::Sha256.compute(data),
            "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="
        );
    }

    #[test]
    fn test_verify_upload() {
        let mut h = HeaderMap::new();
        assert_eq!(verify_upload(&h, b"x").unwrap(), None);
        h.insert(
            "content-md5",
            HeaderValue::from_static("XrY7u+Ae7tCTyyK7j1rNww=="),
        );
        verify_upload(&h, b"hello world").unwrap();
        assert_eq!(verify_upload(&h, b"hello").unwrap_err().code, "BadDigest");
        h.insert("content-md5", HeaderValue::from_static("nope"));
        assert_eq!(verify_upload(&h, b"x").unwrap_err().code, "InvalidDigest");
        h.remove("content-md5");
        h.insert("x-amz-checksum-crc32", HeaderValue::from_static("DUoRhQ=="));
        let ok = verify_upload(&h, b"hello world").unwrap().unwrap();
        assert_eq!(ok.algorithm, ChecksumAlgorithm::Crc32);
        assert_eq!(verify_upload(&h, b"hello").unwrap_err().code, "BadDigest");
        h.insert("x-amz-checksum-crc32", HeaderValue::from_static("AAAA"));
        assert_eq!(verify_upload(&h, b"x").unwrap_err().code, "InvalidRequest");
    }
}
