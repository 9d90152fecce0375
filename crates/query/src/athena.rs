//! Athena's statements over the catalog's tables: the [`SqlEngine`] the
//! binary hands the server.
//!
//! DDL (`CREATE EXTERNAL TABLE`, `CREATE DATABASE`, `DROP`, `SHOW TABLES`,
//! `SHOW DATABASES`, `DESCRIBE`, `MSCK REPAIR TABLE`, `ALTER TABLE ADD
//! PARTITION`) changes or reads the [`Catalog`]. A query is run by
//! DataFusion over each table it names: the table's CloudTrail log files
//! under its `LOCATION` are kept as a partitioned Parquet copy in the cache
//! ([`crate::logs`]), refreshed before each query, and the table is a view
//! of that copy with the columns the DDL declared.
//!
//! One deliberate difference from Athena: the partition columns a table
//! declares (`region`, `year`, `month`, `day`, or a projected `timestamp`)
//! are filled from CloudTrail's `<region>/YYYY/MM/DD/` folders without a
//! partition-loading step, and files delivered later are seen by the next
//! query. `MSCK REPAIR TABLE` and `ALTER TABLE ADD PARTITION` are accepted
//! (the latter recorded in the catalog) but not needed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use cairn_catalog::{
    Answer, Column, DatabaseDefinition, ObjectSource, QueryContext, ResultColumn, SqlError,
    SqlErrorKind, StatementType, TableDefinition, s3_location,
};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::sql::sqlparser::ast::{
    AlterTableOperation, ArrayElemTypeDef, CreateTableOptions, DataType as SqlDataType,
    DescribeAlias, Expr, HiveIOFormat, HiveRowFormat, ObjectName, ObjectType,
    Partition as SqlPartition, SqlOption, Statement, Value as SqlValue, visit_relations,
};
use datafusion::sql::sqlparser::dialect::{GenericDialect, HiveDialect};
use datafusion::sql::sqlparser::parser::Parser;

use crate::logs::{self, LogFile, LogFiles};
use crate::render::{text_rows, trino_type};
use crate::{CATALOG_NAME, Engine, EngineConfig, Error};

/// SerDe classes whose tables Cairn reads (CloudTrail's JSON log files).
const JSON_SERDES: [&str; 4] = [
    "org.apache.hive.hcatalog.data.jsonserde",
    "org.openx.data.jsonserde.jsonserde",
    "com.amazon.emr.hive.serde.cloudtrailserde",
    "org.apache.hadoop.hive.serde2.jsonserde",
];

/// Runs Athena's statements; holds the Parquet copies of tables' log files.
pub struct AthenaEngine {
    cache_root: PathBuf,
    pub(crate) config: EngineConfig,
    /// One lock per cached table copy: a refresh excludes queries over it.
    copies: Mutex<HashMap<PathBuf, Arc<RwLock<()>>>>,
    /// The staging directories of the imports running in this process;
    /// compaction removes any other (left by a crash).
    pub(crate) imports_running: Mutex<std::collections::HashSet<PathBuf>>,
    /// Footers and statistics of the table copies and Lake parts, kept
    /// from one query to the next.
    pub(crate) file_caches: crate::FileCaches,
}

impl std::fmt::Debug for AthenaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AthenaEngine")
            .field("cache_root", &self.cache_root)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AthenaEngine {
    /// An engine keeping its table copies under `cache_root`, running each
    /// query on threads of its own within `config`'s bounds.
    pub fn new(cache_root: &Path, config: EngineConfig) -> Result<Self, Error> {
        Ok(Self {
            cache_root: cache_root.to_owned(),
            config,
            copies: Mutex::new(HashMap::new()),
            imports_running: Mutex::new(std::collections::HashSet::new()),
            file_caches: crate::FileCaches::new(),
        })
    }

    pub(crate) fn copy_lock(&self, dir: &Path) -> Arc<RwLock<()>> {
        let mut copies = self.copies.lock().unwrap_or_else(|p| p.into_inner());
        copies.entry(dir.to_owned()).or_default().clone()
    }

    fn run_query(
        &self,
        sql: &str,
        statement: &Statement,
        ctx: &QueryContext<'_>,
    ) -> Result<Answer, SqlError> {
        let mut named = Vec::new();
        let _ = visit_relations(statement, |name| {
            named.push(name.clone());
            std::ops::ControlFlow::<()>::Continue(())
        });
        let mut tables: Vec<(TableDefinition, logs::CachedCopy)> = Vec::new();
        let mut guards = Vec::new();
        for name in named {
            let Ok((database, table)) = table_name(&name, ctx.database) else {
                continue;
            };
            let Some(definition) = ctx.catalog.table(&database, &table)? else {
                continue;
            };
            if tables
                .iter()
                .any(|(t, _)| t.database == database && t.name == table)
            {
                continue;
            }
            let (bucket, prefix) = location_of(&definition)?;
            let dir = self.cache_root.join(cache_name(&definition.location));
            let lock = self.copy_lock(&dir);
            let copy = {
                let _refreshing = lock.write().unwrap_or_else(|p| p.into_inner());
                let source = ObjectLogs {
                    objects: ctx.objects,
                    bucket,
                    prefix,
                    cancel: ctx,
                };
                logs::refresh(&source, &dir, |_| {}).map_err(|e| sql_error(e, &self.config))?
            };
            check_stop(ctx)?;
            guards.push(lock);
            tables.push((definition, copy));
        }
        let reading: Vec<_> = guards
            .iter()
            .map(|l| l.read().unwrap_or_else(|p| p.into_inner()))
            .collect();
        let config = self.config.clone();
        let database = ctx.database.to_owned();
        let sql = sql.to_owned();
        let registered = tables.clone();
        let caches = self.file_caches.clone();
        let work = async move {
            let engine = Engine::with_caches(config.clone(), &database, &caches)
                .map_err(|e| sql_error(e, &config))?;
            for (definition, copy) in &registered {
                register_table(&engine, definition, &copy.dir)
                    .await
                    .map_err(|e| sql_error(e, &config))?;
            }
            engine.sql(&sql).await.map_err(|e| sql_error(e, &config))
        };
        let result = run_bounded(&self.config, || check_stop(ctx), work);
        drop(reading);
        let result = result?;
        let mut answer = answer_of(&result)?;
        answer.data_scanned_bytes = tables.iter().map(|(_, c)| c.bytes).sum();
        Ok(answer)
    }
}

/// Runs a statement's work on threads of its own, stopping it when `stop`
/// says so (checked every 50 ms).
///
/// Threads of its own: a stopped statement whose operator is inside a long
/// computation keeps them until its next yield, and must not starve the
/// statements after it. This thread waits on a channel, not on the
/// runtime's timers (busy workers do not drive them), so a cancel or the
/// deadline stops waiting at once and aborts the task at its next yield.
pub(crate) fn run_bounded<F>(
    config: &EngineConfig,
    stop: impl Fn() -> Result<(), SqlError>,
    work: F,
) -> Result<crate::QueryResult, SqlError>
where
    F: std::future::Future<Output = Result<crate::QueryResult, SqlError>> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.target_partitions.max(1))
        .thread_name("cairn-query")
        .enable_all()
        .build()
        .map_err(|e| {
            SqlError::new(
                SqlErrorKind::Internal,
                format!("cannot start the query threads: {e}"),
            )
        })?;
    let (done, answer) = std::sync::mpsc::sync_channel(1);
    let task = runtime.spawn(async move {
        let _ = done.send(work.await);
    });
    let result = loop {
        match answer.recv_timeout(Duration::from_millis(50)) {
            Ok(result) => break result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Err(stopped) = stop() {
                    task.abort();
                    break Err(stopped);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                break Err(SqlError::new(
                    SqlErrorKind::Internal,
                    "the query stopped unexpectedly",
                ));
            }
        }
    };
    runtime.shutdown_background();
    result
}

/// A query's rows as text, with the columns' Trino types.
pub(crate) fn answer_of(result: &crate::QueryResult) -> Result<Answer, SqlError> {
    let (columns, rows) =
        text_rows(result).map_err(|e| SqlError::new(SqlErrorKind::Internal, e.to_string()))?;
    Ok(Answer {
        statement_type: StatementType::Dml,
        columns: result
            .schema
            .fields()
            .iter()
            .zip(columns)
            .map(|(field, name)| ResultColumn {
                name,
                type_name: trino_type(field.data_type()),
            })
            .collect(),
        rows,
        header_row: true,
        data_scanned_bytes: 0,
        events_scanned: 0,
    })
}

impl AthenaEngine {
    /// Runs one Athena statement (DDL or a query).
    pub(crate) fn execute_athena(
        &self,
        sql: &str,
        ctx: &QueryContext<'_>,
    ) -> Result<Answer, SqlError> {
        let statement = parse_one(sql)?;
        match statement {
            Statement::Query(_) => self.run_query(sql, &statement, ctx),
            other => ddl(other, ctx),
        }
    }
}

/// Stops a statement that was cancelled or ran out of time.
fn check_stop(ctx: &QueryContext<'_>) -> Result<(), SqlError> {
    check_stop_of(ctx.cancel, ctx.deadline)
}

/// Stops a statement that was cancelled or ran out of time.
pub(crate) fn check_stop_of(
    cancel: &std::sync::atomic::AtomicBool,
    deadline: Option<std::time::Instant>,
) -> Result<(), SqlError> {
    if cancel.load(Ordering::Relaxed) {
        return Err(SqlError::new(
            SqlErrorKind::Cancelled,
            "Query cancelled by the user",
        ));
    }
    if deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
        return Err(SqlError::new(
            SqlErrorKind::TimedOut,
            "Query exhausted resources: it ran longer than its time bound",
        ));
    }
    Ok(())
}

/// A query error as Athena reports it.
pub(crate) fn sql_error(error: Error, config: &EngineConfig) -> SqlError {
    match error {
        Error::Invalid(message) => match syntax_position(&message) {
            Some(located) => SqlError::new(SqlErrorKind::Syntax, located),
            None => SqlError::new(SqlErrorKind::Invalid, message),
        },
        Error::ResourcesExhausted { .. } => SqlError::new(
            SqlErrorKind::ResourcesExhausted,
            format!(
                "Query exhausted resources at this scale factor: {error} (bound {} MiB)",
                config.memory_limit_bytes / (1024 * 1024)
            ),
        ),
        Error::Io { .. } | Error::Engine(_) => {
            SqlError::new(SqlErrorKind::Internal, error.to_string())
        }
    }
}

/// A parser message (`... at Line: 1, Column: 8`) as Athena writes it:
/// `line 1:8: ...`.
fn syntax_position(message: &str) -> Option<String> {
    let at = message.rfind(" at Line: ")?;
    let (text, position) = message.split_at(at);
    let position = position.trim_start_matches(" at Line: ");
    let (line, column) = position.split_once(", Column: ")?;
    let column = column.trim_end_matches(|c: char| !c.is_ascii_digit());
    let text = text
        .trim_start_matches("sql parser error: ")
        .trim_start_matches("SQL error: ParserError(\"");
    Some(format!("line {line}:{column}: {text}"))
}

/// Parses exactly one statement: Trino's dialect first, Hive's for the DDL
/// only it accepts.
pub(crate) fn parse_one(sql: &str) -> Result<Statement, SqlError> {
    let parsed = Parser::parse_sql(&GenericDialect {}, sql)
        .or_else(|first| Parser::parse_sql(&HiveDialect {}, sql).map_err(|_| first));
    let mut statements = parsed.map_err(|e| {
        let message = e.to_string();
        let located = syntax_position(&message).unwrap_or_else(|| {
            // The parser names no position when the input ended too soon.
            let line = sql.lines().count().max(1);
            let column = sql.lines().last().map_or(0, |l| l.chars().count()) + 1;
            format!(
                "line {line}:{column}: {}",
                message.trim_start_matches("sql parser error: ")
            )
        });
        SqlError::new(SqlErrorKind::Syntax, located)
    })?;
    match statements.len() {
        1 => Ok(statements.remove(0)),
        0 => Err(SqlError::new(SqlErrorKind::Syntax, "line 1:1: empty query")),
        _ => Err(SqlError::new(
            SqlErrorKind::Invalid,
            "Only one sql statement is allowed",
        )),
    }
}

/// `(database, table)` of a name: `t`, `db.t` or `catalog.db.t`.
fn table_name(name: &ObjectName, database: &str) -> Result<(String, String), SqlError> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
        .collect();
    match parts.as_slice() {
        [table] => Ok((database.to_owned(), table.clone())),
        [db, table] => Ok((db.clone(), table.clone())),
        [catalog, db, table] if catalog == CATALOG_NAME => Ok((db.clone(), table.clone())),
        _ => Err(SqlError::new(
            SqlErrorKind::Invalid,
            format!("Table name {name} is not valid in catalog AwsDataCatalog"),
        )),
    }
}

fn location_of(table: &TableDefinition) -> Result<(&str, &str), SqlError> {
    s3_location(&table.location).ok_or_else(|| {
        SqlError::new(
            SqlErrorKind::Invalid,
            format!(
                "Table {}.{} has location {}, which is not an s3:// location",
                table.database, table.name, table.location
            ),
        )
    })
}

/// The cache directory name of a table location.
fn cache_name(location: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    location.hash(&mut hasher);
    format!("table-{:016x}", hasher.finish())
}

/// The log files under a table's location in a bucket.
struct ObjectLogs<'a, 'b> {
    objects: &'a dyn ObjectSource,
    bucket: &'a str,
    prefix: &'a str,
    cancel: &'a QueryContext<'b>,
}

impl LogFiles for ObjectLogs<'_, '_> {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn list(&self) -> Result<Vec<LogFile>, Error> {
        let objects = self
            .objects
            .list(self.bucket, self.prefix)
            .map_err(|e| Error::Invalid(e.message))?;
        Ok(objects
            .into_iter()
            .filter(|o| logs::is_log_file(&o.key))
            .map(|o| LogFile {
                path: o.key,
                size: o.size,
                version: o.version,
            })
            .collect())
    }

    fn read(&self, file: &LogFile) -> Result<Vec<u8>, Error> {
        check_stop(self.cancel).map_err(|e| Error::Invalid(e.message))?;
        self.objects
            .get(self.bucket, &file.path)
            .map_err(|e| Error::Invalid(e.message))
    }
}

/// Registers a table as a view of its Parquet copy with the columns its DDL
/// declared: a declared column the records never have reads as null, and
/// the partition keys come from the copy's folders.
async fn register_table(
    engine: &Engine,
    table: &TableDefinition,
    copy_dir: &Path,
) -> Result<(), Error> {
    let source = format!("__cairn_copy_{}", cache_name(&table.location));
    let source_ref = format!("\"{CATALOG_NAME}\".\"{}\".\"{source}\"", table.database);
    ensure_schema(engine, &table.database)?;
    let schema = crate::schema::cloudtrail_schema();
    if engine.ctx.table_exist(source_ref.as_str()).unwrap_or(false) {
        // Two names for one location: one copy serves both.
    } else {
        engine
            .ctx
            .register_parquet(
                source_ref.as_str(),
                &copy_dir.to_string_lossy(),
                datafusion::prelude::ParquetReadOptions::default()
                    .schema(&crate::schema::read_schema(&schema)),
            )
            .await
            .map_err(|e| Error::Engine(e.to_string()))?;
    }
    let mut items = Vec::new();
    for column in table.columns.iter().chain(&table.partition_keys) {
        let name = column.name.replace('"', "\"\"");
        let item = if schema.field_with_name(&column.name).is_ok() {
            format!("\"{name}\"")
        } else if column.name == "timestamp" {
            // Partition projection's `${timestamp}`: `yyyy/MM/dd`.
            format!("concat_ws('/', \"year\", \"month\", \"day\") AS \"{name}\"")
        } else {
            format!("CAST(NULL AS VARCHAR) AS \"{name}\"")
        };
        items.push(item);
    }
    let view = format!(
        "CREATE VIEW \"{CATALOG_NAME}\".\"{}\".\"{}\" AS SELECT {} FROM {source_ref}",
        table.database.replace('"', "\"\""),
        table.name.replace('"', "\"\""),
        items.join(", ")
    );
    engine.sql(&view).await.map(|_| ())
}

fn ensure_schema(engine: &Engine, database: &str) -> Result<(), Error> {
    let catalog = engine
        .ctx
        .catalog(CATALOG_NAME)
        .ok_or_else(|| Error::Engine("the session has no catalog".to_owned()))?;
    if catalog.schema(database).is_none() {
        catalog
            .register_schema(database, Arc::new(MemorySchemaProvider::new()))
            .map_err(|e| Error::Engine(e.to_string()))?;
    }
    Ok(())
}

/// Runs a DDL statement against the catalog.
fn ddl(statement: Statement, ctx: &QueryContext<'_>) -> Result<Answer, SqlError> {
    let catalog = ctx.catalog;
    match statement {
        Statement::CreateTable(create) => {
            let (database, name) = table_name(&create.name, ctx.database)?;
            if catalog.table(&database, &name)?.is_some() {
                if create.if_not_exists {
                    return Ok(Answer::done(StatementType::Ddl));
                }
                return Err(SqlError::new(
                    SqlErrorKind::Catalog,
                    format!("Table {name} already exists"),
                ));
            }
            let table = table_definition(&create, database, name)?;
            let (bucket, _) = location_of(&table)?;
            let exists = ctx
                .objects
                .bucket_exists(bucket)
                .map_err(|e| SqlError::new(SqlErrorKind::Internal, e.message))?;
            if !exists {
                return Err(SqlError::new(
                    SqlErrorKind::LocationNotFound,
                    format!(
                        "The location {} does not exist: bucket {bucket} not found",
                        table.location
                    ),
                ));
            }
            catalog.create_table(&table)?;
            Ok(Answer::done(StatementType::Ddl))
        }
        Statement::CreateDatabase {
            db_name,
            if_not_exists,
            ..
        }
        | Statement::CreateSchema {
            schema_name: datafusion::sql::sqlparser::ast::SchemaName::Simple(db_name),
            if_not_exists,
            ..
        } => {
            let name = db_name.to_string().to_ascii_lowercase().replace('"', "");
            if if_not_exists && catalog.database(&name)?.is_some() {
                return Ok(Answer::done(StatementType::Ddl));
            }
            catalog.create_database(&DatabaseDefinition {
                name,
                description: None,
                create_time: now_seconds(),
            })?;
            Ok(Answer::done(StatementType::Ddl))
        }
        Statement::Drop {
            object_type,
            if_exists,
            names,
            ..
        } => {
            for name in &names {
                let result = match object_type {
                    ObjectType::Table => {
                        let (database, table) = table_name(name, ctx.database)?;
                        catalog.drop_table(&database, &table)
                    }
                    ObjectType::Database | ObjectType::Schema => {
                        catalog.drop_database(&name.to_string().to_ascii_lowercase())
                    }
                    other => {
                        return Err(SqlError::new(
                            SqlErrorKind::Invalid,
                            format!("DROP {other} is not supported"),
                        ));
                    }
                };
                match result {
                    Err(cairn_catalog::CatalogError::NotFound(_)) if if_exists => {}
                    other => other?,
                }
            }
            Ok(Answer::done(StatementType::Ddl))
        }
        Statement::ShowTables { show_options, .. } => {
            let database = show_options
                .show_in
                .and_then(|i| i.parent_name)
                .map_or_else(
                    || ctx.database.to_owned(),
                    |n| n.to_string().to_ascii_lowercase(),
                );
            let tables = catalog.tables(&database)?;
            Ok(listing(
                "tab_name",
                tables.into_iter().map(|t| t.name).collect(),
            ))
        }
        Statement::ShowDatabases { .. } | Statement::ShowSchemas { .. } => Ok(listing(
            "database_name",
            catalog.databases()?.into_iter().map(|d| d.name).collect(),
        )),
        Statement::ExplainTable {
            describe_alias: DescribeAlias::Describe | DescribeAlias::Desc,
            table_name: name,
            ..
        } => {
            let (database, table) = table_name(&name, ctx.database)?;
            let table = catalog.table(&database, &table)?.ok_or_else(|| {
                SqlError::new(
                    SqlErrorKind::Catalog,
                    format!("Table {database}.{table} does not exist"),
                )
            })?;
            Ok(describe(&table))
        }
        Statement::Msck(msck) => {
            let (database, table) = table_name(&msck.table_name, ctx.database)?;
            if catalog.table(&database, &table)?.is_none() {
                return Err(SqlError::new(
                    SqlErrorKind::Catalog,
                    format!("Table {database}.{table} does not exist"),
                ));
            }
            // Partitions are read from the folders at every query.
            Ok(Answer::done(StatementType::Ddl))
        }
        Statement::AlterTable(alter) => {
            let (database, name) = table_name(&alter.name, ctx.database)?;
            let mut table = catalog.table(&database, &name)?.ok_or_else(|| {
                SqlError::new(
                    SqlErrorKind::Catalog,
                    format!("Table {database}.{name} does not exist"),
                )
            })?;
            for operation in &alter.operations {
                let AlterTableOperation::AddPartitions { new_partitions, .. } = operation else {
                    return Err(SqlError::new(
                        SqlErrorKind::Invalid,
                        format!("ALTER TABLE {operation} is not supported"),
                    ));
                };
                for partition in new_partitions {
                    let values = partition_values(partition, &table)?;
                    if !table.partitions.iter().any(|p| p.values == values) {
                        table.partitions.push(cairn_catalog::PartitionDefinition {
                            values,
                            location: None,
                        });
                    }
                }
            }
            catalog.replace_table(&table)?;
            Ok(Answer::done(StatementType::Ddl))
        }
        other => Err(SqlError::new(
            SqlErrorKind::Invalid,
            format!(
                "This statement is not supported: {}",
                other.to_string().chars().take(60).collect::<String>()
            ),
        )),
    }
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// One column of names, without a header row (`SHOW TABLES`).
fn listing(column: &str, names: Vec<String>) -> Answer {
    Answer {
        statement_type: StatementType::Ddl,
        columns: vec![ResultColumn {
            name: column.to_owned(),
            type_name: "varchar".to_owned(),
        }],
        rows: names.into_iter().map(|n| vec![Some(n)]).collect(),
        header_row: false,
        data_scanned_bytes: 0,
        events_scanned: 0,
    }
}

/// `DESCRIBE`: columns, then the partition information, as Hive prints it.
fn describe(table: &TableDefinition) -> Answer {
    let row = |a: &str, b: &str, c: &str| {
        vec![Some(a.to_owned()), Some(b.to_owned()), Some(c.to_owned())]
    };
    let column_row = |c: &Column| row(&c.name, &c.type_name, c.comment.as_deref().unwrap_or(""));
    let mut rows: Vec<Vec<Option<String>>> = table
        .columns
        .iter()
        .chain(&table.partition_keys)
        .map(column_row)
        .collect();
    if !table.partition_keys.is_empty() {
        rows.push(row("", "", ""));
        rows.push(row("# Partition Information", "", ""));
        rows.push(row("# col_name", "data_type", "comment"));
        rows.push(row("", "", ""));
        rows.extend(table.partition_keys.iter().map(column_row));
    }
    Answer {
        statement_type: StatementType::Ddl,
        columns: ["col_name", "data_type", "comment"]
            .iter()
            .map(|n| ResultColumn {
                name: (*n).to_owned(),
                type_name: "varchar".to_owned(),
            })
            .collect(),
        rows,
        header_row: false,
        data_scanned_bytes: 0,
        events_scanned: 0,
    }
}

/// A Hive type as Glue keeps it: lower case, no spaces,
/// `struct<name:type,...>`.
fn hive_type(data_type: &SqlDataType) -> String {
    match data_type {
        SqlDataType::Struct(fields, _) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| {
                    let name = f
                        .field_name
                        .as_ref()
                        .map(|n| n.value.to_ascii_lowercase())
                        .unwrap_or_default();
                    format!("{name}:{}", hive_type(&f.field_type))
                })
                .collect::<Vec<_>>()
                .join(",")
        ),
        SqlDataType::Array(
            ArrayElemTypeDef::AngleBracket(item)
            | ArrayElemTypeDef::SquareBracket(item, _)
            | ArrayElemTypeDef::Parenthesis(item),
        ) => format!("array<{}>", hive_type(item)),
        SqlDataType::Map(key, value) => {
            format!("map<{},{}>", hive_type(key), hive_type(value))
        }
        other => other
            .to_string()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
    }
}

fn string_literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => Some(s.clone()),
            other => Some(other.to_string()),
        },
        Expr::Identifier(i) => Some(i.value.clone()),
        other => Some(other.to_string()),
    }
}

fn options(options: &[SqlOption]) -> Vec<(String, String)> {
    options
        .iter()
        .filter_map(|o| match o {
            SqlOption::KeyValue { key, value } => {
                Some((key.value.clone(), string_literal(value).unwrap_or_default()))
            }
            _ => None,
        })
        .collect()
}

/// The catalog definition of a `CREATE EXTERNAL TABLE`.
fn table_definition(
    create: &datafusion::sql::sqlparser::ast::CreateTable,
    database: String,
    name: String,
) -> Result<TableDefinition, SqlError> {
    let column = |c: &datafusion::sql::sqlparser::ast::ColumnDef| Column {
        name: c.name.value.to_ascii_lowercase(),
        type_name: hive_type(&c.data_type),
        comment: None,
    };
    let partition_keys = match &create.hive_distribution {
        datafusion::sql::sqlparser::ast::HiveDistributionStyle::PARTITIONED { columns } => {
            columns.iter().map(column).collect()
        }
        _ => Vec::new(),
    };
    let formats = create.hive_formats.as_ref();
    let location = create
        .location
        .clone()
        .or_else(|| formats.and_then(|f| f.location.clone()))
        .ok_or_else(|| {
            SqlError::new(
                SqlErrorKind::Invalid,
                "A table needs a LOCATION 's3://bucket/prefix/' of CloudTrail log files",
            )
        })?;
    let serde = formats.and_then(|f| match &f.row_format {
        Some(HiveRowFormat::SERDE { class }) => Some(class.clone()),
        _ => None,
    });
    if let Some(class) = &serde
        && !JSON_SERDES.contains(&class.to_ascii_lowercase().as_str())
    {
        return Err(SqlError::new(
            SqlErrorKind::Invalid,
            format!(
                "SerDe {class} is not supported: Cairn's tables read CloudTrail log files \
                 (org.apache.hive.hcatalog.data.JsonSerDe or com.amazon.emr.hive.serde.CloudTrailSerde)"
            ),
        ));
    }
    let (input_format, output_format) = match formats.and_then(|f| f.storage.as_ref()) {
        Some(HiveIOFormat::IOF {
            input_format,
            output_format,
        }) => (string_literal(input_format), string_literal(output_format)),
        _ => (None, None),
    };
    let mut parameters: std::collections::BTreeMap<String, String> = match &create.table_options {
        CreateTableOptions::TableProperties(list)
        | CreateTableOptions::With(list)
        | CreateTableOptions::Options(list)
        | CreateTableOptions::Plain(list) => options(list).into_iter().collect(),
        CreateTableOptions::None => Default::default(),
    };
    if create.external {
        parameters.insert("EXTERNAL".to_owned(), "TRUE".to_owned());
    }
    Ok(TableDefinition {
        database,
        name,
        columns: create.columns.iter().map(column).collect(),
        partition_keys,
        location,
        serde,
        serde_parameters: formats
            .and_then(|f| f.serde_properties.as_deref())
            .map(options)
            .unwrap_or_default()
            .into_iter()
            .collect(),
        input_format,
        output_format,
        parameters,
        comment: None,
        partitions: Vec::new(),
        create_time: now_seconds(),
    })
}

/// The values of `PARTITION (k='v', ...)`, in the table's key order.
fn partition_values(
    partition: &SqlPartition,
    table: &TableDefinition,
) -> Result<Vec<String>, SqlError> {
    let SqlPartition::Partitions(exprs) = partition else {
        return Err(SqlError::new(
            SqlErrorKind::Invalid,
            format!("PARTITION {partition} is not supported"),
        ));
    };
    let mut given = HashMap::new();
    for expr in exprs {
        if let Expr::BinaryOp { left, right, .. } = expr {
            let key = left.to_string().to_ascii_lowercase();
            given.insert(key, string_literal(right).unwrap_or_default());
        }
    }
    table
        .partition_keys
        .iter()
        .map(|key| {
            given.remove(&key.name).ok_or_else(|| {
                SqlError::new(
                    SqlErrorKind::Invalid,
                    format!("Partition key {} has no value", key.name),
                )
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
