//! Cairn's monitoring state: CloudWatch Logs log groups, log streams, log
//! events and metric filters, and the metric samples metric filters produce.
//!
//! Everything lives in one SQLite database (`monitor.sqlite` in the data
//! dir, `synchronous=FULL`: a call that returns has made its change
//! durable), apart from the trail metastore so the steady stream of log
//! events never waits behind trail changes and the other way round.
//!
//! CloudWatch alarms (definitions, states, history) and SNS topics,
//! subscriptions and the outbox of notifications live here too, so a state
//! change, its history and the notifications its actions publish are one
//! transaction: after a crash either all are there or none.
//!
//! Log events and the metric samples their metric filters produce are
//! written in one transaction, so a sample exists exactly when its event
//! does: a replay of the same events after a crash (the log-group sink feeds
//! a WAL range again) is recognised by the highest WAL position the feeding
//! trail (its *origin*) stored in the group, and produces nothing twice.
//!
//! Names follow CloudWatch Logs: a log group is named within an account and
//! a region; its streams within it. Validation of names and parameters with
//! AWS's messages is the service's (`server::services::logs`); this crate
//! answers typed errors.

mod alarms;
mod logs;
mod metrics;
mod topics;
mod verify;

pub use alarms::StoredAlarm;
pub use topics::{OutboxEntry, PendingDelivery, Subscription, Topic};

pub use logs::{
    AppendOutcome, EventPage, GroupKey, LogEventRecord, LogGroup, LogStream, MetricFilter,
    MetricTransformation, NewLogEvent, StreamOrder, TRAIL_STREAM_SUFFIX, check_metric_filter,
};
pub use metrics::{MetricKey, MetricSample};

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// An error of the monitoring store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite failed.
    #[error("monitoring store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The thing to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A quota would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// A request the store cannot carry out as asked.
    #[error("{0}")]
    Invalid(String),
    /// A stored document does not parse (damage, or a newer version).
    #[error("the monitoring store is damaged: {what} does not parse ({reason})")]
    Corrupt {
        /// Which table and row.
        what: String,
        /// Why.
        reason: String,
    },
    /// The database was written by a newer Cairn.
    #[error(
        "the monitoring store {path} has schema version {found}; this build reads version {supported}. Run the Cairn version that wrote it"
    )]
    UnknownSchemaVersion {
        /// The database file.
        path: String,
        /// Its version.
        found: i64,
        /// The version this build writes.
        supported: i64,
    },
}

impl Error {
    /// Whether this is damage on disk (a document that does not parse, or
    /// SQLite finding its file malformed) rather than a passing failure.
    pub fn is_damage(&self) -> bool {
        match self {
            Error::Corrupt { .. } => true,
            Error::Sqlite(e) => cairn_sqlite::is_damage(e),
            _ => false,
        }
    }

    /// Whether retrying later may succeed (the database busy, an I/O error,
    /// a full disk); a missing group stays missing however often it is asked.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Sqlite(e) => cairn_sqlite::is_retriable(e),
            _ => false,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log_groups (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    retention_days INTEGER,
    kms_key_id TEXT,
    log_group_class TEXT NOT NULL,
    tags TEXT NOT NULL,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account, region, name)
);
CREATE TABLE IF NOT EXISTS log_streams (
    id INTEGER PRIMARY KEY,
    group_id INTEGER NOT NULL REFERENCES log_groups(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    first_event_ms INTEGER,
    last_event_ms INTEGER,
    last_ingestion_ms INTEGER,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    UNIQUE (group_id, name)
);
CREATE TABLE IF NOT EXISTS log_events (
    id INTEGER PRIMARY KEY,
    group_id INTEGER NOT NULL,
    stream_id INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    ingestion_ms INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_events_by_stream ON log_events (stream_id, timestamp, id);
CREATE INDEX IF NOT EXISTS log_events_by_group ON log_events (group_id, timestamp, id);
-- The highest position a feed (a trail's WAL consumer) stored in a group:
-- a replayed range at or below it is skipped.
CREATE TABLE IF NOT EXISTS feed_marks (
    origin INTEGER NOT NULL,
    group_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (origin, group_id)
);
CREATE TABLE IF NOT EXISTS metric_filters (
    group_id INTEGER NOT NULL REFERENCES log_groups(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    pattern TEXT NOT NULL,
    transformations TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, name)
);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    dimensions TEXT NOT NULL,
    UNIQUE (account, region, namespace, name, dimensions)
);
CREATE TABLE IF NOT EXISTS metric_samples (
    metric_id INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    value REAL NOT NULL,
    count REAL NOT NULL,
    unit TEXT,
    -- A PutMetricData datum's samples (a serialised aggregate: statistic
    -- sets, value/count lists); NULL for a single sample (value, count).
    aggregate TEXT
);
CREATE INDEX IF NOT EXISTS metric_samples_by_metric ON metric_samples (metric_id, timestamp);
CREATE TABLE IF NOT EXISTS alarms (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    namespace TEXT NOT NULL,
    metric_name TEXT NOT NULL,
    definition TEXT NOT NULL,
    state TEXT NOT NULL,
    config_updated_ms INTEGER NOT NULL,
    PRIMARY KEY (account, region, name)
);
CREATE INDEX IF NOT EXISTS alarms_by_metric ON alarms (account, region, namespace, metric_name);
CREATE TABLE IF NOT EXISTS alarm_history (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    alarm_name TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    item_type TEXT NOT NULL,
    item TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alarm_history_by_alarm ON alarm_history (account, region, alarm_name, timestamp_ms);
CREATE TABLE IF NOT EXISTS topics (
    arn TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    attributes TEXT NOT NULL,
    tags TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subscriptions (
    arn TEXT PRIMARY KEY,
    topic_arn TEXT NOT NULL,
    account TEXT NOT NULL,
    protocol TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    attributes TEXT NOT NULL,
    confirmed INTEGER NOT NULL,
    authenticated INTEGER NOT NULL,
    token TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptions_by_topic ON subscriptions (topic_arn);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    subscription_arn TEXT NOT NULL,
    protocol TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    body TEXT NOT NULL,
    headers TEXT NOT NULL,
    message_id TEXT NOT NULL,
    due_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_due ON outbox (due_ms);
";

/// The schema version this code writes.
const SCHEMA_VERSION: i64 = 1;

/// The monitoring store. Cheap to share behind an `Arc`; calls are
/// serialised on one connection and are blocking (SQLite, fsync): call
/// them from a blocking thread.
#[derive(Debug)]
pub struct Monitor {
    conn: Mutex<Connection>,
    /// Compiled metric filters per log group id, built on first use and
    /// dropped when the group's filters change, so events are matched
    /// without parsing a pattern again.
    filters: Mutex<HashMap<i64, Arc<logs::GroupFilters>>>,
}

impl Monitor {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        Self::init(conn, &path.display().to_string())
    }

    /// An in-memory store, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?, ":memory:")
    }

    fn init(conn: Connection, path: &str) -> Result<Self> {
        // FULL sync: an acknowledged PutLogEvents is durable.
        cairn_sqlite::prepare(
            &conn,
            &cairn_sqlite::Setup {
                schema: &[SCHEMA],
                version: SCHEMA_VERSION,
                accepts_older: false,
                cache_kib: None,
            },
        )
        .map_err(|e| match e {
            cairn_sqlite::OpenError::Sqlite(e) => Error::Sqlite(e),
            cairn_sqlite::OpenError::UnknownSchemaVersion { found, supported } => {
                Error::UnknownSchemaVersion {
                    path: path.to_owned(),
                    found,
                    supported,
                }
            }
        })?;
        Ok(Self {
            conn: Mutex::new(conn),
            filters: Mutex::new(HashMap::new()),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (it is transactional).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests;
