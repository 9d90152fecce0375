//! The data catalog Athena's tables live in, and the interface between
//! Cairn's API and its SQL engine.
//!
//! The SQL engine (`cairn-query`, on DataFusion) is a large dependency tree;
//! the server does not build it. The binary hands the server a
//! [`SqlEngine`], and the server hands the engine what it needs to run one
//! statement: the [`Catalog`] of databases and tables (Glue's Data Catalog,
//! kept in the metastore), the [`ObjectSource`] that reads the buckets a
//! table's `LOCATION` names, a cancellation flag and a deadline. Rows come
//! back as Athena returns them: every value as text.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The database a statement names nothing else: Athena's `default`.
pub const DEFAULT_DATABASE: &str = "default";

/// The catalog Athena calls the Glue Data Catalog.
pub const DEFAULT_CATALOG: &str = "AwsDataCatalog";

/// A column as the catalog declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Its name, lower case as Hive keeps names.
    pub name: String,
    /// Its Hive type, lower case (`string`, `struct<arn:string>`, ...).
    #[serde(rename = "type")]
    pub type_name: String,
    /// `COMMENT '...'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A partition added by `ALTER TABLE ADD PARTITION`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDefinition {
    /// Its value of each partition key, in key order.
    pub values: Vec<String>,
    /// Where its files are.
    pub location: Option<String>,
}

/// A database of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseDefinition {
    /// Its name, lower case.
    pub name: String,
    /// `COMMENT '...'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was created, in seconds since the epoch.
    pub create_time: i64,
}

/// A table of the catalog: what `CREATE EXTERNAL TABLE` declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDefinition {
    /// Its database, lower case.
    pub database: String,
    /// Its name, lower case.
    pub name: String,
    /// Its columns, in declared order.
    pub columns: Vec<Column>,
    /// `PARTITIONED BY` columns.
    #[serde(default)]
    pub partition_keys: Vec<Column>,
    /// `LOCATION 's3://bucket/prefix/'`.
    pub location: String,
    /// `ROW FORMAT SERDE '<class>'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serde: Option<String>,
    /// `WITH SERDEPROPERTIES (...)`.
    #[serde(default)]
    pub serde_parameters: BTreeMap<String, String>,
    /// `STORED AS INPUTFORMAT '<class>'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_format: Option<String>,
    /// `OUTPUTFORMAT '<class>'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    /// `TBLPROPERTIES (...)`, and `EXTERNAL=TRUE` for an external table.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// `COMMENT '...'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Partitions added by `ALTER TABLE ADD PARTITION`.
    #[serde(default)]
    pub partitions: Vec<PartitionDefinition>,
    /// When it was created, in seconds since the epoch.
    pub create_time: i64,
}

impl TableDefinition {
    /// The bucket and key prefix of [`Self::location`] (`s3://bucket/prefix`).
    pub fn bucket_and_prefix(&self) -> Option<(&str, &str)> {
        s3_location(&self.location)
    }
}

/// The bucket and key prefix of an `s3://bucket/prefix` location.
pub fn s3_location(location: &str) -> Option<(&str, &str)> {
    let rest = location
        .strip_prefix("s3://")
        .or_else(|| location.strip_prefix("s3a://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then_some((bucket, prefix))
}

/// What can go wrong in the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The database or table exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// No such database or table.
    #[error("{0}")]
    NotFound(String),
    /// The catalog's storage failed.
    #[error("catalog storage: {0}")]
    Storage(String),
}

/// Glue's Data Catalog: databases and their tables. Calls block (they may
/// touch the metastore's disk); callers run them off the async threads.
pub trait Catalog: Send + Sync {
    /// Every database, `default` among them.
    fn databases(&self) -> Result<Vec<DatabaseDefinition>, CatalogError>;
    /// One database.
    fn database(&self, name: &str) -> Result<Option<DatabaseDefinition>, CatalogError>;
    /// Creates a database ([`CatalogError::AlreadyExists`] if it does).
    fn create_database(&self, database: &DatabaseDefinition) -> Result<(), CatalogError>;
    /// Drops a database and its tables ([`CatalogError::NotFound`] if none).
    fn drop_database(&self, name: &str) -> Result<(), CatalogError>;
    /// The tables of a database, by name.
    fn tables(&self, database: &str) -> Result<Vec<TableDefinition>, CatalogError>;
    /// One table.
    fn table(&self, database: &str, name: &str) -> Result<Option<TableDefinition>, CatalogError>;
    /// Creates a table ([`CatalogError::AlreadyExists`] if one has its name).
    fn create_table(&self, table: &TableDefinition) -> Result<(), CatalogError>;
    /// Replaces a table's definition ([`CatalogError::NotFound`] if none).
    fn replace_table(&self, table: &TableDefinition) -> Result<(), CatalogError>;
    /// Drops a table ([`CatalogError::NotFound`] if none).
    fn drop_table(&self, database: &str, name: &str) -> Result<(), CatalogError>;
}

/// One object under a table's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// What changes when it is rewritten (an ETag, or a modification time).
    pub version: String,
}

/// What can go wrong reading objects.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// What happened.
    pub message: String,
    /// Whether the bucket (or object) does not exist.
    pub not_found: bool,
}

/// The objects of the buckets tables live in. Calls block.
pub trait ObjectSource: Send + Sync {
    /// Whether `bucket` exists.
    fn bucket_exists(&self, bucket: &str) -> Result<bool, SourceError>;
    /// The objects whose keys start with `prefix`, in key order.
    fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectEntry>, SourceError>;
    /// One object's bytes.
    fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, SourceError>;
    /// Writes an object (query results to an `OutputLocation`).
    fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), SourceError>;
}

/// What one statement may use, and how it is stopped.
pub struct QueryContext<'a> {
    /// The database unqualified table names are in.
    pub database: &'a str,
    /// The catalog.
    pub catalog: &'a dyn Catalog,
    /// The buckets.
    pub objects: &'a dyn ObjectSource,
    /// Set when the caller cancels; the engine stops soon after.
    pub cancel: &'a AtomicBool,
    /// When the statement must have finished.
    pub deadline: Option<Instant>,
}

impl std::fmt::Debug for QueryContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryContext")
            .field("database", &self.database)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// Whether a statement read data or changed the catalog (Athena's
/// `StatementType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementType {
    /// `CREATE`, `DROP`, `ALTER`, `MSCK`, `SHOW`, `DESCRIBE`.
    Ddl,
    /// `SELECT`, `WITH`, `VALUES`.
    Dml,
}

impl StatementType {
    /// Athena's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            StatementType::Ddl => "DDL",
            StatementType::Dml => "DML",
        }
    }
}

/// A result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultColumn {
    /// Its name.
    pub name: String,
    /// Its Trino type (`varchar`, `bigint`, `row(arn varchar)`, ...).
    pub type_name: String,
}

/// The rows a statement answered, every value as text (null as `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// What kind of statement it was.
    pub statement_type: StatementType,
    /// The columns.
    pub columns: Vec<ResultColumn>,
    /// The rows.
    pub rows: Vec<Vec<Option<String>>>,
    /// Whether Athena returns the column names as a first row (it does for
    /// queries, not for `SHOW` or `DESCRIBE`).
    pub header_row: bool,
    /// Bytes read to answer.
    pub data_scanned_bytes: u64,
    /// Events (rows) the tables it read hold.
    pub events_scanned: u64,
}

impl Answer {
    /// The answer of a statement that returns no rows.
    pub fn done(statement_type: StatementType) -> Self {
        Self {
            statement_type,
            columns: Vec::new(),
            rows: Vec::new(),
            header_row: false,
            data_scanned_bytes: 0,
            events_scanned: 0,
        }
    }
}

/// Why a statement failed, as Athena classes failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlErrorKind {
    /// A syntax error, with its position.
    Syntax,
    /// An unknown table, column or function, a type mismatch: the caller's
    /// to fix.
    Invalid,
    /// A table's `LOCATION` bucket does not exist.
    LocationNotFound,
    /// Already exists / not found in the catalog.
    Catalog,
    /// More memory than the query's bound.
    ResourcesExhausted,
    /// Longer than the query's time bound.
    TimedOut,
    /// The caller cancelled it.
    Cancelled,
    /// Something failed that is not the caller's doing; may succeed again.
    Internal,
}

/// A statement's failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    /// Its kind.
    pub kind: SqlErrorKind,
    /// What to tell the caller.
    pub message: String,
}

impl SqlError {
    /// An error of `kind`.
    pub fn new(kind: SqlErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether running it again may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self.kind,
            SqlErrorKind::Internal | SqlErrorKind::ResourcesExhausted
        )
    }
}

impl From<CatalogError> for SqlError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::AlreadyExists(m) | CatalogError::NotFound(m) => {
                SqlError::new(SqlErrorKind::Catalog, m)
            }
            CatalogError::Storage(m) => SqlError::new(SqlErrorKind::Internal, m),
        }
    }
}

/// A CloudTrail Lake event data store's files: Parquet partitions and the
/// fresh files its writer adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeTable {
    /// The ID queries name it by (`FROM <id>`).
    pub id: String,
    /// Its directory.
    pub dir: std::path::PathBuf,
}

/// What one compaction of an event data store did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Fresh files folded into partitions.
    pub fresh_files: usize,
    /// Events they held.
    pub events: u64,
    /// Partitions dropped past the retention period.
    pub expired_partitions: usize,
    /// Dates whose many parts were merged into one without fresh events for them.
    pub merged_dates: usize,
}

/// How far an import into an event data store got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportProgress {
    /// Log files found under the source prefix.
    pub files_found: u64,
    /// Log files read.
    pub files_completed: u64,
    /// Events written into the store.
    pub events_completed: u64,
    /// Log files that could not be read (not CloudTrail log files).
    pub failed_entries: u64,
}

/// What an import reads: the log files under an S3 prefix, and the event
/// times it keeps (`[start, end)`, RFC 3339 text compared as CloudTrail's).
pub struct ImportRequest<'a> {
    /// The buckets.
    pub objects: &'a dyn ObjectSource,
    /// The source bucket.
    pub bucket: &'a str,
    /// The source prefix.
    pub prefix: &'a str,
    /// Events at or after this `eventTime` (`YYYY-MM-DDTHH:MM:SSZ`).
    pub start_event_time: Option<String>,
    /// Events before this `eventTime`.
    pub end_event_time: Option<String>,
    /// Set to stop the import.
    pub cancel: &'a AtomicBool,
    /// Told after every file.
    pub progress: &'a (dyn Fn(&ImportProgress) + Sync),
}

/// Runs SQL statements in Athena's dialect over the catalog's tables, and
/// CloudTrail Lake's over event data stores. Calls block for as long as the
/// statement runs.
pub trait SqlEngine: Send + Sync + std::fmt::Debug {
    /// Runs one statement (DDL or a query).
    fn execute(&self, sql: &str, ctx: &QueryContext<'_>) -> Result<Answer, SqlError>;

    /// Runs one CloudTrail Lake query; `stores` are the event data stores
    /// its `FROM` may name (by ID).
    fn execute_lake(
        &self,
        sql: &str,
        stores: &[LakeTable],
        cancel: &AtomicBool,
        deadline: Option<Instant>,
    ) -> Result<Answer, SqlError>;

    /// Checks a CloudTrail Lake query before it is queued: one `SELECT`
    /// that parses and names one of `stores`.
    fn check_lake(&self, sql: &str, stores: &[LakeTable]) -> Result<(), SqlError>;

    /// Imports CloudTrail log files into an event data store's partitions;
    /// the events appear at once, when the import completes.
    fn import_lake(
        &self,
        store: &LakeTable,
        request: &ImportRequest<'_>,
    ) -> Result<ImportProgress, SqlError>;

    /// Folds an event data store's fresh files into its partitions and drops
    /// partitions of event dates older than `retention_days` before `today`.
    fn compact_lake(
        &self,
        store: &LakeTable,
        retention_days: i64,
        today: &str,
    ) -> Result<Compaction, SqlError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_split_into_bucket_and_prefix() {
        assert_eq!(
            s3_location("s3://b/AWSLogs/1/CloudTrail/"),
            Some(("b", "AWSLogs/1/CloudTrail/"))
        );
        assert_eq!(s3_location("s3://b"), Some(("b", "")));
        assert_eq!(s3_location("s3:///x"), None);
        assert_eq!(s3_location("/local/path"), None);
    }
}
