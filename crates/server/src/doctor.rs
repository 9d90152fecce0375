//! `cairn doctor`: verify a data dir that refuses to start, and salvage it.
//!
//! A server refuses to start on damage it cannot trust (a damaged or missing
//! WAL segment, a missing cursors file, ...), naming the file. The doctor
//! reads the same files without trusting them, reports every damaged range,
//! and with `repair` rewrites each one as lost-record markers at the same
//! positions (see `cairn_wal::salvage`), so every intact record is kept and
//! delivered, and what was lost is counted and said. A trail row of the
//! metastore whose documents no longer decode is rebuilt from what the
//! pipeline keeps of the trail (see `cairn_pipeline::control::rebuild_trail`).
//! It takes the data dir's lock first: it never works under a running server.

use std::path::Path;

use crate::data_dir::{DataDirLock, LockError};

/// What the doctor found, and did.
#[derive(Debug)]
pub struct DoctorReport {
    /// The write-ahead log's verdict.
    pub wal: cairn_wal::SalvageReport,
    /// Whether damaged ranges were rewritten.
    pub repaired: bool,
    /// Damage in the metastore (`meta.sqlite`) the doctor cannot repair, one
    /// line per damaged page or row, naming the table and row.
    pub meta: Vec<String>,
    /// Damaged trail rows that `repair` would rebuild (left after any repair).
    pub meta_repairable: Vec<String>,
    /// Metastore rows rebuilt (or removed) by the repair, one line each.
    pub meta_repairs: Vec<String>,
    /// Damage in the monitoring store (`monitor.sqlite`), one line per
    /// damaged page or document; the doctor does not repair it.
    pub monitor: Vec<String>,
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
    /// A damaged metastore row could not be rebuilt.
    #[error("rebuilding a metastore row: {0}")]
    Rebuild(#[from] cairn_pipeline::Error),
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
    let mut meta_repairs = Vec::new();
    let mut meta_repairable = Vec::new();
    let meta = if meta_path.exists() {
        match cairn_meta::Metastore::open(&meta_path) {
            Ok(metastore) => {
                // Trail rows are rebuilt from the WAL, so only over a WAL that
                // is whole again.
                if repair && wal.unrepairable.is_empty() && wal_dir.is_dir() {
                    meta_repairs = rebuild_trails(&wal_dir, &metastore)?;
                }
                // Damaged trail rows are repairable; the rest is not.
                match (metastore.damaged_trails(), metastore.damage_beyond_trails()) {
                    (Ok(trails), Ok(beyond)) => {
                        meta_repairable = trails.into_iter().map(|(_, line)| line).collect();
                        beyond
                    }
                    (Err(e), _) | (_, Err(e)) => vec![format!("cannot be read: {e}")],
                }
            }
            Err(e) => vec![format!("cannot be read: {e}")],
        }
    } else {
        Vec::new()
    };
    let monitor_path = data_dir.join(crate::MONITOR_FILE);
    let monitor = if monitor_path.exists() {
        match cairn_monitor::Monitor::open(&monitor_path).and_then(|m| m.verify()) {
            Ok(found) => found,
            Err(e) => vec![format!("cannot be read: {e}")],
        }
    } else {
        Vec::new()
    };
    Ok(DoctorReport {
        monitor,
        repaired: repair
            && (!wal.damaged.is_empty() || wal.torn_tail_bytes > 0 || !meta_repairs.is_empty()),
        wal,
        meta,
        meta_repairable,
        meta_repairs,
    })
}

/// Rebuilds every trail row whose documents do not decode; one line each.
fn rebuild_trails(
    wal_dir: &Path,
    metastore: &cairn_meta::Metastore,
) -> Result<Vec<String>, DoctorError> {
    let damaged = metastore.damaged_trails().unwrap_or_default();
    if damaged.is_empty() {
        return Ok(Vec::new());
    }
    let wal = cairn_wal::Wal::open(cairn_wal::WalConfig::new(wal_dir))?;
    let mut lines = Vec::new();
    for (arn, problem) in damaged {
        use cairn_pipeline::control::TrailRebuild;
        let line = match cairn_pipeline::control::rebuild_trail(&wal, metastore, &arn)? {
            TrailRebuild::Rebuilt {
                from,
                later_changes,
            } => format!(
                "rebuilt trail {arn} ({problem}) from its delivery checkpoint at LSN {from} and \
                 {later_changes} later trail changes in the WAL; its status times (last delivery, \
                 StartLogging/StopLogging) are lost and start over"
            ),
            TrailRebuild::Deleted => {
                format!("trail {arn} ({problem}) was deleted later in the WAL: its row is removed")
            }
            TrailRebuild::Lost => format!(
                "lost trail {arn} ({problem}): no delivery checkpoint holds its configuration; \
                 the row is removed, create the trail again"
            ),
        };
        lines.push(line);
    }
    Ok(lines)
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
        for line in &self.meta_repairs {
            out.push(line.clone());
        }
        for problem in &self.meta_repairable {
            out.push(format!(
                "damaged: metastore {}: {problem} (--repair rebuilds it from the WAL)",
                crate::META_FILE
            ));
        }
        for problem in &self.meta {
            out.push(format!(
                "cannot repair: metastore {}: {problem}",
                crate::META_FILE
            ));
        }
        if !self.meta.is_empty() {
            out.push(format!(
                "the doctor rebuilds damaged trail rows (with --repair); for the rest restore {} \
                 from a backup taken while the server was stopped",
                crate::META_FILE
            ));
        }
        for problem in &self.monitor {
            out.push(format!(
                "cannot repair: monitoring store {}: {problem}",
                crate::MONITOR_FILE
            ));
        }
        if !self.monitor.is_empty() {
            out.push(format!(
                "restore {} from a backup taken while the server was stopped, or remove it \
                 (log groups, metric filters, alarms, topics and waiting notifications are lost)",
                crate::MONITOR_FILE
            ));
        }
        if self.is_clean() && self.meta_repairs.is_empty() {
            out.push("no damage found".to_owned());
        }
        out
    }
}

impl DoctorReport {
    /// Whether nothing is damaged, in the WAL or the metastore.
    pub fn is_clean(&self) -> bool {
        self.wal.is_clean()
            && self.meta.is_empty()
            && self.meta_repairable.is_empty()
            && self.monitor.is_empty()
    }

    /// Whether something is damaged that the doctor cannot repair.
    pub fn has_unrepairable(&self) -> bool {
        !self.wal.unrepairable.is_empty() || !self.meta.is_empty() || !self.monitor.is_empty()
    }
}
