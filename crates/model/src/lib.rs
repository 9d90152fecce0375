//! The vocabulary of Cairn: CloudTrail records, identifiers, ARNs and times.
//!
//! This crate does no I/O and knows nothing of HTTP or storage. Everything else
//! in the workspace may depend on it.
//!
//! The central design choice is in [`record`]: a record is kept as the exact JSON
//! text a producer sent. Cairn never re-serialises a record, so unknown fields,
//! key order, whitespace and number spellings such as `1.688560107857E9` survive
//! ingest and delivery byte for byte. The few fields Cairn needs (for validation,
//! selectors and the object layout) are read through a borrowed [`RecordView`].

pub mod arn;
pub mod error;
pub mod ids;
pub mod json_limits;
pub mod layout;
pub mod record;
pub mod time;
pub mod trail;
pub mod view_codec;

pub use arn::TrailArn;
pub use error::{Error, Result};
pub use ids::{AccountId, OrganizationId, Region, TrailName};
pub use record::{IngestDefaults, NormalizedRecord, RecordError, RecordView, ResourceView};
pub use trail::{Tag, TrailConfig};

/// The event category CloudTrail gives API calls when the record says nothing.
pub const DEFAULT_EVENT_CATEGORY: &str = "Management";
/// The event type CloudTrail gives API calls when the record says nothing.
pub const DEFAULT_EVENT_TYPE: &str = "AwsApiCall";
/// The record format version Cairn writes into records that carry none.
pub const DEFAULT_EVENT_VERSION: &str = "1.11";
