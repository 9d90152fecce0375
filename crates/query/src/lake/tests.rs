//! Event data store files: fresh events queryable, compaction exactly once
//! through crashes, merges and retention, Lake's dialect.

use std::sync::atomic::AtomicBool;

use cairn_catalog::SqlEngine;
use serde_json::json;

use super::*;
use crate::EngineConfig;
use crate::athena::tests::Objects;
use cairn_catalog::ImportProgress;

const ID: &str = "0b9f0a5e-41d4-4d7c-9a52-2f1d0f3e6a11";

fn engine(dir: &Path) -> AthenaEngine {
    AthenaEngine::new(
        &dir.join("cache"),
        EngineConfig {
            memory_limit_bytes: 256 * 1024 * 1024,
            target_partitions: 2,
        },
    )
    .unwrap()
}

fn store(dir: &Path) -> LakeTable {
    LakeTable {
        id: ID.to_owned(),
        dir: dir.join("lake").join(ID),
    }
}

fn event(id: u32, time: &str, user: &str) -> Value {
    json!({"eventVersion": "1.08", "eventID": format!("e{id}"), "eventTime": time,
           "eventName": if id.is_multiple_of(2) { "GetObject" } else { "PutObject" },
           "eventSource": "s3.amazonaws.com", "recipientAccountId": "123456789012",
           "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::123456789012:user/{user}")},
           "requestParameters": {"bucketName": "b"}})
}

fn deliver(store: &LakeTable, lsn: u64, events: &[Value]) {
    let fresh = store.dir.join(FRESH_DIR);
    std::fs::create_dir_all(&fresh).unwrap();
    let mut text = String::new();
    for e in events {
        text.push_str(&e.to_string());
        text.push('\n');
    }
    std::fs::write(fresh.join(format!("{lsn:020}.ndjson")), text).unwrap();
}

fn query(engine: &AthenaEngine, store: &LakeTable, sql: &str) -> Answer {
    engine
        .execute_lake(
            &sql.replace("EDS", &store.id),
            std::slice::from_ref(store),
            &AtomicBool::new(false),
            None,
        )
        .unwrap()
}

fn count(engine: &AthenaEngine, store: &LakeTable) -> (String, u64) {
    let answer = query(
        engine,
        store,
        "SELECT count(*) AS n, count(DISTINCT eventID) FROM EDS",
    );
    let n = answer.rows[0][0].clone().unwrap();
    assert_eq!(
        answer.rows[0][1].as_deref(),
        Some(n.as_str()),
        "no event twice"
    );
    (n, answer.events_scanned)
}

#[test]
fn test_fresh_events_are_queried_in_lakes_dialect() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = (engine(dir.path()), store(dir.path()));
    deliver(
        &store,
        10,
        &[
            event(1, "2024-01-05T10:00:00Z", "suspicious-user"),
            event(2, "2023-12-31T10:00:00Z", "suspicious-user"),
            event(3, "2024-01-06T10:00:00Z", "alice"),
        ],
    );
    let answer = query(
        &engine,
        &store,
        "SELECT eventTime, eventName, eventSource, sourceIPAddress,
errorCode, requestParameters
FROM EDS
WHERE userIdentity.arn = 'arn:aws:iam::123456789012:user/suspicious-user'
AND eventTime > '2024-01-01 00:00:00'
ORDER BY eventTime DESC;",
    );
    assert_eq!(
        answer
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        [
            "eventTime",
            "eventName",
            "eventSource",
            "sourceIPAddress",
            "errorCode",
            "requestParameters"
        ]
    );
    assert_eq!(answer.columns[0].type_name, "timestamp");
    assert_eq!(answer.rows.len(), 1);
    assert_eq!(
        answer.rows[0][0].as_deref(),
        Some("2024-01-05 10:00:00.000")
    );
    assert_eq!(answer.rows[0][5].as_deref(), Some("{\"bucketName\":\"b\"}"));
    assert_eq!(answer.events_scanned, 3);
    let error = engine
        .execute_lake(
            "SELECT * FROM cloudtrail_logs",
            std::slice::from_ref(&store),
            &AtomicBool::new(false),
            None,
        )
        .unwrap_err();
    assert!(
        error.message.contains("event data store"),
        "{}",
        error.message
    );
}

#[test]
fn test_compaction_keeps_every_event_once_through_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = (engine(dir.path()), store(dir.path()));
    deliver(
        &store,
        10,
        &[
            event(1, "2024-01-05T10:00:00Z", "a"),
            event(2, "2024-01-06T10:00:00Z", "b"),
        ],
    );
    deliver(&store, 20, &[event(3, "2024-01-06T11:00:00Z", "a")]);
    assert_eq!(count(&engine, &store).0, "3");
    let done = engine.compact_lake(&store, 0, "2024-01-07").unwrap();
    assert_eq!((done.fresh_files, done.events), (2, 3));
    let manifest = read_manifest(&store.dir).unwrap();
    assert_eq!(manifest.watermark, 20);
    assert_eq!(
        manifest
            .parts
            .iter()
            .map(|p| p.date.as_str())
            .collect::<Vec<_>>(),
        ["2024-01-05", "2024-01-06"]
    );
    assert!(
        store
            .dir
            .join("parts/eventdate=2024-01-06")
            .join(format!("part-{:020}.parquet", 20))
            .exists()
    );
    assert!(fresh_files(&store.dir, 0).unwrap().is_empty());
    assert_eq!(count(&engine, &store), ("3".to_owned(), 3));

    // A crash after the manifest, before the fresh files were removed: a
    // fresh file at or below the watermark is not read again.
    deliver(&store, 20, &[event(3, "2024-01-06T11:00:00Z", "a")]);
    assert_eq!(count(&engine, &store).0, "3");
    // A crash after a part was written, before its manifest: the part is
    // not listed, so not read; the next compaction removes it.
    deliver(&store, 30, &[event(4, "2024-01-06T12:00:00Z", "a")]);
    std::fs::copy(
        store
            .dir
            .join("parts/eventdate=2024-01-06")
            .join(format!("part-{:020}.parquet", 20)),
        store
            .dir
            .join("parts/eventdate=2024-01-06")
            .join(format!("part-{:020}.parquet", 30)),
    )
    .unwrap();
    assert_eq!(count(&engine, &store).0, "4");
    engine.compact_lake(&store, 0, "2024-01-07").unwrap();
    assert_eq!(count(&engine, &store).0, "4");
    let files = std::fs::read_dir(store.dir.join("parts/eventdate=2024-01-06"))
        .unwrap()
        .count();
    assert_eq!(
        files,
        read_manifest(&store.dir)
            .unwrap()
            .parts
            .iter()
            .filter(|p| p.date == "2024-01-06")
            .count()
    );
}

#[test]
fn test_dates_merge_as_they_grow_and_expire_past_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = (engine(dir.path()), store(dir.path()));
    for i in 1..=(MAX_PARTS_PER_DATE as u32 + 2) {
        deliver(
            &store,
            u64::from(i) * 10,
            &[
                event(i, "2024-01-06T10:00:00Z", "a"),
                event(1000 + i, "2023-01-01T00:00:00Z", "old"),
            ],
        );
        engine.compact_lake(&store, 0, "2024-01-07").unwrap();
    }
    let manifest = read_manifest(&store.dir).unwrap();
    let parts = manifest
        .parts
        .iter()
        .filter(|p| p.date == "2024-01-06")
        .count();
    assert!(parts < MAX_PARTS_PER_DATE, "{parts} parts");
    assert_eq!(
        count(&engine, &store).0,
        ((MAX_PARTS_PER_DATE + 2) * 2).to_string()
    );
    let done = engine.compact_lake(&store, 90, "2024-01-07").unwrap();
    assert_eq!(done.expired_partitions, 1);
    assert_eq!(
        count(&engine, &store).0,
        (MAX_PARTS_PER_DATE + 2).to_string()
    );
    assert!(!store.dir.join("parts/eventdate=2023-01-01").exists());
}

fn import_all(engine: &AthenaEngine, store: &LakeTable, objects: &Objects) -> ImportProgress {
    engine
        .import_lake(
            store,
            &ImportRequest {
                objects,
                bucket: "logs",
                prefix: "AWSLogs/",
                start_event_time: None,
                end_event_time: None,
                cancel: &AtomicBool::new(false),
                progress: &|_| {},
            },
        )
        .unwrap()
}

fn parts_per_date(store: &LakeTable) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for part in read_manifest(&store.dir).unwrap().parts {
        *out.entry(part.date).or_default() += 1;
    }
    out
}

#[test]
fn test_an_import_writes_one_part_per_date_and_crowded_dates_merge() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = (engine(dir.path()), store(dir.path()));
    let objects = Objects::default();
    objects.bucket("logs");
    // Four days, three files a day in two regions; each file also holds a
    // late event of the day before, as CloudTrail's files do around midnight.
    let mut id = 0;
    for day in 2..=5u32 {
        for (n, region) in [(1, "us-east-1"), (2, "us-east-1"), (3, "eu-west-1")] {
            let mut records = Vec::new();
            for hour in 0..5 {
                id += 1;
                records.push(event(
                    id,
                    &format!("2024-02-0{day}T{hour:02}:{n}0:00Z"),
                    "a",
                ));
            }
            id += 1;
            records.push(event(
                id,
                &format!("2024-02-0{}T23:59:00Z", day - 1),
                "late",
            ));
            objects.log_file(
                "logs",
                &format!("AWSLogs/123456789012/CloudTrail/{region}/2024/02/0{day}/f{n}.json.gz"),
                records.into_iter().collect(),
            );
        }
    }
    let done = import_all(&engine, &store, &objects);
    assert_eq!(done.events_completed, u64::from(id));
    let expected: BTreeMap<String, usize> = (1..=5).map(|d| (format!("2024-02-0{d}"), 1)).collect();
    assert_eq!(parts_per_date(&store), expected);
    assert_eq!(count(&engine, &store).0, id.to_string());

    // Imported again and again (other runs, say): the dates fill with parts,
    // and compaction merges them, a few dates per pass, keeping every event.
    for _ in 1..MAX_PARTS_PER_DATE {
        import_all(&engine, &store, &objects);
    }
    assert!(
        parts_per_date(&store)
            .values()
            .all(|n| *n == MAX_PARTS_PER_DATE)
    );
    let mut merged = 0;
    for _ in 0..5 {
        merged += engine
            .compact_lake(&store, 0, "2024-02-06")
            .unwrap()
            .merged_dates;
    }
    assert_eq!(merged, 5);
    assert!(parts_per_date(&store).values().all(|n| *n == 1));
    let answer = query(&engine, &store, "SELECT count(*) FROM EDS");
    assert_eq!(
        answer.rows[0][0].as_deref(),
        Some(
            (u64::from(id) * MAX_PARTS_PER_DATE as u64)
                .to_string()
                .as_str()
        )
    );
}

#[test]
fn test_store_ids_are_quoted_where_lake_writes_them_bare() {
    let stores = [LakeTable {
        id: ID.to_owned(),
        dir: PathBuf::new(),
    }];
    assert_eq!(
        quote_store_ids(&format!("SELECT * FROM {ID} WHERE x = 1"), &stores),
        format!("SELECT * FROM \"{ID}\" WHERE x = 1")
    );
    assert_eq!(
        quote_store_ids(&format!("SELECT * FROM \"{ID}\""), &stores),
        format!("SELECT * FROM \"{ID}\"")
    );
}

#[test]
fn test_struct_fields_group_from_fresh_events_and_parts_alike() {
    // Grouping by a struct field once read the wrong Parquet column through
    // the store's UNION of fresh events and parts.
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = (engine(dir.path()), store(dir.path()));
    let at = "2024-01-06T10:00:00Z";
    deliver(
        &store,
        10,
        &[event(1, at, "a"), event(2, at, "b"), event(3, at, "b")],
    );
    let sql = "SELECT userIdentity.arn AS a, count(*) AS n FROM EDS GROUP BY 1 ORDER BY 1";
    let user = |u: &str| Some(format!("arn:aws:iam::123456789012:user/{u}"));
    let fresh_only = vec![
        vec![user("a"), Some("1".into())],
        vec![user("b"), Some("2".into())],
    ];
    assert_eq!(query(&engine, &store, sql).rows, fresh_only);
    engine.compact_lake(&store, 0, "2024-01-07").unwrap();
    assert_eq!(query(&engine, &store, sql).rows, fresh_only, "parts only");
    deliver(&store, 20, &[event(4, at, "c")]);
    let mut both = fresh_only;
    both.push(vec![user("c"), Some("1".into())]);
    assert_eq!(
        query(&engine, &store, sql).rows,
        both,
        "parts and fresh events"
    );
}

#[test]
fn test_a_crashed_imports_staging_is_removed_and_a_running_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = (engine(dir.path()), store(dir.path()));
    let abandoned = store
        .dir
        .join(IMPORTS_DIR)
        .join("crashed-run/parts/eventdate=2024-01-01");
    std::fs::create_dir_all(&abandoned).unwrap();
    std::fs::write(abandoned.join("part-import-x.parquet"), b"half").unwrap();
    let running = store.dir.join(IMPORTS_DIR).join("running");
    std::fs::create_dir_all(&running).unwrap();
    {
        let _staging = Staging::register(&engine, &running);
        engine.compact_lake(&store, 0, "2024-01-07").unwrap();
        assert!(!store.dir.join(IMPORTS_DIR).join("crashed-run").exists());
        assert!(running.exists());
    }
    // Its import ended: the guard removed it.
    assert!(!running.exists());
    assert!(engine.imports_running.lock().unwrap().is_empty());
}

/// The event time column's type in a part.
fn event_time_type(path: &Path) -> DataType {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    reader
        .schema()
        .field_with_name("eventtime")
        .unwrap()
        .data_type()
        .clone()
}

#[test]
fn test_a_version_1_store_is_read_as_it_is_and_its_parts_take_timestamps_as_they_merge() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = (engine(dir.path()), store(dir.path()));
    // A version-1 store, as an earlier build wrote it: text event times.
    let golden = include_str!("golden/manifest-v1.json");
    let mut manifest: Manifest = serde_json::from_str(golden).unwrap();
    assert_eq!(manifest.version, 1);
    let folder = store.dir.join("parts/eventdate=2024-01-02");
    std::fs::create_dir_all(&folder).unwrap();
    let template = manifest.parts[0].clone();
    manifest.parts.clear();
    for i in 0..MAX_PARTS_PER_DATE as u32 {
        let file = template.file.replace("-0.", &format!("-{i}."));
        let mut writer = ArrowWriter::try_new(
            File::create(store.dir.join(&file)).unwrap(),
            cloudtrail_schema(),
            None,
        )
        .unwrap();
        let events = [
            event(2 * i, "2024-01-02T08:00:00Z", "early"),
            event(2 * i + 1, "2024-01-02T20:00:00Z", "late"),
        ];
        let batch = records_to_batch(
            events
                .into_iter()
                .map(|e| (e, Partition::default()))
                .collect(),
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        assert_eq!(event_time_type(&store.dir.join(&file)), DataType::Utf8);
        manifest.parts.push(Part {
            file,
            ..template.clone()
        });
    }
    std::fs::write(
        store.dir.join(MANIFEST),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let late = "SELECT count(*) FROM EDS WHERE eventTime > '2024-01-02 12:00:00'";
    assert_eq!(
        query(&engine, &store, late).rows[0][0].as_deref(),
        Some("8")
    );

    // A delivery adds a part with timestamps beside the text ones.
    deliver(&store, 10, &[event(100, "2024-01-03T01:00:00Z", "late")]);
    engine.compact_lake(&store, 0, "2024-01-04").unwrap();
    let manifest = read_manifest(&store.dir).unwrap();
    assert_eq!(manifest.version, MANIFEST_VERSION);
    let new = manifest
        .parts
        .iter()
        .find(|p| p.date == "2024-01-03")
        .unwrap();
    assert!(matches!(
        event_time_type(&store.dir.join(&new.file)),
        DataType::Timestamp(_, None)
    ));
    assert_eq!(
        query(&engine, &store, late).rows[0][0].as_deref(),
        Some("9")
    );
    let answer = query(
        &engine,
        &store,
        "SELECT max(eventTime), min(eventTime) FROM EDS",
    );
    assert_eq!(
        (answer.rows[0][0].as_deref(), answer.rows[0][1].as_deref()),
        (
            Some("2024-01-03 01:00:00.000"),
            Some("2024-01-02 08:00:00.000")
        )
    );

    // The crowded date merges into one part, its times converted.
    engine.compact_lake(&store, 0, "2024-01-04").unwrap();
    let manifest = read_manifest(&store.dir).unwrap();
    let merged: Vec<_> = manifest
        .parts
        .iter()
        .filter(|p| p.date == "2024-01-02")
        .collect();
    assert_eq!(merged.len(), 1);
    assert!(matches!(
        event_time_type(&store.dir.join(&merged[0].file)),
        DataType::Timestamp(_, None)
    ));
    assert_eq!(
        query(&engine, &store, late).rows[0][0].as_deref(),
        Some("9")
    );
    assert_eq!(count(&engine, &store).0, "17");
}

#[test]
fn test_the_manifest_is_written_as_its_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest: Manifest =
        serde_json::from_str(include_str!("golden/manifest-v1.json")).unwrap();
    write_manifest(dir.path(), &mut manifest).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join(MANIFEST)).unwrap(),
        include_str!("golden/manifest-v2.json").trim_end()
    );
    // A version this build does not know stops the store with a clear error.
    std::fs::write(
        dir.path().join(MANIFEST),
        include_str!("golden/manifest-v2.json").replace("\"version\":2", "\"version\":3"),
    )
    .unwrap();
    let err = read_manifest(dir.path()).unwrap_err().to_string();
    assert!(err.contains("has version 3"), "{err}");
}

#[test]
fn test_a_parts_rows_are_ordered_by_account_then_principal() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = (engine(dir.path()), store(dir.path()));
    let users = ["carol", "alice", "bob", "alice", "carol", "bob"];
    let events: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let mut e = event(i as u32, &format!("2024-01-05T10:00:0{i}Z"), user);
            // Two accounts, the later one first in delivery order.
            e["recipientAccountId"] = json!(if i < 3 {
                "222222222222"
            } else {
                "111111111111"
            });
            e
        })
        .collect();
    deliver(&store, 10, &events);
    engine.compact_lake(&store, 0, "2024-01-06").unwrap();
    let part = store
        .dir
        .join("parts/eventdate=2024-01-05")
        .join(format!("part-{:020}.parquet", 10));
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&part).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let batch =
            crate::schema::cast_batch(&batch, &crate::schema::plain_schema(&batch.schema()))
                .unwrap();
        use datafusion::arrow::array::AsArray;
        let accounts = batch
            .column_by_name("recipientaccountid")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let identity = batch
            .column_by_name("useridentity")
            .unwrap()
            .as_struct()
            .clone();
        let arns = identity
            .column_by_name("arn")
            .unwrap()
            .as_string::<i32>()
            .clone();
        for row in 0..batch.num_rows() {
            rows.push((
                accounts.value(row).to_owned(),
                arns.value(row).rsplit('/').next().unwrap().to_owned(),
            ));
        }
    }
    let wanted: Vec<(String, String)> = [
        ("111111111111", "alice"),
        ("111111111111", "bob"),
        ("111111111111", "carol"),
        ("222222222222", "alice"),
        ("222222222222", "bob"),
        ("222222222222", "carol"),
    ]
    .iter()
    .map(|(a, u)| (a.to_string(), u.to_string()))
    .collect();
    assert_eq!(rows, wanted);
    assert_eq!(count(&engine, &store).0, "6");
}
