//! What Cairn's SQLite stores (the metastore, the monitoring store and the
//! event history) share: how a database is prepared when it is opened, and how
//! its errors are told apart (damage, a passing failure, anything else).

use rusqlite::{Connection, ErrorCode, OptionalExtension};

/// How a store's database is prepared.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The schema's statements (`CREATE … IF NOT EXISTS`), run in order. One
    /// of them creates `schema_version (version INTEGER)`.
    pub schema: &'a [&'a str],
    /// The schema version this build writes.
    pub version: i64,
    /// Whether a database of an older version is used as it is, or refused
    /// like one of a newer version.
    pub accepts_older: bool,
    /// SQLite's page cache in KiB, where the default 2 MB is too small.
    pub cache_kib: Option<i64>,
}

/// Why a database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// SQLite failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The database holds a schema version this build does not read.
    #[error("schema version {found}; this build reads version {supported}")]
    UnknownSchemaVersion {
        /// Its version.
        found: i64,
        /// The version this build writes.
        supported: i64,
    },
}

/// Prepares a freshly opened connection: WAL journal and FULL sync (every
/// committed change survives a crash and a power cut), foreign keys, the
/// schema, and the schema version recorded or checked.
pub fn prepare(conn: &Connection, setup: &Setup<'_>) -> Result<(), OpenError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if let Some(kib) = setup.cache_kib {
        conn.pragma_update(None, "cache_size", -kib)?;
    }
    for statements in setup.schema {
        conn.execute_batch(statements)?;
    }
    let found: Option<i64> = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()?;
    match found {
        None => {
            conn.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                [setup.version],
            )?;
        }
        Some(found) if found > setup.version || (found < setup.version && !setup.accepts_older) => {
            return Err(OpenError::UnknownSchemaVersion {
                found,
                supported: setup.version,
            });
        }
        Some(_) => {}
    }
    Ok(())
}

fn code(error: &rusqlite::Error) -> Option<ErrorCode> {
    match error {
        rusqlite::Error::SqliteFailure(e, _) => Some(e.code),
        _ => None,
    }
}

/// Whether SQLite found its file damaged (malformed, or not a database).
pub fn is_damage(error: &rusqlite::Error) -> bool {
    matches!(
        code(error),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Whether retrying later may succeed: the database busy or locked, an I/O
/// error, a full disk, memory, a file that could not be opened for now.
pub fn is_retriable(error: &rusqlite::Error) -> bool {
    matches!(
        code(error),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::OutOfMemory
                | ErrorCode::CannotOpen
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);";

    fn setup(version: i64, accepts_older: bool) -> Setup<'static> {
        Setup {
            schema: &[SCHEMA],
            version,
            accepts_older,
            cache_kib: Some(4096),
        }
    }

    #[test]
    fn test_version_is_recorded_then_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        prepare(&Connection::open(&path).unwrap(), &setup(2, false)).unwrap();
        let conn = Connection::open(&path).unwrap();
        prepare(&conn, &setup(2, false)).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let newer = prepare(&Connection::open(&path).unwrap(), &setup(1, true));
        assert!(matches!(
            newer,
            Err(OpenError::UnknownSchemaVersion {
                found: 2,
                supported: 1
            })
        ));
        // An older database: refused unless the store reads older ones.
        assert!(prepare(&Connection::open(&path).unwrap(), &setup(3, false)).is_err());
        prepare(&Connection::open(&path).unwrap(), &setup(3, true)).unwrap();
    }

    #[test]
    fn test_errors_are_told_apart() {
        let failure = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        assert!(is_damage(&failure(rusqlite::ffi::SQLITE_CORRUPT)));
        assert!(is_damage(&failure(rusqlite::ffi::SQLITE_NOTADB)));
        assert!(!is_damage(&failure(rusqlite::ffi::SQLITE_BUSY)));
        assert!(is_retriable(&failure(rusqlite::ffi::SQLITE_BUSY)));
        assert!(is_retriable(&failure(rusqlite::ffi::SQLITE_FULL)));
        assert!(!is_retriable(&failure(rusqlite::ffi::SQLITE_CONSTRAINT)));
        assert!(!is_retriable(&rusqlite::Error::QueryReturnedNoRows));
    }
}
