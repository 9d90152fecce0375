//! Trail changes, written so the WAL and the metastore cannot disagree after
//! a crash.
//!
//! The WAL control record is the source of truth; the metastore's trail row
//! is derived from it. One entry point ([`crate::Pipeline::change_trail`])
//! makes every change (CreateTrail, UpdateTrail/PutEventSelectors,
//! StartLogging, StopLogging, DeleteTrail), under one lock, in this order:
//!
//! 1. append the control record to the WAL (fsynced): from here the change
//!    is durable, and every sink applies it at its position in the stream;
//! 2. apply it to the metastore ([`apply_to_meta`], idempotent);
//! 3. move the `meta` WAL consumer's cursor past it.
//!
//! A crash after 1 leaves the change in the WAL past the `meta` cursor; at
//! start-up [`replay_into_meta`] applies every control record past that cursor
//! again, in WAL order, before anything reads the metastore. Applying a change
//! twice gives the same row (StartLogging and StopLogging carry the time the
//! call was made), so the API, the sinks and the delivered files agree
//! whatever the crash point. A crash before 1 changed nothing (the API call
//! was never answered).
//!
//! Crash points for tests: `CAIRN_CRASH_POINT=<name>` in the environment
//! aborts the process (as kill -9 would end it) when it reaches the named
//! point; unset, they are inert. Names: `trail-change-after-wal` (between 1
//! and 2) and `trail-change-after-meta` (between 2 and 3).

use std::sync::OnceLock;

use cairn_meta::{Metastore, TrailRecord, TrailStatus};
use cairn_wal::{Lsn, Wal};

use crate::Error;
use crate::envelope::{Envelope, TrailChange, TrailControl, decode};

/// The WAL consumer whose cursor says which control records the metastore has.
pub const META_CONSUMER: &str = "meta";

/// The environment variable naming the crash point to abort at.
pub const CRASH_POINT_VAR: &str = "CAIRN_CRASH_POINT";

/// Aborts the process if `CAIRN_CRASH_POINT` names `point`. Always compiled,
/// inert unless the variable is set (it is read once).
pub fn crash_point(point: &str) {
    static CHOSEN: OnceLock<Option<String>> = OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| std::env::var(CRASH_POINT_VAR).ok());
    if chosen.as_deref() == Some(point) {
        eprintln!("cairn: {CRASH_POINT_VAR}={point}: aborting here, as a crash would");
        std::process::abort();
    }
}

/// Applies one change to the metastore. Idempotent: applying the same
/// sequence of changes again from any earlier point gives the same rows.
pub fn apply_to_meta(meta: &Metastore, control: &TrailControl) -> Result<(), cairn_meta::Error> {
    let arn = &control.trail_arn;
    match &control.change {
        TrailChange::Create(config) => match meta.create_trail(&TrailRecord {
            config: (**config).clone(),
            status: TrailStatus::default(),
        }) {
            Err(cairn_meta::Error::AlreadyExists(_)) => meta.update_trail_config(config),
            other => other,
        },
        TrailChange::Configure(config) => match meta.update_trail_config(config) {
            // Deleted later in the WAL, and that is applied already.
            Err(cairn_meta::Error::NotFound(_)) => Ok(()),
            other => other,
        },
        TrailChange::StartLogging | TrailChange::StopLogging => {
            let logging = control.change == TrailChange::StartLogging;
            let at = control.at;
            match meta.update_trail_status(arn, |s| {
                if logging && !s.is_logging {
                    s.start_logging_time = Some(at);
                } else if !logging && s.is_logging {
                    s.stop_logging_time = Some(at);
                }
                s.is_logging = logging;
            }) {
                Err(cairn_meta::Error::NotFound(_)) => Ok(()),
                other => other.map(|_| ()),
            }
        }
        TrailChange::Delete => match meta.delete_trail(arn) {
            Err(cairn_meta::Error::NotFound(_)) => Ok(()),
            other => other,
        },
    }
}

/// Applies every control record past the `meta` cursor to the metastore and
/// moves the cursor to the head. Registers the cursor at the head on first
/// start (the metastore was written directly before).
pub fn replay_into_meta(wal: &Wal, meta: &Metastore) -> Result<usize, Error> {
    let Some(checkpoint) = wal.checkpoint(META_CONSUMER) else {
        wal.register_consumer(META_CONSUMER, wal.head())?;
        return Ok(0);
    };
    let (position, applied) = apply_changes_from(wal, meta, checkpoint.lsn, |_| true)?;
    if applied > 0 {
        tracing::info!(
            changes = applied,
            "re-applied trail changes the metastore had not recorded"
        );
    }
    wal.commit(META_CONSUMER, position, None)?;
    Ok(applied)
}

/// Applies to the metastore, in WAL order, every control record from `from`
/// to the head that `wanted` chooses; returns the head and how many applied.
fn apply_changes_from(
    wal: &Wal,
    meta: &Metastore,
    from: Lsn,
    wanted: impl Fn(&TrailControl) -> bool,
) -> Result<(Lsn, usize), Error> {
    let mut position = from;
    let mut applied = 0;
    loop {
        let records = wal.read(position, 8192, 64 * 1024 * 1024)?;
        let Some(last) = records.last() else { break };
        position = last.next_lsn;
        for record in &records {
            // Start-up verified every record decodes; a control that does not
            // is refused there, never skipped here.
            if let Ok(Envelope::Control(control)) = decode(&record.payload)
                && wanted(&control)
            {
                apply_to_meta(meta, &control)?;
                applied += 1;
            }
        }
    }
    Ok((position, applied))
}

/// What [`rebuild_trail`] made of a damaged trail row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrailRebuild {
    /// Rebuilt from the trail's delivery checkpoint (its configuration and
    /// logging state at `from`) and the trail changes the WAL holds past it.
    /// Its status times (deliveries, StartLogging/StopLogging) start over.
    Rebuilt {
        /// The checkpoint's WAL position.
        from: Lsn,
        /// Trail changes applied on top.
        later_changes: usize,
    },
    /// Rebuilt, and a later DeleteTrail in the WAL removed it.
    Deleted,
    /// Nothing to rebuild it from (no delivery checkpoint holds its
    /// configuration): the row is removed; the trail must be created again.
    Lost,
}

/// Rebuilds the metastore row of trail `arn` (damaged: its documents do not
/// decode) from what the pipeline keeps of it: the trail sink's checkpoint
/// holds the trail's configuration and logging state at the sink's cursor,
/// and every trail change past the cursor is still in the WAL (the cursor
/// keeps it), so applying those changes again gives the row the metastore
/// should hold, but for the status times nobody else keeps.
pub fn rebuild_trail(wal: &Wal, meta: &Metastore, arn: &str) -> Result<TrailRebuild, Error> {
    let consumer = crate::sink::consumer_name(arn);
    let state = wal.checkpoint(&consumer).and_then(|checkpoint| {
        let decoded = crate::runtime::decode_checkpoint::<
            crate::sink::SinkState,
            crate::sink::DeliveryIntent,
        >(&consumer, checkpoint.state.as_deref())
        .ok()?;
        Some((checkpoint.lsn, decoded.state.config?, decoded.state.logging))
    });
    let Some((from, config, logging)) = state else {
        match meta.delete_trail(arn) {
            Ok(()) | Err(cairn_meta::Error::NotFound(_)) => return Ok(TrailRebuild::Lost),
            Err(e) => return Err(e.into()),
        }
    };
    meta.replace_trail(&TrailRecord {
        config,
        status: TrailStatus {
            is_logging: logging,
            ..TrailStatus::default()
        },
    })?;
    let (_, later_changes) = apply_changes_from(wal, meta, from, |c| c.trail_arn == arn)?;
    if meta.trail(arn)?.is_none() {
        return Ok(TrailRebuild::Deleted);
    }
    Ok(TrailRebuild::Rebuilt {
        from,
        later_changes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::{DateTime, Utc};

    fn config(prefix: &str) -> cairn_model::TrailConfig {
        cairn_model::TrailConfig {
            s3_key_prefix: Some(prefix.into()),
            ..cairn_model::TrailConfig::new(
                "t",
                "arn:aws:cloudtrail:us-east-1:123456789012:trail/t",
                "123456789012",
                "us-east-1",
                "b",
                serde_json::json!({"EventSelectors": []}),
                DateTime::<Utc>::UNIX_EPOCH,
            )
        }
    }

    fn control(second: u32, change: TrailChange) -> TrailControl {
        TrailControl {
            trail_arn: config("").arn,
            at: DateTime::parse_from_rfc3339(&format!("2024-05-01T10:00:{second:02}Z"))
                .unwrap()
                .to_utc(),
            change,
        }
    }

    #[test]
    fn test_replaying_from_any_point_gives_the_same_rows() {
        let changes = vec![
            control(0, TrailChange::Create(Box::new(config("a")))),
            control(1, TrailChange::StartLogging),
            control(2, TrailChange::Configure(Box::new(config("b")))),
            control(3, TrailChange::StopLogging),
            control(4, TrailChange::StartLogging),
            control(5, TrailChange::Configure(Box::new(config("c")))),
        ];
        let reference = Metastore::in_memory().unwrap();
        for c in &changes {
            apply_to_meta(&reference, c).unwrap();
        }
        let expected = reference.trail(&config("").arn).unwrap().unwrap();
        assert_eq!(expected.config.s3_key_prefix.as_deref(), Some("c"));
        assert!(expected.status.is_logging);
        assert_eq!(expected.status.start_logging_time, Some(changes[4].at));
        assert_eq!(expected.status.stop_logging_time, Some(changes[3].at));
        // A crash after any change, and a replay from any earlier cursor.
        for crashed_after in 0..changes.len() {
            for cursor in 0..=crashed_after {
                let meta = Metastore::in_memory().unwrap();
                for c in &changes[..=crashed_after] {
                    apply_to_meta(&meta, c).unwrap();
                }
                for c in &changes[cursor..] {
                    apply_to_meta(&meta, c).unwrap();
                }
                assert_eq!(
                    meta.trail(&config("").arn).unwrap().unwrap(),
                    expected,
                    "crash after {crashed_after}, replay from {cursor}"
                );
            }
        }
        // Deletion replays too, also when the row is already gone.
        apply_to_meta(&reference, &control(6, TrailChange::Delete)).unwrap();
        apply_to_meta(&reference, &control(6, TrailChange::Delete)).unwrap();
        assert!(reference.trail(&config("").arn).unwrap().is_none());
    }
}
