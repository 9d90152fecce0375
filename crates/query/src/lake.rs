//! CloudTrail Lake event data stores: their Parquet partitions, the
//! compaction that folds the writer's fresh files into them, and queries
//! with `FROM <event data store ID>`.
//!
//! A store's directory holds:
//!
//! * `fresh/<lsn>.ndjson`: what the writer delivered (one record per line),
//!   named by the WAL position the delivery ended at;
//! * `parts/eventdate=YYYY-MM-DD/part-<lsn>.parquet`: Hive-partitioned by
//!   event date, the nested CloudTrail schema ([`crate::schema`]), zstd,
//!   each written batch's rows ordered by account and principal;
//!   readable by DuckDB, Spark, Trino and Athena as they are;
//! * `manifest.json` (version 2): the parts that hold events, and the
//!   watermark: the last WAL position folded into them.
//!
//! Parts hold `eventtime` as a timestamp, as CloudTrail Lake has it, so a
//! time filter prunes parts and row groups by their statistics. Version 1
//! parts held it as text; a store written so is read as it is (the text
//! cast as it is read) and its parts are rewritten as compaction merges
//! them.
//!
//! Compaction writes new parts, then the manifest (atomically), then
//! deletes the fresh files at or below the watermark and the parts the
//! manifest no longer lists. Readers take the manifest's parts and the fresh
//! files above its watermark, so a crash at any point leaves every event
//! visible exactly once. A date's parts are merged into one once it has
//! [`MAX_PARTS_PER_DATE`]; dates past the retention period are dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use cairn_catalog::{
    Answer, Compaction, ImportProgress, ImportRequest, LakeTable, SqlError, SqlErrorKind,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::sql::sqlparser::ast::visit_relations;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::athena::{AthenaEngine, answer_of, check_stop_of, parse_one, run_bounded, sql_error};
use crate::logs::{io, part_writer, sorted_by, write_atomically, writer_properties};
use crate::schema::{Partition, cloudtrail_schema, records_to_batch};
use crate::{Engine, Error};

/// The version of `manifest.json` this build writes.
pub const MANIFEST_VERSION: u32 = 2;
/// The versions of `manifest.json` this build reads: version 1 differs only
/// in its parts' `eventtime` being text.
const READABLE_MANIFEST_VERSIONS: std::ops::RangeInclusive<u32> = 1..=MANIFEST_VERSION;
/// A date's parts are merged into one when it has this many.
pub const MAX_PARTS_PER_DATE: usize = 8;
/// The most fresh bytes one compaction folds (the rest wait for the next).
const MAX_FRESH_BYTES_PER_COMPACTION: u64 = 64 * 1024 * 1024;
const FRESH_DIR: &str = "fresh";
const PARTS_DIR: &str = "parts";
const MANIFEST: &str = "manifest.json";
const IMPORTS_DIR: &str = "imports";

/// One Parquet part of a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Its event date, `YYYY-MM-DD` (`unknown` for events without a time).
    pub date: String,
    /// Its path under the store's directory.
    pub file: String,
    /// Events it holds.
    pub events: u64,
    /// Its size.
    pub bytes: u64,
}

/// A store's manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// The last WAL position folded into the parts.
    pub watermark: u64,
    /// The parts.
    pub parts: Vec<Part>,
}

/// Reads a store's manifest (an empty one if there is none yet).
pub fn read_manifest(dir: &Path) -> Result<Manifest, Error> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Manifest {
                version: MANIFEST_VERSION,
                ..Manifest::default()
            });
        }
        Err(e) => return Err(io("reading", &path)(e)),
    };
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| Error::Invalid(format!("{} is damaged: {e}", path.display())))?;
    if !READABLE_MANIFEST_VERSIONS.contains(&manifest.version) {
        return Err(Error::Invalid(format!(
            "{} has version {}; this build reads versions 1 to {MANIFEST_VERSION}",
            path.display(),
            manifest.version
        )));
    }
    Ok(manifest)
}

/// Writes a store's manifest (atomically), its parts in order, as
/// [`MANIFEST_VERSION`].
fn write_manifest(dir: &Path, manifest: &mut Manifest) -> Result<(), Error> {
    manifest.version = MANIFEST_VERSION;
    manifest
        .parts
        .sort_by(|a, b| (&a.date, &a.file).cmp(&(&b.date, &b.file)));
    let text = serde_json::to_vec(&manifest).map_err(|e| Error::Engine(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    write_atomically(&dir.join(MANIFEST), &text)
}

/// The schema of a store's parts: the records' columns, with `eventtime`
/// a timestamp (nanoseconds, no zone: what `CAST(eventtime AS TIMESTAMP)`
/// gives, UTC). Built once: every converted batch carries it.
pub(crate) fn lake_schema() -> SchemaRef {
    static SCHEMA: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| {
        let fields: Vec<Field> = cloudtrail_schema()
            .fields()
            .iter()
            .map(|f| {
                if f.name() == EVENT_TIME {
                    Field::new(EVENT_TIME, EVENT_TIME_TYPE, true)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

const EVENT_TIME: &str = "eventtime";
const EVENT_TIME_TYPE: DataType = DataType::Timestamp(TimeUnit::Nanosecond, None);

/// `batch` in [`lake_schema`]: a text `eventtime` becomes a timestamp; one
/// that does not read as a time becomes null (as on CloudTrail Lake, whose
/// events all have a time), rather than failing every query of the store.
/// Strings a part's schema hint had read as views are plain again.
fn with_event_time(batch: RecordBatch) -> Result<RecordBatch, Error> {
    let schema = lake_schema();
    if batch.num_columns() != schema.fields().len() {
        return Err(Error::Engine(format!(
            "a part has {} columns, not the {} of an event data store",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    crate::schema::cast_batch(&batch, &schema)
}

/// The fresh files above `watermark`, in WAL order, with their positions.
fn fresh_files(dir: &Path, watermark: u64) -> Result<Vec<(u64, PathBuf)>, Error> {
    let fresh = dir.join(FRESH_DIR);
    let entries = match std::fs::read_dir(&fresh) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("reading", &fresh)(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(io("reading", &fresh))?.path();
        let Some(lsn) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ndjson"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if lsn > watermark {
            files.push((lsn, path));
        }
    }
    files.sort();
    Ok(files)
}

/// The records of fresh files.
fn read_fresh(files: &[(u64, PathBuf)]) -> Result<Vec<Value>, Error> {
    let mut records = Vec::new();
    for (_, path) in files {
        let file = File::open(path).map_err(io("reading", path))?;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(io("reading", path))?;
            if line.trim().is_empty() {
                continue;
            }
            // The writer stores records ingest validated: one that does not
            // parse means damage, which must not pass silently.
            records.push(
                serde_json::from_str(&line)
                    .map_err(|e| Error::Invalid(format!("{} is damaged: {e}", path.display())))?,
            );
        }
    }
    Ok(records)
}

/// The event date of a record (`YYYY-MM-DD` of its `eventTime`).
fn event_date(record: &Value) -> String {
    let time = event_time(record).unwrap_or("");
    let date = time.get(..10).unwrap_or("");
    let valid = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if valid {
        date.to_owned()
    } else {
        "unknown".to_owned()
    }
}

/// Records are turned into Arrow this many at a time (bounds the parsed
/// records held); the writer still fills row groups of
/// [`crate::logs::ROWS_PER_BATCH`].
const RECORDS_PER_CONVERSION: usize = 8192;

/// Records as Arrow batches of at most [`RECORDS_PER_CONVERSION`] rows,
/// each converted as it is taken (the records are moved, not copied).
fn batches_of(records: Vec<Value>) -> impl Iterator<Item = Result<RecordBatch, Error>> {
    let mut records = records.into_iter().peekable();
    std::iter::from_fn(move || {
        records.peek()?;
        let chunk: Vec<(Value, Partition)> = records
            .by_ref()
            .take(RECORDS_PER_CONVERSION)
            .map(|r| (r, Partition::default()))
            .collect();
        Some(records_to_batch(chunk).and_then(with_event_time))
    })
}

/// A part being written: row groups go to a hidden temporary file, which
/// [`PartWriter::finish`] syncs and renames into place, so a part is there
/// whole or not at all.
struct PartWriter {
    date: String,
    file: String,
    path: PathBuf,
    tmp: PathBuf,
    writer: ArrowWriter<File>,
    events: u64,
}

impl PartWriter {
    fn create(dir: &Path, date: &str, name: &str) -> Result<Self, Error> {
        let folder = dir.join(PARTS_DIR).join(format!("eventdate={date}"));
        std::fs::create_dir_all(&folder).map_err(io("creating", &folder))?;
        let path = folder.join(name);
        let tmp = folder.join(format!(".{name}.tmp"));
        let out = File::create(&tmp).map_err(io("creating", &tmp))?;
        let writer = part_writer(out, lake_schema(), writer_properties())?;
        Ok(Self {
            date: date.to_owned(),
            file: format!("{PARTS_DIR}/eventdate={date}/{name}"),
            path,
            tmp,
            writer,
            events: 0,
        })
    }

    fn write(&mut self, batch: RecordBatch) -> Result<(), Error> {
        self.events += batch.num_rows() as u64;
        self.writer
            .write(&by_principal(batch)?)
            .map_err(|e| Error::Engine(e.to_string()))
    }

    /// Converts and writes records, a bounded number at a time.
    fn write_records(&mut self, records: Vec<Value>) -> Result<(), Error> {
        for batch in batches_of(records) {
            self.write(batch?)?;
        }
        Ok(())
    }

    /// Copies every row of an existing part, a row group at a time.
    fn copy(&mut self, dir: &Path, part: &Part) -> Result<(), Error> {
        let path = dir.join(&part.file);
        let damaged = |e: &dyn std::fmt::Display| {
            Error::Invalid(format!("{} is damaged: {e}", path.display()))
        };
        let file = File::open(&path).map_err(io("reading", &path))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| damaged(&e))?;
        for batch in reader {
            // A version-1 part's text times are converted as it is copied.
            self.write(with_event_time(batch.map_err(|e| damaged(&e))?)?)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<Part, Error> {
        let out = self
            .writer
            .into_inner()
            .map_err(|e| Error::Engine(e.to_string()))?;
        out.sync_all().map_err(io("writing", &self.tmp))?;
        std::fs::rename(&self.tmp, &self.path).map_err(io("writing", &self.path))?;
        let bytes = std::fs::metadata(&self.path)
            .map_err(io("reading", &self.path))?
            .len();
        Ok(Part {
            date: self.date,
            file: self.file,
            events: self.events,
            bytes,
        })
    }
}

/// `batch`'s rows ordered by account, then principal (`recipientAccountId`,
/// `userIdentity.arn`). Lake investigations ask what one principal did and
/// who did what in which account: in this order each page of a part holds
/// a narrow range of principals, so the page index skips the pages of every
/// other principal, and grouping by account and principal meets each group
/// in runs. Only the rows of one written batch move (a few thousand, in the
/// order they were delivered), so row groups keep narrow time ranges.
fn by_principal(batch: RecordBatch) -> Result<RecordBatch, Error> {
    use datafusion::arrow::array::{Array, AsArray};
    let principal = batch
        .column_by_name("useridentity")
        .filter(|c| matches!(c.data_type(), DataType::Struct(_)))
        .and_then(|c| c.as_struct().column_by_name("arn").cloned());
    let keys = [
        batch.column_by_name("recipientaccountid").cloned(),
        principal,
    ]
    .into_iter()
    .flatten()
    .collect();
    sorted_by(batch, keys)
}

/// The parts of one event date.
fn parts_of(manifest: &Manifest, date: &str) -> Vec<Part> {
    manifest
        .parts
        .iter()
        .filter(|p| p.date == date)
        .cloned()
        .collect()
}

/// Dates merged by one compaction that has no fresh events for them (bounds
/// the work of one pass; the next passes take the rest).
const MERGES_PER_COMPACTION: usize = 2;

/// Folds a store's fresh files into its partitions and expires old dates.
/// The caller holds the store's write lock.
pub fn compact(dir: &Path, retention_days: i64, today: &str) -> Result<Compaction, Error> {
    let mut manifest = read_manifest(dir)?;
    let mut done = Compaction::default();
    let mut folded = Vec::new();
    let mut bytes = 0;
    for (lsn, path) in fresh_files(dir, manifest.watermark)? {
        bytes += std::fs::metadata(&path).map_or(0, |m| m.len());
        folded.push((lsn, path));
        if bytes >= MAX_FRESH_BYTES_PER_COMPACTION {
            break;
        }
    }
    let old_parts: Vec<Part> = manifest.parts.clone();
    if let Some(&(watermark, _)) = folded.last() {
        let records = read_fresh(&folded)?;
        done.fresh_files = folded.len();
        done.events = records.len() as u64;
        let mut by_date: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for record in records {
            by_date.entry(event_date(&record)).or_default().push(record);
        }
        let name = format!("part-{watermark:020}.parquet");
        for (date, rows) in by_date {
            let existing = parts_of(&manifest, &date);
            let mut part = PartWriter::create(dir, &date, &name)?;
            // A date with many parts is merged into one as it grows.
            if existing.len() + 1 >= MAX_PARTS_PER_DATE {
                for old in &existing {
                    part.copy(dir, old)?;
                }
                manifest.parts.retain(|p| p.date != date);
            }
            part.write_records(rows)?;
            manifest.parts.push(part.finish()?);
        }
        manifest.watermark = watermark;
    }
    // Dates that gathered many parts without fresh events (imports write
    // their own parts) are merged too, a few per pass.
    let mut crowded: BTreeMap<&str, usize> = BTreeMap::new();
    for part in &manifest.parts {
        *crowded.entry(part.date.as_str()).or_default() += 1;
    }
    let crowded: Vec<String> = crowded
        .into_iter()
        .filter(|(_, n)| *n >= MAX_PARTS_PER_DATE)
        .map(|(date, _)| date.to_owned())
        .take(MERGES_PER_COMPACTION)
        .collect();
    for date in crowded {
        let existing = parts_of(&manifest, &date);
        let name = format!(
            "part-{:020}-merged-{}.parquet",
            manifest.watermark,
            uuid_like()
        );
        let mut part = PartWriter::create(dir, &date, &name)?;
        for old in &existing {
            part.copy(dir, old)?;
        }
        manifest.parts.retain(|p| p.date != date);
        manifest.parts.push(part.finish()?);
        done.merged_dates += 1;
    }
    if retention_days > 0
        && let Some(cutoff) = chrono::NaiveDate::parse_from_str(today, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.checked_sub_days(chrono::Days::new(retention_days as u64)))
    {
        let cutoff = cutoff.format("%Y-%m-%d").to_string();
        let before = manifest.parts.len();
        manifest
            .parts
            .retain(|p| p.date == "unknown" || p.date >= cutoff);
        let dates: BTreeSet<&str> = old_parts
            .iter()
            .filter(|p| p.date != "unknown" && p.date < cutoff)
            .map(|p| p.date.as_str())
            .collect();
        if manifest.parts.len() != before {
            done.expired_partitions = dates.len();
        }
    }
    if manifest.parts != old_parts || !folded.is_empty() {
        write_manifest(dir, &mut manifest)?;
    }
    // After the manifest: what it no longer needs.
    for (_, path) in &folded {
        std::fs::remove_file(path).map_err(io("removing", path))?;
    }
    remove_unlisted_parts(dir, &manifest)?;
    Ok(done)
}

/// Removes parts the manifest does not list (replaced, expired, or written
/// by a compaction that crashed before its manifest) and empty date folders.
fn remove_unlisted_parts(dir: &Path, manifest: &Manifest) -> Result<(), Error> {
    let listed: BTreeSet<&str> = manifest.parts.iter().map(|p| p.file.as_str()).collect();
    let parts = dir.join(PARTS_DIR);
    let Ok(folders) = std::fs::read_dir(&parts) else {
        return Ok(());
    };
    for folder in folders.flatten() {
        let folder = folder.path();
        let Ok(files) = std::fs::read_dir(&folder) else {
            continue;
        };
        let mut kept = 0;
        for file in files.flatten() {
            let path = file.path();
            let relative = path
                .strip_prefix(dir)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            if listed.contains(relative.as_str()) {
                kept += 1;
            } else {
                std::fs::remove_file(&path).map_err(io("removing", &path))?;
            }
        }
        if kept == 0 {
            let _ = std::fs::remove_dir(&folder);
        }
    }
    Ok(())
}

/// CloudTrail's spelling of a record column (`eventtime` → `eventTime`),
/// for Lake's result column names.
fn lake_column_name(name: &str) -> String {
    const NAMES: [&str; 27] = [
        "eventVersion",
        "userIdentity",
        "eventTime",
        "eventSource",
        "eventName",
        "awsRegion",
        "sourceIPAddress",
        "userAgent",
        "errorCode",
        "errorMessage",
        "requestParameters",
        "responseElements",
        "additionalEventData",
        "requestID",
        "eventID",
        "readOnly",
        "resources",
        "eventType",
        "apiVersion",
        "recipientAccountId",
        "serviceEventDetails",
        "sharedEventID",
        "vpcEndpointId",
        "eventCategory",
        "tlsDetails",
        "sessionCredentialFromConsole",
        "userName",
    ];
    NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_owned(), |n| (*n).to_owned())
}

/// Quotes the store IDs a statement names, as CloudTrail Lake writes them
/// (`FROM 0b9f0a5e-41d4-...`, which SQL would read as a subtraction).
fn quote_store_ids(sql: &str, stores: &[LakeTable]) -> String {
    let mut out = sql.to_owned();
    for store in stores {
        let quoted = format!("\"{}\"", store.id);
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(&store.id) {
            let before = &rest[..at];
            let already = before.ends_with('"');
            result.push_str(before);
            if already {
                result.push_str(&store.id);
            } else {
                result.push_str(&quoted);
            }
            rest = &rest[at + store.id.len()..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

impl AthenaEngine {
    /// The statement of a Lake query and the stores it names, or why not.
    fn lake_statement<'s>(
        sql: &str,
        stores: &'s [LakeTable],
    ) -> Result<(String, Vec<&'s LakeTable>), SqlError> {
        let sql = quote_store_ids(sql, stores);
        let statement = parse_one(&sql)?;
        if !matches!(
            statement,
            datafusion::sql::sqlparser::ast::Statement::Query(_)
        ) {
            return Err(SqlError::new(
                SqlErrorKind::Invalid,
                "Only SELECT statements are supported by CloudTrail Lake queries",
            ));
        }
        let mut named = BTreeSet::new();
        let _ = visit_relations(&statement, |name| {
            if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
                named.insert(last.value.clone());
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        let used: Vec<&LakeTable> = stores
            .iter()
            .filter(|s| named.contains(&s.id) || named.contains(&s.id.to_ascii_lowercase()))
            .collect();
        if used.is_empty() {
            return Err(SqlError::new(
                SqlErrorKind::Invalid,
                "The query names no event data store: write FROM <event data store ID>",
            ));
        }
        Ok((sql, used))
    }

    /// A CloudTrail Lake query over event data stores.
    pub(crate) fn lake_query(
        &self,
        sql: &str,
        stores: &[LakeTable],
        cancel: &AtomicBool,
        deadline: Option<Instant>,
    ) -> Result<Answer, SqlError> {
        let (sql, used) = Self::lake_statement(sql, stores)?;
        let locks: Vec<_> = used.iter().map(|s| self.copy_lock(&s.dir)).collect();
        let _reading: Vec<_> = locks
            .iter()
            .map(|l| l.read().unwrap_or_else(|p| p.into_inner()))
            .collect();
        let mut sources = Vec::new();
        let mut scanned_bytes = 0;
        let mut scanned_events = 0;
        for store in &used {
            let manifest = read_manifest(&store.dir).map_err(|e| sql_error(e, &self.config))?;
            let fresh = fresh_files(&store.dir, manifest.watermark)
                .map_err(|e| sql_error(e, &self.config))?;
            scanned_bytes += manifest.parts.iter().map(|p| p.bytes).sum::<u64>();
            scanned_events += manifest.parts.iter().map(|p| p.events).sum::<u64>();
            scanned_bytes += fresh
                .iter()
                .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
                .sum::<u64>();
            let records = read_fresh(&fresh).map_err(|e| sql_error(e, &self.config))?;
            scanned_events += records.len() as u64;
            let batches = batches_of(records)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| sql_error(e, &self.config))?;
            let parts: Vec<String> = manifest
                .parts
                .iter()
                .map(|p| store.dir.join(&p.file).to_string_lossy().into_owned())
                .collect();
            sources.push((store.id.clone(), parts, batches));
        }
        let config = self.config.clone();
        let caches = self.file_caches.clone();
        let work = async move {
            let engine =
                Engine::with_caches(config.clone(), cairn_catalog::DEFAULT_DATABASE, &caches)
                    .map_err(|e| sql_error(e, &config))?;
            for (id, parts, batches) in sources {
                register_store(&engine, &id, parts, batches)
                    .await
                    .map_err(|e| sql_error(e, &config))?;
            }
            engine.sql(&sql).await.map_err(|e| sql_error(e, &config))
        };
        let result = run_bounded(&self.config, || check_stop_of(cancel, deadline), work)?;
        let mut answer = answer_of(&result)?;
        for column in &mut answer.columns {
            column.name = lake_column_name(&column.name);
        }
        answer.data_scanned_bytes = scanned_bytes;
        answer.events_scanned = scanned_events;
        Ok(answer)
    }
}

/// Registers a store as a table named by its ID: its parts and fresh
/// events, in [`lake_schema`] (a version-1 part's text `eventtime` is cast
/// as it is read).
async fn register_store(
    engine: &Engine,
    id: &str,
    parts: Vec<String>,
    fresh: Vec<RecordBatch>,
) -> Result<(), Error> {
    let schema = crate::schema::read_schema(&lake_schema());
    let mut sources = Vec::new();
    if !fresh.is_empty() || parts.is_empty() {
        let fresh_name = format!("__cairn_fresh_{}", id.replace('-', "_"));
        // Fresh events in the parts' read schema: the two are one UNION.
        let fresh = fresh
            .iter()
            .map(|batch| crate::schema::cast_batch(batch, &schema))
            .collect::<Result<Vec<_>, _>>()?;
        let table = MemTable::try_new(schema.clone(), vec![fresh])
            .map_err(|e| Error::Engine(e.to_string()))?;
        engine
            .ctx
            .register_table(fresh_name.as_str(), Arc::new(table))
            .map_err(|e| Error::Engine(e.to_string()))?;
        sources.push(format!("SELECT * FROM \"{fresh_name}\""));
    }
    if !parts.is_empty() {
        let parts_name = format!("__cairn_parts_{}", id.replace('-', "_"));
        let frame = engine
            .ctx
            .read_parquet(
                parts,
                datafusion::prelude::ParquetReadOptions::default().schema(&schema),
            )
            .await
            .map_err(|e| Error::Engine(e.to_string()))?;
        engine
            .ctx
            .register_table(parts_name.as_str(), frame.into_view())
            .map_err(|e| Error::Engine(e.to_string()))?;
        sources.push(format!("SELECT * FROM \"{parts_name}\""));
    }
    if sources.len() > 1 {
        // Fresh events and parts are a UNION (see `Engine::without_leaf_pushdown`).
        engine.without_leaf_pushdown();
    }
    let columns: Vec<String> = crate::schema::record_fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .collect();
    let view = format!(
        "CREATE VIEW \"{id}\" AS SELECT {} FROM ({}) AS events",
        columns.join(", "),
        sources.join(" UNION ALL ")
    );
    engine.sql(&view).await.map(|_| ())
}

/// The event time of a record as text (its `eventTime` member).
fn event_time(record: &Value) -> Option<&str> {
    record
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("eventTime"))
        .and_then(|(_, v)| v.as_str())
}

/// Imports log files into a store: one part per event date per run of files,
/// all listed in the manifest at once when every file is read (so an import
/// that fails or is stopped leaves the store as it was; its parts are
/// removed with its staging directory). Files are read in the order
/// of their date folders, so a date's events end up in few parts. The
/// caller holds the store's write lock only for the final commit.
fn import(
    engine: &AthenaEngine,
    store: &LakeTable,
    request: &ImportRequest<'_>,
) -> Result<ImportProgress, Error> {
    let mut files = request
        .objects
        .list(request.bucket, request.prefix)
        .map_err(|e| Error::Invalid(e.message))?;
    files.retain(|f| crate::logs::is_log_file(&f.key));
    // By date folder, then key: a date's files come together.
    files.sort_by_cached_key(|f| {
        let p = Partition::of_path(&f.key);
        (p.year, p.month, p.day, f.key.clone())
    });
    let mut progress = ImportProgress {
        files_found: files.len() as u64,
        ..ImportProgress::default()
    };
    (request.progress)(&progress);
    let run = uuid_like();
    // Parts are written aside and moved in at the commit: compaction removes
    // parts its manifest does not list.
    let staging = store.dir.join(IMPORTS_DIR).join(&run);
    let _staging = Staging::register(engine, &staging);
    // One part per event date, kept open while the files' folders are
    // within a day of it (files of day D hold late events of day D-1).
    let mut open: BTreeMap<String, PartWriter> = BTreeMap::new();
    let mut pending: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut written: Vec<Part> = Vec::new();
    let mut serial = 0u32;
    let mut write = |date: &str,
                     rows: Vec<Value>,
                     open: &mut BTreeMap<String, PartWriter>|
     -> Result<(), Error> {
        if !open.contains_key(date) {
            serial += 1;
            let name = format!("part-import-{run}-{serial:06}.parquet");
            open.insert(date.to_owned(), PartWriter::create(&staging, date, &name)?);
        }
        match open.get_mut(date) {
            Some(part) => part.write_records(rows),
            None => Ok(()),
        }
    };
    for file in &files {
        if request.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Invalid("the import was stopped".to_owned()));
        }
        let records = request
            .objects
            .get(request.bucket, &file.key)
            .map_err(|e| Error::Invalid(e.message))
            .and_then(|bytes| crate::logs::parse_log_file(&file.key, &bytes));
        let Ok(records) = records else {
            progress.failed_entries += 1;
            progress.files_completed += 1;
            (request.progress)(&progress);
            continue;
        };
        for record in records {
            let Some(time) = event_time(&record) else {
                continue;
            };
            if request
                .start_event_time
                .as_deref()
                .is_some_and(|s| time < s)
                || request.end_event_time.as_deref().is_some_and(|e| time >= e)
            {
                continue;
            }
            progress.events_completed += 1;
            let date = event_date(&record);
            let rows = pending.entry(date.clone()).or_default();
            rows.push(record);
            if rows.len() >= RECORDS_PER_CONVERSION {
                let rows = std::mem::take(rows);
                write(&date, rows, &mut open)?;
            }
        }
        // Dates two days behind the files' folders are done: their parts are
        // finished, so memory holds about two dates' row groups at a time.
        let folder = Partition::of_path(&file.key);
        let behind = match (&folder.year, &folder.month, &folder.day) {
            (Some(y), Some(m), Some(d)) => {
                chrono::NaiveDate::parse_from_str(&format!("{y}-{m}-{d}"), "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.checked_sub_days(chrono::Days::new(1)))
                    .map(|d| d.format("%Y-%m-%d").to_string())
            }
            _ => None,
        };
        if let Some(behind) = behind {
            let done: Vec<String> = pending
                .keys()
                .chain(open.keys())
                .filter(|date| date.as_str() < behind.as_str())
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            for date in done {
                if let Some(rows) = pending.remove(&date) {
                    write(&date, rows, &mut open)?;
                }
                if let Some(part) = open.remove(&date) {
                    written.push(part.finish()?);
                }
            }
        }
        progress.files_completed += 1;
        (request.progress)(&progress);
    }
    for (date, rows) in std::mem::take(&mut pending) {
        write(&date, rows, &mut open)?;
    }
    for (_, part) in std::mem::take(&mut open) {
        written.push(part.finish()?);
    }
    let lock = engine.copy_lock(&store.dir);
    let _writing = lock.write().unwrap_or_else(|p| p.into_inner());
    let mut manifest = read_manifest(&store.dir)?;
    for part in &written {
        let from = staging.join(&part.file);
        let to = store.dir.join(&part.file);
        if let Some(folder) = to.parent() {
            std::fs::create_dir_all(folder).map_err(io("creating", folder))?;
        }
        std::fs::rename(&from, &to).map_err(io("moving", &from))?;
    }
    manifest.parts.extend(written);
    write_manifest(&store.dir, &mut manifest)?;
    Ok(progress)
}

/// An import's staging directory while it runs: removed, and forgotten by
/// the engine, however the import ends (committed parts were moved out).
struct Staging<'a> {
    engine: &'a AthenaEngine,
    dir: PathBuf,
}

impl<'a> Staging<'a> {
    fn register(engine: &'a AthenaEngine, dir: &Path) -> Self {
        engine
            .imports_running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dir.to_owned());
        Self {
            engine,
            dir: dir.to_owned(),
        }
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        self.engine
            .imports_running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.dir);
    }
}

/// Removes staging directories of imports not running in this process (a
/// crash left them; their parts were never listed).
fn remove_abandoned_imports(engine: &AthenaEngine, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir.join(IMPORTS_DIR)) else {
        return;
    };
    let running = engine
        .imports_running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for entry in entries.flatten() {
        let path = entry.path();
        if !running.contains(&path) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// A name unique to one import run.
fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", hasher.finish())
}

impl cairn_catalog::SqlEngine for AthenaEngine {
    fn execute(
        &self,
        sql: &str,
        ctx: &cairn_catalog::QueryContext<'_>,
    ) -> Result<Answer, SqlError> {
        self.execute_athena(sql, ctx)
    }

    fn execute_lake(
        &self,
        sql: &str,
        stores: &[LakeTable],
        cancel: &AtomicBool,
        deadline: Option<Instant>,
    ) -> Result<Answer, SqlError> {
        self.lake_query(sql, stores, cancel, deadline)
    }

    fn import_lake(
        &self,
        store: &LakeTable,
        request: &ImportRequest<'_>,
    ) -> Result<ImportProgress, SqlError> {
        import(self, store, request).map_err(|e| sql_error(e, &self.config))
    }

    fn check_lake(&self, sql: &str, stores: &[LakeTable]) -> Result<(), SqlError> {
        Self::lake_statement(sql, stores).map(|_| ())
    }

    fn compact_lake(
        &self,
        store: &LakeTable,
        retention_days: i64,
        today: &str,
    ) -> Result<Compaction, SqlError> {
        let lock = self.copy_lock(&store.dir);
        let _writing = lock.write().unwrap_or_else(|p| p.into_inner());
        remove_abandoned_imports(self, &store.dir);
        compact(&store.dir, retention_days, today).map_err(|e| sql_error(e, &self.config))
    }
}

#[cfg(test)]
mod tests;
