//! What one WAL record holds: an ingested CloudTrail record, or a trail control change.
//!
//! ```text
//! Record  := 0x01 | ingest_time_ms: u64 LE | event_id_hash: u128 LE | record JSON bytes
//! Control := 0x02 | TrailControl as JSON
//! ```
//!
//! Control changes (StartLogging, StopLogging, configuration changes, deletion)
//! travel through the WAL so every sink applies them at exactly the point in
//! the record stream where the API call happened, also when it replays after a
//! crash.

use serde::{Deserialize, Serialize};

use cairn_meta::TrailConfig;

const KIND_RECORD: u8 = 1;
const KIND_CONTROL: u8 = 2;
const RECORD_HEADER: usize = 1 + 8 + 16;

/// A change to one trail, ordered with the records in the WAL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrailControl {
    /// The trail's ARN.
    pub trail_arn: String,
    /// The change.
    pub change: TrailChange,
}

/// The kinds of trail change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TrailChange {
    /// New configuration or selectors (UpdateTrail, PutEventSelectors).
    Configure(Box<TrailConfig>),
    /// StartLogging.
    StartLogging,
    /// StopLogging.
    StopLogging,
    /// DeleteTrail.
    Delete,
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
    out.push(KIND_RECORD);
    out.extend_from_slice(&ingest_time_ms.to_le_bytes());
    out.extend_from_slice(&event_id_hash.to_le_bytes());
    out.extend_from_slice(json);
}

/// Encodes a trail change.
pub fn encode_control(control: &TrailControl) -> Vec<u8> {
    let mut out = vec![KIND_CONTROL];
    // Serialising plain data structures to a Vec cannot fail.
    serde_json::to_writer(&mut out, control).expect("control changes always serialise");
    out
}

/// Decodes a payload; `None` for a payload this version does not understand.
pub fn decode(payload: &[u8]) -> Option<Envelope<'_>> {
    match *payload.first()? {
        KIND_RECORD if payload.len() >= RECORD_HEADER => {
            let ingest_time_ms = u64::from_le_bytes(payload[1..9].try_into().ok()?);
            let event_id_hash = u128::from_le_bytes(payload[9..25].try_into().ok()?);
            Some(Envelope::Record {
                ingest_time_ms,
                event_id_hash,
                json: &payload[RECORD_HEADER..],
            })
        }
        KIND_CONTROL => serde_json::from_slice(&payload[1..])
            .ok()
            .map(Envelope::Control),
        _ => None,
    }
}

/// The deduplication key of an eventID.
pub fn event_id_hash(event_id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(event_id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_round_trip() {
        let p = encode_record(42, 7, b"{\"a\":1}");
        assert_eq!(
            decode(&p),
            Some(Envelope::Record {
                ingest_time_ms: 42,
                event_id_hash: 7,
                json: b"{\"a\":1}"
            })
        );
        let c = TrailControl {
            trail_arn: "arn".into(),
            change: TrailChange::StopLogging,
        };
        assert_eq!(decode(&encode_control(&c)), Some(Envelope::Control(c)));
        assert_eq!(decode(&[9, 9]), None);
        assert_eq!(decode(&[]), None);
    }
}
