//! `cairn ingest FILE|DIR|-`: read records, batch them, send them.
//!
//! A blocking thread reads and batches (file I/O and gzip are synchronous);
//! a bounded channel hands batches to the async side, which keeps at most
//! `concurrency` requests in flight. The channel's bound is what keeps memory
//! bounded when the server is slower than the disk.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::batch::{Batch, BatchBuilder, MAX_BATCH_BYTES, MAX_RECORDS_PER_BATCH};
use crate::client::IngestClient;
use crate::dispatch::{Dispatcher, Next, RecordFailure};
use crate::error::{Error, Result};
use crate::input::{IngestSource, ReadLimits, RecordSink, read_source};
use crate::progress::Progress;

/// How `ingest_source` batches and sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOptions {
    /// Records per request, 1 to 1000 (the server's limit).
    pub max_records_per_batch: usize,
    /// Uncompressed body bytes per request, 1 KiB to 5 MiB (the server's limit).
    pub max_batch_bytes: usize,
    /// Requests in flight at once (1 to 256).
    pub concurrency: usize,
    /// Cap on each gzip stream's decompressed size and on a document loaded whole.
    pub max_decompressed_bytes: u64,
    /// How many failures to keep in detail (the lowest input positions); all
    /// are counted by code regardless.
    pub max_failure_details: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            max_records_per_batch: MAX_RECORDS_PER_BATCH,
            max_batch_bytes: MAX_BATCH_BYTES,
            concurrency: 4,
            max_decompressed_bytes: 1 << 30,
            max_failure_details: 1000,
        }
    }
}

impl IngestOptions {
    fn validate(&self) -> Result<()> {
        let check = |ok: bool, name: &'static str, reason: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::InvalidOption {
                    name,
                    reason: reason.to_owned(),
                })
            }
        };
        check(
            (1..=MAX_RECORDS_PER_BATCH).contains(&self.max_records_per_batch),
            "max_records_per_batch",
            "must be between 1 and 1000",
        )?;
        check(
            (1024..=MAX_BATCH_BYTES).contains(&self.max_batch_bytes),
            "max_batch_bytes",
            "must be between 1 KiB and 5 MiB",
        )?;
        check(
            (1..=256).contains(&self.concurrency),
            "concurrency",
            "must be between 1 and 256",
        )?;
        check(
            self.max_decompressed_bytes > 0,
            "max_decompressed_bytes",
            "must be positive",
        )
    }
}

/// What an ingest run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestSummary {
    /// Records read from the input (sent or refused locally).
    pub records: u64,
    /// Records sent to the server and answered.
    pub sent: u64,
    /// Records the server accepted.
    pub accepted: u64,
    /// Records not accepted: refused by the server or locally.
    pub failed: u64,
    /// The first failures by input position (at most `max_failure_details`).
    pub failures: Vec<RecordFailure>,
    /// Every failure counted by error code.
    pub failures_by_code: BTreeMap<String, u64>,
    /// Requests sent.
    pub batches: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// What the reader thread hands over.
enum Item {
    Total(u64),
    Batch(Batch),
    Failure(RecordFailure),
}

/// Reads `source`, sends it in batches, and reports what became of every record.
///
/// Stops at the first request that fails as a whole (after retries), or at
/// the first input error; records refused one by one do not stop it.
pub async fn ingest_source(
    client: &IngestClient,
    source: IngestSource,
    options: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestSummary> {
    options.validate()?;
    let started = Instant::now();
    let (tx, mut rx) = mpsc::channel::<Item>(options.concurrency * 2);
    let limits = ReadLimits {
        max_decompressed_bytes: options.max_decompressed_bytes,
        max_line_bytes: options.max_batch_bytes,
    };
    let (max_records, max_bytes) = (options.max_records_per_batch, options.max_batch_bytes);
    let reader = tokio::task::spawn_blocking(move || {
        let mut sink = ChannelSink {
            builder: BatchBuilder::new(max_records, max_bytes),
            next_index: 0,
            tx,
        };
        read_source(source, &limits, &mut sink)?;
        if let Some(batch) = sink.builder.finish() {
            sink.send(Item::Batch(batch))?;
        }
        Ok::<u64, Error>(sink.next_index)
    });

    let mut dispatcher = Dispatcher::new(
        client.clone(),
        options.concurrency,
        progress,
        options.max_failure_details,
    );
    let sending: Result<()> = async {
        loop {
            match dispatcher.next_or(rx.recv()).await? {
                Next::Answered => {}
                Next::Item(None) => break,
                Next::Item(Some(Item::Total(n))) => progress.add_total(n),
                Next::Item(Some(Item::Batch(batch))) => dispatcher.submit(batch).await?,
                Next::Item(Some(Item::Failure(failure))) => dispatcher.local_failure(failure),
            }
        }
        dispatcher.drain().await
    }
    .await;
    // Closing the channel stops a reader that is still going at its next
    // batch. After a send failure the reader is not waited for: it may be
    // blocked reading a pipe that never ends.
    drop(rx);
    sending?;
    let records = reader
        .await
        .map_err(|e| Error::Task(format!("input reader: {e}")))??;
    let mut tally = dispatcher.tally;
    Ok(IngestSummary {
        records,
        sent: tally.sent,
        accepted: tally.accepted,
        failed: tally.failed,
        failures: tally.take_failures(),
        failures_by_code: std::mem::take(&mut tally.failures_by_code),
        batches: tally.batches,
        elapsed: started.elapsed(),
    })
}

/// Numbers records, batches them and sends batches and local refusals on.
struct ChannelSink {
    builder: BatchBuilder,
    next_index: u64,
    tx: mpsc::Sender<Item>,
}

impl ChannelSink {
    fn send(&self, item: Item) -> Result<()> {
        self.tx
            .blocking_send(item)
            .map_err(|_| Error::Task("ingest stopped before the input was read".to_owned()))
    }

    fn take_index(&mut self) -> u64 {
        let index = self.next_index;
        self.next_index += 1;
        index
    }
}

impl RecordSink for ChannelSink {
    fn total(&mut self, records: u64) -> Result<()> {
        self.send(Item::Total(records))
    }

    fn record(&mut self, text: &str) -> Result<()> {
        let index = self.take_index();
        if !self.builder.fits_alone(text.len()) {
            return self.send(Item::Failure(RecordFailure {
                index,
                error_code: "RecordTooLarge".to_owned(),
                error_message: format!(
                    "the record is {} bytes; a request body holds at most the batch size",
                    text.len()
                ),
            }));
        }
        match self.builder.push(index, text) {
            Some(batch) => self.send(Item::Batch(batch)),
            None => Ok(()),
        }
    }

    fn invalid(&mut self, code: &'static str, message: String) -> Result<()> {
        let index = self.take_index();
        self.send(Item::Failure(RecordFailure {
            index,
            error_code: code.to_owned(),
            error_message: message,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::client::tests::{client_for, config_for};
    use crate::input::tests::{ODD_RECORDS, gzip};
    use crate::progress::tests::Counting;
    use crate::testserver::{Reply, TestServer, answer_like_cairn, records_in};

    #[tokio::test]
    async fn test_ingest_json_lines_batches_and_maps_failures_to_input_positions() {
        let server = TestServer::start(answer_like_cairn).await;
        let client = client_for(&server);
        // 2500 lines: every 100th lacks eventTime, line 1234 is not JSON.
        let mut text = String::new();
        for i in 0..2500 {
            if i == 1234 {
                text.push_str("{not json\n");
            } else if i % 100 == 7 {
                text.push_str(&format!("{{\"n\":{i}}}\n"));
            } else {
                text.push_str(&format!(
                    "{{\"eventTime\":\"2026-11-01T00:00:00Z\",\"n\":{i}}}\n"
                ));
            }
        }
        let progress = Counting::default();
        let options = IngestOptions {
            max_records_per_batch: 300,
            concurrency: 3,
            max_failure_details: 10,
            ..IngestOptions::default()
        };
        let source = IngestSource::Reader {
            name: "lines".into(),
            reader: Box::new(Cursor::new(text.into_bytes())),
        };
        let summary = ingest_source(&client, source, &options, &progress)
            .await
            .unwrap();
        assert_eq!(summary.records, 2500);
        assert_eq!(summary.sent, 2499);
        assert_eq!(summary.failed, 26);
        assert_eq!(summary.accepted, 2499 - 25);
        assert_eq!(summary.failures_by_code["FieldNotFound"], 25);
        assert_eq!(summary.failures_by_code["InvalidData"], 1);
        let kept: Vec<u64> = summary.failures.iter().map(|f| f.index).collect();
        assert_eq!(kept, [7, 107, 207, 307, 407, 507, 607, 707, 807, 907]);
        assert_eq!(summary.batches, 9);
        assert_eq!(progress.done.load(Ordering::Relaxed), 2500);
        assert_eq!(progress.total.load(Ordering::Relaxed), 0);
        for request in server.requests() {
            assert!(records_in(&request.body).len() <= 300);
        }
        let mut sent = server.records_received();
        sent.sort();
        assert_eq!(sent.len(), 2499);
    }

    #[tokio::test]
    async fn test_ingest_gzip_log_file_is_byte_exact_and_reports_total() {
        let server = TestServer::start(answer_like_cairn).await;
        let client = client_for(&server);
        let doc = format!("{{\"Records\":[{}]}}", ODD_RECORDS.join(","));
        let progress = Counting::default();
        let source = IngestSource::Reader {
            name: "file.json.gz".into(),
            reader: Box::new(Cursor::new(gzip(doc.as_bytes()))),
        };
        let summary = ingest_source(&client, source, &IngestOptions::default(), &progress)
            .await
            .unwrap();
        assert_eq!(server.records_received(), ODD_RECORDS);
        assert_eq!((summary.sent, summary.accepted, summary.failed), (3, 1, 2));
        assert_eq!(progress.total.load(Ordering::Relaxed), 3);
        assert_eq!(progress.done.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn test_ingest_directory_sends_every_file_in_order() {
        let server = TestServer::start(answer_like_cairn).await;
        let client = client_for(&server);
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        for f in 0..5 {
            let records: Vec<String> = (0..30)
                .map(|i| {
                    format!("{{\"eventTime\":\"2026-11-01T00:00:00Z\",\"file\":{f},\"i\":{i}}}")
                })
                .collect();
            let doc = format!("{{\"Records\":[{}]}}", records.join(","));
            let path = dir.path().join(format!("d{}/f{f}.json.gz", f % 2));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, gzip(doc.as_bytes())).unwrap();
            expected.push((path, records));
        }
        expected.sort();
        let expected: Vec<String> = expected.into_iter().flat_map(|(_, r)| r).collect();
        let options = IngestOptions {
            concurrency: 1,
            max_records_per_batch: 40,
            ..IngestOptions::default()
        };
        let summary = ingest_source(
            &client,
            IngestSource::Path(dir.path().to_owned()),
            &options,
            &crate::NoProgress,
        )
        .await
        .unwrap();
        assert_eq!(summary.accepted, 150);
        // With one request in flight, requests arrive in input order.
        assert_eq!(server.records_received(), expected);
        assert_eq!(summary.batches, 4);
    }

    #[tokio::test]
    async fn test_ingest_respects_the_body_size_limit() {
        let server = TestServer::start(answer_like_cairn).await;
        let client = client_for(&server);
        let pad = "p".repeat(2000);
        let text: String = (0..100)
            .map(|i| format!("{{\"eventTime\":\"x\",\"i\":{i},\"pad\":\"{pad}\"}}\n"))
            .collect();
        let huge = format!(
            "{{\"eventTime\":\"x\",\"pad\":\"{}\"}}\n",
            "h".repeat(20_000)
        );
        let options = IngestOptions {
            max_batch_bytes: 10_000,
            ..IngestOptions::default()
        };
        let source = IngestSource::Reader {
            name: "big".into(),
            reader: Box::new(Cursor::new(format!("{text}{huge}").into_bytes())),
        };
        let summary = ingest_source(&client, source, &options, &crate::NoProgress)
            .await
            .unwrap();
        assert_eq!(summary.sent, 100);
        assert_eq!(summary.failures_by_code["RecordTooLarge"], 1);
        assert_eq!(summary.failures[0].index, 100);
        for request in server.requests() {
            assert!(request.body.len() <= 10_000, "{}", request.body.len());
        }
    }

    #[tokio::test]
    async fn test_ingest_stops_at_a_request_that_fails_as_a_whole() {
        let server = TestServer::start(|_, _| {
            Reply::json(
                403,
                r#"{"__type":"InvalidSignatureException","message":"Signature mismatch"}"#,
            )
        })
        .await;
        let client = client_for(&server);
        let text = "{\"eventTime\":\"x\"}\n".repeat(50_000);
        let options = IngestOptions {
            max_records_per_batch: 10,
            ..IngestOptions::default()
        };
        let source = IngestSource::Reader {
            name: "lines".into(),
            reader: Box::new(Cursor::new(text.into_bytes())),
        };
        let err = ingest_source(&client, source, &options, &crate::NoProgress)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Service { code, .. } if code == "InvalidSignatureException"),
            "{err:?}"
        );
        // The reader stopped early instead of sending all 5000 batches.
        assert!(server.requests().len() < 100, "{}", server.requests().len());
    }

    #[tokio::test]
    async fn test_ingest_input_error_is_reported() {
        let server = TestServer::start(answer_like_cairn).await;
        let client = client_for(&server);
        let source = IngestSource::Reader {
            name: "broken.json".into(),
            reader: Box::new(Cursor::new(b"{\"Records\":[{\"a\":1},".to_vec())),
        };
        let err = ingest_source(
            &client,
            source,
            &IngestOptions::default(),
            &crate::NoProgress,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn test_ingest_options_are_validated() {
        let client = IngestClient::new(config_for("http://127.0.0.1:9")).unwrap();
        for options in [
            IngestOptions {
                max_records_per_batch: 1001,
                ..IngestOptions::default()
            },
            IngestOptions {
                max_batch_bytes: MAX_BATCH_BYTES + 1,
                ..IngestOptions::default()
            },
            IngestOptions {
                concurrency: 0,
                ..IngestOptions::default()
            },
        ] {
            let source = IngestSource::Reader {
                name: "x".into(),
                reader: Box::new(Cursor::new(Vec::new())),
            };
            let err = ingest_source(&client, source, &options, &crate::NoProgress)
                .await
                .unwrap_err();
            assert!(matches!(err, Error::InvalidOption { .. }), "{err:?}");
        }
    }
}
