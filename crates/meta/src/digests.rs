//! Digest chain state: what the next digest of each (trail, account, region) lists
//! and links to.
//!
//! A trail sink records every log file it delivers (after the write, before it
//! moves its WAL cursor; recording twice is harmless), and each digest it writes
//! goes through two steps so a crash cannot fork the chain:
//! 1. [`Metastore::plan_digest`] fixes the digest's end time and the last log
//!    file it lists, and keeps that plan until step 2;
//! 2. [`Metastore::complete_digest`] forgets the listed files and makes the new
//!    digest the chain's head.
//!
//! A sink restarting between the two finds the plan and rebuilds the very same
//! digest (same files, same times, same key; PKCS#1 v1.5 signatures are
//! deterministic), so rewriting it is harmless.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::sqlite::{Error, Metastore, Result};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS digest_log_files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    trail_arn TEXT NOT NULL,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    s3_bucket TEXT NOT NULL,
    s3_object TEXT NOT NULL,
    hash TEXT NOT NULL,
    oldest TEXT,
    newest TEXT,
    UNIQUE (trail_arn, s3_bucket, s3_object)
);
CREATE INDEX IF NOT EXISTS digest_log_files_by_stream
    ON digest_log_files(trail_arn, account, region, seq);
CREATE TABLE IF NOT EXISTS digest_chains (
    trail_arn TEXT NOT NULL,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    start_time TEXT NOT NULL,
    previous TEXT,
    pending TEXT,
    PRIMARY KEY (trail_arn, account, region)
);
";

/// A delivered log file waiting for its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestLogFileEntry {
    /// The account it was delivered for.
    pub account: String,
    /// The region.
    pub region: String,
    /// The bucket.
    pub s3_bucket: String,
    /// The key.
    pub s3_object: String,
    /// Hex SHA-256 of its uncompressed content.
    pub hash: String,
    /// Oldest event time in it (`YYYY-MM-DDTHH:MM:SSZ`).
    pub oldest_event_time: Option<String>,
    /// Newest event time in it.
    pub newest_event_time: Option<String>,
}

/// The last digest of a chain, which the next one names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// Its bucket.
    pub s3_bucket: String,
    /// Its key.
    pub s3_object: String,
    /// Hex SHA-256 of its uncompressed body.
    pub hash: String,
    /// Its signature (hex).
    pub signature: String,
}

/// A digest planned but maybe not yet written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDigest {
    /// Its end time.
    pub end: DateTime<Utc>,
    /// The last log file (by sequence) it lists; 0 when it lists none.
    pub max_seq: i64,
}

/// One chain: a trail's digests for one account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChain {
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// Where the next digest's range starts (the previous digest's end).
    pub start_time: DateTime<Utc>,
    /// The previous digest; `None` before a chain's starting digest.
    pub previous: Option<ChainLink>,
    /// A planned digest not yet completed.
    pub pending: Option<PendingDigest>,
}

fn to_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn from_text(text: &str, key: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Corrupt {
            key: key.to_owned(),
            source: <serde_json::Error as serde::de::Error>::custom(e),
        })
}

/// The `pending` column of a chain: `None` when there is no chain, `Some(None)`
/// when no digest is planned.
fn pending_column(
    tx: &rusqlite::Transaction<'_>,
    trail_arn: &str,
    account: &str,
    region: &str,
) -> Result<Option<Option<String>>> {
    Ok(tx
        .query_row(
            "SELECT pending FROM digest_chains WHERE trail_arn = ?1 AND account = ?2 AND region = ?3",
            params![trail_arn, account, region],
            |r| r.get(0),
        )
        .optional()?)
}

fn decode_json<T: serde::de::DeserializeOwned>(
    text: Option<String>,
    key: &str,
) -> Result<Option<T>> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|source| Error::Corrupt {
            key: key.to_owned(),
            source,
        })
    })
    .transpose()
}

impl Metastore {
    /// Starts a chain for (trail, account, region) at `start` unless one exists.
    pub fn start_digest_chain(
        &self,
        trail_arn: &str,
        account: &str,
        region: &str,
        start: DateTime<Utc>,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT OR IGNORE INTO digest_chains (trail_arn, account, region, start_time) VALUES (?1, ?2, ?3, ?4)",
            params![trail_arn, account, region, to_text(start)],
        )?;
        Ok(())
    }

    /// Records delivered log files (each once, however often it is recorded),
    /// starting at `now` the chains of accounts and regions seen for the first time.
    pub fn record_digest_log_files(
        &self,
        trail_arn: &str,
        files: &[DigestLogFileEntry],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO digest_log_files
                 (trail_arn, account, region, s3_bucket, s3_object, hash, oldest, newest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut chain = tx.prepare_cached(
                "INSERT OR IGNORE INTO digest_chains (trail_arn, account, region, start_time) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let now = to_text(now);
            for f in files {
                insert.execute(params![
                    trail_arn,
                    f.account,
                    f.region,
                    f.s3_bucket,
                    f.s3_object,
                    f.hash,
                    f.oldest_event_time,
                    f.newest_event_time
                ])?;
                chain.execute(params![trail_arn, f.account, f.region, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every chain of a trail.
    pub fn digest_chains(&self, trail_arn: &str) -> Result<Vec<DigestChain>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT account, region, start_time, previous, pending FROM digest_chains
             WHERE trail_arn = ?1 ORDER BY account, region",
        )?;
        let rows = statement.query_map([trail_arn], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut chains = Vec::new();
        for row in rows {
            let (account, region, start, previous, pending) = row?;
            let key = format!(
                "table digest_chains, row (trail_arn, account, region) = ('{trail_arn}', '{account}', '{region}')"
            );
            chains.push(DigestChain {
                start_time: from_text(&start, &key)?,
                previous: decode_json(previous, &key)?,
                pending: decode_json(pending, &key)?,
                account,
                region,
            });
        }
        Ok(chains)
    }

    /// Plans the chain's next digest to end at `end` and list every log file
    /// recorded so far, or returns the plan already made.
    pub fn plan_digest(
        &self,
        trail_arn: &str,
        account: &str,
        region: &str,
        end: DateTime<Utc>,
    ) -> Result<PendingDigest> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let key = format!("digest chain {trail_arn} {account} {region}");
        let existing = pending_column(&tx, trail_arn, account, region)?;
        let Some(existing) = existing else {
            return Err(Error::NotFound(key));
        };
        if let Some(pending) = decode_json::<PendingDigest>(existing, &key)? {
            return Ok(pending);
        }
        let max_seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM digest_log_files WHERE trail_arn = ?1 AND account = ?2 AND region = ?3",
            params![trail_arn, account, region],
            |r| r.get(0),
        )?;
        let pending = PendingDigest { end, max_seq };
        let text = serde_json::to_string(&pending).map_err(Error::Encode)?;
        tx.execute(
            "UPDATE digest_chains SET pending = ?4 WHERE trail_arn = ?1 AND account = ?2 AND region = ?3",
            params![trail_arn, account, region, text],
        )?;
        tx.commit()?;
        Ok(pending)
    }

    /// The log files a planned digest lists, in delivery order.
    pub fn digest_log_files(
        &self,
        trail_arn: &str,
        account: &str,
        region: &str,
        max_seq: i64,
    ) -> Result<Vec<DigestLogFileEntry>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT s3_bucket, s3_object, hash, oldest, newest FROM digest_log_files
             WHERE trail_arn = ?1 AND account = ?2 AND region = ?3 AND seq <= ?4 ORDER BY seq",
        )?;
        let rows = statement.query_map(params![trail_arn, account, region, max_seq], |r| {
            Ok(DigestLogFileEntry {
                account: account.to_owned(),
                region: region.to_owned(),
                s3_bucket: r.get(0)?,
                s3_object: r.get(1)?,
                hash: r.get(2)?,
                oldest_event_time: r.get(3)?,
                newest_event_time: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Completes the planned digest: its files are forgotten and it becomes the
    /// chain's head. With `end_chain`, the chain ends instead (after StopLogging
    /// or when validation is turned off); the next digest starts a new chain.
    pub fn complete_digest(
        &self,
        trail_arn: &str,
        account: &str,
        region: &str,
        link: &ChainLink,
        end_chain: bool,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let key = format!("digest chain {trail_arn} {account} {region}");
        let pending = pending_column(&tx, trail_arn, account, region)?;
        let Some(pending) = decode_json::<PendingDigest>(pending.flatten(), &key)? else {
            return Err(Error::NotFound(format!("planned digest of {key}")));
        };
        tx.execute(
            "DELETE FROM digest_log_files WHERE trail_arn = ?1 AND account = ?2 AND region = ?3 AND seq <= ?4",
            params![trail_arn, account, region, pending.max_seq],
        )?;
        if end_chain {
            tx.execute(
                "DELETE FROM digest_chains WHERE trail_arn = ?1 AND account = ?2 AND region = ?3",
                params![trail_arn, account, region],
            )?;
        } else {
            let link = serde_json::to_string(link).map_err(Error::Encode)?;
            tx.execute(
                "UPDATE digest_chains SET start_time = ?4, previous = ?5, pending = NULL
                 WHERE trail_arn = ?1 AND account = ?2 AND region = ?3",
                params![trail_arn, account, region, to_text(pending.end), link],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets every chain and waiting log file of a trail (it was deleted).
    pub fn delete_digest_state(&self, trail_arn: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM digest_log_files WHERE trail_arn = ?1",
            [trail_arn],
        )?;
        tx.execute(
            "DELETE FROM digest_chains WHERE trail_arn = ?1",
            [trail_arn],
        )?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn file(key: &str) -> DigestLogFileEntry {
        DigestLogFileEntry {
            account: "111111111111".into(),
            region: "us-east-1".into(),
            s3_bucket: "b".into(),
            s3_object: key.into(),
            hash: "00".into(),
            oldest_event_time: Some("2024-05-01T10:00:00Z".into()),
            newest_event_time: None,
        }
    }

    #[test]
    fn test_plan_complete_and_crash_between() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        let trail = "arn:aws:cloudtrail:us-east-1:111111111111:trail/t";
        {
            let meta = Metastore::open(&path).unwrap();
            meta.record_digest_log_files(
                trail,
                &[file("a"), file("b"), file("a")],
                at("2024-05-01T10:00:00Z"),
            )
            .unwrap();
            let chains = meta.digest_chains(trail).unwrap();
            assert_eq!(chains.len(), 1);
            assert_eq!(chains[0].start_time, at("2024-05-01T10:00:00Z"));
            assert!(chains[0].previous.is_none());
            let plan = meta
                .plan_digest(
                    trail,
                    "111111111111",
                    "us-east-1",
                    at("2024-05-01T11:00:00Z"),
                )
                .unwrap();
            // Files recorded after the plan wait for the next digest.
            meta.record_digest_log_files(trail, &[file("c")], at("2024-05-01T10:30:00Z"))
                .unwrap();
            let listed = meta
                .digest_log_files(trail, "111111111111", "us-east-1", plan.max_seq)
                .unwrap();
            assert_eq!(
                listed
                    .iter()
                    .map(|f| f.s3_object.as_str())
                    .collect::<Vec<_>>(),
                ["a", "b"]
            );
        }
        // "Crash": the plan survives and is returned unchanged.
        let meta = Metastore::open(&path).unwrap();
        let again = meta
            .plan_digest(
                trail,
                "111111111111",
                "us-east-1",
                at("2024-05-01T12:00:00Z"),
            )
            .unwrap();
        assert_eq!(again.end, at("2024-05-01T11:00:00Z"));
        let link = ChainLink {
            s3_bucket: "b".into(),
            s3_object: "d1".into(),
            hash: "h".into(),
            signature: "s".into(),
        };
        meta.complete_digest(trail, "111111111111", "us-east-1", &link, false)
            .unwrap();
        let chain = &meta.digest_chains(trail).unwrap()[0];
        assert_eq!(chain.start_time, at("2024-05-01T11:00:00Z"));
        assert_eq!(chain.previous.as_ref(), Some(&link));
        assert!(chain.pending.is_none());
        let next = meta
            .plan_digest(
                trail,
                "111111111111",
                "us-east-1",
                at("2024-05-01T12:00:00Z"),
            )
            .unwrap();
        let listed = meta
            .digest_log_files(trail, "111111111111", "us-east-1", next.max_seq)
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].s3_object, "c");
        meta.complete_digest(trail, "111111111111", "us-east-1", &link, true)
            .unwrap();
        assert!(meta.digest_chains(trail).unwrap().is_empty());
        meta.start_digest_chain(
            trail,
            "111111111111",
            "us-east-1",
            at("2024-05-02T00:00:00Z"),
        )
        .unwrap();
        assert!(meta.digest_chains(trail).unwrap()[0].previous.is_none());
        meta.delete_digest_state(trail).unwrap();
        assert!(meta.digest_chains(trail).unwrap().is_empty());
    }
}
