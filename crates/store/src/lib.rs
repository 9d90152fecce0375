//! Buckets on an object store, and the CloudTrail object layout.
//!
//! Cairn keeps its buckets in one `object_store` backend: a local directory
//! under the data dir by default, or any S3-compatible store (`s3://bucket/prefix`).
//! Cairn bucket `B`, key `K` lives at `<root>/B/K` in that store.
//!
//! Contracts:
//! * [`BucketStore::put`] returns only once the object is durable: on the local
//!   backend files are written to a staging name, fsynced, renamed and the
//!   directory fsynced; on S3 a PUT is durable when acknowledged.
//! * User metadata (`x-amz-meta-*`) travels with the object: as real S3 user
//!   metadata on S3; on the local backend in a sidecar object under
//!   `<root>/.cairn-meta/B/K`, written (durably) before the object itself so an
//!   object is never visible without its metadata.
//! * Listing is in lexicographic key order with S3's prefix, delimiter and
//!   marker semantics, whatever order the backend lists in.
//!
//! * Objects written by clients ([`BucketStore::put_object`], multipart
//!   completion, copies) carry S3's ETag (MD5, or the multipart form) and their
//!   `Content-Type`; multipart uploads in progress live outside the buckets
//!   (see `upload`) and never appear in listings.
//!
//! The store knows nothing of HTTP; the server maps [`Error`] to S3 errors.

pub mod layout;

/// A byte range of an object, as `object_store` takes it.
pub use object_store::GetRange;
mod store;
mod upload;

/// The underlying store trait and paths, for readers of [`BucketStore::object_store`].
pub use object_store::{ObjectStore, path::Path as ObjectPath};
pub use store::{
    BucketStore, Error, GetObjectOutput, GetObjectStream, ListObjectsOutput, ListedObject,
    ObjectAttributes, ObjectInfo, Result, StoreConfig,
};
pub use upload::{MAX_PART_NUMBER, MIN_PART_BYTES, Part, PartChecksum, Upload, multipart_etag};
