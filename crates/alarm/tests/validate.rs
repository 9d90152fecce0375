//! `PutMetricAlarm` validation: each rule with its code and message, and
//! the normalised definition.
#![allow(clippy::unwrap_used)]

use cairn_alarm::*;
use serde_json::{Value, json};

fn base() -> Value {
    json!({
        "AlarmName": "root-login",
        "MetricName": "RootLogins",
        "Namespace": "CIS",
        "Statistic": "Sum",
        "Period": 300,
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "AlarmActions": ["arn:aws:sns:us-east-1:123456789012:alerts"]
    })
}

fn with(changes: Value) -> PutMetricAlarmInput {
    let mut v = base();
    for (k, x) in changes.as_object().unwrap() {
        if x.is_null() {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = x.clone();
        }
    }
    serde_json::from_value(v).unwrap()
}

fn err(changes: Value) -> ValidationError {
    match validate_put_metric_alarm(&with(changes.clone())) {
        Ok(d) => panic!("{changes} was accepted: {d:?}"),
        Err(e) => e,
    }
}

fn code(changes: Value) -> ErrorCode {
    err(changes).code
}

#[test]
fn a_valid_alarm_is_normalised() {
    let d = validate_put_metric_alarm(&with(json!({
        "Dimensions": [{"Name": "TrailName", "Value": "main"}],
        "Unit": "Count",
        "TreatMissingData": "notBreaching",
        "Tags": [{"Key": "team", "Value": "sec"}]
    })))
    .unwrap();
    assert_eq!(d.alarm_name, "root-login");
    assert!(d.actions_enabled);
    assert_eq!(d.statistic, AlarmStatistic::Statistic(Statistic::Sum));
    assert_eq!(d.unit, Some(StandardUnit::Count));
    assert_eq!(d.datapoints_to_alarm, None);
    assert_eq!(d.datapoints_required(), 1);
    assert_eq!(d.missing_data(), TreatMissingData::NotBreaching);
    assert_eq!(d.ok_actions, Vec::<String>::new());
    assert_eq!(
        d.alarm_arn("us-east-1", "123456789012"),
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:root-login"
    );
    // Persisted and read back unchanged.
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(serde_json::from_str::<AlarmDefinition>(&json).unwrap(), d);

    let p = validate_put_metric_alarm(&with(json!({
        "Statistic": null,
        "ExtendedStatistic": "p99",
        "EvaluateLowSampleCountPercentile": "ignore",
        "EvaluationPeriods": 5,
        "DatapointsToAlarm": 3
    })))
    .unwrap();
    assert_eq!(p.statistic.name(), "p99");
    assert_eq!(p.datapoints_required(), 3);
    assert_eq!(p.missing_data(), TreatMissingData::Missing);
}

#[test]
fn periods() {
    for ok in [10, 20, 30, 60, 120, 300, 3600, 86_400] {
        validate_put_metric_alarm(&with(json!({ "Period": ok })))
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [5, 15, 45, 90, 301] {
        let e = err(json!({ "Period": bad }));
        assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{bad}");
        assert_eq!(
            e.message,
            "The parameter Period must be 10, 20, 30, or a multiple of 60."
        );
    }
    let e = err(json!({ "Period": 0 }));
    assert_eq!(e.code, ErrorCode::ValidationError);
    assert_eq!(
        e.message,
        "1 validation error detected: Value '0' at 'period' failed to satisfy constraint: Member must have value greater than or equal to 1"
    );
}

#[test]
fn evaluation_range() {
    // Under an hour: at most one day.
    validate_put_metric_alarm(&with(json!({"Period": 60, "EvaluationPeriods": 1440}))).unwrap();
    assert_eq!(
        code(json!({"Period": 60, "EvaluationPeriods": 1441})),
        ErrorCode::InvalidParameterValue
    );
    // An hour or more: at most seven days.
    validate_put_metric_alarm(&with(json!({"Period": 3600, "EvaluationPeriods": 168}))).unwrap();
    let e = err(json!({"Period": 3600, "EvaluationPeriods": 169}));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    assert!(e.message.contains("604800"), "{}", e.message);
    assert_eq!(
        code(json!({"EvaluationPeriods": 0})),
        ErrorCode::ValidationError
    );
}

#[test]
fn datapoints_to_alarm() {
    validate_put_metric_alarm(&with(
        json!({"EvaluationPeriods": 3, "DatapointsToAlarm": 3}),
    ))
    .unwrap();
    let e = err(json!({"EvaluationPeriods": 3, "DatapointsToAlarm": 4}));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    assert_eq!(
        e.message,
        "DatapointsToAlarm must be less than or equal to EvaluationPeriods."
    );
    assert_eq!(
        code(json!({"DatapointsToAlarm": 0})),
        ErrorCode::ValidationError
    );
}

#[test]
fn statistic_choice() {
    let e = err(json!({"ExtendedStatistic": "p99"}));
    assert_eq!(e.code, ErrorCode::InvalidParameterCombination);
    let e = err(json!({"Statistic": null}));
    assert_eq!(e.code, ErrorCode::InvalidParameterCombination);
    assert_eq!(
        e.message,
        "One of Statistic or ExtendedStatistic must be specified."
    );
    let e = err(json!({"Statistic": "Median"}));
    assert_eq!(e.code, ErrorCode::ValidationError);
    assert_eq!(
        e.message,
        "1 validation error detected: Value 'Median' at 'statistic' failed to satisfy constraint: Member must satisfy enum value set: [SampleCount, Average, Sum, Minimum, Maximum]"
    );
    let e = err(json!({"Statistic": null, "ExtendedStatistic": "p100.5"}));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    assert_eq!(
        e.message,
        "The value p100.5 for parameter ExtendedStatistic is not supported."
    );
}

#[test]
fn comparison_operators() {
    for op in ComparisonOperator::ALL {
        validate_put_metric_alarm(&with(json!({ "ComparisonOperator": op.as_str() }))).unwrap();
    }
    for anomaly in [
        "LessThanLowerOrGreaterThanUpperThreshold",
        "LessThanLowerThreshold",
        "GreaterThanUpperThreshold",
    ] {
        let e = err(json!({ "ComparisonOperator": anomaly }));
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert!(e.message.contains("anomaly detection"), "{}", e.message);
    }
    assert_eq!(
        code(json!({"ComparisonOperator": "Above"})),
        ErrorCode::ValidationError
    );
    assert_eq!(
        code(json!({"ThresholdMetricId": "ad1"})),
        ErrorCode::InvalidParameterCombination
    );
}

#[test]
fn missing_parameters() {
    for name in [
        "AlarmName",
        "MetricName",
        "Namespace",
        "Period",
        "EvaluationPeriods",
        "Threshold",
        "ComparisonOperator",
    ] {
        let e = err(json!({ name: null }));
        assert_eq!(e.code, ErrorCode::MissingParameter, "{name}");
        assert_eq!(e.message, format!("The parameter {name} is required."));
    }
}

#[test]
fn metric_math_and_promql_are_refused_by_name() {
    let e = err(json!({"Metrics": [{"Id": "m1", "Expression": "SUM(METRICS())"}]}));
    assert_eq!(e.code, ErrorCode::InvalidParameterCombination);
    assert!(e.message.contains("Metric math"), "{}", e.message);
    assert_eq!(
        code(json!({"EvaluationInterval": 60})),
        ErrorCode::InvalidParameterCombination
    );
}

#[test]
fn treat_missing_data_and_low_sample_count() {
    for ok in ["missing", "notBreaching", "breaching", "ignore"] {
        validate_put_metric_alarm(&with(json!({ "TreatMissingData": ok }))).unwrap();
    }
    let e = err(json!({"TreatMissingData": "NotBreaching"}));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    // Only with a percentile.
    let e = err(json!({"EvaluateLowSampleCountPercentile": "ignore"}));
    assert_eq!(e.code, ErrorCode::InvalidParameterCombination);
    assert_eq!(
        code(
            json!({"Statistic": null, "ExtendedStatistic": "tm90", "EvaluateLowSampleCountPercentile": "ignore"})
        ),
        ErrorCode::InvalidParameterCombination
    );
    assert_eq!(
        code(
            json!({"Statistic": null, "ExtendedStatistic": "p90", "EvaluateLowSampleCountPercentile": "sometimes"})
        ),
        ErrorCode::InvalidParameterValue
    );
}

#[test]
fn units() {
    for u in StandardUnit::ALL {
        validate_put_metric_alarm(&with(json!({ "Unit": u.as_str() }))).unwrap();
    }
    assert_eq!(StandardUnit::ALL.len(), 27);
    assert_eq!(code(json!({"Unit": "count"})), ErrorCode::ValidationError);
    assert_eq!(code(json!({"Unit": "Bytes/s"})), ErrorCode::ValidationError);
}

#[test]
fn actions() {
    let six: Vec<String> = (0..6)
        .map(|i| format!("arn:aws:sns:us-east-1:123456789012:t{i}"))
        .collect();
    let e = err(json!({ "OKActions": six }));
    assert_eq!(e.code, ErrorCode::ValidationError);
    assert!(e.message.contains("at 'oKActions'"), "{}", e.message);
    assert!(
        e.message
            .ends_with("Member must have length less than or equal to 5")
    );
    for bad in [
        "alerts",
        "arn:aws:sns:us-east-1:1234:alerts",
        "arn:aws:sns:us-east-1:123456789012:",
        "arn:aws:sns:us-east-1:123456789012:bad topic",
        "arn:aws:automate:us-east-1:ec2:explode",
    ] {
        let e = err(json!({ "AlarmActions": [bad] }));
        assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{bad}");
        assert_eq!(e.message, format!("Invalid arn syntax: {bad}"));
    }
    for ok in [
        "arn:aws:sns:eu-west-1:123456789012:ops.fifo",
        "arn:aws:automate:us-east-1:ec2:stop",
        "arn:aws:lambda:us-east-1:123456789012:function:f",
    ] {
        validate_put_metric_alarm(&with(json!({ "InsufficientDataActions": [ok] }))).unwrap();
    }
    assert_eq!(
        AlarmAction::parse("arn:aws:sns:us-east-1:123456789012:alerts"),
        Some(AlarmAction::Sns {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            topic: "alerts".into()
        })
    );
    assert_eq!(
        AlarmAction::parse("arn:aws:automate:us-east-1:ec2:reboot"),
        Some(AlarmAction::Ec2 {
            region: "us-east-1".into(),
            action: "reboot".into()
        })
    );
}

#[test]
fn lengths_and_dimensions() {
    assert_eq!(code(json!({"AlarmName": ""})), ErrorCode::ValidationError);
    assert_eq!(
        code(json!({"AlarmName": "x".repeat(256)})),
        ErrorCode::ValidationError
    );
    validate_put_metric_alarm(&with(json!({"AlarmName": "x".repeat(255)}))).unwrap();
    assert_eq!(
        code(json!({"AlarmDescription": "d".repeat(1025)})),
        ErrorCode::ValidationError
    );
    assert_eq!(code(json!({"Namespace": ":x"})), ErrorCode::ValidationError);
    let dims = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"Name": format!("d{i}"), "Value": "v"}))
            .collect()
    };
    validate_put_metric_alarm(&with(json!({ "Dimensions": dims(30) }))).unwrap();
    assert_eq!(
        code(json!({ "Dimensions": dims(31) })),
        ErrorCode::ValidationError
    );
    assert_eq!(
        code(json!({ "Dimensions": [{"Name": "n", "Value": ""}] })),
        ErrorCode::ValidationError
    );
    assert_eq!(
        code(json!({ "Dimensions": [{"Name": "n", "Value": "v".repeat(1025)}] })),
        ErrorCode::ValidationError
    );
}
