//! The CloudWatch metrics-and-alarms engine: per-period statistics, the
//! validation of `PutMetricData`, `GetMetricStatistics` and
//! `PutMetricAlarm`, alarm evaluation with CloudWatch's semantics, history
//! items and the SNS notification of a state change.
//!
//! The crate does no I/O and reads no clock: time is always passed in.
//! Storage and the HTTP service call it.
//!
//! # Use
//!
//! ```
//! use std::collections::BTreeMap;
//! use cairn_alarm::*;
//! use chrono::{TimeZone, Utc};
//!
//! let input: PutMetricAlarmInput = serde_json::from_str(r#"{
//!     "AlarmName": "root-login", "MetricName": "RootLogins", "Namespace": "CIS",
//!     "Statistic": "Sum", "Period": 300, "EvaluationPeriods": 1,
//!     "Threshold": 1, "ComparisonOperator": "GreaterThanOrEqualToThreshold"
//! }"#).unwrap();
//! let alarm = validate_put_metric_alarm(&input).unwrap();
//!
//! let created = Utc.with_ymd_and_hms(2026, 2, 12, 13, 30, 0).unwrap();
//! let state = AlarmState::initial(created);
//!
//! let now = Utc.with_ymd_and_hms(2026, 2, 12, 13, 41, 7).unwrap();
//! let mut points = BTreeMap::new();
//! points.insert(period_start(now, 300), MetricAggregate::of_value(1.0));
//! let change = evaluate(&alarm, &state, &points, now).unwrap();
//! assert_eq!(change.new.value, StateValue::Alarm);
//! assert_eq!(
//!     change.new.reason,
//!     "Threshold Crossed: 1 datapoint [1.0 (12/02/26 13:40:00)] was greater than or equal to the threshold (1.0)."
//! );
//! ```
//!
//! # Formats confirmed against CloudWatch output
//!
//! - `StateReason`: `Threshold Crossed: 1 datapoint [0.0 (08/03/24
//!   13:56:00)] was less than the threshold (20.0).`; with an explicit
//!   `DatapointsToAlarm`: `Threshold Crossed: 3 out of the last 3
//!   datapoints [...] were not greater than or equal to the threshold
//!   (80.0) (minimum 1 datapoint for ALARM -> OK transition).`; datapoints
//!   most recent first, numbers as Java prints doubles, times day/month/year
//!   of the period start; `Threshold Crossed: no datapoints were received
//!   for 1 period and 1 missing datapoint was treated as [Breaching].`
//!   (or `[NonBreaching]`); `Insufficient Data: 1 datapoint was unknown.`;
//!   `Unchecked: Initial alarm creation`.
//! - `StateReasonData`: `version`, `queryDate`, `startDate` (oldest
//!   datapoint; absent without datapoints), `unit` (when set),
//!   `statistic`, `period`, `recentDatapoints` (oldest first), `threshold`,
//!   `evaluatedDatapoints` (`timestamp`, `sampleCount`, `value`, most
//!   recent first; timestamps only for periods without data).
//! - The SNS message's members and their order, `Statistic` upper case,
//!   dimensions as `{"value","name"}`, `Unit` `null`, `DatapointsToAlarm`
//!   only when set, `EvaluateLowSampleCountPercentile` `""` when unset;
//!   the subject `ALARM: "name" in US East (N. Virginia)`.
//! - History: summary `Alarm updated from INSUFFICIENT_DATA to ALARM`; data
//!   `{"version":"1.0","oldState":{...},"newState":{...}}` with
//!   `stateReasonData` embedded as an object.
//! - Percentiles need raw values: a statistic set counts only when its
//!   `SampleCount` is 1 or its `Minimum` equals its `Maximum`, and
//!   percentiles are unavailable when any value is negative (botocore's
//!   documentation of `GetMetricStatistics`).
//! - `PutMetricData`: one of `Value`/`StatisticValues`/`Values`, values
//!   within ±2^360 and finite, at most 150 `Values`, `Counts` as long as
//!   `Values`, timestamps from two weeks before to two hours after now,
//!   at most 1000 datums; `GetMetricStatistics`: at most 1,440 datapoints
//!   (AWS's message), `Period` 1, 5, 10, 20, 30 or a multiple of 60.
//! - `Period` 10, 20, 30 or a multiple of 60 (botocore's current model);
//!   `Period × EvaluationPeriods` at most 7 days, 1 day under one-hour
//!   periods; at most 5 actions per state and 30 dimensions.
//!
//! # Where Cairn chose, AWS being silent
//!
//! - The current, still-open period is evaluated once it holds data; an
//!   open period without data is not counted as missing (see
//!   [`evaluate`]).
//! - With `missing`/`ignore`, Cairn looks back [`LOOKBACK_FACTOR`] × N
//!   periods for datapoints.
//! - Percentiles are nearest-rank (the lowest sample with at least p % of
//!   samples at or below it), so they are always an observed value.
//!   Trimmed statistics count values `v` with `P(a) < v <= P(b)` (the
//!   minimum is kept when the lower bound is 0 % or absent); `PR(n:m)` is
//!   the percentage of values with `n < v <= m`. Range bounds may be any
//!   percentage 0–100 (botocore's text says 10–90 for `TM(X%:X%)`, which
//!   would refuse the documented `tm99`-style shorthands' equivalents).
//! - A datum's dimensions are sorted by name, giving one key per metric.
//! - `evaluatedDatapoints` lists every evaluated period (CloudWatch's
//!   samples sometimes list only the newest); an extended statistic goes
//!   in `extendedStatistic` rather than `statistic`.
//! - When the datapoints agreeing with the new state are partly missing
//!   periods (`breaching`/`notBreaching`), the reason counts and lists the
//!   real datapoints only.
//! - Long windows are cut to the API's limits: `StateReason` (1023
//!   characters) lists the most recent datapoints that fit while keeping
//!   the true count; `StateReasonData` (4000) keeps the most recent
//!   evaluated datapoints, then recent values, that fit; a state update's
//!   `HistoryData` (4095) drops the old, then the new, `stateReasonData`.
//! - Error messages where AWS's wording was not found (see
//!   [`validate_put_metric_alarm`]); codes are AWS's.
//! - Configuration-update and action history data follow CloudWatch's
//!   shape as remembered (`createdAlarm`, `originalUpdatedAlarm`/
//!   `updatedAlarm`, `actionState`), not confirmed against output.

mod definition;
mod error;
mod evaluate;
mod format;
mod history;
mod metric_data;
mod notify;
mod stats;

pub use definition::{
    AlarmAction, AlarmDefinition, AlarmStatistic, ComparisonOperator, Dimension,
    LowSampleCountPercentile, MAX_ACTIONS, MAX_DIMENSIONS, MAX_EVALUATION_SECONDS,
    MAX_EVALUATION_SECONDS_SHORT_PERIOD, PutMetricAlarmInput, StandardUnit, Tag, TreatMissingData,
    validate_put_metric_alarm,
};
pub use error::{ErrorCode, ValidationError};
pub use evaluate::{
    AlarmState, INITIAL_REASON, LOOKBACK_FACTOR, MAX_STATE_REASON, MAX_STATE_REASON_DATA,
    StateChange, StateValue, evaluate, set_alarm_state,
};
pub use format::{cw_timestamp, java_double, reason_timestamp};
pub use history::{
    ActionOutcome, AlarmContext, AlarmHistoryItem, HistoryItemType, MAX_HISTORY_DATA, action_item,
    configuration_update_item, state_update_item,
};
pub use metric_data::{
    GetMetricStatisticsInput, MAX_DATAPOINTS, MAX_METRIC_DATA, MAX_VALUES, MetricDatum,
    MetricDatumInput, StatisticsQuery, validate_get_metric_statistics, validate_metric_datum,
    validate_put_metric_data,
};
pub use notify::{AlarmNotification, REGION_NAMES, Trigger, TriggerDimension, region_name};
pub use stats::{
    Bound, Datapoint, ExtendedKind, ExtendedStatistic, MAX_EXACT_VALUES, MetricAggregate,
    Statistic, StatisticSet, period_start, roll_up,
};
