//! CloudTrail Lake's event data stores, kept in the metastore as versioned
//! JSON documents (`{"version":1,"store":{...}}`, golden file in
//! `tests/data/`). A document of another version is refused as damage.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::{Error, Metastore, Result};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS event_data_stores (
    arn TEXT PRIMARY KEY,
    document TEXT NOT NULL
);
";

/// The version of event data store documents this build writes and reads.
pub const EVENT_DATA_STORE_DOCUMENT_VERSION: u32 = 1;

/// An event data store's status, in CloudTrail's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventDataStoreStatus {
    /// Ingesting and queryable.
    Enabled,
    /// Queryable, not ingesting (`StopEventDataStoreIngestion`).
    StoppedIngestion,
    /// Deleted, restorable until the pending-deletion window ends.
    PendingDeletion,
}

impl EventDataStoreStatus {
    /// CloudTrail's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            EventDataStoreStatus::Enabled => "ENABLED",
            EventDataStoreStatus::StoppedIngestion => "STOPPED_INGESTION",
            EventDataStoreStatus::PendingDeletion => "PENDING_DELETION",
        }
    }
}

/// An event data store, as CreateEventDataStore and UpdateEventDataStore
/// leave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDataStoreRecord {
    /// `arn:aws:cloudtrail:<region>:<account>:eventdatastore/<id>`.
    pub arn: String,
    /// The ID queries name it by (the ARN's last part).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The owning account.
    pub account_id: String,
    /// The region it was created in.
    pub home_region: String,
    /// Its status.
    pub status: EventDataStoreStatus,
    /// The advanced event selectors, as CloudTrail returns them.
    pub advanced_event_selectors: serde_json::Value,
    /// Whether it collects every region's events.
    pub multi_region_enabled: bool,
    /// Whether it collects the organization's events.
    pub organization_enabled: bool,
    /// Days events are kept.
    pub retention_period: i64,
    /// Whether DeleteEventDataStore is refused.
    pub termination_protection_enabled: bool,
    /// The KMS key named (stored; events are not encrypted with it yet).
    pub kms_key_id: Option<String>,
    /// `EXTENDABLE_RETENTION_PRICING` or `FIXED_RETENTION_PRICING`.
    pub billing_mode: String,
    /// Tags.
    pub tags: Vec<(String, Option<String>)>,
    /// Created, in milliseconds since the epoch.
    pub created_ms: i64,
    /// Last changed, in milliseconds since the epoch.
    pub updated_ms: i64,
    /// When DeleteEventDataStore was called, while pending deletion.
    pub deletion_requested_ms: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Document {
    version: u32,
    store: EventDataStoreRecord,
}

/// The metastore document of an event data store.
pub fn encode_event_data_store(store: &EventDataStoreRecord) -> Result<String> {
    serde_json::to_string(&Document {
        version: EVENT_DATA_STORE_DOCUMENT_VERSION,
        store: store.clone(),
    })
    .map_err(Error::Encode)
}

/// An event data store from its document; `key` names the row in errors.
pub fn decode_event_data_store(key: &str, text: &str) -> Result<EventDataStoreRecord> {
    let document: Document = serde_json::from_str(text).map_err(|source| Error::Corrupt {
        key: key.to_owned(),
        source,
    })?;
    if document.version != EVENT_DATA_STORE_DOCUMENT_VERSION {
        return Err(Error::Corrupt {
            key: key.to_owned(),
            source: <serde_json::Error as serde::de::Error>::custom(format!(
                "document version {}; this build reads version {EVENT_DATA_STORE_DOCUMENT_VERSION}",
                document.version
            )),
        });
    }
    Ok(document.store)
}

impl Metastore {
    /// Creates an event data store ([`Error::AlreadyExists`] if its ARN is taken).
    pub fn create_event_data_store(&self, store: &EventDataStoreRecord) -> Result<()> {
        let document = encode_event_data_store(store)?;
        let inserted = self.conn().execute(
            "INSERT OR IGNORE INTO event_data_stores (arn, document) VALUES (?1, ?2)",
            params![store.arn, document],
        )?;
        if inserted == 0 {
            return Err(Error::AlreadyExists(store.arn.clone()));
        }
        Ok(())
    }

    /// One event data store by ARN.
    pub fn event_data_store(&self, arn: &str) -> Result<Option<EventDataStoreRecord>> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT document FROM event_data_stores WHERE arn = ?1",
                [arn],
                |row| row.get(0),
            )
            .optional()?;
        text.map(|t| decode_event_data_store(&format!("event_data_stores row {arn}"), &t))
            .transpose()
    }

    /// Every event data store, by ARN.
    pub fn event_data_stores(&self) -> Result<Vec<EventDataStoreRecord>> {
        let conn = self.conn();
        let mut statement =
            conn.prepare("SELECT arn, document FROM event_data_stores ORDER BY arn")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        rows.map(|row| {
            let (arn, text) = row?;
            decode_event_data_store(&format!("event_data_stores row {arn}"), &text)
        })
        .collect()
    }

    /// Replaces an event data store's document ([`Error::NotFound`] if none).
    pub fn replace_event_data_store(&self, store: &EventDataStoreRecord) -> Result<()> {
        let document = encode_event_data_store(store)?;
        let updated = self.conn().execute(
            "UPDATE event_data_stores SET document = ?2 WHERE arn = ?1",
            params![store.arn, document],
        )?;
        if updated == 0 {
            return Err(Error::NotFound(store.arn.clone()));
        }
        Ok(())
    }

    /// Removes an event data store for good ([`Error::NotFound`] if none).
    pub fn remove_event_data_store(&self, arn: &str) -> Result<()> {
        let deleted = self
            .conn()
            .execute("DELETE FROM event_data_stores WHERE arn = ?1", [arn])?;
        if deleted == 0 {
            return Err(Error::NotFound(arn.to_owned()));
        }
        Ok(())
    }
}
