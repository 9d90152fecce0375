//! Checking one log file: gunzip its first gzip member while hashing, as the
//! AWS CLI does with `zlib.decompressobj(MAX_WBITS | 16)`.

use std::io::{BufRead, ErrorKind, Read};

use flate2::bufread::GzDecoder;
use sha2::{Digest, Sha256};

/// What became of a log file named in a valid digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogVerdict {
    /// Its uncompressed SHA-256 is the `hashValue` the digest records.
    Valid,
    /// It decompresses, but to other bytes.
    HashMismatch,
    /// The object does not exist (`NoSuchKey`).
    NotFound,
    /// It is not gzip, or its gzip checksum is wrong.
    InvalidFormat,
    /// Bytes follow the end of its first gzip member (what the AWS CLI
    /// reports since mid-2026; earlier releases hashed only the first member).
    TrailingData,
    /// The store failed in a way that ends the whole run, as a non-`NoSuchKey`
    /// S3 error ends the AWS CLI's.
    Fatal(String),
}

impl LogVerdict {
    /// The text after `INVALID: ` in the AWS CLI's line, or `None` when valid or fatal.
    pub fn invalid_reason(&self) -> Option<&'static str> {
        match self {
            Self::Valid | Self::Fatal(_) => None,
            Self::HashMismatch => Some("hash value doesn't match"),
            Self::NotFound => Some("not found"),
            Self::InvalidFormat => Some("invalid format"),
            Self::TrailingData => Some("unexpected data after end of compressed stream"),
        }
    }
}

/// Hashes the first gzip member of `compressed` and compares it with `expected_hex`.
///
/// A stream cut short is hashed as far as it goes (zlib's `decompressobj`
/// raises nothing for it), so it reads as a hash mismatch; corrupt data or a
/// wrong CRC reads as an invalid format.
pub fn check_log<R: BufRead>(compressed: R, expected_hex: &str) -> LogVerdict {
    thread_local! {
        // One inflate buffer per thread: zeroing a fresh one per file costs as
        // much as hashing a small file.
        static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 128 * 1024]);
    }
    BUFFER.with(|buffer| check_log_with(compressed, expected_hex, &mut buffer.borrow_mut()))
}

fn check_log_with<R: BufRead>(compressed: R, expected_hex: &str, buffer: &mut [u8]) -> LogVerdict {
    let mut decoder = GzDecoder::new(compressed);
    let mut hasher = Sha256::new();
    let mut complete = true;
    loop {
        match decoder.read(buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                complete = false;
                break;
            }
            Err(_) => return LogVerdict::InvalidFormat,
        }
    }
    if complete {
        let mut rest = decoder.into_inner();
        match rest.fill_buf() {
            Ok(bytes) if !bytes.is_empty() => return LogVerdict::TrailingData,
            Ok(_) => {}
            Err(_) => return LogVerdict::InvalidFormat,
        }
    }
    if hex::encode(hasher.finalize()) == expected_hex {
        LogVerdict::Valid
    } else {
        LogVerdict::HashMismatch
    }
}

/// Gunzips the first member of a digest file whole, as `zlib.decompress` does
/// (a cut-short stream is an error here; trailing bytes are ignored).
pub fn gunzip_digest(compressed: &[u8], limit: u64) -> Option<Vec<u8>> {
    let mut decoder = GzDecoder::new(compressed).take(limit.saturating_add(1));
    let mut out = Vec::new();
    decoder.read_to_end(&mut out).ok()?;
    (out.len() as u64 <= limit).then_some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::document::{gzip, sha256_hex};

    #[test]
    fn test_log_verdicts_follow_zlib() {
        let body = b"{\"Records\":[]}".to_vec();
        let hash = sha256_hex(&body);
        let gz = gzip(&body);
        assert_eq!(check_log(&gz[..], &hash), LogVerdict::Valid);
        assert_eq!(
            check_log(&gz[..], &sha256_hex(b"x")),
            LogVerdict::HashMismatch
        );
        assert_eq!(
            check_log(&b"not gzip at all"[..], &hash),
            LogVerdict::InvalidFormat
        );
        // A missing trailer: everything was inflated, so the hash still matches.
        assert_eq!(check_log(&gz[..gz.len() - 8], &hash), LogVerdict::Valid);
        // Cut in the middle of the data: a mismatch, not a format error.
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let big_gz = gzip(&big);
        assert_eq!(
            check_log(&big_gz[..big_gz.len() / 2], &sha256_hex(&big)),
            LogVerdict::HashMismatch
        );
        let mut appended = gz.clone();
        appended.extend_from_slice(&gz);
        assert_eq!(check_log(&appended[..], &hash), LogVerdict::TrailingData);
        let mut bad_crc = gz.clone();
        let n = bad_crc.len();
        bad_crc[n - 6] ^= 0xff;
        assert_eq!(check_log(&bad_crc[..], &hash), LogVerdict::InvalidFormat);
        assert_eq!(gunzip_digest(&gz, 1 << 20).unwrap(), body);
        assert!(gunzip_digest(&gz[..gz.len() - 8], 1 << 20).is_none());
    }
}
