//! Protocol handlers that are not yet split into codec and service: S3.

pub mod s3;

/// What the S3 handler borrows from the CloudTrail service (bucket naming).
pub mod cloudtrail {
    pub use crate::services::cloudtrail::valid_bucket_name;
}
