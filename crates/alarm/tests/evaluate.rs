//! Alarm evaluation: transitions, M of N, each TreatMissingData, each
//! operator, low-sample percentiles, reason texts and reason data (golden),
//! SetAlarmState.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use cairn_alarm::*;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

type Points = BTreeMap<DateTime<Utc>, MetricAggregate>;

fn alarm(changes: Value) -> AlarmDefinition {
    let mut v = json!({
        "AlarmName": "root-login",
        "MetricName": "RootLogins",
        "Namespace": "CIS",
        "Statistic": "Sum",
        "Period": 300,
        "EvaluationPeriods": 1,
        "Threshold": 5.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold"
    });
    for (k, x) in changes.as_object().unwrap() {
        if x.is_null() {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = x.clone();
        }
    }
    validate_put_metric_alarm(&serde_json::from_value(v).unwrap()).unwrap()
}

/// 2026-02-12 13:41:07, inside the period starting 13:40 (Period 300).
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 12, 13, 41, 7).unwrap()
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 12, h, m, 0).unwrap()
}

fn state(value: StateValue) -> AlarmState {
    AlarmState {
        value,
        reason: "before".into(),
        reason_data: None,
        timestamp: at(13, 0),
    }
}

/// Periods of 300 s ending with the current one, oldest first: `Some(v)`
/// is one sample of `v`, `None` no data.
fn series(values: &[Option<f64>]) -> Points {
    let newest = period_start(now(), 300);
    let n = values.len();
    values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            v.map(|v| {
                let back = i32::try_from(n - 1 - i).unwrap();
                (
                    newest - Duration::seconds(300) * back,
                    MetricAggregate::of_value(v),
                )
            })
        })
        .collect()
}

/// The state after evaluating from `from`.
fn outcome(def: &AlarmDefinition, from: StateValue, points: &Points) -> StateValue {
    match evaluate(def, &state(from), points, now()) {
        Some(change) => {
            assert_ne!(change.new.value, from, "a change must change the state");
            assert_eq!(change.old.value, from);
            assert_eq!(change.new.timestamp, now());
            change.new.value
        }
        None => from,
    }
}

#[test]
fn initial_state() {
    let s = AlarmState::initial(at(13, 30));
    assert_eq!(s.value, StateValue::InsufficientData);
    assert_eq!(s.reason, "Unchecked: Initial alarm creation");
    assert_eq!(s.reason_data, None);
}

#[test]
fn insufficient_to_alarm_to_ok_golden() {
    let def = alarm(json!({}));
    let mut points = Points::new();
    let mut five = MetricAggregate::new();
    for _ in 0..5 {
        five.add_value(1.0);
    }
    points.insert(at(13, 40), five);
    let initial = AlarmState::initial(at(13, 30));
    let change = evaluate(&def, &initial, &points, now()).unwrap();
    assert_eq!(change.old, initial);
    assert_eq!(change.new.value, StateValue::Alarm);
    assert_eq!(
        change.new.reason,
        "Threshold Crossed: 1 datapoint [5.0 (12/02/26 13:40:00)] was greater than or equal to the threshold (5.0)."
    );
    assert_eq!(
        change.new.reason_data.as_deref().unwrap(),
        r#"{"version":"1.0","queryDate":"2026-02-12T13:41:07.000+0000","startDate":"2026-02-12T13:40:00.000+0000","statistic":"Sum","period":300,"recentDatapoints":[5.0],"threshold":5.0,"evaluatedDatapoints":[{"timestamp":"2026-02-12T13:40:00.000+0000","sampleCount":5.0,"value":5.0}]}"#
    );
    assert_eq!(
        change.summary(),
        "Alarm updated from INSUFFICIENT_DATA to ALARM"
    );

    // Still breaching: no change.
    assert_eq!(evaluate(&def, &change.new, &points, now()), None);

    // The next period holds a 0: back to OK.
    let later = at(13, 46);
    points.insert(at(13, 45), MetricAggregate::of_value(0.0));
    let ok = evaluate(&def, &change.new, &points, later).unwrap();
    assert_eq!(ok.new.value, StateValue::Ok);
    assert_eq!(
        ok.new.reason,
        "Threshold Crossed: 1 datapoint [0.0 (12/02/26 13:45:00)] was not greater than or equal to the threshold (5.0)."
    );
    assert_eq!(ok.summary(), "Alarm updated from ALARM to OK");
}

#[test]
fn an_empty_open_period_is_not_missing() {
    // notBreaching, N = 1: the closed period breached, the open one has no
    // data yet. Counting it as missing would flip to OK at every period
    // start; it is skipped, so the closed period decides.
    let def = alarm(json!({"TreatMissingData": "notBreaching"}));
    let mut points = Points::new();
    points.insert(at(13, 35), MetricAggregate::of_value(9.0));
    assert_eq!(
        evaluate(&def, &state(StateValue::Alarm), &points, now()),
        None
    );
    // With `breaching`, a good closed period is not overridden either.
    let def = alarm(json!({"TreatMissingData": "breaching"}));
    points.insert(at(13, 35), MetricAggregate::of_value(0.0));
    assert_eq!(evaluate(&def, &state(StateValue::Ok), &points, now()), None);
    // Once the open period holds data, it is evaluated.
    points.insert(at(13, 40), MetricAggregate::of_value(7.0));
    let change = evaluate(&def, &state(StateValue::Ok), &points, now()).unwrap();
    assert_eq!(change.new.value, StateValue::Alarm);
}

#[test]
fn the_open_period_counts() {
    // The datapoint arrived a second ago, in the period still open.
    let def = alarm(json!({"Period": 60}));
    let mut points = Points::new();
    points.insert(at(13, 41), MetricAggregate::of_value(9.0));
    let change = evaluate(&def, &state(StateValue::Ok), &points, now()).unwrap();
    assert_eq!(change.new.value, StateValue::Alarm);
}

#[test]
fn finer_datapoints_are_rolled_up_into_the_alarm_period() {
    let def = alarm(json!({"Threshold": 3.0}));
    let mut points = Points::new();
    for m in [38, 40, 41] {
        points.insert(at(13, m), MetricAggregate::of_value(1.5));
    }
    let change = evaluate(&def, &state(StateValue::Ok), &points, now()).unwrap();
    assert_eq!(change.new.value, StateValue::Alarm);
    assert_eq!(
        change.new.reason,
        "Threshold Crossed: 1 datapoint [3.0 (12/02/26 13:40:00)] was greater than or equal to the threshold (3.0)."
    );
}

#[test]
fn m_of_n_golden() {
    let def = alarm(json!({"EvaluationPeriods": 3, "DatapointsToAlarm": 2}));
    let points = series(&[Some(6.0), Some(1.0), Some(7.0)]);
    let change = evaluate(&def, &state(StateValue::InsufficientData), &points, now()).unwrap();
    assert_eq!(change.new.value, StateValue::Alarm);
    assert_eq!(
        change.new.reason,
        "Threshold Crossed: 2 out of the last 3 datapoints [7.0 (12/02/26 13:40:00), 6.0 (12/02/26 13:30:00)] were greater than or equal to the threshold (5.0) (minimum 2 datapoints for INSUFFICIENT_DATA -> ALARM transition)."
    );
    assert_eq!(
        change.new.reason_data.as_deref().unwrap(),
        r#"{"version":"1.0","queryDate":"2026-02-12T13:41:07.000+0000","startDate":"2026-02-12T13:30:00.000+0000","statistic":"Sum","period":300,"recentDatapoints":[6.0,1.0,7.0],"threshold":5.0,"evaluatedDatapoints":[{"timestamp":"2026-02-12T13:40:00.000+0000","sampleCount":1.0,"value":7.0},{"timestamp":"2026-02-12T13:35:00.000+0000","sampleCount":1.0,"value":1.0},{"timestamp":"2026-02-12T13:30:00.000+0000","sampleCount":1.0,"value":6.0}]}"#
    );

    // Only one of three breaching: OK; leaving ALARM takes N - M + 1 = 2.
    let points = series(&[Some(6.0), Some(1.0), Some(2.0)]);
    let ok = evaluate(&def, &change.new, &points, now()).unwrap();
    assert_eq!(
        ok.new.reason,
        "Threshold Crossed: 2 out of the last 3 datapoints [2.0 (12/02/26 13:40:00), 1.0 (12/02/26 13:35:00)] were not greater than or equal to the threshold (5.0) (minimum 2 datapoints for ALARM -> OK transition)."
    );

    // 3 of 3 with an explicit DatapointsToAlarm: one good datapoint is enough.
    let def = alarm(json!({"EvaluationPeriods": 3, "DatapointsToAlarm": 3}));
    let points = series(&[Some(6.0), Some(9.0), Some(2.0)]);
    let ok = evaluate(&def, &state(StateValue::Alarm), &points, now()).unwrap();
    assert_eq!(
        ok.new.reason,
        "Threshold Crossed: 1 out of the last 3 datapoints [2.0 (12/02/26 13:40:00)] was not greater than or equal to the threshold (5.0) (minimum 1 datapoint for ALARM -> OK transition)."
    );
}

#[test]
fn m_of_n_table() {
    // N = 3, M = 2; oldest first.
    let def = alarm(json!({"EvaluationPeriods": 3, "DatapointsToAlarm": 2}));
    let x = Some(9.0);
    let o = Some(0.0);
    for (pattern, want) in [
        ([x, x, x], StateValue::Alarm),
        ([x, o, x], StateValue::Alarm),
        ([o, x, x], StateValue::Alarm),
        ([x, x, o], StateValue::Alarm),
        ([o, o, x], StateValue::Ok),
        ([x, o, o], StateValue::Ok),
        ([o, o, o], StateValue::Ok),
    ] {
        for from in [
            StateValue::Ok,
            StateValue::Alarm,
            StateValue::InsufficientData,
        ] {
            assert_eq!(
                outcome(&def, from, &series(&pattern)),
                want,
                "{pattern:?} from {from}"
            );
        }
    }
}

#[test]
fn treat_missing_data_table() {
    // N = 3, M = 2, oldest first; X breaching, 0 not, - missing. Every row
    // starts from OK; `ignore` with nothing keeps OK.
    use StateValue::{Alarm, InsufficientData as Insufficient, Ok};
    let x = Some(9.0);
    let o = Some(0.0);
    let m = None;
    let rows: [([Option<f64>; 3], [StateValue; 4]); 6] = [
        //            missing       ignore  breaching notBreaching
        ([m, m, m], [Insufficient, Ok, Alarm, Ok]),
        ([o, m, x], [Ok, Ok, Alarm, Ok]),
        ([m, m, x], [Alarm, Alarm, Alarm, Ok]),
        ([x, x, o], [Alarm, Alarm, Alarm, Alarm]),
        ([o, m, m], [Ok, Ok, Alarm, Ok]),
        ([x, m, x], [Alarm, Alarm, Alarm, Alarm]),
    ];
    for (pattern, wants) in rows {
        for (mode, want) in ["missing", "ignore", "breaching", "notBreaching"]
            .into_iter()
            .zip(wants)
        {
            let def = alarm(json!({
                "EvaluationPeriods": 3, "DatapointsToAlarm": 2, "TreatMissingData": mode
            }));
            assert_eq!(
                outcome(&def, StateValue::Ok, &series(&pattern)),
                want,
                "{pattern:?} {mode}"
            );
        }
    }
    // `ignore` keeps ALARM too when nothing arrives.
    let def = alarm(json!({"TreatMissingData": "ignore"}));
    assert_eq!(
        evaluate(&def, &state(StateValue::Alarm), &Points::new(), now()),
        None
    );
}

#[test]
fn missing_looks_back_twice_the_evaluation_periods() {
    let def = alarm(json!({"EvaluationPeriods": 2}));
    // Breaching datapoint 3 periods back (within 2 × 2): found.
    let points = series(&[Some(9.0), None, None, None]);
    assert_eq!(outcome(&def, StateValue::Ok, &points), StateValue::Alarm);
    // The open period (now) has no data, so the window ends with the last
    // closed period and the lookback reaches 4 periods back; 5 is out of
    // range, so no data at all.
    let points = series(&[Some(9.0), None, None, None, None]);
    assert_eq!(outcome(&def, StateValue::Ok, &points), StateValue::Alarm);
    let points = series(&[Some(9.0), None, None, None, None, None]);
    assert_eq!(
        outcome(&def, StateValue::Ok, &points),
        StateValue::InsufficientData
    );
}

#[test]
fn missing_data_reasons_golden() {
    let def = alarm(json!({"TreatMissingData": "breaching"}));
    let change = evaluate(&def, &state(StateValue::Ok), &Points::new(), now()).unwrap();
    assert_eq!(
        change.new.reason,
        "Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint was treated as [Breaching]."
    );
    assert_eq!(
        change.new.reason_data.as_deref().unwrap(),
        r#"{"version":"1.0","queryDate":"2026-02-12T13:41:07.000+0000","statistic":"Sum","period":300,"recentDatapoints":[],"threshold":5.0,"evaluatedDatapoints":[{"timestamp":"2026-02-12T13:35:00.000+0000"}]}"#
    );

    let def = alarm(json!({"TreatMissingData": "notBreaching", "EvaluationPeriods": 2}));
    let change = evaluate(&def, &state(StateValue::Alarm), &Points::new(), now()).unwrap();
    assert_eq!(
        change.new.reason,
        "Threshold Crossed: no datapoints were received for 2 periods and 2 missing datapoints were treated as [NonBreaching]."
    );

    let def = alarm(json!({}));
    let change = evaluate(&def, &state(StateValue::Ok), &Points::new(), now()).unwrap();
    assert_eq!(change.new.value, StateValue::InsufficientData);
    assert_eq!(
        change.new.reason,
        "Insufficient Data: 1 datapoint was unknown."
    );

    let def = alarm(json!({"EvaluationPeriods": 3, "Unit": "Count"}));
    let change = evaluate(&def, &state(StateValue::Alarm), &Points::new(), now()).unwrap();
    assert_eq!(
        change.new.reason,
        "Insufficient Data: 3 datapoints were unknown."
    );
    assert_eq!(
        change.new.reason_data.as_deref().unwrap(),
        r#"{"version":"1.0","queryDate":"2026-02-12T13:41:07.000+0000","unit":"Count","statistic":"Sum","period":300,"recentDatapoints":[],"threshold":5.0,"evaluatedDatapoints":[{"timestamp":"2026-02-12T13:35:00.000+0000"},{"timestamp":"2026-02-12T13:30:00.000+0000"},{"timestamp":"2026-02-12T13:25:00.000+0000"}]}"#
    );
    // Already INSUFFICIENT_DATA: nothing to report.
    assert_eq!(
        evaluate(
            &def,
            &state(StateValue::InsufficientData),
            &Points::new(),
            now()
        ),
        None
    );
}

#[test]
fn operators() {
    use ComparisonOperator::*;
    for (op, value, breaches, phrase) in [
        (
            GreaterThanOrEqualToThreshold,
            5.0,
            true,
            "was greater than or equal to",
        ),
        (
            GreaterThanOrEqualToThreshold,
            4.9,
            false,
            "was not greater than or equal to",
        ),
        (GreaterThanThreshold, 5.0, false, "was not greater than"),
        (GreaterThanThreshold, 5.1, true, "was greater than"),
        (LessThanThreshold, 5.0, false, "was not less than"),
        (LessThanThreshold, 4.9, true, "was less than"),
        (
            LessThanOrEqualToThreshold,
            5.0,
            true,
            "was less than or equal to",
        ),
        (
            LessThanOrEqualToThreshold,
            5.1,
            false,
            "was not less than or equal to",
        ),
    ] {
        assert_eq!(op.breaches(value, 5.0), breaches, "{op} {value}");
        let def = alarm(json!({"ComparisonOperator": op.as_str()}));
        let change = evaluate(
            &def,
            &state(StateValue::InsufficientData),
            &series(&[Some(value)]),
            now(),
        )
        .unwrap();
        let want = if breaches {
            StateValue::Alarm
        } else {
            StateValue::Ok
        };
        assert_eq!(change.new.value, want, "{op} {value}");
        assert_eq!(
            change.new.reason,
            format!(
                "Threshold Crossed: 1 datapoint [{} (12/02/26 13:40:00)] {phrase} the threshold (5.0).",
                java_double(value)
            )
        );
    }
}

#[test]
fn each_statistic_is_what_is_compared() {
    let mut agg = MetricAggregate::new();
    agg.add_values(&[1.0, 2.0, 10.0], &[]);
    let mut points = Points::new();
    points.insert(at(13, 40), agg);
    for (stat, value) in [
        ("SampleCount", 3.0),
        ("Sum", 13.0),
        ("Average", 13.0 / 3.0),
        ("Minimum", 1.0),
        ("Maximum", 10.0),
    ] {
        let def = alarm(json!({"Statistic": stat, "Threshold": value}));
        let change = evaluate(&def, &state(StateValue::Ok), &points, now()).unwrap();
        assert_eq!(change.new.value, StateValue::Alarm, "{stat}");
        let above = alarm(json!({"Statistic": stat, "Threshold": value + 0.001}));
        assert_eq!(
            evaluate(&above, &state(StateValue::Ok), &points, now()),
            None,
            "{stat}"
        );
    }
}

#[test]
fn percentile_alarms_and_low_sample_counts() {
    let p99 = |low: Option<&str>| {
        let mut c = json!({"Statistic": null, "ExtendedStatistic": "p99", "Threshold": 100.0});
        if let Some(l) = low {
            c["EvaluateLowSampleCountPercentile"] = json!(l);
        }
        alarm(c)
    };
    // 50 samples, all 500: p99 = 500 breaches.
    let mut few = MetricAggregate::new();
    few.add_values(&[500.0], &[50.0]);
    let mut points = Points::new();
    points.insert(at(13, 40), few);
    // `ignore` needs 10 / (1 - 0.99) = 1000 samples.
    assert_eq!(
        evaluate(&p99(Some("ignore")), &state(StateValue::Ok), &points, now()),
        None
    );
    let change = evaluate(
        &p99(Some("evaluate")),
        &state(StateValue::Ok),
        &points,
        now(),
    )
    .unwrap();
    assert_eq!(change.new.value, StateValue::Alarm);
    let change = evaluate(&p99(None), &state(StateValue::Ok), &points, now()).unwrap();
    assert_eq!(change.new.value, StateValue::Alarm);
    assert!(
        change
            .new
            .reason_data
            .unwrap()
            .contains(r#""extendedStatistic":"p99","period":300"#)
    );

    let mut many = MetricAggregate::new();
    many.add_values(&[500.0], &[1000.0]);
    points.insert(at(13, 40), many);
    let change = evaluate(&p99(Some("ignore")), &state(StateValue::Ok), &points, now()).unwrap();
    assert_eq!(change.new.value, StateValue::Alarm);

    // A percentile over statistic sets has no value: the period is missing.
    let mut sets = MetricAggregate::new();
    sets.add_statistic_set(&StatisticSet {
        sample_count: 10.0,
        sum: 2000.0,
        minimum: 100.0,
        maximum: 300.0,
    });
    points.insert(at(13, 40), sets);
    let change = evaluate(&p99(None), &state(StateValue::Ok), &points, now()).unwrap();
    assert_eq!(change.new.value, StateValue::InsufficientData);
}

#[test]
fn set_alarm_state_changes_only_a_different_state() {
    let current = AlarmState::initial(at(13, 0));
    let change = set_alarm_state(
        &current,
        StateValue::Alarm,
        "testing",
        Some(r#"{"k":1}"#),
        now(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(change.old, current);
    assert_eq!(change.new.value, StateValue::Alarm);
    assert_eq!(change.new.reason, "testing");
    assert_eq!(change.new.reason_data.as_deref(), Some(r#"{"k":1}"#));
    assert_eq!(change.new.timestamp, now());
    assert_eq!(
        set_alarm_state(&change.new, StateValue::Alarm, "again", None, now()).unwrap(),
        None
    );
    let e = set_alarm_state(&current, StateValue::Ok, "r", Some("{not json"), now()).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidFormat);
    let e = set_alarm_state(&current, StateValue::Ok, &"r".repeat(1024), None, now()).unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationError);
    let e = set_alarm_state(
        &current,
        StateValue::Ok,
        "r",
        Some(&format!("\"{}\"", "x".repeat(4000))),
        now(),
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationError);
}

#[test]
fn state_values_on_the_wire() {
    for (v, text) in [
        (StateValue::Ok, "OK"),
        (StateValue::Alarm, "ALARM"),
        (StateValue::InsufficientData, "INSUFFICIENT_DATA"),
    ] {
        assert_eq!(v.as_str(), text);
        assert_eq!(StateValue::parse(text), Some(v));
        assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{text}\""));
    }
    assert_eq!(StateValue::parse("ok"), None);
}

#[test]
fn long_windows_stay_within_the_api_limits() {
    let def = alarm(json!({"Period": 60, "EvaluationPeriods": 1440, "DatapointsToAlarm": 1000}));
    let newest = period_start(now(), 60);
    let points: Points = (0..1440)
        .map(|i| {
            (
                newest - Duration::seconds(60) * i,
                MetricAggregate::of_value(123_456.789),
            )
        })
        .collect();
    let change = evaluate(&def, &state(StateValue::Ok), &points, now()).unwrap();
    assert_eq!(change.new.value, StateValue::Alarm);
    assert!(change.new.reason.chars().count() <= MAX_STATE_REASON);
    // The true count stays; the list shows the most recent that fit.
    assert!(
        change
            .new
            .reason
            .starts_with("Threshold Crossed: 1440 out of the last 1440 datapoints [123456.789 (12/02/26 13:41:00), 123456.789 (12/02/26 13:40:00),"),
        "{}",
        change.new.reason
    );
    assert!(change.new.reason.ends_with(
        "] were greater than or equal to the threshold (5.0) (minimum 1000 datapoints for OK -> ALARM transition)."
    ));
    let data = change.new.reason_data.as_deref().unwrap();
    assert!(data.len() <= MAX_STATE_REASON_DATA, "{}", data.len());
    let parsed: Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        parsed["evaluatedDatapoints"][0]["timestamp"],
        "2026-02-12T13:41:00.000+0000"
    );
    let item = state_update_item(&def.alarm_name, &change);
    assert!(item.history_data.len() <= MAX_HISTORY_DATA);
    serde_json::from_str::<Value>(&item.history_data).unwrap();
}
