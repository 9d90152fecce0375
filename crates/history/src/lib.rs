//! CloudTrail's event history: the management events of the last 90 days,
//! indexed by every attribute LookupEvents looks up by (EventId, EventName,
//! ReadOnly, Username, ResourceType, ResourceName, EventSource,
//! AccessKeyId) and by time, so a lookup reads an index range, never the
//! whole history.
//!
//! One SQLite database (`history.sqlite` in the data dir, FULL sync). Events
//! are keyed by eventID: storing one again (a replay after a crash) changes
//! nothing.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, params};

/// How long events stay (CloudTrail's event history: 90 days).
pub const RETENTION_MS: i64 = 90 * 86_400_000;

/// An error of the history store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite failed.
    #[error("event history: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by another Cairn version.
    #[error(
        "the event history {path} has schema version {found}; this build reads version {supported}"
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
    /// Whether retrying later may succeed (busy, I/O, a full disk).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Error::Sqlite(rusqlite::Error::SqliteFailure(e, _)) if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::CannotOpen
            )
        )
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One event as LookupEvents reports it (the `Event` shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEvent {
    /// `EventId`.
    pub event_id: String,
    /// The account it was recorded for.
    pub account: String,
    /// Its region.
    pub region: String,
    /// `EventTime`, ms since the epoch.
    pub event_time_ms: i64,
    /// `EventName`.
    pub event_name: Option<String>,
    /// `ReadOnly` (`"true"`/`"false"`).
    pub read_only: Option<String>,
    /// `Username`.
    pub username: Option<String>,
    /// `EventSource`.
    pub event_source: Option<String>,
    /// `AccessKeyId`.
    pub access_key_id: Option<String>,
    /// `Resources`: (type, name).
    pub resources: Vec<(String, String)>,
    /// `CloudTrailEvent`: the record's exact text.
    pub record: String,
}

/// A place in the history, newest first: (event time in ms, row).
pub type Position = (i64, i64);

/// What LookupEvents looks up by (one attribute, as CloudTrail allows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupAttribute {
    /// `EventId`.
    EventId(String),
    /// `EventName`.
    EventName(String),
    /// `ReadOnly` (`true`/`false`).
    ReadOnly(String),
    /// `Username`.
    Username(String),
    /// `ResourceType`.
    ResourceType(String),
    /// `ResourceName`.
    ResourceName(String),
    /// `EventSource`.
    EventSource(String),
    /// `AccessKeyId`.
    AccessKeyId(String),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    event_time_ms INTEGER NOT NULL,
    event_name TEXT,
    read_only TEXT,
    username TEXT,
    event_source TEXT,
    access_key_id TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (account, region, event_time_ms, id);
CREATE INDEX IF NOT EXISTS events_by_name ON events (account, region, event_name, event_time_ms, id);
CREATE INDEX IF NOT EXISTS events_by_user ON events (account, region, username, event_time_ms, id);
CREATE INDEX IF NOT EXISTS events_by_source ON events (account, region, event_source, event_time_ms, id);
CREATE INDEX IF NOT EXISTS events_by_key ON events (account, region, access_key_id, event_time_ms, id);
CREATE INDEX IF NOT EXISTS events_by_read_only ON events (account, region, read_only, event_time_ms, id);
CREATE TABLE IF NOT EXISTS resources (
    event INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    resource_type TEXT NOT NULL,
    resource_name TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS resources_by_event ON resources (event);
CREATE INDEX IF NOT EXISTS resources_by_type ON resources (resource_type, event);
CREATE INDEX IF NOT EXISTS resources_by_name ON resources (resource_name, event);
";

const SCHEMA_VERSION: i64 = 1;

/// The event history. Calls are blocking (SQLite, fsync).
#[derive(Debug)]
pub struct History {
    conn: Mutex<Connection>,
}

const COLUMNS: &str = "e.id, e.event_id, e.account, e.region, e.event_time_ms, e.event_name, e.read_only, \
     e.username, e.event_source, e.access_key_id, e.record";

type Row = (i64, HistoryEvent);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        HistoryEvent {
            event_id: r.get(1)?,
            account: r.get(2)?,
            region: r.get(3)?,
            event_time_ms: r.get(4)?,
            event_name: r.get(5)?,
            read_only: r.get(6)?,
            username: r.get(7)?,
            event_source: r.get(8)?,
            access_key_id: r.get(9)?,
            resources: Vec::new(),
            record: r.get(10)?,
        },
    ))
}

impl History {
    /// Opens (creating if needed) the history at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Self::init(Connection::open(path)?, &path.display().to_string())
    }

    /// An in-memory history, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?, ":memory:")
    }

    fn init(conn: Connection, path: &str) -> Result<Self> {
        // A delivery writes thousands of rows into the table and its indexes:
        // with SQLite's default 2 MB page cache they spill and are read back
        // mid-transaction, which cost more than the inserts themselves.
        cairn_sqlite::prepare(
            &conn,
            &cairn_sqlite::Setup {
                schema: &[SCHEMA],
                version: SCHEMA_VERSION,
                accepts_older: false,
                cache_kib: Some(16384),
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
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores events in one transaction; an eventID stored already is kept
    /// as it is. Returns how many were new.
    pub fn record(&self, events: &[HistoryEvent]) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut added = 0;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO events (event_id, account, region, event_time_ms, event_name, read_only, \
                 username, event_source, access_key_id, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            let mut resource = tx.prepare_cached(
                "INSERT INTO resources (event, resource_type, resource_name) VALUES (?1, ?2, ?3)",
            )?;
            for e in events {
                let changed = insert.execute(params![
                    e.event_id,
                    e.account,
                    e.region,
                    e.event_time_ms,
                    e.event_name,
                    e.read_only,
                    e.username,
                    e.event_source,
                    e.access_key_id,
                    e.record
                ])?;
                if changed == 0 {
                    continue;
                }
                added += 1;
                let id = tx.last_insert_rowid();
                for (kind, name) in &e.resources {
                    resource.execute(params![id, kind, name])?;
                }
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Events of an account in a region with `start <= EventTime <= end`,
    /// newest first, matching `attribute`, after the position `after` (a
    /// previous page's last: time and row), at most `limit`; with the
    /// position to go on from when more remain.
    #[allow(clippy::too_many_arguments)]
    pub fn lookup(
        &self,
        account: &str,
        region: &str,
        attribute: Option<&LookupAttribute>,
        start_ms: i64,
        end_ms: i64,
        after: Option<Position>,
        limit: usize,
    ) -> Result<(Vec<HistoryEvent>, Option<Position>)> {
        let (column, value, join) = match attribute {
            None => (None, None, ""),
            Some(LookupAttribute::EventId(v)) => (Some("e.event_id"), Some(v), ""),
            Some(LookupAttribute::EventName(v)) => (Some("e.event_name"), Some(v), ""),
            Some(LookupAttribute::ReadOnly(v)) => (Some("e.read_only"), Some(v), ""),
            Some(LookupAttribute::Username(v)) => (Some("e.username"), Some(v), ""),
            Some(LookupAttribute::EventSource(v)) => (Some("e.event_source"), Some(v), ""),
            Some(LookupAttribute::AccessKeyId(v)) => (Some("e.access_key_id"), Some(v), ""),
            Some(LookupAttribute::ResourceType(v)) => (
                Some("r.resource_type"),
                Some(v),
                " JOIN resources r ON r.event = e.id",
            ),
            Some(LookupAttribute::ResourceName(v)) => (
                Some("r.resource_name"),
                Some(v),
                " JOIN resources r ON r.event = e.id",
            ),
        };
        let (before_time, before_id) = after.unwrap_or((i64::MAX, i64::MAX));
        let condition = column.map_or(String::new(), |c| format!(" AND {c} = ?8"));
        let sql = format!(
            "SELECT DISTINCT {COLUMNS} FROM events e{join} \
             WHERE e.account = ?1 AND e.region = ?2 AND e.event_time_ms >= ?3 AND e.event_time_ms <= ?4 \
             AND (e.event_time_ms, e.id) < (?5, ?6){condition} \
             ORDER BY e.event_time_ms DESC, e.id DESC LIMIT ?7"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let limit_plus = limit as i64 + 1;
        // ?8, the attribute's value, is bound only when the condition names it.
        let mut bound: Vec<&dyn rusqlite::ToSql> = vec![
            &account,
            &region,
            &start_ms,
            &end_ms,
            &before_time,
            &before_id,
            &limit_plus,
        ];
        if let Some(v) = value {
            bound.push(v);
        }
        let rows: Vec<Row> = stmt
            .query_map(bound.as_slice(), read_row)?
            .collect::<Result<_, _>>()?;
        let more = rows.len() > limit;
        let mut out = Vec::new();
        let mut last = None;
        let mut resources = conn.prepare_cached(
            "SELECT resource_type, resource_name FROM resources WHERE event = ?1 ORDER BY rowid",
        )?;
        for (id, mut event) in rows.into_iter().take(limit) {
            event.resources = resources
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            last = Some((event.event_time_ms, id));
            out.push(event);
        }
        Ok((out, if more { last } else { None }))
    }

    /// Removes events older than `before_ms`; returns how many.
    pub fn expire(&self, before_ms: i64) -> Result<usize> {
        Ok(self
            .conn()
            .execute("DELETE FROM events WHERE event_time_ms < ?1", [before_ms])?)
    }
}

#[cfg(test)]
mod tests;
