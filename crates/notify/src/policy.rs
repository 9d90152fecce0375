//! HTTP/S delivery policies: the `DeliveryPolicy` attribute of topics and
//! subscriptions, their limits, the effective policy, and when each retry is due.
//!
//! Confirmed against the SNS developer guide ("Amazon SNS message delivery
//! retries", "SetTopicAttributes / SetSubscriptionAttributes delivery policy
//! JSON format") and the AWS CDK's documentation of the same fields: the
//! field names of both formats, the four phases (immediate retries,
//! pre-backoff at `minDelayTarget`, backoff from `minDelayTarget` to
//! `maxDelayTarget`, post-backoff at `maxDelayTarget`), the default (three
//! retries 20 seconds apart, linear, `text/plain; charset=UTF-8`),
//! `minDelayTarget` ≥ 1 and ≤ `maxDelayTarget` ≤ 3600, counts ≥ 0, the four
//! backoff functions, the content types `text/plain`, `application/json`,
//! `application/xml`, and the 3600-second cap on a policy's total retry time.
//! AWS's knowledge center confirms `numRetries` ≥ the sum of the other
//! three counts and that the backoff phase gets what they leave. Recalled
//! from the guide's limits table but not re-confirmed here: `numRetries` ≤
//! 100 and `maxReceivesPerSecond` ≥ 1. Known only second-hand (readers
//! quoting the guide): an attempt answered 200–499 counts as delivered, and
//! about 15 seconds without an answer counts as failed.
//!
//! Chosen by Cairn, the guide giving only a graph:
//!
//! * the backoff curves, over the backoff phase's `b` retries, delay `j`
//!   (1-based) going from `minDelayTarget` at `j = 1` to `maxDelayTarget` at
//!   `j = b`, rounded to whole seconds:
//!   `linear` adds the same step each time; `arithmetic` adds steps that grow
//!   by a constant amount (triangular numbers); `geometric` multiplies by a
//!   constant ratio (`min·(max/min)^t`); `exponential` doubles the step each
//!   time (`min + (max−min)·(2^(j−1)−1)/(2^(b−1)−1)`);
//! * no jitter (SNS adds some; a caller may);
//! * a policy naming only `minDelayTarget` raises the default
//!   `maxDelayTarget` to it, and one naming only `maxDelayTarget` lowers the
//!   default `minDelayTarget` to it;
//! * `headerContentType` may add `; charset=UTF-8` to its media type (the
//!   default itself does);
//! * the total-time cap is checked when a policy is set, so a policy SNS
//!   would cut short is refused instead;
//! * the texts of the error messages (`Invalid parameter: DeliveryPolicy: …`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Largest `numRetries`.
pub const MAX_RETRIES: u32 = 100;
/// Largest `maxDelayTarget`, and the cap on the sum of a policy's delays.
pub const MAX_DELAY_SECONDS: u32 = 3600;
/// `Content-Type` when no request policy names one.
pub const DEFAULT_HEADER_CONTENT_TYPE: &str = "text/plain; charset=UTF-8";

const CONTENT_TYPES: &[&str] = &["text/plain", "application/json", "application/xml"];

/// How long SNS waits for an endpoint to answer before counting the attempt
/// failed ("Step 1: Prepare your HTTP/S endpoint", as quoted by readers of
/// the guide: about 15 seconds).
pub const ATTEMPT_TIMEOUT_SECONDS: u64 = 15;

/// What one delivery attempt's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Done: SNS counts any status from 200 to 499 as delivered, so a 4xx
    /// is not retried (the endpoint refused it; retrying would not help).
    Delivered,
    /// Failed: try again by the delivery policy, if it has retries left.
    Retry,
}

/// Classifies an attempt: `status` is the HTTP status the endpoint
/// answered, `None` when there was no answer (connection refused or reset,
/// DNS failure, TLS failure, or no response within
/// [`ATTEMPT_TIMEOUT_SECONDS`]).
pub fn attempt_outcome(status: Option<u16>) -> AttemptOutcome {
    match status {
        Some(200..=499) => AttemptOutcome::Delivered,
        _ => AttemptOutcome::Retry,
    }
}

/// How the delays of the backoff phase grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackoffFunction {
    /// The same step each retry (the default).
    #[default]
    Linear,
    /// Steps growing by a constant amount.
    Arithmetic,
    /// Delays growing by a constant ratio.
    Geometric,
    /// Steps doubling each retry.
    Exponential,
}

impl BackoffFunction {
    /// The name in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            BackoffFunction::Linear => "linear",
            BackoffFunction::Arithmetic => "arithmetic",
            BackoffFunction::Geometric => "geometric",
            BackoffFunction::Exponential => "exponential",
        }
    }

    /// Reads a name, in any case (the AWS CDK writes them upper case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "linear" => Some(BackoffFunction::Linear),
            "arithmetic" => Some(BackoffFunction::Arithmetic),
            "geometric" => Some(BackoffFunction::Geometric),
            "exponential" => Some(BackoffFunction::Exponential),
            _ => None,
        }
    }

    /// The delay of backoff retry `j` of `b` (1 ≤ j ≤ b) from `min` to `max`.
    fn delay(self, j: u32, b: u32, min: u32, max: u32) -> u32 {
        // `min > max` only in a policy built by hand without `validate`;
        // answer rather than let `clamp` panic.
        if b <= 1 || min >= max {
            return min;
        }
        let (jf, bf, lo, hi) = (
            f64::from(j - 1),
            f64::from(b - 1),
            f64::from(min),
            f64::from(max),
        );
        let t = jf / bf;
        let d = match self {
            BackoffFunction::Linear => lo + (hi - lo) * t,
            BackoffFunction::Arithmetic => lo + (hi - lo) * (jf * (jf + 1.0)) / (bf * (bf + 1.0)),
            BackoffFunction::Geometric => lo * (hi / lo).powf(t),
            BackoffFunction::Exponential => {
                lo + (hi - lo) * (2f64.powf(jf) - 1.0) / (2f64.powf(bf) - 1.0)
            }
        };
        // Rounded, and kept inside the bounds whatever floating point did.
        (d.round() as u32).clamp(min, max)
    }
}

impl Serialize for BackoffFunction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for BackoffFunction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        BackoffFunction::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "backoffFunction must be one of linear, arithmetic, geometric, exponential, not {s:?}"
            ))
        })
    }
}

/// A complete `healthyRetryPolicy`; fields in the order SNS prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthyRetryPolicy {
    /// Delay of the pre-backoff phase and start of the backoff phase, seconds.
    pub min_delay_target: u32,
    /// End of the backoff phase and delay of the post-backoff phase, seconds.
    pub max_delay_target: u32,
    /// Retries in all, after the first attempt.
    pub num_retries: u32,
    /// Retries of the post-backoff phase.
    pub num_max_delay_retries: u32,
    /// Retries made at once, before any delay.
    pub num_no_delay_retries: u32,
    /// Retries of the pre-backoff phase.
    pub num_min_delay_retries: u32,
    /// Shape of the backoff phase.
    pub backoff_function: BackoffFunction,
}

impl Default for HealthyRetryPolicy {
    /// SNS's default: three retries, 20 seconds apart.
    fn default() -> Self {
        Self {
            min_delay_target: 20,
            max_delay_target: 20,
            num_retries: 3,
            num_max_delay_retries: 0,
            num_no_delay_retries: 0,
            num_min_delay_retries: 0,
            backoff_function: BackoffFunction::Linear,
        }
    }
}

/// A `healthyRetryPolicy` as written: any field may be left out.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PartialRetryPolicy {
    min_delay_target: Option<u32>,
    max_delay_target: Option<u32>,
    num_retries: Option<u32>,
    num_max_delay_retries: Option<u32>,
    num_no_delay_retries: Option<u32>,
    num_min_delay_retries: Option<u32>,
    backoff_function: Option<BackoffFunction>,
}

impl PartialRetryPolicy {
    fn complete(self, field: &str) -> Result<HealthyRetryPolicy, Error> {
        let d = HealthyRetryPolicy::default();
        let min = self.min_delay_target.unwrap_or_else(|| {
            self.max_delay_target
                .map_or(d.min_delay_target, |m| m.min(d.min_delay_target))
        });
        let max = self
            .max_delay_target
            .unwrap_or_else(|| min.max(d.max_delay_target));
        let policy = HealthyRetryPolicy {
            min_delay_target: min,
            max_delay_target: max,
            num_retries: self.num_retries.unwrap_or(d.num_retries),
            num_max_delay_retries: self.num_max_delay_retries.unwrap_or(0),
            num_no_delay_retries: self.num_no_delay_retries.unwrap_or(0),
            num_min_delay_retries: self.num_min_delay_retries.unwrap_or(0),
            backoff_function: self.backoff_function.unwrap_or_default(),
        };
        policy.validate(field)?;
        Ok(policy)
    }
}

fn policy_error(detail: impl std::fmt::Display) -> Error {
    Error::invalid(format!("DeliveryPolicy: {detail}"))
}

impl HealthyRetryPolicy {
    /// Checks AWS's limits; `field` names the policy in the message.
    pub fn validate(&self, field: &str) -> Result<(), Error> {
        let e = |detail: String| Err(policy_error(format!("{field}.{detail}")));
        if self.min_delay_target < 1 || self.min_delay_target > self.max_delay_target {
            return e(format!(
                "minDelayTarget must be between 1 and maxDelayTarget ({}), not {}",
                self.max_delay_target, self.min_delay_target
            ));
        }
        if self.max_delay_target > MAX_DELAY_SECONDS {
            return e(format!(
                "maxDelayTarget must be at most {MAX_DELAY_SECONDS}, not {}",
                self.max_delay_target
            ));
        }
        if self.num_retries > MAX_RETRIES {
            return e(format!(
                "numRetries must be between 0 and {MAX_RETRIES}, not {}",
                self.num_retries
            ));
        }
        let phases = u64::from(self.num_no_delay_retries)
            + u64::from(self.num_min_delay_retries)
            + u64::from(self.num_max_delay_retries);
        if phases > u64::from(self.num_retries) {
            return e(format!(
                "numRetries ({}) must be at least numNoDelayRetries + numMinDelayRetries + \
                 numMaxDelayRetries ({phases})",
                self.num_retries
            ));
        }
        let total = self.total_delay_seconds();
        if total > u64::from(MAX_DELAY_SECONDS) {
            return e(format!(
                "the retries would take {total} seconds; the total may not exceed {MAX_DELAY_SECONDS}"
            ));
        }
        Ok(())
    }

    /// Retries of the backoff phase: what the other phases leave of `numRetries`.
    pub fn num_backoff_retries(&self) -> u32 {
        self.num_retries
            .saturating_sub(self.num_no_delay_retries)
            .saturating_sub(self.num_min_delay_retries)
            .saturating_sub(self.num_max_delay_retries)
    }

    /// Seconds to wait after a failed attempt before retry `retry` (1-based);
    /// `None` once the policy is exhausted (`retry` 0 or above `numRetries`).
    ///
    /// Retries `1..=numNoDelayRetries` are immediate; the next
    /// `numMinDelayRetries` wait `minDelayTarget`; the backoff phase's wait
    /// grows from `minDelayTarget` to `maxDelayTarget`; the last
    /// `numMaxDelayRetries` wait `maxDelayTarget`.
    pub fn retry_delay_seconds(&self, retry: u32) -> Option<u32> {
        if retry == 0 || retry > self.num_retries {
            return None;
        }
        let no_delay = self.num_no_delay_retries;
        let min_phase = no_delay.saturating_add(self.num_min_delay_retries);
        let backoff = self.num_backoff_retries();
        let backoff_phase = min_phase.saturating_add(backoff);
        Some(if retry <= no_delay {
            0
        } else if retry <= min_phase {
            self.min_delay_target
        } else if retry <= backoff_phase {
            self.backoff_function.delay(
                retry - min_phase,
                backoff,
                self.min_delay_target,
                self.max_delay_target,
            )
        } else {
            self.max_delay_target
        })
    }

    /// When retry `retry` is due after the attempt that failed at `failed_at`;
    /// `None` once the policy is exhausted.
    pub fn next_attempt_at(&self, failed_at: DateTime<Utc>, retry: u32) -> Option<DateTime<Utc>> {
        self.retry_delay_seconds(retry)
            .map(|s| failed_at + chrono::Duration::seconds(i64::from(s)))
    }

    /// Every retry's delay, in order.
    pub fn schedule(&self) -> Vec<u32> {
        (1..=self.num_retries)
            .filter_map(|k| self.retry_delay_seconds(k))
            .collect()
    }

    /// The sum of all delays.
    pub fn total_delay_seconds(&self) -> u64 {
        self.schedule().iter().map(|&s| u64::from(s)).sum()
    }
}

/// `throttlePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThrottlePolicy {
    /// Deliveries per second per subscription, at least 1.
    pub max_receives_per_second: u32,
}

/// `requestPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestPolicy {
    /// `Content-Type` of the POSTs.
    pub header_content_type: String,
}

fn check_throttle(t: &ThrottlePolicy, field: &str) -> Result<(), Error> {
    if t.max_receives_per_second < 1 {
        return Err(policy_error(format!(
            "{field}.maxReceivesPerSecond must be at least 1"
        )));
    }
    Ok(())
}

fn check_request(r: &RequestPolicy, field: &str) -> Result<(), Error> {
    let value = r.header_content_type.as_str();
    let (media, rest) = value.split_once(';').unwrap_or((value, ""));
    let charset_ok = rest.is_empty() || rest.trim().eq_ignore_ascii_case("charset=UTF-8");
    if !CONTENT_TYPES.contains(&media.trim()) || !charset_ok {
        return Err(policy_error(format!(
            "{field}.headerContentType must be text/plain, application/json or application/xml \
             (optionally with ; charset=UTF-8), not {value:?}"
        )));
    }
    Ok(())
}

/// A subscription's `DeliveryPolicy` attribute.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscriptionDeliveryPolicy {
    /// `healthyRetryPolicy`, completed with defaults.
    pub healthy_retry_policy: Option<HealthyRetryPolicy>,
    /// `throttlePolicy`.
    pub throttle_policy: Option<ThrottlePolicy>,
    /// `requestPolicy`.
    pub request_policy: Option<RequestPolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSubscriptionPolicy {
    healthy_retry_policy: Option<PartialRetryPolicy>,
    throttle_policy: Option<ThrottlePolicy>,
    request_policy: Option<RequestPolicy>,
    // Accepted so an EffectiveDeliveryPolicy can be set back as it was read;
    // Cairn has no sickly policy and no guaranteed delivery.
    sickly_retry_policy: Option<serde_json::Value>,
    guaranteed: Option<bool>,
}

impl SubscriptionDeliveryPolicy {
    /// Parses and checks the attribute's JSON.
    pub fn parse(json: &str) -> Result<Self, Error> {
        let raw: RawSubscriptionPolicy = serde_json::from_str(json).map_err(policy_error)?;
        if raw.sickly_retry_policy.is_some_and(|v| !v.is_null()) {
            return Err(policy_error("Cairn does not support sicklyRetryPolicy"));
        }
        if raw.guaranteed == Some(true) {
            return Err(policy_error("Cairn does not support guaranteed delivery"));
        }
        let healthy_retry_policy = raw
            .healthy_retry_policy
            .map(|p| p.complete("healthyRetryPolicy"))
            .transpose()?;
        if let Some(t) = &raw.throttle_policy {
            check_throttle(t, "throttlePolicy")?;
        }
        if let Some(r) = &raw.request_policy {
            check_request(r, "requestPolicy")?;
        }
        Ok(Self {
            healthy_retry_policy,
            throttle_policy: raw.throttle_policy,
            request_policy: raw.request_policy,
        })
    }
}

/// The `http` section of a topic's `DeliveryPolicy` attribute: the defaults
/// for its HTTP/S subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicHttpPolicy {
    /// `defaultHealthyRetryPolicy`, completed with defaults.
    pub default_healthy_retry_policy: Option<HealthyRetryPolicy>,
    /// `defaultThrottlePolicy`.
    pub default_throttle_policy: Option<ThrottlePolicy>,
    /// `defaultRequestPolicy`.
    pub default_request_policy: Option<RequestPolicy>,
    /// `disableSubscriptionOverrides`: the topic's policy wins over the subscriptions'.
    pub disable_subscription_overrides: bool,
}

/// A topic's `DeliveryPolicy` attribute.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicDeliveryPolicy {
    /// The `http` section, which covers `http` and `https` subscriptions.
    pub http: Option<TopicHttpPolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawTopicHttpPolicy {
    default_healthy_retry_policy: Option<PartialRetryPolicy>,
    default_throttle_policy: Option<ThrottlePolicy>,
    default_request_policy: Option<RequestPolicy>,
    disable_subscription_overrides: Option<bool>,
    // Present in what SNS reports; no meaning for HTTP/S delivery here.
    default_sickly_retry_policy: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopicPolicy {
    http: Option<RawTopicHttpPolicy>,
}

impl TopicDeliveryPolicy {
    /// Parses and checks the attribute's JSON.
    pub fn parse(json: &str) -> Result<Self, Error> {
        let raw: RawTopicPolicy = serde_json::from_str(json).map_err(policy_error)?;
        let http = match raw.http {
            None => None,
            Some(h) => {
                if h.default_sickly_retry_policy.is_some_and(|v| !v.is_null()) {
                    return Err(policy_error(
                        "Cairn does not support defaultSicklyRetryPolicy",
                    ));
                }
                if let Some(t) = &h.default_throttle_policy {
                    check_throttle(t, "http.defaultThrottlePolicy")?;
                }
                if let Some(r) = &h.default_request_policy {
                    check_request(r, "http.defaultRequestPolicy")?;
                }
                Some(TopicHttpPolicy {
                    default_healthy_retry_policy: h
                        .default_healthy_retry_policy
                        .map(|p| p.complete("http.defaultHealthyRetryPolicy"))
                        .transpose()?,
                    default_throttle_policy: h.default_throttle_policy,
                    default_request_policy: h.default_request_policy,
                    disable_subscription_overrides: h
                        .disable_subscription_overrides
                        .unwrap_or(false),
                })
            }
        };
        Ok(Self { http })
    }

    /// The topic's `EffectiveDeliveryPolicy` attribute: its `http` section
    /// completed with SNS's defaults, as GetTopicAttributes reports it (the
    /// key order and the `defaultRequestPolicy` are as SNS answers recalled,
    /// not documented).
    pub fn effective_json(&self) -> String {
        let http = self.http.clone().unwrap_or_default();
        // Built by hand to keep SNS's key order without serde_json's preserve_order.
        let retry = http.default_healthy_retry_policy.unwrap_or_default();
        let mut s = String::from("{\"http\":{\"defaultHealthyRetryPolicy\":");
        s.push_str(&serde_json::to_string(&retry).unwrap_or_default());
        s.push_str(",\"disableSubscriptionOverrides\":");
        s.push_str(if http.disable_subscription_overrides {
            "true"
        } else {
            "false"
        });
        if let Some(t) = &http.default_throttle_policy {
            s.push_str(",\"defaultThrottlePolicy\":");
            s.push_str(&serde_json::to_string(t).unwrap_or_default());
        }
        let request = http
            .default_request_policy
            .clone()
            .unwrap_or(RequestPolicy {
                header_content_type: DEFAULT_HEADER_CONTENT_TYPE.to_owned(),
            });
        s.push_str(",\"defaultRequestPolicy\":");
        s.push_str(&serde_json::to_string(&request).unwrap_or_default());
        s.push_str("}}");
        s
    }
}

/// The policy a subscription's deliveries follow.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EffectiveDeliveryPolicy {
    /// Retries.
    pub healthy_retry_policy: HealthyRetryPolicy,
    /// Rate limit, if any.
    pub throttle_policy: Option<ThrottlePolicy>,
    /// Request shape, if any.
    pub request_policy: Option<RequestPolicy>,
}

impl EffectiveDeliveryPolicy {
    /// Each part from the subscription's policy if it sets it, else from the
    /// topic's `http` section, else SNS's default; when the topic sets
    /// `disableSubscriptionOverrides`, the topic's parts win.
    pub fn resolve(
        topic: Option<&TopicDeliveryPolicy>,
        subscription: Option<&SubscriptionDeliveryPolicy>,
    ) -> Self {
        let http = topic.and_then(|t| t.http.as_ref());
        let empty = SubscriptionDeliveryPolicy::default();
        let sub = subscription.unwrap_or(&empty);
        let topic_first = http.is_some_and(|h| h.disable_subscription_overrides);
        fn pick<T: Clone>(first: &Option<T>, second: &Option<T>) -> Option<T> {
            first.clone().or_else(|| second.clone())
        }
        let none = TopicHttpPolicy::default();
        let h = http.unwrap_or(&none);
        let (retry, throttle, request) = if topic_first {
            (
                pick(&h.default_healthy_retry_policy, &sub.healthy_retry_policy),
                pick(&h.default_throttle_policy, &sub.throttle_policy),
                pick(&h.default_request_policy, &sub.request_policy),
            )
        } else {
            (
                pick(&sub.healthy_retry_policy, &h.default_healthy_retry_policy),
                pick(&sub.throttle_policy, &h.default_throttle_policy),
                pick(&sub.request_policy, &h.default_request_policy),
            )
        };
        Self {
            healthy_retry_policy: retry.unwrap_or_default(),
            throttle_policy: throttle,
            request_policy: request,
        }
    }

    /// The `Content-Type` to POST with.
    pub fn content_type(&self) -> &str {
        self.request_policy
            .as_ref()
            .map_or(DEFAULT_HEADER_CONTENT_TYPE, |r| {
                r.header_content_type.as_str()
            })
    }

    /// The subscription's `EffectiveDeliveryPolicy` attribute, as
    /// GetSubscriptionAttributes reports it:
    /// `{"healthyRetryPolicy":{…},"sicklyRetryPolicy":null,"throttlePolicy":null,"guaranteed":false}`,
    /// with `requestPolicy` after `throttlePolicy` when one is set.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\"healthyRetryPolicy\":");
        s.push_str(&serde_json::to_string(&self.healthy_retry_policy).unwrap_or_default());
        s.push_str(",\"sicklyRetryPolicy\":null,\"throttlePolicy\":");
        match &self.throttle_policy {
            Some(t) => s.push_str(&serde_json::to_string(t).unwrap_or_default()),
            None => s.push_str("null"),
        }
        if let Some(r) = &self.request_policy {
            s.push_str(",\"requestPolicy\":");
            s.push_str(&serde_json::to_string(r).unwrap_or_default());
        }
        s.push_str(",\"guaranteed\":false}");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_JSON: &str = r#"{"healthyRetryPolicy":{"minDelayTarget":20,"maxDelayTarget":20,"numRetries":3,"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,"backoffFunction":"linear"},"sicklyRetryPolicy":null,"throttlePolicy":null,"guaranteed":false}"#;

    fn retry(json: &str) -> HealthyRetryPolicy {
        SubscriptionDeliveryPolicy::parse(&format!(r#"{{"healthyRetryPolicy":{json}}}"#))
            .unwrap()
            .healthy_retry_policy
            .unwrap()
    }

    fn refused(json: &str) -> String {
        let e = SubscriptionDeliveryPolicy::parse(json).unwrap_err();
        assert_eq!(e.aws_code(), Some("InvalidParameter"));
        let m = e.to_string();
        assert!(m.starts_with("Invalid parameter: DeliveryPolicy: "), "{m}");
        m
    }

    #[test]
    fn test_default_policy_and_schedule() {
        let p = EffectiveDeliveryPolicy::default();
        assert_eq!(p.to_json(), DEFAULT_JSON);
        assert_eq!(EffectiveDeliveryPolicy::resolve(None, None), p);
        let r = p.healthy_retry_policy;
        assert_eq!(r.schedule(), vec![20, 20, 20]);
        assert_eq!(r.retry_delay_seconds(0), None);
        assert_eq!(r.retry_delay_seconds(4), None);
        assert_eq!(p.content_type(), "text/plain; charset=UTF-8");
        let t0 = DateTime::parse_from_rfc3339("2026-12-02T13:40:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            r.next_attempt_at(t0, 1).unwrap().to_rfc3339(),
            "2026-12-02T13:40:20+00:00"
        );
        assert_eq!(r.next_attempt_at(t0, 4), None);
    }

    #[test]
    fn test_attempt_outcomes() {
        for delivered in [200, 204, 299, 301, 400, 403, 404, 429, 499] {
            assert_eq!(
                attempt_outcome(Some(delivered)),
                AttemptOutcome::Delivered,
                "{delivered}"
            );
        }
        for retry in [100, 199, 500, 502, 503, 504, 599] {
            assert_eq!(
                attempt_outcome(Some(retry)),
                AttemptOutcome::Retry,
                "{retry}"
            );
        }
        assert_eq!(attempt_outcome(None), AttemptOutcome::Retry);
    }

    #[test]
    fn test_phases() {
        let p = retry(
            r#"{"minDelayTarget":1,"maxDelayTarget":60,"numRetries":12,"numNoDelayRetries":2,
                "numMinDelayRetries":3,"numMaxDelayRetries":2,"backoffFunction":"linear"}"#,
        );
        assert_eq!(p.num_backoff_retries(), 5);
        // 2 immediate, 3 at min, 5 backoff from 1 to 60, 2 at max.
        assert_eq!(p.schedule(), vec![0, 0, 1, 1, 1, 1, 16, 31, 45, 60, 60, 60]);
    }

    #[test]
    fn test_backoff_functions() {
        let with = |f: &str| {
            retry(&format!(
                r#"{{"minDelayTarget":1,"maxDelayTarget":100,"numRetries":6,"backoffFunction":"{f}"}}"#
            ))
            .schedule()
        };
        assert_eq!(with("linear"), vec![1, 21, 41, 60, 80, 100]);
        assert_eq!(with("arithmetic"), vec![1, 8, 21, 41, 67, 100]);
        assert_eq!(with("geometric"), vec![1, 3, 6, 16, 40, 100]);
        assert_eq!(with("exponential"), vec![1, 4, 11, 23, 49, 100]);
        // Upper case, as the AWS CDK writes it.
        assert_eq!(with("EXPONENTIAL"), with("exponential"));
        for f in ["linear", "arithmetic", "geometric", "exponential"] {
            let s = with(f);
            assert!(s.windows(2).all(|w| w[0] <= w[1]), "{f}: {s:?}");
        }
    }

    #[test]
    fn test_unvalidated_policies_do_not_panic() {
        let odd = HealthyRetryPolicy {
            min_delay_target: 50,
            max_delay_target: 10,
            num_retries: 4,
            num_no_delay_retries: 3,
            num_min_delay_retries: 3,
            backoff_function: BackoffFunction::Geometric,
            ..HealthyRetryPolicy::default()
        };
        assert!(odd.validate("p").is_err());
        assert_eq!(odd.schedule(), vec![0, 0, 0, 50]);
        let zero = HealthyRetryPolicy {
            min_delay_target: 0,
            max_delay_target: 10,
            num_retries: 3,
            backoff_function: BackoffFunction::Geometric,
            ..HealthyRetryPolicy::default()
        };
        assert_eq!(zero.schedule().len(), 3);
    }

    #[test]
    fn test_partial_policy_takes_defaults() {
        assert_eq!(
            retry(r#"{"numRetries":5}"#).schedule(),
            vec![20, 20, 20, 20, 20]
        );
        let p = retry(r#"{"minDelayTarget":30}"#);
        assert_eq!((p.min_delay_target, p.max_delay_target), (30, 30));
        let p = retry(r#"{"maxDelayTarget":5}"#);
        assert_eq!((p.min_delay_target, p.max_delay_target), (5, 5));
        assert_eq!(retry(r#"{"numRetries":0}"#).schedule(), Vec::<u32>::new());
    }

    #[test]
    fn test_limits() {
        assert!(refused(r#"{"healthyRetryPolicy":{"numRetries":101}}"#).contains("numRetries"));
        assert!(
            refused(r#"{"healthyRetryPolicy":{"minDelayTarget":0}}"#).contains("minDelayTarget")
        );
        assert!(
            refused(r#"{"healthyRetryPolicy":{"minDelayTarget":30,"maxDelayTarget":10}}"#)
                .contains("minDelayTarget")
        );
        assert!(
            refused(r#"{"healthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":3601,"numRetries":1}}"#)
                .contains("maxDelayTarget")
        );
        assert!(
            refused(r#"{"healthyRetryPolicy":{"numRetries":2,"numNoDelayRetries":2,"numMinDelayRetries":1}}"#)
                .contains("at least")
        );
        assert!(
            refused(r#"{"healthyRetryPolicy":{"minDelayTarget":3600,"maxDelayTarget":3600,"numRetries":2}}"#)
                .contains("total")
        );
        refused(r#"{"healthyRetryPolicy":{"numRetries":-1}}"#);
        refused(r#"{"healthyRetryPolicy":{"numRetries":2.5}}"#);
        refused(r#"{"healthyRetryPolicy":{"backoffFunction":"cubic"}}"#);
        refused(r#"{"healthyRetryPolicy":{"numRetriez":2}}"#);
        refused(r#"{"throttlePolicy":{"maxReceivesPerSecond":0}}"#);
        refused(r#"{"requestPolicy":{"headerContentType":"text/html"}}"#);
        refused(r#"{"guaranteed":true}"#);
        refused(r#"{"sicklyRetryPolicy":{"numRetries":1}}"#);
        refused("not json");
        // The extremes AWS allows.
        retry(
            r#"{"minDelayTarget":1,"maxDelayTarget":3600,"numRetries":100,"numNoDelayRetries":99,"numMaxDelayRetries":1}"#,
        );
        retry(r#"{"minDelayTarget":36,"maxDelayTarget":36,"numRetries":100}"#);
        // What GetSubscriptionAttributes reported can be set back.
        let back = SubscriptionDeliveryPolicy::parse(DEFAULT_JSON).unwrap();
        assert_eq!(
            back.healthy_retry_policy,
            Some(HealthyRetryPolicy::default())
        );
        let r = SubscriptionDeliveryPolicy::parse(
            r#"{"requestPolicy":{"headerContentType":"application/json; charset=UTF-8"}}"#,
        )
        .unwrap();
        assert_eq!(
            EffectiveDeliveryPolicy::resolve(None, Some(&r)).content_type(),
            "application/json; charset=UTF-8"
        );
    }

    #[test]
    fn test_topic_policy_and_overrides() {
        let topic = TopicDeliveryPolicy::parse(
            r#"{"http":{"defaultHealthyRetryPolicy":{"numRetries":1,"minDelayTarget":5,"maxDelayTarget":5},
                "defaultThrottlePolicy":{"maxReceivesPerSecond":10},"disableSubscriptionOverrides":false}}"#,
        )
        .unwrap();
        let sub = SubscriptionDeliveryPolicy::parse(r#"{"healthyRetryPolicy":{"numRetries":2}}"#)
            .unwrap();
        let eff = EffectiveDeliveryPolicy::resolve(Some(&topic), Some(&sub));
        assert_eq!(eff.healthy_retry_policy.schedule(), vec![20, 20]);
        assert_eq!(
            eff.throttle_policy,
            Some(ThrottlePolicy {
                max_receives_per_second: 10
            })
        );
        assert_eq!(
            eff.to_json(),
            r#"{"healthyRetryPolicy":{"minDelayTarget":20,"maxDelayTarget":20,"numRetries":2,"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,"backoffFunction":"linear"},"sicklyRetryPolicy":null,"throttlePolicy":{"maxReceivesPerSecond":10},"guaranteed":false}"#
        );
        let only_topic = EffectiveDeliveryPolicy::resolve(Some(&topic), None);
        assert_eq!(only_topic.healthy_retry_policy.schedule(), vec![5]);

        let mut locked = topic.clone();
        if let Some(h) = locked.http.as_mut() {
            h.disable_subscription_overrides = true;
        }
        let eff = EffectiveDeliveryPolicy::resolve(Some(&locked), Some(&sub));
        assert_eq!(eff.healthy_retry_policy.schedule(), vec![5]);

        assert_eq!(
            TopicDeliveryPolicy::default().effective_json(),
            r#"{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":20,"maxDelayTarget":20,"numRetries":3,"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,"backoffFunction":"linear"},"disableSubscriptionOverrides":false,"defaultRequestPolicy":{"headerContentType":"text/plain; charset=UTF-8"}}}"#
        );
        assert!(
            topic
                .effective_json()
                .contains(r#""defaultThrottlePolicy":{"maxReceivesPerSecond":10}"#)
        );
        let e = TopicDeliveryPolicy::parse(
            r#"{"http":{"defaultHealthyRetryPolicy":{"numRetries":500}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("http.defaultHealthyRetryPolicy.numRetries"),
            "{e}"
        );
        assert!(TopicDeliveryPolicy::parse(r#"{"sqs":{}}"#).is_err());
    }
}
