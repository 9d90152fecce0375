//! WAL recovery from arbitrary bytes: opening a log whose segment and cursors
//! files hold anything either refuses (an error naming the damage) or yields
//! a log whose every record reads back; `salvage` never panics, and after a
//! repair the log opens.
#![no_main]

use cairn_wal::{Wal, WalConfig, salvage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    // A real log first, so the bytes below damage something plausible.
    {
        let Ok(wal) = Wal::open(config(dir.path())) else {
            return;
        };
        let _ = wal.register_consumer("keep", 0);
        let _ = wal.append(&[b"first record", b"second record"]);
    }
    let segment = dir.path().join("00000000000000000000.wal");
    let Ok(mut bytes) = std::fs::read(&segment) else {
        return;
    };
    // The input overwrites bytes past the segment header (at an offset the
    // input chooses) and may extend the file.
    if let Some((&offset, patch)) = data.split_first() {
        let start = 24 + usize::from(offset) % (bytes.len() - 23);
        for (i, b) in patch.iter().enumerate() {
            match bytes.get_mut(start + i) {
                Some(slot) => *slot = *b,
                None => bytes.push(*b),
            }
        }
    }
    if std::fs::write(&segment, &bytes).is_err() {
        return;
    }
    if let Ok(wal) = Wal::open(config(dir.path())) {
        let mut at = wal.oldest_lsn();
        while let Ok(records) = wal.read(at, 64, 1 << 20) {
            let Some(last) = records.last() else { break };
            at = last.next_lsn;
        }
        return;
    }
    if let Ok(report) = salvage(dir.path(), true) {
        if report.unrepairable.is_empty() {
            Wal::open(config(dir.path())).expect("a repaired log opens");
        }
    }
});

fn config(dir: &std::path::Path) -> WalConfig {
    let mut config = WalConfig::new(dir);
    config.segment_bytes = 1 << 20;
    config
}
