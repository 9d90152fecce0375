//! S3's Signature Version 2 query-string authentication (presigned URLs).
//!
//! The AWS CLI's `aws s3 presign` writes, by default, a SigV2 URL:
//! `?AWSAccessKeyId=...&Expires=<unix seconds>&Signature=<base64>`, where the
//! signature is `base64(HMAC-SHA1(secret, string to sign))` over
//!
//! ```text
//! <METHOD>\n
//! <Content-MD5>\n
//! <Content-Type>\n
//! <Expires>\n
//! [<x-amz-name>:<value>\n ...]      x-amz-* headers, lower-case, sorted
//! <CanonicalizedResource>            raw path [?sub-resources]
//! ```
//!
//! The canonicalized resource is the path as sent plus the sub-resources S3
//! signs (`acl`, `uploadId`, `versionId`, `response-content-type`, ...),
//! sorted by name, values URL-decoded. Signed `x-amz-*` headers, `Content-MD5`
//! and `Content-Type` may travel as query parameters (that is where botocore
//! puts them), and count as headers. Only SigV2 *query* authentication is
//! accepted: the `Authorization: AWS ...` header form stays refused.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::canonical::query_pairs;
use crate::{AuthError, RequestParts};

/// The query parameters S3 includes in the canonicalized resource.
pub const SIGNED_SUBRESOURCES: [&str; 35] = [
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// A SigV2 presigned request's credentials, read without the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigV2Query {
    /// `AWSAccessKeyId`.
    pub access_key_id: String,
    /// `Expires`, seconds since the epoch, as sent.
    pub expires: String,
    /// `Expires` as a time.
    pub expires_at: DateTime<Utc>,
    /// `Signature`, base64 as sent (decoded from the URL).
    pub signature: String,
}

/// Reads a SigV2 presigned request: `None` when the query carries none of
/// `AWSAccessKeyId`, `Signature`, `Expires` (not SigV2), an error when it
/// carries some but not all, or a bad `Expires`.
pub fn parse_sigv2_query(raw_query: &str) -> Option<Result<SigV2Query, AuthError>> {
    let mut access_key_id = None;
    let mut signature = None;
    let mut expires = None;
    for (name, value) in query_pairs(raw_query) {
        let slot = match name.as_slice() {
            b"AWSAccessKeyId" => &mut access_key_id,
            b"Signature" => &mut signature,
            b"Expires" => &mut expires,
            _ => continue,
        };
        *slot = Some(String::from_utf8_lossy(&value).into_owned());
    }
    if access_key_id.is_none() && signature.is_none() && expires.is_none() {
        return None;
    }
    let malformed = |message: &str| AuthError::MalformedQuery {
        message: message.to_owned(),
    };
    let (Some(access_key_id), Some(signature), Some(expires)) = (access_key_id, signature, expires)
    else {
        return Some(Err(malformed(
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId \
             parameters",
        )));
    };
    let expires_at = expires
        .parse::<i64>()
        .ok()
        .and_then(|s| Utc.timestamp_opt(s, 0).single());
    let Some(expires_at) = expires_at else {
        return Some(Err(malformed(
            "Invalid date (should be seconds since epoch)",
        )));
    };
    Some(Ok(SigV2Query {
        access_key_id,
        expires,
        expires_at,
        signature,
    }))
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The string a SigV2 presigned request signs, built from the request as received.
pub fn sigv2_string_to_sign(parts: &RequestParts<'_>, expires: &str) -> String {
    // Headers, and the header-like query parameters botocore moves into the URL.
    let mut from_query: Vec<(String, String)> = Vec::new();
    let mut subresources: Vec<(&str, Option<String>)> = Vec::new();
    for piece in parts.raw_query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = match piece.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (piece, None),
        };
        if SIGNED_SUBRESOURCES.contains(&name) {
            subresources.push((name, value.map(percent_decode)));
        }
        let lower = percent_decode(name).to_ascii_lowercase();
        if lower.starts_with("x-amz-") || lower == "content-md5" || lower == "content-type" {
            from_query.push((lower, percent_decode(value.unwrap_or(""))));
        }
    }
    let header = |name: &str| {
        parts
            .header(name)
            .map(|v| v.trim().to_owned())
            .or_else(|| {
                from_query
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let mut out = format!(
        "{}\n{}\n{}\n{expires}\n",
        parts.method.to_ascii_uppercase(),
        header("content-md5"),
        header("content-type"),
    );
    let mut amz: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in parts.headers {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("x-amz-") {
            amz.entry(lower).or_default().push(value.trim().to_owned());
        }
    }
    for (name, value) in &from_query {
        if name.starts_with("x-amz-") && !amz.contains_key(name) {
            amz.insert(name.clone(), vec![value.trim().to_owned()]);
        }
    }
    for (name, values) in &amz {
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push_str(parts.raw_path);
    // A stable sort by name, as S3 and botocore sort.
    subresources.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (name, value)) in subresources.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        if let Some(value) = value {
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

/// The SigV2 signature of a string to sign: base64 HMAC-SHA1.
pub fn sigv2_sign(secret: &str, string_to_sign: &str) -> String {
    STANDARD.encode(sigv2_mac(secret, string_to_sign).finalize().into_bytes())
}

fn sigv2_mac(secret: &str, string_to_sign: &str) -> Hmac<Sha1> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(string_to_sign.as_bytes());
    mac
}

/// Verifies a SigV2 presigned request: not expired at `now`
/// ([`AuthError::PresignedExpired`], S3's "Request has expired"), and the
/// signature right, compared in constant time ([`AuthError::SignatureMismatch`]).
pub fn verify_sigv2(
    parts: &RequestParts<'_>,
    query: &SigV2Query,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    if now > query.expires_at {
        return Err(AuthError::PresignedExpired {
            amz_date: query.expires_at.format("%Y%m%dT%H%M%SZ").to_string(),
            expires: 0,
            now: now.format("%Y%m%dT%H%M%SZ").to_string(),
        });
    }
    let Ok(signature) = STANDARD.decode(query.signature.trim()) else {
        return Err(AuthError::SignatureMismatch);
    };
    let string_to_sign = sigv2_string_to_sign(parts, &query.expires);
    sigv2_mac(secret, &string_to_sign)
        .verify_slice(&signature)
        .map_err(|_| AuthError::SignatureMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(query: &'a str, headers: &'a [(&'a str, &'a str)]) -> RequestParts<'a> {
        RequestParts {
            method: "GET",
            raw_path: "/bucket/a%20key.json",
            raw_query: query,
            headers,
        }
    }

    #[test]
    fn test_string_to_sign_includes_subresources_sorted() {
        let headers = [
            ("host", "h"),
            ("X-Amz-Meta-B", " 2 "),
            ("x-amz-meta-a", "1"),
        ];
        let p = parts(
            "versionId=v1&AWSAccessKeyId=AK&response-content-type=text%2Fplain&Expires=10&Signature=x&acl",
            &headers,
        );
        assert_eq!(
            sigv2_string_to_sign(&p, "10"),
            "GET\n\n\n10\nx-amz-meta-a:1\nx-amz-meta-b:2\n/bucket/a%20key.json?acl&response-content-type=text/plain&versionId=v1"
        );
    }

    #[test]
    fn test_parse_and_verify() {
        assert!(parse_sigv2_query("list-type=2").is_none());
        assert!(matches!(
            parse_sigv2_query("AWSAccessKeyId=AK&Expires=10"),
            Some(Err(AuthError::MalformedQuery { .. }))
        ));
        assert!(matches!(
            parse_sigv2_query("AWSAccessKeyId=AK&Expires=soon&Signature=x"),
            Some(Err(AuthError::MalformedQuery { .. }))
        ));
        let headers = [("host", "h")];
        let unsigned = parts("", &headers);
        let signature = sigv2_sign("secret", &sigv2_string_to_sign(&unsigned, "2000000000"));
        let encoded: String =
            percent_encoding::utf8_percent_encode(&signature, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let query = format!("AWSAccessKeyId=AK&Expires=2000000000&Signature={encoded}");
        let p = parts(&query, &headers);
        let parsed = parse_sigv2_query(&query).unwrap().unwrap();
        let now = Utc.timestamp_opt(1_900_000_000, 0).unwrap();
        verify_sigv2(&p, &parsed, "secret", now).unwrap();
        assert_eq!(
            verify_sigv2(&p, &parsed, "other", now),
            Err(AuthError::SignatureMismatch)
        );
        let later = Utc.timestamp_opt(2_000_000_001, 0).unwrap();
        assert!(matches!(
            verify_sigv2(&p, &parsed, "secret", later),
            Err(AuthError::PresignedExpired { .. })
        ));
    }
}
