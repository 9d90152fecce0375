//! What one WAL record holds: an ingested CloudTrail record, or a trail control change.
//!
//! ```text
//! Record  := 0x03 | 0x01 | ingest_time_ms: u64 LE | event_id_hash: u128 LE | record JSON bytes
//! Control := 0x03 | 0x02 | TrailControl as JSON (model types: cairn_model::TrailConfig)
//! ```
//!
//! The first byte is the **format version**. Version 3 is the first with an
//! explicit version byte: the unversioned format that came before began with
//! its kind (`0x01` record, `0x02` control), so those two values are read as
//! that format (its records are identical after the kind byte, its controls
//! lack `at`) and are never written again. Any other first byte is a format
//! this build does not know: [`decode`] refuses it with
//! [`EnvelopeError::UnknownVersion`], and start-up stops on it (never a silent
//! skip, which could lose a trail change). The golden files under
//! `tests/data/` pin every persisted form.
//!
//! Control changes (CreateTrail, StartLogging, StopLogging, configuration
//! changes, DeleteTrail) travel through the WAL so every sink applies them at
//! exactly the point in the record stream where the API call happened, also
//! when it replays after a crash; the WAL control record is the source of
//! truth the metastore's trail rows are derived from (see `crate::control`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use cairn_model::TrailConfig;

/// The format version this build writes.
pub const VERSION: u8 = 3;
/// The first byte of a record of the unversioned format.
const LEGACY_RECORD: u8 = 1;
/// The first byte of a control of the unversioned format.
const LEGACY_CONTROL: u8 = 2;
const KIND_RECORD: u8 = 1;
const KIND_CONTROL: u8 = 2;
/// Bytes before a record's JSON.
pub const RECORD_HEADER: usize = 2 + 8 + 16;
const LEGACY_RECORD_HEADER: usize = 1 + 8 + 16;

/// A change to one trail, ordered with the records in the WAL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrailControl {
    /// The trail's ARN.
    pub trail_arn: String,
    /// When the API call made the change (StartLogging's and StopLogging's
    /// times in GetTrailStatus come from here, so replaying it gives the same).
    pub at: DateTime<Utc>,
    /// The change.
    pub change: TrailChange,
}

/// The kinds of trail change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TrailChange {
    /// CreateTrail: the trail exists from here on, not logging.
    Create(Box<TrailConfig>),
    /// New configuration, selectors or tags (UpdateTrail, PutEventSelectors, AddTags...).
    Configure(Box<TrailConfig>),
    /// StartLogging.
    StartLogging,
    /// StopLogging.
    StopLogging,
    /// DeleteTrail.
    Delete,
}

/// A control of the unversioned format (no `at`, no `Create`).
#[derive(Deserialize)]
struct LegacyControl {
    trail_arn: String,
    change: TrailChange,
}

/// A decoded WAL payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope<'a> {
    /// An ingested record.
    Record {
        /// When ingest accepted it (ms since the epoch).
        ingest_time_ms: u64,
        /// Hash of its eventID (the deduplication key).
        event_id_hash: u128,
        /// Its JSON text.
        json: &'a [u8],
    },
    /// A trail change.
    Control(TrailControl),
    /// A lost-record marker `cairn doctor --repair` wrote over damaged WAL
    /// bytes: one or more records were lost here, and are counted, not decoded.
    Lost,
}

/// Why a payload does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Written by a format this build does not know (a newer Cairn).
    #[error(
        "WAL envelope format version {0} is unknown to this build (it reads versions 1 to {VERSION})"
    )]
    UnknownVersion(u8),
    /// A known version, but the bytes are not what it writes.
    #[error("malformed WAL envelope: {0}")]
    Malformed(String),
}

/// Encodes an ingested record.
pub fn encode_record(ingest_time_ms: u64, event_id_hash: u128, json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER + json.len());
    encode_record_into(&mut out, ingest_time_ms, event_id_hash, json);
    out
}

/// Appends an encoded record to `out` (batches share one buffer).
pub fn encode_record_into(
    out: &mut Vec<u8>,
    ingest_time_ms: u64,
    event_id_hash: u128,
    json: &[u8],
) {
    out.push(VERSION);
    out.push(KIND_RECORD);
    out.extend_from_slice(&ingest_time_ms.to_le_bytes());
    out.extend_from_slice(&event_id_hash.to_le_bytes());
    out.extend_from_slice(json);
}

/// Encodes a trail change.
pub fn encode_control(control: &TrailControl) -> Vec<u8> {
    let mut out = vec![VERSION, KIND_CONTROL];
    // Serialising plain data structures to a Vec cannot fail.
    serde_json::to_writer(&mut out, control).expect("control changes always serialise");
    out
}

/// The ingest time and eventID hash of a record payload, without looking at
/// its JSON (the dedup persister needs no more); `Ok(None)` for a control
/// or a lost-record marker (`cairn doctor`'s salvage: no eventID survives).
pub fn record_header(payload: &[u8]) -> Result<Option<(u64, u128)>, EnvelopeError> {
    let header = match payload.first() {
        // A salvage marker: no record header, nothing to decode.
        Some(&cairn_wal::LOST_RECORD_MARK) => return Ok(None),
        Some(&VERSION) if payload.get(1) == Some(&KIND_RECORD) => &payload[2..],
        Some(&LEGACY_RECORD) => &payload[1..],
        Some(&VERSION) | Some(&LEGACY_CONTROL) => return Ok(None),
        Some(&other) => return Err(EnvelopeError::UnknownVersion(other)),
        None => return Err(EnvelopeError::Malformed("empty payload".into())),
    };
    let (Some(time), Some(hash)) = (header.get(0..8), header.get(8..24)) else {
        return Err(EnvelopeError::Malformed("record header too short".into()));
    };
    let mut t = [0u8; 8];
    t.copy_from_slice(time);
    let mut h = [0u8; 16];
    h.copy_from_slice(hash);
    Ok(Some((u64::from_le_bytes(t), u128::from_le_bytes(h))))
}

/// Decodes a payload.
pub fn decode(payload: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let (json_at, body) = match payload.first() {
        Some(&cairn_wal::LOST_RECORD_MARK) => return Ok(Envelope::Lost),
        Some(&VERSION) => match payload.get(1) {
            Some(&KIND_RECORD) => (RECORD_HEADER, None),
            Some(&KIND_CONTROL) => {
                let control = serde_json::from_slice(&payload[2..])
                    .map_err(|e| EnvelopeError::Malformed(format!("control record: {e}")))?;
                return Ok(Envelope::Control(control));
            }
            Some(kind) => {
                return Err(EnvelopeError::Malformed(format!(
                    "unknown kind {kind} in a version {VERSION} envelope"
                )));
            }
            None => return Err(EnvelopeError::Malformed("no kind byte".into())),
        },
        Some(&LEGACY_RECORD) => (LEGACY_RECORD_HEADER, None),
        Some(&LEGACY_CONTROL) => (0, Some(&payload[1..])),
        Some(&other) => return Err(EnvelopeError::UnknownVersion(other)),
        None => return Err(EnvelopeError::Malformed("empty payload".into())),
    };
    if let Some(body) = body {
        let legacy: LegacyControl = serde_json::from_slice(body)
            .map_err(|e| EnvelopeError::Malformed(format!("control record: {e}")))?;
        return Ok(Envelope::Control(TrailControl {
            trail_arn: legacy.trail_arn,
            at: DateTime::<Utc>::UNIX_EPOCH,
            change: legacy.change,
        }));
    }
    let Some((ingest_time_ms, event_id_hash)) = record_header(payload)? else {
        return Err(EnvelopeError::Malformed("not a record".into()));
    };
    let json = payload
        .get(json_at..)
        .ok_or_else(|| EnvelopeError::Malformed("record header too short".into()))?;
    Ok(Envelope::Record {
        ingest_time_ms,
        event_id_hash,
        json,
    })
}

/// The deduplication key of an eventID.
pub fn event_id_hash(event_id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(event_id.as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn test_round_trip() {
        let p = encode_record(42, 7, b"{\"a\":1}");
        assert_eq!(p[0], VERSION);
        assert_eq!(
            decode(&p),
            Ok(Envelope::Record {
                ingest_time_ms: 42,
                event_id_hash: 7,
                json: b"{\"a\":1}"
            })
        );
        assert_eq!(record_header(&p), Ok(Some((42, 7))));
        let c = TrailControl {
            trail_arn: "arn".into(),
            at: DateTime::<Utc>::UNIX_EPOCH,
            change: TrailChange::StopLogging,
        };
        let encoded = encode_control(&c);
        assert_eq!(decode(&encoded), Ok(Envelope::Control(c)));
        assert_eq!(record_header(&encoded), Ok(None));
        // A salvaged lost-record marker has no header to read, and is no error.
        assert_eq!(
            record_header(&[cairn_wal::LOST_RECORD_MARK, 0, 0, 0]),
            Ok(None)
        );
    }

    #[test]
    fn test_unknown_and_malformed_are_refused() {
        assert_eq!(decode(&[9, 9]), Err(EnvelopeError::UnknownVersion(9)));
        assert!(matches!(decode(&[]), Err(EnvelopeError::Malformed(_))));
        assert!(matches!(
            decode(&[VERSION, 7]),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(matches!(
            decode(&[VERSION, KIND_RECORD, 1, 2]),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(matches!(
            decode(&[VERSION, KIND_CONTROL, b'{']),
            Err(EnvelopeError::Malformed(_))
        ));
        assert_eq!(
            record_header(&[200]),
            Err(EnvelopeError::UnknownVersion(200))
        );
    }

    #[test]
    fn test_unversioned_format_still_decodes() {
        let mut legacy = vec![LEGACY_RECORD];
        legacy.extend_from_slice(&5u64.to_le_bytes());
        legacy.extend_from_slice(&6u128.to_le_bytes());
        legacy.extend_from_slice(b"{}");
        assert_eq!(
            decode(&legacy),
            Ok(Envelope::Record {
                ingest_time_ms: 5,
                event_id_hash: 6,
                json: b"{}"
            })
        );
        let control = br#"{"trail_arn":"arn:t","change":"StartLogging"}"#;
        let mut legacy = vec![LEGACY_CONTROL];
        legacy.extend_from_slice(control);
        let Ok(Envelope::Control(c)) = decode(&legacy) else {
            panic!("legacy control did not decode")
        };
        assert_eq!(c.trail_arn, "arn:t");
        assert_eq!(c.change, TrailChange::StartLogging);
    }
}
