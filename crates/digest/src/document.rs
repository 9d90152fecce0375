//! The digest file: its JSON body exactly as CloudTrail writes it, its key,
//! and the string its signature covers.

use std::io::Write as _;

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

use cairn_model::layout::account_root;

use crate::keys::SIGNATURE_ALGORITHM;

/// The hash algorithm named in digests.
pub const HASH_ALGORITHM: &str = "SHA-256";

/// Formats a digest time: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One log file a digest lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestLogFile {
    /// The bucket it was delivered to.
    pub s3_bucket: String,
    /// Its key.
    pub s3_object: String,
    /// Lower-case hex SHA-256 of its uncompressed content.
    pub hash_value: String,
    /// Newest event time in it (`YYYY-MM-DDTHH:MM:SSZ`).
    pub newest_event_time: Option<String>,
    /// Oldest event time in it.
    pub oldest_event_time: Option<String>,
}

/// The previous digest of a chain, as the next one names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousDigest {
    /// Its bucket.
    pub s3_bucket: String,
    /// Its key.
    pub s3_object: String,
    /// Lower-case hex SHA-256 of its uncompressed body.
    pub hash_value: String,
    /// Its signature (hex), as stored in its metadata.
    pub signature: String,
}

/// A digest file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestDocument {
    /// The account the digest is delivered for.
    pub aws_account_id: String,
    /// Start of the delivery-time range covered.
    pub digest_start_time: DateTime<Utc>,
    /// End of it; also the time in the digest's key.
    pub digest_end_time: DateTime<Utc>,
    /// The bucket the digest is delivered to.
    pub digest_s3_bucket: String,
    /// The digest's own key.
    pub digest_s3_object: String,
    /// Fingerprint of the public key whose private key signs it.
    pub public_key_fingerprint: String,
    /// The previous digest; `None` in a chain's starting digest.
    pub previous: Option<PreviousDigest>,
    /// The log files delivered in the range, in delivery order.
    pub log_files: Vec<DigestLogFile>,
}

/// Writes a JSON string the way CloudTrail does: with every `/` escaped as `\/`.
fn push_json_string(out: &mut Vec<u8>, value: &str) {
    // serde_json never emits `/` inside an escape sequence, so the replacement is safe.
    let quoted = serde_json::Value::String(value.to_owned()).to_string();
    out.extend_from_slice(quoted.replace('/', "\\/").as_bytes());
}

fn push_field(out: &mut Vec<u8>, name: &str, value: Option<&str>) {
    if out.last() != Some(&b'{') {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    match value {
        Some(v) => push_json_string(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

impl DigestDocument {
    /// Newest event time over the listed log files.
    pub fn newest_event_time(&self) -> Option<&str> {
        // `YYYY-MM-DDTHH:MM:SSZ` strings order as times do.
        self.log_files
            .iter()
            .filter_map(|f| f.newest_event_time.as_deref())
            .max()
    }

    /// Oldest event time over the listed log files.
    pub fn oldest_event_time(&self) -> Option<&str> {
        self.log_files
            .iter()
            .filter_map(|f| f.oldest_event_time.as_deref())
            .min()
    }

    /// The uncompressed body: compact JSON, CloudTrail's field order, `/` escaped.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024 + self.log_files.len() * 400);
        out.push(b'{');
        let previous = self.previous.as_ref();
        push_field(&mut out, "awsAccountId", Some(&self.aws_account_id));
        push_field(
            &mut out,
            "digestStartTime",
            Some(&format_time(self.digest_start_time)),
        );
        push_field(
            &mut out,
            "digestEndTime",
            Some(&format_time(self.digest_end_time)),
        );
        push_field(&mut out, "digestS3Bucket", Some(&self.digest_s3_bucket));
        push_field(&mut out, "digestS3Object", Some(&self.digest_s3_object));
        push_field(
            &mut out,
            "digestPublicKeyFingerprint",
            Some(&self.public_key_fingerprint),
        );
        push_field(
            &mut out,
            "digestSignatureAlgorithm",
            Some(SIGNATURE_ALGORITHM),
        );
        push_field(&mut out, "newestEventTime", self.newest_event_time());
        push_field(&mut out, "oldestEventTime", self.oldest_event_time());
        push_field(
            &mut out,
            "previousDigestS3Bucket",
            previous.map(|p| p.s3_bucket.as_str()),
        );
        push_field(
            &mut out,
            "previousDigestS3Object",
            previous.map(|p| p.s3_object.as_str()),
        );
        push_field(
            &mut out,
            "previousDigestHashValue",
            previous.map(|p| p.hash_value.as_str()),
        );
        push_field(
            &mut out,
            "previousDigestHashAlgorithm",
            previous.map(|_| HASH_ALGORITHM),
        );
        push_field(
            &mut out,
            "previousDigestSignature",
            previous.map(|p| p.signature.as_str()),
        );
        out.extend_from_slice(b",\"logFiles\":[");
        for (i, file) in self.log_files.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            push_field(&mut out, "s3Bucket", Some(&file.s3_bucket));
            push_field(&mut out, "s3Object", Some(&file.s3_object));
            push_field(&mut out, "hashValue", Some(&file.hash_value));
            push_field(&mut out, "hashAlgorithm", Some(HASH_ALGORITHM));
            push_field(
                &mut out,
                "newestEventTime",
                file.newest_event_time.as_deref(),
            );
            push_field(
                &mut out,
                "oldestEventTime",
                file.oldest_event_time.as_deref(),
            );
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        out
    }
}

/// The string a digest's signature covers:
/// `digestEndTime \n bucket/key \n sha256hex(uncompressed body) \n previousDigestSignature`,
/// the last one written `null` in a starting digest. Values are taken verbatim
/// from the body.
pub fn string_to_sign(
    digest_end_time: &str,
    bucket: &str,
    key: &str,
    body_sha256_hex: &str,
    previous_signature: Option<&str>,
) -> String {
    format!(
        "{digest_end_time}\n{bucket}/{key}\n{body_sha256_hex}\n{}",
        previous_signature.unwrap_or("null")
    )
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The key of a digest file:
/// `[prefix/]AWSLogs/[org-id/]<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/`
/// `<account>_CloudTrail-Digest_<region>_<trail>_<home-region>_<YYYYMMDDTHHMMSSZ>.json.gz`,
/// dated by the digest's end time.
pub fn digest_file_key(
    prefix: Option<&str>,
    organization_id: Option<&str>,
    account: &str,
    region: &str,
    trail_name: &str,
    home_region: &str,
    end: DateTime<Utc>,
) -> String {
    let mut key = account_root(prefix, organization_id, account);
    key.push_str(&format!(
        "CloudTrail-Digest/{region}/{}/{account}_CloudTrail-Digest_{region}_{trail_name}_{home_region}_{}.json.gz",
        end.format("%Y/%m/%d"),
        end.format("%Y%m%dT%H%M%SZ"),
    ));
    key
}

/// The listing prefix under which a trail's digests for one account and region live.
pub fn digest_prefix(
    prefix: Option<&str>,
    organization_id: Option<&str>,
    account: &str,
    region: &str,
) -> String {
    let mut key = account_root(prefix, organization_id, account);
    key.push_str(&format!("CloudTrail-Digest/{region}"));
    key
}

/// gzip of a digest body: one member, as the AWS CLI's `zlib.decompress` expects.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 3 + 64),
        flate2::Compression::new(6),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// A digest ready to store: gzip body, and the metadata that carries its signature.
#[derive(Debug, Clone)]
pub struct SignedDigest {
    /// The key.
    pub key: String,
    /// The uncompressed body.
    pub body: Vec<u8>,
    /// Hex SHA-256 of the body.
    pub body_sha256: String,
    /// The signature (hex).
    pub signature: String,
}

impl SignedDigest {
    /// Serialises and signs `document` with `key`.
    pub fn sign(
        document: &DigestDocument,
        key: &crate::keys::SigningKey,
    ) -> Result<Self, crate::Error> {
        if key.fingerprint() != document.public_key_fingerprint {
            return Err(crate::Error::Key(
                "the digest names another key's fingerprint".into(),
            ));
        }
        let body = document.to_json();
        let body_sha256 = sha256_hex(&body);
        let message = string_to_sign(
            &format_time(document.digest_end_time),
            &document.digest_s3_bucket,
            &document.digest_s3_object,
            &body_sha256,
            document.previous.as_ref().map(|p| p.signature.as_str()),
        );
        let signature = key.sign_hex(message.as_bytes())?;
        Ok(Self {
            key: document.digest_s3_object.clone(),
            body,
            body_sha256,
            signature,
        })
    }

    /// The user metadata to store the digest with (lower-case names).
    pub fn metadata(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("signature".to_owned(), self.signature.clone()),
            (
                "signature-algorithm".to_owned(),
                SIGNATURE_ALGORITHM.to_owned(),
            ),
        ]
        .into_iter()
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The real digest from the examples, rebuilt field by field, must serialise to its exact bytes.
    #[test]
    fn test_reproduces_a_real_digest_byte_for_byte() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/digest-examples/llm-guard-real-digest-ap-northeast-1-20231015T230404Z.json"
        );
        let Ok(real) = std::fs::read(path) else {
            eprintln!("skipping: {path} is not present");
            return;
        };
        let v: serde_json::Value = serde_json::from_slice(&real).unwrap();
        let s = |k: &str| v[k].as_str().unwrap().to_owned();
        let document = DigestDocument {
            aws_account_id: s("awsAccountId"),
            digest_start_time: at(&s("digestStartTime")),
            digest_end_time: at(&s("digestEndTime")),
            digest_s3_bucket: s("digestS3Bucket"),
            digest_s3_object: s("digestS3Object"),
            public_key_fingerprint: s("digestPublicKeyFingerprint"),
            previous: Some(PreviousDigest {
                s3_bucket: s("previousDigestS3Bucket"),
                s3_object: s("previousDigestS3Object"),
                hash_value: s("previousDigestHashValue"),
                signature: s("previousDigestSignature"),
            }),
            log_files: v["logFiles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| DigestLogFile {
                    s3_bucket: f["s3Bucket"].as_str().unwrap().into(),
                    s3_object: f["s3Object"].as_str().unwrap().into(),
                    hash_value: f["hashValue"].as_str().unwrap().into(),
                    newest_event_time: f["newestEventTime"].as_str().map(Into::into),
                    oldest_event_time: f["oldestEventTime"].as_str().map(Into::into),
                })
                .collect(),
        };
        assert_eq!(
            String::from_utf8(document.to_json()).unwrap(),
            String::from_utf8(real).unwrap()
        );
        assert_eq!(
            digest_file_key(
                None,
                None,
                "327878933619",
                "ap-northeast-1",
                "llm-guard-trail",
                "us-west-2",
                document.digest_end_time
            ),
            document.digest_s3_object
        );
    }

    #[test]
    fn test_starting_empty_digest_has_nulls() {
        let document = DigestDocument {
            aws_account_id: "111122223333".into(),
            digest_start_time: at("2015-08-20T17:01:31Z"),
            digest_end_time: at("2015-08-20T18:01:31Z"),
            digest_s3_bucket: "b".into(),
            digest_s3_object: "AWSLogs/x".into(),
            public_key_fingerprint: "f".into(),
            previous: None,
            log_files: vec![],
        };
        let v: serde_json::Value = serde_json::from_slice(&document.to_json()).unwrap();
        for field in [
            "newestEventTime",
            "oldestEventTime",
            "previousDigestS3Bucket",
            "previousDigestS3Object",
            "previousDigestHashValue",
            "previousDigestHashAlgorithm",
            "previousDigestSignature",
        ] {
            assert!(v[field].is_null(), "{field}");
        }
        assert_eq!(v["logFiles"], serde_json::json!([]));
        assert_eq!(v["digestS3Object"], "AWSLogs/x");
        assert!(
            String::from_utf8(document.to_json())
                .unwrap()
                .contains(r#""AWSLogs\/x""#)
        );
    }

    #[test]
    fn test_string_to_sign_and_keys() {
        assert_eq!(
            string_to_sign("2024-05-01T11:17:28Z", "b", "k/x.json.gz", "ab", None),
            "2024-05-01T11:17:28Z\nb/k/x.json.gz\nab\nnull"
        );
        assert_eq!(
            digest_file_key(
                Some("pfx"),
                Some("o-abc"),
                "123456789012",
                "eu-west-1",
                "t",
                "us-east-1",
                at("2024-05-01T09:59:00Z")
            ),
            "pfx/AWSLogs/o-abc/123456789012/CloudTrail-Digest/eu-west-1/2024/05/01/123456789012_CloudTrail-Digest_eu-west-1_t_us-east-1_20240501T095900Z.json.gz"
        );
        assert_eq!(
            digest_prefix(None, None, "123456789012", "us-east-1"),
            "AWSLogs/123456789012/CloudTrail-Digest/us-east-1"
        );
    }
}
