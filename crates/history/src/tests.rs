//! History store tests: storing once, each lookup attribute, paging, time
//! ranges, retention.

use crate::*;

fn event(id: &str, t: i64, name: &str, user: &str) -> HistoryEvent {
    HistoryEvent {
        event_id: id.into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        event_time_ms: t,
        event_name: Some(name.into()),
        read_only: Some(
            if name.starts_with("Get") {
                "true"
            } else {
                "false"
            }
            .into(),
        ),
        username: Some(user.into()),
        event_source: Some("s3.amazonaws.com".into()),
        access_key_id: Some(format!("AKIA{user}")),
        resources: vec![("AWS::S3::Bucket".into(), format!("bucket-{id}"))],
        record: format!("{{\"eventID\":\"{id}\"}}"),
    }
}

fn ids(events: &[HistoryEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_id.as_str()).collect()
}

fn history() -> History {
    let h = History::in_memory().expect("history");
    let events = vec![
        event("a", 1_000, "GetObject", "alice"),
        event("b", 2_000, "PutBucketPolicy", "bob"),
        event("c", 3_000, "GetObject", "bob"),
        event("d", 4_000, "DeleteBucket", "alice"),
    ];
    assert_eq!(h.record(&events).expect("record"), 4);
    assert_eq!(h.record(&events).expect("again"), 0);
    h
}

fn lookup(h: &History, attribute: Option<LookupAttribute>) -> Vec<String> {
    let (events, _) = h
        .lookup(
            "123456789012",
            "us-east-1",
            attribute.as_ref(),
            0,
            i64::MAX,
            None,
            50,
        )
        .expect("lookup");
    ids(&events).into_iter().map(str::to_owned).collect()
}

#[test]
fn test_each_attribute_finds_its_events_newest_first() {
    let h = history();
    assert_eq!(lookup(&h, None), ["d", "c", "b", "a"]);
    assert_eq!(
        lookup(&h, Some(LookupAttribute::EventId("c".into()))),
        ["c"]
    );
    assert_eq!(
        lookup(&h, Some(LookupAttribute::EventName("GetObject".into()))),
        ["c", "a"]
    );
    assert_eq!(
        lookup(&h, Some(LookupAttribute::ReadOnly("false".into()))),
        ["d", "b"]
    );
    assert_eq!(
        lookup(&h, Some(LookupAttribute::Username("alice".into()))),
        ["d", "a"]
    );
    assert_eq!(
        lookup(&h, Some(LookupAttribute::AccessKeyId("AKIAbob".into()))),
        ["c", "b"]
    );
    assert_eq!(
        lookup(
            &h,
            Some(LookupAttribute::EventSource("s3.amazonaws.com".into()))
        )
        .len(),
        4
    );
    assert_eq!(
        lookup(
            &h,
            Some(LookupAttribute::ResourceType("AWS::S3::Bucket".into()))
        )
        .len(),
        4
    );
    assert_eq!(
        lookup(&h, Some(LookupAttribute::ResourceName("bucket-b".into()))),
        ["b"]
    );
    let (events, _) = h
        .lookup("123456789012", "us-east-1", None, 0, i64::MAX, None, 1)
        .expect("lookup");
    assert_eq!(
        events[0].resources,
        [("AWS::S3::Bucket".to_owned(), "bucket-d".to_owned())]
    );
    assert!(lookup(&h, Some(LookupAttribute::Username("carol".into()))).is_empty());
}

#[test]
fn test_pages_and_time_ranges() {
    let h = history();
    let (first, next) = h
        .lookup("123456789012", "us-east-1", None, 0, i64::MAX, None, 3)
        .expect("page 1");
    assert_eq!(ids(&first), ["d", "c", "b"]);
    let (second, last) = h
        .lookup("123456789012", "us-east-1", None, 0, i64::MAX, next, 3)
        .expect("page 2");
    assert_eq!(ids(&second), ["a"]);
    assert_eq!(last, None);
    let (ranged, _) = h
        .lookup("123456789012", "us-east-1", None, 2_000, 3_000, None, 50)
        .expect("range");
    assert_eq!(ids(&ranged), ["c", "b"]);
    let (other_region, _) = h
        .lookup("123456789012", "eu-west-1", None, 0, i64::MAX, None, 50)
        .expect("region");
    assert!(other_region.is_empty());
}

#[test]
fn test_retention_removes_old_events_and_their_resources() {
    let h = history();
    assert_eq!(h.expire(2_500).expect("expire"), 2);
    assert_eq!(lookup(&h, None), ["d", "c"]);
    assert!(lookup(&h, Some(LookupAttribute::ResourceName("bucket-a".into()))).is_empty());
}
