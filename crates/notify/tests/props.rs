//! Properties of the public API, as the SNS service and delivery loop use it:
//! any message signs and verifies whatever its text, any change to a signed
//! field breaks it, and every valid delivery policy yields a schedule that
//! keeps AWS's limits.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use cairn_notify::{
    EffectiveDeliveryPolicy, MessageAttribute, SignatureVersion, SigningKey, SnsMessage,
    SubscriptionDeliveryPolicy, message_id, subscribe_url, subscription_arn, topic_arn,
    unsubscribe_url, verify_message,
};
use chrono::{DateTime, TimeZone as _, Utc};
use proptest::prelude::*;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 13, 40, 0).unwrap()
}

fn key() -> &'static SigningKey {
    static KEY: OnceLock<(tempfile::TempDir, SigningKey)> = OnceLock::new();
    &KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::open(dir.path(), start()).unwrap();
        (dir, key)
    })
    .1
}

fn version(v2: bool) -> SignatureVersion {
    if v2 {
        SignatureVersion::V2
    } else {
        SignatureVersion::V1
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_notification_round_trips(
        message in any::<String>(),
        subject in proptest::option::of("[ -~]{1,100}"),
        attribute in proptest::option::of(any::<String>()),
        millis in 0i64..10_000_000_000,
        v2 in any::<bool>(),
    ) {
        let topic = topic_arn("eu-west-1", "123456789012", "Alerts");
        let sub = subscription_arn(&topic);
        let mut attrs = BTreeMap::new();
        if let Some(value) = attribute {
            attrs.insert("a".to_owned(), MessageAttribute { data_type: "String".to_owned(), value });
        }
        let mut m = SnsMessage::notification(
            &message_id(),
            &topic,
            subject.as_deref(),
            &message,
            start() + chrono::Duration::milliseconds(millis),
            &unsubscribe_url("https://cairn.test", &sub),
            attrs,
            version(v2),
            "https://cairn.test/cert.pem",
        );
        m.sign(key()).unwrap();
        let body = m.to_json();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        prop_assert_eq!(parsed["Message"].as_str().unwrap(), message.as_str());
        prop_assert_eq!(parsed.get("Subject").and_then(|s| s.as_str()), subject.as_deref());
        prop_assert!(verify_message(&body, key().certificate_pem()).is_ok());
        prop_assert_eq!(&SnsMessage::from_json(&body).unwrap(), &m);
        prop_assert!(verify_message(&m.to_json_line(), key().certificate_pem()).is_ok());

        let mut changed = m.clone();
        changed.message.push(' ');
        prop_assert!(verify_message(&changed.to_json(), key().certificate_pem()).is_err());
    }

    #[test]
    fn any_confirmation_round_trips(token in "[0-9a-f]{16,256}", v2 in any::<bool>()) {
        let topic = topic_arn("us-east-1", "123456789012", "T");
        let url = subscribe_url("https://cairn.test", &topic, &token);
        let mut m = SnsMessage::subscription_confirmation(
            &message_id(), &topic, &token, &url, start(), version(v2), "https://cairn.test/c.pem",
        );
        m.sign(key()).unwrap();
        prop_assert!(verify_message(&m.to_json(), key().certificate_pem()).is_ok());
        let mut other = m.clone();
        other.token = Some(format!("{token}0"));
        prop_assert!(verify_message(&other.to_json(), key().certificate_pem()).is_err());
    }

    #[test]
    fn valid_policies_keep_the_limits(
        min in 1u32..=60,
        span in prop_oneof![4 => 0u32..=200, 1 => 3000u32..=3600],
        retries in 0u32..=40,
        no_delay in 0u32..=10,
        min_phase in 0u32..=10,
        max_phase in 0u32..=10,
        function in prop::sample::select(vec!["linear", "arithmetic", "geometric", "exponential"]),
    ) {
        let max = min.saturating_add(span);
        let json = format!(
            r#"{{"healthyRetryPolicy":{{"minDelayTarget":{min},"maxDelayTarget":{max},"numRetries":{retries},
                "numNoDelayRetries":{no_delay},"numMinDelayRetries":{min_phase},"numMaxDelayRetries":{max_phase},
                "backoffFunction":"{function}"}}}}"#
        );
        let policy = match SubscriptionDeliveryPolicy::parse(&json) {
            Ok(policy) => policy,
            Err(e) => {
                // Refused: for the limit it breaks.
                let m = e.to_string();
                let why = if max > 3600 {
                    "maxDelayTarget"
                } else if no_delay + min_phase + max_phase > retries {
                    "must be at least"
                } else {
                    "may not exceed 3600"
                };
                prop_assert!(m.contains(why), "{}: {}", json, m);
                return Ok(());
            }
        };
        let p = EffectiveDeliveryPolicy::resolve(None, Some(&policy)).healthy_retry_policy;
        let schedule = p.schedule();
        prop_assert_eq!(schedule.len(), retries as usize);
        prop_assert!(schedule.iter().map(|&s| u64::from(s)).sum::<u64>() <= 3600);
        for (i, &delay) in schedule.iter().enumerate() {
            let k = i as u32 + 1;
            if k <= no_delay {
                prop_assert_eq!(delay, 0);
            } else {
                prop_assert!((min..=max).contains(&delay), "retry {} waits {}", k, delay);
            }
        }
        // Past the immediate retries, delays never shrink.
        let delayed = &schedule[no_delay.min(retries) as usize..];
        prop_assert!(delayed.windows(2).all(|w| w[0] <= w[1]), "{:?}", schedule);
        prop_assert_eq!(p.retry_delay_seconds(retries + 1), None);
    }
}
