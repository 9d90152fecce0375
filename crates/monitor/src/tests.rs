//! Store tests: groups, streams, events, filters, samples, replays.

use std::collections::BTreeMap;

use crate::logs::check_metric_filter;
use crate::*;

fn group() -> GroupKey {
    GroupKey::new("123456789012", "us-east-1", "CloudTrail")
}

fn store_with_group() -> Monitor {
    let m = Monitor::in_memory().expect("store");
    m.create_log_group(&group(), 1_000, None, "STANDARD", &BTreeMap::new())
        .expect("group");
    m
}

fn count_transformation(name: &str) -> Vec<MetricTransformation> {
    vec![MetricTransformation {
        metric_name: name.into(),
        metric_namespace: "CloudTrailMetrics".into(),
        metric_value: "1".into(),
        default_value: None,
        dimensions: BTreeMap::new(),
        unit: None,
    }]
}

fn metric(name: &str) -> MetricKey {
    MetricKey {
        account: "123456789012".into(),
        region: "us-east-1".into(),
        namespace: "CloudTrailMetrics".into(),
        name: name.into(),
        dimensions: Vec::new(),
    }
}

#[test]
fn test_log_groups_are_unique_per_account_and_region() {
    let m = store_with_group();
    let again = m.create_log_group(&group(), 2_000, None, "STANDARD", &BTreeMap::new());
    assert!(matches!(again, Err(Error::AlreadyExists(_))));
    let other_region = GroupKey::new("123456789012", "eu-west-1", "CloudTrail");
    m.create_log_group(&other_region, 2_000, None, "STANDARD", &BTreeMap::new())
        .expect("same name, other region");
    let (groups, next) = m
        .describe_log_groups("123456789012", "us-east-1", None, None, None, 50)
        .expect("describe");
    assert_eq!(groups.len(), 1);
    assert_eq!(next, None);
    assert_eq!(groups[0].key, group());
}

#[test]
fn test_describe_log_groups_pages_by_name() {
    let m = Monitor::in_memory().expect("store");
    for name in ["a", "b", "c", "d", "e"] {
        m.create_log_group(
            &GroupKey::new("1", "r", name),
            0,
            None,
            "STANDARD",
            &BTreeMap::new(),
        )
        .expect("group");
    }
    let (page, next) = m
        .describe_log_groups("1", "r", None, None, None, 2)
        .expect("page");
    assert_eq!(
        page.iter().map(|g| g.key.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let (page, next) = m
        .describe_log_groups("1", "r", None, None, next.as_deref(), 2)
        .expect("page");
    assert_eq!(
        page.iter().map(|g| g.key.name.as_str()).collect::<Vec<_>>(),
        ["c", "d"]
    );
    let (page, next) = m
        .describe_log_groups("1", "r", None, None, next.as_deref(), 2)
        .expect("page");
    assert_eq!(page.len(), 1);
    assert_eq!(next, None);
}

#[test]
fn test_append_needs_the_stream_unless_asked_to_create_it() {
    let m = store_with_group();
    let event = NewLogEvent {
        timestamp: 5,
        message: "hello",
        origin_seq: None,
    };
    assert!(matches!(
        m.append(&group(), "s", &[event], None, false, 10),
        Err(Error::NotFound(_))
    ));
    let outcome = m
        .append(&group(), "s", &[event], None, true, 10)
        .expect("append");
    assert_eq!(outcome.inserted, 1);
    let (streams, _) = m
        .describe_log_streams(&group(), None, StreamOrder::LogStreamName, false, 0, 50)
        .expect("streams");
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].first_event_ms, Some(5));
    assert_eq!(streams[0].last_ingestion_ms, Some(10));
    assert_eq!(streams[0].stored_bytes, 5);
}

#[test]
fn test_metric_filters_make_one_sample_per_matching_event_and_none_on_replay() {
    let m = store_with_group();
    m.put_metric_filter(
        &group(),
        "UnauthorizedAPICalls",
        r#"{ ($.errorCode = "*UnauthorizedAccess*") || ($.errorCode = "AccessDenied*") }"#,
        &count_transformation("UnauthorizedAPICalls"),
        0,
    )
    .expect("filter");
    let denied = r#"{"errorCode":"AccessDenied","eventName":"GetObject"}"#;
    let fine = r#"{"eventName":"GetObject"}"#;
    let events: Vec<NewLogEvent<'_>> = [denied, fine, denied]
        .iter()
        .enumerate()
        .map(|(i, message)| NewLogEvent {
            timestamp: 60_000 + i as i64,
            message,
            origin_seq: Some(i as i64),
        })
        .collect();
    let first = m
        .append(&group(), "s", &events, Some(7), true, 100)
        .expect("append");
    assert_eq!((first.inserted, first.samples), (3, 2));
    // The same WAL range fed again (a crash before the cursor moved).
    let replay = m
        .append(&group(), "s", &events, Some(7), true, 200)
        .expect("replay");
    assert_eq!((replay.inserted, replay.samples), (0, 0));
    let samples = m
        .metric_samples(&metric("UnauthorizedAPICalls"), 0, i64::MAX)
        .expect("samples");
    assert_eq!(samples.len(), 2);
    assert!(samples.iter().all(|s| s.value == 1.0));
    // Another origin (a second trail on the same group) is other events.
    let other = m
        .append(&group(), "s", &events, Some(8), true, 300)
        .expect("other origin");
    assert_eq!(other.inserted, 3);
}

#[test]
fn test_a_changed_filter_applies_to_the_next_events() {
    let m = store_with_group();
    let put = |pattern: &str| {
        m.put_metric_filter(&group(), "f", pattern, &count_transformation("M"), 0)
            .expect("filter")
    };
    let append = |message: &str| {
        m.append(
            &group(),
            "s",
            &[NewLogEvent {
                timestamp: 1,
                message,
                origin_seq: None,
            }],
            None,
            true,
            1,
        )
        .expect("append")
        .samples
    };
    put("ERROR");
    assert_eq!(append("an ERROR here"), 1);
    put("WARN");
    assert_eq!(append("an ERROR here"), 0);
    assert_eq!(append("a WARN here"), 1);
    m.delete_metric_filter(&group(), "f").expect("delete");
    assert_eq!(append("a WARN here"), 0);
}

#[test]
fn test_metric_values_and_dimensions_come_from_the_event() {
    let m = store_with_group();
    let mut dims = BTreeMap::new();
    dims.insert("Bucket".to_owned(), "$.bucket".to_owned());
    m.put_metric_filter(
        &group(),
        "bytes",
        r#"{ $.bytes > 0 && $.bucket = * }"#,
        &[MetricTransformation {
            metric_name: "Bytes".into(),
            metric_namespace: "App".into(),
            metric_value: "$.bytes".into(),
            default_value: None,
            dimensions: dims,
            unit: Some("Bytes".into()),
        }],
        0,
    )
    .expect("filter");
    let outcome = m
        .append(
            &group(),
            "s",
            &[NewLogEvent {
                timestamp: 1,
                message: r#"{"bytes": 512, "bucket": "logs"}"#,
                origin_seq: None,
            }],
            None,
            true,
            1,
        )
        .expect("append");
    assert_eq!(outcome.samples, 1);
    let key = MetricKey {
        namespace: "App".into(),
        name: "Bytes".into(),
        dimensions: vec![("Bucket".into(), "logs".into())],
        ..metric("")
    };
    let samples = m.metric_samples(&key, 0, 10).expect("samples");
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].value, 512.0);
    assert_eq!(samples[0].unit.as_deref(), Some("Bytes"));
}

#[test]
fn test_default_value_stands_for_minutes_without_a_match() {
    let m = store_with_group();
    let mut t = count_transformation("Errors");
    t[0].default_value = Some(0.0);
    m.put_metric_filter(&group(), "errors", "ERROR", &t, 0)
        .expect("filter");
    let events = [
        NewLogEvent {
            timestamp: 60_000,
            message: "ok",
            origin_seq: None,
        },
        NewLogEvent {
            timestamp: 120_000,
            message: "ERROR",
            origin_seq: None,
        },
    ];
    m.append(&group(), "s", &events, None, true, 1)
        .expect("append");
    let samples = m
        .metric_samples(&metric("Errors"), 0, i64::MAX)
        .expect("samples");
    let points: Vec<(i64, f64)> = samples.iter().map(|s| (s.timestamp, s.value)).collect();
    assert_eq!(points, [(60_000, 0.0), (120_000, 1.0)]);
}

#[test]
fn test_bad_metric_filters_are_refused_with_the_reason() {
    let t = count_transformation("M");
    assert!(check_metric_filter("{ $.a = ", &t).is_err());
    let mut field = t.clone();
    field[0].metric_value = "$.missing".into();
    let reason = check_metric_filter("{ $.a = 1 }", &field).expect_err("unknown field");
    assert!(!reason.is_empty());
    assert!(check_metric_filter("{ $.a = 1 }", &t).is_ok());
}

#[test]
fn test_get_log_events_pages_both_ways() {
    let m = store_with_group();
    let messages: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
    let events: Vec<NewLogEvent<'_>> = messages
        .iter()
        .enumerate()
        .map(|(i, message)| NewLogEvent {
            timestamp: i as i64,
            message,
            origin_seq: None,
        })
        .collect();
    m.append(&group(), "s", &events, None, true, 9)
        .expect("append");
    let texts = |page: &EventPage| {
        page.events
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
    };
    let tail = m
        .get_log_events(&group(), "s", None, None, None, None, false, 2)
        .expect("tail");
    assert_eq!(texts(&tail), ["m3", "m4"]);
    let head = m
        .get_log_events(&group(), "s", None, None, None, None, true, 2)
        .expect("head");
    assert_eq!(texts(&head), ["m0", "m1"]);
    let next = m
        .get_log_events(&group(), "s", None, None, head.next, None, true, 2)
        .expect("forward");
    assert_eq!(texts(&next), ["m2", "m3"]);
    let back = m
        .get_log_events(&group(), "s", None, None, None, tail.first, false, 2)
        .expect("backward");
    assert_eq!(texts(&back), ["m1", "m2"]);
    let ranged = m
        .get_log_events(&group(), "s", Some(1), Some(3), None, None, true, 10)
        .expect("range");
    assert_eq!(texts(&ranged), ["m1", "m2"]);
}

#[test]
fn test_filter_log_events_matches_patterns_across_streams() {
    let m = store_with_group();
    for (stream, message, ts) in [
        ("a", r#"{"errorCode":"AccessDenied"}"#, 1),
        ("b", r#"{"errorCode":"AccessDenied"}"#, 2),
        ("a", r#"{"eventName":"x"}"#, 3),
    ] {
        m.append(
            &group(),
            stream,
            &[NewLogEvent {
                timestamp: ts,
                message,
                origin_seq: None,
            }],
            None,
            true,
            ts,
        )
        .expect("append");
    }
    let pattern =
        cairn_filter::FilterPattern::parse(r#"{ $.errorCode = "AccessDenied" }"#).expect("pattern");
    let page = m
        .filter_log_events(&group(), None, None, None, None, Some(&pattern), None, 10)
        .expect("filter");
    assert_eq!(
        page.events
            .iter()
            .map(|e| e.stream.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    let only_b = ["b".to_owned()];
    let page = m
        .filter_log_events(
            &group(),
            Some(&only_b),
            None,
            None,
            None,
            Some(&pattern),
            None,
            10,
        )
        .expect("filter");
    assert_eq!(page.events.len(), 1);
    let first = m
        .filter_log_events(&group(), None, None, None, None, None, None, 1)
        .expect("page 1");
    assert_eq!(first.events.len(), 1);
    let rest = m
        .filter_log_events(&group(), None, None, None, None, None, first.next, 10)
        .expect("page 2");
    assert_eq!(rest.events.len(), 2);
    assert_eq!(rest.next, None);
}

#[test]
fn test_retention_removes_old_events_only_where_set() {
    let m = store_with_group();
    let other = GroupKey::new("123456789012", "us-east-1", "Kept");
    m.create_log_group(&other, 0, None, "STANDARD", &BTreeMap::new())
        .expect("group");
    let day = 86_400_000;
    for key in [group(), other.clone()] {
        m.append(
            &key,
            "s",
            &[
                NewLogEvent {
                    timestamp: 0,
                    message: "old",
                    origin_seq: None,
                },
                NewLogEvent {
                    timestamp: 9 * day,
                    message: "new",
                    origin_seq: None,
                },
            ],
            None,
            true,
            0,
        )
        .expect("append");
    }
    m.set_retention(&group(), Some(1)).expect("retention");
    assert_eq!(m.expire_log_events(9 * day + 1).expect("expire"), 1);
    let page = m
        .filter_log_events(&group(), None, None, None, None, None, None, 10)
        .expect("events");
    assert_eq!(page.events.len(), 1);
    let page = m
        .filter_log_events(&other, None, None, None, None, None, None, 10)
        .expect("events");
    assert_eq!(page.events.len(), 2);
}

#[test]
fn test_deleting_a_group_removes_everything_in_it() {
    let m = store_with_group();
    m.put_metric_filter(&group(), "f", "x", &count_transformation("M"), 0)
        .expect("filter");
    m.append(
        &group(),
        "s",
        &[NewLogEvent {
            timestamp: 0,
            message: "x",
            origin_seq: Some(1),
        }],
        Some(1),
        true,
        0,
    )
    .expect("append");
    m.delete_log_group(&group()).expect("delete");
    assert_eq!(m.log_group(&group()).expect("read"), None);
    m.create_log_group(&group(), 5, None, "STANDARD", &BTreeMap::new())
        .expect("again");
    let (filters, _) = m
        .describe_metric_filters("123456789012", "us-east-1", None, None, None, 0, 50)
        .expect("filters");
    assert!(filters.is_empty());
    // The replayed event of the old group is a new event in the new one.
    let outcome = m
        .append(
            &group(),
            "s",
            &[NewLogEvent {
                timestamp: 0,
                message: "x",
                origin_seq: Some(1),
            }],
            Some(1),
            true,
            0,
        )
        .expect("append");
    assert_eq!(outcome.inserted, 1);
}

#[test]
fn test_the_store_survives_reopening() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("monitor.sqlite");
    {
        let m = Monitor::open(&path).expect("open");
        m.create_log_group(&group(), 1, None, "STANDARD", &BTreeMap::new())
            .expect("group");
        m.put_metric_filter(&group(), "f", "x", &count_transformation("M"), 0)
            .expect("filter");
    }
    let m = Monitor::open(&path).expect("reopen");
    let (filters, _) = m
        .describe_metric_filters(
            "123456789012",
            "us-east-1",
            Some("CloudTrail"),
            None,
            None,
            0,
            50,
        )
        .expect("filters");
    assert_eq!(filters.len(), 1);
    assert_eq!(filters[0].transformations, count_transformation("M"));
}

#[test]
fn test_a_feed_replay_across_streams_stores_nothing_twice_and_goes_on_after() {
    let m = store_with_group();
    let event = |seq: i64, message: &'static str| NewLogEvent {
        timestamp: seq,
        message,
        origin_seq: Some(seq),
    };
    let a = [event(1, "a1"), event(4, "a4")];
    let b = [event(2, "b2"), event(3, "b3")];
    let first = m
        .append_streams(&group(), &[("a", &a), ("b", &b)], Some(9), true, 0)
        .expect("first");
    assert_eq!(first.inserted, 4);
    let replay = m
        .append_streams(&group(), &[("a", &a), ("b", &b)], Some(9), true, 0)
        .expect("replay");
    assert_eq!(replay.inserted, 0);
    // The range fed again after a crash holds the stored batch and more.
    let more = [event(3, "b3"), event(5, "b5")];
    let next = m
        .append_streams(&group(), &[("b", &more)], Some(9), true, 0)
        .expect("next");
    assert_eq!(next.inserted, 1);
    let page = m
        .filter_log_events(&group(), None, None, None, None, None, None, 100)
        .expect("events");
    let mut messages: Vec<String> = page.events.into_iter().map(|e| e.message).collect();
    messages.sort();
    assert_eq!(messages, ["a1", "a4", "b2", "b3", "b5"]);
}

#[test]
fn test_damaged_documents_are_named_by_table_row_and_column() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("monitor.sqlite");
    {
        let m = Monitor::open(&path).expect("open");
        m.create_log_group(&group(), 1, None, "STANDARD", &BTreeMap::new())
            .expect("group");
        m.put_metric_filter(&group(), "f", "x", &count_transformation("M"), 0)
            .expect("filter");
        assert_eq!(m.verify().expect("verify"), Vec::<String>::new());
    }
    {
        let conn = rusqlite::Connection::open(&path).expect("raw");
        conn.execute(
            "UPDATE metric_filters SET transformations = '[{\"broken'",
            [],
        )
        .expect("damage");
    }
    let m = Monitor::open(&path).expect("reopen");
    let damage = m.damaged_documents().expect("check");
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert!(damage[0].starts_with("table metric_filters, row \"f\", column transformations"));
}
