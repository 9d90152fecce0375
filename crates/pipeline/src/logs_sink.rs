//! The CloudWatch Logs feed of a trail: one sink per trail (consumer
//! `logs:<trail ARN>`), beside its delivery sink, sending every record the
//! trail selects to the trail's log group (`CloudWatchLogsLogGroupArn`),
//! stream `<account>_CloudTrail_<region>`, as CloudTrail does.
//!
//! The feed is independent of S3 delivery: a missing bucket does not stop
//! it, a missing log group does not stop the bucket. The store writes each
//! delivery's events and the samples the group's metric filters make of
//! them in one transaction, with the highest WAL position this trail (its
//! origin) stored in the group, so a WAL range fed again after a crash
//! stores nothing twice: no intent needs announcing.
//!
//! Deliveries are small and frequent (a quarter of a second after the first
//! record waiting), because alarms watch the metrics they feed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use cairn_monitor::{GroupKey, MetricKey, Monitor, NewLogEvent, TRAIL_STREAM_SUFFIX};
use cairn_wal::Lsn;

use crate::metrics::Metrics;
use crate::route::{Item, Routed};
use crate::runtime::{Accept, Applied, Report, Sink, SinkError};
use crate::sink::{Compiled, SinkContext, SinkState, compile};

/// How long the first waiting record waits for others before delivery.
const FLUSH_DELAY: Duration = Duration::from_millis(250);
/// Deliver early once this many bytes of records wait.
const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

/// The WAL consumer name of a trail's log-group feed.
pub fn consumer_name(trail_arn: &str) -> String {
    format!("logs:{trail_arn}")
}

/// Told which metrics got new samples, so alarms on them are evaluated at
/// once rather than at their next tick.
pub type SamplesArrived = Arc<dyn Fn(Vec<MetricKey>) + Send + Sync>;

/// A delivery: the WAL position it ends at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsIntent {
    /// Where the delivered records end.
    pub to: Lsn,
}

struct Pending {
    lsn: Lsn,
    stream: String,
    timestamp_ms: i64,
    json: Bytes,
}

/// One trail's log-group feed.
pub struct LogGroupSink {
    name: String,
    trail_arn: String,
    /// Events from this trail carry this origin in the store.
    origin: i64,
    ctx: SinkContext,
    monitor: Arc<Monitor>,
    samples_arrived: Option<SamplesArrived>,
    state: SinkState,
    compiled: Option<Compiled>,
    group: Option<GroupKey>,
    pending: Vec<Pending>,
    pending_bytes: usize,
    first_pending: Option<Instant>,
}

impl std::fmt::Debug for LogGroupSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogGroupSink")
            .field("trail", &self.trail_arn)
            .finish()
    }
}

/// The origin a trail's events carry: a stable hash of its ARN.
fn origin_of(trail_arn: &str) -> i64 {
    i64::from_le_bytes(xxhash_rust::xxh3::xxh3_64(trail_arn.as_bytes()).to_le_bytes())
}

impl LogGroupSink {
    /// A feed resuming with `state` (from its checkpoint).
    pub fn new(
        trail_arn: &str,
        ctx: SinkContext,
        monitor: Arc<Monitor>,
        samples_arrived: Option<SamplesArrived>,
        state: SinkState,
    ) -> Self {
        let mut sink = Self {
            name: consumer_name(trail_arn),
            trail_arn: trail_arn.to_owned(),
            origin: origin_of(trail_arn),
            ctx,
            monitor,
            samples_arrived,
            state: SinkState::default(),
            compiled: None,
            group: None,
            pending: Vec::new(),
            pending_bytes: 0,
            first_pending: None,
        };
        sink.configure(state);
        sink
    }

    fn configure(&mut self, state: SinkState) {
        self.group = state
            .config
            .as_ref()
            .and_then(|c| c.cloud_watch_logs_log_group_arn.as_deref())
            .and_then(GroupKey::from_arn);
        self.compiled = match (&self.group, &state.config) {
            (Some(_), Some(config)) => compile(config, &self.ctx.organization),
            _ => None,
        };
        self.state = state;
    }

    fn offer(&mut self, lsn: Lsn, entry: &crate::route::RecordEntry) -> Accept {
        if !self.state.logging || self.group.is_none() {
            return Accept::Skip;
        }
        let (Some(compiled), Some(view)) = (&self.compiled, entry.view()) else {
            return Accept::Skip;
        };
        if !compiled.selects(&view) {
            return Accept::Skip;
        }
        let (Some(account), Some(region)) = (
            view.recipient_account_id.as_deref(),
            view.aws_region.as_deref(),
        ) else {
            return Accept::Skip;
        };
        let timestamp_ms = entry
            .event_time
            .map_or(entry.ingest_time_ms as i64, |t| t.timestamp_millis());
        // A copy: the record's bytes are a slice of the buffer its WAL read
        // filled, which a sparse selection held for seconds would keep whole.
        let json = bytes::Bytes::copy_from_slice(entry.json());
        self.pending_bytes += json.len();
        self.pending.push(Pending {
            lsn,
            stream: format!("{account}{TRAIL_STREAM_SUFFIX}{region}"),
            timestamp_ms,
            json,
        });
        self.first_pending.get_or_insert_with(Instant::now);
        Accept::Buffered
    }

    fn clear(&mut self) {
        self.pending.clear();
        self.pending_bytes = 0;
        self.first_pending = None;
    }
}

impl Sink for LogGroupSink {
    type State = SinkState;
    type Intent = LogsIntent;
    // Stored events carry (origin, WAL position): a replayed range is
    // recognised by the store, so nothing needs announcing.
    const ANNOUNCES: bool = false;

    fn name(&self) -> &str {
        &self.name
    }

    fn accept(&mut self, entry: &Routed) -> Accept {
        match &entry.item {
            Item::Record(record) => self.offer(entry.lsn, record),
            Item::Control(control) if control.trail_arn == self.trail_arn => Accept::Barrier,
            Item::Control(_) | Item::Lost | Item::Undecodable(_) => Accept::Skip,
        }
    }

    fn apply(&mut self, entry: &Routed) -> Result<Applied, SinkError> {
        let Item::Control(control) = &entry.item else {
            return Ok(Applied::Continue);
        };
        match self.state.after(&control.change) {
            None => {
                self.clear();
                Ok(Applied::Finished)
            }
            Some(state) => {
                self.configure(state);
                Ok(Applied::Continue)
            }
        }
    }

    fn intent_end(intent: &LogsIntent) -> Lsn {
        intent.to
    }

    fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn full(&self) -> bool {
        self.pending_bytes >= MAX_PENDING_BYTES
    }

    fn flush_due(&self) -> Option<Instant> {
        self.first_pending.map(|t| t + FLUSH_DELAY)
    }

    fn plan(&mut self, to: Lsn) -> Result<LogsIntent, SinkError> {
        Ok(LogsIntent { to })
    }

    fn deliver(&mut self, _intent: &LogsIntent, _recovering: bool) -> Result<(), SinkError> {
        let Some(group) = self.group.clone() else {
            self.clear();
            return Ok(());
        };
        let now = Utc::now().timestamp_millis();
        // One transaction for the whole delivery, every stream (account and
        // region) in WAL order within it: the store's replay mark is then
        // the delivery's highest position.
        let mut names: Vec<&str> = self.pending.iter().map(|p| p.stream.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let per_stream: Vec<(&str, Vec<NewLogEvent<'_>>)> = names
            .into_iter()
            .map(|stream| {
                let events = self
                    .pending
                    .iter()
                    .filter(|p| p.stream == stream)
                    .map(|p| NewLogEvent {
                        timestamp: p.timestamp_ms,
                        // Ingest stored only valid UTF-8 JSON.
                        message: std::str::from_utf8(&p.json).unwrap_or_default(),
                        origin_seq: Some(p.lsn as i64),
                    })
                    .collect();
                (stream, events)
            })
            .collect();
        let streams: Vec<(&str, &[NewLogEvent<'_>])> =
            per_stream.iter().map(|(s, e)| (*s, e.as_slice())).collect();
        let outcome = self
            .monitor
            .append_streams(&group, &streams, Some(self.origin), true, now)
            .map_err(|e| match e {
                cairn_monitor::Error::NotFound(_) => SinkError::permanent(format!(
                    "ResourceNotFoundException: the log group {} does not exist",
                    group.arn()
                )),
                e if e.is_retriable() => SinkError::retriable(e.to_string()),
                e => SinkError::permanent(e.to_string()),
            })?;
        let stored = outcome.inserted as u64;
        let mut metrics = outcome.metrics;
        Metrics::add(&self.ctx.metrics.log_events_delivered, stored);
        self.clear();
        if !metrics.is_empty()
            && let Some(notify) = &self.samples_arrived
        {
            metrics.sort();
            metrics.dedup();
            notify(metrics);
        }
        Ok(())
    }

    fn state(&self) -> SinkState {
        self.state.clone()
    }

    fn report(&mut self, report: Report<'_>) {
        let now = Utc::now();
        let result = match report {
            Report::Delivered => self.ctx.meta.update_trail_status(&self.trail_arn, |s| {
                s.latest_cloud_watch_logs_delivery_time = Some(now);
                s.latest_cloud_watch_logs_delivery_error = None;
            }),
            Report::Failed { error, .. } if error.message.is_empty() => return,
            Report::Failed { error, .. } => {
                Metrics::add(&self.ctx.metrics.log_delivery_failures, 1);
                self.ctx.meta.update_trail_status(&self.trail_arn, |s| {
                    s.latest_cloud_watch_logs_delivery_error = Some(error.message.clone());
                })
            }
            Report::Quarantined { .. } => return,
        };
        if let Err(e) = result {
            tracing::debug!(trail = %self.trail_arn, error = %e, "cannot record log-group delivery status");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_the_trails_log_group_arn_names_the_group() {
        assert_eq!(
            GroupKey::from_arn("arn:aws:logs:us-east-1:123456789012:log-group:CloudTrail:*"),
            Some(GroupKey::new("123456789012", "us-east-1", "CloudTrail"))
        );
        assert_eq!(
            GroupKey::from_arn("arn:aws:logs:us-east-1:123456789012:log-group:a/b"),
            Some(GroupKey::new("123456789012", "us-east-1", "a/b"))
        );
        assert_eq!(GroupKey::from_arn("arn:aws:s3:::b"), None);
    }

    #[test]
    fn test_origins_differ_per_trail_and_stay_put() {
        let a = origin_of("arn:aws:cloudtrail:us-east-1:123456789012:trail/a");
        assert_eq!(
            a,
            origin_of("arn:aws:cloudtrail:us-east-1:123456789012:trail/a")
        );
        assert_ne!(
            a,
            origin_of("arn:aws:cloudtrail:us-east-1:123456789012:trail/b")
        );
    }
}
