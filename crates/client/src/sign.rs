//! AWS Signature Version 4, header form, for the requests this crate sends.
//!
//! Kept private and small on purpose: it signs exactly what [`crate::client`]
//! sends (no query string, a fixed ASCII path, a known header set). When the
//! workspace's `cairn-auth` crate offers a signer, this module can delegate to
//! it; the tests pin the output to AWS's published test suite and to a
//! signature computed by botocore, so either implementation must agree.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The key material used to sign.
pub(crate) struct SigningCredentials<'a> {
    pub(crate) access_key_id: &'a str,
    pub(crate) secret_access_key: &'a str,
    pub(crate) session_token: Option<&'a str>,
}

/// One request to sign. `headers` are those sent and signed besides the ones
/// [`sign`] adds (`x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token`);
/// `host` must be among them.
pub(crate) struct SigningRequest<'a> {
    pub(crate) method: &'a str,
    /// The URL path as sent (already percent-encoded once).
    pub(crate) path: &'a str,
    pub(crate) headers: &'a [(&'a str, &'a str)],
    /// Lowercase hex SHA-256 of the body exactly as sent.
    pub(crate) payload_sha256: &'a str,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
    pub(crate) time: DateTime<Utc>,
}

/// Signs the request; returns every header to add, `authorization` included.
pub(crate) fn sign(
    request: &SigningRequest<'_>,
    credentials: &SigningCredentials<'_>,
) -> Vec<(&'static str, String)> {
    let amz_date = request.time.format("%Y%m%dT%H%M%SZ").to_string();
    let date = request.time.format("%Y%m%d").to_string();
    let mut added: Vec<(&'static str, String)> = vec![
        ("x-amz-date", amz_date.clone()),
        ("x-amz-content-sha256", request.payload_sha256.to_owned()),
    ];
    if let Some(token) = credentials.session_token {
        added.push(("x-amz-security-token", token.to_owned()));
    }
    let mut all: Vec<(&str, &str)> = request.headers.to_vec();
    all.extend(added.iter().map(|(k, v)| (*k, v.as_str())));
    let (canonical, signed_headers) = canonical_request(
        request.method,
        request.path,
        "",
        &all,
        request.payload_sha256,
    );
    let scope = format!("{date}/{}/{}/aws4_request", request.region, request.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(
        credentials.secret_access_key,
        &date,
        request.region,
        request.service,
    );
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    added.push((
        "authorization",
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id
        ),
    ));
    added
}

/// The canonical request and the signed-headers list.
pub(crate) fn canonical_request(
    method: &str,
    path: &str,
    canonical_query: &str,
    headers: &[(&str, &str)],
    payload_sha256: &str,
) -> (String, String) {
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), collapse_spaces(v)))
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    // Repeated headers are joined with commas, in the order sent.
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (k, v) in headers {
        match merged.last_mut() {
            Some((last, values)) if *last == k => {
                values.push(',');
                values.push_str(&v);
            }
            _ => merged.push((k, v)),
        }
    }
    let canonical_headers: String = merged.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = merged
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_uri = if path.is_empty() {
        "/".to_owned()
    } else {
        encode_path(path)
    };
    (
        format!(
            "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_sha256}"
        ),
        signed_headers,
    )
}

/// Non-S3 services encode each path segment once more (so `%` becomes `%25`).
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

fn uri_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Trims and collapses runs of spaces, as the canonical form requires.
fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// `get-vanilla` from AWS's SigV4 test suite.
    #[test]
    fn test_sign_matches_aws_test_suite_get_vanilla() {
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ];
        let (canonical, signed) = canonical_request("GET", "/", "", &headers, EMPTY_SHA256);
        assert_eq!(
            canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed, "host;x-amz-date");
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        assert!(
            string_to_sign
                .ends_with("bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63")
        );
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "service",
        );
        assert_eq!(
            hex::encode(hmac(&key, string_to_sign.as_bytes())),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// An ingest request signed by botocore's `SigV4Auth` (botocore 1.43) with the
    /// same inputs; the expected header was produced by that independent signer.
    #[test]
    fn test_sign_matches_botocore_for_an_ingest_request() {
        let body = br#"{"Records":[{"eventTime":"2026-11-01T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject"}]}"#;
        let payload = hex::encode(Sha256::digest(body));
        let headers = [
            ("host", "127.0.0.1:7447"),
            ("content-type", "application/json"),
        ];
        let request = SigningRequest {
            method: "POST",
            path: "/cairn/v1/records",
            headers: &headers,
            payload_sha256: &payload,
            region: "us-east-1",
            service: "cloudtrail-data",
            time: Utc.with_ymd_and_hms(2026, 11, 1, 12, 30, 45).unwrap(),
        };
        let credentials = SigningCredentials {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token: Some("session-token-example"),
        };
        let signed = sign(&request, &credentials);
        let get = |name: &str| {
            signed
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-amz-date"), Some("20261101T123045Z"));
        assert_eq!(get("x-amz-content-sha256"), Some(payload.as_str()));
        assert_eq!(get("x-amz-security-token"), Some("session-token-example"));
        assert_eq!(get("authorization"), Some(BOTOCORE_AUTHORIZATION));
    }

    const BOTOCORE_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261101/us-east-1/cloudtrail-data/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=13abb20da58d02c110df7e1290fd7460317c7bd0fad412eda880f43d80f61b73";

    #[test]
    fn test_canonical_headers_are_sorted_trimmed_and_merged() {
        let headers = [("B", "  two   words "), ("a", "1"), ("b", "x")];
        let (canonical, signed) = canonical_request("POST", "/a b/%2F", "", &headers, EMPTY_SHA256);
        assert_eq!(signed, "a;b");
        assert!(
            canonical.starts_with("POST\n/a%20b/%252F\n\na:1\nb:two words,x\n\na;b\n"),
            "{canonical}"
        );
    }
}
