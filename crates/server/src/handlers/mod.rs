//! One module per AWS service Cairn speaks.

pub mod cloudtrail;
pub mod ingest;
pub mod organizations;
pub mod s3;
