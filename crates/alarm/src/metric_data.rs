//! `PutMetricData` datums and `GetMetricStatistics` requests: validation
//! with CloudWatch's rules, and the samples a datum contributes.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::definition::{Dimension, MAX_DIMENSIONS, StandardUnit};
use crate::error::{ErrorCode, ValidationError};
use crate::format::java_double;
use crate::stats::{ExtendedStatistic, MetricAggregate, Statistic, StatisticSet};

/// The most datums in one `PutMetricData`.
pub const MAX_METRIC_DATA: usize = 1000;
/// The most distinct `Values` in one datum.
pub const MAX_VALUES: usize = 150;
/// The most datapoints one `GetMetricStatistics` may return.
pub const MAX_DATAPOINTS: i64 = 1440;

/// `MetricDatum` as it arrives (JSON 1.0 body, PascalCase).
///
/// `Timestamp` is not deserialized: the JSON protocol sends epoch seconds
/// and the query protocol ISO 8601, so the HTTP layer parses it and sets
/// [`timestamp`](Self::timestamp).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MetricDatumInput {
    /// `MetricName`.
    pub metric_name: Option<String>,
    /// `Dimensions`.
    pub dimensions: Option<Vec<Dimension>>,
    /// `Timestamp`, set by the caller (see above); `None` is "now".
    #[serde(skip)]
    pub timestamp: Option<DateTime<Utc>>,
    /// `Value`.
    pub value: Option<f64>,
    /// `StatisticValues`.
    pub statistic_values: Option<StatisticSet>,
    /// `Values`.
    pub values: Option<Vec<f64>>,
    /// `Counts`.
    pub counts: Option<Vec<f64>>,
    /// `Unit`.
    pub unit: Option<String>,
    /// `StorageResolution`: 1 or 60.
    pub storage_resolution: Option<i64>,
}

/// A validated datum: which metric, when, and the samples it carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricDatum {
    /// `MetricName`.
    pub metric_name: String,
    /// `Dimensions`, sorted by name (CloudWatch treats a metric's dimensions
    /// as a set; sorting gives one key per metric).
    pub dimensions: Vec<Dimension>,
    /// `Timestamp`, or the time of the request.
    pub timestamp: DateTime<Utc>,
    /// `Unit` (`None` when not given; CloudWatch stores `None`).
    pub unit: Option<StandardUnit>,
    /// `StorageResolution`: 1 (high resolution) or 60.
    pub storage_resolution: u32,
    /// The samples.
    pub aggregate: MetricAggregate,
}

/// AWS accepts values in `[-2^360, 2^360]`, not NaN or infinite, and
/// (like its base-2 storage) none closer to zero than `2^-360`, except 0.
fn value_ok(v: f64) -> bool {
    let limit = 2f64.powi(360);
    v.is_finite() && v.abs() <= limit && (v == 0.0 || v.abs() >= 1.0 / limit)
}

fn invalid_value(v: f64, parameter: &str) -> ValidationError {
    ValidationError::new(
        ErrorCode::InvalidParameterValue,
        format!(
            "The value {} for parameter {parameter} is invalid.",
            java_double(v)
        ),
    )
}

/// Validates the `PutMetricData` request envelope: `Namespace` required,
/// 1–255 characters, not starting with `AWS/` (reserved for AWS's own
/// metrics) nor `:`; at most [`MAX_METRIC_DATA`] datums.
pub fn validate_put_metric_data(
    namespace: Option<&str>,
    datums: usize,
) -> Result<(), ValidationError> {
    let namespace = namespace.ok_or_else(|| ValidationError::missing("Namespace"))?;
    if namespace.is_empty() || namespace.chars().count() > 255 || namespace.starts_with(':') {
        return Err(ValidationError::constraint(
            "namespace",
            namespace,
            "Member must have length between 1 and 255 and satisfy regular expression pattern: [^:].*",
        ));
    }
    if namespace.starts_with("AWS/") {
        return Err(ValidationError::new(
            ErrorCode::InvalidParameterValue,
            format!("The value {namespace} for parameter Namespace is invalid."),
        ));
    }
    if datums > MAX_METRIC_DATA {
        return Err(ValidationError::new(
            ErrorCode::InvalidParameterValue,
            format!(
                "The collection MetricData must not have a size greater than {MAX_METRIC_DATA}."
            ),
        ));
    }
    Ok(())
}

/// Validates datum `index` (1-based, as in `MetricData.member.1`) of a
/// `PutMetricData` received at `now`, and returns its samples.
///
/// Rules: `MetricName` required; exactly one of `Value`, `StatisticValues`,
/// `Values` (`InvalidParameterCombination` when two are given,
/// `MissingParameter` when none); values finite within `±2^360`; at most
/// [`MAX_VALUES`] `Values`, `Counts` as long as `Values` and not negative;
/// a statistic set with `SampleCount > 0` and `Minimum <= Maximum`;
/// `Unit` a `StandardUnit`; `StorageResolution` 1 or 60; at most 30
/// dimensions; `Timestamp` no more than two weeks before `now` nor two
/// hours after.
pub fn validate_metric_datum(
    index: usize,
    datum: &MetricDatumInput,
    now: DateTime<Utc>,
) -> Result<MetricDatum, ValidationError> {
    let p = |name: &str| format!("MetricData.member.{index}.{name}");
    let metric_name = datum
        .metric_name
        .clone()
        .ok_or_else(|| ValidationError::missing(&p("MetricName")))?;
    if metric_name.is_empty() || metric_name.chars().count() > 255 {
        return Err(ValidationError::constraint(
            &format!("metricData.{index}.member.metricName"),
            &metric_name,
            "Member must have length between 1 and 255",
        ));
    }
    let mut dimensions = datum.dimensions.clone().unwrap_or_default();
    if dimensions.len() > MAX_DIMENSIONS {
        return Err(ValidationError::new(
            ErrorCode::InvalidParameterValue,
            format!(
                "The collection {} must not have a size greater than {MAX_DIMENSIONS}.",
                p("Dimensions")
            ),
        ));
    }
    for d in &dimensions {
        if d.name.is_empty() || d.name.chars().count() > 255 {
            return Err(ValidationError::constraint(
                &format!("metricData.{index}.member.dimensions.member.name"),
                &d.name,
                "Member must have length between 1 and 255",
            ));
        }
        if d.value.is_empty() || d.value.chars().count() > 1024 {
            return Err(ValidationError::constraint(
                &format!("metricData.{index}.member.dimensions.member.value"),
                &d.value,
                "Member must have length between 1 and 1024",
            ));
        }
    }
    dimensions.sort();
    let unit = match &datum.unit {
        Some(u) => Some(u.parse::<StandardUnit>().map_err(|_| {
            ValidationError::new(
                ErrorCode::InvalidParameterValue,
                format!("The value {u} for parameter {} is invalid.", p("Unit")),
            )
        })?),
        None => None,
    };
    let storage_resolution = match datum.storage_resolution {
        None | Some(60) => 60,
        Some(1) => 1,
        Some(other) => {
            return Err(ValidationError::new(
                ErrorCode::InvalidParameterValue,
                format!(
                    "The value {other} for parameter {} is invalid. Valid values are 1 and 60.",
                    p("StorageResolution")
                ),
            ));
        }
    };
    let timestamp = datum.timestamp.unwrap_or(now);
    if timestamp < now - Duration::days(14) || timestamp > now + Duration::hours(2) {
        return Err(ValidationError::new(
            ErrorCode::InvalidParameterValue,
            format!(
                "The parameter {} must specify a time no more than two weeks in the past and no more than two hours in the future.",
                p("Timestamp")
            ),
        ));
    }

    let given: Vec<&str> = [
        ("Value", datum.value.is_some()),
        ("StatisticValues", datum.statistic_values.is_some()),
        ("Values", datum.values.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if given.len() > 1 {
        return Err(ValidationError::new(
            ErrorCode::InvalidParameterCombination,
            format!(
                "The parameters {} and {} are mutually exclusive and you have specified both.",
                p(given[0]),
                p(given[1])
            ),
        ));
    }
    if datum.counts.is_some() && datum.values.is_none() {
        return Err(ValidationError::new(
            ErrorCode::InvalidParameterCombination,
            format!("The parameter {} requires {}.", p("Counts"), p("Values")),
        ));
    }
    let mut aggregate = MetricAggregate::new();
    if let Some(v) = datum.value {
        if !value_ok(v) {
            return Err(invalid_value(v, &p("Value")));
        }
        aggregate.add_value(v);
    } else if let Some(set) = &datum.statistic_values {
        for (name, v) in [
            ("SampleCount", set.sample_count),
            ("Sum", set.sum),
            ("Minimum", set.minimum),
            ("Maximum", set.maximum),
        ] {
            if !value_ok(v) {
                return Err(invalid_value(v, &p(&format!("StatisticValues.{name}"))));
            }
        }
        if set.sample_count <= 0.0 {
            return Err(invalid_value(
                set.sample_count,
                &p("StatisticValues.SampleCount"),
            ));
        }
        if set.minimum > set.maximum {
            return Err(ValidationError::new(
                ErrorCode::InvalidParameterValue,
                format!(
                    "The parameter {} must not be greater than {}.",
                    p("StatisticValues.Minimum"),
                    p("StatisticValues.Maximum")
                ),
            ));
        }
        aggregate.add_statistic_set(set);
    } else if let Some(values) = &datum.values {
        if values.len() > MAX_VALUES {
            return Err(ValidationError::new(
                ErrorCode::InvalidParameterValue,
                format!(
                    "The collection {} must not have a size greater than {MAX_VALUES}.",
                    p("Values")
                ),
            ));
        }
        if let Some(v) = values.iter().find(|v| !value_ok(**v)) {
            return Err(invalid_value(*v, &p("Values")));
        }
        let counts = datum.counts.clone().unwrap_or_default();
        if datum.counts.is_some() && counts.len() != values.len() {
            return Err(ValidationError::new(
                ErrorCode::InvalidParameterCombination,
                format!(
                    "The parameters {} and {} must be of the same size.",
                    p("Values"),
                    p("Counts")
                ),
            ));
        }
        if let Some(c) = counts.iter().find(|c| !c.is_finite() || **c < 0.0) {
            return Err(invalid_value(*c, &p("Counts")));
        }
        aggregate.add_values(values, &counts);
    } else {
        return Err(ValidationError::new(
            ErrorCode::MissingParameter,
            format!(
                "One of the parameters {}, {} or {} is required.",
                p("Value"),
                p("StatisticValues"),
                p("Values")
            ),
        ));
    }
    Ok(MetricDatum {
        metric_name,
        dimensions,
        timestamp,
        unit,
        storage_resolution,
        aggregate,
    })
}

/// `GetMetricStatisticsInput` once the HTTP layer has parsed it (times
/// are wire-format specific, as for datums).
#[derive(Debug, Clone, PartialEq)]
pub struct GetMetricStatisticsInput {
    /// `Namespace`.
    pub namespace: Option<String>,
    /// `MetricName`.
    pub metric_name: Option<String>,
    /// `StartTime` (inclusive).
    pub start_time: Option<DateTime<Utc>>,
    /// `EndTime` (exclusive).
    pub end_time: Option<DateTime<Utc>>,
    /// `Period`.
    pub period: Option<i64>,
    /// `Statistics`.
    pub statistics: Vec<String>,
    /// `ExtendedStatistics`.
    pub extended_statistics: Vec<String>,
    /// `Unit`.
    pub unit: Option<String>,
}

/// A validated `GetMetricStatistics` query.
#[derive(Debug, Clone, PartialEq)]
pub struct StatisticsQuery {
    /// `Namespace`.
    pub namespace: String,
    /// `MetricName`.
    pub metric_name: String,
    /// `StartTime`, inclusive.
    pub start_time: DateTime<Utc>,
    /// `EndTime`, exclusive.
    pub end_time: DateTime<Utc>,
    /// `Period`, seconds.
    pub period: u32,
    /// The plain statistics asked for.
    pub statistics: Vec<Statistic>,
    /// The extended statistics asked for.
    pub extended_statistics: Vec<ExtendedStatistic>,
    /// `Unit`.
    pub unit: Option<StandardUnit>,
}

/// Validates `GetMetricStatistics`: the required members; `Period` 1, 5,
/// 10, 20, 30 or a multiple of 60; `StartTime` before `EndTime`; one to
/// five `Statistics` or one to ten `ExtendedStatistics`, not both; at most
/// [`MAX_DATAPOINTS`] periods in the range (AWS's own message).
pub fn validate_get_metric_statistics(
    input: &GetMetricStatisticsInput,
) -> Result<StatisticsQuery, ValidationError> {
    let namespace = input
        .namespace
        .clone()
        .ok_or_else(|| ValidationError::missing("Namespace"))?;
    let metric_name = input
        .metric_name
        .clone()
        .ok_or_else(|| ValidationError::missing("MetricName"))?;
    let start_time = input
        .start_time
        .ok_or_else(|| ValidationError::missing("StartTime"))?;
    let end_time = input
        .end_time
        .ok_or_else(|| ValidationError::missing("EndTime"))?;
    let period = input
        .period
        .ok_or_else(|| ValidationError::missing("Period"))?;
    if period < 1 {
        return Err(ValidationError::constraint(
            "period",
            &period.to_string(),
            "Member must have value greater than or equal to 1",
        ));
    }
    if !([1, 5, 10, 20, 30].contains(&period) || period % 60 == 0) {
        return Err(ValidationError::new(
            ErrorCode::InvalidParameterValue,
            "The parameter Period must be 1, 5, 10, 20, 30, or a multiple of 60.",
        ));
    }
    if start_time >= end_time {
        return Err(ValidationError::new(
            ErrorCode::InvalidParameterValue,
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    match (input.statistics.len(), input.extended_statistics.len()) {
        (0, 0) => {
            return Err(ValidationError::new(
                ErrorCode::MissingParameter,
                "Must specify either Statistics or ExtendedStatistics.",
            ));
        }
        (s, e) if s > 0 && e > 0 => {
            return Err(ValidationError::new(
                ErrorCode::InvalidParameterCombination,
                "Must specify either Statistics or ExtendedStatistics, but not both.",
            ));
        }
        (s, _) if s > 5 => {
            return Err(ValidationError::constraint(
                "statistics",
                &format!("[{}]", input.statistics.join(", ")),
                "Member must have length less than or equal to 5",
            ));
        }
        (_, e) if e > 10 => {
            return Err(ValidationError::constraint(
                "extendedStatistics",
                &format!("[{}]", input.extended_statistics.join(", ")),
                "Member must have length less than or equal to 10",
            ));
        }
        _ => {}
    }
    let mut statistics = Vec::new();
    for s in &input.statistics {
        let stat = s.parse::<Statistic>().map_err(|_| {
            ValidationError::constraint(
                "statistics",
                s,
                "Member must satisfy enum value set: [SampleCount, Average, Sum, Minimum, Maximum]",
            )
        })?;
        if !statistics.contains(&stat) {
            statistics.push(stat);
        }
    }
    let extended_statistics = input
        .extended_statistics
        .iter()
        .map(|e| ExtendedStatistic::parse(e))
        .collect::<Result<Vec<_>, _>>()?;
    let unit = match &input.unit {
        Some(u) => Some(u.parse::<StandardUnit>().map_err(|_| {
            ValidationError::constraint(
                "unit",
                u,
                "Member must satisfy enum value set: [Seconds, Microseconds, Milliseconds, Bytes, Kilobytes, Megabytes, Gigabytes, Terabytes, Bits, Kilobits, Megabits, Gigabits, Terabits, Percent, Count, Bytes/Second, Kilobytes/Second, Megabytes/Second, Gigabytes/Second, Terabytes/Second, Bits/Second, Kilobits/Second, Megabits/Second, Gigabits/Second, Terabits/Second, Count/Second, None]",
            )
        })?),
        None => None,
    };
    let seconds = (end_time - start_time).num_seconds();
    let datapoints = (seconds + period - 1) / period;
    if datapoints > MAX_DATAPOINTS {
        return Err(ValidationError::new(
            ErrorCode::InvalidParameterCombination,
            format!(
                "You have requested up to {} datapoints, which exceeds the limit of 1,440. You may reduce the datapoints requested by increasing Period, or decreasing the time range.",
                thousands(datapoints)
            ),
        ));
    }
    Ok(StatisticsQuery {
        namespace,
        metric_name,
        start_time,
        end_time,
        period: u32::try_from(period).unwrap_or(u32::MAX),
        statistics,
        extended_statistics,
        unit,
    })
}

/// `1441` → `1,441`.
fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) && c != '-' {
            out.push(',');
        }
        out.push(c);
    }
    out
}
