//! Sorted runs of eventID hashes on disk, the bulk of the dedup index.
//!
//! A run is an immutable file of distinct 128-bit eventID hashes in ascending
//! order, all first accepted in one hour. In memory a run keeps only a Bloom
//! filter (under 2 bytes per ID) and the first hash of every 4 KiB block
//! (1/16th of a byte per ID), so the index no longer holds 40 bytes for every
//! ID of the window: a lookup asks the filter, and only when it answers
//! "maybe" (a duplicate, or one new ID in a thousand) reads one block.
//!
//! File format, version [`RUN_VERSION`] (little-endian):
//!
//! ```text
//! "CAIRNDDR" | version u32 | hour u32 | hash u128 × count | count u64 | crc32c u32 of all before it
//! ```
//!
//! A run is written under a temporary name, fsynced and renamed, so it exists
//! whole or not at all; the checksum finds damage that happens afterwards.

use std::fs::File;
use std::hash::BuildHasherDefault;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fastbloom::BloomFilter;

use super::{IdHasher, hour_expired};

const MAGIC: &[u8; 8] = b"CAIRNDDR";
/// The version of the run file format this build writes and reads.
pub const RUN_VERSION: u32 = 1;
const HEADER_BYTES: u64 = 16;
const TRAILER_BYTES: u64 = 12;
const ID_BYTES: u64 = 16;
/// IDs per block of the sparse index: 4 KiB, so a confirmation is one read.
const BLOCK_IDS: usize = 256;
/// The filters' false-positive rate. A new ID is checked against every run of
/// the window (a few dozen), so this is about the share of new IDs that cost
/// one block read.
const FALSE_POSITIVE_RATE: f64 = 0.001;
/// The buffer of each input of a merge.
const MERGE_BUFFER_BYTES: usize = 64 * 1024;

type Filter = BloomFilter<512, BuildHasherDefault<IdHasher>>;

fn new_filter(expected: usize) -> Filter {
    BloomFilter::with_false_pos(FALSE_POSITIVE_RATE)
        .hasher(BuildHasherDefault::<IdHasher>::default())
        .expected_items(expected.max(1))
}

fn damaged(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "dedup run {} is damaged: {what}. It is derived state: remove it to start \
             (producers' retries of the records it covers may then be stored twice within \
             the dedup window)",
            path.display()
        ),
    )
}

/// One run: its file, how many IDs it holds, and its in-memory filter and fences.
pub struct Run {
    hour: u32,
    seq: u64,
    len: u64,
    path: PathBuf,
    filter: Filter,
    /// The first hash of each block of [`BLOCK_IDS`] IDs.
    fences: Vec<u128>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("hour", &self.hour)
            .field("seq", &self.seq)
            .field("len", &self.len)
            .field("path", &self.path)
            .finish()
    }
}

impl Run {
    /// The hour (since the epoch) its IDs were first accepted in.
    pub fn hour(&self) -> u32 {
        self.hour
    }

    /// Its sequence number: later runs have higher ones.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// How many IDs it holds.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no ID.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The memory it holds: the filter and the fences.
    pub fn memory_bytes(&self) -> usize {
        self.filter.num_bits() / 8 + self.fences.len() * std::mem::size_of::<u128>()
    }

    /// Whether the run holds `id`: the filter first, then one block read.
    pub fn contains(&self, id: u128) -> io::Result<bool> {
        if !self.filter.contains(&id) {
            return Ok(false);
        }
        let block = match self.fences.partition_point(|first| *first <= id) {
            0 => return Ok(false),
            after => after - 1,
        };
        let start = block * BLOCK_IDS;
        let count = (self.len as usize - start).min(BLOCK_IDS);
        let mut bytes = vec![0u8; count * ID_BYTES as usize];
        File::open(&self.path)?
            .read_exact_at(&mut bytes, HEADER_BYTES + start as u64 * ID_BYTES)?;
        let ids: Vec<u128> = bytes.chunks_exact(16).map(decode_id).collect();
        Ok(ids.binary_search(&id).is_ok())
    }
}

fn decode_id(bytes: &[u8]) -> u128 {
    let mut buf = [0u8; 16];
    buf.copy_from_slice(bytes);
    u128::from_le_bytes(buf)
}

/// Writes one run, ascending IDs in; equal neighbours are written once.
struct RunWriter {
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<File>,
    crc: u32,
    hour: u32,
    seq: u64,
    count: u64,
    last: Option<u128>,
    filter: Filter,
    fences: Vec<u128>,
}

impl RunWriter {
    fn create(files: &DedupFiles, hour: u32, expected: usize) -> io::Result<Self> {
        let seq = files.next_seq.fetch_add(1, Ordering::Relaxed);
        let name = run_name(hour, seq);
        let tmp = files.dir.join(format!(".tmp-{name}"));
        let mut writer = Self {
            out: BufWriter::with_capacity(MERGE_BUFFER_BYTES, File::create(&tmp)?),
            tmp,
            path: files.dir.join(name),
            crc: 0,
            hour,
            seq,
            count: 0,
            last: None,
            filter: new_filter(expected),
            fences: Vec::with_capacity(expected.div_ceil(BLOCK_IDS)),
        };
        let mut header = [0u8; HEADER_BYTES as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&RUN_VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&hour.to_le_bytes());
        writer.write(&header)?;
        Ok(writer)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.out.write_all(bytes)
    }

    fn push(&mut self, id: u128) -> io::Result<()> {
        if self.last.is_some_and(|last| last >= id) {
            // Sorted input: only an equal neighbour can get here.
            return Ok(());
        }
        if self.count.is_multiple_of(BLOCK_IDS as u64) {
            self.fences.push(id);
        }
        self.filter.insert(&id);
        self.write(&id.to_le_bytes())?;
        self.count += 1;
        self.last = Some(id);
        Ok(())
    }

    fn finish(mut self, dir: &Path) -> io::Result<Run> {
        let count = self.count.to_le_bytes();
        self.write(&count)?;
        let crc = self.crc.to_le_bytes();
        self.out.write_all(&crc)?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.tmp, &self.path)?;
        File::open(dir)?.sync_all()?;
        self.fences.shrink_to_fit();
        Ok(Run {
            hour: self.hour,
            seq: self.seq,
            len: self.count,
            path: self.path,
            filter: self.filter,
            fences: self.fences,
        })
    }
}

fn run_name(hour: u32, seq: u64) -> String {
    format!("{hour:010}-{seq:012}.run")
}

/// What a file of the dedup directory is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirEntry {
    /// `<hour>-<seq>.run`.
    Run { hour: u32, seq: u64 },
    /// `<hour>.ids`: unsorted hashes, the first format.
    Legacy { hour: u32 },
    /// `.tmp-…`: a run whose write was interrupted.
    Leftover,
}

impl DirEntry {
    fn of(name: &str) -> Option<Self> {
        if name.starts_with(".tmp-") {
            return Some(Self::Leftover);
        }
        if let Some(stem) = name.strip_suffix(".run") {
            let (hour, seq) = stem.split_once('-')?;
            return Some(Self::Run {
                hour: hour.parse().ok()?,
                seq: seq.parse().ok()?,
            });
        }
        Some(Self::Legacy {
            hour: name.strip_suffix(".ids")?.parse().ok()?,
        })
    }

    fn hour(self) -> Option<u32> {
        match self {
            Self::Run { hour, .. } | Self::Legacy { hour } => Some(hour),
            Self::Leftover => None,
        }
    }
}

/// The files of a dedup directory that Cairn wrote, in name order.
fn dir_entries(dir: &Path) -> io::Result<Vec<(PathBuf, DirEntry)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(kind) = entry.file_name().to_str().and_then(DirEntry::of) {
            entries.push((entry.path(), kind));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// Reads a run file whole: checks it and rebuilds its filter and fences.
fn load_run(path: &Path, hour: u32, seq: u64) -> io::Result<Run> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let body = size
        .checked_sub(HEADER_BYTES + TRAILER_BYTES)
        .filter(|body| body % ID_BYTES == 0)
        .ok_or_else(|| damaged(path, format!("its size {size} is not a whole run")))?;
    let count = body / ID_BYTES;
    let mut input = BufReader::with_capacity(MERGE_BUFFER_BYTES, file);
    let mut header = [0u8; HEADER_BYTES as usize];
    input.read_exact(&mut header)?;
    if &header[..8] != MAGIC {
        return Err(damaged(path, "it does not start with the run magic"));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if version != RUN_VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "dedup run {} has format version {version}; this build reads version \
                 {RUN_VERSION}: run the Cairn version that wrote it, or remove the file",
                path.display()
            ),
        ));
    }
    if u32::from_le_bytes(header[12..16].try_into().expect("4 bytes")) != hour {
        return Err(damaged(
            path,
            "its header names another hour than its file name",
        ));
    }
    let mut crc = crc32c::crc32c(&header);
    let mut filter = new_filter(count as usize);
    let mut fences = Vec::with_capacity((count as usize).div_ceil(BLOCK_IDS));
    let mut last = None;
    let mut id_bytes = [0u8; 16];
    for index in 0..count {
        input.read_exact(&mut id_bytes)?;
        crc = crc32c::crc32c_append(crc, &id_bytes);
        let id = u128::from_le_bytes(id_bytes);
        if last.is_some_and(|last| last >= id) {
            return Err(damaged(path, format!("its hash {index} is out of order")));
        }
        if index.is_multiple_of(BLOCK_IDS as u64) {
            fences.push(id);
        }
        filter.insert(&id);
        last = Some(id);
    }
    let mut trailer = [0u8; TRAILER_BYTES as usize];
    input.read_exact(&mut trailer)?;
    crc = crc32c::crc32c_append(crc, &trailer[..8]);
    if u64::from_le_bytes(trailer[..8].try_into().expect("8 bytes")) != count
        || u32::from_le_bytes(trailer[8..].try_into().expect("4 bytes")) != crc
    {
        return Err(damaged(path, "its checksum does not match"));
    }
    Ok(Run {
        hour,
        seq,
        len: count,
        path: path.to_owned(),
        filter,
        fences,
    })
}

/// Reads the IDs of a run in order, for a merge.
struct RunReader {
    input: BufReader<File>,
    left: u64,
}

impl RunReader {
    fn open(run: &Run) -> io::Result<Self> {
        let mut file = File::open(&run.path)?;
        io::Seek::seek(&mut file, io::SeekFrom::Start(HEADER_BYTES))?;
        Ok(Self {
            input: BufReader::with_capacity(MERGE_BUFFER_BYTES, file),
            left: run.len,
        })
    }

    fn next(&mut self) -> io::Result<Option<u128>> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut bytes = [0u8; 16];
        self.input.read_exact(&mut bytes)?;
        self.left -= 1;
        Ok(Some(u128::from_le_bytes(bytes)))
    }
}

/// The dedup persister's directory of runs.
#[derive(Debug, Clone)]
pub struct DedupFiles {
    dir: PathBuf,
    next_seq: Arc<AtomicU64>,
}

impl DedupFiles {
    /// The runs under `dir` (created if missing); leftovers of an interrupted
    /// write are removed.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut next_seq = 0;
        for (path, kind) in dir_entries(dir)? {
            match kind {
                DirEntry::Leftover => std::fs::remove_file(path)?,
                DirEntry::Run { seq, .. } => next_seq = next_seq.max(seq + 1),
                DirEntry::Legacy { .. } => {}
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            next_seq: Arc::new(AtomicU64::new(next_seq)),
        })
    }

    /// Writes the IDs of one hour as a new run (sorting them in place).
    pub fn write_run(&self, hour: u32, ids: &mut Vec<u128>) -> io::Result<Run> {
        ids.sort_unstable();
        ids.dedup();
        let mut writer = RunWriter::create(self, hour, ids.len())?;
        for id in ids.iter() {
            writer.push(*id)?;
        }
        writer.finish(&self.dir)
    }

    /// Merges runs of one hour into one new run; the inputs stay until the
    /// caller removes them.
    pub fn merge(&self, hour: u32, runs: &[Arc<Run>]) -> io::Result<Run> {
        let expected = runs.iter().map(|r| r.len as usize).sum();
        let mut readers = runs
            .iter()
            .map(|r| RunReader::open(r))
            .collect::<io::Result<Vec<_>>>()?;
        let mut heads = readers
            .iter_mut()
            .map(RunReader::next)
            .collect::<io::Result<Vec<_>>>()?;
        let mut writer = RunWriter::create(self, hour, expected)?;
        // A handful of inputs: a linear pick of the least head beats a heap.
        while let Some((index, id)) = heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.map(|id| (i, id)))
            .min_by_key(|(_, id)| *id)
        {
            writer.push(id)?;
            heads[index] = readers[index].next()?;
        }
        writer.finish(&self.dir)
    }

    /// Removes a run's file (a run merged into another, or refused by the index).
    pub fn remove(&self, run: &Run) -> io::Result<()> {
        match std::fs::remove_file(&run.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Loads every run still in the window, removing expired ones; files of
    /// the first format (`<hour>.ids`, unsorted) become runs on the way.
    pub fn load(&self, window_hours: u32, now_ms: u64) -> io::Result<Vec<Run>> {
        let now_hour = super::hour_of(now_ms);
        let mut runs = Vec::new();
        for (path, kind) in dir_entries(&self.dir)? {
            match kind {
                DirEntry::Run { hour, .. } | DirEntry::Legacy { hour }
                    if hour_expired(hour, window_hours, now_hour) =>
                {
                    std::fs::remove_file(path)?;
                }
                DirEntry::Run { hour, seq } => runs.push(load_run(&path, hour, seq)?),
                DirEntry::Legacy { hour } => {
                    let mut bytes = Vec::new();
                    File::open(&path)?.read_to_end(&mut bytes)?;
                    // A torn final entry (a crash mid-append) is left out: its
                    // record is still in the WAL past the dedup cursor.
                    let mut ids: Vec<u128> = bytes.chunks_exact(16).map(decode_id).collect();
                    runs.push(self.write_run(hour, &mut ids)?);
                    std::fs::remove_file(path)?;
                }
                DirEntry::Leftover => {}
            }
        }
        Ok(runs)
    }

    /// Removes the files of hours past the window or before `floor_hour`
    /// (hours the index forgot early, over its capacity).
    pub fn expire(&self, window_hours: u32, now_ms: u64, floor_hour: u32) -> io::Result<()> {
        let now_hour = super::hour_of(now_ms);
        for (path, kind) in dir_entries(&self.dir)? {
            if kind
                .hour()
                .is_some_and(|h| h < floor_hour || hour_expired(h, window_hours, now_hour))
            {
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(i: u128) -> u128 {
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    }

    #[test]
    fn test_run_round_trip_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let files = DedupFiles::open(dir.path()).unwrap();
        let mut ids: Vec<u128> = (0..2_000).map(spread).collect();
        ids.push(spread(5));
        let run = files.write_run(7, &mut ids).unwrap();
        assert_eq!(run.len(), 2_000);
        for i in 0..2_000 {
            assert!(run.contains(spread(i)).unwrap(), "{i}");
        }
        let strangers = (2_000..102_000).filter(|i| run.contains(spread(*i)).unwrap());
        assert_eq!(strangers.count(), 0, "a confirmation reads the block");
        let loaded = files.load(24, 8 * 3_600_000).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!((loaded[0].hour(), loaded[0].len()), (7, 2_000));
        assert!(loaded[0].contains(spread(1_999)).unwrap());
        assert!(!loaded[0].contains(spread(2_000)).unwrap());
    }

    #[test]
    fn test_memory_is_under_three_bytes_per_id() {
        let dir = tempfile::tempdir().unwrap();
        let files = DedupFiles::open(dir.path()).unwrap();
        let mut ids: Vec<u128> = (0..100_000).map(spread).collect();
        let run = files.write_run(1, &mut ids).unwrap();
        let per_id = run.memory_bytes() as f64 / 100_000.0;
        assert!(per_id < 3.0, "{per_id} bytes per ID");
        // A hash-map entry of the in-memory index is 24 bytes before overhead.
        let maybe = (100_000..1_100_000)
            .filter(|i| run.filter.contains(&spread(*i)))
            .count();
        assert!(maybe < 3_000, "{maybe} false positives in 1 000 000");
    }

    #[test]
    fn test_merge_keeps_each_id_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let files = DedupFiles::open(dir.path()).unwrap();
        let a = Arc::new(
            files
                .write_run(3, &mut (0..500).map(spread).collect())
                .unwrap(),
        );
        let b = Arc::new(
            files
                .write_run(3, &mut (400..900).map(spread).collect())
                .unwrap(),
        );
        let merged = files.merge(3, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(merged.len(), 900);
        assert!(merged.seq() > b.seq());
        files.remove(&a).unwrap();
        files.remove(&b).unwrap();
        let loaded = files.load(24, 4 * 3_600_000).unwrap();
        assert_eq!(loaded.len(), 1, "load checks order and the checksum");
        assert!((0..900).all(|i| loaded[0].contains(spread(i)).unwrap()));
    }

    #[test]
    fn test_damage_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = DedupFiles::open(dir.path()).unwrap();
        let run = files
            .write_run(9, &mut (0..100).map(spread).collect())
            .unwrap();
        let mut bytes = std::fs::read(run.path()).unwrap();
        bytes[HEADER_BYTES as usize + 40] ^= 0x10;
        std::fs::write(run.path(), &bytes).unwrap();
        let error = files.load(24, 10 * 3_600_000).unwrap_err().to_string();
        assert!(error.contains(&run.path().display().to_string()), "{error}");
        assert!(error.contains("damaged"), "{error}");
        std::fs::write(run.path(), &bytes[..bytes.len() - 5]).unwrap();
        assert!(files.load(24, 10 * 3_600_000).is_err());
    }

    #[test]
    fn test_first_format_files_become_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut legacy = Vec::new();
        for id in [3u128, 1, 2, 1] {
            legacy.extend_from_slice(&id.to_le_bytes());
        }
        legacy.extend_from_slice(&[1, 2, 3]); // a torn final entry
        std::fs::write(dir.path().join(format!("{:010}.ids", 5)), &legacy).unwrap();
        let files = DedupFiles::open(dir.path()).unwrap();
        let runs = files.load(24, 6 * 3_600_000).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].len(), 3);
        assert!(!dir.path().join(format!("{:010}.ids", 5)).exists());
        assert_eq!(files.load(24, 6 * 3_600_000).unwrap().len(), 1);
    }
}
