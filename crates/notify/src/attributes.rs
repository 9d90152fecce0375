//! Topic and subscription attributes: what GetTopicAttributes reports by
//! default, and which names SetTopicAttributes / SetSubscriptionAttributes
//! accept.
//!
//! The settable names are botocore's (SetTopicAttributesInput and
//! SetSubscriptionAttributesInput). The default topic `Policy` is the one SNS
//! answers for a new topic as published responses show it (version
//! `2008-10-17`, `__default_policy_ID`, eight actions, `AWS:SourceOwner`);
//! older topics also list `SNS:Receive`, which Cairn leaves out. A name that
//! is not settable fails with `Invalid parameter: AttributeName`, SNS's text.
//! The value checks and their messages are Cairn's.

use std::collections::BTreeMap;

use crate::Error;
use crate::ids::Protocol;
use crate::policy::{EffectiveDeliveryPolicy, SubscriptionDeliveryPolicy, TopicDeliveryPolicy};
use crate::signing::SignatureVersion;

/// Names SetTopicAttributes accepts (botocore), FIFO-only ones included.
pub const SETTABLE_TOPIC_ATTRIBUTES: &[&str] = &[
    "ApplicationFailureFeedbackRoleArn",
    "ApplicationSuccessFeedbackRoleArn",
    "ApplicationSuccessFeedbackSampleRate",
    "ArchivePolicy",
    "ContentBasedDeduplication",
    "DeliveryPolicy",
    "DisplayName",
    "FifoThroughputScope",
    "FirehoseFailureFeedbackRoleArn",
    "FirehoseSuccessFeedbackRoleArn",
    "FirehoseSuccessFeedbackSampleRate",
    "HTTPFailureFeedbackRoleArn",
    "HTTPSuccessFeedbackRoleArn",
    "HTTPSuccessFeedbackSampleRate",
    "KmsMasterKeyId",
    "LambdaFailureFeedbackRoleArn",
    "LambdaSuccessFeedbackRoleArn",
    "LambdaSuccessFeedbackSampleRate",
    "Policy",
    "SQSFailureFeedbackRoleArn",
    "SQSSuccessFeedbackRoleArn",
    "SQSSuccessFeedbackSampleRate",
    "SignatureVersion",
    "TracingConfig",
];

/// Topic attributes that only FIFO topics take; Cairn has none.
const FIFO_TOPIC_ATTRIBUTES: &[&str] = &[
    "ArchivePolicy",
    "ContentBasedDeduplication",
    "FifoThroughputScope",
];

/// Names SetSubscriptionAttributes accepts (botocore, plus `ReplayPolicy`
/// which Subscribe documents for FIFO topics).
pub const SETTABLE_SUBSCRIPTION_ATTRIBUTES: &[&str] = &[
    "DeliveryPolicy",
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
    "ReplayPolicy",
    "SubscriptionRoleArn",
];

/// Longest `DisplayName` SNS takes.
pub const MAX_DISPLAY_NAME_LEN: usize = 100;

fn attribute_name_error() -> Error {
    Error::invalid("AttributeName")
}

fn value_error(name: &str, detail: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{name}: {detail}"))
}

fn json_object(name: &str, value: &str) -> Result<(), Error> {
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(value_error(name, "must be a JSON object")),
    }
}

/// Checks one SetTopicAttributes (or CreateTopic) attribute.
pub fn validate_topic_attribute(name: &str, value: &str) -> Result<(), Error> {
    if !SETTABLE_TOPIC_ATTRIBUTES.contains(&name) {
        return Err(attribute_name_error());
    }
    if FIFO_TOPIC_ATTRIBUTES.contains(&name) {
        return Err(value_error(
            name,
            "applies to FIFO topics only, and Cairn does not support FIFO topics",
        ));
    }
    match name {
        "DeliveryPolicy" => TopicDeliveryPolicy::parse(value).map(|_| ()),
        "Policy" => json_object(name, value),
        "SignatureVersion" => SignatureVersion::parse(value)
            .map(|_| ())
            .ok_or_else(|| value_error(name, "must be 1 or 2")),
        "TracingConfig" => match value {
            "PassThrough" | "Active" => Ok(()),
            _ => Err(value_error(name, "must be PassThrough or Active")),
        },
        "DisplayName" if value.chars().count() > MAX_DISPLAY_NAME_LEN => Err(value_error(
            name,
            format!("must be at most {MAX_DISPLAY_NAME_LEN} characters"),
        )),
        n if n.ends_with("SampleRate") => match value.parse::<u8>() {
            Ok(0..=100) => Ok(()),
            _ => Err(value_error(name, "must be an integer from 0 to 100")),
        },
        _ => Ok(()),
    }
}

/// Checks one SetSubscriptionAttributes (or Subscribe) attribute for a
/// subscription of `protocol`.
pub fn validate_subscription_attribute(
    name: &str,
    value: &str,
    protocol: Protocol,
) -> Result<(), Error> {
    if !SETTABLE_SUBSCRIPTION_ATTRIBUTES.contains(&name) {
        return Err(attribute_name_error());
    }
    match name {
        "DeliveryPolicy" => {
            if protocol == Protocol::File {
                return Err(value_error(
                    name,
                    "Delivery protocol [file] does not support delivery policies",
                ));
            }
            SubscriptionDeliveryPolicy::parse(value).map(|_| ())
        }
        "RawMessageDelivery" => {
            if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
                Ok(())
            } else {
                Err(value_error(name, "must be true or false"))
            }
        }
        "FilterPolicy" => json_object(name, value),
        "FilterPolicyScope" => match value {
            "MessageAttributes" | "MessageBody" => Ok(()),
            _ => Err(value_error(
                name,
                "must be MessageAttributes or MessageBody",
            )),
        },
        "RedrivePolicy" => Err(value_error(
            name,
            "Cairn has no Amazon SQS dead-letter queues",
        )),
        "ReplayPolicy" => Err(value_error(
            name,
            "applies to FIFO topics only, and Cairn does not support FIFO topics",
        )),
        "SubscriptionRoleArn" => Err(value_error(
            name,
            "applies to firehose subscriptions only, which Cairn does not support",
        )),
        _ => Ok(()),
    }
}

/// The default access policy SNS gives a new topic, owned by `account`.
pub fn default_topic_policy(account: &str, topic_arn: &str) -> String {
    // serde_json without preserve_order writes object keys sorted; build the
    // text so keys keep SNS's order.
    format!(
        concat!(
            r#"{{"Version":"2008-10-17","Id":"__default_policy_ID","Statement":[{{"#,
            r#""Sid":"__default_statement_ID","Effect":"Allow","Principal":{{"AWS":"*"}},"#,
            r#""Action":["SNS:GetTopicAttributes","SNS:SetTopicAttributes","SNS:AddPermission","#,
            r#""SNS:RemovePermission","SNS:DeleteTopic","SNS:Subscribe","SNS:ListSubscriptionsByTopic","#,
            r#""SNS:Publish"],"Resource":{arn},"Condition":{{"StringEquals":{{"AWS:SourceOwner":{account}}}}}}}]}}"#
        ),
        arn = serde_json::Value::from(topic_arn),
        account = serde_json::Value::from(account),
    )
}

/// A topic's subscriptions, counted by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopicCounts {
    /// `SubscriptionsConfirmed`.
    pub confirmed: u64,
    /// `SubscriptionsPending`.
    pub pending: u64,
    /// `SubscriptionsDeleted`.
    pub deleted: u64,
}

/// GetTopicAttributes' answer: the attributes stored for the topic (as set
/// by CreateTopic and SetTopicAttributes) plus what SNS always reports —
/// `Owner`, `Policy` (the default unless one was set), `TopicArn`,
/// `EffectiveDeliveryPolicy`, `DisplayName` (empty unless set) and the
/// three subscription counts.
pub fn topic_attributes(
    account: &str,
    topic_arn: &str,
    stored: &BTreeMap<String, String>,
    counts: TopicCounts,
) -> BTreeMap<String, String> {
    let mut out = stored.clone();
    out.insert("Owner".to_owned(), account.to_owned());
    out.insert("TopicArn".to_owned(), topic_arn.to_owned());
    out.entry("Policy".to_owned())
        .or_insert_with(|| default_topic_policy(account, topic_arn));
    out.entry("DisplayName".to_owned()).or_default();
    // A stored policy was checked when set; one that no longer parses is
    // reported as the default rather than failing the whole call.
    let effective = stored
        .get("DeliveryPolicy")
        .and_then(|p| TopicDeliveryPolicy::parse(p).ok())
        .unwrap_or_default()
        .effective_json();
    out.insert("EffectiveDeliveryPolicy".to_owned(), effective);
    out.insert(
        "SubscriptionsConfirmed".to_owned(),
        counts.confirmed.to_string(),
    );
    out.insert(
        "SubscriptionsPending".to_owned(),
        counts.pending.to_string(),
    );
    out.insert(
        "SubscriptionsDeleted".to_owned(),
        counts.deleted.to_string(),
    );
    out
}

/// What GetSubscriptionAttributes needs to know of a subscription besides
/// its stored attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionFacts<'a> {
    /// The topic owner's account: `Owner`.
    pub owner: &'a str,
    /// `SubscriptionArn`.
    pub subscription_arn: &'a str,
    /// `TopicArn`.
    pub topic_arn: &'a str,
    /// `Protocol`.
    pub protocol: Protocol,
    /// `Endpoint`.
    pub endpoint: &'a str,
    /// `PendingConfirmation`: not yet confirmed.
    pub pending_confirmation: bool,
    /// `ConfirmationWasAuthenticated`: confirmed by a signed
    /// ConfirmSubscription request rather than by an anonymous visit to the
    /// `SubscribeURL`.
    pub confirmation_was_authenticated: bool,
}

/// GetSubscriptionAttributes' answer: the stored attributes (as set by
/// Subscribe and SetSubscriptionAttributes) plus `Owner`, `SubscriptionArn`,
/// `TopicArn`, `Protocol`, `Endpoint`, `PendingConfirmation`,
/// `ConfirmationWasAuthenticated`, `RawMessageDelivery` (`false` unless set)
/// and, for `http`/`https`, `EffectiveDeliveryPolicy` from the subscription's
/// and the topic's `DeliveryPolicy`.
pub fn subscription_attributes(
    facts: &SubscriptionFacts<'_>,
    stored: &BTreeMap<String, String>,
    topic_delivery_policy: Option<&str>,
) -> BTreeMap<String, String> {
    let mut out = stored.clone();
    let flag = |b: bool| if b { "true" } else { "false" }.to_owned();
    out.insert("Owner".to_owned(), facts.owner.to_owned());
    out.insert(
        "SubscriptionArn".to_owned(),
        facts.subscription_arn.to_owned(),
    );
    out.insert("TopicArn".to_owned(), facts.topic_arn.to_owned());
    out.insert("Protocol".to_owned(), facts.protocol.as_str().to_owned());
    out.insert("Endpoint".to_owned(), facts.endpoint.to_owned());
    out.insert(
        "PendingConfirmation".to_owned(),
        flag(facts.pending_confirmation),
    );
    out.insert(
        "ConfirmationWasAuthenticated".to_owned(),
        flag(facts.confirmation_was_authenticated),
    );
    out.entry("RawMessageDelivery".to_owned())
        .or_insert_with(|| "false".to_owned());
    if facts.protocol != Protocol::File {
        // Both were checked when set; one that no longer parses counts as unset.
        let topic = topic_delivery_policy.and_then(|p| TopicDeliveryPolicy::parse(p).ok());
        let own = stored
            .get("DeliveryPolicy")
            .and_then(|p| SubscriptionDeliveryPolicy::parse(p).ok());
        let effective = EffectiveDeliveryPolicy::resolve(topic.as_ref(), own.as_ref());
        out.insert("EffectiveDeliveryPolicy".to_owned(), effective.to_json());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:MyTopic";

    #[test]
    fn test_default_topic_policy() {
        let p = default_topic_policy("123456789012", TOPIC);
        assert_eq!(
            p,
            r#"{"Version":"2008-10-17","Id":"__default_policy_ID","Statement":[{"Sid":"__default_statement_ID","Effect":"Allow","Principal":{"AWS":"*"},"Action":["SNS:GetTopicAttributes","SNS:SetTopicAttributes","SNS:AddPermission","SNS:RemovePermission","SNS:DeleteTopic","SNS:Subscribe","SNS:ListSubscriptionsByTopic","SNS:Publish"],"Resource":"arn:aws:sns:us-east-1:123456789012:MyTopic","Condition":{"StringEquals":{"AWS:SourceOwner":"123456789012"}}}]}"#
        );
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["Statement"][0]["Action"].as_array().unwrap().len(), 8);
    }

    #[test]
    fn test_topic_attributes_defaults_and_stored() {
        let counts = TopicCounts {
            confirmed: 2,
            pending: 1,
            deleted: 0,
        };
        let a = topic_attributes("123456789012", TOPIC, &BTreeMap::new(), counts);
        let keys: Vec<&str> = a.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "DisplayName",
                "EffectiveDeliveryPolicy",
                "Owner",
                "Policy",
                "SubscriptionsConfirmed",
                "SubscriptionsDeleted",
                "SubscriptionsPending",
                "TopicArn"
            ]
        );
        assert_eq!(a["Owner"], "123456789012");
        assert_eq!(a["DisplayName"], "");
        assert_eq!(a["SubscriptionsConfirmed"], "2");
        assert_eq!(a["SubscriptionsPending"], "1");
        assert_eq!(a["SubscriptionsDeleted"], "0");
        assert_eq!(a["Policy"], default_topic_policy("123456789012", TOPIC));
        assert_eq!(
            a["EffectiveDeliveryPolicy"],
            TopicDeliveryPolicy::default().effective_json()
        );

        let mut stored = BTreeMap::new();
        stored.insert("DisplayName".to_owned(), "Alerts".to_owned());
        stored.insert("Policy".to_owned(), "{}".to_owned());
        stored.insert("SignatureVersion".to_owned(), "2".to_owned());
        stored.insert(
            "DeliveryPolicy".to_owned(),
            r#"{"http":{"defaultHealthyRetryPolicy":{"numRetries":7}}}"#.to_owned(),
        );
        let a = topic_attributes("123456789012", TOPIC, &stored, TopicCounts::default());
        assert_eq!(a["DisplayName"], "Alerts");
        assert_eq!(a["Policy"], "{}");
        assert_eq!(a["SignatureVersion"], "2");
        assert!(a["EffectiveDeliveryPolicy"].contains(r#""numRetries":7"#));
        assert_eq!(a["DeliveryPolicy"], stored["DeliveryPolicy"]);
    }

    #[test]
    fn test_subscription_attributes() {
        let sub = format!("{TOPIC}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55");
        let facts = SubscriptionFacts {
            owner: "123456789012",
            subscription_arn: &sub,
            topic_arn: TOPIC,
            protocol: Protocol::Https,
            endpoint: "https://example.com/hook",
            pending_confirmation: false,
            confirmation_was_authenticated: true,
        };
        let a = subscription_attributes(&facts, &BTreeMap::new(), None);
        let keys: Vec<&str> = a.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "ConfirmationWasAuthenticated",
                "EffectiveDeliveryPolicy",
                "Endpoint",
                "Owner",
                "PendingConfirmation",
                "Protocol",
                "RawMessageDelivery",
                "SubscriptionArn",
                "TopicArn"
            ]
        );
        assert_eq!(a["ConfirmationWasAuthenticated"], "true");
        assert_eq!(a["PendingConfirmation"], "false");
        assert_eq!(a["RawMessageDelivery"], "false");
        assert_eq!(a["Protocol"], "https");
        assert_eq!(
            a["EffectiveDeliveryPolicy"],
            EffectiveDeliveryPolicy::default().to_json()
        );

        let mut stored = BTreeMap::new();
        stored.insert("RawMessageDelivery".to_owned(), "true".to_owned());
        stored.insert(
            "DeliveryPolicy".to_owned(),
            r#"{"healthyRetryPolicy":{"numRetries":9}}"#.to_owned(),
        );
        let topic = r#"{"http":{"defaultThrottlePolicy":{"maxReceivesPerSecond":3}}}"#;
        let a = subscription_attributes(&facts, &stored, Some(topic));
        assert_eq!(a["RawMessageDelivery"], "true");
        let effective = &a["EffectiveDeliveryPolicy"];
        assert!(effective.contains(r#""numRetries":9"#), "{effective}");
        assert!(
            effective.contains(r#""maxReceivesPerSecond":3"#),
            "{effective}"
        );

        let file = SubscriptionFacts {
            protocol: Protocol::File,
            endpoint: "/var/log/sns.jsonl",
            ..facts
        };
        let a = subscription_attributes(&file, &BTreeMap::new(), None);
        assert!(!a.contains_key("EffectiveDeliveryPolicy"));
        assert_eq!(a["Protocol"], "file");
    }

    #[test]
    fn test_topic_attribute_validation() {
        validate_topic_attribute("DisplayName", "Alerts").unwrap();
        validate_topic_attribute("SignatureVersion", "2").unwrap();
        validate_topic_attribute("Policy", "{}").unwrap();
        validate_topic_attribute("TracingConfig", "Active").unwrap();
        validate_topic_attribute("HTTPSuccessFeedbackSampleRate", "100").unwrap();
        validate_topic_attribute("DeliveryPolicy", r#"{"http":{}}"#).unwrap();
        let err = |n: &str, v: &str| {
            let e = validate_topic_attribute(n, v).unwrap_err();
            assert_eq!(e.aws_code(), Some("InvalidParameter"));
            e.to_string()
        };
        assert_eq!(err("Owner", "x"), "Invalid parameter: AttributeName");
        assert_eq!(err("TopicArn", "x"), "Invalid parameter: AttributeName");
        assert_eq!(err("displayname", "x"), "Invalid parameter: AttributeName");
        assert!(err("SignatureVersion", "3").contains("SignatureVersion"));
        assert!(err("Policy", "[]").contains("Policy"));
        assert!(err("DisplayName", &"x".repeat(101)).contains("DisplayName"));
        assert!(err("HTTPSuccessFeedbackSampleRate", "101").contains("0 to 100"));
        assert!(err("ContentBasedDeduplication", "true").contains("FIFO"));
        assert!(
            err(
                "DeliveryPolicy",
                r#"{"http":{"defaultHealthyRetryPolicy":{"numRetries":101}}}"#
            )
            .contains("DeliveryPolicy")
        );
    }

    #[test]
    fn test_subscription_attribute_validation() {
        let ok = |n: &str, v: &str| validate_subscription_attribute(n, v, Protocol::Https).unwrap();
        ok("RawMessageDelivery", "true");
        ok("RawMessageDelivery", "False");
        ok(
            "DeliveryPolicy",
            r#"{"healthyRetryPolicy":{"numRetries":5}}"#,
        );
        ok("FilterPolicy", r#"{"severity":["high"]}"#);
        ok("FilterPolicyScope", "MessageBody");
        let err = |n: &str, v: &str, p: Protocol| {
            validate_subscription_attribute(n, v, p)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("Endpoint", "x", Protocol::Http),
            "Invalid parameter: AttributeName"
        );
        assert!(err("RawMessageDelivery", "yes", Protocol::Http).contains("true or false"));
        assert!(err("DeliveryPolicy", "{}", Protocol::File).contains("[file]"));
        assert!(
            err(
                "DeliveryPolicy",
                r#"{"healthyRetryPolicy":{"numRetries":200}}"#,
                Protocol::Http
            )
            .contains("numRetries")
        );
        assert!(err("FilterPolicyScope", "Body", Protocol::Http).contains("MessageBody"));
        assert!(err("RedrivePolicy", "{}", Protocol::Http).contains("dead-letter"));
        assert!(err("SubscriptionRoleArn", "arn", Protocol::Http).contains("firehose"));
        assert!(err("FilterPolicy", "nope", Protocol::Http).contains("JSON object"));
    }
}
