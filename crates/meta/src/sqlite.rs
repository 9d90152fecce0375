//! The SQLite metastore.

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

pub use cairn_model::{Tag, TrailConfig};

/// An error from the metastore.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite failed.
    #[error("metastore: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored document does not parse (written by a newer or broken
    /// version, or damaged on disk). The message names the table, the row and
    /// the column, and says what to do.
    #[error(
        "the metastore is damaged: {key} does not parse ({source}); `cairn doctor` lists every damaged row"
    )]
    Corrupt {
        /// Which table, row and column.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A document could not be encoded.
    #[error("metastore: cannot encode: {0}")]
    Encode(#[source] serde_json::Error),
    /// The row to create exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The row to change does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The database was written by a newer Cairn.
    #[error(
        "the metastore {path} has schema version {found}; this build reads version {supported}. Run the Cairn version that wrote it"
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
    /// SQLite finding its file malformed), which `cairn doctor` reports,
    /// rather than a passing failure.
    pub fn is_damage(&self) -> bool {
        match self {
            Error::Corrupt { .. } => true,
            Error::Sqlite(e) => cairn_sqlite::is_damage(e),
            _ => false,
        }
    }

    /// Whether retrying later may succeed: the database busy or locked, an I/O
    /// error or a full disk. A corrupt document, a missing or duplicate row or
    /// a constraint failure stays what it is however often it is retried.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Sqlite(e) => cairn_sqlite::is_retriable(e),
            Error::Corrupt { .. }
            | Error::Encode(_)
            | Error::AlreadyExists(_)
            | Error::NotFound(_)
            | Error::UnknownSchemaVersion { .. } => false,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Its name.
    pub name: String,
    /// The region it was created in (`GetBucketLocation`).
    pub region: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What GetTrailStatus reports, kept truthfully by the delivery sink and the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrailStatus {
    /// Whether the trail is logging.
    pub is_logging: bool,
    /// Last StartLogging.
    pub start_logging_time: Option<DateTime<Utc>>,
    /// Last StopLogging.
    pub stop_logging_time: Option<DateTime<Utc>>,
    /// Last successful log-file delivery.
    pub latest_delivery_time: Option<DateTime<Utc>>,
    /// Last delivery attempt.
    pub latest_delivery_attempt_time: Option<DateTime<Utc>>,
    /// Last delivery attempt that succeeded.
    pub latest_delivery_attempt_succeeded: Option<DateTime<Utc>>,
    /// The error of the last failed delivery, cleared on success.
    pub latest_delivery_error: Option<String>,
    /// Last successful digest delivery.
    pub latest_digest_delivery_time: Option<DateTime<Utc>>,
    /// The error of the last failed digest delivery.
    pub latest_digest_delivery_error: Option<String>,
    /// Last successful delivery to the trail's CloudWatch Logs log group.
    /// (Added within version 1 of the document: absent means none.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_cloud_watch_logs_delivery_time: Option<DateTime<Utc>>,
    /// The error of the last failed delivery to the log group, cleared on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_cloud_watch_logs_delivery_error: Option<String>,
    /// Last SNS notification of a delivered log file that was published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_notification_time: Option<DateTime<Utc>>,
    /// Last attempt to publish such a notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_notification_attempt_time: Option<DateTime<Utc>>,
    /// Last attempt that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_notification_attempt_succeeded: Option<DateTime<Utc>>,
    /// The error of the last failed attempt, cleared on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_notification_error: Option<String>,
}

/// A trail with its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrailRecord {
    /// Configuration.
    pub config: TrailConfig,
    /// Status.
    pub status: TrailStatus,
}

/// The metastore. Cheap to share behind an `Arc`; calls are short and
/// serialised on one connection.
#[derive(Debug)]
pub struct Metastore {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trails (
    arn TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trails_by_name ON trails(name);
";

/// The schema version this code writes.
const SCHEMA_VERSION: i64 = 1;

impl Metastore {
    /// Opens (creating if needed) the metastore at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        Self::init(conn, &path.display().to_string())
    }

    /// An in-memory metastore, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?, ":memory:")
    }

    fn init(conn: Connection, path: &str) -> Result<Self> {
        cairn_sqlite::prepare(
            &conn,
            &cairn_sqlite::Setup {
                schema: &[
                    SCHEMA,
                    crate::digests::SCHEMA,
                    crate::catalog::SCHEMA,
                    crate::lake::SCHEMA,
                ],
                version: SCHEMA_VERSION,
                accepts_older: true,
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
        })
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (it is transactional).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a bucket; [`Error::AlreadyExists`] if the name is taken.
    pub fn create_bucket(&self, bucket: &Bucket) -> Result<()> {
        let changed = self.conn().execute(
            "INSERT OR IGNORE INTO buckets (name, region, created_at) VALUES (?1, ?2, ?3)",
            params![bucket.name, bucket.region, bucket.created_at.to_rfc3339()],
        )?;
        if changed == 0 {
            return Err(Error::AlreadyExists(bucket.name.clone()));
        }
        Ok(())
    }

    /// A bucket by name.
    pub fn bucket(&self, name: &str) -> Result<Option<Bucket>> {
        let conn = self.conn();
        // Every S3 request looks its bucket up: keep the statement compiled.
        let row = conn
            .prepare_cached("SELECT name, region, created_at FROM buckets WHERE name = ?1")?
            .query_row([name], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .optional()?;
        Ok(row.map(|(name, region, created)| Bucket {
            name,
            region,
            created_at: parse_time(&created),
        }))
    }

    /// Every bucket, by name.
    pub fn buckets(&self) -> Result<Vec<Bucket>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT name, region, created_at FROM buckets ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok(Bucket {
                name: r.get(0)?,
                region: r.get(1)?,
                created_at: parse_time(&r.get::<_, String>(2)?),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Deletes a bucket's registration.
    pub fn delete_bucket(&self, name: &str) -> Result<()> {
        let changed = self
            .conn()
            .execute("DELETE FROM buckets WHERE name = ?1", [name])?;
        if changed == 0 {
            return Err(Error::NotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Creates a trail; [`Error::AlreadyExists`] if the ARN is taken.
    pub fn create_trail(&self, trail: &TrailRecord) -> Result<()> {
        let (config, status) = encode_trail_documents(trail)?;
        let changed = self.conn().execute(
            "INSERT OR IGNORE INTO trails (arn, name, config, status) VALUES (?1, ?2, ?3, ?4)",
            params![trail.config.arn, trail.config.name, config, status],
        )?;
        if changed == 0 {
            return Err(Error::AlreadyExists(trail.config.arn.clone()));
        }
        Ok(())
    }

    /// A trail by ARN.
    pub fn trail(&self, arn: &str) -> Result<Option<TrailRecord>> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT config, status FROM trails WHERE arn = ?1",
                [arn],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?;
        row.map(|(c, s)| decode_trail(arn, &c, &s)).transpose()
    }

    /// Every trail, ordered by ARN.
    pub fn trails(&self) -> Result<Vec<TrailRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT arn, config, status FROM trails ORDER BY arn")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (arn, c, s) = row?;
            out.push(decode_trail(&arn, &c, &s)?);
        }
        Ok(out)
    }

    /// Checks the whole metastore without trusting it: SQLite's own
    /// structural check, then every stored document of every trail and
    /// digest chain. Returns one line per damaged page or row (empty when
    /// nothing is damaged), naming the table and the row.
    pub fn verify(&self) -> Result<Vec<String>> {
        let mut problems = self.structural_damage()?;
        problems.extend(self.damaged_trails()?.into_iter().map(|(_, line)| line));
        problems.extend(self.damaged_digest_chains()?);
        Ok(problems)
    }

    /// What [`Metastore::verify`] finds outside the trail rows (SQLite's own
    /// pages, digest chains): damage `cairn doctor` cannot rebuild.
    pub fn damage_beyond_trails(&self) -> Result<Vec<String>> {
        let mut problems = self.structural_damage()?;
        problems.extend(self.damaged_digest_chains()?);
        Ok(problems)
    }

    /// SQLite's `quick_check`, one line per finding (none when it says ok).
    fn structural_damage(&self) -> Result<Vec<String>> {
        let checks = self
            .conn()
            .prepare("PRAGMA quick_check")?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if checks == ["ok"] {
            return Ok(Vec::new());
        }
        Ok(checks
            .into_iter()
            .map(|c| format!("SQLite quick_check: {c}"))
            .collect())
    }

    /// One line per digest chain whose stored documents do not decode.
    fn damaged_digest_chains(&self) -> Result<Vec<String>> {
        let chains = self
            .conn()
            .prepare("SELECT DISTINCT trail_arn FROM digest_chains ORDER BY trail_arn")?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(chains
            .iter()
            .filter_map(|arn| self.digest_chains(arn).err().map(|e| damage_line(&e)))
            .collect())
    }

    /// The trails whose stored documents do not decode: (ARN, what is wrong),
    /// as [`Metastore::verify`] words it.
    pub fn damaged_trails(&self) -> Result<Vec<(String, String)>> {
        let rows = self
            .conn()
            .prepare("SELECT arn, config, status FROM trails ORDER BY arn")?
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(arn, config, status)| {
                decode_trail(&arn, &config, &status)
                    .err()
                    .map(|e| (arn, damage_line(&e)))
            })
            .collect())
    }

    /// Writes a trail's row whole, replacing whatever is stored under its ARN
    /// (`cairn doctor --repair` rebuilding a damaged row).
    pub fn replace_trail(&self, trail: &TrailRecord) -> Result<()> {
        let (config, status) = encode_trail_documents(trail)?;
        self.conn().execute(
            "INSERT OR REPLACE INTO trails (arn, name, config, status) VALUES (?1, ?2, ?3, ?4)",
            params![trail.config.arn, trail.config.name, config, status],
        )?;
        Ok(())
    }

    /// Replaces a trail's configuration.
    pub fn update_trail_config(&self, config: &TrailConfig) -> Result<()> {
        let text = serde_json::to_string(config).map_err(Error::Encode)?;
        let changed = self.conn().execute(
            "UPDATE trails SET config = ?2, name = ?3 WHERE arn = ?1",
            params![config.arn, text, config.name],
        )?;
        if changed == 0 {
            return Err(Error::NotFound(config.arn.clone()));
        }
        Ok(())
    }

    /// Changes a trail's status under the metastore lock (read, modify, write).
    pub fn update_trail_status(
        &self,
        arn: &str,
        change: impl FnOnce(&mut TrailStatus),
    ) -> Result<TrailStatus> {
        let conn = self.conn();
        let text: Option<String> = conn
            .query_row("SELECT status FROM trails WHERE arn = ?1", [arn], |r| {
                r.get(0)
            })
            .optional()?;
        let text = text.ok_or_else(|| Error::NotFound(arn.to_owned()))?;
        let mut status: TrailStatus =
            serde_json::from_str(&text).map_err(|source| Error::Corrupt {
                key: trail_key(arn, "status"),
                source,
            })?;
        change(&mut status);
        let text = serde_json::to_string(&status).map_err(Error::Encode)?;
        conn.execute(
            "UPDATE trails SET status = ?2 WHERE arn = ?1",
            params![arn, text],
        )?;
        Ok(status)
    }

    /// Deletes a trail.
    pub fn delete_trail(&self, arn: &str) -> Result<()> {
        let changed = self
            .conn()
            .execute("DELETE FROM trails WHERE arn = ?1", [arn])?;
        if changed == 0 {
            return Err(Error::NotFound(arn.to_owned()));
        }
        Ok(())
    }
}

/// Encodes a trail's two stored documents (configuration, status) as the
/// `trails` table holds them (schema version 1).
pub fn encode_trail_documents(trail: &TrailRecord) -> Result<(String, String)> {
    Ok((
        serde_json::to_string(&trail.config).map_err(Error::Encode)?,
        serde_json::to_string(&trail.status).map_err(Error::Encode)?,
    ))
}

/// Decodes a trail's stored documents.
pub fn decode_trail(arn: &str, config: &str, status: &str) -> Result<TrailRecord> {
    let corrupt = |column| {
        move |source| Error::Corrupt {
            key: trail_key(arn, column),
            source,
        }
    };
    Ok(TrailRecord {
        config: serde_json::from_str(config).map_err(corrupt("config"))?,
        status: serde_json::from_str(status).map_err(corrupt("status"))?,
    })
}

/// One line of [`Metastore::verify`]'s report.
fn damage_line(e: &Error) -> String {
    match e {
        Error::Corrupt { key, source } => format!("{key}: {source}"),
        other => other.to_string(),
    }
}

/// How a damaged trail document is named: table, row and column.
fn trail_key(arn: &str, column: &str) -> String {
    format!("table trails, row arn = '{arn}', column {column}")
}

fn parse_time(text: &str) -> DateTime<Utc> {
    // Written by this module as RFC 3339; anything else is treated as the epoch
    // rather than failing a listing.
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(name: &str) -> TrailRecord {
        TrailRecord {
            config: TrailConfig::new(
                name,
                format!("arn:aws:cloudtrail:us-east-1:123456789012:trail/{name}"),
                "123456789012",
                "us-east-1",
                "b",
                serde_json::json!({"EventSelectors": []}),
                Utc::now(),
            ),
            status: TrailStatus::default(),
        }
    }

    #[test]
    fn test_buckets() {
        let m = Metastore::in_memory().unwrap();
        let b = Bucket {
            name: "logs".into(),
            region: "us-east-1".into(),
            created_at: Utc::now(),
        };
        m.create_bucket(&b).unwrap();
        assert!(matches!(m.create_bucket(&b), Err(Error::AlreadyExists(_))));
        assert_eq!(m.bucket("logs").unwrap().unwrap().region, "us-east-1");
        assert_eq!(m.buckets().unwrap().len(), 1);
        m.delete_bucket("logs").unwrap();
        assert!(m.bucket("logs").unwrap().is_none());
    }

    #[test]
    fn test_a_damaged_trail_row_is_named_by_reads_and_by_verify() {
        let m = Metastore::in_memory().unwrap();
        let good = trail("good");
        let bad = trail("bad");
        m.create_trail(&good).unwrap();
        m.create_trail(&bad).unwrap();
        assert_eq!(m.verify().unwrap(), Vec::<String>::new());
        m.conn()
            .execute(
                "UPDATE trails SET config = substr(config, 1, 30) WHERE arn = ?1",
                [&bad.config.arn],
            )
            .unwrap();
        let message = m.trails().unwrap_err().to_string();
        let row = format!(
            "table trails, row arn = '{}', column config",
            bad.config.arn
        );
        assert!(message.contains(&row), "{message}");
        assert!(message.contains("cairn doctor"), "{message}");
        let report = m.verify().unwrap();
        assert_eq!(report.len(), 1, "{report:?}");
        assert!(report[0].starts_with(&row), "{report:?}");
        // A well-formed document of the wrong shape is damage too.
        m.conn()
            .execute(
                "UPDATE trails SET status = '[]' WHERE arn = ?1",
                [&good.config.arn],
            )
            .unwrap();
        let report = m.verify().unwrap();
        assert_eq!(report.len(), 2, "{report:?}");
        assert!(
            report.iter().any(|l| l.contains("column status")),
            "{report:?}"
        );
    }

    #[test]
    fn test_damaged_trails_are_listed_and_a_replaced_row_reads_again() {
        let m = Metastore::in_memory().unwrap();
        let good = trail("good");
        let bad = trail("bad");
        m.create_trail(&good).unwrap();
        m.create_trail(&bad).unwrap();
        assert!(m.damaged_trails().unwrap().is_empty());
        m.conn()
            .execute(
                "UPDATE trails SET status = 'not json' WHERE arn = ?1",
                [&bad.config.arn],
            )
            .unwrap();
        let damaged = m.damaged_trails().unwrap();
        assert_eq!(damaged.len(), 1, "{damaged:?}");
        assert_eq!(damaged[0].0, bad.config.arn);
        assert!(damaged[0].1.contains("column status"), "{damaged:?}");
        m.replace_trail(&bad).unwrap();
        assert!(m.damaged_trails().unwrap().is_empty());
        assert_eq!(m.trail(&bad.config.arn).unwrap(), Some(bad));
        assert_eq!(m.trails().unwrap().len(), 2);
    }

    #[test]
    fn test_trails_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.sqlite");
        {
            let m = Metastore::open(&path).unwrap();
            let t = trail("t1");
            m.create_trail(&t).unwrap();
            assert!(matches!(m.create_trail(&t), Err(Error::AlreadyExists(_))));
            m.update_trail_status(&t.config.arn, |s| s.is_logging = true)
                .unwrap();
        }
        let m = Metastore::open(&path).unwrap();
        let all = m.trails().unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].status.is_logging);
        let mut config = all[0].config.clone();
        config.s3_key_prefix = Some("p".into());
        m.update_trail_config(&config).unwrap();
        assert_eq!(
            m.trail(&config.arn)
                .unwrap()
                .unwrap()
                .config
                .s3_key_prefix
                .as_deref(),
            Some("p")
        );
        m.delete_trail(&config.arn).unwrap();
        assert!(matches!(
            m.delete_trail(&config.arn),
            Err(Error::NotFound(_))
        ));
    }
}
