//! A directory of CloudTrail log files (`.json.gz` or `.json`, each
//! `{"Records": [...]}`) converted once into a Parquet copy of
//! [`crate::schema::cloudtrail_schema`] rows, for SQL over an export: the
//! incident responder's case.
//!
//! Memory stays bounded however many files there are: files are read one at
//! a time and rows are written out in row groups of [`ROWS_PER_BATCH`]. The
//! copy is cached under a directory named for the source; a manifest of every
//! file's path, size and modification time decides whether it is still
//! current. The source directory is never written to: it may be evidence.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use serde_json::Value;

use crate::Error;
use crate::schema::{Partition, cloudtrail_schema, records_to_batch};

/// Rows per batch and per Parquet row group.
pub const ROWS_PER_BATCH: usize = 65_536;
/// The largest log file read (uncompressed): CloudTrail's files are far smaller.
const MAX_FILE_BYTES: u64 = 1024 * 1024 * 1024;
/// The name of the Parquet copy inside its cache directory.
pub const PARQUET_NAME: &str = "records.parquet";
const MANIFEST_NAME: &str = "manifest.txt";

/// An I/O error's mapping, saying what was being done to which file.
fn io(doing: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let context = format!("{doing} {}", path.display());
    move |source| Error::Io { context, source }
}

/// The log files under `dir`, in a stable order; digest files are left out.
pub fn log_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        let entries = std::fs::read_dir(&next).map_err(io("reading", &next))?;
        for entry in entries {
            let entry = entry.map_err(io("reading", &next))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                if name != "CloudTrail-Digest" {
                    pending.push(path);
                }
            } else if name.ends_with(".json.gz") || name.ends_with(".json") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn manifest(dir: &Path, files: &[PathBuf]) -> Result<String, Error> {
    let mut text = format!("cairn-query-cache 1\n{}\n", dir.display());
    for file in files {
        let meta = std::fs::metadata(file).map_err(io("reading", file))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        text.push_str(&format!("{}\t{}\t{modified}\n", file.display(), meta.len()));
    }
    Ok(text)
}

/// Reads one log file's records.
fn read_records(path: &Path) -> Result<Vec<Value>, Error> {
    let file = File::open(path).map_err(io("reading", path))?;
    let mut bytes = Vec::new();
    let mut limited: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)).take(MAX_FILE_BYTES))
    } else {
        Box::new(BufReader::new(file).take(MAX_FILE_BYTES))
    };
    limited
        .read_to_end(&mut bytes)
        .map_err(io("reading", path))?;
    let document: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Invalid(format!(
            "{} is not a CloudTrail log file: {e}",
            path.display()
        ))
    })?;
    match document {
        Value::Object(mut members) => match members.remove("Records") {
            Some(Value::Array(records)) => Ok(records),
            _ => Err(Error::Invalid(format!(
                "{} is not a CloudTrail log file: it has no Records list",
                path.display()
            ))),
        },
        _ => Err(Error::Invalid(format!(
            "{} is not a CloudTrail log file: not a JSON object",
            path.display()
        ))),
    }
}

/// How far a conversion got: files and records done, of how many files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Files converted.
    pub files_done: usize,
    /// Files in all.
    pub files_total: usize,
    /// Records written.
    pub records: u64,
}

/// The Parquet copy of the logs under `dir`, in `cache_dir` (made current
/// first if the files changed); `progress` hears of every file converted.
pub fn parquet_copy(
    dir: &Path,
    cache_dir: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<PathBuf, Error> {
    let files = log_files(dir)?;
    let manifest = manifest(dir, &files)?;
    let parquet = cache_dir.join(PARQUET_NAME);
    let manifest_path = cache_dir.join(MANIFEST_NAME);
    if parquet.exists()
        && std::fs::read_to_string(&manifest_path).is_ok_and(|saved| saved == manifest)
    {
        return Ok(parquet);
    }
    std::fs::create_dir_all(cache_dir).map_err(io("creating", cache_dir))?;
    let tmp = cache_dir.join(format!(".{PARQUET_NAME}.tmp"));
    let out = File::create(&tmp).map_err(io("creating", &tmp))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROWS_PER_BATCH))
        .build();
    let mut writer = ArrowWriter::try_new(out, cloudtrail_schema(), Some(properties))
        .map_err(|e| Error::Engine(e.to_string()))?;
    let mut pending: Vec<(Value, Arc<Partition>)> = Vec::new();
    let mut done = Progress {
        files_done: 0,
        files_total: files.len(),
        records: 0,
    };
    let flush = |pending: &mut Vec<(Value, Arc<Partition>)>,
                 writer: &mut ArrowWriter<File>|
     -> Result<(), Error> {
        let batch = records_to_batch(std::mem::take(pending))?;
        writer
            .write(&batch)
            .map_err(|e| Error::Engine(e.to_string()))
    };
    for file in &files {
        let relative = file.strip_prefix(dir).unwrap_or(file);
        let partition = Arc::new(Partition::of_path(&relative.to_string_lossy()));
        for record in read_records(file)? {
            pending.push((record, partition.clone()));
            done.records += 1;
            if pending.len() >= ROWS_PER_BATCH {
                flush(&mut pending, &mut writer)?;
            }
        }
        done.files_done += 1;
        progress(done);
    }
    if !pending.is_empty() {
        flush(&mut pending, &mut writer)?;
    }
    let out = writer
        .into_inner()
        .map_err(|e| Error::Engine(e.to_string()))?;
    out.sync_all().map_err(io("writing", &tmp))?;
    std::fs::rename(&tmp, &parquet).map_err(io("writing", &parquet))?;
    let mut saved = File::create(&manifest_path).map_err(io("writing", &manifest_path))?;
    saved
        .write_all(manifest.as_bytes())
        .and_then(|()| saved.sync_all())
        .map_err(io("writing", &manifest_path))?;
    Ok(parquet)
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
