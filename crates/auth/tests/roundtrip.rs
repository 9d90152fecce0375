//! The signer against the verifier: round trips, property tests, time
//! boundaries and the S3 / non-S3 path rules.

// Test helpers panic on bad fixtures: that is the failure report.
#![allow(clippy::unwrap_used)]

use cairn_auth::{
    AuthError, Credentials, Payload, RequestParts, SignatureLocation, SignedRequest, SigningParams,
    canonical_request, parse, presign, sha256_hex, sign_request, uri_encode, verify,
};
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

/// An owned request that can be signed, altered and verified.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn new(method: &str, path: &str, query: &str, headers: &[(&str, &str)], body: &[u8]) -> Self {
        Req {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_vec(),
        }
    }

    fn with_parts<T>(&self, f: impl FnOnce(&RequestParts<'_>) -> T) -> T {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        f(&RequestParts {
            method: &self.method,
            raw_path: &self.path,
            raw_query: &self.query,
            headers: &headers,
        })
    }

    fn sign(&self, creds: &Credentials, service: &str, time: DateTime<Utc>) -> Req {
        let params = SigningParams {
            credentials: creds,
            region: "us-east-1",
            service,
            time,
        };
        let SignedRequest { headers, .. } = self
            .with_parts(|parts| sign_request(parts, Payload::Bytes(&self.body), &params))
            .unwrap();
        let mut signed = self.clone();
        signed
            .headers
            .extend(headers.into_iter().map(|(k, v)| (k.to_owned(), v)));
        signed
    }

    fn presign(&self, service: &str, time: DateTime<Utc>, expires: u64) -> Req {
        let creds = Credentials::new(AKID, SECRET);
        let params = SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service,
            time,
        };
        let query = self
            .with_parts(|parts| presign(parts, &params, expires))
            .unwrap();
        Req {
            query,
            ..self.clone()
        }
    }

    fn verify(&self, now: DateTime<Utc>) -> Result<(), AuthError> {
        self.verify_with(SECRET, now)
    }

    fn verify_with(&self, secret: &str, now: DateTime<Utc>) -> Result<(), AuthError> {
        self.with_parts(|parts| {
            let parsed = parse(parts)?;
            verify(parts, &parsed, secret, &sha256_hex(&self.body), now)
        })
    }

    fn canonical(&self) -> Option<String> {
        self.with_parts(|parts| {
            let parsed = parse(parts).ok()?;
            canonical_request(parts, &parsed, &sha256_hex(&self.body)).ok()
        })
    }

    /// Fails unless the altered request is rejected or canonically the same.
    fn assert_rejects(&self, altered: &Req, now: DateTime<Utc>) -> Result<(), TestCaseError> {
        if altered.verify(now).is_ok() {
            prop_assert_eq!(
                altered.canonical(),
                self.canonical(),
                "accepted: {:?}",
                altered
            );
        }
        Ok(())
    }
}

fn creds() -> Credentials {
    Credentials::new(AKID, SECRET)
}

#[test]
fn signer_reproduces_the_aws_test_suite() {
    // The AWS SigV4 test suite's get-vanilla and post-vanilla: service
    // "service", 20150830T123600Z, host example.amazonaws.com.
    let time = at(1_440_938_160);
    let params = |creds| SigningParams {
        credentials: creds,
        region: "us-east-1",
        service: "service",
        time,
    };
    let c = creds();
    for (method, query, expected) in [
        (
            "GET",
            "",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "POST",
            "",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "GET",
            "Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
    ] {
        let headers = [("Host", "example.amazonaws.com")];
        let parts = RequestParts {
            method,
            raw_path: "/",
            raw_query: query,
            headers: &headers,
        };
        let signed = sign_request(&parts, Payload::Bytes(b""), &params(&c)).unwrap();
        assert_eq!(signed.signature, expected, "{method} ?{query}");
    }
}

#[test]
fn signed_requests_verify_for_every_service() {
    let t = at(1_710_505_845);
    for service in [
        "cloudtrail",
        "cloudtrail-data",
        "logs",
        "monitoring",
        "organizations",
        "s3",
    ] {
        let req = Req::new(
            "POST",
            "/a%20b/./c",
            "x=1&y=a+b",
            &[
                ("Host", "localhost:4566"),
                ("Content-Type", "application/json"),
            ],
            b"{\"k\":1}",
        )
        .sign(&creds(), service, t);
        req.verify(t).unwrap_or_else(|e| panic!("{service}: {e:?}"));
        req.with_parts(|parts| {
            let parsed = parse(parts).unwrap();
            assert_eq!(parsed.scope.service, service);
            assert_eq!(parsed.location, SignatureLocation::Header);
        });
    }
}

#[test]
fn session_token_is_signed_and_reported() {
    let t = at(1_710_505_845);
    let creds = creds().with_session_token("token/+=");
    let req = Req::new("GET", "/", "", &[("host", "h")], b"").sign(&creds, "logs", t);
    req.verify(t).unwrap();
    req.with_parts(|parts| {
        let parsed = parse(parts).unwrap();
        assert_eq!(parsed.security_token.as_deref(), Some("token/+="));
        assert!(
            parsed
                .signed_headers
                .iter()
                .any(|h| h == "x-amz-security-token")
        );
    });
    let mut altered = req.clone();
    for (k, v) in altered.headers.iter_mut() {
        if k == "x-amz-security-token" {
            v.push('x');
        }
    }
    assert_eq!(altered.verify(t), Err(AuthError::SignatureMismatch));
}

#[test]
fn unsigned_payload_leaves_the_body_free() {
    let t = at(1_710_505_845);
    let creds = creds();
    let params = SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "s3",
        time: t,
    };
    let base = Req::new("PUT", "/bucket/key", "", &[("host", "h")], b"body");
    let signed = base
        .with_parts(|parts| sign_request(parts, Payload::Unsigned, &params))
        .unwrap();
    let mut req = base.clone();
    req.headers
        .extend(signed.headers.into_iter().map(|(k, v)| (k.to_owned(), v)));
    req.verify(t).unwrap();
    req.body = b"another body".to_vec();
    req.verify(t).unwrap();
}

/// Issue 11: outside S3 a signature must cover the body: UNSIGNED-PAYLOAD
/// (and the unsigned streaming form) is refused, so a swapped body never
/// passes on cloudtrail-data or the CloudTrail API.
#[test]
fn issue_11_unsigned_payload_is_refused_outside_s3() {
    let t = at(1_710_505_845);
    let creds = creds();
    for service in ["cloudtrail-data", "cloudtrail", "organizations"] {
        let params = SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service,
            time: t,
        };
        let base = Req::new("POST", "/", "", &[("host", "h")], b"{}");
        let signed = base
            .with_parts(|parts| sign_request(parts, Payload::Unsigned, &params))
            .unwrap();
        let mut req = base.clone();
        req.headers
            .extend(signed.headers.into_iter().map(|(k, v)| (k.to_owned(), v)));
        assert_eq!(
            req.verify(t),
            Err(AuthError::UnsignedPayloadNotAllowed {
                service: service.to_owned()
            }),
            "{service}"
        );
        req.body = b"{\"swapped\":true}".to_vec();
        assert!(req.verify(t).is_err(), "{service}");
    }
}

#[test]
fn wrong_content_sha256_is_its_own_error() {
    let t = at(1_710_505_845);
    let creds = creds();
    let params = SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "s3",
        time: t,
    };
    let base = Req::new("PUT", "/bucket/key", "", &[("host", "h")], b"body");
    let claimed = sha256_hex(b"other");
    let signed = base
        .with_parts(|parts| sign_request(parts, Payload::Sha256Hex(&claimed), &params))
        .unwrap();
    let mut req = base.clone();
    req.headers
        .extend(signed.headers.into_iter().map(|(k, v)| (k.to_owned(), v)));
    let err = req.verify(t).unwrap_err();
    assert_eq!(
        err,
        AuthError::ContentSha256Mismatch {
            claimed: claimed.clone(),
            computed: sha256_hex(b"body"),
        }
    );
    assert_eq!(err.s3_error().0, "XAmzContentSHA256Mismatch");
    // A forged request with the same claim but no valid signature is told
    // about the signature, not the body.
    assert_eq!(
        req.verify_with("wrong", t),
        Err(AuthError::SignatureMismatch)
    );
}

#[test]
fn header_clock_skew_boundaries() {
    let t = at(1_710_505_845);
    let req = Req::new("GET", "/", "", &[("host", "h")], b"").sign(&creds(), "cloudtrail", t);
    let fifteen = TimeDelta::minutes(15);
    let second = TimeDelta::seconds(1);
    assert_eq!(req.verify(t + fifteen), Ok(()));
    assert_eq!(req.verify(t - fifteen), Ok(()));
    let late = req.verify(t + fifteen + second).unwrap_err();
    assert_eq!(
        late,
        AuthError::RequestTimeTooSkewed {
            amz_date: "20240315T123045Z".into(),
            now: "20240315T124546Z".into(),
            in_future: false,
        }
    );
    assert_eq!(
        late.json_error(),
        (
            "InvalidSignatureException",
            "Signature expired: 20240315T123045Z is now earlier than 20240315T123046Z \
             (20240315T124546Z - 15 min.)"
                .to_owned()
        )
    );
    assert_eq!(late.s3_error().0, "RequestTimeTooSkewed");
    let early = req.verify(t - fifteen - second).unwrap_err();
    assert!(matches!(
        early,
        AuthError::RequestTimeTooSkewed {
            in_future: true,
            ..
        }
    ));
    assert!(
        early
            .json_error()
            .1
            .starts_with("Signature not yet current: 20240315T123045Z")
    );
    // The time is checked before the signature: a stale forgery is reported
    // as stale.
    assert!(matches!(
        req.verify_with("wrong", t + fifteen + second),
        Err(AuthError::RequestTimeTooSkewed { .. })
    ));
}

#[test]
fn presigned_expiry_boundaries() {
    let t = at(1_710_505_845);
    let base = Req::new("GET", "/bucket/key", "", &[("host", "h")], b"");
    for service in ["s3", "cloudtrail"] {
        let req = base.presign(service, t, 60);
        assert_eq!(req.verify(t), Ok(()), "{service}");
        assert_eq!(req.verify(t + TimeDelta::seconds(60)), Ok(()), "{service}");
        let expired = req.verify(t + TimeDelta::seconds(61)).unwrap_err();
        assert!(matches!(
            expired,
            AuthError::PresignedExpired { expires: 60, .. }
        ));
        assert_eq!(
            expired.s3_error(),
            ("AccessDenied", 403, "Request has expired".to_owned())
        );
        // Dated up to 15 minutes ahead is fine; more is not.
        assert_eq!(req.verify(t - TimeDelta::minutes(15)), Ok(()));
        let future = req
            .verify(t - TimeDelta::minutes(15) - TimeDelta::seconds(1))
            .unwrap_err();
        assert!(matches!(future, AuthError::PresignedNotYetValid { .. }));
        assert_eq!(
            future.s3_error(),
            ("AccessDenied", 403, "Request is not valid yet".to_owned())
        );
    }
    let week = base.presign("s3", t, 604_800);
    assert_eq!(week.verify(t + TimeDelta::seconds(604_800)), Ok(()));
    assert!(week.verify(t + TimeDelta::seconds(604_801)).is_err());
    let zero = base.presign("s3", t, 0);
    assert_eq!(zero.verify(t), Ok(()));
    assert!(zero.verify(t + TimeDelta::seconds(1)).is_err());
    // More than a week is refused whatever the signature.
    let too_long = week.clone();
    let too_long = Req {
        query: too_long
            .query
            .replace("X-Amz-Expires=604800", "X-Amz-Expires=604801"),
        ..too_long
    };
    let err = too_long.verify(t).unwrap_err();
    assert!(matches!(err, AuthError::MalformedQuery { .. }));
    assert_eq!(err.s3_error().0, "AuthorizationQueryParametersError");
}

#[test]
fn presigned_requests_keep_their_query_and_reject_changes() {
    let t = at(1_710_505_845);
    let req = Req::new(
        "GET",
        "/bucket/a%20b",
        "versionId=3&x=a%2Bb",
        &[("host", "h")],
        b"",
    )
    .presign("s3", t, 300);
    assert!(
        req.query
            .starts_with("versionId=3&x=a%2Bb&X-Amz-Algorithm=AWS4-HMAC-SHA256&")
    );
    req.verify(t).unwrap();
    let altered = Req {
        query: req.query.replace("versionId=3", "versionId=4"),
        ..req.clone()
    };
    assert_eq!(altered.verify(t), Err(AuthError::SignatureMismatch));
    let other_method = Req {
        method: "PUT".into(),
        ..req.clone()
    };
    assert_eq!(other_method.verify(t), Err(AuthError::SignatureMismatch));
}

#[test]
fn s3_and_other_services_encode_paths_differently() {
    let t = at(1_710_505_845);
    let path = "/bucket/a%20b//c/./d/../e";
    let normalized = "/bucket/a%20b/c/e";
    let headers = [("host", "h")];

    let s3 = Req::new("GET", path, "", &headers, b"").sign(&creds(), "s3", t);
    let other = Req::new("GET", path, "", &headers, b"").sign(&creds(), "cloudtrail", t);
    let uri = |r: &Req| r.canonical().unwrap().lines().nth(1).unwrap().to_owned();
    assert_eq!(uri(&s3), path);
    assert_eq!(uri(&other), "/bucket/a%2520b/c/e");

    // For S3 the dots and slashes are part of the key: changing them fails.
    let s3_normalized = Req {
        path: normalized.into(),
        ..s3.clone()
    };
    assert_eq!(s3_normalized.verify(t), Err(AuthError::SignatureMismatch));
    // Elsewhere they are normalised away before signing.
    let other_normalized = Req {
        path: normalized.into(),
        ..other.clone()
    };
    assert_eq!(other_normalized.verify(t), Ok(()));
    // A single encoding where a non-S3 client double-encodes does not match.
    let single = Req {
        path: "/bucket/a b/c/e".into(),
        ..other
    };
    assert!(single.verify(t).is_err());
}

#[test]
fn s3_path_sent_unencoded_but_signed_encoded_verifies() {
    // Some S3 clients sign the spec's encoding but send `!` or `+` raw.
    let t = at(1_710_505_845);
    let encoded =
        Req::new("GET", "/bucket/a%21b%2Bc", "", &[("host", "h")], b"").sign(&creds(), "s3", t);
    let raw = Req {
        path: "/bucket/a!b+c".into(),
        ..encoded
    };
    assert_eq!(raw.verify(t), Ok(()));
}

#[test]
fn missing_and_broken_headers_map_to_aws_errors() {
    let t = at(1_710_505_845);
    let req = Req::new("GET", "/", "", &[("host", "h")], b"").sign(&creds(), "cloudtrail", t);
    let without_auth = Req {
        headers: req
            .headers
            .iter()
            .filter(|(k, _)| k != "authorization")
            .cloned()
            .collect(),
        ..req.clone()
    };
    let err = without_auth.verify(t).unwrap_err();
    assert_eq!(err, AuthError::Missing);
    assert_eq!(
        err.json_error(),
        (
            "MissingAuthenticationTokenException",
            "Missing Authentication Token".to_owned()
        )
    );
    assert_eq!(
        err.s3_error(),
        ("AccessDenied", 403, "Access Denied".to_owned())
    );

    let without_host = Req {
        headers: req
            .headers
            .iter()
            .filter(|(k, _)| k != "host")
            .cloned()
            .collect(),
        ..req.clone()
    };
    let err = without_host.verify(t).unwrap_err();
    assert_eq!(
        err,
        AuthError::MissingSignedHeader {
            name: "host".into()
        }
    );
    assert_eq!(err.json_error().0, "InvalidSignatureException");
    assert_eq!(err.s3_error().0, "SignatureDoesNotMatch");

    let err = req.verify_with("wrong", t).unwrap_err();
    assert_eq!(
        err.json_error(),
        (
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details."
                .to_owned()
        )
    );
    assert_eq!(err.s3_error().0, "SignatureDoesNotMatch");
    assert_eq!(err.s3_error().1, 403);
}

fn service() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("cloudtrail"),
        Just("cloudtrail-data"),
        Just("logs"),
        Just("s3"),
    ]
}

/// Paths as a client would send them: segments of arbitrary text, encoded.
fn encoded_path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just(String::new()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            "\\PC{0,8}",
        ],
        0..6,
    )
    .prop_map(|segments| {
        let encoded: Vec<String> = segments.iter().map(|s| uri_encode(s.as_bytes())).collect();
        format!("/{}", encoded.join("/"))
    })
}

/// Paths with whatever characters a sloppy client might leave raw.
fn raw_path() -> impl Strategy<Value = String> {
    "/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,40}"
}

/// Queries built from arbitrary names and values, encoded either way.
fn encoded_query() -> impl Strategy<Value = String> {
    prop::collection::vec(
        ("\\PC{0,6}", "\\PC{0,6}", any::<bool>(), any::<bool>()),
        0..6,
    )
    .prop_map(|pairs| {
        pairs
            .iter()
            .map(|(name, value, plus, bare)| {
                let enc = |s: &str| {
                    let e = uri_encode(s.as_bytes());
                    if *plus { e.replace("%20", "+") } else { e }
                };
                if *bare && value.is_empty() {
                    enc(name)
                } else {
                    format!("{}={}", enc(name), enc(value))
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn raw_query() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~!$'()*+,;:@%/=&-]{0,60}"
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("x-[a-z0-9-]{1,10}", "[ -~\t]{0,20}"), 0..5)
}

fn request() -> impl Strategy<Value = (Req, &'static str)> {
    (
        prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE")],
        prop_oneof![encoded_path(), raw_path()],
        prop_oneof![encoded_query(), raw_query()],
        headers(),
        prop::collection::vec(any::<u8>(), 0..64),
        service(),
    )
        .prop_map(|(method, path, query, extra, body, service)| {
            let mut headers = vec![("Host".to_owned(), "cairn.example:4566".to_owned())];
            headers.extend(extra);
            (
                Req {
                    method: method.to_owned(),
                    path,
                    query,
                    headers,
                    body,
                },
                service,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn signed_requests_verify(
        (req, service) in request(),
        time in 1_600_000_000i64..1_900_000_000,
        skew in -900i64..=900,
    ) {
        let t = at(time);
        let signed = req.sign(&creds(), service, t);
        prop_assert_eq!(signed.verify(t + TimeDelta::seconds(skew)), Ok(()));
    }

    #[test]
    fn presigned_requests_verify(
        (req, service) in request(),
        time in 1_600_000_000i64..1_900_000_000,
        expires in 0u64..=604_800,
        after in 0.0f64..=1.0,
    ) {
        let t = at(time);
        let mut req = req;
        req.body.clear();
        // Presigned URLs carry their own parameters; keep the query free of
        // X-Amz-* names.
        prop_assume!(!req.query.contains("X-Amz-"));
        let signed = req.presign(service, t, expires);
        let now = t + TimeDelta::seconds((expires as f64 * after) as i64);
        prop_assert_eq!(signed.verify(now), Ok(()));
        let expired = signed.verify(t + TimeDelta::seconds(expires as i64 + 1));
        let is_expired = matches!(expired, Err(AuthError::PresignedExpired { .. }));
        prop_assert!(is_expired);
    }

    #[test]
    fn altered_requests_fail(
        (req, service) in request(),
        which in 0usize..7,
        index in any::<prop::sample::Index>(),
    ) {
        let t = at(1_710_505_845);
        let signed = req.sign(&creds(), service, t);
        let mut altered = signed.clone();
        match which {
            0 if !signed.path.is_empty() => {
                let i = index.index(signed.path.len());
                let mut bytes = signed.path.clone().into_bytes();
                bytes[i] = if bytes[i] == b'Z' { b'Y' } else { b'Z' };
                altered.path = String::from_utf8(bytes).unwrap();
                return signed.assert_rejects(&altered, t);
            }
            1 if !signed.query.is_empty() => {
                let i = index.index(signed.query.len());
                let mut bytes = signed.query.clone().into_bytes();
                bytes[i] = if bytes[i] == b'Z' { b'Y' } else { b'Z' };
                altered.query = String::from_utf8(bytes).unwrap();
                return signed.assert_rejects(&altered, t);
            }
            2 => {
                // Any header but the Authorization itself is signed.
                let candidates: Vec<usize> = (0..signed.headers.len())
                    .filter(|&i| signed.headers[i].0 != "authorization")
                    .collect();
                let i = candidates[index.index(candidates.len())];
                altered.headers[i].1.push('!');
            }
            3 => altered.body.push(0),
            4 => altered.method.push('X'),
            5 => {
                altered.query = if signed.query.is_empty() {
                    "extra=1".to_owned()
                } else {
                    format!("{}&extra=1", signed.query)
                };
            }
            _ => {
                let auth = altered
                    .headers
                    .iter_mut()
                    .find(|(k, _)| k == "authorization")
                    .unwrap();
                let last = auth.1.pop().unwrap();
                auth.1.push(if last == '0' { '1' } else { '0' });
            }
        }
        let result = altered.verify(t);
        prop_assert!(result.is_err(), "accepted: {:?}", altered);
    }
}
