//! Incremental log-file batches.
//!
//! Each open file gathers its uncompressed JSON in a buffer of at most
//! [`CHUNK_BYTES`] and deflates it a chunk at a time with the one compressor
//! its trail's batches share. A streaming encoder per file would keep a
//! DEFLATE state of several hundred KiB for every (account, region) until
//! delivery; an organization trail has hundreds of them open at once.
//!
//! The chunks form one DEFLATE stream, so the file is one ordinary gzip
//! member (what CloudTrail writes, and what `validate-logs` reads): each chunk
//! ends at a byte boundary with a sync flush, only the last one is final, and
//! each is primed with the [`WINDOW_BYTES`] before it as its dictionary, so
//! matches reach back across chunk boundaries as in a single stream (the files
//! come out within a fraction of a percent of a streaming encoder's size).

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc;

use chrono::{DateTime, Utc};
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use sha2::{Digest, Sha256};

use crate::pool::{DeflatePool, Job};

const HEADER: &[u8] = b"{\"Records\":[";
const FOOTER: &[u8] = b"]}";

/// Uncompressed bytes a file gathers before they are deflated. Small enough
/// that an open file costs little, large enough that priming each chunk with
/// the window before it adds little work.
const CHUNK_BYTES: usize = 128 * 1024;

/// DEFLATE's window: how far back a match can reach.
const WINDOW_BYTES: usize = 32 * 1024;

/// The compressor a trail's open files share (and each pool thread has).
pub(crate) struct Deflater {
    level: Compression,
    compress: Compress,
    /// One chunk's output, reused: files grow by exactly what each chunk adds.
    scratch: Vec<u8>,
}

impl Deflater {
    pub(crate) fn new(level: u32) -> Self {
        let level = Compression::new(level.min(9));
        Self {
            level,
            // Raw DEFLATE: the file's gzip framing is written by the batch.
            compress: Compress::new(level, false),
            scratch: Vec::new(),
        }
    }

    /// Its gzip level.
    pub(crate) fn level(&self) -> u32 {
        self.level.level()
    }

    /// Deflates `input` onto `out`, with `dictionary` as the data before it.
    /// `last` ends the stream; otherwise the output ends at a byte boundary
    /// with the stream open, ready for the next chunk.
    pub(crate) fn deflate(
        &mut self,
        dictionary: &[u8],
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) {
        self.compress.reset();
        if !dictionary.is_empty() {
            // A raw stream takes a dictionary right after a reset; nothing else
            // can make it fail.
            self.compress
                .set_dictionary(dictionary)
                .expect("a dictionary right after a reset is accepted");
        }
        let flush = if last {
            FlushCompress::Finish
        } else {
            FlushCompress::Sync
        };
        self.scratch.clear();
        let start = self.compress.total_in();
        loop {
            let consumed = usize::try_from(self.compress.total_in() - start).unwrap_or(usize::MAX);
            let rest = input.get(consumed..).unwrap_or_default();
            // DEFLATE's worst case is its input plus a few bytes per block.
            self.scratch.reserve(rest.len() + rest.len() / 64 + 64);
            let status = self
                .compress
                .compress_vec(rest, &mut self.scratch, flush)
                .expect("DEFLATE into memory cannot fail");
            let done_in = self.compress.total_in() - start == input.len() as u64;
            let room_left = self.scratch.len() < self.scratch.capacity();
            match status {
                Status::StreamEnd => break,
                _ if !last && done_in && room_left => break,
                _ => {}
            }
        }
        out.reserve_exact(self.scratch.len());
        out.extend_from_slice(&self.scratch);
    }

    /// The gzip header (RFC 1952) of a file: no time, no name, so equal
    /// records give equal bytes.
    fn gzip_header(&self) -> [u8; 10] {
        let xfl = match self.level.level() {
            9.. => 2,
            0 | 1 => 4,
            _ => 0,
        };
        [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
    }
}

/// A deflated chunk of a file, or one a pool thread is deflating.
enum Piece {
    Ready(Vec<u8>),
    Deflating(mpsc::Receiver<Vec<u8>>),
}

/// One log file being built: the records of one (account, region).
struct LogBatch {
    /// The gzip bytes so far: the header, then whole chunks of the DEFLATE stream.
    gzip: Vec<u8>,
    /// Chunks cut after those in `gzip`, in order, while a pool deflates
    /// some of them.
    pieces: VecDeque<Piece>,
    /// Uncompressed text: the last [`WINDOW_BYTES`] already deflated (the
    /// next chunk's dictionary), then what is not deflated yet.
    pending: Vec<u8>,
    /// How many leading bytes of `pending` are dictionary.
    primed: usize,
    crc: Crc,
    hasher: Sha256,
    records: usize,
    uncompressed_bytes: usize,
    oldest: Option<DateTime<Utc>>,
    newest: Option<DateTime<Utc>>,
}

/// A finished log file.
#[derive(Debug, Clone)]
pub struct LogFile {
    /// The gzip bytes to store.
    pub gzip: Vec<u8>,
    /// Lower-case hex SHA-256 of the uncompressed content (what digests list).
    pub sha256_hex: String,
    /// How many records it holds.
    pub records: usize,
    /// Size of the uncompressed content.
    pub uncompressed_bytes: usize,
    /// The oldest `eventTime` in the file.
    pub oldest_event_time: Option<DateTime<Utc>>,
    /// The newest `eventTime` in the file.
    pub newest_event_time: Option<DateTime<Utc>>,
}

impl LogBatch {
    fn new(deflater: &Deflater) -> Self {
        let mut batch = Self {
            gzip: deflater.gzip_header().to_vec(),
            pieces: VecDeque::new(),
            pending: Vec::new(),
            primed: 0,
            crc: Crc::new(),
            hasher: Sha256::new(),
            records: 0,
            uncompressed_bytes: 0,
            oldest: None,
            newest: None,
        };
        batch.write(HEADER);
        batch
    }

    fn write(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.crc.update(bytes);
        self.uncompressed_bytes += bytes.len();
        let needed = self.pending.len() + bytes.len();
        if needed > self.pending.capacity() {
            // Grow towards one chunk and its dictionary, not past it: a file
            // holding a few records holds only their bytes.
            let target = (self.pending.capacity() * 2)
                .min(WINDOW_BYTES + CHUNK_BYTES)
                .max(needed);
            self.pending.reserve_exact(target - self.pending.len());
        }
        self.pending.extend_from_slice(bytes);
    }

    /// Appends one record's JSON text, exactly as given.
    fn push(
        &mut self,
        deflater: &mut Deflater,
        pool: Option<&DeflatePool>,
        record_json: &[u8],
        event_time: Option<DateTime<Utc>>,
    ) {
        if self.records > 0 {
            self.write(b",");
        }
        self.write(record_json);
        self.records += 1;
        if let Some(t) = event_time {
            self.oldest = Some(self.oldest.map_or(t, |o| o.min(t)));
            self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
        }
        if self.pending.len() - self.primed >= CHUNK_BYTES {
            match pool {
                Some(pool) => self.hand_over(deflater, pool),
                None => self.deflate_pending(deflater, false),
            }
        }
    }

    /// Deflates what is pending here, after every piece cut before it.
    fn deflate_pending(&mut self, deflater: &mut Deflater, last: bool) {
        self.collect(true);
        let (dictionary, input) = self.pending.split_at(self.primed);
        deflater.deflate(dictionary, input, last, &mut self.gzip);
        let keep = self.pending.len().min(WINDOW_BYTES);
        self.pending.drain(..self.pending.len() - keep);
        self.primed = keep;
    }

    /// Cuts the pending chunk and gives it to the pool, or deflates it here
    /// when the pool's queue is full.
    fn hand_over(&mut self, deflater: &mut Deflater, pool: &DeflatePool) {
        let keep = self.pending.len().min(WINDOW_BYTES);
        let mut next = Vec::with_capacity(WINDOW_BYTES + CHUNK_BYTES);
        next.extend_from_slice(&self.pending[self.pending.len() - keep..]);
        let (reply, piece) = mpsc::channel();
        let job = Job {
            level: deflater.level(),
            text: std::mem::replace(&mut self.pending, next),
            primed: std::mem::replace(&mut self.primed, keep),
            reply,
        };
        match pool.submit(job) {
            Ok(()) => self.pieces.push_back(Piece::Deflating(piece)),
            Err(job) => self.pieces.push_back(Piece::Ready(job.run(deflater))),
        }
        self.collect(false);
    }

    /// Appends the pieces at the front that are deflated (all of them, when
    /// `wait`, waiting for the pool) to the file's bytes.
    fn collect(&mut self, wait: bool) {
        loop {
            let bytes = match self.pieces.front_mut() {
                None => return,
                Some(Piece::Ready(bytes)) => std::mem::take(bytes),
                // A pool thread drops a reply only if deflating into memory
                // panicked, which it cannot.
                Some(Piece::Deflating(piece)) if wait => piece
                    .recv()
                    .expect("a pool thread answers every chunk it took"),
                Some(Piece::Deflating(piece)) => match piece.try_recv() {
                    Ok(bytes) => bytes,
                    Err(mpsc::TryRecvError::Empty) => return,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        panic!("a pool thread answers every chunk it took")
                    }
                },
            };
            self.pieces.pop_front();
            self.gzip.reserve_exact(bytes.len());
            self.gzip.extend_from_slice(&bytes);
        }
    }

    /// Bytes of memory the batch holds.
    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        self.gzip.capacity() + self.pending.capacity()
    }

    /// Closes the JSON and the gzip stream.
    fn finish(mut self, deflater: &mut Deflater) -> LogFile {
        self.write(FOOTER);
        self.deflate_pending(deflater, true);
        let mut gzip = self.gzip;
        gzip.reserve_exact(8);
        gzip.extend_from_slice(&self.crc.sum().to_le_bytes());
        // ISIZE is the length modulo 2^32, as RFC 1952 says.
        gzip.extend_from_slice(&self.crc.amount().to_le_bytes());
        LogFile {
            gzip,
            sha256_hex: hex::encode(self.hasher.finalize()),
            records: self.records,
            uncompressed_bytes: self.uncompressed_bytes,
            oldest_event_time: self.oldest,
            newest_event_time: self.newest,
        }
    }
}

/// The open batches of one trail, one per (account, region), in key order.
#[derive(Debug)]
pub struct LogBatches {
    deflater: Deflater,
    /// Threads that deflate chunks besides the caller's, if any.
    pool: Option<DeflatePool>,
    /// By account, then region: both levels look up by `&str`, so a record
    /// finds its file without allocating a key, in logarithmic time however
    /// many accounts an organization trail has.
    batches: BTreeMap<String, BTreeMap<String, LogBatch>>,
    uncompressed_bytes: usize,
    records: usize,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("level", &self.level.level())
            .finish()
    }
}

impl std::fmt::Debug for LogBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBatch")
            .field("records", &self.records)
            .field("uncompressed_bytes", &self.uncompressed_bytes)
            .finish()
    }
}

impl LogBatches {
    /// No batches yet; files will compress at `level` (0–9), on the
    /// caller's thread.
    pub fn new(level: u32) -> Self {
        Self {
            deflater: Deflater::new(level),
            pool: None,
            batches: BTreeMap::new(),
            uncompressed_bytes: 0,
            records: 0,
        }
    }

    /// No batches yet; files will compress at `level` (0–9), their chunks
    /// on `pool`'s threads while it has room, on the caller's otherwise. The
    /// content is the same either way.
    pub fn with_pool(level: u32, pool: DeflatePool) -> Self {
        Self {
            pool: Some(pool),
            ..Self::new(level)
        }
    }

    /// A new, empty set of batches with the same level and pool.
    pub fn emptied(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            ..Self::new(self.deflater.level())
        }
    }

    /// Adds a record to the batch of its account and region.
    pub fn push(
        &mut self,
        account: &str,
        region: &str,
        record_json: &[u8],
        event_time: Option<DateTime<Utc>>,
    ) {
        // Look up by borrowed key first: allocating the key per record is measurable.
        let regions = match self.batches.get_mut(account) {
            Some(regions) => regions,
            None => self.batches.entry(account.to_owned()).or_default(),
        };
        let batch = match regions.get_mut(region) {
            Some(batch) => batch,
            None => regions
                .entry(region.to_owned())
                .or_insert_with(|| LogBatch::new(&self.deflater)),
        };
        let before = batch.uncompressed_bytes;
        batch.push(
            &mut self.deflater,
            self.pool.as_ref(),
            record_json,
            event_time,
        );
        self.uncompressed_bytes += batch.uncompressed_bytes - before;
        self.records += 1;
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Records buffered.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Uncompressed bytes buffered.
    pub fn uncompressed_bytes(&self) -> usize {
        self.uncompressed_bytes
    }

    /// Memory the open files hold (their buffers, not the shared compressor).
    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        self.batches
            .values()
            .flat_map(BTreeMap::values)
            .map(LogBatch::held_bytes)
            .sum()
    }

    /// The (account, region) pairs with a batch, in order.
    pub fn groups(&self) -> Vec<(String, String)> {
        self.batches
            .iter()
            .flat_map(|(account, regions)| {
                regions
                    .keys()
                    .map(move |region| (account.clone(), region.clone()))
            })
            .collect()
    }

    /// Finishes every batch, in (account, region) order, and starts afresh.
    pub fn finish(&mut self) -> Vec<((String, String), LogFile)> {
        self.uncompressed_bytes = 0;
        self.records = 0;
        let deflater = &mut self.deflater;
        std::mem::take(&mut self.batches)
            .into_iter()
            .flat_map(|(account, regions)| {
                regions
                    .into_iter()
                    .map(move |(region, batch)| ((account.clone(), region), batch))
            })
            .map(|(key, batch)| (key, batch.finish(deflater)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use flate2::write::GzEncoder;
    use std::io::{Read, Write};

    /// Reads exactly one gzip member, checking its CRC and length, and
    /// refuses anything after it: a file must be a single member.
    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut decoder = GzDecoder::new(bytes);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).unwrap();
        let mut rest = Vec::new();
        decoder.into_inner().read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty(),
            "{} bytes after the gzip member",
            rest.len()
        );
        out
    }

    fn one_file(level: u32, records: &[&[u8]]) -> LogFile {
        let mut batches = LogBatches::new(level);
        for r in records {
            batches.push("123456789012", "us-east-1", r, None);
        }
        batches.finish().pop().unwrap().1
    }

    /// Records of a few hundred bytes that vary the way real ones do.
    fn records(count: usize) -> Vec<Vec<u8>> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..count)
            .map(|n| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!(
                    r#"{{"eventVersion":"1.08","eventID":"{state:016x}-{n}","eventName":"{}","sourceIPAddress":"10.{}.{}.{}","requestParameters":{{"bucketName":"b{}","key":"k/{state:x}"}}}}"#,
                    ["GetObject", "PutObject", "AssumeRole", "Decrypt"][(state % 4) as usize],
                    state % 256,
                    (state >> 8) % 256,
                    (state >> 16) % 256,
                    state % 7
                )
                .into_bytes()
            })
            .collect()
    }

    #[test]
    fn test_batch_is_records_json_with_exact_bytes() {
        let f = one_file(6, &[br#"{"a":1.688560107857E9}"#, br#"{ "b" : [ ] }"#]);
        let text = gunzip(&f.gzip);
        assert_eq!(
            text,
            br#"{"Records":[{"a":1.688560107857E9},{ "b" : [ ] }]}"#
        );
        assert_eq!(f.sha256_hex, hex::encode(Sha256::digest(&text)));
        assert_eq!(f.records, 2);
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["Records"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn test_empty_batch_is_valid_json() {
        let mut batches = LogBatches::new(6);
        let f = LogBatch::new(&batches.deflater).finish(&mut batches.deflater);
        assert_eq!(gunzip(&f.gzip), br#"{"Records":[]}"#);
    }

    #[test]
    fn test_a_file_of_many_chunks_is_one_gzip_member_with_exact_content() {
        for level in [0, 1, 6, 9] {
            let recs = records(20_000);
            let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
            let f = one_file(level, &refs);
            let mut expected = b"{\"Records\":[".to_vec();
            expected.extend_from_slice(&recs.join(&b","[..]));
            expected.extend_from_slice(b"]}");
            assert!(expected.len() > 10 * CHUNK_BYTES, "the test spans chunks");
            assert_eq!(f.uncompressed_bytes, expected.len());
            assert_eq!(gunzip(&f.gzip), expected, "level {level}");
            assert_eq!(f.sha256_hex, hex::encode(Sha256::digest(&expected)));
        }
    }

    #[test]
    fn test_chunks_compress_as_well_as_one_stream() {
        let recs = records(20_000);
        let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
        let chunked = one_file(6, &refs).gzip.len();
        let mut stream = GzEncoder::new(Vec::new(), Compression::new(6));
        stream.write_all(b"{\"Records\":[").unwrap();
        stream.write_all(&recs.join(&b","[..])).unwrap();
        stream.write_all(b"]}").unwrap();
        let stream = stream.finish().unwrap().len();
        // Without the window carried over, the same chunks come out over 1 % larger.
        assert!(
            chunked as f64 <= stream as f64 * 1.01,
            "chunked {chunked} bytes, one stream {stream}"
        );
    }

    #[test]
    fn test_open_files_hold_their_bytes_not_a_compressor_each() {
        let mut batches = LogBatches::new(6);
        for account in 0..500 {
            batches.push(
                &format!("{account:012}"),
                "eu-west-1",
                b"{\"eventName\":\"Decrypt\"}",
                None,
            );
        }
        assert!(
            batches.held_bytes() < 500 * 256,
            "{} bytes held",
            batches.held_bytes()
        );
        // A large file holds its compressed bytes and at most one chunk with its window.
        let mut batches = LogBatches::new(6);
        for r in records(50_000) {
            batches.push("123456789012", "us-east-1", &r, None);
        }
        let held = batches.held_bytes();
        let gzip = batches.finish().pop().unwrap().1.gzip.len();
        assert!(
            held <= gzip + WINDOW_BYTES + 2 * CHUNK_BYTES,
            "{held} held for {gzip} of gzip"
        );
    }

    /// Many files of many chunks, interleaved, as an organization trail's.
    fn push_interleaved(batches: &mut LogBatches, recs: &[Vec<u8>]) {
        for (n, r) in recs.iter().enumerate() {
            let account = format!("{:012}", n % 3);
            let region = ["us-east-1", "eu-west-1"][n % 2];
            batches.push(&account, region, r, None);
        }
    }

    #[test]
    fn test_a_pool_writes_the_same_files_as_one_thread() {
        let recs = records(40_000);
        for (level, threads) in [(0, 2), (1, 1), (1, 4), (2, 1), (6, 1), (6, 2), (9, 2)] {
            let mut alone = LogBatches::new(level);
            push_interleaved(&mut alone, &recs);
            let pool = DeflatePool::new(threads).unwrap();
            let mut pooled = LogBatches::with_pool(level, pool.clone());
            push_interleaved(&mut pooled, &recs);
            let (alone, pooled) = (alone.finish(), pooled.finish());
            assert_eq!(alone.len(), 6);
            for ((key_a, a), (key_b, b)) in alone.iter().zip(&pooled) {
                assert_eq!(key_a, key_b);
                assert!(
                    a.uncompressed_bytes > 4 * CHUNK_BYTES,
                    "the test spans chunks"
                );
                // The content, not the compressed bytes: zlib's matches
                // after a reset depend a little on what the compressor did
                // before, so which thread deflated a chunk can move a byte.
                // Not assert_eq: the text would fill the terminal.
                let text = gunzip(&b.gzip);
                assert!(text == gunzip(&a.gzip), "level {level}, {threads} threads");
                assert_eq!(text.len(), b.uncompressed_bytes);
                assert_eq!(a.sha256_hex, b.sha256_hex);
                assert_eq!(b.sha256_hex, hex::encode(Sha256::digest(&text)));
                let (x, y) = (a.gzip.len() as f64, b.gzip.len() as f64);
                assert!((x - y).abs() <= x * 0.001, "{x} and {y} bytes");
            }
            // The same pool serves the next delivery.
            let mut again = LogBatches::with_pool(level, pool.clone()).emptied();
            push_interleaved(&mut again, &recs[..2_000]);
            assert_eq!(again.finish().len(), 6);
        }
    }

    #[test]
    fn test_batches_dropped_with_chunks_in_the_pool_leave_it_working() {
        let pool = DeflatePool::new(2).unwrap();
        let recs = records(20_000);
        let mut dropped = LogBatches::with_pool(6, pool.clone());
        push_interleaved(&mut dropped, &recs);
        drop(dropped);
        let mut kept = LogBatches::with_pool(6, pool);
        push_interleaved(&mut kept, &recs);
        let mut alone = LogBatches::new(6);
        push_interleaved(&mut alone, &recs);
        for ((_, a), (_, b)) in kept.finish().iter().zip(&alone.finish()) {
            assert!(gunzip(&a.gzip) == gunzip(&b.gzip));
            assert_eq!(a.sha256_hex, b.sha256_hex);
        }
    }

    #[test]
    fn test_output_is_deterministic() {
        let build = || {
            let mut b = LogBatches::new(6);
            b.push("1", "us-east-1", b"{}", None);
            b.push("2", "us-east-1", b"{\"x\":2}", None);
            b.push("1", "us-east-1", b"{\"x\":1}", None);
            for r in records(3_000) {
                b.push("2", "us-east-1", &r, None);
            }
            b.finish()
        };
        let (a, b) = (build(), build());
        assert_eq!(a.len(), 2);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.0, y.0);
            assert_eq!(x.1.gzip, y.1.gzip);
        }
        assert_eq!(gunzip(&a[0].1.gzip), br#"{"Records":[{},{"x":1}]}"#);
    }

    #[test]
    fn test_files_come_out_in_account_then_region_order() {
        let mut b = LogBatches::new(6);
        let pushes = [
            ("222222222222", "us-west-2"),
            ("111111111111", "us-west-2"),
            ("111111111111", "eu-west-1"),
            ("222222222222", "ap-southeast-2"),
            ("111111111111", "us-west-2"),
        ];
        for (n, (account, region)) in pushes.iter().enumerate() {
            b.push(account, region, format!("{{\"n\":{n}}}").as_bytes(), None);
        }
        let mut expected: Vec<(String, String)> = pushes
            .iter()
            .map(|(a, r)| ((*a).to_owned(), (*r).to_owned()))
            .collect();
        expected.sort();
        expected.dedup();
        assert_eq!(b.groups(), expected);
        assert_eq!(b.records(), 5);
        let files = b.finish();
        let keys: Vec<(String, String)> = files.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, expected);
        assert_eq!(
            gunzip(&files[1].1.gzip),
            br#"{"Records":[{"n":1},{"n":4}]}"#
        );
        assert!(b.is_empty() && b.groups().is_empty());
    }

    #[test]
    fn test_event_time_range() {
        let t1 = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let t2 = DateTime::parse_from_rfc3339("2024-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut b = LogBatches::new(1);
        b.push("1", "us-east-1", b"{}", Some(t2));
        b.push("1", "us-east-1", b"{}", Some(t1));
        let f = b.finish().pop().unwrap().1;
        assert_eq!(f.oldest_event_time, Some(t1));
        assert_eq!(f.newest_event_time, Some(t2));
    }
}
