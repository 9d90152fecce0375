//! Statistics: the five plain ones, percentiles (nearest rank), trimmed
//! statistics, statistic sets, folding past the exact-value cap, merging,
//! extended-statistic names, Java number printing.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use cairn_alarm::*;
use chrono::{TimeZone, Utc};

fn of(values: impl IntoIterator<Item = f64>) -> MetricAggregate {
    let mut a = MetricAggregate::new();
    for v in values {
        a.add_value(v);
    }
    a
}

fn ext(a: &MetricAggregate, name: &str) -> Option<f64> {
    a.extended(&ExtendedStatistic::parse(name).unwrap())
}

fn one_to(n: u32) -> MetricAggregate {
    of((1..=n).map(f64::from))
}

#[test]
fn plain_statistics() {
    let a = of([1.0, 2.0, 3.0, 4.0]);
    assert_eq!(a.statistic(Statistic::SampleCount), Some(4.0));
    assert_eq!(a.statistic(Statistic::Sum), Some(10.0));
    assert_eq!(a.statistic(Statistic::Average), Some(2.5));
    assert_eq!(a.statistic(Statistic::Minimum), Some(1.0));
    assert_eq!(a.statistic(Statistic::Maximum), Some(4.0));
    let empty = MetricAggregate::new();
    for s in Statistic::ALL {
        assert_eq!(empty.statistic(s), None, "{s}");
    }
    assert_eq!(ext(&empty, "p50"), None);
}

#[test]
fn values_and_counts_missing_count_is_one() {
    let mut a = MetricAggregate::new();
    a.add_values(&[1.0, 2.0], &[3.0]);
    assert_eq!(a.statistic(Statistic::SampleCount), Some(4.0));
    assert_eq!(a.statistic(Statistic::Sum), Some(5.0));
    assert_eq!(ext(&a, "p75"), Some(1.0));
    assert_eq!(ext(&a, "p76"), Some(2.0));
    // Non-finite or out-of-range values and non-positive counts are skipped.
    a.add_values(&[f64::NAN, 9.0, 10.0, 1e300], &[1.0, 0.0, -1.0, 1.0]);
    a.add_value(f64::INFINITY);
    assert_eq!(a.statistic(Statistic::SampleCount), Some(4.0));
    // -0.0 and 0.0 are one value.
    let z = of([-0.0, 0.0]);
    assert_eq!(z.distinct_values(), 1);
}

#[test]
fn percentiles_are_nearest_rank() {
    let a = one_to(100);
    assert_eq!(ext(&a, "p0"), Some(1.0));
    assert_eq!(ext(&a, "p0.5"), Some(1.0));
    assert_eq!(ext(&a, "p1"), Some(1.0));
    assert_eq!(ext(&a, "p1.01"), Some(2.0));
    assert_eq!(ext(&a, "p50"), Some(50.0));
    assert_eq!(ext(&a, "p99"), Some(99.0));
    assert_eq!(ext(&a, "p99.5"), Some(100.0));
    assert_eq!(ext(&a, "p100"), Some(100.0));
    assert_eq!(ext(&of([1.0, 2.0]), "p50"), Some(1.0));
    assert_eq!(ext(&of([7.0]), "p99.99"), Some(7.0));
}

#[test]
fn trimmed_statistics() {
    let ten = one_to(10);
    // tm90: the top 10 % trimmed: 1..=9.
    assert_eq!(ext(&ten, "tm90"), Some(5.0));
    assert_eq!(ext(&ten, "tc90"), Some(9.0));
    assert_eq!(ext(&ten, "ts90"), Some(45.0));
    // TM(10%:90%): above p10 (1), up to p90 (9): 2..=9.
    assert_eq!(ext(&ten, "TM(10%:90%)"), Some(5.5));
    assert_eq!(ext(&ten, "TC(10%:90%)"), Some(8.0));
    assert_eq!(ext(&ten, "TS(10%:90%)"), Some(44.0));
    assert_eq!(ext(&ten, "tm(10%:90%)"), Some(5.5));
    assert_eq!(ext(&ten, "TM(10%:)"), Some(6.0));
    // Winsorized: 10 clamped to p90 (9).
    assert_eq!(ext(&ten, "wm90"), Some(5.4));
    assert_eq!(ext(&ten, "WM(10%:90%)"), Some(5.4));
    // Absolute bounds: 2 < v <= 5.
    assert_eq!(ext(&ten, "TM(2:5)"), Some(4.0));
    assert_eq!(ext(&ten, "TC(2:5)"), Some(3.0));
    // IQM of 1..=8: p25 = 2, p75 = 6: 3..=6.
    assert_eq!(ext(&one_to(8), "IQM"), Some(4.5));
    // PR: percentage with n < v <= m.
    assert_eq!(ext(&ten, "PR(:5)"), Some(50.0));
    assert_eq!(ext(&ten, "PR(2:4)"), Some(20.0));
    assert_eq!(ext(&ten, "PR(10:)"), Some(0.0));
    // An empty trimmed range has no mean but a count of 0.
    assert_eq!(ext(&ten, "TM(20:30)"), None);
    assert_eq!(ext(&ten, "TC(20:30)"), Some(0.0));
}

#[test]
fn statistic_sets() {
    let mut a = MetricAggregate::new();
    a.add_statistic_set(&StatisticSet {
        sample_count: 4.0,
        sum: 10.0,
        minimum: 1.0,
        maximum: 4.0,
    });
    assert_eq!(a.statistic(Statistic::Average), Some(2.5));
    assert_eq!(a.statistic(Statistic::Maximum), Some(4.0));
    assert!(!a.has_distribution());
    assert_eq!(ext(&a, "p50"), None);
    assert_eq!(ext(&a, "tm90"), None);
    // Raw values added later do not bring the distribution back.
    a.add_value(3.0);
    assert_eq!(ext(&a, "p50"), None);
    assert_eq!(a.statistic(Statistic::SampleCount), Some(5.0));

    // A set of one sample, or with Minimum = Maximum, describes its values.
    let mut b = MetricAggregate::new();
    b.add_statistic_set(&StatisticSet {
        sample_count: 1.0,
        sum: 7.0,
        minimum: 7.0,
        maximum: 7.0,
    });
    b.add_statistic_set(&StatisticSet {
        sample_count: 3.0,
        sum: 6.0,
        minimum: 2.0,
        maximum: 2.0,
    });
    assert!(b.has_distribution());
    assert_eq!(ext(&b, "p75"), Some(2.0));
    assert_eq!(ext(&b, "p100"), Some(7.0));
    assert_eq!(b.statistic(Statistic::Sum), Some(13.0));
    // Nonsense sets are ignored.
    b.add_statistic_set(&StatisticSet {
        sample_count: 0.0,
        sum: 1.0,
        minimum: 1.0,
        maximum: 1.0,
    });
    b.add_statistic_set(&StatisticSet {
        sample_count: 2.0,
        sum: 1.0,
        minimum: 3.0,
        maximum: 1.0,
    });
    assert_eq!(b.statistic(Statistic::SampleCount), Some(4.0));
}

#[test]
fn folding_past_the_cap_keeps_memory_bounded_and_percentiles_close() {
    let mut a = MetricAggregate::new();
    for i in 1..=30_000u32 {
        a.add_value(f64::from(i));
    }
    assert!(!a.is_exact());
    assert!(a.distinct_values() < 2_000, "{}", a.distinct_values());
    assert_eq!(a.statistic(Statistic::SampleCount), Some(30_000.0));
    assert_eq!(a.statistic(Statistic::Sum), Some(450_015_000.0));
    assert_eq!(a.statistic(Statistic::Minimum), Some(1.0));
    assert_eq!(a.statistic(Statistic::Maximum), Some(30_000.0));
    for (p, want) in [(50.0, 15_000.0), (90.0, 27_000.0), (99.0, 29_700.0)] {
        let got = ext(&a, &format!("p{p}")).unwrap();
        assert!((got - want).abs() / want < 0.01, "p{p}: {got}");
    }
    // A folded aggregate merged into an exact one folds it.
    let mut b = of([5.0]);
    b.merge(&a);
    assert!(!b.is_exact());
    assert_eq!(b.statistic(Statistic::SampleCount), Some(30_001.0));
    // Within the cap everything stays exact.
    let c = one_to(u32::try_from(MAX_EXACT_VALUES).unwrap());
    assert!(c.is_exact());
}

#[test]
fn merge_and_roll_up() {
    let mut a = of([1.0, 2.0]);
    a.merge(&of([3.0, 10.0]));
    assert_eq!(a, of([1.0, 2.0, 3.0, 10.0]));
    a.merge(&MetricAggregate::new());
    assert_eq!(a, of([1.0, 2.0, 3.0, 10.0]));

    let t = |m: u32, s: u32| Utc.with_ymd_and_hms(2026, 2, 12, 13, m, s).unwrap();
    assert_eq!(period_start(t(41, 7), 300), t(40, 0));
    assert_eq!(period_start(t(44, 59), 60), t(44, 0));
    assert_eq!(period_start(t(44, 59), 10), t(44, 50));
    let mut fine = BTreeMap::new();
    for m in 38..=46 {
        fine.insert(t(m, 0), of([f64::from(m)]));
    }
    let coarse = roll_up(&fine, 300);
    assert_eq!(coarse.len(), 3);
    assert_eq!(
        coarse[&t(35, 0)].statistic(Statistic::Sum),
        Some(38.0 + 39.0)
    );
    assert_eq!(
        coarse[&t(40, 0)].statistic(Statistic::SampleCount),
        Some(5.0)
    );
    assert_eq!(coarse[&t(45, 0)].statistic(Statistic::Maximum), Some(46.0));
}

#[test]
fn aggregate_serde_round_trip_and_datapoint() {
    let a = of([1.0, 2.0, 2.0]);
    let json = serde_json::to_string(&a).unwrap();
    let back: MetricAggregate = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a);
    // Empty, folded and distribution-less aggregates round-trip too.
    let mut folded = one_to(20_000);
    folded.add_statistic_set(&StatisticSet {
        sample_count: 2.0,
        sum: 3.0,
        minimum: 1.0,
        maximum: 2.0,
    });
    for a in [MetricAggregate::new(), folded] {
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<MetricAggregate>(&json).unwrap(), a);
    }
    // An empty aggregate merged or added to takes the new bounds.
    let mut e = MetricAggregate::new();
    e.merge(&of([-3.0, 4.0]));
    assert_eq!(e.statistic(Statistic::Minimum), Some(-3.0));
    let mut e = MetricAggregate::new();
    e.add_value(7.0);
    assert_eq!(e.statistic(Statistic::Minimum), Some(7.0));

    let t = Utc.with_ymd_and_hms(2026, 2, 12, 13, 40, 0).unwrap();
    let d = a.datapoint(
        t,
        &[Statistic::Sum, Statistic::Maximum],
        &[ExtendedStatistic::parse("p50").unwrap()],
        Some(StandardUnit::Count),
    );
    assert_eq!(
        serde_json::to_string(&d).unwrap(),
        r#"{"Timestamp":"2026-02-12T13:40:00Z","Sum":5.0,"Maximum":2.0,"Unit":"Count","ExtendedStatistics":{"p50":2.0}}"#
    );
}

#[test]
fn extended_statistic_names() {
    for ok in [
        "p0",
        "p0.0",
        "p9",
        "p99",
        "p99.9",
        "p99.99",
        "p100",
        "p100.0",
        "tm99",
        "tm99.5",
        "wm90",
        "tc90",
        "ts90",
        "TM(10%:90%)",
        "TM(:95%)",
        "TM(5%:)",
        "tm(10%:90%)",
        "WM(25%:75%)",
        "TC(10%:90%)",
        "TS(10%:90%)",
        "TM(150:1000)",
        "IQM",
        "PR(:300)",
        "PR(100:2000)",
        "PR(100:)",
    ] {
        let e = ExtendedStatistic::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert_eq!(e.name(), ok);
    }
    for bad in [
        "",
        "p",
        "p100.1",
        "p101",
        "p-1",
        "p99.999",
        "p1e2",
        "P99",
        "p 9",
        "p.5",
        "p5.",
        "tm",
        "tm101",
        "TM(90%:10%)",
        "TM(:)",
        "TM(10%:90)",
        "TM(10%:90%",
        "XX(1:2)",
        "PR(:)",
        "PR(5:1)",
        "iqm",
        "Average",
        "p0099",
    ] {
        let err = ExtendedStatistic::parse(bad).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameterValue, "{bad}");
        assert_eq!(
            err.message,
            format!("The value {bad} for parameter ExtendedStatistic is not supported.")
        );
    }
    assert_eq!(
        ExtendedStatistic::parse("p99.5").unwrap().percentile(),
        Some(99.5)
    );
    assert_eq!(ExtendedStatistic::parse("tm99").unwrap().percentile(), None);
    // Serializes as its name; deserializing checks it.
    let e: ExtendedStatistic = serde_json::from_str(r#""p90""#).unwrap();
    assert_eq!(serde_json::to_string(&e).unwrap(), r#""p90""#);
    assert!(serde_json::from_str::<ExtendedStatistic>(r#""p900""#).is_err());
}

#[test]
fn java_doubles() {
    for (v, text) in [
        (5.0, "5.0"),
        (0.0, "0.0"),
        (-2.0, "-2.0"),
        (0.059, "0.059"),
        (0.001, "0.001"),
        (99.83274983791787, "99.83274983791787"),
        (9_999_999.0, "9999999.0"),
        (1e7, "1.0E7"),
        (12_345_678.9, "1.23456789E7"),
        (1.5e-5, "1.5E-5"),
        (-0.0001, "-1.0E-4"),
    ] {
        assert_eq!(java_double(v), text, "{v}");
    }
    let t = Utc.with_ymd_and_hms(2026, 2, 3, 4, 5, 6).unwrap();
    assert_eq!(cw_timestamp(t), "2026-02-03T04:05:06.000+0000");
    assert_eq!(reason_timestamp(t), "03/02/26 04:05:06");
}
