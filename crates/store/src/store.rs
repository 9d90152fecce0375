//! The bucket store: buckets as prefixes of one `object_store` backend.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutOptions, PutPayload,
};

/// Where the sidecar metadata of the local backend lives (bucket names cannot start with `.`).
const LOCAL_METADATA_ROOT: &str = ".cairn-meta";

/// The user-metadata name under which the S3 backend keeps Cairn's own ETag of an
/// object a client wrote (S3's ETag of the backing object differs for copies and
/// completed multipart uploads). It is never shown as user metadata.
pub(crate) const ETAG_METADATA: &str = "cairn-etag";

/// The longest file name the local backend can create (a key segment between `/`s).
const MAX_LOCAL_SEGMENT_BYTES: usize = 255;

/// The version of the local sidecar document written by [`BucketStore::put_object`].
/// Version 1 (written by [`BucketStore::put`]) is a flat JSON map of user metadata.
const SIDECAR_VERSION: u64 = 2;

/// An error from the bucket store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No object at that key.
    #[error("no object at {bucket}/{key}")]
    NotFound {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// A key the backend cannot represent (empty segments, `.` or `..`).
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A range outside the object.
    #[error("range not satisfiable for {bucket}/{key}")]
    InvalidRange {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// The store configuration is wrong.
    #[error("invalid object store configuration: {0}")]
    Config(String),
    /// The backend failed; transient failures are worth retrying.
    #[error("object store {operation} failed: {source}")]
    Backend {
        /// What was being done.
        operation: &'static str,
        /// The backend's error.
        #[source]
        source: object_store::Error,
    },
    /// No multipart upload with that ID in that bucket.
    #[error("no multipart upload {upload_id} in {bucket}")]
    NoSuchUpload {
        /// The bucket.
        bucket: String,
        /// The upload ID.
        upload_id: String,
    },
    /// A part named in a completion is missing or its ETag differs.
    #[error("invalid part {part_number}: {reason}")]
    InvalidPart {
        /// The part number.
        part_number: u32,
        /// Why.
        reason: String,
    },
    /// The parts of a completion are not in ascending order.
    #[error("parts are not in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than [`crate::MIN_PART_BYTES`].
    #[error("part {part_number} is {size} bytes, smaller than the minimum")]
    EntityTooSmall {
        /// The part number.
        part_number: u32,
        /// Its size.
        size: u64,
    },
    /// A blocking task (hashing) did not finish: the runtime is shutting down.
    #[error("{what} did not finish: {reason}")]
    TaskFailed {
        /// What was being done.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Sidecar metadata that does not parse.
    #[error("corrupt metadata for {bucket}/{key}: {reason}")]
    CorruptMetadata {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Result with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which backend and where: a `file://` URL or a directory path for the local
/// backend, `s3://bucket[/prefix]` for S3, with object_store's own option keys
/// (`aws_endpoint`, `aws_region`, `aws_access_key_id`, `aws_allow_http`, ...).
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// The store's URL.
    pub url: String,
    /// object_store options, passed through unchanged.
    pub options: BTreeMap<String, String>,
}

/// What a HEAD or GET learns of an object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: DateTime<Utc>,
    /// The backend's entity tag, if any.
    pub e_tag: Option<String>,
    /// User metadata, lower-case names without the `x-amz-meta-` prefix.
    pub metadata: BTreeMap<String, String>,
    /// The `Content-Type` given when the object was written by a client.
    pub content_type: Option<String>,
}

/// What a client says about an object it writes, kept with the object.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectAttributes {
    /// User metadata, lower-case names without the `x-amz-meta-` prefix.
    pub metadata: BTreeMap<String, String>,
    /// The object's `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// The local backend's sidecar document, version 2.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Sidecar {
    v: u64,
    #[serde(flatten)]
    attributes: ObjectAttributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
}

/// What the store keeps beside an object's bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoredAttributes {
    pub(crate) attributes: ObjectAttributes,
    pub(crate) etag: Option<String>,
}

/// A GET's answer.
#[derive(Debug, Clone)]
pub struct GetObjectOutput {
    /// The bytes of the requested range.
    pub body: Bytes,
    /// The range returned.
    pub range: Range<u64>,
    /// The object's information.
    pub info: ObjectInfo,
}

/// A streamed GET's answer.
pub struct GetObjectStream {
    /// The bytes of the requested range, in chunks.
    pub body: futures::stream::BoxStream<'static, Result<Bytes>>,
    /// The range returned.
    pub range: Range<u64>,
    /// The object's information.
    pub info: ObjectInfo,
}

impl std::fmt::Debug for GetObjectStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetObjectStream")
            .field("range", &self.range)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// One object in a listing.
#[derive(Debug, Clone)]
pub struct ListedObject {
    /// The key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: DateTime<Utc>,
    /// The backend's entity tag, if any.
    pub e_tag: Option<String>,
}

/// A listing page.
#[derive(Debug, Clone, Default)]
pub struct ListObjectsOutput {
    /// Objects in key order.
    pub objects: Vec<ListedObject>,
    /// Common prefixes (with a delimiter), in order.
    pub common_prefixes: Vec<String>,
    /// Whether more keys follow.
    pub is_truncated: bool,
}

/// Buckets on one object store backend.
#[derive(Debug, Clone)]
pub struct BucketStore {
    pub(crate) inner: Arc<dyn ObjectStore>,
    pub(crate) root: Option<String>,
    pub(crate) local: bool,
}

impl BucketStore {
    /// Opens the store a configuration names.
    pub fn open(config: &StoreConfig) -> Result<Self> {
        if let Some(path) = config.url.strip_prefix("file://") {
            return Self::local(std::path::Path::new(path));
        }
        if !config.url.contains("://") {
            return Self::local(std::path::Path::new(&config.url));
        }
        let url = url::Url::parse(&config.url)
            .map_err(|e| Error::Config(format!("{}: {e}", config.url)))?;
        if url.scheme() != "s3" {
            return Err(Error::Config(format!(
                "unsupported object store scheme {:?} (use file:// or s3://)",
                url.scheme()
            )));
        }
        let (store, path) =
            object_store::parse_url_opts(&url, config.options.iter()).map_err(|source| {
                Error::Backend {
                    operation: "configure",
                    source,
                }
            })?;
        let root = (!path.as_ref().is_empty()).then(|| path.as_ref().to_owned());
        Ok(Self {
            inner: Arc::from(store),
            root,
            local: false,
        })
    }

    /// The local backend rooted at `dir` (created if missing), with fsync on.
    pub fn local(dir: &std::path::Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .map_err(|source| Error::Backend {
                operation: "configure",
                source,
            })?
            .with_fsync(true)
            .with_automatic_cleanup(true);
        Ok(Self {
            inner: Arc::new(fs),
            root: None,
            local: true,
        })
    }

    /// Wraps any object store (tests use the in-memory one).
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, sidecar_metadata: bool) -> Self {
        Self {
            inner,
            root: None,
            local: sidecar_metadata,
        }
    }

    /// The underlying object store, for readers that work on it directly (a
    /// query engine). Cairn bucket `B`, key `K` is at [`Self::object_path`].
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.clone()
    }

    /// Where Cairn bucket `bucket`, key `key` lives in [`Self::object_store`].
    pub fn object_path(&self, bucket: &str, key: &str) -> Result<Path> {
        self.path(bucket, key)
    }

    pub(crate) fn path(&self, bucket: &str, key: &str) -> Result<Path> {
        if self.local
            && key
                .split('/')
                .any(|segment| segment.len() > MAX_LOCAL_SEGMENT_BYTES)
        {
            return Err(Error::InvalidKey {
                key: key.to_owned(),
                reason: format!(
                    "the local backend cannot store a key segment longer than \
                     {MAX_LOCAL_SEGMENT_BYTES} bytes (a file name)"
                ),
            });
        }
        let full = match &self.root {
            Some(root) => format!("{root}/{bucket}/{key}"),
            None => format!("{bucket}/{key}"),
        };
        Path::parse(&full).map_err(|e| Error::InvalidKey {
            key: key.to_owned(),
            reason: e.to_string(),
        })
    }

    pub(crate) fn metadata_path(&self, bucket: &str, key: &str) -> Result<Path> {
        self.path(LOCAL_METADATA_ROOT, &format!("{bucket}/{key}"))
    }

    fn bucket_root(&self, bucket: &str) -> String {
        match &self.root {
            Some(root) => format!("{root}/{bucket}/"),
            None => format!("{bucket}/"),
        }
    }

    /// Writes an object durably, with user metadata.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        let path = self.path(bucket, key)?;
        let mut options = PutOptions::default();
        if self.local {
            let meta_path = self.metadata_path(bucket, key)?;
            if !metadata.is_empty() {
                let text = serde_json::to_vec(metadata).map_err(|e| Error::CorruptMetadata {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    reason: e.to_string(),
                })?;
                self.inner
                    .put(&meta_path, PutPayload::from(text))
                    .await
                    .map_err(|source| backend("put metadata", source))?;
            } else if let Err(e) = self.inner.delete(&meta_path).await {
                // Stale metadata of an earlier object at this key must not survive.
                if !matches!(e, object_store::Error::NotFound { .. }) {
                    return Err(backend("delete metadata", e));
                }
            }
        } else {
            let mut attributes = Attributes::new();
            for (name, value) in metadata {
                attributes.insert(
                    Attribute::Metadata(name.clone().into()),
                    AttributeValue::from(value.clone()),
                );
            }
            options.attributes = attributes;
        }
        self.inner
            .put_opts(&path, PutPayload::from(body), options)
            .await
            .map_err(|source| backend("put", source))?;
        Ok(())
    }

    /// Writes an object a client sent, durably, with its attributes and the
    /// ETag S3 would give it (the hex MD5 of `body`), which it returns.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        attributes: &ObjectAttributes,
    ) -> Result<String> {
        let etag = md5_hex(body.clone()).await?;
        let path = self.path(bucket, key)?;
        let options = self
            .write_attributes(bucket, key, attributes, &etag)
            .await?;
        self.inner
            .put_opts(&path, PutPayload::from(body), options.into())
            .await
            .map_err(|source| backend("put", source))?;
        Ok(etag)
    }

    /// Records an object's attributes before its bytes are written: on the
    /// local backend a sidecar is written (durably) now; on S3 the returned
    /// attributes go with the write.
    pub(crate) async fn write_attributes(
        &self,
        bucket: &str,
        key: &str,
        attributes: &ObjectAttributes,
        etag: &str,
    ) -> Result<Attributes> {
        if self.local {
            let sidecar = Sidecar {
                v: SIDECAR_VERSION,
                attributes: attributes.clone(),
                etag: Some(etag.to_owned()),
            };
            let text = serde_json::to_vec(&sidecar).map_err(|e| Error::CorruptMetadata {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                reason: e.to_string(),
            })?;
            self.inner
                .put(&self.metadata_path(bucket, key)?, PutPayload::from(text))
                .await
                .map_err(|source| backend("put metadata", source))?;
            return Ok(Attributes::new());
        }
        let mut out = Attributes::new();
        for (name, value) in &attributes.metadata {
            out.insert(
                Attribute::Metadata(name.clone().into()),
                AttributeValue::from(value.clone()),
            );
        }
        out.insert(
            Attribute::Metadata(ETAG_METADATA.into()),
            AttributeValue::from(etag.to_owned()),
        );
        if let Some(content_type) = &attributes.content_type {
            out.insert(
                Attribute::ContentType,
                AttributeValue::from(content_type.clone()),
            );
        }
        Ok(out)
    }

    /// Reads an object, or a range of it.
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
        range: Option<GetRange>,
    ) -> Result<GetObjectOutput> {
        let path = self.path(bucket, key)?;
        let options = GetOptions {
            range,
            ..GetOptions::default()
        };
        let result = self
            .inner
            .get_opts(&path, options)
            .await
            .map_err(|e| not_found_or(e, bucket, key, "get"))?;
        let range = result.range.clone();
        let meta = result.meta.clone();
        let attributes = result.attributes.clone();
        let body = result
            .bytes()
            .await
            .map_err(|e| not_found_or(e, bucket, key, "get"))?;
        let stored = self.stored_attributes(bucket, key, &attributes).await?;
        Ok(GetObjectOutput {
            body,
            range,
            info: ObjectInfo {
                size: meta.size,
                last_modified: meta.last_modified,
                e_tag: stored.etag.or(meta.e_tag),
                metadata: stored.attributes.metadata,
                content_type: stored.attributes.content_type,
            },
        })
    }

    /// Opens an object, or a range of it, for reading as a stream of chunks,
    /// so large objects are never held in memory whole. A backend failure
    /// after the first chunk ends the stream with an error.
    pub async fn get_stream(
        &self,
        bucket: &str,
        key: &str,
        range: Option<GetRange>,
    ) -> Result<GetObjectStream> {
        let path = self.path(bucket, key)?;
        let options = GetOptions {
            range,
            ..GetOptions::default()
        };
        let result = self
            .inner
            .get_opts(&path, options)
            .await
            .map_err(|e| not_found_or(e, bucket, key, "get"))?;
        let range = result.range.clone();
        let meta = result.meta.clone();
        let attributes = result.attributes.clone();
        let stored = self.stored_attributes(bucket, key, &attributes).await?;
        let body = result.into_stream().map_err(|e| backend("get", e)).boxed();
        Ok(GetObjectStream {
            body,
            range,
            info: ObjectInfo {
                size: meta.size,
                last_modified: meta.last_modified,
                e_tag: stored.etag.or(meta.e_tag),
                metadata: stored.attributes.metadata,
                content_type: stored.attributes.content_type,
            },
        })
    }

    /// Reads an object's information without its body.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<ObjectInfo> {
        let path = self.path(bucket, key)?;
        let result = self
            .inner
            .get_opts(&path, GetOptions::new().with_head(true))
            .await
            .map_err(|e| not_found_or(e, bucket, key, "head"))?;
        let stored = self
            .stored_attributes(bucket, key, &result.attributes)
            .await?;
        Ok(ObjectInfo {
            size: result.meta.size,
            last_modified: result.meta.last_modified,
            e_tag: stored.etag.or(result.meta.e_tag),
            metadata: stored.attributes.metadata,
            content_type: stored.attributes.content_type,
        })
    }

    /// Whether an object exists.
    pub async fn exists(&self, bucket: &str, key: &str) -> Result<bool> {
        match self.inner.head(&self.path(bucket, key)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(backend("head", e)),
        }
    }

    pub(crate) async fn stored_attributes(
        &self,
        bucket: &str,
        key: &str,
        attributes: &Attributes,
    ) -> Result<StoredAttributes> {
        if !self.local {
            let mut stored = StoredAttributes::default();
            for (k, v) in attributes.iter() {
                match k {
                    Attribute::Metadata(name) if name.eq_ignore_ascii_case(ETAG_METADATA) => {
                        stored.etag = Some(v.to_string());
                    }
                    Attribute::Metadata(name) => {
                        stored
                            .attributes
                            .metadata
                            .insert(name.to_lowercase(), v.to_string());
                    }
                    Attribute::ContentType => {
                        stored.attributes.content_type = Some(v.to_string());
                    }
                    _ => {}
                }
            }
            return Ok(stored);
        }
        let corrupt = |reason: String| Error::CorruptMetadata {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            reason,
        };
        match self.inner.get(&self.metadata_path(bucket, key)?).await {
            Ok(result) => {
                let bytes = result
                    .bytes()
                    .await
                    .map_err(|e| backend("get metadata", e))?;
                let value: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
                if value.get("v").is_some_and(serde_json::Value::is_u64) {
                    let sidecar: Sidecar =
                        serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
                    if sidecar.v != SIDECAR_VERSION {
                        return Err(corrupt(format!("unknown sidecar version {}", sidecar.v)));
                    }
                    Ok(StoredAttributes {
                        attributes: sidecar.attributes,
                        etag: sidecar.etag,
                    })
                } else {
                    let metadata =
                        serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
                    Ok(StoredAttributes {
                        attributes: ObjectAttributes {
                            metadata,
                            content_type: None,
                        },
                        etag: None,
                    })
                }
            }
            Err(object_store::Error::NotFound { .. }) => Ok(StoredAttributes::default()),
            Err(e) => Err(backend("get metadata", e)),
        }
    }

    /// Deletes an object (and its metadata). Deleting a missing key succeeds, as in S3.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        let path = self.path(bucket, key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(backend("delete", e)),
        }
        if self.local {
            match self.inner.delete(&self.metadata_path(bucket, key)?).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(backend("delete metadata", e)),
            }
        }
        Ok(())
    }

    /// Lists a bucket with S3 semantics: keys starting with `prefix`, after
    /// `start_after`, rolled up at the first `delimiter` after the prefix, at
    /// most `max_keys` entries (objects and common prefixes together).
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<ListObjectsOutput> {
        let bucket_root = self.bucket_root(bucket);
        // object_store lists whole path segments: list the deepest directory
        // that contains the prefix, then filter by the exact string prefix.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let list_root = format!("{bucket_root}{dir}");
        let list_path =
            Path::parse(list_root.trim_end_matches('/')).map_err(|e| Error::InvalidKey {
                key: prefix.to_owned(),
                reason: e.to_string(),
            })?;
        let mut entries: Vec<ListedObject> = self
            .inner
            .list(Some(&list_path))
            .map_err(|e| backend("list", e))
            .try_filter_map(|meta| {
                let full = meta.location.as_ref().to_owned();
                let key = full.strip_prefix(&bucket_root).map(str::to_owned);
                async move {
                    Ok(key
                        .filter(|k| k.starts_with(prefix))
                        .map(|key| ListedObject {
                            key,
                            size: meta.size,
                            last_modified: meta.last_modified,
                            e_tag: meta.e_tag,
                        }))
                }
            })
            .try_collect()
            .await
            .or_else(|e| match e {
                Error::Backend {
                    source: object_store::Error::NotFound { .. },
                    ..
                } => Ok(Vec::new()),
                other => Err(other),
            })?;
        entries.sort_by(|a, b| a.key.cmp(&b.key));

        let mut output = ListObjectsOutput::default();
        let mut seen_prefixes = BTreeSet::new();
        let mut count = 0usize;
        for entry in entries {
            if start_after.is_some_and(|m| entry.key.as_str() <= m) {
                continue;
            }
            let rolled_up = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                entry.key[prefix.len()..]
                    .find(d)
                    .map(|i| entry.key[..prefix.len() + i + d.len()].to_owned())
            });
            if let Some(common) = &rolled_up {
                if seen_prefixes.contains(common) {
                    continue;
                }
                if start_after.is_some_and(|m| common.as_str() <= m) {
                    continue;
                }
            }
            if count == max_keys {
                output.is_truncated = true;
                break;
            }
            count += 1;
            match rolled_up {
                Some(common) => {
                    seen_prefixes.insert(common.clone());
                    output.common_prefixes.push(common);
                }
                None => output.objects.push(entry),
            }
        }
        if self.local {
            // The local backend's own ETag is not S3's: objects written by
            // clients carry S3's in their sidecar, as HEAD reports it.
            for object in &mut output.objects {
                let stored = self
                    .stored_attributes(bucket, &object.key, &Attributes::new())
                    .await?;
                if let Some(etag) = stored.etag {
                    object.e_tag = Some(etag);
                }
            }
        }
        Ok(output)
    }
}

/// The hex MD5 of a body (S3's ETag), computed off the async threads: bodies
/// reach 64 MiB.
pub(crate) async fn md5_hex(body: Bytes) -> Result<String> {
    tokio::task::spawn_blocking(move || hex::encode(Md5::digest(&body)))
        .await
        .map_err(|e| Error::TaskFailed {
            what: "MD5 of an object",
            reason: e.to_string(),
        })
}

pub(crate) fn backend(operation: &'static str, source: object_store::Error) -> Error {
    Error::Backend { operation, source }
}

pub(crate) fn not_found_or(
    e: object_store::Error,
    bucket: &str,
    key: &str,
    operation: &'static str,
) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::NotFound {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        },
        object_store::Error::NotSupported { .. } if operation == "get" => Error::InvalidRange {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        },
        other => {
            // A range past the end of the object comes back as a range error.
            if other.to_string().to_lowercase().contains("range") {
                Error::InvalidRange {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                }
            } else {
                backend(operation, other)
            }
        }
    }
}

impl Error {
    /// Whether retrying later may succeed (outages, time-outs), as opposed to
    /// a request that can never succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            // A missing bucket or object, a refused credential or an operation
            // the backend lacks stays so until the configuration changes.
            Error::Backend { source, .. } => !matches!(
                source,
                object_store::Error::NotFound { .. }
                    | object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
                    | object_store::Error::NotSupported { .. }
                    | object_store::Error::NotImplemented { .. }
                    | object_store::Error::InvalidPath { .. }
                    | object_store::Error::UnknownConfigurationKey { .. }
            ),
            // A blocking task that failed (panicked, cancelled at shutdown).
            Error::TaskFailed { .. } => true,
            Error::NotFound { .. }
            | Error::InvalidKey { .. }
            | Error::InvalidRange { .. }
            | Error::Config(_)
            | Error::NoSuchUpload { .. }
            | Error::InvalidPart { .. }
            | Error::InvalidPartOrder
            | Error::EntityTooSmall { .. }
            | Error::CorruptMetadata { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    async fn conformance(store: BucketStore) {
        store
            .put(
                "b1",
                "AWSLogs/1/a.json.gz",
                Bytes::from_static(b"hello world"),
                &meta(&[
                    ("signature", "abc"),
                    ("signature-algorithm", "SHA256withRSA"),
                ]),
            )
            .await
            .unwrap();
        store
            .put(
                "b1",
                "AWSLogs/1/b.json.gz",
                Bytes::from_static(b"x"),
                &BTreeMap::new(),
            )
            .await
            .unwrap();
        store
            .put(
                "b1",
                "AWSLogs/2/c.json.gz",
                Bytes::from_static(b"y"),
                &BTreeMap::new(),
            )
            .await
            .unwrap();
        store
            .put(
                "b2",
                "AWSLogs/1/z",
                Bytes::from_static(b"z"),
                &BTreeMap::new(),
            )
            .await
            .unwrap();

        let got = store.get("b1", "AWSLogs/1/a.json.gz", None).await.unwrap();
        assert_eq!(&got.body[..], b"hello world");
        assert_eq!(got.info.metadata.get("signature").unwrap(), "abc");
        let head = store.head("b1", "AWSLogs/1/a.json.gz").await.unwrap();
        assert_eq!(head.size, 11);
        assert_eq!(
            head.metadata.get("signature-algorithm").unwrap(),
            "SHA256withRSA"
        );
        let ranged = store
            .get("b1", "AWSLogs/1/a.json.gz", Some(GetRange::Bounded(6..11)))
            .await
            .unwrap();
        assert_eq!(&ranged.body[..], b"world");
        let suffix = store
            .get("b1", "AWSLogs/1/a.json.gz", Some(GetRange::Suffix(3)))
            .await
            .unwrap();
        assert_eq!(&suffix.body[..], b"rld");
        assert!(matches!(
            store.get("b1", "nope", None).await,
            Err(Error::NotFound { .. })
        ));
        assert!(store.exists("b1", "AWSLogs/1/b.json.gz").await.unwrap());
        assert!(!store.exists("b1", "AWSLogs/1/zz").await.unwrap());

        let all = store.list("b1", "", None, None, 1000).await.unwrap();
        let keys: Vec<_> = all.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "AWSLogs/1/a.json.gz",
                "AWSLogs/1/b.json.gz",
                "AWSLogs/2/c.json.gz"
            ]
        );
        let partial_prefix = store
            .list("b1", "AWSLogs/1/a", None, None, 1000)
            .await
            .unwrap();
        assert_eq!(partial_prefix.objects.len(), 1);
        let rolled = store
            .list("b1", "AWSLogs/", Some("/"), None, 1000)
            .await
            .unwrap();
        assert_eq!(rolled.common_prefixes, ["AWSLogs/1/", "AWSLogs/2/"]);
        assert!(rolled.objects.is_empty());
        let page = store.list("b1", "", None, None, 2).await.unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.objects.len(), 2);
        let next = store
            .list("b1", "", None, Some("AWSLogs/1/b.json.gz"), 2)
            .await
            .unwrap();
        assert_eq!(next.objects.len(), 1);
        assert!(!next.is_truncated);
        assert!(
            store
                .list("b3", "", None, None, 10)
                .await
                .unwrap()
                .objects
                .is_empty()
        );

        store.delete("b1", "AWSLogs/1/a.json.gz").await.unwrap();
        store.delete("b1", "AWSLogs/1/a.json.gz").await.unwrap();
        assert!(!store.exists("b1", "AWSLogs/1/a.json.gz").await.unwrap());
        // A new object at a key does not inherit the old one's metadata.
        store
            .put(
                "b1",
                "AWSLogs/1/a.json.gz",
                Bytes::from_static(b"again"),
                &BTreeMap::new(),
            )
            .await
            .unwrap();
        assert!(
            store
                .head("b1", "AWSLogs/1/a.json.gz")
                .await
                .unwrap()
                .metadata
                .is_empty()
        );
    }

    /// The local sidecar is a persisted format: a change must be seen in review.
    #[test]
    fn test_sidecar_golden() {
        let sidecar = Sidecar {
            v: SIDECAR_VERSION,
            attributes: ObjectAttributes {
                metadata: meta(&[("color", "blue")]),
                content_type: Some("text/plain".to_owned()),
            },
            etag: Some("5eb63bbbe01eeed093cb22bb8f5acdc3".to_owned()),
        };
        let golden = r#"{"v":2,"metadata":{"color":"blue"},"content_type":"text/plain","etag":"5eb63bbbe01eeed093cb22bb8f5acdc3"}"#;
        assert_eq!(serde_json::to_string(&sidecar).unwrap(), golden);
        let back: Sidecar = serde_json::from_str(golden).unwrap();
        assert_eq!(back.attributes, sidecar.attributes);
    }

    #[tokio::test]
    async fn test_version_1_sidecars_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = BucketStore::local(dir.path()).unwrap();
        // What `put` (the pipeline's delivery) writes: a flat map of user metadata.
        store
            .put(
                "b",
                "k",
                Bytes::from_static(b"x"),
                &meta(&[("signature", "s")]),
            )
            .await
            .unwrap();
        let raw = std::fs::read(dir.path().join(".cairn-meta/b/k")).unwrap();
        assert_eq!(raw, br#"{"signature":"s"}"#);
        let head = store.head("b", "k").await.unwrap();
        assert_eq!(head.metadata, meta(&[("signature", "s")]));
        assert_eq!(head.content_type, None);
    }

    #[tokio::test]
    async fn test_local_backend_conformance() {
        let dir = tempfile::tempdir().unwrap();
        let store = BucketStore::local(dir.path()).unwrap();
        conformance(store).await;
    }

    #[tokio::test]
    async fn test_open_by_url() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            url: format!("file://{}", dir.path().display()),
            options: BTreeMap::new(),
        };
        conformance(BucketStore::open(&config).unwrap()).await;
        let bad = StoreConfig {
            url: "ftp://x".into(),
            options: BTreeMap::new(),
        };
        assert!(matches!(BucketStore::open(&bad), Err(Error::Config(_))));
    }
}
