//! The trail delivery sink: one per trail, each running in the consumer
//! runtime ([`crate::runtime`]) on its own thread with its own WAL cursor.
//!
//! The sink applies the trail's scope and event selectors to each routed
//! record (parsed once by the router), and batches the chosen ones per
//! (account, region) into incremental gzip log files on its own thread. Every
//! `interval` (or sooner, at the size bound, or when the trail changes) the
//! runtime has it deliver the batches to the trail's bucket and moves its
//! cursor past them.
//!
//! Exactly-once delivery across crashes rests on the runtime's two-step
//! checkpoint: the sink's intent ([`DeliveryIntent`]) names the WAL position
//! the batches end at, the delivery time and the key of every file; after a
//! crash the runtime feeds the same WAL range again, the batches come out
//! with the same content (a log file's text and SHA-256 are deterministic
//! given its records; see `cairn_trail`), and the
//! announced files that are missing are written under their announced keys.
//!
//! Digests (see [`crate::digest`]) are the sink's periodic work
//! ([`Sink::tick`]); StopLogging, DeleteTrail and turning validation off write
//! final digests while the change is applied.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use cairn_digest::Keyring;
use cairn_meta::{DigestLogFileEntry, Metastore};
use cairn_model::TrailConfig;
use cairn_select::{CompiledSelectors, TrailScope, selectors_from_stored};
use cairn_store::BucketStore;
use cairn_store::layout::{log_file_key, random_unique_string};
use cairn_trail::{DeflatePool, LogBatches, LogFile};
use cairn_wal::Lsn;

pub use cairn_select::selectors_to_stored;

use crate::digest;
use crate::envelope::TrailChange;
use crate::metrics::Metrics;
use crate::route::{Item, Routed};
use crate::runtime::{Accept, Applied, ErrorKind, Operation, Report, Sink, SinkError};

/// Fault injection for tests: while set, every log file whose key contains
/// this text is refused by the "store" as a key it can never hold (the error
/// the local backend gives a key it cannot represent). Unset, inert.
pub const FAULT_REFUSE_KEY_VAR: &str = "CAIRN_FAULT_REFUSE_KEY";

/// Fault injection for tests: while set, the "store" denies every write to
/// the bucket of this name (`AccessDenied`, a permanent error of the whole
/// destination). Unset, inert.
pub const FAULT_DENY_BUCKET_VAR: &str = "CAIRN_FAULT_DENY_BUCKET";

fn fault_setting(
    var: &'static str,
    cell: &'static std::sync::OnceLock<Option<String>>,
) -> Option<&'static str> {
    cell.get_or_init(|| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .as_deref()
}

fn fault_refuses(key: &str) -> bool {
    static CHOSEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    fault_setting(FAULT_REFUSE_KEY_VAR, &CHOSEN).is_some_and(|pattern| key.contains(pattern))
}

fn fault_denies(bucket: &str) -> bool {
    static CHOSEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    fault_setting(FAULT_DENY_BUCKET_VAR, &CHOSEN) == Some(bucket)
}

/// Whether a store error is about this one object for good (the key, the
/// size), not the destination: the file is quarantined, not retried.
fn refuses_the_object(e: &cairn_store::Error) -> bool {
    match e {
        cairn_store::Error::InvalidKey { .. } => true,
        cairn_store::Error::Backend { source, .. } => {
            let text = source.to_string();
            text.contains("KeyTooLong") || text.contains("EntityTooLarge")
        }
        _ => false,
    }
}

/// The records of a finished log file, each its exact bytes: the file is
/// `{"Records":[r1,r2,...]}` with every record's text as ingested.
fn records_of(gzip: &[u8]) -> Vec<Bytes> {
    use std::io::Read;
    #[derive(Deserialize)]
    struct Document<'a> {
        #[serde(rename = "Records", borrow)]
        records: Vec<&'a serde_json::value::RawValue>,
    }
    let mut text = Vec::new();
    if let Err(e) = flate2::read::GzDecoder::new(gzip).read_to_end(&mut text) {
        tracing::error!(error = %e, "cannot read back a log file set aside");
        return vec![Bytes::from(gzip.to_vec())];
    }
    match serde_json::from_slice::<Document<'_>>(&text) {
        Ok(doc) => doc
            .records
            .into_iter()
            .map(|r| Bytes::copy_from_slice(r.get().as_bytes()))
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "cannot split a log file set aside; keeping it whole");
            vec![Bytes::from(text)]
        }
    }
}

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
    /// First retry delay after a failed delivery (doubles up to `max_retry_delay`, with jitter).
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

/// Told of each delivery of a trail with an SNS topic: the trail, the
/// bucket and the keys of the log files delivered (CloudTrail's
/// notification). Runs on the sink's thread after the files are written.
pub type LogFilesDelivered = Arc<dyn Fn(&TrailConfig, &str, &[String]) + Send + Sync>;

/// Where the [`LogFilesDelivered`] hook is kept (set after the pipeline
/// starts, read by every trail sink).
#[derive(Clone, Default)]
pub struct LogFilesHook(Arc<std::sync::Mutex<Option<LogFilesDelivered>>>);

impl LogFilesHook {
    /// Sets the hook.
    pub fn set(&self, f: LogFilesDelivered) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    fn get(&self) -> Option<LogFilesDelivered> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl std::fmt::Debug for LogFilesHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogFilesHook")
    }
}

/// What a trail sink needs besides its records.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// Buckets.
    pub store: BucketStore,
    /// Trail status and digest chains.
    pub meta: Arc<Metastore>,
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
    /// Told of deliveries of trails with an SNS topic (set once notifications run).
    pub log_files_delivered: LogFilesHook,
    /// Threads that deflate log-file chunks for every trail (none: each
    /// sink deflates on its own thread).
    pub deflate_pool: Option<DeflatePool>,
}

/// What a trail sink saves with its cursor (the `state` of its checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SinkState {
    /// The trail's configuration at the cursor (None before the trail exists).
    pub config: Option<TrailConfig>,
    /// Whether the trail was logging at the cursor.
    pub logging: bool,
}

impl SinkState {
    /// The state after a trail change; `None` after DeleteTrail.
    pub fn after(&self, change: &TrailChange) -> Option<SinkState> {
        let (config, logging) = match change {
            TrailChange::Delete => return None,
            TrailChange::Create(config) => (Some((**config).clone()), false),
            TrailChange::Configure(config) => (Some((**config).clone()), self.logging),
            TrailChange::StartLogging => (self.config.clone(), true),
            TrailChange::StopLogging => (self.config.clone(), false),
        };
        Some(SinkState { config, logging })
    }
}

/// Files a sink announced before writing them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryIntent {
    /// The WAL position the batches end at.
    pub to: Lsn,
    /// When they were delivered (their key's time).
    pub delivered_at: DateTime<Utc>,
    /// (account, region) → key.
    pub files: Vec<PlannedFile>,
}

/// One announced file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedFile {
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// The key in the trail's bucket.
    pub key: String,
}

pub(crate) struct Compiled {
    scope: TrailScope,
    selectors: CompiledSelectors,
}

impl Compiled {
    /// Whether the trail's scope and selectors choose the record.
    pub(crate) fn selects(&self, view: &cairn_model::RecordView<'_>) -> bool {
        self.scope.includes(view) && self.selectors.matches(view)
    }
}

pub(crate) fn compile(config: &TrailConfig, organization: &Organization) -> Option<Compiled> {
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

/// A finished file waiting to be written.
struct ReadyFile {
    account: String,
    region: String,
    key: String,
    file: LogFile,
    gzip: Bytes,
    written: bool,
}

/// One trail's sink.
pub struct TrailSink {
    name: String,
    trail_arn: String,
    ctx: SinkContext,
    state: SinkState,
    compiled: Option<Compiled>,
    batches: LogBatches,
    /// Files of the delivery in progress (finished batches), kept across retries.
    ready: Option<Vec<ReadyFile>>,
    batch_started: Option<Instant>,
    oldest_ingest_ms: Option<u64>,
    /// Ingest time of the oldest record waiting in the batches (0: none), for the lag gauge.
    pending_since_ms: Arc<AtomicU64>,
    /// When the next digest of any of the trail's chains is due.
    digest_due: Option<DateTime<Utc>>,
    /// A bucket a delivery failed on for good (denied), until one succeeds.
    failed_bucket: Option<String>,
}

impl std::fmt::Debug for TrailSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrailSink")
            .field("trail", &self.trail_arn)
            .finish()
    }
}

impl TrailSink {
    /// A sink resuming with `state` (from its checkpoint).
    pub fn new(trail_arn: &str, ctx: SinkContext, state: SinkState) -> Self {
        let compiled = state
            .config
            .as_ref()
            .and_then(|c| compile(c, &ctx.organization));
        let batches = match &ctx.deflate_pool {
            Some(pool) => LogBatches::with_pool(ctx.settings.gzip_level, pool.clone()),
            None => LogBatches::new(ctx.settings.gzip_level),
        };
        let mut sink = Self {
            name: consumer_name(trail_arn),
            trail_arn: trail_arn.to_owned(),
            ctx,
            state,
            compiled,
            batches,
            ready: None,
            batch_started: None,
            oldest_ingest_ms: None,
            pending_since_ms: Arc::default(),
            digest_due: None,
            failed_bucket: None,
        };
        // Chains continue across restarts; a trail validating since before
        // digests existed gets its home chain now.
        sink.ensure_home_chain();
        sink
    }

    /// The gauge this sink keeps of its oldest waiting record's ingest time.
    pub fn pending_since_gauge(&self) -> Arc<AtomicU64> {
        self.pending_since_ms.clone()
    }

    fn offer(&mut self, entry: &crate::route::RecordEntry) -> Accept {
        if !self.state.logging {
            return Accept::Skip;
        }
        let (Some(compiled), Some(view)) = (&self.compiled, entry.view()) else {
            return Accept::Skip;
        };
        if !compiled.selects(&view) {
            return Accept::Skip;
        }
        let (Some(account), Some(region)) = (
            view.recipient_account_id.as_deref(),
            view.aws_region.as_deref(),
        ) else {
            return Accept::Skip;
        };
        // Both become key segments: a record written before ingest checked
        // them (an older WAL) is set aside, never batched into a path.
        if cairn_model::AccountId::new(account).is_err() {
            return Accept::SetAside(format!(
                "InvalidRecipientAccountId: recipientAccountId {account:?} is not twelve digits"
            ));
        }
        if cairn_model::Region::new(region).is_err() {
            return Accept::SetAside(format!(
                "InvalidAwsRegion: awsRegion {region:?} is not a region name"
            ));
        }
        self.batches
            .push(account, region, entry.json(), entry.event_time);
        if self.batch_started.is_none() {
            self.batch_started = Some(Instant::now());
        }
        let ingest_time_ms = entry.ingest_time_ms;
        if self.oldest_ingest_ms.is_none() {
            self.pending_since_ms
                .store(ingest_time_ms.max(1), Ordering::Relaxed);
        }
        self.oldest_ingest_ms = Some(
            self.oldest_ingest_ms
                .map_or(ingest_time_ms, |o| o.min(ingest_time_ms)),
        );
        Accept::Buffered
    }

    fn organization_id(&self, config: &TrailConfig) -> Option<String> {
        if config.is_organization_trail {
            self.ctx.organization.id.clone()
        } else {
            None
        }
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
    fn write_digests(&mut self, end_chains: bool) -> Result<(), SinkError> {
        let Some(mut config) = self.state.config.clone() else {
            return Ok(());
        };
        config.s3_bucket_name = self.destination_bucket(&config)?;
        let interval = chrono::Duration::from_std(self.ctx.settings.digest_interval)
            .unwrap_or(chrono::Duration::hours(1));
        let chains = self.ctx.meta.digest_chains(&self.trail_arn)?;
        let now = Utc::now();
        let mut too_early = false;
        for chain in chains {
            let end = match &chain.pending {
                Some(plan) => plan.end,
                None if end_chains || now >= chain.start_time + interval => {
                    match digest::end_time(chain.start_time, now) {
                        Some(end) => end,
                        None => {
                            // Started this very second: the final digest waits for the next.
                            too_early = true;
                            continue;
                        }
                    }
                }
                None => continue,
            };
            let end = digest::write_digest(&self.ctx, &config, &chain, end, end_chains)
                .map_err(|e| e.into_sink_error())?;
            Metrics::add(&self.ctx.metrics.delivered_digests, 1);
            tracing::debug!(trail = %self.trail_arn, account = %chain.account, region = %chain.region, %end, "digest delivered");
            let now = Utc::now();
            let _ = self.ctx.meta.update_trail_status(&self.trail_arn, |s| {
                s.latest_digest_delivery_time = Some(now);
                s.latest_digest_delivery_error = None;
            });
        }
        if too_early {
            // Not a failure: retried shortly, and not reported.
            return Err(SinkError::retriable(String::new()));
        }
        self.refresh_digest_due();
        Ok(())
    }

    fn finish_batches(&mut self, config: &TrailConfig, intent: &DeliveryIntent) -> Vec<ReadyFile> {
        let planned: BTreeMap<(&str, &str), &str> = intent
            .files
            .iter()
            .map(|f| ((f.account.as_str(), f.region.as_str()), f.key.as_str()))
            .collect();
        let org_id = self.organization_id(config);
        self.batches
            .finish()
            .into_iter()
            .map(|((account, region), mut file)| {
                let key = match planned.get(&(account.as_str(), region.as_str())) {
                    Some(k) => (*k).to_owned(),
                    None => {
                        // Only possible if the configuration changed between runs.
                        tracing::warn!(trail = %self.trail_arn, %account, %region, "batch missing from the delivery intent; naming it now");
                        log_file_key(
                            config.s3_key_prefix.as_deref(),
                            org_id.as_deref(),
                            &account,
                            &region,
                            intent.delivered_at,
                            &random_unique_string(),
                        )
                    }
                };
                let gzip = Bytes::from(std::mem::take(&mut file.gzip));
                ReadyFile {
                    account,
                    region,
                    key,
                    file,
                    gzip,
                    written: false,
                }
            })
            .collect()
    }

    fn apply_change(&mut self, change: &TrailChange) -> Result<Applied, SinkError> {
        let was_validating = digest::validating(self.state.config.as_ref(), self.state.logging);
        let Some(SinkState { config, logging }) = self.state.after(change) else {
            // Like CloudTrail, a deleted trail's chains end with a final
            // digest, if it can be written now: a deleted trail's sink
            // stops whatever its bucket does (gone, failing), so it is
            // not retried except in the second a chain was started.
            if was_validating && let Err(e) = self.write_digests(true) {
                if e.message.is_empty() {
                    return Err(e);
                }
                tracing::warn!(trail = %self.trail_arn, error = %e, "the deleted trail's final digest cannot be written; stopping without it");
            }
            self.ctx.meta.delete_digest_state(&self.trail_arn)?;
            self.pending_since_ms.store(0, Ordering::Relaxed);
            return Ok(Applied::Finished);
        };
        let validating = digest::validating(config.as_ref(), logging);
        if was_validating && !validating {
            // StopLogging or validation turned off: final digests end the
            // chains, under the configuration they were written with.
            if let Err(e) = self.write_digests(true) {
                let deleted = match &self.state.config {
                    Some(c) => self.deleted(c)?,
                    None => true,
                };
                if !deleted {
                    return Err(e);
                }
                // Deleted further on in the WAL: its Delete ends the chains.
            }
        }
        if config != self.state.config {
            self.compiled = config
                .as_ref()
                .and_then(|c| compile(c, &self.ctx.organization));
        }
        self.state = SinkState { config, logging };
        if validating {
            self.ensure_home_chain();
        }
        Ok(Applied::Continue)
    }

    /// Whether this incarnation of the trail was deleted (the metastore has
    /// no trail of that ARN, or one created later).
    fn deleted(&self, config: &TrailConfig) -> Result<bool, SinkError> {
        Ok(match self.ctx.meta.trail(&self.trail_arn)? {
            None => true,
            Some(t) => t.config.created_at != config.created_at,
        })
    }

    /// The files of the delivery in progress, finished from the batches once.
    fn ensure_ready(&mut self, config: &TrailConfig, intent: &DeliveryIntent) {
        if self.ready.is_none() {
            let files = self.finish_batches(config, intent);
            self.ready = Some(files);
        }
    }

    /// The bucket to deliver to: the trail's at the cursor; if that one is
    /// gone or refused a delivery for good, and the trail has since been
    /// given another that exists (UpdateTrail fixing the bucket, further on
    /// in the WAL, behind the delivery that cannot finish), that one, so the
    /// fix un-parks the sink at once instead of never being reached.
    fn destination_bucket(&self, config: &TrailConfig) -> Result<String, SinkError> {
        let bucket = &config.s3_bucket_name;
        let exists = self.ctx.meta.bucket(bucket)?.is_some();
        if exists && self.failed_bucket.as_deref() != Some(bucket.as_str()) {
            return Ok(bucket.clone());
        }
        if let Some(current) = self.ctx.meta.trail(&self.trail_arn)?
            && current.config.created_at == config.created_at
            && current.config.s3_bucket_name != *bucket
            && self
                .ctx
                .meta
                .bucket(&current.config.s3_bucket_name)?
                .is_some()
        {
            tracing::info!(trail = %self.trail_arn, from = %bucket, to = %current.config.s3_bucket_name, "bucket unusable; delivering to the trail's current bucket");
            return Ok(current.config.s3_bucket_name);
        }
        if exists {
            // Refused before, nothing better configured: try it again.
            return Ok(bucket.clone());
        }
        Err(SinkError::permanent(format!(
            "NoSuchBucket: The specified bucket does not exist: {bucket}"
        )))
    }
}

impl Sink for TrailSink {
    type State = SinkState;
    type Intent = DeliveryIntent;

    fn name(&self) -> &str {
        &self.name
    }

    fn accept(&mut self, entry: &Routed) -> Accept {
        match &entry.item {
            Item::Record(record) => self.offer(record),
            Item::Control(control) if control.trail_arn == self.trail_arn => {
                if control.change == TrailChange::Delete {
                    // A deleted trail delivers nothing more; what it had batched is dropped.
                    self.batches = self.batches.emptied();
                    self.batch_started = None;
                    self.oldest_ingest_ms = None;
                }
                Accept::Barrier
            }
            Item::Control(_) | Item::Lost | Item::Undecodable(_) => Accept::Skip,
        }
    }

    fn apply(&mut self, entry: &Routed) -> Result<Applied, SinkError> {
        match &entry.item {
            Item::Control(control) => self.apply_change(&control.change),
            _ => Ok(Applied::Continue),
        }
    }

    fn intent_end(intent: &DeliveryIntent) -> Lsn {
        intent.to
    }

    fn has_pending(&self) -> bool {
        !self.batches.is_empty() || self.ready.is_some()
    }

    fn full(&self) -> bool {
        self.batches.uncompressed_bytes() >= self.ctx.settings.max_batch_bytes
    }

    fn flush_due(&self) -> Option<Instant> {
        self.batch_started.map(|t| t + self.ctx.settings.interval)
    }

    fn plan(&mut self, to: Lsn) -> Result<DeliveryIntent, SinkError> {
        let Some(config) = self.state.config.clone() else {
            return Err(SinkError::permanent(
                "records batched for a trail without configuration",
            ));
        };
        let delivered_at = Utc::now();
        let org_id = self.organization_id(&config);
        let files = self
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
        Ok(DeliveryIntent {
            to,
            delivered_at,
            files,
        })
    }

    fn deliver(&mut self, intent: &DeliveryIntent, recovering: bool) -> Result<(), SinkError> {
        let Some(config) = self.state.config.clone() else {
            // Nothing can have been gathered without a configuration.
            self.batches = self.batches.emptied();
            return Ok(());
        };
        self.ensure_ready(&config, intent);
        if self.deleted(&config)? {
            // Deleted meanwhile (its Delete is further on in the WAL): a
            // deleted trail delivers nothing more, so a delivery that cannot
            // succeed (its bucket went with it) does not keep it alive.
            tracing::info!(trail = %self.trail_arn, "dropping the delivery of a deleted trail");
            self.ready = None;
            self.batch_started = None;
            self.oldest_ingest_ms = None;
            self.pending_since_ms.store(0, Ordering::Relaxed);
            return Ok(());
        }
        let bucket = self.destination_bucket(&config)?;
        if fault_denies(&bucket) {
            self.failed_bucket = Some(bucket.clone());
            return Err(SinkError::permanent(format!(
                "AccessDenied: Access Denied to bucket {bucket} (fault injection, {FAULT_DENY_BUCKET_VAR})"
            )));
        }
        for file in self.ready.iter_mut().flatten().filter(|f| !f.written) {
            let store = self.ctx.store.clone();
            // Bytes clones share the buffer: a retry does not copy the file.
            let (body, b, k) = (file.gzip.clone(), bucket.clone(), file.key.clone());
            let result: Result<(), cairn_store::Error> = self.ctx.runtime.block_on(async move {
                if fault_refuses(&k) {
                    return Err(cairn_store::Error::InvalidKey {
                        key: k,
                        reason: format!("refused by fault injection ({FAULT_REFUSE_KEY_VAR})"),
                    });
                }
                if recovering && store.exists(&b, &k).await? {
                    return Ok(());
                }
                store.put(&b, &k, body, &BTreeMap::new()).await
            });
            match result {
                Ok(()) => file.written = true,
                Err(e) if refuses_the_object(&e) => {
                    return Err(SinkError::undeliverable(file.key.clone(), e.to_string()));
                }
                Err(e) => {
                    let error = SinkError::from(e);
                    if error.kind == ErrorKind::Permanent {
                        self.failed_bucket = Some(bucket.clone());
                    }
                    return Err(error);
                }
            }
        }
        let ready = self.ready.as_deref().unwrap_or_default();
        let records: u64 = ready.iter().map(|f| f.file.records as u64).sum();
        let files = ready.len() as u64;
        let keys: Vec<String> = ready.iter().map(|f| f.key.clone()).collect();
        // Before the cursor moves: a crash in between re-delivers the same files
        // under the same keys, and recording them again changes nothing.
        if config.log_file_validation_enabled {
            let delivered: Vec<DigestLogFileEntry> = ready
                .iter()
                .map(|f| DigestLogFileEntry {
                    account: f.account.clone(),
                    region: f.region.clone(),
                    s3_bucket: bucket.clone(),
                    s3_object: f.key.clone(),
                    hash: f.file.sha256_hex.clone(),
                    oldest_event_time: f
                        .file
                        .oldest_event_time
                        .map(cairn_digest::document::format_time),
                    newest_event_time: f
                        .file
                        .newest_event_time
                        .map(cairn_digest::document::format_time),
                })
                .collect();
            self.ctx
                .meta
                .record_digest_log_files(&self.trail_arn, &delivered, Utc::now())?;
            self.refresh_digest_due();
        }
        self.failed_bucket = None;
        if config.sns_topic_name.is_some()
            && !keys.is_empty()
            && let Some(hook) = self.ctx.log_files_delivered.get()
        {
            hook(&config, &bucket, &keys);
        }
        Metrics::add(&self.ctx.metrics.delivered_records, records);
        Metrics::add(&self.ctx.metrics.delivered_files, files);
        self.ready = None;
        self.batch_started = None;
        self.oldest_ingest_ms = None;
        self.pending_since_ms.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn set_aside(&mut self, intent: &DeliveryIntent, part: &str) -> Option<Vec<Bytes>> {
        let config = self.state.config.clone()?;
        self.ensure_ready(&config, intent);
        let ready = self.ready.as_mut()?;
        let Some(index) = ready.iter().position(|f| f.key == part) else {
            // Not in this delivery (set aside already): nothing to take out.
            return Some(Vec::new());
        };
        let file = ready.remove(index);
        Some(records_of(&file.gzip))
    }

    fn state(&self) -> SinkState {
        self.state.clone()
    }

    fn report(&mut self, report: Report<'_>) {
        let now = Utc::now();
        let result = match report {
            Report::Delivered => self.ctx.meta.update_trail_status(&self.trail_arn, |s| {
                s.latest_delivery_time = Some(now);
                s.latest_delivery_attempt_time = Some(now);
                s.latest_delivery_attempt_succeeded = Some(now);
                s.latest_delivery_error = None;
            }),
            Report::Quarantined {
                part,
                reason,
                records,
            } => {
                let what = if part.is_empty() {
                    "a record".to_owned()
                } else {
                    format!("log file {part}")
                };
                let message = format!(
                    "{reason} ({what}, {records} record(s), set aside in the quarantine; see `cairn quarantine list`)"
                );
                Metrics::add(&self.ctx.metrics.quarantined_files, 1);
                self.ctx.meta.update_trail_status(&self.trail_arn, |s| {
                    s.latest_delivery_attempt_time = Some(now);
                    s.latest_delivery_error = Some(message);
                })
            }
            Report::Failed { error, .. } if error.message.is_empty() => return,
            Report::Failed {
                operation: Operation::Tick | Operation::Apply,
                error,
                ..
            } => {
                Metrics::add(&self.ctx.metrics.digest_failures, 1);
                self.ctx.meta.update_trail_status(&self.trail_arn, |s| {
                    s.latest_digest_delivery_error = Some(error.message.clone());
                })
            }
            Report::Failed { error, .. } => {
                Metrics::add(&self.ctx.metrics.delivery_failures, 1);
                self.ctx.meta.update_trail_status(&self.trail_arn, |s| {
                    s.latest_delivery_attempt_time = Some(now);
                    s.latest_delivery_error = Some(error.message.clone());
                })
            }
        };
        if let Err(e) = result {
            tracing::debug!(trail = %self.trail_arn, error = %e, "cannot record delivery status");
        }
    }

    fn next_tick(&self) -> Option<Instant> {
        let due = self.digest_due?;
        let wait = (due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        Some(Instant::now() + wait)
    }

    fn tick(&mut self) -> Result<(), SinkError> {
        self.write_digests(false)
    }
}
