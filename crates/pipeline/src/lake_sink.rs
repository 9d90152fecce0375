//! The event-data-store writer: a sink (consumer `lake`) that puts the
//! records each CloudTrail Lake event data store selects into that store's
//! fresh files, where queries see them within a second or two.
//!
//! A store takes a record when it is ingesting, its scope includes the
//! record (its account or its organization's, its region or every region),
//! its advanced event selectors match (the same engine as trails), and the
//! record was ingested after the store was created, so a WAL range replayed
//! after a restart never feeds a store the records from before it existed.
//!
//! Each delivery writes one file per store, `lake/<id>/fresh/<to>.ndjson`
//! (one record per line, its exact bytes), named by the WAL position the
//! delivery ends at and announced before it is written: a delivery redone
//! after a crash rewrites the same names, so every record lands once. The
//! SQL engine compacts fresh files into the store's Parquet partitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use cairn_meta::{EventDataStoreRecord, EventDataStoreStatus};
use cairn_select::{
    CompiledSelectors, SelectorError, Selectors, TrailScope, parse_advanced_event_selectors,
};
use cairn_wal::Lsn;

use crate::route::{Item, Routed};
use crate::runtime::{Accept, Applied, Report, Sink, SinkError};

/// The WAL consumer name of the event-data-store writer.
pub const LAKE_CONSUMER: &str = "lake";
/// The directory of event data stores inside the data dir.
pub const LAKE_DIR: &str = "lake";
/// A store's directory of fresh (not yet compacted) files.
pub const FRESH_DIR: &str = "fresh";
/// How long the first waiting record waits for others: fresh events are
/// queryable within about this long of their acknowledgement.
const FLUSH_DELAY: Duration = Duration::from_millis(500);
/// Deliver early past this many waiting bytes.
const MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;

/// The directory of event data store `id` under the data dir.
pub fn store_dir(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join(LAKE_DIR).join(id)
}

/// The fresh file a delivery ending at `to` writes.
pub fn fresh_file_name(to: Lsn) -> String {
    format!("{to:020}.ndjson")
}

/// One event data store, as the writer sees it.
#[derive(Debug, Clone)]
pub struct LakeStore {
    /// Its ID.
    pub id: String,
    /// Whose events and which regions.
    pub scope: TrailScope,
    /// Its selectors.
    pub selectors: Arc<CompiledSelectors>,
    /// Whether it takes events now.
    pub ingesting: bool,
    /// Records ingested before this (ms since the epoch) are not its.
    pub created_ms: i64,
}

impl LakeStore {
    /// The writer's view of a store of the metastore; `organization` lists
    /// the organization's accounts.
    pub fn of(
        record: &EventDataStoreRecord,
        organization: &[String],
    ) -> Result<Self, SelectorError> {
        let selectors = Selectors::Advanced(parse_advanced_event_selectors(
            &record.advanced_event_selectors,
        )?);
        Ok(Self {
            id: record.id.clone(),
            scope: TrailScope {
                home_region: record.home_region.clone(),
                is_multi_region: record.multi_region_enabled,
                include_global_service_events: true,
                owner_account: record.account_id.clone(),
                is_organization_trail: record.organization_enabled,
                organization_accounts: organization.to_vec(),
            },
            selectors: Arc::new(CompiledSelectors::compile(&selectors)?),
            ingesting: record.status == EventDataStoreStatus::Enabled,
            created_ms: record.created_ms,
        })
    }
}

/// The stores the writer feeds, shared with the API that changes them.
#[derive(Debug, Clone, Default)]
pub struct LakeStores(Arc<RwLock<Arc<Vec<LakeStore>>>>);

impl LakeStores {
    /// Replaces the list.
    pub fn set(&self, stores: Vec<LakeStore>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(stores);
    }

    /// The list now; cheap (the writer takes it between deliveries, often).
    fn snapshot(&self) -> Arc<Vec<LakeStore>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A delivery: the WAL position it ends at, which names its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LakeIntent {
    /// Where the delivered records end.
    pub to: Lsn,
}

/// The event-data-store writer.
pub struct LakeSink {
    dir: PathBuf,
    stores: LakeStores,
    /// The list as of the last record looked at.
    current: Arc<Vec<LakeStore>>,
    /// Store ID → its waiting lines.
    pending: BTreeMap<String, Vec<u8>>,
    pending_bytes: usize,
    first_pending: Option<Instant>,
}

impl std::fmt::Debug for LakeSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeSink")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl LakeSink {
    /// A writer into `data_dir/lake/`, feeding `stores`.
    pub fn new(data_dir: &Path, stores: LakeStores) -> Self {
        Self {
            dir: data_dir.join(LAKE_DIR),
            current: stores.snapshot(),
            stores,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            first_pending: None,
        }
    }
}

impl Sink for LakeSink {
    type State = ();
    type Intent = LakeIntent;

    fn name(&self) -> &str {
        LAKE_CONSUMER
    }

    fn accept(&mut self, entry: &Routed) -> Accept {
        let Item::Record(record) = &entry.item else {
            return Accept::Skip;
        };
        if !self.has_pending() {
            // A list taken between deliveries: a store created or stopped
            // now applies from the next delivery on.
            self.current = self.stores.snapshot();
        }
        if !self.current.iter().any(|store| store.ingesting) {
            return Accept::Skip;
        }
        let Some(view) = record.view() else {
            return Accept::Skip;
        };
        let ingested = i64::try_from(record.ingest_time_ms).unwrap_or(i64::MAX);
        let mut taken = false;
        for store in self.current.iter() {
            if store.ingesting
                && ingested >= store.created_ms
                && store.scope.includes(&view)
                && store.selectors.matches(&view)
            {
                let lines = self.pending.entry(store.id.clone()).or_default();
                lines.extend_from_slice(record.json());
                lines.push(b'\n');
                self.pending_bytes += record.json().len() + 1;
                taken = true;
            }
        }
        if !taken {
            return Accept::Skip;
        }
        self.first_pending.get_or_insert_with(Instant::now);
        Accept::Buffered
    }

    fn apply(&mut self, _entry: &Routed) -> Result<Applied, SinkError> {
        Ok(Applied::Continue)
    }

    fn intent_end(intent: &LakeIntent) -> Lsn {
        intent.to
    }

    fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn full(&self) -> bool {
        self.pending_bytes >= MAX_PENDING_BYTES
    }

    fn flush_due(&self) -> Option<Instant> {
        self.first_pending.map(|t| t + FLUSH_DELAY)
    }

    fn plan(&mut self, to: Lsn) -> Result<LakeIntent, SinkError> {
        Ok(LakeIntent { to })
    }

    fn deliver(&mut self, intent: &LakeIntent, recovering: bool) -> Result<(), SinkError> {
        let name = fresh_file_name(intent.to);
        for (id, lines) in &self.pending {
            let fresh = self.dir.join(id).join(FRESH_DIR);
            let path = fresh.join(&name);
            // Written whole or not at all: one that exists is this delivery's.
            if recovering && path.exists() {
                continue;
            }
            std::fs::create_dir_all(&fresh).map_err(|e| {
                SinkError::retriable(format!("cannot create {}: {e}", fresh.display()))
            })?;
            crate::atomic::write_atomic(&fresh, &path, lines).map_err(|(at, e)| {
                SinkError::retriable(format!("cannot write {}: {e}", at.display()))
            })?;
        }
        self.pending.clear();
        self.pending_bytes = 0;
        self.first_pending = None;
        Ok(())
    }

    fn state(&self) {}

    fn report(&mut self, report: Report<'_>) {
        if let Report::Failed { error, .. } = report {
            tracing::warn!(error = %error, "cannot write to the event data stores");
        }
    }
}
