//! The documents SNS POSTs to HTTP/HTTPS endpoints, their headers, and the
//! strings their signatures cover.
//!
//! Confirmed against the SNS developer guide ("Parsing message formats",
//! "HTTP/HTTPS notification / subscription confirmation / unsubscribe
//! confirmation JSON format", "Verifying the signatures of Amazon SNS
//! messages"): field names and order, the confirmation texts, the headers,
//! `Content-Type: text/plain; charset=UTF-8`, and the fields of each string to
//! sign with `Subject` only when present.
//!
//! Chosen by Cairn where the guide only shows examples: the layout of the
//! body copies the examples (two-space indent, `"Key" : value`); the guide's
//! HTTP/S format lists no `MessageAttributes`, so they are written as SNS
//! writes them into SQS-delivered notifications (`{"Type":…,"Value":…}` per
//! name), last, in name order; timestamps always carry milliseconds.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound as _, Utc};

use crate::Error;
use crate::signing::{SignatureVersion, SigningKey};

/// `Content-Type` of every document SNS POSTs unless a delivery policy's
/// `requestPolicy.headerContentType` says otherwise.
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=UTF-8";

/// The `User-Agent` SNS sends.
pub const USER_AGENT: &str = "Amazon Simple Notification Service Agent";

/// The `Type` of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// A published message.
    Notification,
    /// Sent after Subscribe, carrying the token and `SubscribeURL`.
    SubscriptionConfirmation,
    /// Sent after Unsubscribe, carrying a token that restores the subscription.
    UnsubscribeConfirmation,
}

impl MessageType {
    /// The value of `Type` and of `x-amz-sns-message-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Notification => "Notification",
            MessageType::SubscriptionConfirmation => "SubscriptionConfirmation",
            MessageType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }

    /// Reads a `Type` value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Notification" => Some(MessageType::Notification),
            "SubscriptionConfirmation" => Some(MessageType::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Some(MessageType::UnsubscribeConfirmation),
            _ => None,
        }
    }
}

/// One of Publish's message attributes, as a notification carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    /// `DataType`: `String`, `String.Array`, `Number` or `Binary`.
    pub data_type: String,
    /// `StringValue`, or for `Binary` the base64 of `BinaryValue`.
    pub value: String,
}

/// A document SNS sends to an HTTP/S endpoint.
///
/// Build it with [`SnsMessage::notification`],
/// [`SnsMessage::subscription_confirmation`] or
/// [`SnsMessage::unsubscribe_confirmation`], [`sign`](SnsMessage::sign) it,
/// then send [`to_json`](SnsMessage::to_json) with [`http_headers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsMessage {
    /// `Type`.
    pub message_type: MessageType,
    /// `MessageId`: kept across retries of one delivery.
    pub message_id: String,
    /// `Token`, confirmations only.
    pub token: Option<String>,
    /// `TopicArn`.
    pub topic_arn: String,
    /// `Subject`, notifications only and only when Publish gave one.
    pub subject: Option<String>,
    /// `Message`.
    pub message: String,
    /// `SubscribeURL`, confirmations only.
    pub subscribe_url: Option<String>,
    /// `Timestamp`.
    pub timestamp: DateTime<Utc>,
    /// `SignatureVersion`.
    pub signature_version: SignatureVersion,
    /// `Signature`: base64, empty until signed.
    pub signature: String,
    /// `SigningCertURL`.
    pub signing_cert_url: String,
    /// `UnsubscribeURL`, notifications only.
    pub unsubscribe_url: Option<String>,
    /// `MessageAttributes`, notifications only; absent from the document when empty.
    pub message_attributes: BTreeMap<String, MessageAttribute>,
}

/// Formats a `Timestamp`: UTC, milliseconds, `Z` (`2026-12-02T13:40:00.123Z`).
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The `SubscribeURL` of a confirmation: Cairn's SNS endpoint (`base`, e.g.
/// `https://cairn.example.com`) with a ConfirmSubscription query, as SNS's.
pub fn subscribe_url(base: &str, topic_arn: &str, token: &str) -> String {
    // ARNs of valid topics and hex tokens need no percent-encoding.
    format!(
        "{}/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}",
        base.trim_end_matches('/')
    )
}

/// The `UnsubscribeURL` of a notification: Cairn's SNS endpoint with an
/// Unsubscribe query, as SNS's.
pub fn unsubscribe_url(base: &str, subscription_arn: &str) -> String {
    format!(
        "{}/?Action=Unsubscribe&SubscriptionArn={subscription_arn}",
        base.trim_end_matches('/')
    )
}

impl SnsMessage {
    /// An unsigned notification; `unsubscribe_url` from [`unsubscribe_url`].
    #[allow(clippy::too_many_arguments)] // each is one field of the document
    pub fn notification(
        message_id: &str,
        topic_arn: &str,
        subject: Option<&str>,
        message: &str,
        timestamp: DateTime<Utc>,
        unsubscribe_url: &str,
        message_attributes: BTreeMap<String, MessageAttribute>,
        signature_version: SignatureVersion,
        signing_cert_url: &str,
    ) -> Self {
        Self {
            message_type: MessageType::Notification,
            message_id: message_id.to_owned(),
            token: None,
            topic_arn: topic_arn.to_owned(),
            subject: subject.map(str::to_owned),
            message: message.to_owned(),
            subscribe_url: None,
            // The document carries milliseconds; keep no more, so that the
            // value equals what a reader gets back.
            timestamp: timestamp.trunc_subsecs(3),
            signature_version,
            signature: String::new(),
            signing_cert_url: signing_cert_url.to_owned(),
            unsubscribe_url: Some(unsubscribe_url.to_owned()),
            message_attributes,
        }
    }

    /// An unsigned subscription confirmation with SNS's English text;
    /// `subscribe_url` from [`subscribe_url`].
    pub fn subscription_confirmation(
        message_id: &str,
        topic_arn: &str,
        token: &str,
        subscribe_url: &str,
        timestamp: DateTime<Utc>,
        signature_version: SignatureVersion,
        signing_cert_url: &str,
    ) -> Self {
        let message = format!(
            "You have chosen to subscribe to the topic {topic_arn}.\n\
             To confirm the subscription, visit the SubscribeURL included in this message."
        );
        Self::confirmation(
            MessageType::SubscriptionConfirmation,
            message,
            message_id,
            topic_arn,
            token,
            subscribe_url,
            timestamp,
            signature_version,
            signing_cert_url,
        )
    }

    /// An unsigned unsubscribe confirmation with SNS's English text; visiting
    /// `subscribe_url` (built with the same token) restores the subscription.
    #[allow(clippy::too_many_arguments)] // each is one field of the document
    pub fn unsubscribe_confirmation(
        message_id: &str,
        topic_arn: &str,
        subscription_arn: &str,
        token: &str,
        subscribe_url: &str,
        timestamp: DateTime<Utc>,
        signature_version: SignatureVersion,
        signing_cert_url: &str,
    ) -> Self {
        let message = format!(
            "You have chosen to deactivate subscription {subscription_arn}.\n\
             To cancel this operation and restore the subscription, visit the SubscribeURL \
             included in this message."
        );
        Self::confirmation(
            MessageType::UnsubscribeConfirmation,
            message,
            message_id,
            topic_arn,
            token,
            subscribe_url,
            timestamp,
            signature_version,
            signing_cert_url,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn confirmation(
        message_type: MessageType,
        message: String,
        message_id: &str,
        topic_arn: &str,
        token: &str,
        subscribe_url: &str,
        timestamp: DateTime<Utc>,
        signature_version: SignatureVersion,
        signing_cert_url: &str,
    ) -> Self {
        Self {
            message_type,
            message_id: message_id.to_owned(),
            token: Some(token.to_owned()),
            topic_arn: topic_arn.to_owned(),
            subject: None,
            message,
            subscribe_url: Some(subscribe_url.to_owned()),
            timestamp: timestamp.trunc_subsecs(3),
            signature_version,
            signature: String::new(),
            signing_cert_url: signing_cert_url.to_owned(),
            unsubscribe_url: None,
            message_attributes: BTreeMap::new(),
        }
    }

    /// Fills `Signature` with `key`'s signature of [`string_to_sign`], by
    /// the message's `SignatureVersion`.
    pub fn sign(&mut self, key: &SigningKey) -> Result<(), Error> {
        self.signature = key.sign(self.signature_version, string_to_sign(self).as_bytes())?;
        Ok(())
    }

    /// The body SNS POSTs: the document laid out as SNS's (two-space indent,
    /// `"Key" : value`, fields in SNS's order).
    pub fn to_json(&self) -> String {
        self.write_json(true)
    }

    /// The document on one line, for Cairn's `file` protocol (one JSON line
    /// per notification), fields in the same order.
    pub fn to_json_line(&self) -> String {
        self.write_json(false)
    }

    /// Reads a document back from its JSON (either layout), as an outbox
    /// that stored [`to_json`](SnsMessage::to_json) or a receiver would.
    /// It does not check the signature: see [`crate::verify_message`].
    pub fn from_json(body: &str) -> Result<Self, Error> {
        let bad = |m: String| Error::Document(format!("not an SNS document: {m}"));
        let doc: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(body).map_err(|e| bad(e.to_string()))?;
        let text = |name: &str| doc.get(name).and_then(serde_json::Value::as_str);
        let required = |name: &str| {
            text(name)
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("no {name}")))
        };
        let optional = |name: &str| text(name).map(str::to_owned);
        let message_type = text("Type")
            .and_then(MessageType::parse)
            .ok_or_else(|| bad("unknown or missing Type".to_owned()))?;
        let timestamp = DateTime::parse_from_rfc3339(&required("Timestamp")?)
            .map_err(|e| bad(format!("Timestamp: {e}")))?
            .to_utc();
        let signature_version = text("SignatureVersion")
            .and_then(SignatureVersion::parse)
            .ok_or_else(|| bad("unknown or missing SignatureVersion".to_owned()))?;
        let mut message_attributes = BTreeMap::new();
        if let Some(attrs) = doc.get("MessageAttributes") {
            let attrs = attrs
                .as_object()
                .ok_or_else(|| bad("MessageAttributes is not an object".to_owned()))?;
            for (name, attr) in attrs {
                let field = |f: &str| attr.get(f).and_then(serde_json::Value::as_str);
                match (field("Type"), field("Value")) {
                    (Some(data_type), Some(value)) => {
                        message_attributes.insert(
                            name.clone(),
                            MessageAttribute {
                                data_type: data_type.to_owned(),
                                value: value.to_owned(),
                            },
                        );
                    }
                    _ => return Err(bad(format!("message attribute {name} lacks Type or Value"))),
                }
            }
        }
        Ok(Self {
            message_type,
            message_id: required("MessageId")?,
            token: optional("Token"),
            topic_arn: required("TopicArn")?,
            subject: optional("Subject"),
            message: required("Message")?,
            subscribe_url: optional("SubscribeURL"),
            timestamp,
            signature_version,
            signature: required("Signature")?,
            signing_cert_url: required("SigningCertURL")?,
            unsubscribe_url: optional("UnsubscribeURL"),
            message_attributes,
        })
    }

    fn fields(&self) -> Vec<(&'static str, String)> {
        let s = |v: &str| json_string(v);
        let mut out = vec![
            ("Type", s(self.message_type.as_str())),
            ("MessageId", s(&self.message_id)),
        ];
        if let Some(token) = &self.token {
            out.push(("Token", s(token)));
        }
        out.push(("TopicArn", s(&self.topic_arn)));
        if let Some(subject) = &self.subject {
            out.push(("Subject", s(subject)));
        }
        out.push(("Message", s(&self.message)));
        if let Some(url) = &self.subscribe_url {
            out.push(("SubscribeURL", s(url)));
        }
        out.push(("Timestamp", s(&format_timestamp(&self.timestamp))));
        out.push(("SignatureVersion", s(self.signature_version.as_str())));
        out.push(("Signature", s(&self.signature)));
        out.push(("SigningCertURL", s(&self.signing_cert_url)));
        if let Some(url) = &self.unsubscribe_url {
            out.push(("UnsubscribeURL", s(url)));
        }
        out
    }

    fn write_json(&self, pretty: bool) -> String {
        let (open, sep, colon, indent, close) = if pretty {
            ("{\n", ",\n", " : ", "  ", "\n}")
        } else {
            ("{", ",", ":", "", "}")
        };
        let mut out = String::from(open);
        let mut first = true;
        let mut push = |out: &mut String, key: &str, value: &str| {
            if !first {
                out.push_str(sep);
            }
            first = false;
            out.push_str(indent);
            out.push_str(&json_string(key));
            out.push_str(colon);
            out.push_str(value);
        };
        for (key, value) in self.fields() {
            push(&mut out, key, &value);
        }
        if !self.message_attributes.is_empty() {
            let (inner_open, inner_indent, inner_close) = if pretty {
                ("{\n", "    ", "\n  }")
            } else {
                ("{", "", "}")
            };
            let mut attrs = String::from(inner_open);
            for (i, (name, attr)) in self.message_attributes.iter().enumerate() {
                if i > 0 {
                    attrs.push_str(sep);
                }
                attrs.push_str(inner_indent);
                attrs.push_str(&json_string(name));
                attrs.push_str(colon);
                attrs.push_str(&format!(
                    "{{\"Type\":{},\"Value\":{}}}",
                    json_string(&attr.data_type),
                    json_string(&attr.value)
                ));
            }
            attrs.push_str(inner_close);
            push(&mut out, "MessageAttributes", &attrs);
        }
        out.push_str(close);
        out
    }
}

fn json_string(s: &str) -> String {
    // Serialising a &str cannot fail; fall back to an empty string rather than panic.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The string an SNS signature covers, as the developer guide lays it out:
/// `Name\nvalue\n` for each signed field, in byte order of the names.
///
/// * `Notification`: Message, MessageId, Subject (only when present),
///   Timestamp, TopicArn, Type;
/// * `SubscriptionConfirmation` and `UnsubscribeConfirmation`: Message,
///   MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type.
pub fn string_to_sign(message: &SnsMessage) -> String {
    let timestamp = format_timestamp(&message.timestamp);
    let lookup = |name: &str| -> Option<&str> {
        match name {
            "Message" => Some(&message.message),
            "MessageId" => Some(&message.message_id),
            "Subject" => message.subject.as_deref(),
            "SubscribeURL" => message.subscribe_url.as_deref(),
            "Timestamp" => Some(&timestamp),
            "Token" => message.token.as_deref(),
            "TopicArn" => Some(&message.topic_arn),
            "Type" => Some(message.message_type.as_str()),
            _ => None,
        }
    };
    // Every field a well-built message signs is present, so this cannot fail.
    string_to_sign_from(message.message_type, lookup).unwrap_or_default()
}

/// The names a signature of `message_type` covers, in order. `Subject` is
/// signed only when the notification has one.
pub fn signed_fields(message_type: MessageType) -> &'static [&'static str] {
    match message_type {
        MessageType::Notification => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
    }
}

/// Builds the string to sign from any field lookup (a parsed received body,
/// say). Fails naming the first required field that is missing.
pub(crate) fn string_to_sign_from<'a>(
    message_type: MessageType,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Result<String, Error> {
    let mut out = String::new();
    for name in signed_fields(message_type) {
        match lookup(name) {
            Some(value) => {
                out.push_str(name);
                out.push('\n');
                out.push_str(value);
                out.push('\n');
            }
            None if *name == "Subject" => {}
            None => return Err(Error::Verify(format!("the message has no {name}"))),
        }
    }
    Ok(out)
}

/// The headers SNS sends with a document, in SNS's order:
/// `x-amz-sns-message-type`, `x-amz-sns-message-id`, `x-amz-sns-topic-arn`,
/// `x-amz-sns-subscription-arn` (not for a SubscriptionConfirmation, where
/// the subscription is not yet confirmed; the guide's examples show it on
/// notifications and unsubscribe confirmations), `x-amz-sns-rawdelivery: true`
/// for raw deliveries, `Content-Type` (`content_type` from the delivery
/// policy's `requestPolicy`, or `text/plain; charset=UTF-8`), and `User-Agent`.
pub fn http_headers(
    message: &SnsMessage,
    subscription_arn: &str,
    raw: bool,
    content_type: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (
            "x-amz-sns-message-type",
            message.message_type.as_str().to_owned(),
        ),
        ("x-amz-sns-message-id", message.message_id.clone()),
        ("x-amz-sns-topic-arn", message.topic_arn.clone()),
    ];
    if message.message_type != MessageType::SubscriptionConfirmation {
        headers.push(("x-amz-sns-subscription-arn", subscription_arn.to_owned()));
    }
    if raw && message.message_type == MessageType::Notification {
        headers.push(("x-amz-sns-rawdelivery", "true".to_owned()));
    }
    headers.push((
        "Content-Type",
        content_type.unwrap_or(DEFAULT_CONTENT_TYPE).to_owned(),
    ));
    headers.push(("User-Agent", USER_AGENT.to_owned()));
    headers
}

/// The body of a raw delivery (`RawMessageDelivery=true`): the published
/// message itself, unwrapped and unsigned. Confirmations are never raw: the
/// caller sends [`SnsMessage::to_json`] for them.
pub fn raw_message_body(message: &SnsMessage) -> &str {
    &message.message
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    pub(crate) fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 13, 40, 0).unwrap() + chrono::Duration::milliseconds(123)
    }

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:MyTopic";
    const SUB: &str =
        "arn:aws:sns:us-east-1:123456789012:MyTopic:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55";
    const CERT: &str = "https://cairn.example.com/SimpleNotificationService-cairn.pem";

    fn notification(subject: Option<&str>) -> SnsMessage {
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "severity".to_owned(),
            MessageAttribute {
                data_type: "String".to_owned(),
                value: "high".to_owned(),
            },
        );
        let mut m = SnsMessage::notification(
            "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            TOPIC,
            subject,
            "Hello \"world\"\nline two",
            at(),
            &unsubscribe_url("https://cairn.example.com/", SUB),
            attrs,
            SignatureVersion::V1,
            CERT,
        );
        m.signature = "SIG==".to_owned();
        m
    }

    #[test]
    fn test_timestamps_keep_milliseconds() {
        let fine = at() + chrono::Duration::nanoseconds(456_789);
        let m = SnsMessage::subscription_confirmation(
            "id",
            TOPIC,
            "t",
            "u",
            fine,
            SignatureVersion::V1,
            CERT,
        );
        assert_eq!(m.timestamp, at());
        assert_eq!(SnsMessage::from_json(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn test_timestamp_format() {
        assert_eq!(format_timestamp(&at()), "2026-12-02T13:40:00.123Z");
        let whole = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_timestamp(&whole), "2026-01-02T03:04:05.000Z");
    }

    #[test]
    fn test_notification_golden() {
        let expected = r#"{
  "Type" : "Notification",
  "MessageId" : "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
  "TopicArn" : "arn:aws:sns:us-east-1:123456789012:MyTopic",
  "Subject" : "My First Message",
  "Message" : "Hello \"world\"\nline two",
  "Timestamp" : "2026-12-02T13:40:00.123Z",
  "SignatureVersion" : "1",
  "Signature" : "SIG==",
  "SigningCertURL" : "https://cairn.example.com/SimpleNotificationService-cairn.pem",
  "UnsubscribeURL" : "https://cairn.example.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:MyTopic:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
  "MessageAttributes" : {
    "severity" : {"Type":"String","Value":"high"}
  }
}"#;
        let m = notification(Some("My First Message"));
        assert_eq!(m.to_json(), expected);
        // Whatever the layout, it is JSON with the same values.
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["Message"], "Hello \"world\"\nline two");
        assert_eq!(v["MessageAttributes"]["severity"]["Value"], "high");
        let line = m.to_json_line();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&line).unwrap(), v);
        assert!(line.starts_with(r#"{"Type":"Notification","MessageId":"#));
    }

    #[test]
    fn test_notification_without_subject_or_attributes() {
        let mut m = notification(None);
        m.message_attributes.clear();
        let json = m.to_json();
        assert!(!json.contains("Subject"), "{json}");
        assert!(!json.contains("MessageAttributes"), "{json}");
        assert!(
            json.ends_with(&format!("SubscriptionArn={SUB}\"\n}}")),
            "{json}"
        );
    }

    #[test]
    fn test_subscription_confirmation_golden() {
        let url = subscribe_url("https://cairn.example.com", TOPIC, "2336412f37");
        let mut m = SnsMessage::subscription_confirmation(
            "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            TOPIC,
            "2336412f37",
            &url,
            at(),
            SignatureVersion::V2,
            CERT,
        );
        m.signature = "SIG==".to_owned();
        let expected = r#"{
  "Type" : "SubscriptionConfirmation",
  "MessageId" : "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
  "Token" : "2336412f37",
  "TopicArn" : "arn:aws:sns:us-east-1:123456789012:MyTopic",
  "Message" : "You have chosen to subscribe to the topic arn:aws:sns:us-east-1:123456789012:MyTopic.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
  "SubscribeURL" : "https://cairn.example.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:MyTopic&Token=2336412f37",
  "Timestamp" : "2026-12-02T13:40:00.123Z",
  "SignatureVersion" : "2",
  "Signature" : "SIG==",
  "SigningCertURL" : "https://cairn.example.com/SimpleNotificationService-cairn.pem"
}"#;
        assert_eq!(m.to_json(), expected);
        assert_eq!(
            string_to_sign(&m),
            "Message\nYou have chosen to subscribe to the topic arn:aws:sns:us-east-1:123456789012:MyTopic.\n\
             To confirm the subscription, visit the SubscribeURL included in this message.\n\
             MessageId\n165545c9-2a5c-472c-8df2-7ff2be2b3b1b\n\
             SubscribeURL\nhttps://cairn.example.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:MyTopic&Token=2336412f37\n\
             Timestamp\n2026-12-02T13:40:00.123Z\n\
             Token\n2336412f37\n\
             TopicArn\narn:aws:sns:us-east-1:123456789012:MyTopic\n\
             Type\nSubscriptionConfirmation\n"
        );
    }

    #[test]
    fn test_unsubscribe_confirmation_golden() {
        let url = subscribe_url("https://cairn.example.com", TOPIC, "2336412f37");
        let mut m = SnsMessage::unsubscribe_confirmation(
            "47138184-6831-46b8-8f7c-afc488602d7d",
            TOPIC,
            SUB,
            "2336412f37",
            &url,
            at(),
            SignatureVersion::V1,
            CERT,
        );
        m.signature = "SIG==".to_owned();
        let expected = r#"{
  "Type" : "UnsubscribeConfirmation",
  "MessageId" : "47138184-6831-46b8-8f7c-afc488602d7d",
  "Token" : "2336412f37",
  "TopicArn" : "arn:aws:sns:us-east-1:123456789012:MyTopic",
  "Message" : "You have chosen to deactivate subscription arn:aws:sns:us-east-1:123456789012:MyTopic:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55.\nTo cancel this operation and restore the subscription, visit the SubscribeURL included in this message.",
  "SubscribeURL" : "https://cairn.example.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:MyTopic&Token=2336412f37",
  "Timestamp" : "2026-12-02T13:40:00.123Z",
  "SignatureVersion" : "1",
  "Signature" : "SIG==",
  "SigningCertURL" : "https://cairn.example.com/SimpleNotificationService-cairn.pem"
}"#;
        assert_eq!(m.to_json(), expected);
        assert!(string_to_sign(&m).ends_with("Type\nUnsubscribeConfirmation\n"));
    }

    #[test]
    fn test_notification_string_to_sign() {
        let m = notification(Some("My First Message"));
        assert_eq!(
            string_to_sign(&m),
            "Message\nHello \"world\"\nline two\n\
             MessageId\n165545c9-2a5c-472c-8df2-7ff2be2b3b1b\n\
             Subject\nMy First Message\n\
             Timestamp\n2026-12-02T13:40:00.123Z\n\
             TopicArn\narn:aws:sns:us-east-1:123456789012:MyTopic\n\
             Type\nNotification\n"
        );
        // Without a subject the Subject pair is left out, not emptied; and
        // neither UnsubscribeURL nor attributes are signed.
        let mut m = notification(None);
        m.message_attributes.clear();
        m.unsubscribe_url = Some("https://elsewhere".to_owned());
        assert_eq!(
            string_to_sign(&m),
            "Message\nHello \"world\"\nline two\n\
             MessageId\n165545c9-2a5c-472c-8df2-7ff2be2b3b1b\n\
             Timestamp\n2026-12-02T13:40:00.123Z\n\
             TopicArn\narn:aws:sns:us-east-1:123456789012:MyTopic\n\
             Type\nNotification\n"
        );
    }

    #[test]
    fn test_from_json_reads_back_every_layout() {
        let m = notification(Some("My First Message"));
        assert_eq!(SnsMessage::from_json(&m.to_json()).unwrap(), m);
        assert_eq!(SnsMessage::from_json(&m.to_json_line()).unwrap(), m);
        let url = subscribe_url("https://cairn.example.com", TOPIC, "abc");
        let c = SnsMessage::unsubscribe_confirmation(
            "id",
            TOPIC,
            SUB,
            "abc",
            &url,
            at(),
            SignatureVersion::V2,
            CERT,
        );
        assert_eq!(SnsMessage::from_json(&c.to_json()).unwrap(), c);
        for bad in [
            "",
            "[]",
            r#"{"Type":"Notification"}"#,
            &m.to_json().replace("2026-12-02T13:40:00.123Z", "yesterday"),
            &m.to_json()
                .replace(r#""SignatureVersion" : "1""#, r#""SignatureVersion" : "3""#),
            &m.to_json().replace(
                r#"{"Type":"String","Value":"high"}"#,
                r#"{"Type":"String"}"#,
            ),
        ] {
            assert!(SnsMessage::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn test_headers() {
        let m = notification(None);
        let h = http_headers(&m, SUB, false, None);
        assert_eq!(
            h,
            vec![
                ("x-amz-sns-message-type", "Notification".to_owned()),
                (
                    "x-amz-sns-message-id",
                    "165545c9-2a5c-472c-8df2-7ff2be2b3b1b".to_owned()
                ),
                ("x-amz-sns-topic-arn", TOPIC.to_owned()),
                ("x-amz-sns-subscription-arn", SUB.to_owned()),
                ("Content-Type", "text/plain; charset=UTF-8".to_owned()),
                (
                    "User-Agent",
                    "Amazon Simple Notification Service Agent".to_owned()
                ),
            ]
        );
        let raw = http_headers(&m, SUB, true, Some("application/json"));
        assert!(raw.contains(&("x-amz-sns-rawdelivery", "true".to_owned())));
        assert!(raw.contains(&("Content-Type", "application/json".to_owned())));
        assert_eq!(raw_message_body(&m), "Hello \"world\"\nline two");
        let confirm = SnsMessage::subscription_confirmation(
            "id",
            TOPIC,
            "t",
            "u",
            at(),
            SignatureVersion::V1,
            CERT,
        );
        let h = http_headers(&confirm, SUB, true, None);
        assert!(h.iter().all(|(k, _)| *k != "x-amz-sns-subscription-arn"));
        assert!(h.iter().all(|(k, _)| *k != "x-amz-sns-rawdelivery"));
        assert_eq!(h[0].1, "SubscriptionConfirmation");
    }
}
