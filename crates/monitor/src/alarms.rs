//! CloudWatch metric alarms: definitions, states and history, and the
//! aggregates of a metric an evaluation reads.

use std::collections::BTreeMap;

use cairn_alarm::{
    AlarmContext, AlarmDefinition, AlarmHistoryItem, AlarmState, HistoryItemType, MetricAggregate,
    StateChange, configuration_update_item, period_start,
};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{OptionalExtension, params};

use crate::metrics::MetricKey;
use crate::topics::OutboxEntry;
use crate::{Error, Monitor, Result};

/// Alarms one account may have in one region (CloudWatch's default quota).
const MAX_ALARMS: i64 = 5000;

/// An alarm as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlarm {
    /// The owning account.
    pub account: String,
    /// Its region.
    pub region: String,
    /// Its configuration.
    pub definition: AlarmDefinition,
    /// Its state.
    pub state: AlarmState,
    /// `AlarmConfigurationUpdatedTimestamp`.
    pub configuration_updated: DateTime<Utc>,
}

impl StoredAlarm {
    /// The metric it watches (dimensions sorted, one key per metric).
    pub fn metric(&self) -> MetricKey {
        let mut dimensions: Vec<(String, String)> = self
            .definition
            .dimensions
            .iter()
            .map(|d| (d.name.clone(), d.value.clone()))
            .collect();
        dimensions.sort();
        MetricKey {
            account: self.account.clone(),
            region: self.region.clone(),
            namespace: self.definition.namespace.clone(),
            name: self.definition.metric_name.clone(),
            dimensions,
        }
    }

    /// Where it lives, for history and notifications.
    pub fn context(&self) -> AlarmContext<'_> {
        AlarmContext {
            region: &self.region,
            account_id: &self.account,
            configuration_updated: self.configuration_updated,
        }
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn corrupt(what: String) -> impl FnOnce(serde_json::Error) -> Error {
    move |e| Error::Corrupt {
        what,
        reason: e.to_string(),
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Invalid(e.to_string()))
}

type AlarmRow = (String, String, String, String, i64);

fn read_alarm_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlarmRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn decode_alarm((account, region, definition, state, updated): AlarmRow) -> Result<StoredAlarm> {
    let definition: AlarmDefinition =
        serde_json::from_str(&definition).map_err(corrupt(format!("an alarm of {account}")))?;
    let state = serde_json::from_str(&state).map_err(corrupt(format!(
        "the state of alarm {:?}",
        definition.alarm_name
    )))?;
    Ok(StoredAlarm {
        account,
        region,
        definition,
        state,
        configuration_updated: time(updated),
    })
}

const ALARM_COLUMNS: &str = "account, region, definition, state, config_updated_ms";

fn insert_history(
    conn: &rusqlite::Connection,
    account: &str,
    region: &str,
    item: &AlarmHistoryItem,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO alarm_history (account, region, alarm_name, timestamp_ms, item_type, item) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        account,
        region,
        item.alarm_name,
        ms(item.timestamp),
        item.history_item_type.as_str(),
        encode(item)?
    ])?;
    Ok(())
}

impl Monitor {
    /// Creates or replaces an alarm (its state is kept on replace, as
    /// CloudWatch keeps it) and records the configuration update in its
    /// history. Returns the stored alarm.
    pub fn put_alarm(
        &self,
        account: &str,
        region: &str,
        definition: &AlarmDefinition,
        now: DateTime<Utc>,
    ) -> Result<StoredAlarm> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let sql = format!(
            "SELECT {ALARM_COLUMNS} FROM alarms WHERE account = ?1 AND region = ?2 AND name = ?3"
        );
        let previous = tx
            .query_row(
                &sql,
                params![account, region, definition.alarm_name],
                read_alarm_row,
            )
            .optional()?
            .map(decode_alarm)
            .transpose()?;
        if previous.is_none() {
            let count: i64 = tx.query_row(
                "SELECT COUNT(*) FROM alarms WHERE account = ?1 AND region = ?2",
                params![account, region],
                |r| r.get(0),
            )?;
            if count >= MAX_ALARMS {
                return Err(Error::LimitExceeded(format!(
                    "The maximum number of alarms ({MAX_ALARMS}) has been reached."
                )));
            }
        }
        let state = previous
            .as_ref()
            .map_or_else(|| AlarmState::initial(now), |p| p.state.clone());
        let stored = StoredAlarm {
            account: account.to_owned(),
            region: region.to_owned(),
            definition: definition.clone(),
            state,
            configuration_updated: now,
        };
        let item = configuration_update_item(
            previous.as_ref().map(|p| (&p.definition, p.context())),
            definition,
            stored.context(),
        );
        tx.execute(
            "INSERT INTO alarms (account, region, name, namespace, metric_name, definition, state, config_updated_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (account, region, name) DO UPDATE SET \
               namespace = ?4, metric_name = ?5, definition = ?6, config_updated_ms = ?8",
            params![
                account,
                region,
                definition.alarm_name,
                definition.namespace,
                definition.metric_name,
                encode(definition)?,
                encode(&stored.state)?,
                ms(now)
            ],
        )?;
        insert_history(&tx, account, region, &item)?;
        tx.commit()?;
        Ok(stored)
    }

    /// An alarm by name.
    pub fn alarm(&self, account: &str, region: &str, name: &str) -> Result<Option<StoredAlarm>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {ALARM_COLUMNS} FROM alarms WHERE account = ?1 AND region = ?2 AND name = ?3"
        );
        conn.query_row(&sql, params![account, region, name], read_alarm_row)
            .optional()?
            .map(decode_alarm)
            .transpose()
    }

    /// The alarms of an account in a region, by name (all when `account` is
    /// `None`: the evaluator's tick).
    pub fn alarms(&self, scope: Option<(&str, &str)>) -> Result<Vec<StoredAlarm>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {ALARM_COLUMNS} FROM alarms WHERE (?1 IS NULL OR (account = ?1 AND region = ?2)) \
             ORDER BY account, region, name"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![scope.map(|s| s.0), scope.map(|s| s.1)],
            read_alarm_row,
        )?;
        let rows: Vec<AlarmRow> = rows.collect::<Result<_, _>>()?;
        drop(stmt);
        drop(conn);
        rows.into_iter().map(decode_alarm).collect()
    }

    /// The alarms watching a metric (namespace and name; the caller matches
    /// dimensions).
    pub fn alarms_for_metric(&self, metric: &MetricKey) -> Result<Vec<StoredAlarm>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {ALARM_COLUMNS} FROM alarms \
             WHERE account = ?1 AND region = ?2 AND namespace = ?3 AND metric_name = ?4 ORDER BY name"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![metric.account, metric.region, metric.namespace, metric.name],
            read_alarm_row,
        )?;
        let rows: Vec<AlarmRow> = rows.collect::<Result<_, _>>()?;
        drop(stmt);
        drop(conn);
        Ok(rows
            .into_iter()
            .map(decode_alarm)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .filter(|a| a.metric().dimensions == metric.dimensions)
            .collect())
    }

    /// Deletes alarms (and their history); [`Error::NotFound`] naming the
    /// first that does not exist, deleting none.
    pub fn delete_alarms(&self, account: &str, region: &str, names: &[String]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for name in names {
            let exists = tx
                .query_row(
                    "SELECT 1 FROM alarms WHERE account = ?1 AND region = ?2 AND name = ?3",
                    params![account, region, name],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !exists {
                return Err(Error::NotFound(format!("Alarm {name} does not exist.")));
            }
        }
        for name in names {
            tx.execute(
                "DELETE FROM alarms WHERE account = ?1 AND region = ?2 AND name = ?3",
                params![account, region, name],
            )?;
            tx.execute(
                "DELETE FROM alarm_history WHERE account = ?1 AND region = ?2 AND alarm_name = ?3",
                params![account, region, name],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Turns the actions of the named alarms on or off (names that do not
    /// exist are ignored, as CloudWatch ignores them).
    pub fn set_alarm_actions_enabled(
        &self,
        account: &str,
        region: &str,
        names: &[String],
        enabled: bool,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for name in names {
            let sql = format!(
                "SELECT {ALARM_COLUMNS} FROM alarms WHERE account = ?1 AND region = ?2 AND name = ?3"
            );
            let Some(row) = tx
                .query_row(&sql, params![account, region, name], read_alarm_row)
                .optional()?
            else {
                continue;
            };
            let mut alarm = decode_alarm(row)?;
            alarm.definition.actions_enabled = enabled;
            tx.execute(
                "UPDATE alarms SET definition = ?1 WHERE account = ?2 AND region = ?3 AND name = ?4",
                params![encode(&alarm.definition)?, account, region, name],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces an alarm's tags with what `change` makes of them (no
    /// history item: tags are not configuration).
    pub fn change_alarm_tags(
        &self,
        account: &str,
        region: &str,
        name: &str,
        change: impl FnOnce(&[cairn_alarm::Tag]) -> Result<Vec<cairn_alarm::Tag>>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let sql = format!(
            "SELECT {ALARM_COLUMNS} FROM alarms WHERE account = ?1 AND region = ?2 AND name = ?3"
        );
        let row = tx
            .query_row(&sql, params![account, region, name], read_alarm_row)
            .optional()?
            .ok_or_else(|| Error::NotFound("The specified resource does not exist.".into()))?;
        let mut alarm = decode_alarm(row)?;
        alarm.definition.tags = change(&alarm.definition.tags)?;
        tx.execute(
            "UPDATE alarms SET definition = ?1 WHERE account = ?2 AND region = ?3 AND name = ?4",
            params![encode(&alarm.definition)?, account, region, name],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records a state change with its history items and the notifications
    /// its actions publish, in one transaction, if the alarm is still in
    /// `change.old` (an evaluation that lost a race to another changes
    /// nothing). Returns whether it was recorded.
    pub fn record_state_change(
        &self,
        alarm: &StoredAlarm,
        change: &StateChange,
        history: &[AlarmHistoryItem],
        outbox: &[OutboxEntry],
    ) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current: Option<String> = tx
            .query_row(
                "SELECT state FROM alarms WHERE account = ?1 AND region = ?2 AND name = ?3",
                params![alarm.account, alarm.region, alarm.definition.alarm_name],
                |r| r.get(0),
            )
            .optional()?;
        let Some(current) = current else {
            return Ok(false);
        };
        let current: AlarmState = serde_json::from_str(&current).map_err(corrupt(format!(
            "the state of alarm {:?}",
            alarm.definition.alarm_name
        )))?;
        if current != change.old {
            return Ok(false);
        }
        tx.execute(
            "UPDATE alarms SET state = ?1 WHERE account = ?2 AND region = ?3 AND name = ?4",
            params![
                encode(&change.new)?,
                alarm.account,
                alarm.region,
                alarm.definition.alarm_name
            ],
        )?;
        for item in history {
            insert_history(&tx, &alarm.account, &alarm.region, item)?;
        }
        crate::topics::enqueue(&tx, outbox)?;
        tx.commit()?;
        Ok(true)
    }

    /// History items of an account's alarms in a region (of one alarm, of
    /// one type), with `start <= Timestamp <= end`, newest first unless
    /// `oldest_first`, skipping `offset`, at most `limit`; with the offset
    /// to go on from when more remain.
    #[allow(clippy::too_many_arguments)]
    pub fn alarm_history(
        &self,
        account: &str,
        region: &str,
        alarm_name: Option<&str>,
        item_type: Option<HistoryItemType>,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        oldest_first: bool,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<AlarmHistoryItem>, Option<usize>)> {
        let conn = self.conn();
        let sql = format!(
            "SELECT item FROM alarm_history WHERE account = ?1 AND region = ?2 \
             AND (?3 IS NULL OR alarm_name = ?3) AND (?4 IS NULL OR item_type = ?4) \
             AND timestamp_ms >= ?5 AND timestamp_ms <= ?6 \
             ORDER BY timestamp_ms {dir}, id {dir} LIMIT ?7 OFFSET ?8",
            dir = if oldest_first { "ASC" } else { "DESC" }
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![
                account,
                region,
                alarm_name,
                item_type.map(HistoryItemType::as_str),
                start.map_or(i64::MIN, ms),
                end.map_or(i64::MAX, ms),
                limit as i64 + 1,
                offset as i64
            ],
            |r| r.get::<_, String>(0),
        )?;
        let mut items = Vec::new();
        for row in rows {
            items.push(
                serde_json::from_str::<AlarmHistoryItem>(&row?)
                    .map_err(corrupt("an alarm history item".into()))?,
            );
        }
        let next = (items.len() > limit).then(|| {
            items.truncate(limit);
            offset + limit
        });
        Ok((items, next))
    }

    /// A metric's aggregates per `period` (seconds) with
    /// `from <= period start < to`: what an alarm or GetMetricStatistics
    /// reads. With `unit`, only samples of that unit count.
    pub fn metric_aggregates(
        &self,
        metric: &MetricKey,
        period: u32,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        unit: Option<&str>,
    ) -> Result<BTreeMap<DateTime<Utc>, MetricAggregate>> {
        let from = period_start(from, period);
        let rows = self.metric_rows(metric, ms(from), ms(to))?;
        let mut out: BTreeMap<DateTime<Utc>, MetricAggregate> = BTreeMap::new();
        for row in rows {
            if unit.is_some() && row.unit.as_deref() != unit {
                continue;
            }
            let start = period_start(time(row.timestamp), period);
            let entry = out.entry(start).or_default();
            match row.aggregate {
                Some(text) => {
                    let aggregate: MetricAggregate = serde_json::from_str(&text)
                        .map_err(corrupt(format!("a datum of metric {}", metric.name)))?;
                    entry.merge(&aggregate);
                }
                None => entry.add_values(&[row.value], &[row.count]),
            }
        }
        Ok(out)
    }
}
