//! Request bodies built by concatenating record texts.
//!
//! A body is `{"Records":[` + record + `,` + record ... + `]}`. Records are
//! never parsed and re-serialised here, so each arrives at the server exactly
//! as it was read (key order, whitespace inside, number spellings).

use bytes::Bytes;

/// The most records the server accepts in one request.
pub const MAX_RECORDS_PER_BATCH: usize = 1000;
/// The largest (decompressed) request body the server accepts, in bytes.
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;

const PREFIX: &[u8] = b"{\"Records\":[";
const SUFFIX: &[u8] = b"]}";

/// Builds `{"Records":[...]}` from record texts (each must be one JSON value).
pub fn records_body<S: AsRef<str>>(records: &[S]) -> Vec<u8> {
    let len =
        records.iter().map(|r| r.as_ref().len() + 1).sum::<usize>() + PREFIX.len() + SUFFIX.len();
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(PREFIX);
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(record.as_ref().as_bytes());
    }
    body.extend_from_slice(SUFFIX);
    body
}

/// One request's worth of records.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    /// The uncompressed body.
    pub(crate) body: Bytes,
    /// The input position of each record in the body, in order.
    pub(crate) indices: Vec<u64>,
}

/// Accumulates records into batches within a record count and a body size.
#[derive(Debug)]
pub(crate) struct BatchBuilder {
    body: Vec<u8>,
    indices: Vec<u64>,
    max_records: usize,
    max_bytes: usize,
}

impl BatchBuilder {
    /// `max_records` and `max_bytes` are the caller's limits (at least one
    /// record; at least the empty body's bytes).
    pub(crate) fn new(max_records: usize, max_bytes: usize) -> Self {
        Self {
            body: Vec::new(),
            indices: Vec::new(),
            max_records: max_records.max(1),
            max_bytes: max_bytes.max(PREFIX.len() + SUFFIX.len()),
        }
    }

    /// Whether a record of `len` bytes fits in a batch at all.
    pub(crate) fn fits_alone(&self, len: usize) -> bool {
        PREFIX.len() + len + SUFFIX.len() <= self.max_bytes
    }

    /// Adds a record (which must [`fit alone`](Self::fits_alone)); returns the
    /// previous batch when this record does not fit in it.
    pub(crate) fn push(&mut self, index: u64, record: &str) -> Option<Batch> {
        debug_assert!(self.fits_alone(record.len()));
        let full = !self.indices.is_empty()
            && (self.indices.len() >= self.max_records
                || self.body.len() + 1 + record.len() + SUFFIX.len() > self.max_bytes);
        let done = if full { self.finish() } else { None };
        if self.indices.is_empty() {
            self.body.extend_from_slice(PREFIX);
        } else {
            self.body.push(b',');
        }
        self.body.extend_from_slice(record.as_bytes());
        self.indices.push(index);
        done
    }

    /// The batch in progress, if it has any record.
    pub(crate) fn finish(&mut self) -> Option<Batch> {
        if self.indices.is_empty() {
            return None;
        }
        let mut body = std::mem::take(&mut self.body);
        body.extend_from_slice(SUFFIX);
        Some(Batch {
            body: Bytes::from(body),
            indices: std::mem::take(&mut self.indices),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testserver::records_in;

    fn batch_all(records: &[String], max_records: usize, max_bytes: usize) -> Vec<Batch> {
        let mut builder = BatchBuilder::new(max_records, max_bytes);
        let mut out = Vec::new();
        for (i, r) in records.iter().enumerate() {
            assert!(builder.fits_alone(r.len()));
            out.extend(builder.push(i as u64, r));
        }
        out.extend(builder.finish());
        out
    }

    #[test]
    fn test_batches_respect_server_limits() {
        // 2500 records of ~4 KiB: 1000 per batch would be ~4 MB, under 5 MiB;
        // then records of ~9 KiB, where the byte limit binds first.
        let mut records: Vec<String> = (0..2500)
            .map(|i| format!(r#"{{"i":{i},"pad":"{}"}}"#, "x".repeat(4000)))
            .collect();
        records.extend((0..1500).map(|i| format!(r#"{{"j":{i},"pad":"{}"}}"#, "y".repeat(9000))));
        let batches = batch_all(&records, MAX_RECORDS_PER_BATCH, MAX_BATCH_BYTES);
        let mut next = 0u64;
        for b in &batches {
            assert!(b.indices.len() <= MAX_RECORDS_PER_BATCH);
            assert!(b.body.len() <= MAX_BATCH_BYTES);
            let parsed = records_in(&b.body);
            assert_eq!(parsed.len(), b.indices.len());
            for (raw, index) in parsed.iter().zip(&b.indices) {
                assert_eq!(*index, next);
                assert_eq!(raw, &records[next as usize]);
                next += 1;
            }
        }
        assert_eq!(next, 4000);
        assert_eq!(batches[0].indices.len(), 1000);
        assert!(
            batches
                .iter()
                .any(|b| b.indices.len() < 1000 && b.body.len() > MAX_BATCH_BYTES - 10_000)
        );
    }

    #[test]
    fn test_record_that_exactly_fills_the_body_fits() {
        let max = 100;
        let record = format!(r#""{}""#, "z".repeat(max - PREFIX.len() - SUFFIX.len() - 2));
        let builder = BatchBuilder::new(10, max);
        assert!(builder.fits_alone(record.len()));
        assert!(!builder.fits_alone(record.len() + 1));
        let batches = batch_all(&[record.clone(), record], 10, max);
        assert_eq!(batches.len(), 2);
        assert!(batches.iter().all(|b| b.body.len() == max));
    }

    #[test]
    fn test_records_body_concatenates_byte_exact() {
        let records = [r#"{"a" : 1.0E3}"#, r#"{ "b":[1, 2] }"#];
        assert_eq!(
            records_body(&records),
            br#"{"Records":[{"a" : 1.0E3},{ "b":[1, 2] }]}"#.to_vec()
        );
        assert_eq!(records_body::<&str>(&[]), b"{\"Records\":[]}".to_vec());
    }

    proptest! {
        #[test]
        fn test_batching_never_exceeds_limits(
            sizes in proptest::collection::vec(0usize..300, 0..200),
            max_records in 1usize..20,
            max_bytes in 320usize..2000,
        ) {
            let records: Vec<String> = sizes.iter().map(|n| format!("\"{}\"", "q".repeat(*n))).collect();
            let batches = batch_all(&records, max_records, max_bytes);
            let mut next = 0u64;
            for b in &batches {
                prop_assert!(!b.indices.is_empty());
                prop_assert!(b.indices.len() <= max_records);
                prop_assert!(b.body.len() <= max_bytes);
                let parsed = records_in(&b.body);
                prop_assert_eq!(parsed.len(), b.indices.len());
                for (raw, index) in parsed.iter().zip(&b.indices) {
                    prop_assert_eq!(*index, next);
                    prop_assert_eq!(raw, &records[next as usize]);
                    next += 1;
                }
            }
            prop_assert_eq!(next as usize, records.len());
        }
    }
}
