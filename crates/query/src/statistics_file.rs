//! Per-file statistics kept on disk beside the parts of a table copy, so a
//! fresh process plans without summarising every part's footer again.
//!
//! `cairn query --logs` is a process per query. Before its first row,
//! DataFusion reads every part's footer and summarises it into statistics
//! (row counts, each column's minimum, maximum and nulls) to prune parts and
//! to plan; over a copy of a month of logs (124 parts) that summary was
//! about 40 % of the time a selective query took. The copy changes only when
//! a refresh rewrites a part, so the summary of a part is written once to
//! `<part>.statistics` and read back by later processes.
//!
//! A statistics file is a cache, never the truth: it is used only when the
//! part has the size and modification time it was summarised at, and the
//! table the schema it was summarised for; any file that does not read back
//! whole (another version, damage, a value of a type it cannot hold) is
//! ignored, and the statistics are computed again from the footer.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, HashMap, ScalarValue, Statistics, TableReference};
use datafusion::execution::cache::cache_manager::{CachedFileMetadata, SchemaFingerprint};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::cache::{Cache, CacheEntryInfo, TableScopedPath};
use datafusion::object_store::ObjectMeta;
use datafusion::object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

/// The extension of a part's statistics file.
pub(crate) const STATISTICS_EXTENSION: &str = "statistics";

/// The version of the statistics file this build writes and reads; a file
/// of another version is ignored (and replaced).
const VERSION: u32 = 1;

/// The largest statistics file read: a part's is a few kilobytes.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Per-file statistics in memory, and on disk for the parts of one
/// directory: DataFusion's statistics cache for a table copy.
pub(crate) struct PersistedStatistics {
    memory: DefaultCache<TableScopedPath, CachedFileMetadata>,
    /// The directory whose parts' statistics are kept on disk.
    dir: PathBuf,
    /// The same directory as the local object store names it: with its
    /// symbolic links resolved, and as given (DataFusion names a table's
    /// files by the path it was registered with, links and all).
    dir_locations: Vec<ObjectPath>,
    /// The fingerprint of the schema the table reads its parts with: only
    /// statistics summarised for it are written, and read back with it.
    fingerprint: Arc<SchemaFingerprint>,
    /// That schema, written out, in every statistics file.
    schema_text: String,
}

impl std::fmt::Debug for PersistedStatistics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistedStatistics")
            .field("dir", &self.dir)
            .field("entries", &self.memory.len())
            .finish()
    }
}

impl PersistedStatistics {
    /// Statistics of the parts in `dir`, read with `file_schema`, kept in
    /// memory up to `memory_limit` bytes and on disk without bound (one
    /// small file per part, removed with the part).
    pub(crate) fn new(dir: &Path, file_schema: &Schema, memory_limit: usize) -> Option<Self> {
        let canonical = dir.canonicalize().ok()?;
        let mut dir_locations = vec![ObjectPath::from_absolute_path(&canonical).ok()?];
        // A cache dir reached through a link (`--cache-dir` under a linked
        // home or temporary directory): without this, no part would match
        // and every query would summarise every footer again.
        if let Some(given) = std::path::absolute(dir)
            .ok()
            .and_then(|given| ObjectPath::from_absolute_path(given).ok())
            .filter(|given| *given != dir_locations[0])
        {
            dir_locations.push(given);
        }
        Some(Self {
            memory: DefaultCache::new(memory_limit).with_name("cairn persisted file statistics"),
            dir: canonical,
            dir_locations,
            fingerprint: Arc::new(SchemaFingerprint::from_schema(file_schema)),
            schema_text: schema_text(file_schema),
        })
    }

    /// Where the statistics of the part at `location` are kept, if it is a
    /// part of this directory.
    fn file_of(&self, location: &ObjectPath) -> Option<PathBuf> {
        let mut rest = self
            .dir_locations
            .iter()
            .find_map(|dir| location.prefix_match(dir))?;
        let name = rest.next()?;
        if rest.next().is_some() {
            return None;
        }
        let name = name.as_ref();
        let stem = name.strip_suffix(".parquet")?;
        if stem.is_empty() || stem.starts_with('.') {
            return None;
        }
        Some(self.dir.join(format!("{stem}.{STATISTICS_EXTENSION}")))
    }

    fn load(&self, key: &TableScopedPath) -> Option<CachedFileMetadata> {
        let path = self.file_of(&key.path)?;
        let file = std::fs::File::open(&path).ok()?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_FILE_BYTES), &mut text)
            .ok()?;
        let saved: StatisticsFile = serde_json::from_str(&text).ok()?;
        if saved.version != VERSION || saved.schema != self.schema_text {
            return None;
        }
        let last_modified = chrono::DateTime::from_timestamp_nanos(saved.modified_nanos);
        let statistics = saved.statistics()?;
        Some(CachedFileMetadata::new(
            ObjectMeta {
                location: key.path.clone(),
                last_modified,
                size: saved.size,
                e_tag: None,
                version: None,
            },
            Arc::clone(&self.fingerprint),
            Arc::new(statistics),
            None,
        ))
    }

    /// Writes `value`'s statistics beside its part, if they are for this
    /// table's schema and every value in them can be written. A cache: a
    /// file that cannot be written is left out, and the file is renamed
    /// into place whole but not synced (a damaged one is ignored when read).
    fn save(&self, key: &TableScopedPath, value: &CachedFileMetadata) {
        let Some(path) = self.file_of(&key.path) else {
            return;
        };
        if value.ordering.is_some()
            || value.schema_fingerprint.as_ref() != self.fingerprint.as_ref()
        {
            return;
        }
        let Some(modified_nanos) = value.meta.last_modified.timestamp_nanos_opt() else {
            return;
        };
        let Some(saved) = StatisticsFile::of(
            &value.statistics,
            self.schema_text.clone(),
            value.meta.size,
            modified_nanos,
        ) else {
            return;
        };
        let Ok(text) = serde_json::to_vec(&saved) else {
            return;
        };
        let Some(name) = path.file_name() else {
            return;
        };
        // A name of this process's own: two processes may summarise the same
        // part at once.
        let tmp = self.dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&text))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

impl Cache<TableScopedPath, CachedFileMetadata> for PersistedStatistics {
    fn get(&self, key: &TableScopedPath) -> Option<CachedFileMetadata> {
        if let Some(value) = self.memory.get(key) {
            return Some(value);
        }
        let value = self.load(key)?;
        self.memory.put(key, value.clone());
        Some(value)
    }

    fn put(&self, key: &TableScopedPath, value: CachedFileMetadata) -> Option<CachedFileMetadata> {
        self.save(key, &value);
        self.memory.put(key, value)
    }

    fn remove(&self, k: &TableScopedPath) -> Option<CachedFileMetadata> {
        self.memory.remove(k)
    }

    fn contains_key(&self, k: &TableScopedPath) -> bool {
        self.memory.contains_key(k)
    }

    fn len(&self) -> usize {
        self.memory.len()
    }

    fn clear(&self) {
        self.memory.clear()
    }

    fn name(&self) -> String {
        self.memory.name()
    }

    fn cache_limit(&self) -> usize {
        self.memory.cache_limit()
    }

    fn update_cache_limit(&self, limit: usize) {
        self.memory.update_cache_limit(limit)
    }

    fn cache_ttl(&self) -> Option<Duration> {
        self.memory.cache_ttl()
    }

    fn update_cache_ttl(&self, ttl: Option<Duration>) {
        self.memory.update_cache_ttl(ttl)
    }

    fn drop_table_entries(&self, table_ref: &TableReference) -> datafusion::common::Result<()> {
        self.memory.drop_table_entries(table_ref)
    }

    fn list_entries(&self) -> HashMap<TableScopedPath, CacheEntryInfo<CachedFileMetadata>> {
        self.memory.list_entries()
    }
}

/// A schema written out, to tell whether statistics were summarised for it.
fn schema_text(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}:{}:{}", f.name(), f.data_type(), f.is_nullable()))
        .collect::<Vec<_>>()
        .join(",")
}

/// How exactly a figure is known, as DataFusion's [`Precision`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Known<T> {
    Exact(T),
    Inexact(T),
    Absent,
}

impl Known<Value> {
    /// A value statistics files cannot hold (the minimum of a struct
    /// column) is written as unknown: a statistic never wrong, only less
    /// telling.
    fn of_value(precision: &Precision<ScalarValue>) -> Self {
        Known::of(precision, Value::of).unwrap_or(Known::Absent)
    }
}

impl<T: Clone> Known<T> {
    fn of<U>(precision: &Precision<U>, f: impl Fn(&U) -> Option<T>) -> Option<Self>
    where
        U: std::fmt::Debug + Clone + PartialEq + Eq + PartialOrd,
    {
        Some(match precision {
            Precision::Exact(v) => Known::Exact(f(v)?),
            Precision::Inexact(v) => Known::Inexact(f(v)?),
            Precision::Absent => Known::Absent,
        })
    }

    fn precision<U>(&self, f: impl Fn(&T) -> Option<U>) -> Option<Precision<U>>
    where
        U: std::fmt::Debug + Clone + PartialEq + Eq + PartialOrd,
    {
        Some(match self {
            Known::Exact(v) => Precision::Exact(f(v)?),
            Known::Inexact(v) => Precision::Inexact(f(v)?),
            Known::Absent => Precision::Absent,
        })
    }
}

/// The values statistics of CloudTrail's columns hold: strings, booleans,
/// integers and timestamps (any other is written as unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Value {
    Null,
    Utf8(Option<String>),
    Utf8View(Option<String>),
    LargeUtf8(Option<String>),
    Boolean(Option<bool>),
    Int32(Option<i32>),
    Int64(Option<i64>),
    UInt32(Option<u32>),
    UInt64(Option<u64>),
    TimestampSecond(Option<i64>, Option<String>),
    TimestampMillisecond(Option<i64>, Option<String>),
    TimestampMicrosecond(Option<i64>, Option<String>),
    TimestampNanosecond(Option<i64>, Option<String>),
}

impl Value {
    fn of(scalar: &ScalarValue) -> Option<Self> {
        let zone = |z: &Option<Arc<str>>| z.as_ref().map(|z| z.to_string());
        Some(match scalar {
            ScalarValue::Null => Value::Null,
            ScalarValue::Utf8(v) => Value::Utf8(v.clone()),
            ScalarValue::Utf8View(v) => Value::Utf8View(v.clone()),
            ScalarValue::LargeUtf8(v) => Value::LargeUtf8(v.clone()),
            ScalarValue::Boolean(v) => Value::Boolean(*v),
            ScalarValue::Int32(v) => Value::Int32(*v),
            ScalarValue::Int64(v) => Value::Int64(*v),
            ScalarValue::UInt32(v) => Value::UInt32(*v),
            ScalarValue::UInt64(v) => Value::UInt64(*v),
            ScalarValue::TimestampSecond(v, z) => Value::TimestampSecond(*v, zone(z)),
            ScalarValue::TimestampMillisecond(v, z) => Value::TimestampMillisecond(*v, zone(z)),
            ScalarValue::TimestampMicrosecond(v, z) => Value::TimestampMicrosecond(*v, zone(z)),
            ScalarValue::TimestampNanosecond(v, z) => Value::TimestampNanosecond(*v, zone(z)),
            _ => return None,
        })
    }

    fn scalar(&self) -> ScalarValue {
        let zone = |z: &Option<String>| z.as_deref().map(Arc::from);
        match self {
            Value::Null => ScalarValue::Null,
            Value::Utf8(v) => ScalarValue::Utf8(v.clone()),
            Value::Utf8View(v) => ScalarValue::Utf8View(v.clone()),
            Value::LargeUtf8(v) => ScalarValue::LargeUtf8(v.clone()),
            Value::Boolean(v) => ScalarValue::Boolean(*v),
            Value::Int32(v) => ScalarValue::Int32(*v),
            Value::Int64(v) => ScalarValue::Int64(*v),
            Value::UInt32(v) => ScalarValue::UInt32(*v),
            Value::UInt64(v) => ScalarValue::UInt64(*v),
            Value::TimestampSecond(v, z) => ScalarValue::TimestampSecond(*v, zone(z)),
            Value::TimestampMillisecond(v, z) => ScalarValue::TimestampMillisecond(*v, zone(z)),
            Value::TimestampMicrosecond(v, z) => ScalarValue::TimestampMicrosecond(*v, zone(z)),
            Value::TimestampNanosecond(v, z) => ScalarValue::TimestampNanosecond(*v, zone(z)),
        }
    }
}

/// One column's statistics, as [`ColumnStatistics`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ColumnFile {
    null_count: Known<usize>,
    min: Known<Value>,
    max: Known<Value>,
    sum: Known<Value>,
    distinct_count: Known<usize>,
    byte_size: Known<usize>,
}

/// A statistics file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StatisticsFile {
    version: u32,
    /// The schema the part was summarised for ([`schema_text`]).
    schema: String,
    /// The part's size and modification time when it was summarised.
    size: u64,
    modified_nanos: i64,
    num_rows: Known<usize>,
    total_byte_size: Known<usize>,
    columns: Vec<ColumnFile>,
}

impl StatisticsFile {
    fn of(statistics: &Statistics, schema: String, size: u64, modified_nanos: i64) -> Option<Self> {
        let count = |n: &usize| Some(*n);
        let columns = statistics
            .column_statistics
            .iter()
            .map(|c| {
                Some(ColumnFile {
                    null_count: Known::of(&c.null_count, count)?,
                    min: Known::of_value(&c.min_value),
                    max: Known::of_value(&c.max_value),
                    sum: Known::of_value(&c.sum_value),
                    distinct_count: Known::of(&c.distinct_count, count)?,
                    byte_size: Known::of(&c.byte_size, count)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            version: VERSION,
            schema,
            size,
            modified_nanos,
            num_rows: Known::of(&statistics.num_rows, count)?,
            total_byte_size: Known::of(&statistics.total_byte_size, count)?,
            columns,
        })
    }

    fn statistics(&self) -> Option<Statistics> {
        let count = |n: &usize| Some(*n);
        let scalar = |v: &Value| Some(v.scalar());
        Some(Statistics {
            num_rows: self.num_rows.precision(count)?,
            total_byte_size: self.total_byte_size.precision(count)?,
            column_statistics: self
                .columns
                .iter()
                .map(|c| {
                    Some(ColumnStatistics {
                        null_count: c.null_count.precision(count)?,
                        max_value: c.max.precision(scalar)?,
                        min_value: c.min.precision(scalar)?,
                        sum_value: c.sum.precision(scalar)?,
                        distinct_count: c.distinct_count.precision(count)?,
                        byte_size: c.byte_size.precision(count)?,
                    })
                })
                .collect::<Option<Vec<_>>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("eventtime", DataType::Utf8, true),
            Field::new("eventname", DataType::Utf8View, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
        ])
    }

    fn statistics() -> Statistics {
        Statistics {
            num_rows: Precision::Exact(80_000),
            total_byte_size: Precision::Inexact(1_234_567),
            column_statistics: vec![
                ColumnStatistics {
                    null_count: Precision::Exact(0),
                    min_value: Precision::Exact(ScalarValue::Utf8(Some(
                        "2026-11-04T00:00:01Z".into(),
                    ))),
                    max_value: Precision::Inexact(ScalarValue::Utf8(Some(
                        "2026-11-04T23:59:59Z \"quoted\" é".into(),
                    ))),
                    sum_value: Precision::Absent,
                    distinct_count: Precision::Absent,
                    byte_size: Precision::Inexact(99),
                },
                ColumnStatistics {
                    null_count: Precision::Exact(3),
                    min_value: Precision::Exact(ScalarValue::Utf8View(Some("AssumeRole".into()))),
                    max_value: Precision::Exact(ScalarValue::Utf8View(None)),
                    sum_value: Precision::Absent,
                    distinct_count: Precision::Inexact(12),
                    byte_size: Precision::Absent,
                },
                ColumnStatistics {
                    null_count: Precision::Absent,
                    min_value: Precision::Exact(ScalarValue::TimestampMillisecond(
                        Some(1_700_000_000_000),
                        Some("UTC".into()),
                    )),
                    max_value: Precision::Exact(ScalarValue::TimestampMillisecond(
                        Some(1_800_000_000_000),
                        None,
                    )),
                    sum_value: Precision::Absent,
                    distinct_count: Precision::Absent,
                    byte_size: Precision::Exact(8),
                },
            ],
        }
    }

    fn part(dir: &Path, name: &str) -> (TableScopedPath, ObjectMeta) {
        let path = dir.join(name);
        std::fs::write(&path, b"part bytes").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let location = ObjectPath::from_absolute_path(path.canonicalize().unwrap()).unwrap();
        let object = ObjectMeta {
            location: location.clone(),
            last_modified: meta.modified().unwrap().into(),
            size: meta.len(),
            e_tag: Some("tag".into()),
            version: None,
        };
        (
            TableScopedPath {
                table: Some(TableReference::bare("cloudtrail_logs")),
                path: location,
            },
            object,
        )
    }

    /// What DataFusion puts: the fingerprint is its own, equal to the cache's.
    fn entry(meta: ObjectMeta) -> CachedFileMetadata {
        CachedFileMetadata::new(
            meta,
            Arc::new(SchemaFingerprint::from_schema(&schema())),
            Arc::new(statistics()),
            None,
        )
    }

    #[test]
    fn test_statistics_read_back_by_another_process_are_the_ones_written() {
        let dir = tempfile::tempdir().unwrap();
        let (key, meta) = part(dir.path(), "2026-11-04-us-east-1-0a1b.parquet");
        let first = PersistedStatistics::new(dir.path(), &schema(), 1 << 20).unwrap();
        assert!(first.get(&key).is_none());
        first.put(&key, entry(meta.clone()));
        assert!(
            dir.path()
                .join("2026-11-04-us-east-1-0a1b.statistics")
                .exists()
        );
        // A new cache stands for the next process.
        let next = PersistedStatistics::new(dir.path(), &schema(), 1 << 20).unwrap();
        let loaded = next.get(&key).expect("read back");
        assert_eq!(*loaded.statistics, statistics());
        let fingerprint = Arc::new(SchemaFingerprint::from_schema(&schema()));
        assert!(loaded.is_valid_for(&meta, &fingerprint));
        assert_eq!(loaded.ordering, None);
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[cfg(unix)]
    #[test]
    fn test_statistics_are_kept_for_parts_named_through_a_linked_directory() {
        let dir = tempfile::tempdir().unwrap();
        let parts = dir.path().join("copy");
        std::fs::create_dir(&parts).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&parts, &link).unwrap();
        // DataFusion names the part by the registered path, the link kept.
        let (mut key, meta) = part(&parts, "p.parquet");
        key.path = ObjectPath::from_absolute_path(link.join("p.parquet")).unwrap();
        let first = PersistedStatistics::new(&link, &schema(), 1 << 20).unwrap();
        first.put(&key, entry(meta));
        assert!(parts.join("p.statistics").exists());
        let next = PersistedStatistics::new(&link, &schema(), 1 << 20).unwrap();
        assert!(next.get(&key).is_some());
    }

    #[test]
    fn test_statistics_of_a_rewritten_part_are_not_valid_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let (key, meta) = part(dir.path(), "p.parquet");
        let first = PersistedStatistics::new(dir.path(), &schema(), 1 << 20).unwrap();
        first.put(&key, entry(meta.clone()));
        let mut rewritten = meta.clone();
        rewritten.size += 1;
        let loaded = PersistedStatistics::new(dir.path(), &schema(), 1 << 20)
            .unwrap()
            .get(&key)
            .unwrap();
        let fingerprint = Arc::new(SchemaFingerprint::from_schema(&schema()));
        assert!(!loaded.is_valid_for(&rewritten, &fingerprint));
        let mut touched = meta;
        touched.last_modified += chrono::Duration::nanoseconds(1);
        assert!(!loaded.is_valid_for(&touched, &fingerprint));
    }

    #[test]
    fn test_statistics_for_another_schema_or_version_or_damaged_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (key, meta) = part(dir.path(), "p.parquet");
        let first = PersistedStatistics::new(dir.path(), &schema(), 1 << 20).unwrap();
        first.put(&key, entry(meta));
        let file = dir.path().join("p.statistics");
        let text = std::fs::read_to_string(&file).unwrap();
        let fresh = || PersistedStatistics::new(dir.path(), &schema(), 1 << 20).unwrap();
        assert!(fresh().get(&key).is_some());

        // Another schema: nothing is read.
        let mut other = schema().fields().to_vec();
        other.pop();
        let narrower = PersistedStatistics::new(dir.path(), &Schema::new(other), 1 << 20).unwrap();
        assert!(narrower.get(&key).is_none());

        // Another version, and every truncation: nothing is read, nothing panics.
        std::fs::write(&file, text.replace("\"version\":1", "\"version\":2")).unwrap();
        assert!(fresh().get(&key).is_none());
        for cut in 0..text.len() {
            std::fs::write(&file, &text.as_bytes()[..cut]).unwrap();
            assert!(fresh().get(&key).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn test_values_a_file_cannot_hold_are_unknown_and_other_schemas_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let (key, meta) = part(dir.path(), "p.parquet");
        let cache = PersistedStatistics::new(dir.path(), &schema(), 1 << 20).unwrap();
        let mut unwritable = statistics();
        unwritable.column_statistics[0].min_value =
            Precision::Inexact(ScalarValue::Float64(Some(1.5)));
        cache.put(
            &key,
            CachedFileMetadata::new(
                meta.clone(),
                Arc::clone(&cache.fingerprint),
                Arc::new(unwritable.clone()),
                None,
            ),
        );
        // Kept as it is in memory for this process; read back as unknown.
        assert_eq!(*cache.get(&key).unwrap().statistics, unwritable);
        let loaded = PersistedStatistics::new(dir.path(), &schema(), 1 << 20)
            .unwrap()
            .get(&key)
            .unwrap();
        let mut expected = unwritable;
        expected.column_statistics[0].min_value = Precision::Absent;
        assert_eq!(*loaded.statistics, expected);

        // Statistics summarised for another schema are not written either.
        let (other_key, other_meta) = part(dir.path(), "q.parquet");
        let mut narrower = schema().fields().to_vec();
        narrower.pop();
        cache.put(
            &other_key,
            CachedFileMetadata::new(
                other_meta,
                Arc::new(SchemaFingerprint::from_schema(&Schema::new(narrower))),
                Arc::new(statistics()),
                None,
            ),
        );
        assert!(!dir.path().join("q.statistics").exists());
    }

    /// The file as this build writes it: a change of format shows in review.
    /// `CAIRN_BLESS=1` rewrites it.
    #[test]
    fn test_the_statistics_file_is_written_as_its_golden_file() {
        let golden_path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/golden/statistics-v1.json");
        let file = StatisticsFile::of(
            &statistics(),
            schema_text(&schema()),
            1_737_453,
            1_796_367_942_027_750_607,
        )
        .unwrap();
        let written = serde_json::to_string(&file).unwrap();
        if std::env::var_os("CAIRN_BLESS").is_some() {
            std::fs::write(golden_path, format!("{written}\n")).unwrap();
        }
        let golden = include_str!("golden/statistics-v1.json");
        assert_eq!(written, golden.trim_end());
        let read: StatisticsFile = serde_json::from_str(golden).unwrap();
        assert_eq!(read.statistics().unwrap(), statistics());
    }

    #[test]
    fn test_only_parts_directly_in_the_directory_are_kept_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PersistedStatistics::new(dir.path(), &schema(), 1 << 20).unwrap();
        let base = cache.dir_locations[0].clone();
        assert_eq!(
            cache.file_of(&base.clone().join("a.parquet")),
            Some(cache.dir.join("a.statistics"))
        );
        for other in [
            base.clone().join("sub").join("a.parquet"),
            base.clone().join("a.csv"),
            base.clone().join(".a.parquet"),
            ObjectPath::from("elsewhere/a.parquet"),
        ] {
            assert_eq!(cache.file_of(&other), None, "{other}");
        }
    }
}
