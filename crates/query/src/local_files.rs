//! Local Parquet files read on the thread that decodes them.
//!
//! DataFusion reads `file://` tables through `object_store`'s
//! `LocalFileSystem`, which hands every read to tokio's blocking pool and
//! waits for it: a column chunk's bytes, already in the page cache, cost two
//! thread hand-offs, and a query over a CloudTrail copy makes hundreds of them
//! (a row group's filter columns, then its other columns). [`InPlaceFiles`]
//! reads byte ranges where the decoding runs instead. That is blocking work
//! on an async thread, which is acceptable here only because a statement runs
//! on threads of its own ([`crate::athena`]'s `run_bounded`, the CLI's
//! runtime), which decode Parquet, as CPU-bound, between the reads anyway:
//! a slow disk delays that statement and nothing else. Everything but range
//! reads is `LocalFileSystem`'s.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::path::Path;
use datafusion::object_store::{
    CopyOptions, Error, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use futures::stream::BoxStream;

/// `LocalFileSystem` with byte ranges read in place (see the module).
#[derive(Debug, Default)]
pub(crate) struct InPlaceFiles {
    files: LocalFileSystem,
}

impl fmt::Display for InPlaceFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InPlaceFiles({})", self.files)
    }
}

/// Reads `ranges` of the file at `path`, each into a buffer of its own
/// (filled by the read, not zeroed first).
fn read_ranges(path: &std::path::Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
    let mut file = std::fs::File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            path: path.display().to_string(),
            source: Box::new(source),
        },
        _ => generic(source),
    })?;
    ranges
        .iter()
        .map(|range| {
            let wanted = range.end.saturating_sub(range.start);
            let mut buf = Vec::new();
            buf.try_reserve_exact(usize::try_from(wanted).map_err(generic)?)
                .map_err(generic)?;
            file.seek(SeekFrom::Start(range.start)).map_err(generic)?;
            (&mut file)
                .take(wanted)
                .read_to_end(&mut buf)
                .map_err(generic)?;
            if buf.len() as u64 != wanted {
                return Err(generic(format!(
                    "{}: bytes {}..{} asked for, the file ends at {}",
                    path.display(),
                    range.start,
                    range.end,
                    range.start + buf.len() as u64
                )));
            }
            Ok(Bytes::from(buf))
        })
        .collect()
}

fn generic(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::Generic {
        store: "InPlaceFiles",
        source: source.into(),
    }
}

#[async_trait]
impl ObjectStore for InPlaceFiles {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.files.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.files.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.files.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        read_ranges(&self.files.path_to_filesystem(location)?, ranges)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.files.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.files.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.files.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.files.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.files.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.files.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_path(path: &std::path::Path) -> Path {
        Path::from_absolute_path(path).expect("absolute path")
    }

    #[tokio::test]
    async fn ranges_are_read_as_stored() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("part 1.parquet");
        let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        std::fs::write(&file, &bytes).expect("write");
        let store = InPlaceFiles::default();
        let ranges = [0..4, 9_990..10_000, 300..300, 4_096..8_192];
        let got = store
            .get_ranges(&store_path(&file), &ranges)
            .await
            .expect("read");
        let want: Vec<Bytes> = ranges
            .iter()
            .map(|r| Bytes::copy_from_slice(&bytes[r.start as usize..r.end as usize]))
            .collect();
        assert_eq!(got, want);
        // The stock reader agrees, names with spaces included.
        let stock = store
            .files
            .get_ranges(&store_path(&file), &ranges)
            .await
            .expect("read");
        assert_eq!(got, stock);
    }

    #[tokio::test]
    async fn a_range_past_the_end_or_a_missing_file_is_an_error() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("short.parquet");
        std::fs::write(&file, b"0123456789").expect("write");
        let store = InPlaceFiles::default();
        let err = store
            .get_ranges(&store_path(&file), &[0..2, 5..20])
            .await
            .expect_err("short");
        assert!(err.to_string().contains("the file ends at 10"), "{err}");
        let err = store
            .get_ranges(&store_path(&dir.path().join("gone.parquet")), &[0..1, 1..2])
            .await
            .expect_err("missing");
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
    }
}
