//! The dedup persister: a sink that writes each ingested record's eventID
//! hash into a sorted run on disk and hands the run to the dedup index, which
//! then drops those IDs from its in-memory map; start-up rebuilds the index
//! from the runs and the WAL past this sink's cursor. It also merges each
//! hour's runs, so lookups consult few of them.
//!
//! It reads only the envelope header of each record (the router decoded it);
//! writing the same hashes twice after a crash is harmless (a lookup finds
//! either copy, a merge keeps one), so deliveries are not announced.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use cairn_wal::Lsn;

use crate::dedup::{DedupFiles, DedupIndex, Run, hour_of};
use crate::route::{Item, Routed};
use crate::runtime::{Accept, Applied, Report, Sink, SinkError};

/// The WAL consumer name of the dedup persister.
pub const DEDUP_CONSUMER: &str = "dedup";

/// How often expired hour files are removed and past hours merged whole.
const EXPIRY_PERIOD: Duration = Duration::from_secs(60);

/// Within an hour, the newest runs are merged while the run before them is at
/// most this many times their size: a binary counter, so an hour holds about
/// log2(runs written) runs and each ID is rewritten as many times.
const MERGE_RATIO: u64 = 2;

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
    index: Arc<DedupIndex>,
    by_hour: BTreeMap<u32, Vec<u128>>,
    first_pending: Option<Instant>,
    next_expiry: Instant,
}

impl DedupSink {
    /// A persister writing runs into `files` for `index`, expiring hours past its window.
    pub fn new(files: DedupFiles, index: Arc<DedupIndex>) -> Self {
        Self {
            files,
            index,
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
        while let Some((hour, mut ids)) = self.by_hour.pop_first() {
            let run = match self.files.write_run(hour, &mut ids) {
                Ok(run) => run,
                Err(e) => {
                    self.by_hour.insert(hour, ids);
                    return Err(SinkError::retriable(format!("writing a dedup run: {e}")));
                }
            };
            if let Err(refused) = self.index.add_run(run, &ids, crate::now_ms()) {
                self.remove(&refused);
            }
            self.merge_newest(hour);
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
        let now = crate::now_ms();
        self.index.expire_at(now);
        if let Err(e) = self
            .files
            .expire(self.index.window_hours(), now, self.index.floor_hour())
        {
            tracing::warn!(error = %e, "cannot remove expired dedup files");
        }
        // An hour that is over gets no more runs (but from a replay): one run.
        let current = hour_of(now);
        for (hour, count) in self.index.run_counts() {
            if hour < current && count > 1 {
                self.merge(&self.index.runs_of(hour));
            }
        }
        Ok(())
    }
}

impl DedupSink {
    /// Merges the newest runs of an hour while the run before them is not
    /// much larger than they are together.
    fn merge_newest(&self, hour: u32) {
        let runs = self.index.runs_of(hour);
        let mut first = runs.len();
        let mut newer: u64 = 0;
        while first > 0 {
            let candidate = runs[first - 1].len();
            if first < runs.len() && candidate > MERGE_RATIO * newer {
                break;
            }
            newer += candidate;
            first -= 1;
        }
        if runs.len() - first >= 2 {
            self.merge(&runs[first..]);
        }
    }

    /// Merges runs of one hour into one; a failure leaves them as they are.
    fn merge(&self, runs: &[Arc<Run>]) {
        let Some(hour) = runs.first().map(|r| r.hour()) else {
            return;
        };
        let merged = match self.files.merge(hour, runs) {
            Ok(merged) => merged,
            Err(e) => {
                tracing::warn!(hour, error = %e, "cannot merge dedup runs");
                return;
            }
        };
        let seqs: Vec<u64> = runs.iter().map(|r| r.seq()).collect();
        match self.index.replace_runs(merged, &seqs) {
            Ok(()) => runs.iter().for_each(|r| self.remove(r)),
            Err(refused) => self.remove(&refused),
        }
    }

    fn remove(&self, run: &Run) {
        if let Err(e) = self.files.remove(run) {
            tracing::warn!(run = %run.path().display(), error = %e, "cannot remove a dedup run");
        }
    }
}
