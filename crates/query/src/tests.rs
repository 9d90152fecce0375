//! The engine on small tables: the dialect's rewrites and errors.

use super::*;
use crate::schema::{Partition, records_to_batch};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use serde_json::json;
use std::collections::BTreeSet;

/// Pseudo-random numbers for the crate's tests from a fixed `seed` (a
/// linear congruential generator: each call steps it and returns the whole
/// state; callers take its high bits).
pub(crate) fn numbers(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state
    }
}

async fn engine_with(records: Vec<serde_json::Value>) -> (Engine, tempfile::TempDir) {
    engine_with_config(records, EngineConfig::default()).await
}

/// Writes `records` as a Parquet file at `path`, replacing it by a rename
/// as Cairn's writers do.
fn write_parquet(path: &std::path::Path, records: Vec<serde_json::Value>) {
    let partition = Partition::of_path("AWSLogs/1/CloudTrail/us-east-1/2024/01/05/f.json.gz");
    let batch = records_to_batch(records.into_iter().map(|r| (r, &partition)).collect()).unwrap();
    let staged = path.with_extension("staged");
    let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&staged).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// The path of day `day`'s part (January 2024, us-east-1) in `dir`, as the
/// Athena copy names parts.
fn day_part(dir: &std::path::Path, day: u32) -> std::path::PathBuf {
    dir.join(format!("2024-01-{day:02}-us-east-1-a.parquet"))
}

async fn engine_with_config(
    records: Vec<serde_json::Value>,
    config: EngineConfig,
) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    write_parquet(&path, records);
    let engine = Engine::new(config).unwrap();
    engine
        .register_parquet("cloudtrail_logs", path.to_str().unwrap())
        .await
        .unwrap();
    (engine, dir)
}

fn strings(result: &QueryResult, column: usize) -> Vec<Option<String>> {
    result
        .batches
        .iter()
        .flat_map(|b| {
            let c = datafusion::arrow::compute::cast(
                b.column(column),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let c = c.as_string::<i32>().clone();
            (0..c.len())
                .map(move |i| c.is_valid(i).then(|| c.value(i).to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The plan `EXPLAIN` shows for `sql`, as one text.
async fn explain(engine: &Engine, sql: &str) -> String {
    let plan = engine.sql(&format!("EXPLAIN {sql}")).await.unwrap();
    strings(&plan, 1).into_iter().flatten().collect()
}

/// The first column of `sql`'s rows.
async fn first_column(engine: &Engine, sql: &str) -> Vec<Option<String>> {
    strings(&engine.sql(sql).await.unwrap(), 0)
}

/// A `GetObject` event `e<id>` at `time`.
fn get_object(id: u32, time: Option<&str>) -> serde_json::Value {
    json!({"eventVersion": "1.08", "eventID": format!("e{id}"), "eventName": "GetObject",
           "eventTime": time, "eventSource": "s3.amazonaws.com"})
}

/// An engine reading the Parquet files of `dir` as `cloudtrail_logs`, in
/// `target_partitions` partitions.
async fn engine_over(dir: &std::path::Path, target_partitions: usize) -> Engine {
    let engine = Engine::new(EngineConfig {
        target_partitions,
        ..EngineConfig::default()
    })
    .unwrap();
    engine
        .register_parquet("cloudtrail_logs", dir.to_str().unwrap())
        .await
        .unwrap();
    engine
}

#[tokio::test]
async fn test_footers_are_kept_across_sessions_and_a_replaced_file_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part.parquet");
    let path_text = path.to_str().unwrap().to_owned();
    let event = |id: u32, name: &str| {
        json!({"eventVersion": "1.08", "eventID": format!("e{id}"), "eventName": name,
               "eventTime": "2024-01-05T10:00:00Z", "eventSource": "s3.amazonaws.com"})
    };
    write_parquet(&path, vec![event(1, "GetObject"), event(2, "PutObject")]);
    let caches = FileCaches::new();
    let count = |engine: Engine| {
        let path_text = path_text.clone();
        async move {
            engine
                .register_parquet("cloudtrail_logs", &path_text)
                .await
                .unwrap();
            let result = engine
                .sql("SELECT count(*) FROM cloudtrail_logs WHERE eventname <> 'DeleteObject'")
                .await
                .unwrap();
            strings(&result, 0)
        }
    };
    let with_caches = || Engine::with_caches(EngineConfig::default(), "default", &caches).unwrap();
    assert_eq!(count(with_caches()).await, [Some("2".to_owned())]);
    assert!(!caches.metadata.is_empty(), "{caches:?}");
    assert_eq!(count(with_caches()).await, [Some("2".to_owned())]);

    // A file replaced under the same name is read again, not answered from
    // the footer kept for the file it replaced.
    write_parquet(
        &path,
        (10..15).map(|i| event(i, "GetObject")).collect::<Vec<_>>(),
    );
    assert_eq!(count(with_caches()).await, [Some("5".to_owned())]);
}

#[tokio::test]
async fn test_statistics_kept_beside_parts_serve_the_next_process_and_follow_a_replaced_part() {
    let dir = tempfile::tempdir().unwrap();
    let event = |id: u32, name: &str, time: &str| {
        json!({"eventVersion": "1.08", "eventID": format!("e{id}"), "eventName": name,
               "eventTime": time, "eventSource": "s3.amazonaws.com"})
    };
    write_parquet(
        &dir.path().join("2024-01-05-us-east-1-a.parquet"),
        vec![
            event(1, "GetObject", "2024-01-05T10:00:00Z"),
            event(2, "PutObject", "2024-01-05T11:00:00Z"),
        ],
    );
    write_parquet(
        &dir.path().join("2024-01-06-us-east-1-b.parquet"),
        vec![event(3, "GetObject", "2024-01-06T10:00:00Z")],
    );
    let dir_text = dir.path().to_str().unwrap().to_owned();
    // Each call stands for a process: caches of its own, from the disk.
    let query = |sql: &'static str| {
        let dir_text = dir_text.clone();
        let caches = FileCaches::with_statistics_beside_parts(dir.path());
        async move {
            let engine = Engine::new_with_caches(EngineConfig::default(), &caches).unwrap();
            engine
                .register_parquet("cloudtrail_logs", &dir_text)
                .await
                .unwrap();
            strings(&engine.sql(sql).await.unwrap(), 0)
        }
    };
    let later = "SELECT count(*) FROM cloudtrail_logs WHERE eventtime > '2024-01-06'";
    let gets = "SELECT count(*) FROM cloudtrail_logs WHERE eventname = 'GetObject'";
    assert_eq!(query(later).await, [Some("1".to_owned())]);
    let statistics = |name: &str| dir.path().join(format!("{name}.statistics"));
    for name in ["2024-01-05-us-east-1-a", "2024-01-06-us-east-1-b"] {
        let text = std::fs::read_to_string(statistics(name)).unwrap();
        assert!(text.contains("2024-01-0"), "{name}: {text}");
    }
    // The next processes plan from the files, and answer the same.
    assert_eq!(query(later).await, [Some("1".to_owned())]);
    assert_eq!(query(gets).await, [Some("2".to_owned())]);

    // A part replaced (a refresh rebuilt its day) is summarised again: its
    // old statistics would prune it from the query below.
    let first = statistics("2024-01-05-us-east-1-a");
    let before = std::fs::read_to_string(&first).unwrap();
    write_parquet(
        &dir.path().join("2024-01-05-us-east-1-a.parquet"),
        (10..13)
            .map(|i| event(i, "GetObject", "2024-01-07T09:00:00Z"))
            .collect(),
    );
    assert_eq!(query(later).await, [Some("4".to_owned())]);
    assert_ne!(std::fs::read_to_string(&first).unwrap(), before);
    assert_eq!(query(gets).await, [Some("4".to_owned())]);
}

#[tokio::test]
async fn test_trino_spellings_resolve() {
    let (engine, _dir) = engine_with(vec![
        json!({"eventTime": "2024-01-05T10:00:00Z", "eventName": "Decrypt",
               "userIdentity": {"arn": "arn:aws:iam::1:user/a", "userName": "a"},
               "resources": [{"ARN": "arn:aws:kms:us-east-1:1:key/k1"}, {"ARN": "arn:aws:kms:us-east-1:1:key/k2"}]}),
        json!({"eventTime": "2024-01-04T10:00:00Z", "eventName": "Encrypt",
               "userIdentity": {"arn": "arn:aws:iam::1:user/b"}}),
    ])
    .await;
    let result = engine
        .sql("SELECT eventTime, userIdentity.arn, userIdentity.userName, resources[1].arn AS key_arn, resources[2].ARN \
              FROM cloudtrail_logs WHERE eventTime > date_format(date_add('hour', 12, from_iso8601_timestamp('2024-01-04T00:00:00Z')), '%Y-%m-%dT%H:%i:%sZ') \
              ORDER BY eventTime DESC;")
        .await
        .unwrap();
    assert_eq!(result.num_rows(), 1);
    assert_eq!(
        strings(&result, 1),
        [Some("arn:aws:iam::1:user/a".to_owned())]
    );
    assert_eq!(
        strings(&result, 3),
        [Some("arn:aws:kms:us-east-1:1:key/k1".to_owned())]
    );
    assert_eq!(
        strings(&result, 4),
        [Some("arn:aws:kms:us-east-1:1:key/k2".to_owned())]
    );
    let result = engine
        .sql("SELECT count(*), count(DISTINCT eventName), min(eventTime) FROM CloudTrail_Logs WHERE resources[1].arn IS NULL")
        .await
        .unwrap();
    assert_eq!(strings(&result, 0), [Some("1".to_owned())]);
    assert_eq!(
        strings(&result, 2),
        [Some("2024-01-04T10:00:00Z".to_owned())]
    );
}

#[tokio::test]
async fn test_bad_queries_are_invalid_with_names() {
    let (engine, _dir) = engine_with(vec![json!({"eventName": "x"})]).await;
    for (sql, wanted) in [
        ("SELEC eventname FROM cloudtrail_logs", "SELEC"),
        ("SELECT eventname FROM no_such_table", "no_such_table"),
        (
            "SELECT no_such_column FROM cloudtrail_logs",
            "no_such_column",
        ),
        (
            "SELECT no_such_function(eventname) FROM cloudtrail_logs",
            "no_such_function",
        ),
        (
            "SELECT date_add('fortnight', 1, now()) FROM cloudtrail_logs",
            "fortnight",
        ),
    ] {
        match engine.sql(sql).await {
            Err(Error::Invalid(message)) => assert!(message.contains(wanted), "{sql}: {message}"),
            other => panic!("{sql}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn test_columns_are_named_as_athena_names_them() {
    let (engine, _dir) = engine_with(vec![json!({"eventName": "x", "userIdentity": {"arn": "a"},
                                                 "resources": [{"arn": "r"}]})])
    .await;
    let result = engine
        .sql("SELECT eventName, userIdentity.arn, resources[1].arn AS key_arn, count(*), \
              userIdentity.sessionContext.sessionIssuer.arn FROM cloudtrail_logs GROUP BY 1, 2, 3, 5")
        .await
        .unwrap();
    let names: Vec<&str> = result
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names[..4], ["eventname", "arn", "key_arn", "_col3"]);
    // Strings are read as views and held as plain strings: a view would keep
    // the whole buffer it was read into alive with the result.
    for field in result.schema.fields() {
        assert_ne!(field.data_type(), &DataType::Utf8View, "{field}");
    }
    for batch in &result.batches {
        assert_eq!(batch.schema(), result.schema);
    }
    // A second `arn` is left to the engine rather than made ambiguous.
    assert_ne!(names[4], "arn");
}

#[test]
fn statements_that_may_combine_queries_are_recognised() {
    assert!(may_combine_queries("SELECT 1 UNION ALL SELECT 2"));
    assert!(may_combine_queries(
        "select a from t\nexcept select a from u"
    ));
    assert!(may_combine_queries("SELECT 1 INTERSECT SELECT 1"));
    assert!(!may_combine_queries(
        "SELECT reunion_id, exceptional FROM t"
    ));
    assert!(!may_combine_queries(
        "SELECT userIdentity.arn FROM t GROUP BY 1"
    ));
}

#[tokio::test]
async fn test_distinct_counts_per_group_and_over_all_rows() {
    // Principals with event names and addresses repeated and not, IPv4
    // (inline in the distinct sets) and IPv6 (longer), and nulls.
    let mut records = Vec::new();
    let mut expected: std::collections::BTreeMap<
        String,
        (i64, BTreeSet<String>, BTreeSet<String>),
    > = Default::default();
    for i in 0..5_000u64 {
        let arn = format!("arn:aws:iam::1:user/u{}", i % 7);
        let name = format!("Event{}", (i * 7919) % 23);
        let address = match i % 5 {
            0 => None,
            1 => Some(format!("2001:db8::{:x}:{:x}", i % 97, i % 13)),
            _ => Some(format!("10.0.{}.{}", (i / 7) % 11, (i * 31) % 250)),
        };
        let entry = expected.entry(arn.clone()).or_default();
        entry.0 += 1;
        entry.1.insert(name.clone());
        if let Some(a) = &address {
            entry.2.insert(a.clone());
        }
        records.push(
            json!({"eventTime": "2024-01-05T10:00:00Z", "eventName": name,
                            "sourceIPAddress": address, "userIdentity": {"arn": arn}}),
        );
    }
    let config = EngineConfig {
        target_partitions: 4,
        ..EngineConfig::default()
    };
    let (engine, _dir) = engine_with_config(records, config).await;
    let query = "SELECT userIdentity.arn, count(*), count(DISTINCT eventName), \
                 count(DISTINCT sourceIPAddress) FROM cloudtrail_logs GROUP BY userIdentity.arn \
                 ORDER BY 1";
    let result = engine.sql(query).await.unwrap();
    let got: Vec<Vec<Option<String>>> = (0..4).map(|c| strings(&result, c)).collect();
    let wanted: Vec<Vec<Option<String>>> = vec![
        expected.keys().map(|k| Some(k.clone())).collect(),
        expected.values().map(|v| Some(v.0.to_string())).collect(),
        expected
            .values()
            .map(|v| Some(v.1.len().to_string()))
            .collect(),
        expected
            .values()
            .map(|v| Some(v.2.len().to_string()))
            .collect(),
    ];
    assert_eq!(got, wanted);
    // Cairn's distinct counts hand their addresses from the partial to the
    // final phase as numbers: both phases are kept.
    let plan = explain(&engine, query).await;
    assert!(plan.contains("mode=Partial"), "{plan}");
    assert!(!plan.contains("mode=SinglePartitioned"), "{plan}");
    // DataFusion's own distinct count (of numbers here): each row goes once
    // to the partition that owns its principal, rather than each partition
    // keeping every distinct value for a final merge.
    let lengths = "SELECT userIdentity.arn, count(DISTINCT length(sourceIPAddress)), \
                   count(DISTINCT length(eventName)) FROM cloudtrail_logs GROUP BY userIdentity.arn";
    let plan = explain(&engine, lengths).await;
    assert!(plan.contains("mode=SinglePartitioned"), "{plan}");
    assert!(!plan.contains("mode=Partial"), "{plan}");
    // Without groups, DataFusion's accumulator with Cairn's state columns.
    let all = engine
        .sql("SELECT count(*), count(DISTINCT eventName), count(DISTINCT sourceIPAddress) FROM cloudtrail_logs")
        .await
        .unwrap();
    let names: BTreeSet<&String> = expected.values().flat_map(|v| &v.1).collect();
    let addresses: BTreeSet<&String> = expected.values().flat_map(|v| &v.2).collect();
    let total: i64 = expected.values().map(|v| v.0).sum();
    assert_eq!(
        (0..3).map(|c| strings(&all, c)).collect::<Vec<_>>(),
        vec![
            vec![Some(total.to_string())],
            vec![Some(names.len().to_string())],
            vec![Some(addresses.len().to_string())],
        ]
    );
    // An aggregate that orders its input keeps the partial and final phases.
    let ordered = "SELECT userIdentity.arn, array_agg(DISTINCT eventName ORDER BY eventName) \
                   FROM cloudtrail_logs GROUP BY userIdentity.arn ORDER BY 1";
    let result = engine.sql(ordered).await.unwrap();
    assert_eq!(result.num_rows(), expected.len());
}

#[tokio::test]
async fn test_a_time_bound_every_file_meets_is_not_evaluated_and_files_it_rules_out_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let day = |d: u32| format!("2024-01-0{d}T10:00:00Z");
    for d in 5..=7 {
        write_parquet(
            &day_part(dir.path(), d),
            vec![
                get_object(d, Some(&day(d))),
                get_object(d * 10, Some(&day(d))),
            ],
        );
    }
    // A day with an event whose time is missing: the bound is not proven there.
    write_parquet(
        &day_part(dir.path(), 8),
        vec![
            get_object(8, Some("2024-01-08T10:00:00Z")),
            get_object(80, None),
        ],
    );
    let engine = engine_over(dir.path(), 2).await;
    let plan = |sql: &'static str| explain(&engine, sql);
    let count = |sql: &'static str| first_column(&engine, sql);

    // Days 6 and 7 only: the day-5 file is left out, the bound dropped.
    let bounded = "SELECT eventid FROM cloudtrail_logs WHERE eventtime > '2024-01-06' \
                   AND eventtime < '2024-01-08' ORDER BY eventid";
    let shown = plan(bounded).await;
    assert!(shown.contains("predicate=true"), "{shown}");
    assert!(!shown.contains("2024-01-05-"), "{shown}");
    assert!(!shown.contains("2024-01-08-"), "{shown}");
    assert_eq!(
        count(bounded).await,
        ["e6", "e60", "e7", "e70"].map(|s| Some(s.to_owned()))
    );

    // A bound that cuts through a file stays, and so does the rest of a
    // filter the statistics cannot prove.
    let cut = "SELECT count(*) FROM cloudtrail_logs WHERE eventtime > '2024-01-06T12:00:00Z'";
    assert!(plan(cut).await.contains("eventtime@"), "kept");
    let name = "SELECT count(*) FROM cloudtrail_logs WHERE eventtime > '2024-01-06' \
                AND eventtime < '2024-01-08' AND eventid <> 'e7'";
    let shown = plan(name).await;
    assert!(shown.contains("eventid@"), "{shown}");
    assert!(!shown.contains("eventtime@"), "{shown}");
    assert_eq!(count(name).await, [Some("3".to_owned())]);

    // The day whose file holds a null time keeps the bound, in a scan of its
    // own: the null row is not counted. The other days are read without it.
    let all = "SELECT count(*) FROM cloudtrail_logs WHERE eventtime > '2024-01-01'";
    let shown = plan(all).await;
    assert!(shown.contains("UnionExec"), "{shown}");
    assert!(shown.contains("eventtime@"), "{shown}");
    // The three days read without it are spread over the scan's partitions
    // again (they were not all in one of them).
    let unbounded = shown.lines().find(|l| l.contains("predicate=true"));
    assert!(
        unbounded.is_some_and(|l| l.contains("{2 groups")),
        "{shown}"
    );
    assert_eq!(count(all).await, [Some("7".to_owned())]);
    let last = "SELECT count(*) FROM cloudtrail_logs WHERE eventtime > '2024-01-07T12:00:00Z'";
    assert_eq!(count(last).await, [Some("1".to_owned())]);
}

#[tokio::test]
async fn test_a_scan_read_in_one_partition_is_not_split() {
    // Days 5 and 6 fully after the bound, day 7 with a null time: in a scan
    // of one partition, its parents read that partition only.
    let dir = tempfile::tempdir().unwrap();
    for d in [5, 6] {
        write_parquet(
            &day_part(dir.path(), d),
            vec![get_object(d, Some(&format!("2024-01-0{d}T10:00:00Z")))],
        );
    }
    write_parquet(
        &day_part(dir.path(), 7),
        vec![
            get_object(7, Some("2024-01-07T10:00:00Z")),
            get_object(70, None),
        ],
    );
    let engine = engine_over(dir.path(), 1).await;
    let count = "SELECT count(*) FROM cloudtrail_logs WHERE eventtime > '2024-01-01'";
    assert_eq!(first_column(&engine, count).await, [Some("3".to_owned())]);
    let ordered = "SELECT eventid FROM cloudtrail_logs WHERE eventtime > '2024-01-01' \
                   ORDER BY eventid";
    assert_eq!(
        first_column(&engine, ordered).await,
        ["e5", "e6", "e7"].map(|s| Some(s.to_owned()))
    );
    let plan = explain(&engine, count).await;
    assert!(!plan.contains("UnionExec"), "{plan}");
}

/// An event's time and address, as the min/max test reads them.
type Event = (String, Option<String>);

#[tokio::test]
async fn test_least_and_greatest_strings_per_group_with_filters_and_nulls() {
    let mut expected: std::collections::BTreeMap<String, Vec<Event>> = Default::default();
    let mut records = Vec::new();
    for i in 0..3_000u64 {
        let arn = format!("arn:aws:iam::1:user/u{}", i % 5);
        let time = format!(
            "2024-01-{:02}T{:02}:{:02}:00Z",
            1 + (i * 37) % 28,
            (i * 11) % 24,
            i % 60
        );
        let address = (i % 4 != 0).then(|| format!("10.0.{}.{}", (i * 13) % 256, i % 9));
        expected
            .entry(arn.clone())
            .or_default()
            .push((time.clone(), address.clone()));
        records.push(
            json!({"eventTime": time, "eventName": "E", "sourceIPAddress": address,
                            "userIdentity": {"arn": arn}}),
        );
    }
    let config = EngineConfig {
        target_partitions: 3,
        ..EngineConfig::default()
    };
    let (engine, _dir) = engine_with_config(records, config).await;
    let query = "SELECT userIdentity.arn, min(eventTime), max(eventTime), min(sourceIPAddress), \
                 max(sourceIPAddress) FILTER (WHERE eventTime < '2024-01-15') \
                 FROM cloudtrail_logs GROUP BY userIdentity.arn ORDER BY 1";
    let result = engine.sql(query).await.unwrap();
    let got: Vec<Vec<Option<String>>> = (0..5).map(|c| strings(&result, c)).collect();
    let column = |pick: &dyn Fn(&[Event]) -> Option<String>| {
        expected.values().map(|rows| pick(rows)).collect::<Vec<_>>()
    };
    let wanted = vec![
        expected.keys().map(|k| Some(k.clone())).collect(),
        column(&|rows| rows.iter().map(|r| r.0.clone()).min()),
        column(&|rows| rows.iter().map(|r| r.0.clone()).max()),
        column(&|rows| rows.iter().filter_map(|r| r.1.clone()).min()),
        column(&|rows| {
            rows.iter()
                .filter(|r| r.0.as_str() < "2024-01-15")
                .filter_map(|r| r.1.clone())
                .max()
        }),
    ];
    assert_eq!(got, wanted);
    let all = engine
        .sql("SELECT min(eventTime), max(sourceIPAddress) FROM cloudtrail_logs")
        .await
        .unwrap();
    let every: Vec<&Event> = expected.values().flatten().collect();
    assert_eq!(
        (strings(&all, 0), strings(&all, 1)),
        (
            vec![every.iter().map(|r| r.0.clone()).min()],
            vec![every.iter().filter_map(|r| r.1.clone()).max()]
        )
    );
}

#[test]
fn streamed_rows_are_written_as_collected_rows_are_and_a_failure_is_an_error() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let records = (0..3000)
        .map(|i| {
            json!({"eventVersion": "1.08", "eventID": format!("e{i}"),
                   "eventName": if i % 3 == 0 { "ConsoleLogin" } else { "GetObject" },
                   "eventTime": format!("2024-01-05T{:02}:{:02}:{:02}Z", i / 3600, i / 60 % 60, i % 60),
                   "userIdentity": {"type": "IAMUser", "userName": format!("user, \"{}\"", i % 7)},
                   "additionalEventData": {"MFAUsed": if i % 2 == 0 { "Yes" } else { "No" }},
                   "eventSource": "signin.amazonaws.com"})
        })
        .collect();
    let (engine, _dir) = runtime.block_on(engine_with_config(
        records,
        EngineConfig {
            target_partitions: 2,
            ..EngineConfig::default()
        },
    ));
    let sql = "SELECT eventtime, useridentity.username, additionaleventdata, eventid \
               FROM cloudtrail_logs WHERE eventname = 'ConsoleLogin' ORDER BY eventtime DESC";
    for format in [
        render::Format::Csv,
        render::Format::Json,
        render::Format::Table,
    ] {
        let collected = runtime.block_on(engine.sql(sql)).unwrap();
        assert_eq!(collected.num_rows(), 1000);
        let expected = render::render(&collected, format).unwrap();
        let rows = runtime.block_on(engine.sql_stream(sql)).unwrap();
        let mut written = Vec::new();
        render::write_stream(runtime.handle(), rows, format, &mut written).unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
    // A statement that fails while it runs (a cast no row survives) is an
    // error, not a short answer.
    let rows = runtime
        .block_on(engine.sql_stream("SELECT CAST(eventid AS INTEGER) FROM cloudtrail_logs"))
        .unwrap();
    let mut written = Vec::new();
    let failed = render::write_stream(runtime.handle(), rows, render::Format::Csv, &mut written);
    assert!(failed.is_err(), "{}", String::from_utf8_lossy(&written));
}

#[tokio::test]
async fn test_parts_with_and_without_the_schema_hint_are_one_table() {
    // A part written before the read schema was its hint reads its nested
    // strings plain; one written since, as views: one table either way.
    let dir = tempfile::tempdir().unwrap();
    let event = |id: u32, user: &str| {
        json!({"eventVersion": "1.08", "eventID": format!("e{id}"), "eventName": "GetObject",
               "eventTime": "2024-01-05T00:00:00Z", "eventSource": "s3.amazonaws.com",
               "recipientAccountId": "123456789012",
               "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::123456789012:user/{user}")}})
    };
    write_parquet(
        &day_part(dir.path(), 5),
        (0..30)
            .map(|i| event(i, if i % 3 == 0 { "alice" } else { "bob" }))
            .collect(),
    );
    let partition = Partition::of_path("AWSLogs/1/CloudTrail/us-east-1/2024/01/06/f.json.gz");
    let batch =
        records_to_batch((30..50).map(|i| (event(i, "alice"), &partition)).collect()).unwrap();
    let hinted = day_part(dir.path(), 6);
    let mut writer = crate::logs::part_writer(
        std::fs::File::create(&hinted).unwrap(),
        crate::schema::cloudtrail_schema(),
        crate::logs::writer_properties(),
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    for partitions in [1, 2] {
        let engine = engine_over(dir.path(), partitions).await;
        let result = engine
            .sql(
                "SELECT recipientaccountid, useridentity.arn AS arn, count(*) AS n \
                 FROM cloudtrail_logs GROUP BY 1, 2 ORDER BY n DESC",
            )
            .await
            .unwrap();
        assert_eq!(
            strings(&result, 1),
            [
                Some("arn:aws:iam::123456789012:user/alice".to_owned()),
                Some("arn:aws:iam::123456789012:user/bob".to_owned())
            ]
        );
        assert_eq!(
            strings(&result, 2),
            [Some("30".to_owned()), Some("20".to_owned())]
        );
    }
}
