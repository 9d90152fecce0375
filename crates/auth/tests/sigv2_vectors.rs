//! Replays SigV2 presigned URLs made by botocore's `HmacV1QueryAuth` (see
//! `data/gen_sigv2_vectors.py`) through `parse_sigv2_query` + `verify_sigv2`,
//! and checks that expiry and tampering with any signed part are caught.

// Test helpers panic on bad fixtures: that is the failure report.
#![allow(clippy::unwrap_used)]

use cairn_auth::{AuthError, RequestParts, parse_sigv2_query, verify_sigv2};
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct VectorFile {
    botocore_version: String,
    vectors: Vec<Vector>,
}

#[derive(Debug, Deserialize)]
struct Vector {
    name: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    access_key_id: String,
    secret_access_key: String,
    expires: i64,
    signed_at: i64,
}

fn vectors() -> VectorFile {
    let text = include_str!("data/sigv2_vectors.json");
    serde_json::from_str(text).unwrap()
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).unwrap()
}

fn check(v: &Vector, method: &str, path: &str, query: &str, now: i64) -> Result<(), AuthError> {
    let headers: Vec<(&str, &str)> = v
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let parts = RequestParts {
        method,
        raw_path: path,
        raw_query: query,
        headers: &headers,
    };
    let parsed = parse_sigv2_query(query).unwrap()?;
    verify_sigv2(&parts, &parsed, &v.secret_access_key, at(now))
}

#[test]
fn test_botocore_sigv2_vectors_verify() {
    let file = vectors();
    assert!(!file.botocore_version.is_empty());
    assert!(file.vectors.len() >= 10);
    for v in &file.vectors {
        let parsed = parse_sigv2_query(&v.query).unwrap().unwrap();
        assert_eq!(parsed.access_key_id, v.access_key_id, "{}", v.name);
        assert_eq!(parsed.expires_at, at(v.expires), "{}", v.name);
        check(v, &v.method, &v.path, &v.query, v.signed_at)
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        // Valid up to and including the Expires second.
        check(v, &v.method, &v.path, &v.query, v.expires).unwrap();
    }
}

#[test]
fn test_expired_sigv2_urls_are_refused() {
    for v in &vectors().vectors {
        let err = check(v, &v.method, &v.path, &v.query, v.expires + 1).unwrap_err();
        assert!(
            matches!(err, AuthError::PresignedExpired { .. }),
            "{}",
            v.name
        );
        assert_eq!(
            err.s3_error(),
            ("AccessDenied", 403, "Request has expired".to_owned())
        );
    }
}

#[test]
fn test_tampered_sigv2_urls_are_refused() {
    for v in &vectors().vectors {
        let other_method = if v.method == "GET" { "HEAD" } else { "GET" };
        let later = v.expires + 60;
        let tampered = [
            (other_method.to_owned(), v.path.clone(), v.query.clone()),
            (v.method.clone(), format!("{}x", v.path), v.query.clone()),
            (
                v.method.clone(),
                v.path.clone(),
                v.query.replace(
                    &format!("Expires={}", v.expires),
                    &format!("Expires={later}"),
                ),
            ),
            (v.method.clone(), v.path.clone(), format!("{}&acl", v.query)),
        ];
        for (method, path, query) in tampered {
            let err = check(v, &method, &path, &query, v.signed_at).unwrap_err();
            assert_eq!(
                err,
                AuthError::SignatureMismatch,
                "{} {method} {path}?{query}",
                v.name
            );
            assert_eq!(err.s3_error().0, "SignatureDoesNotMatch");
        }
        // Parameters S3 does not sign may change freely.
        check(
            v,
            &v.method,
            &v.path,
            &format!("{}&x-id=GetObject", v.query),
            v.signed_at,
        )
        .unwrap();
    }
}
