//! The message CloudWatch publishes to an SNS topic when an alarm changes
//! state, and its subject.

use serde::{Deserialize, Serialize};

use crate::definition::{AlarmDefinition, AlarmStatistic};
use crate::evaluate::StateChange;
use crate::format::cw_timestamp;
use crate::history::AlarmContext;

/// Region codes and the long names CloudWatch prints in notifications.
pub const REGION_NAMES: &[(&str, &str)] = &[
    ("us-east-1", "US East (N. Virginia)"),
    ("us-east-2", "US East (Ohio)"),
    ("us-west-1", "US West (N. California)"),
    ("us-west-2", "US West (Oregon)"),
    ("af-south-1", "Africa (Cape Town)"),
    ("ap-east-1", "Asia Pacific (Hong Kong)"),
    ("ap-east-2", "Asia Pacific (Taipei)"),
    ("ap-south-1", "Asia Pacific (Mumbai)"),
    ("ap-south-2", "Asia Pacific (Hyderabad)"),
    ("ap-southeast-1", "Asia Pacific (Singapore)"),
    ("ap-southeast-2", "Asia Pacific (Sydney)"),
    ("ap-southeast-3", "Asia Pacific (Jakarta)"),
    ("ap-southeast-4", "Asia Pacific (Melbourne)"),
    ("ap-southeast-5", "Asia Pacific (Malaysia)"),
    ("ap-southeast-7", "Asia Pacific (Thailand)"),
    ("ap-northeast-1", "Asia Pacific (Tokyo)"),
    ("ap-northeast-2", "Asia Pacific (Seoul)"),
    ("ap-northeast-3", "Asia Pacific (Osaka)"),
    ("ca-central-1", "Canada (Central)"),
    ("ca-west-1", "Canada West (Calgary)"),
    ("eu-central-1", "EU (Frankfurt)"),
    ("eu-central-2", "EU (Zurich)"),
    ("eu-west-1", "EU (Ireland)"),
    ("eu-west-2", "EU (London)"),
    ("eu-west-3", "EU (Paris)"),
    ("eu-south-1", "EU (Milan)"),
    ("eu-south-2", "EU (Spain)"),
    ("eu-north-1", "EU (Stockholm)"),
    ("il-central-1", "Israel (Tel Aviv)"),
    ("me-south-1", "Middle East (Bahrain)"),
    ("me-central-1", "Middle East (UAE)"),
    ("mx-central-1", "Mexico (Central)"),
    ("sa-east-1", "South America (Sao Paulo)"),
    ("us-gov-east-1", "AWS GovCloud (US-East)"),
    ("us-gov-west-1", "AWS GovCloud (US-West)"),
    ("cn-north-1", "China (Beijing)"),
    ("cn-northwest-1", "China (Ningxia)"),
];

/// The long name of a region code (`us-east-1` → `US East (N. Virginia)`).
pub fn region_name(code: &str) -> Option<&'static str> {
    REGION_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, name)| *name)
}

/// `{"value": ..., "name": ...}`: a dimension in a notification's trigger
/// (value first, lower case, as CloudWatch writes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerDimension {
    /// The dimension value.
    pub value: String,
    /// The dimension name.
    pub name: String,
}

/// `Trigger` of an alarm notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Trigger {
    /// `MetricName`.
    pub metric_name: String,
    /// `Namespace`.
    pub namespace: String,
    /// `Statistic` or `ExtendedStatistic`.
    pub statistic_type: String,
    /// The plain statistic, upper case (`SUM`), for `StatisticType`
    /// `Statistic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistic: Option<String>,
    /// The extended statistic's name, for `StatisticType`
    /// `ExtendedStatistic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_statistic: Option<String>,
    /// `Unit`, `null` when the alarm has none.
    pub unit: Option<String>,
    /// `Dimensions`.
    pub dimensions: Vec<TriggerDimension>,
    /// `Period`.
    pub period: u32,
    /// `EvaluationPeriods`.
    pub evaluation_periods: u32,
    /// `DatapointsToAlarm`, only when the alarm sets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datapoints_to_alarm: Option<u32>,
    /// `ComparisonOperator`.
    pub comparison_operator: String,
    /// `Threshold`.
    pub threshold: f64,
    /// `TreatMissingData` as set, `""` when not set.
    pub treat_missing_data: String,
    /// `EvaluateLowSampleCountPercentile` as set, `""` when not set.
    pub evaluate_low_sample_count_percentile: String,
}

/// The JSON message CloudWatch publishes to an SNS topic on a state
/// change; members in CloudWatch's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmNotification {
    /// `AlarmName`.
    pub alarm_name: String,
    /// `AlarmDescription`, `null` when none.
    pub alarm_description: Option<String>,
    /// `AWSAccountId`.
    #[serde(rename = "AWSAccountId")]
    pub aws_account_id: String,
    /// `AlarmConfigurationUpdatedTimestamp` (`2026-02-12T13:40:00.000+0000`).
    pub alarm_configuration_updated_timestamp: String,
    /// `NewStateValue`.
    pub new_state_value: String,
    /// `NewStateReason`.
    pub new_state_reason: String,
    /// `StateChangeTime`.
    pub state_change_time: String,
    /// `Region`: the long name (`US East (N. Virginia)`).
    pub region: String,
    /// `AlarmArn`.
    pub alarm_arn: String,
    /// `OldStateValue`.
    pub old_state_value: String,
    /// `OKActions`.
    #[serde(rename = "OKActions")]
    pub ok_actions: Vec<String>,
    /// `AlarmActions`.
    pub alarm_actions: Vec<String>,
    /// `InsufficientDataActions`.
    pub insufficient_data_actions: Vec<String>,
    /// `Trigger`.
    pub trigger: Trigger,
}

impl AlarmNotification {
    /// The notification of `change` of the alarm `definition`. An unknown
    /// region code is printed as is.
    pub fn new(
        definition: &AlarmDefinition,
        change: &StateChange,
        context: AlarmContext<'_>,
    ) -> AlarmNotification {
        let d = definition;
        let (statistic_type, statistic, extended_statistic) = match &d.statistic {
            AlarmStatistic::Statistic(s) => {
                ("Statistic", Some(s.notification_name().to_owned()), None)
            }
            AlarmStatistic::ExtendedStatistic(e) => {
                ("ExtendedStatistic", None, Some(e.name().to_owned()))
            }
        };
        AlarmNotification {
            alarm_name: d.alarm_name.clone(),
            alarm_description: d.alarm_description.clone(),
            aws_account_id: context.account_id.to_owned(),
            alarm_configuration_updated_timestamp: cw_timestamp(context.configuration_updated),
            new_state_value: change.new.value.as_str().to_owned(),
            new_state_reason: change.new.reason.clone(),
            state_change_time: cw_timestamp(change.new.timestamp),
            region: region_name(context.region)
                .unwrap_or(context.region)
                .to_owned(),
            alarm_arn: d.alarm_arn(context.region, context.account_id),
            old_state_value: change.old.value.as_str().to_owned(),
            ok_actions: d.ok_actions.clone(),
            alarm_actions: d.alarm_actions.clone(),
            insufficient_data_actions: d.insufficient_data_actions.clone(),
            trigger: Trigger {
                metric_name: d.metric_name.clone(),
                namespace: d.namespace.clone(),
                statistic_type: statistic_type.to_owned(),
                statistic,
                extended_statistic,
                unit: d.unit.map(|u| u.as_str().to_owned()),
                dimensions: d
                    .dimensions
                    .iter()
                    .map(|dim| TriggerDimension {
                        value: dim.value.clone(),
                        name: dim.name.clone(),
                    })
                    .collect(),
                period: d.period,
                evaluation_periods: d.evaluation_periods,
                datapoints_to_alarm: d.datapoints_to_alarm,
                comparison_operator: d.comparison_operator.as_str().to_owned(),
                threshold: d.threshold,
                treat_missing_data: d.treat_missing_data.map_or("", |t| t.as_str()).to_owned(),
                evaluate_low_sample_count_percentile: d
                    .evaluate_low_sample_count_percentile
                    .map_or("", |e| e.as_str())
                    .to_owned(),
            },
        }
    }

    /// The SNS `Subject`: `ALARM: "<name>" in US East (N. Virginia)`.
    ///
    /// SNS caps subjects at 100 characters; CloudWatch's behaviour for
    /// longer ones is not documented, so the subject is returned whole and
    /// the publisher decides.
    pub fn subject(&self) -> String {
        format!(
            "{}: \"{}\" in {}",
            self.new_state_value, self.alarm_name, self.region
        )
    }

    /// The message body: compact JSON, members in CloudWatch's order.
    pub fn to_json(&self) -> String {
        // A struct of strings and numbers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}
