//! One segment file: creating it atomically, checking its header, reading its
//! frames through a buffer, recovering its torn tail, and the sparse index
//! that tells record boundaries from positions inside records.
//!
//! Offsets called `pos` here are *data offsets*: bytes after the segment
//! header, so `lsn == segment.base + pos`. File offsets (what error messages
//! report) are `SEGMENT_HEADER_LEN + pos`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::format::{
    FRAME_HEADER_LEN, FrameHeader, MAX_RECORD_BYTES, SEGMENT_HEADER_LEN, TMP_SUFFIX,
    decode_segment_header, encode_segment_header, frame_crc, segment_file_name,
};
use crate::{Error, Lsn, Result, lock};

/// One boundary is remembered per this many data bytes. Checking that a read
/// position is a record boundary then walks at most this far (plus one
/// record) from the nearest remembered boundary, and the index costs about
/// 8 bytes per 64 KiB of log (1 MiB for the 8 GiB default bound).
const INDEX_INTERVAL: u64 = 64 * 1024;

/// How much a [`FrameReader`] reads at once: many small frames per syscall.
const READ_CHUNK: usize = 256 * 1024;

/// An open segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    /// LSN of the first frame (the data offset 0).
    pub base: Lsn,
    /// Where the file is.
    pub path: PathBuf,
    /// Read with positional reads (shared by readers without a lock) and,
    /// while the segment is active, written by the single writer holding the
    /// writer lock. Kept open so a reader can finish even if the segment is
    /// removed under it (unlinking an open file is fine on Unix).
    pub file: File,
    /// Bytes the file occupies, header included, as counted in
    /// [`crate::Wal::disk_bytes`]; the writer keeps it current.
    pub file_len: AtomicU64,
    /// Sampled record boundaries (data offsets, ascending, starting at 0), or
    /// `None` until someone needs them: segments sealed before the log was
    /// opened are only walked when first read.
    index: Mutex<Option<Vec<u64>>>,
}

impl Segment {
    /// Creates an empty segment starting at `base`: the header is written to
    /// a temporary file, fsynced, and renamed into place, and the directory is
    /// fsynced, so a segment file either does not exist or has a whole header.
    pub(crate) fn create(dir: &Path, base: Lsn) -> Result<Segment> {
        let path = dir.join(segment_file_name(base));
        let tmp = dir.join(format!("{}{TMP_SUFFIX}", segment_file_name(base)));
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        write_all_at(&file, &encode_segment_header(base), 0).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(dir)?;
        Ok(Segment {
            base,
            path,
            file,
            file_len: AtomicU64::new(SEGMENT_HEADER_LEN),
            index: Mutex::new(Some(vec![0])),
        })
    }

    /// Opens an existing segment and checks its header against its name.
    pub(crate) fn open(path: PathBuf, base: Lsn) -> Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        let len = file
            .metadata()
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?
            .len();
        let corrupt = |reason: String| Error::Corruption {
            segment: path.clone(),
            offset: 0,
            reason,
        };
        // Segments are created whole (see `create`), so a short header is
        // damage, not a torn write: refuse rather than guess.
        if len < SEGMENT_HEADER_LEN {
            return Err(corrupt(format!(
                "file is {len} bytes, shorter than a segment header"
            )));
        }
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        read_exact_at(&file, &mut header, 0).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let found = decode_segment_header(&header).map_err(corrupt)?;
        if found != base {
            return Err(corrupt(format!(
                "header says base LSN {found}, file name says {base}"
            )));
        }
        Ok(Segment {
            base,
            path,
            file,
            file_len: AtomicU64::new(len),
            index: Mutex::new(None),
        })
    }

    /// Bytes of frames the file holds (whatever their state).
    pub(crate) fn data_len(&self) -> u64 {
        self.file_len
            .load(Ordering::Acquire)
            .saturating_sub(SEGMENT_HEADER_LEN)
    }

    /// Scans the whole segment as the tail of the log: every frame is checked,
    /// and the first incomplete or checksum-failing one ends the log, so the
    /// file is cut there and fsynced. Returns the length of the good data.
    pub(crate) fn recover_tail(&self) -> Result<u64> {
        let limit = self.data_len();
        let mut reader = FrameReader::new(self, limit);
        let mut index = vec![0];
        let mut pos = 0;
        let mut torn = None;
        while pos < limit {
            match reader.payload(pos) {
                Ok(payload) => {
                    let next = pos + FRAME_HEADER_LEN + payload.len() as u64;
                    sample(&mut index, next);
                    pos = next;
                }
                Err(Bad::Frame(reason)) => {
                    // A torn tail is the end of the file. A whole frame with a
                    // bad checksum followed by a good one is damage to bytes
                    // that were once durable (and maybe acknowledged):
                    // truncating would silently drop every record after it.
                    if let Ok(len) = reader.frame_len(pos) {
                        let next = pos + len;
                        // After a power loss, pages of an unacknowledged append
                        // may reach the disk out of order, leaving a zeroed hole
                        // before whole frames: that is still a torn tail.
                        let hole = reader
                            .bytes(pos, len as usize)
                            .is_ok_and(|frame| has_zero_run(frame, ZERO_HOLE_BYTES));
                        if !hole && next < limit && reader.payload(next).is_ok() {
                            return Err(Error::Corruption {
                                segment: self.path.clone(),
                                offset: SEGMENT_HEADER_LEN + pos,
                                reason: format!(
                                    "{reason}, and valid records follow it: the segment is damaged, not torn"
                                ),
                            });
                        }
                    }
                    torn = Some(reason);
                    break;
                }
                Err(Bad::Io(source)) => {
                    return Err(Error::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
        if let Some(reason) = torn {
            tracing::warn!(
                segment = %self.path.display(),
                offset = SEGMENT_HEADER_LEN + pos,
                dropped_bytes = limit - pos,
                reason,
                "torn tail in the last WAL segment; truncating to the last whole record"
            );
            let io = |source| Error::Io {
                path: self.path.clone(),
                source,
            };
            self.file.set_len(SEGMENT_HEADER_LEN + pos).map_err(io)?;
            self.file.sync_all().map_err(io)?;
            self.file_len
                .store(SEGMENT_HEADER_LEN + pos, Ordering::Release);
        }
        *lock(&self.index) = Some(index);
        Ok(pos)
    }

    /// Checks every frame of a sealed segment (length, checksum, and that the
    /// last one ends exactly at `data_len`, where the next segment begins),
    /// building the read index on the way.
    pub(crate) fn verify_sealed(&self, data_len: u64) -> Result<()> {
        let mut reader = FrameReader::new(self, data_len);
        let mut index = vec![0];
        let mut pos = 0;
        while pos < data_len {
            match reader.payload(pos) {
                Ok(payload) => {
                    pos += FRAME_HEADER_LEN + payload.len() as u64;
                    sample(&mut index, pos);
                }
                Err(Bad::Frame(reason)) => {
                    return Err(Error::Corruption {
                        segment: self.path.clone(),
                        offset: SEGMENT_HEADER_LEN + pos,
                        reason: reason.to_owned(),
                    });
                }
                Err(Bad::Io(source)) => {
                    return Err(Error::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
        *lock(&self.index) = Some(index);
        Ok(())
    }

    /// Cuts the segment back to `data_pos` bytes of data (undoing frames of
    /// an append that was never acknowledged), durably, and forgets the
    /// record boundaries past it.
    pub(crate) fn forget_from(&self, data_pos: u64) -> Result<()> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        self.file
            .set_len(SEGMENT_HEADER_LEN + data_pos)
            .map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.file_len
            .store(SEGMENT_HEADER_LEN + data_pos, Ordering::Release);
        if let Some(index) = lock(&self.index).as_mut() {
            index.retain(|boundary| *boundary <= data_pos);
        }
        Ok(())
    }

    /// Remembers that a record starts at `pos` (the writer calls this for
    /// every record it writes, in order).
    pub(crate) fn note_boundary(&self, pos: u64) {
        if let Some(index) = lock(&self.index).as_mut() {
            sample(index, pos);
        }
    }

    /// The largest remembered boundary `<= pos`. Builds the index first if
    /// this segment has none yet, walking its frame headers up to `data_len`
    /// (the segment's full length: for a sealed segment, where its successor
    /// starts). A walk that meets a damaged header stops there: reads beyond it
    /// meet the same damage and report it.
    fn floor_boundary(&self, pos: u64, data_len: u64) -> Result<u64> {
        let mut index = lock(&self.index);
        if index.is_none() {
            let mut built = vec![0];
            let mut reader = FrameReader::new(self, data_len);
            let mut at = 0;
            while at < data_len {
                match reader.frame_len(at) {
                    Ok(len) => {
                        at += len;
                        sample(&mut built, at);
                    }
                    Err(Bad::Frame(_)) => break,
                    Err(Bad::Io(source)) => {
                        return Err(Error::Io {
                            path: self.path.clone(),
                            source,
                        });
                    }
                }
            }
            *index = Some(built);
        }
        let points = index.as_deref().unwrap_or(&[0]);
        let at = points.partition_point(|p| *p <= pos);
        Ok(if at == 0 { 0 } else { points[at - 1] })
    }

    /// Appends to `out` the records of this segment from data offset `pos` up
    /// to `end` (exclusive), within the limits. `data_len` is the segment's
    /// full length, for building its index. `pos` must be a record boundary:
    /// it is checked by walking from the nearest remembered boundary.
    ///
    /// Returns the offset after the last record read.
    pub(crate) fn read_into(
        &self,
        pos: u64,
        end: u64,
        data_len: u64,
        limits: &mut Limits,
        out: &mut Vec<crate::WalRecord>,
    ) -> Result<u64> {
        let mut reader = FrameReader::new(self, end);
        let corrupt = |at: u64, bad: Bad| match bad {
            Bad::Frame(reason) => Error::Corruption {
                segment: self.path.clone(),
                offset: SEGMENT_HEADER_LEN + at,
                reason: reason.to_owned(),
            },
            Bad::Io(source) => Error::Io {
                path: self.path.clone(),
                source,
            },
        };
        let mut at = self.floor_boundary(pos, data_len)?;
        while at < pos {
            at += reader.frame_len(at).map_err(|bad| corrupt(at, bad))?;
        }
        if at != pos {
            return Err(Error::InvalidPosition {
                lsn: self.base + pos,
            });
        }
        while at < end && limits.admit_more() {
            let payload = reader.shared_payload(at).map_err(|bad| corrupt(at, bad))?;
            if !limits.admit(payload.len()) {
                break;
            }
            let next = at + FRAME_HEADER_LEN + payload.len() as u64;
            out.push(crate::WalRecord {
                lsn: self.base + at,
                next_lsn: self.base + next,
                payload,
            });
            at = next;
        }
        Ok(at)
    }
}

/// What a read may still return.
#[derive(Debug)]
pub(crate) struct Limits {
    /// Records left.
    pub records: usize,
    /// Payload bytes left.
    pub bytes: usize,
    /// Whether a record was returned yet: the first one is returned whatever
    /// its size, so a record larger than `max_bytes` cannot stall a reader.
    pub any: bool,
}

impl Limits {
    fn admit_more(&self) -> bool {
        self.records > 0
    }

    fn admit(&mut self, len: usize) -> bool {
        if self.any && len > self.bytes {
            return false;
        }
        self.records -= 1;
        self.bytes = self.bytes.saturating_sub(len);
        self.any = true;
        true
    }
}

/// Adds `pos` to the sparse index when it is far enough past the last entry.
fn sample(index: &mut Vec<u64>, pos: u64) {
    if index.last().is_none_or(|last| pos >= last + INDEX_INTERVAL) {
        index.push(pos);
    }
}

/// A run of zero bytes this long inside a frame is a page that never reached
/// the disk, not a flipped bit: record payloads (JSON text) hold no such runs.
const ZERO_HOLE_BYTES: usize = 512;

/// Whether `bytes` holds `run` consecutive zero bytes (or is shorter and all zero).
fn has_zero_run(bytes: &[u8], run: usize) -> bool {
    if bytes.len() < run {
        return !bytes.is_empty() && bytes.iter().all(|b| *b == 0);
    }
    let mut current = 0;
    for b in bytes {
        current = if *b == 0 { current + 1 } else { 0 };
        if current >= run {
            return true;
        }
    }
    false
}

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum Bad {
    /// The bytes are not a whole, valid frame.
    Frame(&'static str),
    /// The file could not be read.
    Io(io::Error),
}

/// Reads frames of one segment through a buffer, never past `limit` (a data
/// offset), so a reader cannot see bytes beyond what it was told is there.
pub(crate) struct FrameReader<'a> {
    segment: &'a Segment,
    limit: u64,
    /// What was read last. Shared: the payloads handed out are slices of it,
    /// not copies, and keep it alive while they live.
    buf: bytes::Bytes,
    /// Data offset of `buf[0]`.
    buf_pos: u64,
}

impl<'a> FrameReader<'a> {
    pub(crate) fn new(segment: &'a Segment, limit: u64) -> Self {
        FrameReader {
            segment,
            limit,
            buf: bytes::Bytes::new(),
            buf_pos: 0,
        }
    }

    /// `len` bytes at data offset `pos`; the caller has checked they are below
    /// the limit.
    fn bytes(&mut self, pos: u64, len: usize) -> Result<&[u8], Bad> {
        let start = self.fill(pos, len)?;
        Ok(&self.buf[start..start + len])
    }

    /// Makes sure `len` bytes at data offset `pos` are in `buf` (reading a
    /// new buffer from there when they are not); returns where they start in it.
    fn fill(&mut self, pos: u64, len: usize) -> Result<usize, Bad> {
        let buffered =
            pos >= self.buf_pos && pos + len as u64 <= self.buf_pos + self.buf.len() as u64;
        if !buffered {
            let want = (self.limit - pos).min(READ_CHUNK.max(len) as u64) as usize;
            // A new buffer each time: the previous one may still be shared
            // by payloads handed out.
            let mut fresh = vec![0; want];
            read_exact_at(&self.segment.file, &mut fresh, SEGMENT_HEADER_LEN + pos).map_err(
                |e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => Bad::Frame("segment file ends early"),
                    _ => Bad::Io(e),
                },
            )?;
            self.buf = bytes::Bytes::from(fresh);
            self.buf_pos = pos;
        }
        Ok((pos - self.buf_pos) as usize)
    }

    /// The checked header of the frame at `pos`: it is whole, within the
    /// record cap, and its payload ends within the limit.
    fn header(&mut self, pos: u64) -> Result<FrameHeader, Bad> {
        if self.limit - pos < FRAME_HEADER_LEN {
            return Err(Bad::Frame("incomplete frame header"));
        }
        let header = FrameHeader::decode(self.bytes(pos, FRAME_HEADER_LEN as usize)?);
        if header.len as usize > MAX_RECORD_BYTES {
            return Err(Bad::Frame("frame length exceeds the record cap"));
        }
        if self.limit - pos - FRAME_HEADER_LEN < u64::from(header.len) {
            return Err(Bad::Frame("incomplete frame payload"));
        }
        Ok(header)
    }

    /// Total length (header and payload) of the frame at `pos`, without
    /// reading or checking its payload.
    pub(crate) fn frame_len(&mut self, pos: u64) -> Result<u64, Bad> {
        Ok(FRAME_HEADER_LEN + u64::from(self.header(pos)?.len))
    }

    /// [`FrameReader::payload`] as a slice of the shared buffer it was read
    /// into: no copy.
    pub(crate) fn shared_payload(&mut self, pos: u64) -> Result<bytes::Bytes, Bad> {
        let range = self.payload_range(pos)?;
        Ok(self.buf.slice(range))
    }

    /// The payload of the frame at `pos`, checksum verified.
    pub(crate) fn payload(&mut self, pos: u64) -> Result<&[u8], Bad> {
        let range = self.payload_range(pos)?;
        Ok(&self.buf[range])
    }

    /// Where the payload of the frame at `pos` lies in `buf`, its checksum
    /// verified.
    fn payload_range(&mut self, pos: u64) -> Result<std::ops::Range<usize>, Bad> {
        let header = self.header(pos)?;
        let len = header.len as usize;
        let start = self.fill(pos + FRAME_HEADER_LEN, len)?;
        if frame_crc(&self.buf[start..start + len]) != header.crc {
            return Err(Bad::Frame("frame checksum mismatch"));
        }
        Ok(start..start + len)
    }
}

/// Fills `buf` from `offset` without moving the file's cursor, so readers
/// share the file with the writer without a lock.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Writes all of `buf` at `offset`: positional, like the reads, so nothing
/// depends on where the file's cursor is.
pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

/// Makes a directory's entries (created, renamed or removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.to_owned(),
        source,
    };
    File::open(dir).map_err(io)?.sync_all().map_err(io)
}
