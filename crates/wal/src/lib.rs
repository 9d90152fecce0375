//! A segmented, append-only write-ahead log: bytes in, bytes out.
//!
//! Cairn acknowledges an ingested record only once it is in this log and on
//! disk; sinks then read the log at their own pace and say, by committing a
//! cursor, how far they have safely delivered. The log knows nothing of what
//! the bytes mean.
//!
//! # Model
//!
//! * The log is a sequence of **records** (opaque byte strings of at most
//!   [`MAX_RECORD_BYTES`]). Each record has an [`Lsn`]: the logical byte
//!   position where its frame starts, counted across segments and excluding
//!   segment headers. LSNs only grow; the **head** is the LSN just past the
//!   last durable record, and is where the next record will go.
//! * The bytes live in **segments**: files holding a contiguous LSN range.
//!   Only the last, the **active** segment, is written; the others are
//!   **sealed** and never change again until they are removed whole.
//! * **Consumers** are named cursors: an LSN (where the consumer will resume)
//!   and an opaque state blob the consumer wants saved atomically with it.
//!   A sealed segment is removed once every consumer is past its end.
//!
//! # On-disk format
//!
//! One directory holds everything; every file starts with a magic and a
//! version, and all integers are little endian.
//!
//! ```text
//! <dir>/00000000000000000000.wal   segments, named by base LSN (20 digits, so
//! <dir>/00000000000001048576.wal   names sort like LSNs)
//! <dir>/cursors                    the consumers' cursors
//! <dir>/*.tmp                      files being written; removed on open
//!
//! struct Segment {
//!     magic:      [u8; 8] = b"CAIRNWAL",
//!     version:    u32     = 1,
//!     base_lsn:   u64,            // equals the number in the file name
//!     header_crc: u32,            // crc32c of the 20 bytes above
//!     frames:     [Frame],        // the first frame has LSN base_lsn
//! }
//!
//! struct Frame {                   // LSN of the next frame = LSN + 8 + len
//!     len:     u32,               // payload bytes, <= MAX_RECORD_BYTES
//!     crc:     u32,               // crc32c(len as 4 LE bytes ++ payload)
//!     payload: [u8; len],
//! }
//!
//! struct Cursors {
//!     magic:   [u8; 8] = b"CAIRNCUR",
//!     version: u32     = 2,       // 1 had no durable_head (read as 0)
//!     count:   u32,
//!     durable_head: u64,          // the head when written: the log holds at least this
//!     entries: [Entry; count],    // sorted by name
//!     crc:     u32,               // crc32c of every byte above
//! }
//!
//! struct Entry {
//!     name_len: u32,
//!     name:     [u8; name_len],   // UTF-8
//!     lsn:      u64,
//!     has_state: u8,              // 0: no state, 1: state follows
//!     state_len: u32,             // present only if has_state == 1
//!     state:    [u8; state_len],
//! }
//! ```
//!
//! The frame checksum covers the length too: with `crc32c(payload)` alone, a
//! run of zeros (which some file systems leave at the end of a file after a
//! crash) would read as valid empty records, because `crc32c(b"") == 0`.
//!
//! # Invariants
//!
//! 1. Segments are contiguous: a sealed segment ends exactly where the next
//!    one begins (`base + file_len - 24 == next.base`).
//! 2. A record never spans segments. A segment is sealed when the next record
//!    would take it past [`WalConfig::segment_bytes`], unless it holds no
//!    record yet (so a record larger than a segment gets a segment of its own).
//!    One [`Wal::append`] call may start a new segment midway.
//! 3. A sealed segment was fsynced before its successor was created, so only
//!    the active segment can have a torn tail.
//! 4. A segment file exists only with a whole, durable header: it is written
//!    as `<name>.tmp`, fsynced, renamed, and the directory fsynced.
//! 5. The cursors file is replaced the same way, so a torn cursors file is
//!    never observed; a bad one is corruption, not a crash artefact.
//! 6. Readers only see records below the head, and the head only covers
//!    fsynced bytes. A consumer's cursor is never above the head, nor is the
//!    durable head recorded in the cursors file (written with every cursor
//!    commit and when the log is closed). A log found shorter than either was
//!    cut (acknowledged records are gone): the open refuses it as corruption
//!    naming the newest segment, where a torn tail past both is truncated.
//!
//! # Writing: group commit
//!
//! An append runs in two phases. Under the writer lock it checks the disk
//! bound, writes its frames (one `write` per segment touched) and notes where
//! its last record ends. Then it waits until that end is durable: if no thread
//! is fsyncing, it becomes the syncer, reads how far the log has been written,
//! fsyncs outside every lock, and publishes the new durable head to all the
//! waiters at once (a condition variable); otherwise it waits for the syncer
//! in flight and checks again. Writers that arrive during an fsync therefore
//! share the next one, so under load there are far fewer fsyncs than appends
//! ([`Wal::stats`] counts both).
//!
//! An I/O error while writing or fsyncing stops the log from accepting more
//! appends (it is *poisoned*): after a failed fsync the kernel may have
//! dropped the dirty pages, so nothing written since the last good fsync can
//! be trusted to be on disk. Reads keep working up to the durable head;
//! reopening the log recovers from what is really on disk. An append that
//! returns an error may still have some of its records appear after a reopen
//! (the caller never saw them acknowledged, so it retries: at least once).
//!
//! # Recovery
//!
//! [`Wal::open`] removes leftover `*.tmp` files, checks every segment header,
//! and scans the active segment frame by frame. The first frame that is
//! incomplete (its header or payload runs past the end of the file), claims a
//! length above the record cap, or fails its checksum ends the log: the file
//! is truncated there and fsynced, and a warning is logged. Everything after
//! that point had not been acknowledged (it was never fsynced). A whole frame
//! with a bad checksum that is *followed by a valid frame* is not a torn tail
//! but damage to durable bytes: the open fails with [`Error::Corruption`]
//! rather than truncate acknowledged records away.
//!
//! Damage is loud, never silent. The open also fails with
//! [`Error::Corruption`], naming the file, when a sealed segment has a bad
//! frame (every sealed segment is scanned whole), when segments are not
//! contiguous (one was deleted or truncated), when a consumer's cursor lies
//! below the oldest segment (segments it needs are gone), and when segments
//! exist without a cursors file (a new log writes its empty cursors file
//! first, so a missing one is damage). Frames are checked again on every
//! read, so damage that appears while the log is open is reported by the
//! read that meets it. A consumer whose cursor is above the recovered head is
//! moved back to the head, with a warning.
//!
//! # Reading
//!
//! [`Wal::read`] takes a position that must be a record boundary or the head.
//! Each segment keeps a sparse index (one record boundary per 64 KiB); a read
//! walks frame headers from the nearest indexed boundary to its position to
//! check it, so a position inside a record is [`Error::InvalidPosition`]
//! rather than garbage. Segments sealed before the log was opened build their
//! index on first read. Reads use positional I/O on shared file handles and
//! take no lock while touching the disk, so they never block appends.
//!
//! # Removal and the disk bound
//!
//! After every commit (and on open, on removing a consumer, and after an
//! append that started a segment) every sealed segment whose end is at or
//! below the lowest consumer cursor is deleted; with no consumers at all, the
//! head stands in for that cursor. The active segment is never deleted.
//! [`WalConfig::max_disk_bytes`] bounds the bytes of all segment files: an
//! append that would pass it is refused whole with [`Error::Full`] before
//! anything is written. Keep it several segments above `segment_bytes`, since
//! the active segment always stays.
//!
//! # Concurrency
//!
//! [`Wal`] is `Send + Sync`; share it behind an `Arc`. Its locks are always
//! taken in this order, so they cannot deadlock: consumers → writer →
//! segments → sync. Only one [`Wal`] may have a directory open at a time.
//!
//! # Platform
//!
//! Unix only (positional reads and writes, directory fsync). On macOS,
//! `fsync` does not flush the drive's own cache.

#[cfg(not(unix))]
compile_error!("cairn-wal needs Unix positional file I/O and directory fsync");

mod format;
pub mod salvage;
mod segment;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use format::MAX_RECORD_BYTES;
use format::{
    CURSORS_FILE, SEGMENT_HEADER_LEN, TMP_SUFFIX, decode_cursors, encode_cursors, encode_frame,
    frame_len, parse_segment_file_name,
};
pub use salvage::{LOST_RECORD_MARK, SalvageReport, salvage};
use segment::{Limits, Segment, sync_dir, write_all_at};

/// A log position: the byte offset of a frame in the log, counted across
/// segments (segment headers excluded). The LSN of a record is where its
/// frame starts; LSNs only grow.
pub type Lsn = u64;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The append would take the segments past the disk bound; nothing was
    /// written. Retry once consumers have advanced and segments were removed.
    #[error("write-ahead log is full: {needed} bytes needed, the limit is {limit}")]
    Full {
        /// Bytes the segments would occupy after the append.
        needed: u64,
        /// [`WalConfig::max_disk_bytes`].
        limit: u64,
    },
    /// A file operation failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Bytes on disk are not what this crate wrote.
    #[error("corrupt write-ahead log file {} at offset {offset}: {reason}", segment.display())]
    Corruption {
        /// The damaged file (a segment, or the cursors file).
        segment: PathBuf,
        /// Byte offset in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The position is neither a record boundary nor the head, or is above
    /// the head.
    #[error("LSN {lsn} is not a record boundary at or below the head")]
    InvalidPosition {
        /// The position asked for.
        lsn: Lsn,
    },
    /// The position is below the oldest record still kept.
    #[error("LSN {lsn} was removed; the oldest kept is {oldest}")]
    Truncated {
        /// The position asked for.
        lsn: Lsn,
        /// [`Wal::oldest_lsn`] at the time.
        oldest: Lsn,
    },
    /// No consumer has this name.
    #[error("no write-ahead log consumer named {name:?}")]
    UnknownConsumer {
        /// The name asked for.
        name: String,
    },
    /// A payload starts with [`LOST_RECORD_MARK`], which only salvage
    /// writes; nothing was written.
    #[error("payloads starting with byte 0xFF are reserved for lost-record markers")]
    ReservedPayload,
    /// A record is larger than [`MAX_RECORD_BYTES`]; nothing was written.
    #[error("record of {len} bytes exceeds the limit of {max}")]
    RecordTooLarge {
        /// Its length.
        len: usize,
        /// [`MAX_RECORD_BYTES`].
        max: usize,
    },
}

/// How to open a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalConfig {
    /// The directory holding the segments and the cursors file; created if
    /// missing.
    pub dir: PathBuf,
    /// A segment is sealed when the next record would make its file larger
    /// than this (header included). Default 64 MiB.
    pub segment_bytes: u64,
    /// Appends that would make all segment files together larger than this are
    /// refused with [`Error::Full`]. Default 8 GiB.
    pub max_disk_bytes: u64,
}

impl WalConfig {
    /// The defaults for a log in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WalConfig {
            dir: dir.into(),
            segment_bytes: 64 * 1024 * 1024,
            max_disk_bytes: 8 * 1024 * 1024 * 1024,
        }
    }
}

/// What an append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendReceipt {
    /// LSN of the first record (the head before the call, if no other append
    /// came in between).
    pub first_lsn: Lsn,
    /// LSN just past the last record: the head once this call returned,
    /// unless other appends have since moved it further.
    pub end_lsn: Lsn,
    /// LSN of each record, in the order given.
    pub lsns: Vec<Lsn>,
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// Where the record starts.
    pub lsn: Lsn,
    /// Where the next record starts: the position to read or commit after
    /// this record has been handled.
    pub next_lsn: Lsn,
    /// The bytes appended: a slice of the buffer the read filled (up to
    /// 256 KiB, shared by the records read with it), not a copy. Whoever keeps
    /// a few records of many reads for long copies them out.
    pub payload: bytes::Bytes,
}

impl WalRecord {
    /// Whether this is a lost-record marker written by [`salvage`] over
    /// damaged bytes: one or more records were lost here.
    pub fn is_lost_record_marker(&self) -> bool {
        self.payload.first() == Some(&LOST_RECORD_MARK)
    }
}

/// A consumer's saved position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Where the consumer resumes: every record below it is handled.
    pub lsn: Lsn,
    /// Whatever the consumer saved with it.
    pub state: Option<Vec<u8>>,
}

/// Counters, since the log was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalStats {
    /// Successful [`Wal::append`] calls that wrote at least one record.
    pub appends: u64,
    /// Records those calls wrote.
    pub records: u64,
    /// `fsync`s of segment files (group commits and segment seals).
    pub fsyncs: u64,
}

/// The log. See the crate documentation for how it works.
pub struct Wal {
    config: WalConfig,
    /// Every segment on disk, by base LSN; the last is the active one.
    segments: RwLock<BTreeMap<Lsn, Arc<Segment>>>,
    /// Serializes writes.
    writer: Mutex<Writer>,
    /// Group-commit state; `synced_cv` wakes waiters when it changes.
    sync: Mutex<SyncState>,
    synced_cv: Condvar,
    /// The durable head (mirrors `SyncState::synced` for lock-free reads).
    durable: AtomicU64,
    /// Bytes of all segment files.
    disk_bytes: AtomicU64,
    /// The cursors, as they are in the cursors file.
    consumers: Mutex<BTreeMap<String, Checkpoint>>,
    appends: AtomicU64,
    records: AtomicU64,
    fsyncs: AtomicU64,
    /// Test hook: the next segment creation fails with EMFILE.
    #[cfg(test)]
    fail_next_segment: std::sync::atomic::AtomicBool,
    /// Test hook: every successful segment fsync, as (file, bytes of the file
    /// written when the fsync began: what it made durable at least).
    #[cfg(test)]
    synced_log: Mutex<Vec<(PathBuf, u64)>>,
}

/// How writing an append failed.
enum WriteFailure {
    /// The append was undone: the log is as it was, the caller may retry.
    Undone(Error),
    /// The files are in an unknown state: the log must refuse appends.
    Poison(Error),
}

impl From<Error> for WriteFailure {
    fn from(e: Error) -> Self {
        WriteFailure::Poison(e)
    }
}

/// What the writer lock protects.
struct Writer {
    active: Arc<Segment>,
    /// LSN just past the last record of the last complete append: what a
    /// syncer may declare durable once it has fsynced `active`.
    end: Lsn,
}

/// What the sync lock protects.
struct SyncState {
    /// The durable head.
    synced: Lsn,
    /// Whether a thread is fsyncing on everyone's behalf right now.
    syncing: bool,
    /// Set once a write or fsync failed: the log accepts no more appends.
    failed: Option<Failure>,
}

/// A remembered I/O failure (an `io::Error` cannot be cloned to every caller).
#[derive(Debug, Clone)]
struct Failure {
    path: PathBuf,
    kind: io::ErrorKind,
    message: String,
}

impl Failure {
    fn to_error(&self) -> Error {
        Error::Io {
            path: self.path.clone(),
            source: io::Error::new(
                self.kind,
                format!(
                    "the log stopped accepting appends after an earlier failure \
                     (reopen it to recover): {}",
                    self.message
                ),
            ),
        }
    }
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.config.dir)
            .field("oldest_lsn", &self.oldest_lsn())
            .field("head", &self.head())
            .field("disk_bytes", &self.disk_bytes())
            .finish_non_exhaustive()
    }
}

/// Locks a mutex. A poisoned lock means a thread panicked mid-update of the
/// log's bookkeeping; carrying on could acknowledge records that are not
/// durable, so the panic spreads instead.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("a thread panicked while holding a WAL lock")
}

fn read_lock<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read()
        .expect("a thread panicked while holding a WAL lock")
}

fn write_lock<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .expect("a thread panicked while holding a WAL lock")
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

impl Wal {
    /// Opens the log in `config.dir`, creating the directory if needed, and
    /// recovers it: see "Recovery" in the crate documentation.
    pub fn open(config: WalConfig) -> Result<Wal> {
        let dir = config.dir.clone();
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(io_error(&dir))?;
            // The new directory's own entry must survive a crash too.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }

        let mut bases = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_error(&dir))? {
            let entry = entry.map_err(io_error(&dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(TMP_SUFFIX) {
                // An interrupted atomic replace; the real file is intact.
                fs::remove_file(entry.path()).map_err(io_error(&entry.path()))?;
            } else if let Some(base) = parse_segment_file_name(name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();

        let cursors_path = dir.join(CURSORS_FILE);
        let (consumers, recorded_head) = match fs::read(&cursors_path) {
            Ok(bytes) => decode_cursors(&bytes).map_err(|reason| Error::Corruption {
                segment: cursors_path.clone(),
                offset: 0,
                reason,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound && bases.is_empty() => {
                // A new log: the cursors file exists from its first moment, so
                // that a log found later without one is known to be damaged.
                let empty = BTreeMap::new();
                write_cursors_file(&dir, &empty, 0)?;
                (empty, 0)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::Corruption {
                    segment: cursors_path.clone(),
                    offset: 0,
                    reason: "the cursors file is missing while segments exist: where each \
                             consumer stopped is lost"
                        .to_owned(),
                });
            }
            Err(e) => return Err(io_error(&cursors_path)(e)),
        };

        let mut segments = BTreeMap::new();
        for base in &bases {
            let path = dir.join(format::segment_file_name(*base));
            segments.insert(*base, Arc::new(Segment::open(path, *base)?));
        }
        let active = match segments.last_key_value() {
            Some((_, active)) => {
                let active = Arc::clone(active);
                active.recover_tail()?;
                active
            }
            None => {
                // A fresh log. Starting above every cursor keeps LSNs growing
                // even if someone deleted the segments but kept the cursors.
                let base = consumers.values().map(|c| c.lsn).max().unwrap_or(0);
                let active = Arc::new(Segment::create(&dir, base)?);
                segments.insert(base, Arc::clone(&active));
                active
            }
        };
        let head = active.base + active.data_len();

        // Every sealed segment is checked whole: a gap between segments (one
        // deleted or truncated) or a damaged frame stops the open here, loudly,
        // instead of stalling every consumer that later reads it.
        for (segment, next) in segments.values().zip(segments.keys().skip(1)) {
            let end = segment.base + segment.data_len();
            if end != *next {
                return Err(Error::Corruption {
                    segment: segment.path.clone(),
                    offset: segment.file_len.load(Ordering::Acquire),
                    reason: format!(
                        "the segment ends at LSN {end} but the next one begins at LSN {next}: \
                         a segment was deleted or truncated"
                    ),
                });
            }
            segment.verify_sealed(next - segment.base)?;
        }
        if let (Some(oldest), Some((name, cursor))) = (
            segments.keys().next().copied(),
            consumers.iter().min_by_key(|(_, c)| c.lsn),
        ) && cursor.lsn < oldest
        {
            return Err(Error::Corruption {
                segment: dir.join(format::segment_file_name(oldest)),
                offset: 0,
                reason: format!(
                    "consumer {name:?} resumes at LSN {} but the oldest segment begins at LSN \
                     {oldest}: segments it still needs were deleted",
                    cursor.lsn
                ),
            });
        }

        if recorded_head > head {
            return Err(Error::Corruption {
                segment: active.path.clone(),
                offset: active.file_len.load(Ordering::Acquire),
                reason: format!(
                    "the log was durable up to LSN {recorded_head} but ends at LSN {head}: \
                     acknowledged records were cut off (the segment was truncated)"
                ),
            });
        }
        // A consumer only ever reads durable records, so a cursor past the
        // recovered head means fsynced (acknowledged) records are gone: the
        // newest segment was truncated or damaged, not torn.
        if let Some((name, cursor)) = consumers.iter().max_by_key(|(_, c)| c.lsn)
            && cursor.lsn > head
        {
            return Err(Error::Corruption {
                segment: active.path.clone(),
                offset: active.file_len.load(Ordering::Acquire),
                reason: format!(
                    "consumer {name:?} had read up to LSN {} but the log ends at LSN {head}: \
                     acknowledged records were cut off (the segment was truncated)",
                    cursor.lsn
                ),
            });
        }

        let disk_bytes = segments
            .values()
            .map(|s| s.file_len.load(Ordering::Acquire))
            .sum();
        let wal = Wal {
            config,
            segments: RwLock::new(segments),
            writer: Mutex::new(Writer { active, end: head }),
            sync: Mutex::new(SyncState {
                synced: head,
                syncing: false,
                failed: None,
            }),
            synced_cv: Condvar::new(),
            durable: AtomicU64::new(head),
            disk_bytes: AtomicU64::new(disk_bytes),
            consumers: Mutex::new(BTreeMap::new()),
            appends: AtomicU64::new(0),
            records: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            #[cfg(test)]
            fail_next_segment: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            synced_log: Mutex::new(Vec::new()),
        };
        {
            let mut guard = lock(&wal.consumers);
            *guard = consumers;
            wal.remove_segments(&guard);
        }
        tracing::debug!(dir = %dir.display(), head, oldest = wal.oldest_lsn(), "WAL opened");
        Ok(wal)
    }

    /// Appends `records` in order and returns once all of them are durable
    /// (fsynced). Concurrent callers share fsyncs. On [`Error::Full`] or
    /// [`Error::RecordTooLarge`] nothing was written. Payloads starting with
    /// [`LOST_RECORD_MARK`] are reserved for salvage and refused
    /// ([`Error::ReservedPayload`]).
    pub fn append(&self, records: &[&[u8]]) -> Result<AppendReceipt> {
        if let Some(record) = records.iter().find(|r| r.len() > MAX_RECORD_BYTES) {
            return Err(Error::RecordTooLarge {
                len: record.len(),
                max: MAX_RECORD_BYTES,
            });
        }
        if records.iter().any(|r| r.first() == Some(&LOST_RECORD_MARK)) {
            return Err(Error::ReservedPayload);
        }
        if records.is_empty() {
            let head = self.head();
            return Ok(AppendReceipt {
                first_lsn: head,
                end_lsn: head,
                lsns: Vec::new(),
            });
        }

        let (receipt, started_segment) = {
            let mut writer = lock(&self.writer);
            if let Some(failure) = &lock(&self.sync).failed {
                return Err(failure.to_error());
            }
            let (added, rolls) = self.layout(&writer, records);
            let needed = self.disk_bytes().saturating_add(added);
            if needed > self.config.max_disk_bytes {
                return Err(Error::Full {
                    needed,
                    limit: self.config.max_disk_bytes,
                });
            }
            match self.write(&mut writer, records, &rolls) {
                Ok(receipt) => (receipt, rolls.iter().any(|r| *r)),
                Err(WriteFailure::Undone(e)) => {
                    tracing::warn!(error = %e, "WAL segment could not be started; the append was undone and may be retried");
                    return Err(e);
                }
                Err(WriteFailure::Poison(e)) => {
                    self.poison(&e);
                    return Err(e);
                }
            }
        };
        self.wait_durable(receipt.end_lsn)?;
        if started_segment {
            // Without consumers nothing else would ever remove sealed
            // segments. After the wait, so the head covers the sealed one.
            self.remove_segments(&lock(&self.consumers));
        }
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(receipt)
    }

    /// Decides, without writing, which records start a new segment, and how
    /// many bytes the segment files grow by.
    fn layout(&self, writer: &Writer, records: &[&[u8]]) -> (u64, Vec<bool>) {
        let mut file_len = SEGMENT_HEADER_LEN + (writer.end - writer.active.base);
        let mut added = 0;
        let rolls = records
            .iter()
            .map(|record| {
                let frame = frame_len(record.len());
                let roll =
                    file_len > SEGMENT_HEADER_LEN && file_len + frame > self.config.segment_bytes;
                if roll {
                    file_len = SEGMENT_HEADER_LEN;
                    added += SEGMENT_HEADER_LEN;
                }
                file_len += frame;
                added += frame;
                roll
            })
            .collect();
        (added, rolls)
    }

    /// Writes the frames of one append, sealing segments where `rolls` says.
    /// A failure to start the next segment (EMFILE, ENOSPC: the file system
    /// refused a new file) is undone when it can be, leaving the log as it was
    /// before the append; any other error leaves the files in an unknown
    /// state and the caller poisons the log.
    fn write(
        &self,
        writer: &mut Writer,
        records: &[&[u8]],
        rolls: &[bool],
    ) -> std::result::Result<AppendReceipt, WriteFailure> {
        let first_lsn = writer.end;
        let mut lsn = writer.end;
        let mut lsns = Vec::with_capacity(records.len());
        let mut buf = Vec::new();
        for (record, roll) in records.iter().zip(rolls) {
            if *roll {
                self.write_buf(&writer.active, &mut buf, lsn)?;
                // Invariant 3: the sealed segment is durable before its
                // successor exists.
                let sealed = &writer.active;
                self.sync_segment(sealed).map_err(io_error(&sealed.path))?;
                let next = match self.create_segment(lsn) {
                    Ok(next) => Arc::new(next),
                    // Nothing of this append is acknowledged: if all of it
                    // went to the segment active when it began, cut it off
                    // again, and the caller may simply retry.
                    Err(e) if sealed.base <= first_lsn => {
                        return match sealed.forget_from(first_lsn - sealed.base) {
                            Ok(()) => {
                                self.disk_bytes.fetch_sub(lsn - first_lsn, Ordering::AcqRel);
                                Err(WriteFailure::Undone(e))
                            }
                            Err(_) => Err(WriteFailure::Poison(e)),
                        };
                    }
                    Err(e) => return Err(WriteFailure::Poison(e)),
                };
                write_lock(&self.segments).insert(lsn, Arc::clone(&next));
                self.disk_bytes
                    .fetch_add(SEGMENT_HEADER_LEN, Ordering::AcqRel);
                writer.active = next;
            }
            writer.active.note_boundary(lsn - writer.active.base);
            lsns.push(lsn);
            encode_frame(&mut buf, record);
            lsn += frame_len(record.len());
        }
        self.write_buf(&writer.active, &mut buf, lsn)?;
        writer.end = lsn;
        Ok(AppendReceipt {
            first_lsn,
            end_lsn: lsn,
            lsns,
        })
    }

    /// Starts a new segment at `base` (the test hook can make it fail).
    fn create_segment(&self, base: Lsn) -> Result<Segment> {
        #[cfg(test)]
        if self.fail_next_segment.swap(false, Ordering::AcqRel) {
            return Err(Error::Io {
                path: self.config.dir.clone(),
                source: io::Error::from_raw_os_error(24),
            });
        }
        Segment::create(&self.config.dir, base)
    }

    /// Makes everything written to `segment` so far durable: the one place a
    /// segment's data is fsynced, counted in [`WalStats::fsyncs`] (and, in
    /// tests, recorded with how much of the file it covered).
    fn sync_segment(&self, segment: &Segment) -> io::Result<()> {
        #[cfg(test)]
        let covered = segment.file_len.load(Ordering::Acquire);
        segment.file.sync_data()?;
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        #[cfg(test)]
        lock(&self.synced_log).push((segment.path.clone(), covered));
        Ok(())
    }

    /// Writes `buf` (whole frames) to the end of `segment`, which then ends at
    /// `end`, and empties `buf`.
    fn write_buf(&self, segment: &Segment, buf: &mut Vec<u8>, end: Lsn) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let file_end = SEGMENT_HEADER_LEN + (end - segment.base);
        let offset = file_end - buf.len() as u64;
        write_all_at(&segment.file, buf, offset).map_err(io_error(&segment.path))?;
        segment.file_len.store(file_end, Ordering::Release);
        self.disk_bytes
            .fetch_add(buf.len() as u64, Ordering::AcqRel);
        buf.clear();
        Ok(())
    }

    /// Stops the log from accepting appends after a failed write or fsync.
    fn poison(&self, error: &Error) {
        let failure = match error {
            Error::Io { path, source } => Failure {
                path: path.clone(),
                kind: source.kind(),
                message: source.to_string(),
            },
            other => Failure {
                path: self.config.dir.clone(),
                kind: io::ErrorKind::Other,
                message: other.to_string(),
            },
        };
        tracing::error!(error = %error, "WAL write failed; refusing further appends until reopened");
        let mut sync = lock(&self.sync);
        sync.failed.get_or_insert(failure);
        self.synced_cv.notify_all();
    }

    /// Waits until everything below `end` is durable, fsyncing on behalf of
    /// every writer so far if no other thread is doing it already.
    fn wait_durable(&self, end: Lsn) -> Result<()> {
        let mut sync = lock(&self.sync);
        loop {
            if sync.synced >= end {
                return Ok(());
            }
            if let Some(failure) = &sync.failed {
                return Err(failure.to_error());
            }
            if sync.syncing {
                sync = self
                    .synced_cv
                    .wait(sync)
                    .expect("a thread panicked while holding a WAL lock");
                continue;
            }
            sync.syncing = true;
            drop(sync);
            // Whatever was written by now, by anyone, is covered by this fsync.
            let (target, active) = {
                let writer = lock(&self.writer);
                (writer.end, Arc::clone(&writer.active))
            };
            let result = self.sync_segment(&active);
            sync = lock(&self.sync);
            sync.syncing = false;
            match result {
                Ok(()) => {
                    if target > sync.synced {
                        sync.synced = target;
                        self.durable.store(target, Ordering::Release);
                    }
                }
                Err(source) => {
                    tracing::error!(segment = %active.path.display(), error = %source,
                        "WAL fsync failed; refusing further appends until reopened");
                    sync.failed.get_or_insert(Failure {
                        path: active.path.clone(),
                        kind: source.kind(),
                        message: source.to_string(),
                    });
                }
            }
            self.synced_cv.notify_all();
        }
    }

    /// The LSN just past the last durable record: where the next record goes,
    /// and where a reader that has read everything stands.
    pub fn head(&self) -> Lsn {
        self.durable.load(Ordering::Acquire)
    }

    /// The LSN of the oldest record still kept (the head, if none is).
    pub fn oldest_lsn(&self) -> Lsn {
        read_lock(&self.segments)
            .first_key_value()
            .map_or_else(|| self.head(), |(base, _)| *base)
    }

    /// Bytes of all segment files on disk: what [`WalConfig::max_disk_bytes`]
    /// bounds.
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes.load(Ordering::Acquire)
    }

    /// Why the log refuses appends, if a write or fsync failed (it stays so
    /// until reopened): the file and the error. A server reports this as
    /// unhealthy rather than answering errors behind a green health check.
    pub fn failure(&self) -> Option<String> {
        // A thread that panicked while writing left the log unusable (every
        // later append panics on the poisoned lock): that is a failure too.
        if self.writer.is_poisoned() || self.sync.is_poisoned() {
            return Some(format!(
                "{}: a thread panicked while writing the log; restart the server",
                self.config.dir.display()
            ));
        }
        lock(&self.sync)
            .failed
            .as_ref()
            .map(|f| format!("{}: {}", f.path.display(), f.message))
    }

    /// Counters since the log was opened.
    pub fn stats(&self) -> WalStats {
        WalStats {
            appends: self.appends.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
        }
    }

    /// Up to `max_records` durable records starting at `from`, in LSN order.
    /// Stops before a record that would take the payloads past `max_bytes`,
    /// except that the first record is returned whatever its size (so a large
    /// record cannot stall a reader). Empty at the head.
    ///
    /// `from` must be a record boundary or the head: a position inside a
    /// record or above the head is [`Error::InvalidPosition`], and one below
    /// [`Wal::oldest_lsn`] is [`Error::Truncated`]. A damaged frame is
    /// [`Error::Corruption`].
    pub fn read(&self, from: Lsn, max_records: usize, max_bytes: usize) -> Result<Vec<WalRecord>> {
        let head = self.head();
        if from > head {
            return Err(Error::InvalidPosition { lsn: from });
        }
        // The segments holding [from, head), each with where it ends. The
        // head was read first, so every segment it covers is in the map.
        let segments: Vec<(Arc<Segment>, Lsn)> = {
            let map = read_lock(&self.segments);
            let oldest = map.first_key_value().map_or(head, |(base, _)| *base);
            if from < oldest {
                return Err(Error::Truncated { lsn: from, oldest });
            }
            let start = map
                .range(..=from)
                .next_back()
                .map_or(from, |(base, _)| *base);
            let mut found: Vec<(Arc<Segment>, Lsn)> = Vec::new();
            for (base, segment) in map.range(start..) {
                // Each segment ends where the next begins (`Lsn::MAX` stands
                // for the active segment, which ends at the head).
                if let Some(previous) = found.last_mut() {
                    previous.1 = *base;
                    if *base >= head {
                        break;
                    }
                }
                found.push((Arc::clone(segment), Lsn::MAX));
            }
            found
        };
        let mut out = Vec::new();
        let mut limits = Limits {
            records: max_records,
            bytes: max_bytes,
            any: false,
        };
        let mut position = from;
        for (segment, end) in segments {
            if position >= head || limits.records == 0 {
                break;
            }
            // A sealed segment's length is where its successor starts; the
            // active one's is not needed (its index is always built).
            let data_len = end.saturating_sub(segment.base);
            let stop = end.min(head) - segment.base;
            let reached = segment.read_into(
                position - segment.base,
                stop,
                data_len,
                &mut limits,
                &mut out,
            )?;
            if reached < stop {
                break;
            }
            position = segment.base + reached;
        }
        Ok(out)
    }

    /// Registers a consumer whose cursor starts at `start` (durably). An
    /// existing consumer keeps its checkpoint. `start` above the head is
    /// [`Error::InvalidPosition`].
    pub fn register_consumer(&self, name: &str, start: Lsn) -> Result<()> {
        let mut consumers = lock(&self.consumers);
        if consumers.contains_key(name) {
            return Ok(());
        }
        if start > self.head() {
            return Err(Error::InvalidPosition { lsn: start });
        }
        let mut next = consumers.clone();
        next.insert(
            name.to_owned(),
            Checkpoint {
                lsn: start,
                state: None,
            },
        );
        self.persist_cursors(&next)?;
        *consumers = next;
        Ok(())
    }

    /// A consumer's checkpoint, if it is registered.
    pub fn checkpoint(&self, name: &str) -> Option<Checkpoint> {
        lock(&self.consumers).get(name).cloned()
    }

    /// Saves a consumer's cursor and state (replacing the previous state;
    /// `None` clears it), durably before returning, then removes the sealed
    /// segments every consumer is past. `lsn` above the head is
    /// [`Error::InvalidPosition`]; it should be a record boundary (a
    /// [`WalRecord::next_lsn`] or the head), or the consumer's next read fails.
    pub fn commit(&self, name: &str, lsn: Lsn, state: Option<&[u8]>) -> Result<()> {
        let mut consumers = lock(&self.consumers);
        if !consumers.contains_key(name) {
            return Err(Error::UnknownConsumer {
                name: name.to_owned(),
            });
        }
        if lsn > self.head() {
            return Err(Error::InvalidPosition { lsn });
        }
        let mut next = consumers.clone();
        next.insert(
            name.to_owned(),
            Checkpoint {
                lsn,
                state: state.map(<[u8]>::to_vec),
            },
        );
        self.persist_cursors(&next)?;
        *consumers = next;
        self.remove_segments(&consumers);
        Ok(())
    }

    /// Forgets a consumer (durably), then removes the segments it alone held.
    pub fn remove_consumer(&self, name: &str) -> Result<()> {
        let mut consumers = lock(&self.consumers);
        if !consumers.contains_key(name) {
            return Err(Error::UnknownConsumer {
                name: name.to_owned(),
            });
        }
        let mut next = consumers.clone();
        next.remove(name);
        self.persist_cursors(&next)?;
        *consumers = next;
        self.remove_segments(&consumers);
        Ok(())
    }

    /// Every consumer and its checkpoint, by name.
    pub fn consumers(&self) -> Vec<(String, Checkpoint)> {
        lock(&self.consumers)
            .iter()
            .map(|(name, checkpoint)| (name.clone(), checkpoint.clone()))
            .collect()
    }

    /// Replaces the cursors file atomically (see [`write_cursors_file`]).
    fn persist_cursors(&self, consumers: &BTreeMap<String, Checkpoint>) -> Result<()> {
        write_cursors_file(&self.config.dir, consumers, self.head())
    }

    /// Deletes every sealed segment that ends at or below the lowest cursor
    /// (the head when there are no consumers). The caller holds the consumers
    /// lock, so no cursor moves meanwhile. Failures are logged, not returned:
    /// the segment is out of the map, and the next open removes it again.
    fn remove_segments(&self, consumers: &BTreeMap<String, Checkpoint>) {
        let floor = consumers
            .values()
            .map(|c| c.lsn)
            .min()
            .unwrap_or_else(|| self.head());
        let removed: Vec<Arc<Segment>> = {
            let mut map = write_lock(&self.segments);
            let bases: Vec<Lsn> = map.keys().copied().collect();
            // `windows(2)` pairs each segment with its successor, which gives
            // its end and leaves the active (last) segment out.
            bases
                .windows(2)
                .take_while(|pair| pair[1] <= floor)
                .filter_map(|pair| map.remove(&pair[0]))
                .collect()
        };
        if removed.is_empty() {
            return;
        }
        for segment in &removed {
            self.disk_bytes
                .fetch_sub(segment.file_len.load(Ordering::Acquire), Ordering::AcqRel);
            if let Err(e) = fs::remove_file(&segment.path) {
                tracing::warn!(segment = %segment.path.display(), error = %e,
                    "cannot remove a WAL segment every consumer is past");
            }
        }
        if let Err(e) = sync_dir(&self.config.dir) {
            tracing::warn!(error = %e, "cannot fsync the WAL directory after removing segments");
        }
        tracing::debug!(
            removed = removed.len(),
            oldest = self.oldest_lsn(),
            "removed WAL segments every consumer is past"
        );
    }
}

impl Drop for Wal {
    /// Records the durable head in the cursors file, so that a log cut short
    /// while the server is stopped is found out at the next open. Nothing
    /// depends on it for correctness: a failure is logged.
    fn drop(&mut self) {
        if lock(&self.sync).failed.is_some() {
            return;
        }
        let consumers = lock(&self.consumers);
        if let Err(e) = write_cursors_file(&self.config.dir, &consumers, self.head()) {
            tracing::warn!(error = %e, "cannot record the WAL's durable head at close");
        }
    }
}

/// Replaces the cursors file atomically: write a temporary file, fsync it,
/// rename it over the old one, fsync the directory.
fn write_cursors_file(
    dir: &Path,
    consumers: &BTreeMap<String, Checkpoint>,
    durable_head: Lsn,
) -> Result<()> {
    let path = dir.join(CURSORS_FILE);
    let tmp = dir.join(format!("{CURSORS_FILE}{TMP_SUFFIX}"));
    let bytes = encode_cursors(consumers, durable_head);
    {
        let file = fs::File::create(&tmp).map_err(io_error(&tmp))?;
        write_all_at(&file, &bytes, 0).map_err(io_error(&tmp))?;
        file.sync_all().map_err(io_error(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_error(&path))?;
    sync_dir(dir)
}
