//! Replays requests signed by botocore (see `data/gen_vectors.py`) through
//! `parse` + `verify`, and checks that tampering with any signed part of them
//! is caught.

// Test helpers panic on bad fixtures: that is the failure report.
#![allow(clippy::unwrap_used)]

use cairn_auth::{
    AuthError, ParsedSignature, PayloadHash, RequestParts, SignatureLocation, SigningKeyCache,
    canonical_request, parse, sha256_hex, verify,
};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct VectorFile {
    botocore_version: String,
    vectors: Vec<Vector>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Vector {
    name: String,
    note: String,
    service: String,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body_hex: String,
    signed_at: String,
    now: String,
}

impl Vector {
    fn body(&self) -> Vec<u8> {
        hex::decode(&self.body_hex).unwrap()
    }

    fn now(&self) -> DateTime<Utc> {
        amz_time(&self.now)
    }

    fn header_refs(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

fn amz_time(s: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ")
        .unwrap()
        .and_utc()
}

const COMMITTED: &str = include_str!("data/botocore_vectors.json");

fn committed_file() -> VectorFile {
    serde_json::from_str(COMMITTED).unwrap()
}

/// The committed vectors a server accepts: all but those that leave the body
/// unsigned outside S3, which botocore can produce but Cairn refuses.
fn committed() -> VectorFile {
    signed_only(committed_file())
}

/// Whether botocore signed the vector with an unsigned payload for a service
/// other than S3 (refused: only S3 lets a signature leave the body uncovered).
fn unsigned_outside_s3(v: &Vector) -> bool {
    v.service != "s3"
        && v.headers.iter().any(|(k, value)| {
            k.eq_ignore_ascii_case("x-amz-content-sha256")
                && (value == "UNSIGNED-PAYLOAD" || value == "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        })
}

fn signed_only(mut file: VectorFile) -> VectorFile {
    file.vectors.retain(|v| !unsigned_outside_s3(v));
    file
}

/// A request to check: the vector's parts, possibly altered.
struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn of(v: &Vector) -> Self {
        Request {
            method: v.method.clone(),
            path: v.path.clone(),
            query: v.query.clone(),
            headers: v.headers.clone(),
            body: v.body(),
        }
    }

    fn check(&self, secret: &str, now: DateTime<Utc>) -> Result<ParsedSignature, AuthError> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let parts = RequestParts {
            method: &self.method,
            raw_path: &self.path,
            raw_query: &self.query,
            headers: &headers,
        };
        let parsed = parse(&parts)?;
        verify(&parts, &parsed, secret, &sha256_hex(&self.body), now)?;
        Ok(parsed)
    }

    /// The canonical request the server would expect (for explaining why a
    /// mutation was accepted: it must leave this unchanged).
    fn canonical(&self) -> Option<String> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let parts = RequestParts {
            method: &self.method,
            raw_path: &self.path,
            raw_query: &self.query,
            headers: &headers,
        };
        let parsed = parse(&parts).ok()?;
        canonical_request(&parts, &parsed, &sha256_hex(&self.body)).ok()
    }
}

fn verify_vector(v: &Vector) -> Result<ParsedSignature, AuthError> {
    Request::of(v).check(&v.secret_access_key, v.now())
}

fn assert_all_verify(file: &VectorFile) {
    assert!(file.vectors.len() >= 30, "too few vectors");
    for v in &file.vectors {
        if unsigned_outside_s3(v) {
            assert!(
                matches!(
                    verify_vector(v),
                    Err(AuthError::UnsignedPayloadNotAllowed { .. })
                ),
                "{}",
                v.name
            );
            continue;
        }
        let parsed = verify_vector(v).unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
        assert_eq!(parsed.scope.access_key_id, v.access_key_id, "{}", v.name);
        assert_eq!(parsed.scope.service, v.service, "{}", v.name);
        assert_eq!(parsed.scope.region, v.region, "{}", v.name);
        assert_eq!(parsed.amz_date, v.signed_at, "{}", v.name);
    }
}

#[test]
fn every_botocore_vector_verifies() {
    let all = committed_file();
    assert!(
        all.vectors.iter().any(unsigned_outside_s3),
        "a vector must show UNSIGNED-PAYLOAD refused outside S3"
    );
    assert_all_verify(&all);
}

#[test]
fn every_botocore_vector_matches_the_primary_canonical_form() {
    // verify() also accepts a few non-spec readings; botocore's own requests
    // must not need them.
    for v in committed().vectors {
        let req = Request::of(&v);
        let canonical = req.canonical().unwrap();
        let headers = v.header_refs();
        let parts = RequestParts {
            method: &v.method,
            raw_path: &v.path,
            raw_query: &v.query,
            headers: &headers,
        };
        let parsed = parse(&parts).unwrap();
        let sts = cairn_auth::string_to_sign(&parsed.amz_date, &parsed.scope, &canonical);
        let key = cairn_auth::SigningKey::for_scope(&v.secret_access_key, &parsed.scope);
        assert_eq!(key.sign(&sts), parsed.signature, "{}", v.name);
    }
}

#[test]
fn every_botocore_vector_verifies_through_the_key_cache() {
    let cache = SigningKeyCache::new(8);
    for _ in 0..2 {
        for v in committed().vectors {
            let headers = v.header_refs();
            let parts = RequestParts {
                method: &v.method,
                raw_path: &v.path,
                raw_query: &v.query,
                headers: &headers,
            };
            let parsed = parse(&parts).unwrap();
            cache
                .verify(
                    &parts,
                    &parsed,
                    &v.secret_access_key,
                    &sha256_hex(&v.body()),
                    v.now(),
                )
                .unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
        }
    }
    assert!(cache.len() <= 8);
}

#[test]
fn the_vectors_cover_the_intended_cases() {
    let file = committed();
    let by_name = |name: &str| {
        file.vectors
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no vector {name}"))
    };
    let presigned = file
        .vectors
        .iter()
        .filter(|v| verify_vector(v).unwrap().location == SignatureLocation::Query)
        .count();
    assert!(presigned >= 4);
    for service in [
        "cloudtrail",
        "cloudtrail-data",
        "logs",
        "monitoring",
        "organizations",
        "s3",
    ] {
        assert!(
            file.vectors.iter().any(|v| v.service == service),
            "{service}"
        );
    }
    assert_eq!(
        verify_vector(by_name("client-s3-put-object-https-trailer"))
            .unwrap()
            .content_sha256,
        PayloadHash::StreamingUnsignedTrailer
    );
    assert_eq!(
        verify_vector(by_name("client-s3-put-object-unsigned-payload"))
            .unwrap()
            .content_sha256,
        PayloadHash::Unsigned
    );
    assert!(matches!(
        verify_vector(by_name("client-s3-put-object"))
            .unwrap()
            .content_sha256,
        PayloadHash::Sha256(_)
    ));
    assert!(
        by_name("date-header")
            .headers
            .iter()
            .all(|(k, _)| k != "X-Amz-Date")
    );
    for v in &file.vectors {
        assert!(!v.note.is_empty(), "{}", v.name);
    }
}

/// A byte that differs from `b` and is an ordinary character.
fn other(b: u8) -> u8 {
    if b == b'Z' { b'Y' } else { b'Z' }
}

fn mutate_at(s: &str, i: usize) -> String {
    let mut bytes = s.as_bytes().to_vec();
    bytes[i] = other(bytes[i]);
    // The vectors are ASCII on the wire, so this stays UTF-8.
    String::from_utf8(bytes).unwrap()
}

/// Asserts that the altered request fails, or else that it is canonically
/// the same request (e.g. a changed segment that `..` removes anyway).
fn assert_rejected(v: &Vector, original: &Request, altered: &Request, what: &str) {
    if altered.check(&v.secret_access_key, v.now()).is_ok() {
        assert_eq!(
            altered.canonical(),
            original.canonical(),
            "{}: {what} was accepted",
            v.name
        );
    }
}

#[test]
fn altering_the_path_or_query_fails() {
    for v in committed().vectors {
        let original = Request::of(&v);
        for i in 0..v.path.len() {
            let mut altered = Request::of(&v);
            altered.path = mutate_at(&v.path, i);
            assert_rejected(&v, &original, &altered, &format!("path byte {i}"));
        }
        for i in 0..v.query.len() {
            let mut altered = Request::of(&v);
            altered.query = mutate_at(&v.query, i);
            assert_rejected(&v, &original, &altered, &format!("query byte {i}"));
        }
        let mut extra = Request::of(&v);
        extra.query = if v.query.is_empty() {
            "x=1".to_owned()
        } else {
            format!("{}&x=1", v.query)
        };
        assert!(
            extra.check(&v.secret_access_key, v.now()).is_err(),
            "{}: extra query parameter accepted",
            v.name
        );
    }
}

#[test]
fn altering_a_signed_header_fails_and_unsigned_ones_do_not_matter() {
    for v in committed().vectors {
        let original = Request::of(&v);
        let parsed = verify_vector(&v).unwrap();
        for name in &parsed.signed_headers {
            let position = v
                .headers
                .iter()
                .position(|(k, _)| k.eq_ignore_ascii_case(name))
                .unwrap();

            let mut altered = Request::of(&v);
            altered.headers[position].1.push('x');
            assert!(
                altered.check(&v.secret_access_key, v.now()).is_err(),
                "{}: altered {name} accepted",
                v.name
            );

            let mut removed = Request::of(&v);
            removed
                .headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            assert!(
                removed.check(&v.secret_access_key, v.now()).is_err(),
                "{}: removing {name} accepted",
                v.name
            );

            let mut repeated = Request::of(&v);
            let copy = repeated.headers[position].clone();
            repeated.headers.push(copy);
            assert!(
                repeated.check(&v.secret_access_key, v.now()).is_err(),
                "{}: repeating {name} accepted",
                v.name
            );
        }
        // Whitespace around a signed value does not change it.
        let mut padded = Request::of(&v);
        let host = padded
            .headers
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .unwrap();
        host.1 = format!("  {}\t", host.1);
        assert!(
            padded.check(&v.secret_access_key, v.now()).is_ok(),
            "{}",
            v.name
        );
        // Unsigned headers may come and go.
        let mut unsigned = Request::of(&v);
        unsigned
            .headers
            .push(("X-Forwarded-For".to_owned(), "10.0.0.1".to_owned()));
        unsigned
            .headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("user-agent"));
        assert!(
            unsigned.check(&v.secret_access_key, v.now()).is_ok(),
            "{}",
            v.name
        );
        let _ = original;
    }
}

#[test]
fn altering_the_body_fails_when_the_body_is_signed() {
    for v in committed().vectors {
        let parsed = verify_vector(&v).unwrap();
        let mut altered = Request::of(&v);
        if altered.body.is_empty() {
            altered.body.push(b'x');
        } else {
            altered.body[0] ^= 1;
        }
        let result = altered.check(&v.secret_access_key, v.now());
        match parsed.content_sha256 {
            PayloadHash::Unsigned | PayloadHash::StreamingUnsignedTrailer => {
                assert!(result.is_ok(), "{}: {result:?}", v.name);
            }
            PayloadHash::Sha256(_) => assert!(
                matches!(result, Err(AuthError::ContentSha256Mismatch { .. })),
                "{}: {result:?}",
                v.name
            ),
            PayloadHash::Absent if parsed.location == SignatureLocation::Header => assert_eq!(
                result.map(|_| ()),
                Err(AuthError::SignatureMismatch),
                "{}",
                v.name
            ),
            // Presigned URLs do not fix the body.
            PayloadHash::Absent => {}
        }
    }
}

#[test]
fn altering_the_signature_method_secret_or_time_fails() {
    for v in committed().vectors {
        let parsed = verify_vector(&v).unwrap();
        let sig = parsed.signature.clone();
        for i in [0, 31, 63] {
            let flipped = mutate_at(&sig, i).to_ascii_lowercase();
            let flipped = if flipped == sig {
                mutate_at(&sig, i).replace('z', "0")
            } else {
                flipped
            };
            let mut altered = Request::of(&v);
            for (_, value) in altered.headers.iter_mut() {
                *value = value.replace(&sig, &flipped);
            }
            altered.query = altered.query.replace(&sig, &flipped);
            assert!(
                altered.check(&v.secret_access_key, v.now()).is_err(),
                "{}",
                v.name
            );
        }

        let mut method = Request::of(&v);
        method.method = if v.method == "GET" { "HEAD" } else { "GET" }.to_owned();
        assert_eq!(
            method.check(&v.secret_access_key, v.now()).map(|_| ()),
            Err(AuthError::SignatureMismatch),
            "{}",
            v.name
        );

        let wrong_secret = format!("{}x", v.secret_access_key);
        assert_eq!(
            Request::of(&v).check(&wrong_secret, v.now()).map(|_| ()),
            Err(AuthError::SignatureMismatch),
            "{}",
            v.name
        );

        let signed_at = amz_time(&v.signed_at);
        let late = match parsed.expires {
            Some(expires) => signed_at + TimeDelta::seconds(expires as i64 + 1),
            None => signed_at + TimeDelta::minutes(15) + TimeDelta::seconds(1),
        };
        let result = Request::of(&v).check(&v.secret_access_key, late);
        assert!(
            matches!(
                result,
                Err(AuthError::RequestTimeTooSkewed { .. } | AuthError::PresignedExpired { .. })
            ),
            "{}: {result:?}",
            v.name
        );
    }
}

#[test]
fn s3_paths_are_signed_as_sent_and_others_normalised() {
    let file = committed();
    let find = |name: &str| file.vectors.iter().find(|v| v.name == name).unwrap();
    let canonical_uri = |v: &Vector| {
        Request::of(v)
            .canonical()
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        canonical_uri(find("s3-double-slash")),
        "/bucket//a//./b/../c"
    );
    assert_eq!(
        canonical_uri(find("s3-percent")),
        "/bucket/a%20b%25c%2Fd%E1%88%B4"
    );
    assert_eq!(canonical_uri(find("get-slash")), "/example/");
    assert_eq!(canonical_uri(find("get-utf8")), "/%25E1%2588%25B4");
    assert_eq!(canonical_uri(find("get-encoded-slash")), "/a%252Fb/%2525/c");
    assert_eq!(canonical_uri(find("get-relative-relative")), "/");
}

/// Re-runs the generator when python3 and botocore are available and checks
/// its output: every vector verifies, and with the same botocore version the
/// output is exactly the committed file.
#[test]
fn regenerated_vectors_verify_and_match_the_committed_ones() {
    let has_botocore = std::process::Command::new("python3")
        .args(["-c", "import botocore"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_botocore {
        eprintln!("skipped: python3 with botocore is not available");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vectors.json");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/gen_vectors.py");
    let status = std::process::Command::new("python3")
        .arg(script)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "gen_vectors.py failed");
    let regenerated: VectorFile =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_all_verify(&regenerated);
    let regenerated = signed_only(regenerated);
    let committed = committed();
    if regenerated.botocore_version == committed.botocore_version {
        assert_eq!(
            regenerated, committed,
            "botocore_vectors.json is stale: re-run tests/data/gen_vectors.py"
        );
    } else {
        eprintln!(
            "botocore {} differs from the committed vectors' {}; compared by verification only",
            regenerated.botocore_version, committed.botocore_version
        );
    }
}
