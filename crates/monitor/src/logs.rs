//! CloudWatch Logs: log groups, log streams, log events, metric filters.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cairn_filter::{FieldRef, FilterPattern, LogEvent, MetricValue, Projection};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::metrics::{MetricKey, insert_samples};
use crate::{Error, Monitor, Result};

/// The tail of the log stream CloudTrail writes a trail's events to:
/// `<account>_CloudTrail_<region>`.
pub const TRAIL_STREAM_SUFFIX: &str = "_CloudTrail_";

/// Metric filters one log group may have (CloudWatch Logs' quota).
const MAX_METRIC_FILTERS_PER_GROUP: i64 = 100;

/// Tags one log group may have.
const MAX_TAGS: usize = 50;

/// How many stored events one FilterLogEvents call looks at before it
/// answers with what it found and a token to go on (AWS answers a
/// long search the same way, possibly with no events).
const FILTER_SCAN_BUDGET: usize = 100_000;

/// A log group's identity: account, region, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// The owning account.
    pub account: String,
    /// The region it lives in.
    pub region: String,
    /// Its name.
    pub name: String,
}

impl GroupKey {
    /// A key.
    pub fn new(account: &str, region: &str, name: &str) -> Self {
        Self {
            account: account.to_owned(),
            region: region.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The group a log group ARN names,
    /// `arn:<partition>:logs:<region>:<account>:log-group:<name>`, with an
    /// optional `:*` (CloudTrail's `CloudWatchLogsLogGroupArn` has it).
    pub fn from_arn(arn: &str) -> Option<Self> {
        let rest = arn.strip_prefix("arn:")?;
        let mut parts = rest.splitn(6, ':');
        let (_partition, service, region, account, resource, name) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if service != "logs" || resource != "log-group" {
            return None;
        }
        let name = name.strip_suffix(":*").unwrap_or(name);
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        (!name.is_empty() && !region.is_empty() && account_ok)
            .then(|| Self::new(account, region, name))
    }

    /// `arn:aws:logs:<region>:<account>:log-group:<name>` (the `logGroupArn`
    /// member; the `arn` member adds `:*`).
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:logs:{}:{}:log-group:{}",
            self.region, self.account, self.name
        )
    }
}

/// A log group as DescribeLogGroups reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogGroup {
    /// Its identity.
    pub key: GroupKey,
    /// Creation time, milliseconds since the epoch.
    pub created_ms: i64,
    /// How long events are kept, if bounded.
    pub retention_days: Option<i32>,
    /// The KMS key given at creation.
    pub kms_key_id: Option<String>,
    /// `STANDARD`, `INFREQUENT_ACCESS` or `DELIVERY`.
    pub log_group_class: String,
    /// Bytes of event messages stored.
    pub stored_bytes: i64,
    /// How many metric filters it has.
    pub metric_filter_count: i64,
}

/// A log stream as DescribeLogStreams reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogStream {
    /// Its name.
    pub name: String,
    /// Creation time (ms).
    pub created_ms: i64,
    /// The oldest event's timestamp.
    pub first_event_ms: Option<i64>,
    /// The newest event's timestamp.
    pub last_event_ms: Option<i64>,
    /// When an event was last put.
    pub last_ingestion_ms: Option<i64>,
    /// Bytes of event messages stored.
    pub stored_bytes: i64,
}

/// How DescribeLogStreams orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOrder {
    /// By name.
    LogStreamName,
    /// By the newest event's timestamp.
    LastEventTime,
}

/// An event to store.
#[derive(Debug, Clone, Copy)]
pub struct NewLogEvent<'a> {
    /// Its timestamp (ms).
    pub timestamp: i64,
    /// Its message.
    pub message: &'a str,
    /// Its position in its origin's stream (a WAL position), when it has
    /// an origin: positions grow batch after batch, so one at or below the
    /// highest stored is a replay and is not stored again.
    pub origin_seq: Option<i64>,
}

/// What an append stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Events stored (replays of stored events excluded).
    pub inserted: usize,
    /// Metric samples the group's metric filters produced.
    pub samples: usize,
    /// The metrics those samples are of.
    pub metrics: Vec<MetricKey>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEventRecord {
    /// Its id (unique in the store; FilterLogEvents' `eventId`).
    pub id: i64,
    /// Its stream.
    pub stream: String,
    /// Its timestamp (ms).
    pub timestamp: i64,
    /// When it was stored (ms).
    pub ingestion_ms: i64,
    /// Its message.
    pub message: String,
}

/// A page of events and where to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    /// The events, oldest first.
    pub events: Vec<LogEventRecord>,
    /// The position after the last event looked at (timestamp, id), to go
    /// on from; `None` when everything in range was looked at.
    pub next: Option<(i64, i64)>,
    /// The position of the first event returned (for a backward token).
    pub first: Option<(i64, i64)>,
}

/// A metric filter's transformation (the `MetricTransformation` shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricTransformation {
    /// The metric's name.
    pub metric_name: String,
    /// Its namespace.
    pub metric_namespace: String,
    /// A number, or a field of the pattern (`$.x`, `$name`).
    pub metric_value: String,
    /// The value for a minute in which events arrived and none matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<f64>,
    /// Dimension name → field of the pattern.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
    /// The unit of the samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// A stored metric filter.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFilter {
    /// Its log group's name.
    pub log_group_name: String,
    /// Its name.
    pub name: String,
    /// Its pattern as given.
    pub pattern: String,
    /// Its transformations (one, as AWS allows).
    pub transformations: Vec<MetricTransformation>,
    /// Creation time (ms).
    pub created_ms: i64,
}

/// A metric filter ready to match: the pattern compiled once.
#[derive(Debug)]
pub(crate) struct CompiledFilter {
    pattern: FilterPattern,
    transforms: Vec<CompiledTransformation>,
}

#[derive(Debug)]
struct CompiledTransformation {
    metric: MetricKey,
    value: MetricValue,
    default_value: Option<f64>,
    dimensions: Vec<(String, FieldRef)>,
    unit: Option<String>,
}

impl CompiledFilter {
    /// Compiles a stored filter; the service checked it when it was put.
    fn new(group: &GroupKey, filter: &MetricFilter) -> Result<Self> {
        let invalid = |e: cairn_filter::PatternError| Error::Corrupt {
            what: format!(
                "metric filter {:?} of log group {:?}",
                filter.name, group.name
            ),
            reason: e.to_string(),
        };
        let pattern = FilterPattern::parse(&filter.pattern).map_err(invalid)?;
        let transforms = filter
            .transformations
            .iter()
            .map(|t| {
                Ok(CompiledTransformation {
                    metric: MetricKey {
                        account: group.account.clone(),
                        region: group.region.clone(),
                        namespace: t.metric_namespace.clone(),
                        name: t.metric_name.clone(),
                        dimensions: Vec::new(),
                    },
                    value: MetricValue::parse(&t.metric_value, &pattern).map_err(invalid)?,
                    default_value: t.default_value,
                    dimensions: t
                        .dimensions
                        .iter()
                        .map(|(name, field)| Ok((name.clone(), pattern.field_ref(field)?)))
                        .collect::<Result<_, cairn_filter::PatternError>>()
                        .map_err(invalid)?,
                    unit: t.unit.clone(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            pattern,
            transforms,
        })
    }
}

/// Checks a metric filter the way PutMetricFilter must: the pattern parses,
/// each `metricValue` and dimension names a number or a field the pattern
/// has. The error's text is the `InvalidParameterException` message.
pub fn check_metric_filter(
    pattern: &str,
    transformations: &[MetricTransformation],
) -> std::result::Result<(), String> {
    let group = GroupKey::new("", "", "");
    let filter = MetricFilter {
        log_group_name: String::new(),
        name: String::new(),
        pattern: pattern.to_owned(),
        transformations: transformations.to_vec(),
        created_ms: 0,
    };
    CompiledFilter::new(&group, &filter)
        .map(|_| ())
        .map_err(|e| match e {
            Error::Corrupt { reason, .. } => reason,
            other => other.to_string(),
        })
}

fn group_id(tx: &rusqlite::Connection, key: &GroupKey) -> Result<i64> {
    tx.prepare_cached("SELECT id FROM log_groups WHERE account = ?1 AND region = ?2 AND name = ?3")?
        .query_row(params![key.account, key.region, key.name], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::NotFound("The specified log group does not exist.".into()))
}

fn stream_id(tx: &rusqlite::Connection, group: i64, name: &str) -> Result<Option<i64>> {
    Ok(tx
        .prepare_cached("SELECT id FROM log_streams WHERE group_id = ?1 AND name = ?2")?
        .query_row(params![group, name], |r| r.get(0))
        .optional()?)
}

fn decode_tags(text: &str, group: &str) -> Result<BTreeMap<String, String>> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt {
        what: format!("the tags of log group {group:?}"),
        reason: e.to_string(),
    })
}

fn read_group(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogGroup> {
    Ok(LogGroup {
        key: GroupKey {
            account: r.get(0)?,
            region: r.get(1)?,
            name: r.get(2)?,
        },
        created_ms: r.get(3)?,
        retention_days: r.get(4)?,
        kms_key_id: r.get(5)?,
        log_group_class: r.get(6)?,
        stored_bytes: r.get(7)?,
        metric_filter_count: r.get(8)?,
    })
}

const GROUP_COLUMNS: &str = "account, region, name, created_ms, retention_days, kms_key_id, log_group_class, stored_bytes, \
     (SELECT COUNT(*) FROM metric_filters f WHERE f.group_id = log_groups.id)";

impl Monitor {
    // -----------------------------------------------------------------
    // Log groups

    /// Creates a log group; [`Error::AlreadyExists`] if the name is taken.
    pub fn create_log_group(
        &self,
        key: &GroupKey,
        created_ms: i64,
        kms_key_id: Option<&str>,
        log_group_class: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        let tags = serde_json::to_string(tags).map_err(|e| Error::Invalid(e.to_string()))?;
        let changed = self.conn().execute(
            "INSERT OR IGNORE INTO log_groups (account, region, name, created_ms, kms_key_id, log_group_class, tags) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![key.account, key.region, key.name, created_ms, kms_key_id, log_group_class, tags],
        )?;
        if changed == 0 {
            return Err(Error::AlreadyExists(
                "The specified log group already exists".into(),
            ));
        }
        Ok(())
    }

    /// A log group.
    pub fn log_group(&self, key: &GroupKey) -> Result<Option<LogGroup>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {GROUP_COLUMNS} FROM log_groups WHERE account = ?1 AND region = ?2 AND name = ?3"
        );
        Ok(conn
            .prepare_cached(&sql)?
            .query_row(params![key.account, key.region, key.name], read_group)
            .optional()?)
    }

    /// Log groups of an account in a region, by name: those whose name
    /// starts with `prefix`, or contains `pattern` (case-insensitively), after
    /// the name `after` (paging), at most `limit`. The second value is the
    /// name to go on after, when more remain.
    pub fn describe_log_groups(
        &self,
        account: &str,
        region: &str,
        prefix: Option<&str>,
        pattern: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<LogGroup>, Option<String>)> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {GROUP_COLUMNS} FROM log_groups WHERE account = ?1 AND region = ?2 AND name > ?3 ORDER BY name"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![account, region, after.unwrap_or("")], read_group)?;
        let pattern = pattern.map(str::to_lowercase);
        let mut out = Vec::new();
        for row in rows {
            let group = row?;
            if prefix.is_some_and(|p| !group.key.name.starts_with(p))
                || pattern
                    .as_deref()
                    .is_some_and(|p| !group.key.name.to_lowercase().contains(p))
            {
                continue;
            }
            if out.len() == limit {
                let next = out.last().map(|g: &LogGroup| g.key.name.clone());
                return Ok((out, next));
            }
            out.push(group);
        }
        Ok((out, None))
    }

    /// Deletes a log group with its streams, events and metric filters.
    pub fn delete_log_group(&self, key: &GroupKey) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id = group_id(&tx, key)?;
        tx.execute("DELETE FROM log_events WHERE group_id = ?1", [id])?;
        // Group ids may be reused: a new group must not inherit the marks.
        tx.execute("DELETE FROM feed_marks WHERE group_id = ?1", [id])?;
        tx.execute("DELETE FROM log_groups WHERE id = ?1", [id])?;
        tx.commit()?;
        self.forget_filters(id);
        Ok(())
    }

    /// Sets (or with `None` removes) a group's retention.
    pub fn set_retention(&self, key: &GroupKey, days: Option<i32>) -> Result<()> {
        let conn = self.conn();
        let id = group_id(&conn, key)?;
        conn.execute(
            "UPDATE log_groups SET retention_days = ?1 WHERE id = ?2",
            params![days, id],
        )?;
        Ok(())
    }

    /// A group's tags.
    pub fn log_group_tags(&self, key: &GroupKey) -> Result<BTreeMap<String, String>> {
        let conn = self.conn();
        let id = group_id(&conn, key)?;
        let text: String =
            conn.query_row("SELECT tags FROM log_groups WHERE id = ?1", [id], |r| {
                r.get(0)
            })?;
        decode_tags(&text, &key.name)
    }

    /// Adds tags to a group (replacing values of keys it has) and removes
    /// the keys in `remove`; [`Error::LimitExceeded`] past 50 tags.
    pub fn change_log_group_tags(
        &self,
        key: &GroupKey,
        add: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id = group_id(&tx, key)?;
        let text: String =
            tx.query_row("SELECT tags FROM log_groups WHERE id = ?1", [id], |r| {
                r.get(0)
            })?;
        let mut tags = decode_tags(&text, &key.name)?;
        tags.extend(add.iter().map(|(k, v)| (k.clone(), v.clone())));
        for k in remove {
            tags.remove(k);
        }
        if tags.len() > MAX_TAGS {
            return Err(Error::LimitExceeded(format!(
                "A log group can have at most {MAX_TAGS} tags."
            )));
        }
        let text = serde_json::to_string(&tags).map_err(|e| Error::Invalid(e.to_string()))?;
        tx.execute(
            "UPDATE log_groups SET tags = ?1 WHERE id = ?2",
            params![text, id],
        )?;
        tx.commit()?;
        Ok(())
    }

    // -----------------------------------------------------------------
    // Log streams

    /// Creates a log stream.
    pub fn create_log_stream(&self, key: &GroupKey, name: &str, created_ms: i64) -> Result<()> {
        let conn = self.conn();
        let id = group_id(&conn, key)?;
        let changed = conn.execute(
            "INSERT OR IGNORE INTO log_streams (group_id, name, created_ms) VALUES (?1, ?2, ?3)",
            params![id, name, created_ms],
        )?;
        if changed == 0 {
            return Err(Error::AlreadyExists(
                "The specified log stream already exists".into(),
            ));
        }
        Ok(())
    }

    /// Deletes a log stream and its events.
    pub fn delete_log_stream(&self, key: &GroupKey, name: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let group = group_id(&tx, key)?;
        let id = stream_id(&tx, group, name)?
            .ok_or_else(|| Error::NotFound("The specified log stream does not exist.".into()))?;
        let bytes: i64 = tx.query_row(
            "SELECT stored_bytes FROM log_streams WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?;
        tx.execute("DELETE FROM log_events WHERE stream_id = ?1", [id])?;
        tx.execute("DELETE FROM log_streams WHERE id = ?1", [id])?;
        tx.execute(
            "UPDATE log_groups SET stored_bytes = MAX(0, stored_bytes - ?1) WHERE id = ?2",
            params![bytes, group],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A group's streams, those whose name starts with `prefix`, in `order`,
    /// skipping `offset`, at most `limit`; the second value is the offset to
    /// go on from when more remain.
    pub fn describe_log_streams(
        &self,
        key: &GroupKey,
        prefix: Option<&str>,
        order: StreamOrder,
        descending: bool,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<LogStream>, Option<usize>)> {
        let conn = self.conn();
        let group = group_id(&conn, key)?;
        let order_by = match (order, descending) {
            (StreamOrder::LogStreamName, false) => "name ASC",
            (StreamOrder::LogStreamName, true) => "name DESC",
            (StreamOrder::LastEventTime, false) => "COALESCE(last_event_ms, 0) ASC, name ASC",
            (StreamOrder::LastEventTime, true) => "COALESCE(last_event_ms, 0) DESC, name DESC",
        };
        let sql = format!(
            "SELECT name, created_ms, first_event_ms, last_event_ms, last_ingestion_ms, stored_bytes \
             FROM log_streams WHERE group_id = ?1 AND substr(name, 1, length(?2)) = ?2 \
             ORDER BY {order_by} LIMIT ?3 OFFSET ?4"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(
            params![group, prefix.unwrap_or(""), limit as i64 + 1, offset as i64],
            |r| {
                Ok(LogStream {
                    name: r.get(0)?,
                    created_ms: r.get(1)?,
                    first_event_ms: r.get(2)?,
                    last_event_ms: r.get(3)?,
                    last_ingestion_ms: r.get(4)?,
                    stored_bytes: r.get(5)?,
                })
            },
        )?;
        let mut out = rows.collect::<Result<Vec<_>, _>>()?;
        let next = (out.len() > limit).then(|| {
            out.truncate(limit);
            offset + limit
        });
        Ok((out, next))
    }

    // -----------------------------------------------------------------
    // Events

    /// Stores events in a stream of a group; see [`Monitor::append_streams`].
    pub fn append(
        &self,
        key: &GroupKey,
        stream: &str,
        events: &[NewLogEvent<'_>],
        origin: Option<i64>,
        create_stream: bool,
        now_ms: i64,
    ) -> Result<AppendOutcome> {
        self.append_streams(key, &[(stream, events)], origin, create_stream, now_ms)
    }

    /// Stores events in streams of a group and, in the same transaction, the
    /// metric samples the group's metric filters make of them. With
    /// `origin` (a feed: a trail's WAL consumer), events are delivered in
    /// `origin_seq` order, batch after batch, so the store keeps the
    /// highest `origin_seq` it holds per (origin, group): an event at or
    /// below it is a replay and is skipped. With `create_stream`, a missing
    /// stream is created (CloudTrail's feed); without, it is
    /// [`Error::NotFound`].
    pub fn append_streams(
        &self,
        key: &GroupKey,
        streams: &[(&str, &[NewLogEvent<'_>])],
        origin: Option<i64>,
        create_stream: bool,
        now_ms: i64,
    ) -> Result<AppendOutcome> {
        let filters = self.compiled_filters(key)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let group = group_id(&tx, key)?;
        let stored_up_to: Option<i64> = match origin {
            None => None,
            Some(origin) => tx
                .prepare_cached("SELECT seq FROM feed_marks WHERE origin = ?1 AND group_id = ?2")?
                .query_row(params![origin, group], |r| r.get(0))
                .optional()?,
        };
        let mut outcome = AppendOutcome::default();
        let mut highest = stored_up_to;
        // Samples per metric, then per timestamp; minutes with events and
        // no match, per transformation with a default value.
        let mut samples: SamplesByMetric = BTreeMap::new();
        let mut minutes_seen: Vec<i64> = Vec::new();
        let mut minutes_matched: Vec<Vec<i64>> = vec![Vec::new(); transform_count(&filters)];
        for (stream, events) in streams {
            let stream_id = match stream_id(&tx, group, stream)? {
                Some(id) => id,
                None if create_stream => {
                    tx.execute(
                        "INSERT INTO log_streams (group_id, name, created_ms) VALUES (?1, ?2, ?3)",
                        params![group, stream, now_ms],
                    )?;
                    tx.last_insert_rowid()
                }
                None => {
                    return Err(Error::NotFound(
                        "The specified log stream does not exist.".into(),
                    ));
                }
            };
            let mut inserted = 0usize;
            let mut bytes = 0i64;
            let (mut first, mut last) = (i64::MAX, i64::MIN);
            let mut insert = tx.prepare_cached(
                "INSERT INTO log_events (group_id, stream_id, timestamp, ingestion_ms, message) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for event in *events {
                if origin.is_some() {
                    let seq = event.origin_seq.unwrap_or(i64::MIN);
                    if stored_up_to.is_some_and(|up_to| seq <= up_to) {
                        continue;
                    }
                    highest = Some(highest.map_or(seq, |h| h.max(seq)));
                }
                insert.execute(params![
                    group,
                    stream_id,
                    event.timestamp,
                    now_ms,
                    event.message
                ])?;
                inserted += 1;
                bytes += event.message.len() as i64;
                first = first.min(event.timestamp);
                last = last.max(event.timestamp);
                if filters.is_empty() {
                    continue;
                }
                let minute = event.timestamp - event.timestamp.rem_euclid(60_000);
                minutes_seen.push(minute);
                // One parse of the message for every filter of the group,
                // of only the members they read.
                let log_event = filters.projection.event(event.message);
                let mut index = 0;
                for filter in filters.iter() {
                    for t in &filter.transforms {
                        if let Some((metric, value)) = sample_of(filter, t, &log_event) {
                            samples
                                .entry((metric, t.unit.clone()))
                                .or_default()
                                .push((event.timestamp, value));
                            minutes_matched[index].push(minute);
                        }
                        index += 1;
                    }
                }
            }
            drop(insert);
            if inserted > 0 {
                outcome.inserted += inserted;
                tx.execute(
                    "UPDATE log_streams SET \
                       first_event_ms = MIN(COALESCE(first_event_ms, ?1), ?1), \
                       last_event_ms = MAX(COALESCE(last_event_ms, ?2), ?2), \
                       last_ingestion_ms = ?3, stored_bytes = stored_bytes + ?4 \
                     WHERE id = ?5",
                    params![first, last, now_ms, bytes, stream_id],
                )?;
                tx.execute(
                    "UPDATE log_groups SET stored_bytes = stored_bytes + ?1 WHERE id = ?2",
                    params![bytes, group],
                )?;
            }
        }
        // A default value stands for each minute that had events and no match.
        minutes_seen.sort_unstable();
        minutes_seen.dedup();
        let mut index = 0;
        for filter in filters.iter() {
            for t in &filter.transforms {
                if let Some(default) = t.default_value {
                    let matched = &mut minutes_matched[index];
                    matched.sort_unstable();
                    for minute in &minutes_seen {
                        if matched.binary_search(minute).is_err() {
                            samples
                                .entry((t.metric.clone(), t.unit.clone()))
                                .or_default()
                                .push((*minute, default));
                        }
                    }
                }
                index += 1;
            }
        }
        for ((metric, unit), points) in &samples {
            outcome.samples += insert_samples(&tx, metric, unit.as_deref(), points)?;
            outcome.metrics.push(metric.clone());
        }
        if let (Some(origin), Some(seq)) = (origin, highest)
            && highest != stored_up_to
        {
            tx.execute(
                "INSERT INTO feed_marks (origin, group_id, seq) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (origin, group_id) DO UPDATE SET seq = ?3",
                params![origin, group, seq],
            )?;
        }
        tx.commit()?;
        Ok(outcome)
    }

    /// Events of one stream between `start` and `end` (ms, inclusive start,
    /// exclusive end), at most `limit`: from `after` forward, or from
    /// `before` backward, or (neither) the first events when `from_head`,
    /// else the last ones. Events come oldest first.
    #[allow(clippy::too_many_arguments)]
    pub fn get_log_events(
        &self,
        key: &GroupKey,
        stream: &str,
        start: Option<i64>,
        end: Option<i64>,
        after: Option<(i64, i64)>,
        before: Option<(i64, i64)>,
        from_head: bool,
        limit: usize,
    ) -> Result<EventPage> {
        let conn = self.conn();
        let group = group_id(&conn, key)?;
        let stream_id = stream_id(&conn, group, stream)?
            .ok_or_else(|| Error::NotFound("The specified log stream does not exist.".into()))?;
        let (lo_ts, lo_id) = after.unwrap_or((start.unwrap_or(i64::MIN), i64::MIN));
        let (hi_ts, hi_id) = before.unwrap_or((end.unwrap_or(i64::MAX), i64::MIN));
        let forward = after.is_some() || (before.is_none() && from_head);
        let sql = format!(
            "SELECT id, timestamp, ingestion_ms, message FROM log_events \
             WHERE stream_id = ?1 AND (timestamp, id) > (?2, ?3) AND (timestamp, id) < (?4, ?5) \
               AND timestamp >= ?6 AND timestamp < ?7 \
             ORDER BY timestamp {dir}, id {dir} LIMIT ?8",
            dir = if forward { "ASC" } else { "DESC" }
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![
                stream_id,
                lo_ts,
                lo_id,
                hi_ts,
                hi_id,
                start.unwrap_or(i64::MIN),
                end.unwrap_or(i64::MAX),
                limit as i64
            ],
            |r| {
                Ok(LogEventRecord {
                    id: r.get(0)?,
                    stream: stream.to_owned(),
                    timestamp: r.get(1)?,
                    ingestion_ms: r.get(2)?,
                    message: r.get(3)?,
                })
            },
        )?;
        let mut events = rows.collect::<Result<Vec<_>, _>>()?;
        if !forward {
            events.reverse();
        }
        Ok(EventPage {
            next: events.last().map(|e| (e.timestamp, e.id)),
            first: events.first().map(|e| (e.timestamp, e.id)),
            events,
        })
    }

    /// Events of a group (of the named streams, or those whose name starts
    /// with `stream_prefix`) between `start` and `end` that `pattern`
    /// matches, oldest first, from after `after`, at most `limit`. Looks at a
    /// bounded number of events per call: `next` says where to go on.
    #[allow(clippy::too_many_arguments)]
    pub fn filter_log_events(
        &self,
        key: &GroupKey,
        streams: Option<&[String]>,
        stream_prefix: Option<&str>,
        start: Option<i64>,
        end: Option<i64>,
        pattern: Option<&FilterPattern>,
        after: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<EventPage> {
        let conn = self.conn();
        let group = group_id(&conn, key)?;
        let mut names: HashMap<i64, String> = HashMap::new();
        {
            let mut stmt =
                conn.prepare_cached("SELECT id, name FROM log_streams WHERE group_id = ?1")?;
            for row in stmt.query_map([group], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })? {
                let (id, name) = row?;
                let wanted = streams.is_none_or(|s| s.contains(&name))
                    && stream_prefix.is_none_or(|p| name.starts_with(p));
                if wanted {
                    names.insert(id, name);
                }
            }
        }
        let (lo_ts, lo_id) = after.unwrap_or((start.unwrap_or(i64::MIN), i64::MIN));
        let mut stmt = conn.prepare_cached(
            "SELECT id, stream_id, timestamp, ingestion_ms, message FROM log_events \
             WHERE group_id = ?1 AND (timestamp, id) > (?2, ?3) AND timestamp >= ?4 AND timestamp < ?5 \
             ORDER BY timestamp, id",
        )?;
        let mut rows = stmt.query(params![
            group,
            lo_ts,
            lo_id,
            start.unwrap_or(i64::MIN),
            end.unwrap_or(i64::MAX)
        ])?;
        let mut events = Vec::new();
        let mut scanned = 0usize;
        let mut last = None;
        while let Some(row) = rows.next()? {
            let (id, stream, timestamp): (i64, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
            last = Some((timestamp, id));
            scanned += 1;
            if let Some(name) = names.get(&stream) {
                let message: String = row.get(4)?;
                if pattern.is_none_or(|p| p.matches_message(&message)) {
                    events.push(LogEventRecord {
                        id,
                        stream: name.clone(),
                        timestamp,
                        ingestion_ms: row.get(3)?,
                        message,
                    });
                    if events.len() == limit {
                        break;
                    }
                }
            }
            if scanned >= FILTER_SCAN_BUDGET {
                break;
            }
        }
        let more = rows.next()?.is_some();
        Ok(EventPage {
            first: events.first().map(|e| (e.timestamp, e.id)),
            next: if more { last } else { None },
            events,
        })
    }

    /// Removes events older than their group's retention, counted from
    /// `now_ms`; returns how many.
    pub fn expire_log_events(&self, now_ms: i64) -> Result<usize> {
        let conn = self.conn();
        let removed = conn.execute(
            "DELETE FROM log_events WHERE id IN ( \
               SELECT e.id FROM log_events e JOIN log_groups g ON g.id = e.group_id \
               WHERE g.retention_days IS NOT NULL AND e.timestamp < ?1 - g.retention_days * 86400000)",
            [now_ms],
        )?;
        Ok(removed)
    }

    // -----------------------------------------------------------------
    // Metric filters

    /// Creates or replaces a metric filter (checked: see
    /// [`check_metric_filter`]); [`Error::LimitExceeded`] past 100 per group.
    pub fn put_metric_filter(
        &self,
        key: &GroupKey,
        name: &str,
        pattern: &str,
        transformations: &[MetricTransformation],
        now_ms: i64,
    ) -> Result<()> {
        check_metric_filter(pattern, transformations).map_err(Error::Invalid)?;
        let text =
            serde_json::to_string(transformations).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let group = group_id(&tx, key)?;
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM metric_filters WHERE group_id = ?1 AND name = ?2",
                params![group, name],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !exists {
            let count: i64 = tx.query_row(
                "SELECT COUNT(*) FROM metric_filters WHERE group_id = ?1",
                [group],
                |r| r.get(0),
            )?;
            if count >= MAX_METRIC_FILTERS_PER_GROUP {
                return Err(Error::LimitExceeded("Resource limit exceeded.".into()));
            }
        }
        tx.execute(
            "INSERT INTO metric_filters (group_id, name, pattern, transformations, created_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (group_id, name) DO UPDATE SET pattern = ?3, transformations = ?4",
            params![group, name, pattern, text, now_ms],
        )?;
        tx.commit()?;
        self.forget_filters(group);
        Ok(())
    }

    /// Deletes a metric filter.
    pub fn delete_metric_filter(&self, key: &GroupKey, name: &str) -> Result<()> {
        let conn = self.conn();
        let group = group_id(&conn, key)?;
        let changed = conn.execute(
            "DELETE FROM metric_filters WHERE group_id = ?1 AND name = ?2",
            params![group, name],
        )?;
        drop(conn);
        if changed == 0 {
            return Err(Error::NotFound(
                "The specified metric filter does not exist.".into(),
            ));
        }
        self.forget_filters(group);
        Ok(())
    }

    /// Metric filters of an account in a region: of one group, or all;
    /// those whose name starts with `prefix`, or whose transformation is of
    /// the metric (`metric_name` in `metric_namespace`); ordered by group and
    /// name, skipping `offset`, at most `limit`; with the offset to go on
    /// from when more remain.
    #[allow(clippy::too_many_arguments)]
    pub fn describe_metric_filters(
        &self,
        account: &str,
        region: &str,
        group: Option<&str>,
        prefix: Option<&str>,
        metric: Option<(&str, &str)>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<MetricFilter>, Option<usize>)> {
        let conn = self.conn();
        if let Some(name) = group {
            group_id(&conn, &GroupKey::new(account, region, name))?;
        }
        let mut stmt = conn.prepare_cached(
            "SELECT g.name, f.name, f.pattern, f.transformations, f.created_ms \
             FROM metric_filters f JOIN log_groups g ON g.id = f.group_id \
             WHERE g.account = ?1 AND g.region = ?2 AND (?3 IS NULL OR g.name = ?3) \
             ORDER BY g.name, f.name",
        )?;
        let rows = stmt.query_map(params![account, region, group], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut all = Vec::new();
        for row in rows {
            let (group_name, name, pattern, text, created_ms) = row?;
            if prefix.is_some_and(|p| !name.starts_with(p)) {
                continue;
            }
            let transformations: Vec<MetricTransformation> =
                serde_json::from_str(&text).map_err(|e| Error::Corrupt {
                    what: format!("metric filter {name:?} of log group {group_name:?}"),
                    reason: e.to_string(),
                })?;
            if let Some((metric_name, namespace)) = metric
                && !transformations
                    .iter()
                    .any(|t| t.metric_name == metric_name && t.metric_namespace == namespace)
            {
                continue;
            }
            all.push(MetricFilter {
                log_group_name: group_name,
                name,
                pattern,
                transformations,
                created_ms,
            });
        }
        let rest: Vec<_> = all.into_iter().skip(offset).collect();
        let next = (rest.len() > limit).then_some(offset + limit);
        Ok((rest.into_iter().take(limit).collect(), next))
    }

    fn forget_filters(&self, group: i64) {
        self.filters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&group);
    }

    /// The group's metric filters, compiled (cached until they change).
    fn compiled_filters(&self, key: &GroupKey) -> Result<Arc<GroupFilters>> {
        let conn = self.conn();
        let group = group_id(&conn, key)?;
        if let Some(found) = self
            .filters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&group)
        {
            return Ok(found.clone());
        }
        let mut stmt = conn.prepare_cached(
            "SELECT name, pattern, transformations, created_ms FROM metric_filters WHERE group_id = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map([group], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut compiled = Vec::new();
        for row in rows {
            let (name, pattern, text, created_ms) = row?;
            let transformations = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
                what: format!("metric filter {name:?} of log group {:?}", key.name),
                reason: e.to_string(),
            })?;
            let filter = MetricFilter {
                log_group_name: key.name.clone(),
                name,
                pattern,
                transformations,
                created_ms,
            };
            compiled.push(CompiledFilter::new(key, &filter)?);
        }
        let compiled = Arc::new(GroupFilters {
            projection: Projection::of(compiled.iter().map(|f: &CompiledFilter| &f.pattern)),
            filters: compiled,
        });
        // Under the connection lock: a concurrent change cannot slip between
        // the read and the cache.
        self.filters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group, compiled.clone());
        Ok(compiled)
    }
}

/// Samples of one append: (metric, unit) → (timestamp, value) pairs.
type SamplesByMetric = BTreeMap<(MetricKey, Option<String>), Vec<(i64, f64)>>;

/// A group's compiled metric filters and what of a message they read.
#[derive(Debug)]
pub(crate) struct GroupFilters {
    filters: Vec<CompiledFilter>,
    projection: Projection,
}

impl std::ops::Deref for GroupFilters {
    type Target = [CompiledFilter];

    fn deref(&self) -> &[CompiledFilter] {
        &self.filters
    }
}

fn transform_count(filters: &[CompiledFilter]) -> usize {
    filters.iter().map(|f| f.transforms.len()).sum()
}

/// The sample a transformation makes of an event: its metric (with the
/// event's dimension values) and value; `None` when the pattern does not
/// match, the value is not a number or a dimension is missing.
fn sample_of(
    filter: &CompiledFilter,
    t: &CompiledTransformation,
    event: &LogEvent<'_>,
) -> Option<(MetricKey, f64)> {
    let value = t.value.value(&filter.pattern, event)?;
    if !value.is_finite() {
        return None;
    }
    let mut metric = t.metric.clone();
    for (name, field) in &t.dimensions {
        let extracted = filter.pattern.extract(event, field)?;
        metric
            .dimensions
            .push((name.clone(), extracted.to_text().into_owned()));
    }
    metric.dimensions.sort();
    Some((metric, value))
}
