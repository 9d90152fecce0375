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
    Ok(DoctorReport {
        repaired: repair && (!wal.damaged.is_empty() || wal.torn_tail_bytes > 0),
        wal,
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
        if wal.is_clean() {
            out.push("no damage found".to_owned());
        }
        out
    }
}
