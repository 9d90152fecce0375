//! Amazon Athena: query executions over the catalog's tables.
//!
//! `StartQueryExecution` queues a statement and answers its ID at once; the
//! statement runs on the blocking pool through the [`SqlEngine`] the binary
//! provides (the server does not build the engine), at most
//! [`CONCURRENT_QUERIES`] at a time, each within a time bound and
//! cancellable by `StopQueryExecution`. Its rows are written to the
//! `OutputLocation` as Athena writes them (`<id>.csv` and
//! `<id>.csv.metadata` for a query, `<id>.txt` for DDL) and kept in memory
//! for `GetQueryResults`. Executions are kept in memory (the newest
//! [`KEPT_EXECUTIONS`]); a restart forgets them, the result files stay.
//!
//! Only the `primary` workgroup exists, and it has no output location of
//! its own: every `StartQueryExecution` names one, as Athena requires then.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_catalog::{
    Answer, ObjectEntry, ObjectSource, QueryContext, SourceError, SqlEngine, SqlError,
    SqlErrorKind, s3_location,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::AwsError;
use crate::services::put_page;
use crate::state::{AppState, RequestContext};

/// Statements running at once; the rest wait, `QUEUED`.
pub const CONCURRENT_QUERIES: usize = 2;
/// Executions remembered for `GetQueryExecution` and `ListQueryExecutions`.
pub const KEPT_EXECUTIONS: usize = 1000;
/// Athena's default time bound of a DML query (30 minutes).
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The longest query string Athena accepts.
const MAX_QUERY_BYTES: usize = 262_144;
/// The only workgroup.
const PRIMARY: &str = "primary";

/// Athena's state: the engine, and the executions.
pub struct Athena {
    engine: Arc<dyn SqlEngine>,
    lake: Arc<crate::services::lake::LakeQueries>,
    executions: Mutex<Executions>,
    running: Arc<tokio::sync::Semaphore>,
    timeout: Duration,
}

impl std::fmt::Debug for Athena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Athena")
            .field("engine", &self.engine)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Executions {
    by_id: HashMap<String, Execution>,
    /// Oldest first.
    order: VecDeque<String>,
    /// `ClientRequestToken` → execution ID.
    tokens: HashMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Queued => "QUEUED",
            State::Running => "RUNNING",
            State::Succeeded => "SUCCEEDED",
            State::Failed => "FAILED",
            State::Cancelled => "CANCELLED",
        }
    }

    fn is_done(self) -> bool {
        matches!(self, State::Succeeded | State::Failed | State::Cancelled)
    }
}

#[derive(Clone)]
struct Execution {
    id: String,
    query: String,
    database: String,
    output_location: String,
    /// Set once known (DDL or DML).
    statement_type: &'static str,
    state: State,
    error: Option<SqlError>,
    submitted: DateTime<Utc>,
    started: Option<Instant>,
    submitted_at: Instant,
    completed: Option<DateTime<Utc>>,
    engine_millis: u64,
    total_millis: u64,
    queue_millis: u64,
    scanned_bytes: u64,
    answer: Option<Arc<Answer>>,
    cancel: Arc<AtomicBool>,
}

impl Athena {
    /// Athena over `engine`, each statement bounded by `timeout`.
    pub fn new(engine: Arc<dyn SqlEngine>, timeout: Duration) -> Self {
        Self {
            engine,
            lake: Arc::default(),
            executions: Mutex::new(Executions::default()),
            running: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_QUERIES)),
            timeout,
        }
    }

    /// The SQL engine.
    pub fn engine(&self) -> Arc<dyn SqlEngine> {
        self.engine.clone()
    }

    /// CloudTrail Lake's queries (they share the engine and its permits).
    pub fn lake_queries(&self) -> Arc<crate::services::lake::LakeQueries> {
        self.lake.clone()
    }

    /// The time bound of one statement.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The permits of statements running at once.
    pub fn permits(&self) -> Arc<tokio::sync::Semaphore> {
        self.running.clone()
    }

    fn executions(&self) -> std::sync::MutexGuard<'_, Executions> {
        self.executions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Execution)) {
        if let Some(execution) = self.executions().by_id.get_mut(id) {
            change(execution);
        }
    }

    fn get(&self, id: &str) -> Result<Execution, AwsError> {
        self.executions()
            .by_id
            .get(id)
            .cloned()
            .ok_or_else(|| invalid(format!("QueryExecution {id} was not found")))
    }
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidRequestException", message)
}

fn athena(state: &AppState) -> Result<&Arc<Athena>, AwsError> {
    state.athena.as_ref().ok_or_else(|| {
        invalid("This server was started without a SQL engine; Athena is not available")
    })
}

fn check_workgroup(workgroup: Option<&str>) -> Result<(), AwsError> {
    match workgroup {
        None | Some(PRIMARY) => Ok(()),
        Some(other) => Err(invalid(format!("WorkGroup {other} is not found."))),
    }
}

/// `StartQueryExecution`'s input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartQueryExecutionRequest {
    query_string: String,
    #[serde(default)]
    client_request_token: Option<String>,
    #[serde(default)]
    query_execution_context: Option<QueryExecutionContext>,
    #[serde(default)]
    result_configuration: Option<ResultConfiguration>,
    #[serde(default)]
    work_group: Option<String>,
    #[serde(default)]
    execution_parameters: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueryExecutionContext {
    #[serde(default)]
    database: Option<String>,
    #[serde(default)]
    catalog: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultConfiguration {
    #[serde(default)]
    output_location: Option<String>,
}

/// Queues a statement.
pub async fn start_query_execution(
    state: &AppState,
    _ctx: &RequestContext,
    input: StartQueryExecutionRequest,
) -> Result<Value, AwsError> {
    let athena = athena(state)?.clone();
    check_workgroup(input.work_group.as_deref())?;
    if input.query_string.trim().is_empty() || input.query_string.len() > MAX_QUERY_BYTES {
        return Err(invalid(format!(
            "QueryString must be 1 to {MAX_QUERY_BYTES} characters long"
        )));
    }
    if input.execution_parameters.is_some_and(|p| !p.is_empty()) {
        return Err(invalid(
            "ExecutionParameters are not supported; write the values into the query",
        ));
    }
    let context = input
        .query_execution_context
        .unwrap_or(QueryExecutionContext {
            database: None,
            catalog: None,
        });
    if let Some(catalog) = &context.catalog
        && !catalog.eq_ignore_ascii_case(cairn_catalog::DEFAULT_CATALOG)
    {
        return Err(invalid(format!("Catalog {catalog} is not found.")));
    }
    let output = input
        .result_configuration
        .and_then(|r| r.output_location)
        .ok_or_else(|| {
            invalid(
                "No output location provided. An output location is required either through \
                 the Workgroup result configuration setting or as an API input.",
            )
        })?;
    if s3_location(&output).is_none() {
        return Err(invalid(format!(
            "{output} is not a valid S3 path: it must be s3://bucket/prefix/"
        )));
    }
    if let Some(token) = &input.client_request_token {
        if token.len() < 32 || token.len() > 128 {
            return Err(invalid(
                "ClientRequestToken must be 32 to 128 characters long",
            ));
        }
        if let Some(id) = athena.executions().tokens.get(token) {
            return Ok(json!({ "QueryExecutionId": id }));
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let database = context
        .database
        .map(|d| d.to_ascii_lowercase())
        .unwrap_or_else(|| cairn_catalog::DEFAULT_DATABASE.to_owned());
    let execution = Execution {
        id: id.clone(),
        query: input.query_string.clone(),
        database,
        output_location: output,
        statement_type: statement_type_of(&input.query_string),
        state: State::Queued,
        error: None,
        submitted: Utc::now(),
        started: None,
        submitted_at: Instant::now(),
        completed: None,
        engine_millis: 0,
        total_millis: 0,
        queue_millis: 0,
        scanned_bytes: 0,
        answer: None,
        cancel: Arc::new(AtomicBool::new(false)),
    };
    {
        let mut executions = athena.executions();
        executions.by_id.insert(id.clone(), execution);
        executions.order.push_back(id.clone());
        if let Some(token) = input.client_request_token {
            executions.tokens.insert(token, id.clone());
        }
        while executions.order.len() > KEPT_EXECUTIONS {
            if let Some(old) = executions.order.pop_front() {
                executions.by_id.remove(&old);
                executions.tokens.retain(|_, v| *v != old);
            }
        }
    }
    tokio::spawn(run(state.clone(), athena, id.clone()));
    Ok(json!({ "QueryExecutionId": id }))
}

/// Athena's statement type from the statement's first word.
fn statement_type_of(query: &str) -> &'static str {
    let first = query
        .trim_start()
        .trim_start_matches('(')
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    match first.as_str() {
        "SELECT" | "WITH" | "VALUES" | "TABLE" => "DML",
        "INSERT" | "UPDATE" | "DELETE" | "MERGE" => "DML",
        _ => "DDL",
    }
}

/// Runs one queued execution to its end.
async fn run(state: AppState, athena: Arc<Athena>, id: String) {
    let Ok(_permit) = athena.running.clone().acquire_owned().await else {
        return;
    };
    let Ok(execution) = athena.get(&id) else {
        return;
    };
    if execution.cancel.load(Ordering::Relaxed) {
        return;
    }
    let started = Instant::now();
    athena.update(&id, |e| {
        e.state = State::Running;
        e.started = Some(started);
        e.queue_millis = millis(started - e.submitted_at);
    });
    let deadline = started + athena.timeout;
    let engine = athena.engine.clone();
    let meta = state.meta.clone();
    let objects = StoreObjects::new(&state);
    let cancel = execution.cancel.clone();
    let query = execution.query.clone();
    let database = execution.database.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        engine.execute(
            &query,
            &QueryContext {
                database: &database,
                catalog: meta.as_ref(),
                objects: &objects,
                cancel: &cancel,
                deadline: Some(deadline),
            },
        )
    })
    .await
    .unwrap_or_else(|e| {
        Err(SqlError::new(
            SqlErrorKind::Internal,
            format!("the query stopped unexpectedly: {e}"),
        ))
    });
    let engine_done = Instant::now();
    let outcome = match outcome {
        Ok(answer) => write_results(&state, &execution, &answer)
            .await
            .map(|location| (answer, location)),
        Err(e) => Err(e),
    };
    let finished = Instant::now();
    athena.update(&id, |e| {
        e.engine_millis = millis(engine_done - started);
        e.total_millis = millis(finished - e.submitted_at);
        e.completed = Some(Utc::now());
        match outcome {
            Ok((answer, location)) => {
                e.state = State::Succeeded;
                e.statement_type = answer.statement_type.as_str();
                e.scanned_bytes = answer.data_scanned_bytes;
                e.output_location = location;
                e.answer = Some(Arc::new(answer));
            }
            Err(error) if error.kind == SqlErrorKind::Cancelled => {
                e.state = State::Cancelled;
                e.error = Some(error);
            }
            Err(error) => {
                tracing::info!(query_execution_id = %e.id, error = %error.message, "query failed");
                e.state = State::Failed;
                e.error = Some(error);
            }
        }
    });
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Writes the answer where Athena writes it and returns the result file's
/// location: `<id>.csv` (header row, every value quoted, null empty) and
/// `<id>.csv.metadata` for a query; `<id>.txt` (tab-separated) for DDL.
async fn write_results(
    state: &AppState,
    execution: &Execution,
    answer: &Answer,
) -> Result<String, SqlError> {
    let Some((bucket, prefix)) = s3_location(&execution.output_location) else {
        return Err(SqlError::new(
            SqlErrorKind::Invalid,
            format!("{} is not an S3 location", execution.output_location),
        ));
    };
    let bucket = bucket.to_owned();
    let prefix = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    };
    let meta = state.meta.clone();
    let known = bucket.clone();
    let exists = tokio::task::spawn_blocking(move || meta.bucket(&known))
        .await
        .map_err(|e| SqlError::new(SqlErrorKind::Internal, e.to_string()))?
        .map_err(|e| SqlError::new(SqlErrorKind::Internal, e.to_string()))?
        .is_some();
    if !exists {
        return Err(SqlError::new(
            SqlErrorKind::LocationNotFound,
            format!("Unable to verify/create output bucket {bucket}: the bucket does not exist"),
        ));
    }
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    if answer.statement_type == cairn_catalog::StatementType::Dml {
        files.push((format!("{prefix}{}.csv", execution.id), csv(answer)));
        let metadata = serde_json::to_vec(&json!({
            "ColumnInfo": column_info(answer),
        }))
        .map_err(|e| SqlError::new(SqlErrorKind::Internal, e.to_string()))?;
        files.push((format!("{prefix}{}.csv.metadata", execution.id), metadata));
    } else {
        let mut text = String::new();
        for row in &answer.rows {
            let cells: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("")).collect();
            text.push_str(&cells.join("\t"));
            text.push('\n');
        }
        files.push((format!("{prefix}{}.txt", execution.id), text.into_bytes()));
    }
    let location = format!("s3://{bucket}/{}", files[0].0);
    for (key, body) in files {
        state
            .store
            .put(&bucket, &key, body.into(), &Default::default())
            .await
            .map_err(|e| {
                SqlError::new(
                    SqlErrorKind::Internal,
                    format!("Error writing the query results to s3://{bucket}/{key}: {e}"),
                )
            })?;
    }
    Ok(location)
}

/// The rows as Athena's result CSV.
fn csv(answer: &Answer) -> Vec<u8> {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::new();
    let header: Vec<String> = answer.columns.iter().map(|c| quote(&c.name)).collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for row in &answer.rows {
        let cells: Vec<String> = row
            .iter()
            .map(|c| c.as_deref().map(quote).unwrap_or_default())
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

/// Athena's `ColumnInfo` of the answer's columns.
fn column_info(answer: &Answer) -> Vec<Value> {
    answer
        .columns
        .iter()
        .map(|c| {
            let (precision, case_sensitive) = match c.type_name.as_str() {
                "varchar" => (2_147_483_647, true),
                "bigint" => (19, false),
                "integer" => (10, false),
                "double" => (17, false),
                "boolean" => (0, false),
                "timestamp" => (3, false),
                _ => (0, false),
            };
            json!({
                "CatalogName": "hive",
                "SchemaName": "",
                "TableName": "",
                "Name": c.name,
                "Label": c.name,
                "Type": c.type_name,
                "Precision": precision,
                "Scale": 0,
                "Nullable": "UNKNOWN",
                "CaseSensitive": case_sensitive,
            })
        })
        .collect()
}

fn epoch(t: DateTime<Utc>) -> Value {
    json!(t.timestamp_millis() as f64 / 1000.0)
}

/// The `QueryExecution` shape.
fn describe(execution: &Execution) -> Value {
    let mut status = json!({
        "State": execution.state.as_str(),
        "SubmissionDateTime": epoch(execution.submitted),
    });
    if let Some(done) = execution.completed {
        status["CompletionDateTime"] = epoch(done);
    }
    if let Some(error) = &execution.error {
        status["StateChangeReason"] = json!(error.message);
        let (category, error_type) = match error.kind {
            SqlErrorKind::Syntax | SqlErrorKind::Invalid => (2, 1000),
            SqlErrorKind::LocationNotFound => (2, 1003),
            SqlErrorKind::Catalog => (2, 1003),
            SqlErrorKind::ResourcesExhausted => (1, 0),
            SqlErrorKind::TimedOut => (2, 206),
            SqlErrorKind::Cancelled => (2, 1000),
            SqlErrorKind::Internal => (1, 100),
        };
        if error.kind != SqlErrorKind::Cancelled {
            status["AthenaError"] = json!({
                "ErrorCategory": category,
                "ErrorType": error_type,
                "Retryable": error.is_retriable(),
                "ErrorMessage": error.message,
            });
        }
    }
    let running_millis = execution
        .started
        .filter(|_| !execution.state.is_done())
        .map_or(execution.engine_millis, |s| millis(s.elapsed()));
    json!({
        "QueryExecutionId": execution.id,
        "Query": execution.query,
        "StatementType": execution.statement_type,
        "ResultConfiguration": {"OutputLocation": execution.output_location},
        "ResultReuseConfiguration": {"ResultReuseByAgeConfiguration": {"Enabled": false}},
        "QueryExecutionContext": {
            "Database": execution.database,
            "Catalog": cairn_catalog::DEFAULT_CATALOG.to_ascii_lowercase(),
        },
        "Status": status,
        "Statistics": {
            "EngineExecutionTimeInMillis": running_millis,
            "DataScannedInBytes": execution.scanned_bytes,
            "TotalExecutionTimeInMillis": execution.total_millis,
            "QueryQueueTimeInMillis": execution.queue_millis,
            "ServicePreProcessingTimeInMillis": 0,
            "QueryPlanningTimeInMillis": 0,
            "ServiceProcessingTimeInMillis": execution
                .total_millis
                .saturating_sub(execution.engine_millis + execution.queue_millis),
            "ResultReuseInformation": {"ReusedPreviousResult": false},
        },
        "WorkGroup": PRIMARY,
        "EngineVersion": {
            "SelectedEngineVersion": "AUTO",
            "EffectiveEngineVersion": "Athena engine version 3",
        },
    })
}

/// An input naming one execution.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryExecutionIdRequest {
    query_execution_id: String,
}

/// One execution's state and statistics.
pub async fn get_query_execution(
    state: &AppState,
    _ctx: &RequestContext,
    input: QueryExecutionIdRequest,
) -> Result<Value, AwsError> {
    let execution = athena(state)?.get(&input.query_execution_id)?;
    Ok(json!({ "QueryExecution": describe(&execution) }))
}

/// Cancels an execution (a finished one is left as it is).
pub async fn stop_query_execution(
    state: &AppState,
    _ctx: &RequestContext,
    input: QueryExecutionIdRequest,
) -> Result<Value, AwsError> {
    let athena = athena(state)?;
    let execution = athena.get(&input.query_execution_id)?;
    execution.cancel.store(true, Ordering::Relaxed);
    athena.update(&execution.id, |e| {
        if e.state == State::Queued {
            e.state = State::Cancelled;
            e.completed = Some(Utc::now());
            e.error = Some(SqlError::new(
                SqlErrorKind::Cancelled,
                "Query cancelled by the user",
            ));
        }
    });
    Ok(json!({}))
}

/// `GetQueryResults`'s input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetQueryResultsRequest {
    query_execution_id: String,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    max_results: Option<i64>,
}

/// A page of an execution's rows: for a query, the column names first.
pub async fn get_query_results(
    state: &AppState,
    _ctx: &RequestContext,
    input: GetQueryResultsRequest,
) -> Result<Value, AwsError> {
    let execution = athena(state)?.get(&input.query_execution_id)?;
    let answer = match execution.state {
        State::Succeeded => execution.answer.clone(),
        State::Failed | State::Cancelled => {
            let reason = execution
                .error
                .as_ref()
                .map_or_else(String::new, |e| e.message.clone());
            return Err(invalid(format!(
                "Query did not finish successfully. Final query state: {}. {reason}",
                execution.state.as_str()
            )));
        }
        State::Queued | State::Running => {
            return Err(invalid(format!(
                "Query has not yet finished. Current state: {}",
                execution.state.as_str()
            )));
        }
    };
    let answer = answer.ok_or_else(|| AwsError::internal("a succeeded query has no answer"))?;
    let max = match input.max_results {
        None => 1000,
        Some(n @ 1..=1000) => usize::try_from(n).unwrap_or(1000),
        Some(n) => {
            return Err(invalid(format!(
                "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 1000"
            )));
        }
    };
    let start = match &input.next_token {
        None => 0,
        Some(token) => token
            .parse::<usize>()
            .map_err(|_| invalid("The NextToken is not valid"))?,
    };
    let header = answer.header_row.then(|| {
        answer
            .columns
            .iter()
            .map(|c| Some(c.name.clone()))
            .collect::<Vec<_>>()
    });
    let total = answer.rows.len() + usize::from(header.is_some());
    let end = start.saturating_add(max).min(total);
    let mut rows = Vec::with_capacity(end.saturating_sub(start));
    for i in start..end {
        let row = match (&header, i) {
            (Some(h), 0) => h,
            (Some(_), i) => &answer.rows[i - 1],
            (None, i) => &answer.rows[i],
        };
        let data: Vec<Value> = row
            .iter()
            .map(|c| match c {
                Some(v) => json!({ "VarCharValue": v }),
                None => json!({}),
            })
            .collect();
        rows.push(json!({ "Data": data }));
    }
    let mut out = json!({
        "UpdateCount": 0,
        "ResultSet": {
            "Rows": rows,
            "ResultSetMetadata": {"ColumnInfo": column_info(&answer)},
        },
    });
    if end < total {
        out["NextToken"] = json!(end.to_string());
    }
    Ok(out)
}

/// `ListQueryExecutions`'s input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQueryExecutionsRequest {
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    max_results: Option<i64>,
    #[serde(default)]
    work_group: Option<String>,
}

/// Execution IDs, newest first.
pub async fn list_query_executions(
    state: &AppState,
    _ctx: &RequestContext,
    input: ListQueryExecutionsRequest,
) -> Result<Value, AwsError> {
    check_workgroup(input.work_group.as_deref())?;
    let max = match input.max_results {
        None => 50,
        Some(n @ 0..=50) => usize::try_from(n).unwrap_or(50),
        Some(_) => return Err(invalid("MaxResults must be at most 50")),
    };
    let start = match &input.next_token {
        None => 0,
        Some(token) => token
            .parse::<usize>()
            .map_err(|_| invalid("The NextToken is not valid"))?,
    };
    let ids: Vec<String> = athena(state)?
        .executions()
        .order
        .iter()
        .rev()
        .cloned()
        .collect();
    let mut out = json!({});
    put_page(&mut out, "QueryExecutionIds", &ids, start, max, |id| {
        json!(id)
    });
    Ok(out)
}

/// `BatchGetQueryExecution`'s input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetQueryExecutionRequest {
    query_execution_ids: Vec<String>,
}

/// Several executions at once; unknown IDs are listed as unprocessed.
pub async fn batch_get_query_execution(
    state: &AppState,
    _ctx: &RequestContext,
    input: BatchGetQueryExecutionRequest,
) -> Result<Value, AwsError> {
    if input.query_execution_ids.is_empty() || input.query_execution_ids.len() > 50 {
        return Err(invalid("QueryExecutionIds must list 1 to 50 IDs"));
    }
    let athena = athena(state)?;
    let mut found = Vec::new();
    let mut unprocessed = Vec::new();
    for id in &input.query_execution_ids {
        match athena.get(id) {
            Ok(execution) => found.push(describe(&execution)),
            Err(e) => unprocessed.push(json!({
                "QueryExecutionId": id,
                "ErrorCode": e.code,
                "ErrorMessage": e.message,
            })),
        }
    }
    Ok(json!({
        "QueryExecutions": found,
        "UnprocessedQueryExecutionIds": unprocessed,
    }))
}

/// `GetWorkGroup`'s input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetWorkGroupRequest {
    work_group: String,
}

/// The `primary` workgroup.
pub async fn get_work_group(
    _state: &AppState,
    _ctx: &RequestContext,
    input: GetWorkGroupRequest,
) -> Result<Value, AwsError> {
    check_workgroup(Some(&input.work_group))?;
    Ok(json!({
        "WorkGroup": {
            "Name": PRIMARY,
            "State": "ENABLED",
            "Configuration": {
                "EnforceWorkGroupConfiguration": false,
                "PublishCloudWatchMetricsEnabled": false,
                "RequesterPaysEnabled": false,
                "EngineVersion": {
                    "SelectedEngineVersion": "AUTO",
                    "EffectiveEngineVersion": "Athena engine version 3",
                },
            },
            "Description": "",
            "CreationTime": 0.0,
        }
    }))
}

/// The objects of Cairn's buckets, for the engine (call from the runtime).
pub(crate) fn store_objects(state: &AppState) -> impl ObjectSource + 'static {
    StoreObjects::new(state)
}

/// The objects of Cairn's buckets, for the engine: calls block on the
/// store's async API (the engine runs on the blocking pool).
struct StoreObjects {
    store: cairn_store::BucketStore,
    meta: Arc<cairn_meta::Metastore>,
    runtime: tokio::runtime::Handle,
}

impl StoreObjects {
    fn new(state: &AppState) -> Self {
        Self {
            store: state.store.clone(),
            meta: state.meta.clone(),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

fn source_error(error: impl std::fmt::Display) -> SourceError {
    SourceError {
        message: error.to_string(),
        not_found: false,
    }
}

impl ObjectSource for StoreObjects {
    fn bucket_exists(&self, bucket: &str) -> Result<bool, SourceError> {
        self.meta
            .bucket(bucket)
            .map(|b| b.is_some())
            .map_err(source_error)
    }

    fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectEntry>, SourceError> {
        if !self.bucket_exists(bucket)? {
            return Err(SourceError {
                message: format!("The bucket {bucket} does not exist"),
                not_found: true,
            });
        }
        let listed = self
            .runtime
            .block_on(self.store.list(bucket, prefix, None, None, usize::MAX))
            .map_err(source_error)?;
        Ok(listed
            .objects
            .into_iter()
            .map(|o| ObjectEntry {
                version: o.e_tag.clone().unwrap_or_else(|| {
                    o.last_modified
                        .timestamp_nanos_opt()
                        .unwrap_or(0)
                        .to_string()
                }),
                key: o.key,
                size: o.size,
            })
            .collect())
    }

    fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, SourceError> {
        self.runtime
            .block_on(self.store.get(bucket, key, None))
            .map(|object| object.body.to_vec())
            .map_err(source_error)
    }

    fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), SourceError> {
        self.runtime
            .block_on(
                self.store
                    .put(bucket, key, body.into(), &Default::default()),
            )
            .map_err(source_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_statement_types_follow_the_first_word() {
        assert_eq!(statement_type_of("  select 1"), "DML");
        assert_eq!(
            statement_type_of("WITH x AS (SELECT 1) SELECT * FROM x"),
            "DML"
        );
        assert_eq!(statement_type_of("(SELECT 1)"), "DML");
        assert_eq!(statement_type_of("CREATE EXTERNAL TABLE t"), "DDL");
        assert_eq!(statement_type_of("MSCK REPAIR TABLE t"), "DDL");
    }

    #[test]
    fn test_results_csv_quotes_every_value_and_leaves_null_empty() {
        let answer = Answer {
            statement_type: cairn_catalog::StatementType::Dml,
            columns: vec![
                cairn_catalog::ResultColumn {
                    name: "a".into(),
                    type_name: "varchar".into(),
                },
                cairn_catalog::ResultColumn {
                    name: "n".into(),
                    type_name: "bigint".into(),
                },
            ],
            rows: vec![vec![Some("say \"hi\", then".into()), None]],
            header_row: true,
            data_scanned_bytes: 0,
            events_scanned: 0,
        };
        assert_eq!(
            String::from_utf8(csv(&answer)).unwrap(),
            "\"a\",\"n\"\n\"say \"\"hi\"\", then\",\n"
        );
    }
}
