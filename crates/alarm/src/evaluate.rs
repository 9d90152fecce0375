//! Alarm states, evaluation against datapoints, and `SetAlarmState`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::definition::{
    AlarmDefinition, AlarmStatistic, LowSampleCountPercentile, TreatMissingData,
};
use crate::error::{ErrorCode, ValidationError};
use crate::format::{cw_timestamp, java_double, reason_timestamp};
use crate::stats::{MetricAggregate, period_start};

/// The reason of a newly created alarm.
pub const INITIAL_REASON: &str = "Unchecked: Initial alarm creation";

/// The longest `StateReason` (API model).
pub const MAX_STATE_REASON: usize = 1023;

/// The longest `StateReasonData` (API model).
pub const MAX_STATE_REASON_DATA: usize = 4000;

/// How many times `EvaluationPeriods` Cairn looks back for datapoints when
/// `TreatMissingData` is `missing` or `ignore`: CloudWatch documents that it
/// looks further back than the evaluation periods (its "evaluation range")
/// without saying how far; Cairn looks at twice as many periods.
pub const LOOKBACK_FACTOR: u32 = 2;

/// `StateValue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StateValue {
    /// `OK`.
    #[serde(rename = "OK")]
    Ok,
    /// `ALARM`.
    #[serde(rename = "ALARM")]
    Alarm,
    /// `INSUFFICIENT_DATA`.
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl StateValue {
    /// The text on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            StateValue::Ok => "OK",
            StateValue::Alarm => "ALARM",
            StateValue::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    /// Parses `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub fn parse(s: &str) -> Option<StateValue> {
        match s {
            "OK" => Some(StateValue::Ok),
            "ALARM" => Some(StateValue::Alarm),
            "INSUFFICIENT_DATA" => Some(StateValue::InsufficientData),
            _ => None,
        }
    }
}

impl fmt::Display for StateValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alarm's state: `StateValue`, `StateReason`, `StateReasonData` and
/// `StateUpdatedTimestamp` of `MetricAlarm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmState {
    /// `StateValue`.
    #[serde(rename = "StateValue")]
    pub value: StateValue,
    /// `StateReason`.
    #[serde(rename = "StateReason")]
    pub reason: String,
    /// `StateReasonData`: JSON text, when there is any.
    #[serde(rename = "StateReasonData")]
    pub reason_data: Option<String>,
    /// `StateUpdatedTimestamp`.
    #[serde(rename = "StateUpdatedTimestamp")]
    pub timestamp: DateTime<Utc>,
}

impl AlarmState {
    /// The state of an alarm created at `now`: `INSUFFICIENT_DATA`,
    /// `Unchecked: Initial alarm creation`.
    pub fn initial(now: DateTime<Utc>) -> AlarmState {
        AlarmState {
            value: StateValue::InsufficientData,
            reason: INITIAL_REASON.to_owned(),
            reason_data: None,
            timestamp: now,
        }
    }
}

/// A transition from one state to another (the values always differ).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StateChange {
    /// The state before.
    pub old: AlarmState,
    /// The state after; its timestamp is the evaluation's `now`.
    pub new: AlarmState,
}

impl StateChange {
    /// `Alarm updated from OK to ALARM`: the `HistorySummary`.
    pub fn summary(&self) -> String {
        format!(
            "Alarm updated from {} to {}",
            self.old.value, self.new.value
        )
    }
}

/// One period as evaluated.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Period {
    start: DateTime<Utc>,
    value: Option<f64>,
    sample_count: Option<f64>,
}

/// Evaluates `definition` at `now` and returns the state change, if any.
///
/// `datapoints` holds the metric's aggregates keyed by the start of the
/// period they cover; they may be finer than the alarm's `Period` (they are
/// rolled up into the alarm's epoch-aligned periods) and may hold more than
/// the evaluation needs. They must be those of the alarm's metric only:
/// its namespace, name and exactly its dimensions, and, when the alarm has
/// a `Unit`, that unit only (CloudWatch aggregates units separately).
///
/// # Semantics
///
/// - The periods evaluated end with the one holding `now` once it holds
///   data, else with the last closed one. CloudWatch evaluates only
///   periods that have closed (and waits a little more); Cairn evaluates
///   the current, still-open period too, so an alarm fires within one
///   evaluation of its breaching datapoint. An open period without data is
///   not counted as missing (it may still receive some), so `breaching`
///   alarms do not flap at every period start. The price: a
///   statistic like `Sum` can cross a `LessThan` threshold later in the
///   period than at its start, so a `<` alarm on a sum may go to `ALARM`
///   early in a period and back to `OK` as data arrives.
/// - M of N: `ALARM` when at least `DatapointsToAlarm` (default
///   `EvaluationPeriods`) of the evaluated datapoints breach, else `OK`.
/// - `TreatMissingData`:
///   `breaching`/`notBreaching`: the last N periods are evaluated and a
///   missing one counts as bad/good;
///   `missing`: the most recent N periods *with data* are evaluated, looking
///   back at most [`LOOKBACK_FACTOR`] × N periods; none at all gives
///   `INSUFFICIENT_DATA`; fewer than M present gives `ALARM` when all
///   present ones breach (as CloudWatch's `- - X - -` example does);
///   `ignore`: as `missing`, but no data at all keeps the current state.
/// - A percentile alarm with `EvaluateLowSampleCountPercentile` `ignore`
///   keeps its state while any evaluated datapoint has fewer samples than
///   `10 / (1 - p/100)` (CloudWatch's statistical-significance rule;
///   `p100` has no minimum).
/// - A period holding samples whose statistic cannot be answered (a
///   percentile over statistic sets) counts as missing.
///
/// Returns `None` when the state would not change.
pub fn evaluate(
    definition: &AlarmDefinition,
    current: &AlarmState,
    datapoints: &BTreeMap<DateTime<Utc>, MetricAggregate>,
    now: DateTime<Utc>,
) -> Option<StateChange> {
    let n = definition.evaluation_periods.max(1);
    let m = definition.datapoints_required().clamp(1, n);
    let mode = definition.missing_data();
    let step = Duration::seconds(i64::from(definition.period.max(1)));
    let newest = period_start(now, definition.period);
    let lookback = match mode {
        TreatMissingData::Missing | TreatMissingData::Ignore => n * LOOKBACK_FACTOR,
        TreatMissingData::Breaching | TreatMissingData::NotBreaching => n,
    };
    // One period more than the window: the open period counts once it
    // holds data; until then the window ends with the last closed period
    // (an open period without data yet is not "missing").
    let span = lookback + 1;
    let oldest = newest - step * (span as i32 - 1);

    let mut rolled: BTreeMap<DateTime<Utc>, MetricAggregate> = BTreeMap::new();
    for (t, a) in datapoints.range(oldest..newest + step) {
        rolled
            .entry(period_start(*t, definition.period))
            .or_default()
            .merge(a);
    }
    let all: Vec<Period> = (0..span)
        .map(|i| {
            let start = newest - step * i as i32;
            let aggregate = rolled.get(&start);
            let value = aggregate.and_then(|a| definition.statistic.of(a));
            Period {
                start,
                value,
                sample_count: value.and(aggregate.map(MetricAggregate::sample_count)),
            }
        })
        .collect();
    let skip = usize::from(all[0].value.is_none());
    let periods = &all[skip..skip + lookback as usize];

    // The datapoints the decision rests on, most recent first.
    let evaluated: Vec<Period> = match mode {
        TreatMissingData::Missing | TreatMissingData::Ignore => periods
            .iter()
            .filter(|p| p.value.is_some())
            .take(n as usize)
            .copied()
            .collect(),
        TreatMissingData::Breaching | TreatMissingData::NotBreaching => periods.to_vec(),
    };

    if let AlarmStatistic::ExtendedStatistic(e) = &definition.statistic
        && let Some(p) = e.percentile()
        && definition.evaluate_low_sample_count_percentile == Some(LowSampleCountPercentile::Ignore)
        && p < 100.0
    {
        let needed = 10.0 / (1.0 - p / 100.0);
        if evaluated
            .iter()
            .any(|d| d.sample_count.is_some_and(|c| c < needed))
        {
            return None;
        }
    }

    let threshold = definition.threshold;
    let op = definition.comparison_operator;
    let breaches = |d: &Period| d.value.map(|v| op.breaches(v, threshold));
    let present = evaluated.iter().filter(|d| d.value.is_some()).count();

    let (new_value, reason) = if present == 0
        && matches!(mode, TreatMissingData::Missing | TreatMissingData::Ignore)
    {
        if mode == TreatMissingData::Ignore {
            return None;
        }
        (
            StateValue::InsufficientData,
            format!(
                "Insufficient Data: {n} {} unknown.",
                plural(n as usize, "datapoint was", "datapoints were")
            ),
        )
    } else {
        let missing_bad = mode == TreatMissingData::Breaching;
        let missing = evaluated.len() - present;
        let breaching = evaluated
            .iter()
            .filter(|d| breaches(d).unwrap_or(missing_bad))
            .count();
        let needed = (m as usize).min(evaluated.len());
        let new_value = if breaching >= needed {
            StateValue::Alarm
        } else {
            StateValue::Ok
        };
        if new_value == current.value {
            return None;
        }
        let to_alarm = new_value == StateValue::Alarm;
        // The real datapoints that agree with the new state.
        let agreeing: Vec<&Period> = evaluated
            .iter()
            .filter(|d| breaches(d) == Some(to_alarm))
            .collect();
        let reason = if agreeing.is_empty() {
            format!(
                "Threshold Crossed: no datapoints were received for {missing} {} and {missing} missing {} treated as [{}].",
                plural(missing, "period", "periods"),
                plural(missing, "datapoint was", "datapoints were"),
                if missing_bad {
                    "Breaching"
                } else {
                    "NonBreaching"
                },
            )
        } else {
            let k = agreeing.len();
            let list: Vec<String> = agreeing
                .iter()
                .map(|d| {
                    format!(
                        "{} ({})",
                        java_double(d.value.unwrap_or_default()),
                        reason_timestamp(d.start)
                    )
                })
                .collect();
            let verb = format!(
                "{} {}{} the threshold ({})",
                plural(k, "was", "were"),
                if to_alarm { "" } else { "not " },
                op.phrase(),
                java_double(threshold)
            );
            let text = |listed: &[String]| match definition.datapoints_to_alarm {
                // An explicit M gets CloudWatch's M-of-N wording.
                Some(_) => {
                    let minimum = if to_alarm { m } else { n - m + 1 };
                    format!(
                        "Threshold Crossed: {k} out of the last {} datapoints [{}] {verb} (minimum {minimum} {} for {} -> {} transition).",
                        evaluated.len(),
                        listed.join(", "),
                        plural(minimum as usize, "datapoint", "datapoints"),
                        current.value,
                        new_value,
                    )
                }
                None => format!(
                    "Threshold Crossed: {k} {} [{}] {verb}.",
                    plural(k, "datapoint", "datapoints"),
                    listed.join(", "),
                ),
            };
            // `StateReason` holds at most 1023 characters: list the most
            // recent datapoints that fit (the count stays the true count).
            // (All of it is ASCII: bytes are characters.)
            let mut room = MAX_STATE_REASON.saturating_sub(text(&[]).len());
            let mut shown = 0;
            for entry in &list {
                let needs = entry.len() + if shown == 0 { 0 } else { 2 };
                if shown > 0 && needs > room {
                    break;
                }
                room = room.saturating_sub(needs);
                shown += 1;
            }
            text(&list[..shown])
        };
        (new_value, reason)
    };
    if new_value == current.value {
        return None;
    }

    // Reason data: the insufficient case lists the window's timestamps.
    let listed: Vec<Period> = if evaluated.is_empty() {
        periods.iter().take(n as usize).copied().collect()
    } else {
        evaluated
    };
    let mut recent: Vec<&Period> = listed.iter().filter(|d| d.value.is_some()).collect();
    recent.reverse();
    let (statistic, extended_statistic) = match &definition.statistic {
        AlarmStatistic::Statistic(s) => (Some(s.as_str().to_owned()), None),
        AlarmStatistic::ExtendedStatistic(e) => (None, Some(e.name().to_owned())),
    };
    let data = ReasonData {
        version: "1.0",
        query_date: cw_timestamp(now),
        start_date: recent.first().map(|d| cw_timestamp(d.start)),
        unit: definition.unit.map(|u| u.as_str()),
        statistic,
        extended_statistic,
        period: definition.period,
        recent_datapoints: recent.iter().filter_map(|d| d.value).collect(),
        threshold,
        evaluated_datapoints: listed
            .iter()
            .map(|d| EvaluatedDatapoint {
                timestamp: cw_timestamp(d.start),
                sample_count: d.sample_count,
                value: d.value,
            })
            .collect(),
    };
    let reason_data = Some(fit_reason_data(data));
    Some(StateChange {
        old: current.clone(),
        new: AlarmState {
            value: new_value,
            reason,
            reason_data,
            timestamp: now,
        },
    })
}

/// `StateReasonData` holds at most 4000 characters: keep the most recent
/// evaluated datapoints that fit, then (if one alone is too many) the most
/// recent values that fit. Binary searches: evaluation stays cheap for the
/// longest windows.
fn fit_reason_data(mut data: ReasonData) -> String {
    let size = |d: &ReasonData| serde_json::to_string(d).map_or(usize::MAX, |s| s.len());
    if size(&data) <= MAX_STATE_REASON_DATA {
        return serde_json::to_string(&data).unwrap_or_default();
    }
    let all_evaluated = std::mem::take(&mut data.evaluated_datapoints);
    let all_recent = std::mem::take(&mut data.recent_datapoints);
    // The largest count in [1, len] that fits, or 1.
    let largest = |len: usize, fits: &mut dyn FnMut(usize) -> bool| {
        let (mut lo, mut hi) = (1, len.max(1));
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if fits(mid) { lo = mid } else { hi = mid - 1 }
        }
        lo
    };
    data.recent_datapoints = all_recent.clone();
    let keep = largest(all_evaluated.len(), &mut |k| {
        data.evaluated_datapoints = all_evaluated[..k].to_vec();
        size(&data) <= MAX_STATE_REASON_DATA
    });
    data.evaluated_datapoints = all_evaluated[..keep.min(all_evaluated.len())].to_vec();
    if size(&data) > MAX_STATE_REASON_DATA {
        // Values are oldest first: keep the newest (the tail).
        let n = all_recent.len();
        let keep = largest(n, &mut |k| {
            data.recent_datapoints = all_recent[n - k..].to_vec();
            size(&data) <= MAX_STATE_REASON_DATA
        });
        data.recent_datapoints = all_recent[n - keep.min(n)..].to_vec();
    }
    serde_json::to_string(&data).unwrap_or_default()
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// `StateReasonData` as CloudWatch writes it for a threshold alarm; members
/// in CloudWatch's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReasonData {
    version: &'static str,
    query_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    statistic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extended_statistic: Option<String>,
    period: u32,
    recent_datapoints: Vec<f64>,
    threshold: f64,
    evaluated_datapoints: Vec<EvaluatedDatapoint>,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct EvaluatedDatapoint {
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sample_count: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
}

/// `SetAlarmState`: a manual state change with the caller's reason and
/// reason data.
///
/// Checks `StateReason` (at most 1023 characters: `ValidationError`) and
/// `StateReasonData` (at most 4000 characters, and JSON: `InvalidFormat`).
/// Returns `Ok(None)` when the alarm already is in `value`: CloudWatch runs
/// actions and records history only for a state that differs.
pub fn set_alarm_state(
    current: &AlarmState,
    value: StateValue,
    reason: &str,
    reason_data: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<StateChange>, ValidationError> {
    if reason.chars().count() > MAX_STATE_REASON {
        return Err(ValidationError::constraint(
            "stateReason",
            reason,
            "Member must have length less than or equal to 1023",
        ));
    }
    if let Some(data) = reason_data {
        if data.chars().count() > MAX_STATE_REASON_DATA {
            return Err(ValidationError::constraint(
                "stateReasonData",
                data,
                "Member must have length less than or equal to 4000",
            ));
        }
        if serde_json::from_str::<serde_json::Value>(data).is_err() {
            return Err(ValidationError::new(
                ErrorCode::InvalidFormat,
                "Data was not syntactically valid JSON",
            ));
        }
    }
    if value == current.value {
        return Ok(None);
    }
    Ok(Some(StateChange {
        old: current.clone(),
        new: AlarmState {
            value,
            reason: reason.to_owned(),
            reason_data: reason_data.map(str::to_owned),
            timestamp: now,
        },
    }))
}
