//! Behaviour tests of the log as a whole: round trips, recovery from torn
//! tails and damage, cursors, segment removal, the disk bound, concurrency,
//! and a model-based property test.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::format::{FRAME_HEADER_LEN, encode_frame};

fn config(dir: &Path, segment_bytes: u64, max_disk_bytes: u64) -> WalConfig {
    WalConfig {
        dir: dir.to_owned(),
        segment_bytes,
        max_disk_bytes,
    }
}

fn open(dir: &Path, segment_bytes: u64) -> Wal {
    Wal::open(config(dir, segment_bytes, u64::MAX)).unwrap()
}

/// Everything from `from` to the head, in pages small enough to cross
/// segments and page boundaries often.
fn read_all(wal: &Wal, from: Lsn) -> Vec<WalRecord> {
    let mut out = Vec::new();
    let mut at = from;
    loop {
        let page = wal.read(at, 7, 1 << 20).unwrap();
        let Some(last) = page.last() else { break };
        at = last.next_lsn;
        out.extend(page);
    }
    assert_eq!(at, wal.head(), "reading stops at the head");
    out
}

fn payloads(records: &[WalRecord]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.payload.to_vec()).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

fn files_bytes(dir: &Path) -> u64 {
    segment_files(dir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

/// Records of varied sizes, each unique.
fn sample_records(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut r = format!("record-{i}-").into_bytes();
            r.resize(r.len() + (i * 7) % 40, b'a' + (i % 26) as u8);
            r
        })
        .collect()
}

fn append_all(wal: &Wal, records: &[Vec<u8>], batch: usize) -> Vec<Lsn> {
    let mut lsns = Vec::new();
    for chunk in records.chunks(batch) {
        let slices: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        let receipt = wal.append(&slices).unwrap();
        assert_eq!(receipt.lsns.len(), chunk.len());
        assert_eq!(receipt.first_lsn, receipt.lsns[0]);
        assert!(wal.head() >= receipt.end_lsn);
        lsns.extend(receipt.lsns);
    }
    lsns
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

#[test]
fn test_wal_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Wal>();
    assert_send_sync::<Arc<Wal>>();
}

#[test]
fn test_append_read_round_trip_across_segment_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), 200);
    assert_eq!(wal.head(), 0);
    assert_eq!(wal.oldest_lsn(), 0);
    let records = sample_records(60);
    // A consumer at 0 keeps every segment.
    wal.register_consumer("keep", 0).unwrap();
    let lsns = append_all(&wal, &records, 4);

    // LSNs are byte positions: each record starts where the previous ended.
    assert_eq!(lsns[0], 0);
    for i in 1..records.len() {
        assert_eq!(
            lsns[i],
            lsns[i - 1] + FRAME_HEADER_LEN + records[i - 1].len() as u64
        );
    }
    let last = records.len() - 1;
    assert_eq!(
        wal.head(),
        lsns[last] + FRAME_HEADER_LEN + records[last].len() as u64
    );

    let files = segment_files(dir.path());
    assert!(
        files.len() > 5,
        "expected many segments, got {}",
        files.len()
    );
    for file in &files {
        let len = fs::metadata(file).unwrap().len();
        // Only a segment holding a single record may exceed the size.
        assert!(len <= 200, "{} is {len} bytes", file.display());
    }
    assert_eq!(wal.disk_bytes(), files_bytes(dir.path()));

    let all = read_all(&wal, 0);
    assert_eq!(payloads(&all), records);
    assert_eq!(all.iter().map(|r| r.lsn).collect::<Vec<_>>(), lsns);

    // Reading from any record starts exactly there.
    for (i, lsn) in lsns.iter().enumerate() {
        let page = wal.read(*lsn, 3, usize::MAX).unwrap();
        assert_eq!(page[0].payload.as_ref(), records[i].as_slice());
        assert_eq!(page.len(), 3.min(records.len() - i));
    }
    // A segment's end is the next one's start, and reads cross it.
    let second_base: Lsn = files[1]
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(format::parse_segment_file_name)
        .unwrap();
    let before = lsns.iter().position(|l| *l == second_base).unwrap() - 1;
    let page = wal.read(lsns[before], 2, usize::MAX).unwrap();
    assert_eq!(page[0].next_lsn, second_base);
    assert_eq!(page[1].lsn, second_base);
}

#[test]
fn test_segment_fills_exactly_to_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let frame = FRAME_HEADER_LEN + 10;
    let wal = open(dir.path(), SEGMENT_HEADER_LEN + 3 * frame);
    wal.register_consumer("keep", 0).unwrap();
    let record: &[u8] = &[0u8; 10];
    let receipt = wal.append(&[record; 4]).unwrap();
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 2);
    assert_eq!(
        fs::metadata(&files[0]).unwrap().len(),
        SEGMENT_HEADER_LEN + 3 * frame
    );
    assert_eq!(
        files[1],
        dir.path().join(format::segment_file_name(receipt.lsns[3]))
    );
    assert_eq!(wal.disk_bytes(), files_bytes(dir.path()));
}

#[test]
fn test_record_larger_than_a_segment_gets_its_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), 100);
    wal.register_consumer("keep", 0).unwrap();
    let big = vec![7u8; 500];
    let receipt = wal.append(&[b"small", &big, b"after"]).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 3);
    let all = read_all(&wal, 0);
    assert_eq!(
        payloads(&all),
        vec![b"small".to_vec(), big, b"after".to_vec()]
    );
    assert_eq!(all[2].lsn, receipt.lsns[2]);
}

#[test]
fn test_read_limits() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), 1 << 20);
    let records = sample_records(20);
    append_all(&wal, &records, 20);
    assert!(wal.read(0, 0, usize::MAX).unwrap().is_empty());
    assert_eq!(wal.read(0, 5, usize::MAX).unwrap().len(), 5);
    // The byte budget stops before the record that would exceed it...
    let budget = records[0].len() + records[1].len() + records[2].len();
    assert_eq!(wal.read(0, 100, budget).unwrap().len(), 3);
    assert_eq!(wal.read(0, 100, budget - 1).unwrap().len(), 2);
    // ...but the first record always comes back, so a big one cannot stall.
    assert_eq!(wal.read(0, 100, 0).unwrap().len(), 1);
    // At the head there is nothing yet.
    assert!(wal.read(wal.head(), 100, usize::MAX).unwrap().is_empty());
}

#[test]
fn test_empty_append_returns_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), 1 << 20);
    wal.append(&[b"x"]).unwrap();
    let receipt = wal.append(&[]).unwrap();
    assert_eq!(receipt.first_lsn, wal.head());
    assert_eq!(receipt.end_lsn, wal.head());
    assert!(receipt.lsns.is_empty());
    assert_eq!(wal.stats().appends, 1);
}

#[test]
fn test_empty_records_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), 1 << 20);
    let receipt = wal.append(&[b"", b"x", b""]).unwrap();
    assert_eq!(receipt.lsns, vec![0, 8, 17]);
    drop(wal);
    let wal = open(dir.path(), 1 << 20);
    assert_eq!(wal.head(), 25);
    assert_eq!(
        payloads(&read_all(&wal, 0)),
        vec![vec![], b"x".to_vec(), vec![]]
    );
}

#[test]
fn test_record_too_large_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), 1 << 20);
    let too_big = vec![0u8; MAX_RECORD_BYTES + 1];
    let err = wal.append(&[b"fine", &too_big]).unwrap_err();
    assert!(matches!(
        err,
        Error::RecordTooLarge { len, max } if len == MAX_RECORD_BYTES + 1 && max == MAX_RECORD_BYTES
    ));
    assert_eq!(wal.head(), 0);
    assert_eq!(files_bytes(dir.path()), SEGMENT_HEADER_LEN);
    // The cap itself is fine.
    let max = vec![1u8; MAX_RECORD_BYTES];
    wal.append(&[&max]).unwrap();
    assert_eq!(
        wal.read(0, 1, 0).unwrap()[0].payload.len(),
        MAX_RECORD_BYTES
    );
}

#[test]
fn test_read_rejects_positions_inside_records_and_above_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), 1 << 20);
    let records = sample_records(10);
    let lsns = append_all(&wal, &records, 3);
    let head = wal.head();
    let boundaries: Vec<Lsn> = lsns.iter().copied().chain([head]).collect();
    for lsn in 0..=head + 3 {
        let result = wal.read(lsn, 1, usize::MAX);
        if boundaries.contains(&lsn) {
            assert!(result.is_ok(), "{lsn}: {result:?}");
        } else {
            assert!(
                matches!(result, Err(Error::InvalidPosition { lsn: l }) if l == lsn),
                "{lsn}: {result:?}"
            );
        }
    }
}

#[test]
fn test_reopen_after_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    // Records of 1000 bytes in 300 KiB segments: several index points per
    // segment, so reopened (lazily indexed) segments are really exercised.
    let records: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| {
            let mut r = vec![(i % 251) as u8; 1000];
            r[..4].copy_from_slice(&i.to_le_bytes());
            // The first byte 0xFF is reserved for lost-record markers.
            r[0] &= 0x7F;
            r
        })
        .collect();
    let lsns = {
        let wal = open(dir.path(), 300 * 1024);
        wal.register_consumer("keep", 0).unwrap();
        append_all(&wal, &records, 50)
    };
    let head = lsns[999] + FRAME_HEADER_LEN + 1000;
    let wal = open(dir.path(), 300 * 1024);
    assert_eq!(wal.head(), head);
    assert_eq!(wal.oldest_lsn(), 0);
    assert!(segment_files(dir.path()).len() >= 3);
    assert_eq!(wal.disk_bytes(), files_bytes(dir.path()));
    assert_eq!(payloads(&read_all(&wal, 0)), records);
    // Every boundary in a reopened sealed segment is found; a position inside
    // a record is not mistaken for one.
    for (i, lsn) in lsns.iter().enumerate().step_by(7) {
        assert_eq!(wal.read(*lsn, 1, 0).unwrap()[0].payload, records[i]);
        assert!(matches!(
            wal.read(lsn + 9, 1, 0),
            Err(Error::InvalidPosition { .. })
        ));
    }
    // Appends continue after the recovered head.
    let receipt = wal.append(&[b"more"]).unwrap();
    assert_eq!(receipt.first_lsn, head);
    assert_eq!(
        wal.read(head, 10, usize::MAX).unwrap()[0].payload.as_ref(),
        b"more"
    );
}

/// Appends `n` records to a fresh log, closes it, and returns the records,
/// their LSNs and the path of the last segment.
/// A crash: the log is left without being closed, so its cursors file does
/// not record the head it reached (as after kill -9 or a power loss).
fn crash(wal: Wal) {
    std::mem::forget(wal);
}

/// A log of `n` records whose process then crashed.
fn closed_log(dir: &Path, n: usize) -> (Vec<Vec<u8>>, Vec<Lsn>, PathBuf) {
    let wal = open(dir, 1 << 20);
    let records = sample_records(n);
    let lsns = append_all(&wal, &records, 1);
    crash(wal);
    let last = segment_files(dir).pop().unwrap();
    (records, lsns, last)
}

/// Reopens a log whose last record was torn and checks it recovered to the
/// record before, and that new appends continue from there.
fn assert_recovers_without_last(dir: &Path, records: &[Vec<u8>], lsns: &[Lsn]) {
    let n = records.len();
    let wal = open(dir, 1 << 20);
    assert_eq!(
        wal.head(),
        lsns[n - 1],
        "head is where the torn record started"
    );
    assert_eq!(payloads(&read_all(&wal, 0)), records[..n - 1]);
    assert_eq!(wal.disk_bytes(), files_bytes(dir));
    let receipt = wal.append(&[b"after the tear"]).unwrap();
    assert_eq!(receipt.first_lsn, lsns[n - 1]);
    drop(wal);
    let wal = open(dir, 1 << 20);
    let all = read_all(&wal, 0);
    assert_eq!(payloads(&all[..n - 1]), records[..n - 1]);
    assert_eq!(all[n - 1].payload.as_ref(), b"after the tear");
    assert_eq!(all.len(), n);
}

#[test]
fn test_torn_tail_truncated_mid_frame_recovers_to_last_good_record() {
    let probe = tempfile::tempdir().unwrap();
    let (records, _, _) = closed_log(probe.path(), 10);
    let last_frame = FRAME_HEADER_LEN + records[9].len() as u64;
    // Every cut inside the last frame: in its header, and in its payload.
    for cut in 1..last_frame {
        let dir = tempfile::tempdir().unwrap();
        let (records, lsns, last) = closed_log(dir.path(), 10);
        let len = fs::metadata(&last).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&last)
            .unwrap()
            .set_len(len - cut)
            .unwrap();
        assert_recovers_without_last(dir.path(), &records, &lsns);
        let recovered = fs::metadata(&last).unwrap().len();
        assert!(
            recovered > len - last_frame,
            "the new record was appended after the cut"
        );
    }
}

#[test]
fn test_torn_tail_flipped_byte_in_last_frame_recovers_to_last_good_record() {
    let probe = tempfile::tempdir().unwrap();
    let (records, _, _) = closed_log(probe.path(), 10);
    let last_frame = FRAME_HEADER_LEN + records[9].len() as u64;
    // Every byte of the last frame: length, checksum, payload.
    for at in 0..last_frame {
        let dir = tempfile::tempdir().unwrap();
        let (records, lsns, last) = closed_log(dir.path(), 10);
        let len = fs::metadata(&last).unwrap().len();
        flip_byte(&last, len - last_frame + at);
        assert_recovers_without_last(dir.path(), &records, &lsns);
    }
}

#[test]
fn test_torn_tail_of_zeros_or_garbage_is_cut() {
    for tail in [vec![0u8; 64], vec![0xff; 3], b"not a frame at all".to_vec()] {
        let dir = tempfile::tempdir().unwrap();
        let (records, lsns, last) = closed_log(dir.path(), 5);
        let len = fs::metadata(&last).unwrap().len();
        OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap()
            .write_all(&tail)
            .unwrap();
        let wal = open(dir.path(), 1 << 20);
        assert_eq!(fs::metadata(&last).unwrap().len(), len);
        assert_eq!(
            wal.head(),
            lsns[4] + FRAME_HEADER_LEN + records[4].len() as u64
        );
        assert_eq!(payloads(&read_all(&wal, 0)), records);
    }
}

#[test]
fn test_torn_tail_in_an_otherwise_empty_segment() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open(dir.path(), 1 << 20);
        wal.append(&[b"only"]).unwrap();
        crash(wal);
    }
    let last = segment_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let wal = open(dir.path(), 1 << 20);
    assert_eq!(wal.head(), 0);
    assert!(read_all(&wal, 0).is_empty());
    assert_eq!(wal.append(&[b"again"]).unwrap().first_lsn, 0);
}

#[test]
fn test_corruption_in_a_sealed_segment_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let records = sample_records(40);
    let lsns = {
        let wal = open(dir.path(), 200);
        wal.register_consumer("keep", 0).unwrap();
        append_all(&wal, &records, 5)
    };
    let files = segment_files(dir.path());
    assert!(files.len() > 3);
    // Damage the payload of the second record of the first segment.
    let damaged_at = SEGMENT_HEADER_LEN + lsns[1] + FRAME_HEADER_LEN + 2;
    flip_byte(&files[0], damaged_at);

    // Sealed segments are checked whole on open: the damage stops it, named.
    match Wal::open(config(dir.path(), 200, u64::MAX)) {
        Err(Error::Corruption {
            segment,
            offset,
            reason,
        }) => {
            assert_eq!(segment, files[0]);
            assert_eq!(offset, SEGMENT_HEADER_LEN + lsns[1]);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }

    // Damage that appears while the log is open is reported by the read
    // that meets it, never skipped.
    flip_byte(&files[0], damaged_at);
    let wal = open(dir.path(), 200);
    assert_eq!(
        wal.head(),
        lsns[39] + FRAME_HEADER_LEN + records[39].len() as u64
    );
    flip_byte(&files[0], damaged_at);
    // The record before the damage reads; the damaged one is reported.
    assert_eq!(wal.read(0, 1, usize::MAX).unwrap()[0].payload, records[0]);
    match wal.read(0, 10, usize::MAX) {
        Err(Error::Corruption {
            segment,
            offset,
            reason,
        }) => {
            assert_eq!(segment, files[0]);
            assert_eq!(offset, SEGMENT_HEADER_LEN + lsns[1]);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(matches!(
        wal.read(lsns[1], 1, usize::MAX),
        Err(Error::Corruption { .. })
    ));
    // Later segments are unaffected.
    let second_base =
        format::parse_segment_file_name(files[1].file_name().and_then(|n| n.to_str()).unwrap())
            .unwrap();
    let rest = read_all(&wal, second_base);
    let first_in_second = lsns.iter().position(|l| *l == second_base).unwrap();
    assert_eq!(payloads(&rest), records[first_in_second..]);
}

#[test]
fn test_damaged_length_in_a_sealed_segment_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let lsns = {
        let wal = open(dir.path(), 200);
        wal.register_consumer("keep", 0).unwrap();
        append_all(&wal, &sample_records(40), 5)
    };
    let files = segment_files(dir.path());
    // The length of the third record now points past the segment's end.
    let at = SEGMENT_HEADER_LEN + lsns[2] + 1;
    flip_byte(&files[0], at);
    assert!(matches!(
        Wal::open(config(dir.path(), 200, u64::MAX)),
        Err(Error::Corruption { .. })
    ));
    flip_byte(&files[0], at);
    let wal = open(dir.path(), 200);
    flip_byte(&files[0], at);
    assert!(matches!(
        wal.read(0, 100, usize::MAX),
        Err(Error::Corruption { .. })
    ));
    // The first records still read, and their boundaries still check.
    assert_eq!(wal.read(lsns[1], 1, usize::MAX).unwrap().len(), 1);
}

/// Issue 11: a deleted or truncated sealed segment stops the open, naming
/// the file before the gap, instead of stalling the consumers that need it.
#[test]
fn issue_11_missing_or_truncated_segment_refuses_to_open() {
    for damage in ["delete", "truncate", "delete-first"] {
        let dir = tempfile::tempdir().unwrap();
        {
            let wal = open(dir.path(), 200);
            wal.register_consumer("keep", 0).unwrap();
            append_all(&wal, &sample_records(40), 5);
        }
        let files = segment_files(dir.path());
        assert!(files.len() > 3);
        match damage {
            "delete" => fs::remove_file(&files[1]).unwrap(),
            "delete-first" => fs::remove_file(&files[0]).unwrap(),
            _ => {
                let len = fs::metadata(&files[1]).unwrap().len();
                fs::OpenOptions::new()
                    .write(true)
                    .open(&files[1])
                    .unwrap()
                    .set_len(len - 3)
                    .unwrap();
            }
        }
        match Wal::open(config(dir.path(), 200, u64::MAX)) {
            Err(Error::Corruption { reason, .. }) => {
                assert!(
                    reason.contains("deleted") || reason.contains("incomplete"),
                    "{damage}: {reason}"
                );
            }
            other => panic!("{damage}: expected corruption, got {other:?}"),
        }
    }
}

/// Issue 11: a log whose cursors file was deleted refuses to open rather
/// than starting every consumer afresh at the head.
#[test]
fn issue_11_deleted_cursors_file_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open(dir.path(), 1 << 20);
        append_all(&wal, &sample_records(5), 2);
    }
    // A new log writes its (empty) cursors file at once.
    assert!(dir.path().join(CURSORS_FILE).is_file());
    {
        let wal = open(dir.path(), 1 << 20);
        wal.register_consumer("trail:a", 0).unwrap();
    }
    fs::remove_file(dir.path().join(CURSORS_FILE)).unwrap();
    match Wal::open(config(dir.path(), 1 << 20, u64::MAX)) {
        Err(Error::Corruption {
            segment, reason, ..
        }) => {
            assert_eq!(segment, dir.path().join(CURSORS_FILE));
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

/// Issue 11: a flipped byte in the active segment with whole records after
/// it is damage, not a torn tail: the open refuses instead of truncating
/// (and so dropping) the acknowledged records that follow.
#[test]
fn issue_11_damage_in_the_active_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let lsns = {
        let wal = open(dir.path(), 1 << 20);
        wal.register_consumer("keep", 0).unwrap();
        let lsns = append_all(&wal, &sample_records(20), 4);
        crash(wal);
        lsns
    };
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    flip_byte(
        &files[0],
        SEGMENT_HEADER_LEN + lsns[5] + FRAME_HEADER_LEN + 1,
    );
    match Wal::open(config(dir.path(), 1 << 20, u64::MAX)) {
        Err(Error::Corruption { offset, reason, .. }) => {
            assert_eq!(offset, SEGMENT_HEADER_LEN + lsns[5]);
            assert!(reason.contains("damaged"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // Damage to the very last record is indistinguishable from a torn
    // write of an unacknowledged append: it is truncated, as before.
    flip_byte(
        &files[0],
        SEGMENT_HEADER_LEN + lsns[5] + FRAME_HEADER_LEN + 1,
    );
    flip_byte(
        &files[0],
        SEGMENT_HEADER_LEN + lsns[19] + FRAME_HEADER_LEN + 1,
    );
    let wal = open(dir.path(), 1 << 20);
    assert_eq!(wal.head(), lsns[19]);
}

/// A zeroed page inside the active segment (an unacknowledged append whose
/// pages reached the disk out of order before a power loss) is a torn tail:
/// the log is truncated before it, even though whole frames follow.
#[test]
fn test_zeroed_hole_in_the_active_segment_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<Vec<u8>> = (0..6).map(|i| vec![b'a' + i as u8; 3000]).collect();
    let lsns = {
        let wal = open(dir.path(), 1 << 20);
        wal.register_consumer("keep", 0).unwrap();
        let lsns = append_all(&wal, &big, 1);
        crash(wal);
        lsns
    };
    let file = segment_files(dir.path()).remove(0);
    let zeros = vec![0u8; 1024];
    let f = OpenOptions::new().write(true).open(&file).unwrap();
    crate::segment::write_all_at(&f, &zeros, SEGMENT_HEADER_LEN + lsns[3] + 100).unwrap();
    let wal = open(dir.path(), 1 << 20);
    assert_eq!(wal.head(), lsns[3]);
}

#[test]
fn test_bad_segment_header_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    closed_log(dir.path(), 3);
    let first = segment_files(dir.path()).remove(0);
    flip_byte(&first, 0);
    assert!(matches!(
        Wal::open(config(dir.path(), 1 << 20, u64::MAX)),
        Err(Error::Corruption { .. })
    ));
}

#[test]
fn test_cursors_persist_across_reopen_with_their_state() {
    let dir = tempfile::tempdir().unwrap();
    let (head, middle) = {
        let wal = open(dir.path(), 1 << 20);
        let lsns = append_all(&wal, &sample_records(10), 2);
        wal.register_consumer("trail:a", 0).unwrap();
        wal.register_consumer("dedup", lsns[3]).unwrap();
        wal.register_consumer("gone", 0).unwrap();
        wal.commit("trail:a", lsns[5], Some(b"{\"batch\":7}"))
            .unwrap();
        wal.remove_consumer("gone").unwrap();
        (wal.head(), lsns[5])
    };
    let wal = open(dir.path(), 1 << 20);
    assert_eq!(
        wal.checkpoint("trail:a"),
        Some(Checkpoint {
            lsn: middle,
            state: Some(b"{\"batch\":7}".to_vec()),
        })
    );
    assert_eq!(wal.checkpoint("dedup").map(|c| c.state), Some(None));
    assert_eq!(wal.checkpoint("gone"), None);
    let names: Vec<String> = wal.consumers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["dedup".to_owned(), "trail:a".to_owned()]);

    // Registering again keeps the checkpoint.
    wal.register_consumer("trail:a", 0).unwrap();
    assert_eq!(wal.checkpoint("trail:a").map(|c| c.lsn), Some(middle));
    // A commit replaces the state; `None` clears it.
    wal.commit("trail:a", head, None).unwrap();
    drop(wal);
    let wal = open(dir.path(), 1 << 20);
    assert_eq!(
        wal.checkpoint("trail:a"),
        Some(Checkpoint {
            lsn: head,
            state: None
        })
    );
}

#[test]
fn test_consumer_calls_validate_their_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), 1 << 20);
    wal.append(&[b"abc"]).unwrap();
    let head = wal.head();
    assert!(
        matches!(wal.commit("nobody", 0, None), Err(Error::UnknownConsumer { name }) if name == "nobody")
    );
    assert!(matches!(
        wal.remove_consumer("nobody"),
        Err(Error::UnknownConsumer { .. })
    ));
    assert!(matches!(
        wal.register_consumer("early", head + 1),
        Err(Error::InvalidPosition { lsn }) if lsn == head + 1
    ));
    assert_eq!(wal.checkpoint("early"), None);
    wal.register_consumer("c", head).unwrap();
    assert!(matches!(
        wal.commit("c", head + 1, None),
        Err(Error::InvalidPosition { .. })
    ));
    assert_eq!(wal.checkpoint("c").map(|c| c.lsn), Some(head));
}

#[test]
fn test_damaged_cursors_file_is_reported_and_leftover_temporaries_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open(dir.path(), 1 << 20);
        wal.register_consumer("a", 0).unwrap();
    }
    // An interrupted replace leaves a temporary file: ignored and removed.
    fs::write(dir.path().join("cursors.tmp"), b"half written").unwrap();
    fs::write(dir.path().join("00000000000000000999.wal.tmp"), b"CAIRN").unwrap();
    {
        let wal = open(dir.path(), 1 << 20);
        assert!(wal.checkpoint("a").is_some());
        assert!(!dir.path().join("cursors.tmp").exists());
        assert!(!dir.path().join("00000000000000000999.wal.tmp").exists());
    }
    // Damage to the file itself is never taken for a torn write.
    flip_byte(&dir.path().join("cursors"), 14);
    assert!(matches!(
        Wal::open(config(dir.path(), 1 << 20, u64::MAX)),
        Err(Error::Corruption { .. })
    ));
}

#[test]
fn test_segments_removed_when_all_consumers_pass_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), 200);
    wal.register_consumer("fast", 0).unwrap();
    wal.register_consumer("slow", 0).unwrap();
    let records = sample_records(60);
    let lsns = append_all(&wal, &records, 3);
    let count = segment_files(dir.path()).len();
    let bytes = wal.disk_bytes();
    assert!(count > 5);

    // One consumer at the head is not enough.
    wal.commit("fast", wal.head(), None).unwrap();
    assert_eq!(segment_files(dir.path()).len(), count);
    assert_eq!(wal.oldest_lsn(), 0);

    // The slow one reaches the middle: the segments wholly below it go.
    let middle = lsns[30];
    wal.commit("slow", middle, None).unwrap();
    let remaining = segment_files(dir.path());
    assert!(remaining.len() < count);
    assert!(wal.disk_bytes() < bytes);
    assert_eq!(wal.disk_bytes(), files_bytes(dir.path()));
    let oldest = wal.oldest_lsn();
    assert!(oldest <= middle);
    assert_eq!(
        remaining[0],
        dir.path().join(format::segment_file_name(oldest))
    );
    // The segment holding the slow consumer's position stays.
    assert_eq!(payloads(&read_all(&wal, middle)), records[30..]);

    // Once the slow one is gone too, only the active segment remains.
    wal.remove_consumer("slow").unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(wal.disk_bytes(), files_bytes(dir.path()));
    assert!(read_all(&wal, wal.oldest_lsn()).len() <= 3);
}

#[test]
fn test_segment_removed_when_a_cursor_is_exactly_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), 200);
    wal.register_consumer("c", 0).unwrap();
    append_all(&wal, &sample_records(20), 2);
    let files = segment_files(dir.path());
    let second_base =
        format::parse_segment_file_name(files[1].file_name().and_then(|n| n.to_str()).unwrap())
            .unwrap();
    // One byte short of the end: the first segment stays.
    let before = read_all(&wal, 0)
        .into_iter()
        .rfind(|r| r.lsn < second_base)
        .unwrap();
    wal.commit("c", before.lsn, None).unwrap();
    assert_eq!(wal.oldest_lsn(), 0);
    // At its end (the next segment's start): it goes, and only it.
    wal.commit("c", second_base, None).unwrap();
    assert_eq!(wal.oldest_lsn(), second_base);
    assert_eq!(segment_files(dir.path()), files[1..]);
}

#[test]
fn test_disk_bound_is_inclusive() {
    let dir = tempfile::tempdir().unwrap();
    // Room for the header and exactly one 10-byte record.
    let limit = SEGMENT_HEADER_LEN + FRAME_HEADER_LEN + 10;
    let wal = Wal::open(config(dir.path(), 1 << 20, limit)).unwrap();
    wal.append(&[&[1u8; 10]]).unwrap();
    assert_eq!(wal.disk_bytes(), limit);
    assert!(matches!(
        wal.append(&[b""]),
        Err(Error::Full { needed, limit: l }) if l == limit && needed == limit + FRAME_HEADER_LEN
    ));
}

#[test]
fn test_segment_removal_runs_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open(dir.path(), 200);
        wal.register_consumer("c", 0).unwrap();
        append_all(&wal, &sample_records(40), 4);
    }
    // Someone else advanced the cursor file (say, an older build); simulate by
    // committing without removal: write the cursors file directly.
    let head = open(dir.path(), 200).head();
    let mut consumers = std::collections::BTreeMap::new();
    consumers.insert(
        "c".to_owned(),
        Checkpoint {
            lsn: head,
            state: None,
        },
    );
    fs::write(
        dir.path().join("cursors"),
        format::encode_cursors(&consumers, head),
    )
    .unwrap();
    assert!(segment_files(dir.path()).len() > 1);
    let wal = open(dir.path(), 200);
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(wal.disk_bytes(), files_bytes(dir.path()));
}

#[test]
fn test_without_consumers_sealed_segments_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), 200);
    append_all(&wal, &sample_records(100), 2);
    // The active segment, and at most the one sealed by the last roll.
    assert!(segment_files(dir.path()).len() <= 2);
    assert_eq!(wal.disk_bytes(), files_bytes(dir.path()));
}

#[test]
fn test_read_from_a_truncated_position() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), 200);
    wal.register_consumer("c", 0).unwrap();
    let lsns = append_all(&wal, &sample_records(40), 4);
    wal.commit("c", lsns[35], None).unwrap();
    let oldest = wal.oldest_lsn();
    assert!(oldest > 0);
    for from in [0, lsns[1], oldest - 1] {
        assert!(
            matches!(wal.read(from, 1, 0), Err(Error::Truncated { lsn, oldest: o }) if lsn == from && o == oldest),
            "{from}"
        );
    }
    assert!(!wal.read(oldest, 1, 0).unwrap().is_empty());
}

#[test]
fn test_full_is_refused_without_writing_and_accepted_after_segments_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(dir.path(), 200, 1000)).unwrap();
    wal.register_consumer("c", 0).unwrap();
    let record = [9u8; 50];
    let mut acknowledged = 0;
    let err = loop {
        match wal.append(&[&record]) {
            Ok(_) => acknowledged += 1,
            Err(e) => break e,
        }
        assert!(acknowledged < 100, "never full");
    };
    assert!(
        matches!(err, Error::Full { needed, limit } if limit == 1000 && needed > limit),
        "{err:?}"
    );
    assert!(wal.disk_bytes() <= 1000);

    // Refusals write nothing: same head, same files, same bytes.
    let snapshot = |dir: &Path| -> Vec<(PathBuf, u64)> {
        segment_files(dir)
            .into_iter()
            .map(|p| {
                let len = fs::metadata(&p).unwrap().len();
                (p, len)
            })
            .collect()
    };
    let head = wal.head();
    let files = snapshot(dir.path());
    let bytes = wal.disk_bytes();
    assert!(matches!(wal.append(&[&record]), Err(Error::Full { .. })));
    // A batch is refused whole, even though its first record is small.
    assert!(matches!(
        wal.append(&[b"", &record, &record]),
        Err(Error::Full { .. })
    ));
    assert_eq!(wal.head(), head);
    assert_eq!(snapshot(dir.path()), files);
    assert_eq!(wal.disk_bytes(), bytes);
    assert_eq!(read_all(&wal, 0).len(), acknowledged);

    // The consumer catches up: segments go, and appends are accepted again.
    wal.commit("c", head, None).unwrap();
    assert!(wal.disk_bytes() < bytes);
    let receipt = wal.append(&[&record, &record]).unwrap();
    assert_eq!(receipt.first_lsn, head);
    assert_eq!(wal.read(head, 10, usize::MAX).unwrap().len(), 2);
}

#[test]
fn test_consumer_past_the_recovered_head_stops_the_open_until_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    let (records, lsns, last) = closed_log(dir.path(), 5);
    let head = {
        let wal = open(dir.path(), 1 << 20);
        wal.register_consumer("c", 0).unwrap();
        wal.commit("c", wal.head(), Some(b"s")).unwrap();
        wal.head()
    };
    // Disk damage destroys the last, acknowledged, record. Issue 11: that
    // is loud (it used to move the cursor back quietly).
    let len = fs::metadata(&last).unwrap().len();
    flip_byte(&last, len - 1);
    assert!(matches!(
        Wal::open(config(dir.path(), 1 << 20, u64::MAX)),
        Err(Error::Corruption { segment, .. }) if segment == last
    ));
    let repaired = salvage(dir.path(), true).unwrap();
    assert_eq!(repaired.intact_records, 4, "{repaired:?}");
    let wal = open(dir.path(), 1 << 20);
    assert_eq!(wal.head(), head);
    assert_eq!(wal.checkpoint("c").map(|c| c.lsn), Some(head));
    let read = read_all(&wal, 0);
    assert_eq!(read.len(), 5);
    assert!(read[4].is_lost_record_marker());
    assert_eq!(read[4].lsn, lsns[4]);
    assert_eq!(payloads(&read[..4]), records[..4]);
}

#[test]
fn test_fresh_log_starts_above_surviving_cursors() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open(dir.path(), 1 << 20);
        wal.append(&[b"abc"]).unwrap();
        wal.register_consumer("c", wal.head()).unwrap();
    }
    for file in segment_files(dir.path()) {
        fs::remove_file(file).unwrap();
    }
    let wal = open(dir.path(), 1 << 20);
    assert_eq!(wal.head(), 11);
    assert_eq!(wal.append(&[b"d"]).unwrap().first_lsn, 11);
}

#[test]
fn test_concurrent_appenders_each_record_readable_exactly_once_in_order() {
    const THREADS: usize = 8;
    const APPENDS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(open(dir.path(), 4096));
    wal.register_consumer("all", 0).unwrap();

    // A reader runs alongside and must only ever see whole, acknowledged data.
    let reader = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || {
            let mut at = 0;
            let mut seen = 0;
            while seen < THREADS * APPENDS * 2 {
                for record in wal.read(at, 50, usize::MAX).unwrap() {
                    assert_eq!(record.lsn, at);
                    assert!(record.payload.starts_with(b"t"));
                    at = record.next_lsn;
                    seen += 1;
                }
            }
            seen
        })
    };
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                for i in 0..APPENDS {
                    let a = format!("t{t}-{i}-a").into_bytes();
                    let b = format!("t{t}-{i}-b{}", "x".repeat(i % 17)).into_bytes();
                    let receipt = wal.append(&[&a, &b]).unwrap();
                    // Acknowledged means durable and therefore readable.
                    assert!(wal.head() >= receipt.end_lsn);
                    acknowledged.push((receipt.lsns[0], a));
                    acknowledged.push((receipt.lsns[1], b));
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged: HashMap<Lsn, Vec<u8>> = HashMap::new();
    for writer in writers {
        for (lsn, payload) in writer.join().unwrap() {
            assert!(
                acknowledged.insert(lsn, payload).is_none(),
                "LSN {lsn} given twice"
            );
        }
    }
    assert_eq!(reader.join().unwrap(), THREADS * APPENDS * 2);

    let all = read_all(&wal, 0);
    assert_eq!(all.len(), acknowledged.len());
    for pair in all.windows(2) {
        assert_eq!(pair[0].next_lsn, pair[1].lsn);
    }
    for record in &all {
        assert_eq!(
            acknowledged.get(&record.lsn).map(Vec::as_slice),
            Some(record.payload.as_ref())
        );
    }
    // Each thread's records appear in the order it appended them, and a
    // batch's records are adjacent.
    for t in 0..THREADS {
        let prefix = format!("t{t}-");
        let mine: Vec<String> = all
            .iter()
            .map(|r| String::from_utf8(r.payload.to_vec()).unwrap())
            .filter(|p| p.starts_with(&prefix))
            .collect();
        let expected: Vec<String> = (0..APPENDS)
            .flat_map(|i| {
                [
                    format!("t{t}-{i}-a"),
                    format!("t{t}-{i}-b{}", "x".repeat(i % 17)),
                ]
            })
            .collect();
        assert_eq!(mine, expected);
    }
    let stats = wal.stats();
    assert_eq!(stats.appends, (THREADS * APPENDS) as u64);
    assert_eq!(stats.records, (THREADS * APPENDS * 2) as u64);
    let sealed = segment_files(dir.path()).len() as u64 - 1;
    // Group commit: never more than one fsync per append (plus one per sealed
    // segment); under contention, usually far fewer.
    assert!(stats.fsyncs <= stats.appends + sealed, "{stats:?}");
}

#[test]
fn test_concurrent_appenders_share_fsyncs() {
    const THREADS: usize = 16;
    const APPENDS: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(open(dir.path(), 1 << 30));
    let barrier = Arc::new(std::sync::Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = Arc::clone(&wal);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..APPENDS {
                    wal.append(&[format!("{t}-{i}").as_bytes()]).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let stats = wal.stats();
    assert_eq!(stats.appends, (THREADS * APPENDS) as u64);
    // No segment was sealed, so every fsync was a group commit.
    assert!(stats.fsyncs <= stats.appends, "{stats:?}");
    assert_eq!(read_all(&wal, 0).len(), THREADS * APPENDS);
}

mod model {
    //! A random sequence of appends, commits, reopens and torn tails, checked
    //! against the obvious in-memory model: the list of acknowledged records.

    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::*;

    const SEGMENT_BYTES: u64 = 160;
    const MAX_DISK_BYTES: u64 = 1200;
    const CONSUMERS: [&str; 2] = ["a", "b"];

    #[derive(Debug, Clone)]
    enum Action {
        Append(Vec<Vec<u8>>),
        /// Moves a consumer forward to a boundary between it and the head.
        Commit(usize, Index),
        Reopen,
        /// A crash in the middle of a write: part of a frame (`cut` bytes of
        /// it), or a whole frame with one byte flipped, lands after the last
        /// record; then the log is reopened.
        TornTail {
            payload: Vec<u8>,
            cut: Index,
            flip: Option<Index>,
        },
    }

    fn action() -> impl Strategy<Value = Action> {
        // Any bytes, except the first byte salvage reserves for its markers.
        let record = prop::collection::vec(any::<u8>(), 0..48).prop_map(|mut r| {
            if r.first() == Some(&LOST_RECORD_MARK) {
                r[0] = 0;
            }
            r
        });
        prop_oneof![
            6 => prop::collection::vec(record.clone(), 1..5).prop_map(Action::Append),
            3 => (0..CONSUMERS.len(), any::<Index>()).prop_map(|(c, i)| Action::Commit(c, i)),
            1 => Just(Action::Reopen),
            1 => (record, any::<Index>(), any::<Option<Index>>())
                .prop_map(|(payload, cut, flip)| Action::TornTail { payload, cut, flip }),
        ]
    }

    struct Model {
        /// Every acknowledged record, with its LSN.
        records: Vec<(Lsn, Vec<u8>)>,
        head: Lsn,
        cursors: [Lsn; 2],
    }

    fn reopen(dir: &Path) -> Wal {
        Wal::open(config(dir, SEGMENT_BYTES, MAX_DISK_BYTES)).unwrap()
    }

    fn check(wal: &Wal, model: &Model, dir: &Path) {
        assert_eq!(wal.head(), model.head);
        assert_eq!(wal.disk_bytes(), files_bytes(dir));
        assert!(wal.disk_bytes() <= MAX_DISK_BYTES);
        let oldest = wal.oldest_lsn();
        for (name, cursor) in CONSUMERS.iter().zip(model.cursors) {
            assert_eq!(wal.checkpoint(name).map(|c| c.lsn), Some(cursor));
            assert!(oldest <= cursor);
        }
        // Everything still kept reads back exactly once, in order, and what
        // is no longer kept is below every cursor.
        for from in [oldest, model.cursors[0], model.cursors[1]] {
            let expected: Vec<(Lsn, Vec<u8>)> = model
                .records
                .iter()
                .filter(|(l, _)| *l >= from)
                .cloned()
                .collect();
            let got: Vec<(Lsn, Vec<u8>)> = read_all(wal, from)
                .into_iter()
                .map(|r| (r.lsn, r.payload.to_vec()))
                .collect();
            assert_eq!(got, expected, "reading from {from}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn test_model_every_acknowledged_record_read_back_once_in_order(
            actions in prop::collection::vec(action(), 1..40)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut wal = reopen(dir.path());
            for name in CONSUMERS {
                wal.register_consumer(name, 0).unwrap();
            }
            let mut model = Model { records: Vec::new(), head: 0, cursors: [0, 0] };
            for action in actions {
                match action {
                    Action::Append(records) => {
                        let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
                        let bytes = wal.disk_bytes();
                        match wal.append(&slices) {
                            Ok(receipt) => {
                                prop_assert_eq!(receipt.first_lsn, model.head);
                                for (lsn, record) in receipt.lsns.iter().zip(records) {
                                    prop_assert_eq!(*lsn, model.head);
                                    model.head += FRAME_HEADER_LEN + record.len() as u64;
                                    model.records.push((*lsn, record));
                                }
                                prop_assert_eq!(receipt.end_lsn, model.head);
                            }
                            Err(Error::Full { needed, limit }) => {
                                prop_assert!(needed > limit);
                                prop_assert_eq!(wal.disk_bytes(), bytes);
                            }
                            Err(e) => panic!("append failed: {e}"),
                        }
                    }
                    Action::Commit(consumer, index) => {
                        let cursor = model.cursors[consumer];
                        let boundaries: Vec<Lsn> = model
                            .records
                            .iter()
                            .map(|(l, _)| *l)
                            .filter(|l| *l >= cursor)
                            .chain([model.head])
                            .collect();
                        let to = boundaries[index.index(boundaries.len())];
                        wal.commit(CONSUMERS[consumer], to, Some(&to.to_le_bytes())).unwrap();
                        model.cursors[consumer] = to;
                    }
                    Action::Reopen => {
                        drop(wal);
                        wal = reopen(dir.path());
                    }
                    Action::TornTail { payload, cut, flip } => {
                        drop(wal);
                        let mut frame = Vec::new();
                        encode_frame(&mut frame, &payload);
                        match flip {
                            Some(at) => {
                                let at = at.index(frame.len());
                                frame[at] ^= 0x10;
                            }
                            None => frame.truncate(1 + cut.index(frame.len() - 1)),
                        }
                        let last = segment_files(dir.path()).pop().unwrap();
                        OpenOptions::new().append(true).open(last).unwrap().write_all(&frame).unwrap();
                        wal = reopen(dir.path());
                    }
                }
                check(&wal, &model, dir.path());
            }
            for (name, cursor) in CONSUMERS.iter().zip(model.cursors) {
                let state = wal.checkpoint(name).and_then(|c| c.state);
                prop_assert!(cursor == 0 || state == Some(cursor.to_le_bytes().to_vec()));
            }
        }
    }
}

/// Issue 11: salvage turns every damaged or missing range into lost-record
/// markers at the same LSNs, so the log opens again, every intact record
/// reads at its old LSN and cursors stay true.
#[test]
fn issue_11_salvage_keeps_every_intact_record_at_its_lsn() {
    for damage in [
        "flip-sealed",
        "flip-length",
        "delete-middle",
        "truncate-sealed",
        "flip-active",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let records = sample_records(60);
        let lsns = {
            let wal = open(dir.path(), 300);
            wal.register_consumer("keep", 0).unwrap();
            append_all(&wal, &records, 3)
        };
        let head = lsns[59] + FRAME_HEADER_LEN + records[59].len() as u64;
        let files = segment_files(dir.path());
        assert!(files.len() > 4, "{damage}");
        match damage {
            "flip-sealed" => flip_byte(&files[1], SEGMENT_HEADER_LEN + 2 * FRAME_HEADER_LEN + 3),
            "flip-length" => flip_byte(&files[0], SEGMENT_HEADER_LEN + lsns[1] + 2),
            "delete-middle" => fs::remove_file(&files[2]).unwrap(),
            "truncate-sealed" => {
                let len = fs::metadata(&files[1]).unwrap().len();
                OpenOptions::new()
                    .write(true)
                    .open(&files[1])
                    .unwrap()
                    .set_len(len - 5)
                    .unwrap();
            }
            _ => flip_byte(
                &files[files.len() - 1],
                SEGMENT_HEADER_LEN + FRAME_HEADER_LEN + 1,
            ),
        }
        assert!(
            Wal::open(config(dir.path(), 300, u64::MAX)).is_err(),
            "{damage}"
        );

        let found = salvage(dir.path(), false).unwrap();
        assert!(!found.is_clean(), "{damage}: {found:?}");
        assert!(found.unrepairable.is_empty(), "{damage}: {found:?}");
        // Verifying changes nothing.
        assert!(
            Wal::open(config(dir.path(), 300, u64::MAX)).is_err(),
            "{damage}"
        );

        let repaired = salvage(dir.path(), true).unwrap();
        assert_eq!(repaired.damaged, found.damaged, "{damage}");
        let lost: u64 = 60 - repaired.intact_records;
        assert!(lost >= 1, "{damage}: {repaired:?}");
        let wal = open(dir.path(), 300);
        assert_eq!(wal.head(), head, "{damage}");
        let read = read_all(&wal, 0);
        let mut intact = 0;
        let mut markers = 0;
        for record in &read {
            if record.is_lost_record_marker() {
                markers += 1;
                continue;
            }
            let i = lsns
                .iter()
                .position(|l| *l == record.lsn)
                .expect("an old LSN");
            assert_eq!(record.payload, records[i], "{damage}");
            intact += 1;
        }
        assert_eq!(intact, repaired.intact_records, "{damage}");
        assert!(markers >= 1, "{damage}");
        assert_eq!(wal.checkpoint("keep").unwrap().lsn, 0);
        // A second pass finds a clean log.
        drop(wal);
        let again = salvage(dir.path(), false).unwrap();
        assert!(again.is_clean(), "{damage}: {again:?}");
        assert_eq!(again.earlier_markers, markers, "{damage}");
    }
}

#[test]
fn test_payloads_with_the_lost_record_mark_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), 1 << 20);
    assert!(matches!(
        wal.append(&[b"ok", &[LOST_RECORD_MARK, 1]]),
        Err(Error::ReservedPayload)
    ));
    assert_eq!(wal.head(), 0);
}

/// Issue 11: a segment that cannot be started (EMFILE, ENOSPC) fails that
/// append only: it is undone, the log keeps accepting appends, and nothing
/// of the failed append reappears.
#[test]
fn issue_11_failed_segment_roll_is_undone_and_retriable() {
    let dir = tempfile::tempdir().unwrap();
    let records = sample_records(30);
    let wal = open(dir.path(), 200);
    wal.register_consumer("keep", 0).unwrap();
    let mut acknowledged = Vec::new();
    let mut failures = 0;
    for chunk in records.chunks(3) {
        wal.fail_next_segment.store(true, Ordering::Release);
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        match wal.append(&refs) {
            Ok(_) => {
                // The hook did not fire (no roll): disarm it.
                wal.fail_next_segment.store(false, Ordering::Release);
                acknowledged.extend(chunk.iter().cloned());
            }
            Err(Error::Io { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(24));
                failures += 1;
                // The producer retries; this time the segment starts.
                wal.append(&refs).unwrap();
                acknowledged.extend(chunk.iter().cloned());
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
        assert!(wal.failure().is_none());
    }
    assert!(failures >= 2, "the test must exercise failed rolls");
    assert_eq!(payloads(&read_all(&wal, 0)), acknowledged);
    drop(wal);
    let wal = open(dir.path(), 200);
    assert_eq!(payloads(&read_all(&wal, 0)), acknowledged);
}

/// The fsyncs recorded by the test hook so far.
fn synced(wal: &Wal) -> Vec<(PathBuf, u64)> {
    lock(&wal.synced_log).clone()
}

#[test]
fn test_one_writer_gets_one_fsync_per_acknowledged_append_covering_it() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), 1 << 30);
    assert!(
        synced(&wal).is_empty(),
        "opening an empty log syncs no data"
    );
    for i in 0..25usize {
        let receipt = wal
            .append(&[format!("record-{i}").as_bytes(), b"second"])
            .unwrap();
        let log = synced(&wal);
        // Exactly one fsync per append: none skipped, none wasted.
        assert_eq!(log.len(), i + 1, "after append {i}: {log:?}");
        let (path, covered) = log.last().unwrap();
        let active = segment_files(dir.path()).pop().unwrap();
        assert_eq!(path, &active, "the fsync was of the active segment");
        // The fsync began after every byte of the append was written: what
        // was acknowledged is what was made durable.
        assert!(
            *covered >= SEGMENT_HEADER_LEN + receipt.end_lsn,
            "append {i} ends at {} but the fsync covered {covered} bytes",
            receipt.end_lsn
        );
        assert_eq!(wal.head(), receipt.end_lsn);
    }
    assert_eq!(wal.stats().fsyncs, 25);
    assert_eq!(wal.stats().appends, 25);
}

#[test]
fn test_a_sealed_segment_is_fsynced_whole_before_its_successor_is_used() {
    let dir = tempfile::tempdir().unwrap();
    // Room for a few records per segment, so appends roll often.
    let wal = open(dir.path(), SEGMENT_HEADER_LEN + 3 * (FRAME_HEADER_LEN + 40));
    // A consumer at the start keeps every sealed segment on disk.
    wal.register_consumer("reader", 0).unwrap();
    let payload = [b'x'; 40];
    for _ in 0..20 {
        wal.append(&[&payload[..], &payload[..]]).unwrap();
    }
    let files = segment_files(dir.path());
    assert!(files.len() >= 5, "{files:?}");
    let log = synced(&wal);
    for sealed in &files[..files.len() - 1] {
        let len = fs::metadata(sealed).unwrap().len();
        assert!(
            log.iter()
                .any(|(p, covered)| p == sealed && *covered == len),
            "sealed segment {} ({len} bytes) was never fsynced whole: {log:?}",
            sealed.display()
        );
    }
}

/// Issue 11: the newest segment cut short below a consumer's cursor lost
/// acknowledged records. That is not a torn tail: the open refuses naming the
/// segment, and salvage fills the cut-off range with markers up to the cursor.
#[test]
fn test_active_segment_truncated_below_a_cursor_is_damage_not_a_torn_tail() {
    for cut in ["at-a-frame-boundary", "mid-frame"] {
        let dir = tempfile::tempdir().unwrap();
        let records = sample_records(20);
        let (lsns, head) = {
            let wal = open(dir.path(), 1 << 20);
            let lsns = append_all(&wal, &records, 2);
            let head = wal.head();
            // A consumer has read everything, another stopped inside what
            // will be cut off.
            wal.register_consumer("reader", 0).unwrap();
            wal.commit("reader", head, None).unwrap();
            wal.register_consumer("midway", 0).unwrap();
            wal.commit("midway", lsns[17], None).unwrap();
            (lsns, head)
        };
        let active = segment_files(dir.path()).pop().unwrap();
        let keep = match cut {
            "at-a-frame-boundary" => SEGMENT_HEADER_LEN + lsns[15],
            _ => SEGMENT_HEADER_LEN + lsns[15] + 3,
        };
        OpenOptions::new()
            .write(true)
            .open(&active)
            .unwrap()
            .set_len(keep)
            .unwrap();
        let Err(Error::Corruption {
            segment, reason, ..
        }) = Wal::open(config(dir.path(), 1 << 20, u64::MAX))
        else {
            panic!("{cut}: a truncated active segment opened");
        };
        assert_eq!(segment, active, "{cut}");
        assert!(reason.contains("cut off"), "{cut}: {reason}");

        let repaired = salvage(dir.path(), true).unwrap();
        assert_eq!(repaired.intact_records, 15, "{cut}: {repaired:?}");
        assert_eq!(repaired.damaged.len(), 1, "{cut}: {repaired:?}");
        assert_eq!(repaired.damaged[0].from, lsns[15], "{cut}");
        assert_eq!(repaired.damaged[0].to, head, "{cut}");
        let wal = open(dir.path(), 1 << 20);
        assert_eq!(wal.head(), head, "{cut}");
        assert_eq!(wal.checkpoint("reader").unwrap().lsn, head, "{cut}");
        // The cursor inside the repaired range is still a record boundary.
        let from_midway = wal.read(lsns[17], 100, usize::MAX).unwrap();
        assert!(
            from_midway.iter().all(WalRecord::is_lost_record_marker),
            "{cut}"
        );
        assert_eq!(from_midway.last().unwrap().next_lsn, head, "{cut}");
        let read = read_all(&wal, 0);
        let intact: Vec<_> = read.iter().filter(|r| !r.is_lost_record_marker()).collect();
        assert_eq!(intact.len(), 15, "{cut}");
        for (record, expected) in intact.iter().zip(&records) {
            assert_eq!(record.payload, *expected, "{cut}");
        }
    }
}

/// A torn tail past every cursor and past the head the cursors file last
/// recorded is still truncated quietly (after a crash it cannot be told from
/// an append that was never acknowledged).
#[test]
fn test_a_torn_tail_past_every_cursor_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let records = sample_records(10);
    let lsns = {
        let wal = open(dir.path(), 1 << 20);
        let mut lsns = append_all(&wal, &records[..6], 1);
        wal.register_consumer("reader", 0).unwrap();
        wal.commit("reader", lsns[5], None).unwrap();
        // Appends after the last cursor commit, then a crash mid-append.
        lsns.extend(append_all(&wal, &records[6..], 1));
        crash(wal);
        lsns
    };
    let active = segment_files(dir.path()).pop().unwrap();
    OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(SEGMENT_HEADER_LEN + lsns[8] + 2)
        .unwrap();
    let wal = open(dir.path(), 1 << 20);
    assert_eq!(wal.head(), lsns[8]);
    assert_eq!(wal.checkpoint("reader").unwrap().lsn, lsns[5]);
}

/// A log closed cleanly recorded its head: cut short later (a truncation at a
/// frame boundary, no consumer at all), it refuses to open instead of losing
/// acknowledged records quietly; salvage fills the range with markers.
#[test]
fn test_a_cleanly_closed_log_cut_short_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let records = sample_records(12);
    let (lsns, head) = {
        let wal = open(dir.path(), 1 << 20);
        let lsns = append_all(&wal, &records, 3);
        (lsns, wal.head())
    };
    let active = segment_files(dir.path()).pop().unwrap();
    OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(SEGMENT_HEADER_LEN + lsns[9])
        .unwrap();
    assert!(matches!(
        Wal::open(config(dir.path(), 1 << 20, u64::MAX)),
        Err(Error::Corruption { segment, .. }) if segment == active
    ));
    let repaired = salvage(dir.path(), true).unwrap();
    assert_eq!(repaired.intact_records, 9, "{repaired:?}");
    let wal = open(dir.path(), 1 << 20);
    assert_eq!(wal.head(), head);
    assert_eq!(
        read_all(&wal, 0)
            .iter()
            .filter(|r| !r.is_lost_record_marker())
            .count(),
        9
    );
}

/// A panic while a thread holds the writer lock leaves every later append
/// panicking: the log reports it as a failure (a red health check), not as
/// healthy.
#[test]
fn test_a_panic_while_writing_is_reported_as_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(open(dir.path(), 1 << 20));
    assert_eq!(wal.failure(), None);
    let w = Arc::clone(&wal);
    let panicked = std::thread::spawn(move || {
        let _writer = lock(&w.writer);
        panic!("a write went wrong");
    })
    .join();
    assert!(panicked.is_err());
    let failure = wal.failure().expect("a poisoned log is a failure");
    assert!(failure.contains("panicked"), "{failure}");
}

/// Found by fuzzing (`fuzz/fuzz_targets/wal_recovery.rs`): an intact empty
/// record (a frame with no payload) made salvage index past its frame.
#[test]
fn test_salvage_reads_empty_records() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open(dir.path(), 1 << 20);
        wal.register_consumer("keep", 0).unwrap();
        wal.append(&[b"", b"x", b""]).unwrap();
    }
    let report = salvage(dir.path(), false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.intact_records, 3);
}

/// Found by fuzzing: a cut below the recorded durable head shorter than a
/// lost-record marker frame (here an empty record cut short) is widened back
/// over the record before it, so the repaired log opens.
#[test]
fn test_salvage_widens_a_cut_too_short_for_a_marker() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open(dir.path(), 1 << 20);
        wal.register_consumer("keep", 0).unwrap();
        wal.append(&[b"first", b"second", b""]).unwrap();
    }
    let file = segment_files(dir.path()).remove(0);
    let len = fs::metadata(&file).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    assert!(Wal::open(config(dir.path(), 1 << 20, u64::MAX)).is_err());
    let report = salvage(dir.path(), true).unwrap();
    assert!(report.unrepairable.is_empty(), "{report:?}");
    assert_eq!(report.intact_records, 1, "{report:?}");
    let wal = open(dir.path(), 1 << 20);
    let read = read_all(&wal, 0);
    assert_eq!(read[0].payload, &b"first"[..]);
    assert!(read[1..].iter().all(|r| r.is_lost_record_marker()));
}
