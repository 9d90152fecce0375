//! CloudTrail's typed requests and results, with botocore's member names.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use cairn_meta::{Tag, TrailConfig, TrailStatus};

// ---------------------------------------------------------------------------
// Typed requests

/// CreateTrail's input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTrailRequest {
    /// The trail's name.
    pub name: Option<String>,
    /// The settings shared with UpdateTrail.
    #[serde(flatten)]
    pub settings: TrailSettings,
    /// Tags.
    pub tags_list: Option<Vec<Tag>>,
}

/// UpdateTrail's input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateTrailRequest {
    /// The trail's name or ARN.
    pub name: Option<String>,
    /// The settings to change.
    #[serde(flatten)]
    pub settings: TrailSettings,
}

/// The trail settings CreateTrail and UpdateTrail share (absent: unchanged).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrailSettings {
    /// `S3BucketName`.
    pub s3_bucket_name: Option<String>,
    /// `S3KeyPrefix`.
    pub s3_key_prefix: Option<String>,
    /// `SnsTopicName`.
    pub sns_topic_name: Option<String>,
    /// `IncludeGlobalServiceEvents`.
    pub include_global_service_events: Option<bool>,
    /// `IsMultiRegionTrail`.
    pub is_multi_region_trail: Option<bool>,
    /// `EnableLogFileValidation`.
    pub enable_log_file_validation: Option<bool>,
    /// `CloudWatchLogsLogGroupArn`.
    pub cloud_watch_logs_log_group_arn: Option<String>,
    /// `CloudWatchLogsRoleArn`.
    pub cloud_watch_logs_role_arn: Option<String>,
    /// `KmsKeyId`.
    pub kms_key_id: Option<String>,
    /// `IsOrganizationTrail`.
    pub is_organization_trail: Option<bool>,
}

/// The input of operations naming a trail by `Name`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NameRequest {
    /// The trail's name or ARN.
    pub name: Option<String>,
}

/// The input of operations naming a trail by `TrailName`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrailNameRequest {
    /// The trail's name or ARN.
    pub trail_name: Option<String>,
    /// An event data store (Lake), for the operations that take one.
    pub event_data_store: Option<String>,
}

/// DescribeTrails' input (its members are camelCase on the wire).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeTrailsRequest {
    /// Names or ARNs; empty: every trail of the region.
    pub trail_name_list: Option<Vec<String>>,
    /// Whether shadow trails are included (default true).
    pub include_shadow_trails: Option<bool>,
}

/// ListTrails' input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTrailsRequest {
    /// Pagination (every trail fits one page).
    pub next_token: Option<String>,
}

/// PutEventSelectors' input (selectors are parsed by `cairn_select`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutEventSelectorsRequest {
    /// The trail's name or ARN.
    pub trail_name: Option<String>,
    /// Basic selectors.
    pub event_selectors: Option<Value>,
    /// Advanced selectors.
    pub advanced_event_selectors: Option<Value>,
}

/// One insight selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InsightSelector {
    /// `ApiCallRateInsight` or `ApiErrorRateInsight`.
    pub insight_type: Option<String>,
    /// `Management` and/or `Data` (absent: management events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_categories: Option<Vec<String>>,
}

/// PutInsightSelectors' input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutInsightSelectorsRequest {
    /// The trail's name or ARN.
    pub trail_name: Option<String>,
    /// The selectors (empty: Insights off).
    pub insight_selectors: Option<Vec<InsightSelector>>,
    /// An event data store (Lake).
    pub event_data_store: Option<String>,
    /// The Insights destination (Lake).
    pub insights_destination: Option<String>,
}

/// AddTags' and RemoveTags' input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagsRequest {
    /// The trail's ARN.
    pub resource_id: Option<String>,
    /// The tags.
    pub tags_list: Option<Vec<Tag>>,
}

/// ListTags' input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsRequest {
    /// Trail ARNs.
    pub resource_id_list: Option<Vec<String>>,
    /// Pagination (every answer fits one page).
    pub next_token: Option<String>,
}

/// ListPublicKeys' input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPublicKeysRequest {
    /// Start of the range (default now).
    #[serde(default, deserialize_with = "timestamp")]
    pub start_time: Option<DateTime<Utc>>,
    /// End of the range (default now).
    #[serde(default, deserialize_with = "timestamp")]
    pub end_time: Option<DateTime<Utc>>,
    /// Pagination (every answer fits one page).
    pub next_token: Option<String>,
}

/// A timestamp member: epoch seconds (what botocore sends) or an ISO 8601 string.
pub(super) fn timestamp_member<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    timestamp(d)
}

/// A timestamp member: epoch seconds (what botocore sends) or an ISO 8601 string.
fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let seconds = n
                .as_f64()
                .filter(|s| s.is_finite() && s.abs() < 1e13)
                .ok_or_else(|| D::Error::custom("timestamp out of range"))?;
            DateTime::from_timestamp_millis((seconds * 1000.0).round() as i64)
                .map(Some)
                .ok_or_else(|| D::Error::custom("timestamp out of range"))
        }
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| D::Error::custom("timestamp is not ISO 8601")),
        Some(_) => Err(D::Error::custom("expected a timestamp")),
    }
}

// ---------------------------------------------------------------------------
// Typed results

/// A timestamp as CloudTrail sends it: epoch seconds with milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(pub DateTime<Utc>);

impl Serialize for Epoch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0.timestamp_millis() as f64 / 1000.0)
    }
}

/// The `Trail` shape (GetTrail, DescribeTrails).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Trail {
    /// `Name`.
    pub name: String,
    /// `S3BucketName`.
    pub s3_bucket_name: String,
    /// `S3KeyPrefix`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_key_prefix: Option<String>,
    /// `SnsTopicName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sns_topic_name: Option<String>,
    /// `SnsTopicARN`.
    #[serde(rename = "SnsTopicARN", skip_serializing_if = "Option::is_none")]
    pub sns_topic_arn: Option<String>,
    /// `IncludeGlobalServiceEvents`.
    pub include_global_service_events: bool,
    /// `IsMultiRegionTrail`.
    pub is_multi_region_trail: bool,
    /// `HomeRegion`.
    pub home_region: String,
    /// `TrailARN`.
    #[serde(rename = "TrailARN")]
    pub trail_arn: String,
    /// `LogFileValidationEnabled`.
    pub log_file_validation_enabled: bool,
    /// `CloudWatchLogsLogGroupArn`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    /// `CloudWatchLogsRoleArn`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_role_arn: Option<String>,
    /// `KmsKeyId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// `HasCustomEventSelectors`.
    pub has_custom_event_selectors: bool,
    /// `HasInsightSelectors`.
    pub has_insight_selectors: bool,
    /// `IsOrganizationTrail`.
    pub is_organization_trail: bool,
}

impl Trail {
    pub(super) fn of(config: &TrailConfig) -> Self {
        Self {
            name: config.name.clone(),
            s3_bucket_name: config.s3_bucket_name.clone(),
            s3_key_prefix: config.s3_key_prefix.clone(),
            sns_topic_name: config.sns_topic_name.clone(),
            sns_topic_arn: config
                .sns_topic_name
                .as_deref()
                .map(|t| sns_topic_arn(config, t)),
            include_global_service_events: config.include_global_service_events,
            is_multi_region_trail: config.is_multi_region_trail,
            home_region: config.home_region.clone(),
            trail_arn: config.arn.clone(),
            log_file_validation_enabled: config.log_file_validation_enabled,
            cloud_watch_logs_log_group_arn: config.cloud_watch_logs_log_group_arn.clone(),
            cloud_watch_logs_role_arn: config.cloud_watch_logs_role_arn.clone(),
            kms_key_id: config.kms_key_id.clone(),
            has_custom_event_selectors: config.has_custom_event_selectors,
            has_insight_selectors: has_insight_selectors(config),
            is_organization_trail: config.is_organization_trail,
        }
    }
}

/// The ARN of a trail's SNS topic (`SnsTopicName` may be a name or an ARN):
/// a name is a topic of the trail's account in its home region.
pub fn sns_topic_arn(config: &TrailConfig, topic: &str) -> String {
    if topic.starts_with("arn:") {
        topic.to_owned()
    } else {
        format!(
            "arn:aws:sns:{}:{}:{topic}",
            config.home_region, config.account_id
        )
    }
}

fn has_insight_selectors(config: &TrailConfig) -> bool {
    config
        .insight_selectors
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// CreateTrail's and UpdateTrail's answer (the Trail shape without
/// `HomeRegion`, `HasCustomEventSelectors` and `HasInsightSelectors`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrailSettingsResponse {
    /// `Name`.
    pub name: String,
    /// `S3BucketName`.
    pub s3_bucket_name: String,
    /// `S3KeyPrefix`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_key_prefix: Option<String>,
    /// `SnsTopicName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sns_topic_name: Option<String>,
    /// `SnsTopicARN`.
    #[serde(rename = "SnsTopicARN", skip_serializing_if = "Option::is_none")]
    pub sns_topic_arn: Option<String>,
    /// `IncludeGlobalServiceEvents`.
    pub include_global_service_events: bool,
    /// `IsMultiRegionTrail`.
    pub is_multi_region_trail: bool,
    /// `TrailARN`.
    #[serde(rename = "TrailARN")]
    pub trail_arn: String,
    /// `LogFileValidationEnabled`.
    pub log_file_validation_enabled: bool,
    /// `CloudWatchLogsLogGroupArn`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    /// `CloudWatchLogsRoleArn`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_role_arn: Option<String>,
    /// `KmsKeyId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// `IsOrganizationTrail`.
    pub is_organization_trail: bool,
}

impl TrailSettingsResponse {
    pub(super) fn of(config: &TrailConfig) -> Self {
        let t = Trail::of(config);
        Self {
            name: t.name,
            s3_bucket_name: t.s3_bucket_name,
            s3_key_prefix: t.s3_key_prefix,
            sns_topic_name: t.sns_topic_name,
            sns_topic_arn: t.sns_topic_arn,
            include_global_service_events: t.include_global_service_events,
            is_multi_region_trail: t.is_multi_region_trail,
            trail_arn: t.trail_arn,
            log_file_validation_enabled: t.log_file_validation_enabled,
            cloud_watch_logs_log_group_arn: t.cloud_watch_logs_log_group_arn,
            cloud_watch_logs_role_arn: t.cloud_watch_logs_role_arn,
            kms_key_id: t.kms_key_id,
            is_organization_trail: t.is_organization_trail,
        }
    }
}

/// GetTrail's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetTrailResponse {
    /// The trail.
    pub trail: Trail,
}

/// DescribeTrails' answer.
#[derive(Debug, Serialize)]
pub struct DescribeTrailsResponse {
    /// The trails.
    #[serde(rename = "trailList")]
    pub trail_list: Vec<Trail>,
}

/// One ListTrails entry.
#[derive(Debug, Serialize)]
pub struct TrailInfo {
    /// `TrailARN`.
    #[serde(rename = "TrailARN")]
    pub trail_arn: String,
    /// `Name`.
    #[serde(rename = "Name")]
    pub name: String,
    /// `HomeRegion`.
    #[serde(rename = "HomeRegion")]
    pub home_region: String,
}

/// ListTrails' answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTrailsResponse {
    /// The trails.
    pub trails: Vec<TrailInfo>,
}

/// An answer without members.
#[derive(Debug, Serialize)]
pub struct Empty {}

/// GetTrailStatus' answer: exactly the members CloudTrail sends. Timestamps
/// appear once something happened; the six string-valued members are always
/// present, empty until something happened.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetTrailStatusResponse {
    /// `IsLogging`.
    pub is_logging: bool,
    /// `LatestDeliveryError`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_delivery_error: Option<String>,
    /// `LatestDeliveryTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_delivery_time: Option<Epoch>,
    /// `StartLoggingTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_logging_time: Option<Epoch>,
    /// `StopLoggingTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_logging_time: Option<Epoch>,
    /// `LatestDigestDeliveryTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_digest_delivery_time: Option<Epoch>,
    /// `LatestDigestDeliveryError`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_digest_delivery_error: Option<String>,
    /// `LatestCloudWatchLogsDeliveryTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_cloud_watch_logs_delivery_time: Option<Epoch>,
    /// `LatestCloudWatchLogsDeliveryError`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_cloud_watch_logs_delivery_error: Option<String>,
    /// `LatestDeliveryAttemptTime`.
    pub latest_delivery_attempt_time: String,
    /// `LatestNotificationTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_notification_time: Option<Epoch>,
    /// `LatestNotificationError`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_notification_error: Option<String>,
    /// `LatestNotificationAttemptTime`.
    pub latest_notification_attempt_time: String,
    /// `LatestNotificationAttemptSucceeded`.
    pub latest_notification_attempt_succeeded: String,
    /// `LatestDeliveryAttemptSucceeded`.
    pub latest_delivery_attempt_succeeded: String,
    /// `TimeLoggingStarted`.
    pub time_logging_started: String,
    /// `TimeLoggingStopped`.
    pub time_logging_stopped: String,
}

/// The string form of GetTrailStatus' `*Time*` string members: `2016-01-28T23:02:24Z`, or empty.
fn status_string(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

impl GetTrailStatusResponse {
    /// The answer for a stored status.
    pub fn of(s: &TrailStatus) -> Self {
        Self {
            is_logging: s.is_logging,
            latest_delivery_error: s.latest_delivery_error.clone(),
            latest_delivery_time: s.latest_delivery_time.map(Epoch),
            start_logging_time: s.start_logging_time.map(Epoch),
            stop_logging_time: s.stop_logging_time.map(Epoch),
            latest_digest_delivery_time: s.latest_digest_delivery_time.map(Epoch),
            latest_digest_delivery_error: s.latest_digest_delivery_error.clone(),
            latest_cloud_watch_logs_delivery_time: s
                .latest_cloud_watch_logs_delivery_time
                .map(Epoch),
            latest_cloud_watch_logs_delivery_error: s
                .latest_cloud_watch_logs_delivery_error
                .clone(),
            latest_delivery_attempt_time: status_string(s.latest_delivery_attempt_time),
            latest_notification_time: s.latest_notification_time.map(Epoch),
            latest_notification_error: s.latest_notification_error.clone(),
            latest_notification_attempt_time: status_string(s.latest_notification_attempt_time),
            latest_notification_attempt_succeeded: status_string(
                s.latest_notification_attempt_succeeded,
            ),
            latest_delivery_attempt_succeeded: status_string(s.latest_delivery_attempt_succeeded),
            time_logging_started: status_string(s.start_logging_time),
            time_logging_stopped: status_string(s.stop_logging_time),
        }
    }
}

/// PutEventSelectors' and GetEventSelectors' answer: the ARN and the stored
/// selectors (`EventSelectors` or `AdvancedEventSelectors`).
#[derive(Debug, Serialize)]
pub struct EventSelectorsResponse {
    /// `TrailARN`.
    #[serde(rename = "TrailARN")]
    pub trail_arn: String,
    /// The stored selectors' members.
    #[serde(flatten)]
    pub selectors: serde_json::Map<String, Value>,
}

/// PutInsightSelectors' and GetInsightSelectors' answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InsightSelectorsResponse {
    /// `TrailARN`.
    #[serde(rename = "TrailARN")]
    pub trail_arn: String,
    /// `InsightSelectors`.
    pub insight_selectors: Vec<InsightSelector>,
}

/// One ListTags entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceTag {
    /// The trail's ARN.
    pub resource_id: String,
    /// Its tags.
    pub tags_list: Vec<Tag>,
}

/// ListTags' answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsResponse {
    /// Tags per trail.
    pub resource_tag_list: Vec<ResourceTag>,
}

/// One ListPublicKeys entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublicKey {
    /// DER, base64 on the wire.
    pub value: String,
    /// `ValidityStartTime`.
    pub validity_start_time: Epoch,
    /// `ValidityEndTime`.
    pub validity_end_time: Epoch,
    /// `Fingerprint`.
    pub fingerprint: String,
}

/// ListPublicKeys' answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPublicKeysResponse {
    /// The keys.
    pub public_key_list: Vec<PublicKey>,
}
