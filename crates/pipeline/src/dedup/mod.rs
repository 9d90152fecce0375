//! Deduplication of eventIDs over a time window.
//!
//! A producer that retries a batch (a lost response, a crash on its side) sends
//! the same eventIDs again; within the window such records are acknowledged and
//! not stored twice. The index knows the 128-bit hash of each eventID and the
//! hour it was first accepted in; whole hours expire at once, a whole window
//! after the hour *ends*, so every ID is remembered for at least the window.
//!
//! Concurrency: an ID is *reserved* before its batch is appended to the WAL and
//! *committed* once the append is durable (or released if it failed). A
//! concurrent request carrying an ID that is still pending waits for that
//! outcome before answering, so no duplicate is acknowledged before the first
//! copy is durable.
//!
//! Memory: a committed ID first lives in a small in-memory map (**hot**). The
//! `dedup` WAL consumer (the persister) writes the IDs it reads from the WAL,
//! about once a second, as a sorted **run** on disk ([`runs`]) and hands the
//! run to the index, which drops those IDs from the hot map: the window's IDs
//! cost the index a Bloom filter and a sparse index per run, under 3 bytes an
//! ID, instead of a map entry of about 40. The persister merges an hour's runs
//! as they accumulate (into a few per hour, one once the hour is over), so a
//! lookup asks a few dozen filters at most. Lookups may read a block of a run:
//! call [`DedupIndex::reserve`] off the async threads.
//!
//! Persistence: the index is derived state. At start it is the runs of the
//! window plus the WAL from the persister's cursor on.

mod runs;

pub use runs::{DedupFiles, RUN_VERSION, Run};

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The IDs are already uniform hashes: hashing them again is wasted work.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(buf);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 ^= value;
    }
    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64 ^ (value >> 64) as u64;
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// An eventID hash as the hot map keys it: two `u64`s (8-byte aligned)
/// rather than a `u128` (16-byte aligned), so an entry with its hour is 24
/// bytes, not 32.
type Key = (u64, u64);

fn key(id: u128) -> Key {
    (id as u64, (id >> 64) as u64)
}

struct Pending {
    batch: u64,
    outcome: watch::Receiver<Option<bool>>,
}

struct Inner {
    /// Durable IDs not yet in a run → the hour they were first accepted in.
    hot: IdMap<Key, u32>,
    /// How many hot IDs each hour holds, oldest first.
    hot_hours: BTreeMap<u32, usize>,
    /// IDs of batches still being appended (few: in-flight requests only).
    pending: IdMap<u128, Pending>,
    /// The runs on disk by hour, oldest first within an hour.
    runs: BTreeMap<u32, Vec<Arc<Run>>>,
    /// IDs in runs (an ID in two runs of an hour, not merged yet, counts twice).
    run_ids: usize,
    next_batch: u64,
    evicted_early: u64,
    /// Hours before this one were forgotten early, over the capacity bound.
    floor_hour: u32,
    /// Run blocks that could not be read (the ID was taken as new).
    read_errors: u64,
}

impl Inner {
    fn is_committed(&mut self, id: u128) -> bool {
        if self.hot.contains_key(&key(id)) {
            return true;
        }
        let mut errors = 0;
        let found = self.runs.values().flatten().any(|run| match run.contains(id) {
            Ok(found) => found,
            Err(e) => {
                // Taken as new: storing a retry twice beats dropping a record.
                tracing::error!(run = %run.path().display(), error = %e, "cannot read a dedup run");
                errors += 1;
                false
            }
        });
        self.read_errors += errors;
        found
    }

    /// Remembers a durable ID unless it is already.
    fn commit(&mut self, id: u128, hour: u32) {
        if let Entry::Vacant(v) = self.hot.entry(key(id)) {
            v.insert(hour);
            *self.hot_hours.entry(hour).or_default() += 1;
        }
    }

    fn oldest_hour(&self) -> Option<u32> {
        let hot = self.hot_hours.keys().next().copied();
        let runs = self.runs.keys().next().copied();
        hot.into_iter().chain(runs).min()
    }

    fn distinct_hours(&self) -> usize {
        let mut hours: Vec<u32> = self
            .hot_hours
            .keys()
            .chain(self.runs.keys())
            .copied()
            .collect();
        hours.sort_unstable();
        hours.dedup();
        hours.len()
    }

    /// Forgets every committed ID of the hours `drop` says; how many.
    fn forget_hours(&mut self, drop: impl Fn(u32) -> bool) -> usize {
        let before = self.hot.len() + self.run_ids;
        if self.hot_hours.keys().any(|h| drop(*h)) {
            self.hot.retain(|_, hour| !drop(*hour));
            self.hot_hours.retain(|hour, _| !drop(*hour));
        }
        let mut run_ids = self.run_ids;
        self.runs.retain(|hour, runs| {
            let keep = !drop(*hour);
            if !keep {
                run_ids -= runs.iter().map(|r| r.len() as usize).sum::<usize>();
            }
            keep
        });
        self.run_ids = run_ids;
        before - (self.hot.len() + self.run_ids)
    }

    fn len(&self) -> usize {
        self.hot.len() + self.pending.len() + self.run_ids
    }
}

/// How a batch's IDs fared at reservation.
#[derive(Debug)]
pub struct Reservation {
    batch: u64,
    hour: u32,
    ids: Vec<u128>,
    /// Per input ID: whether it is new (to be stored) or a duplicate.
    pub fresh: Vec<bool>,
    waits: Vec<(usize, watch::Receiver<Option<bool>>)>,
    outcome: watch::Sender<Option<bool>>,
}

impl Reservation {
    /// Waits for the other batches this one duplicated to be durable; returns
    /// the indexes (into the input) whose first copy failed to be stored.
    pub async fn wait_for_duplicates(&mut self) -> Vec<usize> {
        let mut failed = Vec::new();
        for (index, rx) in &mut self.waits {
            let outcome = rx.wait_for(|o| o.is_some()).await.map(|o| *o);
            // A dropped sender means the batch was abandoned: not stored.
            if !matches!(outcome, Ok(Some(true))) {
                failed.push(*index);
            }
        }
        failed
    }
}

/// The eventID index: a hot map, and runs on disk behind filters.
pub struct DedupIndex {
    inner: Mutex<Inner>,
    window_hours: u32,
    max_entries: usize,
}

impl std::fmt::Debug for DedupIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupIndex")
            .field("window_hours", &self.window_hours)
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

/// Whether the IDs first accepted in `hour` are past a window of
/// `window_hours`. An hour's IDs were accepted anywhere in it, up to hh:59:59,
/// so they are kept until a whole window has passed since the *end* of their
/// hour: every ID is remembered at least `window_hours` (and at most one hour
/// more), never 23 h 00 min 01 s of a 24 h window.
fn hour_expired(hour: u32, window_hours: u32, now_hour: u32) -> bool {
    u64::from(hour) + u64::from(window_hours) < u64::from(now_hour)
}

/// The hour number (hours since the epoch) of a time in milliseconds.
pub fn hour_of(ms: u64) -> u32 {
    (ms / 3_600_000) as u32
}

impl DedupIndex {
    /// An empty index keeping IDs for `window_hours` hours, at most `max_entries` of them.
    pub fn new(window_hours: u32, max_entries: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                hot: IdMap::default(),
                hot_hours: BTreeMap::new(),
                pending: IdMap::default(),
                runs: BTreeMap::new(),
                run_ids: 0,
                next_batch: 0,
                evicted_early: 0,
                floor_hour: 0,
                read_errors: 0,
            }),
            window_hours: window_hours.max(1),
            max_entries,
        }
    }

    /// The window in hours.
    pub fn window_hours(&self) -> u32 {
        self.window_hours
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves IDs: new ones become pending for this batch; others are
    /// duplicates. May read run blocks: call it off the async threads.
    pub fn reserve(&self, ids: &[u128], now_ms: u64) -> Reservation {
        let hour = hour_of(now_ms);
        let (outcome, rx) = watch::channel(None);
        let mut inner = self.lock();
        self.expire(&mut inner, hour);
        let batch = inner.next_batch;
        inner.next_batch += 1;
        let mut fresh = Vec::with_capacity(ids.len());
        let mut waits = Vec::new();
        let mut reserved = Vec::with_capacity(ids.len());
        for (index, id) in ids.iter().enumerate() {
            if inner.is_committed(*id) {
                fresh.push(false);
                continue;
            }
            match inner.pending.entry(*id) {
                Entry::Vacant(v) => {
                    v.insert(Pending {
                        batch,
                        outcome: rx.clone(),
                    });
                    reserved.push(*id);
                    fresh.push(true);
                }
                Entry::Occupied(o) => {
                    let other = o.get();
                    if other.batch != batch {
                        waits.push((index, other.outcome.clone()));
                    }
                    fresh.push(false);
                }
            }
        }
        Reservation {
            batch,
            hour,
            ids: reserved,
            fresh,
            waits,
            outcome,
        }
    }

    /// Settles a reservation: committed IDs are remembered, failed ones forgotten.
    pub fn settle(&self, reservation: &Reservation, stored: bool) {
        {
            let mut inner = self.lock();
            for id in &reservation.ids {
                let ours = matches!(inner.pending.get(id), Some(p) if p.batch == reservation.batch);
                if !ours {
                    continue;
                }
                inner.pending.remove(id);
                if stored && reservation.hour >= inner.floor_hour {
                    inner.commit(*id, reservation.hour);
                }
            }
            if stored {
                self.enforce_capacity(&mut inner);
            }
        }
        // Nobody listening is fine.
        let _ = reservation.outcome.send(Some(stored));
    }

    /// Inserts committed IDs (recovery from the WAL past the persister's cursor).
    pub fn insert_committed(&self, ids: &[u128], hour: u32, now_ms: u64) {
        let mut inner = self.lock();
        self.expire(&mut inner, hour_of(now_ms));
        if hour_expired(hour, self.window_hours, hour_of(now_ms)) || hour < inner.floor_hour {
            return;
        }
        for id in ids {
            if !inner.pending.contains_key(id) {
                inner.commit(*id, hour);
            }
        }
        self.enforce_capacity(&mut inner);
    }

    /// Adds a run (loaded at start, or just written by the persister) and
    /// drops `drained`, the IDs it holds, from the hot map. A run of an hour
    /// the index no longer keeps is handed back, for its file to be removed.
    pub fn add_run(&self, run: Run, drained: &[u128], now_ms: u64) -> Result<(), Box<Run>> {
        let mut inner = self.lock();
        self.expire(&mut inner, hour_of(now_ms));
        if hour_expired(run.hour(), self.window_hours, hour_of(now_ms))
            || run.hour() < inner.floor_hour
        {
            return Err(Box::new(run));
        }
        for id in drained {
            let Some(hour) = inner.hot.remove(&key(*id)) else {
                continue;
            };
            if let Some(count) = inner.hot_hours.get_mut(&hour) {
                *count -= 1;
                if *count == 0 {
                    inner.hot_hours.remove(&hour);
                }
            }
        }
        inner.run_ids += run.len() as usize;
        inner
            .runs
            .entry(run.hour())
            .or_default()
            .push(Arc::new(run));
        self.enforce_capacity(&mut inner);
        Ok(())
    }

    /// The runs of one hour, oldest first.
    pub fn runs_of(&self, hour: u32) -> Vec<Arc<Run>> {
        self.lock().runs.get(&hour).cloned().unwrap_or_default()
    }

    /// The hours that have runs, with how many each.
    pub fn run_counts(&self) -> Vec<(u32, usize)> {
        self.lock()
            .runs
            .iter()
            .map(|(hour, runs)| (*hour, runs.len()))
            .collect()
    }

    /// Replaces runs of an hour (by sequence number) with their merge. When
    /// the hour is gone meanwhile (expired), the merge is handed back.
    pub fn replace_runs(&self, merged: Run, replaced: &[u64]) -> Result<(), Box<Run>> {
        let mut inner = self.lock();
        let Some(runs) = inner.runs.get_mut(&merged.hour()) else {
            return Err(Box::new(merged));
        };
        if !replaced
            .iter()
            .all(|seq| runs.iter().any(|r| r.seq() == *seq))
        {
            return Err(Box::new(merged));
        }
        let mut removed = 0;
        runs.retain(|r| {
            let gone = replaced.contains(&r.seq());
            if gone {
                removed += r.len() as usize;
            }
            !gone
        });
        runs.push(Arc::new(merged));
        runs.sort_by_key(|r| r.seq());
        let added = runs.last().map_or(0, |r| r.len() as usize);
        inner.run_ids = inner.run_ids - removed + added;
        Ok(())
    }

    /// Forgets the hours past the window at `now_ms`.
    pub fn expire_at(&self, now_ms: u64) {
        let mut inner = self.lock();
        self.expire(&mut inner, hour_of(now_ms));
    }

    /// Hours before this one were forgotten early (over the capacity bound):
    /// their files can go.
    pub fn floor_hour(&self) -> u32 {
        self.lock().floor_hour
    }

    /// IDs remembered (committed and pending).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// IDs held in the hot map (not yet in a run).
    pub fn hot_len(&self) -> usize {
        self.lock().hot.len()
    }

    /// The memory the runs hold (filters and sparse indexes).
    pub fn run_memory_bytes(&self) -> usize {
        self.lock()
            .runs
            .values()
            .flatten()
            .map(|r| r.memory_bytes())
            .sum()
    }

    /// IDs forgotten before their window ended because of the capacity bound.
    pub fn evicted_early(&self) -> u64 {
        self.lock().evicted_early
    }

    /// Run blocks that could not be read.
    pub fn read_errors(&self) -> u64 {
        self.lock().read_errors
    }

    fn expire(&self, inner: &mut Inner, now_hour: u32) {
        let window = self.window_hours;
        if inner
            .oldest_hour()
            .is_some_and(|hour| hour_expired(hour, window, now_hour))
        {
            inner.forget_hours(|hour| hour_expired(hour, window, now_hour));
        }
    }

    fn enforce_capacity(&self, inner: &mut Inner) {
        while inner.len() > self.max_entries && inner.distinct_hours() > 1 {
            let Some(oldest) = inner.oldest_hour() else {
                return;
            };
            let removed = inner.forget_hours(|hour| hour == oldest);
            inner.evicted_early += removed as u64;
            inner.floor_hour = inner.floor_hour.max(oldest + 1);
            tracing::warn!(
                hour = oldest,
                "dedup index over capacity: forgetting an hour early"
            );
        }
    }
}

/// Shared handle.
pub type SharedDedupIndex = Arc<DedupIndex>;

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    /// Issue 11: an eventID accepted at hh:59:59 is still a duplicate 23 h
    /// 30 min later (and just under 24 h later), in memory and after a
    /// restart from its run; it is forgotten once 25 h have passed.
    #[test]
    fn issue_11_window_covers_whole_24_hours_from_acceptance() {
        let accepted = 10 * HOUR + HOUR - 1_000; // 10:59:59
        let index = DedupIndex::new(24, 1000);
        let r = index.reserve(&[7], accepted);
        assert_eq!(r.fresh, [true]);
        index.settle(&r, true);
        for later in [23 * HOUR + HOUR / 2, 24 * HOUR - 1] {
            let again = index.reserve(&[7], accepted + later);
            assert_eq!(again.fresh, [false], "{later} ms later");
            index.settle(&again, true);
        }
        let dir = tempfile::tempdir().unwrap();
        let files = DedupFiles::open(dir.path()).unwrap();
        files.write_run(hour_of(accepted), &mut vec![7]).unwrap();
        let later = accepted + 23 * HOUR + HOUR / 2;
        let restarted = DedupIndex::new(24, 1000);
        for run in files.load(24, later).unwrap() {
            restarted.add_run(run, &[], later).unwrap();
        }
        assert_eq!(restarted.reserve(&[7], later).fresh, [false]);
        files.expire(24, accepted + 24 * HOUR - 1, 0).unwrap();
        assert_eq!(files.load(24, accepted + 24 * HOUR - 1).unwrap().len(), 1);
        assert_eq!(restarted.reserve(&[7], accepted + 25 * HOUR).fresh, [true]);
        files.expire(24, accepted + 25 * HOUR, 0).unwrap();
        assert!(files.load(24, accepted).unwrap().is_empty());
    }

    /// IDs moved from the hot map into a run are still duplicates, and the
    /// hot map is empty afterwards: memory holds the filters only.
    #[test]
    fn test_runs_take_over_from_the_hot_map() {
        let dir = tempfile::tempdir().unwrap();
        let files = DedupFiles::open(dir.path()).unwrap();
        let index = DedupIndex::new(24, 1_000_000);
        let mut ids: Vec<u128> = (0..10_000u128).map(spread).collect();
        let r = index.reserve(&ids, 5 * HOUR);
        index.settle(&r, true);
        assert_eq!(index.hot_len(), 10_000);
        let run = files.write_run(5, &mut ids).unwrap();
        index.add_run(run, &ids, 5 * HOUR).unwrap();
        assert_eq!(index.hot_len(), 0);
        assert_eq!(index.len(), 10_000);
        let probe: Vec<u128> = (9_990..10_010u128).map(spread).collect();
        let fresh = index.reserve(&probe, 5 * HOUR).fresh;
        assert_eq!(fresh[..10], [false; 10]);
        assert_eq!(fresh[10..], [true; 10]);
        assert!(index.run_memory_bytes() < 3 * 10_000);
    }

    /// Merging runs keeps every ID a duplicate; a merge of an hour that
    /// expired meanwhile is handed back.
    #[test]
    fn test_replace_runs_with_their_merge() {
        let dir = tempfile::tempdir().unwrap();
        let files = DedupFiles::open(dir.path()).unwrap();
        let index = DedupIndex::new(24, 1_000_000);
        for part in 0..3u128 {
            let mut ids: Vec<u128> = (part * 100..part * 100 + 150).map(spread).collect();
            let run = files.write_run(2, &mut ids).unwrap();
            index.add_run(run, &[], 2 * HOUR).unwrap();
        }
        assert_eq!(index.len(), 450);
        let runs = index.runs_of(2);
        let merged = files.merge(2, &runs).unwrap();
        let seqs: Vec<u64> = runs.iter().map(|r| r.seq()).collect();
        index.replace_runs(merged, &seqs).unwrap();
        assert_eq!(index.run_counts(), [(2, 1)]);
        assert_eq!(index.len(), 350);
        let probe: Vec<u128> = (0..351u128).map(spread).collect();
        let fresh = index.reserve(&probe, 2 * HOUR).fresh;
        assert!(fresh[..350].iter().all(|f| !f));
        assert!(fresh[350]);
        index.expire_at(30 * HOUR);
        let late = files.write_run(2, &mut vec![1]).unwrap();
        assert!(index.replace_runs(late, &[]).is_err());
    }

    fn spread(i: u128) -> u128 {
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    }

    #[test]
    fn test_duplicates_within_and_across_batches() {
        let index = DedupIndex::new(24, 1000);
        let r = index.reserve(&[1, 2, 1], 0);
        assert_eq!(r.fresh, [true, true, false]);
        assert!(r.waits.is_empty());
        index.settle(&r, true);
        let r2 = index.reserve(&[2, 3], HOUR);
        assert_eq!(r2.fresh, [false, true]);
        index.settle(&r2, true);
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn test_failed_batch_is_forgotten() {
        let index = DedupIndex::new(24, 1000);
        let r = index.reserve(&[1], 0);
        index.settle(&r, false);
        assert_eq!(index.reserve(&[1], 0).fresh, [true]);
    }

    #[tokio::test]
    async fn test_pending_duplicate_waits_for_outcome() {
        let index = Arc::new(DedupIndex::new(24, 1000));
        let first = index.reserve(&[7], 0);
        let mut second = index.reserve(&[7], 0);
        assert_eq!(second.fresh, [false]);
        let i2 = index.clone();
        let handle = tokio::spawn(async move { second.wait_for_duplicates().await });
        i2.settle(&first, false);
        assert_eq!(handle.await.unwrap(), vec![0]);
        let first = index.reserve(&[8], 0);
        let mut second = index.reserve(&[8], 0);
        index.settle(&first, true);
        assert!(second.wait_for_duplicates().await.is_empty());
    }

    #[test]
    fn test_window_expiry() {
        let index = DedupIndex::new(24, 1000);
        let r = index.reserve(&[1], 0);
        index.settle(&r, true);
        assert_eq!(index.reserve(&[1], 23 * HOUR).fresh, [false]);
        // Its hour ended at 1:00:00; a whole window later it is forgotten.
        assert_eq!(index.reserve(&[1], 25 * HOUR - 1).fresh, [false]);
        assert_eq!(index.reserve(&[1], 25 * HOUR).fresh, [true]);
    }

    #[test]
    fn test_a_committed_entry_is_24_bytes() {
        // The hot map holds the IDs of the last second or so (more after a
        // restart, until the persister catches up).
        assert_eq!(std::mem::size_of::<(Key, u32)>(), 24);
    }

    #[test]
    fn test_expiry_drops_whole_hours() {
        let index = DedupIndex::new(24, 1_000_000);
        let ids = |hour: u128| {
            (0..5000u128)
                .map(move |i| (i << 100) ^ (hour << 20) ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        };
        for hour in 0..4u128 {
            let batch: Vec<u128> = ids(hour).collect();
            let r = index.reserve(&batch, hour as u64 * HOUR);
            assert!(r.fresh.iter().all(|f| *f));
            index.settle(&r, true);
        }
        assert_eq!(index.len(), 20_000);
        // At hour 26 the IDs of hours 0 and 1 are past the window, those of 2 and 3 are not.
        let probe: Vec<u128> = (0..4u128).flat_map(|h| ids(h).take(3)).collect();
        let fresh = index.reserve(&probe, 26 * HOUR).fresh;
        assert_eq!(fresh[..6], [true; 6]);
        assert_eq!(fresh[6..], [false; 6]);
        assert_eq!(index.len(), 10_000 + 6);
    }

    #[test]
    fn test_capacity_bound_evicts_oldest_hour() {
        let index = DedupIndex::new(24, 3);
        for (i, ids) in [[1u128, 2], [3, 4]].iter().enumerate() {
            let r = index.reserve(ids, i as u64 * HOUR);
            index.settle(&r, true);
        }
        assert_eq!(index.len(), 2);
        assert_eq!(index.evicted_early(), 2);
    }
}
