//! Byte layouts of the files the log owns. The crate documentation describes
//! them as pseudo-structs; this module is the single place that encodes and
//! decodes them, so the two can be compared line by line.

use std::collections::BTreeMap;

use crate::{Checkpoint, Lsn};

/// First bytes of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"CAIRNWAL";
/// First bytes of the cursors file.
pub(crate) const CURSORS_MAGIC: [u8; 8] = *b"CAIRNCUR";
/// Version of the segment layout this code writes and reads.
pub(crate) const SEGMENT_VERSION: u32 = 1;
/// Version of the cursors layout this code writes (it reads 1 too).
pub(crate) const CURSORS_VERSION: u32 = 2;
/// Bytes before the first frame of a segment: magic, version, base LSN, CRC.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 24;
/// Bytes before the payload of a frame: length and CRC.
pub(crate) const FRAME_HEADER_LEN: u64 = 8;
/// Largest payload a single record may carry.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// Suffix of segment files.
pub(crate) const SEGMENT_SUFFIX: &str = ".wal";
/// Suffix of files being written before their atomic rename.
pub(crate) const TMP_SUFFIX: &str = ".tmp";
/// Name of the consumers' cursors file.
pub(crate) const CURSORS_FILE: &str = "cursors";

/// The file name of the segment whose first record is at `base`. Zero padded
/// to the 20 digits of `u64::MAX`, so names sort like the LSNs they carry.
pub(crate) fn segment_file_name(base: Lsn) -> String {
    format!("{base:020}{SEGMENT_SUFFIX}")
}

/// The base LSN in a segment file name, or `None` for any other file.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Encodes a segment header.
pub(crate) fn encode_segment_header(base: Lsn) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut out = [0u8; SEGMENT_HEADER_LEN as usize];
    out[0..8].copy_from_slice(&SEGMENT_MAGIC);
    out[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    out[12..20].copy_from_slice(&base.to_le_bytes());
    let crc = crc32c::crc32c(&out[0..20]);
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a segment header into its base LSN, or says what is wrong with it.
pub(crate) fn decode_segment_header(
    buf: &[u8; SEGMENT_HEADER_LEN as usize],
) -> Result<Lsn, String> {
    if buf[0..8] != SEGMENT_MAGIC {
        return Err("not a Cairn WAL segment (bad magic)".to_owned());
    }
    let crc = u32_at(buf, 20);
    if crc != crc32c::crc32c(&buf[0..20]) {
        return Err("segment header checksum mismatch".to_owned());
    }
    let version = u32_at(buf, 8);
    if version != SEGMENT_VERSION {
        return Err(format!("unsupported segment version {version}"));
    }
    Ok(u64_at(buf, 12))
}

/// Bytes a frame carrying `payload_len` bytes occupies on disk.
pub(crate) fn frame_len(payload_len: usize) -> u64 {
    FRAME_HEADER_LEN + payload_len as u64
}

/// The checksum stored in a frame header. It covers the length as well as the
/// payload: with `crc32c(payload)` alone, a run of zero bytes (what some file
/// systems leave after a crash that extended a file without writing its data)
/// would parse as a valid empty record, because `crc32c(b"") == 0`.
pub(crate) fn frame_crc(payload: &[u8]) -> u32 {
    let len = (payload.len() as u32).to_le_bytes();
    crc32c::crc32c_append(crc32c::crc32c(&len), payload)
}

/// Appends one frame to `out`. The caller has checked the payload against
/// [`MAX_RECORD_BYTES`], so its length fits the `u32` field.
pub(crate) fn encode_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&frame_crc(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// Payload length.
    pub len: u32,
    /// Expected [`frame_crc`] of the payload.
    pub crc: u32,
}

impl FrameHeader {
    /// Decodes the 8 header bytes of a frame.
    pub(crate) fn decode(buf: &[u8]) -> FrameHeader {
        FrameHeader {
            len: u32_at(buf, 0),
            crc: u32_at(buf, 4),
        }
    }
}

/// Encodes the consumers' cursors file, with the durable head when it was
/// written (the log is known to hold at least that much).
pub(crate) fn encode_cursors(
    consumers: &BTreeMap<String, Checkpoint>,
    durable_head: Lsn,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&CURSORS_MAGIC);
    out.extend_from_slice(&CURSORS_VERSION.to_le_bytes());
    out.extend_from_slice(&(consumers.len() as u32).to_le_bytes());
    out.extend_from_slice(&durable_head.to_le_bytes());
    for (name, checkpoint) in consumers {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&checkpoint.lsn.to_le_bytes());
        match &checkpoint.state {
            None => out.push(0),
            Some(state) => {
                out.push(1);
                out.extend_from_slice(&(state.len() as u32).to_le_bytes());
                out.extend_from_slice(state);
            }
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes the consumers' cursors file and the durable head it recorded (0
/// in a version 1 file), or says what is wrong with it.
pub(crate) fn decode_cursors(buf: &[u8]) -> Result<(BTreeMap<String, Checkpoint>, Lsn), String> {
    if buf.len() < 8 + 4 + 4 + 4 || buf[0..8] != CURSORS_MAGIC {
        return Err("not a Cairn cursors file (bad magic or too short)".to_owned());
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if u32_at(crc, 0) != crc32c::crc32c(body) {
        return Err("cursors file checksum mismatch".to_owned());
    }
    let version = u32_at(body, 8);
    let mut reader = Reader { buf: body, pos: 16 };
    let durable_head = match version {
        1 => 0,
        2 => reader.u64()?,
        _ => return Err(format!("unsupported cursors version {version}")),
    };
    let count = u32_at(body, 12);
    let mut consumers = BTreeMap::new();
    for _ in 0..count {
        let name_len = reader.u32()? as usize;
        let name = std::str::from_utf8(reader.take(name_len)?)
            .map_err(|_| "consumer name is not UTF-8".to_owned())?
            .to_owned();
        let lsn = reader.u64()?;
        let state = match reader.take(1)?[0] {
            0 => None,
            1 => {
                let len = reader.u32()? as usize;
                Some(reader.take(len)?.to_vec())
            }
            tag => return Err(format!("bad state tag {tag}")),
        };
        consumers.insert(name, Checkpoint { lsn, state });
    }
    if reader.pos != body.len() {
        return Err("trailing bytes after the last consumer".to_owned());
    }
    Ok((consumers, durable_head))
}

/// A bounds-checked cursor over a checksummed buffer. The checksum already
/// vouches for the bytes; the bounds checks keep a bug from becoming a panic.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| "cursors file ends inside an entry".to_owned())?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32_at(self.take(4)?, 0))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64_at(self.take(8)?, 0))
    }
}

/// Little-endian `u32` at `at`; callers pass slices they have length-checked.
fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(bytes)
}

/// Little-endian `u64` at `at`; callers pass slices they have length-checked.
fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_segment_names_sort_like_lsns() {
        let names: Vec<String> = [0, 9, 10, 1 << 40, u64::MAX]
            .iter()
            .map(|l| segment_file_name(*l))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names[0], "00000000000000000000.wal");
        for (name, lsn) in names.iter().zip([0, 9, 10, 1 << 40, u64::MAX]) {
            assert_eq!(parse_segment_file_name(name), Some(lsn));
        }
        assert_eq!(parse_segment_file_name("0.wal"), None);
        assert_eq!(
            parse_segment_file_name("00000000000000000000.wal.tmp"),
            None
        );
        assert_eq!(parse_segment_file_name("cursors"), None);
    }

    #[test]
    fn test_segment_header_round_trip_and_rejects_damage() {
        let header = encode_segment_header(1234);
        assert_eq!(decode_segment_header(&header), Ok(1234));
        for i in 0..header.len() {
            let mut bad = header;
            bad[i] ^= 0x01;
            assert!(decode_segment_header(&bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn test_zeroed_frame_is_not_valid() {
        // The reason the checksum covers the length: see `frame_crc`.
        let header = FrameHeader::decode(&[0u8; 8]);
        assert_ne!(header.crc, frame_crc(&[]));
    }

    #[test]
    fn test_frame_layout() {
        let mut out = Vec::new();
        encode_frame(&mut out, b"abc");
        assert_eq!(out.len() as u64, frame_len(3));
        let header = FrameHeader::decode(&out[..8]);
        assert_eq!(header.len, 3);
        assert_eq!(header.crc, frame_crc(b"abc"));
        assert_eq!(&out[8..], b"abc");
    }

    #[test]
    fn test_cursors_round_trip_and_rejects_damage() {
        let mut consumers = BTreeMap::new();
        consumers.insert(
            "a".to_owned(),
            Checkpoint {
                lsn: 7,
                state: None,
            },
        );
        consumers.insert(
            "trail:arn".to_owned(),
            Checkpoint {
                lsn: 1 << 33,
                state: Some(b"{\"k\":1}".to_vec()),
            },
        );
        consumers.insert(
            "empty-state".to_owned(),
            Checkpoint {
                lsn: 0,
                state: Some(Vec::new()),
            },
        );
        let bytes = encode_cursors(&consumers, 1 << 34);
        assert_eq!(decode_cursors(&bytes), Ok((consumers, 1 << 34)));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x80;
            assert!(decode_cursors(&bad).is_err(), "byte {i}");
        }
        for len in 0..bytes.len() {
            assert!(decode_cursors(&bytes[..len]).is_err(), "prefix {len}");
        }
        assert_eq!(
            decode_cursors(&encode_cursors(&BTreeMap::new(), 0)),
            Ok((BTreeMap::new(), 0))
        );
        // Version 1 (no durable head) is still read.
        let mut v1 = CURSORS_MAGIC.to_vec();
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(b"c");
        v1.extend_from_slice(&7u64.to_le_bytes());
        v1.push(0);
        let crc = crc32c::crc32c(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        let (read, head) = decode_cursors(&v1).unwrap();
        assert_eq!(head, 0);
        assert_eq!(read["c"].lsn, 7);
    }
}
