//! CloudTrail Lake: event data stores and their queries.
//!
//! A store lives in the metastore (its configuration and status) and in
//! `lake/<id>/` under the data dir (its events: see `cairn_query::lake`).
//! The `lake` WAL consumer feeds it through the same selector engine as
//! trails; a background task compacts its fresh files into Parquet
//! partitions every few seconds, drops partitions past its retention
//! period, and removes stores whose pending-deletion window (7 days) ended.
//!
//! Queries run like Athena's: queued, on the blocking pool through the SQL
//! engine, bounded in memory and time, cancellable; kept in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_catalog::{Answer, ImportProgress, ImportRequest, LakeTable, SqlError, SqlErrorKind};
use cairn_meta::{EventDataStoreRecord, EventDataStoreStatus};
use cairn_select::{
    SelectorTarget, parse_advanced_event_selectors, validate_advanced_event_selectors,
};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::AwsError;
use crate::services::{blocking, put_page};
use crate::state::{AppState, RequestContext};

/// Event data stores per account and region (CloudTrail's quota).
const MAX_STORES: usize = 10;
/// How long a deleted store can be restored.
const PENDING_DELETION_MS: i64 = 7 * 24 * 3600 * 1000;
/// How often stores are compacted.
const COMPACTION_PERIOD: Duration = Duration::from_secs(5);
/// Lake queries remembered.
const KEPT_QUERIES: usize = 1000;

fn client(code: &'static str, message: impl Into<String>) -> AwsError {
    AwsError::client(code, message)
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// The default selectors: every management event.
fn default_selectors() -> Value {
    json!([{
        "Name": "Default management events",
        "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]
    }])
}

fn check_selectors(selectors: &Value) -> Result<(), AwsError> {
    let parsed = parse_advanced_event_selectors(selectors)
        .map_err(|e| client("InvalidEventSelectorsException", e.to_string()))?;
    validate_advanced_event_selectors(&parsed, SelectorTarget::EventDataStore)
        .map_err(|e| client("InvalidEventSelectorsException", e.to_string()))
}

fn check_name(name: &str) -> Result<(), AwsError> {
    let valid = (3..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(client(
            "InvalidParameterException",
            format!(
                "Event data store name {name} is not valid: 3 to 128 letters, digits, periods, \
                 underscores and hyphens, starting with a letter or digit."
            ),
        ))
    }
}

fn check_retention(days: i64, billing_mode: &str) -> Result<(), AwsError> {
    let max = if billing_mode == "FIXED_RETENTION_PRICING" {
        2557
    } else {
        3653
    };
    if (7..=max).contains(&days) {
        Ok(())
    } else {
        Err(client(
            "InvalidParameterException",
            format!("RetentionPeriod must be 7 to {max} days for {billing_mode}."),
        ))
    }
}

fn check_organization(
    state: &AppState,
    ctx: &RequestContext,
    enabled: bool,
) -> Result<(), AwsError> {
    if !enabled {
        return Ok(());
    }
    let Some(org) = &state.settings.organization else {
        return Err(client(
            "OrganizationsNotInUseException",
            "This account is not a member of an organization.",
        ));
    };
    if org.management_account != ctx.account_id {
        return Err(client(
            "NotOrganizationMasterAccountException",
            format!(
                "The request was rejected because account {} is not the management account of organization {}.",
                ctx.account_id, org.id
            ),
        ));
    }
    Ok(())
}

/// Where a page starts and how long it is, from `MaxResults`-like and
/// `NextToken` members (`member` names the first in errors).
fn page_bounds(
    max: Option<i64>,
    token: Option<&str>,
    member: &str,
) -> Result<(usize, usize), AwsError> {
    let max = match max {
        None => 1000,
        Some(n @ 1..=1000) => usize::try_from(n).unwrap_or(1000),
        Some(_) => {
            return Err(client(
                "InvalidMaxResultsException",
                format!("{member} must be 1 to 1000."),
            ));
        }
    };
    let start = match token {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| client("InvalidNextTokenException", "The NextToken is not valid."))?,
    };
    Ok((start, max))
}

/// The shape CloudTrail answers with for a store.
fn describe(store: &EventDataStoreRecord) -> Value {
    let mut out = json!({
        "EventDataStoreArn": store.arn,
        "Name": store.name,
        "Status": store.status.as_str(),
        "AdvancedEventSelectors": store.advanced_event_selectors,
        "MultiRegionEnabled": store.multi_region_enabled,
        "OrganizationEnabled": store.organization_enabled,
        "RetentionPeriod": store.retention_period,
        "TerminationProtectionEnabled": store.termination_protection_enabled,
        "CreatedTimestamp": seconds(store.created_ms),
        "UpdatedTimestamp": seconds(store.updated_ms),
        "BillingMode": store.billing_mode,
    });
    if let Some(key) = &store.kms_key_id {
        out["KmsKeyId"] = json!(key);
    }
    out
}

/// The stores of the caller's account and region.
async fn stores_of(
    state: &AppState,
    ctx: &RequestContext,
) -> Result<Vec<EventDataStoreRecord>, AwsError> {
    let meta = state.meta.clone();
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    blocking(move || {
        Ok(meta
            .event_data_stores()?
            .into_iter()
            .filter(|s| s.account_id == account && s.home_region == region)
            .collect())
    })
    .await
}

/// The store an `EventDataStore` member names (its ARN or ID).
async fn find(
    state: &AppState,
    ctx: &RequestContext,
    named: &str,
) -> Result<EventDataStoreRecord, AwsError> {
    if named.starts_with("arn:")
        && !(named.starts_with("arn:aws:cloudtrail:") && named.contains(":eventdatastore/"))
    {
        return Err(client(
            "EventDataStoreARNInvalidException",
            format!("The specified event data store ARN is not valid: {named}"),
        ));
    }
    let id = named.rsplit('/').next().unwrap_or(named);
    stores_of(state, ctx)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| {
            client(
                "EventDataStoreNotFoundException",
                format!("The specified event data store {named} was not found."),
            )
        })
}

/// Saves a store and tells the writer.
async fn save(state: &AppState, store: EventDataStoreRecord, create: bool) -> Result<(), AwsError> {
    let meta = state.meta.clone();
    let pipeline = state.pipeline.clone();
    blocking(move || {
        if create {
            meta.create_event_data_store(&store)?;
        } else {
            meta.replace_event_data_store(&store)?;
        }
        pipeline.reload_event_data_stores()?;
        Ok(())
    })
    .await
}

/// `CreateEventDataStore`'s input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEventDataStoreRequest {
    name: String,
    #[serde(default)]
    advanced_event_selectors: Option<Value>,
    #[serde(default)]
    multi_region_enabled: Option<bool>,
    #[serde(default)]
    organization_enabled: Option<bool>,
    #[serde(default)]
    retention_period: Option<i64>,
    #[serde(default)]
    termination_protection_enabled: Option<bool>,
    #[serde(default)]
    tags_list: Option<Vec<TagInput>>,
    #[serde(default)]
    kms_key_id: Option<String>,
    #[serde(default)]
    start_ingestion: Option<bool>,
    #[serde(default)]
    billing_mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagInput {
    key: String,
    #[serde(default)]
    value: Option<String>,
}

fn billing_mode(mode: Option<String>) -> Result<String, AwsError> {
    match mode.as_deref() {
        None => Ok("EXTENDABLE_RETENTION_PRICING".to_owned()),
        Some(m @ ("EXTENDABLE_RETENTION_PRICING" | "FIXED_RETENTION_PRICING")) => Ok(m.to_owned()),
        Some(other) => Err(client(
            "InvalidParameterException",
            format!("BillingMode {other} is not valid."),
        )),
    }
}

/// Creates an event data store.
pub async fn create_event_data_store(
    state: &AppState,
    ctx: &RequestContext,
    input: CreateEventDataStoreRequest,
) -> Result<Value, AwsError> {
    check_name(&input.name)?;
    let selectors = input
        .advanced_event_selectors
        .unwrap_or_else(default_selectors);
    check_selectors(&selectors)?;
    let billing_mode = billing_mode(input.billing_mode)?;
    let retention =
        input
            .retention_period
            .unwrap_or(if billing_mode == "FIXED_RETENTION_PRICING" {
                2557
            } else {
                366
            });
    check_retention(retention, &billing_mode)?;
    let organization = input.organization_enabled.unwrap_or(false);
    check_organization(state, ctx, organization)?;
    let existing = stores_of(state, ctx).await?;
    if existing.iter().any(|s| s.name == input.name) {
        return Err(client(
            "EventDataStoreAlreadyExistsException",
            format!("An event data store named {} already exists.", input.name),
        ));
    }
    if existing.len() >= MAX_STORES {
        return Err(client(
            "EventDataStoreMaxLimitExceededException",
            format!(
                "Your account has the maximum of {MAX_STORES} event data stores in this region."
            ),
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_ms();
    let store = EventDataStoreRecord {
        arn: format!(
            "arn:aws:cloudtrail:{}:{}:eventdatastore/{id}",
            ctx.region, ctx.account_id
        ),
        id,
        name: input.name,
        account_id: ctx.account_id.clone(),
        home_region: ctx.region.clone(),
        status: if input.start_ingestion.unwrap_or(true) {
            EventDataStoreStatus::Enabled
        } else {
            EventDataStoreStatus::StoppedIngestion
        },
        advanced_event_selectors: selectors,
        multi_region_enabled: input.multi_region_enabled.unwrap_or(true),
        organization_enabled: organization,
        retention_period: retention,
        termination_protection_enabled: input.termination_protection_enabled.unwrap_or(true),
        kms_key_id: input.kms_key_id,
        billing_mode,
        tags: input
            .tags_list
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.key, t.value))
            .collect(),
        created_ms: now,
        updated_ms: now,
        deletion_requested_ms: None,
    };
    save(state, store.clone(), true).await?;
    let mut out = describe(&store);
    out["TagsList"] = json!(
        store
            .tags
            .iter()
            .map(|(k, v)| match v {
                Some(v) => json!({"Key": k, "Value": v}),
                None => json!({"Key": k}),
            })
            .collect::<Vec<_>>()
    );
    Ok(out)
}

/// An input naming one store.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventDataStoreRequest {
    event_data_store: String,
}

/// One store.
pub async fn get_event_data_store(
    state: &AppState,
    ctx: &RequestContext,
    input: EventDataStoreRequest,
) -> Result<Value, AwsError> {
    Ok(describe(&find(state, ctx, &input.event_data_store).await?))
}

/// `ListEventDataStores`' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListEventDataStoresRequest {
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    max_results: Option<i64>,
}

/// The stores of the account and region.
pub async fn list_event_data_stores(
    state: &AppState,
    ctx: &RequestContext,
    input: ListEventDataStoresRequest,
) -> Result<Value, AwsError> {
    let (start, max) = page_bounds(input.max_results, input.next_token.as_deref(), "MaxResults")?;
    let stores = stores_of(state, ctx).await?;
    let mut out = json!({});
    put_page(&mut out, "EventDataStores", &stores, start, max, describe);
    Ok(out)
}

/// `UpdateEventDataStore`'s input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateEventDataStoreRequest {
    event_data_store: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    advanced_event_selectors: Option<Value>,
    #[serde(default)]
    multi_region_enabled: Option<bool>,
    #[serde(default)]
    organization_enabled: Option<bool>,
    #[serde(default)]
    retention_period: Option<i64>,
    #[serde(default)]
    termination_protection_enabled: Option<bool>,
    #[serde(default)]
    kms_key_id: Option<String>,
    #[serde(default)]
    billing_mode: Option<String>,
}

fn inactive(store: &EventDataStoreRecord) -> AwsError {
    client(
        "InactiveEventDataStoreException",
        format!("The event data store {} is pending deletion.", store.arn),
    )
}

/// Changes a store's settings.
pub async fn update_event_data_store(
    state: &AppState,
    ctx: &RequestContext,
    input: UpdateEventDataStoreRequest,
) -> Result<Value, AwsError> {
    let mut store = find(state, ctx, &input.event_data_store).await?;
    if store.status == EventDataStoreStatus::PendingDeletion {
        return Err(inactive(&store));
    }
    if let Some(name) = input.name {
        check_name(&name)?;
        if name != store.name && stores_of(state, ctx).await?.iter().any(|s| s.name == name) {
            return Err(client(
                "EventDataStoreAlreadyExistsException",
                format!("An event data store named {name} already exists."),
            ));
        }
        store.name = name;
    }
    if let Some(selectors) = input.advanced_event_selectors {
        check_selectors(&selectors)?;
        store.advanced_event_selectors = selectors;
    }
    if let Some(mode) = input.billing_mode {
        store.billing_mode = billing_mode(Some(mode))?;
    }
    if let Some(days) = input.retention_period {
        store.retention_period = days;
    }
    check_retention(store.retention_period, &store.billing_mode)?;
    if let Some(enabled) = input.organization_enabled {
        check_organization(state, ctx, enabled)?;
        store.organization_enabled = enabled;
    }
    if let Some(v) = input.multi_region_enabled {
        store.multi_region_enabled = v;
    }
    if let Some(v) = input.termination_protection_enabled {
        store.termination_protection_enabled = v;
    }
    if input.kms_key_id.is_some() {
        store.kms_key_id = input.kms_key_id;
    }
    store.updated_ms = now_ms();
    save(state, store.clone(), false).await?;
    Ok(describe(&store))
}

/// Deletes a store: pending deletion for 7 days, then removed.
pub async fn delete_event_data_store(
    state: &AppState,
    ctx: &RequestContext,
    input: EventDataStoreRequest,
) -> Result<Value, AwsError> {
    let mut store = find(state, ctx, &input.event_data_store).await?;
    if store.status == EventDataStoreStatus::PendingDeletion {
        return Err(inactive(&store));
    }
    if store.termination_protection_enabled {
        return Err(client(
            "EventDataStoreTerminationProtectedException",
            format!(
                "The event data store {} cannot be deleted because termination protection is enabled.",
                store.arn
            ),
        ));
    }
    store.status = EventDataStoreStatus::PendingDeletion;
    store.deletion_requested_ms = Some(now_ms());
    store.updated_ms = now_ms();
    save(state, store, false).await?;
    Ok(json!({}))
}

/// Brings back a store pending deletion.
pub async fn restore_event_data_store(
    state: &AppState,
    ctx: &RequestContext,
    input: EventDataStoreRequest,
) -> Result<Value, AwsError> {
    let mut store = find(state, ctx, &input.event_data_store).await?;
    if store.status != EventDataStoreStatus::PendingDeletion {
        return Err(client(
            "InvalidEventDataStoreStatusException",
            format!(
                "The event data store {} is not pending deletion.",
                store.arn
            ),
        ));
    }
    store.status = EventDataStoreStatus::Enabled;
    store.deletion_requested_ms = None;
    store.updated_ms = now_ms();
    save(state, store.clone(), false).await?;
    Ok(describe(&store))
}

async fn set_ingestion(
    state: &AppState,
    ctx: &RequestContext,
    named: &str,
    from: EventDataStoreStatus,
    to: EventDataStoreStatus,
) -> Result<Value, AwsError> {
    let mut store = find(state, ctx, named).await?;
    if store.status != from {
        return Err(client(
            "InvalidEventDataStoreStatusException",
            format!(
                "The event data store {} is {}; it must be {}.",
                store.arn,
                store.status.as_str(),
                from.as_str()
            ),
        ));
    }
    store.status = to;
    store.updated_ms = now_ms();
    save(state, store, false).await?;
    Ok(json!({}))
}

/// Starts ingestion into a stopped store.
pub async fn start_event_data_store_ingestion(
    state: &AppState,
    ctx: &RequestContext,
    input: EventDataStoreRequest,
) -> Result<Value, AwsError> {
    set_ingestion(
        state,
        ctx,
        &input.event_data_store,
        EventDataStoreStatus::StoppedIngestion,
        EventDataStoreStatus::Enabled,
    )
    .await
}

/// Stops ingestion into a store (it stays queryable).
pub async fn stop_event_data_store_ingestion(
    state: &AppState,
    ctx: &RequestContext,
    input: EventDataStoreRequest,
) -> Result<Value, AwsError> {
    set_ingestion(
        state,
        ctx,
        &input.event_data_store,
        EventDataStoreStatus::Enabled,
        EventDataStoreStatus::StoppedIngestion,
    )
    .await
}

fn table_of(state: &AppState, store: &EventDataStoreRecord) -> LakeTable {
    LakeTable {
        id: store.id.clone(),
        dir: cairn_pipeline::lake_sink::store_dir(&state.data_dir, &store.id),
    }
}

/// Compacts every store every few seconds, drops partitions past their
/// retention and removes stores whose pending-deletion window ended; for as
/// long as the runtime runs.
pub fn spawn_compaction(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(COMPACTION_PERIOD);
        loop {
            tick.tick().await;
            let Some(athena) = state.athena.clone() else {
                continue;
            };
            let meta = state.meta.clone();
            let pipeline = state.pipeline.clone();
            let data_dir = state.data_dir.clone();
            let done = tokio::task::spawn_blocking(move || -> Result<(), String> {
                let today = Utc::now().format("%Y-%m-%d").to_string();
                for store in meta.event_data_stores().map_err(|e| e.to_string())? {
                    let dir = cairn_pipeline::lake_sink::store_dir(&data_dir, &store.id);
                    if store
                        .deletion_requested_ms
                        .is_some_and(|at| now_ms() - at > PENDING_DELETION_MS)
                    {
                        meta.remove_event_data_store(&store.arn).map_err(|e| e.to_string())?;
                        pipeline.reload_event_data_stores().map_err(|e| e.to_string())?;
                        std::fs::remove_dir_all(&dir).or_else(|e| {
                            if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e.to_string()) }
                        })?;
                        tracing::info!(event_data_store = %store.arn, "removed after its pending-deletion window");
                        continue;
                    }
                    let table = LakeTable { id: store.id.clone(), dir };
                    if let Err(e) = athena.engine().compact_lake(&table, store.retention_period, &today) {
                        tracing::warn!(event_data_store = %store.arn, error = %e, "cannot compact the event data store");
                    }
                }
                Ok(())
            })
            .await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "event data store maintenance failed"),
                Err(e) => tracing::warn!(error = %e, "event data store maintenance stopped"),
            }
        }
    });
}

// Queries.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryState {
    Queued,
    Running,
    Finished,
    Failed,
    Cancelled,
    TimedOut,
}

impl QueryState {
    fn as_str(self) -> &'static str {
        match self {
            QueryState::Queued => "QUEUED",
            QueryState::Running => "RUNNING",
            QueryState::Finished => "FINISHED",
            QueryState::Failed => "FAILED",
            QueryState::Cancelled => "CANCELLED",
            QueryState::TimedOut => "TIMED_OUT",
        }
    }

    fn is_done(self) -> bool {
        !matches!(self, QueryState::Queued | QueryState::Running)
    }
}

#[derive(Clone)]
struct LakeQuery {
    id: String,
    statement: String,
    alias: Option<String>,
    stores: Vec<String>,
    state: QueryState,
    error: Option<String>,
    created_ms: i64,
    execution_ms: u64,
    answer: Option<Arc<Answer>>,
    cancel: Arc<AtomicBool>,
}

/// The Lake queries and imports of this server (kept in memory).
#[derive(Default)]
pub struct LakeQueries {
    by_id: Mutex<(HashMap<String, LakeQuery>, VecDeque<String>)>,
    imports: Mutex<Vec<ImportJob>>,
}

impl std::fmt::Debug for LakeQueries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeQueries").finish_non_exhaustive()
    }
}

impl LakeQueries {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<String, LakeQuery>, VecDeque<String>)> {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: Option<&str>, alias: Option<&str>) -> Result<LakeQuery, AwsError> {
        let queries = self.lock();
        let found = match (id, alias) {
            (Some(id), _) => queries.0.get(id).cloned(),
            (None, Some(alias)) => queries
                .1
                .iter()
                .rev()
                .filter_map(|id| queries.0.get(id))
                .find(|q| q.alias.as_deref() == Some(alias))
                .cloned(),
            (None, None) => None,
        };
        found.ok_or_else(|| {
            client(
                "QueryIdNotFoundException",
                "The query ID does not exist or does not map to a query.",
            )
        })
    }

    fn imports(&self) -> std::sync::MutexGuard<'_, Vec<ImportJob>> {
        self.imports.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put_import(&self, job: ImportJob) {
        let mut imports = self.imports();
        imports.retain(|j| j.id != job.id);
        imports.push(job);
        if imports.len() > KEPT_QUERIES {
            imports.remove(0);
        }
    }

    fn update_import(&self, id: &str, change: &dyn Fn(&mut ImportJob)) {
        if let Some(job) = self.imports().iter_mut().find(|j| j.id == id) {
            change(job);
        }
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut LakeQuery)) {
        if let Some(q) = self.lock().0.get_mut(id) {
            change(q);
        }
    }
}

/// `StartQuery`'s input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartQueryRequest {
    #[serde(default)]
    query_statement: Option<String>,
    #[serde(default)]
    query_alias: Option<String>,
    #[serde(default)]
    delivery_s3_uri: Option<String>,
    #[serde(default)]
    query_parameters: Option<Vec<String>>,
}

fn lake_parts(
    state: &AppState,
) -> Result<(Arc<crate::services::athena::Athena>, Arc<LakeQueries>), AwsError> {
    let athena = state.athena.clone().ok_or_else(|| {
        client("UnsupportedOperationException", "This server was started without a SQL engine; CloudTrail Lake queries are not available")
    })?;
    let queries = athena.lake_queries();
    Ok((athena, queries))
}

/// Starts a query; its syntax and the stores it names are checked first.
pub async fn start_query(
    state: &AppState,
    ctx: &RequestContext,
    input: StartQueryRequest,
) -> Result<Value, AwsError> {
    let (athena, queries) = lake_parts(state)?;
    let Some(statement) = input.query_statement.filter(|s| !s.trim().is_empty()) else {
        return Err(client(
            "InvalidParameterException",
            "QueryStatement is required.",
        ));
    };
    if statement.len() > 10_000 {
        return Err(client(
            "InvalidQueryStatementException",
            "The query statement is longer than 10000 characters.",
        ));
    }
    if input.delivery_s3_uri.is_some() || input.query_parameters.is_some_and(|p| !p.is_empty()) {
        return Err(client(
            "UnsupportedOperationException",
            "DeliveryS3Uri and QueryParameters are not supported yet.",
        ));
    }
    let stores = stores_of(state, ctx).await?;
    let named: Vec<&EventDataStoreRecord> = stores
        .iter()
        .filter(|s| statement.contains(&s.id))
        .collect();
    if named.is_empty() {
        return Err(client(
            "EventDataStoreNotFoundException",
            "The query names no event data store of this account and region: write FROM <event data store ID>.",
        ));
    }
    if let Some(store) = named
        .iter()
        .find(|s| s.status == EventDataStoreStatus::PendingDeletion)
    {
        return Err(inactive(store));
    }
    let tables: Vec<LakeTable> = named.iter().map(|s| table_of(state, s)).collect();
    let engine = athena.engine();
    let (checked, check_tables) = (statement.clone(), tables.clone());
    blocking(move || {
        engine
            .check_lake(&checked, &check_tables)
            .map_err(|e| client("InvalidQueryStatementException", e.message))
    })
    .await?;
    let id = uuid::Uuid::new_v4().to_string();
    let query = LakeQuery {
        id: id.clone(),
        statement: statement.clone(),
        alias: input.query_alias,
        stores: named.iter().map(|s| s.id.clone()).collect(),
        state: QueryState::Queued,
        error: None,
        created_ms: now_ms(),
        execution_ms: 0,
        answer: None,
        cancel: Arc::new(AtomicBool::new(false)),
    };
    let cancel = query.cancel.clone();
    {
        let mut all = queries.lock();
        all.0.insert(id.clone(), query);
        all.1.push_back(id.clone());
        while all.1.len() > KEPT_QUERIES {
            if let Some(old) = all.1.pop_front() {
                all.0.remove(&old);
            }
        }
    }
    let timeout = athena.timeout();
    let running = athena.permits();
    let task_id = id.clone();
    tokio::spawn(async move {
        let Ok(_permit) = running.acquire_owned().await else {
            return;
        };
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        queries.update(&task_id, |q| q.state = QueryState::Running);
        let started = Instant::now();
        let engine = athena.engine();
        let flag = cancel.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            engine.execute_lake(&statement, &tables, &flag, Some(started + timeout))
        })
        .await
        .unwrap_or_else(|e| Err(SqlError::new(SqlErrorKind::Internal, e.to_string())));
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        queries.update(&task_id, |q| {
            q.execution_ms = elapsed;
            match outcome {
                Ok(answer) => {
                    q.state = QueryState::Finished;
                    q.answer = Some(Arc::new(answer));
                }
                Err(e) => {
                    q.state = match e.kind {
                        SqlErrorKind::Cancelled => QueryState::Cancelled,
                        SqlErrorKind::TimedOut => QueryState::TimedOut,
                        _ => QueryState::Failed,
                    };
                    q.error = Some(e.message);
                }
            }
        });
    });
    Ok(json!({ "QueryId": id }))
}

/// An input naming a query (by ID or alias).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryRequest {
    #[serde(default)]
    query_id: Option<String>,
    #[serde(default)]
    query_alias: Option<String>,
    #[serde(default)]
    event_data_store: Option<String>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    max_query_results: Option<i64>,
}

fn statistics(query: &LakeQuery) -> Value {
    let answer = query.answer.as_deref();
    json!({
        "EventsMatched": answer.map_or(0, |a| a.rows.len()),
        "EventsScanned": answer.map_or(0, |a| a.events_scanned),
        "BytesScanned": answer.map_or(0, |a| a.data_scanned_bytes),
        "ExecutionTimeInMillis": query.execution_ms,
        "CreationTime": seconds(query.created_ms),
    })
}

async fn check_named_store(
    state: &AppState,
    ctx: &RequestContext,
    input: &QueryRequest,
) -> Result<(), AwsError> {
    if let Some(named) = &input.event_data_store {
        find(state, ctx, named).await?;
    }
    Ok(())
}

/// A query's status and statistics.
pub async fn describe_query(
    state: &AppState,
    ctx: &RequestContext,
    input: QueryRequest,
) -> Result<Value, AwsError> {
    check_named_store(state, ctx, &input).await?;
    let (_, queries) = lake_parts(state)?;
    let query = queries.get(input.query_id.as_deref(), input.query_alias.as_deref())?;
    let mut out = json!({
        "QueryId": query.id,
        "QueryString": query.statement,
        "QueryStatus": query.state.as_str(),
        "QueryStatistics": statistics(&query),
    });
    if let Some(error) = &query.error {
        out["ErrorMessage"] = json!(error);
    }
    Ok(out)
}

/// A page of a query's rows: each row a list of `{column: value}`.
pub async fn get_query_results(
    state: &AppState,
    ctx: &RequestContext,
    input: QueryRequest,
) -> Result<Value, AwsError> {
    check_named_store(state, ctx, &input).await?;
    let (_, queries) = lake_parts(state)?;
    let query = queries.get(input.query_id.as_deref(), None)?;
    let (start, max) = page_bounds(
        input.max_query_results,
        input.next_token.as_deref(),
        "MaxQueryResults",
    )?;
    let mut out = json!({ "QueryStatus": query.state.as_str() });
    if let Some(error) = &query.error {
        out["ErrorMessage"] = json!(error);
    }
    let Some(answer) = query.answer.as_deref() else {
        out["QueryStatistics"] =
            json!({"ResultsCount": 0, "TotalResultsCount": 0, "BytesScanned": 0});
        out["QueryResultRows"] = json!([]);
        return Ok(out);
    };
    let results = put_page(
        &mut out,
        "QueryResultRows",
        &answer.rows,
        start,
        max,
        |row| {
            Value::Array(
                answer
                    .columns
                    .iter()
                    .zip(row)
                    .filter_map(|(c, v)| v.as_ref().map(|v| json!({ c.name.clone(): v })))
                    .collect(),
            )
        },
    );
    out["QueryStatistics"] = json!({
        "ResultsCount": results,
        "TotalResultsCount": answer.rows.len(),
        "BytesScanned": answer.data_scanned_bytes,
    });
    Ok(out)
}

/// Cancels a queued or running query.
pub async fn cancel_query(
    state: &AppState,
    ctx: &RequestContext,
    input: QueryRequest,
) -> Result<Value, AwsError> {
    check_named_store(state, ctx, &input).await?;
    let (_, queries) = lake_parts(state)?;
    let query = queries.get(input.query_id.as_deref(), None)?;
    if query.state.is_done() {
        return Err(client(
            "InactiveQueryException",
            format!(
                "The query {} is {} and cannot be cancelled.",
                query.id,
                query.state.as_str()
            ),
        ));
    }
    query.cancel.store(true, Ordering::Relaxed);
    queries.update(&query.id, |q| {
        if q.state == QueryState::Queued {
            q.state = QueryState::Cancelled;
        }
    });
    Ok(json!({ "QueryId": query.id, "QueryStatus": "CANCELLED" }))
}

/// `ListQueries`' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQueriesRequest {
    event_data_store: String,
    #[serde(default)]
    query_status: Option<String>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    max_results: Option<i64>,
}

/// The queries of a store, newest first.
pub async fn list_queries(
    state: &AppState,
    ctx: &RequestContext,
    input: ListQueriesRequest,
) -> Result<Value, AwsError> {
    let store = find(state, ctx, &input.event_data_store).await?;
    let (_, queries) = lake_parts(state)?;
    let (start, max) = page_bounds(input.max_results, input.next_token.as_deref(), "MaxResults")?;
    let listed: Vec<Value> = {
        let all = queries.lock();
        all.1
            .iter()
            .rev()
            .filter_map(|id| all.0.get(id))
            .filter(|q| q.stores.contains(&store.id))
            .filter(|q| input.query_status.as_deref().is_none_or(|s| s == q.state.as_str()))
            .map(|q| json!({"QueryId": q.id, "QueryStatus": q.state.as_str(), "CreationTime": seconds(q.created_ms)}))
            .collect()
    };
    let mut out = json!({});
    put_page(&mut out, "Queries", &listed, start, max, Value::clone);
    Ok(out)
}

// Imports.

#[derive(Clone)]
struct ImportJob {
    id: String,
    destinations: Vec<String>,
    source_uri: String,
    source_region: String,
    role_arn: String,
    start_event_time: Option<i64>,
    end_event_time: Option<i64>,
    status: &'static str,
    created_ms: i64,
    updated_ms: i64,
    progress: ImportProgress,
    cancel: Arc<AtomicBool>,
}

fn describe_import(job: &ImportJob, statistics: bool) -> Value {
    let mut out = json!({
        "ImportId": job.id,
        "Destinations": job.destinations,
        "ImportSource": {"S3": {
            "S3LocationUri": job.source_uri,
            "S3BucketRegion": job.source_region,
            "S3BucketAccessRoleArn": job.role_arn,
        }},
        "ImportStatus": job.status,
        "CreatedTimestamp": seconds(job.created_ms),
        "UpdatedTimestamp": seconds(job.updated_ms),
    });
    if let Some(t) = job.start_event_time {
        out["StartEventTime"] = seconds(t);
    }
    if let Some(t) = job.end_event_time {
        out["EndEventTime"] = seconds(t);
    }
    if statistics {
        out["ImportStatistics"] = json!({
            "PrefixesFound": 1,
            "PrefixesCompleted": u64::from(job.status == "COMPLETED"),
            "FilesCompleted": job.progress.files_completed,
            "EventsCompleted": job.progress.events_completed,
            "FailedEntries": job.progress.failed_entries,
        });
    }
    out
}

/// `StartImport`'s input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartImportRequest {
    #[serde(default)]
    destinations: Option<Vec<String>>,
    #[serde(default)]
    import_source: Option<ImportSourceInput>,
    #[serde(default)]
    start_event_time: Option<f64>,
    #[serde(default)]
    end_event_time: Option<f64>,
    #[serde(default)]
    import_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImportSourceInput {
    #[serde(rename = "S3")]
    s3: S3ImportSourceInput,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct S3ImportSourceInput {
    #[serde(rename = "S3LocationUri")]
    s3_location_uri: String,
    #[serde(rename = "S3BucketRegion")]
    s3_bucket_region: String,
    #[serde(rename = "S3BucketAccessRoleArn")]
    s3_bucket_access_role_arn: String,
}

fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Imports CloudTrail log files from a bucket prefix into event data stores.
pub async fn start_import(
    state: &AppState,
    ctx: &RequestContext,
    input: StartImportRequest,
) -> Result<Value, AwsError> {
    let (athena, queries) = lake_parts(state)?;
    if let Some(id) = &input.import_id {
        // Restarting a stopped or failed import runs it again.
        let job = import_of(&queries, id)?;
        if job.status == "IN_PROGRESS" || job.status == "INITIALIZING" {
            return Err(client(
                "InvalidParameterException",
                format!("The import {id} is in progress."),
            ));
        }
    }
    let source = input
        .import_source
        .ok_or_else(|| client("InvalidParameterException", "ImportSource is required."))?;
    let destinations = input
        .destinations
        .filter(|d| !d.is_empty())
        .ok_or_else(|| client("InvalidParameterException", "Destinations is required."))?;
    let Some((bucket, prefix)) = cairn_catalog::s3_location(&source.s3.s3_location_uri) else {
        return Err(client(
            "InvalidParameterException",
            format!("{} is not an s3:// location.", source.s3.s3_location_uri),
        ));
    };
    let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
    let meta = state.meta.clone();
    let known = bucket.clone();
    if blocking(move || Ok(meta.bucket(&known)?)).await?.is_none() {
        return Err(client(
            "AccessDeniedException",
            format!("The bucket {bucket} does not exist or cannot be read."),
        ));
    }
    let mut tables = Vec::new();
    for destination in &destinations {
        let store = find(state, ctx, destination).await?;
        if store.status == EventDataStoreStatus::PendingDeletion {
            return Err(inactive(&store));
        }
        tables.push(table_of(state, &store));
    }
    let now = now_ms();
    let to_ms = |s: f64| (s * 1000.0) as i64;
    let job = ImportJob {
        id: input
            .import_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        destinations,
        source_uri: source.s3.s3_location_uri,
        source_region: source.s3.s3_bucket_region,
        role_arn: source.s3.s3_bucket_access_role_arn,
        start_event_time: input.start_event_time.map(to_ms),
        end_event_time: input.end_event_time.map(to_ms),
        status: "INITIALIZING",
        created_ms: now,
        updated_ms: now,
        progress: ImportProgress::default(),
        cancel: Arc::new(AtomicBool::new(false)),
    };
    queries.put_import(job.clone());
    let answer = describe_import(&job, false);
    let objects = crate::services::athena::store_objects(state);
    let engine = athena.engine();
    let id = job.id.clone();
    tokio::task::spawn_blocking(move || {
        let update = |change: &dyn Fn(&mut ImportJob)| queries.update_import(&id, change);
        update(&|j| {
            j.status = "IN_PROGRESS";
            j.updated_ms = now_ms();
        });
        let mut outcome: Result<(), SqlError> = Ok(());
        for table in &tables {
            let progress = |p: &ImportProgress| {
                let p = p.clone();
                queries.update_import(&id, &move |j: &mut ImportJob| j.progress = p.clone());
            };
            let request = ImportRequest {
                objects: &objects,
                bucket: &bucket,
                prefix: &prefix,
                start_event_time: job.start_event_time.and_then(rfc3339),
                end_event_time: job.end_event_time.and_then(rfc3339),
                cancel: &job.cancel,
                progress: &progress,
            };
            if let Err(e) = engine.import_lake(table, &request) {
                outcome = Err(e);
                break;
            }
        }
        let stopped = job.cancel.load(Ordering::Relaxed);
        update(&|j| {
            j.updated_ms = now_ms();
            j.status = match (&outcome, stopped) {
                (_, true) => "STOPPED",
                (Ok(()), false) => "COMPLETED",
                (Err(_), false) => "FAILED",
            };
        });
        if let Err(e) = &outcome {
            tracing::warn!(import_id = %id, error = %e, "the import failed");
        }
    });
    Ok(answer)
}

/// An input naming an import.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportIdRequest {
    import_id: String,
}

fn import_of(queries: &LakeQueries, id: &str) -> Result<ImportJob, AwsError> {
    queries
        .imports()
        .iter()
        .find(|j| j.id == id)
        .cloned()
        .ok_or_else(|| {
            client(
                "ImportNotFoundException",
                format!("The import {id} was not found."),
            )
        })
}

/// One import and its statistics.
pub async fn get_import(
    state: &AppState,
    _ctx: &RequestContext,
    input: ImportIdRequest,
) -> Result<Value, AwsError> {
    let (_, queries) = lake_parts(state)?;
    Ok(describe_import(
        &import_of(&queries, &input.import_id)?,
        true,
    ))
}

/// Stops an import in progress (what it read is not added).
pub async fn stop_import(
    state: &AppState,
    _ctx: &RequestContext,
    input: ImportIdRequest,
) -> Result<Value, AwsError> {
    let (_, queries) = lake_parts(state)?;
    let job = import_of(&queries, &input.import_id)?;
    job.cancel.store(true, Ordering::Relaxed);
    Ok(describe_import(
        &import_of(&queries, &input.import_id)?,
        true,
    ))
}

/// `ListImports`' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListImportsRequest {
    #[serde(default)]
    destination: Option<String>,
    #[serde(default)]
    import_status: Option<String>,
}

/// The imports, newest first.
pub async fn list_imports(
    state: &AppState,
    _ctx: &RequestContext,
    input: ListImportsRequest,
) -> Result<Value, AwsError> {
    let (_, queries) = lake_parts(state)?;
    let imports: Vec<Value> = queries
        .imports()
        .iter()
        .rev()
        .filter(|j| {
            input.destination.as_ref().is_none_or(|d| {
                j.destinations
                    .iter()
                    .any(|x| x == d || x.ends_with(&format!("/{d}")))
            })
        })
        .filter(|j| input.import_status.as_deref().is_none_or(|s| s == j.status))
        .map(|j| {
            json!({
                "ImportId": j.id,
                "ImportStatus": j.status,
                "Destinations": j.destinations,
                "CreatedTimestamp": seconds(j.created_ms),
                "UpdatedTimestamp": seconds(j.updated_ms),
            })
        })
        .collect();
    Ok(json!({ "Imports": imports }))
}
