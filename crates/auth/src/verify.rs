//! Checking a parsed signature with the secret: signing keys, their cache,
//! and the verification itself.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::canonical::{self, UriEncoding};
use crate::{
    AuthError, CredentialScope, ParsedSignature, PayloadHash, RequestParts,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER, SignatureLocation, UNSIGNED_PAYLOAD,
};

type HmacSha256 = Hmac<Sha256>;

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC hashes or pads a key of any length, so this cannot fail.
    let Ok(mac) = HmacSha256::new_from_slice(key) else {
        unreachable!("HMAC-SHA256 accepts keys of any length")
    };
    mac
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = new_mac(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// A derived SigV4 signing key, `HMAC(HMAC(HMAC(HMAC("AWS4" + secret,
/// date), region), service), "aws4_request")`, ready to sign.
///
/// It holds the keyed HMAC state rather than the key bytes, so signing with
/// it skips the key setup too. Its `Debug` output reveals nothing.
#[derive(Clone)]
pub struct SigningKey {
    mac: HmacSha256,
}

impl SigningKey {
    /// Derives the key of `secret` for one day, region and service.
    pub fn derive(secret: &str, date: &str, region: &str, service: &str) -> Self {
        let mut seed = Vec::with_capacity(4 + secret.len());
        seed.extend_from_slice(b"AWS4");
        seed.extend_from_slice(secret.as_bytes());
        let k_date = hmac(&seed, date.as_bytes());
        let k_region = hmac(&k_date, region.as_bytes());
        let k_service = hmac(&k_region, service.as_bytes());
        let k_signing = hmac(&k_service, b"aws4_request");
        SigningKey {
            mac: new_mac(&k_signing),
        }
    }

    /// Derives the key of `secret` for a credential scope.
    pub fn for_scope(secret: &str, scope: &CredentialScope) -> Self {
        Self::derive(secret, &scope.date, &scope.region, &scope.service)
    }

    /// The signature of a string to sign, as lower-case hex.
    pub fn sign(&self, string_to_sign: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(string_to_sign.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` (raw bytes) signs `string_to_sign`, compared in
    /// constant time so that timing does not reveal how much of a forged
    /// signature was right.
    fn matches(&self, string_to_sign: &str, signature: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(string_to_sign.as_bytes());
        mac.verify_slice(signature).is_ok()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// A cache of derived signing keys.
///
/// A key depends only on (secret, day, region, service), so a busy server
/// derives each one once a day instead of running four extra HMACs on every
/// request. Entries are keyed by a SHA-256 over those four values, so the
/// cache does not hold secrets in the clear. When full it is simply emptied:
/// keys change daily anyway, and a refill costs one derivation per client.
/// Safe to share between threads.
pub struct SigningKeyCache {
    capacity: usize,
    keys: Mutex<HashMap<[u8; 32], SigningKey>>,
}

impl SigningKeyCache {
    /// A cache holding at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        SigningKeyCache {
            capacity: capacity.max(1),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The signing key of `secret` for `scope`, derived at most once.
    pub fn signing_key(&self, secret: &str, scope: &CredentialScope) -> SigningKey {
        let id = cache_id(secret, scope);
        // A panic while holding the lock cannot leave the map inconsistent
        // (every operation on it is a single call), so ignore poisoning.
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = keys.get(&id) {
            return key.clone();
        }
        let key = SigningKey::for_scope(secret, scope);
        if keys.len() >= self.capacity {
            keys.clear();
        }
        keys.insert(id, key.clone());
        key
    }

    /// [`verify`] with a cached signing key.
    pub fn verify(
        &self,
        parts: &RequestParts<'_>,
        parsed: &ParsedSignature,
        secret_access_key: &str,
        body_sha256_hex: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        // Check the time before deriving anything: stale requests are cheap
        // to reject and must not fill the cache.
        parsed.check_time(now)?;
        let key = self.signing_key(secret_access_key, &parsed.scope);
        verify_signature(parts, parsed, &key, body_sha256_hex)
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no key is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for SigningKeyCache {
    /// Room for 4096 keys: every access key, region and service in use today.
    fn default() -> Self {
        Self::new(4096)
    }
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

fn cache_id(secret: &str, scope: &CredentialScope) -> [u8; 32] {
    let mut hasher = Sha256::new();
    // Length-prefix each field so no two tuples hash the same input.
    for field in [secret, &scope.date, &scope.region, &scope.service] {
        hasher.update((field.len() as u64).to_le_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.finalize().into()
}

/// Verifies a parsed signature with the secret of its access key.
///
/// `body_sha256_hex` is the hex SHA-256 of the body as received (see
/// [`crate::sha256_hex`]); it is only consulted when
/// [`ParsedSignature::needs_body_hash`] says so, and may be anything
/// otherwise. `now` is the server's clock.
///
/// In order, this checks: the request time ([`ParsedSignature::check_time`]),
/// that every signed header is present, the signature (in constant time),
/// and last that an `x-amz-content-sha256` digest is the body's. The last
/// comes after the signature so that only a correctly signed request learns
/// that its body was altered or truncated.
pub fn verify(
    parts: &RequestParts<'_>,
    parsed: &ParsedSignature,
    secret_access_key: &str,
    body_sha256_hex: &str,
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    parsed.check_time(now)?;
    let key = SigningKey::for_scope(secret_access_key, &parsed.scope);
    verify_signature(parts, parsed, &key, body_sha256_hex)
}

/// [`verify`] with a signing key the caller derived (or cached) itself.
pub fn verify_with_key(
    parts: &RequestParts<'_>,
    parsed: &ParsedSignature,
    key: &SigningKey,
    body_sha256_hex: &str,
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    parsed.check_time(now)?;
    verify_signature(parts, parsed, key, body_sha256_hex)
}

/// The canonical request the server expects for this request: what a
/// spec-following client hashed. For debugging and for S3's
/// `SignatureDoesNotMatch` details; `verify` also accepts a few variants
/// that common clients produce (see the crate documentation).
pub fn canonical_request(
    parts: &RequestParts<'_>,
    parsed: &ParsedSignature,
    body_sha256_hex: &str,
) -> Result<String, AuthError> {
    let (block, line) = signed_header_block(parts, parsed)?;
    let body = lower_hex(body_sha256_hex);
    let uris = canonical::canonical_uris(parts.raw_path, parsed.scope.uri_encoding());
    let queries =
        canonical::canonical_queries(parts.raw_query, parsed.location == SignatureLocation::Query);
    let payloads = payload_candidates(parsed, &body);
    Ok(canonical::canonical_request(
        parts.method,
        uris.first().map_or("/", String::as_str),
        queries.first().map_or("", String::as_str),
        &block,
        &line,
        payloads.first().copied().unwrap_or(UNSIGNED_PAYLOAD),
    ))
}

fn signed_header_block(
    parts: &RequestParts<'_>,
    parsed: &ParsedSignature,
) -> Result<(String, String), AuthError> {
    canonical::canonical_headers(parts.headers, &parsed.signed_headers)
        .map_err(|absent| AuthError::MissingSignedHeader { name: absent.0 })
}

fn lower_hex(hex: &str) -> Cow<'_, str> {
    if hex.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(hex.to_ascii_lowercase())
    } else {
        Cow::Borrowed(hex)
    }
}

/// The SHA-256 of an empty body.
const EMPTY_BODY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The payload hashes the client may have signed, most likely first.
fn payload_candidates<'a>(parsed: &'a ParsedSignature, body: &'a str) -> Vec<&'a str> {
    match &parsed.content_sha256 {
        PayloadHash::Sha256(claimed) => vec![claimed.as_str()],
        PayloadHash::Unsigned => vec![UNSIGNED_PAYLOAD],
        PayloadHash::StreamingUnsignedTrailer => vec![STREAMING_UNSIGNED_PAYLOAD_TRAILER],
        PayloadHash::Absent => match (parsed.location, parsed.scope.uri_encoding()) {
            (SignatureLocation::Header, _) => vec![body],
            // Presigned S3 URLs never sign a body.
            (SignatureLocation::Query, UriEncoding::S3) => vec![UNSIGNED_PAYLOAD],
            // botocore presigns other services with the hash of the (empty)
            // body; the Rust and Go SDKs use UNSIGNED-PAYLOAD. Accept both:
            // each only matches a signature made over that exact string.
            // UNSIGNED-PAYLOAD only covers a body when there is none.
            (SignatureLocation::Query, UriEncoding::Normalized) if body == EMPTY_BODY_SHA256 => {
                vec![body, UNSIGNED_PAYLOAD]
            }
            (SignatureLocation::Query, UriEncoding::Normalized) => vec![body],
        },
    }
}

fn verify_signature(
    parts: &RequestParts<'_>,
    parsed: &ParsedSignature,
    key: &SigningKey,
    body_sha256_hex: &str,
) -> Result<(), AuthError> {
    // Only S3 lets a signature leave the body uncovered.
    if parsed.scope.uri_encoding() != UriEncoding::S3
        && matches!(
            parsed.content_sha256,
            PayloadHash::Unsigned | PayloadHash::StreamingUnsignedTrailer
        )
    {
        return Err(AuthError::UnsignedPayloadNotAllowed {
            service: parsed.scope.service.clone(),
        });
    }
    let (block, line) = signed_header_block(parts, parsed)?;
    let signature = match hex::decode(&parsed.signature) {
        Ok(bytes) if bytes.len() == 32 => bytes,
        _ => return Err(AuthError::SignatureMismatch),
    };
    let body = lower_hex(body_sha256_hex);
    let uris = canonical::canonical_uris(parts.raw_path, parsed.scope.uri_encoding());
    let queries =
        canonical::canonical_queries(parts.raw_query, parsed.location == SignatureLocation::Query);
    let payloads = payload_candidates(parsed, &body);

    // Usually exactly one combination; the alternatives (see
    // `canonical_uris`, `canonical_queries`, `payload_candidates`) only come
    // into play for clients that canonicalise differently, and each can
    // only match a signature that was computed over that very string.
    let matched = uris.iter().any(|uri| {
        queries.iter().any(|query| {
            payloads.iter().any(|payload| {
                let request =
                    canonical::canonical_request(parts.method, uri, query, &block, &line, payload);
                let sts = canonical::string_to_sign(&parsed.amz_date, &parsed.scope, &request);
                key.matches(&sts, &signature)
            })
        })
    });
    if !matched {
        return Err(AuthError::SignatureMismatch);
    }

    if let PayloadHash::Sha256(claimed) = &parsed.content_sha256
        && !claimed.eq_ignore_ascii_case(&body)
    {
        return Err(AuthError::ContentSha256Mismatch {
            claimed: claimed.clone(),
            computed: body.into_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_matches_the_aws_documentation_example() {
        // The worked example of the SigV4 documentation ("Examples of how to
        // derive a signing key"): secret, 20120215, us-east-1, iam.
        let key = SigningKey::derive(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        let mut k = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20120215");
        for part in [b"us-east-1".as_slice(), b"iam", b"aws4_request"] {
            k = hmac(&k, part);
        }
        assert_eq!(
            hex::encode(k),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
        assert_eq!(key.sign("x"), hex::encode(hmac(&k, b"x")));
    }

    #[test]
    fn debug_output_hides_keys() {
        let key = SigningKey::derive("secret", "20240101", "r", "s");
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
    }

    #[test]
    fn cache_derives_once_and_bounds_its_size() {
        let cache = SigningKeyCache::new(2);
        let scope = |date: &str| CredentialScope {
            access_key_id: "AKID".into(),
            date: date.into(),
            region: "us-east-1".into(),
            service: "cloudtrail".into(),
        };
        let a = cache.signing_key("s", &scope("20240101"));
        assert_eq!(cache.len(), 1);
        let again = cache.signing_key("s", &scope("20240101"));
        assert_eq!(a.sign("x"), again.sign("x"));
        assert_eq!(cache.len(), 1);
        cache.signing_key("other", &scope("20240101"));
        assert_eq!(cache.len(), 2);
        cache.signing_key("s", &scope("20240102"));
        assert_eq!(cache.len(), 1);
        assert_ne!(
            cache.signing_key("s", &scope("20240101")).sign("x"),
            cache.signing_key("t", &scope("20240101")).sign("x")
        );
        assert!(!format!("{cache:?}").contains("AKID"));
    }
}
