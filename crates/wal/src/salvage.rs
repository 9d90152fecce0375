//! Verifying a damaged log and salvaging every intact record (`cairn doctor`).
//!
//! [`Wal::open`](crate::Wal::open) refuses a damaged log. [`salvage`] is the
//! way back: it reads every segment frame by frame without trusting any of
//! it, reports what is damaged, and (with `repair`) rewrites each damaged
//! byte range in place as *lost-record markers*: valid frames whose payload
//! starts with [`LOST_RECORD_MARK`] and covers exactly the damaged bytes.
//! Because the markers fill the same byte ranges, every intact record keeps
//! its LSN, so consumers' cursors and the positions inside their checkpoints
//! stay true; a consumer reading a marker knows a record (or several) was
//! lost there and can count it. Missing ranges (a deleted or truncated
//! segment) are filled with markers the same way.
//!
//! What cannot be rebuilt is reported, not guessed: a missing or damaged
//! cursors file (where each consumer stopped is lost), and a segment header
//! whose base LSN does not match its file name.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::format::{
    CURSORS_FILE, FRAME_HEADER_LEN, FrameHeader, MAX_RECORD_BYTES, SEGMENT_HEADER_LEN, TMP_SUFFIX,
    decode_cursors, decode_segment_header, encode_frame, encode_segment_header, frame_crc,
    parse_segment_file_name, segment_file_name,
};
use crate::segment::sync_dir;
use crate::{Error, Lsn, Result};

/// The first payload byte of a lost-record marker. No payload a consumer
/// appends may start with it ([`Wal::append`](crate::Wal::append) refuses
/// such payloads), so a marker is never mistaken for a record.
pub const LOST_RECORD_MARK: u8 = 0xFF;

/// The smallest marker frame: a header and the mark byte.
const MIN_MARKER_FRAME: u64 = FRAME_HEADER_LEN + 1;

/// One damaged or missing byte range, by LSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRange {
    /// The file the range is (or should be) in.
    pub file: PathBuf,
    /// First LSN of the range.
    pub from: Lsn,
    /// LSN just past it.
    pub to: Lsn,
    /// What is wrong.
    pub reason: String,
}

/// What [`salvage`] found (and, with `repair`, did).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalvageReport {
    /// Segment files read.
    pub segments: usize,
    /// Intact records found.
    pub intact_records: u64,
    /// Lost-record markers already in the log (from an earlier salvage).
    pub earlier_markers: u64,
    /// Damaged or missing ranges (rewritten as markers when repairing).
    pub damaged: Vec<DamagedRange>,
    /// Bytes past the last whole record of the newest segment: a torn tail
    /// of appends that were never acknowledged (truncated when repairing).
    pub torn_tail_bytes: u64,
    /// Problems salvage cannot repair (the log still refuses to open).
    pub unrepairable: Vec<String>,
}

impl SalvageReport {
    /// Whether the log needs no repair.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.unrepairable.is_empty()
    }
}

/// Reads the log in `dir` without trusting it and reports every damaged or
/// missing range; with `repair`, rewrites them as lost-record markers (each
/// file replaced atomically) and truncates a torn tail, so that the log opens
/// again with every intact record at its old LSN.
pub fn salvage(dir: &Path, repair: bool) -> Result<SalvageReport> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let mut report = SalvageReport::default();
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        if let Some(base) = entry.file_name().to_str().and_then(parse_segment_file_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    report.segments = bases.len();

    let cursors_path = dir.join(CURSORS_FILE);
    let mut highest_cursor = None;
    // Every cursor must stay on a record boundary after repair: markers are
    // split at cursors that fall inside a damaged range.
    let mut cuts = std::collections::BTreeSet::new();
    let lowest_cursor = match fs::read(&cursors_path) {
        Ok(bytes) => match decode_cursors(&bytes) {
            Ok((consumers, recorded_head)) => {
                cuts.extend(consumers.values().map(|c| c.lsn));
                highest_cursor = consumers
                    .iter()
                    .max_by_key(|(_, c)| c.lsn)
                    .map(|(name, c)| (format!("consumer {name:?}'s cursor"), c.lsn))
                    .filter(|(_, lsn)| *lsn >= recorded_head)
                    .or(Some((
                        "the durable head the cursors file recorded".to_owned(),
                        recorded_head,
                    )));
                consumers.values().map(|c| c.lsn).min()
            }
            Err(reason) => {
                report
                    .unrepairable
                    .push(format!("{}: {reason}", cursors_path.display()));
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !bases.is_empty() {
                report.unrepairable.push(format!(
                    "{}: missing; where each consumer stopped is lost",
                    cursors_path.display()
                ));
            }
            None
        }
        Err(e) => return Err(io(&cursors_path)(e)),
    };

    // A cursor below the oldest segment: the segments it needs were deleted.
    if let (Some(low), Some(&oldest)) = (lowest_cursor, bases.first())
        && low < oldest
    {
        let file = dir.join(segment_file_name(low));
        report.damaged.push(DamagedRange {
            file: file.clone(),
            from: low,
            to: oldest,
            reason: "segments still needed by a consumer were deleted".to_owned(),
        });
        if repair {
            let mut bytes = encode_segment_header(low).to_vec();
            fill_markers(&mut bytes, low, oldest, &cuts);
            replace_file(dir, &file, &bytes)?;
        }
    }

    let mut segments: BTreeMap<Lsn, Vec<u8>> = BTreeMap::new();
    for base in &bases {
        let path = dir.join(segment_file_name(*base));
        segments.insert(*base, fs::read(&path).map_err(io(&path))?);
    }
    let newest = bases.last().copied();
    let next_bases: Vec<Option<Lsn>> = bases
        .iter()
        .skip(1)
        .map(|b| Some(*b))
        .chain(std::iter::once(None))
        .collect();
    for (base, next) in bases.iter().zip(next_bases) {
        let path = dir.join(segment_file_name(*base));
        let bytes = segments.remove(base).unwrap_or_default();
        let mut changed = false;
        let mut out = Vec::with_capacity(bytes.len());
        match bytes
            .get(..SEGMENT_HEADER_LEN as usize)
            .and_then(|h| h.try_into().ok())
            .map(decode_segment_header)
        {
            Some(Ok(found)) if found == *base => {}
            Some(Ok(found)) => {
                report.unrepairable.push(format!(
                    "{}: header says base LSN {found}, file name says {base}",
                    path.display()
                ));
                continue;
            }
            Some(Err(reason)) => {
                report
                    .unrepairable
                    .push(format!("{}: {reason}", path.display()));
                continue;
            }
            None => {
                changed = true;
                report.damaged.push(DamagedRange {
                    file: path.clone(),
                    from: *base,
                    to: *base,
                    reason: "the segment header is cut short".to_owned(),
                });
            }
        }
        out.extend_from_slice(&encode_segment_header(*base));
        let data = bytes.get(SEGMENT_HEADER_LEN as usize..).unwrap_or(&[]);
        // Where this segment's data must end: where the next one begins.
        let must_end = next.map(|n| n.saturating_sub(*base));
        let mut pos = 0usize;
        // Where each frame copied as it was starts (LSN), and whether it is a
        // record (else an earlier marker): a gap at the end too short for a
        // marker frame is widened back over them.
        let mut copied: Vec<(Lsn, bool)> = Vec::new();
        while pos < data.len() {
            if let Some(len) = valid_frame_at(data, pos) {
                // An empty record has no first byte (and is not a marker).
                let record = data.get(pos + FRAME_HEADER_LEN as usize) != Some(&LOST_RECORD_MARK);
                if record {
                    report.intact_records += 1;
                } else {
                    report.earlier_markers += 1;
                }
                copied.push((base + (out.len() as u64 - SEGMENT_HEADER_LEN), record));
                out.extend_from_slice(&data[pos..pos + len]);
                pos += len;
                continue;
            }
            // Damage at `pos`: resynchronise on the next valid frame.
            let resync = (pos + 1..data.len()).find(|at| {
                valid_frame_at(data, *at).is_some()
                    && (*at - pos) as u64 >= MIN_MARKER_FRAME
                    && must_end.is_none_or(|end| (*at as u64) < end)
            });
            match resync {
                Some(at) => {
                    report.damaged.push(DamagedRange {
                        file: path.clone(),
                        from: base + pos as u64,
                        to: base + at as u64,
                        reason: "frames that fail their checksum or length check".to_owned(),
                    });
                    fill_markers(&mut out, *base, base + at as u64, &cuts);
                    changed = true;
                    pos = at;
                }
                None if Some(*base) == newest => {
                    // The newest segment's tail: appends never acknowledged.
                    report.torn_tail_bytes = (data.len() - pos) as u64;
                    changed = true;
                    break;
                }
                None => {
                    let end = must_end.unwrap_or(data.len() as u64) as usize;
                    report.damaged.push(DamagedRange {
                        file: path.clone(),
                        from: base + pos as u64,
                        to: base + end as u64,
                        reason: "frames that fail their checksum or length check".to_owned(),
                    });
                    fill_markers(&mut out, *base, base + end as u64, &cuts);
                    changed = true;
                    pos = data.len();
                }
            }
        }
        let data_end = (out.len() as u64) - SEGMENT_HEADER_LEN;
        // The newest segment ends below a consumer's cursor: records it had
        // read (durable, acknowledged) were cut off. Markers up to the cursor
        // keep every cursor on a record boundary.
        if Some(*base) == newest
            && let Some((name, cursor)) = &highest_cursor
            && *cursor > base + data_end
        {
            let Some(from) = widen_back(&mut out, &mut copied, *base, *cursor, &cuts, &mut report)
            else {
                report.unrepairable.push(format!(
                    "{}: a cut {} bytes short of {name} cannot hold a lost-record marker",
                    path.display(),
                    cursor - (base + data_end)
                ));
                continue;
            };
            report.damaged.push(DamagedRange {
                file: path.clone(),
                from,
                to: *cursor,
                reason: format!("the newest segment was truncated below {name}"),
            });
            fill_markers(&mut out, *base, *cursor, &cuts);
            changed = true;
        }
        let data_end = (out.len() as u64) - SEGMENT_HEADER_LEN;
        if let Some(end) = must_end {
            if data_end < end {
                let Some(from) =
                    widen_back(&mut out, &mut copied, *base, base + end, &cuts, &mut report)
                else {
                    report.unrepairable.push(format!(
                        "{}: a cut {} bytes short of the next segment cannot hold a lost-record marker",
                        path.display(),
                        end - data_end
                    ));
                    continue;
                };
                report.damaged.push(DamagedRange {
                    file: path.clone(),
                    from,
                    to: base + end,
                    reason: "the segment was truncated or a segment after it was deleted"
                        .to_owned(),
                });
                fill_markers(&mut out, *base, base + end, &cuts);
                changed = true;
            } else if data_end > end {
                report.unrepairable.push(format!(
                    "{}: holds data past LSN {}, where the next segment begins",
                    path.display(),
                    base + end
                ));
                continue;
            }
        }
        if repair && changed {
            replace_file(dir, &path, &out)?;
        }
    }
    Ok(report)
}

/// Makes the gap from the end of `out` to `to` long enough for a marker
/// frame, giving the last copied frames up to it (they count as lost) while
/// no cursor falls inside the widened range. Returns where the gap now
/// starts, or `None` when it cannot be widened.
fn widen_back(
    out: &mut Vec<u8>,
    copied: &mut Vec<(Lsn, bool)>,
    base: Lsn,
    to: Lsn,
    cuts: &std::collections::BTreeSet<Lsn>,
    report: &mut SalvageReport,
) -> Option<Lsn> {
    loop {
        let end = base + (out.len() as u64 - SEGMENT_HEADER_LEN);
        if to - end >= MIN_MARKER_FRAME {
            return Some(end);
        }
        let &(start, record) = copied.last()?;
        if cuts.range(start + 1..to).next().is_some() {
            return None;
        }
        copied.pop();
        out.truncate((SEGMENT_HEADER_LEN + (start - base)) as usize);
        if record {
            report.intact_records -= 1;
        } else {
            report.earlier_markers -= 1;
        }
    }
}

/// The length of the valid frame at `pos` of a segment's data, if one is there.
fn valid_frame_at(data: &[u8], pos: usize) -> Option<usize> {
    let header = data.get(pos..pos + FRAME_HEADER_LEN as usize)?;
    let header = FrameHeader::decode(header);
    let len = header.len as usize;
    if len > MAX_RECORD_BYTES {
        return None;
    }
    let start = pos + FRAME_HEADER_LEN as usize;
    let payload = data.get(start..start + len)?;
    (frame_crc(payload) == header.crc).then_some(FRAME_HEADER_LEN as usize + len)
}

/// Appends marker frames to the segment data in `out` (a segment based at
/// `base`, header included) up to LSN `to`, a frame ending at every cut (a
/// cursor) inside the range, so that cursors stay on record boundaries.
fn fill_markers(out: &mut Vec<u8>, base: Lsn, to: Lsn, cuts: &std::collections::BTreeSet<Lsn>) {
    let mut at = base + (out.len() as u64 - SEGMENT_HEADER_LEN);
    if to <= at {
        return;
    }
    for &cut in cuts.range(at + 1..to) {
        if cut - at >= MIN_MARKER_FRAME && to - cut >= MIN_MARKER_FRAME {
            push_markers(out, cut - at);
            at = cut;
        }
    }
    push_markers(out, to - at);
}

/// Appends marker frames covering exactly `bytes` bytes. A range shorter
/// than [`MIN_MARKER_FRAME`] cannot hold a frame: callers only pass ranges
/// that held at least one whole frame, and a frame with a payload (every
/// record consumers append has one) is at least that long.
fn push_markers(out: &mut Vec<u8>, mut bytes: u64) {
    debug_assert!(
        bytes >= MIN_MARKER_FRAME,
        "a {bytes}-byte range cannot hold a marker"
    );
    let bytes_floor = MIN_MARKER_FRAME;
    if bytes < bytes_floor {
        // Fill what can be filled with zeros; the open reports it as damage.
        out.resize(out.len() + bytes as usize, 0);
        return;
    }
    let max_frame = FRAME_HEADER_LEN + MAX_RECORD_BYTES as u64;
    while bytes > 0 {
        let mut frame = bytes.min(max_frame);
        // Never leave a remainder too short for a frame of its own.
        if bytes - frame > 0 && bytes - frame < MIN_MARKER_FRAME {
            frame -= MIN_MARKER_FRAME;
        }
        let mut payload = vec![0u8; (frame - FRAME_HEADER_LEN) as usize];
        payload[0] = LOST_RECORD_MARK;
        encode_frame(out, &payload);
        bytes -= frame;
    }
}

/// Replaces `path` with `bytes`: temporary file, fsync, rename, fsync the directory.
fn replace_file(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", path.display()));
    {
        use std::io::Write as _;
        let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(dir)
}
