//! Reading the records `cairn ingest` sends.
//!
//! Accepted, detected from content rather than file names:
//!
//! * a CloudTrail log file, `{"Records":[...]}` (also a bare JSON array of records);
//! * JSON lines, one record per line (blank lines skipped);
//! * either of these gzip-compressed (detected by the magic bytes `1f 8b`);
//! * a directory: every `*.json` and `*.json.gz` below it, recursively, in
//!   path order; digest files (`CloudTrail-Digest`) are skipped.
//!
//! Memory is bounded: JSON lines are streamed a line at a time (a line longer
//! than a request body is refused on its own); a document is loaded whole, up
//! to a cap; every gzip stream is capped in decompressed size. Records are
//! handed on as the exact text read, whitespace around a line aside.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// Where `cairn ingest` reads from.
pub enum IngestSource {
    /// A file, or a directory of log files.
    Path(PathBuf),
    /// Standard input (`-` on the command line).
    Stdin,
    /// Any reader; `name` stands for it in messages.
    Reader {
        /// A name for messages.
        name: String,
        /// The bytes.
        reader: Box<dyn Read + Send>,
    },
}

impl IngestSource {
    /// `-` is standard input; anything else a path.
    pub fn from_arg(arg: &str) -> Self {
        if arg == "-" {
            IngestSource::Stdin
        } else {
            IngestSource::Path(PathBuf::from(arg))
        }
    }
}

impl fmt::Debug for IngestSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IngestSource::Path(p) => f.debug_tuple("Path").field(p).finish(),
            IngestSource::Stdin => f.write_str("Stdin"),
            IngestSource::Reader { name, .. } => f
                .debug_struct("Reader")
                .field("name", name)
                .finish_non_exhaustive(),
        }
    }
}

/// Where records read go.
pub(crate) trait RecordSink {
    /// A document announced how many records it holds.
    fn total(&mut self, records: u64) -> Result<()>;
    /// One record's exact text.
    fn record(&mut self, text: &str) -> Result<()>;
    /// One input record that cannot be sent (takes a position like a record).
    fn invalid(&mut self, code: &'static str, message: String) -> Result<()>;
}

/// Caps that keep memory bounded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    /// Decompressed bytes of one gzip stream, and bytes of a document loaded whole.
    pub(crate) max_decompressed_bytes: u64,
    /// The longest line (record) of JSON lines input.
    pub(crate) max_line_bytes: usize,
}

/// Reads every record of `source` into `sink`.
pub(crate) fn read_source(
    source: IngestSource,
    limits: &ReadLimits,
    sink: &mut dyn RecordSink,
) -> Result<()> {
    match source {
        IngestSource::Stdin => read_stream(Path::new("-"), std::io::stdin().lock(), limits, sink),
        IngestSource::Reader { name, reader } => {
            read_stream(Path::new(&name), reader, limits, sink)
        }
        IngestSource::Path(path) => {
            let metadata = std::fs::metadata(&path).map_err(io_error(&path, limits))?;
            if metadata.is_dir() {
                let mut files = Vec::new();
                collect_log_files(&path, &mut files, limits, 0)?;
                files.sort();
                tracing::debug!(directory = %path.display(), files = files.len(), "reading log files");
                for file in files {
                    let reader = File::open(&file).map_err(io_error(&file, limits))?;
                    read_stream(&file, reader, limits, sink)?;
                }
                Ok(())
            } else {
                let reader = File::open(&path).map_err(io_error(&path, limits))?;
                read_stream(&path, reader, limits, sink)
            }
        }
    }
}

/// Every log file (`*.json`, `*.json.gz`, digests left out) below `dir`, in
/// path order, as `cairn ingest` reads a directory.
pub fn log_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let limits = ReadLimits {
        max_decompressed_bytes: 0,
        max_line_bytes: 0,
    };
    let mut files = Vec::new();
    collect_log_files(dir, &mut files, &limits, 0)?;
    files.sort();
    Ok(files)
}

/// Directory nesting deeper than this is refused (CloudTrail's layout is about 10 deep).
const MAX_DIRECTORY_DEPTH: usize = 64;

fn collect_log_files(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    limits: &ReadLimits,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DIRECTORY_DEPTH {
        return Err(Error::InvalidInput {
            path: dir.to_owned(),
            reason: format!("directories nest deeper than {MAX_DIRECTORY_DEPTH} levels"),
        });
    }
    for entry in std::fs::read_dir(dir).map_err(io_error(dir, limits))? {
        let entry = entry.map_err(io_error(dir, limits))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let file_type = entry.file_type().map_err(io_error(&path, limits))?;
        // Symlinked directories are not followed (no cycles); symlinked files are read.
        if file_type.is_dir() {
            if name != "CloudTrail-Digest" {
                collect_log_files(&path, out, limits, depth + 1)?;
            }
        } else if is_log_file_name(&name)
            && (file_type.is_file() || std::fs::metadata(&path).is_ok_and(|m| m.is_file()))
        {
            out.push(path);
        }
    }
    Ok(())
}

fn is_log_file_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    (lower.ends_with(".json") || lower.ends_with(".json.gz")) && !name.contains("CloudTrail-Digest")
}

/// Reads one stream: gzip or not, document or JSON lines.
fn read_stream(
    name: &Path,
    reader: impl Read,
    limits: &ReadLimits,
    sink: &mut dyn RecordSink,
) -> Result<()> {
    let mut reader = reader;
    let mut magic = Vec::with_capacity(2);
    (&mut reader)
        .take(2)
        .read_to_end(&mut magic)
        .map_err(io_error(name, limits))?;
    let rejoined = Cursor::new(magic.clone()).chain(reader);
    if magic == [0x1f, 0x8b] {
        let decoder =
            flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, rejoined));
        let capped = CappedReader {
            inner: decoder,
            remaining: limits.max_decompressed_bytes,
        };
        read_decoded(
            name,
            BufReader::with_capacity(256 * 1024, capped),
            limits,
            sink,
        )
    } else {
        read_decoded(
            name,
            BufReader::with_capacity(256 * 1024, rejoined),
            limits,
            sink,
        )
    }
}

/// The shape of decoded input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `{"Records":[...]}`.
    Document,
    /// `[...]`.
    Array,
    /// One record per line.
    Lines,
}

/// How much input is examined to tell a document from JSON lines.
const SNIFF_BYTES: usize = 64 * 1024;
const BOM: &[u8] = b"\xEF\xBB\xBF";

fn read_decoded(
    name: &Path,
    mut reader: impl BufRead,
    limits: &ReadLimits,
    sink: &mut dyn RecordSink,
) -> Result<()> {
    let mut prefix = Vec::new();
    let shape = loop {
        let eof = prefix.len() >= SNIFF_BYTES || {
            let n = (&mut reader)
                .take(4096)
                .read_to_end(&mut prefix)
                .map_err(io_error(name, limits))?;
            n == 0
        };
        if let Some(shape) = sniff(&prefix) {
            break shape;
        }
        if eof {
            break Shape::Lines;
        }
    };
    let reader = Cursor::new(prefix).chain(reader);
    match shape {
        Shape::Document | Shape::Array => read_whole(name, reader, shape, limits, sink),
        Shape::Lines => read_lines(name, reader, limits, sink),
    }
}

/// Decides the shape from the first bytes; `None` while undecided.
fn sniff(prefix: &[u8]) -> Option<Shape> {
    let text = prefix
        .strip_prefix(BOM)
        .unwrap_or(prefix)
        .trim_ascii_start();
    match text.first()? {
        b'[' => Some(Shape::Array),
        b'{' => {
            let after_brace = text[1..].trim_ascii_start();
            const KEY: &[u8] = b"\"Records\"";
            if after_brace.len() < KEY.len() {
                // Could still be the key, unless it already differs.
                return (!KEY.starts_with(after_brace)).then_some(Shape::Lines);
            }
            if !after_brace.starts_with(KEY) {
                return Some(Shape::Lines);
            }
            match after_brace[KEY.len()..].trim_ascii_start().first()? {
                b':' => Some(Shape::Document),
                _ => Some(Shape::Lines),
            }
        }
        _ => Some(Shape::Lines),
    }
}

#[derive(Deserialize)]
struct Document<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<&'a RawValue>,
}

fn read_whole(
    name: &Path,
    reader: impl Read,
    shape: Shape,
    limits: &ReadLimits,
    sink: &mut dyn RecordSink,
) -> Result<()> {
    let cap = limits.max_decompressed_bytes;
    let mut bytes = Vec::new();
    reader
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error(name, limits))?;
    if bytes.len() as u64 > cap {
        return Err(Error::InputTooLarge {
            path: name.to_owned(),
            limit: cap,
        });
    }
    let body = bytes.strip_prefix(BOM).unwrap_or(&bytes);
    let text = std::str::from_utf8(body).map_err(|e| Error::InvalidInput {
        path: name.to_owned(),
        reason: format!("not UTF-8: {e}"),
    })?;
    let invalid = |e: serde_json::Error| Error::InvalidInput {
        path: name.to_owned(),
        reason: format!("not a CloudTrail log file ({{\"Records\":[...]}}): {e}"),
    };
    let records: Vec<&RawValue> = match shape {
        Shape::Array => serde_json::from_str(text).map_err(invalid)?,
        _ => {
            serde_json::from_str::<Document>(text)
                .map_err(invalid)?
                .records
        }
    };
    sink.total(records.len() as u64)?;
    for record in records {
        sink.record(record.get())?;
    }
    Ok(())
}

fn read_lines(
    name: &Path,
    mut reader: impl BufRead,
    limits: &ReadLimits,
    sink: &mut dyn RecordSink,
) -> Result<()> {
    let max = limits.max_line_bytes;
    let mut line = Vec::new();
    let mut line_number = 0u64;
    loop {
        line.clear();
        let n = (&mut reader)
            .take(max as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(io_error(name, limits))?;
        if n == 0 {
            return Ok(());
        }
        line_number += 1;
        if line.len() > max && line.last() != Some(&b'\n') {
            skip_rest_of_line(&mut reader).map_err(io_error(name, limits))?;
            sink.invalid(
                "RecordTooLarge",
                format!(
                    "{} line {line_number} is longer than {max} bytes",
                    name.display()
                ),
            )?;
            continue;
        }
        let bytes = if line_number == 1 {
            line.strip_prefix(BOM).unwrap_or(&line)
        } else {
            &line
        };
        let bytes = bytes.trim_ascii();
        if bytes.is_empty() {
            continue;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            sink.invalid(
                "InvalidData",
                format!("{} line {line_number} is not UTF-8", name.display()),
            )?;
            continue;
        };
        // Validate only: a broken record would break the whole request body's JSON.
        match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => sink.record(text)?,
            Err(e) => sink.invalid(
                "InvalidData",
                format!(
                    "{} line {line_number} is not valid JSON: {e}",
                    name.display()
                ),
            )?,
        }
    }
}

fn skip_rest_of_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(pos) => {
                reader.consume(pos + 1);
                return Ok(());
            }
            None => {
                let len = buf.len();
                reader.consume(len);
            }
        }
    }
}

/// Fails reading once more than the cap has come out (a gzip bomb stops here).
struct CappedReader<R> {
    inner: R,
    remaining: u64,
}

#[derive(Debug)]
struct CapExceeded;

impl fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("decompressed size cap exceeded")
    }
}

impl std::error::Error for CapExceeded {}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            // At the cap: fine if the stream ends here, an error if it goes on.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(CapExceeded)),
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn io_error<'a>(path: &'a Path, limits: &'a ReadLimits) -> impl Fn(std::io::Error) -> Error + 'a {
    move |source| {
        if source
            .get_ref()
            .is_some_and(|inner| inner.is::<CapExceeded>())
        {
            Error::InputTooLarge {
                path: path.to_owned(),
                limit: limits.max_decompressed_bytes,
            }
        } else {
            Error::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    /// Collects what the reader produced.
    #[derive(Debug, Default)]
    pub(crate) struct Collect {
        pub(crate) totals: Vec<u64>,
        pub(crate) records: Vec<String>,
        pub(crate) invalid: Vec<(usize, &'static str, String)>,
    }

    impl RecordSink for Collect {
        fn total(&mut self, records: u64) -> Result<()> {
            self.totals.push(records);
            Ok(())
        }

        fn record(&mut self, text: &str) -> Result<()> {
            self.records.push(text.to_owned());
            Ok(())
        }

        fn invalid(&mut self, code: &'static str, message: String) -> Result<()> {
            self.invalid
                .push((self.records.len() + self.invalid.len(), code, message));
            Ok(())
        }
    }

    const LIMITS: ReadLimits = ReadLimits {
        max_decompressed_bytes: 1 << 30,
        max_line_bytes: 5 * 1024 * 1024 - 14,
    };

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn read_bytes(bytes: Vec<u8>, limits: &ReadLimits) -> Result<Collect> {
        let mut sink = Collect::default();
        let source = IngestSource::Reader {
            name: "input".into(),
            reader: Box::new(Cursor::new(bytes)),
        };
        read_source(source, limits, &mut sink)?;
        Ok(sink)
    }

    /// Records with spellings a re-serialiser would change.
    pub(crate) const ODD_RECORDS: [&str; 3] = [
        r#"{"eventTime":"2026-11-01T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","n":1.688560107857E9}"#,
        r#"{ "z" : "last key first" , "a" : [ 1 , 2 ] , "eventName" : "\u00e9t\u00E9" }"#,
        r#"{"nested":{"b":null,"a":-0.0},"unicode":"日本"}"#,
    ];

    fn log_file(records: &[&str]) -> String {
        format!("{{\"Records\": [\n  {}\n]}}\n", records.join(",\n  "))
    }

    #[test]
    fn test_log_file_records_are_byte_exact() {
        let got = read_bytes(log_file(&ODD_RECORDS).into_bytes(), &LIMITS).unwrap();
        assert_eq!(got.records, ODD_RECORDS);
        assert_eq!(got.totals, [3]);
        assert!(got.invalid.is_empty());
    }

    #[test]
    fn test_gzip_log_file_is_detected_by_magic() {
        let got = read_bytes(gzip(log_file(&ODD_RECORDS).as_bytes()), &LIMITS).unwrap();
        assert_eq!(got.records, ODD_RECORDS);
    }

    #[test]
    fn test_concatenated_gzip_members_are_read() {
        let mut bytes = gzip(format!("{}\n", ODD_RECORDS[0]).as_bytes());
        bytes.extend(gzip(format!("{}\n", ODD_RECORDS[1]).as_bytes()));
        let got = read_bytes(bytes, &LIMITS).unwrap();
        assert_eq!(got.records, &ODD_RECORDS[..2]);
    }

    #[test]
    fn test_json_lines_are_streamed_byte_exact() {
        let text = format!(
            "\u{feff}{}\r\n\n   \n{}\n{}",
            ODD_RECORDS[0], ODD_RECORDS[1], ODD_RECORDS[2]
        );
        let got = read_bytes(text.into_bytes(), &LIMITS).unwrap();
        assert_eq!(got.records, ODD_RECORDS);
        assert!(got.totals.is_empty(), "streamed input announces no total");
    }

    #[test]
    fn test_json_lines_bad_lines_are_reported_in_place() {
        let text = format!(
            "{}\n{{\"broken\":\n\"\\xff\"\n{}\n",
            ODD_RECORDS[0], ODD_RECORDS[1]
        );
        let mut bytes = text.into_bytes();
        bytes.extend(b"\xff\xfe\n");
        let got = read_bytes(bytes, &LIMITS).unwrap();
        assert_eq!(got.records, &ODD_RECORDS[..2]);
        let codes: Vec<(usize, &str)> = got.invalid.iter().map(|(i, c, _)| (*i, *c)).collect();
        assert_eq!(
            codes,
            [(1, "InvalidData"), (2, "InvalidData"), (4, "InvalidData")]
        );
        assert!(got.invalid[0].2.contains("line 2"), "{}", got.invalid[0].2);
    }

    #[test]
    fn test_json_lines_overlong_line_is_skipped_alone() {
        let limits = ReadLimits {
            max_line_bytes: 64,
            ..LIMITS
        };
        let long = format!(r#"{{"pad":"{}"}}"#, "x".repeat(500));
        let text = format!("{{\"a\":1}}\n{long}\n{{\"b\":2}}\n");
        let got = read_bytes(text.into_bytes(), &limits).unwrap();
        assert_eq!(got.records, [r#"{"a":1}"#, r#"{"b":2}"#]);
        assert_eq!(got.invalid.len(), 1);
        assert_eq!((got.invalid[0].0, got.invalid[0].1), (1, "RecordTooLarge"));
    }

    #[test]
    fn test_array_of_records_is_accepted() {
        let text = format!("[{}]", ODD_RECORDS.join(","));
        assert_eq!(
            read_bytes(text.into_bytes(), &LIMITS).unwrap().records,
            ODD_RECORDS
        );
    }

    #[test]
    fn test_record_starting_with_other_key_is_a_json_line() {
        let text = "{\"Recordsx\":1}\n{\"R\":2}\n";
        let got = read_bytes(text.as_bytes().to_vec(), &LIMITS).unwrap();
        assert_eq!(got.records, ["{\"Recordsx\":1}", "{\"R\":2}"]);
    }

    #[test]
    fn test_sniff_shapes() {
        assert_eq!(sniff(b"  {\n \"Records\" : ["), Some(Shape::Document));
        assert_eq!(sniff(b"{\"Rec"), None);
        assert_eq!(sniff(b"{\"eventTime\""), Some(Shape::Lines));
        assert_eq!(sniff(b"[{}]"), Some(Shape::Array));
        assert_eq!(sniff(b"   "), None);
        assert_eq!(sniff(b"{\"Records\""), None);
        assert_eq!(sniff(b"{\"Records\",1"), Some(Shape::Lines));
    }

    #[test]
    fn test_gzip_bomb_is_capped() {
        let limits = ReadLimits {
            max_decompressed_bytes: 10_000,
            ..LIMITS
        };
        let mut big = log_file(&["{}"]).into_bytes();
        big.extend(std::iter::repeat_n(b' ', 100_000));
        let err = read_bytes(gzip(&big), &limits).unwrap_err();
        assert!(
            matches!(err, Error::InputTooLarge { limit: 10_000, .. }),
            "{err:?}"
        );
        // JSON lines through gzip are capped too.
        let lines = "{}\n".repeat(10_000);
        let err = read_bytes(gzip(lines.as_bytes()), &limits).unwrap_err();
        assert!(matches!(err, Error::InputTooLarge { .. }), "{err:?}");
        // Exactly at the cap is fine.
        let exact = "{}\n".repeat(3_000);
        let limits = ReadLimits {
            max_decompressed_bytes: exact.len() as u64,
            ..LIMITS
        };
        assert_eq!(
            read_bytes(gzip(exact.as_bytes()), &limits)
                .unwrap()
                .records
                .len(),
            3_000
        );
    }

    #[test]
    fn test_plain_document_is_capped() {
        let limits = ReadLimits {
            max_decompressed_bytes: 100,
            ..LIMITS
        };
        let doc = log_file(&[&format!(r#"{{"pad":"{}"}}"#, "x".repeat(200))]);
        let err = read_bytes(doc.into_bytes(), &limits).unwrap_err();
        assert!(matches!(err, Error::InputTooLarge { .. }), "{err:?}");
    }

    #[test]
    fn test_invalid_document_names_the_file() {
        let err = read_bytes(b"{\"Records\": [1, }".to_vec(), &LIMITS).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput { path, .. } if path == Path::new("input")),
            "{err:?}"
        );
    }

    #[test]
    fn test_directory_tree_is_read_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        let region = dir
            .path()
            .join("AWSLogs/o-example/123456789012/CloudTrail/us-east-1/2026/11/01");
        std::fs::create_dir_all(&region).unwrap();
        std::fs::write(
            region.join("b_CloudTrail.json.gz"),
            gzip(log_file(&[ODD_RECORDS[1]]).as_bytes()),
        )
        .unwrap();
        std::fs::write(
            region.join("a_CloudTrail.json"),
            log_file(&[ODD_RECORDS[0]]),
        )
        .unwrap();
        let later = dir
            .path()
            .join("AWSLogs/o-example/210987654321/CloudTrail/eu-west-1");
        std::fs::create_dir_all(&later).unwrap();
        std::fs::write(
            later.join("c.JSON.GZ"),
            gzip(log_file(&[ODD_RECORDS[2]]).as_bytes()),
        )
        .unwrap();
        // Not log files: other names, digests.
        std::fs::write(region.join("notes.txt"), "{}").unwrap();
        let digest = dir
            .path()
            .join("AWSLogs/o-example/123456789012/CloudTrail-Digest/us-east-1");
        std::fs::create_dir_all(&digest).unwrap();
        std::fs::write(
            digest.join("x_CloudTrail-Digest_y.json.gz"),
            gzip(b"{\"digestEndTime\":\"x\"}"),
        )
        .unwrap();
        std::fs::write(
            region.join("z_CloudTrail-Digest_stray.json"),
            "{\"digestEndTime\":\"x\"}",
        )
        .unwrap();

        let mut sink = Collect::default();
        read_source(
            IngestSource::Path(dir.path().to_owned()),
            &LIMITS,
            &mut sink,
        )
        .unwrap();
        // Path order: account 123... before 210..., a_ before b_.
        assert_eq!(
            sink.records,
            [ODD_RECORDS[0], ODD_RECORDS[1], ODD_RECORDS[2]]
        );
        assert_eq!(sink.totals, [1, 1, 1]);
    }

    #[test]
    fn test_missing_path_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Collect::default();
        let err = read_source(
            IngestSource::Path(dir.path().join("nope.json")),
            &LIMITS,
            &mut sink,
        )
        .unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
    }

    #[test]
    fn test_from_arg() {
        assert!(matches!(IngestSource::from_arg("-"), IngestSource::Stdin));
        assert!(
            matches!(IngestSource::from_arg("x.json"), IngestSource::Path(p) if p == Path::new("x.json"))
        );
    }
}
