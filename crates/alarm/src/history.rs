//! `AlarmHistoryItem`s: state updates, configuration updates, actions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::definition::{AlarmDefinition, AlarmStatistic, Dimension};
use crate::evaluate::{AlarmState, StateChange};
use crate::format::cw_timestamp;

/// The longest `HistoryData` (API model).
pub const MAX_HISTORY_DATA: usize = 4095;

/// `HistoryItemType` (the metric-alarm ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HistoryItemType {
    /// The configuration was created or changed.
    ConfigurationUpdate,
    /// The state changed.
    StateUpdate,
    /// An action ran (or failed to).
    Action,
}

impl HistoryItemType {
    /// The text on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryItemType::ConfigurationUpdate => "ConfigurationUpdate",
            HistoryItemType::StateUpdate => "StateUpdate",
            HistoryItemType::Action => "Action",
        }
    }
}

/// `AlarmHistoryItem`, ready to store and to return from
/// `DescribeAlarmHistory`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmHistoryItem {
    /// `AlarmName`.
    pub alarm_name: String,
    /// `AlarmType`: always `MetricAlarm` here.
    pub alarm_type: String,
    /// `Timestamp`.
    pub timestamp: DateTime<Utc>,
    /// `HistoryItemType`.
    pub history_item_type: HistoryItemType,
    /// `HistorySummary`.
    pub history_summary: String,
    /// `HistoryData`: JSON text.
    pub history_data: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateData<'a> {
    state_value: &'static str,
    state_reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_reason_data: Option<Box<RawValue>>,
}

impl<'a> StateData<'a> {
    fn of(state: &'a AlarmState) -> Self {
        StateData {
            state_value: state.value.as_str(),
            state_reason: &state.reason,
            // Embedded as an object, as CloudWatch does; reason data that is
            // not JSON (it always is: evaluation writes it, SetAlarmState
            // checks it) is left out rather than corrupting the item.
            state_reason_data: state
                .reason_data
                .as_ref()
                .and_then(|d| RawValue::from_string(d.clone()).ok()),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateUpdateData<'a> {
    version: &'static str,
    old_state: StateData<'a>,
    new_state: StateData<'a>,
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// The `StateUpdate` item of a state change: summary `Alarm updated from
/// OK to ALARM`, data `{"version":"1.0","oldState":{...},"newState":{...}}`
/// with each state's `stateValue`, `stateReason` and (as an object)
/// `stateReasonData`.
pub fn state_update_item(alarm_name: &str, change: &StateChange) -> AlarmHistoryItem {
    let mut data = StateUpdateData {
        version: "1.0",
        old_state: StateData::of(&change.old),
        new_state: StateData::of(&change.new),
    };
    let mut history_data = to_json(&data);
    // `HistoryData` holds at most 4095 characters: the old state's reason
    // data goes first, then the new state's.
    if history_data.len() > MAX_HISTORY_DATA {
        data.old_state.state_reason_data = None;
        history_data = to_json(&data);
    }
    if history_data.len() > MAX_HISTORY_DATA {
        data.new_state.state_reason_data = None;
        history_data = to_json(&data);
    }
    AlarmHistoryItem {
        alarm_name: alarm_name.to_owned(),
        alarm_type: "MetricAlarm".to_owned(),
        timestamp: change.new.timestamp,
        history_item_type: HistoryItemType::StateUpdate,
        history_summary: change.summary(),
        history_data,
    }
}

/// An alarm's configuration as history data carries it (camelCase, the
/// service's internal spelling, `oKActions` included).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlarmConfig<'a> {
    alarm_name: &'a str,
    alarm_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    alarm_description: Option<&'a str>,
    alarm_configuration_updated_timestamp: String,
    actions_enabled: bool,
    #[serde(rename = "oKActions")]
    ok_actions: &'a [String],
    alarm_actions: &'a [String],
    insufficient_data_actions: &'a [String],
    metric_name: &'a str,
    namespace: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    statistic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extended_statistic: Option<&'a str>,
    dimensions: Vec<DimensionConfig<'a>>,
    period: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'static str>,
    evaluation_periods: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    datapoints_to_alarm: Option<u32>,
    threshold: f64,
    comparison_operator: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    treat_missing_data: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    evaluate_low_sample_count_percentile: Option<&'static str>,
}

#[derive(Serialize)]
struct DimensionConfig<'a> {
    name: &'a str,
    value: &'a str,
}

/// Where an alarm lives and when its configuration was written: what
/// history data and notifications print besides the definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmContext<'a> {
    /// The region code (`us-east-1`).
    pub region: &'a str,
    /// The 12-digit account.
    pub account_id: &'a str,
    /// `AlarmConfigurationUpdatedTimestamp`.
    pub configuration_updated: DateTime<Utc>,
}

fn config<'a>(d: &'a AlarmDefinition, ctx: &AlarmContext<'_>) -> AlarmConfig<'a> {
    let (statistic, extended_statistic) = match &d.statistic {
        AlarmStatistic::Statistic(s) => (Some(s.as_str()), None),
        AlarmStatistic::ExtendedStatistic(e) => (None, Some(e.name())),
    };
    AlarmConfig {
        alarm_name: &d.alarm_name,
        alarm_arn: d.alarm_arn(ctx.region, ctx.account_id),
        alarm_description: d.alarm_description.as_deref(),
        alarm_configuration_updated_timestamp: cw_timestamp(ctx.configuration_updated),
        actions_enabled: d.actions_enabled,
        ok_actions: &d.ok_actions,
        alarm_actions: &d.alarm_actions,
        insufficient_data_actions: &d.insufficient_data_actions,
        metric_name: &d.metric_name,
        namespace: &d.namespace,
        statistic,
        extended_statistic,
        dimensions: d
            .dimensions
            .iter()
            .map(|Dimension { name, value }| DimensionConfig { name, value })
            .collect(),
        period: d.period,
        unit: d.unit.map(|u| u.as_str()),
        evaluation_periods: d.evaluation_periods,
        datapoints_to_alarm: d.datapoints_to_alarm,
        threshold: d.threshold,
        comparison_operator: d.comparison_operator.as_str(),
        treat_missing_data: d.treat_missing_data.map(|t| t.as_str()),
        evaluate_low_sample_count_percentile: d
            .evaluate_low_sample_count_percentile
            .map(|e| e.as_str()),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateData<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    version: &'static str,
    created_alarm: AlarmConfig<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UpdateData<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    version: &'static str,
    original_updated_alarm: AlarmConfig<'a>,
    updated_alarm: AlarmConfig<'a>,
}

/// The `ConfigurationUpdate` item of a `PutMetricAlarm`: `Alarm "<name>"
/// created` with `{"type":"Create","version":"1.0","createdAlarm":{...}}`,
/// or, when `previous` is given, `Alarm "<name>" updated` with
/// `{"type":"Update","version":"1.0","originalUpdatedAlarm":{...},
/// "updatedAlarm":{...}}`. `previous_context` is the previous
/// configuration's context (its own update timestamp).
pub fn configuration_update_item(
    previous: Option<(&AlarmDefinition, AlarmContext<'_>)>,
    definition: &AlarmDefinition,
    context: AlarmContext<'_>,
) -> AlarmHistoryItem {
    let name = &definition.alarm_name;
    let (summary, data) = match previous {
        None => (
            format!("Alarm \"{name}\" created"),
            to_json(&CreateData {
                kind: "Create",
                version: "1.0",
                created_alarm: config(definition, &context),
            }),
        ),
        Some((old, old_context)) => (
            format!("Alarm \"{name}\" updated"),
            to_json(&UpdateData {
                kind: "Update",
                version: "1.0",
                original_updated_alarm: config(old, &old_context),
                updated_alarm: config(definition, &context),
            }),
        ),
    };
    AlarmHistoryItem {
        alarm_name: name.clone(),
        alarm_type: "MetricAlarm".to_owned(),
        timestamp: context.configuration_updated,
        history_item_type: HistoryItemType::ConfigurationUpdate,
        history_summary: summary,
        history_data: data,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActionData<'a> {
    action_state: &'static str,
    state_update_timestamp: i64,
    notification_resource: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    published_message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// The outcome of running one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOutcome<'a> {
    /// Done; for SNS, the message that was published.
    Succeeded {
        /// The published message (JSON text), when there is one.
        published_message: Option<&'a str>,
    },
    /// Not done, and why.
    Failed {
        /// What went wrong.
        error: &'a str,
    },
}

/// The `Action` item for one action run on a state change: `Successfully
/// executed action <arn>` or `Failed to execute action <arn>`, with
/// `{"actionState":"Succeeded"|"Failed","stateUpdateTimestamp":<epoch
/// ms>,"notificationResource":"<arn>",...}`.
pub fn action_item(
    alarm_name: &str,
    change: &StateChange,
    action: &str,
    outcome: ActionOutcome<'_>,
    now: DateTime<Utc>,
) -> AlarmHistoryItem {
    let (summary, state, published_message, error) = match outcome {
        ActionOutcome::Succeeded { published_message } => (
            format!("Successfully executed action {action}"),
            "Succeeded",
            published_message,
            None,
        ),
        ActionOutcome::Failed { error } => (
            format!("Failed to execute action {action}"),
            "Failed",
            None,
            Some(error),
        ),
    };
    AlarmHistoryItem {
        alarm_name: alarm_name.to_owned(),
        alarm_type: "MetricAlarm".to_owned(),
        timestamp: now,
        history_item_type: HistoryItemType::Action,
        history_summary: summary,
        history_data: to_json(&ActionData {
            action_state: state,
            state_update_timestamp: change.new.timestamp.timestamp_millis(),
            notification_resource: action,
            published_message,
            error,
        }),
    }
}
