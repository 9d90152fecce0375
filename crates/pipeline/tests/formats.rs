//! Golden files of the pipeline's persisted formats: the WAL envelope (record
//! and control) and the sink checkpoints. Each test decodes the golden bytes,
//! checks what they mean, and re-encodes them identically, so a change of
//! format shows in review as a changed file (and needs a new version).
//!
//! To write the files after a deliberate format change (with a new version):
//! `CAIRN_BLESS=1 cargo test -p cairn-pipeline --test formats`.

// Test helpers panic on failure by design: a panic is the test failure.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};

use cairn_model::{Tag, TrailConfig};
use cairn_pipeline::envelope::{
    Envelope, EnvelopeError, TrailChange, TrailControl, decode, encode_control, encode_record,
};
use cairn_pipeline::persist::DedupIntent;
use cairn_pipeline::runtime::{CheckpointError, decode_checkpoint, encode_checkpoint};
use cairn_pipeline::sink::{DeliveryIntent, PlannedFile, SinkState};

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The golden bytes; with `CAIRN_BLESS=1`, (re)writes them from `encoded` first.
fn golden(name: &str, encoded: &[u8]) -> Vec<u8> {
    let p = path(name);
    if std::env::var_os("CAIRN_BLESS").is_some() {
        std::fs::write(&p, encoded).unwrap();
    }
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn config() -> TrailConfig {
    TrailConfig {
        name: "main".into(),
        arn: "arn:aws:cloudtrail:us-east-1:123456789012:trail/main".into(),
        account_id: "123456789012".into(),
        home_region: "us-east-1".into(),
        s3_bucket_name: "audit-logs".into(),
        s3_key_prefix: Some("prefix".into()),
        sns_topic_name: None,
        include_global_service_events: true,
        is_multi_region_trail: true,
        log_file_validation_enabled: true,
        cloud_watch_logs_log_group_arn: None,
        cloud_watch_logs_role_arn: None,
        kms_key_id: None,
        is_organization_trail: false,
        selectors: serde_json::json!({"EventSelectors": [{
            "ReadWriteType": "WriteOnly",
            "IncludeManagementEvents": true,
            "DataResources": [],
            "ExcludeManagementEventSources": []
        }]}),
        has_custom_event_selectors: true,
        insight_selectors: None,
        tags: vec![Tag {
            key: "team".into(),
            value: Some("security".into()),
        }],
        created_at: Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap(),
    }
}

const RECORD_JSON: &[u8] = br#"{"eventVersion":"1.08","eventTime":"2024-05-01T10:00:00Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"us-east-1","eventID":"0b5a8ad6-42a4-4f8c-9d45-1f3b5e0c2b11","recipientAccountId":"123456789012"}"#;

#[test]
fn test_v4_envelope_record() {
    let hash = cairn_pipeline::envelope::event_id_hash("0b5a8ad6-42a4-4f8c-9d45-1f3b5e0c2b11");
    let text = std::str::from_utf8(RECORD_JSON).unwrap();
    let defaults = cairn_model::IngestDefaults {
        account_id: "123456789012",
        region: "us-east-1",
    };
    // A record lacking eventType and eventCategory: ingest appends them, and
    // the view carries them.
    let record = cairn_model::record::normalize_record(text, &defaults).unwrap();
    let encoded = encode_record(1_714_557_600_123, hash, &record);
    let bytes = golden("v4.envelope-record.bin", &encoded);
    let Ok(Envelope::Record {
        ingest_time_ms,
        event_id_hash,
        json,
        view: Some(view),
    }) = decode(&bytes)
    else {
        panic!("the golden record does not decode")
    };
    assert_eq!(bytes[0], 4, "version byte");
    assert_eq!(ingest_time_ms, 1_714_557_600_123);
    assert_eq!(event_id_hash, hash);
    assert_eq!(json, record.json.as_bytes());
    let json = std::str::from_utf8(json).unwrap();
    let view = cairn_model::view_codec::decode_view(view, json).unwrap();
    let parsed = cairn_model::RecordView::parse(json).unwrap();
    assert_eq!(format!("{view:?}"), format!("{parsed:?}"));
    assert_eq!(view.event_category.as_deref(), Some("Management"));
    assert_eq!(encoded, bytes);
}

/// Version 3 records (no view) are still read: a WAL written before the
/// upgrade is delivered by the new build, its records parsed when routed.
#[test]
fn test_v3_envelope_record_is_still_read() {
    let hash = cairn_pipeline::envelope::event_id_hash("0b5a8ad6-42a4-4f8c-9d45-1f3b5e0c2b11");
    let bytes = std::fs::read(path("v3.envelope-record.bin")).unwrap();
    let Ok(Envelope::Record {
        ingest_time_ms,
        event_id_hash,
        json,
        view: None,
    }) = decode(&bytes)
    else {
        panic!("the golden record does not decode")
    };
    assert_eq!(bytes[0], 3, "version byte");
    assert_eq!(ingest_time_ms, 1_714_557_600_123);
    assert_eq!(event_id_hash, hash);
    assert_eq!(json, RECORD_JSON);
}

#[test]
fn test_v4_envelope_controls_and_v3_still_read() {
    let changes = [
        ("create", TrailChange::Create(Box::new(config()))),
        ("configure", TrailChange::Configure(Box::new(config()))),
        ("start-logging", TrailChange::StartLogging),
        ("stop-logging", TrailChange::StopLogging),
        ("delete", TrailChange::Delete),
    ];
    for (name, change) in changes {
        let control = TrailControl {
            trail_arn: config().arn,
            at: at("2024-05-01T10:00:00.250Z"),
            change,
        };
        let bytes = golden(
            &format!("v4.envelope-control-{name}.bin"),
            &encode_control(&control),
        );
        assert_eq!(&bytes[..2], &[4, 2], "{name}: version and kind");
        // Version 3 wrote the same control after its own version byte.
        let v3 = std::fs::read(path(&format!("v3.envelope-control-{name}.bin"))).unwrap();
        assert_eq!((v3[0], &v3[1..]), (3, &bytes[1..]), "{name}: version 3");
        assert_eq!(
            decode(&v3),
            Ok(Envelope::Control(control.clone())),
            "{name}"
        );
        let Ok(Envelope::Control(decoded)) = decode(&bytes) else {
            panic!("{name}: the golden control does not decode")
        };
        assert_eq!(decoded, control, "{name}");
        assert_eq!(encode_control(&decoded), bytes, "{name}");
    }
}

#[test]
fn test_an_unknown_envelope_version_is_refused_clearly() {
    let mut bytes = std::fs::read(path("v4.envelope-record.bin")).unwrap();
    bytes[0] = 5;
    let error = decode(&bytes).unwrap_err();
    assert_eq!(error, EnvelopeError::UnknownVersion(5));
    assert!(
        error.to_string().contains("version 5 is unknown"),
        "{error}"
    );
}

fn intent() -> DeliveryIntent {
    DeliveryIntent {
        to: 1_048_600,
        delivered_at: at("2024-05-01T10:05:00.500Z"),
        files: vec![PlannedFile {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            key: "prefix/AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/123456789012_CloudTrail_us-east-1_20240501T1005Z_ABCDEFGHIJKLMNOP.json.gz".into(),
        }],
    }
}

#[test]
fn test_v1_trail_checkpoint() {
    let state = SinkState {
        config: Some(config()),
        logging: true,
    };
    let bytes = golden(
        "v1.trail-checkpoint.json",
        &encode_checkpoint(&state, Some(&intent())).unwrap(),
    );
    let saved = decode_checkpoint::<SinkState, DeliveryIntent>("trail:x", Some(&bytes)).unwrap();
    assert_eq!(saved.v, 1);
    assert_eq!(saved.state, state);
    assert_eq!(saved.intent, Some(intent()));
    assert_eq!(
        encode_checkpoint(&saved.state, saved.intent.as_ref()).unwrap(),
        bytes
    );
}

#[test]
fn test_v1_dedup_checkpoint() {
    let bytes = golden(
        "v1.dedup-checkpoint.json",
        &encode_checkpoint(&(), None::<&DedupIntent>).unwrap(),
    );
    let saved = decode_checkpoint::<(), DedupIntent>("dedup", Some(&bytes)).unwrap();
    assert!(saved.intent.is_none());
    assert_eq!(encode_checkpoint(&(), None::<&DedupIntent>).unwrap(), bytes);
}

#[test]
fn test_an_unknown_checkpoint_version_is_refused_clearly() {
    let text = std::fs::read_to_string(path("v1.trail-checkpoint.json")).unwrap();
    let newer = text.replacen(r#"{"v":1,"#, r#"{"v":2,"#, 1);
    assert_ne!(newer, text);
    let error = decode_checkpoint::<SinkState, DeliveryIntent>("trail:x", Some(newer.as_bytes()))
        .unwrap_err();
    assert!(matches!(
        error,
        CheckpointError::UnknownVersion { version: 2, .. }
    ));
    let message = error.to_string();
    assert!(
        message.contains("trail:x") && message.contains("version 2"),
        "{message}"
    );
}

#[test]
fn test_the_unversioned_checkpoint_still_reads() {
    // What the sink wrote before checkpoints had a version.
    let legacy = serde_json::json!({
        "config": config(),
        "logging": true,
        "intent": intent(),
    });
    let saved = decode_checkpoint::<SinkState, DeliveryIntent>(
        "trail:x",
        Some(&serde_json::to_vec(&legacy).unwrap()),
    )
    .unwrap();
    assert_eq!(saved.state.config, Some(config()));
    assert!(saved.state.logging);
    assert_eq!(saved.intent, Some(intent()));
}

/// A dedup run (version 1): two hashes of hour 490 000, in order, with the
/// count and the CRC-32C trailer. The golden bytes load as that run.
#[test]
fn test_v1_dedup_run() {
    use cairn_pipeline::dedup::{DedupFiles, RUN_VERSION};
    assert_eq!(RUN_VERSION, 1);
    let dir = tempfile::tempdir().unwrap();
    let files = DedupFiles::open(dir.path()).unwrap();
    let run = files.write_run(490_000, &mut vec![2, 1]).unwrap();
    let name = run.path().file_name().unwrap().to_owned();
    assert_eq!(name, "0000490000-000000000000.run");
    let bytes = golden("v1.dedup-run.bin", &std::fs::read(run.path()).unwrap());
    assert_eq!(std::fs::read(run.path()).unwrap(), bytes);
    drop(run);
    let copy = tempfile::tempdir().unwrap();
    std::fs::write(copy.path().join(&name), &bytes).unwrap();
    let loaded = DedupFiles::open(copy.path())
        .unwrap()
        .load(24, 490_001 * 3_600_000)
        .unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!((loaded[0].hour(), loaded[0].len()), (490_000, 2));
    assert!(loaded[0].contains(1).unwrap() && loaded[0].contains(2).unwrap());
    assert!(!loaded[0].contains(3).unwrap());
}
