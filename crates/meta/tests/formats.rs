//! Golden files of the metastore's trail documents (schema version 1): the
//! configuration and status JSON of a `trails` row. Decoding the golden text
//! and encoding it again must give the same bytes, so a format change shows
//! in review. `CAIRN_BLESS=1 cargo test -p cairn-meta --test formats` rewrites
//! them after a deliberate change (which needs a new schema version).

// Test helpers panic on failure by design: a panic is the test failure.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};

use cairn_meta::{
    Error, Metastore, Tag, TrailConfig, TrailRecord, TrailStatus, decode_trail,
    encode_trail_documents,
};

fn golden(name: &str, encoded: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    if std::env::var_os("CAIRN_BLESS").is_some() {
        std::fs::write(&p, encoded).unwrap();
    }
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn trail() -> TrailRecord {
    TrailRecord {
        config: TrailConfig {
            name: "main".into(),
            arn: "arn:aws:cloudtrail:us-east-1:123456789012:trail/main".into(),
            account_id: "123456789012".into(),
            home_region: "us-east-1".into(),
            s3_bucket_name: "audit-logs".into(),
            s3_key_prefix: None,
            sns_topic_name: Some("topic".into()),
            include_global_service_events: true,
            is_multi_region_trail: false,
            log_file_validation_enabled: false,
            cloud_watch_logs_log_group_arn: None,
            cloud_watch_logs_role_arn: None,
            kms_key_id: None,
            is_organization_trail: false,
            selectors: serde_json::json!({"AdvancedEventSelectors": [{
                "Name": "mgmt",
                "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]
            }]}),
            has_custom_event_selectors: true,
            insight_selectors: Some(serde_json::json!([{"InsightType": "ApiCallRateInsight"}])),
            tags: vec![Tag {
                key: "env".into(),
                value: None,
            }],
            created_at: Utc.with_ymd_and_hms(2024, 5, 1, 9, 0, 0).unwrap(),
        },
        status: TrailStatus {
            is_logging: true,
            start_logging_time: Some(at("2024-05-01T09:00:01.500Z")),
            stop_logging_time: None,
            latest_delivery_time: Some(at("2024-05-01T09:05:00Z")),
            latest_delivery_attempt_time: Some(at("2024-05-01T09:05:00Z")),
            latest_delivery_attempt_succeeded: Some(at("2024-05-01T09:05:00Z")),
            latest_delivery_error: None,
            latest_digest_delivery_time: None,
            latest_digest_delivery_error: Some("NoSuchBucket".into()),
            latest_cloud_watch_logs_delivery_time: None,
            latest_cloud_watch_logs_delivery_error: None,
            latest_notification_time: None,
            latest_notification_attempt_time: None,
            latest_notification_attempt_succeeded: None,
            latest_notification_error: None,
        },
    }
}

#[test]
fn test_v1_trail_documents() {
    let (config, status) = encode_trail_documents(&trail()).unwrap();
    let config = golden("v1.trail-config.json", &config);
    let status = golden("v1.trail-status.json", &status);
    let decoded = decode_trail(&trail().config.arn, &config, &status).unwrap();
    assert_eq!(decoded, trail());
    assert_eq!(encode_trail_documents(&decoded).unwrap(), (config, status));
}

#[test]
fn test_a_newer_schema_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.sqlite");
    drop(Metastore::open(&path).unwrap());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE schema_version SET version = 2", [])
            .unwrap();
    }
    let error = Metastore::open(&path).unwrap_err();
    assert!(matches!(
        error,
        Error::UnknownSchemaVersion {
            found: 2,
            supported: 1,
            ..
        }
    ));
    assert!(error.to_string().contains("schema version 2"), "{error}");
}

fn cloudtrail_table() -> cairn_catalog::TableDefinition {
    use cairn_catalog::{Column, PartitionDefinition, TableDefinition};
    let column = |name: &str, type_name: &str| Column {
        name: name.into(),
        type_name: type_name.into(),
        comment: None,
    };
    TableDefinition {
        database: "default".into(),
        name: "cloudtrail_logs".into(),
        columns: vec![
            column("eventversion", "string"),
            column("useridentity", "struct<type:string,arn:string>"),
            column(
                "resources",
                "array<struct<arn:string,accountid:string,type:string>>",
            ),
        ],
        partition_keys: vec![column("region", "string"), column("year", "string")],
        location: "s3://audit-logs/AWSLogs/123456789012/CloudTrail/".into(),
        serde: Some("org.apache.hive.hcatalog.data.JsonSerDe".into()),
        serde_parameters: Default::default(),
        input_format: None,
        output_format: None,
        parameters: [("EXTERNAL".to_owned(), "TRUE".to_owned())].into(),
        comment: None,
        partitions: vec![PartitionDefinition {
            values: vec!["us-east-1".into(), "2024".into()],
            location: Some(
                "s3://audit-logs/AWSLogs/123456789012/CloudTrail/us-east-1/2024/".into(),
            ),
        }],
        create_time: 1_714_554_000,
    }
}

#[test]
fn catalog_table_document_matches_its_golden_file() {
    let encoded = cairn_meta::encode_table_document(&cloudtrail_table()).unwrap();
    let saved = golden("v1.catalog-table.json", &encoded);
    assert_eq!(encoded, saved);
    let decoded = cairn_meta::decode_table_document("golden", &saved).unwrap();
    assert_eq!(decoded, cloudtrail_table());
}

#[test]
fn catalog_table_document_of_an_unknown_version_is_refused_as_damage() {
    let text = cairn_meta::encode_table_document(&cloudtrail_table())
        .unwrap()
        .replace("\"version\":1", "\"version\":9");
    let error =
        cairn_meta::decode_table_document("catalog_tables row default.t", &text).unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("version 9"), "{error}");
}

#[test]
fn catalog_keeps_databases_and_tables() {
    use cairn_catalog::{Catalog, CatalogError, DatabaseDefinition};
    let meta = Metastore::in_memory().unwrap();
    let names = |dbs: Vec<DatabaseDefinition>| dbs.into_iter().map(|d| d.name).collect::<Vec<_>>();
    assert_eq!(names(meta.databases().unwrap()), ["default"]);
    let table = cloudtrail_table();
    meta.create_table(&table).unwrap();
    assert!(matches!(
        meta.create_table(&table),
        Err(CatalogError::AlreadyExists(_))
    ));
    assert_eq!(
        meta.table("default", "cloudtrail_logs").unwrap(),
        Some(table.clone())
    );
    let mut other = table.clone();
    other.database = "forensics".into();
    assert!(matches!(
        meta.create_table(&other),
        Err(CatalogError::NotFound(_))
    ));
    meta.create_database(&DatabaseDefinition {
        name: "forensics".into(),
        description: None,
        create_time: 1,
    })
    .unwrap();
    meta.create_table(&other).unwrap();
    assert_eq!(names(meta.databases().unwrap()), ["default", "forensics"]);
    let mut changed = table.clone();
    changed.partitions.clear();
    meta.replace_table(&changed).unwrap();
    assert_eq!(meta.tables("default").unwrap(), vec![changed]);
    meta.drop_table("default", "cloudtrail_logs").unwrap();
    assert!(matches!(
        meta.drop_table("default", "cloudtrail_logs"),
        Err(CatalogError::NotFound(_))
    ));
    meta.drop_database("forensics").unwrap();
    assert!(
        meta.table("forensics", "cloudtrail_logs")
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        meta.tables("forensics"),
        Err(CatalogError::NotFound(_))
    ));
}

fn event_data_store() -> cairn_meta::EventDataStoreRecord {
    cairn_meta::EventDataStoreRecord {
        arn: "arn:aws:cloudtrail:us-east-1:123456789012:eventdatastore/0b9f0a5e-41d4-4d7c-9a52-2f1d0f3e6a11".into(),
        id: "0b9f0a5e-41d4-4d7c-9a52-2f1d0f3e6a11".into(),
        name: "org-audit-event-store".into(),
        account_id: "123456789012".into(),
        home_region: "us-east-1".into(),
        status: cairn_meta::EventDataStoreStatus::Enabled,
        advanced_event_selectors: serde_json::json!([{"Name": "AllManagementEvents",
            "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}]),
        multi_region_enabled: true,
        organization_enabled: true,
        retention_period: 2555,
        termination_protection_enabled: true,
        kms_key_id: None,
        billing_mode: "EXTENDABLE_RETENTION_PRICING".into(),
        tags: vec![("team".into(), Some("security".into()))],
        created_ms: 1_714_554_000_000,
        updated_ms: 1_714_554_000_000,
        deletion_requested_ms: None,
    }
}

#[test]
fn event_data_store_document_matches_its_golden_file() {
    let encoded = cairn_meta::encode_event_data_store(&event_data_store()).unwrap();
    let saved = golden("v1.event-data-store.json", &encoded);
    assert_eq!(encoded, saved);
    assert_eq!(
        cairn_meta::decode_event_data_store("golden", &saved).unwrap(),
        event_data_store()
    );
    let newer = saved.replace("\"version\":1", "\"version\":2");
    assert!(matches!(
        cairn_meta::decode_event_data_store("row", &newer),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn event_data_stores_are_kept() {
    let meta = Metastore::in_memory().unwrap();
    let mut store = event_data_store();
    meta.create_event_data_store(&store).unwrap();
    assert!(matches!(
        meta.create_event_data_store(&store),
        Err(Error::AlreadyExists(_))
    ));
    store.status = cairn_meta::EventDataStoreStatus::StoppedIngestion;
    meta.replace_event_data_store(&store).unwrap();
    assert_eq!(meta.event_data_stores().unwrap(), vec![store.clone()]);
    meta.remove_event_data_store(&store.arn).unwrap();
    assert!(meta.event_data_store(&store.arn).unwrap().is_none());
}
