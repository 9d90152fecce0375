//! Errors for identifiers and ARNs that fail validation.

/// A value that is not a valid identifier of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a 12-digit AWS account ID.
    #[error("invalid account id {value:?}: must be 12 digits")]
    InvalidAccountId {
        /// The offending input.
        value: String,
    },
    /// Not a plausible region name.
    #[error("invalid region {value:?}")]
    InvalidRegion {
        /// The offending input.
        value: String,
    },
    /// Not a valid organization ID (`o-` followed by 10 to 32 lowercase letters or digits).
    #[error("invalid organization id {value:?}")]
    InvalidOrganizationId {
        /// The offending input.
        value: String,
    },
    /// A trail name that breaks CloudTrail's naming rules; `message` is CloudTrail's wording.
    #[error("{message}")]
    InvalidTrailName {
        /// The offending input.
        value: String,
        /// The message CloudTrail returns for this violation.
        message: String,
    },
    /// Not a CloudTrail trail ARN.
    #[error("invalid trail ARN {value:?}")]
    InvalidTrailArn {
        /// The offending input.
        value: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
