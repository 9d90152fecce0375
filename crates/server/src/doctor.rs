//! `cairn doctor`: verify a data dir that refuses to start, and salvage it.
//!
//! A server refuses to start on damage it cannot trust (a damaged or missing
//! WAL segment, a missing cursors file, ...), naming the file. The doctor
//! reads the same files without trusting them, reports every damaged range,
//! and with `repair` rewrites each one as lost-record markers at the same
//! positions (see `cairn_wal::salvage`), so every intact record is kept and
//! delivered, and what was lost is counted and said. It takes the data dir's
//! lock first: it never works under a running server.

use std::path::Path;

use crate::data_dir::{DataDirLock, LockError};

/// What the doctor found, and did.
#[derive(Debug)]
pub struct DoctorReport {
    /// The write-ahead log's verdict.
    pub wal: cairn_wal::SalvageReport,
    /// Whether damaged ranges were rewritten.
    pub repaired: bool,
    /// Damage in the metastore (`meta.sqlite`), one line per damaged page or
    /// row, naming the table and row. The doctor cannot repair these: trail
    /// rows are derived from WAL records that may be gone.
    pub meta: Vec<String>,
}

/// Why the doctor could not run.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// A server holds the data dir (or it cannot be locked).
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The write-ahead log could not be read or rewritten.
    #[error("write-ahead log: {0}")]
    Wal(#[from] cairn_wal::Error),
}

/// Verifies the data dir, and with `repair` salvages it.
pub fn doctor(data_dir: &Path, repair: bool) -> Result<DoctorReport, DoctorError> {
    let _lock = DataDirLock::acquire(data_dir)?;
    let wal_dir = data_dir.join(cairn_pipeline::WAL_DIR);
    let wal = if wal_dir.is_dir() {
        cairn_wal::salvage(&wal_dir, repair)?
    } else {
        cairn_wal::SalvageReport::default()
    };
    let meta_path = data_dir.join(crate::META_FILE);
    let meta = if meta_path.exists() {
        match cairn_meta::Metastore::open(&meta_path).and_then(|m| m.verify()) {
            Ok(problems) => problems,
            Err(e) => vec![format!("cannot be read: {e}")],
        }
    } else {
        Vec::new()
    };
    Ok(DoctorReport {
        repaired: repair && (!wal.damaged.is_empty() || wal.torn_tail_bytes > 0),
        wal,
        meta,
    })
}

impl DoctorReport {
    /// The report as lines for a person.
    pub fn lines(&self) -> Vec<String> {
        let wal = &self.wal;
        let mut out = vec![format!(
            "write-ahead log: {} segment files, {} intact records, {} lost-record markers from earlier repairs",
            wal.segments, wal.intact_records, wal.earlier_markers
        )];
        for range in &wal.damaged {
            out.push(format!(
                "{} LSN {}..{} ({} bytes): {}{}",
                if self.repaired { "repaired" } else { "damaged" },
                range.from,
                range.to,
                range.to - range.from,
                range.reason,
                if self.repaired {
                    ", now lost-record markers"
                } else {
                    ""
                }
            ));
        }
        if wal.torn_tail_bytes > 0 {
            out.push(format!(
                "torn tail: {} bytes after the last whole record (appends never acknowledged{})",
                wal.torn_tail_bytes,
                if self.repaired { "; truncated" } else { "" }
            ));
        }
        for problem in &wal.unrepairable {
            out.push(format!("cannot repair: {problem}"));
        }
        for problem in &self.meta {
            out.push(format!(
                "cannot repair: metastore {}: {problem}",
                crate::META_FILE
            ));
        }
        if !self.meta.is_empty() {
            out.push(format!(
                "the metastore cannot be salvaged by the doctor: restore {} from a backup taken \
                 while the server was stopped",
                crate::META_FILE
            ));
        }
        if self.is_clean() {
            out.push("no damage found".to_owned());
        }
        out
    }
}

impl DoctorReport {
    /// Whether nothing is damaged, in the WAL or the metastore.
    pub fn is_clean(&self) -> bool {
        self.wal.is_clean() && self.meta.is_empty()
    }

    /// Whether something is damaged that the doctor cannot repair.
    pub fn has_unrepairable(&self) -> bool {
        !self.wal.unrepairable.is_empty() || !self.meta.is_empty()
    }
}
