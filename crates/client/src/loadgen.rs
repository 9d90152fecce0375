//! `cairn loadgen`: generated records at a chosen rate, with latency statistics.
//!
//! A run is always bounded: by a count, a duration, or both (whichever comes
//! first); with neither, [`DEFAULT_LOADGEN_COUNT`] records. The rate limit is a
//! token schedule: the batch holding records `k..k+n` leaves no earlier than
//! `start + k / rate`, so the average rate holds however long requests take
//! (as long as the server keeps up).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::batch::{BatchBuilder, MAX_BATCH_BYTES, MAX_RECORDS_PER_BATCH};
use crate::client::IngestClient;
use crate::dispatch::Dispatcher;
use crate::error::{Error, Result};
use crate::progress::Progress;
use cairn_gen::{DEFAULT_REGIONS, Generator, GeneratorOptions};

/// Records sent when neither a count nor a duration is given.
pub const DEFAULT_LOADGEN_COUNT: u64 = 10_000;
/// The account loadgen attributes records to by default: a default server's own.
pub const DEFAULT_LOADGEN_ACCOUNT: &str = "123456789012";
/// Simulated events per second of event time when no rate is given.
const UNLIMITED_EVENT_TIME_RATE: f64 = 1000.0;

/// What to generate and how fast.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadgenOptions {
    /// Stop after this many records.
    pub count: Option<u64>,
    /// Stop starting batches after this long (those in flight finish).
    pub duration: Option<Duration>,
    /// Records per second; `None` sends as fast as the server answers.
    pub rate: Option<f64>,
    /// Records per request (1 to 1000).
    pub batch_size: usize,
    /// Requests in flight at once (1 to 256).
    pub concurrency: usize,
    /// The generator's seed; `None` picks one at random (reported in the
    /// summary). A fixed seed replays the same eventIDs, which the server
    /// then drops as duplicates.
    pub seed: Option<u64>,
    /// Recipient accounts: the server's own account and its organization's members.
    pub accounts: Vec<String>,
    /// Regions of regional events.
    pub regions: Vec<String>,
    /// The first eventTime; `None` is now.
    pub start_time: Option<DateTime<Utc>>,
}

impl Default for LoadgenOptions {
    fn default() -> Self {
        Self {
            count: None,
            duration: None,
            rate: None,
            batch_size: 100,
            concurrency: 4,
            seed: None,
            accounts: vec![DEFAULT_LOADGEN_ACCOUNT.to_owned()],
            regions: DEFAULT_REGIONS.iter().map(|s| (*s).to_owned()).collect(),
            start_time: None,
        }
    }
}

impl LoadgenOptions {
    fn validate(&self) -> Result<()> {
        let invalid = |name: &'static str, reason: &str| {
            Err(Error::InvalidOption {
                name,
                reason: reason.to_owned(),
            })
        };
        if !(1..=MAX_RECORDS_PER_BATCH).contains(&self.batch_size) {
            return invalid("batch_size", "must be between 1 and 1000");
        }
        if !(1..=256).contains(&self.concurrency) {
            return invalid("concurrency", "must be between 1 and 256");
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return invalid("rate", "must be a positive number of events per second");
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return invalid("duration", "must be positive");
        }
        if self.accounts.is_empty() {
            return invalid("accounts", "at least one account is needed");
        }
        if let Some(bad) = self
            .accounts
            .iter()
            .find(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
        {
            return invalid("accounts", &format!("{bad:?} is not a 12-digit account ID"));
        }
        if self.regions.is_empty() || self.regions.iter().any(|r| r.is_empty()) {
            return invalid("regions", "at least one non-empty region is needed");
        }
        Ok(())
    }
}

/// Batch latency percentiles (per request, retries included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

impl LatencySummary {
    /// Nearest-rank percentiles of `samples` (all zero when empty).
    pub fn from_samples(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let rank = |p: f64| -> Duration {
            if samples.is_empty() {
                return Duration::ZERO;
            }
            let index = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[index]
        };
        Self {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

/// What a loadgen run did.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadgenSummary {
    /// The seed used (to replay the run).
    pub seed: u64,
    /// Records sent and answered.
    pub sent: u64,
    /// Records accepted.
    pub accepted: u64,
    /// Records refused.
    pub failed: u64,
    /// Refusals by error code (e.g. `InvalidRecipient` for a foreign account).
    pub failures_by_code: BTreeMap<String, u64>,
    /// Requests sent.
    pub batches: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Records answered per second of wall time.
    pub events_per_second: f64,
    /// Per-request latency.
    pub batch_latency: LatencySummary,
}

/// Generates and sends records until the count or the duration is reached.
pub async fn loadgen(
    client: &IngestClient,
    options: &LoadgenOptions,
    progress: &dyn Progress,
) -> Result<LoadgenSummary> {
    options.validate()?;
    let count = match (options.count, options.duration) {
        (None, None) => Some(DEFAULT_LOADGEN_COUNT),
        (count, _) => count,
    };
    if let Some(count) = count {
        progress.add_total(count);
    }
    let seed = options.seed.unwrap_or_else(rand::random);
    let mut generator = Generator::new(
        seed,
        GeneratorOptions {
            accounts: options.accounts.clone(),
            regions: options.regions.clone(),
            start_time: options.start_time.unwrap_or_else(Utc::now),
            events_per_second: options.rate.unwrap_or(UNLIMITED_EVENT_TIME_RATE),
        },
    );
    let mut dispatcher = Dispatcher::new(client.clone(), options.concurrency, progress, 0);
    let started = Instant::now();
    let deadline = options.duration.map(|d| started + d);
    let mut generated: u64 = 0;
    let mut record = String::with_capacity(2048);
    loop {
        let remaining = count.map_or(u64::MAX, |c| c - generated);
        if remaining == 0 {
            break;
        }
        if let Some(rate) = options.rate {
            let due = started + Duration::from_secs_f64(generated as f64 / rate);
            if deadline.is_some_and(|d| due >= d) {
                break;
            }
            dispatcher.wait_until(due).await?;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let n = remaining.min(options.batch_size as u64);
        let mut builder = BatchBuilder::new(options.batch_size, MAX_BATCH_BYTES);
        for i in 0..n {
            record.clear();
            generator.write_next_record(&mut record);
            if let Some(batch) = builder.push(generated + i, &record) {
                dispatcher.submit(batch).await?;
            }
        }
        generated += n;
        if let Some(batch) = builder.finish() {
            dispatcher.submit(batch).await?;
        }
    }
    dispatcher.drain().await?;
    let elapsed = started.elapsed();
    let mut tally = dispatcher.tally;
    let seconds = elapsed.as_secs_f64();
    Ok(LoadgenSummary {
        seed,
        sent: tally.sent,
        accepted: tally.accepted,
        failed: tally.failed,
        failures_by_code: std::mem::take(&mut tally.failures_by_code),
        batches: tally.batches,
        elapsed,
        events_per_second: if seconds > 0.0 {
            tally.sent as f64 / seconds
        } else {
            0.0
        },
        batch_latency: LatencySummary::from_samples(&mut tally.latencies),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::client::tests::{client_for, config_for};
    use crate::progress::tests::Counting;
    use crate::testserver::{Reply, TestServer, answer_like_cairn, records_in};

    #[tokio::test]
    async fn test_loadgen_sends_count_in_batches_and_summarises() {
        let server = TestServer::start(answer_like_cairn).await;
        let client = client_for(&server);
        let options = LoadgenOptions {
            count: Some(1050),
            batch_size: 100,
            seed: Some(77),
            start_time: Some(
                chrono::TimeZone::with_ymd_and_hms(&Utc, 2030, 5, 6, 7, 8, 9).unwrap(),
            ),
            ..LoadgenOptions::default()
        };
        let progress = Counting::default();
        let summary = loadgen(&client, &options, &progress).await.unwrap();
        assert_eq!(
            (summary.sent, summary.accepted, summary.failed),
            (1050, 1050, 0)
        );
        assert_eq!(summary.batches, 11);
        assert_eq!(summary.seed, 77);
        assert!(summary.events_per_second > 0.0);
        assert!(summary.batch_latency.p50 <= summary.batch_latency.p99);
        assert!(summary.batch_latency.p99 <= summary.batch_latency.max);
        assert_eq!(progress.total.load(Ordering::Relaxed), 1050);
        assert_eq!(progress.done.load(Ordering::Relaxed), 1050);
        let mut sent = server.records_received();
        assert_eq!(sent.len(), 1050);
        for r in &sent {
            let v: serde_json::Value = serde_json::from_str(r).unwrap();
            assert_eq!(v["recipientAccountId"], DEFAULT_LOADGEN_ACCOUNT);
            assert!(
                v["eventTime"]
                    .as_str()
                    .unwrap()
                    .starts_with("2030-05-06T07:")
            );
        }
        // The records are exactly the generator's, whatever the arrival order.
        let mut expected: Vec<String> = Generator::new(
            77,
            GeneratorOptions {
                accounts: options.accounts.clone(),
                regions: options.regions.clone(),
                start_time: options.start_time.unwrap(),
                events_per_second: UNLIMITED_EVENT_TIME_RATE,
            },
        )
        .take(1050)
        .collect();
        sent.sort();
        expected.sort();
        assert_eq!(sent, expected);
    }

    #[tokio::test]
    async fn test_loadgen_default_count_and_random_seed() {
        let server = TestServer::start(answer_like_cairn).await;
        let client = client_for(&server);
        let options = LoadgenOptions {
            batch_size: 1000,
            concurrency: 8,
            ..LoadgenOptions::default()
        };
        let summary = loadgen(&client, &options, &crate::NoProgress)
            .await
            .unwrap();
        assert_eq!(summary.sent, DEFAULT_LOADGEN_COUNT);
        assert_eq!(summary.batches, 10);
        let other = loadgen(&client, &options, &crate::NoProgress)
            .await
            .unwrap();
        assert_ne!(summary.seed, other.seed);
    }

    #[tokio::test]
    async fn test_loadgen_rate_limit_paces_batches() {
        let server = TestServer::start(answer_like_cairn).await;
        let client = client_for(&server);
        // 5 batches of 20 at 500 per second: batches leave at 0, 40, 80, 120, 160 ms.
        let options = LoadgenOptions {
            count: Some(100),
            rate: Some(500.0),
            batch_size: 20,
            seed: Some(1),
            ..LoadgenOptions::default()
        };
        let summary = loadgen(&client, &options, &crate::NoProgress)
            .await
            .unwrap();
        assert_eq!(summary.sent, 100);
        assert!(
            summary.elapsed >= Duration::from_millis(160),
            "{:?}",
            summary.elapsed
        );
        assert!(
            summary.elapsed < Duration::from_secs(5),
            "{:?}",
            summary.elapsed
        );
    }

    #[tokio::test]
    async fn test_loadgen_duration_bounds_the_run() {
        let server = TestServer::start(answer_like_cairn).await;
        let client = client_for(&server);
        let options = LoadgenOptions {
            duration: Some(Duration::from_millis(300)),
            rate: Some(200.0),
            batch_size: 10,
            seed: Some(2),
            ..LoadgenOptions::default()
        };
        let summary = loadgen(&client, &options, &crate::NoProgress)
            .await
            .unwrap();
        // 300 ms at 200/s is 60 records: batches due at 0, 50, ..., 250 ms
        // (a loaded machine may reach the last one after the deadline).
        assert!((40..=60).contains(&summary.sent), "{}", summary.sent);
        assert_eq!(summary.sent % 10, 0);
        assert!(
            summary.elapsed < Duration::from_secs(3),
            "{:?}",
            summary.elapsed
        );
    }

    #[tokio::test]
    async fn test_loadgen_counts_refusals_by_code() {
        let server = TestServer::start(|_, request| {
            let failed: Vec<String> = (0..records_in(&request.body).len())
                .map(|i| {
                    format!(r#"{{"index":{i},"errorCode":"InvalidRecipient","errorMessage":"no"}}"#)
                })
                .collect();
            Reply::json(
                200,
                &format!(r#"{{"accepted":0,"failed":[{}]}}"#, failed.join(",")),
            )
        })
        .await;
        let client = client_for(&server);
        let options = LoadgenOptions {
            count: Some(30),
            batch_size: 7,
            seed: Some(3),
            ..LoadgenOptions::default()
        };
        let summary = loadgen(&client, &options, &crate::NoProgress)
            .await
            .unwrap();
        assert_eq!(
            (summary.sent, summary.accepted, summary.failed),
            (30, 0, 30)
        );
        assert_eq!(summary.failures_by_code["InvalidRecipient"], 30);
        assert_eq!(summary.batches, 5);
    }

    #[tokio::test]
    async fn test_loadgen_options_are_validated() {
        let client = IngestClient::new(config_for("http://127.0.0.1:9")).unwrap();
        let bad = [
            LoadgenOptions {
                batch_size: 0,
                ..LoadgenOptions::default()
            },
            LoadgenOptions {
                rate: Some(0.0),
                ..LoadgenOptions::default()
            },
            LoadgenOptions {
                rate: Some(f64::INFINITY),
                ..LoadgenOptions::default()
            },
            LoadgenOptions {
                accounts: vec!["12345".into()],
                ..LoadgenOptions::default()
            },
            LoadgenOptions {
                regions: vec![],
                ..LoadgenOptions::default()
            },
            LoadgenOptions {
                duration: Some(Duration::ZERO),
                ..LoadgenOptions::default()
            },
        ];
        for options in bad {
            let err = loadgen(&client, &options, &crate::NoProgress)
                .await
                .unwrap_err();
            assert!(matches!(err, Error::InvalidOption { .. }), "{err:?}");
        }
    }

    #[test]
    fn test_latency_percentiles_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = LatencySummary::from_samples(&mut samples);
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p90, Duration::from_millis(90));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
        assert_eq!(
            LatencySummary::from_samples(&mut []),
            LatencySummary::default()
        );
        let mut one = [Duration::from_millis(7)];
        assert_eq!(
            LatencySummary::from_samples(&mut one).p99,
            Duration::from_millis(7)
        );
    }
}
