//! Why a request was refused, in the words of CloudWatch's query-compatible
//! protocol.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The error code CloudWatch answers with (the `Code` of an `ErrorResponse`,
/// or the `x-amzn-query-error` code of the JSON protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// A value breaks a constraint of the API model (length, range, enum):
    /// `1 validation error detected: ...`. HTTP 400.
    ValidationError,
    /// `InvalidParameterValueException`: a value CloudWatch's own rules
    /// refuse. HTTP 400.
    InvalidParameterValue,
    /// `InvalidParameterCombinationException`: parameters that cannot go
    /// together (or a required one of a pair is missing). HTTP 400.
    InvalidParameterCombination,
    /// `MissingRequiredParameterException`. HTTP 400.
    MissingParameter,
    /// `InvalidFormatFault`: `StateReasonData` that is not JSON. HTTP 400.
    InvalidFormat,
}

impl ErrorCode {
    /// The code as it goes on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ValidationError => "ValidationError",
            ErrorCode::InvalidParameterValue => "InvalidParameterValue",
            ErrorCode::InvalidParameterCombination => "InvalidParameterCombination",
            ErrorCode::MissingParameter => "MissingParameter",
            ErrorCode::InvalidFormat => "InvalidFormat",
        }
    }

    /// The exception name of the AWS JSON 1.0 protocol's `__type`.
    pub fn exception_name(self) -> &'static str {
        match self {
            ErrorCode::ValidationError => "ValidationError",
            ErrorCode::InvalidParameterValue => "InvalidParameterValueException",
            ErrorCode::InvalidParameterCombination => "InvalidParameterCombinationException",
            ErrorCode::MissingParameter => "MissingRequiredParameterException",
            ErrorCode::InvalidFormat => "InvalidFormatFault",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request: the code and the message to send back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{code}: {message}")]
pub struct ValidationError {
    /// The error code.
    pub code: ErrorCode,
    /// The message, as CloudWatch words it where known.
    pub message: String,
}

impl ValidationError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ValidationError {
            code,
            message: message.into(),
        }
    }

    /// A model-constraint error in the Coral wording CloudWatch uses:
    /// `1 validation error detected: Value '<value>' at '<member>' failed to
    /// satisfy constraint: <constraint>`.
    pub fn constraint(member: &str, value: &str, constraint: &str) -> Self {
        ValidationError::new(
            ErrorCode::ValidationError,
            format!(
                "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
            ),
        )
    }

    /// `MissingParameter`: `The parameter <name> is required.`
    pub fn missing(name: &str) -> Self {
        ValidationError::new(
            ErrorCode::MissingParameter,
            format!("The parameter {name} is required."),
        )
    }
}
