//! The dedup persister: a sink that copies each ingested record's eventID
//! hash into the hourly dedup files, so start-up can rebuild the index from
//! them and the WAL past this sink's cursor.
//!
//! It reads only the envelope header of each record (the router decoded it);
//! appending the same hashes twice after a crash is harmless (loading puts
//! them in a set), so deliveries are not announced.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use cairn_wal::Lsn;

use crate::dedup::{DedupFiles, hour_of};
use crate::route::{Item, Routed};
use crate::runtime::{Accept, Applied, Report, Sink, SinkError};

/// The WAL consumer name of the dedup persister.
pub const DEDUP_CONSUMER: &str = "dedup";

/// How often expired hour files are removed.
const EXPIRY_PERIOD: Duration = Duration::from_secs(60);

/// How long hashes wait before they are written to the dedup files.
const DEDUP_FLUSH_DELAY: Duration = Duration::from_secs(1);

/// The dedup persister's delivery: the hashes gathered up to `to`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DedupIntent {
    /// The WAL position the hashes end at.
    pub to: Lsn,
}

/// The dedup persister.
#[derive(Debug)]
pub struct DedupSink {
    files: DedupFiles,
    window_hours: u32,
    by_hour: BTreeMap<u32, Vec<u128>>,
    first_pending: Option<Instant>,
    next_expiry: Instant,
}

impl DedupSink {
    /// A persister writing into `files`, expiring hours past the window.
    pub fn new(files: DedupFiles, window_hours: u32) -> Self {
        Self {
            files,
            window_hours,
            by_hour: BTreeMap::new(),
            first_pending: None,
            next_expiry: Instant::now() + EXPIRY_PERIOD,
        }
    }
}

impl Sink for DedupSink {
    type State = ();
    type Intent = DedupIntent;
    const ANNOUNCES: bool = false;

    fn name(&self) -> &str {
        DEDUP_CONSUMER
    }

    fn accept(&mut self, entry: &Routed) -> Accept {
        let Item::Record(record) = &entry.item else {
            return Accept::Skip;
        };
        self.by_hour
            .entry(hour_of(record.ingest_time_ms))
            .or_default()
            .push(record.event_id_hash);
        self.first_pending.get_or_insert_with(Instant::now);
        Accept::Buffered
    }

    fn apply(&mut self, _entry: &Routed) -> Result<Applied, SinkError> {
        Ok(Applied::Continue)
    }

    fn intent_end(intent: &DedupIntent) -> Lsn {
        intent.to
    }

    fn has_pending(&self) -> bool {
        !self.by_hour.is_empty()
    }

    fn flush_due(&self) -> Option<Instant> {
        // The files hold only what the WAL past this sink's cursor also holds
        // (start-up replays it into the index), so they are written about
        // once a second rather than once per ingest request: one fsync and
        // one cursor commit for many requests.
        self.first_pending.map(|t| t + DEDUP_FLUSH_DELAY)
    }

    fn plan(&mut self, to: Lsn) -> Result<DedupIntent, SinkError> {
        Ok(DedupIntent { to })
    }

    fn deliver(&mut self, _intent: &DedupIntent, _recovering: bool) -> Result<(), SinkError> {
        while let Some((&hour, ids)) = self.by_hour.first_key_value() {
            self.files
                .append(hour, ids)
                .map_err(|e| SinkError::retriable(format!("writing the dedup files: {e}")))?;
            self.by_hour.remove(&hour);
        }
        self.first_pending = None;
        Ok(())
    }

    fn state(&self) {}

    fn report(&mut self, report: Report<'_>) {
        if let Report::Failed { error, .. } = report {
            tracing::error!(error = %error, "the dedup persister cannot save");
        }
    }

    fn next_tick(&self) -> Option<Instant> {
        Some(self.next_expiry)
    }

    fn tick(&mut self) -> Result<(), SinkError> {
        self.next_expiry = Instant::now() + EXPIRY_PERIOD;
        if let Err(e) = self.files.expire(self.window_hours, crate::now_ms()) {
            tracing::warn!(error = %e, "cannot remove expired dedup files");
        }
        Ok(())
    }
}
