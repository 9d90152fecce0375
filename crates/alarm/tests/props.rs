//! Property tests: merging aggregates equals aggregating the union; Java
//! number printing reads back; evaluation never panics and only reports
//! real changes.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use cairn_alarm::*;
use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;

fn of(values: &[f64]) -> MetricAggregate {
    let mut a = MetricAggregate::new();
    for &v in values {
        a.add_value(v);
    }
    a
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #[test]
    fn merge_equals_union(
        xs in prop::collection::vec(-1e6f64..1e6, 0..50),
        ys in prop::collection::vec(-1e6f64..1e6, 0..50),
    ) {
        let mut merged = of(&xs);
        merged.merge(&of(&ys));
        let union: Vec<f64> = xs.iter().chain(&ys).copied().collect();
        let all = of(&union);
        for s in [Statistic::SampleCount, Statistic::Minimum, Statistic::Maximum] {
            prop_assert_eq!(merged.statistic(s), all.statistic(s));
        }
        for s in [Statistic::Sum, Statistic::Average] {
            match (merged.statistic(s), all.statistic(s)) {
                (Some(a), Some(b)) => prop_assert!(close(a, b), "{} {} {}", s, a, b),
                (a, b) => prop_assert_eq!(a, b),
            }
        }
    }

    #[test]
    fn merged_percentiles_equal_the_union_while_exact(
        xs in prop::collection::vec(0u8..40, 0..60),
        ys in prop::collection::vec(0u8..40, 0..60),
        p in 0u32..=10_000,
    ) {
        let xs: Vec<f64> = xs.into_iter().map(f64::from).collect();
        let ys: Vec<f64> = ys.into_iter().map(f64::from).collect();
        let mut merged = of(&xs);
        merged.merge(&of(&ys));
        let union: Vec<f64> = xs.iter().chain(&ys).copied().collect();
        let stat = ExtendedStatistic::parse(&format!("p{}", f64::from(p) / 100.0)).unwrap();
        prop_assert_eq!(merged.extended(&stat), of(&union).extended(&stat));
        // And the percentile is an observed value, between min and max.
        if let Some(v) = merged.extended(&stat) {
            prop_assert!(union.contains(&v));
        }
    }

    #[test]
    fn java_double_reads_back(v in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
        let text = java_double(v);
        prop_assert!(text.contains('.'));
        prop_assert_eq!(text.replace('E', "e").parse::<f64>().unwrap(), v);
    }

    #[test]
    fn evaluation_reports_only_changes(
        values in prop::collection::vec(prop::option::of(-10.0f64..10.0), 1..12),
        n in 1u32..6,
        m in 1u32..6,
        mode in 0usize..4,
        from in 0usize..3,
    ) {
        let m = m.min(n);
        let modes = ["missing", "ignore", "breaching", "notBreaching"];
        let input: PutMetricAlarmInput = serde_json::from_value(serde_json::json!({
            "AlarmName": "a", "MetricName": "m", "Namespace": "n", "Statistic": "Average",
            "Period": 60, "EvaluationPeriods": n, "DatapointsToAlarm": m, "Threshold": 0.0,
            "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": modes[mode]
        })).unwrap();
        let def = validate_put_metric_alarm(&input).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 2, 12, 13, 41, 7).unwrap();
        let newest = period_start(now, 60);
        let mut points = BTreeMap::new();
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                let back = i32::try_from(i).unwrap();
                points.insert(newest - Duration::seconds(60) * back, MetricAggregate::of_value(*v));
            }
        }
        let states = [StateValue::Ok, StateValue::Alarm, StateValue::InsufficientData];
        let current = AlarmState { value: states[from], reason: String::new(), reason_data: None, timestamp: now };
        if let Some(change) = evaluate(&def, &current, &points, now) {
            prop_assert_ne!(change.new.value, current.value);
            prop_assert!(change.new.reason.len() < 1024 || n > 5);
            let data: serde_json::Value = serde_json::from_str(change.new.reason_data.as_deref().unwrap()).unwrap();
            prop_assert_eq!(&data["version"], "1.0");
            // Evaluating again from the new state changes nothing.
            prop_assert_eq!(evaluate(&def, &change.new, &points, now), None);
        }
    }
}

proptest! {
    #[test]
    fn aggregates_round_trip_through_json_exactly(
        xs in prop::collection::vec(any::<f64>(), 0..40),
        counts in prop::collection::vec(0.5f64..1e6, 0..40),
    ) {
        let mut a = MetricAggregate::new();
        a.add_values(&xs, &counts);
        let json = serde_json::to_string(&a).unwrap();
        prop_assert_eq!(serde_json::from_str::<MetricAggregate>(&json).unwrap(), a);
    }
}
