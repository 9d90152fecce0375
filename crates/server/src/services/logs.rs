//! CloudWatch Logs (JSON 1.1, `Logs_20140328`): log groups, log streams,
//! log events, metric filters, TestMetricFilter, retention and tags.
//!
//! Typed requests in, typed results out; the store is
//! [`cairn_monitor::Monitor`], called on the blocking pool. botocore checks
//! only required members and types, so every length, pattern and range rule
//! of the model is enforced here with CloudWatch Logs' own message form
//! (`1 validation error detected: Value '...' at '...' failed to satisfy
//! constraint: ...`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use cairn_filter::{FilterPattern, LogEvent};
use cairn_monitor::{
    GroupKey, LogGroup, LogStream, MetricFilter, MetricTransformation, Monitor, NewLogEvent,
    StreamOrder,
};

use super::blocking;
use crate::error::AwsError;
use crate::state::{AppState, RequestContext};

/// Retention periods CloudWatch Logs accepts, in days.
pub const RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// The largest PutLogEvents batch: messages in UTF-8 plus 26 bytes an event.
const MAX_BATCH_BYTES: usize = 1_048_576;
/// Bytes counted for each event on top of its message.
const EVENT_OVERHEAD_BYTES: usize = 26;
/// The largest event message.
const MAX_EVENT_BYTES: usize = 1_048_576 - EVENT_OVERHEAD_BYTES;
/// How far in the future an event may be (2 hours).
const MAX_FUTURE_MS: i64 = 2 * 3_600_000;
/// How far in the past an event may be (14 days).
const MAX_PAST_MS: i64 = 14 * 86_400_000;
/// How long one batch may span (24 hours).
const MAX_BATCH_SPAN_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidParameterException", message)
}

fn validation(member: &str, value: &str, constraint: &str) -> AwsError {
    invalid(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

fn check_length(member: &str, value: &str, min: usize, max: usize) -> Result<(), AwsError> {
    let len = value.chars().count();
    if len < min {
        return Err(validation(
            member,
            value,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if len > max {
        return Err(validation(
            member,
            value,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// `logGroupName`: 1–512 of `[\.\-_/#A-Za-z0-9]`.
fn check_group_name(name: &str) -> Result<(), AwsError> {
    check_length("logGroupName", name, 1, 512)?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#'))
    {
        return Err(validation(
            "logGroupName",
            name,
            "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+",
        ));
    }
    Ok(())
}

/// Stream and filter names: 1–512 characters, no `:` or `*`.
fn check_name(member: &str, name: &str) -> Result<(), AwsError> {
    check_length(member, name, 1, 512)?;
    if name.contains([':', '*']) {
        return Err(validation(
            member,
            name,
            "Member must satisfy regular expression pattern: [^:*]*",
        ));
    }
    Ok(())
}

fn check_limit(limit: Option<i64>, max: i64) -> Result<usize, AwsError> {
    match limit {
        None => Ok(max as usize),
        Some(n) if (1..=max).contains(&n) => Ok(n as usize),
        Some(n) => Err(validation(
            "limit",
            &n.to_string(),
            &format!(
                "Member must have value {} {}",
                if n < 1 {
                    "greater than or equal to"
                } else {
                    "less than or equal to"
                },
                if n < 1 { 1 } else { max }
            ),
        )),
    }
}

fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
    if tags.len() > 50 {
        return Err(validation(
            "tags",
            &format!("{tags:?}"),
            "Member must have length less than or equal to 50",
        ));
    }
    for (k, v) in tags {
        check_length("tags.key", k, 1, 128)?;
        check_length("tags.value", v, 0, 256)?;
        if k.starts_with("aws:") {
            return Err(invalid("Tag keys starting with 'aws:' are reserved."));
        }
    }
    Ok(())
}

fn group_key(ctx: &RequestContext, name: &str) -> GroupKey {
    GroupKey::new(&ctx.account_id, &ctx.region, name)
}

/// The log group a request names by `logGroupName` or `logGroupIdentifier`
/// (a name or an ARN, with or without `:*`).
fn named_group(
    ctx: &RequestContext,
    name: Option<&str>,
    identifier: Option<&str>,
) -> Result<GroupKey, AwsError> {
    match (name, identifier) {
        (Some(_), Some(_)) => Err(invalid(
            "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
        )),
        (Some(name), None) => {
            check_group_name(name)?;
            Ok(group_key(ctx, name))
        }
        (None, Some(id)) => match GroupKey::from_arn(id) {
            Some(arn) if arn.account == ctx.account_id && arn.region == ctx.region => {
                Ok(group_key(ctx, &arn.name))
            }
            Some(_) => Err(AwsError::client(
                "ResourceNotFoundException",
                "The specified log group does not exist.",
            )),
            None => {
                check_group_name(id)?;
                Ok(group_key(ctx, id))
            }
        },
        (None, None) => Err(invalid(
            "Should provide either name or ARN of the log group.",
        )),
    }
}

async fn with_monitor<T, F>(state: &AppState, work: F) -> Result<T, AwsError>
where
    F: FnOnce(&Monitor) -> Result<T, cairn_monitor::Error> + Send + 'static,
    T: Send + 'static,
{
    let monitor: Arc<Monitor> = state.monitor.clone();
    blocking(move || work(&monitor).map_err(AwsError::from)).await
}

/// A result with no members (`{}`).
#[derive(Debug, Default, Serialize)]
pub struct Empty {}

// ---------------------------------------------------------------------------
// Log groups

/// CreateLogGroup's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateLogGroupRequest {
    /// `logGroupName`.
    pub log_group_name: String,
    /// `kmsKeyId`.
    pub kms_key_id: Option<String>,
    /// `tags`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `logGroupClass`.
    pub log_group_class: Option<String>,
}

/// CreateLogGroup.
pub async fn create_log_group(
    state: &AppState,
    ctx: &RequestContext,
    input: CreateLogGroupRequest,
) -> Result<Empty, AwsError> {
    check_group_name(&input.log_group_name)?;
    check_tags(&input.tags)?;
    let class = input.log_group_class.unwrap_or_else(|| "STANDARD".into());
    if !["STANDARD", "INFREQUENT_ACCESS", "DELIVERY"].contains(&class.as_str()) {
        return Err(validation(
            "logGroupClass",
            &class,
            "Member must satisfy enum value set: [STANDARD, INFREQUENT_ACCESS, DELIVERY]",
        ));
    }
    if let Some(key) = &input.kms_key_id {
        // No KMS keys exist on this server yet, so none can encrypt a group.
        return Err(invalid(format!(
            "Specified KMS key {key} does not exist or is not accessible."
        )));
    }
    let key = group_key(ctx, &input.log_group_name);
    with_monitor(state, move |m| {
        m.create_log_group(&key, now_ms(), None, &class, &input.tags)
    })
    .await?;
    Ok(Empty {})
}

/// DescribeLogGroups' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLogGroupsRequest {
    /// `logGroupNamePrefix`.
    pub log_group_name_prefix: Option<String>,
    /// `logGroupNamePattern`.
    pub log_group_name_pattern: Option<String>,
    /// `nextToken`.
    pub next_token: Option<String>,
    /// `limit`.
    pub limit: Option<i64>,
    /// `logGroupClass`.
    pub log_group_class: Option<String>,
}

/// A log group in DescribeLogGroups' result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogGroupShape {
    /// `logGroupName`.
    pub log_group_name: String,
    /// `creationTime`.
    pub creation_time: i64,
    /// `retentionInDays`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_in_days: Option<i32>,
    /// `metricFilterCount`.
    pub metric_filter_count: i64,
    /// `arn` (with `:*`).
    pub arn: String,
    /// `storedBytes`.
    pub stored_bytes: i64,
    /// `kmsKeyId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// `logGroupClass`.
    pub log_group_class: String,
    /// `logGroupArn` (without `:*`).
    pub log_group_arn: String,
}

impl From<LogGroup> for LogGroupShape {
    fn from(g: LogGroup) -> Self {
        let arn = g.key.arn();
        Self {
            log_group_name: g.key.name,
            creation_time: g.created_ms,
            retention_in_days: g.retention_days,
            metric_filter_count: g.metric_filter_count,
            arn: format!("{arn}:*"),
            stored_bytes: g.stored_bytes,
            kms_key_id: g.kms_key_id,
            log_group_class: g.log_group_class,
            log_group_arn: arn,
        }
    }
}

/// DescribeLogGroups' result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLogGroupsResponse {
    /// `logGroups`.
    pub log_groups: Vec<LogGroupShape>,
    /// `nextToken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// DescribeLogGroups.
pub async fn describe_log_groups(
    state: &AppState,
    ctx: &RequestContext,
    input: DescribeLogGroupsRequest,
) -> Result<DescribeLogGroupsResponse, AwsError> {
    let limit = check_limit(input.limit, 50)?;
    if input.log_group_name_prefix.is_some() && input.log_group_name_pattern.is_some() {
        return Err(invalid(
            "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
        ));
    }
    if let Some(prefix) = &input.log_group_name_prefix {
        check_group_name(prefix)?;
    }
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let (groups, next) = with_monitor(state, move |m| {
        m.describe_log_groups(
            &account,
            &region,
            input.log_group_name_prefix.as_deref(),
            input.log_group_name_pattern.as_deref(),
            input.next_token.as_deref(),
            limit,
        )
    })
    .await?;
    let groups = groups
        .into_iter()
        .filter(|g| {
            input
                .log_group_class
                .as_deref()
                .is_none_or(|c| c == g.log_group_class)
        })
        .map(LogGroupShape::from)
        .collect();
    Ok(DescribeLogGroupsResponse {
        log_groups: groups,
        next_token: next,
    })
}

/// An input naming one log group.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogGroupRequest {
    /// `logGroupName`.
    pub log_group_name: String,
}

/// DeleteLogGroup.
pub async fn delete_log_group(
    state: &AppState,
    ctx: &RequestContext,
    input: LogGroupRequest,
) -> Result<Empty, AwsError> {
    check_group_name(&input.log_group_name)?;
    let key = group_key(ctx, &input.log_group_name);
    with_monitor(state, move |m| m.delete_log_group(&key)).await?;
    Ok(Empty {})
}

/// PutRetentionPolicy's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutRetentionPolicyRequest {
    /// `logGroupName`.
    pub log_group_name: String,
    /// `retentionInDays`.
    pub retention_in_days: i32,
}

/// PutRetentionPolicy: events older than the period are removed (at once,
/// and from then on every minute).
pub async fn put_retention_policy(
    state: &AppState,
    ctx: &RequestContext,
    input: PutRetentionPolicyRequest,
) -> Result<Empty, AwsError> {
    check_group_name(&input.log_group_name)?;
    if !RETENTION_DAYS.contains(&input.retention_in_days) {
        let allowed: Vec<String> = RETENTION_DAYS.iter().map(i32::to_string).collect();
        return Err(validation(
            "retentionInDays",
            &input.retention_in_days.to_string(),
            &format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        ));
    }
    let key = group_key(ctx, &input.log_group_name);
    with_monitor(state, move |m| {
        m.set_retention(&key, Some(input.retention_in_days))?;
        m.expire_log_events(now_ms()).map(|_| ())
    })
    .await?;
    Ok(Empty {})
}

/// DeleteRetentionPolicy.
pub async fn delete_retention_policy(
    state: &AppState,
    ctx: &RequestContext,
    input: LogGroupRequest,
) -> Result<Empty, AwsError> {
    check_group_name(&input.log_group_name)?;
    let key = group_key(ctx, &input.log_group_name);
    with_monitor(state, move |m| m.set_retention(&key, None)).await?;
    Ok(Empty {})
}

// ---------------------------------------------------------------------------
// Tags

/// TagLogGroup's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagLogGroupRequest {
    /// `logGroupName`.
    pub log_group_name: String,
    /// `tags`.
    pub tags: BTreeMap<String, String>,
}

/// TagLogGroup.
pub async fn tag_log_group(
    state: &AppState,
    ctx: &RequestContext,
    input: TagLogGroupRequest,
) -> Result<Empty, AwsError> {
    check_group_name(&input.log_group_name)?;
    check_tags(&input.tags)?;
    let key = group_key(ctx, &input.log_group_name);
    with_monitor(state, move |m| {
        m.change_log_group_tags(&key, &input.tags, &[])
    })
    .await?;
    Ok(Empty {})
}

/// UntagLogGroup's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UntagLogGroupRequest {
    /// `logGroupName`.
    pub log_group_name: String,
    /// `tags` (keys).
    pub tags: Vec<String>,
}

/// UntagLogGroup.
pub async fn untag_log_group(
    state: &AppState,
    ctx: &RequestContext,
    input: UntagLogGroupRequest,
) -> Result<Empty, AwsError> {
    check_group_name(&input.log_group_name)?;
    let key = group_key(ctx, &input.log_group_name);
    with_monitor(state, move |m| {
        m.change_log_group_tags(&key, &BTreeMap::new(), &input.tags)
    })
    .await?;
    Ok(Empty {})
}

/// ListTagsLogGroup's and ListTagsForResource's result.
#[derive(Debug, Serialize)]
pub struct TagsResponse {
    /// `tags`.
    pub tags: BTreeMap<String, String>,
}

/// ListTagsLogGroup.
pub async fn list_tags_log_group(
    state: &AppState,
    ctx: &RequestContext,
    input: LogGroupRequest,
) -> Result<TagsResponse, AwsError> {
    check_group_name(&input.log_group_name)?;
    let key = group_key(ctx, &input.log_group_name);
    let tags = with_monitor(state, move |m| m.log_group_tags(&key)).await?;
    Ok(TagsResponse { tags })
}

/// The log group an ARN names for the tagging operations.
fn tagged_group(ctx: &RequestContext, arn: &str) -> Result<GroupKey, AwsError> {
    match GroupKey::from_arn(arn) {
        Some(key) if key.account == ctx.account_id && key.region == ctx.region => Ok(key),
        Some(_) => Err(AwsError::client(
            "ResourceNotFoundException",
            "The specified resource does not exist.",
        )),
        None => Err(invalid(format!("Invalid resource arn: {arn}"))),
    }
}

/// TagResource's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagResourceRequest {
    /// `resourceArn`.
    pub resource_arn: String,
    /// `tags`.
    pub tags: BTreeMap<String, String>,
}

/// TagResource (log groups).
pub async fn tag_resource(
    state: &AppState,
    ctx: &RequestContext,
    input: TagResourceRequest,
) -> Result<Empty, AwsError> {
    let key = tagged_group(ctx, &input.resource_arn)?;
    check_tags(&input.tags)?;
    with_monitor(state, move |m| {
        m.change_log_group_tags(&key, &input.tags, &[])
    })
    .await
    .map_err(too_many_tags)?;
    Ok(Empty {})
}

fn too_many_tags(e: AwsError) -> AwsError {
    if e.code == "LimitExceededException" {
        AwsError::client("TooManyTagsException", e.message)
    } else {
        e
    }
}

/// UntagResource's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UntagResourceRequest {
    /// `resourceArn`.
    pub resource_arn: String,
    /// `tagKeys`.
    pub tag_keys: Vec<String>,
}

/// UntagResource (log groups).
pub async fn untag_resource(
    state: &AppState,
    ctx: &RequestContext,
    input: UntagResourceRequest,
) -> Result<Empty, AwsError> {
    let key = tagged_group(ctx, &input.resource_arn)?;
    with_monitor(state, move |m| {
        m.change_log_group_tags(&key, &BTreeMap::new(), &input.tag_keys)
    })
    .await?;
    Ok(Empty {})
}

/// ListTagsForResource's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTagsForResourceRequest {
    /// `resourceArn`.
    pub resource_arn: String,
}

/// ListTagsForResource (log groups).
pub async fn list_tags_for_resource(
    state: &AppState,
    ctx: &RequestContext,
    input: ListTagsForResourceRequest,
) -> Result<TagsResponse, AwsError> {
    let key = tagged_group(ctx, &input.resource_arn)?;
    let tags = with_monitor(state, move |m| m.log_group_tags(&key)).await?;
    Ok(TagsResponse { tags })
}

// ---------------------------------------------------------------------------
// Log streams

/// An input naming one log stream.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogStreamRequest {
    /// `logGroupName`.
    pub log_group_name: String,
    /// `logStreamName`.
    pub log_stream_name: String,
}

/// CreateLogStream.
pub async fn create_log_stream(
    state: &AppState,
    ctx: &RequestContext,
    input: LogStreamRequest,
) -> Result<Empty, AwsError> {
    check_group_name(&input.log_group_name)?;
    check_name("logStreamName", &input.log_stream_name)?;
    let key = group_key(ctx, &input.log_group_name);
    with_monitor(state, move |m| {
        m.create_log_stream(&key, &input.log_stream_name, now_ms())
    })
    .await?;
    Ok(Empty {})
}

/// DeleteLogStream.
pub async fn delete_log_stream(
    state: &AppState,
    ctx: &RequestContext,
    input: LogStreamRequest,
) -> Result<Empty, AwsError> {
    check_group_name(&input.log_group_name)?;
    check_name("logStreamName", &input.log_stream_name)?;
    let key = group_key(ctx, &input.log_group_name);
    with_monitor(state, move |m| {
        m.delete_log_stream(&key, &input.log_stream_name)
    })
    .await?;
    Ok(Empty {})
}

/// DescribeLogStreams' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLogStreamsRequest {
    /// `logGroupName`.
    pub log_group_name: Option<String>,
    /// `logGroupIdentifier`.
    pub log_group_identifier: Option<String>,
    /// `logStreamNamePrefix`.
    pub log_stream_name_prefix: Option<String>,
    /// `orderBy`.
    pub order_by: Option<String>,
    /// `descending`.
    #[serde(default)]
    pub descending: bool,
    /// `nextToken`.
    pub next_token: Option<String>,
    /// `limit`.
    pub limit: Option<i64>,
}

/// A log stream in DescribeLogStreams' result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogStreamShape {
    /// `logStreamName`.
    pub log_stream_name: String,
    /// `creationTime`.
    pub creation_time: i64,
    /// `firstEventTimestamp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_event_timestamp: Option<i64>,
    /// `lastEventTimestamp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_timestamp: Option<i64>,
    /// `lastIngestionTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ingestion_time: Option<i64>,
    /// `arn`.
    pub arn: String,
    /// `storedBytes`.
    pub stored_bytes: i64,
}

/// DescribeLogStreams' result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLogStreamsResponse {
    /// `logStreams`.
    pub log_streams: Vec<LogStreamShape>,
    /// `nextToken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

fn offset_token(token: Option<&str>) -> Result<usize, AwsError> {
    match token {
        None => Ok(0),
        Some(t) => t
            .strip_prefix("o/")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| invalid("The specified nextToken is invalid.")),
    }
}

/// DescribeLogStreams.
pub async fn describe_log_streams(
    state: &AppState,
    ctx: &RequestContext,
    input: DescribeLogStreamsRequest,
) -> Result<DescribeLogStreamsResponse, AwsError> {
    let key = named_group(
        ctx,
        input.log_group_name.as_deref(),
        input.log_group_identifier.as_deref(),
    )?;
    let limit = check_limit(input.limit, 50)?;
    let order = match input.order_by.as_deref() {
        None | Some("LogStreamName") => StreamOrder::LogStreamName,
        Some("LastEventTime") => StreamOrder::LastEventTime,
        Some(other) => {
            return Err(validation(
                "orderBy",
                other,
                "Member must satisfy enum value set: [LogStreamName, LastEventTime]",
            ));
        }
    };
    if order == StreamOrder::LastEventTime && input.log_stream_name_prefix.is_some() {
        return Err(invalid(
            "Cannot order by LastEventTime with a logStreamNamePrefix.",
        ));
    }
    let offset = offset_token(input.next_token.as_deref())?;
    let arn_base = key.arn();
    let (streams, next) = with_monitor(state, move |m| {
        m.describe_log_streams(
            &key,
            input.log_stream_name_prefix.as_deref(),
            order,
            input.descending,
            offset,
            limit,
        )
    })
    .await?;
    Ok(DescribeLogStreamsResponse {
        log_streams: streams
            .into_iter()
            .map(|s: LogStream| LogStreamShape {
                arn: format!("{arn_base}:log-stream:{}", s.name),
                log_stream_name: s.name,
                creation_time: s.created_ms,
                first_event_timestamp: s.first_event_ms,
                last_event_timestamp: s.last_event_ms,
                last_ingestion_time: s.last_ingestion_ms,
                stored_bytes: s.stored_bytes,
            })
            .collect(),
        next_token: next.map(|n| format!("o/{n}")),
    })
}

// ---------------------------------------------------------------------------
// Events

/// An event in PutLogEvents' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputLogEvent {
    /// `timestamp` (ms).
    pub timestamp: i64,
    /// `message`.
    pub message: String,
}

/// PutLogEvents' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutLogEventsRequest {
    /// `logGroupName`.
    pub log_group_name: String,
    /// `logStreamName`.
    pub log_stream_name: String,
    /// `logEvents`.
    pub log_events: Vec<InputLogEvent>,
    /// `sequenceToken` (ignored, as CloudWatch Logs now ignores it).
    pub sequence_token: Option<String>,
}

/// `rejectedLogEventsInfo`.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RejectedLogEventsInfo {
    /// `tooNewLogEventStartIndex`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub too_new_log_event_start_index: Option<usize>,
    /// `tooOldLogEventEndIndex`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub too_old_log_event_end_index: Option<usize>,
    /// `expiredLogEventEndIndex`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_log_event_end_index: Option<usize>,
}

/// PutLogEvents' result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PutLogEventsResponse {
    /// `nextSequenceToken`.
    pub next_sequence_token: String,
    /// `rejectedLogEventsInfo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_log_events_info: Option<RejectedLogEventsInfo>,
}

/// Which events of a chronological batch are kept: those within 14 days
/// (and the group's retention) in the past and 2 hours in the future; the
/// others are reported by index, as CloudWatch Logs reports them.
fn admissible(
    events: &[InputLogEvent],
    now: i64,
    retention_days: Option<i32>,
) -> (std::ops::Range<usize>, RejectedLogEventsInfo) {
    let mut info = RejectedLogEventsInfo::default();
    let too_old = now - MAX_PAST_MS;
    let expired = retention_days.map(|d| now - i64::from(d) * 86_400_000);
    let mut start = 0;
    for (i, e) in events.iter().enumerate() {
        if expired.is_some_and(|x| e.timestamp < x) {
            info.expired_log_event_end_index = Some(i);
            start = i + 1;
        } else if e.timestamp < too_old {
            info.too_old_log_event_end_index = Some(i);
            start = i + 1;
        }
    }
    let end = events
        .iter()
        .position(|e| e.timestamp > now + MAX_FUTURE_MS)
        .unwrap_or(events.len())
        .max(start);
    if end < events.len() {
        info.too_new_log_event_start_index = Some(end);
    }
    (start..end, info)
}

/// PutLogEvents: stores the batch and, in the same transaction, the
/// samples of the group's metric filters; answered once both are durable.
pub async fn put_log_events(
    state: &AppState,
    ctx: &RequestContext,
    input: PutLogEventsRequest,
) -> Result<PutLogEventsResponse, AwsError> {
    check_group_name(&input.log_group_name)?;
    check_name("logStreamName", &input.log_stream_name)?;
    let _ = &input.sequence_token;
    let events = input.log_events;
    if events.is_empty() || events.len() > 10_000 {
        return Err(validation(
            "logEvents",
            &format!("{} events", events.len()),
            "Member must have length between 1 and 10000",
        ));
    }
    let mut bytes = 0usize;
    for e in &events {
        if e.message.is_empty() {
            return Err(validation(
                "logEvents.member.message",
                "",
                "Member must have length greater than or equal to 1",
            ));
        }
        if e.message.len() > MAX_EVENT_BYTES {
            return Err(invalid(format!(
                "Log event too large: {} bytes exceeds limit of {MAX_EVENT_BYTES}",
                e.message.len()
            )));
        }
        bytes += e.message.len() + EVENT_OVERHEAD_BYTES;
    }
    if bytes > MAX_BATCH_BYTES {
        return Err(invalid(format!(
            "Upload too large: {bytes} bytes exceeds limit of {MAX_BATCH_BYTES}"
        )));
    }
    if events.windows(2).any(|w| w[1].timestamp < w[0].timestamp) {
        return Err(invalid(
            "Log events in a single PutLogEvents request must be in chronological order.",
        ));
    }
    let key = group_key(ctx, &input.log_group_name);
    let stream = input.log_stream_name;
    let (rejected, metrics) = with_monitor(state, move |m| {
        let group = m.log_group(&key)?.ok_or_else(|| {
            cairn_monitor::Error::NotFound("The specified log group does not exist.".into())
        })?;
        let now = now_ms();
        let (kept, rejected) = admissible(&events, now, group.retention_days);
        // The span rule is about the events kept (AWS: "for valid events").
        if let (Some(first), Some(last)) = (events[kept.clone()].first(), events[kept.clone()].last())
            && last.timestamp - first.timestamp > MAX_BATCH_SPAN_MS
        {
            return Err(cairn_monitor::Error::Invalid(
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.".into(),
            ));
        }
        let batch: Vec<NewLogEvent<'_>> = events[kept]
            .iter()
            .map(|e| NewLogEvent {
                timestamp: e.timestamp,
                message: &e.message,
                origin_seq: None,
            })
            .collect();
        let outcome = m.append(&key, &stream, &batch, None, false, now)?;
        Ok((rejected, outcome.metrics))
    })
    .await?;
    state.monitoring.samples_arrived(metrics);
    Ok(PutLogEventsResponse {
        next_sequence_token: format!("{:056}", now_ms()),
        rejected_log_events_info: (rejected != RejectedLogEventsInfo::default())
            .then_some(rejected),
    })
}

/// GetLogEvents' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLogEventsRequest {
    /// `logGroupName`.
    pub log_group_name: Option<String>,
    /// `logGroupIdentifier`.
    pub log_group_identifier: Option<String>,
    /// `logStreamName`.
    pub log_stream_name: String,
    /// `startTime`.
    pub start_time: Option<i64>,
    /// `endTime`.
    pub end_time: Option<i64>,
    /// `nextToken`.
    pub next_token: Option<String>,
    /// `limit`.
    pub limit: Option<i64>,
    /// `startFromHead`.
    #[serde(default)]
    pub start_from_head: bool,
}

/// An event in GetLogEvents' result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputLogEvent {
    /// `timestamp`.
    pub timestamp: i64,
    /// `message`.
    pub message: String,
    /// `ingestionTime`.
    pub ingestion_time: i64,
}

/// GetLogEvents' result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLogEventsResponse {
    /// `events`.
    pub events: Vec<OutputLogEvent>,
    /// `nextForwardToken`.
    pub next_forward_token: String,
    /// `nextBackwardToken`.
    pub next_backward_token: String,
}

fn position_token(direction: char, (ts, id): (i64, i64)) -> String {
    format!("{direction}/{ts}/{id}")
}

fn parse_position(text: &str) -> Option<(i64, i64)> {
    let (ts, id) = text.split_once('/')?;
    Some((ts.parse().ok()?, id.parse().ok()?))
}

/// GetLogEvents. Tokens are `f/<timestamp>/<id>` (events after) and
/// `b/<timestamp>/<id>` (events before); at the end of the stream the
/// forward token given is answered again, as CloudWatch Logs does.
pub async fn get_log_events(
    state: &AppState,
    ctx: &RequestContext,
    input: GetLogEventsRequest,
) -> Result<GetLogEventsResponse, AwsError> {
    let key = named_group(
        ctx,
        input.log_group_name.as_deref(),
        input.log_group_identifier.as_deref(),
    )?;
    check_name("logStreamName", &input.log_stream_name)?;
    let limit = check_limit(input.limit, 10_000)?;
    let (after, before) = match input.next_token.as_deref() {
        None => (None, None),
        Some(t) => match t.split_at_checked(2) {
            Some(("f/", rest)) => (
                Some(
                    parse_position(rest)
                        .ok_or_else(|| invalid("The specified nextToken is invalid."))?,
                ),
                None,
            ),
            Some(("b/", rest)) => (
                None,
                Some(
                    parse_position(rest)
                        .ok_or_else(|| invalid("The specified nextToken is invalid."))?,
                ),
            ),
            _ => return Err(invalid("The specified nextToken is invalid.")),
        },
    };
    let stream = input.log_stream_name;
    let (start, end, head) = (input.start_time, input.end_time, input.start_from_head);
    let page = with_monitor(state, move |m| {
        m.get_log_events(&key, &stream, start, end, after, before, head, limit)
    })
    .await?;
    let given = after.or(before);
    let forward = page
        .next
        .or(after)
        .or(given)
        .unwrap_or((start.unwrap_or(0), 0));
    let backward = page
        .first
        .or(before)
        .or(given)
        .unwrap_or((start.unwrap_or(0), 0));
    Ok(GetLogEventsResponse {
        events: page
            .events
            .into_iter()
            .map(|e| OutputLogEvent {
                timestamp: e.timestamp,
                message: e.message,
                ingestion_time: e.ingestion_ms,
            })
            .collect(),
        next_forward_token: position_token('f', forward),
        next_backward_token: position_token('b', backward),
    })
}

/// FilterLogEvents' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterLogEventsRequest {
    /// `logGroupName`.
    pub log_group_name: Option<String>,
    /// `logGroupIdentifier`.
    pub log_group_identifier: Option<String>,
    /// `logStreamNames`.
    pub log_stream_names: Option<Vec<String>>,
    /// `logStreamNamePrefix`.
    pub log_stream_name_prefix: Option<String>,
    /// `startTime`.
    pub start_time: Option<i64>,
    /// `endTime`.
    pub end_time: Option<i64>,
    /// `filterPattern`.
    pub filter_pattern: Option<String>,
    /// `nextToken`.
    pub next_token: Option<String>,
    /// `limit`.
    pub limit: Option<i64>,
    /// `interleaved` (deprecated; results are always interleaved).
    pub interleaved: Option<bool>,
}

/// An event in FilterLogEvents' result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilteredLogEvent {
    /// `logStreamName`.
    pub log_stream_name: String,
    /// `timestamp`.
    pub timestamp: i64,
    /// `message`.
    pub message: String,
    /// `ingestionTime`.
    pub ingestion_time: i64,
    /// `eventId`.
    pub event_id: String,
}

/// A stream in FilterLogEvents' `searchedLogStreams`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchedLogStream {
    /// `logStreamName`.
    pub log_stream_name: String,
    /// `searchedCompletely`.
    pub searched_completely: bool,
}

/// FilterLogEvents' result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterLogEventsResponse {
    /// `events`.
    pub events: Vec<FilteredLogEvent>,
    /// `searchedLogStreams` (deprecated; empty).
    pub searched_log_streams: Vec<SearchedLogStream>,
    /// `nextToken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

fn parse_pattern(text: &str) -> Result<FilterPattern, AwsError> {
    FilterPattern::parse(text).map_err(|e| invalid(e.to_string()))
}

/// FilterLogEvents: events of a group matching a filter pattern, oldest
/// first, across its streams; a page ends at `limit` (10 000 by default)
/// or after a bounded search, with a token to go on.
pub async fn filter_log_events(
    state: &AppState,
    ctx: &RequestContext,
    input: FilterLogEventsRequest,
) -> Result<FilterLogEventsResponse, AwsError> {
    let key = named_group(
        ctx,
        input.log_group_name.as_deref(),
        input.log_group_identifier.as_deref(),
    )?;
    let limit = check_limit(input.limit, 10_000)?;
    if input.log_stream_names.is_some() && input.log_stream_name_prefix.is_some() {
        return Err(invalid(
            "Cannot specify both logStreamNames and logStreamNamePrefix.",
        ));
    }
    if let Some(names) = &input.log_stream_names {
        if names.is_empty() || names.len() > 100 {
            return Err(validation(
                "logStreamNames",
                &format!("{names:?}"),
                "Member must have length between 1 and 100",
            ));
        }
        for n in names {
            check_name("logStreamNames.member", n)?;
        }
    }
    let pattern = match input.filter_pattern.as_deref() {
        None => None,
        Some(text) => Some(parse_pattern(text)?),
    };
    let after = match input.next_token.as_deref() {
        None => None,
        Some(t) => {
            Some(parse_position(t).ok_or_else(|| invalid("The specified nextToken is invalid."))?)
        }
    };
    let _ = input.interleaved;
    let page = with_monitor(state, move |m| {
        m.filter_log_events(
            &key,
            input.log_stream_names.as_deref(),
            input.log_stream_name_prefix.as_deref(),
            input.start_time,
            input.end_time,
            pattern.as_ref(),
            after,
            limit,
        )
    })
    .await?;
    Ok(FilterLogEventsResponse {
        events: page
            .events
            .into_iter()
            .map(|e| FilteredLogEvent {
                log_stream_name: e.stream,
                timestamp: e.timestamp,
                message: e.message,
                ingestion_time: e.ingestion_ms,
                event_id: format!("{:056}", e.id),
            })
            .collect(),
        searched_log_streams: Vec::new(),
        next_token: page.next.map(|(ts, id)| format!("{ts}/{id}")),
    })
}

// ---------------------------------------------------------------------------
// Metric filters

/// PutMetricFilter's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutMetricFilterRequest {
    /// `logGroupName`.
    pub log_group_name: String,
    /// `filterName`.
    pub filter_name: String,
    /// `filterPattern`.
    pub filter_pattern: String,
    /// `metricTransformations`.
    pub metric_transformations: Vec<MetricTransformation>,
    /// `applyOnTransformedLogs` (no log transformers exist here).
    pub apply_on_transformed_logs: Option<bool>,
}

fn check_transformation(t: &MetricTransformation) -> Result<(), AwsError> {
    for (member, value) in [
        ("metricTransformations.member.metricName", &t.metric_name),
        (
            "metricTransformations.member.metricNamespace",
            &t.metric_namespace,
        ),
    ] {
        check_length(member, value, 1, 255)?;
        if value.contains([':', '*', '$']) {
            return Err(validation(
                member,
                value,
                "Member must satisfy regular expression pattern: [^:*$]*",
            ));
        }
    }
    check_length(
        "metricTransformations.member.metricValue",
        &t.metric_value,
        1,
        100,
    )?;
    if t.dimensions.len() > 3 {
        return Err(invalid("A metric filter can have at most 3 dimensions."));
    }
    if !t.dimensions.is_empty() && t.default_value.is_some() {
        return Err(invalid(
            "Metric filters with dimensions cannot have a default value.",
        ));
    }
    if let Some(unit) = &t.unit
        && !standard_units().contains(&unit.as_str())
    {
        return Err(validation(
            "metricTransformations.member.unit",
            unit,
            "Member must satisfy enum value set: [Seconds, Microseconds, Milliseconds, Bytes, Kilobytes, Megabytes, Gigabytes, Terabytes, Bits, Kilobits, Megabits, Gigabits, Terabits, Percent, Count, Bytes/Second, Kilobytes/Second, Megabytes/Second, Gigabytes/Second, Terabytes/Second, Bits/Second, Kilobits/Second, Megabits/Second, Gigabits/Second, Terabits/Second, Count/Second, None]",
        ));
    }
    Ok(())
}

/// CloudWatch's `StandardUnit` values.
fn standard_units() -> &'static [&'static str] {
    &[
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ]
}

/// PutMetricFilter: the pattern and each `metricValue` and dimension are
/// checked (an unparsable pattern, a value that is neither a number nor a
/// field of the pattern: `InvalidParameterException`), then stored; events
/// put from then on make samples.
pub async fn put_metric_filter(
    state: &AppState,
    ctx: &RequestContext,
    input: PutMetricFilterRequest,
) -> Result<Empty, AwsError> {
    check_group_name(&input.log_group_name)?;
    check_name("filterName", &input.filter_name)?;
    check_length("filterPattern", &input.filter_pattern, 0, 1024)?;
    if input.metric_transformations.len() != 1 {
        return Err(validation(
            "metricTransformations",
            &format!("{} transformations", input.metric_transformations.len()),
            "Member must have length less than or equal to 1",
        ));
    }
    for t in &input.metric_transformations {
        check_transformation(t)?;
    }
    if input.apply_on_transformed_logs == Some(true) {
        return Err(AwsError::client(
            "InvalidOperationException",
            "The log group has no log transformer, so applyOnTransformedLogs cannot be true.",
        ));
    }
    cairn_monitor::check_metric_filter(&input.filter_pattern, &input.metric_transformations)
        .map_err(invalid)?;
    let key = group_key(ctx, &input.log_group_name);
    with_monitor(state, move |m| {
        m.put_metric_filter(
            &key,
            &input.filter_name,
            &input.filter_pattern,
            &input.metric_transformations,
            now_ms(),
        )
    })
    .await?;
    Ok(Empty {})
}

/// DescribeMetricFilters' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeMetricFiltersRequest {
    /// `logGroupName`.
    pub log_group_name: Option<String>,
    /// `filterNamePrefix`.
    pub filter_name_prefix: Option<String>,
    /// `nextToken`.
    pub next_token: Option<String>,
    /// `limit`.
    pub limit: Option<i64>,
    /// `metricName`.
    pub metric_name: Option<String>,
    /// `metricNamespace`.
    pub metric_namespace: Option<String>,
}

/// A metric filter in DescribeMetricFilters' result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricFilterShape {
    /// `filterName`.
    pub filter_name: String,
    /// `filterPattern`.
    pub filter_pattern: String,
    /// `metricTransformations`.
    pub metric_transformations: Vec<MetricTransformation>,
    /// `creationTime`.
    pub creation_time: i64,
    /// `logGroupName`.
    pub log_group_name: String,
    /// `applyOnTransformedLogs`.
    pub apply_on_transformed_logs: bool,
}

/// DescribeMetricFilters' result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeMetricFiltersResponse {
    /// `metricFilters`.
    pub metric_filters: Vec<MetricFilterShape>,
    /// `nextToken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// DescribeMetricFilters.
pub async fn describe_metric_filters(
    state: &AppState,
    ctx: &RequestContext,
    input: DescribeMetricFiltersRequest,
) -> Result<DescribeMetricFiltersResponse, AwsError> {
    if let Some(name) = &input.log_group_name {
        check_group_name(name)?;
    }
    let limit = check_limit(input.limit, 50)?;
    let metric = match (&input.metric_name, &input.metric_namespace) {
        (Some(n), Some(ns)) => Some((n.clone(), ns.clone())),
        (None, None) => None,
        _ => {
            return Err(invalid(
                "metricName and metricNamespace must be specified together.",
            ));
        }
    };
    if input.filter_name_prefix.is_some() && input.log_group_name.is_none() {
        return Err(invalid(
            "logGroupName is required when filterNamePrefix is specified.",
        ));
    }
    let offset = offset_token(input.next_token.as_deref())?;
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let (filters, next) = with_monitor(state, move |m| {
        m.describe_metric_filters(
            &account,
            &region,
            input.log_group_name.as_deref(),
            input.filter_name_prefix.as_deref(),
            metric.as_ref().map(|(n, ns)| (n.as_str(), ns.as_str())),
            offset,
            limit,
        )
    })
    .await?;
    Ok(DescribeMetricFiltersResponse {
        metric_filters: filters
            .into_iter()
            .map(|f: MetricFilter| MetricFilterShape {
                filter_name: f.name,
                filter_pattern: f.pattern,
                metric_transformations: f.transformations,
                creation_time: f.created_ms,
                log_group_name: f.log_group_name,
                apply_on_transformed_logs: false,
            })
            .collect(),
        next_token: next.map(|n| format!("o/{n}")),
    })
}

/// DeleteMetricFilter's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteMetricFilterRequest {
    /// `logGroupName`.
    pub log_group_name: String,
    /// `filterName`.
    pub filter_name: String,
}

/// DeleteMetricFilter.
pub async fn delete_metric_filter(
    state: &AppState,
    ctx: &RequestContext,
    input: DeleteMetricFilterRequest,
) -> Result<Empty, AwsError> {
    check_group_name(&input.log_group_name)?;
    check_name("filterName", &input.filter_name)?;
    let key = group_key(ctx, &input.log_group_name);
    with_monitor(state, move |m| {
        m.delete_metric_filter(&key, &input.filter_name)
    })
    .await?;
    Ok(Empty {})
}

/// TestMetricFilter's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestMetricFilterRequest {
    /// `filterPattern`.
    pub filter_pattern: String,
    /// `logEventMessages`.
    pub log_event_messages: Vec<String>,
}

/// A match in TestMetricFilter's result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricFilterMatchRecord {
    /// `eventNumber` (1-based).
    pub event_number: usize,
    /// `eventMessage`.
    pub event_message: String,
    /// `extractedValues`.
    pub extracted_values: BTreeMap<String, String>,
}

/// TestMetricFilter's result.
#[derive(Debug, Serialize)]
pub struct TestMetricFilterResponse {
    /// `matches`.
    pub matches: Vec<MetricFilterMatchRecord>,
}

/// TestMetricFilter: which of the messages the pattern matches, with the
/// values a space-delimited pattern extracts.
pub async fn test_metric_filter(
    _state: &AppState,
    _ctx: &RequestContext,
    input: TestMetricFilterRequest,
) -> Result<TestMetricFilterResponse, AwsError> {
    check_length("filterPattern", &input.filter_pattern, 0, 1024)?;
    let count = input.log_event_messages.len();
    if !(1..=50).contains(&count) {
        return Err(validation(
            "logEventMessages",
            &format!("{count} messages"),
            "Member must have length between 1 and 50",
        ));
    }
    let pattern = parse_pattern(&input.filter_pattern)?;
    let matches = input
        .log_event_messages
        .into_iter()
        .enumerate()
        .filter_map(|(i, message)| {
            let event = LogEvent::new(&message);
            if !pattern.matches(&event) {
                return None;
            }
            let extracted_values = pattern.extracted_values(&event).unwrap_or_default();
            Some(MetricFilterMatchRecord {
                event_number: i + 1,
                event_message: message.clone(),
                extracted_values,
            })
        })
        .collect();
    Ok(TestMetricFilterResponse { matches })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(timestamps: &[i64]) -> Vec<InputLogEvent> {
        timestamps
            .iter()
            .map(|t| InputLogEvent {
                timestamp: *t,
                message: "m".into(),
            })
            .collect()
    }

    #[test]
    fn test_log_group_arns_parse_with_and_without_the_wildcard() {
        let key = GroupKey::from_arn("arn:aws:logs:us-east-1:123456789012:log-group:CloudTrail:*")
            .expect("arn");
        assert_eq!(
            key,
            GroupKey::new("123456789012", "us-east-1", "CloudTrail")
        );
        let key =
            GroupKey::from_arn("arn:aws:logs:eu-west-1:123456789012:log-group:/a/b").expect("arn");
        assert_eq!(key.name, "/a/b");
        assert_eq!(GroupKey::from_arn("arn:aws:s3:::bucket"), None);
        assert_eq!(GroupKey::from_arn("CloudTrail"), None);
    }

    #[test]
    fn test_events_outside_the_window_are_reported_by_index() {
        let now = 100 * 86_400_000;
        let day = 86_400_000;
        let batch = events(&[
            now - 20 * day,
            now - 15 * day,
            now - day,
            now,
            now + 3 * 3_600_000,
        ]);
        let (kept, info) = admissible(&batch, now, None);
        assert_eq!(kept, 2..4);
        assert_eq!(info.too_old_log_event_end_index, Some(1));
        assert_eq!(info.too_new_log_event_start_index, Some(4));
        // A day's retention: the two oldest are past it (reported as
        // expired); the one a day old is on the boundary and kept.
        let (kept, info) = admissible(&batch, now, Some(1));
        assert_eq!(kept, 2..4);
        assert_eq!(info.expired_log_event_end_index, Some(1));
        assert_eq!(info.too_old_log_event_end_index, None);
        let (kept, info) = admissible(&events(&[now]), now, None);
        assert_eq!((kept, info), (0..1, RejectedLogEventsInfo::default()));
    }

    #[test]
    fn test_names_are_checked_with_the_models_rules() {
        assert!(check_group_name("CloudTrail/Default_1.x#y").is_ok());
        let e = check_group_name("bad name").expect_err("space");
        assert_eq!(e.code, "InvalidParameterException");
        assert!(
            e.message
                .starts_with("1 validation error detected: Value 'bad name' at 'logGroupName'")
        );
        assert!(check_group_name(&"a".repeat(513)).is_err());
        assert!(check_name("logStreamName", "a:b").is_err());
        assert!(check_name("logStreamName", "123456789012_CloudTrail_us-east-1").is_ok());
    }
}
