//! A trail's configuration: what CreateTrail, UpdateTrail and PutEventSelectors
//! set, in CloudTrail's own terms.
//!
//! The same type is carried by the pipeline's WAL control records (which are
//! the source of truth for trail changes) and stored by the metastore (which
//! derives its trail rows from them), so neither depends on the other. Its
//! serialised form is a persisted format: field names and types only change
//! with a new envelope or document version (see the golden files of
//! `cairn-pipeline` and `cairn-meta`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A resource tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// The key.
    #[serde(rename = "Key")]
    pub key: String,
    /// The value.
    #[serde(rename = "Value", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A trail's configuration.
///
/// Identifiers stay strings here: they were validated (as [`crate::TrailName`],
/// [`crate::TrailArn`], [`crate::AccountId`], [`crate::Region`]) when the trail
/// was created, and every reader only compares or prints them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrailConfig {
    /// The trail name.
    pub name: String,
    /// The trail ARN.
    pub arn: String,
    /// The owning account.
    pub account_id: String,
    /// The home region.
    pub home_region: String,
    /// Destination bucket.
    pub s3_bucket_name: String,
    /// Optional key prefix.
    pub s3_key_prefix: Option<String>,
    /// Optional SNS topic name.
    pub sns_topic_name: Option<String>,
    /// Whether global service events are delivered.
    pub include_global_service_events: bool,
    /// Whether the trail covers every region.
    pub is_multi_region_trail: bool,
    /// Whether digest files are written.
    pub log_file_validation_enabled: bool,
    /// CloudWatch Logs log group ARN.
    pub cloud_watch_logs_log_group_arn: Option<String>,
    /// CloudWatch Logs role ARN.
    pub cloud_watch_logs_role_arn: Option<String>,
    /// KMS key.
    pub kms_key_id: Option<String>,
    /// Whether the trail logs every account of the organization.
    pub is_organization_trail: bool,
    /// Event selectors as the API accepted them: `{"EventSelectors": [...]}` or
    /// `{"AdvancedEventSelectors": [...]}` (`cairn_select::selectors_to_stored`
    /// writes it, `cairn_select::selectors_from_stored` reads it).
    pub selectors: serde_json::Value,
    /// Whether selectors were ever put (the Trail shape's HasCustomEventSelectors).
    pub has_custom_event_selectors: bool,
    /// Insight selectors, if any.
    #[serde(default)]
    pub insight_selectors: Option<serde_json::Value>,
    /// Tags.
    pub tags: Vec<Tag>,
    /// When the trail was created.
    pub created_at: DateTime<Utc>,
}

impl TrailConfig {
    /// A trail as CreateTrail makes it before its optional settings apply:
    /// single-region, global service events included, no log file
    /// validation, key prefix, topic, log group, KMS key, insight selectors or
    /// tags, not an organization trail.
    pub fn new(
        name: impl Into<String>,
        arn: impl Into<String>,
        account_id: impl Into<String>,
        home_region: impl Into<String>,
        s3_bucket_name: impl Into<String>,
        selectors: serde_json::Value,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            name: name.into(),
            arn: arn.into(),
            account_id: account_id.into(),
            home_region: home_region.into(),
            s3_bucket_name: s3_bucket_name.into(),
            s3_key_prefix: None,
            sns_topic_name: None,
            include_global_service_events: true,
            is_multi_region_trail: false,
            log_file_validation_enabled: false,
            cloud_watch_logs_log_group_arn: None,
            cloud_watch_logs_role_arn: None,
            kms_key_id: None,
            is_organization_trail: false,
            selectors,
            has_custom_event_selectors: false,
            insight_selectors: None,
            tags: Vec::new(),
            created_at,
        }
    }
}
