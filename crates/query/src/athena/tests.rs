//! Athena's statements against the metastore's catalog and objects in memory.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::AtomicBool;

use cairn_catalog::{Catalog, ObjectEntry, SourceError, SqlEngine};
use serde_json::json;

use super::*;

/// Buckets in memory (also the lake tests' import source).
#[derive(Default)]
pub(crate) struct Objects(Mutex<BTreeMap<String, BTreeMap<String, Vec<u8>>>>);

impl Objects {
    pub(crate) fn bucket(&self, name: &str) {
        self.0.lock().unwrap().entry(name.to_owned()).or_default();
    }

    pub(crate) fn log_file(&self, bucket: &str, key: &str, records: Vec<serde_json::Value>) {
        let text = serde_json::to_vec(&json!({ "Records": records })).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        self.put(bucket, key, gz.finish().unwrap()).unwrap();
    }
}

impl ObjectSource for Objects {
    fn bucket_exists(&self, bucket: &str) -> Result<bool, SourceError> {
        Ok(self.0.lock().unwrap().contains_key(bucket))
    }

    fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectEntry>, SourceError> {
        let buckets = self.0.lock().unwrap();
        let objects = buckets.get(bucket).ok_or_else(|| SourceError {
            message: format!("no bucket {bucket}"),
            not_found: true,
        })?;
        Ok(objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectEntry {
                key: k.clone(),
                size: v.len() as u64,
                version: format!("{:x}", md5_like(v)),
            })
            .collect())
    }

    fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, SourceError> {
        self.0
            .lock()
            .unwrap()
            .get(bucket)
            .and_then(|b| b.get(key))
            .cloned()
            .ok_or_else(|| SourceError {
                message: format!("no key {key}"),
                not_found: true,
            })
    }

    fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), SourceError> {
        self.0
            .lock()
            .unwrap()
            .entry(bucket.to_owned())
            .or_default()
            .insert(key.to_owned(), body);
        Ok(())
    }
}

fn md5_like(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

const GUIDE_DDL: &str = "CREATE EXTERNAL TABLE IF NOT EXISTS cloudtrail_logs (
eventVersion STRING,
userIdentity STRUCT<
type: STRING,
principalId: STRING,
arn: STRING,
accountId: STRING,
invokedBy: STRING,
accessKeyId: STRING,
userName: STRING,
sessionContext: STRUCT<
attributes: STRUCT<mfaAuthenticated: STRING, creationDate: STRING>,
sessionIssuer: STRUCT<type: STRING, principalId: STRING, arn: STRING, accountId: STRING, userName: STRING>
>
>,
eventTime STRING,
eventSource STRING,
eventName STRING,
awsRegion STRING,
sourceIPAddress STRING,
userAgent STRING,
errorCode STRING,
errorMessage STRING,
requestParameters STRING,
responseElements STRING,
additionalEventData STRING,
requestId STRING,
eventId STRING,
readOnly STRING,
resources ARRAY<STRUCT<arn: STRING, accountId: STRING, type: STRING>>,
eventType STRING,
recipientAccountId STRING
)
PARTITIONED BY (region STRING, year STRING, month STRING, day STRING)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
LOCATION 's3://audit/AWSLogs/123456789012/CloudTrail/';";

struct Fixture {
    engine: AthenaEngine,
    meta: cairn_meta::Metastore,
    objects: Objects,
    cancel: AtomicBool,
    _cache: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let cache = tempfile::tempdir().unwrap();
        let config = EngineConfig {
            memory_limit_bytes: 256 * 1024 * 1024,
            target_partitions: 2,
        };
        Self {
            engine: AthenaEngine::new(cache.path(), config).unwrap(),
            meta: cairn_meta::Metastore::in_memory().unwrap(),
            objects: Objects::default(),
            cancel: AtomicBool::new(false),
            _cache: cache,
        }
    }

    fn run(&self, sql: &str) -> Result<Answer, SqlError> {
        self.engine.execute(
            sql,
            &QueryContext {
                database: "default",
                catalog: &self.meta,
                objects: &self.objects,
                cancel: &self.cancel,
                deadline: None,
            },
        )
    }
}

fn day_key(region: &str, day: u32, n: u32) -> String {
    format!(
        "AWSLogs/123456789012/CloudTrail/{region}/2024/01/{day:02}/123456789012_CloudTrail_{region}_202401{day:02}T0000Z_{n}.json.gz"
    )
}

fn event(id: &str, time: &str, name: &str) -> serde_json::Value {
    json!({"eventVersion": "1.08", "eventID": id, "eventTime": time, "eventName": name,
           "eventSource": "kms.amazonaws.com", "awsRegion": "us-east-1",
           "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice", "userName": "alice"},
           "requestParameters": {"keyId": "k"},
           "resources": [{"ARN": "arn:aws:kms:us-east-1:123456789012:key/k", "type": "AWS::KMS::Key"}]})
}

fn values(answer: &Answer, column: usize) -> Vec<Option<String>> {
    answer.rows.iter().map(|r| r[column].clone()).collect()
}

#[test]
fn test_the_guides_table_is_created_and_queried_verbatim() {
    let f = Fixture::new();
    f.objects.bucket("audit");
    f.objects.log_file(
        "audit",
        &day_key("us-east-1", 5, 1),
        vec![
            event("a", "2024-01-05T10:00:00Z", "Decrypt"),
            event("b", "2024-01-05T11:00:00Z", "Encrypt"),
        ],
    );
    f.objects.log_file(
        "audit",
        &day_key("eu-west-1", 6, 1),
        vec![event("c", "2024-01-06T09:00:00Z", "Decrypt")],
    );
    let created = f.run(GUIDE_DDL).unwrap();
    assert_eq!(created.statement_type, StatementType::Ddl);
    assert!(created.rows.is_empty());
    // IF NOT EXISTS: a second run succeeds and changes nothing.
    f.run(GUIDE_DDL).unwrap();
    let table = f.meta.table("default", "cloudtrail_logs").unwrap().unwrap();
    assert_eq!(table.columns.len(), 19);
    assert_eq!(table.columns[1].name, "useridentity");
    assert!(
        table.columns[1]
            .type_name
            .starts_with("struct<type:string,principalid:string"),
        "{}",
        table.columns[1].type_name
    );
    assert_eq!(
        table
            .partition_keys
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["region", "year", "month", "day"]
    );
    assert_eq!(
        table.serde.as_deref(),
        Some("org.apache.hive.hcatalog.data.JsonSerDe")
    );

    let answer = f
        .run("SELECT eventTime, userIdentity.arn, eventName, requestParameters, resources[1].arn AS key_arn, region, day \
              FROM cloudtrail_logs WHERE eventSource = 'kms.amazonaws.com' AND eventName IN ('Decrypt', 'Encrypt') ORDER BY eventTime DESC")
        .unwrap();
    assert!(answer.header_row);
    assert_eq!(
        answer
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.type_name.as_str()))
            .collect::<Vec<_>>(),
        [
            ("eventtime", "varchar"),
            ("arn", "varchar"),
            ("eventname", "varchar"),
            ("requestparameters", "varchar"),
            ("key_arn", "varchar"),
            ("region", "varchar"),
            ("day", "varchar")
        ]
    );
    assert_eq!(
        values(&answer, 0),
        [
            Some("2024-01-06T09:00:00Z".into()),
            Some("2024-01-05T11:00:00Z".into()),
            Some("2024-01-05T10:00:00Z".into())
        ]
    );
    assert_eq!(answer.rows[0][3].as_deref(), Some("{\"keyId\":\"k\"}"));
    assert_eq!(
        answer.rows[0][4].as_deref(),
        Some("arn:aws:kms:us-east-1:123456789012:key/k")
    );
    assert_eq!(
        values(&answer, 5),
        [
            Some("eu-west-1".into()),
            Some("us-east-1".into()),
            Some("us-east-1".into())
        ]
    );
    assert!(answer.data_scanned_bytes > 0);

    // A file delivered later is seen by the next query, without MSCK.
    f.objects.log_file(
        "audit",
        &day_key("us-east-1", 5, 2),
        vec![event("d", "2024-01-05T12:00:00Z", "Decrypt")],
    );
    let answer = f
        .run("SELECT count(*) AS n, count(DISTINCT region) FROM cloudtrail_logs")
        .unwrap();
    assert_eq!(answer.rows, [vec![Some("4".into()), Some("2".into())]]);
    assert_eq!(answer.columns[0].type_name, "bigint");
    assert_eq!(answer.columns[1].name, "_col1");
}

#[test]
fn test_catalog_statements() {
    let f = Fixture::new();
    f.objects.bucket("audit");
    f.run(GUIDE_DDL).unwrap();
    let shown = f.run("SHOW TABLES").unwrap();
    assert!(!shown.header_row);
    assert_eq!(shown.rows, [vec![Some("cloudtrail_logs".into())]]);
    let described = f.run("DESCRIBE cloudtrail_logs").unwrap();
    assert_eq!(
        described.rows[0],
        [
            Some("eventversion".into()),
            Some("string".into()),
            Some(String::new())
        ]
    );
    assert!(
        described
            .rows
            .iter()
            .any(|r| r[0].as_deref() == Some("# Partition Information"))
    );
    f.run("MSCK REPAIR TABLE cloudtrail_logs").unwrap();
    f.run("ALTER TABLE cloudtrail_logs ADD PARTITION (region='us-east-1', year='2024', month='01', day='05') LOCATION 's3://audit/AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/05/'").unwrap();
    let table = f.meta.table("default", "cloudtrail_logs").unwrap().unwrap();
    assert_eq!(
        table.partitions[0].values,
        ["us-east-1", "2024", "01", "05"]
    );
    f.run("CREATE DATABASE forensics").unwrap();
    assert_eq!(
        f.run("SHOW DATABASES").unwrap().rows,
        [vec![Some("default".into())], vec![Some("forensics".into())]]
    );
    assert_eq!(
        f.run(&GUIDE_DDL.replace("IF NOT EXISTS ", ""))
            .unwrap_err()
            .kind,
        SqlErrorKind::Catalog
    );
    f.run("DROP TABLE cloudtrail_logs").unwrap();
    assert_eq!(
        f.run("DROP TABLE cloudtrail_logs").unwrap_err().kind,
        SqlErrorKind::Catalog
    );
    f.run("DROP TABLE IF EXISTS cloudtrail_logs").unwrap();
    assert!(f.run("SHOW TABLES").unwrap().rows.is_empty());
}

#[test]
fn test_declared_columns_shape_the_table() {
    let f = Fixture::new();
    f.objects.bucket("audit");
    f.objects.log_file(
        "audit",
        &day_key("us-east-1", 5, 1),
        vec![event("a", "2024-01-05T10:00:00Z", "Decrypt")],
    );
    f.run(
        "CREATE EXTERNAL TABLE slim (eventName STRING, notARecordField STRING) \
           PARTITIONED BY (`timestamp` STRING) \
           ROW FORMAT SERDE 'com.amazon.emr.hive.serde.CloudTrailSerde' \
           STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat' \
           OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat' \
           LOCATION 's3://audit/AWSLogs/123456789012/CloudTrail/' \
           TBLPROPERTIES ('projection.enabled'='true', 'projection.timestamp.format'='yyyy/MM/dd')",
    )
    .unwrap();
    let table = f.meta.table("default", "slim").unwrap().unwrap();
    assert_eq!(
        table.input_format.as_deref(),
        Some("com.amazon.emr.cloudtrail.CloudTrailInputFormat")
    );
    assert_eq!(
        table
            .parameters
            .get("projection.enabled")
            .map(String::as_str),
        Some("true")
    );
    let answer = f.run("SELECT * FROM slim").unwrap();
    assert_eq!(
        answer
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["eventname", "notarecordfield", "timestamp"]
    );
    assert_eq!(
        answer.rows,
        [vec![
            Some("Decrypt".into()),
            None,
            Some("2024/01/05".into())
        ]]
    );
}

#[test]
fn test_bad_statements_fail_clearly() {
    let f = Fixture::new();
    f.objects.bucket("audit");
    f.run(GUIDE_DDL).unwrap();
    let error = f.run("SELEC eventName FROM cloudtrail_logs").unwrap_err();
    assert_eq!(error.kind, SqlErrorKind::Syntax);
    assert!(error.message.starts_with("line 1:1: "), "{}", error.message);
    let error = f
        .run("SELECT eventName FROM cloudtrail_logs WHERE")
        .unwrap_err();
    assert_eq!(error.kind, SqlErrorKind::Syntax);
    assert!(error.message.contains("line 1:"), "{}", error.message);
    let error = f.run("SELECT * FROM no_such_table").unwrap_err();
    assert_eq!(error.kind, SqlErrorKind::Invalid);
    assert!(error.message.contains("no_such_table"), "{}", error.message);
    let error = f
        .run("SELECT no_such_column FROM cloudtrail_logs")
        .unwrap_err();
    assert!(
        error.message.contains("no_such_column"),
        "{}",
        error.message
    );
    let error = f
        .run("SELECT frobnicate(eventName) FROM cloudtrail_logs")
        .unwrap_err();
    assert!(error.message.contains("frobnicate"), "{}", error.message);
    let error = f
        .run(
            &GUIDE_DDL
                .replace("s3://audit/", "s3://no-such-bucket/")
                .replace("cloudtrail_logs", "other"),
        )
        .unwrap_err();
    assert_eq!(error.kind, SqlErrorKind::LocationNotFound);
    assert!(
        error.message.contains("no-such-bucket"),
        "{}",
        error.message
    );
    let error = f.run("CREATE EXTERNAL TABLE csv (a STRING) ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe' LOCATION 's3://audit/x/'").unwrap_err();
    assert!(
        error.message.contains("LazySimpleSerDe"),
        "{}",
        error.message
    );
    f.cancel.store(true, Ordering::Relaxed);
    assert_eq!(
        f.run("SELECT count(*) FROM cloudtrail_logs")
            .unwrap_err()
            .kind,
        SqlErrorKind::Cancelled
    );
}
