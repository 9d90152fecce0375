//! CloudTrail log file integrity: digest files and their signed chain.
//!
//! * [`document`]: the digest body exactly as CloudTrail serialises it, its key,
//!   and the string its signature covers;
//! * [`keys`]: SHA256withRSA signing, public keys as PKCS#1 DER, MD5 fingerprints;
//! * [`keyring`]: each region's keys on disk, rotated on a schedule, never forgotten;
//! * [`validate`]: the chain walk of `aws cloudtrail validate-logs`, with the
//!   checks it skips reported on lines of their own.
//!
//! A pure library: it reads and writes no bucket; callers bring the bytes.

pub mod document;
pub mod keyring;
pub mod keys;
pub mod validate;

pub use document::{
    DigestDocument, DigestLogFile, PreviousDigest, SignedDigest, digest_file_key, digest_prefix,
    sha256_hex, string_to_sign,
};
pub use keyring::{Keyring, PublicKeyRecord};
pub use keys::{SIGNATURE_ALGORITHM, SigningKey, VerifyingKey, fingerprint};

/// A digest failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key could not be made, read, or used.
    #[error("{0}")]
    Key(String),
    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}
