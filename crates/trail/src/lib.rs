//! CloudTrail log files.
//!
//! A trail delivers its records in files of `{"Records":[...]}`, gzip-compressed,
//! one file per (account, region) per delivery. [`LogBatches`] builds those
//! files incrementally: records are deflated a chunk at a time as they arrive,
//! by one compressor for all of a trail's open files, so an open file holds its
//! compressed bytes and at most one chunk of text, and finishing it is cheap.
//!
//! Output is deterministic: the same records in the same order give the same
//! bytes (the gzip header carries no time or name). Crash recovery relies on
//! this to re-create a file it had announced but may not have written.
//!
//! The SHA-256 of each file's uncompressed content is computed on the way,
//! because the digest chain lists it.

mod batch;

pub use batch::{LogBatches, LogFile};
