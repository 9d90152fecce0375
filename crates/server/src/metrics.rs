//! `GET /metrics` in the Prometheus text format.

use std::fmt::Write;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use cairn_pipeline::Metrics;

use crate::state::AppState;

pub(crate) fn render(state: &AppState) -> Response {
    let m = state.pipeline.metrics();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "cairn_connections_open",
        "gauge",
        "Client connections open now.",
        state
            .connections
            .open
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    metric(
        "cairn_connections_refused_total",
        "counter",
        "Connections closed on arrival because limits.max_connections were open.",
        state
            .connections
            .refused
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    metric(
        "cairn_wal_failed",
        "gauge",
        "1 when the write-ahead log refuses appends after a failed write or fsync (restart needed).",
        u64::from(state.pipeline.health_problem().is_some()),
    );
    metric(
        "cairn_ingested_records_total",
        "counter",
        "Records accepted and durable.",
        Metrics::get(&m.ingested_records),
    );
    metric(
        "cairn_duplicate_records_total",
        "counter",
        "Records acknowledged as duplicates of stored ones.",
        Metrics::get(&m.duplicate_records),
    );
    metric(
        "cairn_rejected_records_total",
        "counter",
        "Records refused by ingest.",
        Metrics::get(&m.rejected_records),
    );
    metric(
        "cairn_throttled_requests_total",
        "counter",
        "Ingest requests refused at the WAL's disk bound.",
        Metrics::get(&m.throttled_requests),
    );
    metric(
        "cairn_delivered_records_total",
        "counter",
        "Records delivered in log files (per trail).",
        Metrics::get(&m.delivered_records),
    );
    metric(
        "cairn_delivered_files_total",
        "counter",
        "Log files delivered.",
        Metrics::get(&m.delivered_files),
    );
    metric(
        "cairn_quarantined_records_total",
        "counter",
        "Records set aside in the quarantine (undeliverable for good) since start-up; `cairn quarantine list` shows them.",
        state.pipeline.quarantined_records(),
    );
    metric(
        "cairn_quarantined_files_total",
        "counter",
        "Log files (or single records) set aside in the quarantine since start-up.",
        Metrics::get(&m.quarantined_files),
    );
    metric(
        "cairn_delivery_failures_total",
        "counter",
        "Failed log-file delivery attempts.",
        Metrics::get(&m.delivery_failures),
    );
    metric(
        "cairn_log_events_delivered_total",
        "counter",
        "Records stored in trails' CloudWatch Logs log groups (per trail).",
        Metrics::get(&m.log_events_delivered),
    );
    metric(
        "cairn_log_delivery_failures_total",
        "counter",
        "Failed attempts to store records in a trail's log group.",
        Metrics::get(&m.log_delivery_failures),
    );
    let reads = state.pipeline.router_reads();
    metric(
        "cairn_router_chunks_total",
        "counter",
        "Chunks of WAL records the router read and decoded once for every sink near the head.",
        reads.routed,
    );
    metric(
        "cairn_router_memory_chunks_total",
        "counter",
        "Chunks the router took from records just committed, without reading the WAL back.",
        reads.from_memory,
    );
    metric(
        "cairn_sink_own_reads_total",
        "counter",
        "Chunks a sink behind the router's window read and decoded on its own.",
        reads.own_reads,
    );
    let n = &state.monitoring.counters;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    metric(
        "cairn_notifications_pending",
        "gauge",
        "SNS notifications waiting in the outbox (delivery or retry).",
        get(&n.pending),
    );
    metric(
        "cairn_notifications_delivered_total",
        "counter",
        "SNS notifications an endpoint took.",
        get(&n.delivered),
    );
    metric(
        "cairn_notification_failures_total",
        "counter",
        "Failed SNS delivery attempts (each is retried by the delivery policy).",
        get(&n.failed_attempts),
    );
    metric(
        "cairn_notifications_dropped_total",
        "counter",
        "SNS notifications dropped after their delivery policy's retries ran out.",
        get(&n.dropped),
    );
    metric(
        "cairn_alarm_state_changes_total",
        "counter",
        "Alarm state changes recorded.",
        get(&n.state_changes),
    );
    metric(
        "cairn_delivered_digests_total",
        "counter",
        "Digest files delivered.",
        Metrics::get(&m.delivered_digests),
    );
    metric(
        "cairn_digest_failures_total",
        "counter",
        "Failed digest delivery attempts.",
        Metrics::get(&m.digest_failures),
    );
    metric(
        "cairn_wal_bytes",
        "gauge",
        "Bytes the write-ahead log uses on disk.",
        state.pipeline.wal_disk_bytes(),
    );
    metric(
        "cairn_dedup_entries",
        "gauge",
        "eventIDs remembered for deduplication.",
        state.pipeline.dedup_entries() as u64,
    );
    let lag = state.pipeline.delivery_lag_ms() as f64 / 1000.0;
    let _ = writeln!(
        out,
        "# HELP cairn_delivery_lag_seconds Age of the oldest record waiting for delivery.\n# TYPE cairn_delivery_lag_seconds gauge\ncairn_delivery_lag_seconds {lag}"
    );
    let mut response = (StatusCode::OK, out).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
