//! The data path without sockets: ingest → WAL → trail sink → log files.

// Test helpers panic on failure by design: a panic is the test failure.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use cairn_meta::{Bucket, Metastore, TrailConfig};
use cairn_monitor::{GroupKey, MetricKey, MetricTransformation, Monitor};
use cairn_pipeline::envelope::TrailChange;
use cairn_pipeline::runtime::{decode_checkpoint, encode_checkpoint};
use cairn_pipeline::sink::{DeliveryIntent, PlannedFile, SinkState, consumer_name};
use cairn_pipeline::{
    DeliverySettings, IngestConfig, Metrics, Organization, Pipeline, PipelineConfig,
};
use cairn_store::BucketStore;

const ACCOUNT: &str = "123456789012";

struct Fixture {
    dir: tempfile::TempDir,
    meta: Arc<Metastore>,
    monitor: Arc<Monitor>,
    store: BucketStore,
    /// The WAL's disk bound and segment size for the next start.
    wal_max_disk_bytes: u64,
    wal_segment_bytes: u64,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(Metastore::open(&dir.path().join("meta.sqlite")).unwrap());
        let monitor = Arc::new(Monitor::open(&dir.path().join("monitor.sqlite")).unwrap());
        let store = BucketStore::local(&dir.path().join("objects")).unwrap();
        meta.create_bucket(&Bucket {
            name: "logs".into(),
            region: "us-east-1".into(),
            created_at: Utc::now(),
        })
        .unwrap();
        Self {
            dir,
            meta,
            monitor,
            store,
            wal_max_disk_bytes: 1 << 30,
            wal_segment_bytes: 1 << 20,
        }
    }

    fn start(&self, interval: Duration) -> Arc<Pipeline> {
        self.start_with(
            DeliverySettings {
                interval,
                retry_delay: Duration::from_millis(50),
                ..DeliverySettings::default()
            },
            Duration::from_secs(30 * 86400),
        )
    }

    fn start_with(&self, delivery: DeliverySettings, key_rotation: Duration) -> Arc<Pipeline> {
        self.try_start_with(delivery, key_rotation).unwrap()
    }

    fn try_start_with(
        &self,
        delivery: DeliverySettings,
        key_rotation: Duration,
    ) -> Result<Arc<Pipeline>, cairn_pipeline::Error> {
        Pipeline::start(
            PipelineConfig {
                data_dir: self.dir.path().to_owned(),
                wal_max_disk_bytes: self.wal_max_disk_bytes,
                wal_segment_bytes: self.wal_segment_bytes,
                dedup_window: Duration::from_secs(86400),
                dedup_max_entries: 1_000_000,
                ingest: IngestConfig {
                    account_id: ACCOUNT.into(),
                    region: "us-east-1".into(),
                    organization_accounts: HashSet::new(),
                },
                delivery,
                organization: Organization::default(),
                key_rotation,
            },
            self.meta.clone(),
            self.monitor.clone(),
            Some(Arc::new(
                cairn_history::History::open(&self.dir.path().join("history.sqlite")).unwrap(),
            )),
            self.store.clone(),
            tokio::runtime::Handle::current(),
        )
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
        s3_key_prefix: Some(name.into()),
        is_multi_region_trail: true,
        ..TrailConfig::new(
            name,
            format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/{name}"),
            ACCOUNT,
            "us-east-1",
            "logs",
            serde_json::json!({"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": true}]}),
            Utc::now(),
        )
    }
}

fn record(i: usize) -> String {
    record_in(i, "us-east-1")
}

fn record_in(i: usize, region: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"2024-05-01T10:00:00Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"{region}","eventID":"id-{i}","readOnly":true,"eventType":"AwsApiCall","eventCategory":"Management","recipientAccountId":"{ACCOUNT}","n":{i}}}"#
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

async fn create(f: &Fixture, p: &Arc<Pipeline>, config: &TrailConfig) {
    p.change_trail(&config.arn, TrailChange::Create(Box::new(config.clone())))
        .await
        .unwrap();
    // The metastore row is derived from the WAL's Create record.
    assert_eq!(f.meta.trail(&config.arn).unwrap().unwrap().config, *config);
}

/// Creates a trail and starts its logging.
async fn create_logging(f: &Fixture, p: &Arc<Pipeline>, config: &TrailConfig) {
    create(f, p, config).await;
    p.change_trail(&config.arn, TrailChange::StartLogging)
        .await
        .unwrap();
}

fn ids(files: &BTreeMap<String, Vec<serde_json::Value>>) -> Vec<String> {
    files
        .values()
        .flatten()
        .map(|r| r["eventID"].as_str().unwrap().to_owned())
        .collect()
}

/// The eventIDs of every record delivered so far, sorted.
async fn delivered_ids(f: &Fixture) -> Vec<String> {
    let mut delivered = ids(&f.files().await);
    delivered.sort();
    delivered
}

/// The eventIDs [`record`] gives the records numbered `numbers`, sorted as
/// [`delivered_ids`] sorts.
fn expected_ids(numbers: impl IntoIterator<Item = usize>) -> Vec<String> {
    let mut expected: Vec<String> = numbers.into_iter().map(|i| format!("id-{i}")).collect();
    expected.sort();
    expected
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
    assert_eq!(delivered, expected_ids(10..510));
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

/// Requests arriving together are committed together (one WAL append for
/// several of them); a record sent by two of them at once is stored once and
/// acknowledged to both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_concurrent_requests_are_committed_together_and_each_record_once() {
    let f = Fixture::new();
    let p = f.start(Duration::from_millis(100));
    let config = trail("t1");
    create_logging(&f, &p, &config).await;
    // Sixteen requests of 30 records; each shares ten with the next.
    let requests: Vec<_> = (0..16)
        .map(|k| {
            let p = p.clone();
            tokio::spawn(async move { ingest(&p, k * 20..k * 20 + 30).await })
        })
        .collect();
    for request in requests {
        request.await.unwrap();
    }
    wait_delivered(&p, 330).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(delivered_ids(&f).await, expected_ids(0..330));
    p.shutdown();
}

/// The router takes records just committed from memory, and reads from the
/// WAL what was appended between them (a trail change): every record is
/// delivered once either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_committed_records_reach_the_router_from_memory_around_trail_changes() {
    let f = Fixture::new();
    let p = f.start(Duration::from_millis(100));
    let config = trail("t1");
    create_logging(&f, &p, &config).await;
    // Trail changes between groups: records the committer did not write,
    // in the WAL between records it did, which the router must not skip.
    for k in 0..4 {
        ingest(&p, k * 100..k * 100 + 50).await;
        p.change_trail(&config.arn, TrailChange::StopLogging)
            .await
            .unwrap();
        ingest(&p, k * 100 + 50..k * 100 + 100).await; // while stopped
        p.change_trail(&config.arn, TrailChange::StartLogging)
            .await
            .unwrap();
    }
    wait_delivered(&p, 200).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        delivered_ids(&f).await,
        expected_ids((0..4).flat_map(|k| k * 100..k * 100 + 50))
    );
    let reads = p.router_reads();
    assert!(reads.from_memory > 0, "{reads:?}");
    assert!(reads.routed > reads.from_memory, "{reads:?}");
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_restart_resumes_from_the_cursor() {
    let f = Fixture::new();
    let config = trail("t2");
    {
        // A long interval: records are batched but not delivered before the stop.
        let p = f.start(Duration::from_secs(3600));
        create_logging(&f, &p, &config).await;
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
        create_logging(&f, &p, &config).await;
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
        let saved =
            decode_checkpoint::<SinkState, DeliveryIntent>(&name, checkpoint.state.as_deref())
                .unwrap();
        head = wal.head();
        let key = "t3/AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/123456789012_CloudTrail_us-east-1_20240501T1000Z_ABCDEFGHIJKLMNOP.json.gz";
        let intent = DeliveryIntent {
            to: head,
            delivered_at: Utc::now(),
            files: vec![PlannedFile {
                account: ACCOUNT.into(),
                region: "us-east-1".into(),
                key: key.into(),
            }],
        };
        wal.commit(
            &name,
            checkpoint.lsn,
            Some(&encode_checkpoint(&saved.state, Some(&intent)).unwrap()),
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
    let saved = decode_checkpoint::<SinkState, DeliveryIntent>(
        &consumer_name(&config.arn),
        checkpoint.state.as_deref(),
    )
    .unwrap();
    assert!(saved.intent.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_deleted_trail_stops_and_its_name_can_be_reused() {
    let f = Fixture::new();
    let p = f.start(Duration::from_millis(100));
    let config = trail("t4");
    create_logging(&f, &p, &config).await;
    ingest(&p, 0..20).await;
    wait_delivered(&p, 20).await;
    p.change_trail(&config.arn, TrailChange::Delete)
        .await
        .unwrap();
    assert!(f.meta.trail(&config.arn).unwrap().is_none());
    create_logging(&f, &p, &config).await;
    ingest(&p, 20..30).await;
    wait_delivered(&p, 30).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ids(&f.files().await).len(), 30);
    p.shutdown();
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    cairn_digest::sha256_hex(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_digest_chains_survive_restart_rotation_and_stop() {
    let f = Fixture::new();
    let settings = DeliverySettings {
        interval: Duration::from_millis(100),
        retry_delay: Duration::from_millis(50),
        digest_interval: Duration::from_secs(1),
        ..DeliverySettings::default()
    };
    let rotation = Duration::from_secs(2);
    let mut config = trail("dg");
    config.log_file_validation_enabled = true;
    {
        let p = f.start_with(settings.clone(), rotation);
        create_logging(&f, &p, &config).await;
        ingest(&p, 0..100).await;
        let texts: Vec<String> = (100..120).map(|i| record_in(i, "eu-west-1")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        p.ingestor().ingest(&refs).await.unwrap();
        wait_delivered(&p, 120).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        p.shutdown();
    }
    {
        // A restart continues the chains.
        let p = f.start_with(settings, rotation);
        ingest(&p, 200..300).await;
        wait_delivered(&p, 100).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        p.change_trail(&config.arn, TrailChange::StopLogging)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f.meta.digest_chains(&config.arn).unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "StopLogging did not end the chains"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        p.shutdown();
    }
    let keyring = cairn_digest::Keyring::open(&f.dir.path().join("digest-keys"), rotation).unwrap();
    let listing = f
        .store
        .list("logs", "dg/", None, None, 100_000)
        .await
        .unwrap();
    let mut log_files = BTreeMap::new();
    let mut chains: BTreeMap<String, Vec<(String, Vec<u8>, String)>> = BTreeMap::new();
    for o in &listing.objects {
        let object = f.store.get("logs", &o.key, None).await.unwrap();
        if o.key.contains("/CloudTrail-Digest/") {
            let region = o.key.split('/').nth(4).unwrap().to_owned();
            let signature = object.info.metadata["signature"].clone();
            assert_eq!(object.info.metadata["signature-algorithm"], "SHA256withRSA");
            chains.entry(region).or_default().push((
                o.key.clone(),
                gunzip(&object.body),
                signature,
            ));
        } else {
            log_files.insert(o.key.clone(), sha256_hex(&gunzip(&object.body)));
        }
    }
    assert_eq!(
        chains.keys().collect::<Vec<_>>(),
        ["eu-west-1", "us-east-1"]
    );
    let mut listed = BTreeMap::new();
    let mut fingerprints = HashSet::new();
    for (region, digests) in &chains {
        // Keys sort by their end time.
        assert!(digests.len() >= 4, "{region}: {} digests", digests.len());
        let mut previous: Option<&(String, Vec<u8>, String)> = None;
        for (i, digest) in digests.iter().enumerate() {
            let (key, body, signature) = digest;
            let d: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(d["digestS3Object"], key.as_str());
            assert_eq!(d["digestS3Bucket"], "logs");
            assert_eq!(d["awsAccountId"], ACCOUNT);
            match previous {
                None => {
                    assert!(d["previousDigestS3Object"].is_null(), "{key}");
                    assert!(d["previousDigestSignature"].is_null());
                }
                Some((pkey, pbody, psig)) => {
                    let p: serde_json::Value = serde_json::from_slice(pbody).unwrap();
                    assert_eq!(
                        d["previousDigestS3Object"],
                        pkey.as_str(),
                        "digest {i} of {region}"
                    );
                    assert_eq!(d["previousDigestHashValue"], sha256_hex(pbody).as_str());
                    assert_eq!(d["previousDigestSignature"], psig.as_str());
                    assert_eq!(d["digestStartTime"], p["digestEndTime"]);
                }
            }
            let end = d["digestEndTime"].as_str().unwrap();
            let message = cairn_digest::string_to_sign(
                end,
                "logs",
                key,
                &sha256_hex(body),
                d["previousDigestSignature"].as_str(),
            );
            let fingerprint = d["digestPublicKeyFingerprint"].as_str().unwrap();
            fingerprints.insert(fingerprint.to_owned());
            let t = chrono::DateTime::parse_from_rfc3339(end).unwrap().to_utc();
            let keys = keyring.public_keys(region, t, t).unwrap();
            let public = keys.iter().find(|k| k.fingerprint == fingerprint).unwrap();
            let verifying =
                cairn_digest::VerifyingKey::from_pkcs1_der(&public.der().unwrap()).unwrap();
            assert!(
                verifying.verify(message.as_bytes(), &hex::decode(signature).unwrap()),
                "{key}"
            );
            for file in d["logFiles"].as_array().unwrap() {
                let k = file["s3Object"].as_str().unwrap().to_owned();
                assert_eq!(file["hashValue"], log_files[&k].as_str());
                assert!(listed.insert(k, ()).is_none(), "listed twice");
            }
            previous = Some(digest);
        }
    }
    // Every delivered log file is in exactly one digest; the keys rotated.
    assert_eq!(
        listed.keys().collect::<Vec<_>>(),
        log_files.keys().collect::<Vec<_>>()
    );
    assert!(fingerprints.len() >= 3, "{fingerprints:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_missing_bucket_is_reported_and_waits_for_a_change() {
    let f = Fixture::new();
    let p = f.start(Duration::from_millis(100));
    let mut config = trail("nb");
    config.s3_bucket_name = "not-yet".into();
    create_logging(&f, &p, &config).await;
    ingest(&p, 0..10).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = f.meta.trail(&config.arn).unwrap().unwrap().status;
        if let Some(error) = status.latest_delivery_error {
            assert!(error.starts_with("NoSuchBucket"), "{error}");
            assert!(status.latest_delivery_attempt_time.is_some());
            assert!(status.latest_delivery_time.is_none());
            break;
        }
        assert!(Instant::now() < deadline, "no delivery error reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Parked, not spinning: one failed attempt in a second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(Metrics::get(&p.metrics().delivery_failures), 1);
    assert_eq!(Metrics::get(&p.metrics().delivered_records), 0);
    // The bucket is created: the change wakes the sink, which delivers.
    f.meta
        .create_bucket(&Bucket {
            name: "not-yet".into(),
            region: "us-east-1".into(),
            created_at: Utc::now(),
        })
        .unwrap();
    p.configuration_changed();
    wait_delivered(&p, 10).await;
    let status = f.meta.trail(&config.arn).unwrap().unwrap().status;
    assert_eq!(status.latest_delivery_error, None);
    assert!(status.latest_delivery_time.is_some());
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_trail_change_only_in_the_wal_reaches_the_metastore_at_start() {
    let f = Fixture::new();
    let config = trail("rp");
    {
        let p = f.start(Duration::from_millis(100));
        create(&f, &p, &config).await;
        p.shutdown();
    }
    // A crash between the WAL append and the metastore write: the control
    // record is in the WAL past the `meta` cursor, the metastore is stale.
    let mut changed = config.clone();
    changed.s3_key_prefix = Some("after-crash".into());
    {
        let wal =
            cairn_wal::Wal::open(cairn_wal::WalConfig::new(f.dir.path().join("wal"))).unwrap();
        for change in [
            TrailChange::Configure(Box::new(changed.clone())),
            TrailChange::StartLogging,
        ] {
            let control = cairn_pipeline::envelope::TrailControl {
                trail_arn: config.arn.clone(),
                at: chrono::DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
                    .unwrap()
                    .to_utc(),
                change,
            };
            wal.append(&[cairn_pipeline::envelope::encode_control(&control).as_slice()])
                .unwrap();
        }
    }
    assert_eq!(f.meta.trail(&config.arn).unwrap().unwrap().config, config);
    let p = f.start(Duration::from_millis(100));
    let trail = f.meta.trail(&config.arn).unwrap().unwrap();
    assert_eq!(trail.config, changed);
    assert!(trail.status.is_logging);
    assert_eq!(
        trail.status.start_logging_time.unwrap().to_rfc3339(),
        "2024-05-01T10:00:00+00:00"
    );
    // And the sink agrees: records go under the new prefix.
    ingest(&p, 0..5).await;
    wait_delivered(&p, 5).await;
    for key in f.files().await.keys() {
        assert!(key.starts_with("after-crash/AWSLogs/"), "{key}");
    }
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_start_up_stops_on_what_this_build_cannot_read() {
    let f = Fixture::new();
    let config = trail("uv");
    {
        let p = f.start(Duration::from_millis(100));
        create(&f, &p, &config).await;
        p.shutdown();
    }
    let wal_dir = f.dir.path().join("wal");
    let lsn = {
        let wal = cairn_wal::Wal::open(cairn_wal::WalConfig::new(&wal_dir)).unwrap();
        wal.append(&[&[9u8, 1, 2, 3][..]]).unwrap().first_lsn
    };
    let error = f
        .try_start_with(DeliverySettings::default(), Duration::from_secs(86400))
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains(&format!("LSN {lsn}")), "{message}");
    assert!(message.contains("00000000000000000000.wal"), "{message}");
    assert!(message.contains("version 9 is unknown"), "{message}");
    assert!(message.contains("never skips"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_start_up_stops_on_a_checkpoint_of_an_unknown_version() {
    let f = Fixture::new();
    let config = trail("cv");
    {
        let p = f.start(Duration::from_millis(100));
        create(&f, &p, &config).await;
        p.shutdown();
    }
    {
        let wal =
            cairn_wal::Wal::open(cairn_wal::WalConfig::new(f.dir.path().join("wal"))).unwrap();
        let name = consumer_name(&config.arn);
        let lsn = wal.checkpoint(&name).unwrap().lsn;
        wal.commit(&name, lsn, Some(br#"{"v":7,"state":{}}"#))
            .unwrap();
    }
    let error = f
        .try_start_with(DeliverySettings::default(), Duration::from_secs(86400))
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("version 7"), "{message}");
    assert!(message.contains(&consumer_name(&config.arn)), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_deleting_a_trail_parked_on_a_missing_bucket_stops_its_sink() {
    let f = Fixture::new();
    let p = f.start(Duration::from_millis(100));
    let mut config = trail("gone");
    config.s3_bucket_name = "never-created".into();
    create_logging(&f, &p, &config).await;
    ingest(&p, 0..10).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Metrics::get(&p.metrics().delivery_failures) == 0 {
        assert!(Instant::now() < deadline, "the delivery never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.change_trail(&config.arn, TrailChange::Delete)
        .await
        .unwrap();
    // The same name again, now with a bucket: the old sink must be gone.
    let fresh = trail("gone");
    create_logging(&f, &p, &fresh).await;
    ingest(&p, 10..20).await;
    wait_delivered(&p, 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(delivered_ids(&f).await, expected_ids(10..20));
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_partly_written_delivery_recovers_exactly_its_missing_files_byte_for_byte() {
    let f = Fixture::new();
    let config = trail("pw");
    let east: Vec<String> = (0..30).map(|i| record_in(i, "us-east-1")).collect();
    let west: Vec<String> = (30..45).map(|i| record_in(i, "eu-west-1")).collect();
    let head;
    {
        let p = f.start(Duration::from_secs(3600));
        create_logging(&f, &p, &config).await;
        let all: Vec<&str> = east.iter().chain(&west).map(String::as_str).collect();
        p.ingestor().ingest(&all).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        p.shutdown();
    }
    // What the files of this WAL range are: deterministic in their records.
    let gzipped = |records: &[String], region: &str, level: u32| {
        let mut batches = cairn_trail::LogBatches::new(level);
        for r in records {
            batches.push(
                ACCOUNT,
                region,
                r.as_bytes(),
                cairn_model::time::parse_event_time("2024-05-01T10:00:00Z"),
            );
        }
        batches.finish().remove(0).1.gzip
    };
    let expected = |records: &[String], region: &str| {
        gzipped(records, region, DeliverySettings::default().gzip_level)
    };
    let east_key = "pw/AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/123456789012_CloudTrail_us-east-1_20240501T1000Z_EASTEASTEASTEAST.json.gz";
    let west_key = "pw/AWSLogs/123456789012/CloudTrail/eu-west-1/2024/05/01/123456789012_CloudTrail_eu-west-1_20240501T1000Z_WESTWESTWESTWEST.json.gz";
    // The sink announced both files, wrote the eu-west-1 one, and crashed.
    // What the store holds for it is marked (the same records at another
    // gzip level, so other bytes): a recovery that rewrote it instead of
    // leaving it would show.
    let written_west = gzipped(&west, "eu-west-1", 1);
    assert_ne!(written_west, expected(&west, "eu-west-1"));
    f.store
        .put(
            "logs",
            west_key,
            bytes::Bytes::from(written_west.clone()),
            &BTreeMap::new(),
        )
        .await
        .unwrap();
    {
        let wal =
            cairn_wal::Wal::open(cairn_wal::WalConfig::new(f.dir.path().join("wal"))).unwrap();
        let name = consumer_name(&config.arn);
        let checkpoint = wal.checkpoint(&name).unwrap();
        let saved =
            decode_checkpoint::<SinkState, DeliveryIntent>(&name, checkpoint.state.as_deref())
                .unwrap();
        head = wal.head();
        let intent = DeliveryIntent {
            to: head,
            delivered_at: Utc::now(),
            files: vec![
                PlannedFile {
                    account: ACCOUNT.into(),
                    region: "eu-west-1".into(),
                    key: west_key.into(),
                },
                PlannedFile {
                    account: ACCOUNT.into(),
                    region: "us-east-1".into(),
                    key: east_key.into(),
                },
            ],
        };
        wal.commit(
            &name,
            checkpoint.lsn,
            Some(&encode_checkpoint(&saved.state, Some(&intent)).unwrap()),
        )
        .unwrap();
    }
    let p = f.start(Duration::from_secs(3600));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f.store.exists("logs", east_key).await.unwrap() {
        assert!(
            Instant::now() < deadline,
            "the missing file was not written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.shutdown();
    let listing = f.store.list("logs", "", None, None, 1000).await.unwrap();
    let keys: Vec<&str> = listing.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, [west_key, east_key], "exactly the announced files");
    let east_body = f.store.get("logs", east_key, None).await.unwrap().body;
    assert_eq!(
        &east_body[..],
        &expected(&east, "us-east-1")[..],
        "identical bytes"
    );
    let west_body = f.store.get("logs", west_key, None).await.unwrap().body;
    assert_eq!(
        &west_body[..],
        &written_west[..],
        "the written file untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_updating_the_bucket_of_a_trail_parked_on_a_missing_bucket_delivers_at_once() {
    let f = Fixture::new();
    let p = f.start(Duration::from_millis(100));
    let mut config = trail("fix");
    config.s3_bucket_name = "never-created".into();
    create_logging(&f, &p, &config).await;
    ingest(&p, 0..10).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Metrics::get(&p.metrics().delivery_failures) == 0 {
        assert!(Instant::now() < deadline, "the delivery never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // UpdateTrail to the existing bucket: the parked delivery (before the
    // change in the WAL) goes there at once, not after the recheck period.
    let mut fixed = config.clone();
    fixed.s3_bucket_name = "logs".into();
    p.change_trail(&config.arn, TrailChange::Configure(Box::new(fixed)))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Metrics::get(&p.metrics().delivered_records) < 10 {
        assert!(Instant::now() < deadline, "still parked after the fix");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ingest(&p, 10..15).await;
    wait_delivered(&p, 15).await;
    assert_eq!(delivered_ids(&f).await, expected_ids(0..15));
    assert_eq!(Metrics::get(&p.metrics().delivery_failures), 1);
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_keys_the_local_store_refuses_are_quarantined_not_retried_forever() {
    for prefix in ["../x", "a//b", "."] {
        let f = Fixture::new();
        let p = f.start(Duration::from_millis(100));
        // Past the door (a trail stored before it checked prefixes).
        let mut config = trail("bad");
        config.s3_key_prefix = Some(prefix.into());
        config.log_file_validation_enabled = true;
        create_logging(&f, &p, &config).await;
        ingest(&p, 0..10).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.quarantined_records() < 10 {
            assert!(Instant::now() < deadline, "{prefix}: nothing quarantined");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(Metrics::get(&p.metrics().delivery_failures), 0, "{prefix}");
        let entries = cairn_pipeline::quarantine::list(f.dir.path()).unwrap();
        assert_eq!(entries.len(), 1, "{prefix}");
        assert!(
            entries[0].reason.contains("invalid object key"),
            "{}",
            entries[0].reason
        );
        let mut set_aside: Vec<&str> = entries[0]
            .records
            .iter()
            .map(|r| std::str::from_utf8(r.bytes()).unwrap())
            .collect();
        set_aside.sort();
        let mut expected: Vec<String> = (0..10).map(record).collect();
        expected.sort();
        assert_eq!(set_aside, expected, "{prefix}: not the exact records");
        // The status is reported just after the part is set aside.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let status = f.meta.trail(&config.arn).unwrap().unwrap().status;
            let error = status.latest_delivery_error.unwrap_or_default();
            if error.contains(&entries[0].part) && error.contains("quarantine") {
                break;
            }
            assert!(Instant::now() < deadline, "{prefix}: status says {error:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The trail is fixed: later records are delivered.
        let mut fixed = config.clone();
        fixed.s3_key_prefix = Some("fixed".into());
        p.change_trail(&config.arn, TrailChange::Configure(Box::new(fixed)))
            .await
            .unwrap();
        ingest(&p, 10..15).await;
        wait_delivered(&p, 5).await;
        assert_eq!(delivered_ids(&f).await, expected_ids(10..15), "{prefix}");
        assert_eq!(p.quarantined_records(), 10);
        p.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_batch_refused_for_a_full_wal_is_stored_once_when_retried() {
    let mut f = Fixture::new();
    // A WAL bound far below what the loop below ingests between deliveries.
    f.wal_max_disk_bytes = 512 * 1024;
    f.wal_segment_bytes = 64 * 1024;
    let p = f.start(Duration::from_millis(300));
    let config = trail("full");
    create_logging(&f, &p, &config).await;
    const BATCH: usize = 200;
    let batch = |n: usize| -> Vec<String> { (n * BATCH..(n + 1) * BATCH).map(record).collect() };
    let mut acknowledged: Vec<String> = Vec::new();
    let mut refused = None;
    for n in 0..2000 {
        let texts = batch(n);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        match p.ingestor().ingest(&refs).await {
            Ok(outcome) => {
                assert_eq!(outcome.accepted, BATCH, "{:?}", outcome.failed);
                acknowledged.extend((n * BATCH..(n + 1) * BATCH).map(|i| format!("id-{i}")));
            }
            Err(e) => {
                assert!(
                    matches!(e, cairn_pipeline::Error::Throttled { .. }),
                    "only a full WAL may refuse: {e}"
                );
                refused = Some(n);
                break;
            }
        }
    }
    let n = refused.expect("the WAL bound was never reached");
    assert!(Metrics::get(&p.metrics().throttled_requests) >= 1);
    // The client retries the refused batch, with backoff, until it is taken
    // (deliveries free the WAL) ...
    let texts = batch(n);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match p.ingestor().ingest(&refs).await {
            Ok(outcome) => {
                assert_eq!(outcome.accepted, BATCH, "{:?}", outcome.failed);
                break;
            }
            Err(cairn_pipeline::Error::Throttled { .. }) => {
                assert!(Instant::now() < deadline, "the WAL never made room");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    acknowledged.extend((n * BATCH..(n + 1) * BATCH).map(|i| format!("id-{i}")));
    // ... and once more, as a client that lost the answer would: accepted
    // again as duplicates, not stored again.
    let again = p.ingestor().ingest(&refs).await.unwrap();
    assert_eq!(again.accepted, BATCH, "{:?}", again.failed);
    wait_delivered(&p, acknowledged.len() as u64).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    p.shutdown();
    let delivered = delivered_ids(&f).await;
    acknowledged.sort();
    assert_eq!(
        delivered.len(),
        acknowledged.len(),
        "each acknowledged record once"
    );
    assert_eq!(delivered, acknowledged);
}

fn cloudtrail_group() -> GroupKey {
    GroupKey::new(ACCOUNT, "us-east-1", "CloudTrail")
}

/// Every event in the trail's log group: (stream, eventID).
fn group_events(f: &Fixture) -> Vec<(String, String)> {
    let page = f
        .monitor
        .filter_log_events(
            &cloudtrail_group(),
            None,
            None,
            None,
            None,
            None,
            None,
            10_000,
        )
        .unwrap();
    page.events
        .into_iter()
        .map(|e| {
            let record: serde_json::Value = serde_json::from_str(&e.message).unwrap();
            (e.stream, record["eventID"].as_str().unwrap().to_owned())
        })
        .collect()
}

async fn wait_for_group_events(f: &Fixture, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while group_events(f).len() < n {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} log events"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_trail_feeds_its_log_group_once_with_metric_samples_across_restarts() {
    let f = Fixture::new();
    f.monitor
        .create_log_group(&cloudtrail_group(), 0, None, "STANDARD", &BTreeMap::new())
        .unwrap();
    f.monitor
        .put_metric_filter(
            &cloudtrail_group(),
            "EuRegion",
            r#"{ $.awsRegion = "eu-west-1" }"#,
            &[MetricTransformation {
                metric_name: "EuEvents".into(),
                metric_namespace: "CloudTrailMetrics".into(),
                metric_value: "1".into(),
                default_value: None,
                dimensions: BTreeMap::new(),
                unit: None,
            }],
            0,
        )
        .unwrap();
    let mut config = trail("feed");
    config.cloud_watch_logs_log_group_arn = Some(format!(
        "arn:aws:logs:us-east-1:{ACCOUNT}:log-group:CloudTrail:*"
    ));
    config.cloud_watch_logs_role_arn =
        Some(format!("arn:aws:iam::{ACCOUNT}:role/CloudTrail-CWLogs"));
    {
        // Long S3 interval: the feed delivers on its own, far sooner.
        let p = f.start(Duration::from_secs(3600));
        create(&f, &p, &config).await;
        ingest(&p, 0..5).await; // not logging yet: not fed
        p.change_trail(&config.arn, TrailChange::StartLogging)
            .await
            .unwrap();
        let texts: Vec<String> = (5..25)
            .map(|i| record_in(i, if i % 2 == 0 { "us-east-1" } else { "eu-west-1" }))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        p.ingestor().ingest(&refs).await.unwrap();
        wait_for_group_events(&f, 20).await;
        p.shutdown();
    }
    // A restart feeds nothing twice (the cursor may be behind what the
    // store holds: the store recognises the replay).
    let p = f.start(Duration::from_secs(3600));
    ingest(&p, 100..110).await;
    wait_for_group_events(&f, 30).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let events = group_events(&f);
    assert_eq!(events.len(), 30);
    let unique: HashSet<&String> = events.iter().map(|(_, id)| id).collect();
    assert_eq!(unique.len(), 30);
    assert!(!unique.contains(&"id-0".to_owned()));
    let streams: HashSet<&str> = events.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        streams,
        HashSet::from([
            "123456789012_CloudTrail_us-east-1",
            "123456789012_CloudTrail_eu-west-1"
        ])
    );
    let samples = f
        .monitor
        .metric_samples(
            &MetricKey {
                account: ACCOUNT.into(),
                region: "us-east-1".into(),
                namespace: "CloudTrailMetrics".into(),
                name: "EuEvents".into(),
                dimensions: Vec::new(),
            },
            0,
            i64::MAX,
        )
        .unwrap();
    assert_eq!(samples.len(), 10);
    let status = f.meta.trail(&config.arn).unwrap().unwrap().status;
    assert!(status.latest_cloud_watch_logs_delivery_time.is_some());
    assert_eq!(status.latest_cloud_watch_logs_delivery_error, None);
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_missing_log_group_is_reported_and_the_feed_resumes_once_it_exists() {
    let f = Fixture::new();
    let mut config = trail("nogroup");
    config.cloud_watch_logs_log_group_arn = Some(format!(
        "arn:aws:logs:us-east-1:{ACCOUNT}:log-group:CloudTrail:*"
    ));
    let p = f.start(Duration::from_millis(100));
    create_logging(&f, &p, &config).await;
    ingest(&p, 0..10).await;
    // S3 delivery goes on regardless.
    wait_delivered(&p, 10).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = f.meta.trail(&config.arn).unwrap().unwrap().status;
        if let Some(error) = status.latest_cloud_watch_logs_delivery_error {
            assert!(error.contains("ResourceNotFoundException"), "{error}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no log-group delivery error reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f.monitor
        .create_log_group(&cloudtrail_group(), 0, None, "STANDARD", &BTreeMap::new())
        .unwrap();
    p.configuration_changed();
    wait_for_group_events(&f, 10).await;
    p.shutdown();
}
