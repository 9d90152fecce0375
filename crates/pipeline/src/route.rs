//! The router: reads the WAL once, decodes each record once, and serves the
//! decoded chunks to every sink.
//!
//! # Parse once
//!
//! A record's JSON is parsed once, at ingest, which stores the view it parsed
//! (the [`RecordView`] fields selectors, scope and partitioning read) beside
//! the JSON in the WAL envelope. A [`Chunk`] is a run of consecutive WAL
//! records, each decoded from its envelope, with the parsed `eventTime`; the
//! record's JSON and its stored view stay in the WAL payload they were read
//! into ([`Bytes`], shared, never copied again), and each sink decodes the
//! view it reads from there, borrowing ([`RecordEntry::view`]), so a chunk
//! holds no per-record allocations and can be shared between sink threads
//! behind an [`Arc`]. Only records of an envelope version without a view are
//! parsed here, once, into an owned view.
//!
//! # Sinks at different positions
//!
//! Every sink keeps its own cursor and checkpoint, so sinks are at different
//! WAL positions (one may be replaying after a restart, one may be stuck on a
//! bucket outage). The [`Hub`] keeps a window of recent chunks, bounded in
//! bytes, that the router fills from the WAL; a sink whose position is inside
//! the window takes its chunk from there (no read, no parse). The router
//! waits only briefly for a slow sink while another is waiting for new
//! records: when the window is full and a sink is starved, the sink in the
//! oldest chunk gets [`FULL_WINDOW_GRACE`] to move on (a trail sink pauses for
//! each delivery), then the oldest chunk is dropped, and a sink still
//! positioned in it is **detached**. A detached sink (and one
//! that was already behind the window when it started) reads and parses on
//! its own with the same code ([`parse_chunk`]) until its position is back
//! inside the window, where it **rejoins** and parses nothing more. When no
//! attached sink needs the records between the window and the lowest sink
//! ahead of it, the router jumps there instead of reading records nobody in
//! the window wants.
//!
//! # Fresh records from memory
//!
//! The committer hands every group of records it made durable to the hub
//! as well ([`Hub::offer`]): the same bytes it appended, in the buffers ingest
//! encoded them into. The router takes them from there when they are next in
//! WAL order, and reads the WAL otherwise (a trail change appended between
//! two groups, a router that fell more than [`TAIL_BYTES`] behind, start-up).
//! Reading back what was written a moment ago would copy every record out of
//! the page cache and check its checksum again; the checksums guard against
//! damage on disk, which records that never left this process's memory
//! cannot have suffered.
//!
//! This was chosen over a router that serves sinks at arbitrary positions
//! from one cursor because it keeps the common case (every sink near the
//! head) at one read and one parse per record, and makes an outage of one
//! sink cost the others nothing but memory up to the bound; the price is that
//! a sink far behind parses its backlog itself.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use cairn_model::RecordView;
use cairn_model::time::parse_event_time;
use cairn_wal::{Lsn, Wal, WalRecord};

use crate::envelope::{self, Envelope, EnvelopeError, TrailControl};

/// Records the router reads at once.
const READ_RECORDS: usize = 2048;
/// Bytes of freshly committed records the hub keeps for the router (more
/// than one full commit group); past this the oldest are dropped and the
/// router reads them from the WAL.
const TAIL_BYTES: usize = 32 * 1024 * 1024;
/// Bytes the router reads at once.
const READ_BYTES: usize = 2 * 1024 * 1024;
/// How long a full window waits for the sink in its oldest chunk before
/// dropping it while another sink waits for new records: a sink busy
/// delivering (writing files, fsync) pauses for tens of milliseconds, and
/// dropping its chunk then would have it read and decode on its own what the
/// router already decoded. A sink that is stuck (a bucket outage) is dropped
/// after this once, not once per chunk.
const FULL_WINDOW_GRACE: Duration = Duration::from_millis(200);
/// What a parsed entry costs besides its payload, roughly (the entry and its
/// view's strings), so the window's bound is on memory, not payload alone.
const ENTRY_OVERHEAD: usize = std::mem::size_of::<Routed>() + 128;

/// One WAL record, decoded and parsed.
#[derive(Debug)]
pub struct Routed {
    /// Where it starts.
    pub lsn: Lsn,
    /// Where the next record starts.
    pub next_lsn: Lsn,
    /// What it holds.
    pub item: Item,
}

/// What a WAL record holds.
// Records are nearly every entry: boxing them would cost an allocation per
// record to save space on the rare control entries.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Item {
    /// An ingested CloudTrail record.
    Record(RecordEntry),
    /// A trail change.
    Control(TrailControl),
    /// A lost-record marker from `cairn doctor --repair`: skipped and counted.
    Lost,
    /// A payload this build cannot decode. Sinks stop on it rather than skip
    /// it (start-up refuses such a WAL before any sink runs; this is the
    /// second line).
    Undecodable(EnvelopeError),
}

/// An ingested record with the fields sinks read, parsed once.
#[derive(Debug)]
pub struct RecordEntry {
    /// When ingest accepted it (ms since the epoch).
    pub ingest_time_ms: u64,
    /// Hash of its eventID.
    pub event_id_hash: u128,
    payload: Bytes,
    json_at: usize,
    view: ViewSource,
    /// `eventTime`, parsed.
    pub event_time: Option<DateTime<Utc>>,
}

/// Where a record's view comes from.
#[derive(Debug)]
enum ViewSource {
    /// The view ingest stored, at this place in the payload (checked to
    /// decode when routed). Each sink that reads it decodes it, borrowing
    /// from the payload: cheaper than copying its strings out once for all
    /// (about twenty allocations a record, freed on another thread).
    Stored { at: u32, end: u32 },
    /// Parsed here (a record of an envelope without a view); `None` if the
    /// JSON does not parse (ingest stores only records that did, so this is
    /// a record written by something else: sinks skip it).
    /// Boxed: such records are rare, and the entry of every other record
    /// stays small.
    Parsed(Option<Box<RecordView<'static>>>),
}

impl RecordEntry {
    /// The fields selectors, scope and partitioning read; `None` if the
    /// record's JSON does not parse (sinks skip such a record).
    pub fn view(&self) -> Option<RecordView<'_>> {
        match &self.view {
            ViewSource::Stored { at, end } => {
                let bytes = self.payload.get(*at as usize..*end as usize)?;
                let json = std::str::from_utf8(self.json()).ok()?;
                // A view that does not decode would be a bug of this build
                // (records read from the WAL had theirs checked when routed;
                // records from memory, ingest encoded a moment ago): the
                // record is parsed rather than skipped.
                cairn_model::view_codec::decode_view(bytes, json)
                    .ok()
                    .or_else(|| RecordView::parse(json).ok())
            }
            ViewSource::Parsed(view) => view.as_deref().cloned(),
        }
    }

    /// The record's JSON text, borrowed from the WAL payload.
    pub fn json(&self) -> &[u8] {
        &self.payload[self.json_at..]
    }
}

/// A run of consecutive WAL records, decoded and parsed.
#[derive(Debug)]
pub struct Chunk {
    /// LSN of the first record.
    pub start: Lsn,
    /// LSN just past the last record.
    pub end: Lsn,
    /// The records, in WAL order.
    pub entries: Vec<Routed>,
    bytes: usize,
}

impl Chunk {
    /// The entries at or after `position` (a record boundary inside the chunk).
    pub fn from(&self, position: Lsn) -> &[Routed] {
        let at = self.entries.partition_point(|e| e.lsn < position);
        &self.entries[at..]
    }
}

/// Decodes WAL records (parsing those without a stored view): the one place
/// records are decoded for sinks.
pub fn parse_chunk(records: Vec<WalRecord>) -> Option<Chunk> {
    chunk_of(records.into_iter().map(|r| (r, None)))
}

/// [`parse_chunk`] for records the committer offered: their `eventTime` is
/// known, so their stored views are left for the sinks to decode.
fn parse_fresh(records: Vec<Fresh>) -> Option<Chunk> {
    chunk_of(records.into_iter().map(|f| (f.record, Some(f.event_time))))
}

/// Decodes records, each with its `eventTime` when it is already known.
fn chunk_of(records: impl Iterator<Item = (WalRecord, Option<DateTime<Utc>>)>) -> Option<Chunk> {
    let mut bytes = 0;
    let entries: Vec<Routed> = records
        .map(|(r, event_time)| {
            // The payload plus the parsed entry (its view's strings are small).
            bytes += r.payload.len() + ENTRY_OVERHEAD;
            Routed {
                lsn: r.lsn,
                next_lsn: r.next_lsn,
                item: parse_payload(r.payload, event_time),
            }
        })
        .collect();
    Some(Chunk {
        start: entries.first()?.lsn,
        end: entries.last()?.next_lsn,
        entries,
        bytes,
    })
}

/// Decodes one payload; `known` is the record's `eventTime` when ingest
/// handed it over with the record (its stored view is then not decoded here).
fn parse_payload(payload: Bytes, known: Option<DateTime<Utc>>) -> Item {
    let (ingest_time_ms, event_id_hash, json, stored_view) = match envelope::decode(&payload) {
        Ok(Envelope::Control(control)) => return Item::Control(control),
        Ok(Envelope::Lost) => return Item::Lost,
        Err(e) => return Item::Undecodable(e),
        Ok(Envelope::Record {
            ingest_time_ms,
            event_id_hash,
            json,
            view,
        }) => (ingest_time_ms, event_id_hash, json, view),
    };
    let json_at = payload.len() - json.len();
    // The view is a slice of the payload: its place there.
    let place = |bytes: &[u8]| {
        let at = (bytes.as_ptr() as usize).checked_sub(payload.as_ptr() as usize)?;
        let end = u32::try_from(at + bytes.len()).ok()?;
        Some((u32::try_from(at).ok()?, end))
    };
    if let (Some(event_time), Some((at, end))) = (known, stored_view.and_then(place)) {
        return Item::Record(RecordEntry {
            ingest_time_ms,
            event_id_hash,
            view: ViewSource::Stored { at, end },
            event_time: Some(event_time),
            json_at,
            payload,
        });
    }
    let text = std::str::from_utf8(json).ok();
    // The view ingest parsed travels with the record: decoded here for the
    // event time (and to know it decodes), then by each sink that reads it.
    // Only records of an older envelope (or a view that does not decode,
    // which the WAL's checksums make a bug, not damage) are parsed here.
    let stored = stored_view.zip(text).and_then(|(bytes, text)| {
        let view = cairn_model::view_codec::decode_view(bytes, text).ok()?;
        let (at, end) = place(bytes)?;
        Some((view, at, end))
    });
    let (event_time, view) = match stored {
        Some((view, at, end)) => (event_time_of(&view), ViewSource::Stored { at, end }),
        None => {
            let view = text.and_then(|text| RecordView::parse(text).ok());
            (
                view.as_ref().and_then(event_time_of),
                ViewSource::Parsed(view.map(|v| Box::new(v.into_owned()))),
            )
        }
    };
    Item::Record(RecordEntry {
        ingest_time_ms,
        event_id_hash,
        view,
        event_time,
        json_at,
        payload,
    })
}

/// A record's `eventTime`, parsed.
fn event_time_of(view: &RecordView<'_>) -> Option<DateTime<Utc>> {
    view.event_time.as_deref().and_then(parse_event_time)
}

/// Reads and parses from `position` on the caller's thread (a sink that is
/// behind the hub's window); `None` at the head.
pub fn read_chunk(wal: &Wal, position: Lsn) -> Result<Option<Chunk>, cairn_wal::Error> {
    Ok(parse_chunk(wal.read(position, READ_RECORDS, READ_BYTES)?))
}

/// What the hub has for a sink at some position.
#[derive(Debug)]
pub enum Lookup {
    /// The chunk holding the position.
    Chunk(Arc<Chunk>),
    /// The position is before the window: read on your own.
    Behind,
    /// The router has not read that far yet: wait.
    Ahead,
}

#[derive(Debug, Clone, Copy)]
struct Reader {
    position: Lsn,
    waiting: bool,
}

#[derive(Debug, Default)]
struct HubState {
    chunks: VecDeque<Arc<Chunk>>,
    bytes: usize,
    /// Where the window starts (the first chunk's start, or `end` when empty).
    start: Lsn,
    /// Where the router reads next.
    end: Lsn,
    readers: HashMap<u64, Reader>,
    next_reader: u64,
    stopped: bool,
    /// Since when the window has been full with a sink waiting for new
    /// records (reset once it is no longer full).
    full_since: Option<Instant>,
}

impl HubState {
    fn in_window(&self, position: Lsn) -> bool {
        position >= self.start && position < self.end
    }

    /// Drops chunks no reader in the window still needs.
    fn drop_unneeded(&mut self) {
        let lowest = self
            .readers
            .values()
            .filter(|r| self.in_window(r.position))
            .map(|r| r.position)
            .min()
            .unwrap_or(self.end);
        while let Some(front) = self.chunks.front() {
            if front.end > lowest {
                break;
            }
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(front) = self.chunks.pop_front() {
            self.bytes -= front.bytes;
        }
        self.start = self.chunks.front().map_or(self.end, |c| c.start);
    }

    fn starved(&self) -> bool {
        self.readers
            .values()
            .any(|r| r.waiting && r.position >= self.end)
    }
}

/// The window of parsed chunks shared by the router and the sinks.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<HubState>,
    /// Sinks wait on it: a chunk was published, the hub stopped or poked.
    published: Condvar,
    /// The router waits on it: a sink moved, waits, joined or left. Two
    /// conditions, not one: a sink that woke the others as it went to wait
    /// would wake them into waiting again, and idle sinks would keep each
    /// other spinning.
    readers_moved: Condvar,
    capacity: usize,
    /// Groups of records the committer made durable, oldest first, not yet
    /// taken by the router.
    tail: Mutex<Tail>,
    routed_chunks: AtomicU64,
    tail_chunks: AtomicU64,
    own_reads: AtomicU64,
}

/// A record the ingest committer has just made durable, offered to the
/// router ([`Hub::offer`]) with the `eventTime` ingest parsed.
#[derive(Debug)]
pub struct Fresh {
    /// The record as the WAL would read it back.
    pub record: WalRecord,
    /// Its `eventTime`, parsed.
    pub event_time: DateTime<Utc>,
}

/// What [`Hub::offer`] keeps for the router.
#[derive(Debug, Default)]
struct Tail {
    /// Each group's records are consecutive in the WAL; groups are in WAL
    /// order, with gaps where something else was appended between them.
    groups: VecDeque<Vec<Fresh>>,
    bytes: usize,
}

impl Tail {
    /// Takes the records from `from` on (a chunk's worth at most) if they
    /// are here, dropping those before it; `None` when the record at `from`
    /// is not here (it is read from the WAL).
    fn take(&mut self, from: Lsn) -> Option<Vec<Fresh>> {
        loop {
            let front = self.groups.front_mut()?;
            let end = front.last().map_or(from, |f| f.record.next_lsn);
            if end <= from {
                self.pop_front();
                continue;
            }
            let at = front.partition_point(|f| f.record.lsn < from);
            // Before the group (something else comes first), or not at a
            // record boundary (which the router never asks for).
            if front.get(at).map(|f| f.record.lsn) != Some(from) {
                return None;
            }
            let stale: usize = front.drain(..at).map(|f| f.record.payload.len()).sum();
            let (mut count, mut bytes) = (0, 0);
            for Fresh { record, .. } in front.iter() {
                if count == READ_RECORDS || (count > 0 && bytes + record.payload.len() > READ_BYTES)
                {
                    break;
                }
                count += 1;
                bytes += record.payload.len();
            }
            let taken = if count == front.len() {
                std::mem::take(front)
            } else {
                let rest = front.split_off(count);
                std::mem::replace(front, rest)
            };
            if front.is_empty() {
                self.groups.pop_front();
            }
            self.bytes -= stale + bytes;
            return Some(taken);
        }
    }

    fn pop_front(&mut self) {
        if let Some(group) = self.groups.pop_front() {
            self.bytes -= group.iter().map(|f| f.record.payload.len()).sum::<usize>();
        }
    }
}

impl Hub {
    /// A hub starting at `position`, keeping at most about `capacity` bytes
    /// of parsed chunks (payloads and parsed entries).
    pub fn new(position: Lsn, capacity: usize) -> Self {
        Self {
            state: Mutex::new(HubState {
                start: position,
                end: position,
                ..HubState::default()
            }),
            published: Condvar::new(),
            readers_moved: Condvar::new(),
            capacity,
            tail: Mutex::new(Tail::default()),
            routed_chunks: AtomicU64::new(0),
            tail_chunks: AtomicU64::new(0),
            own_reads: AtomicU64::new(0),
        }
    }

    /// Chunks the router has read and parsed.
    pub fn routed_chunks(&self) -> u64 {
        self.routed_chunks.load(Ordering::Relaxed)
    }

    /// Chunks the router took from the records the committer offered,
    /// without reading the WAL (they count in [`Hub::routed_chunks`] too).
    pub fn tail_chunks(&self) -> u64 {
        self.tail_chunks.load(Ordering::Relaxed)
    }

    /// Gives the router records that were just appended and are durable:
    /// consecutive in the WAL, each with its position, its payload the bytes
    /// appended. The oldest are dropped past [`TAIL_BYTES`].
    pub fn offer(&self, records: Vec<Fresh>) {
        if records.is_empty() {
            return;
        }
        let bytes: usize = records.iter().map(|f| f.record.payload.len()).sum();
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        tail.groups.push_back(records);
        tail.bytes += bytes;
        while tail.bytes > TAIL_BYTES {
            tail.pop_front();
        }
    }

    /// The records from `from` on, decoded: those offered, if they are
    /// next, or read from the WAL; `None` at the head.
    fn next_chunk(&self, wal: &Wal, from: Lsn) -> Result<Option<Chunk>, cairn_wal::Error> {
        let offered = self
            .tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(from);
        match offered {
            Some(records) => {
                self.tail_chunks.fetch_add(1, Ordering::Relaxed);
                Ok(parse_fresh(records))
            }
            None => read_chunk(wal, from),
        }
    }

    /// Chunks sinks behind the window read and parsed on their own.
    pub fn own_reads(&self) -> u64 {
        self.own_reads.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a sink reading from `position`.
    pub fn join(self: &Arc<Self>, position: Lsn) -> HubReader {
        let mut state = self.lock();
        let id = state.next_reader;
        state.next_reader += 1;
        state.readers.insert(
            id,
            Reader {
                position,
                waiting: false,
            },
        );
        drop(state);
        self.readers_moved.notify_all();
        HubReader {
            hub: self.clone(),
            id,
        }
    }

    /// Stops the router and wakes every waiter.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.poke();
    }

    /// Whether [`Hub::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Wakes waiters (the WAL head moved, or something else changed).
    pub fn poke(&self) {
        self.published.notify_all();
        self.readers_moved.notify_all();
    }

    /// The router's loop: reads, parses and publishes until stopped. `wait`
    /// blocks until the WAL head may have moved past the given position (or
    /// a short time passed).
    pub fn run_router(&self, wal: &Wal, wait: &dyn Fn(Lsn)) {
        loop {
            let from = {
                let mut state = self.lock();
                loop {
                    if state.stopped {
                        return;
                    }
                    state.drop_unneeded();
                    if state.bytes >= self.capacity {
                        let mut wait = Duration::from_millis(200);
                        if state.starved() {
                            let since = *state.full_since.get_or_insert_with(Instant::now);
                            match FULL_WINDOW_GRACE.checked_sub(since.elapsed()) {
                                Some(left) if !left.is_zero() => wait = left,
                                _ => {
                                    // A sink waits for new records and the
                                    // slowest one (in the oldest chunk) did
                                    // not move in time: it reads on its own
                                    // from now.
                                    state.pop_front();
                                    continue;
                                }
                            }
                        }
                        state = self
                            .readers_moved
                            .wait_timeout(state, wait)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                        continue;
                    }
                    state.full_since = None;
                    let attached = state.readers.values().any(|r| state.in_window(r.position));
                    if !attached {
                        // Nobody is in the window: jump to the lowest sink at
                        // or past its end; no need to parse what nobody reads.
                        let lowest_ahead = state
                            .readers
                            .values()
                            .map(|r| r.position)
                            .filter(|p| *p >= state.end)
                            .min();
                        match lowest_ahead {
                            Some(p) if p > state.end => {
                                state.chunks.clear();
                                state.bytes = 0;
                                state.start = p;
                                state.end = p;
                            }
                            Some(_) => {}
                            None => {
                                state = self
                                    .readers_moved
                                    .wait_timeout(state, Duration::from_millis(200))
                                    .unwrap_or_else(|p| p.into_inner())
                                    .0;
                                continue;
                            }
                        }
                    }
                    break state.end;
                }
            };
            let chunk = match self.next_chunk(wal, from) {
                Ok(c) => c,
                Err(e) => {
                    // Sinks fall back to their own reads, which report the error.
                    tracing::warn!(lsn = from, error = %e, "the router cannot read the WAL");
                    let mut state = self.lock();
                    if state.end == from {
                        state.chunks.clear();
                        state.bytes = 0;
                        state.start = from;
                    }
                    drop(state);
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            let Some(chunk) = chunk else {
                wait(from);
                continue;
            };
            let mut state = self.lock();
            if state.end != from {
                // The window jumped meanwhile; this chunk is not contiguous.
                continue;
            }
            self.routed_chunks.fetch_add(1, Ordering::Relaxed);
            state.end = chunk.end;
            state.bytes += chunk.bytes;
            state.chunks.push_back(Arc::new(chunk));
            if state.chunks.len() == 1 {
                state.start = from;
            }
            drop(state);
            self.published.notify_all();
        }
    }
}

/// A sink's registration with the hub.
#[derive(Debug)]
pub struct HubReader {
    hub: Arc<Hub>,
    id: u64,
}

impl HubReader {
    /// The chunk holding `position`, or where to look instead. Records the
    /// sink's position (the router keeps what attached sinks still need).
    pub fn get(&self, position: Lsn) -> Lookup {
        let mut state = self.hub.lock();
        let mut left_the_oldest = false;
        let oldest_end = state.chunks.front().map(|c| c.end);
        if let Some(r) = state.readers.get_mut(&self.id) {
            left_the_oldest = oldest_end.is_some_and(|end| r.position < end && position >= end);
            r.position = position;
            r.waiting = false;
        }
        if left_the_oldest && state.full_since.is_some() {
            // The router waits on a full window for this sink to move on.
            self.hub.readers_moved.notify_all();
        }
        if position < state.start {
            return Lookup::Behind;
        }
        if position >= state.end {
            return Lookup::Ahead;
        }
        let at = state.chunks.partition_point(|c| c.end <= position);
        match state.chunks.get(at) {
            Some(c) if c.start <= position => Lookup::Chunk(c.clone()),
            _ => Lookup::Behind,
        }
    }

    /// Reads and parses from `position` on the caller's thread (the sink is
    /// behind the window); `None` at the head.
    pub fn read_own(&self, wal: &Wal, position: Lsn) -> Result<Option<Chunk>, cairn_wal::Error> {
        let chunk = read_chunk(wal, position)?;
        if chunk.is_some() {
            self.hub.own_reads.fetch_add(1, Ordering::Relaxed);
        }
        Ok(chunk)
    }

    /// Waits until the router has read past `position`, the hub stops, or
    /// `timeout` passes.
    pub fn wait(&self, position: Lsn, timeout: Duration) {
        let mut state = self.hub.lock();
        if let Some(r) = state.readers.get_mut(&self.id) {
            r.position = position;
            r.waiting = true;
        }
        self.hub.readers_moved.notify_all();
        if state.end <= position && !state.stopped {
            state = self
                .hub
                .published
                .wait_timeout(state, timeout)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if let Some(r) = state.readers.get_mut(&self.id) {
            r.waiting = false;
        }
    }
}

impl Drop for HubReader {
    fn drop(&mut self) {
        self.hub.lock().readers.remove(&self.id);
        self.hub.readers_moved.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Idle sinks at the head sleep until their timeout: one going to wait
    /// must not wake the others (which would go to wait and wake it back,
    /// a loop that kept an idle server's cores busy).
    #[test]
    fn idle_sinks_wait_without_waking_each_other() {
        let hub = Arc::new(Hub::new(Lsn::default(), 1024));
        let waits: Vec<_> = (0..3)
            .map(|_| {
                let reader = hub.join(Lsn::default());
                std::thread::spawn(move || {
                    let until = std::time::Instant::now() + Duration::from_millis(300);
                    let mut waits = 0;
                    while std::time::Instant::now() < until {
                        reader.wait(Lsn::default(), Duration::from_millis(150));
                        waits += 1;
                    }
                    waits
                })
            })
            .collect();
        for waits in waits {
            // Two or three timeouts in 300 ms; spinning sinks made thousands.
            let waits = waits.join().unwrap();
            assert!(waits <= 20, "{waits} waits in 300 ms");
        }
    }

    /// Records offered from `start` on, consecutive, with these payload lengths.
    fn group(start: Lsn, lens: &[usize]) -> Vec<Fresh> {
        let mut lsn = start;
        lens.iter()
            .map(|len| {
                let record = WalRecord {
                    lsn,
                    next_lsn: lsn + 10 + *len as Lsn,
                    payload: Bytes::from(vec![b'x'; *len]),
                };
                lsn = record.next_lsn;
                Fresh {
                    record,
                    event_time: DateTime::UNIX_EPOCH,
                }
            })
            .collect()
    }

    fn lsns(records: &[Fresh]) -> Vec<Lsn> {
        records.iter().map(|f| f.record.lsn).collect()
    }

    /// The router takes offered records only when they are the next in WAL
    /// order: from a group's start or from inside it, never across a gap
    /// (something appended between two groups is read from the WAL), and
    /// records before the position are dropped.
    #[test]
    fn test_offered_records_are_taken_only_when_next() {
        let hub = Hub::new(0, 1024);
        let first = group(100, &[5, 5, 5]); // 100, 115, 130; ends at 145
        let second = group(200, &[5, 5]); // 200, 215; a gap from 145 to 200
        hub.offer(first);
        hub.offer(second);
        let mut tail = hub.tail.lock().unwrap();
        assert!(tail.take(50).is_none(), "before the first group");
        assert_eq!(lsns(&tail.take(115).unwrap()), vec![115, 130]);
        assert!(tail.take(145).is_none(), "the gap is read from the WAL");
        assert_eq!(tail.bytes, 10);
        assert_eq!(lsns(&tail.take(200).unwrap()), vec![200, 215]);
        assert!(tail.groups.is_empty());
        assert_eq!(tail.bytes, 0);

        drop(tail);
        hub.offer(group(300, &[5, 5]));
        let mut tail = hub.tail.lock().unwrap();
        assert!(tail.take(330).is_none(), "past every offered record");
        assert!(tail.groups.is_empty());
        assert_eq!(tail.bytes, 0);
    }

    /// A large group is taken a chunk at a time, and the hub keeps at most
    /// [`TAIL_BYTES`] of offered records, dropping the oldest.
    #[test]
    fn test_offered_records_are_bounded() {
        let hub = Hub::new(0, 1024);
        hub.offer(group(0, &vec![1; READ_RECORDS + 5]));
        let mut tail = hub.tail.lock().unwrap();
        let taken = tail.take(0).unwrap();
        assert_eq!(taken.len(), READ_RECORDS);
        let rest = tail.take(taken.last().unwrap().record.next_lsn).unwrap();
        assert_eq!(rest.len(), 5);
        drop(tail);

        let big = READ_BYTES - 100;
        let many = TAIL_BYTES / big + 2;
        let mut lsn = 1_000;
        for _ in 0..many {
            let records = group(lsn, &[big, 200]);
            lsn = records.last().unwrap().record.next_lsn;
            hub.offer(records);
        }
        let mut tail = hub.tail.lock().unwrap();
        assert!(tail.bytes <= TAIL_BYTES);
        assert!(tail.take(1_000).is_none(), "the oldest were dropped");
        let newest = tail.groups.back().unwrap()[0].record.lsn;
        // A chunk holds at least one record, and stops before READ_BYTES.
        assert_eq!(tail.take(newest).unwrap().len(), 1);
    }

    /// An ordinary record as ingest stores it.
    fn normalized_record() -> cairn_model::record::NormalizedRecord<'static> {
        let raw = r#"{"eventTime":"2024-05-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","userIdentity":{"type":"Root","arn":"arn:aws:iam::123456789012:root"},"resources":[{"ARN":"arn:aws:s3:::b/k"}]}"#;
        let defaults = cairn_model::IngestDefaults {
            account_id: "123456789012",
            region: "us-east-1",
        };
        cairn_model::record::normalize_record(raw, &defaults).unwrap()
    }

    /// A record the committer offers is routed as the same record read from
    /// the WAL is: the same view and event time, its view not decoded by the
    /// router; a stored view that does not decode is parsed, not skipped.
    #[test]
    fn test_fresh_records_route_as_read_ones() {
        let record = normalized_record();
        let payload = Bytes::from(envelope::encode_record(5, 6, &record));
        let wal_record = |payload: &Bytes| WalRecord {
            lsn: 0,
            next_lsn: 1,
            payload: payload.clone(),
        };
        let entry = |chunk: Chunk| match chunk.entries.into_iter().next().map(|e| e.item) {
            Some(Item::Record(r)) => r,
            other => panic!("not a record: {other:?}"),
        };
        let read = entry(parse_chunk(vec![wal_record(&payload)]).unwrap());
        let fresh = entry(
            parse_fresh(vec![Fresh {
                record: wal_record(&payload),
                event_time: record.event_time,
            }])
            .unwrap(),
        );
        assert_eq!(fresh.event_time, read.event_time);
        assert_eq!(fresh.event_time, Some(record.event_time));
        assert_eq!(format!("{:?}", fresh.view()), format!("{:?}", read.view()));
        assert!(fresh.view().is_some());

        // Damage the stored view's first tag (its event version): the fresh
        // path did not decode it, so the sink's decode falls back to a parse.
        let ViewSource::Stored { at, .. } = fresh.view else {
            panic!("no stored view");
        };
        let mut damaged = payload.to_vec();
        damaged[at as usize] = 0xff;
        let damaged = Bytes::from(damaged);
        let fresh = entry(
            parse_fresh(vec![Fresh {
                record: wal_record(&damaged),
                event_time: record.event_time,
            }])
            .unwrap(),
        );
        let parsed = RecordView::parse(&record.json).unwrap();
        assert_eq!(format!("{:?}", fresh.view()), format!("{:?}", Some(parsed)));
    }

    /// A record of the current envelope is decoded from its stored view; one
    /// of version 3 (written before views were stored) is parsed, to the
    /// same view; both give the same event time.
    #[test]
    fn test_stored_and_parsed_views_agree() {
        let record = normalized_record();
        let current = envelope::encode_record(5, 6, &record);
        let mut version_3 = vec![3, 1];
        version_3.extend_from_slice(&5u64.to_le_bytes());
        version_3.extend_from_slice(&6u128.to_le_bytes());
        version_3.extend_from_slice(record.json.as_bytes());
        let chunk = parse_chunk(
            [current, version_3]
                .into_iter()
                .enumerate()
                .map(|(i, p)| WalRecord {
                    lsn: i as Lsn,
                    next_lsn: i as Lsn + 1,
                    payload: Bytes::from(p),
                })
                .collect(),
        )
        .unwrap();
        let entries: Vec<&RecordEntry> = chunk
            .entries
            .iter()
            .map(|e| match &e.item {
                Item::Record(r) => r,
                other => panic!("not a record: {other:?}"),
            })
            .collect();
        assert!(matches!(entries[0].view, ViewSource::Stored { .. }));
        assert!(matches!(entries[1].view, ViewSource::Parsed(Some(_))));
        let views: Vec<String> = entries
            .iter()
            .map(|e| format!("{:?}", e.view().unwrap()))
            .collect();
        assert_eq!(views[0], views[1]);
        assert!(views[0].contains("arn:aws:s3:::b/k"), "{}", views[0]);
        assert_eq!(entries[0].event_time, entries[1].event_time);
        assert!(entries[0].event_time.is_some());
        assert_eq!(entries[0].json(), record.json.as_bytes());
    }
}
