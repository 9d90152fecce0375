//! Digest files: the signed hourly chain that makes tampering with a trail's
//! log files show.
//!
//! A trail with log file validation keeps one chain per account and region it
//! delivers for (its home region from StartLogging on, every other one from its
//! first log file). Every `digest_interval` each chain gets a digest listing the
//! log files delivered since the previous one (none is fine: empty digests keep
//! the chain's hours accounted for), naming the previous digest's key, hash and
//! signature, signed with the region's current key and stored with its
//! signature in the object's user metadata.
//!
//! StopLogging, DeleteTrail and turning validation off end every chain with a
//! final digest; the next StartLogging begins new chains (null `previous*`
//! fields). A restart continues the chains where they were: their state is in
//! the metastore, and a digest interrupted mid-write is rebuilt identically
//! (see `cairn_meta`'s digest module).

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound as _, Utc};

use cairn_digest::document::gzip;
use cairn_digest::{DigestDocument, DigestLogFile, PreviousDigest, SignedDigest, digest_file_key};
use cairn_meta::{ChainLink, DigestChain};
use cairn_model::TrailConfig;

use crate::sink::SinkContext;

/// Why a digest could not be written (the sink retries).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DigestFailure {
    /// The metastore failed.
    #[error(transparent)]
    Meta(#[from] cairn_meta::Error),
    /// The signing key could not be had.
    #[error(transparent)]
    Key(#[from] cairn_digest::Error),
    /// The bucket refused the digest.
    #[error("{0}")]
    Store(#[from] cairn_store::Error),
}

impl DigestFailure {
    /// The runtime's view: a store error keeps its kind, a metastore error
    /// its own, a key that cannot be had is retried.
    pub(crate) fn into_sink_error(self) -> crate::runtime::SinkError {
        match self {
            DigestFailure::Meta(e) => e.into(),
            DigestFailure::Store(e) => e.into(),
            DigestFailure::Key(e) => crate::runtime::SinkError::retriable(e.to_string()),
        }
    }
}

/// Whether the trail writes digests in its current state.
pub(crate) fn validating(config: Option<&TrailConfig>, logging: bool) -> bool {
    logging && config.is_some_and(|c| c.log_file_validation_enabled)
}

/// When the next digest of any chain of the trail is due, if it has chains.
pub(crate) fn next_due(
    chains: &[DigestChain],
    interval: std::time::Duration,
) -> Option<DateTime<Utc>> {
    let interval = chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::hours(1));
    chains
        .iter()
        .map(|c| match &c.pending {
            // A digest interrupted mid-write is finished at once.
            Some(p) => p.end.min(c.start_time),
            None => c.start_time + interval,
        })
        .min()
}

/// The end time of a digest written now for a chain starting at `start`:
/// whole seconds, and at least a second after the start.
pub(crate) fn end_time(start: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let end = now.trunc_subsecs(0);
    (end > start.trunc_subsecs(0)).then_some(end)
}

/// Writes the next digest of `chain`, ending at `end` (or at the end already
/// planned for it before a crash).
pub(crate) fn write_digest(
    ctx: &SinkContext,
    config: &TrailConfig,
    chain: &DigestChain,
    end: DateTime<Utc>,
    end_chain: bool,
) -> Result<DateTime<Utc>, DigestFailure> {
    let arn = &config.arn;
    let plan = ctx
        .meta
        .plan_digest(arn, &chain.account, &chain.region, end)?;
    let files = ctx
        .meta
        .digest_log_files(arn, &chain.account, &chain.region, plan.max_seq)?;
    let organization_id = if config.is_organization_trail {
        ctx.organization.id.as_deref()
    } else {
        None
    };
    let key = digest_file_key(
        config.s3_key_prefix.as_deref(),
        organization_id,
        &chain.account,
        &chain.region,
        &config.name,
        &config.home_region,
        plan.end,
    );
    let signing_key = ctx.keyring.signing_key(&chain.region, plan.end)?;
    let document = DigestDocument {
        aws_account_id: chain.account.clone(),
        digest_start_time: chain.start_time.trunc_subsecs(0),
        digest_end_time: plan.end,
        digest_s3_bucket: config.s3_bucket_name.clone(),
        digest_s3_object: key.clone(),
        public_key_fingerprint: signing_key.fingerprint().to_owned(),
        previous: chain.previous.as_ref().map(|p| PreviousDigest {
            s3_bucket: p.s3_bucket.clone(),
            s3_object: p.s3_object.clone(),
            hash_value: p.hash.clone(),
            signature: p.signature.clone(),
        }),
        log_files: files
            .into_iter()
            .map(|f| DigestLogFile {
                s3_bucket: f.s3_bucket,
                s3_object: f.s3_object,
                hash_value: f.hash,
                newest_event_time: f.newest_event_time,
                oldest_event_time: f.oldest_event_time,
            })
            .collect(),
    };
    let signed = SignedDigest::sign(&document, &signing_key)?;
    let metadata: BTreeMap<String, String> = signed.metadata();
    let body = bytes::Bytes::from(gzip(&signed.body));
    let store = ctx.store.clone();
    let bucket = config.s3_bucket_name.clone();
    let put_key = key.clone();
    ctx.runtime
        .block_on(async move { store.put(&bucket, &put_key, body, &metadata).await })?;
    ctx.meta.complete_digest(
        arn,
        &chain.account,
        &chain.region,
        &ChainLink {
            s3_bucket: config.s3_bucket_name.clone(),
            s3_object: key,
            hash: signed.body_sha256,
            signature: signed.signature,
        },
        end_chain,
    )?;
    Ok(plan.end)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn test_end_time_is_whole_seconds_after_start() {
        assert_eq!(
            end_time(
                at("2024-05-01T10:00:00.300Z"),
                at("2024-05-01T10:00:00.900Z")
            ),
            None
        );
        assert_eq!(
            end_time(
                at("2024-05-01T10:00:00.300Z"),
                at("2024-05-01T10:00:01.100Z")
            ),
            Some(at("2024-05-01T10:00:01Z"))
        );
    }
}
