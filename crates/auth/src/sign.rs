//! Signing requests, for Cairn's own clients and for tests.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::canonical::{self, UriEncoding, uri_encode};
use crate::parse::format_amz_date;
use crate::{ALGORITHM, CredentialScope, MAX_PRESIGN_EXPIRES_SECS, RequestParts, SigningKey};
use crate::{UNSIGNED_PAYLOAD, sha256_hex};

/// A secret access key. Its `Debug` output is redacted and it has no
/// `Display`, so it cannot end up in a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretAccessKey(String);

impl SecretAccessKey {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretAccessKey(secret.into())
    }

    /// The secret itself, for signing and verifying.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretAccessKey(<redacted>)")
    }
}

impl From<String> for SecretAccessKey {
    fn from(secret: String) -> Self {
        SecretAccessKey(secret)
    }
}

impl From<&str> for SecretAccessKey {
    fn from(secret: &str) -> Self {
        SecretAccessKey(secret.to_owned())
    }
}

/// AWS credentials: an access key, its secret and, for temporary
/// credentials, a session token. `Debug` shows only the access key ID.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key ID (public).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretAccessKey,
    /// The session token of temporary credentials, sent as
    /// `X-Amz-Security-Token`.
    pub session_token: Option<String>,
}

impl Credentials {
    /// Long-term credentials (no session token).
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: SecretAccessKey::new(secret_access_key),
            session_token: None,
        }
    }

    /// The same credentials with a session token.
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Who signs, for what, and when.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    /// The signer's credentials.
    pub credentials: &'a Credentials,
    /// The region of the credential scope.
    pub region: &'a str,
    /// The signing service name (`cloudtrail`, `s3`, ...); it also picks the
    /// canonical-URI rule.
    pub service: &'a str,
    /// The signing time (normally now).
    pub time: DateTime<Utc>,
}

/// What the signature covers of the body.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// The body itself; it is hashed here.
    Bytes(&'a [u8]),
    /// The hex SHA-256 of the body, computed by the caller (for streamed
    /// bodies).
    Sha256Hex(&'a str),
    /// `UNSIGNED-PAYLOAD`: the body is not signed.
    Unsigned,
}

/// The result of [`sign_request`]: the headers to add to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// Headers to add, in order: `x-amz-date`, then `x-amz-security-token`
    /// and `x-amz-content-sha256` when used, then `authorization`.
    pub headers: Vec<(&'static str, String)>,
    /// The signature, lower-case hex.
    pub signature: String,
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// There is no `host` header; it must be signed.
    #[error("the request has no host header")]
    MissingHost,
    /// A header name that is not an HTTP token.
    #[error("header name {0:?} is not a valid HTTP token")]
    InvalidHeaderName(String),
    /// A header value containing a line break.
    #[error("the value of header {0:?} contains a line break")]
    InvalidHeaderValue(String),
    /// An empty region or service, or one containing `/`.
    #[error("region {region:?} or service {service:?} cannot be part of a credential scope")]
    InvalidScope {
        /// The region given.
        region: String,
        /// The service given.
        service: String,
    },
    /// A presign expiry beyond a week.
    #[error("expiry of {0}s is longer than a week")]
    ExpiresTooLong(u64),
}

/// Headers clients do not sign because proxies may add, drop or rewrite
/// them (botocore's list, plus the `authorization` being computed).
const UNSIGNABLE: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The headers of `parts` to sign, minus the ones in `replaced` (which the
/// signer sets itself), checked for validity.
fn headers_to_sign<'a>(
    parts: &RequestParts<'a>,
    replaced: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, SignError> {
    let mut out = Vec::with_capacity(parts.headers.len() + 4);
    for &(name, value) in parts.headers {
        if !is_token(name) {
            return Err(SignError::InvalidHeaderName(name.to_owned()));
        }
        if value.contains(['\r', '\n']) {
            return Err(SignError::InvalidHeaderValue(name.to_owned()));
        }
        let skip = UNSIGNABLE
            .iter()
            .chain(replaced)
            .any(|u| u.eq_ignore_ascii_case(name));
        if !skip {
            out.push((name, value));
        }
    }
    if !out.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        return Err(SignError::MissingHost);
    }
    Ok(out)
}

/// The sorted, de-duplicated, lower-case names of `headers`.
fn signed_names(headers: &[(&str, &str)]) -> Vec<String> {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

fn scope_of(params: &SigningParams<'_>) -> Result<CredentialScope, SignError> {
    let bad = |s: &str| s.is_empty() || s.contains('/');
    if bad(params.region) || bad(params.service) {
        return Err(SignError::InvalidScope {
            region: params.region.to_owned(),
            service: params.service.to_owned(),
        });
    }
    Ok(CredentialScope {
        access_key_id: params.credentials.access_key_id.clone(),
        date: params.time.format("%Y%m%d").to_string(),
        region: params.region.to_owned(),
        service: params.service.to_owned(),
    })
}

/// Signs a request in the header form, the way botocore does.
///
/// `parts` is the request as it will be sent: the raw path and query exactly
/// as they go on the wire (build them with [`crate::uri_encode`]), and every
/// header, including `host`. All headers are signed except the hop-by-hop
/// ones proxies touch (and `user-agent`). Any `authorization`, `x-amz-date`,
/// `x-amz-security-token` or `x-amz-content-sha256` already present is
/// ignored: the returned [`SignedRequest::headers`] replace them.
///
/// `x-amz-content-sha256` is sent for S3 (which requires it) and whenever
/// the payload is unsigned.
pub fn sign_request(
    parts: &RequestParts<'_>,
    payload: Payload<'_>,
    params: &SigningParams<'_>,
) -> Result<SignedRequest, SignError> {
    let scope = scope_of(params)?;
    let encoding = UriEncoding::for_service(params.service);
    let amz_date = format_amz_date(params.time);
    let payload_hash = match payload {
        Payload::Bytes(body) => sha256_hex(body),
        Payload::Sha256Hex(hex) => hex.to_ascii_lowercase(),
        Payload::Unsigned => UNSIGNED_PAYLOAD.to_owned(),
    };
    let send_content_sha = encoding == UriEncoding::S3 || matches!(payload, Payload::Unsigned);

    let mut added: Vec<(&'static str, String)> = vec![("x-amz-date", amz_date.clone())];
    if let Some(token) = &params.credentials.session_token {
        added.push(("x-amz-security-token", token.clone()));
    }
    if send_content_sha {
        added.push(("x-amz-content-sha256", payload_hash.clone()));
    }

    let mut headers = headers_to_sign(
        parts,
        &["x-amz-date", "x-amz-security-token", "x-amz-content-sha256"],
    )?;
    headers.extend(added.iter().map(|(n, v)| (*n, v.as_str())));
    let names = signed_names(&headers);
    let (block, line) = canonical::canonical_headers(&headers, &names)
        .map_err(|absent| SignError::InvalidHeaderName(absent.0))?;

    let uri = canonical::canonical_uris(parts.raw_path, encoding)
        .into_iter()
        .next()
        .unwrap_or_else(|| "/".to_owned());
    let query = canonical::canonical_queries(parts.raw_query, false)
        .into_iter()
        .next()
        .unwrap_or_default();
    let request =
        canonical::canonical_request(parts.method, &uri, &query, &block, &line, &payload_hash);
    let sts = canonical::string_to_sign(&amz_date, &scope, &request);
    let signature =
        SigningKey::for_scope(params.credentials.secret_access_key.expose(), &scope).sign(&sts);

    added.push((
        "authorization",
        format!(
            "{ALGORITHM} Credential={}/{}, SignedHeaders={line}, Signature={signature}",
            scope.access_key_id,
            scope.scope_string()
        ),
    ));
    Ok(SignedRequest {
        headers: added,
        signature,
    })
}

/// Presigns a request: returns the raw query string to send instead of
/// `parts.raw_query` (the original parameters followed by `X-Amz-*`
/// parameters and `X-Amz-Signature`).
///
/// The headers of `parts` (at least `host`) are signed, minus the
/// hop-by-hop ones, so whoever uses the URL must send them unchanged. The
/// payload is `UNSIGNED-PAYLOAD`, as presigned URLs carry no body hash.
pub fn presign(
    parts: &RequestParts<'_>,
    params: &SigningParams<'_>,
    expires_secs: u64,
) -> Result<String, SignError> {
    if expires_secs > MAX_PRESIGN_EXPIRES_SECS {
        return Err(SignError::ExpiresTooLong(expires_secs));
    }
    let scope = scope_of(params)?;
    let encoding = UriEncoding::for_service(params.service);
    let amz_date = format_amz_date(params.time);
    let headers = headers_to_sign(parts, &[])?;
    let names = signed_names(&headers);
    let (block, line) = canonical::canonical_headers(&headers, &names)
        .map_err(|absent| SignError::InvalidHeaderName(absent.0))?;

    let mut query = parts.raw_query.to_owned();
    let credential = format!("{}/{}", scope.access_key_id, scope.scope_string());
    let mut auth_params = vec![
        ("X-Amz-Algorithm", ALGORITHM.to_owned()),
        ("X-Amz-Credential", credential),
        ("X-Amz-Date", amz_date.clone()),
        ("X-Amz-Expires", expires_secs.to_string()),
        ("X-Amz-SignedHeaders", line.clone()),
    ];
    if let Some(token) = &params.credentials.session_token {
        auth_params.push(("X-Amz-Security-Token", token.clone()));
    }
    for (name, value) in &auth_params {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(name);
        query.push('=');
        query.push_str(&uri_encode(value.as_bytes()));
    }

    let uri = canonical::canonical_uris(parts.raw_path, encoding)
        .into_iter()
        .next()
        .unwrap_or_else(|| "/".to_owned());
    let canonical_query = canonical::canonical_queries(&query, true)
        .into_iter()
        .next()
        .unwrap_or_default();
    let request = canonical::canonical_request(
        parts.method,
        &uri,
        &canonical_query,
        &block,
        &line,
        UNSIGNED_PAYLOAD,
    );
    let sts = canonical::string_to_sign(&amz_date, &scope, &request);
    let signature =
        SigningKey::for_scope(params.credentials.secret_access_key.expose(), &scope).sign(&sts);
    query.push_str("&X-Amz-Signature=");
    query.push_str(&signature);
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let creds = Credentials::new("AKIDEXAMPLE", "very-secret").with_session_token("tok-secret");
        let shown = format!("{creds:?}");
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(!shown.contains("very-secret"));
        assert!(!shown.contains("tok-secret"));
        assert_eq!(creds.secret_access_key.expose(), "very-secret");
    }

    #[test]
    fn signing_requires_host_and_valid_headers() {
        let creds = Credentials::new("AKID", "secret");
        let params = SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "cloudtrail",
            time: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
        };
        let parts = |headers: &'static [(&'static str, &'static str)]| RequestParts {
            method: "GET",
            raw_path: "/",
            raw_query: "",
            headers,
        };
        assert_eq!(
            sign_request(&parts(&[]), Payload::Unsigned, &params),
            Err(SignError::MissingHost)
        );
        assert!(matches!(
            sign_request(
                &parts(&[("host", "h"), ("bad name", "v")]),
                Payload::Unsigned,
                &params
            ),
            Err(SignError::InvalidHeaderName(_))
        ));
        assert!(matches!(
            sign_request(
                &parts(&[("host", "h"), ("x", "a\r\nb")]),
                Payload::Unsigned,
                &params
            ),
            Err(SignError::InvalidHeaderValue(_))
        ));
        let bad_scope = SigningParams {
            region: "us/east",
            ..params
        };
        assert!(matches!(
            sign_request(&parts(&[("host", "h")]), Payload::Unsigned, &bad_scope),
            Err(SignError::InvalidScope { .. })
        ));
        assert_eq!(
            presign(&parts(&[("host", "h")]), &params, 604_801),
            Err(SignError::ExpiresTooLong(604_801))
        );
    }

    #[test]
    fn authorization_header_has_the_usual_shape() {
        let creds = Credentials::new("AKID", "secret");
        let params = SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "s3",
            time: DateTime::from_timestamp(1_704_067_200, 0).unwrap_or_default(),
        };
        let headers = [
            ("Host", "localhost:4566"),
            ("User-Agent", "x"),
            ("X-Amz-Meta-A", "b"),
        ];
        let parts = RequestParts {
            method: "PUT",
            raw_path: "/bucket/key",
            raw_query: "",
            headers: &headers,
        };
        let signed = sign_request(&parts, Payload::Bytes(b"body"), &params).unwrap();
        let names: Vec<&str> = signed.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            vec!["x-amz-date", "x-amz-content-sha256", "authorization"]
        );
        assert_eq!(signed.headers[0].1, "20240101T000000Z");
        assert_eq!(signed.headers[1].1, sha256_hex(b"body"));
        assert_eq!(
            signed.headers[2].1,
            format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-a, Signature={}",
                signed.signature
            )
        );
    }
}
