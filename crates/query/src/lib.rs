//! SQL over CloudTrail records, with the Trino dialect Athena and CloudTrail
//! Lake queries are written in, on DataFusion.
//!
//! * [`schema`]: the Arrow schema of Athena's CloudTrail table and the
//!   conversion of records into it (Cairn's own: realistic records defeat
//!   schema inference).
//! * [`functions`]: the Trino functions DataFusion lacks.
//! * [`Engine`]: a DataFusion session with those functions, Athena's
//!   case-insensitive identifiers, `resources[1].arn` on lists of structs,
//!   and a memory bound; it runs one statement and collects the rows.
//! * [`logs`]: a directory of CloudTrail log files converted once into a
//!   cached Parquet copy, for `cairn query --logs`.
//!
//! DataFusion is a large dependency tree: only this crate depends on it.

/// The methods of `AggregateUDFImpl` that a wrapper of one of DataFusion's
/// aggregate functions (its field `inner`) passes on as they are: the
/// wrappers (`count_distinct`, `min_max`) change only which accumulator
/// runs, never the function's name, signature, result or what the planner
/// knows of it.
macro_rules! pass_aggregate_to_inner {
    () => {
        fn name(&self) -> &str {
            self.inner.name()
        }

        fn aliases(&self) -> &[String] {
            self.inner.aliases()
        }

        fn signature(&self) -> &datafusion::logical_expr::Signature {
            self.inner.signature()
        }

        fn return_type(
            &self,
            arg_types: &[datafusion::arrow::datatypes::DataType],
        ) -> datafusion::common::Result<datafusion::arrow::datatypes::DataType> {
            self.inner.return_type(arg_types)
        }

        fn coerce_types(
            &self,
            arg_types: &[datafusion::arrow::datatypes::DataType],
        ) -> datafusion::common::Result<Vec<datafusion::arrow::datatypes::DataType>> {
            self.inner.coerce_types(arg_types)
        }

        fn is_nullable(&self) -> bool {
            self.inner.is_nullable()
        }

        fn is_descending(&self) -> Option<bool> {
            self.inner.is_descending()
        }

        fn order_sensitivity(&self) -> datafusion::logical_expr::utils::AggregateOrderSensitivity {
            self.inner.order_sensitivity()
        }

        fn reverse_expr(&self) -> datafusion::logical_expr::ReversedUDAF {
            self.inner.reverse_expr()
        }

        fn default_value(
            &self,
            data_type: &datafusion::arrow::datatypes::DataType,
        ) -> datafusion::common::Result<datafusion::common::ScalarValue> {
            self.inner.default_value(data_type)
        }

        fn value_from_stats(
            &self,
            statistics_args: &datafusion::logical_expr::StatisticsArgs,
        ) -> Option<datafusion::common::ScalarValue> {
            self.inner.value_from_stats(statistics_args)
        }

        fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
            self.inner.documentation()
        }

        fn set_monotonicity(
            &self,
            data_type: &datafusion::arrow::datatypes::DataType,
        ) -> datafusion::logical_expr::SetMonotonicity {
            self.inner.set_monotonicity(data_type)
        }

        fn create_sliding_accumulator(
            &self,
            args: datafusion::logical_expr::function::AccumulatorArgs,
        ) -> datafusion::common::Result<Box<dyn datafusion::logical_expr::Accumulator>> {
            self.inner.create_sliding_accumulator(args)
        }
    };
}

pub mod athena;
mod count_distinct;
pub mod functions;
pub mod lake;
mod local_files;
pub mod logs;
mod min_max;
mod plan;
pub mod render;
pub mod schema;
mod statistics_file;

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::cache::cache_manager::{
    CacheManagerConfig, FileMetadataCache, FileStatisticsCache,
};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    AccessExpr, Expr as SqlExpr, Ident, SelectItem, SetExpr, Statement as SqlStatement,
    Value as SqlValue, ValueWithSpan, visit_expressions_mut,
};

/// What can go wrong with a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQL is not valid: a syntax error (with its position), an unknown
    /// table, column or function, a type mismatch. The caller's to fix.
    #[error("{0}")]
    Invalid(String),
    /// The query needed more memory than its bound.
    #[error("the query needs more memory than its bound of {limit_bytes} bytes: {message}")]
    ResourcesExhausted {
        /// The bound.
        limit_bytes: usize,
        /// DataFusion's account.
        message: String,
    },
    /// Reading or writing files failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Anything else the engine reports.
    #[error("{0}")]
    Engine(String),
}

impl Error {
    fn from_datafusion(error: DataFusionError, limit_bytes: usize) -> Self {
        match error.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..) => {
                Error::Invalid(strip_engine_prefix(&error.find_root().to_string()))
            }
            DataFusionError::NotImplemented(message) => Error::Invalid(format!(
                "This query uses something not supported: {message}"
            )),
            DataFusionError::ResourcesExhausted(message) => Error::ResourcesExhausted {
                limit_bytes,
                message: message.clone(),
            },
            DataFusionError::Execution(message) => Error::Invalid(message.clone()),
            other => Error::Engine(other.to_string()),
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(error: datafusion::arrow::error::ArrowError) -> Self {
        Error::Engine(error.to_string())
    }
}

/// DataFusion prefixes messages with its error kind ("Error during planning: ");
/// users of Athena's API see the message alone.
fn strip_engine_prefix(message: &str) -> String {
    for prefix in [
        "Error during planning: ",
        "SQL error: ",
        "Schema error: ",
        "ParserError(\"",
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return rest.trim_end_matches("\")").to_owned();
        }
    }
    message.to_owned()
}

/// Bounds of one engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Memory the engine's operators may hold before they spill or fail.
    pub memory_limit_bytes: usize,
    /// Threads a query runs on.
    pub target_partitions: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            memory_limit_bytes: 1024 * 1024 * 1024,
            target_partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Parquet footers (with their page indexes) and per-file statistics, kept
/// across the queries of one process.
///
/// A query plans and prunes from every file's footer, so without them each
/// query reads and decodes every footer again: over an event data store of a
/// few dozen parts that is tens of milliseconds before the first row. An
/// entry is used only while its file's size and modification time are the
/// ones it was read with, and parts and table copies are replaced, never
/// rewritten in place. The caches have bounds of their own, outside the
/// queries' memory pool.
#[derive(Clone)]
pub struct FileCaches {
    metadata: Arc<FileMetadataCache>,
    statistics: Arc<FileStatisticsCache>,
}

impl FileCaches {
    /// Footers kept, in bytes of their decoded form.
    pub const METADATA_BYTES: usize = 64 * 1024 * 1024;
    /// Per-file statistics kept, in bytes.
    pub const STATISTICS_BYTES: usize = 16 * 1024 * 1024;

    /// Empty caches with the default bounds.
    pub fn new() -> Self {
        Self {
            metadata: Arc::new(
                DefaultCache::new(Self::METADATA_BYTES).with_name("cairn file metadata"),
            ),
            statistics: Arc::new(
                DefaultCache::new(Self::STATISTICS_BYTES).with_name("cairn file statistics"),
            ),
        }
    }

    /// Empty caches whose per-file statistics of the parts directly in
    /// `dir` are also kept on disk, beside each part, for later processes:
    /// a table copy queried by a process per query (`cairn query --logs`).
    /// Plain [`FileCaches::new`] if `dir` cannot be named.
    pub fn with_statistics_beside_parts(dir: &std::path::Path) -> Self {
        let schema = schema::read_schema(&schema::cloudtrail_schema());
        match statistics_file::PersistedStatistics::new(dir, &schema, Self::STATISTICS_BYTES) {
            Some(persisted) => Self {
                statistics: Arc::new(persisted),
                ..Self::new()
            },
            None => Self::new(),
        }
    }

    fn config(&self) -> CacheManagerConfig {
        // The limits again: the cache manager sets each cache's limit to the
        // configured one, DataFusion's default unless given.
        CacheManagerConfig::default()
            .with_file_metadata_cache(Some(self.metadata.clone()))
            .with_metadata_cache_limit(Self::METADATA_BYTES)
            .with_file_statistics_cache(Some(self.statistics.clone()))
            .with_file_statistics_cache_limit(Self::STATISTICS_BYTES)
    }
}

impl Default for FileCaches {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FileCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCaches")
            .field("metadata_entries", &self.metadata.len())
            .field("statistics_entries", &self.statistics.len())
            .finish()
    }
}

/// The rows a statement answered.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Their columns.
    pub schema: SchemaRef,
    /// The rows, in batches.
    pub batches: Vec<RecordBatch>,
}

/// The rows of a statement while it runs ([`Engine::sql_stream`]).
pub struct RowStream {
    /// Their columns. Strings are as the engine holds them, which may be
    /// views into the buffers they were read into
    /// ([`schema::plain_schema`] names the types [`Engine::sql`] hands on).
    pub schema: SchemaRef,
    stream: datafusion::execution::SendableRecordBatchStream,
    limit_bytes: usize,
}

impl std::fmt::Debug for RowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowStream")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl RowStream {
    /// The next batch of rows; `None` once the statement has answered.
    pub async fn next(&mut self) -> Option<Result<RecordBatch, Error>> {
        let batch = futures::StreamExt::next(&mut self.stream).await?;
        Some(batch.map_err(|e| Error::from_datafusion(e, self.limit_bytes)))
    }

    /// Every row, its strings copied out of the buffers they were read
    /// into ([`schema::plain_schema`]).
    pub async fn collect(mut self) -> Result<QueryResult, Error> {
        let limit = self.limit_bytes;
        let schema = schema::plain_schema(&self.schema);
        // The rows are held until they are read, outside the memory pool's
        // account: they get a bound of their own, the same size.
        let mut batches = Vec::new();
        let mut held = 0usize;
        while let Some(batch) = self.next().await {
            let batch = schema::cast_batch(&batch?, &schema)?;
            held = held.saturating_add(batch.get_array_memory_size());
            if held > limit {
                return Err(Error::ResourcesExhausted {
                    limit_bytes: limit,
                    message: "the result holds more rows than fit in the bound; \
                              narrow the query or add a LIMIT"
                        .to_owned(),
                });
            }
            batches.push(batch);
        }
        Ok(QueryResult { schema, batches })
    }
}

impl QueryResult {
    /// How many rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// The catalog name tables are registered under, as Athena names its data
/// catalog (identifiers folded to lower case).
pub const CATALOG_NAME: &str = "awsdatacatalog";

/// A DataFusion session speaking the Trino dialect of CloudTrail queries.
pub struct Engine {
    ctx: SessionContext,
    config: EngineConfig,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish()
    }
}

/// DataFusion 55's leaf-expression rules push a struct field access
/// (`userIdentity.arn`) down to the Parquet scan, which then reads that leaf
/// only; but through a UNION they remap the field by column position and can
/// read the wrong column of a branch. They are left out of any plan that
/// may hold a UNION (see [`Engine::without_leaf_pushdown`]).
const LEAF_PUSHDOWN_RULES: [&str; 2] = ["extract_leaf_expressions", "push_down_leaf_projections"];

/// Whether `sql` may combine queries (UNION, INTERSECT, EXCEPT). A word in a
/// string literal counts too: a false positive only costs speed.
fn may_combine_queries(sql: &str) -> bool {
    sql.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|word| {
            ["union", "intersect", "except"]
                .iter()
                .any(|op| word.eq_ignore_ascii_case(op))
        })
}

impl Engine {
    /// A session with the Trino functions and the configured bounds, whose
    /// unqualified table names are in Athena's `default` database.
    pub fn new(config: EngineConfig) -> Result<Self, Error> {
        Self::with_database(config, cairn_catalog::DEFAULT_DATABASE)
    }

    /// A session like [`Engine::new`]'s that reads and keeps file footers
    /// and statistics in `caches`.
    pub fn new_with_caches(config: EngineConfig, caches: &FileCaches) -> Result<Self, Error> {
        Self::with_caches(config, cairn_catalog::DEFAULT_DATABASE, caches)
    }

    /// A session whose unqualified table names are in `database` of
    /// Athena's catalog (`awsdatacatalog`).
    pub fn with_database(config: EngineConfig, database: &str) -> Result<Self, Error> {
        Self::with_caches(config, database, &FileCaches::new())
    }

    /// A session like [`Engine::with_database`]'s that reads and keeps file
    /// footers and statistics in `caches`, shared with other sessions.
    pub fn with_caches(
        config: EngineConfig,
        database: &str,
        caches: &FileCaches,
    ) -> Result<Self, Error> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(config.memory_limit_bytes)))
            .with_cache_manager(caches.config())
            .build_arc()
            .map_err(|e| Error::Engine(e.to_string()))?;
        // Local tables (the Athena copy, event data store parts) read in
        // place: see `local_files`.
        runtime.register_object_store(
            ObjectStoreUrl::local_filesystem().as_ref(),
            Arc::new(local_files::InPlaceFiles::default()),
        );
        let mut session = SessionConfig::new()
            .with_target_partitions(config.target_partitions.max(1))
            .with_default_catalog_and_schema(CATALOG_NAME, database)
            .with_create_default_catalog_and_schema(true)
            .with_information_schema(true);
        // Athena folds unquoted identifiers to lower case (the schema's names
        // are lower case); and so does DataFusion by default.
        session.options_mut().sql_parser.enable_ident_normalization = true;
        // Filters are evaluated while Parquet is decoded, most selective
        // first, so the other columns of rows they reject are never decoded
        // (CloudTrail queries select a few events out of many).
        session.options_mut().execution.parquet.pushdown_filters = true;
        session.options_mut().execution.parquet.reorder_filters = true;
        // A part's footer and page index are read as the exact ranges they
        // are, not as a 512 KiB tail of the file guessed to hold them:
        // parts are read in place (`local_files`), where a read costs a
        // system call, not a round trip, and a query over a month opens
        // over a hundred parts, whose guessed tails were copied out of the
        // page cache into fresh memory for every query (about a fifth of a
        // short query's time).
        session.options_mut().execution.parquet.metadata_size_hint = None;
        // Cairn writes its parts without Bloom filters (a row group's page
        // index and statistics serve its filters): DataFusion would still
        // evaluate each query's pruning predicate against every row group's
        // absent filters, about 3 % of a short query's CPU.
        session.options_mut().execution.parquet.bloom_filter_on_read = false;
        let state = SessionStateBuilder::new()
            .with_config(session)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(plan::RepartitionBeforeDistinct))
            .with_physical_optimizer_rule(Arc::new(plan::DropFiltersProvenByStatistics))
            .build();
        let ctx = SessionContext::new_with_state(state);
        for function in functions::trino_functions() {
            ctx.register_udf(function);
        }
        ctx.register_udaf(count_distinct::count_udaf());
        ctx.register_udaf(min_max::min_udaf());
        ctx.register_udaf(min_max::max_udaf());
        Ok(Self { ctx, config })
    }

    /// Registers a Parquet file or directory of [`schema::cloudtrail_schema`]
    /// rows as table `name`.
    pub async fn register_parquet(&self, name: &str, path: &str) -> Result<(), Error> {
        self.ctx
            .register_parquet(
                name,
                path,
                ParquetReadOptions::default()
                    .schema(&schema::read_schema(&schema::cloudtrail_schema())),
            )
            .await
            .map_err(|e| Error::from_datafusion(e, self.config.memory_limit_bytes))
    }

    /// Leaves the leaf-expression rules out of this session's plans, for
    /// tables and statements that hold a UNION ([`LEAF_PUSHDOWN_RULES`]).
    pub fn without_leaf_pushdown(&self) {
        for rule in LEAF_PUSHDOWN_RULES {
            self.ctx.remove_optimizer_rule(rule);
        }
    }

    /// Runs one SQL statement and collects its rows.
    pub async fn sql(&self, sql: &str) -> Result<QueryResult, Error> {
        self.sql_stream(sql).await?.collect().await
    }

    /// Runs one SQL statement and hands its rows on as the engine produces
    /// them: for a reader that writes them out at once rather than holding
    /// them.
    pub async fn sql_stream(&self, sql: &str) -> Result<RowStream, Error> {
        if may_combine_queries(sql) {
            self.without_leaf_pushdown();
        }
        let limit = self.config.memory_limit_bytes;
        let fail = |e| Error::from_datafusion(e, limit);
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let mut statement = state.sql_to_statement(sql, &dialect).map_err(fail)?;
        rewrite(&mut statement);
        let plan = state.statement_to_plan(statement).await.map_err(fail)?;
        let frame = self.ctx.execute_logical_plan(plan).await.map_err(fail)?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let stream = frame.execute_stream().await.map_err(fail)?;
        Ok(RowStream {
            schema,
            stream,
            limit_bytes: limit,
        })
    }
}

/// Rewrites what Trino accepts and DataFusion's planner does not: a field of
/// an indexed list element (`resources[1].arn`) becomes a named-field access;
/// and names the result's columns as Athena does.
fn rewrite(statement: &mut DfStatement) {
    let DfStatement::Statement(inner) = statement else {
        return;
    };
    if let SqlStatement::Query(query) = inner.as_mut()
        && let SetExpr::Select(select) = query.body.as_mut()
    {
        name_columns(&mut select.projection);
    }
    let _ = visit_expressions_mut(inner.as_mut(), |expr| {
        if let SqlExpr::CompoundFieldAccess { access_chain, .. } = expr {
            for access in access_chain.iter_mut() {
                if let AccessExpr::Dot(SqlExpr::Identifier(ident)) = access {
                    *access = AccessExpr::Dot(SqlExpr::Value(ValueWithSpan::from(
                        SqlValue::SingleQuotedString(ident.value.to_ascii_lowercase()),
                    )));
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// Names result columns as Athena (Trino) does: a field access by its field
/// (`userIdentity.arn` is `arn`), any other expression `_col<position>`; a
/// name another column already has is left to the engine.
fn name_columns(projection: &mut [SelectItem]) {
    let mut taken: Vec<String> = projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_ascii_lowercase()),
            SelectItem::UnnamedExpr(SqlExpr::Identifier(ident)) => {
                Some(ident.value.to_ascii_lowercase())
            }
            _ => None,
        })
        .collect();
    for (position, item) in projection.iter_mut().enumerate() {
        let SelectItem::UnnamedExpr(expr) = item else {
            continue;
        };
        let name = match expr {
            SqlExpr::Identifier(_) => continue,
            SqlExpr::CompoundIdentifier(parts) => match parts.last() {
                Some(last) => last.value.to_ascii_lowercase(),
                None => continue,
            },
            SqlExpr::CompoundFieldAccess { access_chain, .. } => match access_chain.last() {
                Some(AccessExpr::Dot(SqlExpr::Identifier(ident))) => {
                    ident.value.to_ascii_lowercase()
                }
                _ => format!("_col{position}"),
            },
            _ => format!("_col{position}"),
        };
        if taken.contains(&name) {
            continue;
        }
        taken.push(name.clone());
        *item = SelectItem::ExprWithAlias {
            expr: expr.clone(),
            alias: Ident::new(name),
        };
    }
}

#[cfg(test)]
mod tests;
