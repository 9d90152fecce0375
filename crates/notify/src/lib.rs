//! The Amazon SNS engine of Cairn: what SNS sends and how it decides when.
//!
//! * [`ids`]: topic and subscription ARNs, message ids, confirmation tokens,
//!   topic-name and Subscribe protocol/endpoint validation;
//! * [`message`]: the `Notification`, `SubscriptionConfirmation` and
//!   `UnsubscribeConfirmation` documents SNS POSTs to HTTP/S endpoints, their
//!   headers, their strings to sign, and raw message delivery;
//! * [`signing`]: the RSA key and self-signed X.509 certificate that sign them
//!   (SignatureVersion 1, SHA1withRSA, and 2, SHA256withRSA), kept on disk, and
//!   the receiver's verification;
//! * [`policy`]: HTTP/S delivery policies, their limits, and the delay before
//!   each retry;
//! * [`publish`]: Publish's checks and the message each protocol receives;
//! * [`attributes`]: what GetTopicAttributes and GetSubscriptionAttributes
//!   report beyond the stored attributes, and which attributes
//!   SetTopicAttributes / SetSubscriptionAttributes accept.
//!
//! A pure library: it serves no HTTP, stores nothing but its signing key, and
//! never reads the clock (callers pass the time), so the service, the outbox
//! and the delivery loop that call it stay testable.
//!
//! # Use
//!
//! ```
//! use cairn_notify::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let now = chrono::Utc::now(); // the caller's clock: this crate reads none
//! let base = "https://cairn.example.com"; // where Cairn's SNS endpoint is reached
//! let key = SigningKey::open(dir.path(), now)?; // generated once, then reloaded
//! let cert_url = format!("{base}/{}", key.certificate_file_name()); // serve certificate_pem() there
//!
//! validate_topic_name("alerts", false)?;
//! let topic = topic_arn("us-east-1", "123456789012", "alerts");
//! let protocol = validate_subscription_endpoint("https", "https://example.com/hook")?;
//! let subscription = subscription_arn(&topic);
//!
//! validate_publish("disk full", Some("Alarm"), None, &Default::default())?;
//! let mut doc = SnsMessage::notification(
//!     &message_id(),
//!     &topic,
//!     Some("Alarm"),
//!     &message_for_protocol("disk full", None, protocol)?,
//!     now,
//!     &unsubscribe_url(base, &subscription),
//!     Default::default(),
//!     SignatureVersion::V2,
//!     &cert_url,
//! );
//! doc.sign(&key)?;
//! let policy = EffectiveDeliveryPolicy::resolve(None, None);
//! let headers = http_headers(&doc, &subscription, false, Some(policy.content_type()));
//! let body = doc.to_json(); // POST it with `headers`
//! # let _ = headers;
//!
//! // A receiver's check, with the certificate fetched from `cert_url`:
//! assert_eq!(verify_message(&body, key.certificate_pem())?, MessageType::Notification);
//!
//! // After the first attempt failed: when to try again.
//! let retry_at = policy.healthy_retry_policy.next_attempt_at(now, 1);
//! assert_eq!(retry_at, Some(now + chrono::Duration::seconds(20)));
//! # Ok(())
//! # }
//! ```
//!
//! # Checking a signature by hand
//!
//! With the certificate Cairn serves at `SigningCertURL` saved as `cert.pem`,
//! the string to sign (see [`message::string_to_sign`]) as `string.txt` and
//! the base64 `Signature` as `sig.b64`:
//!
//! ```text
//! openssl x509 -in cert.pem -pubkey -noout > pub.pem
//! base64 -d sig.b64 > sig.bin
//! openssl dgst -sha256 -verify pub.pem -signature sig.bin string.txt   # SignatureVersion 2
//! openssl dgst -sha1   -verify pub.pem -signature sig.bin string.txt   # SignatureVersion 1
//! ```
//!
//! The crate's tests do exactly this with `openssl` and with Python's
//! `cryptography` when they are installed.

pub mod attributes;
pub mod ids;
pub mod message;
pub mod policy;
pub mod publish;
pub mod signing;

pub use attributes::{
    SETTABLE_SUBSCRIPTION_ATTRIBUTES, SETTABLE_TOPIC_ATTRIBUTES, SubscriptionFacts, TopicCounts,
    default_topic_policy, subscription_attributes, topic_attributes,
    validate_subscription_attribute, validate_topic_attribute,
};
pub use ids::{
    PENDING_CONFIRMATION, Protocol, TopicArn, confirmation_token, file_endpoint_path, message_id,
    subscription_arn, topic_arn, validate_subscription_endpoint, validate_topic_name,
};
pub use message::{
    MessageAttribute, MessageType, SnsMessage, http_headers, raw_message_body, string_to_sign,
    subscribe_url, unsubscribe_url,
};
pub use policy::{
    AttemptOutcome, BackoffFunction, EffectiveDeliveryPolicy, HealthyRetryPolicy, RequestPolicy,
    SubscriptionDeliveryPolicy, ThrottlePolicy, TopicDeliveryPolicy, TopicHttpPolicy,
    attempt_outcome,
};
pub use publish::{message_for_protocol, validate_publish};
pub use signing::{SignatureVersion, SigningKey, verify_message};

/// What can go wrong in the SNS engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request parameter breaks SNS's rules; SNS answers HTTP 400 with the
    /// error code `InvalidParameter` and this message.
    #[error("{0}")]
    InvalidParameter(String),
    /// A parameter's value is refused with the error code
    /// `ParameterValueInvalid` (HTTP 400), as SNS does for message attributes.
    #[error("{0}")]
    InvalidParameterValue(String),
    /// The signing key or certificate could not be made, read, or used.
    #[error("{0}")]
    Key(String),
    /// A document could not be read back.
    #[error("{0}")]
    Document(String),
    /// A received message failed verification.
    #[error("message verification failed: {0}")]
    Verify(String),
    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The AWS error code the service should answer with, for the errors
    /// that are the caller's fault; `None` for server-side failures.
    pub fn aws_code(&self) -> Option<&'static str> {
        match self {
            Error::InvalidParameter(_) => Some("InvalidParameter"),
            Error::InvalidParameterValue(_) => Some("ParameterValueInvalid"),
            _ => None,
        }
    }

    /// An `InvalidParameter` error with SNS's `Invalid parameter: ` prefix.
    pub(crate) fn invalid(detail: impl std::fmt::Display) -> Self {
        Error::InvalidParameter(format!("Invalid parameter: {detail}"))
    }
}
