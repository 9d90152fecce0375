//! LookupEvents: CloudTrail's event history, the management events of the
//! last 90 days, newest first, by one lookup attribute and a time range,
//! read from the history's indexes (`cairn_history`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use cairn_history::LookupAttribute;

use super::Epoch;
use crate::error::AwsError;
use crate::services::blocking;
use crate::state::{AppState, RequestContext};

/// One `LookupAttribute`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupAttributeInput {
    /// `AttributeKey`.
    pub attribute_key: String,
    /// `AttributeValue`.
    pub attribute_value: String,
}

/// LookupEvents' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupEventsRequest {
    /// `LookupAttributes` (at most one).
    #[serde(default)]
    pub lookup_attributes: Vec<LookupAttributeInput>,
    /// `StartTime`.
    #[serde(default, deserialize_with = "super::shapes::timestamp_member")]
    pub start_time: Option<DateTime<Utc>>,
    /// `EndTime`.
    #[serde(default, deserialize_with = "super::shapes::timestamp_member")]
    pub end_time: Option<DateTime<Utc>>,
    /// `EventCategory` (`insight`).
    pub event_category: Option<String>,
    /// `MaxResults` (1–50, default 50).
    pub max_results: Option<i64>,
    /// `NextToken`.
    pub next_token: Option<String>,
}

/// A `Resource` of an event.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceShape {
    /// `ResourceType`.
    pub resource_type: String,
    /// `ResourceName`.
    pub resource_name: String,
}

/// An `Event`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventShape {
    /// `EventId`.
    pub event_id: String,
    /// `EventName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// `ReadOnly`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<String>,
    /// `AccessKeyId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// `EventTime`.
    pub event_time: Epoch,
    /// `EventSource`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_source: Option<String>,
    /// `Username`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `Resources`.
    pub resources: Vec<ResourceShape>,
    /// `CloudTrailEvent`: the record's text.
    pub cloud_trail_event: String,
}

/// LookupEvents' answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupEventsResponse {
    /// `Events`.
    pub events: Vec<EventShape>,
    /// `NextToken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

fn attribute(input: &LookupAttributeInput) -> Result<LookupAttribute, AwsError> {
    let value = input.attribute_value.clone();
    if value.is_empty() || value.chars().count() > 2000 {
        return Err(AwsError::client(
            "InvalidLookupAttributesException",
            "The attribute value must be 1 to 2000 characters long.",
        ));
    }
    Ok(match input.attribute_key.as_str() {
        "EventId" => LookupAttribute::EventId(value),
        "EventName" => LookupAttribute::EventName(value),
        "ReadOnly" => LookupAttribute::ReadOnly(value),
        "Username" => LookupAttribute::Username(value),
        "ResourceType" => LookupAttribute::ResourceType(value),
        "ResourceName" => LookupAttribute::ResourceName(value),
        "EventSource" => LookupAttribute::EventSource(value),
        "AccessKeyId" => LookupAttribute::AccessKeyId(value),
        other => {
            return Err(AwsError::client(
                "InvalidLookupAttributesException",
                format!("Invalid attribute key: {other}"),
            ));
        }
    })
}

fn parse_token(token: &str) -> Option<(i64, i64)> {
    let (time, id) = token.split_once('.')?;
    Some((time.parse().ok()?, id.parse().ok()?))
}

/// LookupEvents.
pub async fn lookup_events(
    state: &AppState,
    ctx: &RequestContext,
    input: LookupEventsRequest,
) -> Result<LookupEventsResponse, AwsError> {
    if input.lookup_attributes.len() > 1 {
        return Err(AwsError::client(
            "InvalidLookupAttributesException",
            "You can specify only one lookup attribute.",
        ));
    }
    let lookup = input.lookup_attributes.first().map(attribute).transpose()?;
    let limit = match input.max_results {
        None => 50,
        Some(n) if (1..=50).contains(&n) => n as usize,
        Some(_) => {
            return Err(AwsError::client(
                "InvalidMaxResultsException",
                "MaxResults must be between 1 and 50.",
            ));
        }
    };
    if let (Some(start), Some(end)) = (input.start_time, input.end_time)
        && start > end
    {
        return Err(AwsError::client(
            "InvalidTimeRangeException",
            "Start time must be before end time.",
        ));
    }
    let after = match input.next_token.as_deref() {
        None => None,
        Some(t) => Some(parse_token(t).ok_or_else(|| {
            AwsError::client("InvalidNextTokenException", "The NextToken is not valid.")
        })?),
    };
    match input.event_category.as_deref() {
        None => {}
        // Insights events are not generated here: the history holds none.
        Some("insight") => {
            return Ok(LookupEventsResponse {
                events: Vec::new(),
                next_token: None,
            });
        }
        Some(other) => {
            return Err(AwsError::client(
                "InvalidEventCategoryException",
                format!("Invalid event category: {other}"),
            ));
        }
    }
    let now = Utc::now().timestamp_millis();
    let start = input
        .start_time
        .map_or(now - cairn_history::RETENTION_MS, |t| t.timestamp_millis());
    let end = input.end_time.map_or(i64::MAX, |t| t.timestamp_millis());
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let Some(history) = state.history.clone() else {
        return Err(AwsError::client(
            "OperationNotPermittedException",
            "This server keeps no event history: set `[history] enabled = true` in its configuration.",
        ));
    };
    let (events, next) = blocking(move || {
        history
            .lookup(&account, &region, lookup.as_ref(), start, end, after, limit)
            .map_err(AwsError::internal)
    })
    .await?;
    Ok(LookupEventsResponse {
        events: events
            .into_iter()
            .map(|e| EventShape {
                event_time: Epoch(
                    DateTime::from_timestamp_millis(e.event_time_ms).unwrap_or_default(),
                ),
                event_id: e.event_id,
                event_name: e.event_name,
                read_only: e.read_only,
                access_key_id: e.access_key_id,
                event_source: e.event_source,
                username: e.username,
                resources: e
                    .resources
                    .into_iter()
                    .map(|(resource_type, resource_name)| ResourceShape {
                        resource_type,
                        resource_name,
                    })
                    .collect(),
                cloud_trail_event: e.record,
            })
            .collect(),
        next_token: next.map(|(time, id)| format!("{time}.{id}")),
    })
}
