//! The data path without sockets: ingest → WAL → trail sink → log files.

// Test helpers panic on failure by design: a panic is the test failure.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use cairn_meta::{Bucket, Metastore, TrailConfig, TrailRecord, TrailStatus};
use cairn_pipeline::envelope::TrailChange;
use cairn_pipeline::sink::{DeliveryIntent, PlannedFile, SinkState, consumer_name};
use cairn_pipeline::{
    DeliverySettings, IngestConfig, Metrics, Organization, Pipeline, PipelineConfig,
};
use cairn_store::BucketStore;

const ACCOUNT: &str = "123456789012";

struct Fixture {
    dir: tempfile::TempDir,
    meta: Arc<Metastore>,
    store: BucketStore,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(Metastore::open(&dir.path().join("meta.sqlite")).unwrap());
        let store = BucketStore::local(&dir.path().join("objects")).unwrap();
        meta.create_bucket(&Bucket {
            name: "logs".into(),
            region: "us-east-1".into(),
            created_at: Utc::now(),
        })
        .unwrap();
        Self { dir, meta, store }
    }

    fn start(&self, interval: Duration) -> Arc<Pipeline> {
        Pipeline::start(
            PipelineConfig {
                data_dir: self.dir.path().to_owned(),
                wal_max_disk_bytes: 1 << 30,
                wal_segment_bytes: 1 << 20,
                dedup_window: Duration::from_secs(86400),
                dedup_max_entries: 1_000_000,
                ingest: IngestConfig {
                    account_id: ACCOUNT.into(),
                    region: "us-east-1".into(),
                    organization_accounts: HashSet::new(),
                },
                delivery: DeliverySettings {
                    interval,
                    retry_delay: Duration::from_millis(50),
                    ..DeliverySettings::default()
                },
                organization: Organization::default(),
            },
            self.meta.clone(),
            self.store.clone(),
            tokio::runtime::Handle::current(),
        )
        .unwrap()
    }

    async fn files(&self) -> BTreeMap<String, Vec<serde_json::Value>> {
        let listing = self
            .store
            .list("logs", "", None, None, 100_000)
            .await
            .unwrap();
        let mut out = BTreeMap::new();
        for o in listing.objects {
            let body = self.store.get("logs", &o.key, None).await.unwrap().body;
            let mut text = String::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_string(&mut text)
                .unwrap();
            let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
            out.insert(o.key, doc["Records"].as_array().unwrap().clone());
        }
        out
    }
}

fn trail(name: &str) -> TrailConfig {
    TrailConfig {
        name: name.into(),
        arn: format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/{name}"),
        account_id: ACCOUNT.into(),
        home_region: "us-east-1".into(),
        s3_bucket_name: "logs".into(),
        s3_key_prefix: Some(name.into()),
        sns_topic_name: None,
        include_global_service_events: true,
        is_multi_region_trail: true,
        log_file_validation_enabled: false,
        cloud_watch_logs_log_group_arn: None,
        cloud_watch_logs_role_arn: None,
        kms_key_id: None,
        is_organization_trail: false,
        selectors: serde_json::json!({"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": true}]}),
        has_custom_event_selectors: false,
        insight_selectors: None,
        tags: vec![],
        created_at: Utc::now(),
    }
}

fn record(i: usize) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"2024-05-01T10:00:00Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"us-east-1","eventID":"id-{i}","readOnly":true,"eventType":"AwsApiCall","eventCategory":"Management","recipientAccountId":"{ACCOUNT}","n":{i}}}"#
    )
}

async fn ingest(p: &Pipeline, range: std::ops::Range<usize>) {
    let texts: Vec<String> = range.map(record).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let outcome = p.ingestor().ingest(&refs).await.unwrap();
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
}

async fn wait_delivered(p: &Pipeline, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Metrics::get(&p.metrics().delivered_records) < n {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} delivered records"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create(f: &Fixture, p: &Pipeline, config: &TrailConfig) {
    p.create_trail(config).unwrap();
    f.meta
        .create_trail(&TrailRecord {
            config: config.clone(),
            status: TrailStatus::default(),
        })
        .unwrap();
}

fn ids(files: &BTreeMap<String, Vec<serde_json::Value>>) -> Vec<String> {
    files
        .values()
        .flatten()
        .map(|r| r["eventID"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_only_records_while_logging_are_delivered_once() {
    let f = Fixture::new();
    let p = f.start(Duration::from_millis(100));
    let config = trail("t1");
    create(&f, &p, &config).await;
    ingest(&p, 0..10).await; // before StartLogging
    p.change_trail(&config.arn, TrailChange::StartLogging)
        .await
        .unwrap();
    ingest(&p, 10..510).await;
    ingest(&p, 10..20).await; // duplicates
    wait_delivered(&p, 500).await;
    p.change_trail(&config.arn, TrailChange::StopLogging)
        .await
        .unwrap();
    ingest(&p, 600..650).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let files = f.files().await;
    let mut delivered = ids(&files);
    delivered.sort();
    let mut expected: Vec<String> = (10..510).map(|i| format!("id-{i}")).collect();
    expected.sort();
    assert_eq!(delivered, expected);
    for key in files.keys() {
        assert!(
            key.starts_with("t1/AWSLogs/123456789012/CloudTrail/us-east-1/"),
            "{key}"
        );
    }
    let status = f.meta.trail(&config.arn).unwrap().unwrap().status;
    assert!(status.latest_delivery_time.is_some());
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_restart_resumes_from_the_cursor() {
    let f = Fixture::new();
    let config = trail("t2");
    {
        // A long interval: records are batched but not delivered before the stop.
        let p = f.start(Duration::from_secs(3600));
        create(&f, &p, &config).await;
        p.change_trail(&config.arn, TrailChange::StartLogging)
            .await
            .unwrap();
        ingest(&p, 0..300).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        p.shutdown();
    }
    assert!(f.files().await.is_empty());
    let p = f.start(Duration::from_millis(100));
    wait_delivered(&p, 300).await;
    // Ingest after the restart is still deduplicated against before it.
    ingest(&p, 0..300).await;
    ingest(&p, 300..310).await;
    wait_delivered(&p, 310).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivered = ids(&f.files().await);
    assert_eq!(delivered.len(), 310);
    assert_eq!(delivered.iter().collect::<HashSet<_>>().len(), 310);
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_an_announced_delivery_is_finished_after_a_crash() {
    let f = Fixture::new();
    let config = trail("t3");
    let head;
    {
        let p = f.start(Duration::from_secs(3600));
        create(&f, &p, &config).await;
        p.change_trail(&config.arn, TrailChange::StartLogging)
            .await
            .unwrap();
        ingest(&p, 0..50).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        p.shutdown();
    }
    // Pretend the sink had announced a delivery of everything, then crashed
    // after writing one of its files: write the intent into its checkpoint.
    {
        let wal =
            cairn_wal::Wal::open(cairn_wal::WalConfig::new(f.dir.path().join("wal"))).unwrap();
        let name = consumer_name(&config.arn);
        let checkpoint = wal.checkpoint(&name).unwrap();
        let mut state: SinkState =
            serde_json::from_slice(checkpoint.state.as_deref().unwrap()).unwrap();
        head = wal.head();
        let key = "t3/AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/123456789012_CloudTrail_us-east-1_20240501T1000Z_ABCDEFGHIJKLMNOP.json.gz";
        state.intent = Some(DeliveryIntent {
            to: head,
            delivered_at: Utc::now(),
            files: vec![PlannedFile {
                account: ACCOUNT.into(),
                region: "us-east-1".into(),
                key: key.into(),
            }],
        });
        wal.commit(
            &name,
            checkpoint.lsn,
            Some(&serde_json::to_vec(&state).unwrap()),
        )
        .unwrap();
    }
    let p = f.start(Duration::from_secs(3600));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let files = f.files().await;
        if let Some(records) = files.values().next() {
            assert_eq!(files.len(), 1);
            assert!(files.contains_key("t3/AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/123456789012_CloudTrail_us-east-1_20240501T1000Z_ABCDEFGHIJKLMNOP.json.gz"));
            assert_eq!(records.len(), 50);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the announced file was not written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.shutdown();
    let wal = cairn_wal::Wal::open(cairn_wal::WalConfig::new(f.dir.path().join("wal"))).unwrap();
    let checkpoint = wal.checkpoint(&consumer_name(&config.arn)).unwrap();
    assert!(checkpoint.lsn >= head);
    let state: SinkState = serde_json::from_slice(checkpoint.state.as_deref().unwrap()).unwrap();
    assert!(state.intent.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_deleted_trail_stops_and_its_name_can_be_reused() {
    let f = Fixture::new();
    let p = f.start(Duration::from_millis(100));
    let config = trail("t4");
    create(&f, &p, &config).await;
    p.change_trail(&config.arn, TrailChange::StartLogging)
        .await
        .unwrap();
    ingest(&p, 0..20).await;
    wait_delivered(&p, 20).await;
    p.change_trail(&config.arn, TrailChange::Delete)
        .await
        .unwrap();
    f.meta.delete_trail(&config.arn).unwrap();
    create(&f, &p, &config).await;
    p.change_trail(&config.arn, TrailChange::StartLogging)
        .await
        .unwrap();
    ingest(&p, 20..30).await;
    wait_delivered(&p, 30).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ids(&f.files().await).len(), 30);
    p.shutdown();
}
