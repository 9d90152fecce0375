//! Counters the server exposes on `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Pipeline counters (monotonic unless noted).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Records accepted and durable.
    pub ingested_records: AtomicU64,
    /// Records acknowledged as duplicates of earlier ones.
    pub duplicate_records: AtomicU64,
    /// Records refused (validation, recipient).
    pub rejected_records: AtomicU64,
    /// Requests refused because the WAL was at its disk bound.
    pub throttled_requests: AtomicU64,
    /// Records delivered in log files (a record delivered to two trails counts twice).
    pub delivered_records: AtomicU64,
    /// Log files delivered.
    pub delivered_files: AtomicU64,
    /// Failed delivery attempts.
    pub delivery_failures: AtomicU64,
    /// Parts of deliveries (log files, records) set aside in the quarantine.
    pub quarantined_files: AtomicU64,
    /// Digest files delivered.
    pub delivered_digests: AtomicU64,
    /// Failed digest delivery attempts.
    pub digest_failures: AtomicU64,
    /// Records stored in trails' CloudWatch Logs log groups.
    pub log_events_delivered: AtomicU64,
    /// Failed attempts to store records in a trail's log group.
    pub log_delivery_failures: AtomicU64,
    /// Gauge: milliseconds since the oldest record still waiting in a trail's batch was ingested.
    pub delivery_lag_ms: AtomicU64,
}

impl Metrics {
    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
