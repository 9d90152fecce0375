//! Ingest: validate, deduplicate, make durable, acknowledge.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use bytes::Bytes;
use cairn_model::json_limits::ScannedRecord;
use cairn_model::record::{
    IngestDefaults, NormalizedRecord, RecordError, normalize_record, normalize_scanned,
};
use cairn_wal::{AppendReceipt, Wal, WalRecord};
use chrono::{DateTime, Utc};

use crate::dedup::{DedupIndex, Reservation};
use crate::envelope::{encode_record_into, event_id_hash};
use crate::metrics::Metrics;
use crate::route::{Fresh, Hub};
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
    config: IngestConfig,
    metrics: Arc<Metrics>,
    committer: Committer,
}

impl Ingestor {
    pub(crate) fn new(
        wal: Arc<Wal>,
        dedup: Arc<DedupIndex>,
        config: IngestConfig,
        metrics: Arc<Metrics>,
        head: HeadNotifier,
        hub: Arc<Hub>,
    ) -> Result<Self, Error> {
        Ok(Self {
            config,
            metrics,
            committer: Committer::start(wal, dedup, head, hub)?,
        })
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
        let validated = self.validate(records, region);
        self.commit(validated).await
    }

    /// Validates records given as JSON texts, as they would be ingested in
    /// `region`, and makes them ready for [`Ingestor::commit`].
    pub fn validate(&self, records: &[&str], region: &str) -> Validated {
        self.validate_with(records, region, |raw, defaults| {
            normalize_record(raw, defaults)
        })
    }

    /// [`Ingestor::validate`] for records found by
    /// [`cairn_model::json_limits::split_log_file`] (their limits checked).
    pub fn validate_scanned(&self, records: &[ScannedRecord<'_>], region: &str) -> Validated {
        self.validate_with(records, region, normalize_scanned)
    }

    fn validate_with<'a, T>(
        &'a self,
        records: &'a [T],
        region: &'a str,
        normalize: impl Fn(&'a T, &IngestDefaults<'a>) -> Result<NormalizedRecord<'a>, RecordError>,
    ) -> Validated {
        // Counted until the records are handed to the committer, which waits
        // a little for requests it knows are on their way.
        let arriving = self.committer.arriving();
        let defaults = IngestDefaults {
            account_id: &self.config.account_id,
            region,
        };
        let mut failed = Vec::new();
        let mut not_parsed = false;
        let mut valid = Vec::with_capacity(records.len());
        for (index, raw) in records.iter().enumerate() {
            match normalize(raw, &defaults) {
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
                Err(e) => {
                    not_parsed |= e.not_parsed;
                    failed.push(RecordFailure {
                        index,
                        error_code: e.code.to_owned(),
                        error_message: e.message,
                    });
                }
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
        Validated {
            batch: Batch {
                ids,
                buffer,
                bounds,
                event_times: valid.iter().map(|(_, r)| r.event_time).collect(),
                ingest_time,
            },
            positions: valid.iter().map(|(index, _)| *index).collect(),
            failed,
            count: records.len(),
            not_parsed,
            _arriving: arriving,
        }
    }

    /// Stores validated records: returns once every accepted record is
    /// durable. Fails as a whole only when nothing could be stored (the WAL
    /// is full or failing); per-record problems are in the outcome.
    pub async fn commit(&self, validated: Validated) -> Result<IngestOutcome, Error> {
        let Validated {
            batch,
            positions,
            mut failed,
            count,
            not_parsed: _,
            _arriving: arriving,
        } = validated;
        // The committer thread reserves the IDs (which may read blocks of the
        // dedup runs) and appends (which fsyncs), for every request waiting,
        // in one WAL append and one fsync.
        let (reply, committed) = oneshot::channel();
        let commit = Commit { batch, reply };
        self.committer.send(commit)?;
        drop(arriving);
        let Committed {
            mut reservation,
            stored,
            appended,
        } = committed
            .await
            .map_err(|_| Error::Internal("the ingest committer stopped".to_owned()))?;
        match appended {
            Ok(()) => {}
            Err(e) => {
                if matches!(e, Error::Throttled { .. }) {
                    Metrics::add(&self.metrics.throttled_requests, 1);
                }
                return Err(e);
            }
        }
        // Duplicates of records another request is still storing are only
        // acknowledged once that request's records are durable.
        for position in reservation.wait_for_duplicates().await {
            failed.push(RecordFailure {
                index: positions[position],
                error_code: "InternalFailure".to_owned(),
                error_message: "A concurrent request carrying this eventID failed; retry."
                    .to_owned(),
            });
        }
        failed.sort_by_key(|f| f.index);
        let accepted = count - failed.len();
        Metrics::add(&self.metrics.ingested_records, stored as u64);
        Metrics::add(
            &self.metrics.duplicate_records,
            (accepted - stored.min(accepted)) as u64,
        );
        Metrics::add(&self.metrics.rejected_records, failed.len() as u64);
        Ok(IngestOutcome { accepted, failed })
    }
}

/// A request's records, validated and encoded for the WAL, not yet stored
/// ([`Ingestor::commit`] stores them).
pub struct Validated {
    batch: Batch,
    /// The request's index of each accepted record.
    positions: Vec<usize>,
    failed: Vec<RecordFailure>,
    count: usize,
    not_parsed: bool,
    _arriving: Arriving,
}

impl Validated {
    /// Whether a record's text did not parse as a record (see
    /// [`cairn_model::record::RecordError::not_parsed`]).
    pub fn holds_unparsed_records(&self) -> bool {
        self.not_parsed
    }
}

impl std::fmt::Debug for Validated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validated")
            .field("records", &self.count)
            .field("accepted", &self.positions.len())
            .field("failed", &self.failed.len())
            .finish()
    }
}

/// One request's accepted records encoded for the WAL: a payload per record,
/// by offsets into one buffer, and their eventID hashes.
struct Batch {
    ids: Vec<u128>,
    buffer: Vec<u8>,
    bounds: Vec<Range<usize>>,
    /// Each record's `eventTime`, parsed: the router needs it and need not
    /// parse it again for records it takes from memory.
    event_times: Vec<DateTime<Utc>>,
    ingest_time: u64,
}

/// A [`Batch`] on its way to the committer, with where its answer goes.
struct Commit {
    batch: Batch,
    reply: oneshot::Sender<Committed>,
}

/// What became of a [`Commit`].
struct Committed {
    /// Which records were new; duplicates of records another request is
    /// still storing are waited for by the caller.
    reservation: Reservation,
    /// How many records were appended.
    stored: usize,
    /// Whether they are durable.
    appended: Result<(), Error>,
}

/// Requests waiting when the committer looks are committed together, up to
/// this many: one WAL append and one fsync for all of them.
const MAX_COMMITS_PER_GROUP: usize = 64;

/// A group stops growing once its records take this many bytes: one append
/// gathers its frames in memory before writing them.
const MAX_GROUP_BYTES: usize = 16 * 1024 * 1024;

/// How long the committer waits for requests still being validated before
/// it commits the ones it has: an fsync costs more CPU than a request of a
/// hundred records takes to validate, so sharing one is worth a short wait.
/// It waits only while some request is on its way.
const MAX_COMMIT_WAIT: Duration = Duration::from_millis(1);

/// The thread that makes ingested records durable. Requests hand it their
/// records and wait for its answer without holding a thread; it takes every
/// request waiting at once, reserves their eventIDs, appends all new records
/// in one WAL append (one write, one fsync) and answers each. One long-lived
/// thread instead of a blocking-pool hop per request: fewer thread wake-ups,
/// and the requests that arrive during an fsync share the next one.
struct Committer {
    queue: Option<mpsc::Sender<Commit>>,
    /// Requests being validated, not yet handed over.
    arriving: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

/// Counts a request as on its way to the committer while it lives.
struct Arriving(Arc<AtomicUsize>);

impl Drop for Arriving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Committer {
    fn start(
        wal: Arc<Wal>,
        dedup: Arc<DedupIndex>,
        head: HeadNotifier,
        hub: Arc<Hub>,
    ) -> Result<Self, Error> {
        let (queue, waiting) = mpsc::channel::<Commit>();
        let arriving = Arc::new(AtomicUsize::new(0));
        let on_the_way = arriving.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-ingest".to_owned())
            .spawn(move || {
                while let Ok(first) = waiting.recv() {
                    let mut bytes = first.batch.buffer.len();
                    let mut group = vec![first];
                    let deadline = Instant::now() + MAX_COMMIT_WAIT;
                    while group.len() < MAX_COMMITS_PER_GROUP && bytes < MAX_GROUP_BYTES {
                        let next = match waiting.try_recv() {
                            Ok(commit) => Some(commit),
                            Err(_) if on_the_way.load(Ordering::Acquire) == 0 => None,
                            Err(_) => deadline
                                .checked_duration_since(Instant::now())
                                .and_then(|left| waiting.recv_timeout(left).ok()),
                        };
                        match next {
                            Some(commit) => {
                                bytes += commit.batch.buffer.len();
                                group.push(commit);
                            }
                            None => break,
                        }
                    }
                    // A panic answers the group's requests with an error (their
                    // replies are dropped) and leaves the thread serving the next.
                    let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        commit_group(&wal, &dedup, &head, &hub, group)
                    }));
                    if committed.is_err() {
                        tracing::error!("committing ingested records panicked");
                    }
                }
            })
            .map_err(|source| Error::Io {
                context: "starting the ingest committer".to_owned(),
                source,
            })?;
        Ok(Self {
            queue: Some(queue),
            arriving,
            thread: Some(thread),
        })
    }

    /// Counts a request as on its way until the returned guard is dropped.
    fn arriving(&self) -> Arriving {
        self.arriving.fetch_add(1, Ordering::AcqRel);
        Arriving(self.arriving.clone())
    }

    fn send(&self, commit: Commit) -> Result<(), Error> {
        self.queue
            .as_ref()
            .and_then(|queue| queue.send(commit).ok())
            .ok_or_else(|| Error::Internal("the ingest committer stopped".to_owned()))
    }
}

impl Drop for Committer {
    /// Lets the thread finish the group in hand and stop, so the WAL it
    /// holds is closed before the pipeline is gone.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

/// Commits a group of requests: reserves each one's eventIDs, appends the
/// new records of all of them at once, settles every reservation (whatever
/// happened, so no ID stays pending) and answers each request.
fn commit_group(
    wal: &Wal,
    dedup: &DedupIndex,
    head: &HeadNotifier,
    hub: &Hub,
    mut group: Vec<Commit>,
) {
    let reservations: Vec<Reservation> = group
        .iter()
        .map(|c| dedup.reserve(&c.batch.ids, c.batch.ingest_time))
        .collect();
    let mut stored = Vec::with_capacity(group.len());
    let mut slices: Vec<&[u8]> = Vec::new();
    for (commit, reservation) in group.iter().zip(&reservations) {
        let before = slices.len();
        slices.extend(
            commit
                .batch
                .bounds
                .iter()
                .zip(&reservation.fresh)
                .filter(|(_, fresh)| **fresh)
                .map(|(range, _)| &commit.batch.buffer[range.clone()]),
        );
        stored.push(slices.len() - before);
    }
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
            .map(Some)
    };
    drop(slices);
    for reservation in &reservations {
        dedup.settle(reservation, appended.is_ok());
    }
    let failure = match appended {
        Ok(Some(receipt)) => {
            // Before the head moves, so the router woken by it finds them.
            hub.offer(appended_records(&mut group, &reservations, &receipt));
            head.advance(receipt.end_lsn);
            None
        }
        Ok(None) => None,
        Err(e) => Some(Error::from(e)),
    };
    for ((commit, reservation), stored) in group.into_iter().zip(reservations).zip(stored) {
        let appended = match &failure {
            None => Ok(()),
            Some(e) => Err(shared(e)),
        };
        // A request that went away no longer needs its answer.
        let _ = commit.reply.send(Committed {
            reservation,
            stored,
            appended,
        });
    }
}

/// The records a group appended, as the WAL would read them back: each
/// payload a slice of the buffer its request encoded (taken from the group,
/// which needs it no more), with its parsed `eventTime`. Empty if the receipt
/// does not match the records (the router then reads them from the WAL).
fn appended_records(
    group: &mut [Commit],
    reservations: &[Reservation],
    receipt: &AppendReceipt,
) -> Vec<Fresh> {
    let mut records = Vec::with_capacity(receipt.lsns.len());
    // Each record's LSN with the next one's (the last one's is the end).
    let next_lsns = receipt
        .lsns
        .iter()
        .skip(1)
        .copied()
        .chain(std::iter::once(receipt.end_lsn));
    let mut positions = receipt.lsns.iter().copied().zip(next_lsns);
    for (commit, reservation) in group.iter_mut().zip(reservations) {
        let buffer = Bytes::from(std::mem::take(&mut commit.batch.buffer));
        let fresh = commit
            .batch
            .bounds
            .iter()
            .zip(&commit.batch.event_times)
            .zip(&reservation.fresh)
            .filter(|(_, fresh)| **fresh);
        for ((range, event_time), _) in fresh {
            let Some((lsn, next_lsn)) = positions.next() else {
                return Vec::new();
            };
            records.push(Fresh {
                record: WalRecord {
                    lsn,
                    next_lsn,
                    payload: buffer.slice(range.clone()),
                },
                event_time: *event_time,
            });
        }
    }
    if records.len() == receipt.lsns.len() {
        records
    } else {
        Vec::new()
    }
}

/// The failure of a group's append, for each request of the group.
fn shared(e: &Error) -> Error {
    match e {
        Error::Throttled { used, limit } => Error::Throttled {
            used: *used,
            limit: *limit,
        },
        other => Error::Internal(other.to_string()),
    }
}
