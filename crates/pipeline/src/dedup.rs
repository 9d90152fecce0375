//! Deduplication of eventIDs over a time window.
//!
//! A producer that retries a batch (a lost response, a crash on its side) sends
//! the same eventIDs again; within the window such records are acknowledged and
//! not stored twice. The index maps the 128-bit hash of each eventID to the
//! hour it was first accepted in; whole hours expire at once, a whole window
//! after the hour *ends*, so every ID is remembered for at least the window.
//!
//! Concurrency: an ID is *reserved* before its batch is appended to the WAL and
//! *committed* once the append is durable (or released if it failed). A
//! concurrent request carrying an ID that is still pending waits for that
//! outcome before answering, so no duplicate is acknowledged before the first
//! copy is durable.
//!
//! Persistence: the index is derived state. The `dedup` WAL consumer copies
//! each record's hash to an hourly file `dedup/<hour>.ids` (16 bytes per ID,
//! fsynced) and then advances its cursor; at start the index is the hourly files
//! of the window plus the WAL from that cursor on.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The IDs are already uniform hashes: hashing them again is wasted work.
#[derive(Default)]
struct IdHasher(u64);

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

/// An eventID hash as the committed maps key it: two `u64`s (8-byte aligned)
/// rather than a `u128` (16-byte aligned), so an entry with its hour is 24
/// bytes, not 32. Millions of entries make the difference.
type Key = (u64, u64);

fn key(id: u128) -> Key {
    (id as u64, (id >> 64) as u64)
}

/// Committed IDs are spread over this many maps (by the hash's top bits), so
/// a map growing rehashes a 1/64th of the index at a time: a short pause
/// for the one request that grows it and a small transient, where one map
/// doubling would stall ingest and hold two copies of the whole index.
const SHARDS: usize = 64;

fn shard_of(id: u128) -> usize {
    (id >> (128 - SHARDS.trailing_zeros())) as usize
}

struct Pending {
    batch: u64,
    outcome: watch::Receiver<Option<bool>>,
}

struct Inner {
    /// Durable IDs → the hour they were first accepted in.
    committed: Vec<IdMap<Key, u32>>,
    committed_len: usize,
    /// IDs of batches still being appended (few: in-flight requests only).
    pending: IdMap<u128, Pending>,
    /// How many committed IDs each hour holds, oldest first: expiry and the
    /// capacity bound drop whole hours, found by one pass over the maps.
    hours: BTreeMap<u32, usize>,
    next_batch: u64,
    evicted_early: u64,
}

impl Inner {
    fn is_committed(&self, id: u128) -> bool {
        self.committed[shard_of(id)].contains_key(&key(id))
    }

    /// Remembers a durable ID unless it is already.
    fn commit(&mut self, id: u128, hour: u32) {
        if let Entry::Vacant(v) = self.committed[shard_of(id)].entry(key(id)) {
            v.insert(hour);
            self.committed_len += 1;
            *self.hours.entry(hour).or_default() += 1;
        }
    }

    /// Forgets every committed ID of the hours `drop` says; how many.
    fn forget_hours(&mut self, drop: impl Fn(u32) -> bool) -> usize {
        let mut removed = 0;
        for map in &mut self.committed {
            let before = map.len();
            map.retain(|_, hour| !drop(*hour));
            removed += before - map.len();
        }
        self.hours.retain(|hour, _| !drop(*hour));
        self.committed_len -= removed;
        removed
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

/// The in-memory eventID index.
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
                committed: (0..SHARDS).map(|_| IdMap::default()).collect(),
                committed_len: 0,
                pending: IdMap::default(),
                hours: BTreeMap::new(),
                next_batch: 0,
                evicted_early: 0,
            }),
            window_hours: window_hours.max(1),
            max_entries,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves IDs: new ones become pending for this batch; others are duplicates.
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
                if stored {
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

    /// Inserts committed IDs (recovery from the hourly files and the WAL).
    pub fn insert_committed(&self, ids: &[u128], hour: u32, now_ms: u64) {
        let mut inner = self.lock();
        self.expire(&mut inner, hour_of(now_ms));
        if hour_expired(hour, self.window_hours, hour_of(now_ms)) {
            return;
        }
        for id in ids {
            if !inner.pending.contains_key(id) {
                inner.commit(*id, hour);
            }
        }
        self.enforce_capacity(&mut inner);
    }

    /// IDs remembered (committed and pending).
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.committed_len + inner.pending.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// IDs forgotten before their window ended because of the capacity bound.
    pub fn evicted_early(&self) -> u64 {
        self.lock().evicted_early
    }

    fn expire(&self, inner: &mut Inner, now_hour: u32) {
        let window = self.window_hours;
        if inner
            .hours
            .first_key_value()
            .is_some_and(|(hour, _)| hour_expired(*hour, window, now_hour))
        {
            inner.forget_hours(|hour| hour_expired(hour, window, now_hour));
        }
    }

    fn enforce_capacity(&self, inner: &mut Inner) {
        while inner.committed_len + inner.pending.len() > self.max_entries && inner.hours.len() > 1
        {
            let Some((&oldest, _)) = inner.hours.first_key_value() else {
                return;
            };
            let removed = inner.forget_hours(|hour| hour == oldest);
            inner.evicted_early += removed as u64;
            tracing::warn!(
                hour = oldest,
                "dedup index over capacity: forgetting an hour early"
            );
        }
    }
}

/// The hourly ID files of the dedup consumer.
#[derive(Debug, Clone)]
pub struct DedupFiles {
    dir: PathBuf,
}

impl DedupFiles {
    /// The files under `dir` (created if missing).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, hour: u32) -> PathBuf {
        self.dir.join(format!("{hour:010}.ids"))
    }

    /// Appends IDs to their hour's file and fsyncs it.
    pub fn append(&self, hour: u32, ids: &[u128]) -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(hour))?;
        let mut buf = Vec::with_capacity(ids.len() * 16);
        for id in ids {
            buf.extend_from_slice(&id.to_le_bytes());
        }
        file.write_all(&buf)?;
        file.sync_data()?;
        Ok(())
    }

    /// Loads the files of hours still in the window into the index and removes older ones.
    pub fn load_into(&self, index: &DedupIndex, now_ms: u64) -> std::io::Result<usize> {
        let now_hour = hour_of(now_ms);
        let mut loaded = 0;
        let mut entries: Vec<_> = std::fs::read_dir(&self.dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let Some(hour) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".ids"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if hour_expired(hour, index.window_hours, now_hour) {
                std::fs::remove_file(entry.path())?;
                continue;
            }
            let mut bytes = Vec::new();
            std::fs::File::open(entry.path())?.read_to_end(&mut bytes)?;
            // A torn final entry (crash mid-append) is ignored: its record is
            // still in the WAL past the dedup cursor and will be re-added.
            let ids: Vec<u128> = bytes
                .chunks_exact(16)
                .map(|c| u128::from_le_bytes(c.try_into().expect("chunks_exact(16)")))
                .collect();
            loaded += ids.len();
            index.insert_committed(&ids, hour, now_ms);
        }
        Ok(loaded)
    }

    /// Removes files whose hour has left the window.
    pub fn expire(&self, window_hours: u32, now_ms: u64) -> std::io::Result<()> {
        let now_hour = hour_of(now_ms);
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let hour = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".ids"))
                .and_then(|n| n.parse::<u32>().ok());
            if hour.is_some_and(|h| hour_expired(h, window_hours, now_hour)) {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
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
    /// restart from the hourly files; it is forgotten once 25 h have passed.
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
        files.append(hour_of(accepted), &[7]).unwrap();
        let restarted = DedupIndex::new(24, 1000);
        files
            .load_into(&restarted, accepted + 23 * HOUR + HOUR / 2)
            .unwrap();
        assert_eq!(
            restarted
                .reserve(&[7], accepted + 23 * HOUR + HOUR / 2)
                .fresh,
            [false]
        );
        files.expire(24, accepted + 24 * HOUR - 1).unwrap();
        assert!(
            dir.path()
                .join(format!("{:010}.ids", hour_of(accepted)))
                .exists()
        );
        let fresh = DedupIndex::new(24, 1000);
        assert_eq!(fresh.reserve(&[7], accepted + 25 * HOUR).fresh, [true]);
        files.expire(24, accepted + 25 * HOUR).unwrap();
        assert!(
            !dir.path()
                .join(format!("{:010}.ids", hour_of(accepted)))
                .exists()
        );
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
        // The index holds every eventID of the window: its entry size is the
        // server's memory per record ingested in the last day.
        assert_eq!(std::mem::size_of::<(Key, u32)>(), 24);
    }

    #[test]
    fn test_expiry_drops_whole_hours_across_every_shard() {
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

    #[test]
    fn test_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let files = DedupFiles::open(dir.path()).unwrap();
        files.append(10, &[1, 2]).unwrap();
        files.append(10, &[3]).unwrap();
        files.append(1, &[9]).unwrap();
        let index = DedupIndex::new(24, 1000);
        let loaded = files.load_into(&index, 12 * HOUR).unwrap();
        assert_eq!(loaded, 4);
        assert_eq!(
            index.reserve(&[1, 3, 9, 4], 12 * HOUR).fresh,
            [false, false, false, true]
        );
        // Hour 1 ends at hour 2 and leaves the window at hour 26.
        let index = DedupIndex::new(24, 1000);
        files.load_into(&index, 25 * HOUR).unwrap();
        assert!(dir.path().join(format!("{:010}.ids", 1)).exists());
        files.load_into(&index, 26 * HOUR).unwrap();
        assert!(!dir.path().join(format!("{:010}.ids", 1)).exists());
    }
}
