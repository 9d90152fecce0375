//! Amazon CloudWatch metrics and alarms, in both of its protocols: the
//! query-compatible JSON 1.0 the installed botocore speaks and the query
//! protocol of older SDKs. Each operation is written once: query inputs are
//! read as the JSON shape (their text values typed by member name), and
//! results are built as JSON that the query codec renders as XML.
//!
//! Rules, evaluation, reason texts, history items and the alarm
//! notification are `cairn_alarm`'s; the store is `cairn_monitor`; live
//! evaluation and delivery are [`crate::monitoring`]'s.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use cairn_alarm::{
    AlarmStatistic, Dimension, GetMetricStatisticsInput, HistoryItemType, MetricDatumInput,
    PutMetricAlarmInput, StateValue, Tag,
};
use cairn_monitor::{MetricKey, StoredAlarm};

use super::blocking;
use crate::error::{AwsError, cloudwatch_error};
use crate::protocol::Input;
use crate::protocol::lenient::timestamp_of;
use crate::protocol::query::XML_MAP;
use crate::state::{AppState, RequestContext};

/// Members whose query-protocol text is a number.
const NUMBERS: &[&str] = &[
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "MaxRecords",
    "Value",
    "Values",
    "Counts",
    "SampleCount",
    "Sum",
    "Minimum",
    "Maximum",
    "StorageResolution",
    "MaxDatapoints",
];
/// Members whose query-protocol text is a boolean.
const BOOLEANS: &[&str] = &["ActionsEnabled", "ReturnData", "RecentlyActive"];
/// Timestamp members (epoch seconds in JSON, ISO 8601 in the query protocol).
const TIMESTAMPS: &[&str] = &["Timestamp", "StartTime", "EndTime", "StartDate", "EndDate"];

/// The largest page of DescribeAlarms and DescribeAlarmHistory.
const MAX_RECORDS: usize = 100;

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidParameterValue", message)
}

fn type_leaves(value: &mut Value, member: Option<&str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                type_leaves(v, Some(k));
            }
        }
        Value::Array(items) => {
            for item in items {
                type_leaves(item, member);
            }
        }
        Value::String(text) => {
            let Some(member) = member else { return };
            if NUMBERS.contains(&member) {
                if let Ok(n) = text.trim().parse::<f64>()
                    && let Some(number) = serde_json::Number::from_f64(n)
                {
                    *value = if n.fract() == 0.0 && n.abs() < 9.0e15 {
                        Value::from(n as i64)
                    } else {
                        Value::Number(number)
                    };
                }
            } else if BOOLEANS.contains(&member) {
                match text.to_ascii_lowercase().as_str() {
                    "true" => *value = Value::Bool(true),
                    "false" => *value = Value::Bool(false),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Reads an input of either protocol as its typed JSON shape, with the
/// timestamps taken out (returned by member name) for the caller to read.
pub(crate) fn decode<I: DeserializeOwned>(
    input: Input,
) -> Result<(I, Map<String, Value>), AwsError> {
    let mut map = match input {
        Input::Json(map) => map,
        Input::Query(params) => {
            let mut value = Value::Object(crate::protocol::query::params_to_json(&params));
            type_leaves(&mut value, None);
            match value {
                Value::Object(map) => map,
                _ => Map::new(),
            }
        }
        Input::Rest { .. } => return Err(AwsError::internal("CloudWatch received a REST input")),
    };
    let mut times = Map::new();
    for name in TIMESTAMPS {
        if let Some(v) = map.remove(*name) {
            times.insert((*name).to_owned(), v);
        }
    }
    let typed = serde_json::from_value(Value::Object(map))
        .map_err(|e| AwsError::client("InvalidParameterValue", e.to_string()))?;
    Ok((typed, times))
}

fn time_member(times: &Map<String, Value>, name: &str) -> Result<Option<DateTime<Utc>>, AwsError> {
    match times.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => timestamp_of(v)
            .map(Some)
            .ok_or_else(|| invalid(format!("The parameter {name} must be a timestamp."))),
    }
}

/// A row's handler: `f(state, ctx, typed input, timestamps)`.
macro_rules! cloudwatch_handler {
    ($f:path) => {
        |call: $crate::operations::Call| -> $crate::operations::HandlerFuture {
            Box::pin(async move {
                let (input, times) = $crate::services::cloudwatch::decode(call.input)?;
                Ok($crate::protocol::Output::Json(
                    $f(&call.state, &call.ctx, input, times).await?,
                ))
            })
        }
    };
}
pub(crate) use cloudwatch_handler;

async fn store<T, F>(state: &AppState, work: F) -> Result<T, AwsError>
where
    F: FnOnce(&cairn_monitor::Monitor) -> Result<T, cairn_monitor::Error> + Send + 'static,
    T: Send + 'static,
{
    let monitor = state.monitor.clone();
    blocking(move || work(&monitor).map_err(cloudwatch_error)).await
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn dimensions_json(dimensions: &[Dimension]) -> Value {
    Value::Array(
        dimensions
            .iter()
            .map(|d| json!({"Name": d.name, "Value": d.value}))
            .collect(),
    )
}

/// `MetricAlarm` of DescribeAlarms.
fn metric_alarm(alarm: &StoredAlarm) -> Value {
    let d = &alarm.definition;
    let mut out = json!({
        "AlarmName": d.alarm_name,
        "AlarmArn": d.alarm_arn(&alarm.region, &alarm.account),
        "AlarmConfigurationUpdatedTimestamp": iso(alarm.configuration_updated),
        "ActionsEnabled": d.actions_enabled,
        "OKActions": d.ok_actions,
        "AlarmActions": d.alarm_actions,
        "InsufficientDataActions": d.insufficient_data_actions,
        "StateValue": alarm.state.value.as_str(),
        "StateReason": alarm.state.reason,
        "StateUpdatedTimestamp": iso(alarm.state.timestamp),
        "StateTransitionedTimestamp": iso(alarm.state.timestamp),
        "MetricName": d.metric_name,
        "Namespace": d.namespace,
        "Dimensions": dimensions_json(&d.dimensions),
        "Period": d.period,
        "EvaluationPeriods": d.evaluation_periods,
        "Threshold": d.threshold,
        "ComparisonOperator": d.comparison_operator.as_str(),
    });
    let Value::Object(map) = &mut out else {
        return out;
    };
    match &d.statistic {
        AlarmStatistic::Statistic(s) => map.insert("Statistic".into(), s.as_str().into()),
        AlarmStatistic::ExtendedStatistic(e) => {
            map.insert("ExtendedStatistic".into(), e.name().into())
        }
    };
    if let Some(text) = &d.alarm_description {
        map.insert("AlarmDescription".into(), text.clone().into());
    }
    if let Some(data) = &alarm.state.reason_data {
        map.insert("StateReasonData".into(), data.clone().into());
    }
    if let Some(unit) = d.unit {
        map.insert("Unit".into(), unit.as_str().into());
    }
    if let Some(m) = d.datapoints_to_alarm {
        map.insert("DatapointsToAlarm".into(), m.into());
    }
    if let Some(t) = d.treat_missing_data {
        map.insert("TreatMissingData".into(), t.as_str().into());
    }
    if let Some(e) = d.evaluate_low_sample_count_percentile {
        map.insert("EvaluateLowSampleCountPercentile".into(), e.as_str().into());
    }
    out
}

// ---------------------------------------------------------------------------
// Alarms

/// PutMetricAlarm: validated by CloudWatch's rules, stored (a new alarm in
/// INSUFFICIENT_DATA, a replaced one keeping its state), then evaluated at
/// once. Actions on topics that do not exist are accepted, as CloudWatch
/// accepts them, and fail (in the history) when they run.
pub async fn put_metric_alarm(
    state: &AppState,
    ctx: &RequestContext,
    input: PutMetricAlarmInput,
    _times: Map<String, Value>,
) -> Result<Value, AwsError> {
    let definition = cairn_alarm::validate_put_metric_alarm(&input)?;
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let monitoring = state.monitoring.clone();
    let now = monitoring.now();
    let stored = store(state, move |m| {
        m.put_alarm(&account, &region, &definition, now)
    })
    .await?;
    blocking(move || {
        monitoring
            .evaluate_blocking(&stored)
            .map_err(AwsError::internal)
    })
    .await?;
    Ok(json!({}))
}

/// DescribeAlarms' input.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAlarmsInput {
    /// `AlarmNames`.
    #[serde(default)]
    pub alarm_names: Vec<String>,
    /// `AlarmNamePrefix`.
    pub alarm_name_prefix: Option<String>,
    /// `AlarmTypes`.
    #[serde(default)]
    pub alarm_types: Vec<String>,
    /// `StateValue`.
    pub state_value: Option<String>,
    /// `ActionPrefix`.
    pub action_prefix: Option<String>,
    /// `MaxRecords`.
    pub max_records: Option<i64>,
    /// `NextToken`.
    pub next_token: Option<String>,
}

fn page_size(max_records: Option<i64>) -> Result<usize, AwsError> {
    match max_records {
        None => Ok(50),
        Some(n) if (1..=MAX_RECORDS as i64).contains(&n) => Ok(n as usize),
        Some(n) => Err(AwsError::client(
            "ValidationError",
            format!(
                "1 validation error detected: Value '{n}' at 'maxRecords' failed to satisfy constraint: Member must have value between 1 and {MAX_RECORDS}"
            ),
        )),
    }
}

fn offset_of(token: Option<&str>) -> Result<usize, AwsError> {
    match token {
        None => Ok(0),
        Some(t) => t
            .parse()
            .map_err(|_| AwsError::client("InvalidNextToken", "The next token is invalid.")),
    }
}

fn state_of(text: &str) -> Result<StateValue, AwsError> {
    StateValue::parse(text).ok_or_else(|| {
        AwsError::client(
            "ValidationError",
            format!(
                "1 validation error detected: Value '{text}' at 'stateValue' failed to satisfy constraint: Member must satisfy enum value set: [INSUFFICIENT_DATA, ALARM, OK]"
            ),
        )
    })
}

/// DescribeAlarms (metric alarms; Cairn has no composite alarms).
pub async fn describe_alarms(
    state: &AppState,
    ctx: &RequestContext,
    input: DescribeAlarmsInput,
    _times: Map<String, Value>,
) -> Result<Value, AwsError> {
    let limit = page_size(input.max_records)?;
    let offset = offset_of(input.next_token.as_deref())?;
    if !input.alarm_names.is_empty() && input.alarm_name_prefix.is_some() {
        return Err(AwsError::client(
            "InvalidParameterCombination",
            "AlarmNames and AlarmNamePrefix cannot be specified together.",
        ));
    }
    let wanted_state = input.state_value.as_deref().map(state_of).transpose()?;
    let metric_alarms_wanted =
        input.alarm_types.is_empty() || input.alarm_types.iter().any(|t| t == "MetricAlarm");
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let alarms = store(state, move |m| m.alarms(Some((&account, &region)))).await?;
    let chosen: Vec<&StoredAlarm> = alarms
        .iter()
        .filter(|_| metric_alarms_wanted)
        .filter(|a| {
            input.alarm_names.is_empty() || input.alarm_names.contains(&a.definition.alarm_name)
        })
        .filter(|a| {
            input
                .alarm_name_prefix
                .as_deref()
                .is_none_or(|p| a.definition.alarm_name.starts_with(p))
        })
        .filter(|a| wanted_state.is_none_or(|s| a.state.value == s))
        .filter(|a| {
            input.action_prefix.as_deref().is_none_or(|p| {
                a.definition
                    .alarm_actions
                    .iter()
                    .chain(&a.definition.ok_actions)
                    .chain(&a.definition.insufficient_data_actions)
                    .any(|x| x.starts_with(p))
            })
        })
        .collect();
    let page: Vec<Value> = chosen
        .iter()
        .skip(offset)
        .take(limit)
        .map(|a| metric_alarm(a))
        .collect();
    let next = (chosen.len() > offset + limit).then(|| (offset + limit).to_string());
    Ok(json!({ "MetricAlarms": page, "CompositeAlarms": [], "NextToken": next }))
}

/// DescribeAlarmsForMetric's input.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAlarmsForMetricInput {
    /// `MetricName`.
    pub metric_name: String,
    /// `Namespace`.
    pub namespace: String,
    /// `Statistic`.
    pub statistic: Option<String>,
    /// `ExtendedStatistic`.
    pub extended_statistic: Option<String>,
    /// `Dimensions`.
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
    /// `Period`.
    pub period: Option<i64>,
    /// `Unit`.
    pub unit: Option<String>,
}

/// DescribeAlarmsForMetric.
pub async fn describe_alarms_for_metric(
    state: &AppState,
    ctx: &RequestContext,
    input: DescribeAlarmsForMetricInput,
    _times: Map<String, Value>,
) -> Result<Value, AwsError> {
    let mut dimensions: Vec<(String, String)> = input
        .dimensions
        .iter()
        .map(|d| (d.name.clone(), d.value.clone()))
        .collect();
    dimensions.sort();
    let metric = MetricKey {
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        namespace: input.namespace.clone(),
        name: input.metric_name.clone(),
        dimensions,
    };
    let alarms = store(state, move |m| m.alarms_for_metric(&metric)).await?;
    let chosen: Vec<Value> = alarms
        .iter()
        .filter(|a| {
            input
                .statistic
                .as_deref()
                .is_none_or(|s| a.definition.statistic.name() == s)
        })
        .filter(|a| {
            input
                .extended_statistic
                .as_deref()
                .is_none_or(|s| a.definition.statistic.name() == s)
        })
        .filter(|a| {
            input
                .period
                .is_none_or(|p| i64::from(a.definition.period) == p)
        })
        .filter(|a| {
            input
                .unit
                .as_deref()
                .is_none_or(|u| a.definition.unit.map(|x| x.as_str()) == Some(u))
        })
        .map(metric_alarm)
        .collect();
    Ok(json!({ "MetricAlarms": chosen }))
}

/// DescribeAlarmHistory's input.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAlarmHistoryInput {
    /// `AlarmName`.
    pub alarm_name: Option<String>,
    /// `AlarmTypes`.
    #[serde(default)]
    pub alarm_types: Vec<String>,
    /// `HistoryItemType`.
    pub history_item_type: Option<String>,
    /// `MaxRecords`.
    pub max_records: Option<i64>,
    /// `NextToken`.
    pub next_token: Option<String>,
    /// `ScanBy`.
    pub scan_by: Option<String>,
}

/// DescribeAlarmHistory: newest first unless `ScanBy=TimestampAscending`.
pub async fn describe_alarm_history(
    state: &AppState,
    ctx: &RequestContext,
    input: DescribeAlarmHistoryInput,
    times: Map<String, Value>,
) -> Result<Value, AwsError> {
    let limit = page_size(input.max_records)?;
    let offset = offset_of(input.next_token.as_deref())?;
    let item_type = match input.history_item_type.as_deref() {
        None => None,
        Some("ConfigurationUpdate") => Some(HistoryItemType::ConfigurationUpdate),
        Some("StateUpdate") => Some(HistoryItemType::StateUpdate),
        Some("Action") => Some(HistoryItemType::Action),
        Some(other) => {
            return Err(AwsError::client(
                "ValidationError",
                format!(
                    "1 validation error detected: Value '{other}' at 'historyItemType' failed to satisfy constraint: Member must satisfy enum value set: [ConfigurationUpdate, StateUpdate, Action, AlarmContributorStateUpdate, AlarmContributorAction]"
                ),
            ));
        }
    };
    let oldest_first = match input.scan_by.as_deref() {
        None | Some("TimestampDescending") => false,
        Some("TimestampAscending") => true,
        Some(other) => {
            return Err(AwsError::client(
                "ValidationError",
                format!(
                    "1 validation error detected: Value '{other}' at 'scanBy' failed to satisfy constraint: Member must satisfy enum value set: [TimestampDescending, TimestampAscending]"
                ),
            ));
        }
    };
    if !input.alarm_types.is_empty() && !input.alarm_types.iter().any(|t| t == "MetricAlarm") {
        return Ok(json!({ "AlarmHistoryItems": [] }));
    }
    let start = time_member(&times, "StartDate")?;
    let end = time_member(&times, "EndDate")?;
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let (items, next) = store(state, move |m| {
        m.alarm_history(
            &account,
            &region,
            input.alarm_name.as_deref(),
            item_type,
            start,
            end,
            oldest_first,
            offset,
            limit,
        )
    })
    .await?;
    let items: Vec<Value> = items
        .into_iter()
        .map(|i| {
            json!({
                "AlarmName": i.alarm_name,
                "AlarmType": i.alarm_type,
                "Timestamp": iso(i.timestamp),
                "HistoryItemType": i.history_item_type.as_str(),
                "HistorySummary": i.history_summary,
                "HistoryData": i.history_data,
            })
        })
        .collect();
    Ok(json!({ "AlarmHistoryItems": items, "NextToken": next.map(|n| n.to_string()) }))
}

/// An input naming alarms.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmNamesInput {
    /// `AlarmNames`.
    #[serde(default)]
    pub alarm_names: Vec<String>,
}

/// DeleteAlarms.
pub async fn delete_alarms(
    state: &AppState,
    ctx: &RequestContext,
    input: AlarmNamesInput,
    _times: Map<String, Value>,
) -> Result<Value, AwsError> {
    if input.alarm_names.len() > 100 {
        return Err(AwsError::client(
            "ValidationError",
            "1 validation error detected: Value at 'alarmNames' failed to satisfy constraint: Member must have length less than or equal to 100",
        ));
    }
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    store(state, move |m| {
        m.delete_alarms(&account, &region, &input.alarm_names)
    })
    .await?;
    Ok(json!({}))
}

async fn set_actions(
    state: &AppState,
    ctx: &RequestContext,
    names: Vec<String>,
    enabled: bool,
) -> Result<Value, AwsError> {
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    store(state, move |m| {
        m.set_alarm_actions_enabled(&account, &region, &names, enabled)
    })
    .await?;
    Ok(json!({}))
}

/// EnableAlarmActions.
pub async fn enable_alarm_actions(
    state: &AppState,
    ctx: &RequestContext,
    input: AlarmNamesInput,
    _times: Map<String, Value>,
) -> Result<Value, AwsError> {
    set_actions(state, ctx, input.alarm_names, true).await
}

/// DisableAlarmActions.
pub async fn disable_alarm_actions(
    state: &AppState,
    ctx: &RequestContext,
    input: AlarmNamesInput,
    _times: Map<String, Value>,
) -> Result<Value, AwsError> {
    set_actions(state, ctx, input.alarm_names, false).await
}

/// SetAlarmState's input.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SetAlarmStateInput {
    /// `AlarmName`.
    pub alarm_name: String,
    /// `StateValue`.
    pub state_value: String,
    /// `StateReason`.
    pub state_reason: String,
    /// `StateReasonData`.
    pub state_reason_data: Option<String>,
}

/// SetAlarmState: the state changes (with history and actions) until the
/// next evaluation says otherwise, as on CloudWatch.
pub async fn set_alarm_state(
    state: &AppState,
    ctx: &RequestContext,
    input: SetAlarmStateInput,
    _times: Map<String, Value>,
) -> Result<Value, AwsError> {
    let value = state_of(&input.state_value)?;
    let (account, region, name) = (
        ctx.account_id.clone(),
        ctx.region.clone(),
        input.alarm_name.clone(),
    );
    let alarm = store(state, move |m| m.alarm(&account, &region, &name))
        .await?
        .ok_or_else(|| {
            AwsError::with_status(
                "ResourceNotFound",
                format!("Alarm {} does not exist", input.alarm_name),
                axum::http::StatusCode::NOT_FOUND,
            )
        })?;
    let monitoring = state.monitoring.clone();
    let now = monitoring.now();
    let change = cairn_alarm::set_alarm_state(
        &alarm.state,
        value,
        &input.state_reason,
        input.state_reason_data.as_deref(),
        now,
    )?;
    if let Some(change) = change {
        blocking(move || {
            monitoring
                .record_change(&alarm, &change, now)
                .map_err(AwsError::internal)
        })
        .await?;
    }
    Ok(json!({}))
}

// ---------------------------------------------------------------------------
// Metrics

/// PutMetricData's input.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutMetricDataInput {
    /// `Namespace`.
    pub namespace: Option<String>,
    /// `MetricData`.
    #[serde(default)]
    pub metric_data: Vec<Value>,
}

/// PutMetricData: every datum checked, then all stored in one transaction;
/// alarms on the metrics are evaluated at once.
pub async fn put_metric_data(
    state: &AppState,
    ctx: &RequestContext,
    input: PutMetricDataInput,
    _times: Map<String, Value>,
) -> Result<Value, AwsError> {
    cairn_alarm::validate_put_metric_data(input.namespace.as_deref(), input.metric_data.len())?;
    let namespace = input.namespace.unwrap_or_default();
    let now = state.monitoring.now();
    let mut data = Vec::new();
    for (i, raw) in input.metric_data.into_iter().enumerate() {
        let mut raw = raw;
        let timestamp = match &mut raw {
            Value::Object(map) => map.remove("Timestamp"),
            _ => None,
        };
        let mut datum: MetricDatumInput = serde_json::from_value(raw)
            .map_err(|e| invalid(format!("MetricData.member.{}: {e}", i + 1)))?;
        if let Some(t) = timestamp {
            datum.timestamp = Some(timestamp_of(&t).ok_or_else(|| {
                invalid(format!(
                    "The parameter MetricData.member.{}.Timestamp must be a timestamp.",
                    i + 1
                ))
            })?);
        }
        let datum = cairn_alarm::validate_metric_datum(i + 1, &datum, now)?;
        let mut dimensions: Vec<(String, String)> = datum
            .dimensions
            .iter()
            .map(|d| (d.name.clone(), d.value.clone()))
            .collect();
        dimensions.sort();
        let key = MetricKey {
            account: ctx.account_id.clone(),
            region: ctx.region.clone(),
            namespace: namespace.clone(),
            name: datum.metric_name.clone(),
            dimensions,
        };
        data.push((
            key,
            datum.timestamp.timestamp_millis(),
            datum.unit.map(|u| u.as_str().to_owned()),
            datum.aggregate,
        ));
    }
    let metrics: Vec<MetricKey> = data.iter().map(|(k, ..)| k.clone()).collect();
    store(state, move |m| m.put_metric_data(&data)).await?;
    state.monitoring.samples_arrived(metrics);
    Ok(json!({}))
}

/// ListMetrics' input.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListMetricsInput {
    /// `Namespace`.
    pub namespace: Option<String>,
    /// `MetricName`.
    pub metric_name: Option<String>,
    /// `Dimensions` (filters: a name, and a value when given).
    #[serde(default)]
    pub dimensions: Vec<DimensionFilter>,
    /// `NextToken`.
    pub next_token: Option<String>,
}

/// A `DimensionFilter`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DimensionFilter {
    /// `Name`.
    pub name: String,
    /// `Value`.
    pub value: Option<String>,
}

/// ListMetrics (500 a page, as CloudWatch).
pub async fn list_metrics(
    state: &AppState,
    ctx: &RequestContext,
    input: ListMetricsInput,
    _times: Map<String, Value>,
) -> Result<Value, AwsError> {
    const PAGE: usize = 500;
    let offset = offset_of(input.next_token.as_deref())?;
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let (namespace, name) = (input.namespace.clone(), input.metric_name.clone());
    let metrics = store(state, move |m| {
        m.list_metrics(&account, &region, namespace.as_deref(), name.as_deref())
    })
    .await?;
    let chosen: Vec<&MetricKey> = metrics
        .iter()
        .filter(|m| {
            input.dimensions.iter().all(|f| {
                m.dimensions
                    .iter()
                    .any(|(n, v)| *n == f.name && f.value.as_deref().is_none_or(|want| want == v))
            })
        })
        .collect();
    let page: Vec<Value> = chosen
        .iter()
        .skip(offset)
        .take(PAGE)
        .map(|m| {
            json!({
                "Namespace": m.namespace,
                "MetricName": m.name,
                "Dimensions": m.dimensions.iter().map(|(n, v)| json!({"Name": n, "Value": v})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let next = (chosen.len() > offset + PAGE).then(|| (offset + PAGE).to_string());
    Ok(json!({ "Metrics": page, "NextToken": next }))
}

/// GetMetricStatistics' input (times read apart).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMetricStatisticsRequest {
    /// `Namespace`.
    pub namespace: Option<String>,
    /// `MetricName`.
    pub metric_name: Option<String>,
    /// `Dimensions`.
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
    /// `Period`.
    pub period: Option<i64>,
    /// `Statistics`.
    #[serde(default)]
    pub statistics: Vec<String>,
    /// `ExtendedStatistics`.
    #[serde(default)]
    pub extended_statistics: Vec<String>,
    /// `Unit`.
    pub unit: Option<String>,
}

/// GetMetricStatistics: the statistics of each period with data, oldest
/// first.
pub async fn get_metric_statistics(
    state: &AppState,
    ctx: &RequestContext,
    input: GetMetricStatisticsRequest,
    times: Map<String, Value>,
) -> Result<Value, AwsError> {
    let query = cairn_alarm::validate_get_metric_statistics(&GetMetricStatisticsInput {
        namespace: input.namespace.clone(),
        metric_name: input.metric_name.clone(),
        start_time: time_member(&times, "StartTime")?,
        end_time: time_member(&times, "EndTime")?,
        period: input.period,
        statistics: input.statistics.clone(),
        extended_statistics: input.extended_statistics.clone(),
        unit: input.unit.clone(),
    })?;
    let mut dimensions: Vec<(String, String)> = input
        .dimensions
        .iter()
        .map(|d| (d.name.clone(), d.value.clone()))
        .collect();
    dimensions.sort();
    let key = MetricKey {
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        namespace: query.namespace.clone(),
        name: query.metric_name.clone(),
        dimensions,
    };
    let unit = query.unit.map(|u| u.as_str().to_owned());
    let (period, from, to) = (query.period, query.start_time, query.end_time);
    let aggregates = store(state, move |m| {
        m.metric_aggregates(&key, period, from, to, unit.as_deref())
    })
    .await?;
    let datapoints: Vec<Value> = aggregates
        .iter()
        .filter(|(start, _)| {
            **start >= query.start_time - chrono::Duration::seconds(i64::from(query.period))
        })
        .map(|(start, aggregate)| {
            let point = aggregate.datapoint(
                *start,
                &query.statistics,
                &query.extended_statistics,
                query.unit,
            );
            let mut value = json!({ "Timestamp": iso(point.timestamp) });
            if let Value::Object(map) = &mut value {
                for (name, v) in [
                    ("SampleCount", point.sample_count),
                    ("Average", point.average),
                    ("Sum", point.sum),
                    ("Minimum", point.minimum),
                    ("Maximum", point.maximum),
                ] {
                    if let Some(v) = v {
                        map.insert(name.into(), json!(v));
                    }
                }
                map.insert(
                    "Unit".into(),
                    point.unit.map_or("None", |u| u.as_str()).into(),
                );
                if let Some(extended) = point.extended_statistics {
                    map.insert("ExtendedStatistics".into(), json!({ XML_MAP: extended }));
                }
            }
            value
        })
        .collect();
    Ok(json!({ "Label": query.metric_name, "Datapoints": datapoints }))
}

/// GetMetricData's input (times read apart).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMetricDataInput {
    /// `MetricDataQueries`.
    pub metric_data_queries: Vec<MetricDataQuery>,
    /// `ScanBy`.
    pub scan_by: Option<String>,
    /// `MaxDatapoints`.
    pub max_datapoints: Option<i64>,
    /// `NextToken` (every result fits one page here).
    pub next_token: Option<String>,
}

/// A `MetricDataQuery`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricDataQuery {
    /// `Id`.
    pub id: String,
    /// `MetricStat`.
    pub metric_stat: Option<MetricStat>,
    /// `Expression` (metric math: refused).
    pub expression: Option<String>,
    /// `Label`.
    pub label: Option<String>,
    /// `ReturnData`.
    pub return_data: Option<bool>,
}

/// A `MetricStat`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricStat {
    /// `Metric`.
    pub metric: MetricShape,
    /// `Period`.
    pub period: i64,
    /// `Stat`.
    pub stat: String,
    /// `Unit`.
    pub unit: Option<String>,
}

/// A `Metric`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricShape {
    /// `Namespace`.
    pub namespace: String,
    /// `MetricName`.
    pub metric_name: String,
    /// `Dimensions`.
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
}

/// GetMetricData: `MetricStat` queries (any statistic GetMetricStatistics
/// knows, percentiles included), newest first unless
/// `ScanBy=TimestampAscending`. Metric math expressions are refused by name.
pub async fn get_metric_data(
    state: &AppState,
    ctx: &RequestContext,
    input: GetMetricDataInput,
    times: Map<String, Value>,
) -> Result<Value, AwsError> {
    let start = time_member(&times, "StartTime")?.ok_or_else(|| {
        AwsError::client("MissingParameter", "The parameter StartTime is required.")
    })?;
    let end = time_member(&times, "EndTime")?.ok_or_else(|| {
        AwsError::client("MissingParameter", "The parameter EndTime is required.")
    })?;
    if start >= end {
        return Err(invalid(
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    if input.metric_data_queries.is_empty() || input.metric_data_queries.len() > 500 {
        return Err(invalid(
            "MetricDataQueries must hold between 1 and 500 queries.",
        ));
    }
    let _ = (input.next_token, input.max_datapoints);
    let oldest_first = input.scan_by.as_deref() == Some("TimestampAscending");
    let mut results = Vec::new();
    for query in input.metric_data_queries {
        if query.expression.is_some() {
            return Err(invalid(format!(
                "The expression of query {} is metric math, which Cairn does not evaluate; use MetricStat.",
                query.id
            )));
        }
        let Some(stat) = query.metric_stat else {
            return Err(AwsError::client(
                "MissingParameter",
                format!("Query {} needs MetricStat.", query.id),
            ));
        };
        // `Stat` is a statistic (Sum) or an extended one (p99, TM(10%:90%)).
        let plain = stat.stat.parse::<cairn_alarm::Statistic>().is_ok();
        let validated = cairn_alarm::validate_get_metric_statistics(&GetMetricStatisticsInput {
            namespace: Some(stat.metric.namespace.clone()),
            metric_name: Some(stat.metric.metric_name.clone()),
            start_time: Some(start),
            end_time: Some(end),
            period: Some(stat.period),
            statistics: if plain {
                vec![stat.stat.clone()]
            } else {
                Vec::new()
            },
            extended_statistics: if plain {
                Vec::new()
            } else {
                vec![stat.stat.clone()]
            },
            unit: stat.unit.clone(),
        })?;
        let mut dimensions: Vec<(String, String)> = stat
            .metric
            .dimensions
            .iter()
            .map(|d| (d.name.clone(), d.value.clone()))
            .collect();
        dimensions.sort();
        let key = MetricKey {
            account: ctx.account_id.clone(),
            region: ctx.region.clone(),
            namespace: validated.namespace.clone(),
            name: validated.metric_name.clone(),
            dimensions,
        };
        let unit = validated.unit.map(|u| u.as_str().to_owned());
        let period = validated.period;
        let aggregates = store(state, move |m| {
            m.metric_aggregates(&key, period, start, end, unit.as_deref())
        })
        .await?;
        let mut points: Vec<(DateTime<Utc>, f64)> = aggregates
            .iter()
            .filter_map(|(t, a)| {
                let value = match (
                    validated.statistics.first(),
                    validated.extended_statistics.first(),
                ) {
                    (Some(s), _) => a.statistic(*s),
                    (None, Some(e)) => a.extended(e),
                    (None, None) => None,
                };
                value.map(|v| (*t, v))
            })
            .collect();
        if !oldest_first {
            points.reverse();
        }
        if query.return_data == Some(false) {
            continue;
        }
        results.push(json!({
            "Id": query.id,
            "Label": query.label.unwrap_or_else(|| stat.metric.metric_name.clone()),
            "Timestamps": points.iter().map(|(t, _)| iso(*t)).collect::<Vec<_>>(),
            "Values": points.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            "StatusCode": "Complete",
        }));
    }
    Ok(json!({ "MetricDataResults": results, "Messages": [] }))
}

// ---------------------------------------------------------------------------
// Tags

/// TagResource's input.
#[derive(Debug, serde::Deserialize)]
pub struct TagResourceInput {
    /// `ResourceARN`.
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    /// `Tags`.
    #[serde(rename = "Tags", default)]
    pub tags: Vec<Tag>,
    /// `TagKeys` (UntagResource).
    #[serde(rename = "TagKeys", default)]
    pub tag_keys: Vec<String>,
}

fn alarm_name_of(ctx: &RequestContext, arn: &str) -> Result<String, AwsError> {
    let prefix = format!(
        "arn:aws:cloudwatch:{}:{}:alarm:",
        ctx.region, ctx.account_id
    );
    arn.strip_prefix(&prefix)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("Invalid ARN: {arn}")))
}

async fn change_tags(
    state: &AppState,
    ctx: &RequestContext,
    input: TagResourceInput,
) -> Result<Value, AwsError> {
    let name = alarm_name_of(ctx, &input.resource_arn)?;
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    store(state, move |m| {
        let mut tags: BTreeMap<String, String> = BTreeMap::new();
        m.change_alarm_tags(&account, &region, &name, |current| {
            tags.extend(current.iter().map(|t| (t.key.clone(), t.value.clone())));
            for t in &input.tags {
                tags.insert(t.key.clone(), t.value.clone());
            }
            for k in &input.tag_keys {
                tags.remove(k);
            }
            if tags.len() > 50 {
                return Err(cairn_monitor::Error::LimitExceeded(
                    "An alarm can have at most 50 tags.".into(),
                ));
            }
            Ok(tags
                .iter()
                .map(|(k, v)| Tag {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect())
        })
    })
    .await?;
    Ok(json!({}))
}

/// TagResource (alarms).
pub async fn tag_resource(
    state: &AppState,
    ctx: &RequestContext,
    mut input: TagResourceInput,
    _times: Map<String, Value>,
) -> Result<Value, AwsError> {
    input.tag_keys.clear();
    change_tags(state, ctx, input).await
}

/// UntagResource (alarms).
pub async fn untag_resource(
    state: &AppState,
    ctx: &RequestContext,
    mut input: TagResourceInput,
    _times: Map<String, Value>,
) -> Result<Value, AwsError> {
    input.tags.clear();
    change_tags(state, ctx, input).await
}

/// ListTagsForResource (alarms).
pub async fn list_tags_for_resource(
    state: &AppState,
    ctx: &RequestContext,
    input: TagResourceInput,
    _times: Map<String, Value>,
) -> Result<Value, AwsError> {
    let name = alarm_name_of(ctx, &input.resource_arn)?;
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let alarm = store(state, move |m| m.alarm(&account, &region, &name))
        .await?
        .ok_or_else(|| {
            AwsError::with_status(
                "ResourceNotFoundException",
                "The specified resource does not exist.",
                axum::http::StatusCode::NOT_FOUND,
            )
        })?;
    let tags: Vec<Value> = alarm
        .definition
        .tags
        .iter()
        .map(|t| json!({"Key": t.key, "Value": t.value}))
        .collect();
    Ok(json!({ "Tags": tags }))
}
