//! The consumer runtime: one generic WAL consumer that every sink runs in.
//!
//! A [`Sink`] says what to do with each routed record and how to deliver what
//! it gathered; the runtime does everything else, the same way for every sink:
//!
//! * **reading and waiting**: records come parsed from the router's hub (or
//!   from the sink's own reads while it is behind the hub's window, see
//!   [`crate::route`]); the runtime waits for new records, for the sink's
//!   flush deadline and for its periodic work ([`Sink::tick`]), whichever
//!   comes first, on the sink's own thread;
//! * **the checkpoint**: a versioned document saved with the sink's WAL cursor
//!   ([`Checkpoint`]); before delivering, the runtime commits the *old* cursor
//!   with the sink's **intent** ([`Sink::plan`]); after, the new cursor without
//!   it. A sink restarting with an intent is fed the same WAL range again and
//!   asked to deliver the same intent ([`Sink::deliver`] with `recovering`):
//!   sinks whose output is deterministic in its records therefore deliver
//!   exactly once across crashes;
//! * **one retry policy**: an error is [`ErrorKind::Retriable`] (network,
//!   5xx, I/O, a busy database: retried with exponential backoff and jitter,
//!   capped) or [`ErrorKind::Permanent`] (a missing bucket, access denied:
//!   nothing changes until the configuration does). A permanent error is
//!   reported and the sink **parks**: it tries again when the pipeline signals
//!   a configuration change ([`Signal::notify`]) or after a long recheck
//!   period, never in a hot loop;
//! * **status**: every failure and every success is handed to
//!   [`Sink::report`] (the trail sink turns them into GetTrailStatus's
//!   `LatestDeliveryError` and attempt times).
//!
//! * **the quarantine**: an error that names one part of a delivery (a file,
//!   a record) as undeliverable for good ([`ErrorKind::Undeliverable`]: an
//!   object key the store refuses, a file too large) does not stall the
//!   sink. The runtime takes that part out of the delivery
//!   ([`Sink::set_aside`]), writes its records with the reason to the
//!   quarantine ([`crate::quarantine`]), reports it ([`Report::Quarantined`])
//!   and delivers the rest; then the cursor moves on as after any delivery.
//!   The part is set aside *before* the cursor commit, under a name fixed by
//!   the delivery, and a recovering delivery first takes out every part
//!   already set aside: after a crash at any point a record ends up either
//!   delivered or quarantined, never both, never neither. A record a sink
//!   refuses at [`Sink::accept`] ([`Accept::SetAside`]) is set aside the same
//!   way, alone.

use bytes::Bytes;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use cairn_wal::{Lsn, Wal};

use crate::quarantine::Quarantine;
use crate::route::{Chunk, Hub, HubReader, Item, Lookup, Routed};

/// Whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A network or server error, an I/O error, a busy database: retry with backoff.
    Retriable,
    /// Stays so until the configuration changes (a missing bucket, access
    /// denied, a corrupt document): report it and wait for a change.
    Permanent,
    /// One part of a delivery ([`SinkError::part`]: a file, a record) can
    /// never be delivered, whatever is retried (an object key the store
    /// refuses, a file too large): it is set aside in the quarantine and
    /// the rest is delivered.
    Undeliverable,
}

/// A sink's failure, with its kind.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// Whether retrying can help.
    pub kind: ErrorKind,
    /// What went wrong, as status reports show it.
    pub message: String,
    /// The part of the delivery an [`ErrorKind::Undeliverable`] error is
    /// about, as the sink names it (a log file's key).
    pub part: Option<String>,
}

impl SinkError {
    /// A retriable failure.
    pub fn retriable(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Retriable,
            message: message.into(),
            part: None,
        }
    }

    /// `part` of the delivery can never be delivered.
    pub fn undeliverable(part: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Undeliverable,
            message: message.into(),
            part: Some(part.into()),
        }
    }

    /// A permanent failure.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Permanent,
            message: message.into(),
            part: None,
        }
    }
}

impl From<cairn_store::Error> for SinkError {
    fn from(e: cairn_store::Error) -> Self {
        if e.is_transient() {
            Self::retriable(e.to_string())
        } else {
            Self::permanent(e.to_string())
        }
    }
}

impl From<cairn_meta::Error> for SinkError {
    fn from(e: cairn_meta::Error) -> Self {
        if e.is_retriable() {
            Self::retriable(e.to_string())
        } else {
            Self::permanent(e.to_string())
        }
    }
}

impl From<cairn_wal::Error> for SinkError {
    fn from(e: cairn_wal::Error) -> Self {
        match e {
            // Damage and positions that do not exist stay so.
            cairn_wal::Error::Corruption { .. }
            | cairn_wal::Error::InvalidPosition { .. }
            | cairn_wal::Error::Truncated { .. }
            | cairn_wal::Error::UnknownConsumer { .. } => Self::permanent(e.to_string()),
            _ => Self::retriable(e.to_string()),
        }
    }
}

/// What a sink does with one routed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accept {
    /// Not for this sink (or taken without anything to deliver).
    Skip,
    /// Gathered for the next delivery.
    Buffered,
    /// A change for this sink: deliver what was gathered before it, then
    /// [`Sink::apply`] it.
    Barrier,
    /// A record for this sink that it can never deliver (it cannot be
    /// batched): set aside in the quarantine, alone, with this reason.
    SetAside(String),
}

/// What applying a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Go on.
    Continue,
    /// The sink is finished for good (its trail was deleted): the runtime
    /// removes its WAL consumer.
    Finished,
}

/// What the runtime was doing when it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Reading the WAL.
    Read,
    /// [`Sink::plan`].
    Plan,
    /// [`Sink::deliver`].
    Deliver,
    /// [`Sink::apply`].
    Apply,
    /// [`Sink::tick`].
    Tick,
    /// Saving the checkpoint.
    Commit,
    /// Writing to the quarantine.
    Quarantine,
}

/// A status event for [`Sink::report`].
#[derive(Debug)]
pub enum Report<'a> {
    /// A delivery succeeded.
    Delivered,
    /// An attempt failed; `retry_in` is when the next one is due (`None`:
    /// parked until a configuration change).
    Failed {
        /// What failed.
        operation: Operation,
        /// The failure.
        error: &'a SinkError,
        /// Delay before the next attempt.
        retry_in: Option<Duration>,
    },
    /// A part of a delivery (or one record) was set aside in the quarantine;
    /// the rest was delivered. Reported after [`Report::Delivered`].
    Quarantined {
        /// The part, as the sink names it (empty for a record refused at accept).
        part: &'a str,
        /// Why it cannot be delivered.
        reason: &'a str,
        /// How many records it held.
        records: usize,
    },
}

/// A WAL consumer's logic. The runtime calls it from one thread, in WAL order.
///
/// Shaped for the trail sink (with digests), the dedup persister and the
/// sinks to come (a CloudWatch Logs feed, an event-data-store writer, metric
/// evaluation): configuration arrives as [`Accept::Barrier`] changes in the
/// record stream; gathering ([`Sink::accept`]) is separate from delivering
/// ([`Sink::plan`], [`Sink::deliver`]), so partitioning and encoding stay in
/// the sink and the runtime owns the service side (retries, checkpoints).
pub trait Sink: Send + 'static {
    /// What the sink saves with its cursor (its configuration at the cursor).
    type State: Serialize + DeserializeOwned + Default;
    /// What a delivery announces before writing (its file names...).
    type Intent: Serialize + DeserializeOwned + Clone + std::fmt::Debug;
    /// Whether deliveries are announced (an intent checkpoint before each).
    /// A sink whose deliveries are idempotent without one (the dedup
    /// persister appends hashes a reload deduplicates) saves that fsync.
    const ANNOUNCES: bool = true;

    /// The WAL consumer name.
    fn name(&self) -> &str;
    /// Looks at one routed record.
    fn accept(&mut self, entry: &Routed) -> Accept;
    /// Applies a change the sink answered [`Accept::Barrier`] to, after the
    /// records before it were delivered. Retried on error, so it must change
    /// the sink only once it succeeds.
    fn apply(&mut self, entry: &Routed) -> Result<Applied, SinkError>;
    /// The WAL position a delivery ends at (the `to` given to [`Sink::plan`]).
    fn intent_end(intent: &Self::Intent) -> Lsn;
    /// Whether anything is gathered and not yet delivered.
    fn has_pending(&self) -> bool;
    /// Whether the gathered records must be delivered before the next record
    /// (a size bound). Checked after every record.
    fn full(&self) -> bool {
        false
    }
    /// When the gathered records must be delivered at the latest (an
    /// interval), if anything is gathered. Checked after every chunk and
    /// while waiting.
    fn flush_due(&self) -> Option<Instant>;
    /// Freezes what was gathered into a delivery ending at `to` and names it.
    fn plan(&mut self, to: Lsn) -> Result<Self::Intent, SinkError>;
    /// Delivers the planned (or, `recovering`, re-gathered) records under
    /// the intent's names. Called again after a failure: it must be
    /// idempotent, and with `recovering` it must not rewrite what exists.
    fn deliver(&mut self, intent: &Self::Intent, recovering: bool) -> Result<(), SinkError>;
    /// Takes `part` out of the delivery in progress (planned or, when
    /// recovering, re-gathered) and returns its records' exact bytes, in
    /// WAL order; the next [`Sink::deliver`] of the same intent goes on
    /// without it. Called after [`Sink::deliver`] answered an
    /// [`ErrorKind::Undeliverable`] error naming `part`, and before a
    /// recovering delivery for every part already in the quarantine.
    /// `None`: the sink cannot set parts aside, and the error parks it like a
    /// permanent one.
    fn set_aside(&mut self, intent: &Self::Intent, part: &str) -> Option<Vec<Bytes>> {
        let _ = (intent, part);
        None
    }
    /// The state to save with the cursor.
    fn state(&self) -> Self::State;
    /// A status event.
    fn report(&mut self, report: Report<'_>);
    /// When [`Sink::tick`] is next due, if ever.
    fn next_tick(&self) -> Option<Instant> {
        None
    }
    /// Periodic work (digests). Retried with the same policy on error.
    fn tick(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The checkpoint version this build writes.
pub const CHECKPOINT_VERSION: u32 = 1;

/// What the runtime saves with a sink's WAL cursor (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint<S, I> {
    /// [`CHECKPOINT_VERSION`].
    pub v: u32,
    /// The sink's state at the cursor.
    pub state: S,
    /// A delivery announced but maybe not finished.
    pub intent: Option<I>,
}

/// Why a checkpoint cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Written by a version this build does not know.
    #[error(
        "the checkpoint of WAL consumer {consumer:?} has version {version}; this build reads version {CHECKPOINT_VERSION}. Run the Cairn version that wrote it, or remove the consumer to replay it from scratch"
    )]
    UnknownVersion {
        /// The consumer.
        consumer: String,
        /// Its version.
        version: u64,
    },
    /// Not a checkpoint.
    #[error("the checkpoint of WAL consumer {consumer:?} is corrupt: {reason}")]
    Corrupt {
        /// The consumer.
        consumer: String,
        /// Why.
        reason: String,
    },
}

/// Encodes a checkpoint.
pub fn encode_checkpoint<S: Serialize, I: Serialize>(
    state: &S,
    intent: Option<&I>,
) -> Result<Vec<u8>, SinkError> {
    serde_json::to_vec(&Checkpoint {
        v: CHECKPOINT_VERSION,
        state,
        intent,
    })
    .map_err(|e| SinkError::permanent(format!("cannot encode a checkpoint: {e}")))
}

/// Decodes a checkpoint. A document without `v` is the unversioned form that
/// came before (the state's fields and `intent` side by side), read as such.
pub fn decode_checkpoint<S: DeserializeOwned + Default, I: DeserializeOwned>(
    consumer: &str,
    bytes: Option<&[u8]>,
) -> Result<Checkpoint<S, I>, CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        consumer: consumer.to_owned(),
        reason,
    };
    let Some(bytes) = bytes else {
        return Ok(Checkpoint {
            v: CHECKPOINT_VERSION,
            state: S::default(),
            intent: None,
        });
    };
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let Some(object) = value.as_object_mut() else {
        return Err(corrupt("not a JSON object".into()));
    };
    match object.get("v").map(|v| v.as_u64()) {
        Some(Some(v)) if v == u64::from(CHECKPOINT_VERSION) => {
            serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
        }
        Some(Some(version)) => Err(CheckpointError::UnknownVersion {
            consumer: consumer.to_owned(),
            version,
        }),
        Some(None) => Err(corrupt("\"v\" is not a number".into())),
        None => {
            let intent = object.remove("intent").unwrap_or(serde_json::Value::Null);
            Ok(Checkpoint {
                v: CHECKPOINT_VERSION,
                intent: serde_json::from_value(intent).map_err(|e| corrupt(e.to_string()))?,
                state: serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?,
            })
        }
    }
}

/// Exponential backoff with jitter: attempt `n` waits a uniformly random time
/// in `[d/2, d]` where `d = min(cap, base * 2^n)`, so sinks failing together
/// spread out and no wait exceeds the cap.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `base`, never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// The ceiling of the next wait (before jitter).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let low = ceiling / 2;
        let spread = (ceiling - low).as_nanos() as u64;
        low + Duration::from_nanos(rand::rng().random_range(0..=spread))
    }

    /// After a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A flag and a generation counter threads can wait on: shutdown, and
/// "the configuration changed" (which wakes parked sinks).
#[derive(Debug, Default)]
pub struct Signal {
    state: Mutex<(bool, u64)>,
    changed: Condvar,
}

impl Signal {
    fn lock(&self) -> MutexGuard<'_, (bool, u64)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the flag for good and wakes every waiter.
    pub fn set(&self) {
        self.lock().0 = true;
        self.changed.notify_all();
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.lock().0
    }

    /// Bumps the generation and wakes every waiter.
    pub fn notify(&self) {
        self.lock().1 += 1;
        self.changed.notify_all();
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.lock().1
    }

    /// Waits up to `timeout` for the flag or a generation after `seen`.
    /// Returns whether either happened.
    pub fn wait(&self, seen: u64, timeout: Duration) -> bool {
        let state = self.lock();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, timeout, |s| !s.0 && s.1 == seen)
            .unwrap_or_else(|p| p.into_inner());
        state.0 || state.1 != seen
    }
}

/// How the runtime retries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First retry delay of a retriable error.
    pub base: Duration,
    /// Longest retry delay of a retriable error.
    pub cap: Duration,
    /// The longest a sink parked on a permanent error waits before trying
    /// again without a configuration change (a bucket re-created on the
    /// backend). Parks start at `permanent_recheck_first` and double.
    pub permanent_recheck: Duration,
    /// The first park on a permanent error.
    pub permanent_recheck_first: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
            permanent_recheck: Duration::from_secs(300),
            permanent_recheck_first: Duration::from_secs(10),
        }
    }
}

/// What every sink's runtime shares.
#[derive(Debug, Clone)]
pub struct RuntimeContext {
    /// The WAL.
    pub wal: Arc<Wal>,
    /// The router's window.
    pub hub: Arc<Hub>,
    /// Set to stop.
    pub shutdown: Arc<Signal>,
    /// Notified on every configuration change (wakes parked sinks).
    pub changes: Arc<Signal>,
    /// Retries.
    pub retry: RetryPolicy,
    /// Where undeliverable records are set aside.
    pub quarantine: Arc<Quarantine>,
}

/// How a sink's run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SinkExit {
    /// Asked to stop; resumes from its cursor next time.
    Shutdown,
    /// Finished for good; the consumer is gone.
    Deleted,
}

/// One sink running in the runtime.
pub struct Consumer<S: Sink> {
    sink: S,
    ctx: RuntimeContext,
    reader: HubReader,
    /// Cursor as last committed.
    committed: Lsn,
    /// Where reading goes on.
    position: Lsn,
    last_commit: Instant,
    /// An intent found in the checkpoint, to finish first.
    recover: Option<S::Intent>,
    /// How long the next park on a permanent error lasts without a
    /// configuration change: short at first (a bucket re-created on the
    /// backend), doubling up to [`RetryPolicy::permanent_recheck`].
    park_for: Duration,
    /// Periodic work that failed waits for this instant, or (parked on a
    /// permanent error) for a configuration change after this generation.
    tick_retry: Option<(Instant, Option<u64>)>,
    tick_backoff: Backoff,
}

impl<S: Sink> std::fmt::Debug for Consumer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("sink", &self.sink.name())
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl<S: Sink> Consumer<S> {
    /// A consumer resuming `sink` from `cursor`, finishing `intent` first.
    pub fn new(sink: S, ctx: RuntimeContext, cursor: Lsn, intent: Option<S::Intent>) -> Self {
        let reader = ctx.hub.join(cursor);
        let park_for = ctx.retry.permanent_recheck_first;
        let tick_backoff = Backoff::new(ctx.retry.base, ctx.retry.cap);
        Self {
            park_for,
            sink,
            ctx,
            reader,
            committed: cursor,
            position: cursor,
            last_commit: Instant::now(),
            tick_backoff,
            recover: intent,
            tick_retry: None,
        }
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    fn stopping(&self) -> bool {
        self.ctx.shutdown.is_set()
    }

    /// Runs until shutdown or the sink finishes. Call from the sink's own thread.
    pub fn run(mut self) -> SinkExit {
        match self.run_inner() {
            Ok(exit) | Err(exit) => exit,
        }
    }

    fn run_inner(&mut self) -> Result<SinkExit, SinkExit> {
        if let Some(intent) = self.recover.take() {
            self.recover(intent)?;
        }
        loop {
            if self.stopping() {
                return Ok(SinkExit::Shutdown);
            }
            if self.tick_due().is_some_and(|t| Instant::now() >= t) {
                self.run_tick();
            }
            let Some(chunk) = self.next_chunk()? else {
                if self.flush_is_due() {
                    self.flush(self.position)?;
                    continue;
                }
                self.commit_idle_progress();
                let now = Instant::now();
                let mut wait = Duration::from_secs(1);
                for deadline in [self.sink.flush_due(), self.tick_due()]
                    .into_iter()
                    .flatten()
                {
                    wait = wait.min(deadline.saturating_duration_since(now));
                }
                if !wait.is_zero() {
                    self.reader.wait(self.position, wait);
                }
                continue;
            };
            for entry in chunk.from(self.position) {
                if let Some(exit) = self.handle(entry)? {
                    return Ok(exit);
                }
                if self.sink.full() {
                    self.flush(self.position)?;
                }
            }
            if self.flush_is_due() {
                self.flush(self.position)?;
            }
        }
    }

    /// When periodic work is next due: the sink's time, held back after a
    /// failure (until the backoff ends, or a change or the recheck period
    /// after a permanent error).
    fn tick_due(&self) -> Option<Instant> {
        let due = self.sink.next_tick()?;
        Some(match self.tick_retry {
            None => due,
            Some((_, Some(generation))) if self.ctx.changes.generation() != generation => due,
            Some((at, _)) => due.max(at),
        })
    }

    /// Periodic work (digests) runs beside deliveries, never in their way: a
    /// failure is reported and retried later by the same policy while
    /// records go on being delivered.
    fn run_tick(&mut self) {
        match self.sink.tick() {
            Ok(()) => {
                self.tick_backoff.reset();
                self.tick_retry = None;
            }
            Err(error) => {
                let (delay, generation) = match error.kind {
                    ErrorKind::Retriable => (self.tick_backoff.next_delay(), None),
                    ErrorKind::Permanent | ErrorKind::Undeliverable => {
                        self.tick_backoff.reset();
                        (
                            self.ctx.retry.permanent_recheck,
                            Some(self.ctx.changes.generation()),
                        )
                    }
                };
                if !error.message.is_empty() {
                    tracing::warn!(sink = self.sink.name(), kind = ?error.kind, error = %error, "periodic work failed");
                }
                self.sink.report(Report::Failed {
                    operation: Operation::Tick,
                    error: &error,
                    retry_in: generation.is_none().then_some(delay),
                });
                self.tick_retry = Some((Instant::now() + delay, generation));
            }
        }
    }

    /// The next chunk at the position: the hub's, or one read on our own.
    fn next_chunk(&mut self) -> Result<Option<Arc<Chunk>>, SinkExit> {
        match self.reader.get(self.position) {
            Lookup::Chunk(c) => Ok(Some(c)),
            Lookup::Ahead => Ok(None),
            Lookup::Behind => loop {
                match self.reader.read_own(&self.ctx.wal, self.position) {
                    Ok(c) => return Ok(c.map(Arc::new)),
                    Err(e) => {
                        let error = SinkError::from(e);
                        let mut backoff = self.backoff();
                        self.wait_after(Operation::Read, &error, &mut backoff)?;
                    }
                }
            },
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(self.ctx.retry.base, self.ctx.retry.cap)
    }

    fn flush_is_due(&self) -> bool {
        self.sink.has_pending() && self.sink.flush_due().is_some_and(|t| Instant::now() >= t)
    }

    /// One entry; `Some` when the sink is finished.
    fn handle(&mut self, entry: &Routed) -> Result<Option<SinkExit>, SinkExit> {
        if let Item::Undecodable(e) = &entry.item {
            // Never skipped: a lost control record would be a lost trail change.
            let error = SinkError::permanent(format!(
                "WAL record at LSN {} cannot be decoded by this build: {e}",
                entry.lsn
            ));
            tracing::error!(sink = self.sink.name(), error = %error, "stopping: undecodable WAL record");
            self.sink.report(Report::Failed {
                operation: Operation::Read,
                error: &error,
                retry_in: None,
            });
            while !self.stopping() {
                self.ctx.shutdown.wait(0, Duration::from_secs(3600));
            }
            return Err(SinkExit::Shutdown);
        }
        match self.sink.accept(entry) {
            Accept::Skip | Accept::Buffered => {
                self.position = entry.next_lsn;
                Ok(None)
            }
            Accept::SetAside(reason) => {
                // Named by its own position: set aside again after a crash,
                // the same document is found and kept.
                let record = match &entry.item {
                    Item::Record(r) => r.json().to_vec(),
                    _ => Vec::new(),
                };
                self.quarantine(entry.lsn, "", &reason, &[record])?;
                self.sink.report(Report::Quarantined {
                    part: "",
                    reason: &reason,
                    records: 1,
                });
                self.position = entry.next_lsn;
                Ok(None)
            }
            Accept::Barrier => {
                // Records before the change are delivered under the old configuration.
                self.flush(entry.lsn)?;
                let applied = self.with_policy(Operation::Apply, |s| s.apply(entry))?;
                self.position = entry.next_lsn;
                if applied == Applied::Finished {
                    if let Err(e) = self.ctx.wal.remove_consumer(self.sink.name()) {
                        tracing::error!(sink = self.sink.name(), error = %e, "cannot remove a finished sink's WAL consumer");
                    }
                    return Ok(Some(SinkExit::Deleted));
                }
                self.commit(self.position, None)?;
                Ok(None)
            }
        }
    }

    /// Delivers what is gathered (records before `to`), then moves the cursor to `to`.
    fn flush(&mut self, to: Lsn) -> Result<(), SinkExit> {
        if !self.sink.has_pending() {
            if to > self.committed {
                self.commit(to, None)?;
            }
            return Ok(());
        }
        let intent = self.with_policy(Operation::Plan, |s| s.plan(to))?;
        if S::ANNOUNCES {
            // Step 1: announce (the cursor stays where it was).
            self.commit(self.committed, Some(&intent))?;
        }
        self.deliver_with_policy(&intent, false)?;
        self.commit(to, None)
    }

    /// Delivers `intent`, retrying by the policy, setting aside every part
    /// the sink says can never be delivered (see the module docs).
    fn deliver_with_policy(
        &mut self,
        intent: &S::Intent,
        recovering: bool,
    ) -> Result<(), SinkExit> {
        let to = S::intent_end(intent);
        if recovering {
            // Parts set aside before the crash stay set aside, even if the
            // store would take them now: never delivered and quarantined both.
            let parts = self.retry_quarantine(|q, name| q.parts(name, to))?;
            // Single records set aside at accept have no part name: not in any delivery.
            for part in parts.into_iter().filter(|p| !p.is_empty()) {
                if self.sink.set_aside(intent, &part).is_none() {
                    tracing::error!(sink = self.sink.name(), %part, "a quarantined part cannot be taken out of the recovering delivery");
                }
            }
        }
        let mut quarantined: Vec<(String, String, usize)> = Vec::new();
        let mut backoff = self.backoff();
        loop {
            let error = match self.sink.deliver(intent, recovering) {
                Ok(()) => break,
                Err(error) => error,
            };
            if error.kind == ErrorKind::Undeliverable {
                let part = error.part.clone().unwrap_or_default();
                if quarantined.iter().any(|(p, _, _)| *p == part) {
                    // Taken out already: the sink did not honour it; park.
                    tracing::error!(sink = self.sink.name(), %part, "a part set aside is still being delivered");
                } else if let Some(records) = self.sink.set_aside(intent, &part) {
                    tracing::warn!(sink = self.sink.name(), %part, records = records.len(), reason = %error.message, "setting an undeliverable part aside in the quarantine");
                    crate::control::crash_point("quarantine-before-write");
                    if !records.is_empty() {
                        self.quarantine(to, &part, &error.message, &records)?;
                    }
                    crate::control::crash_point("quarantine-after-write");
                    quarantined.push((part, error.message.clone(), records.len()));
                    backoff.reset();
                    continue;
                }
                let parked = SinkError::permanent(error.message.clone());
                self.wait_after(Operation::Deliver, &parked, &mut backoff)?;
                continue;
            }
            tracing::warn!(sink = self.sink.name(), operation = ?Operation::Deliver, kind = ?error.kind, error = %error, "sink operation failed");
            self.wait_after(Operation::Deliver, &error, &mut backoff)?;
        }
        self.sink.report(Report::Delivered);
        for (part, reason, records) in &quarantined {
            self.sink.report(Report::Quarantined {
                part,
                reason,
                records: *records,
            });
        }
        Ok(())
    }

    /// Writes records to the quarantine, retrying I/O errors by the policy.
    fn quarantine(
        &mut self,
        to: Lsn,
        part: &str,
        reason: &str,
        records: &[impl AsRef<[u8]>],
    ) -> Result<(), SinkExit> {
        let name = self.sink.name().to_owned();
        self.retry_quarantine(|q, _| q.set_aside(&name, to, part, reason, records))
            .map(|_| ())
    }

    fn retry_quarantine<T>(
        &mut self,
        mut op: impl FnMut(&Quarantine, &str) -> Result<T, crate::quarantine::QuarantineError>,
    ) -> Result<T, SinkExit> {
        let quarantine = self.ctx.quarantine.clone();
        let mut backoff = self.backoff();
        loop {
            match op(&quarantine, self.sink.name()) {
                Ok(value) => return Ok(value),
                Err(e) => {
                    tracing::error!(sink = self.sink.name(), error = %e, "cannot write to the quarantine");
                    let error = SinkError::retriable(e.to_string());
                    self.wait_after(Operation::Quarantine, &error, &mut backoff)?;
                }
            }
        }
    }

    /// Runs `op` until it succeeds, retrying by the policy; `Err` only on shutdown.
    fn with_policy<T>(
        &mut self,
        operation: Operation,
        mut op: impl FnMut(&mut S) -> Result<T, SinkError>,
    ) -> Result<T, SinkExit> {
        let mut backoff = self.backoff();
        loop {
            match op(&mut self.sink) {
                Ok(value) => {
                    if operation == Operation::Deliver {
                        self.sink.report(Report::Delivered);
                    }
                    return Ok(value);
                }
                Err(error) => {
                    tracing::warn!(sink = self.sink.name(), ?operation, kind = ?error.kind, error = %error, "sink operation failed");
                    self.wait_after(operation, &error, &mut backoff)?;
                }
            }
        }
    }

    /// Reports `error` and waits as its kind says; `Err` on shutdown.
    fn wait_after(
        &mut self,
        operation: Operation,
        error: &SinkError,
        backoff: &mut Backoff,
    ) -> Result<(), SinkExit> {
        // Both waits end early on a configuration change (a trail fixed or
        // deleted), so a sink in backoff or parked sees it at once.
        let (delay, parked) = match error.kind {
            ErrorKind::Retriable => (backoff.next_delay(), false),
            ErrorKind::Permanent | ErrorKind::Undeliverable => {
                // Short at first (a bucket re-created on the backend), doubling.
                let park = self.park_for;
                self.park_for = (self.park_for * 2).min(self.ctx.retry.permanent_recheck);
                (park, true)
            }
        };
        self.sink.report(Report::Failed {
            operation,
            error,
            retry_in: (!parked).then_some(delay),
        });
        let seen = self.ctx.changes.generation();
        let deadline = Instant::now() + delay;
        while !self.stopping() && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if self
                .ctx
                .shutdown
                .wait(0, left.min(Duration::from_millis(50)))
                || self.ctx.changes.generation() != seen
            {
                break;
            }
        }
        if parked {
            backoff.reset();
        }
        if self.stopping() {
            return Err(SinkExit::Shutdown);
        }
        Ok(())
    }

    /// Saves the cursor with the sink's state (and an intent), retrying WAL errors.
    fn commit(&mut self, lsn: Lsn, intent: Option<&S::Intent>) -> Result<(), SinkExit> {
        let mut backoff = self.backoff();
        loop {
            let result = encode_checkpoint(&self.sink.state(), intent).and_then(|bytes| {
                self.ctx
                    .wal
                    .commit(self.sink.name(), lsn, Some(&bytes))
                    .map_err(SinkError::from)
            });
            match result {
                Ok(()) => {
                    self.committed = lsn;
                    self.last_commit = Instant::now();
                    if intent.is_none() {
                        // A delivery went through: the next park starts short again.
                        self.park_for = self.ctx.retry.permanent_recheck_first;
                    }
                    return Ok(());
                }
                Err(error) => {
                    tracing::error!(sink = self.sink.name(), error = %error, "cannot commit the sink cursor");
                    self.wait_after(Operation::Commit, &error, &mut backoff)?;
                }
            }
        }
    }

    /// With nothing gathered, moves the cursor over skipped records now and
    /// then, so the WAL can drop segments.
    fn commit_idle_progress(&mut self) {
        if !self.sink.has_pending()
            && self.position > self.committed
            && self.last_commit.elapsed() >= Duration::from_secs(1)
        {
            let _ = self.commit(self.position, None);
        }
    }

    /// Re-gathers the records an interrupted delivery announced and finishes it.
    fn recover(&mut self, intent: S::Intent) -> Result<(), SinkExit> {
        let to = S::intent_end(&intent);
        tracing::info!(
            sink = self.sink.name(),
            to,
            "finishing an interrupted delivery"
        );
        while self.position < to {
            let Some(chunk) = self.next_chunk()? else {
                if self.position >= self.ctx.wal.head() {
                    // The range is gone (only after damage): deliver what was found.
                    break;
                }
                if self.stopping() {
                    return Err(SinkExit::Shutdown);
                }
                self.reader.wait(self.position, Duration::from_millis(200));
                continue;
            };
            for entry in chunk.from(self.position) {
                if entry.lsn >= to {
                    break;
                }
                // A change ends a delivery, so none lies inside the range.
                if !matches!(entry.item, Item::Undecodable(_))
                    && let Accept::SetAside(reason) = self.sink.accept(entry)
                    && let Item::Record(r) = &entry.item
                {
                    // Set aside before the crash already; kept as it is.
                    self.quarantine(entry.lsn, "", &reason, &[r.json()])?;
                }
                self.position = entry.next_lsn;
            }
        }
        self.position = to;
        self.deliver_with_policy(&intent, true)?;
        self.commit(to, None)
    }
}
