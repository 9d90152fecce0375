//! The metastore: Cairn's control-plane state.
//!
//! Buckets, trails (configuration, event selectors, tags) and trail status live
//! here, in SQLite (embedded, transactional, `synchronous=FULL` so a change is
//! durable when the call returns). Records and log files do not: they live in
//! the WAL and the object store.
//!
//! Digest chains live here too: the log files each trail delivered since its
//! last digest (per account and region), and each chain's head (the previous
//! digest's key, hash and signature), so a restart continues the chain.
//!
//! Trails are stored as versioned JSON documents keyed by ARN, so adding a
//! CloudTrail field does not need a migration; selectors are kept as the JSON
//! the API accepted (the pipeline compiles them).

mod catalog;
mod digests;
mod lake;
mod sqlite;

pub use catalog::{CATALOG_DOCUMENT_VERSION, decode_table_document, encode_table_document};
pub use digests::{ChainLink, DigestChain, DigestLogFileEntry, PendingDigest};
pub use lake::{
    EVENT_DATA_STORE_DOCUMENT_VERSION, EventDataStoreRecord, EventDataStoreStatus,
    decode_event_data_store, encode_event_data_store,
};

pub use sqlite::{
    Bucket, Error, Metastore, Result, Tag, TrailConfig, TrailRecord, TrailStatus, decode_trail,
    encode_trail_documents,
};
