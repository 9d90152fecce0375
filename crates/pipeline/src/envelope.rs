//! What one WAL record holds: an ingested CloudTrail record, or a trail control change.
//!
//! ```text
//! Record  := 0x04 | 0x01 | ingest_time_ms: u64 LE | event_id_hash: u128 LE
//!            | view_len: u32 LE | view (cairn_model::view_codec) | record JSON bytes
//! Control := 0x04 | 0x02 | TrailControl as JSON (model types: cairn_model::TrailConfig)
//! ```
//!
//! The first byte is the **format version**. Version 4 carries, beside each
//! record's JSON, the view ingest parsed (the fields selectors, scope and
//! layout read, defaults included), so the router decodes it instead of
//! parsing the JSON a second time. Version 3 is the same without the view
//! (its records are parsed when routed); it is still read, never written.
//! Version 3 was the first with an explicit version byte: the unversioned
//! format that came before began with its kind (`0x01` record, `0x02`
//! control), so those two values are read as that format (its records are
//! identical after the kind byte, its controls lack `at`) and are never
//! written again. Any other first byte is a format this build does not know:
//! [`decode`] refuses it with [`EnvelopeError::UnknownVersion`], and start-up
//! stops on it (never a silent skip, which could lose a trail change). The
//! golden files under `tests/data/` pin every persisted form.
//!
//! Control changes (CreateTrail, StartLogging, StopLogging, configuration
//! changes, DeleteTrail) travel through the WAL so every sink applies them at
//! exactly the point in the record stream where the API call happened, also
//! when it replays after a crash; the WAL control record is the source of
//! truth the metastore's trail rows are derived from (see `crate::control`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use cairn_model::{NormalizedRecord, TrailConfig};

/// The format version this build writes.
pub const VERSION: u8 = 4;
/// The previous version, records without their view: read, never written.
const VERSION_3: u8 = 3;
/// The first byte of a record of the unversioned format.
const LEGACY_RECORD: u8 = 1;
/// The first byte of a control of the unversioned format.
const LEGACY_CONTROL: u8 = 2;
const KIND_RECORD: u8 = 1;
const KIND_CONTROL: u8 = 2;
/// Bytes of a record's fixed header (version, kind, ingest time, eventID hash).
pub const RECORD_HEADER: usize = 2 + 8 + 16;
/// The view's length, after the fixed header of a version 4 record.
const VIEW_LEN: usize = 4;
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
        /// Its view in `cairn_model::view_codec`'s form, spans into `json`
        /// (`None` in records of versions before 4: their JSON is parsed).
        view: Option<&'a [u8]>,
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

/// Encodes an ingested record with its view (see [`encode_record_into`]).
pub fn encode_record(
    ingest_time_ms: u64,
    event_id_hash: u128,
    record: &NormalizedRecord,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER + VIEW_LEN + 128 + record.json.len());
    encode_record_into(&mut out, ingest_time_ms, event_id_hash, record);
    out
}

/// Appends an encoded record to `out` (batches share one buffer): its JSON as
/// it will be delivered, and the view ingest parsed, so no one parses it again.
pub fn encode_record_into(
    out: &mut Vec<u8>,
    ingest_time_ms: u64,
    event_id_hash: u128,
    record: &NormalizedRecord,
) {
    out.push(VERSION);
    out.push(KIND_RECORD);
    out.extend_from_slice(&ingest_time_ms.to_le_bytes());
    out.extend_from_slice(&event_id_hash.to_le_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0; VIEW_LEN]);
    record.encode_view(out);
    // A view is far smaller than the record it describes (at most 1 MiB).
    let view_len = u32::try_from(out.len() - len_at - VIEW_LEN).unwrap_or(u32::MAX);
    out[len_at..len_at + VIEW_LEN].copy_from_slice(&view_len.to_le_bytes());
    out.extend_from_slice(record.json.as_bytes());
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
        Some(&VERSION | &VERSION_3) if payload.get(1) == Some(&KIND_RECORD) => &payload[2..],
        Some(&LEGACY_RECORD) => &payload[1..],
        Some(&VERSION | &VERSION_3 | &LEGACY_CONTROL) => return Ok(None),
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
        Some(&version @ (VERSION | VERSION_3)) => match payload.get(1) {
            Some(&KIND_RECORD) if version == VERSION_3 => (RECORD_HEADER, None),
            Some(&KIND_RECORD) => return decode_record_with_view(payload),
            Some(&KIND_CONTROL) => {
                let control = serde_json::from_slice(&payload[2..])
                    .map_err(|e| EnvelopeError::Malformed(format!("control record: {e}")))?;
                return Ok(Envelope::Control(control));
            }
            Some(kind) => {
                return Err(EnvelopeError::Malformed(format!(
                    "unknown kind {kind} in a version {version} envelope"
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
        view: None,
    })
}

/// A version 4 record: the header, the view, the JSON.
fn decode_record_with_view(payload: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let Some((ingest_time_ms, event_id_hash)) = record_header(payload)? else {
        return Err(EnvelopeError::Malformed("not a record".into()));
    };
    let truncated = || EnvelopeError::Malformed("record header too short".into());
    let len = payload
        .get(RECORD_HEADER..RECORD_HEADER + VIEW_LEN)
        .ok_or_else(truncated)?;
    let mut l = [0u8; VIEW_LEN];
    l.copy_from_slice(len);
    let view_at = RECORD_HEADER + VIEW_LEN;
    let json_at = usize::try_from(u32::from_le_bytes(l))
        .ok()
        .and_then(|len| view_at.checked_add(len))
        .filter(|&at| at <= payload.len())
        .ok_or_else(|| EnvelopeError::Malformed("record view longer than the record".into()))?;
    Ok(Envelope::Record {
        ingest_time_ms,
        event_id_hash,
        json: &payload[json_at..],
        view: Some(&payload[view_at..json_at]),
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

    const DEFAULTS: cairn_model::IngestDefaults<'static> = cairn_model::IngestDefaults {
        account_id: "123456789012",
        region: "us-east-1",
    };

    #[test]
    fn test_round_trip() {
        let raw = r#"{"eventTime":"2024-05-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject"}"#;
        let record = cairn_model::record::normalize_record(raw, &DEFAULTS).unwrap();
        let p = encode_record(42, 7, &record);
        assert_eq!(p[0], VERSION);
        let Ok(Envelope::Record {
            ingest_time_ms: 42,
            event_id_hash: 7,
            json,
            view: Some(view),
        }) = decode(&p)
        else {
            panic!("the record does not decode: {:?}", decode(&p))
        };
        assert_eq!(json, record.json.as_bytes());
        let view =
            cairn_model::view_codec::decode_view(view, std::str::from_utf8(json).unwrap()).unwrap();
        assert_eq!(view.event_name.as_deref(), Some("GetObject"));
        assert_eq!(view.aws_region.as_deref(), Some("us-east-1"));
        assert_eq!(record_header(&p), Ok(Some((42, 7))));
        // A view said to be longer than the record is damage.
        let mut damaged = p.clone();
        damaged[RECORD_HEADER..RECORD_HEADER + VIEW_LEN].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&damaged), Err(EnvelopeError::Malformed(_))));
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
            decode(&[VERSION_3, KIND_RECORD, 1, 2]),
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
                json: b"{}",
                view: None,
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
