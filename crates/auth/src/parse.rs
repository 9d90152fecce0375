//! Reading a signature out of a request, without any secret.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

use crate::canonical::{UriEncoding, query_pairs};
use crate::{
    ALGORITHM, AuthError, MAX_CLOCK_SKEW_SECS, MAX_PRESIGN_EXPIRES_SECS,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER, UNSIGNED_PAYLOAD,
};

/// The parts of an HTTP request a SigV4 signature covers, exactly as they
/// arrived.
///
/// Nothing may be decoded or normalised before it gets here: the signature
/// is over the bytes the client sent. Its `Debug` output hides the value of
/// `x-amz-security-token`.
#[derive(Clone, Copy)]
pub struct RequestParts<'a> {
    /// The method, e.g. `POST`.
    pub method: &'a str,
    /// The path as received: percent-encoded, without the query.
    pub raw_path: &'a str,
    /// The query as received, without the `?` (empty if there is none).
    pub raw_query: &'a str,
    /// Every header line in the order received, names in any case. Repeated
    /// names appear once per line. It must include `host` (for HTTP/2, the
    /// `:authority`). Values are the raw bytes as UTF-8; a value that is not
    /// UTF-8 may be left out, which only fails requests that signed it.
    pub headers: &'a [(&'a str, &'a str)],
}

impl fmt::Debug for RequestParts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|&(k, v)| {
                if k.eq_ignore_ascii_case("x-amz-security-token") {
                    (k, REDACTED)
                } else {
                    (k, v)
                }
            })
            .collect();
        f.debug_struct("RequestParts")
            .field("method", &self.method)
            .field("raw_path", &self.raw_path)
            .field("raw_query", &redact_query_token(self.raw_query))
            .field("headers", &headers)
            .finish()
    }
}

const REDACTED: &str = "<redacted>";

/// The query with the value of `X-Amz-Security-Token` replaced, for `Debug`.
fn redact_query_token(query: &str) -> String {
    query
        .split('&')
        .map(|piece| match piece.split_once('=') {
            Some((name, _)) if name == "X-Amz-Security-Token" => format!("{name}={REDACTED}"),
            _ => piece.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl<'a> RequestParts<'a> {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }
}

/// Borrows the headers of an `http::HeaderMap`-like iterator as the
/// `(name, value)` pairs [`RequestParts::headers`] wants, dropping values that
/// are not UTF-8.
///
/// ```
/// let headers = [("host", b"example.com".as_slice()), ("x-bin", b"\xff".as_slice())];
/// let pairs = cairn_auth::utf8_headers(headers.iter().map(|(k, v)| (*k, *v)));
/// assert_eq!(pairs, vec![("host", "example.com")]);
/// ```
pub fn utf8_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Vec<(&'a str, &'a str)> {
    headers
        .into_iter()
        .filter_map(|(k, v)| std::str::from_utf8(v).ok().map(|v| (k, v)))
        .collect()
}

/// The credential scope `AKID/yyyymmdd/region/service/aws4_request`: who
/// signed, and for which day, region and service the signing key was made.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialScope {
    /// The access key ID.
    pub access_key_id: String,
    /// The day, `yyyymmdd`.
    pub date: String,
    /// The region, e.g. `us-east-1`.
    pub region: String,
    /// The signing service name (`cloudtrail`, `s3`, `logs`, ...): what the
    /// server routes on.
    pub service: String,
}

impl CredentialScope {
    /// `yyyymmdd/region/service/aws4_request`, the scope line of the string
    /// to sign.
    pub fn scope_string(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }

    /// The canonical-URI rule of the scope's service.
    pub fn uri_encoding(&self) -> UriEncoding {
        UriEncoding::for_service(&self.service)
    }

    /// Parses `AKID/yyyymmdd/region/service/aws4_request`; the error is
    /// AWS's wording of what is wrong.
    fn parse(credential: &str) -> Result<Self, String> {
        let parts: Vec<&str> = credential.split('/').collect();
        let [akid, date, region, service, terminator] = parts.as_slice() else {
            return Err(format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/term, got '{credential}'"
            ));
        };
        if akid.is_empty() {
            return Err(format!(
                "Credential has an empty access key ID, got '{credential}'"
            ));
        }
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "Credential should be scoped to a valid date (yyyymmdd), not '{date}'."
            ));
        }
        if region.is_empty() {
            return Err("Credential should be scoped to a valid region, not ''.".to_owned());
        }
        if service.is_empty() {
            return Err("Credential should be scoped to a valid service, not ''.".to_owned());
        }
        if *terminator != "aws4_request" {
            return Err(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not \
                 '{terminator}'."
            ));
        }
        Ok(CredentialScope {
            access_key_id: (*akid).to_owned(),
            date: (*date).to_owned(),
            region: (*region).to_owned(),
            service: (*service).to_owned(),
        })
    }
}

/// Where a request carries its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureLocation {
    /// The `Authorization: AWS4-HMAC-SHA256 ...` header.
    Header,
    /// Presigned: `X-Amz-Algorithm`, `X-Amz-Credential`, ... query
    /// parameters.
    Query,
}

/// What the `x-amz-content-sha256` header says about the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadHash {
    /// No header: the payload hash is the SHA-256 of the body (for presigned
    /// S3 requests, `UNSIGNED-PAYLOAD`).
    Absent,
    /// A hex SHA-256 the client computed over the body; it is what the
    /// signature covers, and `verify` checks it against the body's hash.
    Sha256(String),
    /// `UNSIGNED-PAYLOAD`: the body is not covered by the signature.
    Unsigned,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: the body is `aws-chunked`
    /// encoded with an unsigned checksum trailer; the signature covers the
    /// headers only, and the caller must decode the chunks (and should check
    /// the trailer's checksum).
    StreamingUnsignedTrailer,
}

impl PayloadHash {
    fn parse(value: &str) -> Result<Self, AuthError> {
        match value {
            UNSIGNED_PAYLOAD => Ok(PayloadHash::Unsigned),
            STREAMING_UNSIGNED_PAYLOAD_TRAILER => Ok(PayloadHash::StreamingUnsignedTrailer),
            v if v.starts_with("STREAMING-") => {
                Err(AuthError::UnsupportedPayload { mode: v.to_owned() })
            }
            v if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(PayloadHash::Sha256(v.to_owned()))
            }
            v => Err(AuthError::InvalidContentSha256 {
                value: v.to_owned(),
            }),
        }
    }
}

/// A request's signature and everything needed to check it, read without
/// the secret. Its `Debug` output hides the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    /// Who signed, and for which day, region and service.
    pub scope: CredentialScope,
    /// Header or presigned query.
    pub location: SignatureLocation,
    /// The signed header names, as listed by the client (normally sorted and
    /// lower-case); always includes `host`.
    pub signed_headers: Vec<String>,
    /// The signature as sent (64 lower-case hex digits when well-formed).
    pub signature: String,
    /// The request time, `yyyymmddThhmmssZ` (converted from `Date` when that
    /// header is used instead of `X-Amz-Date`).
    pub amz_date: String,
    /// The request time as a timestamp.
    pub signed_at: DateTime<Utc>,
    /// `X-Amz-Expires` of a presigned request, seconds.
    pub expires: Option<u64>,
    /// The `x-amz-content-sha256` header.
    pub content_sha256: PayloadHash,
    /// `X-Amz-Security-Token` (header or query): present when the request
    /// was signed with temporary credentials.
    pub security_token: Option<String>,
}

impl fmt::Debug for ParsedSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedSignature")
            .field("scope", &self.scope)
            .field("location", &self.location)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &self.signature)
            .field("amz_date", &self.amz_date)
            .field("signed_at", &self.signed_at)
            .field("expires", &self.expires)
            .field("content_sha256", &self.content_sha256)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| REDACTED),
            )
            .finish()
    }
}

impl ParsedSignature {
    /// Whether `verify` may need the hash of the body. When this is false the
    /// caller can skip hashing (unsigned or streaming payloads).
    pub fn needs_body_hash(&self) -> bool {
        // Outside S3 the body is always covered (UNSIGNED-PAYLOAD is refused).
        if self.scope.uri_encoding() != UriEncoding::S3 {
            return true;
        }
        match self.content_sha256 {
            PayloadHash::Absent => {
                !(self.location == SignatureLocation::Query
                    && self.scope.uri_encoding() == UriEncoding::S3)
            }
            PayloadHash::Sha256(_) => true,
            PayloadHash::Unsigned | PayloadHash::StreamingUnsignedTrailer => false,
        }
    }

    /// Checks the request time against the server's clock: a header-signed
    /// request may be at most 15 minutes early or late; a presigned one must
    /// be used before `X-Amz-Date + X-Amz-Expires` and may not be dated more
    /// than 15 minutes ahead.
    ///
    /// [`crate::verify`] calls this first; calling it before looking up the
    /// access key saves a lookup for stale requests.
    pub fn check_time(&self, now: DateTime<Utc>) -> Result<(), AuthError> {
        let skew = TimeDelta::seconds(MAX_CLOCK_SKEW_SECS);
        match (self.location, self.expires) {
            (SignatureLocation::Query, Some(expires)) => {
                if self.signed_at > now + skew {
                    return Err(AuthError::PresignedNotYetValid {
                        amz_date: self.amz_date.clone(),
                        now: format_amz_date(now),
                    });
                }
                // `expires` is at most a week (checked by `parse`), so the
                // conversion cannot fail.
                let valid_for = TimeDelta::seconds(i64::try_from(expires).unwrap_or(i64::MAX));
                if now > self.signed_at + valid_for {
                    return Err(AuthError::PresignedExpired {
                        amz_date: self.amz_date.clone(),
                        expires,
                        now: format_amz_date(now),
                    });
                }
                Ok(())
            }
            _ => {
                if self.signed_at < now - skew || self.signed_at > now + skew {
                    return Err(AuthError::RequestTimeTooSkewed {
                        amz_date: self.amz_date.clone(),
                        now: format_amz_date(now),
                        in_future: self.signed_at > now,
                    });
                }
                Ok(())
            }
        }
    }
}

/// Reads the signature of a request: its credential scope (to route the
/// request and find the secret), signed headers, time and payload mode.
///
/// Cheap and secret-free; everything structural is checked here, so that
/// [`crate::verify`] only has time and cryptography left to do.
/// A request with no signature at all fails with [`AuthError::Missing`].
pub fn parse(parts: &RequestParts<'_>) -> Result<ParsedSignature, AuthError> {
    let authorization_count = parts.header_count("authorization");
    let presigned = query_pairs(parts.raw_query).any(|(name, _)| name == b"X-Amz-Algorithm");
    match (authorization_count, presigned) {
        (0, false) => {
            // A request that carries some of the presigned parameters but
            // not the algorithm was meant to be signed: say what is missing
            // rather than treat it as anonymous.
            if query_pairs(parts.raw_query)
                .any(|(name, _)| name == b"X-Amz-Signature" || name == b"X-Amz-Credential")
            {
                return Err(AuthError::MalformedQuery {
                    message: PRESIGN_REQUIRES.to_owned(),
                });
            }
            Err(AuthError::Missing)
        }
        (0, true) => parse_query(parts),
        (1, false) => parse_header(parts),
        (_, true) => Err(AuthError::MultipleMechanisms),
        (_, false) => Err(AuthError::MalformedAuthorization {
            message: "Only one Authorization header is allowed.".to_owned(),
        }),
    }
}

/// The credential scope of a request, read as leniently as possible, for
/// choosing the error format (S3 or JSON) when [`parse`] fails.
pub fn scope_hint(parts: &RequestParts<'_>) -> Option<CredentialScope> {
    if let Some(auth) = parts.header("authorization") {
        let credential = auth
            .split([',', ' '])
            .find_map(|piece| piece.trim().strip_prefix("Credential="))?;
        return CredentialScope::parse(credential).ok();
    }
    let (_, credential) =
        query_pairs(parts.raw_query).find(|(name, _)| name == b"X-Amz-Credential")?;
    CredentialScope::parse(std::str::from_utf8(&credential).ok()?).ok()
}

const PRESIGN_REQUIRES: &str = "Query-string authentication version 4 requires the \
     X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and \
     X-Amz-Expires parameters.";

fn parse_header(parts: &RequestParts<'_>) -> Result<ParsedSignature, AuthError> {
    let value = parts.header("authorization").unwrap_or_default().trim();
    let (algorithm, params) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm {
            algorithm: algorithm.to_owned(),
        });
    }
    let malformed = |message: String| AuthError::MalformedAuthorization { message };

    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for param in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, val)) = param.split_once('=') else {
            return Err(malformed(format!(
                "Authorization header parameter '{param}' is not of the form key=value. \
                 Authorization={value}"
            )));
        };
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            // Nothing else in the header feeds the signature; tolerate extras.
            _ => continue,
        };
        if slot.replace(val.trim()).is_some() {
            return Err(malformed(format!(
                "Authorization header has more than one '{}' parameter. Authorization={value}",
                key.trim()
            )));
        }
    }

    let date_header = parts.header("x-amz-date").or_else(|| parts.header("date"));
    let mut missing = String::new();
    for (name, found) in [
        ("Credential", credential.is_some()),
        ("Signature", signature.is_some()),
        ("SignedHeaders", signed_headers.is_some()),
    ] {
        if !found {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        if date_header.is_none() {
            missing.push_str(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' \
                 header. ",
            );
        }
        return Err(malformed(format!("{missing}Authorization={value}")));
    };
    let scope = CredentialScope::parse(credential).map_err(malformed)?;
    let signed_headers = parse_signed_headers(signed_headers).map_err(malformed)?;

    let Some(date_value) = date_header else {
        return Err(AuthError::MissingDate);
    };
    // X-Amz-Date wins over Date; botocore sends one or the other.
    let signed_at = if parts.header("x-amz-date").is_some() {
        parse_amz_date(date_value.trim())
    } else {
        parse_amz_date(date_value.trim()).or_else(|| parse_http_date(date_value))
    }
    .ok_or_else(|| AuthError::InvalidDate {
        value: date_value.to_owned(),
        location: SignatureLocation::Header,
    })?;
    let amz_date = format_amz_date(signed_at);
    check_scope_date(&scope, &amz_date, SignatureLocation::Header)?;

    let content_sha256 = match parts.header("x-amz-content-sha256") {
        Some(v) => PayloadHash::parse(v.trim())?,
        None => PayloadHash::Absent,
    };

    Ok(ParsedSignature {
        scope,
        location: SignatureLocation::Header,
        signed_headers,
        signature: signature.to_owned(),
        amz_date,
        signed_at,
        expires: None,
        content_sha256,
        security_token: parts.header("x-amz-security-token").map(str::to_owned),
    })
}

fn parse_query(parts: &RequestParts<'_>) -> Result<ParsedSignature, AuthError> {
    let malformed = |message: String| AuthError::MalformedQuery { message };
    let mut algorithm = None;
    let mut credential = None;
    let mut date = None;
    let mut expires = None;
    let mut signed_headers = None;
    let mut signature = None;
    let mut token = None;
    for (name, value) in query_pairs(parts.raw_query) {
        let slot = match name.as_slice() {
            b"X-Amz-Algorithm" => &mut algorithm,
            b"X-Amz-Credential" => &mut credential,
            b"X-Amz-Date" => &mut date,
            b"X-Amz-Expires" => &mut expires,
            b"X-Amz-SignedHeaders" => &mut signed_headers,
            b"X-Amz-Signature" => &mut signature,
            b"X-Amz-Security-Token" => &mut token,
            _ => continue,
        };
        let value = String::from_utf8(value).map_err(|_| {
            malformed(format!(
                "{} is not valid UTF-8.",
                String::from_utf8_lossy(&name)
            ))
        })?;
        if slot.replace(value).is_some() {
            return Err(malformed(format!(
                "{} may appear only once.",
                String::from_utf8_lossy(&name)
            )));
        }
    }
    let (
        Some(algorithm),
        Some(credential),
        Some(date),
        Some(expires),
        Some(signed_headers),
        Some(signature),
    ) = (
        algorithm,
        credential,
        date,
        expires,
        signed_headers,
        signature,
    )
    else {
        return Err(malformed(PRESIGN_REQUIRES.to_owned()));
    };
    if algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm { algorithm });
    }
    let scope = CredentialScope::parse(&credential)
        .map_err(|m| malformed(format!("Error parsing the X-Amz-Credential parameter; {m}")))?;
    let expires = parse_expires(&expires).map_err(malformed)?;
    let signed_headers = parse_signed_headers(&signed_headers).map_err(malformed)?;
    let signed_at = parse_amz_date(&date).ok_or_else(|| AuthError::InvalidDate {
        value: date.clone(),
        location: SignatureLocation::Query,
    })?;
    check_scope_date(&scope, &date, SignatureLocation::Query)?;
    let content_sha256 = match parts.header("x-amz-content-sha256") {
        Some(v) => PayloadHash::parse(v.trim())?,
        None => PayloadHash::Absent,
    };
    Ok(ParsedSignature {
        scope,
        location: SignatureLocation::Query,
        signed_headers,
        signature,
        amz_date: date,
        signed_at,
        expires: Some(expires),
        content_sha256,
        security_token: token,
    })
}

fn parse_expires(value: &str) -> Result<u64, String> {
    if value.starts_with('-') {
        return Err("X-Amz-Expires must be non-negative".to_owned());
    }
    let expires: u64 = value
        .parse()
        .map_err(|_| format!("X-Amz-Expires should be a number, got '{value}'"))?;
    if expires > MAX_PRESIGN_EXPIRES_SECS {
        return Err(
            "X-Amz-Expires must be less than a week (in seconds); that is, the given \
             X-Amz-Expires must be less than 604800 seconds"
                .to_owned(),
        );
    }
    Ok(expires)
}

/// Splits `SignedHeaders`, insisting on `host` (without it the signature
/// would not bind the request to this server) and on no empty or repeated
/// names (which no client produces and would make the header block
/// ambiguous).
fn parse_signed_headers(list: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = list.split(';').map(str::to_owned).collect();
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b == b':') {
            return Err(format!(
                "SignedHeaders contains an invalid header name: '{list}'."
            ));
        }
        if names[..i].iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(format!("SignedHeaders lists '{name}' more than once."));
        }
    }
    if !names.iter().any(|n| n.eq_ignore_ascii_case("host")) {
        return Err(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        );
    }
    Ok(names)
}

fn check_scope_date(
    scope: &CredentialScope,
    amz_date: &str,
    location: SignatureLocation,
) -> Result<(), AuthError> {
    if amz_date.get(..8) != Some(scope.date.as_str()) {
        return Err(AuthError::ScopeDateMismatch {
            scope_date: scope.date.clone(),
            amz_date: amz_date.to_owned(),
            location,
        });
    }
    Ok(())
}

/// Parses `yyyymmddThhmmssZ` strictly (chrono alone would accept fewer
/// digits).
pub(crate) fn parse_amz_date(value: &str) -> Option<DateTime<Utc>> {
    let b = value.as_bytes();
    let shape_ok = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    if !shape_ok {
        return None;
    }
    NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Parses an HTTP `Date` header (RFC 7231 IMF-fixdate, or RFC 2822 as
/// Python's `formatdate` writes it).
fn parse_http_date(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(value.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Formats a time as `yyyymmddThhmmssZ`.
pub(crate) fn format_amz_date(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(query: &'a str, headers: &'a [(&'a str, &'a str)]) -> RequestParts<'a> {
        RequestParts {
            method: "GET",
            raw_path: "/",
            raw_query: query,
            headers,
        }
    }

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/cloudtrail/aws4_request, SignedHeaders=host;x-amz-date, Signature=abcd";

    #[test]
    fn missing_signature_is_missing() {
        assert_eq!(parse(&parts("", &[("host", "h")])), Err(AuthError::Missing));
        assert_eq!(
            parse(&parts("a=b", &[("host", "h")])),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn header_form_is_parsed() {
        let headers = [
            ("Host", "h"),
            ("X-Amz-Date", "20240101T000000Z"),
            ("Authorization", AUTH),
        ];
        let p = parse(&parts("", &headers)).unwrap();
        assert_eq!(p.scope.access_key_id, "AKID");
        assert_eq!(p.scope.service, "cloudtrail");
        assert_eq!(p.location, SignatureLocation::Header);
        assert_eq!(p.signed_headers, vec!["host", "x-amz-date"]);
        assert_eq!(p.signature, "abcd");
        assert_eq!(p.content_sha256, PayloadHash::Absent);
        assert!(p.needs_body_hash());
    }

    #[test]
    fn header_without_spaces_is_parsed() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=ab";
        let headers = [
            ("host", "h"),
            ("x-amz-date", "20240101T000000Z"),
            ("authorization", auth),
        ];
        let p = parse(&parts("", &headers)).unwrap();
        assert_eq!(p.scope.service, "s3");
        assert_eq!(p.signature, "ab");
    }

    #[test]
    fn incomplete_header_lists_every_missing_part() {
        let headers = [("host", "h"), ("authorization", "AWS4-HMAC-SHA256 Foo=bar")];
        let Err(AuthError::MalformedAuthorization { message }) = parse(&parts("", &headers)) else {
            panic!("expected MalformedAuthorization");
        };
        assert!(message.starts_with(
            "Authorization header requires 'Credential' parameter. Authorization header \
             requires 'Signature' parameter. Authorization header requires 'SignedHeaders' \
             parameter. Authorization header requires existence of either a 'X-Amz-Date' or a \
             'Date' header. Authorization=AWS4-HMAC-SHA256 Foo=bar"
        ));
    }

    #[test]
    fn bad_credentials_are_malformed() {
        for credential in [
            "AKID/20240101/us-east-1/cloudtrail",
            "AKID/2024010/us-east-1/cloudtrail/aws4_request",
            "AKID/20240101//cloudtrail/aws4_request",
            "AKID/20240101/us-east-1//aws4_request",
            "AKID/20240101/us-east-1/cloudtrail/aws5_request",
            "/20240101/us-east-1/cloudtrail/aws4_request",
        ] {
            let auth = format!(
                "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature=ab"
            );
            let headers = [
                ("host", "h"),
                ("x-amz-date", "20240101T000000Z"),
                ("authorization", auth.as_str()),
            ];
            assert!(
                matches!(
                    parse(&parts("", &headers)),
                    Err(AuthError::MalformedAuthorization { .. })
                ),
                "{credential}"
            );
        }
    }

    #[test]
    fn host_must_be_signed() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/logs/aws4_request, SignedHeaders=x-amz-date, Signature=ab";
        let headers = [
            ("host", "h"),
            ("x-amz-date", "20240101T000000Z"),
            ("authorization", auth),
        ];
        let Err(AuthError::MalformedAuthorization { message }) = parse(&parts("", &headers)) else {
            panic!("expected MalformedAuthorization");
        };
        assert!(message.contains("'Host' or ':authority'"));
    }

    #[test]
    fn dates() {
        let no_date = [("host", "h"), ("authorization", AUTH)];
        assert_eq!(parse(&parts("", &no_date)), Err(AuthError::MissingDate));
        let bad = [
            ("host", "h"),
            ("x-amz-date", "2024-01-01T00:00:00Z"),
            ("authorization", AUTH),
        ];
        assert!(matches!(
            parse(&parts("", &bad)),
            Err(AuthError::InvalidDate { .. })
        ));
        let other_day = [
            ("host", "h"),
            ("x-amz-date", "20240102T000000Z"),
            ("authorization", AUTH),
        ];
        assert!(matches!(
            parse(&parts("", &other_day)),
            Err(AuthError::ScopeDateMismatch { .. })
        ));
        let http_date = [
            ("host", "h"),
            ("date", "Mon, 01 Jan 2024 12:00:00 GMT"),
            ("authorization", AUTH),
        ];
        assert_eq!(
            parse(&parts("", &http_date)).unwrap().amz_date,
            "20240101T120000Z"
        );
        let py_date = [
            ("host", "h"),
            ("date", "Mon, 01 Jan 2024 12:00:00 -0000"),
            ("authorization", AUTH),
        ];
        assert_eq!(
            parse(&parts("", &py_date)).unwrap().amz_date,
            "20240101T120000Z"
        );
        assert!(parse_amz_date("2024101T0000000Z").is_none());
        assert!(parse_amz_date("20241301T000000Z").is_none());
    }

    #[test]
    fn payload_modes() {
        let with = |v: &'static str| {
            let headers = [
                ("host", "h"),
                ("x-amz-date", "20240101T000000Z"),
                ("x-amz-content-sha256", v),
                ("authorization", AUTH),
            ];
            parse(&parts("", &headers))
        };
        assert_eq!(
            with("UNSIGNED-PAYLOAD").unwrap().content_sha256,
            PayloadHash::Unsigned
        );
        // Outside S3 the body is always hashed: UNSIGNED-PAYLOAD is refused there.
        assert!(with("UNSIGNED-PAYLOAD").unwrap().needs_body_hash());
        assert_eq!(
            with("STREAMING-UNSIGNED-PAYLOAD-TRAILER")
                .unwrap()
                .content_sha256,
            PayloadHash::StreamingUnsignedTrailer
        );
        assert!(matches!(
            with("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
            Err(AuthError::UnsupportedPayload { .. })
        ));
        assert!(matches!(
            with("abc"),
            Err(AuthError::InvalidContentSha256 { .. })
        ));
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            with(hex).unwrap().content_sha256,
            PayloadHash::Sha256(hex.to_owned())
        );
    }

    #[test]
    fn unsupported_algorithms() {
        for auth in [
            "AWS AKID:sig",
            "AWS4-ECDSA-P256-SHA256 Credential=x",
            "Bearer t",
        ] {
            let headers = [("host", "h"), ("authorization", auth)];
            assert!(matches!(
                parse(&parts("", &headers)),
                Err(AuthError::UnsupportedAlgorithm { .. })
            ));
        }
    }

    const PRESIGNED: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=ab";

    #[test]
    fn query_form_is_parsed() {
        let p = parse(&parts(PRESIGNED, &[("host", "h")])).unwrap();
        assert_eq!(p.location, SignatureLocation::Query);
        assert_eq!(p.scope.service, "s3");
        assert_eq!(p.expires, Some(60));
        assert!(!p.needs_body_hash());
        assert_eq!(scope_hint(&parts(PRESIGNED, &[])).unwrap().service, "s3");
    }

    #[test]
    fn query_form_errors() {
        let without_date = PRESIGNED.replace("&X-Amz-Date=20240101T000000Z", "");
        assert!(matches!(
            parse(&parts(&without_date, &[("host", "h")])),
            Err(AuthError::MalformedQuery { .. })
        ));
        let long = PRESIGNED.replace("X-Amz-Expires=60", "X-Amz-Expires=604801");
        assert!(matches!(
            parse(&parts(&long, &[("host", "h")])),
            Err(AuthError::MalformedQuery { .. })
        ));
        let negative = PRESIGNED.replace("X-Amz-Expires=60", "X-Amz-Expires=-1");
        assert!(matches!(
            parse(&parts(&negative, &[("host", "h")])),
            Err(AuthError::MalformedQuery { .. })
        ));
        let twice = format!("{PRESIGNED}&X-Amz-Date=20240101T000000Z");
        assert!(matches!(
            parse(&parts(&twice, &[("host", "h")])),
            Err(AuthError::MalformedQuery { .. })
        ));
        let day = PRESIGNED.replace("X-Amz-Date=20240101", "X-Amz-Date=20240102");
        assert!(matches!(
            parse(&parts(&day, &[("host", "h")])),
            Err(AuthError::ScopeDateMismatch {
                location: SignatureLocation::Query,
                ..
            })
        ));
        let both = [("host", "h"), ("authorization", AUTH)];
        assert_eq!(
            parse(&parts(PRESIGNED, &both)),
            Err(AuthError::MultipleMechanisms)
        );
        let no_algorithm = PRESIGNED.replace("X-Amz-Algorithm=AWS4-HMAC-SHA256&", "");
        assert!(matches!(
            parse(&parts(&no_algorithm, &[("host", "h")])),
            Err(AuthError::MalformedQuery { .. })
        ));
    }

    #[test]
    fn debug_output_hides_session_tokens() {
        let query = format!("{PRESIGNED}&X-Amz-Security-Token=SeSs%2Fsecret");
        let headers = [("host", "h"), ("X-Amz-Security-Token", "SeSs-secret")];
        let p = parts(&query, &headers);
        let shown = format!("{p:?}");
        assert!(!shown.contains("SeSs"), "{shown}");
        let parsed = parse(&parts(&query, &[("host", "h")])).unwrap();
        assert_eq!(parsed.security_token.as_deref(), Some("SeSs/secret"));
        assert!(!format!("{parsed:?}").contains("SeSs"));
    }

    #[test]
    fn scope_hint_reads_broken_headers() {
        let headers = [(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1/s3/aws4_request",
        )];
        let hint = scope_hint(&parts("", &headers)).unwrap();
        assert_eq!(hint.region, "eu-west-1");
        assert_eq!(hint.service, "s3");
        assert!(scope_hint(&parts("", &[])).is_none());
    }
}
