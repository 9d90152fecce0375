//! The trail delivery sink: one per trail, each with its own WAL cursor.
//!
//! A sink reads the WAL from its cursor, applies the trail's scope and event
//! selectors to each record, and batches the chosen ones per (account, region)
//! into gzip log files. Every `interval` (or sooner, at the size bound, or when
//! the trail changes) it delivers the batches to the trail's bucket and moves
//! its cursor past them.
//!
//! Exactly-once delivery across crashes rests on a two-step checkpoint:
//! 1. before writing, the sink commits its *old* cursor with an **intent**: the
//!    WAL position the batches end at, the delivery time and the key of every
//!    file it is about to write;
//! 2. it writes the files, then commits the new cursor without intent.
//!
//! A sink that restarts with an intent rebuilds the same batches from the same
//! WAL range (log files are deterministic given their records), writes the
//! announced files that are missing under their announced keys, and goes on.
//! A crash can therefore neither lose a batch nor deliver it twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio::sync::watch;

use cairn_digest::Keyring;
use cairn_meta::{DigestLogFileEntry, Metastore, TrailConfig};
use cairn_model::RecordView;
use cairn_model::time::parse_event_time;
use cairn_select::{CompiledSelectors, Selectors, TrailScope};
use cairn_store::BucketStore;
use cairn_store::layout::{log_file_key, random_unique_string};
use cairn_trail::LogBatches;
use cairn_wal::{Lsn, Wal};

use crate::digest;
use crate::envelope::{Envelope, TrailChange, decode};
use crate::metrics::Metrics;

/// The WAL consumer name of a trail's sink.
pub fn consumer_name(trail_arn: &str) -> String {
    format!("trail:{trail_arn}")
}

/// How delivery behaves.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// How often batches are delivered.
    pub interval: Duration,
    /// Deliver early once a trail's batches hold this many uncompressed bytes.
    pub max_batch_bytes: usize,
    /// gzip level, 0–9.
    pub gzip_level: u32,
    /// First retry delay after a failed delivery (doubles up to `max_retry_delay`).
    pub retry_delay: Duration,
    /// Longest retry delay.
    pub max_retry_delay: Duration,
    /// How often each digest chain gets a digest.
    pub digest_interval: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            max_batch_bytes: 64 * 1024 * 1024,
            gzip_level: 6,
            retry_delay: Duration::from_millis(500),
            max_retry_delay: Duration::from_secs(60),
            digest_interval: Duration::from_secs(3600),
        }
    }
}

/// The organization, as the configuration declares it.
#[derive(Debug, Clone, Default)]
pub struct Organization {
    /// Its ID (`o-...`), which organization trails put in their keys.
    pub id: Option<String>,
    /// The management account and every member.
    pub accounts: Vec<String>,
}

/// Everything a sink needs from the rest of the pipeline.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// The WAL.
    pub wal: Arc<Wal>,
    /// Buckets.
    pub store: BucketStore,
    /// Trail status is reported here.
    pub meta: Arc<Metastore>,
    /// Moves whenever the WAL head does.
    pub head: watch::Receiver<Lsn>,
    /// Set to true to stop.
    pub shutdown: watch::Receiver<bool>,
    /// For the async object-store calls made from the sink's thread.
    pub runtime: Handle,
    /// Delivery behaviour.
    pub settings: DeliverySettings,
    /// The organization.
    pub organization: Organization,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Digest signing keys.
    pub keyring: Arc<Keyring>,
}

/// What a sink persists with its cursor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SinkState {
    /// The trail's configuration at the cursor (None before the trail exists).
    pub config: Option<TrailConfig>,
    /// Whether the trail was logging at the cursor.
    pub logging: bool,
    /// Files announced but maybe not written.
    pub intent: Option<DeliveryIntent>,
}

/// Files a sink announced before writing them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryIntent {
    /// The WAL position the batches end at.
    pub to: Lsn,
    /// When they were delivered (their key's time).
    pub delivered_at: DateTime<Utc>,
    /// (account, region) → key.
    pub files: Vec<PlannedFile>,
}

/// One announced file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedFile {
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// The key in the trail's bucket.
    pub key: String,
}

struct Compiled {
    scope: TrailScope,
    selectors: CompiledSelectors,
}

/// The stored form of a trail's selectors: exactly what GetEventSelectors
/// answers besides `TrailARN`, `{"EventSelectors": [...]}` or
/// `{"AdvancedEventSelectors": [...]}`.
pub fn selectors_to_stored(selectors: &Selectors) -> serde_json::Value {
    match selectors {
        Selectors::Basic(basic) => serde_json::json!({ "EventSelectors": basic }),
        Selectors::Advanced(advanced) => serde_json::json!({ "AdvancedEventSelectors": advanced }),
    }
}

/// Reads the stored form back.
pub fn selectors_from_stored(value: &serde_json::Value) -> Result<Selectors, String> {
    if let Some(basic) = value.get("EventSelectors") {
        return serde_json::from_value(basic.clone())
            .map(Selectors::Basic)
            .map_err(|e| e.to_string());
    }
    if let Some(advanced) = value.get("AdvancedEventSelectors") {
        return serde_json::from_value(advanced.clone())
            .map(Selectors::Advanced)
            .map_err(|e| e.to_string());
    }
    Err("neither EventSelectors nor AdvancedEventSelectors".to_owned())
}

fn compile(config: &TrailConfig, organization: &Organization) -> Option<Compiled> {
    let selectors = match selectors_from_stored(&config.selectors) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(trail = %config.arn, error = %e, "stored selectors do not parse; delivering nothing");
            return None;
        }
    };
    let selectors = match CompiledSelectors::compile(&selectors) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(trail = %config.arn, error = %e, "stored selectors do not compile; delivering nothing");
            return None;
        }
    };
    Some(Compiled {
        scope: TrailScope {
            home_region: config.home_region.clone(),
            is_multi_region: config.is_multi_region_trail,
            include_global_service_events: config.include_global_service_events,
            owner_account: config.account_id.clone(),
            is_organization_trail: config.is_organization_trail,
            organization_accounts: organization.accounts.clone(),
        },
        selectors,
    })
}

/// One trail's sink.
pub struct TrailSink {
    name: String,
    trail_arn: String,
    ctx: SinkContext,
    state: SinkState,
    compiled: Option<Compiled>,
    batches: LogBatches,
    /// Cursor as last committed.
    committed: Lsn,
    /// Where reading goes on.
    position: Lsn,
    batch_started: Option<Instant>,
    oldest_ingest_ms: Option<u64>,
    last_commit: Instant,
    /// Ingest time of the oldest record waiting in the batches (0: none), for the lag gauge.
    pending_since_ms: Arc<std::sync::atomic::AtomicU64>,
    /// When the next digest of any of the trail's chains is due.
    digest_due: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for TrailSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrailSink")
            .field("trail", &self.trail_arn)
            .finish()
    }
}

/// How a sink's run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SinkExit {
    /// Asked to stop; resumes from its cursor next time.
    Shutdown,
    /// The trail was deleted; the consumer is gone.
    Deleted,
}

impl TrailSink {
    /// A sink resuming from its checkpoint in the WAL.
    pub fn resume(trail_arn: &str, ctx: SinkContext) -> Result<Self, crate::Error> {
        let name = consumer_name(trail_arn);
        let checkpoint = ctx
            .wal
            .checkpoint(&name)
            .ok_or_else(|| crate::Error::Internal(format!("no WAL consumer {name}")))?;
        let state: SinkState = match &checkpoint.state {
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| {
                crate::Error::Internal(format!("sink state of {name} is corrupt: {e}"))
            })?,
            None => SinkState::default(),
        };
        let compiled = state
            .config
            .as_ref()
            .and_then(|c| compile(c, &ctx.organization));
        let level = ctx.settings.gzip_level;
        let mut sink = Self {
            name,
            trail_arn: trail_arn.to_owned(),
            ctx,
            state,
            compiled,
            batches: LogBatches::new(level),
            committed: checkpoint.lsn,
            position: checkpoint.lsn,
            batch_started: None,
            oldest_ingest_ms: None,
            last_commit: Instant::now(),
            pending_since_ms: Arc::default(),
            digest_due: None,
        };
        // Chains continue across restarts; a trail validating since before
        // digests existed gets its home chain now.
        sink.ensure_home_chain();
        Ok(sink)
    }

    /// The gauge this sink keeps of its oldest waiting record's ingest time.
    pub fn pending_since_gauge(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.pending_since_ms.clone()
    }

    fn shutting_down(&self) -> bool {
        *self.ctx.shutdown.borrow()
    }

    /// Runs until shutdown or deletion. Call from a dedicated thread.
    pub fn run(mut self) -> SinkExit {
        if let Some(intent) = self.state.intent.clone() {
            match self.recover(&intent) {
                Ok(()) => {}
                Err(exit) => return exit,
            }
        }
        loop {
            if self.shutting_down() {
                return SinkExit::Shutdown;
            }
            if self.digest_due.is_some_and(|due| Utc::now() >= due)
                && let Err(exit) = self.write_digests(false)
            {
                return exit;
            }
            let records = match self.ctx.wal.read(self.position, 4096, 32 * 1024 * 1024) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(trail = %self.trail_arn, error = %e, "cannot read the WAL");
                    self.sleep(Duration::from_secs(1));
                    continue;
                }
            };
            if records.is_empty() {
                if self.interval_elapsed() {
                    if let Err(exit) = self.flush() {
                        return exit;
                    }
                    continue;
                }
                self.commit_idle_progress();
                let wait = self.time_to_next_flush().unwrap_or(Duration::from_secs(1));
                self.wait_for_records(wait.min(Duration::from_secs(1)));
                continue;
            }
            for record in &records {
                if let Some(exit) = self.process(record.lsn, record.next_lsn, &record.payload) {
                    return exit;
                }
                if self.batches.uncompressed_bytes() >= self.ctx.settings.max_batch_bytes
                    && let Err(exit) = self.flush()
                {
                    return exit;
                }
            }
            if self.interval_elapsed()
                && let Err(exit) = self.flush()
            {
                return exit;
            }
        }
    }

    /// Handles one WAL record; `Some` when the sink must end.
    fn process(&mut self, lsn: Lsn, next_lsn: Lsn, payload: &[u8]) -> Option<SinkExit> {
        match decode(payload) {
            Some(Envelope::Record {
                ingest_time_ms,
                json,
                ..
            }) => {
                self.offer(ingest_time_ms, json);
                self.position = next_lsn;
            }
            Some(Envelope::Control(control)) if control.trail_arn == self.trail_arn => {
                let was_validating =
                    digest::validating(self.state.config.as_ref(), self.state.logging);
                if control.change == TrailChange::Delete {
                    // Like CloudTrail, a deleted trail's chains end with a final digest.
                    if was_validating && let Err(exit) = self.write_digests(true) {
                        return Some(exit);
                    }
                    if let Err(e) = self.ctx.meta.delete_digest_state(&self.trail_arn) {
                        tracing::error!(trail = %self.trail_arn, error = %e, "cannot forget the digest chains of a deleted trail");
                    }
                    // A deleted trail delivers nothing more; what it had batched is dropped.
                    if let Err(e) = self.ctx.wal.remove_consumer(&self.name) {
                        tracing::error!(trail = %self.trail_arn, error = %e, "cannot remove the WAL consumer of a deleted trail");
                    }
                    self.pending_since_ms
                        .store(0, std::sync::atomic::Ordering::Relaxed);
                    return Some(SinkExit::Deleted);
                }
                // Records before the change are delivered under the old configuration.
                if !self.batches.is_empty() {
                    self.position = lsn;
                    if let Err(exit) = self.flush() {
                        return Some(exit);
                    }
                }
                self.position = next_lsn;
                self.apply(control.change);
                let validating = digest::validating(self.state.config.as_ref(), self.state.logging);
                if was_validating && !validating {
                    // StopLogging or validation turned off: final digests end the chains.
                    if let Err(exit) = self.write_digests(true) {
                        return Some(exit);
                    }
                } else if validating {
                    self.ensure_home_chain();
                }
                if let Err(exit) = self.commit_state(self.position) {
                    return Some(exit);
                }
            }
            Some(Envelope::Control(_)) => self.position = next_lsn,
            None => {
                tracing::warn!(trail = %self.trail_arn, lsn, "skipping a WAL record this version does not understand");
                self.position = next_lsn;
            }
        }
        None
    }

    fn apply(&mut self, change: TrailChange) {
        match change {
            TrailChange::Configure(config) => {
                self.compiled = compile(&config, &self.ctx.organization);
                self.state.config = Some(*config);
            }
            TrailChange::StartLogging => self.state.logging = true,
            TrailChange::StopLogging => self.state.logging = false,
            // Handled before any flush, in `process`.
            TrailChange::Delete => {}
        }
    }

    fn offer(&mut self, ingest_time_ms: u64, json: &[u8]) {
        if !self.state.logging {
            return;
        }
        let Some(compiled) = &self.compiled else {
            return;
        };
        // Ingest stored only valid UTF-8 JSON; anything else is skipped, not fatal.
        let Ok(text) = std::str::from_utf8(json) else {
            return;
        };
        let Ok(view) = RecordView::parse(text) else {
            return;
        };
        if !compiled.scope.includes(&view) || !compiled.selectors.matches(&view) {
            return;
        }
        let (Some(account), Some(region)) = (
            view.recipient_account_id.as_deref(),
            view.aws_region.as_deref(),
        ) else {
            return;
        };
        let event_time = view.event_time.as_deref().and_then(parse_event_time);
        self.batches.push(account, region, json, event_time);
        if self.batch_started.is_none() {
            self.batch_started = Some(Instant::now());
        }
        if self.oldest_ingest_ms.is_none() {
            self.pending_since_ms
                .store(ingest_time_ms.max(1), std::sync::atomic::Ordering::Relaxed);
        }
        self.oldest_ingest_ms = Some(
            self.oldest_ingest_ms
                .map_or(ingest_time_ms, |o| o.min(ingest_time_ms)),
        );
    }

    fn interval_elapsed(&self) -> bool {
        self.batch_started
            .is_some_and(|t| t.elapsed() >= self.ctx.settings.interval)
    }

    fn time_to_next_flush(&self) -> Option<Duration> {
        self.batch_started
            .map(|t| self.ctx.settings.interval.saturating_sub(t.elapsed()))
    }

    fn wait_for_records(&mut self, timeout: Duration) {
        let mut head = self.ctx.head.clone();
        let mut shutdown = self.ctx.shutdown.clone();
        let position = self.position;
        self.ctx.runtime.block_on(async move {
            let _ = tokio::time::timeout(timeout, async {
                tokio::select! {
                    _ = head.wait_for(|h| *h > position) => {}
                    _ = shutdown.wait_for(|s| *s) => {}
                }
            })
            .await;
        });
    }

    fn sleep(&self, duration: Duration) {
        let mut shutdown = self.ctx.shutdown.clone();
        self.ctx.runtime.block_on(async move {
            let _ = tokio::time::timeout(duration, shutdown.wait_for(|s| *s)).await;
        });
    }

    /// With nothing buffered, move the cursor over skipped records now and
    /// then, so the WAL can drop segments.
    fn commit_idle_progress(&mut self) {
        if self.batches.is_empty()
            && self.position > self.committed
            && self.last_commit.elapsed() >= Duration::from_secs(1)
            && let Err(e) = self.write_checkpoint(self.position, None)
        {
            tracing::error!(trail = %self.trail_arn, error = %e, "cannot commit the sink cursor");
        }
    }

    fn write_checkpoint(
        &mut self,
        lsn: Lsn,
        intent: Option<DeliveryIntent>,
    ) -> Result<(), crate::Error> {
        let state = SinkState {
            config: self.state.config.clone(),
            logging: self.state.logging,
            intent,
        };
        let bytes =
            serde_json::to_vec(&state).map_err(|e| crate::Error::Internal(e.to_string()))?;
        self.ctx.wal.commit(&self.name, lsn, Some(&bytes))?;
        self.committed = lsn;
        self.last_commit = Instant::now();
        Ok(())
    }

    fn commit_state(&mut self, lsn: Lsn) -> Result<(), SinkExit> {
        loop {
            match self.write_checkpoint(lsn, None) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::error!(trail = %self.trail_arn, error = %e, "cannot commit the sink cursor; retrying");
                    self.sleep(Duration::from_secs(1));
                    if self.shutting_down() {
                        return Err(SinkExit::Shutdown);
                    }
                }
            }
        }
    }

    /// Delivers the batches (records up to `self.position`).
    fn flush(&mut self) -> Result<(), SinkExit> {
        if self.batches.is_empty() {
            self.batch_started = None;
            return self.commit_state(self.position);
        }
        let Some(config) = self.state.config.clone() else {
            return Ok(());
        };
        let delivered_at = Utc::now();
        let org_id = if config.is_organization_trail {
            self.ctx.organization.id.clone()
        } else {
            None
        };
        let files: Vec<PlannedFile> = self
            .batches
            .groups()
            .into_iter()
            .map(|(account, region)| PlannedFile {
                key: log_file_key(
                    config.s3_key_prefix.as_deref(),
                    org_id.as_deref(),
                    &account,
                    &region,
                    delivered_at,
                    &random_unique_string(),
                ),
                account,
                region,
            })
            .collect();
        let intent = DeliveryIntent {
            to: self.position,
            delivered_at,
            files,
        };
        // Step 1: announce (the cursor stays where it was).
        loop {
            match self.write_checkpoint(self.committed, Some(intent.clone())) {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(trail = %self.trail_arn, error = %e, "cannot record the delivery intent; retrying");
                    self.sleep(Duration::from_secs(1));
                    if self.shutting_down() {
                        return Err(SinkExit::Shutdown);
                    }
                }
            }
        }
        self.deliver(&config, &intent, false)
    }

    /// Writes the batches under the intent's keys, then commits past them.
    fn deliver(
        &mut self,
        config: &TrailConfig,
        intent: &DeliveryIntent,
        only_missing: bool,
    ) -> Result<(), SinkExit> {
        let planned: BTreeMap<(String, String), String> = intent
            .files
            .iter()
            .map(|f| ((f.account.clone(), f.region.clone()), f.key.clone()))
            .collect();
        let finished = self.batches.finish();
        let files = finished.len() as u64;
        let mut records = 0u64;
        let mut delivered = Vec::with_capacity(finished.len());
        for (group, file) in finished {
            let (account, region) = (group.0.as_str(), group.1.as_str());
            let key = match planned.get(&group) {
                Some(k) => k.clone(),
                None => {
                    // Only possible if the configuration changed between runs.
                    tracing::warn!(trail = %self.trail_arn, account, region, "batch missing from the delivery intent; naming it now");
                    log_file_key(
                        config.s3_key_prefix.as_deref(),
                        None,
                        account,
                        region,
                        intent.delivered_at,
                        &random_unique_string(),
                    )
                }
            };
            records += file.records as u64;
            self.put_with_retry(config, &key, bytes::Bytes::from(file.gzip), only_missing)?;
            delivered.push(DigestLogFileEntry {
                account: account.to_owned(),
                region: region.to_owned(),
                s3_bucket: config.s3_bucket_name.clone(),
                s3_object: key,
                hash: file.sha256_hex,
                oldest_event_time: file
                    .oldest_event_time
                    .map(cairn_digest::document::format_time),
                newest_event_time: file
                    .newest_event_time
                    .map(cairn_digest::document::format_time),
            });
        }
        // Before the cursor moves: a crash in between re-delivers the same files
        // under the same keys, and recording them again changes nothing.
        if config.log_file_validation_enabled {
            self.record_for_digests(&delivered)?;
        }
        Metrics::add(&self.ctx.metrics.delivered_records, records);
        Metrics::add(&self.ctx.metrics.delivered_files, files);
        self.position = intent.to;
        self.batch_started = None;
        self.oldest_ingest_ms = None;
        self.pending_since_ms
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.commit_state(intent.to)?;
        let now = Utc::now();
        if let Err(e) = self.ctx.meta.update_trail_status(&self.trail_arn, |s| {
            s.latest_delivery_time = Some(now);
            s.latest_delivery_attempt_time = Some(now);
            s.latest_delivery_attempt_succeeded = Some(now);
            s.latest_delivery_error = None;
        }) {
            tracing::debug!(trail = %self.trail_arn, error = %e, "cannot record delivery status");
        }
        Ok(())
    }

    fn put_with_retry(
        &mut self,
        config: &TrailConfig,
        key: &str,
        gzip: bytes::Bytes,
        only_missing: bool,
    ) -> Result<(), SinkExit> {
        let mut delay = self.ctx.settings.retry_delay;
        let bucket = config.s3_bucket_name.clone();
        loop {
            let store = self.ctx.store.clone();
            // Bytes clones share the buffer: a retry does not copy the file.
            let body = gzip.clone();
            let (b, k) = (bucket.clone(), key.to_owned());
            let result = self.ctx.runtime.block_on(async move {
                if only_missing && store.exists(&b, &k).await? {
                    return Ok(());
                }
                store.put(&b, &k, body, &BTreeMap::new()).await
            });
            match result {
                Ok(()) => return Ok(()),
                Err(e) => {
                    Metrics::add(&self.ctx.metrics.delivery_failures, 1);
                    let message = format!("{e}");
                    tracing::warn!(trail = %self.trail_arn, bucket = %bucket, key, error = %message, "log file delivery failed; retrying");
                    let now = Utc::now();
                    let _ = self.ctx.meta.update_trail_status(&self.trail_arn, |s| {
                        s.latest_delivery_attempt_time = Some(now);
                        s.latest_delivery_error = Some(message.clone());
                    });
                    self.sleep(delay);
                    if self.shutting_down() {
                        return Err(SinkExit::Shutdown);
                    }
                    delay = (delay * 2).min(self.ctx.settings.max_retry_delay);
                }
            }
        }
    }

    fn record_for_digests(&mut self, delivered: &[DigestLogFileEntry]) -> Result<(), SinkExit> {
        loop {
            match self
                .ctx
                .meta
                .record_digest_log_files(&self.trail_arn, delivered, Utc::now())
            {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(trail = %self.trail_arn, error = %e, "cannot record delivered log files for digests; retrying");
                    self.sleep(Duration::from_secs(1));
                    if self.shutting_down() {
                        return Err(SinkExit::Shutdown);
                    }
                }
            }
        }
        self.refresh_digest_due();
        Ok(())
    }

    fn refresh_digest_due(&mut self) {
        self.digest_due = match self.ctx.meta.digest_chains(&self.trail_arn) {
            Ok(chains) => digest::next_due(&chains, self.ctx.settings.digest_interval),
            Err(e) => {
                tracing::error!(trail = %self.trail_arn, error = %e, "cannot read digest chains");
                Some(Utc::now() + chrono::Duration::seconds(1))
            }
        };
    }

    /// Starts the chain of the trail's own account and home region, if the
    /// trail validates and has none.
    fn ensure_home_chain(&mut self) {
        if let Some(config) = &self.state.config
            && digest::validating(Some(config), self.state.logging)
            && let Err(e) = self.ctx.meta.start_digest_chain(
                &self.trail_arn,
                &config.account_id,
                &config.home_region,
                Utc::now(),
            )
        {
            tracing::error!(trail = %self.trail_arn, error = %e, "cannot start a digest chain");
        }
        self.refresh_digest_due();
    }

    /// Writes the digests that are due; with `end_chains`, a final digest of
    /// every chain, which ends them.
    fn write_digests(&mut self, end_chains: bool) -> Result<(), SinkExit> {
        let Some(config) = self.state.config.clone() else {
            return Ok(());
        };
        let interval = chrono::Duration::from_std(self.ctx.settings.digest_interval)
            .unwrap_or(chrono::Duration::hours(1));
        let mut delay = self.ctx.settings.retry_delay;
        loop {
            let mut retry: Option<String> = None;
            match self.ctx.meta.digest_chains(&self.trail_arn) {
                Err(e) => retry = Some(e.to_string()),
                Ok(chains) => {
                    let now = Utc::now();
                    for chain in chains {
                        let end = match &chain.pending {
                            Some(plan) => plan.end,
                            None if end_chains || now >= chain.start_time + interval => {
                                match digest::end_time(chain.start_time, now) {
                                    Some(end) => end,
                                    None => {
                                        // Started this very second: the final digest waits for the next.
                                        retry = Some(String::new());
                                        continue;
                                    }
                                }
                            }
                            None => continue,
                        };
                        match digest::write_digest(&self.ctx, &config, &chain, end, end_chains) {
                            Ok(end) => {
                                Metrics::add(&self.ctx.metrics.delivered_digests, 1);
                                tracing::debug!(trail = %self.trail_arn, account = %chain.account, region = %chain.region, %end, "digest delivered");
                                let now = Utc::now();
                                let _ = self.ctx.meta.update_trail_status(&self.trail_arn, |s| {
                                    s.latest_digest_delivery_time = Some(now);
                                    s.latest_digest_delivery_error = None;
                                });
                            }
                            Err(e) => {
                                retry = Some(e.to_string());
                                break;
                            }
                        }
                    }
                }
            }
            let Some(message) = retry else { break };
            if message.is_empty() {
                self.sleep(Duration::from_millis(200));
            } else {
                Metrics::add(&self.ctx.metrics.digest_failures, 1);
                tracing::warn!(trail = %self.trail_arn, error = %message, "digest delivery failed; retrying");
                let _ = self.ctx.meta.update_trail_status(&self.trail_arn, |s| {
                    s.latest_digest_delivery_error = Some(message.clone());
                });
                self.sleep(delay);
                delay = (delay * 2).min(self.ctx.settings.max_retry_delay);
            }
            if self.shutting_down() {
                return Err(SinkExit::Shutdown);
            }
        }
        self.refresh_digest_due();
        Ok(())
    }

    /// Re-creates the batches an interrupted delivery announced and writes the missing files.
    fn recover(&mut self, intent: &DeliveryIntent) -> Result<(), SinkExit> {
        tracing::info!(trail = %self.trail_arn, files = intent.files.len(), "finishing an interrupted delivery");
        while self.position < intent.to {
            let records = match self.ctx.wal.read(self.position, 4096, 32 * 1024 * 1024) {
                Ok(r) if !r.is_empty() => r,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(trail = %self.trail_arn, error = %e, "cannot read the WAL to recover a delivery");
                    self.sleep(Duration::from_secs(1));
                    if self.shutting_down() {
                        return Err(SinkExit::Shutdown);
                    }
                    continue;
                }
            };
            for record in records {
                if record.lsn >= intent.to {
                    break;
                }
                if let Some(Envelope::Record {
                    ingest_time_ms,
                    json,
                    ..
                }) = decode(&record.payload)
                {
                    self.offer(ingest_time_ms, json);
                }
                self.position = record.next_lsn;
            }
        }
        self.position = intent.to;
        let Some(config) = self.state.config.clone() else {
            return self.commit_state(intent.to);
        };
        self.deliver(&config, intent, true)
    }
}
