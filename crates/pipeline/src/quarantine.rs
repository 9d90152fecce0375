//! The quarantine: records a sink can never deliver, set aside with their
//! reason instead of stalling the sink.
//!
//! When a sink meets an error that retrying cannot fix for one part of a
//! delivery (an object key the store refuses for good, a file too large),
//! the consumer runtime ([`crate::runtime`]) takes that part's records out of
//! the delivery ([`crate::runtime::Sink::set_aside`]), writes them here and
//! lets the rest of the delivery go on and commit.
//!
//! Layout: `<data-dir>/quarantine/<sink>/<to>-<part hash>.json`, one
//! document per part set aside, where `<sink>` is the WAL consumer name
//! percent-encoded, `<to>` the WAL position the delivery ends at (20
//! digits) and `<part hash>` the first 16 hex digits of the SHA-256 of the
//! part's name. The name is a function of the delivery and the part, so
//! setting the same part aside again (after a crash, before the cursor
//! moved) finds the document already there and leaves it: a record is in at
//! most one document. Documents are versioned JSON ([`QUARANTINE_VERSION`]),
//! written atomically (temporary file, fsync, rename, fsync of the
//! directory), and keep each record's exact bytes (as the raw JSON value, or
//! as a string when the bytes are not JSON), so they can be delivered later.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use cairn_wal::Lsn;

/// The quarantine's directory inside the data dir.
pub const QUARANTINE_DIR: &str = "quarantine";

/// The document version this build writes and reads.
pub const QUARANTINE_VERSION: u32 = 1;

/// A quarantine failure.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// Local I/O failed (retriable: a full disk, too many open files).
    #[error("quarantine {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A document that does not parse, or of an unknown version.
    #[error("quarantine document {path} cannot be read: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QuarantineError + '_ {
    move |source| QuarantineError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One record set aside.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuarantinedRecord {
    /// Its `eventID`, if it has one.
    #[serde(rename = "eventID", default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The record's exact JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Box<RawValue>>,
    /// The record's exact text when it is not JSON (kept as a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl QuarantinedRecord {
    /// A record from its exact bytes.
    pub fn new(bytes: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Id {
            #[serde(rename = "eventID")]
            event_id: Option<String>,
        }
        let text = String::from_utf8_lossy(bytes).into_owned();
        let event_id = serde_json::from_slice::<Id>(bytes)
            .ok()
            .and_then(|i| i.event_id);
        match RawValue::from_string(text.clone()) {
            Ok(raw) if raw.get().as_bytes() == bytes => Self {
                event_id,
                record: Some(raw),
                text: None,
            },
            _ => Self {
                event_id,
                record: None,
                text: Some(text),
            },
        }
    }

    /// The record's exact bytes.
    pub fn bytes(&self) -> &[u8] {
        match (&self.record, &self.text) {
            (Some(raw), _) => raw.get().as_bytes(),
            (None, Some(text)) => text.as_bytes(),
            (None, None) => b"",
        }
    }
}

/// One part of a delivery set aside: a quarantine document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuarantineEntry {
    /// [`QUARANTINE_VERSION`].
    pub v: u32,
    /// The sink (WAL consumer name), e.g. `trail:<arn>`.
    pub sink: String,
    /// When it was set aside.
    pub at: DateTime<Utc>,
    /// Why it cannot be delivered.
    pub reason: String,
    /// What the sink calls the part (a log file's key).
    pub part: String,
    /// The WAL position the delivery it belonged to ends at.
    pub to: Lsn,
    /// Its records, in WAL order.
    pub records: Vec<QuarantinedRecord>,
}

/// Where a sink's documents live: the consumer name, percent-encoded (every
/// byte but ASCII letters, digits, `-`, `_` and `.`), so it is one file name
/// and two sinks never share one; names longer than a file name allows end
/// in a hash of the whole name.
pub fn sink_dir_name(sink: &str) -> String {
    let mut out = String::with_capacity(sink.len() * 2);
    for b in sink.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > 200 || out.starts_with('.') {
        let hash = hex_prefix(sink.as_bytes());
        out.truncate(180);
        out = format!("{out}~{hash}");
    }
    out
}

fn hex_prefix(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn document_name(to: Lsn, part: &str) -> String {
    format!("{to:020}-{}.json", hex_prefix(part.as_bytes()))
}

/// The quarantine of one data dir.
#[derive(Debug)]
pub struct Quarantine {
    root: PathBuf,
    records: AtomicU64,
    parts: AtomicU64,
}

impl Quarantine {
    /// The quarantine under `data_dir` (created when first needed).
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join(QUARANTINE_DIR),
            records: AtomicU64::new(0),
            parts: AtomicU64::new(0),
        }
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Records set aside since start-up.
    pub fn quarantined_records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Parts (files) set aside since start-up.
    pub fn quarantined_parts(&self) -> u64 {
        self.parts.load(Ordering::Relaxed)
    }

    /// Sets `part` of the delivery ending at `to` aside, durably. Returns
    /// `false` if it was set aside already (the document is kept as it is).
    pub fn set_aside(
        &self,
        sink: &str,
        to: Lsn,
        part: &str,
        reason: &str,
        records: &[impl AsRef<[u8]>],
    ) -> Result<bool, QuarantineError> {
        let dir = self.root.join(sink_dir_name(sink));
        let path = dir.join(document_name(to, part));
        if path.exists() {
            return Ok(false);
        }
        let entry = QuarantineEntry {
            v: QUARANTINE_VERSION,
            sink: sink.to_owned(),
            at: Utc::now(),
            reason: reason.to_owned(),
            part: part.to_owned(),
            to,
            records: records
                .iter()
                .map(|r| QuarantinedRecord::new(r.as_ref()))
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&entry).map_err(|e| QuarantineError::Corrupt {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let created = !self.root.exists();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        if created {
            sync_dir(self.root.parent().unwrap_or(&self.root))?;
        }
        sync_dir(&self.root)?;
        write_atomic(&dir, &path, &bytes)?;
        self.records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        self.parts.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// The parts of the delivery ending at `to` already set aside.
    pub fn parts(&self, sink: &str, to: Lsn) -> Result<Vec<String>, QuarantineError> {
        let dir = self.root.join(sink_dir_name(sink));
        let prefix = format!("{to:020}-");
        let mut parts = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(parts),
            Err(e) => return Err(io(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(&prefix) && name.ends_with(".json") {
                parts.push(read_entry(&entry.path())?.part);
            }
        }
        Ok(parts)
    }
}

fn read_entry(path: &Path) -> Result<QuarantineEntry, QuarantineError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let corrupt = |reason: String| QuarantineError::Corrupt {
        path: path.display().to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    match value.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(QUARANTINE_VERSION) => {}
        Some(v) => {
            return Err(corrupt(format!(
                "version {v}; this build reads version {QUARANTINE_VERSION}"
            )));
        }
        None => return Err(corrupt("no version".into())),
    }
    // Parsed again from the bytes: RawValue keeps each record's exact text.
    serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))
}

/// Every document in the quarantine of `data_dir`, oldest delivery first
/// within each sink (sinks in name order).
pub fn list(data_dir: &Path) -> Result<Vec<QuarantineEntry>, QuarantineError> {
    let root = data_dir.join(QUARANTINE_DIR);
    let mut out = Vec::new();
    let sinks = match std::fs::read_dir(&root) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(&root)(e)),
    };
    let mut dirs: Vec<PathBuf> = sinks
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for file in files {
            out.push(read_entry(&file)?);
        }
    }
    Ok(out)
}

/// What `cairn quarantine list` shows of one document.
#[derive(Debug, Clone, Serialize)]
pub struct ListedEntry<'a> {
    /// The sink.
    pub sink: &'a str,
    /// When it was set aside.
    pub at: String,
    /// Why.
    pub reason: &'a str,
    /// The part (a log file's key; empty for a single record).
    pub part: &'a str,
    /// How many records.
    pub records: usize,
    /// Their eventIDs (records without one are counted, not listed).
    #[serde(rename = "eventIDs")]
    pub event_ids: Vec<&'a str>,
}

impl<'a> From<&'a QuarantineEntry> for ListedEntry<'a> {
    fn from(e: &'a QuarantineEntry) -> Self {
        Self {
            sink: &e.sink,
            at: e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            reason: &e.reason,
            part: &e.part,
            records: e.records.len(),
            event_ids: e
                .records
                .iter()
                .filter_map(|r| r.event_id.as_deref())
                .collect(),
        }
    }
}

/// The text `cairn quarantine list` prints: per document its time, sink,
/// record count and reason, its part and eventIDs; then a total.
pub fn list_lines(entries: &[QuarantineEntry]) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in entries.iter().map(ListedEntry::from) {
        lines.push(format!(
            "{}  {}  {} record(s)  {}",
            entry.at, entry.sink, entry.records, entry.reason
        ));
        if !entry.part.is_empty() {
            lines.push(format!("    part: {}", entry.part));
        }
        lines.push(format!("    eventIDs: {}", entry.event_ids.join(" ")));
    }
    let records: usize = entries.iter().map(|e| e.records.len()).sum();
    lines.push(format!(
        "{records} record(s) set aside in {} document(s)",
        entries.len()
    ));
    lines
}

fn sync_dir(dir: &Path) -> Result<(), QuarantineError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(dir))
}

/// Temporary file, fsync, rename, fsync of the directory.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), QuarantineError> {
    crate::atomic::write_atomic(dir, path, bytes).map_err(|(at, source)| io(&at)(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_set_aside_is_idempotent_and_keeps_exact_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = Quarantine::new(dir.path());
        let records: Vec<&[u8]> = vec![
            br#"{"eventID":"a",  "x" : [1,2.50,"\u00e9"]}"#,
            br#"{"eventID":"b"}"#,
        ];
        let sink = "trail:arn:aws:cloudtrail:us-east-1:123456789012:trail/t";
        assert!(
            q.set_aside(sink, 42, "k/ey", "InvalidKey", &records)
                .expect("write")
        );
        assert!(
            !q.set_aside(sink, 42, "k/ey", "other", &records)
                .expect("again")
        );
        assert_eq!(q.quarantined_records(), 2);
        assert_eq!(q.parts(sink, 42).expect("parts"), vec!["k/ey".to_owned()]);
        assert!(q.parts(sink, 41).expect("parts").is_empty());
        let all = list(dir.path()).expect("list");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].reason, "InvalidKey");
        assert_eq!(all[0].sink, sink);
        let bytes: Vec<&[u8]> = all[0]
            .records
            .iter()
            .map(QuarantinedRecord::bytes)
            .collect();
        assert_eq!(bytes, records);
        assert_eq!(all[0].records[0].event_id.as_deref(), Some("a"));
        assert!(sink_dir_name(sink).starts_with("trail%3Aarn%3Aaws"));
    }

    #[test]
    fn test_an_unknown_version_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink_dir = dir.path().join(QUARANTINE_DIR).join("s");
        std::fs::create_dir_all(&sink_dir).expect("mkdir");
        std::fs::write(sink_dir.join("1.json"), br#"{"v":9}"#).expect("write");
        let err = list(dir.path()).unwrap_err().to_string();
        assert!(err.contains("version 9"), "{err}");
    }
}
