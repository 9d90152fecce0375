//! Multipart uploads and copies: objects assembled from other objects.
//!
//! An upload in progress lives outside every bucket, under
//! `<root>/.cairn-uploads/<bucket>/<upload-id>/` (bucket names cannot start
//! with `.`), so it never appears in a listing:
//!
//! ```text
//! upload.json            the key, initiation time and attributes (written first)
//! parts/<nnnnn>.<md5>[.<algorithm>.<hex of checksum>]
//!                        each part's bytes, named by part number, ETag and
//!                        the flexible checksum the client sent with it
//! ```
//!
//! Completion streams the chosen parts, in order, into the final object with
//! one backend write (a staged file renamed into place on the local backend,
//! an S3 multipart upload on S3), so the object appears whole or not at all,
//! durably, before the upload's directory is removed. Its ETag is S3's: the
//! MD5 of the parts' binary MD5s, `-` and the number of parts.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, WriteMultipart};
use rand::Rng;

use crate::store::{BucketStore, Error, ObjectAttributes, Result, backend, md5_hex, not_found_or};

/// Where uploads in progress live (bucket names cannot start with `.`).
const UPLOADS_ROOT: &str = ".cairn-uploads";

/// The smallest part S3 accepts in a completion, except for the last one (5 MiB).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;

/// The highest part number S3 accepts.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// The chunk size of the backend write that assembles an object (bounds memory).
const ASSEMBLY_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// How many assembly chunks may be in flight at once.
const ASSEMBLY_CONCURRENCY: usize = 4;

/// An upload in progress, as [`BucketStore::create_upload`] recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Upload {
    /// The upload ID.
    pub upload_id: String,
    /// The key the object will have.
    pub key: String,
    /// When the upload was created.
    pub initiated: DateTime<Utc>,
    /// The attributes the object will have.
    pub attributes: ObjectAttributes,
}

/// One part of an upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its number (1 to 10,000).
    pub part_number: u32,
    /// Its ETag: the hex MD5 of its bytes.
    pub e_tag: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was uploaded.
    pub last_modified: DateTime<Utc>,
    /// The flexible checksum it was uploaded with, if any.
    pub checksum: Option<PartChecksum>,
}

/// A flexible checksum a part was uploaded with (verified by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartChecksum {
    /// The algorithm, lower-case (`crc32`, `sha256`, ...).
    pub algorithm: String,
    /// The value as the client sent it (base64).
    pub value: String,
}

/// Whether an upload ID is one this store could have made (32 lower-case hex
/// digits); anything else names no upload and must not reach a path.
fn valid_upload_id(upload_id: &str) -> bool {
    upload_id.len() == 32
        && upload_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// S3's ETag of an object assembled from parts with these hex MD5s.
pub fn multipart_etag<'a>(part_etags: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut hasher = Md5::new();
    let mut count = 0usize;
    for etag in part_etags {
        hasher.update(hex::decode(etag).ok()?);
        count += 1;
    }
    Some(format!("{}-{count}", hex::encode(hasher.finalize())))
}

impl BucketStore {
    fn upload_dir(&self, bucket: &str, upload_id: &str) -> Result<String> {
        if !valid_upload_id(upload_id) {
            return Err(Error::NoSuchUpload {
                bucket: bucket.to_owned(),
                upload_id: upload_id.to_owned(),
            });
        }
        Ok(format!("{bucket}/{upload_id}"))
    }

    fn upload_path(&self, bucket: &str, upload_id: &str, name: &str) -> Result<Path> {
        let dir = self.upload_dir(bucket, upload_id)?;
        self.path(UPLOADS_ROOT, &format!("{dir}/{name}"))
    }

    fn uploads_of_bucket(&self, bucket: &str) -> Result<Path> {
        self.path(UPLOADS_ROOT, bucket)
    }

    /// Starts a multipart upload of `key` and returns it.
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        attributes: ObjectAttributes,
    ) -> Result<Upload> {
        // The key must be storable before anything is recorded.
        self.path(bucket, key)?;
        let upload_id: String = {
            let mut rng = rand::rng();
            (0..16)
                .map(|_| format!("{:02x}", rng.random::<u8>()))
                .collect()
        };
        let upload = Upload {
            upload_id,
            key: key.to_owned(),
            initiated: Utc::now(),
            attributes,
        };
        let text = serde_json::to_vec(&upload).map_err(|e| Error::CorruptMetadata {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        self.inner
            .put(
                &self.upload_path(bucket, &upload.upload_id, "upload.json")?,
                PutPayload::from(text),
            )
            .await
            .map_err(|e| backend("create upload", e))?;
        Ok(upload)
    }

    /// The upload `upload_id` of `bucket`.
    pub async fn upload(&self, bucket: &str, upload_id: &str) -> Result<Upload> {
        let path = self.upload_path(bucket, upload_id, "upload.json")?;
        let no_such = || Error::NoSuchUpload {
            bucket: bucket.to_owned(),
            upload_id: upload_id.to_owned(),
        };
        let bytes = match self.inner.get(&path).await {
            Ok(result) => result.bytes().await.map_err(|e| backend("get upload", e))?,
            Err(object_store::Error::NotFound { .. }) => return Err(no_such()),
            Err(e) => return Err(backend("get upload", e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::CorruptMetadata {
            bucket: bucket.to_owned(),
            key: path.to_string(),
            reason: e.to_string(),
        })
    }

    /// Every upload in progress in `bucket`, by key then initiation time.
    pub async fn list_uploads(&self, bucket: &str) -> Result<Vec<Upload>> {
        let root = self.uploads_of_bucket(bucket)?;
        let markers: Vec<Path> = self
            .inner
            .list(Some(&root))
            .try_filter_map(|meta| async move {
                Ok(meta
                    .location
                    .filename()
                    .is_some_and(|f| f == "upload.json")
                    .then_some(meta.location))
            })
            .try_collect()
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(Vec::new()),
                other => Err(backend("list uploads", other)),
            })?;
        let mut uploads = Vec::with_capacity(markers.len());
        for marker in markers {
            let Some(upload_id) = marker.as_ref().rsplit('/').nth(1) else {
                continue;
            };
            match self.upload(bucket, upload_id).await {
                Ok(upload) => uploads.push(upload),
                // Completed or aborted while listing.
                Err(Error::NoSuchUpload { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        uploads.sort_by(|a, b| (&a.key, a.initiated).cmp(&(&b.key, b.initiated)));
        Ok(uploads)
    }

    /// Stores part `part_number` of an upload durably (replacing an earlier
    /// part of that number), with the checksum it came with, and returns its
    /// ETag, the hex MD5 of `body`.
    pub async fn put_part(
        &self,
        bucket: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
        checksum: Option<&PartChecksum>,
    ) -> Result<String> {
        self.upload(bucket, upload_id).await?;
        let etag = md5_hex(body.clone()).await?;
        let mut name = format!("parts/{part_number:05}.{etag}");
        if let Some(c) = checksum {
            let algorithm = c.algorithm.to_ascii_lowercase();
            if !algorithm.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(Error::InvalidPart {
                    part_number,
                    reason: format!("unknown checksum algorithm {algorithm:?}"),
                });
            }
            name = format!("{name}.{algorithm}.{}", hex::encode(c.value.as_bytes()));
        }
        let path = self.upload_path(bucket, upload_id, &name)?;
        self.inner
            .put_opts(&path, PutPayload::from(body), PutOptions::default())
            .await
            .map_err(|e| backend("put part", e))?;
        // Earlier uploads of the same part number are superseded.
        for part in self.part_objects(bucket, upload_id).await? {
            if part.0.part_number == part_number && part.0.e_tag != etag {
                self.delete_path(&part.1, "delete part").await?;
            }
        }
        Ok(etag)
    }

    /// The parts of an upload, by part number, with where they are stored.
    async fn part_objects(&self, bucket: &str, upload_id: &str) -> Result<Vec<(Part, Path)>> {
        let dir = self.upload_path(bucket, upload_id, "parts")?;
        let mut parts: Vec<(Part, Path)> = self
            .inner
            .list(Some(&dir))
            .try_filter_map(|meta| async move {
                let parsed = meta.location.filename().and_then(|name| {
                    let mut fields = name.split('.');
                    let number = fields.next()?.parse().ok()?;
                    let etag = fields.next()?.to_owned();
                    let checksum = match (fields.next(), fields.next()) {
                        (Some(algorithm), Some(value)) => Some(PartChecksum {
                            algorithm: algorithm.to_owned(),
                            value: String::from_utf8(hex::decode(value).ok()?).ok()?,
                        }),
                        _ => None,
                    };
                    Some(Part {
                        part_number: number,
                        e_tag: etag,
                        size: meta.size,
                        last_modified: meta.last_modified,
                        checksum,
                    })
                });
                Ok(parsed.map(|p| (p, meta.location)))
            })
            .try_collect()
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(Vec::new()),
                other => Err(backend("list parts", other)),
            })?;
        // Of two parts with one number (a replacement in flight), the newer wins.
        parts.sort_by(|a, b| {
            (a.0.part_number, b.0.last_modified).cmp(&(b.0.part_number, a.0.last_modified))
        });
        parts.dedup_by_key(|p| p.0.part_number);
        Ok(parts)
    }

    /// The parts of an upload so far, by part number.
    pub async fn list_parts(&self, bucket: &str, upload_id: &str) -> Result<Vec<Part>> {
        self.upload(bucket, upload_id).await?;
        Ok(self
            .part_objects(bucket, upload_id)
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect())
    }

    /// Completes an upload from the parts the client names (number, ETag and
    /// the checksum it claims for the part, if any, in ascending order): the
    /// object appears durably at the upload's key, the upload is removed, and
    /// S3's multipart ETag is returned. A named checksum must be the one the
    /// part was uploaded with.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        upload_id: &str,
        chosen: &[(u32, String, Option<PartChecksum>)],
    ) -> Result<(Upload, String)> {
        let upload = self.upload(bucket, upload_id).await?;
        let stored = self.part_objects(bucket, upload_id).await?;
        if chosen.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(Error::InvalidPartOrder);
        }
        let mut sources: Vec<(Part, Path)> = Vec::with_capacity(chosen.len());
        for (number, etag, checksum) in chosen {
            let etag = etag.trim_matches('"');
            let found = stored
                .iter()
                .find(|(p, _)| p.part_number == *number && p.e_tag == etag);
            let Some(found) = found else {
                return Err(Error::InvalidPart {
                    part_number: *number,
                    reason: "not uploaded, or its ETag differs".to_owned(),
                });
            };
            if let Some(claimed) = checksum {
                let same = found.0.checksum.as_ref().is_some_and(|c| {
                    c.algorithm.eq_ignore_ascii_case(&claimed.algorithm) && c.value == claimed.value
                });
                if !same {
                    return Err(Error::InvalidPart {
                        part_number: *number,
                        reason: format!("its {} checksum differs", claimed.algorithm),
                    });
                }
            }
            sources.push(found.clone());
        }
        // Every part but the last must be at least the minimum size.
        if let Some((part, _)) = sources
            .iter()
            .rev()
            .skip(1)
            .find(|(p, _)| p.size < MIN_PART_BYTES)
        {
            return Err(Error::EntityTooSmall {
                part_number: part.part_number,
                size: part.size,
            });
        }
        let etag =
            multipart_etag(sources.iter().map(|(p, _)| p.e_tag.as_str())).ok_or_else(|| {
                Error::InvalidPart {
                    part_number: 0,
                    reason: "stored ETag is not hex".to_owned(),
                }
            })?;
        let paths: Vec<Path> = sources.into_iter().map(|(_, p)| p).collect();
        self.assemble(bucket, &upload.key, &paths, &upload.attributes, &etag)
            .await?;
        self.remove_upload(bucket, upload_id).await?;
        Ok((upload, etag))
    }

    /// Aborts an upload: its parts and record are removed.
    pub async fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<()> {
        self.upload(bucket, upload_id).await?;
        self.remove_upload(bucket, upload_id).await
    }

    async fn remove_upload(&self, bucket: &str, upload_id: &str) -> Result<()> {
        for (_, path) in self.part_objects(bucket, upload_id).await? {
            self.delete_path(&path, "delete part").await?;
        }
        // The record goes last: an upload half removed can still be aborted.
        let record = self.upload_path(bucket, upload_id, "upload.json")?;
        self.delete_path(&record, "delete upload").await
    }

    async fn delete_path(&self, path: &Path, operation: &'static str) -> Result<()> {
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(operation, e)),
        }
    }

    /// Copies an object, durably, giving the copy `attributes` (the source's
    /// own when `None`); returns the copy's information as HEAD would.
    pub async fn copy_object(
        &self,
        source_bucket: &str,
        source_key: &str,
        bucket: &str,
        key: &str,
        attributes: Option<ObjectAttributes>,
    ) -> Result<crate::ObjectInfo> {
        let source = self.head(source_bucket, source_key).await?;
        let attributes = attributes.unwrap_or_else(|| ObjectAttributes {
            metadata: source.metadata.clone(),
            content_type: source.content_type.clone(),
        });
        let etag = source
            .e_tag
            .clone()
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned();
        let path = self.path(source_bucket, source_key)?;
        self.assemble(bucket, key, &[path], &attributes, &etag)
            .await?;
        self.head(bucket, key).await
    }

    /// Writes the concatenation of `sources` to `bucket`/`key` in one durable
    /// backend write, with `attributes` and `etag`.
    async fn assemble(
        &self,
        bucket: &str,
        key: &str,
        sources: &[Path],
        attributes: &ObjectAttributes,
        etag: &str,
    ) -> Result<()> {
        let path = self.path(bucket, key)?;
        let backend_attributes = self.write_attributes(bucket, key, attributes, etag).await?;
        let options = PutMultipartOptions {
            attributes: backend_attributes,
            ..PutMultipartOptions::default()
        };
        let upload = self
            .inner
            .put_multipart_opts(&path, options)
            .await
            .map_err(|e| backend("assemble", e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, ASSEMBLY_CHUNK_BYTES);
        let copied = async {
            for source in sources {
                let mut stream = self
                    .inner
                    .get(source)
                    .await
                    .map_err(|e| not_found_or(e, bucket, source.as_ref(), "get"))?
                    .into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| backend("assemble read", e))?;
                    writer
                        .wait_for_capacity(ASSEMBLY_CONCURRENCY)
                        .await
                        .map_err(|e| backend("assemble write", e))?;
                    writer.put(chunk);
                }
            }
            Ok::<(), Error>(())
        }
        .await;
        match copied {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(|e| backend("assemble finish", e))?;
                Ok(())
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, "aborting an object assembly failed");
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    async fn conformance(store: BucketStore) {
        let attrs = ObjectAttributes {
            metadata: BTreeMap::from([("m".to_owned(), "1".to_owned())]),
            content_type: Some("text/plain".to_owned()),
        };
        let etag = store
            .put_object("b", "plain", Bytes::from_static(b"hello"), &attrs)
            .await
            .unwrap();
        assert_eq!(etag, hex::encode(Md5::digest(b"hello")));
        let head = store.head("b", "plain").await.unwrap();
        assert_eq!(head.e_tag.as_deref(), Some(etag.as_str()));
        assert_eq!(head.content_type.as_deref(), Some("text/plain"));
        assert_eq!(head.metadata, attrs.metadata);

        let upload = store
            .create_upload("b", "big", attrs.clone())
            .await
            .unwrap();
        let first = Bytes::from(vec![7u8; MIN_PART_BYTES as usize]);
        let crc = PartChecksum {
            algorithm: "crc32".to_owned(),
            value: "AAAA/w==".to_owned(),
        };
        let e1 = store
            .put_part("b", &upload.upload_id, 1, Bytes::from_static(b"old"), None)
            .await
            .unwrap();
        let e1b = store
            .put_part("b", &upload.upload_id, 1, first.clone(), None)
            .await
            .unwrap();
        assert_ne!(e1, e1b);
        let e2 = store
            .put_part(
                "b",
                &upload.upload_id,
                2,
                Bytes::from_static(b"tail"),
                Some(&crc),
            )
            .await
            .unwrap();
        let parts = store.list_parts("b", &upload.upload_id).await.unwrap();
        assert_eq!(
            parts
                .iter()
                .map(|p| (p.part_number, p.e_tag.as_str()))
                .collect::<Vec<_>>(),
            [(1, e1b.as_str()), (2, e2.as_str())]
        );
        assert_eq!(parts[1].checksum.as_ref(), Some(&crc));
        assert_eq!(
            store.list_uploads("b").await.unwrap(),
            std::slice::from_ref(&upload)
        );
        let listed = store.list("b", "", None, None, 10).await.unwrap();
        assert_eq!(
            listed.objects.len(),
            1,
            "uploads in progress are not objects"
        );
        assert!(matches!(
            store
                .complete_upload("b", &upload.upload_id, &[(1, e1.clone(), None)])
                .await,
            Err(Error::InvalidPart { .. })
        ));
        let (_, etag) = store
            .complete_upload(
                "b",
                &upload.upload_id,
                &[(1, e1b.clone(), None), (2, e2.clone(), Some(crc))],
            )
            .await
            .unwrap();
        assert_eq!(etag, multipart_etag([e1b.as_str(), e2.as_str()]).unwrap());
        let got = store.get("b", "big", None).await.unwrap();
        assert_eq!(got.body.len(), first.len() + 4);
        assert_eq!(&got.body[first.len()..], b"tail");
        assert_eq!(got.info.e_tag.as_deref(), Some(etag.as_str()));
        assert_eq!(got.info.metadata, attrs.metadata);
        assert!(store.list_uploads("b").await.unwrap().is_empty());
        assert!(matches!(
            store.list_parts("b", &upload.upload_id).await,
            Err(Error::NoSuchUpload { .. })
        ));

        let aborted = store.create_upload("b", "gone", attrs).await.unwrap();
        store
            .put_part("b", &aborted.upload_id, 1, Bytes::from_static(b"x"), None)
            .await
            .unwrap();
        store.abort_upload("b", &aborted.upload_id).await.unwrap();
        assert!(!store.exists("b", "gone").await.unwrap());
        assert!(store.list_uploads("b").await.unwrap().is_empty());

        let copy = store
            .copy_object("b", "plain", "c", "copied", None)
            .await
            .unwrap();
        assert_eq!(
            copy.e_tag.as_deref(),
            Some(hex::encode(Md5::digest(b"hello")).as_str())
        );
        assert_eq!(copy.content_type.as_deref(), Some("text/plain"));
        let replaced = store
            .copy_object(
                "b",
                "plain",
                "b",
                "plain",
                Some(ObjectAttributes::default()),
            )
            .await
            .unwrap();
        assert!(replaced.metadata.is_empty());
        assert_eq!(
            &store.get("b", "plain", None).await.unwrap().body[..],
            b"hello"
        );
    }

    /// `upload.json` is a persisted format: a change must be seen in review.
    #[test]
    fn test_upload_record_golden() {
        let upload = Upload {
            upload_id: "0123456789abcdef0123456789abcdef".to_owned(),
            key: "a/b".to_owned(),
            initiated: "2026-01-02T03:04:05Z".parse().unwrap(),
            attributes: ObjectAttributes {
                metadata: BTreeMap::from([("m".to_owned(), "1".to_owned())]),
                content_type: None,
            },
        };
        let golden = r#"{"upload_id":"0123456789abcdef0123456789abcdef","key":"a/b","initiated":"2026-01-02T03:04:05Z","attributes":{"metadata":{"m":"1"}}}"#;
        assert_eq!(serde_json::to_string(&upload).unwrap(), golden);
        assert_eq!(serde_json::from_str::<Upload>(golden).unwrap(), upload);
    }

    #[tokio::test]
    async fn test_local_uploads_and_copies() {
        let dir = tempfile::tempdir().unwrap();
        conformance(BucketStore::local(dir.path()).unwrap()).await;
    }

    #[tokio::test]
    async fn test_in_memory_uploads_and_copies() {
        let inner = std::sync::Arc::new(object_store::memory::InMemory::new());
        conformance(BucketStore::from_object_store(inner, false)).await;
    }

    #[test]
    fn test_multipart_etag_matches_s3() {
        // Two parts: "a" and "b"; S3's ETag is md5(md5("a") || md5("b")) + "-2".
        let a = hex::encode(Md5::digest(b"a"));
        let b = hex::encode(Md5::digest(b"b"));
        let mut joined = Md5::digest(b"a").to_vec();
        joined.extend_from_slice(&Md5::digest(b"b"));
        assert_eq!(
            multipart_etag([a.as_str(), b.as_str()]).unwrap(),
            format!("{}-2", hex::encode(Md5::digest(&joined)))
        );
        assert!(multipart_etag(["zz"]).is_none());
    }

    #[test]
    fn test_upload_ids_are_checked() {
        assert!(valid_upload_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_upload_id("../../etc/passwd"));
        assert!(!valid_upload_id("0123456789ABCDEF0123456789ABCDEF"));
    }
}
