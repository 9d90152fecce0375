//! AWS Signature Version 4, verified the way AWS services check it.
//!
//! The server first [`parse`]s a request (no secret needed) to learn its
//! credential scope, whose service name routes it; then it [`verify`]s the
//! signature with the secret of the access key. Both the header form
//! (`Authorization: AWS4-HMAC-SHA256 ...`) and the presigned-query form
//! (`X-Amz-Signature=...`) are accepted.
//!
//! The canonical request is rebuilt from the request exactly as received:
//! the path as sent (S3 signs it as is; other services normalise it and
//! encode each segment once more, as botocore does), the query re-encoded and
//! sorted, the signed headers lower-cased, trimmed and folded.

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The clock skew AWS tolerates.
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;
/// The longest presigned URL validity.
pub const MAX_EXPIRES_SECONDS: u64 = 604_800;
/// The payload hash of requests that do not sign their body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The parts of a request a signature covers, as received.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The method.
    pub method: &'a str,
    /// The path as received (percent-encoded, no query).
    pub raw_path: &'a str,
    /// The query as received, without `?`.
    pub raw_query: &'a str,
    /// The headers (names in any case).
    pub headers: &'a [(&'a str, &'a str)],
}

impl RequestParts<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    fn query_pairs(&self) -> Vec<(String, String)> {
        self.raw_query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }
}

/// The credential scope `AKID/date/region/service/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    /// The access key ID.
    pub access_key_id: String,
    /// `yyyymmdd`.
    pub date: String,
    /// The region.
    pub region: String,
    /// The service name (routes the request).
    pub service: String,
}

/// Where the signature is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureLocation {
    /// The `Authorization` header.
    Header,
    /// Presigned query parameters.
    Query,
}

/// A parsed, not yet verified, signature.
#[derive(Debug, Clone)]
pub struct ParsedSignature {
    /// The scope.
    pub scope: CredentialScope,
    /// Header or query.
    pub location: SignatureLocation,
    /// Signed header names, lower case, as listed.
    pub signed_headers: Vec<String>,
    /// The hex signature.
    pub signature: String,
    /// `x-amz-date` (`yyyymmddThhmmssZ`).
    pub amz_date: String,
    /// Presigned validity in seconds.
    pub expires: Option<u64>,
}

/// Why a request is not authenticated. Each variant documents the AWS error
/// it becomes; [`AuthError::json_error`] and [`AuthError::s3_error`] give them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No signature at all: `MissingAuthenticationTokenException` / S3 `AccessDenied`.
    #[error("missing authentication")]
    Missing,
    /// A malformed or incomplete signature: `IncompleteSignatureException` /
    /// S3 `AuthorizationHeaderMalformed`.
    #[error("{0}")]
    Incomplete(String),
    /// The signature does not match: `InvalidSignatureException` / S3 `SignatureDoesNotMatch`.
    #[error("signature does not match")]
    Mismatch,
    /// Outside the clock-skew window: `InvalidSignatureException` / S3 `RequestTimeTooSkewed`.
    #[error("Signature expired: {amz_date} is now earlier than {earliest} ({now} - 15 min.)")]
    Skewed {
        /// The request's time.
        amz_date: String,
        /// The earliest time accepted.
        earliest: String,
        /// Now.
        now: String,
    },
    /// A presigned URL past its expiry: `InvalidSignatureException` / S3 `AccessDenied`.
    #[error("Request has expired")]
    Expired,
    /// The body does not match `x-amz-content-sha256`: S3 `XAmzContentSHA256Mismatch`.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    PayloadMismatch,
    /// A signing variant this server does not take (aws-chunked streaming).
    #[error("{0}")]
    Unsupported(String),
}

const MISMATCH_MESSAGE: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

impl AuthError {
    /// The code and message for JSON-protocol services.
    pub fn json_error(&self) -> (&'static str, String) {
        match self {
            AuthError::Missing => (
                "MissingAuthenticationTokenException",
                "Missing Authentication Token".to_owned(),
            ),
            AuthError::Incomplete(m) | AuthError::Unsupported(m) => {
                ("IncompleteSignatureException", m.clone())
            }
            AuthError::Mismatch | AuthError::PayloadMismatch => {
                ("InvalidSignatureException", MISMATCH_MESSAGE.to_owned())
            }
            AuthError::Skewed { .. } | AuthError::Expired => {
                ("InvalidSignatureException", self.to_string())
            }
        }
    }

    /// The code, HTTP status and message for S3.
    pub fn s3_error(&self) -> (&'static str, u16, String) {
        match self {
            AuthError::Missing => ("AccessDenied", 403, "Access Denied".to_owned()),
            AuthError::Incomplete(m) => ("AuthorizationHeaderMalformed", 400, m.clone()),
            AuthError::Unsupported(m) => ("NotImplemented", 501, m.clone()),
            AuthError::Mismatch => ("SignatureDoesNotMatch", 403, MISMATCH_MESSAGE.to_owned()),
            AuthError::Skewed { .. } => (
                "RequestTimeTooSkewed",
                403,
                "The difference between the request time and the current time is too large."
                    .to_owned(),
            ),
            AuthError::Expired => ("AccessDenied", 403, "Request has expired".to_owned()),
            AuthError::PayloadMismatch => ("XAmzContentSHA256Mismatch", 400, self.to_string()),
        }
    }
}

fn incomplete(message: impl Into<String>) -> AuthError {
    AuthError::Incomplete(message.into())
}

fn parse_scope(credential: &str) -> Result<CredentialScope, AuthError> {
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [akid, date, region, service, "aws4_request"] if !akid.is_empty() && date.len() == 8 => {
            Ok(CredentialScope {
                access_key_id: (*akid).to_owned(),
                date: (*date).to_owned(),
                region: (*region).to_owned(),
                service: (*service).to_owned(),
            })
        }
        _ => Err(incomplete(format!(
            "Credential should be scoped to a valid region, date, service and terminated with 'aws4_request'. '{credential}'"
        ))),
    }
}

/// Reads the signature of a request without checking it.
pub fn parse(parts: &RequestParts<'_>) -> Result<ParsedSignature, AuthError> {
    if let Some(auth) = parts.header("authorization") {
        let rest = auth.trim().strip_prefix(ALGORITHM).ok_or_else(|| {
            incomplete(format!(
                "Unsupported Authorization Type: {}",
                auth.split(' ').next().unwrap_or("")
            ))
        })?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for item in rest.split(',') {
            let item = item.trim();
            if let Some((k, v)) = item.split_once('=') {
                match k.trim() {
                    "Credential" => credential = Some(v.trim()),
                    "SignedHeaders" => signed = Some(v.trim()),
                    "Signature" => signature = Some(v.trim()),
                    _ => {}
                }
            }
        }
        let mut missing = Vec::new();
        for (name, value) in [
            ("Credential", credential),
            ("Signature", signature),
            ("SignedHeaders", signed),
        ] {
            if value.is_none_or(str::is_empty) {
                missing.push(format!("Authorization header requires '{name}' parameter."));
            }
        }
        let amz_date = parts.header("x-amz-date").or_else(|| parts.header("date"));
        if amz_date.is_none() {
            missing.push("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".to_owned());
        }
        if !missing.is_empty() {
            return Err(incomplete(format!(
                "{} Authorization={auth}",
                missing.join(" ")
            )));
        }
        let scope = parse_scope(credential.unwrap_or_default())?;
        return Ok(ParsedSignature {
            scope,
            location: SignatureLocation::Header,
            signed_headers: signed
                .unwrap_or_default()
                .split(';')
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            signature: signature.unwrap_or_default().to_owned(),
            amz_date: amz_date.unwrap_or_default().trim().to_owned(),
            expires: None,
        });
    }
    let query = parts.query_pairs();
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if get("X-Amz-Signature").is_none() && get("X-Amz-Algorithm").is_none() {
        return Err(AuthError::Missing);
    }
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(incomplete(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
        ));
    }
    let required = [
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-SignedHeaders",
        "X-Amz-Date",
    ];
    let missing: Vec<&str> = required
        .into_iter()
        .filter(|n| get(n).is_none_or(str::is_empty))
        .collect();
    if !missing.is_empty() {
        return Err(incomplete(format!(
            "Query-string authentication requires the {} parameters",
            missing.join(", ")
        )));
    }
    let expires = match get("X-Amz-Expires") {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .ok()
                .filter(|e| *e <= MAX_EXPIRES_SECONDS)
                .ok_or_else(|| {
                    incomplete("X-Amz-Expires must be a number of seconds up to 604800")
                })?,
        ),
    };
    Ok(ParsedSignature {
        scope: parse_scope(get("X-Amz-Credential").unwrap_or_default())?,
        location: SignatureLocation::Query,
        signed_headers: get("X-Amz-SignedHeaders")
            .unwrap_or_default()
            .split(';')
            .map(str::to_ascii_lowercase)
            .collect(),
        signature: get("X-Amz-Signature").unwrap_or_default().to_owned(),
        amz_date: get("X-Amz-Date").unwrap_or_default().to_owned(),
        expires,
    })
}

fn parse_amz_date(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Verifies a parsed signature with the access key's secret.
///
/// `body_sha256_hex` is the hex SHA-256 of the body actually received.
pub fn verify(
    parts: &RequestParts<'_>,
    parsed: &ParsedSignature,
    secret_access_key: &str,
    body_sha256_hex: &str,
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    let time = parse_amz_date(&parsed.amz_date).ok_or_else(|| {
        incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{}'.",
            parsed.amz_date
        ))
    })?;
    if !parsed.amz_date.starts_with(&parsed.scope.date) {
        return Err(AuthError::Mismatch);
    }
    if !parsed.signed_headers.iter().any(|h| h == "host") {
        return Err(incomplete(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    let fmt = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let skew = chrono::Duration::seconds(MAX_SKEW_SECONDS);
    match parsed.location {
        SignatureLocation::Header => {
            if time < now - skew || time > now + skew {
                return Err(AuthError::Skewed {
                    amz_date: parsed.amz_date.clone(),
                    earliest: fmt(now - skew),
                    now: fmt(now),
                });
            }
        }
        SignatureLocation::Query => {
            let expires =
                chrono::Duration::seconds(parsed.expires.unwrap_or(MAX_EXPIRES_SECONDS) as i64);
            if now > time + expires {
                return Err(AuthError::Expired);
            }
            if time > now + skew {
                return Err(AuthError::Skewed {
                    amz_date: parsed.amz_date.clone(),
                    earliest: fmt(now - skew),
                    now: fmt(now),
                });
            }
        }
    }
    let payload = match parsed.location {
        SignatureLocation::Query => UNSIGNED_PAYLOAD.to_owned(),
        SignatureLocation::Header => match parts.header("x-amz-content-sha256").map(str::trim) {
            None => body_sha256_hex.to_owned(),
            Some(UNSIGNED_PAYLOAD) => UNSIGNED_PAYLOAD.to_owned(),
            Some(v) if v.starts_with("STREAMING-") => {
                return Err(AuthError::Unsupported(format!(
                    "{v} payloads are not supported; send the body unchunked"
                )));
            }
            Some(v) => {
                if !v.eq_ignore_ascii_case(body_sha256_hex) {
                    return Err(AuthError::PayloadMismatch);
                }
                v.to_owned()
            }
        },
    };
    let mut headers = Vec::with_capacity(parsed.signed_headers.len());
    for name in &parsed.signed_headers {
        let values: Vec<&str> = parts
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .collect();
        if values.is_empty() {
            return Err(AuthError::Mismatch);
        }
        let folded: Vec<String> = values.iter().map(|v| collapse_spaces(v)).collect();
        headers.push((name.clone(), folded.join(",")));
    }
    let uri = canonical_uri(parts.raw_path, parsed.scope.service == "s3");
    let query = canonical_query(parts, parsed.location == SignatureLocation::Query);
    let canonical = canonical_request(parts.method, &uri, &query, &headers, &payload);
    let expected = signature(
        secret_access_key,
        &parsed.scope,
        &parsed.amz_date,
        &canonical,
    );
    let given = hex::decode(&parsed.signature).map_err(|_| AuthError::Mismatch)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&[0u8; 32]).expect("HMAC takes any key");
    // Constant-time comparison: compare MACs of both values under a throwaway key.
    mac.update(&expected);
    let expected_mac = mac.finalize().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(&[0u8; 32]).expect("HMAC takes any key");
    mac.update(&given);
    mac.verify_slice(&expected_mac)
        .map_err(|_| AuthError::Mismatch)
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decodes `%XX` escapes (and nothing else: `+` stays `+`, as SigV4 has it).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (
                hex_val(bytes[i + 1]),
                bytes.get(i + 2).and_then(|b| hex_val(*b)),
            )
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// URI-encodes with the SigV4 unreserved set; `/` too unless `keep_slash`.
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical URI: S3 signs the path as sent; other services sign the
/// normalised path with each segment encoded once more (botocore's rule).
fn canonical_uri(raw_path: &str, s3: bool) -> String {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    if s3 {
        return path.to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    out.push_str(
        &segments
            .iter()
            .map(|s| uri_encode(s, false))
            .collect::<Vec<_>>()
            .join("/"),
    );
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

fn canonical_query(parts: &RequestParts<'_>, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = parts
        .query_pairs()
        .into_iter()
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_request(
    method: &str,
    uri: &str,
    query: &str,
    headers: &[(String, String)],
    payload: &str,
) -> String {
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    format!(
        "{method}\n{uri}\n{query}\n{canonical_headers}\n{}\n{payload}",
        signed.join(";")
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn signature(secret: &str, scope: &CredentialScope, amz_date: &str, canonical: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), scope.date.as_bytes());
    let k_region = hmac(&k_date, scope.region.as_bytes());
    let k_service = hmac(&k_region, scope.service.as_bytes());
    let key = hmac(&k_service, b"aws4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{}/{}/{}/aws4_request\n{}",
        scope.date,
        scope.region,
        scope.service,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    hmac(&key, string_to_sign.as_bytes())
}
