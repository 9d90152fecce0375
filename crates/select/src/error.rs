//! Why selectors were refused.

/// An invalid selector; the message is what the API returns with
/// `InvalidEventSelectorsException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SelectorError {
    /// The message.
    pub message: String,
}

impl SelectorError {
    /// A refusal with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}
