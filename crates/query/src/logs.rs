//! CloudTrail log files (`.json.gz` or `.json`, each `{"Records": [...]}`)
//! converted into a cached Parquet copy of [`crate::schema::cloudtrail_schema`]
//! rows, for SQL over them: an Athena table over a trail's bucket prefix, or
//! an export on disk (`cairn query --logs`, the incident responder's case).
//!
//! The copy is partitioned as CloudTrail lays out its files: one Parquet file
//! per `<region>/YYYY/MM/DD` folder (and one for files outside that layout).
//! A manifest beside each part lists the log files it was made from, with
//! their sizes and versions; a refresh rebuilds only the parts whose files
//! changed, so files delivered since the last query cost only their day.
//!
//! Memory stays bounded however many files there are: files are read one at
//! a time and rows are written in row groups of [`ROWS_PER_BATCH`]. Parts are
//! written to a temporary name and renamed, so a reader never sees half a
//! part. The source is never written to: it may be evidence.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{
    EnabledStatistics, WriterProperties, WriterPropertiesBuilder,
};
use datafusion::parquet::schema::types::ColumnPath;
use serde_json::Value;

use crate::Error;
use crate::schema::{
    PAGE_STATISTICS_COLUMNS, Partition, REPEATING_COLUMNS, cloudtrail_schema,
    nearly_unique_columns, read_schema, records_to_batch,
};
use crate::statistics_file::STATISTICS_EXTENSION;

/// Rows per batch and per Parquet row group.
pub const ROWS_PER_BATCH: usize = 65_536;
/// Rows per Parquet data page, at most.
const ROWS_PER_PAGE: usize = 4096;
/// The largest log file read (uncompressed): CloudTrail's files are far smaller.
const MAX_FILE_BYTES: u64 = 1024 * 1024 * 1024;
/// The version of the cache's layout; another version's parts are rebuilt.
const CACHE_VERSION: &str = "cairn-query-cache 4";
const PART_EXTENSION: &str = "parquet";
const MANIFEST_EXTENSION: &str = "manifest";
const STAMPS_EXTENSION: &str = "folders";

/// An I/O error's mapping, saying what was being done to which file.
pub(crate) fn io(doing: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let context = format!("{doing} {}", path.display());
    move |source| Error::Io { context, source }
}

/// A file's modification time in nanoseconds since the epoch (0: unknown).
fn modified_nanos(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// How Cairn's Parquet files are written: zstd but for the
/// [`REPEATING_COLUMNS`], row groups of [`ROWS_PER_BATCH`] rows.
pub(crate) fn writer_properties() -> WriterProperties {
    writer_properties_builder().build()
}

fn writer_properties_builder() -> WriterPropertiesBuilder {
    let builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROWS_PER_BATCH))
        .set_data_page_row_count_limit(ROWS_PER_PAGE);
    REPEATING_COLUMNS
        .into_iter()
        .fold(builder, |builder, path| {
            builder.set_column_compression(column_path(path), Compression::UNCOMPRESSED)
        })
}

/// A Parquet writer of `schema`'s rows whose file asks Arrow readers to
/// read it as [`read_schema`] says (Arrow's schema hint, `ARROW:schema`):
/// the strings of columns with few distinct values as views, in structs and
/// lists too. DataFusion makes only top-level columns views by itself: a
/// nested one (`userIdentity.arn`) was read as plain strings, every row's
/// bytes copied out of the column's dictionary, and then cast to views, a
/// quarter of a query grouping by it. The rows are written as they are, and
/// Parquet's own schema is the same either way: other readers see strings.
pub(crate) fn part_writer(
    out: File,
    schema: SchemaRef,
    mut properties: WriterProperties,
) -> Result<ArrowWriter<File>, Error> {
    use datafusion::parquet::arrow::add_encoded_arrow_schema_to_metadata;
    use datafusion::parquet::arrow::arrow_writer::ArrowWriterOptions;
    add_encoded_arrow_schema_to_metadata(&read_schema(&schema), &mut properties);
    let options = ArrowWriterOptions::new()
        .with_properties(properties)
        .with_skip_arrow_metadata(true);
    ArrowWriter::try_new_with_options(out, schema, options)
        .map_err(|e| Error::Engine(e.to_string()))
}

/// A column named by its path from the top of the schema
/// (`["useridentity", "arn"]`).
fn column_path(path: &[&str]) -> ColumnPath {
    ColumnPath::new(path.iter().map(|part| part.to_string()).collect())
}

/// How the parts of the Athena copy are written: as [`writer_properties`]
/// says, with plain pages only in the columns nearly unique per event.
///
/// Why: a Parquet writer starts each column chunk with a dictionary and
/// falls back to plain pages once it passes 1 MiB, so a column of nearly
/// unique values (`eventTime`, `sourceIPAddress`, the JSON text) begins each
/// row group with a 1 MiB dictionary page. A query that reads a few pages of
/// a row group, chosen by the page index (the console logins among all
/// events), must still read and decode that page whole: a third of the
/// guide's console-logins query. Without it the parts are also 4 % smaller.
fn copy_writer_properties() -> WriterProperties {
    let builder = nearly_unique_columns().fold(writer_properties_builder(), |builder, column| {
        builder.set_column_dictionary_enabled(ColumnPath::from(column), false)
    });
    let builder = LZ4_COLUMNS.into_iter().fold(builder, |builder, column| {
        builder.set_column_compression(ColumnPath::from(column), Compression::LZ4_RAW)
    });
    PAGE_STATISTICS_COLUMNS
        .into_iter()
        .fold(
            builder.set_statistics_enabled(EnabledStatistics::Chunk),
            |builder, path| {
                builder.set_column_statistics_enabled(column_path(path), EnabledStatistics::Page)
            },
        )
        .build()
}

/// The copy's columns compressed with LZ4 rather than zstd: nearly unique
/// per event, and read in full by the queries that summarise a month (the
/// first and last `eventTime` and the distinct `sourceIPAddress` of each
/// principal). Decoding them with zstd was a tenth of such a query; LZ4
/// decodes several times faster for about 0.4 MB more per row group. Only in
/// the Athena copy, a cache: an event data store's parts keep zstd, as they
/// are what the Lake stores.
const LZ4_COLUMNS: [&str; 2] = ["eventtime", "sourceipaddress"];

/// One log file of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// Its path or key; CloudTrail's `.../CloudTrail/<region>/YYYY/MM/DD/`
    /// in it gives the partition.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// What changes when it is rewritten (modification time, ETag).
    pub version: String,
}

/// A folder of log files; its modification time and number of files are
/// its stamp (see [`LogFiles::folders`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// Its path, ending in `/`; CloudTrail's `<region>/YYYY/MM/DD/` in it
    /// gives the partition.
    pub path: String,
    /// Its modification time, in nanoseconds since the epoch.
    pub modified: u128,
    /// How many log files it holds.
    pub files: usize,
    /// Whether it holds folders too: such a folder is always listed, since
    /// a change below it leaves its own time as it was.
    pub subfolders: bool,
}

/// A folder changed this recently is checked file by file: a file replaced
/// within the clock's granularity may leave the folder's time as it was.
const SETTLED_NANOS: u128 = 2_000_000_000;

/// Where log files come from.
pub trait LogFiles {
    /// Names the source in manifests.
    fn describe(&self) -> String;
    /// Its log files (digest files left out), in a stable order.
    fn list(&self) -> Result<Vec<LogFile>, Error>;
    /// The folders holding log files, each with a stamp that changes when
    /// a file is added, removed or renamed in it, if the source can say so
    /// without looking at every file (`None`: it cannot). `known` holds the
    /// folders as stamped at the last refresh, by path: one whose stamp
    /// still holds need not be listed again.
    fn folders(&self, known: &BTreeMap<String, Folder>) -> Result<Option<Vec<Folder>>, Error> {
        let _ = known;
        Ok(None)
    }
    /// One file's bytes, as stored (gzip or not).
    fn read(&self, file: &LogFile) -> Result<Vec<u8>, Error>;
}

/// Whether a path or key names a log file: `.json.gz` or `.json`, outside
/// `CloudTrail-Digest/` and hidden files.
pub fn is_log_file(path: &str) -> bool {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    !name.starts_with('.')
        && !path.split(['/', '\\']).any(|s| s == "CloudTrail-Digest")
        && (name.ends_with(".json.gz") || name.ends_with(".json"))
}

/// A directory of log files on disk.
#[derive(Debug, Clone)]
pub struct DirLogs {
    dir: PathBuf,
}

impl DirLogs {
    /// The log files under `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.canonicalize().unwrap_or_else(|_| dir.to_owned()),
        }
    }
}

impl LogFiles for DirLogs {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn list(&self) -> Result<Vec<LogFile>, Error> {
        walk(&self.dir, true)?
            .into_iter()
            .map(|(path, meta)| {
                let meta = match meta {
                    Some(meta) => meta,
                    None => std::fs::metadata(&path).map_err(io("reading", &path))?,
                };
                Ok(LogFile {
                    path: path.to_string_lossy().into_owned(),
                    size: meta.len(),
                    version: modified_nanos(&meta).to_string(),
                })
            })
            .collect()
    }

    fn folders(&self, known: &BTreeMap<String, Folder>) -> Result<Option<Vec<Folder>>, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let settled =
            |modified: u128| modified != 0 && now.saturating_sub(modified) >= SETTLED_NANOS;
        // A folder of files only, whose time is the one stamped and settled,
        // holds the files it held: its stamp is taken as it was, and its
        // listing (most of the cost, at thousands of files a day) skipped.
        let stamp_holds =
            |path: &Path, entry: &std::fs::DirEntry| -> Result<Option<Folder>, Error> {
                let key = format!("{}/", path.to_string_lossy());
                let Some(stamped) = known.get(&key).filter(|f| !f.subfolders) else {
                    return Ok(None);
                };
                let meta = entry.metadata().map_err(io("reading", path))?;
                let holds = modified_nanos(&meta) == stamped.modified && settled(stamped.modified);
                Ok(holds.then(|| stamped.clone()))
            };
        let mut folders = Vec::new();
        let mut pending = vec![self.dir.clone()];
        while let Some(dir) = pending.pop() {
            // The folder's time is taken before its listing: a file added
            // while it is listed leaves a time the next refresh will not
            // find, never a count it would trust.
            let modified = modified_nanos(&std::fs::metadata(&dir).map_err(io("reading", &dir))?);
            let (mut files, mut subfolders) = (0, false);
            let entries = std::fs::read_dir(&dir).map_err(io("reading", &dir))?;
            for entry in entries {
                let entry = entry.map_err(io("reading", &dir))?;
                match classify(&entry) {
                    Entry::LogFile { .. } => files += 1,
                    Entry::Other => {}
                    Entry::Folder { digests: true } => subfolders = true,
                    Entry::Folder { digests: false } => {
                        subfolders = true;
                        let path = entry.path();
                        match stamp_holds(&path, &entry)? {
                            Some(stamped) => folders.push(stamped),
                            None => pending.push(path),
                        }
                    }
                }
            }
            if files > 0 {
                if !settled(modified) {
                    return Ok(None);
                }
                folders.push(Folder {
                    path: format!("{}/", dir.to_string_lossy()),
                    modified,
                    files,
                    subfolders,
                });
            }
        }
        // Byte order of the paths: the stamps' text must not depend on the
        // order folders were visited in.
        folders.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Some(folders))
    }

    fn read(&self, file: &LogFile) -> Result<Vec<u8>, Error> {
        let path = Path::new(&file.path);
        let mut bytes = Vec::new();
        File::open(path)
            .map_err(io("reading", path))?
            .take(MAX_FILE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(io("reading", path))?;
        Ok(bytes)
    }
}

/// The log files under `dir`, in a stable order; digest files are left out.
pub fn log_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    Ok(walk(dir, false)?
        .into_iter()
        .map(|(path, _)| path)
        .collect())
}

/// What an entry of a directory is to a walk of log files.
enum Entry {
    /// A folder; `digests` for `CloudTrail-Digest`, which holds no log files.
    Folder { digests: bool },
    /// A log file ([`is_log_file`]); a symlink's metadata is its target's.
    LogFile { symlink: bool },
    /// A hidden entry, or a file that is not a log file.
    Other,
}

/// Classifies a directory entry. Its type comes with the listing; only a
/// symlink costs a stat.
fn classify(entry: &std::fs::DirEntry) -> Entry {
    let name = entry.file_name();
    let name = name.to_string_lossy();
    if name.starts_with('.') {
        return Entry::Other;
    }
    let file_type = entry.file_type().ok();
    let symlink = file_type.is_none_or(|t| t.is_symlink());
    let is_dir = match file_type {
        Some(t) if !t.is_symlink() => t.is_dir(),
        _ => entry.path().is_dir(),
    };
    if is_dir {
        Entry::Folder {
            digests: name == "CloudTrail-Digest",
        }
    } else if is_log_file(&name) {
        Entry::LogFile { symlink }
    } else {
        Entry::Other
    }
}

/// The log files under `dir` in byte order of their paths, with their
/// metadata when `with_metadata` (taken through the directory's entry, which
/// costs no path lookup; `None` for a symlink, whose target the caller stats).
fn walk(
    dir: &Path,
    with_metadata: bool,
) -> Result<Vec<(PathBuf, Option<std::fs::Metadata>)>, Error> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        let entries = std::fs::read_dir(&next).map_err(io("reading", &next))?;
        for entry in entries {
            let entry = entry.map_err(io("reading", &next))?;
            match classify(&entry) {
                Entry::Folder { digests: false } => pending.push(entry.path()),
                Entry::LogFile { symlink } => {
                    let path = entry.path();
                    let meta = if with_metadata && !symlink {
                        Some(entry.metadata().map_err(io("reading", &path))?)
                    } else {
                        None
                    };
                    files.push((path, meta));
                }
                Entry::Folder { digests: true } | Entry::Other => {}
            }
        }
    }
    // Byte order of the whole path: as stable as component order, and
    // much cheaper to sort 100 000 paths by.
    files.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
    Ok(files)
}

/// One log file's records, from its stored bytes (gzip detected by its magic).
pub fn parse_log_file(name: &str, bytes: &[u8]) -> Result<Vec<Value>, Error> {
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(BufReader::new(bytes))
            .take(MAX_FILE_BYTES)
            .read_to_end(&mut out)
            .map_err(|e| Error::Invalid(format!("{name} is not a CloudTrail log file: {e}")))?;
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(bytes)
    };
    let document: Value = serde_json::from_slice(&text)
        .map_err(|e| Error::Invalid(format!("{name} is not a CloudTrail log file: {e}")))?;
    match document {
        Value::Object(mut members) => match members.remove("Records") {
            Some(Value::Array(records)) => Ok(records),
            _ => Err(Error::Invalid(format!(
                "{name} is not a CloudTrail log file: it has no Records list"
            ))),
        },
        _ => Err(Error::Invalid(format!(
            "{name} is not a CloudTrail log file: not a JSON object"
        ))),
    }
}

/// How far a refresh got: files and records done, of how many files to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Files converted.
    pub files_done: usize,
    /// Files to convert (those of the parts that changed).
    pub files_total: usize,
    /// Records written.
    pub records: u64,
}

/// The current Parquet copy of a source: its parts, all in one directory.
#[derive(Debug, Clone)]
pub struct CachedCopy {
    /// The directory the parts are in (register it as a table).
    pub dir: PathBuf,
    /// The parts.
    pub parts: Vec<PathBuf>,
    /// Their total size.
    pub bytes: u64,
    /// Log files the copy holds.
    pub log_files: usize,
}

/// The part name of a partition: readable, and unique by a hash of its values.
fn part_name(partition: &Partition) -> String {
    use std::hash::{Hash, Hasher};
    let Partition {
        region,
        year,
        month,
        day,
    } = partition;
    let (Some(region), Some(year), Some(month), Some(day)) = (region, year, month, day) else {
        return "other".to_owned();
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    region.hash(&mut hasher);
    let clean: String = region
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!(
        "{year}-{month}-{day}-{clean}-{:08x}",
        hasher.finish() & 0xffff_ffff
    )
}

/// Each part's folder stamps as text, and the number of log files.
fn folder_stamps(source: &str, folders: &[Folder]) -> (BTreeMap<String, String>, usize) {
    let mut stamps: BTreeMap<String, String> = BTreeMap::new();
    let mut files = 0;
    for folder in folders {
        files += folder.files;
        let text = stamps
            .entry(part_name(&Partition::of_path(&folder.path)))
            .or_insert_with(|| format!("{CACHE_VERSION}\n{source}\n"));
        text.push_str(&format!(
            "{}\t{}:{}:{}\n",
            folder.path,
            folder.modified,
            folder.files,
            if folder.subfolders { "+" } else { "-" }
        ));
    }
    (stamps, files)
}

/// The stamp files saved by the last refresh, by part name.
fn saved_stamps(cache_dir: &Path) -> Result<BTreeMap<String, String>, Error> {
    let mut saved = BTreeMap::new();
    let entries = match std::fs::read_dir(cache_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(saved),
        Err(e) => return Err(io("reading", cache_dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io("reading", cache_dir))?.path();
        if path.extension().is_some_and(|e| e == STAMPS_EXTENSION)
            && let (Some(stem), Ok(text)) = (path.file_stem(), std::fs::read_to_string(&path))
        {
            saved.insert(stem.to_string_lossy().into_owned(), text);
        }
    }
    Ok(saved)
}

/// The folders the saved stamps record for `source`, by path. A line that
/// does not read is left out: its folder is listed again.
fn known_folders(source: &str, saved: &BTreeMap<String, String>) -> BTreeMap<String, Folder> {
    let header = format!("{CACHE_VERSION}\n{source}\n");
    let mut known = BTreeMap::new();
    for text in saved.values() {
        let Some(lines) = text.strip_prefix(&header) else {
            continue;
        };
        for line in lines.lines() {
            let Some((path, stamp)) = line.rsplit_once('\t') else {
                continue;
            };
            let mut fields = stamp.split(':');
            let (Some(modified), Some(files), Some(subfolders), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (Ok(modified), Ok(files)) = (modified.parse(), files.parse()) else {
                continue;
            };
            known.insert(
                path.to_owned(),
                Folder {
                    path: path.to_owned(),
                    modified,
                    files,
                    subfolders: subfolders != "-",
                },
            );
        }
    }
    known
}

/// The copy, if every part is there with the folder stamps of `stamps` and
/// no other part is.
fn current_by_stamps(
    cache_dir: &Path,
    saved: &BTreeMap<String, String>,
    stamps: &BTreeMap<String, String>,
    log_files: usize,
) -> Result<Option<CachedCopy>, Error> {
    let mut parts = Vec::with_capacity(stamps.len());
    let mut bytes = 0;
    for (name, wanted) in stamps {
        let part = cache_dir.join(format!("{name}.{PART_EXTENSION}"));
        match (saved.get(name), std::fs::metadata(&part)) {
            (Some(saved), Ok(meta)) if saved == wanted => {
                bytes += meta.len();
                parts.push(part);
            }
            _ => return Ok(None),
        }
    }
    // A part whose folders are all gone must be removed by a full refresh.
    let entries = std::fs::read_dir(cache_dir).map_err(io("reading", cache_dir))?;
    for entry in entries {
        let path = entry.map_err(io("reading", cache_dir))?.path();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.extension().is_some_and(|e| e == PART_EXTENSION) && !stamps.contains_key(&stem) {
            return Ok(None);
        }
    }
    Ok(Some(CachedCopy {
        dir: cache_dir.to_owned(),
        parts,
        bytes,
        log_files,
    }))
}

fn manifest(source: &str, files: &[&LogFile]) -> String {
    let mut text = format!("{CACHE_VERSION}\n{source}\n");
    for file in files {
        text.push_str(&format!("{}\t{}\t{}\n", file.path, file.size, file.version));
    }
    text
}

/// Makes the Parquet copy of `source` in `cache_dir` current and returns it;
/// `progress` hears of every file converted. Callers serialise refreshes of
/// one cache directory.
pub fn refresh(
    source: &dyn LogFiles,
    cache_dir: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<CachedCopy, Error> {
    std::fs::create_dir_all(cache_dir).map_err(io("creating", cache_dir))?;
    let source_name = source.describe();
    // Folders whose stamps match the ones recorded at the last refresh
    // hold the files they held then: no file need be looked at.
    let saved = saved_stamps(cache_dir)?;
    let stamps = source
        .folders(&known_folders(&source_name, &saved))?
        .map(|folders| folder_stamps(&source_name, &folders));
    if let Some((stamps, log_files)) = &stamps
        && let Some(copy) = current_by_stamps(cache_dir, &saved, stamps, *log_files)?
    {
        return Ok(copy);
    }
    let files = source.list()?;
    let mut groups: BTreeMap<String, (Arc<Partition>, Vec<&LogFile>)> = BTreeMap::new();
    for file in &files {
        let partition = Partition::of_path(&file.path);
        groups
            .entry(part_name(&partition))
            .or_insert_with(|| (Arc::new(partition), Vec::new()))
            .1
            .push(file);
    }
    let mut stale = Vec::new();
    for (name, (_, members)) in &groups {
        let part = cache_dir.join(format!("{name}.{PART_EXTENSION}"));
        let manifest_path = cache_dir.join(format!("{name}.{MANIFEST_EXTENSION}"));
        let wanted = manifest(&source_name, members);
        let current = part.exists()
            && std::fs::read_to_string(&manifest_path).is_ok_and(|saved| saved == wanted);
        if !current {
            stale.push((name.clone(), wanted));
        }
    }
    let mut done = Progress {
        files_done: 0,
        files_total: stale
            .iter()
            .map(|(name, _)| groups.get(name).map_or(0, |g| g.1.len()))
            .sum(),
        records: 0,
    };
    progress(done);
    for (name, wanted) in &stale {
        let Some((partition, members)) = groups.get(name) else {
            continue;
        };
        write_part(
            source,
            cache_dir,
            name,
            partition,
            members,
            &mut done,
            &mut progress,
        )?;
        let manifest_path = cache_dir.join(format!("{name}.{MANIFEST_EXTENSION}"));
        write_atomically(&manifest_path, wanted.as_bytes())?;
    }
    // The folders' stamps, for the next refresh's quick check; a part
    // whose folders were not stamped has its stamp file removed below.
    let stamps = stamps.map(|(stamps, _)| stamps).unwrap_or_default();
    for name in groups.keys() {
        if let Some(text) = stamps.get(name) {
            write_atomically(
                &cache_dir.join(format!("{name}.{STAMPS_EXTENSION}")),
                text.as_bytes(),
            )?;
        }
    }
    // Parts whose files are gone (a day expired by lifecycle rules).
    let entries = std::fs::read_dir(cache_dir).map_err(io("reading", cache_dir))?;
    for entry in entries {
        let entry = entry.map_err(io("reading", cache_dir))?;
        let path = entry.path();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let extension = path.extension();
        let ours = extension.is_some_and(|e| {
            e == PART_EXTENSION || e == MANIFEST_EXTENSION || e == STATISTICS_EXTENSION
        });
        let stamp = extension.is_some_and(|e| e == STAMPS_EXTENSION);
        if (ours && !groups.contains_key(&stem))
            || (stamp && !(groups.contains_key(&stem) && stamps.contains_key(&stem)))
        {
            std::fs::remove_file(&path).map_err(io("removing", &path))?;
        }
    }
    let mut parts = Vec::new();
    let mut bytes = 0;
    for name in groups.keys() {
        let part = cache_dir.join(format!("{name}.{PART_EXTENSION}"));
        bytes += std::fs::metadata(&part)
            .map_err(io("reading", &part))?
            .len();
        parts.push(part);
    }
    Ok(CachedCopy {
        dir: cache_dir.to_owned(),
        parts,
        bytes,
        log_files: files.len(),
    })
}

fn write_part(
    source: &dyn LogFiles,
    cache_dir: &Path,
    name: &str,
    partition: &Arc<Partition>,
    members: &[&LogFile],
    done: &mut Progress,
    progress: &mut impl FnMut(Progress),
) -> Result<(), Error> {
    let part = cache_dir.join(format!("{name}.{PART_EXTENSION}"));
    let tmp = cache_dir.join(format!(".{name}.{PART_EXTENSION}.tmp"));
    let out = File::create(&tmp).map_err(io("creating", &tmp))?;
    let mut writer = part_writer(out, cloudtrail_schema(), copy_writer_properties())?;
    let mut pending: Vec<(Value, Arc<Partition>)> = Vec::new();
    let flush = |pending: &mut Vec<(Value, Arc<Partition>)>,
                 writer: &mut ArrowWriter<File>|
     -> Result<(), Error> {
        let batch = sorted_for_pruning(records_to_batch(std::mem::take(pending))?)?;
        writer
            .write(&batch)
            .map_err(|e| Error::Engine(e.to_string()))
    };
    for file in members {
        let bytes = source.read(file)?;
        for record in parse_log_file(&file.path, &bytes)? {
            pending.push((record, partition.clone()));
            done.records += 1;
            if pending.len() >= ROWS_PER_BATCH {
                flush(&mut pending, &mut writer)?;
            }
        }
        done.files_done += 1;
        progress(*done);
    }
    if !pending.is_empty() {
        flush(&mut pending, &mut writer)?;
    }
    let out = writer
        .into_inner()
        .map_err(|e| Error::Engine(e.to_string()))?;
    out.sync_all().map_err(io("writing", &tmp))?;
    std::fs::rename(&tmp, &part).map_err(io("writing", &part))
}

/// The columns a row group's rows are ordered by. Investigations filter on
/// the action and the service (`eventname = 'ConsoleLogin'`,
/// `eventsource = 'kms.amazonaws.com' AND eventname IN (...)`); rows in
/// this order give each page of a row group a narrow range of them, so the
/// page index lets a query skip the pages of every other action, in every
/// column it reads. The action comes first: ordered by service first, a
/// page spanning a service's actions from `CopyObject` to `PutObject` holds
/// `ConsoleLogin` within its range and could not be skipped.
const PRUNING_ORDER: [&str; 3] = ["eventname", "eventsource", "eventtime"];

/// `batch` (one row group's rows) in [`PRUNING_ORDER`]. Only rows within a
/// row group move: memory stays one row group's, and the part's row groups
/// keep the order files were delivered in.
fn sorted_for_pruning(batch: RecordBatch) -> Result<RecordBatch, Error> {
    let keys = PRUNING_ORDER
        .iter()
        .filter_map(|name| batch.column_by_name(name).cloned())
        .collect();
    sorted_by(batch, keys)
}

/// `batch`'s rows ordered by `keys` (columns of it, the first foremost);
/// `batch` as it is without keys.
pub(crate) fn sorted_by(
    batch: RecordBatch,
    keys: Vec<datafusion::arrow::array::ArrayRef>,
) -> Result<RecordBatch, Error> {
    use datafusion::arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
    let engine = |e: datafusion::arrow::error::ArrowError| Error::Engine(e.to_string());
    if keys.is_empty() || batch.num_rows() < 2 {
        return Ok(batch);
    }
    let columns: Vec<SortColumn> = keys
        .into_iter()
        .map(|values| SortColumn {
            values,
            options: None,
        })
        .collect();
    let order = lexsort_to_indices(&columns, None).map_err(engine)?;
    take_record_batch(&batch, &order).map_err(engine)
}

/// Writes `bytes` to `path` whole or not at all: a temporary file, fsync,
/// rename, fsync of the directory it is in.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io("writing", &tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("writing", path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", dir))
}

/// Where the Parquet copy of `dir` is cached by default:
/// `$XDG_CACHE_HOME/cairn/query/<hash of the directory's path>` (or under
/// `~/.cache`), never inside `dir` itself.
pub fn default_cache_dir(dir: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    canonical.hash(&mut hasher);
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("cairn")
        .join("query")
        .join(format!("{:016x}", hasher.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn log_file(dir: &Path, day: &str, name: &str, events: usize) {
        let folder = dir.join(format!(
            "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/{day}"
        ));
        std::fs::create_dir_all(&folder).unwrap();
        let records: Vec<Value> = (0..events)
            .map(|i| {
                serde_json::json!({"eventVersion": "1.08", "eventID": format!("{name}-{i}"),
                "eventTime": format!("2024-01-{day}T00:00:00Z"), "eventName": "GetObject"})
            })
            .collect();
        std::fs::write(
            folder.join(name),
            serde_json::json!({"Records": records}).to_string(),
        )
        .unwrap();
    }

    /// Moves every folder's time `ago` into the past, as if it settled then.
    fn settle(dir: &Path, ago: u64) {
        let when = SystemTime::now() - Duration::from_secs(ago);
        for day in ["01", "02"] {
            let folder = dir.join(format!(
                "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/{day}"
            ));
            if folder.exists() {
                File::open(&folder).unwrap().set_modified(when).unwrap();
            }
        }
    }

    /// Refreshes; returns the copy and how many files were converted (None:
    /// the folder stamps proved it current without looking at a file).
    fn refresh_counting(source: &DirLogs, cache: &Path) -> (CachedCopy, Option<usize>) {
        let mut converted = None;
        let copy = refresh(source, cache, |p| converted = Some(p.files_total)).unwrap();
        (copy, converted)
    }

    #[test]
    fn settled_folders_prove_the_copy_current_and_changes_rebuild_their_part() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, cache) = (dir.path().join("logs"), dir.path().join("cache"));
        log_file(&logs, "01", "a.json", 3);
        log_file(&logs, "02", "b.json", 2);
        let source = DirLogs::new(&logs);
        settle(&logs, 60);
        let (copy, converted) = refresh_counting(&source, &cache);
        assert_eq!(
            (copy.parts.len(), copy.log_files, converted),
            (2, 2, Some(2))
        );

        // Nothing changed: the stamps say so, no file is looked at.
        let (copy, converted) = refresh_counting(&source, &cache);
        assert_eq!((copy.parts.len(), copy.log_files, converted), (2, 2, None));

        // A file delivered into day 2: only its part is rebuilt.
        log_file(&logs, "02", "c.json", 4);
        settle(&logs, 30);
        let (copy, converted) = refresh_counting(&source, &cache);
        assert_eq!((copy.log_files, converted), (3, Some(2)));
        let (_, converted) = refresh_counting(&source, &cache);
        assert_eq!(converted, None);

        // A folder that changed just now is checked file by file.
        log_file(&logs, "01", "d.json", 1);
        let (copy, converted) = refresh_counting(&source, &cache);
        assert_eq!((copy.log_files, converted), (4, Some(2)));
        let (_, converted) = refresh_counting(&source, &cache);
        assert_eq!(converted, Some(0), "still too recent to trust its stamp");

        // A day removed: its part goes with the statistics kept beside it,
        // and the stamps of the rest still hold.
        let statistics: Vec<PathBuf> = copy
            .parts
            .iter()
            .map(|part| part.with_extension(STATISTICS_EXTENSION))
            .collect();
        for file in &statistics {
            std::fs::write(file, "{}").unwrap();
        }
        std::fs::remove_dir_all(logs.join("AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/01"))
            .unwrap();
        settle(&logs, 10);
        let (copy, converted) = refresh_counting(&source, &cache);
        assert_eq!(
            (copy.parts.len(), copy.log_files, converted),
            (1, 2, Some(0))
        );
        let kept: Vec<bool> = statistics.iter().map(|f| f.exists()).collect();
        assert_eq!(kept, [false, true], "{statistics:?}");
        let (copy, converted) = refresh_counting(&source, &cache);
        assert_eq!((copy.parts.len(), converted), (1, None));
    }

    fn set_time(folder: &Path, when: SystemTime) {
        File::open(folder).unwrap().set_modified(when).unwrap();
    }

    #[test]
    fn a_settled_folder_is_not_listed_again_unless_it_holds_folders() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, cache) = (dir.path().join("logs"), dir.path().join("cache"));
        log_file(&logs, "01", "a.json", 3);
        let day = logs.join("AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/01");
        // A folder holding files and a folder: CloudTrail never lays files
        // out so, an export may.
        let mixed = logs.join("AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/02");
        std::fs::create_dir_all(mixed.join("more")).unwrap();
        std::fs::write(mixed.join("b.json"), r#"{"Records":[{"eventID":"b"}]}"#).unwrap();
        std::fs::write(
            mixed.join("more/c.json"),
            r#"{"Records":[{"eventID":"c"}]}"#,
        )
        .unwrap();
        let past = SystemTime::now() - Duration::from_secs(60);
        for folder in [&day, &mixed, &mixed.join("more")] {
            set_time(folder, past);
        }
        let source = DirLogs::new(&logs);
        let (copy, converted) = refresh_counting(&source, &cache);
        assert_eq!((copy.log_files, converted), (3, Some(3)));

        // A file slipped into the day with its folder's time put back: the
        // folder's stamp still holds, so it is not listed and the file is
        // not seen. (CloudTrail adds files; it never hides one so.)
        log_file(&logs, "01", "hidden.json", 1);
        set_time(&day, past);
        let (copy, converted) = refresh_counting(&source, &cache);
        assert_eq!((copy.log_files, converted), (3, None));

        // Once the folder's time moves, it is listed and the file is found.
        set_time(&day, past + Duration::from_secs(1));
        let (copy, converted) = refresh_counting(&source, &cache);
        // The day's part is rebuilt from both its files.
        assert_eq!((copy.log_files, converted), (4, Some(2)));

        // A file added below the mixed folder leaves that folder's time as
        // it was; the mixed folder is listed anyway, and the file is found.
        std::fs::write(
            mixed.join("more/d.json"),
            r#"{"Records":[{"eventID":"d"}]}"#,
        )
        .unwrap();
        set_time(&mixed.join("more"), past + Duration::from_secs(2));
        assert_eq!(std::fs::metadata(&mixed).unwrap().modified().unwrap(), past);
        let (copy, converted) = refresh_counting(&source, &cache);
        assert_eq!((copy.log_files, converted), (5, Some(3)));
    }

    /// The Athena copy of one log file holding `records`, and a reader of
    /// its one part (the directory holding both goes with the first).
    fn one_part(
        records: &[serde_json::Value],
    ) -> (
        tempfile::TempDir,
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder<File>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (logs, cache) = (dir.path().join("logs"), dir.path().join("cache"));
        let folder = logs.join("AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/01");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("a.json"),
            serde_json::json!({"Records": records}).to_string(),
        )
        .unwrap();
        let copy = refresh(&DirLogs::new(&logs), &cache, |_| {}).unwrap();
        let part = File::open(&copy.parts[0]).unwrap();
        let builder =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                part,
            )
            .unwrap();
        (dir, builder)
    }

    #[test]
    fn a_row_group_is_ordered_by_service_action_and_time() {
        let records = [
            ("s3.amazonaws.com", "PutObject", "03"),
            ("kms.amazonaws.com", "Decrypt", "02"),
            ("s3.amazonaws.com", "GetObject", "01"),
            ("kms.amazonaws.com", "Decrypt", "01"),
        ]
        .map(|(source, name, second)| {
            serde_json::json!({"eventSource": source, "eventName": name,
                "eventTime": format!("2024-01-01T00:00:{second}Z")})
        });
        let (_dir, part) = one_part(&records);
        let reader = part.build().unwrap();
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let column = |name: &str| {
                let plain = datafusion::arrow::compute::cast(
                    batch.column_by_name(name).unwrap(),
                    &datafusion::arrow::datatypes::DataType::Utf8,
                )
                .unwrap();
                datafusion::arrow::array::AsArray::as_string::<i32>(&plain).clone()
            };
            let (source, name, time) = (
                column("eventsource"),
                column("eventname"),
                column("eventtime"),
            );
            for i in 0..batch.num_rows() {
                rows.push(format!(
                    "{} {} {}",
                    source.value(i),
                    name.value(i),
                    &time.value(i)[17..19]
                ));
            }
        }
        assert_eq!(
            rows,
            [
                "kms.amazonaws.com Decrypt 01",
                "kms.amazonaws.com Decrypt 02",
                "s3.amazonaws.com GetObject 01",
                "s3.amazonaws.com PutObject 03"
            ]
        );
    }

    #[test]
    fn a_part_is_read_as_queries_read_it_and_its_parquet_schema_is_plain_strings() {
        let records = [serde_json::json!({
            "eventVersion": "1.08", "eventID": "e1", "eventTime": "2024-01-01T00:00:00Z",
            "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice"},
            "resources": [{"ARN": "arn:aws:s3:::bucket/key", "type": "AWS::S3::Object"}]
        })];
        let (_dir, part) = one_part(&records);
        // Arrow readers read views where queries want them, nested ones too.
        assert_eq!(part.schema(), &read_schema(&cloudtrail_schema()));
        let arn = part
            .schema()
            .field_with_name("useridentity")
            .map(|f| f.data_type().clone())
            .unwrap();
        assert!(
            matches!(&arn, datafusion::arrow::datatypes::DataType::Struct(fields)
                if fields.find("arn").unwrap().1.data_type()
                    == &datafusion::arrow::datatypes::DataType::Utf8View),
            "{arn}"
        );
        // Parquet's own schema names strings, as it did before the hint.
        let plain = datafusion::parquet::arrow::ArrowSchemaConverter::new()
            .convert(&cloudtrail_schema())
            .unwrap();
        assert_eq!(part.parquet_schema().root_schema(), plain.root_schema());
        let batch = part.build().unwrap().next().unwrap().unwrap();
        let plain = crate::schema::cast_batch(&batch, &cloudtrail_schema()).unwrap();
        let arns = plain
            .column_by_name("useridentity")
            .map(|c| {
                datafusion::arrow::array::AsArray::as_struct(c)
                    .column_by_name("arn")
                    .unwrap()
                    .clone()
            })
            .unwrap();
        assert_eq!(
            datafusion::arrow::array::AsArray::as_string::<i32>(&arns).value(0),
            "arn:aws:iam::123456789012:user/alice"
        );
    }

    #[test]
    fn the_copy_writes_no_dictionary_codec_or_page_statistics_where_they_do_not_pay() {
        let records: Vec<_> = (0..50)
            .map(|i| {
                serde_json::json!({"eventSource": "s3.amazonaws.com", "eventName": "GetObject",
                    "eventTime": format!("2024-01-01T00:00:{:02}Z", i % 60),
                    "sourceIPAddress": format!("198.51.100.{i}"),
                    "eventID": format!("id-{i}"),
                    "requestParameters": {"bucketName": "b", "key": format!("k{i}")}})
            })
            .collect();
        let (_dir, builder) = one_part(&records);
        let row_group = builder.metadata().row_group(0);
        let column = |name: &str| {
            row_group
                .columns()
                .iter()
                .find(|c| c.column_path().string() == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        };
        let has_dictionary = |name: &str| column(name).dictionary_page_offset().is_some();
        for name in nearly_unique_columns() {
            assert!(!has_dictionary(name), "{name}");
        }
        assert!(has_dictionary("eventname"));
        assert!(has_dictionary("useridentity.arn"));
        // Page statistics (the column index) only where filters use them;
        // every column keeps its chunk's.
        let kept: Vec<String> = PAGE_STATISTICS_COLUMNS
            .iter()
            .map(|path| path.join("."))
            .collect();
        for chunk in row_group.columns() {
            let name = chunk.column_path().string();
            assert_eq!(
                chunk.column_index_offset().is_some(),
                kept.contains(&name),
                "{name}"
            );
        }
        for name in [
            "eventtime",
            "eventid",
            "requestparameters",
            "useridentity.arn",
        ] {
            assert!(column(name).statistics().is_some(), "{name}");
        }
        // No codec where the dictionary is the compression; zstd elsewhere.
        for path in REPEATING_COLUMNS {
            let name = path.join(".");
            assert_eq!(
                column(&name).compression(),
                Compression::UNCOMPRESSED,
                "{name}"
            );
        }
        for name in ["requestparameters", "useridentity.principalid", "eventid"] {
            assert!(
                matches!(column(name).compression(), Compression::ZSTD(_)),
                "{name}"
            );
        }
        for name in LZ4_COLUMNS {
            assert_eq!(column(name).compression(), Compression::LZ4_RAW, "{name}");
        }
    }
}
