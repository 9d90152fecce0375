//! `PutMetricData` datums and `GetMetricStatistics` requests.
#![allow(clippy::unwrap_used)]

use cairn_alarm::*;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 12, 13, 41, 7).unwrap()
}

fn datum(v: Value) -> MetricDatumInput {
    serde_json::from_value(v).unwrap()
}

fn err(v: Value) -> ValidationError {
    validate_metric_datum(2, &datum(v), now()).unwrap_err()
}

#[test]
fn the_three_forms_of_a_datum() {
    let d = validate_metric_datum(
        1,
        &datum(
            json!({"MetricName": "Errors", "Value": 3.0, "Unit": "Count",
            "Dimensions": [{"Name": "b", "Value": "2"}, {"Name": "a", "Value": "1"}]}),
        ),
        now(),
    )
    .unwrap();
    assert_eq!(d.timestamp, now());
    assert_eq!(d.unit, Some(StandardUnit::Count));
    assert_eq!(d.storage_resolution, 60);
    assert_eq!(d.dimensions[0].name, "a");
    assert_eq!(d.aggregate.statistic(Statistic::Sum), Some(3.0));

    let d = validate_metric_datum(
        1,
        &datum(json!({"MetricName": "Latency", "Values": [10.0, 20.0], "Counts": [3.0, 1.0], "StorageResolution": 1})),
        now(),
    )
    .unwrap();
    assert_eq!(d.storage_resolution, 1);
    assert_eq!(d.aggregate.statistic(Statistic::SampleCount), Some(4.0));
    assert_eq!(
        d.aggregate
            .extended(&ExtendedStatistic::parse("p75").unwrap()),
        Some(10.0)
    );

    let mut input = datum(json!({"MetricName": "Latency",
        "StatisticValues": {"SampleCount": 4.0, "Sum": 40.0, "Minimum": 5.0, "Maximum": 15.0}}));
    input.timestamp = Some(now() - Duration::days(13));
    let d = validate_metric_datum(1, &input, now()).unwrap();
    assert_eq!(d.timestamp, now() - Duration::days(13));
    assert_eq!(d.aggregate.statistic(Statistic::Average), Some(10.0));
    assert!(!d.aggregate.has_distribution());
}

#[test]
fn datum_errors() {
    let e = err(
        json!({"MetricName": "m", "Value": 1.0, "StatisticValues": {"SampleCount": 1.0, "Sum": 1.0, "Minimum": 1.0, "Maximum": 1.0}}),
    );
    assert_eq!(e.code, ErrorCode::InvalidParameterCombination);
    assert_eq!(
        e.message,
        "The parameters MetricData.member.2.Value and MetricData.member.2.StatisticValues are mutually exclusive and you have specified both."
    );
    let e = err(json!({"MetricName": "m", "Value": 1.0, "Values": [1.0]}));
    assert_eq!(e.code, ErrorCode::InvalidParameterCombination);
    let e = err(json!({"MetricName": "m"}));
    assert_eq!(e.code, ErrorCode::MissingParameter);
    let e = err(json!({"Value": 1.0}));
    assert_eq!(e.code, ErrorCode::MissingParameter);
    assert_eq!(
        e.message,
        "The parameter MetricData.member.2.MetricName is required."
    );
    let e = err(json!({"MetricName": "m", "Value": 1e200}));
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    assert_eq!(
        e.message,
        "The value 1.0E200 for parameter MetricData.member.2.Value is invalid."
    );
    assert_eq!(
        err(json!({"MetricName": "m", "Value": 1e-200})).code,
        ErrorCode::InvalidParameterValue
    );
    validate_metric_datum(1, &datum(json!({"MetricName": "m", "Value": 0.0})), now()).unwrap();
    validate_metric_datum(
        1,
        &datum(json!({"MetricName": "m", "Value": -1e100})),
        now(),
    )
    .unwrap();
    let values: Vec<f64> = (0..151).map(f64::from).collect();
    assert_eq!(
        err(json!({"MetricName": "m", "Values": values})).message,
        "The collection MetricData.member.2.Values must not have a size greater than 150."
    );
    let e = err(json!({"MetricName": "m", "Values": [1.0, 2.0], "Counts": [1.0]}));
    assert_eq!(e.code, ErrorCode::InvalidParameterCombination);
    assert_eq!(
        e.message,
        "The parameters MetricData.member.2.Values and MetricData.member.2.Counts must be of the same size."
    );
    assert_eq!(
        err(json!({"MetricName": "m", "Values": [1.0], "Counts": [-1.0]})).code,
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        err(json!({"MetricName": "m", "Counts": [1.0]})).code,
        ErrorCode::InvalidParameterCombination
    );
    assert_eq!(
        err(json!({"MetricName": "m", "StatisticValues": {"SampleCount": 0.0, "Sum": 0.0, "Minimum": 0.0, "Maximum": 0.0}})).code,
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        err(json!({"MetricName": "m", "StatisticValues": {"SampleCount": 2.0, "Sum": 3.0, "Minimum": 2.0, "Maximum": 1.0}})).code,
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        err(json!({"MetricName": "m", "Value": 1.0, "Unit": "Hours"})).message,
        "The value Hours for parameter MetricData.member.2.Unit is invalid."
    );
    assert_eq!(
        err(json!({"MetricName": "m", "Value": 1.0, "StorageResolution": 10})).code,
        ErrorCode::InvalidParameterValue
    );
    let dims: Vec<Value> = (0..31)
        .map(|i| json!({"Name": format!("d{i}"), "Value": "v"}))
        .collect();
    assert_eq!(
        err(json!({"MetricName": "m", "Value": 1.0, "Dimensions": dims})).code,
        ErrorCode::InvalidParameterValue
    );
    for t in [now() - Duration::days(15), now() + Duration::hours(3)] {
        let mut d = datum(json!({"MetricName": "m", "Value": 1.0}));
        d.timestamp = Some(t);
        let e = validate_metric_datum(2, &d, now()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert!(
            e.message.contains("MetricData.member.2.Timestamp"),
            "{}",
            e.message
        );
    }
}

#[test]
fn put_metric_data_envelope() {
    validate_put_metric_data(Some("Cairn/CIS"), 1000).unwrap();
    assert_eq!(
        validate_put_metric_data(None, 1).unwrap_err().code,
        ErrorCode::MissingParameter
    );
    assert_eq!(
        validate_put_metric_data(Some("AWS/EC2"), 1)
            .unwrap_err()
            .message,
        "The value AWS/EC2 for parameter Namespace is invalid."
    );
    assert_eq!(
        validate_put_metric_data(Some(":x"), 1).unwrap_err().code,
        ErrorCode::ValidationError
    );
    assert_eq!(
        validate_put_metric_data(Some("x"), 1001).unwrap_err().code,
        ErrorCode::InvalidParameterValue
    );
}

fn query(
    changes: impl FnOnce(&mut GetMetricStatisticsInput),
) -> Result<StatisticsQuery, ValidationError> {
    let mut q = GetMetricStatisticsInput {
        namespace: Some("CIS".into()),
        metric_name: Some("RootLogins".into()),
        start_time: Some(now() - Duration::hours(24)),
        end_time: Some(now()),
        period: Some(60),
        statistics: vec!["Sum".into(), "Maximum".into()],
        extended_statistics: vec![],
        unit: None,
    };
    changes(&mut q);
    validate_get_metric_statistics(&q)
}

#[test]
fn get_metric_statistics() {
    let q = query(|_| {}).unwrap();
    assert_eq!(q.period, 60);
    assert_eq!(q.statistics, vec![Statistic::Sum, Statistic::Maximum]);
    // 24 h at 60 s is exactly 1440 datapoints; one second more is 1441.
    let e = query(|q| q.start_time = Some(now() - Duration::hours(24) - Duration::seconds(1)))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterCombination);
    assert_eq!(
        e.message,
        "You have requested up to 1,441 datapoints, which exceeds the limit of 1,440. You may reduce the datapoints requested by increasing Period, or decreasing the time range."
    );
    for p in [1, 5, 10, 20, 30, 120] {
        query(|q| {
            q.period = Some(p);
            q.start_time = Some(now() - Duration::minutes(10));
        })
        .unwrap();
    }
    assert_eq!(
        query(|q| q.period = Some(90)).unwrap_err().code,
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        query(|q| q.end_time = q.start_time).unwrap_err().code,
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        query(|q| q.extended_statistics = vec!["p99".into()])
            .unwrap_err()
            .code,
        ErrorCode::InvalidParameterCombination
    );
    assert_eq!(
        query(|q| q.statistics.clear()).unwrap_err().code,
        ErrorCode::MissingParameter
    );
    let q = query(|q| {
        q.statistics.clear();
        q.extended_statistics = vec!["p99".into(), "tm90".into()];
        q.unit = Some("Count".into());
    })
    .unwrap();
    assert_eq!(q.extended_statistics.len(), 2);
    assert_eq!(q.unit, Some(StandardUnit::Count));
    assert_eq!(
        query(|q| {
            q.statistics.clear();
            q.extended_statistics = vec!["p101".into()];
        })
        .unwrap_err()
        .code,
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        query(|q| q.statistics = vec!["Median".into()])
            .unwrap_err()
            .code,
        ErrorCode::ValidationError
    );
    assert_eq!(
        query(|q| q.namespace = None).unwrap_err().message,
        "The parameter Namespace is required."
    );
}

#[test]
fn percentiles_are_unavailable_with_negative_values() {
    let mut a = MetricAggregate::new();
    a.add_values(&[-1.0, 2.0, 3.0], &[]);
    assert_eq!(a.extended(&ExtendedStatistic::parse("p50").unwrap()), None);
    assert_eq!(a.statistic(Statistic::Minimum), Some(-1.0));
}
