//! Why a request failed authentication, and what AWS would have answered.
//!
//! Each variant is precise enough for the server edge to produce the error
//! code and message the real service family would: the AWS JSON protocol
//! (CloudTrail, CloudTrail Data, CloudWatch Logs, Organizations, ...), the
//! AWS query protocol (the XML `ErrorResponse` of STS or classic CloudWatch)
//! and S3's REST-XML. Display strings are for logs; the `*_error` methods
//! give what goes on the wire. No variant ever holds a secret.

use crate::SignatureLocation;

/// What AWS-JSON services say on a bad signature.
const JSON_BAD_SIGNATURE: &str = "The request signature we calculated does not match the \
     signature you provided. Check your AWS Secret Access Key and signing method. Consult the \
     service documentation for details.";
/// What S3 says on a bad signature.
const S3_BAD_SIGNATURE: &str = "The request signature we calculated does not match the \
     signature you provided. Check your key and signing method.";
/// What the JSON and query protocols say about an unknown access key.
const BAD_TOKEN: &str = "The security token included in the request is invalid.";
/// S3's message for an unknown access key.
const S3_BAD_KEY: &str = "The AWS Access Key Id you provided does not exist in our records.";
/// S3's message when a request is missing a date or carries a bad one.
const S3_BAD_DATE: &str = "AWS authentication requires a valid Date or x-amz-date header";

/// A request that did not authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Neither an `Authorization` header nor an `X-Amz-Algorithm` query
    /// parameter: an anonymous request.
    ///
    /// JSON: `MissingAuthenticationTokenException` "Missing Authentication
    /// Token" (403). Query: `MissingAuthenticationToken` (403). S3:
    /// `AccessDenied` "Access Denied" (403).
    #[error("the request is not signed")]
    Missing,

    /// The `Authorization` header is incomplete or malformed (a missing
    /// `Credential`, `SignedHeaders` or `Signature`, a bad credential scope,
    /// `host` not signed, ...). `message` is AWS's wording.
    ///
    /// JSON: `IncompleteSignatureException` (400). Query:
    /// `IncompleteSignature` (400). S3: `AuthorizationHeaderMalformed` (400).
    #[error("malformed Authorization header: {message}")]
    MalformedAuthorization {
        /// What is wrong, in AWS's words.
        message: String,
    },

    /// The presigned query parameters are incomplete or malformed (missing
    /// parameters, bad `X-Amz-Credential`, `X-Amz-Expires` out of range).
    ///
    /// JSON: `IncompleteSignatureException` (400). Query:
    /// `IncompleteSignature` (400). S3: `AuthorizationQueryParametersError`
    /// (400).
    #[error("malformed presigned query: {message}")]
    MalformedQuery {
        /// What is wrong, in AWS's words.
        message: String,
    },

    /// Both an `Authorization` header and presigned query parameters.
    ///
    /// JSON: `IncompleteSignatureException` (400). Query:
    /// `IncompleteSignature` (400). S3: `InvalidArgument` (400).
    #[error("both an Authorization header and X-Amz-Algorithm query parameters")]
    MultipleMechanisms,

    /// A signing algorithm other than `AWS4-HMAC-SHA256` (SigV2, SigV4a,
    /// bearer tokens, ...).
    ///
    /// JSON: `IncompleteSignatureException` (400). Query:
    /// `IncompleteSignature` (400). S3: `InvalidRequest` (400) "The
    /// authorization mechanism you have provided is not supported. Please use
    /// AWS4-HMAC-SHA256."
    #[error("unsupported signing algorithm {algorithm:?}")]
    UnsupportedAlgorithm {
        /// The algorithm the request named.
        algorithm: String,
    },

    /// A header-signed request with neither `X-Amz-Date` nor `Date`.
    ///
    /// JSON: `IncompleteSignatureException` (400). Query:
    /// `IncompleteSignature` (400). S3: `AccessDenied` (403) "AWS
    /// authentication requires a valid Date or x-amz-date header".
    #[error("no X-Amz-Date or Date header")]
    MissingDate,

    /// `X-Amz-Date` (or `Date`) is not a valid timestamp.
    ///
    /// JSON: `IncompleteSignatureException` (400) "Date must be in ISO-8601
    /// 'basic format'. ...". Query: `IncompleteSignature` (400). S3, header
    /// form: `AccessDenied` (403); presigned: `AuthorizationQueryParametersError`
    /// (400).
    #[error("invalid request date {value:?}")]
    InvalidDate {
        /// The value received.
        value: String,
        /// Where the signature was.
        location: SignatureLocation,
    },

    /// The credential scope's date is not the date of `X-Amz-Date`.
    ///
    /// JSON: `InvalidSignatureException` (400). Query: `SignatureDoesNotMatch`
    /// (403). S3: `AuthorizationHeaderMalformed` (header form) or
    /// `AuthorizationQueryParametersError` (presigned), both 400.
    #[error("credential scope date {scope_date} is not the date of {amz_date}")]
    ScopeDateMismatch {
        /// The `yyyymmdd` of the credential scope.
        scope_date: String,
        /// The request time, `yyyymmddThhmmssZ`.
        amz_date: String,
        /// Where the signature was.
        location: SignatureLocation,
    },

    /// `x-amz-content-sha256` is neither a SHA-256 hex digest nor a known
    /// keyword.
    ///
    /// JSON: `IncompleteSignatureException` (400). Query:
    /// `IncompleteSignature` (400). S3: `InvalidArgument` (400).
    #[error("invalid x-amz-content-sha256 {value:?}")]
    InvalidContentSha256 {
        /// The value received.
        value: String,
    },

    /// A payload mode this crate does not verify, such as
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` (chunk signatures).
    ///
    /// JSON: `IncompleteSignatureException` (400). Query:
    /// `IncompleteSignature` (400). S3: `NotImplemented` (501).
    #[error("unsupported payload signing mode {mode:?}")]
    UnsupportedPayload {
        /// The `x-amz-content-sha256` value.
        mode: String,
    },

    /// The access key is not known. `verify` never returns this: the caller
    /// owns the key store and raises it when a lookup fails.
    ///
    /// JSON: `UnrecognizedClientException` (400) "The security token included
    /// in the request is invalid." Query: `InvalidClientTokenId` (403). S3:
    /// `InvalidAccessKeyId` (403).
    #[error("unknown access key {access_key_id:?}")]
    UnknownAccessKey {
        /// The access key ID of the credential scope.
        access_key_id: String,
    },

    /// A header listed in `SignedHeaders` is not in the request; the
    /// signature cannot match.
    ///
    /// Mapped exactly like [`AuthError::SignatureMismatch`].
    #[error("signed header {name:?} is not in the request")]
    MissingSignedHeader {
        /// The lower-case header name.
        name: String,
    },

    /// The signature does not match the one computed with the secret.
    ///
    /// JSON: `InvalidSignatureException` (400). Query:
    /// `SignatureDoesNotMatch` (403). S3: `SignatureDoesNotMatch` (403).
    #[error("signature does not match")]
    SignatureMismatch,

    /// A header-signed request whose time is more than 15 minutes from the
    /// server's clock.
    ///
    /// JSON: `InvalidSignatureException` (400) "Signature expired: ..." or
    /// "Signature not yet current: ...". Query: `SignatureDoesNotMatch` (403)
    /// with the same message. S3: `RequestTimeTooSkewed` (403).
    #[error("request time {amz_date} is more than 15 minutes from {now}")]
    RequestTimeTooSkewed {
        /// The request time, `yyyymmddThhmmssZ`.
        amz_date: String,
        /// The server time, `yyyymmddThhmmssZ`.
        now: String,
        /// Whether the request time is ahead of the server.
        in_future: bool,
    },

    /// A presigned request past `X-Amz-Date + X-Amz-Expires`.
    ///
    /// JSON: `InvalidSignatureException` (400) "Signature expired: ...".
    /// Query: `SignatureDoesNotMatch` (403). S3: `AccessDenied` (403)
    /// "Request has expired".
    #[error("presigned request of {amz_date} expired after {expires}s (now {now})")]
    PresignedExpired {
        /// The request time, `yyyymmddThhmmssZ`.
        amz_date: String,
        /// `X-Amz-Expires`, seconds.
        expires: u64,
        /// The server time, `yyyymmddThhmmssZ`.
        now: String,
    },

    /// A presigned request dated more than 15 minutes in the future.
    ///
    /// JSON: `InvalidSignatureException` (400) "Signature not yet current:
    /// ...". Query: `SignatureDoesNotMatch` (403). S3: `AccessDenied` (403)
    /// "Request is not valid yet".
    #[error("presigned request of {amz_date} is not valid yet (now {now})")]
    PresignedNotYetValid {
        /// The request time, `yyyymmddThhmmssZ`.
        amz_date: String,
        /// The server time, `yyyymmddThhmmssZ`.
        now: String,
    },

    /// The signature is valid but `x-amz-content-sha256` is not the hash of
    /// the body received.
    ///
    /// JSON: `InvalidSignatureException` (400). Query:
    /// `SignatureDoesNotMatch` (403). S3: `XAmzContentSHA256Mismatch` (400).
    #[error("x-amz-content-sha256 {claimed} is not the body's hash {computed}")]
    ContentSha256Mismatch {
        /// The hash the client sent.
        claimed: String,
        /// The hash of the body received.
        computed: String,
    },
    /// `UNSIGNED-PAYLOAD` (or an unsigned streaming payload) for a service
    /// other than S3: only S3 lets a signature leave the body uncovered, so
    /// anywhere else a swapped body would pass.
    #[error("{service} requires a signed payload; UNSIGNED-PAYLOAD is accepted by S3 only")]
    UnsignedPayloadNotAllowed {
        /// The signing scope's service.
        service: String,
    },
}

impl AuthError {
    /// The error code and message an AWS JSON-protocol service (CloudTrail,
    /// Logs, Organizations, ...) answers with, for the `__type` and `message`
    /// of the response body. See [`AuthError::json_status`] for the status.
    pub fn json_error(&self) -> (&'static str, String) {
        match self {
            AuthError::Missing => (
                "MissingAuthenticationTokenException",
                "Missing Authentication Token".to_owned(),
            ),
            AuthError::UnknownAccessKey { .. } => {
                ("UnrecognizedClientException", BAD_TOKEN.to_owned())
            }
            AuthError::SignatureMismatch | AuthError::MissingSignedHeader { .. } => {
                ("InvalidSignatureException", JSON_BAD_SIGNATURE.to_owned())
            }
            AuthError::ScopeDateMismatch { .. }
            | AuthError::RequestTimeTooSkewed { .. }
            | AuthError::PresignedExpired { .. }
            | AuthError::PresignedNotYetValid { .. }
            | AuthError::ContentSha256Mismatch { .. }
            | AuthError::UnsignedPayloadNotAllowed { .. } => {
                ("InvalidSignatureException", self.aws_message())
            }
            _ => ("IncompleteSignatureException", self.aws_message()),
        }
    }

    /// The HTTP status for [`AuthError::json_error`]: 403 for a missing
    /// token, 400 for everything else, as the JSON services answer.
    pub fn json_status(&self) -> u16 {
        match self {
            AuthError::Missing => 403,
            _ => 400,
        }
    }

    /// The code, HTTP status and message of an AWS query-protocol service
    /// (the XML `ErrorResponse` of STS or classic CloudWatch).
    pub fn query_error(&self) -> (&'static str, u16, String) {
        match self {
            AuthError::Missing => (
                "MissingAuthenticationToken",
                403,
                "Request is missing Authentication Token".to_owned(),
            ),
            AuthError::UnknownAccessKey { .. } => {
                ("InvalidClientTokenId", 403, BAD_TOKEN.to_owned())
            }
            AuthError::SignatureMismatch | AuthError::MissingSignedHeader { .. } => {
                ("SignatureDoesNotMatch", 403, JSON_BAD_SIGNATURE.to_owned())
            }
            AuthError::ScopeDateMismatch { .. }
            | AuthError::RequestTimeTooSkewed { .. }
            | AuthError::PresignedExpired { .. }
            | AuthError::PresignedNotYetValid { .. }
            | AuthError::ContentSha256Mismatch { .. }
            | AuthError::UnsignedPayloadNotAllowed { .. } => {
                ("SignatureDoesNotMatch", 403, self.aws_message())
            }
            _ => ("IncompleteSignature", 400, self.aws_message()),
        }
    }

    /// The code, HTTP status and message S3 answers with, for its XML
    /// `<Error>` body.
    pub fn s3_error(&self) -> (&'static str, u16, String) {
        use SignatureLocation::{Header, Query};
        match self {
            AuthError::Missing => ("AccessDenied", 403, "Access Denied".to_owned()),
            AuthError::MalformedAuthorization { message } => (
                "AuthorizationHeaderMalformed",
                400,
                format!("The authorization header is malformed; {message}"),
            ),
            AuthError::MalformedQuery { message } => {
                ("AuthorizationQueryParametersError", 400, message.clone())
            }
            AuthError::MultipleMechanisms => ("InvalidArgument", 400, self.aws_message()),
            AuthError::UnsupportedAlgorithm { .. } => (
                "InvalidRequest",
                400,
                "The authorization mechanism you have provided is not supported. Please use \
                 AWS4-HMAC-SHA256."
                    .to_owned(),
            ),
            AuthError::MissingDate
            | AuthError::InvalidDate {
                location: Header, ..
            } => ("AccessDenied", 403, S3_BAD_DATE.to_owned()),
            AuthError::InvalidDate {
                location: Query, ..
            } => (
                "AuthorizationQueryParametersError",
                400,
                "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"".to_owned(),
            ),
            AuthError::ScopeDateMismatch {
                location: Header, ..
            } => (
                "AuthorizationHeaderMalformed",
                400,
                "The authorization header is malformed; Invalid credential date. Date is not \
                 the same as X-Amz-Date."
                    .to_owned(),
            ),
            AuthError::ScopeDateMismatch {
                scope_date,
                amz_date,
                location: Query,
            } => (
                "AuthorizationQueryParametersError",
                400,
                format!(
                    "Invalid credential date \"{scope_date}\". This date is not the same as \
                     X-Amz-Date: \"{}\".",
                    amz_date.get(..8).unwrap_or(amz_date)
                ),
            ),
            AuthError::InvalidContentSha256 { .. } => ("InvalidArgument", 400, self.aws_message()),
            AuthError::UnsupportedPayload { .. } => (
                "NotImplemented",
                501,
                "A header you provided implies functionality that is not implemented.".to_owned(),
            ),
            AuthError::UnknownAccessKey { .. } => {
                ("InvalidAccessKeyId", 403, S3_BAD_KEY.to_owned())
            }
            AuthError::SignatureMismatch | AuthError::MissingSignedHeader { .. } => {
                ("SignatureDoesNotMatch", 403, S3_BAD_SIGNATURE.to_owned())
            }
            AuthError::RequestTimeTooSkewed { .. } => (
                "RequestTimeTooSkewed",
                403,
                "The difference between the request time and the current time is too large."
                    .to_owned(),
            ),
            AuthError::PresignedExpired { .. } => {
                ("AccessDenied", 403, "Request has expired".to_owned())
            }
            AuthError::PresignedNotYetValid { .. } => {
                ("AccessDenied", 403, "Request is not valid yet".to_owned())
            }
            AuthError::UnsignedPayloadNotAllowed { .. } => {
                ("SignatureDoesNotMatch", 403, self.aws_message())
            }
            AuthError::ContentSha256Mismatch { .. } => (
                "XAmzContentSHA256Mismatch",
                400,
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .to_owned(),
            ),
        }
    }

    /// The message AWS's JSON and query services give, where it carries
    /// details of the request.
    fn aws_message(&self) -> String {
        match self {
            AuthError::Missing => "Missing Authentication Token".to_owned(),
            AuthError::MalformedAuthorization { message }
            | AuthError::MalformedQuery { message } => message.clone(),
            AuthError::MultipleMechanisms => "Only one auth mechanism allowed; only the \
                 X-Amz-Algorithm query parameter, Signature query string parameter or the \
                 Authorization header should be specified"
                .to_owned(),
            AuthError::UnsupportedAlgorithm { algorithm } => format!(
                "Unsupported AWS 'algorithm': '{algorithm}'. The only supported algorithm is \
                 AWS4-HMAC-SHA256."
            ),
            AuthError::MissingDate => "Authorization header requires existence of either a \
                 'X-Amz-Date' or a 'Date' header."
                .to_owned(),
            AuthError::InvalidDate { value, .. } => format!(
                "Date must be in ISO-8601 'basic format'. Got '{value}'. See \
                 http://en.wikipedia.org/wiki/ISO_8601"
            ),
            AuthError::ScopeDateMismatch {
                scope_date,
                amz_date,
                ..
            } => format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{scope_date}' != '{}', from '{amz_date}'.",
                amz_date.get(..8).unwrap_or(amz_date)
            ),
            AuthError::InvalidContentSha256 { value } => format!(
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, \
                 STREAMING-UNSIGNED-PAYLOAD-TRAILER or a valid sha256 value; got '{value}'."
            ),
            AuthError::UnsupportedPayload { mode } => {
                format!("x-amz-content-sha256 '{mode}' is not supported by this server.")
            }
            AuthError::UnknownAccessKey { .. } => BAD_TOKEN.to_owned(),
            AuthError::SignatureMismatch | AuthError::MissingSignedHeader { .. } => {
                JSON_BAD_SIGNATURE.to_owned()
            }
            AuthError::RequestTimeTooSkewed {
                amz_date,
                now,
                in_future: false,
            } => format!(
                "Signature expired: {amz_date} is now earlier than {} ({now} - 15 min.)",
                shift(now, -crate::MAX_CLOCK_SKEW_SECS)
            ),
            AuthError::RequestTimeTooSkewed {
                amz_date,
                now,
                in_future: true,
            }
            | AuthError::PresignedNotYetValid { amz_date, now } => format!(
                "Signature not yet current: {amz_date} is still later than {} ({now} + 15 min.)",
                shift(now, crate::MAX_CLOCK_SKEW_SECS)
            ),
            AuthError::PresignedExpired {
                amz_date,
                expires,
                now,
            } => {
                let expires_i64 = i64::try_from(*expires).unwrap_or(i64::MAX);
                format!(
                    "Signature expired: {amz_date} is now earlier than {} ({now} - {expires} sec.)",
                    shift(now, expires_i64.saturating_neg())
                )
            }
            AuthError::ContentSha256Mismatch { .. } => {
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .to_owned()
            }
            AuthError::UnsignedPayloadNotAllowed { .. } => {
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method. Consult the service \
                 documentation for details."
                    .to_owned()
            }
        }
    }
}

/// `amz_date` moved by `seconds`, in the same format; the input itself if it
/// is not a valid timestamp (it always is: we formatted it).
fn shift(amz_date: &str, seconds: i64) -> String {
    match crate::parse::parse_amz_date(amz_date) {
        Some(t) => crate::parse::format_amz_date(t + chrono::TimeDelta::seconds(seconds)),
        None => amz_date.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_messages_read_like_aws() {
        let e = AuthError::RequestTimeTooSkewed {
            amz_date: "20240101T000000Z".into(),
            now: "20240101T003000Z".into(),
            in_future: false,
        };
        assert_eq!(
            e.json_error(),
            (
                "InvalidSignatureException",
                "Signature expired: 20240101T000000Z is now earlier than 20240101T001500Z \
                 (20240101T003000Z - 15 min.)"
                    .to_owned()
            )
        );
        assert_eq!(e.s3_error().0, "RequestTimeTooSkewed");
        let e = AuthError::RequestTimeTooSkewed {
            amz_date: "20240101T010000Z".into(),
            now: "20240101T003000Z".into(),
            in_future: true,
        };
        assert_eq!(
            e.json_error().1,
            "Signature not yet current: 20240101T010000Z is still later than 20240101T004500Z \
             (20240101T003000Z + 15 min.)"
        );
    }

    #[test]
    fn every_variant_maps_for_every_family() {
        let all = [
            AuthError::Missing,
            AuthError::MalformedAuthorization {
                message: "m".into(),
            },
            AuthError::MalformedQuery {
                message: "m".into(),
            },
            AuthError::MultipleMechanisms,
            AuthError::UnsupportedAlgorithm {
                algorithm: "AWS".into(),
            },
            AuthError::MissingDate,
            AuthError::InvalidDate {
                value: "x".into(),
                location: SignatureLocation::Header,
            },
            AuthError::InvalidDate {
                value: "x".into(),
                location: SignatureLocation::Query,
            },
            AuthError::ScopeDateMismatch {
                scope_date: "20240102".into(),
                amz_date: "20240101T000000Z".into(),
                location: SignatureLocation::Query,
            },
            AuthError::InvalidContentSha256 { value: "x".into() },
            AuthError::UnsupportedPayload { mode: "x".into() },
            AuthError::UnknownAccessKey {
                access_key_id: "AKID".into(),
            },
            AuthError::MissingSignedHeader { name: "h".into() },
            AuthError::SignatureMismatch,
            AuthError::PresignedExpired {
                amz_date: "20240101T000000Z".into(),
                expires: 60,
                now: "20240101T000200Z".into(),
            },
            AuthError::PresignedNotYetValid {
                amz_date: "20240101T010000Z".into(),
                now: "20240101T000000Z".into(),
            },
            AuthError::ContentSha256Mismatch {
                claimed: "a".into(),
                computed: "b".into(),
            },
            AuthError::UnsignedPayloadNotAllowed {
                service: "cloudtrail".into(),
            },
        ];
        for e in &all {
            let (code, message) = e.json_error();
            assert!(!code.is_empty() && !message.is_empty(), "{e:?}");
            let (code, status, message) = e.s3_error();
            assert!(
                !code.is_empty() && !message.is_empty() && status >= 400,
                "{e:?}"
            );
            let (code, status, message) = e.query_error();
            assert!(
                !code.is_empty() && !message.is_empty() && status >= 400,
                "{e:?}"
            );
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(
            all[8].json_error().1,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '20240102' != '20240101', from '20240101T000000Z'."
        );
        assert_eq!(
            all[14].json_error().1,
            "Signature expired: 20240101T000000Z is now earlier than 20240101T000100Z \
             (20240101T000200Z - 60 sec.)"
        );
        assert_eq!(
            all[16].s3_error(),
            (
                "XAmzContentSHA256Mismatch",
                400,
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .to_owned()
            )
        );
    }
}
