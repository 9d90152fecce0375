//! The one mapping from failures to AWS errors.
//!
//! An [`AwsError`] is protocol-neutral (code, message, HTTP status); the
//! codecs in [`crate::protocol`] encode it per protocol family. Every library
//! error becomes an [`AwsError`] here, through one `From` implementation per
//! library error type, and nowhere else, so `?` maps it. Internal failures are
//! logged with their detail and answered with a generic message, so no internal
//! state leaks to clients.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The AWS error a client sees: code, message and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// The error code, e.g. `TrailNotFoundException`.
    pub code: &'static str,
    /// The message.
    pub message: String,
    /// The HTTP status.
    pub status: StatusCode,
}

impl AwsError {
    /// A client error (HTTP 400).
    pub fn client(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    /// An error with an explicit status.
    pub fn with_status(code: &'static str, message: impl Into<String>, status: StatusCode) -> Self {
        Self {
            code,
            message: message.into(),
            status,
        }
    }

    /// An internal failure: the detail is logged, the client sees a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal failure");
        Self {
            code: "InternalFailure",
            message: "The request processing has failed because of an unknown error, exception or failure.".to_owned(),
            status: StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Too much load (the WAL's disk bound): HTTP 429, which SDKs retry.
    pub fn throttling(message: impl Into<String>) -> Self {
        Self::with_status(
            "ThrottlingException",
            message,
            StatusCode::TOO_MANY_REQUESTS,
        )
    }

    /// The code as the query protocol names it (`InvalidAction` for an unknown operation).
    pub fn query_code(&self) -> &'static str {
        match self.code {
            UNKNOWN_OPERATION => "InvalidAction",
            code => code,
        }
    }

    /// Encodes the error as S3's XML error document.
    pub fn into_s3_response(self, request_id: &str, resource: Option<&str>) -> Response {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>");
        xml.push_str(&xml_escape(self.code));
        xml.push_str("</Code><Message>");
        xml.push_str(&xml_escape(&self.message));
        xml.push_str("</Message>");
        if let Some(resource) = resource {
            xml.push_str("<Resource>");
            xml.push_str(&xml_escape(resource));
            xml.push_str("</Resource>");
        }
        xml.push_str("<RequestId>");
        xml.push_str(&xml_escape(request_id));
        xml.push_str("</RequestId></Error>");
        let mut response = (self.status, xml).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert("x-amz-request-id", v);
        }
        response
    }
}

/// The protocol-neutral code of an operation the service does not have
/// (the query codec names it `InvalidAction`).
pub const UNKNOWN_OPERATION: &str = "UnknownOperationException";

impl From<cairn_meta::Error> for AwsError {
    fn from(e: cairn_meta::Error) -> Self {
        match e {
            cairn_meta::Error::Sqlite(_)
            | cairn_meta::Error::Corrupt { .. }
            | cairn_meta::Error::Encode(_)
            | cairn_meta::Error::UnknownSchemaVersion { .. }
            | cairn_meta::Error::AlreadyExists(_)
            | cairn_meta::Error::NotFound(_) => AwsError::internal(e),
        }
    }
}

impl From<cairn_pipeline::Error> for AwsError {
    fn from(e: cairn_pipeline::Error) -> Self {
        match e {
            cairn_pipeline::Error::Throttled { .. } => AwsError::throttling(e.to_string()),
            cairn_pipeline::Error::Conflict(message) => {
                AwsError::client("ConflictException", message)
            }
            // The services check existence first; these are races lost to
            // another call on the same trail.
            cairn_pipeline::Error::Meta(cairn_meta::Error::AlreadyExists(arn)) => AwsError::client(
                "TrailAlreadyExistsException",
                format!("Trail {arn} already exists"),
            ),
            cairn_pipeline::Error::Meta(cairn_meta::Error::NotFound(arn)) => {
                AwsError::client("TrailNotFoundException", format!("Unknown trail: {arn}"))
            }
            cairn_pipeline::Error::Wal(_)
            | cairn_pipeline::Error::Meta(_)
            | cairn_pipeline::Error::Io { .. }
            | cairn_pipeline::Error::Undecodable { .. }
            | cairn_pipeline::Error::Checkpoint(_)
            | cairn_pipeline::Error::Internal(_) => AwsError::internal(e),
        }
    }
}

impl From<cairn_monitor::Error> for AwsError {
    fn from(e: cairn_monitor::Error) -> Self {
        match e {
            cairn_monitor::Error::NotFound(message) => {
                AwsError::client("ResourceNotFoundException", message)
            }
            cairn_monitor::Error::AlreadyExists(message) => {
                AwsError::client("ResourceAlreadyExistsException", message)
            }
            cairn_monitor::Error::LimitExceeded(message) => {
                AwsError::client("LimitExceededException", message)
            }
            cairn_monitor::Error::Invalid(message) => {
                AwsError::client("InvalidParameterException", message)
            }
            cairn_monitor::Error::Sqlite(_)
            | cairn_monitor::Error::Corrupt { .. }
            | cairn_monitor::Error::UnknownSchemaVersion { .. } => AwsError::internal(e),
        }
    }
}

impl From<cairn_notify::Error> for AwsError {
    fn from(e: cairn_notify::Error) -> Self {
        match e {
            cairn_notify::Error::InvalidParameter(message) => {
                AwsError::client("InvalidParameter", message)
            }
            cairn_notify::Error::InvalidParameterValue(message) => {
                AwsError::client("ParameterValueInvalid", message)
            }
            cairn_notify::Error::Key(_)
            | cairn_notify::Error::Document(_)
            | cairn_notify::Error::Verify(_)
            | cairn_notify::Error::Io { .. } => AwsError::internal(e),
        }
    }
}

impl From<cairn_alarm::ValidationError> for AwsError {
    fn from(e: cairn_alarm::ValidationError) -> Self {
        AwsError::client(e.code.as_str(), e.message)
    }
}

/// The monitoring store's errors as SNS names them (`NotFound`,
/// `InvalidParameter`, ...), where CloudWatch Logs' names are the default
/// mapping above.
pub fn sns_error(e: cairn_monitor::Error) -> AwsError {
    match e {
        cairn_monitor::Error::NotFound(message) => {
            AwsError::with_status("NotFound", message, StatusCode::NOT_FOUND)
        }
        cairn_monitor::Error::Invalid(message) => AwsError::client("InvalidParameter", message),
        cairn_monitor::Error::LimitExceeded(message) => {
            AwsError::with_status("TopicLimitExceeded", message, StatusCode::FORBIDDEN)
        }
        cairn_monitor::Error::AlreadyExists(message) => {
            AwsError::client("InvalidParameter", message)
        }
        other => AwsError::from(other),
    }
}

/// The monitoring store's errors as CloudWatch names them
/// (`ResourceNotFound`, `LimitExceeded`, `InvalidParameterValue`).
pub fn cloudwatch_error(e: cairn_monitor::Error) -> AwsError {
    match e {
        cairn_monitor::Error::NotFound(message) => {
            AwsError::with_status("ResourceNotFound", message, StatusCode::NOT_FOUND)
        }
        cairn_monitor::Error::Invalid(message) => {
            AwsError::client("InvalidParameterValue", message)
        }
        cairn_monitor::Error::LimitExceeded(message) => AwsError::client("LimitExceeded", message),
        other => AwsError::from(other),
    }
}

impl From<tokio::task::JoinError> for AwsError {
    fn from(e: tokio::task::JoinError) -> Self {
        AwsError::internal(format!("blocking task failed: {e}"))
    }
}

/// Escapes text for XML element content and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_xml_escape() {
        assert_eq!(xml_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    }
}
