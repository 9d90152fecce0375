//! The data path: ingest → WAL → router → consumer runtime → sinks.
//!
//! ```text
//! producers ─► Ingestor ─► WAL ─► router (reads once, parses once) ─┬─► runtime ─► trail sink "trail:<arn>" ─► log files, digests
//!              (validate,          [route]                          ├─► runtime ─► trail sink ... (one thread each)
//!               dedup, fsync)                                       └─► runtime ─► dedup persister "dedup" ─► dedup/<hour>-<seq>.run
//! API ─► Pipeline::change_trail ─► WAL control record ─► metastore trail row (derived; cursor "meta")
//! ```
//!
//! * A record is acknowledged only once it is in the WAL and fsynced.
//! * The router ([`route`]) reads the WAL once and parses each record once
//!   (the [`cairn_model::RecordView`] fields selectors, scope and
//!   partitioning read, and `eventTime`); every sink gets the same parsed
//!   chunk. A sink behind the router's window reads and parses on its own
//!   until it rejoins, so a slow or failing destination delays only its own
//!   sink (see [`route`] for why).
//! * Every sink runs in the consumer runtime ([`runtime`]) on its own thread,
//!   with its own cursor and versioned checkpoint: the runtime does the
//!   waiting, the intent/commit protocol that makes delivery exactly-once,
//!   one retry policy (retriable errors back off with jitter; permanent ones
//!   are reported and wait for a configuration change), and status reports.
//!   A sink is an implementation of [`runtime::Sink`]: the trail sink
//!   ([`sink`]) and the dedup persister ([`persist`]) today; a CloudWatch
//!   Logs feed, an event-data-store writer and metric evaluation next.
//! * Trail changes (CreateTrail, StartLogging, StopLogging, UpdateTrail,
//!   PutEventSelectors, DeleteTrail) are WAL control records ([`envelope`],
//!   versioned): each sink applies them exactly where they happened in the
//!   record stream, and the metastore's trail rows are derived from them
//!   ([`control`]), so a crash between the two writes cannot leave them
//!   disagreeing.
//! * Blocking work (WAL reads, fsync, SQLite, sleeps) runs on the sinks' and
//!   the router's own threads; what the async server calls is run on Tokio's
//!   blocking pool.

mod atomic;
pub mod control;
pub mod dedup;
mod digest;
pub mod envelope;
pub mod history_sink;
pub mod ingest;
pub mod lake_sink;
pub mod logs_sink;
pub mod metrics;
pub mod persist;
pub mod quarantine;
pub mod route;
pub mod runtime;
pub mod sink;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::watch;

use cairn_digest::Keyring;
use cairn_meta::Metastore;
use cairn_model::TrailConfig;
use cairn_monitor::Monitor;
use cairn_store::BucketStore;
use cairn_wal::{Lsn, Wal, WalConfig};

use crate::control::{META_CONSUMER, apply_to_meta, crash_point, replay_into_meta};
use crate::dedup::{DedupFiles, DedupIndex, hour_of};
use crate::envelope::{EnvelopeError, TrailControl, decode, encode_control, record_header};
pub use crate::envelope::{TrailChange, TrailChange as Change};
pub use crate::ingest::{IngestConfig, IngestOutcome, Ingestor, RecordFailure};
pub use crate::logs_sink::SamplesArrived;
use crate::logs_sink::{LogGroupSink, LogsIntent};
pub use crate::metrics::Metrics;
use crate::persist::{DEDUP_CONSUMER, DedupIntent, DedupSink};
use crate::route::Hub;
pub use crate::runtime::SinkExit;
use crate::runtime::{
    CheckpointError, Consumer, RetryPolicy, RuntimeContext, Signal, decode_checkpoint,
    encode_checkpoint,
};
pub use crate::sink::{
    DeliveryIntent, DeliverySettings, Organization, SinkContext, SinkState, TrailSink,
};

/// Memory for the parsed chunks the router keeps for sinks: the distance
/// sinks near the head may drift apart (a delivery, a digest) before the
/// slowest reads on its own. A replay after a restart fills it, so it is most
/// of the server's memory then. 4 MiB delivers five trails as fast as 16 MiB
/// did (`bench/ingest.py --trails 5`, side by side: 1.83x and 1.87x the floor
/// against 1.97x and 2.0x) and takes 6 MB off the soak's peak RSS.
const ROUTER_WINDOW_BYTES: usize = 4 * 1024 * 1024;

/// The write-ahead log's directory inside the data dir.
pub const WAL_DIR: &str = "wal";

/// A pipeline failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The WAL is at its disk bound: the client should retry later.
    #[error("the write-ahead log is full ({used} of {limit} bytes); retry later")]
    Throttled {
        /// Bytes needed.
        used: u64,
        /// The bound.
        limit: u64,
    },
    /// The WAL failed.
    #[error("write-ahead log: {0}")]
    Wal(cairn_wal::Error),
    /// The metastore failed.
    #[error(transparent)]
    Meta(#[from] cairn_meta::Error),
    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A WAL record this build cannot decode: start-up stops rather than skip it.
    #[error(
        "WAL record at LSN {lsn} in {file} cannot be decoded by this build: {error}. It was written by another Cairn version: start that version and let its sinks deliver past it (or restore the data dir it belongs to). Cairn never skips such a record, because a skipped trail change would be lost silently"
    )]
    Undecodable {
        /// The segment file holding it.
        file: String,
        /// Its position.
        lsn: Lsn,
        /// Why.
        error: EnvelopeError,
    },
    /// A sink checkpoint this build cannot read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A change that conflicts with one still being applied.
    #[error("{0}")]
    Conflict(String),
    /// Anything else that should not happen.
    #[error("{0}")]
    Internal(String),
}

impl From<cairn_wal::Error> for Error {
    fn from(e: cairn_wal::Error) -> Self {
        match e {
            cairn_wal::Error::Full { needed, limit } => Error::Throttled {
                used: needed,
                limit,
            },
            other => Error::Wal(other),
        }
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

/// Tells sinks the WAL head moved.
#[derive(Debug, Clone)]
pub struct HeadNotifier(Arc<watch::Sender<Lsn>>);

impl HeadNotifier {
    /// Raises the head to `lsn` (never lowers it).
    pub fn advance(&self, lsn: Lsn) {
        self.0.send_if_modified(|h| {
            if lsn > *h {
                *h = lsn;
                true
            } else {
                false
            }
        });
    }

    /// A receiver that sees every advance.
    pub fn subscribe(&self) -> watch::Receiver<Lsn> {
        self.0.subscribe()
    }
}

/// Chunks of WAL records decoded for sinks, by where they came from.
#[derive(Debug, Clone, Copy)]
pub struct RouterReads {
    /// Chunks the router decoded once for every sink near the head.
    pub routed: u64,
    /// Those of them it took from the committer's memory instead of reading
    /// the WAL.
    pub from_memory: u64,
    /// Chunks sinks behind the router's window read and decoded on their
    /// own: grows when sinks drift apart by more than the window.
    pub own_reads: u64,
}

/// How the pipeline is set up.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Where the WAL and the dedup files live.
    pub data_dir: PathBuf,
    /// The WAL's disk bound.
    pub wal_max_disk_bytes: u64,
    /// WAL segment size.
    pub wal_segment_bytes: u64,
    /// How long eventIDs are remembered.
    pub dedup_window: Duration,
    /// How many eventIDs at most.
    pub dedup_max_entries: usize,
    /// Ingest settings.
    pub ingest: IngestConfig,
    /// Delivery settings.
    pub delivery: DeliverySettings,
    /// The organization.
    pub organization: Organization,
    /// How often digest signing keys rotate.
    pub key_rotation: Duration,
}

/// The running pipeline.
pub struct Pipeline {
    wal: Arc<Wal>,
    meta: Arc<Metastore>,
    ingestor: Ingestor,
    dedup: Arc<DedupIndex>,
    head: HeadNotifier,
    runtime_ctx: RuntimeContext,
    sink_context: SinkContext,
    /// The monitoring store trails' log groups live in.
    monitor: Arc<Monitor>,
    /// Told when a log-group feed stored metric samples.
    samples_cell: Arc<Mutex<Option<SamplesArrived>>>,
    /// Running trail sinks (delivery and log-group feed) by consumer name.
    sinks: Mutex<HashMap<String, JoinHandle<SinkExit>>>,
    lag_gauges: Mutex<HashMap<String, Arc<AtomicU64>>>,
    background: Mutex<Vec<JoinHandle<()>>>,
    metrics: Arc<Metrics>,
    /// Held while a trail change is written (WAL, then metastore, then the
    /// `meta` cursor), so changes apply to the metastore in WAL order.
    change_lock: Mutex<()>,
    /// A change reached the WAL but not the metastore (an error): replay it.
    meta_behind: AtomicBool,
    /// The event data stores the `lake` sink feeds.
    lake_stores: lake_sink::LakeStores,
    /// The organization's accounts (event data stores' scope).
    organization_accounts: Vec<String>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Reads the event data stores from the metastore into the list the
    /// `lake` sink feeds (after every change to them). Blocking.
    pub fn reload_event_data_stores(&self) -> Result<(), Error> {
        let mut stores = Vec::new();
        for record in self.meta.event_data_stores()? {
            match lake_sink::LakeStore::of(&record, &self.organization_accounts) {
                Ok(store) => stores.push(store),
                // Validated when stored: a store whose selectors no longer
                // compile takes nothing, loudly.
                Err(e) => tracing::error!(
                    event_data_store = %record.arn,
                    error = %e,
                    "the event data store's selectors do not compile; it takes no events"
                ),
            }
        }
        self.lake_stores.set(stores);
        Ok(())
    }

    /// Opens the WAL, refuses records and checkpoints this build cannot read,
    /// re-applies trail changes the metastore missed, rebuilds the dedup
    /// index, reconciles trail sinks with the metastore and starts the router
    /// and every sink, each on its own thread. Blocking: call it before
    /// serving, or from `spawn_blocking`, with `runtime` the Tokio runtime the
    /// sinks' object-store calls run on.
    pub fn start(
        config: PipelineConfig,
        meta: Arc<Metastore>,
        monitor: Arc<Monitor>,
        history: Option<Arc<cairn_history::History>>,
        store: BucketStore,
        runtime: Handle,
    ) -> Result<Arc<Self>, Error> {
        let wal_dir = config.data_dir.join(WAL_DIR);
        let mut wal_config = WalConfig::new(&wal_dir);
        wal_config.max_disk_bytes = config.wal_max_disk_bytes;
        wal_config.segment_bytes = config.wal_segment_bytes;
        let wal = Arc::new(Wal::open(wal_config)?);
        verify_decodable(&wal, &wal_dir)?;
        replay_into_meta(&wal, &meta)?;

        let (head_tx, _) = watch::channel(wal.head());
        let head = HeadNotifier(Arc::new(head_tx));
        let metrics = Arc::new(Metrics::default());

        let window_hours = (config.dedup_window.as_secs().div_ceil(3600)).max(1) as u32;
        let dedup = Arc::new(DedupIndex::new(window_hours, config.dedup_max_entries));
        let dedup_files =
            DedupFiles::open(&config.data_dir.join("dedup")).map_err(|source| Error::Io {
                context: "opening the dedup files".into(),
                source,
            })?;
        rebuild_dedup_index(&wal, &dedup, &dedup_files)?;

        let start = wal
            .consumers()
            .iter()
            .filter(|(name, _)| name != META_CONSUMER)
            .map(|(_, c)| c.lsn)
            .min()
            .unwrap_or_else(|| wal.head());
        let hub = Arc::new(Hub::new(start, ROUTER_WINDOW_BYTES));
        let ingestor = Ingestor::new(
            wal.clone(),
            dedup.clone(),
            config.ingest.clone(),
            metrics.clone(),
            head.clone(),
            hub.clone(),
        )?;
        // Private keys stay in the data dir (0700 directory, 0600 files).
        let keyring = Arc::new(
            Keyring::open(&config.data_dir.join("digest-keys"), config.key_rotation)
                .map_err(|e| Error::Internal(format!("opening the digest keyring: {e}")))?,
        );
        let runtime_ctx = RuntimeContext {
            wal: wal.clone(),
            hub,
            shutdown: Arc::new(Signal::default()),
            changes: Arc::new(Signal::default()),
            retry: RetryPolicy {
                base: config.delivery.retry_delay,
                cap: config.delivery.max_retry_delay,
                ..RetryPolicy::default()
            },
            quarantine: Arc::new(quarantine::Quarantine::new(&config.data_dir)),
        };
        // One deflate thread per core, shared by every trail: a trail's
        // delivery rate is then not bound to its sink's one thread.
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let deflate_pool = cairn_trail::DeflatePool::new(cores).map_err(|source| Error::Io {
            context: "starting the deflate threads".to_owned(),
            source,
        })?;
        let sink_context = SinkContext {
            store,
            meta: meta.clone(),
            runtime: runtime.clone(),
            settings: config.delivery.clone(),
            organization: config.organization.clone(),
            metrics: metrics.clone(),
            keyring,
            log_files_delivered: sink::LogFilesHook::default(),
            deflate_pool: Some(deflate_pool),
        };
        let pipeline = Arc::new(Self {
            wal: wal.clone(),
            meta: meta.clone(),
            ingestor,
            dedup,
            head: head.clone(),
            runtime_ctx,
            sink_context,
            monitor,
            samples_cell: Arc::default(),
            sinks: Mutex::new(HashMap::new()),
            lag_gauges: Mutex::new(HashMap::new()),
            background: Mutex::new(Vec::new()),
            metrics,
            change_lock: Mutex::new(()),
            meta_behind: AtomicBool::new(false),
            lake_stores: lake_sink::LakeStores::default(),
            organization_accounts: config.organization.accounts.clone(),
        });

        // The metastore (now caught up with the WAL's trail changes) says
        // which trails exist; sinks of trails it does not have are removed.
        let trails: BTreeMap<String, (TrailConfig, bool)> = meta
            .trails()?
            .into_iter()
            .map(|t| (t.config.arn.clone(), (t.config, t.status.is_logging)))
            .collect();
        for (name, _) in wal.consumers() {
            if let Some(arn) = name
                .strip_prefix("trail:")
                .or_else(|| name.strip_prefix("logs:"))
                && !trails.contains_key(arn)
            {
                tracing::warn!(
                    trail = arn,
                    "removing the sink of a trail the metastore does not have"
                );
                wal.remove_consumer(&name)?;
            }
        }
        for (arn, (config, logging)) in &trails {
            let state = SinkState {
                config: Some(config.clone()),
                logging: *logging,
            };
            // A trail from before log-group feeds existed gets its feed
            // from the head on, with the trail as it is now.
            for name in [sink::consumer_name(arn), logs_sink::consumer_name(arn)] {
                if wal.checkpoint(&name).is_none() {
                    pipeline.register_consumer(&name, &state)?;
                }
            }
            pipeline.spawn_sink(arn)?;
        }

        if wal.checkpoint(DEDUP_CONSUMER).is_none() {
            wal.register_consumer(DEDUP_CONSUMER, wal.oldest_lsn())?;
        }
        let dedup_cursor = wal.checkpoint(DEDUP_CONSUMER).map_or(0, |c| c.lsn);
        let dedup_checkpoint = decode_checkpoint::<(), DedupIntent>(
            DEDUP_CONSUMER,
            wal.checkpoint(DEDUP_CONSUMER)
                .and_then(|c| c.state)
                .as_deref(),
        )?;
        let persister = Consumer::new(
            DedupSink::new(dedup_files, pipeline.dedup.clone()),
            pipeline.runtime_ctx.clone(),
            dedup_cursor,
            dedup_checkpoint.intent,
        );
        pipeline.spawn_thread("cairn-dedup", move || {
            persister.run();
        })?;

        // The event-data-store writer: from where it is first seen on (a
        // store takes only records ingested after it was created anyway).
        pipeline.reload_event_data_stores()?;
        if wal.checkpoint(lake_sink::LAKE_CONSUMER).is_none() {
            wal.register_consumer(lake_sink::LAKE_CONSUMER, wal.head())?;
        }
        let lake_checkpoint = wal.checkpoint(lake_sink::LAKE_CONSUMER);
        let lake_cursor = lake_checkpoint.as_ref().map_or(0, |c| c.lsn);
        let lake_checkpoint = decode_checkpoint::<(), lake_sink::LakeIntent>(
            lake_sink::LAKE_CONSUMER,
            lake_checkpoint.and_then(|c| c.state).as_deref(),
        )?;
        let lake_writer = Consumer::new(
            lake_sink::LakeSink::new(&config.data_dir, pipeline.lake_stores.clone()),
            pipeline.runtime_ctx.clone(),
            lake_cursor,
            lake_checkpoint.intent,
        );
        pipeline.spawn_thread("cairn-lake", move || {
            lake_writer.run();
        })?;

        match history {
            // The event history starts where it is first seen (a data dir
            // from before it existed, or where it was off, feeds it from the
            // head on).
            Some(history) => {
                if wal.checkpoint(history_sink::HISTORY_CONSUMER).is_none() {
                    wal.register_consumer(history_sink::HISTORY_CONSUMER, wal.head())?;
                }
                let history_cursor = wal
                    .checkpoint(history_sink::HISTORY_CONSUMER)
                    .map_or(0, |c| c.lsn);
                let history_checkpoint = decode_checkpoint::<(), history_sink::HistoryIntent>(
                    history_sink::HISTORY_CONSUMER,
                    wal.checkpoint(history_sink::HISTORY_CONSUMER)
                        .and_then(|c| c.state)
                        .as_deref(),
                )?;
                let history_feed = Consumer::new(
                    history_sink::HistorySink::new(history),
                    pipeline.runtime_ctx.clone(),
                    history_cursor,
                    history_checkpoint.intent,
                );
                pipeline.spawn_thread("cairn-history", move || {
                    history_feed.run();
                })?;
            }
            // Off: its cursor must not hold back the WAL.
            None => {
                if wal.checkpoint(history_sink::HISTORY_CONSUMER).is_some() {
                    wal.remove_consumer(history_sink::HISTORY_CONSUMER)?;
                }
            }
        }

        let router = {
            let hub = pipeline.runtime_ctx.hub.clone();
            let wal = wal.clone();
            let head = head.subscribe();
            let runtime = runtime.clone();
            move || {
                let wait = |position: Lsn| {
                    let mut head = head.clone();
                    runtime.block_on(async move {
                        let _ = tokio::time::timeout(
                            Duration::from_millis(200),
                            head.wait_for(|h| *h > position),
                        )
                        .await;
                    });
                };
                hub.run_router(&wal, &wait);
            }
        };
        pipeline.spawn_thread("cairn-router", router)?;

        let housekeeping = {
            let weak = Arc::downgrade(&pipeline);
            let shutdown = pipeline.runtime_ctx.shutdown.clone();
            move || {
                while !shutdown.wait(0, Duration::from_secs(2)) {
                    let Some(pipeline) = weak.upgrade() else {
                        return;
                    };
                    pipeline.advance_meta_cursor();
                }
            }
        };
        pipeline.spawn_thread("cairn-meta-cursor", housekeeping)?;
        Ok(pipeline)
    }

    fn spawn_thread(&self, name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), Error> {
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map_err(|source| Error::Io {
                context: format!("starting the {name} thread"),
                source,
            })?;
        self.background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(handle);
        Ok(())
    }

    /// The ingest stage.
    pub fn ingestor(&self) -> &Ingestor {
        &self.ingestor
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// How the router and the sinks came by the records they decoded.
    pub fn router_reads(&self) -> RouterReads {
        let hub = &self.runtime_ctx.hub;
        RouterReads {
            routed: hub.routed_chunks(),
            from_memory: hub.tail_chunks(),
            own_reads: hub.own_reads(),
        }
    }

    /// The digest signing keys (ListPublicKeys reads them).
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.sink_context.keyring
    }

    /// Why the pipeline cannot accept records, if it cannot: the WAL refuses
    /// appends after a failed write or fsync (until the server restarts).
    pub fn health_problem(&self) -> Option<String> {
        self.wal
            .failure()
            .map(|f| format!("the write-ahead log refuses appends after a failed write: {f}"))
    }

    /// Bytes the WAL uses on disk.
    pub fn wal_disk_bytes(&self) -> u64 {
        self.wal.disk_bytes()
    }

    /// Milliseconds since the oldest record still waiting in any trail's batches was ingested.
    pub fn delivery_lag_ms(&self) -> u64 {
        let now = now_ms();
        self.lag_gauges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|g| g.load(Ordering::Relaxed))
            .filter(|since| *since > 0)
            .map(|since| now.saturating_sub(since))
            .max()
            .unwrap_or(0)
    }

    /// Records set aside in the quarantine since start-up.
    pub fn quarantined_records(&self) -> u64 {
        self.runtime_ctx.quarantine.quarantined_records()
    }

    /// eventIDs currently remembered.
    pub fn dedup_entries(&self) -> usize {
        self.dedup.len()
    }

    /// Wakes sinks parked on a permanent error (a missing bucket was created,
    /// credentials changed): they try again now.
    pub fn configuration_changed(&self) {
        self.runtime_ctx.changes.notify();
    }

    /// Registers a trail's consumer at the head with `state` (both sinks of
    /// a trail save a [`SinkState`]).
    fn register_consumer(&self, name: &str, state: &SinkState) -> Result<(), Error> {
        let head = self.wal.head();
        self.wal.register_consumer(name, head)?;
        let bytes = encode_checkpoint(state, None::<&DeliveryIntent>)
            .map_err(|e| Error::Internal(e.to_string()))?;
        self.wal.commit(name, head, Some(&bytes))?;
        Ok(())
    }

    /// Registers both sinks of a new trail.
    fn register_sink(&self, arn: &str, state: &SinkState) -> Result<(), Error> {
        self.register_consumer(&sink::consumer_name(arn), state)?;
        self.register_consumer(&logs_sink::consumer_name(arn), state)
    }

    /// Tells `f` which metrics got samples from trails' log-group feeds
    /// (alarm evaluation); feeds started before this call are told too.
    pub fn on_samples_arrived(&self, f: SamplesArrived) {
        *self.samples_cell.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Tells `f` of every delivery of a trail with an SNS topic (CloudTrail's
    /// log-file notifications).
    pub fn on_log_files_delivered(&self, f: sink::LogFilesDelivered) {
        self.sink_context.log_files_delivered.set(f);
    }

    fn samples_arrived(&self) -> SamplesArrived {
        let cell: Arc<Mutex<Option<SamplesArrived>>> = self.samples_cell.clone();
        Arc::new(move |metrics| {
            let f = cell.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(f) = f {
                f(metrics);
            }
        })
    }

    /// Starts a trail's two sinks: delivery and log-group feed.
    fn spawn_sink(&self, arn: &str) -> Result<(), Error> {
        let short = arn.rsplit('/').next().unwrap_or(arn);
        let name = sink::consumer_name(arn);
        let (cursor, saved) = self.saved_checkpoint::<DeliveryIntent>(&name)?;
        let sink = TrailSink::new(arn, self.sink_context.clone(), saved.state);
        self.lag_gauges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(arn.to_owned(), sink.pending_since_gauge());
        let consumer = Consumer::new(sink, self.runtime_ctx.clone(), cursor, saved.intent);
        self.spawn_consumer(&name, &format!("cairn-sink-{short}"), move || {
            consumer.run()
        })?;

        let name = logs_sink::consumer_name(arn);
        let (cursor, saved) = self.saved_checkpoint::<LogsIntent>(&name)?;
        let sink = LogGroupSink::new(
            arn,
            self.sink_context.clone(),
            self.monitor.clone(),
            Some(self.samples_arrived()),
            saved.state,
        );
        let consumer = Consumer::new(sink, self.runtime_ctx.clone(), cursor, saved.intent);
        self.spawn_consumer(&name, &format!("cairn-logs-{short}"), move || {
            consumer.run()
        })
    }

    fn saved_checkpoint<I: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<(Lsn, runtime::Checkpoint<SinkState, I>), Error> {
        let checkpoint = self
            .wal
            .checkpoint(name)
            .ok_or_else(|| Error::Internal(format!("no WAL consumer {name}")))?;
        let saved = decode_checkpoint::<SinkState, I>(name, checkpoint.state.as_deref())?;
        Ok((checkpoint.lsn, saved))
    }

    fn spawn_consumer(
        &self,
        name: &str,
        thread: &str,
        run: impl FnOnce() -> SinkExit + Send + 'static,
    ) -> Result<(), Error> {
        let handle = std::thread::Builder::new()
            .name(thread.to_owned())
            .spawn(run)
            .map_err(|source| Error::Io {
                context: format!("starting the sink {name}"),
                source,
            })?;
        let mut sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        sinks.retain(|_, h| !h.is_finished());
        sinks.insert(name.to_owned(), handle);
        Ok(())
    }

    /// A deleted trail's sink may still be on its way out (it stops when it
    /// reads the deletion from the WAL); a new trail of the same ARN waits
    /// for it, so the two never share a cursor.
    fn wait_for_previous_sink(&self, arn: &str) -> Result<(), Error> {
        for name in [sink::consumer_name(arn), logs_sink::consumer_name(arn)] {
            self.wait_for_consumer(&name)?;
        }
        Ok(())
    }

    fn wait_for_consumer(&self, name: &str) -> Result<(), Error> {
        let previous = self
            .sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        if let Some(handle) = previous {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !handle.is_finished() {
                if std::time::Instant::now() > deadline {
                    self.sinks
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.to_owned(), handle);
                    let trail = name.split_once(':').map_or(name, |(_, arn)| arn);
                    return Err(Error::Conflict(format!(
                        "trail {trail} is still being deleted; retry"
                    )));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = handle.join();
        }
        Ok(())
    }

    /// The one entry point for trail changes (CreateTrail, UpdateTrail,
    /// PutEventSelectors, StartLogging, StopLogging, DeleteTrail): writes the
    /// change to the WAL, where every sink applies it in order with the
    /// records, then derives the metastore's trail row from it (see
    /// [`control`]). When this returns `Ok`, both are done; a crash in
    /// between is repaired at the next start. Runs the blocking work on
    /// Tokio's blocking pool.
    pub async fn change_trail(
        self: &Arc<Self>,
        trail_arn: &str,
        change: TrailChange,
    ) -> Result<(), Error> {
        let this = self.clone();
        let control = TrailControl {
            trail_arn: trail_arn.to_owned(),
            at: chrono::Utc::now(),
            change,
        };
        tokio::task::spawn_blocking(move || this.change_trail_blocking(&control))
            .await
            .map_err(|e| Error::Internal(format!("trail change task failed: {e}")))?
    }

    /// [`Pipeline::change_trail`] on the caller's thread (blocking).
    pub fn change_trail_blocking(&self, control: &TrailControl) -> Result<(), Error> {
        let _guard = self.change_lock.lock().unwrap_or_else(|p| p.into_inner());
        let arn = &control.trail_arn;
        let creating = matches!(control.change, TrailChange::Create(_));
        // Checked under the lock: two calls racing on one trail see each other.
        match (creating, self.meta.trail(arn)?.is_some()) {
            (true, true) => return Err(cairn_meta::Error::AlreadyExists(arn.clone()).into()),
            (false, false) => return Err(cairn_meta::Error::NotFound(arn.clone()).into()),
            _ => {}
        }
        if creating {
            self.wait_for_previous_sink(arn)?;
            // The sink's cursor starts before its Create record, so it sees it.
            self.register_sink(arn, &SinkState::default())?;
        }
        let payload = encode_control(control);
        let receipt = match self.wal.append(&[payload.as_slice()]) {
            Ok(r) => r,
            Err(e) => {
                if creating {
                    // Nothing was recorded: the new sink would wait forever.
                    let _ = self.wal.remove_consumer(&sink::consumer_name(arn));
                    let _ = self.wal.remove_consumer(&logs_sink::consumer_name(arn));
                }
                return Err(e.into());
            }
        };
        self.head.advance(receipt.end_lsn);
        crash_point("trail-change-after-wal");
        if let Err(e) = apply_to_meta(&self.meta, control) {
            // Durable in the WAL: the metastore catches up from it.
            self.meta_behind.store(true, Ordering::SeqCst);
            return Err(e.into());
        }
        crash_point("trail-change-after-meta");
        if !self.meta_behind.load(Ordering::SeqCst) {
            let cursor = self.wal.checkpoint(META_CONSUMER).map_or(0, |c| c.lsn);
            if receipt.end_lsn > cursor {
                self.wal.commit(META_CONSUMER, receipt.end_lsn, None)?;
            }
        }
        if creating {
            self.spawn_sink(arn)?;
        }
        self.runtime_ctx.changes.notify();
        Ok(())
    }

    /// Moves the `meta` cursor to the head (every control below it is in the
    /// metastore), or replays what the metastore missed after an error.
    fn advance_meta_cursor(&self) {
        let _guard = self.change_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.meta_behind.load(Ordering::SeqCst) {
            match replay_into_meta(&self.wal, &self.meta) {
                Ok(_) => self.meta_behind.store(false, Ordering::SeqCst),
                Err(e) => {
                    tracing::error!(error = %e, "cannot bring the metastore up to date with trail changes")
                }
            }
            return;
        }
        let head = self.wal.head();
        let cursor = self.wal.checkpoint(META_CONSUMER).map_or(0, |c| c.lsn);
        if head > cursor
            && let Err(e) = self.wal.commit(META_CONSUMER, head, None)
        {
            tracing::warn!(error = %e, "cannot move the meta cursor");
        }
    }

    /// Stops the router, every sink and background thread (each resumes from
    /// its cursor next time).
    pub fn shutdown(&self) {
        self.runtime_ctx.shutdown.set();
        self.runtime_ctx.hub.stop();
        let sinks: Vec<_> = self
            .sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, h)| h)
            .collect();
        for handle in sinks {
            let _ = handle.join();
        }
        let background: Vec<_> = self
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for handle in background {
            let _ = handle.join();
        }
    }
}

/// Refuses to start on a WAL record this build cannot decode, between the
/// lowest cursor and the head, naming the segment file and position.
fn verify_decodable(wal: &Wal, dir: &Path) -> Result<(), Error> {
    let mut position = wal
        .consumers()
        .iter()
        .map(|(_, c)| c.lsn)
        .min()
        .unwrap_or_else(|| wal.head())
        .max(wal.oldest_lsn());
    loop {
        let records = wal.read(position, 8192, 64 * 1024 * 1024)?;
        let Some(last) = records.last() else {
            return Ok(());
        };
        for record in &records {
            let checked = match record_header(&record.payload) {
                Ok(Some(_)) => Ok(()),
                Ok(None) => decode(&record.payload).map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(error) = checked {
                return Err(Error::Undecodable {
                    file: segment_file(dir, record.lsn),
                    lsn: record.lsn,
                    error,
                });
            }
        }
        position = last.next_lsn;
    }
}

/// The segment file holding `lsn` (segments are named by their base LSN).
fn segment_file(dir: &Path, lsn: Lsn) -> String {
    let base = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".wal"))
                .and_then(|n| n.parse::<Lsn>().ok())
        })
        .filter(|base| *base <= lsn)
        .max();
    match base {
        Some(base) => dir.join(format!("{base:020}.wal")).display().to_string(),
        None => dir.display().to_string(),
    }
}

/// The eventID hashes of the ingested records among `records`, by ingest hour.
fn event_id_hashes_by_hour(records: &[cairn_wal::WalRecord]) -> BTreeMap<u32, Vec<u128>> {
    let mut by_hour: BTreeMap<u32, Vec<u128>> = BTreeMap::new();
    for record in records {
        if let Ok(Some((ingest_time_ms, event_id_hash))) = record_header(&record.payload) {
            by_hour
                .entry(hour_of(ingest_time_ms))
                .or_default()
                .push(event_id_hash);
        }
    }
    by_hour
}

fn rebuild_dedup_index(wal: &Wal, dedup: &DedupIndex, files: &DedupFiles) -> Result<(), Error> {
    let now = now_ms();
    let runs = files
        .load(dedup.window_hours(), now)
        .map_err(|source| Error::Io {
            context: "loading the dedup runs".into(),
            source,
        })?;
    for run in runs {
        if let Err(refused) = dedup.add_run(run, &[], now) {
            // Over the capacity bound already: the oldest hours go.
            files.remove(&refused).map_err(|source| Error::Io {
                context: "removing a dedup run".into(),
                source,
            })?;
        }
    }
    let Some(start) = wal.checkpoint(DEDUP_CONSUMER).map(|c| c.lsn) else {
        // First start: nothing older exists.
        return Ok(());
    };
    let mut position = start;
    loop {
        let records = wal.read(position, 8192, 64 * 1024 * 1024)?;
        let Some(last) = records.last() else { break };
        position = last.next_lsn;
        for (hour, ids) in event_id_hashes_by_hour(&records) {
            dedup.insert_committed(&ids, hour, now);
        }
    }
    Ok(())
}
