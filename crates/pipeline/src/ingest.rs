//! Ingest: validate, deduplicate, make durable, acknowledge.

use std::collections::HashSet;
use std::sync::Arc;

use cairn_model::record::{IngestDefaults, normalize_record};
use cairn_wal::Wal;

use crate::dedup::DedupIndex;
use crate::envelope::{encode_record_into, event_id_hash};
use crate::metrics::Metrics;
use crate::{Error, HeadNotifier, now_ms};

/// The most records one ingest request may carry.
pub const MAX_RECORDS_PER_REQUEST: usize = 1000;

/// Who may be a record's recipient, and the defaults for records that say nothing.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The server's account: the default recipient.
    pub account_id: String,
    /// The server's region: the default `awsRegion`.
    pub region: String,
    /// The organization's accounts (management and members), when one is configured.
    pub organization_accounts: HashSet<String>,
}

impl IngestConfig {
    fn recipient_allowed(&self, account: &str) -> bool {
        account == self.account_id || self.organization_accounts.contains(account)
    }
}

/// One refused record of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    /// Its position in the request.
    pub index: usize,
    /// The error code (`FieldNotFound`, `InvalidData`, `InvalidRecipient`, ...).
    pub error_code: String,
    /// The message.
    pub error_message: String,
}

/// What became of a request's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Records accepted (stored now, or duplicates of records already stored).
    pub accepted: usize,
    /// Records refused.
    pub failed: Vec<RecordFailure>,
}

/// The ingest stage.
#[derive(Debug)]
pub struct Ingestor {
    wal: Arc<Wal>,
    dedup: Arc<DedupIndex>,
    config: IngestConfig,
    metrics: Arc<Metrics>,
    head: HeadNotifier,
}

impl Ingestor {
    pub(crate) fn new(
        wal: Arc<Wal>,
        dedup: Arc<DedupIndex>,
        config: IngestConfig,
        metrics: Arc<Metrics>,
        head: HeadNotifier,
    ) -> Self {
        Self {
            wal,
            dedup,
            config,
            metrics,
            head,
        }
    }

    /// Ingests records given as JSON texts. Returns once every accepted record
    /// is durable. Fails as a whole only when nothing could be stored
    /// (the WAL is full or failing); per-record problems are in the outcome.
    pub async fn ingest(&self, records: &[&str]) -> Result<IngestOutcome, Error> {
        let region = self.config.region.clone();
        self.ingest_in_region(records, &region).await
    }

    /// [`Ingestor::ingest`] for a request made in `region` (its SigV4 scope):
    /// records that name no `awsRegion` get that region rather than the
    /// server's default.
    pub async fn ingest_in_region(
        &self,
        records: &[&str],
        region: &str,
    ) -> Result<IngestOutcome, Error> {
        let defaults = IngestDefaults {
            account_id: &self.config.account_id,
            region,
        };
        let mut failed = Vec::new();
        let mut valid = Vec::with_capacity(records.len());
        for (index, raw) in records.iter().enumerate() {
            match normalize_record(raw, &defaults) {
                Ok(record) if !self.config.recipient_allowed(record.recipient_account_id()) => {
                    failed.push(RecordFailure {
                        index,
                        error_code: "InvalidRecipient".to_owned(),
                        error_message: format!(
                            "recipientAccountId {} is neither this account nor a member of its organization.",
                            record.recipient_account_id()
                        ),
                    });
                }
                Ok(record) => valid.push((index, record)),
                Err(e) => failed.push(RecordFailure {
                    index,
                    error_code: e.code.to_owned(),
                    error_message: e.message,
                }),
            }
        }

        let ingest_time = now_ms();
        let ids: Vec<u128> = valid
            .iter()
            .map(|(_, r)| event_id_hash(r.event_id()))
            .collect();
        // One buffer for the whole batch: a WAL payload per record, by
        // offsets; the dedup verdicts pick which are appended.
        let mut buffer = Vec::with_capacity(valid.iter().map(|(_, r)| r.json.len() + 160).sum());
        let mut bounds = Vec::with_capacity(valid.len());
        for ((_, record), id) in valid.iter().zip(&ids) {
            let start = buffer.len();
            encode_record_into(&mut buffer, ingest_time, *id, record);
            bounds.push(start..buffer.len());
        }
        // A reservation may read blocks of the dedup runs, and the append
        // fsyncs: both run on the blocking pool, in one hop.
        let dedup = self.dedup.clone();
        let wal = self.wal.clone();
        let (mut reservation, stored, appended) = tokio::task::spawn_blocking(move || {
            let reservation = dedup.reserve(&ids, ingest_time);
            let slices: Vec<&[u8]> = bounds
                .iter()
                .zip(&reservation.fresh)
                .filter(|(_, fresh)| **fresh)
                .map(|(range, _)| &buffer[range.clone()])
                .collect();
            let stored = slices.len();
            let appended = if slices.is_empty() {
                Ok(None)
            } else {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wal.append(&slices)))
                    .unwrap_or_else(|_| {
                        Err(cairn_wal::Error::Io {
                            path: "wal".into(),
                            source: std::io::Error::other("the append panicked"),
                        })
                    })
                    .map(|receipt| Some(receipt.end_lsn))
            };
            // Settled here, whatever happened, so no ID stays pending.
            dedup.settle(&reservation, appended.is_ok());
            (reservation, stored, appended)
        })
        .await
        .map_err(|e| Error::Internal(format!("ingest task failed: {e}")))?;
        match appended {
            Ok(Some(end_lsn)) => self.head.advance(end_lsn),
            Ok(None) => {}
            Err(e) => {
                let e = Error::from(e);
                if matches!(e, Error::Throttled { .. }) {
                    Metrics::add(&self.metrics.throttled_requests, 1);
                }
                return Err(e);
            }
        }
        // Duplicates of records another request is still storing are only
        // acknowledged once that request's records are durable.
        for position in reservation.wait_for_duplicates().await {
            let (index, _) = valid[position];
            failed.push(RecordFailure {
                index,
                error_code: "InternalFailure".to_owned(),
                error_message: "A concurrent request carrying this eventID failed; retry."
                    .to_owned(),
            });
        }
        failed.sort_by_key(|f| f.index);
        let accepted = records.len() - failed.len();
        Metrics::add(&self.metrics.ingested_records, stored as u64);
        Metrics::add(
            &self.metrics.duplicate_records,
            (accepted - stored.min(accepted)) as u64,
        );
        Metrics::add(&self.metrics.rejected_records, failed.len() as u64);
        Ok(IngestOutcome { accepted, failed })
    }
}
