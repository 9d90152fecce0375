//! AWS Signature Version 4, checked the way AWS services check it.
//!
//! Cairn speaks AWS's own wire protocols so that the AWS CLI, boto3 and the
//! SDKs work against it unchanged; they all authenticate with SigV4. This
//! crate is the pure part of that: no I/O, no async, no HTTP types. The
//! server edge hands it the request as received and gets back either the
//! verified credential scope or an [`AuthError`] it can turn into the exact
//! error AWS would send ([`AuthError::json_error`], [`AuthError::s3_error`],
//! [`AuthError::query_error`]).
//!
//! # Use
//!
//! 1. [`parse`] the request ([`RequestParts`]: method, raw path, raw query,
//!    headers). It needs no secret and is cheap; the resulting
//!    [`ParsedSignature::scope`] names the access key (to look the secret
//!    up) and the signing service (`cloudtrail`, `s3`, `logs`, ... to route
//!    the request). An unsigned request gives [`AuthError::Missing`].
//! 2. [`verify`] it with the secret, the SHA-256 of the body and the clock
//!    (or use a [`SigningKeyCache`], which derives each signing key once).
//!
//! [`sign_request`] and [`presign`] are the other side, for Cairn's own
//! clients and for tests.
//!
//! S3's SigV2 *query* authentication (the AWS CLI's `aws s3 presign` URLs) is
//! the one exception to SigV4: [`parse_sigv2_query`] and [`verify_sigv2`]
//! check it (HMAC-SHA1, `Expires`); the SigV2 `Authorization` header stays
//! refused.
//!
//! # What is verified
//!
//! * **Form.** `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
//!   Signature=...` or the presigned `X-Amz-Algorithm`, `X-Amz-Credential`,
//!   `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature`
//!   query parameters; not both. `host` must be signed, or the signature
//!   would not bind the request to this server.
//! * **Time.** The credential scope's day must be the day of `X-Amz-Date`
//!   (or of the `Date` header, when that is used instead). A header-signed
//!   request may be at most 15 minutes off the server clock either way, which
//!   bounds how long a captured request can be replayed. A presigned request
//!   is valid until `X-Amz-Date + X-Amz-Expires` (at most a week) and may not
//!   be dated more than 15 minutes ahead, so a future date cannot stretch
//!   its life.
//! * **Signature.** The canonical request is rebuilt from the bytes
//!   received, hashed into the string to sign, and HMAC'd with the key
//!   derived from the secret; the result is compared in constant time.
//! * **Body.** Header-signed requests without `x-amz-content-sha256` sign
//!   the body's hash directly. With the header, the signature covers the
//!   header's value, which is then checked against the body
//!   ([`AuthError::ContentSha256Mismatch`]), or `UNSIGNED-PAYLOAD` /
//!   `STREAMING-UNSIGNED-PAYLOAD-TRAILER` say the body is not signed, which
//!   only S3 allows: for any other service the signature must cover the body
//!   ([`AuthError::UnsignedPayloadNotAllowed`]).
//!   Chunk-signed streaming (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`) is
//!   refused as [`AuthError::UnsupportedPayload`].
//!
//! # Canonicalisation
//!
//! The server must hash exactly what the client hashed, so every rule
//! follows botocore (which the other SDKs agree with):
//!
//! * **Path.** S3 signs the path as sent: encoded once, `//` and `.`
//!   segments kept (they are part of object keys). Every other service
//!   removes dot segments and empty segments and then percent-encodes the
//!   already-encoded path again ([`UriEncoding`]).
//! * **Query.** Each name and value is decoded (`+` is a space, as
//!   `urlencode` writes it) and encoded again with the unreserved set
//!   `A-Z a-z 0-9 - _ . ~`; pairs are sorted by name, then value, and
//!   written as `name=value` even when the value is empty. A presigned
//!   request leaves `X-Amz-Signature` out.
//! * **Headers.** Names lower-case; values trimmed with inner whitespace
//!   runs collapsed to one space; repeated headers joined with `,` in the
//!   order received; a signed header missing from the request fails.
//!
//! A few clients canonicalise differently from the spec in corner cases,
//! and [`verify`] also tries those readings when the first does not match:
//! botocore signs a query it was handed inside a URL without re-encoding
//! it; some S3 clients send characters raw that they signed encoded; and
//! botocore presigns non-S3 requests with the empty body's hash where the
//! other SDKs use `UNSIGNED-PAYLOAD`. Each alternative is a fixed function
//! of the received bytes, so it can only match a signature the key holder
//! computed over that very string.
//!
//! # Secrets
//!
//! Secrets are never stored by this crate except inside a
//! [`SigningKeyCache`] (as derived keys, indexed by a hash) and
//! [`Credentials`], whose `Debug` output is redacted; no error carries one.

mod canonical;
mod error;
mod parse;
mod sign;
mod sigv2;
mod verify;

pub use canonical::{UriEncoding, sha256_hex, string_to_sign, uri_encode, uri_encode_path};
pub use error::AuthError;
pub use parse::{
    CredentialScope, ParsedSignature, PayloadHash, RequestParts, SignatureLocation, parse,
    scope_hint, utf8_headers,
};
pub use sign::{
    Credentials, Payload, SecretAccessKey, SignError, SignedRequest, SigningParams, presign,
    sign_request,
};
pub use sigv2::{
    SIGNED_SUBRESOURCES, SigV2Query, parse_sigv2_query, sigv2_sign, sigv2_string_to_sign,
    verify_sigv2,
};
pub use verify::{SigningKey, SigningKeyCache, canonical_request, verify, verify_with_key};

/// The only signing algorithm supported.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How far a header-signed request's time may be from the server's clock,
/// and how far ahead a presigned request may be dated (15 minutes).
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

/// The longest `X-Amz-Expires` of a presigned request: one week.
pub const MAX_PRESIGN_EXPIRES_SECS: u64 = 604_800;

/// The payload hash of a request whose body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The payload hash of an `aws-chunked` body with an unsigned trailer.
pub const STREAMING_UNSIGNED_PAYLOAD_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// The SHA-256 of an empty body, in hex.
pub const EMPTY_SHA256_HEX: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
