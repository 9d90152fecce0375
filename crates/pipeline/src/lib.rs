//! The data path: ingest → WAL → sinks.
//!
//! ```text
//! producers ─► Ingestor ─► WAL ─┬─► trail sink (cursor "trail:<arn>") ─► log files in the bucket
//!              (validate,       ├─► trail sink ...          └─► digest files (signed chain)
//!               dedup, fsync)   └─► dedup persister (cursor "dedup") ─► dedup/<hour>.ids
//! ```
//!
//! * A record is acknowledged only once it is in the WAL and fsynced.
//! * Every sink reads the WAL with its own cursor on its own thread, so a slow
//!   or failing destination delays only its own trail; the WAL keeps what any
//!   sink still needs, up to its disk bound, past which ingest is throttled.
//! * Trail changes (StartLogging, StopLogging, UpdateTrail, PutEventSelectors,
//!   DeleteTrail) are appended to the WAL as control records, so each sink
//!   applies them exactly where they happened in the record stream.
//!
//! Later sinks (log groups and metric filters, the lake) plug in the same way:
//! one more WAL consumer with its own cursor and checkpoint.

pub mod dedup;
mod digest;
pub mod envelope;
pub mod ingest;
pub mod metrics;
pub mod sink;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::watch;

use cairn_digest::Keyring;
use cairn_meta::{Metastore, TrailConfig};
use cairn_store::BucketStore;
use cairn_wal::{Lsn, Wal, WalConfig};

use crate::dedup::{DedupFiles, DedupIndex, hour_of};
use crate::envelope::{Envelope, TrailChange, TrailControl, decode, encode_control};
pub use crate::ingest::{IngestConfig, IngestOutcome, Ingestor, RecordFailure};
pub use crate::metrics::Metrics;
pub use crate::sink::{
    DeliverySettings, Organization, SinkContext, SinkExit, SinkState, TrailSink,
};

const DEDUP_CONSUMER: &str = "dedup";

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
    ingestor: Ingestor,
    dedup: Arc<DedupIndex>,
    head: HeadNotifier,
    shutdown: watch::Sender<bool>,
    sink_context: SinkContext,
    sinks: Mutex<HashMap<String, JoinHandle<SinkExit>>>,
    lag_gauges: Mutex<HashMap<String, Arc<std::sync::atomic::AtomicU64>>>,
    background: Mutex<Vec<JoinHandle<()>>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Opens the WAL, rebuilds the dedup index, reconciles trail sinks with the
    /// metastore and starts every sink. Call from within a Tokio runtime.
    pub fn start(
        config: PipelineConfig,
        meta: Arc<Metastore>,
        store: BucketStore,
        runtime: Handle,
    ) -> Result<Arc<Self>, Error> {
        let mut wal_config = WalConfig::new(config.data_dir.join(WAL_DIR));
        wal_config.max_disk_bytes = config.wal_max_disk_bytes;
        wal_config.segment_bytes = config.wal_segment_bytes;
        let wal = Arc::new(Wal::open(wal_config)?);
        let (head_tx, _) = watch::channel(wal.head());
        let head = HeadNotifier(Arc::new(head_tx));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let metrics = Arc::new(Metrics::default());

        let window_hours = (config.dedup_window.as_secs().div_ceil(3600)).max(1) as u32;
        let dedup = Arc::new(DedupIndex::new(window_hours, config.dedup_max_entries));
        let dedup_files =
            DedupFiles::open(&config.data_dir.join("dedup")).map_err(|source| Error::Io {
                context: "opening the dedup files".into(),
                source,
            })?;
        rebuild_dedup_index(&wal, &dedup, &dedup_files)?;

        let ingestor = Ingestor::new(
            wal.clone(),
            dedup.clone(),
            config.ingest.clone(),
            metrics.clone(),
            head.clone(),
        );
        // Private keys stay in the data dir (0700 directory, 0600 files).
        let keyring = Arc::new(
            Keyring::open(&config.data_dir.join("digest-keys"), config.key_rotation)
                .map_err(|e| Error::Internal(format!("opening the digest keyring: {e}")))?,
        );
        let sink_context = SinkContext {
            wal: wal.clone(),
            store,
            meta: meta.clone(),
            head: head.subscribe(),
            shutdown: shutdown_rx.clone(),
            runtime: runtime.clone(),
            settings: config.delivery.clone(),
            organization: config.organization.clone(),
            metrics: metrics.clone(),
            keyring: keyring.clone(),
        };
        let pipeline = Arc::new(Self {
            wal: wal.clone(),
            ingestor,
            dedup: dedup.clone(),
            head: head.clone(),
            shutdown,
            sink_context,
            sinks: Mutex::new(HashMap::new()),
            lag_gauges: Mutex::new(HashMap::new()),
            background: Mutex::new(Vec::new()),
            metrics,
        });

        // The WAL's consumers say which sinks exist; the metastore is reconciled to them.
        // One read of the metastore: each trail's configuration and whether it logs.
        let trails: BTreeMap<String, (TrailConfig, bool)> = meta
            .trails()?
            .into_iter()
            .map(|t| (t.config.arn.clone(), (t.config, t.status.is_logging)))
            .collect();
        for (name, _) in wal.consumers() {
            if let Some(arn) = name.strip_prefix("trail:")
                && !trails.contains_key(arn)
            {
                tracing::warn!(
                    trail = arn,
                    "removing the sink of a trail the metastore no longer has"
                );
                wal.remove_consumer(&name)?;
            }
        }
        for (arn, (config, logging)) in &trails {
            let name = sink::consumer_name(arn);
            if wal.checkpoint(&name).is_none() {
                pipeline.register_sink(config, *logging)?;
            }
            pipeline.spawn_sink(arn)?;
        }

        let persister = {
            let wal = wal.clone();
            let mut head_rx = head.subscribe();
            let mut stop = shutdown_rx;
            let runtime = runtime.clone();
            std::thread::Builder::new()
                .name("cairn-dedup".into())
                .spawn(move || {
                    run_dedup_persister(
                        &wal,
                        &dedup_files,
                        window_hours,
                        &runtime,
                        &mut head_rx,
                        &mut stop,
                    )
                })
                .map_err(|source| Error::Io {
                    context: "starting the dedup thread".into(),
                    source,
                })?
        };
        pipeline
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(persister);
        Ok(pipeline)
    }

    /// The ingest stage.
    pub fn ingestor(&self) -> &Ingestor {
        &self.ingestor
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
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
            .map(|g| g.load(std::sync::atomic::Ordering::Relaxed))
            .filter(|since| *since > 0)
            .map(|since| now.saturating_sub(since))
            .max()
            .unwrap_or(0)
    }

    /// eventIDs currently remembered.
    pub fn dedup_entries(&self) -> usize {
        self.dedup.len()
    }

    fn register_sink(&self, config: &TrailConfig, logging: bool) -> Result<(), Error> {
        let name = sink::consumer_name(&config.arn);
        let head = self.wal.head();
        self.wal.register_consumer(&name, head)?;
        let state = SinkState {
            config: Some(config.clone()),
            logging,
            intent: None,
        };
        let bytes = serde_json::to_vec(&state).map_err(|e| Error::Internal(e.to_string()))?;
        self.wal.commit(&name, head, Some(&bytes))?;
        Ok(())
    }

    fn spawn_sink(&self, arn: &str) -> Result<(), Error> {
        let sink = TrailSink::resume(arn, self.sink_context.clone())?;
        self.lag_gauges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(arn.to_owned(), sink.pending_since_gauge());
        let handle = std::thread::Builder::new()
            .name(format!(
                "cairn-sink-{}",
                arn.rsplit('/').next().unwrap_or(arn)
            ))
            .spawn(move || sink.run())
            .map_err(|source| Error::Io {
                context: "starting a trail sink".into(),
                source,
            })?;
        let mut sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        sinks.retain(|_, h| !h.is_finished());
        sinks.insert(arn.to_owned(), handle);
        Ok(())
    }

    /// Starts the sink of a new trail: it sees records ingested from now on.
    ///
    /// A deleted trail's sink may still be on its way out (it stops when it
    /// reads the deletion from the WAL); a new trail of the same ARN waits for
    /// it, so the two never share a cursor.
    pub fn create_trail(&self, config: &TrailConfig) -> Result<(), Error> {
        let previous = self
            .sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&config.arn);
        if let Some(handle) = previous {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !handle.is_finished() {
                if std::time::Instant::now() > deadline {
                    self.sinks
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(config.arn.clone(), handle);
                    return Err(Error::Conflict(format!(
                        "trail {} is still being deleted; retry",
                        config.arn
                    )));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = handle.join();
        }
        self.register_sink(config, false)?;
        self.spawn_sink(&config.arn)
    }

    /// Records a trail change in the WAL, where its sink will apply it.
    pub async fn change_trail(&self, trail_arn: &str, change: TrailChange) -> Result<(), Error> {
        let payload = encode_control(&TrailControl {
            trail_arn: trail_arn.to_owned(),
            change,
        });
        let wal = self.wal.clone();
        let receipt = tokio::task::spawn_blocking(move || wal.append(&[payload.as_slice()]))
            .await
            .map_err(|e| Error::Internal(format!("control append task failed: {e}")))??;
        self.head.advance(receipt.end_lsn);
        Ok(())
    }

    /// Stops every sink and background thread (each resumes from its cursor next time).
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
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

/// The eventID hashes of the ingested records among `records`, by ingest hour.
fn event_id_hashes_by_hour(records: &[cairn_wal::WalRecord]) -> BTreeMap<u32, Vec<u128>> {
    let mut by_hour: BTreeMap<u32, Vec<u128>> = BTreeMap::new();
    for record in records {
        if let Some(Envelope::Record {
            ingest_time_ms,
            event_id_hash,
            ..
        }) = decode(&record.payload)
        {
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
    files.load_into(dedup, now).map_err(|source| Error::Io {
        context: "loading the dedup files".into(),
        source,
    })?;
    let start = match wal.checkpoint(DEDUP_CONSUMER) {
        Some(c) => c.lsn,
        None => {
            // First start: nothing older exists.
            wal.register_consumer(DEDUP_CONSUMER, wal.oldest_lsn())?;
            wal.oldest_lsn()
        }
    };
    let mut position = start;
    loop {
        let records = wal.read(position, 8192, 64 * 1024 * 1024)?;
        let Some(last) = records.last() else { break };
        position = last.next_lsn;
        let by_hour = event_id_hashes_by_hour(&records);
        for (hour, ids) in by_hour {
            dedup.insert_committed(&ids, hour, now);
        }
    }
    Ok(())
}

fn run_dedup_persister(
    wal: &Wal,
    files: &DedupFiles,
    window_hours: u32,
    runtime: &Handle,
    head: &mut watch::Receiver<Lsn>,
    stop: &mut watch::Receiver<bool>,
) {
    let mut last_expiry = std::time::Instant::now();
    loop {
        if *stop.borrow() {
            return;
        }
        let position = wal.checkpoint(DEDUP_CONSUMER).map_or(0, |c| c.lsn);
        let records = match wal.read(position, 16384, 64 * 1024 * 1024) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "dedup persister cannot read the WAL");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if let Some(last) = records.last() {
            let by_hour = event_id_hashes_by_hour(&records);
            let written = by_hour
                .iter()
                .try_for_each(|(hour, ids)| files.append(*hour, ids));
            match written
                .map_err(Error::from_io)
                .and_then(|()| Ok(wal.commit(DEDUP_CONSUMER, last.next_lsn, None)?))
            {
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(error = %e, "dedup persister cannot save; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            continue;
        }
        if last_expiry.elapsed() > Duration::from_secs(60) {
            if let Err(e) = files.expire(window_hours, now_ms()) {
                tracing::warn!(error = %e, "cannot remove expired dedup files");
            }
            last_expiry = std::time::Instant::now();
        }
        let (mut h, mut s) = (head.clone(), stop.clone());
        runtime.block_on(async move {
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                tokio::select! {
                    _ = h.wait_for(|h| *h > position) => {}
                    _ = s.wait_for(|s| *s) => {}
                }
            })
            .await;
        });
    }
}

impl Error {
    fn from_io(source: std::io::Error) -> Self {
        Error::Io {
            context: "writing the dedup files".into(),
            source,
        }
    }
}

pub use envelope::TrailChange as Change;
