//! `PutMetricAlarm`: the request as it arrives, its validation, and the
//! normalised alarm definition that is stored and evaluated.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, ValidationError};
use crate::stats::{ExtendedStatistic, Statistic};

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }
        impl $name {
            /// Every value, in the API model's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The text on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($text => Ok($name::$variant),)+ _ => Err(()) }
            }
        }
    };
}

wire_enum! {
    /// `StandardUnit`.
    StandardUnit {
        /// Seconds.
        Seconds = "Seconds",
        /// Microseconds.
        Microseconds = "Microseconds",
        /// Milliseconds.
        Milliseconds = "Milliseconds",
        /// Bytes.
        Bytes = "Bytes",
        /// Kilobytes.
        Kilobytes = "Kilobytes",
        /// Megabytes.
        Megabytes = "Megabytes",
        /// Gigabytes.
        Gigabytes = "Gigabytes",
        /// Terabytes.
        Terabytes = "Terabytes",
        /// Bits.
        Bits = "Bits",
        /// Kilobits.
        Kilobits = "Kilobits",
        /// Megabits.
        Megabits = "Megabits",
        /// Gigabits.
        Gigabits = "Gigabits",
        /// Terabits.
        Terabits = "Terabits",
        /// Percent.
        Percent = "Percent",
        /// Count.
        Count = "Count",
        /// Bytes/Second.
        BytesPerSecond = "Bytes/Second",
        /// Kilobytes/Second.
        KilobytesPerSecond = "Kilobytes/Second",
        /// Megabytes/Second.
        MegabytesPerSecond = "Megabytes/Second",
        /// Gigabytes/Second.
        GigabytesPerSecond = "Gigabytes/Second",
        /// Terabytes/Second.
        TerabytesPerSecond = "Terabytes/Second",
        /// Bits/Second.
        BitsPerSecond = "Bits/Second",
        /// Kilobits/Second.
        KilobitsPerSecond = "Kilobits/Second",
        /// Megabits/Second.
        MegabitsPerSecond = "Megabits/Second",
        /// Gigabits/Second.
        GigabitsPerSecond = "Gigabits/Second",
        /// Terabits/Second.
        TerabitsPerSecond = "Terabits/Second",
        /// Count/Second.
        CountPerSecond = "Count/Second",
        /// None.
        None = "None",
    }
}

wire_enum! {
    /// `ComparisonOperator`; the static-threshold ones (Cairn refuses the
    /// anomaly-detection ones, see [`validate_put_metric_alarm`]).
    ComparisonOperator {
        /// `>=`.
        GreaterThanOrEqualToThreshold = "GreaterThanOrEqualToThreshold",
        /// `>`.
        GreaterThanThreshold = "GreaterThanThreshold",
        /// `<`.
        LessThanThreshold = "LessThanThreshold",
        /// `<=`.
        LessThanOrEqualToThreshold = "LessThanOrEqualToThreshold",
    }
}

impl ComparisonOperator {
    /// True when `value` breaches `threshold`.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            ComparisonOperator::GreaterThanOrEqualToThreshold => value >= threshold,
            ComparisonOperator::GreaterThanThreshold => value > threshold,
            ComparisonOperator::LessThanThreshold => value < threshold,
            ComparisonOperator::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    /// The words in a `StateReason` (`greater than or equal to`).
    pub fn phrase(self) -> &'static str {
        match self {
            ComparisonOperator::GreaterThanOrEqualToThreshold => "greater than or equal to",
            ComparisonOperator::GreaterThanThreshold => "greater than",
            ComparisonOperator::LessThanThreshold => "less than",
            ComparisonOperator::LessThanOrEqualToThreshold => "less than or equal to",
        }
    }
}

/// The comparison operators of anomaly-detection alarms, refused by Cairn.
const ANOMALY_OPERATORS: [&str; 3] = [
    "LessThanLowerOrGreaterThanUpperThreshold",
    "LessThanLowerThreshold",
    "GreaterThanUpperThreshold",
];

wire_enum! {
    /// `TreatMissingData`.
    TreatMissingData {
        /// Missing periods count as breaching.
        Breaching = "breaching",
        /// Missing periods count as not breaching.
        NotBreaching = "notBreaching",
        /// Missing periods keep the current state.
        Ignore = "ignore",
        /// Missing periods are skipped; all missing is `INSUFFICIENT_DATA`.
        Missing = "missing",
    }
}

wire_enum! {
    /// `EvaluateLowSampleCountPercentile`.
    LowSampleCountPercentile {
        /// Evaluate whatever the number of samples.
        Evaluate = "evaluate",
        /// Keep the current state while samples are too few.
        Ignore = "ignore",
    }
}

/// A `Dimension`: name and value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Dimension {
    /// 1–255 characters.
    pub name: String,
    /// 1–1024 characters.
    pub value: String,
}

/// A `Tag` of the alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// 1–128 characters.
    pub key: String,
    /// 0–256 characters.
    pub value: String,
}

/// `PutMetricAlarmInput` as it arrives: every member optional and enums
/// still text, so that validation can answer with CloudWatch's errors.
/// Deserializes from the JSON 1.0 body (PascalCase members).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PutMetricAlarmInput {
    /// `AlarmName`.
    pub alarm_name: Option<String>,
    /// `AlarmDescription`.
    pub alarm_description: Option<String>,
    /// `ActionsEnabled` (default true).
    pub actions_enabled: Option<bool>,
    /// `OKActions`.
    #[serde(rename = "OKActions")]
    pub ok_actions: Option<Vec<String>>,
    /// `AlarmActions`.
    pub alarm_actions: Option<Vec<String>>,
    /// `InsufficientDataActions`.
    pub insufficient_data_actions: Option<Vec<String>>,
    /// `MetricName`.
    pub metric_name: Option<String>,
    /// `Namespace`.
    pub namespace: Option<String>,
    /// `Statistic`.
    pub statistic: Option<String>,
    /// `ExtendedStatistic`.
    pub extended_statistic: Option<String>,
    /// `Dimensions`.
    pub dimensions: Option<Vec<Dimension>>,
    /// `Period`.
    pub period: Option<i64>,
    /// `Unit`.
    pub unit: Option<String>,
    /// `EvaluationPeriods`.
    pub evaluation_periods: Option<i64>,
    /// `DatapointsToAlarm`.
    pub datapoints_to_alarm: Option<i64>,
    /// `Threshold`.
    pub threshold: Option<f64>,
    /// `ComparisonOperator`.
    pub comparison_operator: Option<String>,
    /// `TreatMissingData`.
    pub treat_missing_data: Option<String>,
    /// `EvaluateLowSampleCountPercentile`.
    pub evaluate_low_sample_count_percentile: Option<String>,
    /// `Metrics` (metric math), kept opaque: Cairn refuses it.
    pub metrics: Option<serde_json::Value>,
    /// `Tags`.
    pub tags: Option<Vec<Tag>>,
    /// `ThresholdMetricId` (anomaly detection), refused.
    pub threshold_metric_id: Option<String>,
    /// `EvaluationCriteria` (PromQL alarms), kept opaque: refused.
    pub evaluation_criteria: Option<serde_json::Value>,
    /// `EvaluationInterval` (PromQL alarms), refused.
    pub evaluation_interval: Option<i64>,
}

/// The statistic an alarm evaluates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AlarmStatistic {
    /// `Statistic`.
    Statistic(Statistic),
    /// `ExtendedStatistic`.
    ExtendedStatistic(ExtendedStatistic),
}

impl AlarmStatistic {
    /// The statistic's name (`Sum`, `p99`).
    pub fn name(&self) -> &str {
        match self {
            AlarmStatistic::Statistic(s) => s.as_str(),
            AlarmStatistic::ExtendedStatistic(e) => e.name(),
        }
    }

    /// The value of this statistic for one period.
    pub fn of(&self, aggregate: &crate::stats::MetricAggregate) -> Option<f64> {
        match self {
            AlarmStatistic::Statistic(s) => aggregate.statistic(*s),
            AlarmStatistic::ExtendedStatistic(e) => aggregate.extended(e),
        }
    }
}

/// A validated metric alarm's configuration, normalised: what the storage
/// keeps and [`evaluate`](crate::evaluate) reads. Members the caller left
/// out stay `None` where CloudWatch echoes their absence (notifications
/// print `TreatMissingData` and `DatapointsToAlarm` only when set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmDefinition {
    /// `AlarmName`.
    pub alarm_name: String,
    /// `AlarmDescription`.
    pub alarm_description: Option<String>,
    /// `ActionsEnabled`.
    pub actions_enabled: bool,
    /// `OKActions`.
    #[serde(rename = "OKActions")]
    pub ok_actions: Vec<String>,
    /// `AlarmActions`.
    pub alarm_actions: Vec<String>,
    /// `InsufficientDataActions`.
    pub insufficient_data_actions: Vec<String>,
    /// `MetricName`.
    pub metric_name: String,
    /// `Namespace`.
    pub namespace: String,
    /// `Statistic` or `ExtendedStatistic`.
    pub statistic: AlarmStatistic,
    /// `Dimensions`, in the order given.
    pub dimensions: Vec<Dimension>,
    /// `Period`, seconds.
    pub period: u32,
    /// `Unit`.
    pub unit: Option<StandardUnit>,
    /// `EvaluationPeriods` (N).
    pub evaluation_periods: u32,
    /// `DatapointsToAlarm` (M) as given; see
    /// [`datapoints_required`](Self::datapoints_required).
    pub datapoints_to_alarm: Option<u32>,
    /// `Threshold`.
    pub threshold: f64,
    /// `ComparisonOperator`.
    pub comparison_operator: ComparisonOperator,
    /// `TreatMissingData` as given; see
    /// [`missing_data`](Self::missing_data).
    pub treat_missing_data: Option<TreatMissingData>,
    /// `EvaluateLowSampleCountPercentile` as given.
    pub evaluate_low_sample_count_percentile: Option<LowSampleCountPercentile>,
    /// `Tags`.
    pub tags: Vec<Tag>,
}

impl AlarmDefinition {
    /// M: `DatapointsToAlarm`, defaulting to `EvaluationPeriods`.
    pub fn datapoints_required(&self) -> u32 {
        self.datapoints_to_alarm.unwrap_or(self.evaluation_periods)
    }

    /// The effective `TreatMissingData` (default `missing`).
    pub fn missing_data(&self) -> TreatMissingData {
        self.treat_missing_data.unwrap_or(TreatMissingData::Missing)
    }

    /// The actions for entering `state`.
    pub fn actions_for(&self, state: crate::evaluate::StateValue) -> &[String] {
        use crate::evaluate::StateValue;
        match state {
            StateValue::Ok => &self.ok_actions,
            StateValue::Alarm => &self.alarm_actions,
            StateValue::InsufficientData => &self.insufficient_data_actions,
        }
    }

    /// The actions to run on entering `state`: [`actions_for`](Self::actions_for),
    /// or none when `ActionsEnabled` is false (the state still changes and
    /// history is still written, as on CloudWatch).
    pub fn actions_to_run(&self, state: crate::evaluate::StateValue) -> &[String] {
        if self.actions_enabled {
            self.actions_for(state)
        } else {
            &[]
        }
    }

    /// `arn:aws:cloudwatch:<region>:<account>:alarm:<name>`.
    pub fn alarm_arn(&self, region: &str, account_id: &str) -> String {
        format!(
            "arn:aws:cloudwatch:{region}:{account_id}:alarm:{}",
            self.alarm_name
        )
    }
}

/// A shape-checked alarm action ARN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmAction {
    /// `arn:aws:sns:<region>:<account>:<topic>`: the action Cairn executes.
    Sns {
        /// The topic's region.
        region: String,
        /// The topic's account.
        account_id: String,
        /// The topic name.
        topic: String,
    },
    /// `arn:aws:automate:<region>:ec2:<stop|terminate|reboot|recover>`:
    /// accepted and stored; Cairn has no instances to act on.
    Ec2 {
        /// The region.
        region: String,
        /// `stop`, `terminate`, `reboot` or `recover`.
        action: String,
    },
    /// Another service's ARN (Lambda, Auto Scaling, SSM, SWF...): stored,
    /// not executed by Cairn.
    Other(String),
}

impl AlarmAction {
    /// Checks an action's shape; `None` when it is not a usable ARN.
    pub fn parse(arn: &str) -> Option<AlarmAction> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() < 6 || parts[0] != "arn" || !parts[1].starts_with("aws") {
            return None;
        }
        let region_ok = |r: &str| {
            !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        match parts[2] {
            "sns" => {
                let (region, account, topic) = (parts[3], parts[4], parts[5]);
                let topic_ok = !topic.is_empty()
                    && topic.len() <= 256
                    && topic
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
                (region_ok(region)
                    && account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && topic_ok)
                    .then(|| AlarmAction::Sns {
                        region: region.to_owned(),
                        account_id: account.to_owned(),
                        topic: topic.to_owned(),
                    })
            }
            "automate" => {
                let ok = region_ok(parts[3])
                    && parts[4] == "ec2"
                    && ["stop", "terminate", "reboot", "recover"].contains(&parts[5]);
                ok.then(|| AlarmAction::Ec2 {
                    region: parts[3].to_owned(),
                    action: parts[5].to_owned(),
                })
            }
            service if !service.is_empty() && !parts[5].is_empty() => {
                Some(AlarmAction::Other(arn.to_owned()))
            }
            _ => None,
        }
    }
}

/// The most actions per state.
pub const MAX_ACTIONS: usize = 5;
/// The most dimensions per metric.
pub const MAX_DIMENSIONS: usize = 30;
/// The longest evaluation range, `Period × EvaluationPeriods`, seconds.
pub const MAX_EVALUATION_SECONDS: i64 = 7 * 86_400;
/// The longest evaluation range for periods under an hour, seconds.
pub const MAX_EVALUATION_SECONDS_SHORT_PERIOD: i64 = 86_400;

fn check_len(member: &str, value: &str, min: usize, max: usize) -> Result<(), ValidationError> {
    let n = value.chars().count();
    if n < min {
        return Err(ValidationError::constraint(
            member,
            value,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(ValidationError::constraint(
            member,
            value,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

fn enum_error(member: &str, value: &str, all: &[&str]) -> ValidationError {
    ValidationError::constraint(
        member,
        value,
        &format!("Member must satisfy enum value set: [{}]", all.join(", ")),
    )
}

fn parse_enum<T: FromStr + Copy>(
    member: &str,
    value: &str,
    all: &[T],
    text: fn(T) -> &'static str,
) -> Result<T, ValidationError> {
    value.parse().map_err(|_| {
        let names: Vec<&str> = all.iter().map(|v| text(*v)).collect();
        enum_error(member, value, &names)
    })
}

fn check_actions(
    member: &str,
    actions: &Option<Vec<String>>,
) -> Result<Vec<String>, ValidationError> {
    let actions = actions.clone().unwrap_or_default();
    if actions.len() > MAX_ACTIONS {
        return Err(ValidationError::constraint(
            member,
            &format!("[{}]", actions.join(", ")),
            "Member must have length less than or equal to 5",
        ));
    }
    for a in &actions {
        check_len(member, a, 1, 1024)?;
        if AlarmAction::parse(a).is_none() {
            return Err(ValidationError::new(
                ErrorCode::InvalidParameterValue,
                format!("Invalid arn syntax: {a}"),
            ));
        }
    }
    Ok(actions)
}

/// Validates `PutMetricAlarm` the way CloudWatch does and returns the
/// normalised definition.
///
/// Checks, in this order: model constraints (lengths, enum values, list
/// sizes: `ValidationError`); the alarm kinds Cairn does not evaluate
/// (metric math `Metrics`, anomaly detection `ThresholdMetricId` and its
/// operators, PromQL `EvaluationCriteria`: `InvalidParameterCombination` /
/// `InvalidParameterValue` naming the unsupported feature); required members
/// (`MissingParameter`); then CloudWatch's own rules (`Period` 10, 20, 30
/// or a multiple of 60; exactly one of `Statistic`/`ExtendedStatistic`;
/// `DatapointsToAlarm <= EvaluationPeriods`; `Period × EvaluationPeriods`
/// at most 7 days, 1 day when `Period` is under an hour;
/// `EvaluateLowSampleCountPercentile` only with a percentile; action ARNs).
pub fn validate_put_metric_alarm(
    input: &PutMetricAlarmInput,
) -> Result<AlarmDefinition, ValidationError> {
    use ErrorCode::{InvalidParameterCombination, InvalidParameterValue};

    // Model constraints first, as the service framework checks them first.
    if let Some(n) = &input.alarm_name {
        check_len("alarmName", n, 1, 255)?;
    }
    if let Some(d) = &input.alarm_description {
        check_len("alarmDescription", d, 0, 1024)?;
    }
    if let Some(m) = &input.metric_name {
        check_len("metricName", m, 1, 255)?;
    }
    if let Some(ns) = &input.namespace {
        check_len("namespace", ns, 1, 255)?;
        if ns.starts_with(':') {
            return Err(ValidationError::constraint(
                "namespace",
                ns,
                "Member must satisfy regular expression pattern: [^:].*",
            ));
        }
    }
    if let Some(dims) = &input.dimensions {
        if dims.len() > MAX_DIMENSIONS {
            return Err(ValidationError::constraint(
                "dimensions",
                &format!("{} dimensions", dims.len()),
                "Member must have length less than or equal to 30",
            ));
        }
        for d in dims {
            check_len("dimensions.member.name", &d.name, 1, 255)?;
            check_len("dimensions.member.value", &d.value, 1, 1024)?;
        }
    }
    for (member, v) in [
        ("period", input.period),
        ("evaluationPeriods", input.evaluation_periods),
        ("datapointsToAlarm", input.datapoints_to_alarm),
    ] {
        if let Some(v) = v
            && v < 1
        {
            return Err(ValidationError::constraint(
                member,
                &v.to_string(),
                "Member must have value greater than or equal to 1",
            ));
        }
    }
    let statistic = match &input.statistic {
        Some(s) => Some(parse_enum(
            "statistic",
            s,
            &Statistic::ALL,
            Statistic::as_str,
        )?),
        None => None,
    };
    let unit = match &input.unit {
        Some(u) => Some(parse_enum(
            "unit",
            u,
            StandardUnit::ALL,
            StandardUnit::as_str,
        )?),
        None => None,
    };
    let operator = match &input.comparison_operator {
        Some(op) if ANOMALY_OPERATORS.contains(&op.as_str()) => {
            return Err(ValidationError::new(
                InvalidParameterValue,
                format!(
                    "ComparisonOperator {op} is only for anomaly detection alarms, which Cairn does not support."
                ),
            ));
        }
        Some(op) => Some(parse_enum(
            "comparisonOperator",
            op,
            ComparisonOperator::ALL,
            ComparisonOperator::as_str,
        )?),
        None => None,
    };
    let treat_missing_data = match &input.treat_missing_data {
        Some(t) => {
            check_len("treatMissingData", t, 1, 255)?;
            Some(t.parse::<TreatMissingData>().map_err(|_| {
                ValidationError::new(
                    InvalidParameterValue,
                    format!(
                        "Invalid value for TreatMissingData: {t}. Valid values are breaching, notBreaching, ignore, missing."
                    ),
                )
            })?)
        }
        None => None,
    };
    let low_sample = match &input.evaluate_low_sample_count_percentile {
        Some(e) => {
            check_len("evaluateLowSampleCountPercentile", e, 1, 255)?;
            Some(e.parse::<LowSampleCountPercentile>().map_err(|_| {
                ValidationError::new(
                    InvalidParameterValue,
                    format!(
                        "Invalid value for EvaluateLowSampleCountPercentile: {e}. Valid values are evaluate, ignore."
                    ),
                )
            })?)
        }
        None => None,
    };
    if let Some(tags) = &input.tags {
        for t in tags {
            check_len("tags.member.key", &t.key, 1, 128)?;
            check_len("tags.member.value", &t.value, 0, 256)?;
        }
    }
    let ok_actions = check_actions("oKActions", &input.ok_actions)?;
    let alarm_actions = check_actions("alarmActions", &input.alarm_actions)?;
    let insufficient_data_actions =
        check_actions("insufficientDataActions", &input.insufficient_data_actions)?;

    // Alarm kinds Cairn does not evaluate, refused by name rather than
    // half-supported.
    if input.metrics.is_some() {
        return Err(ValidationError::new(
            InvalidParameterCombination,
            "Metric math alarms (Metrics) are not supported by Cairn; specify MetricName, Namespace and Statistic or ExtendedStatistic.",
        ));
    }
    if input.threshold_metric_id.is_some() {
        return Err(ValidationError::new(
            InvalidParameterCombination,
            "Anomaly detection alarms (ThresholdMetricId) are not supported by Cairn.",
        ));
    }
    if input.evaluation_criteria.is_some() || input.evaluation_interval.is_some() {
        return Err(ValidationError::new(
            InvalidParameterCombination,
            "PromQL alarms (EvaluationCriteria, EvaluationInterval) are not supported by Cairn.",
        ));
    }

    let alarm_name = input
        .alarm_name
        .clone()
        .ok_or_else(|| ValidationError::missing("AlarmName"))?;
    let metric_name = input
        .metric_name
        .clone()
        .ok_or_else(|| ValidationError::missing("MetricName"))?;
    let namespace = input
        .namespace
        .clone()
        .ok_or_else(|| ValidationError::missing("Namespace"))?;
    let period = input
        .period
        .ok_or_else(|| ValidationError::missing("Period"))?;
    let evaluation_periods = input
        .evaluation_periods
        .ok_or_else(|| ValidationError::missing("EvaluationPeriods"))?;
    let threshold = input
        .threshold
        .ok_or_else(|| ValidationError::missing("Threshold"))?;
    let comparison_operator =
        operator.ok_or_else(|| ValidationError::missing("ComparisonOperator"))?;

    let statistic = match (statistic, &input.extended_statistic) {
        (Some(_), Some(_)) => {
            return Err(ValidationError::new(
                InvalidParameterCombination,
                "Statistic and ExtendedStatistic cannot both be specified; specify exactly one.",
            ));
        }
        (None, None) => {
            return Err(ValidationError::new(
                InvalidParameterCombination,
                "One of Statistic or ExtendedStatistic must be specified.",
            ));
        }
        (Some(s), None) => AlarmStatistic::Statistic(s),
        (None, Some(e)) => AlarmStatistic::ExtendedStatistic(ExtendedStatistic::parse(e)?),
    };

    if !(period == 10 || period == 20 || period == 30 || period % 60 == 0) {
        return Err(ValidationError::new(
            InvalidParameterValue,
            "The parameter Period must be 10, 20, 30, or a multiple of 60.",
        ));
    }
    if let Some(m) = input.datapoints_to_alarm
        && m > evaluation_periods
    {
        return Err(ValidationError::new(
            InvalidParameterValue,
            "DatapointsToAlarm must be less than or equal to EvaluationPeriods.",
        ));
    }
    let total = period.saturating_mul(evaluation_periods);
    if period < 3600 && total > MAX_EVALUATION_SECONDS_SHORT_PERIOD {
        return Err(ValidationError::new(
            InvalidParameterValue,
            "The evaluation period (Period × EvaluationPeriods) of an alarm with a period under one hour cannot exceed one day (86400 seconds).",
        ));
    }
    if total > MAX_EVALUATION_SECONDS {
        return Err(ValidationError::new(
            InvalidParameterValue,
            "The evaluation period (Period × EvaluationPeriods) of an alarm cannot exceed seven days (604800 seconds).",
        ));
    }
    if !threshold.is_finite() {
        return Err(ValidationError::new(
            InvalidParameterValue,
            "The parameter Threshold must be a finite number.",
        ));
    }
    if low_sample.is_some()
        && !matches!(&statistic, AlarmStatistic::ExtendedStatistic(e) if e.percentile().is_some())
    {
        return Err(ValidationError::new(
            InvalidParameterCombination,
            "EvaluateLowSampleCountPercentile can only be used with a percentile ExtendedStatistic.",
        ));
    }

    // The bounds above make these conversions lossless.
    let period = u32::try_from(period).map_err(|_| ValidationError::missing("Period"))?;
    let evaluation_periods = u32::try_from(evaluation_periods)
        .map_err(|_| ValidationError::missing("EvaluationPeriods"))?;
    let datapoints_to_alarm = input
        .datapoints_to_alarm
        .map(|m| u32::try_from(m).unwrap_or(evaluation_periods));

    Ok(AlarmDefinition {
        alarm_name,
        alarm_description: input.alarm_description.clone(),
        actions_enabled: input.actions_enabled.unwrap_or(true),
        ok_actions,
        alarm_actions,
        insufficient_data_actions,
        metric_name,
        namespace,
        statistic,
        dimensions: input.dimensions.clone().unwrap_or_default(),
        period,
        unit,
        evaluation_periods,
        datapoints_to_alarm,
        threshold,
        comparison_operator,
        treat_missing_data,
        evaluate_low_sample_count_percentile: low_sample,
        tags: input.tags.clone().unwrap_or_default(),
    })
}
