//! CloudTrail log files.
//!
//! A trail delivers its records in files of `{"Records":[...]}`, gzip-compressed,
//! one file per (account, region) per delivery. [`LogBatches`] builds those
//! files incrementally: records are deflated a chunk at a time as they arrive,
//! by one compressor for all of a trail's open files, so an open file holds its
//! compressed bytes and at most one chunk of text, and finishing it is cheap.
//!
//! Content is deterministic: the same records in the same order give the same
//! text, and so the same SHA-256, which is what the digest chain lists. Crash
//! recovery relies on this to re-create a file it had announced but may not
//! have written. The compressed bytes can differ by a few bytes between runs
//! (zlib's matches after a reset depend slightly on what the compressor did
//! before, and with a pool on which thread took a chunk); the gzip header
//! carries no time or name.
//!
//! A [`DeflatePool`] lets a trail's chunks be deflated on other threads
//! too, with the same content as a result.
//!
//! The SHA-256 of each file's uncompressed content is computed on the way,
//! because the digest chain lists it.

mod batch;
mod pool;

pub use batch::{LogBatches, LogFile};
pub use pool::DeflatePool;
