//! Incremental log-file batches.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

const HEADER: &[u8] = b"{\"Records\":[";
const FOOTER: &[u8] = b"]}";

/// One log file being built: the records of one (account, region).
pub struct LogBatch {
    encoder: GzEncoder<Vec<u8>>,
    hasher: Sha256,
    records: usize,
    uncompressed_bytes: usize,
    oldest: Option<DateTime<Utc>>,
    newest: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for LogBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBatch")
            .field("records", &self.records)
            .field("uncompressed_bytes", &self.uncompressed_bytes)
            .finish()
    }
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
    /// An empty batch compressing at `level` (0–9).
    pub fn new(level: u32) -> Self {
        let mut batch = Self {
            encoder: GzEncoder::new(Vec::new(), Compression::new(level.min(9))),
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
        self.uncompressed_bytes += bytes.len();
        // Writing into a Vec cannot fail.
        self.encoder
            .write_all(bytes)
            .expect("gzip into memory cannot fail");
    }

    /// Appends one record's JSON text, exactly as given.
    pub fn push(&mut self, record_json: &[u8], event_time: Option<DateTime<Utc>>) {
        if self.records > 0 {
            self.write(b",");
        }
        self.write(record_json);
        self.records += 1;
        if let Some(t) = event_time {
            self.oldest = Some(self.oldest.map_or(t, |o| o.min(t)));
            self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
        }
    }

    /// How many records it holds.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Uncompressed bytes so far.
    pub fn uncompressed_bytes(&self) -> usize {
        self.uncompressed_bytes
    }

    /// Closes the JSON and the gzip stream.
    pub fn finish(mut self) -> LogFile {
        self.write(FOOTER);
        let gzip = self.encoder.finish().expect("gzip into memory cannot fail");
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
    level: u32,
    batches: BTreeMap<(String, String), LogBatch>,
    uncompressed_bytes: usize,
    records: usize,
}

impl LogBatches {
    /// No batches yet; files will compress at `level`.
    pub fn new(level: u32) -> Self {
        Self {
            level,
            batches: BTreeMap::new(),
            uncompressed_bytes: 0,
            records: 0,
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
        let level = self.level;
        // Look up by borrowed key first: allocating the key per record is measurable.
        let batch = match self
            .batches
            .iter_mut()
            .find(|((a, r), _)| a == account && r == region)
        {
            Some((_, batch)) => batch,
            None => self
                .batches
                .entry((account.to_owned(), region.to_owned()))
                .or_insert_with(|| LogBatch::new(level)),
        };
        let before = batch.uncompressed_bytes();
        batch.push(record_json, event_time);
        self.uncompressed_bytes += batch.uncompressed_bytes() - before;
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

    /// The (account, region) pairs with a batch, in order.
    pub fn groups(&self) -> Vec<(String, String)> {
        self.batches.keys().cloned().collect()
    }

    /// Finishes every batch, in (account, region) order, and starts afresh.
    pub fn finish(&mut self) -> Vec<((String, String), LogFile)> {
        self.uncompressed_bytes = 0;
        self.records = 0;
        std::mem::take(&mut self.batches)
            .into_iter()
            .map(|(k, b)| (k, b.finish()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn test_batch_is_records_json_with_exact_bytes() {
        let mut b = LogBatch::new(6);
        b.push(br#"{"a":1.688560107857E9}"#, None);
        b.push(br#"{ "b" : [ ] }"#, None);
        let f = b.finish();
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
        let f = LogBatch::new(6).finish();
        assert_eq!(gunzip(&f.gzip), br#"{"Records":[]}"#);
    }

    #[test]
    fn test_output_is_deterministic() {
        let build = || {
            let mut b = LogBatches::new(6);
            b.push("1", "us-east-1", b"{}", None);
            b.push("2", "us-east-1", b"{\"x\":2}", None);
            b.push("1", "us-east-1", b"{\"x\":1}", None);
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
    fn test_event_time_range() {
        let t1 = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let t2 = DateTime::parse_from_rfc3339("2024-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut b = LogBatch::new(1);
        b.push(b"{}", Some(t2));
        b.push(b"{}", Some(t1));
        let f = b.finish();
        assert_eq!(f.oldest_event_time, Some(t1));
        assert_eq!(f.newest_event_time, Some(t2));
    }
}
