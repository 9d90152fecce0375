//! Metrics: the samples metric filters (and, later, PutMetricData) record,
//! kept raw so every statistic, percentiles included, is exact.

use rusqlite::{OptionalExtension, params};

use crate::{Error, Monitor, Result};

/// A metric's identity: account, region, namespace, name and dimensions
/// (sorted by name, so one metric has one key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricKey {
    /// The owning account.
    pub account: String,
    /// The region.
    pub region: String,
    /// Its namespace (`CloudTrailMetrics`).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// (name, value) pairs, sorted by name.
    pub dimensions: Vec<(String, String)>,
}

impl MetricKey {
    fn dimensions_text(&self) -> Result<String> {
        serde_json::to_string(&self.dimensions).map_err(|e| Error::Invalid(e.to_string()))
    }
}

/// One recorded sample: `count` observations of `value` at `timestamp`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    /// When (ms since the epoch).
    pub timestamp: i64,
    /// The value.
    pub value: f64,
    /// How many times it was observed.
    pub count: f64,
    /// Its unit, if given.
    pub unit: Option<String>,
}

fn metric_id(conn: &rusqlite::Connection, key: &MetricKey, create: bool) -> Result<Option<i64>> {
    let dimensions = key.dimensions_text()?;
    if create {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO metrics (account, region, namespace, name, dimensions) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![key.account, key.region, key.namespace, key.name, dimensions])?;
    }
    Ok(conn
        .prepare_cached(
            "SELECT id FROM metrics WHERE account = ?1 AND region = ?2 AND namespace = ?3 AND name = ?4 AND dimensions = ?5",
        )?
        .query_row(
            params![key.account, key.region, key.namespace, key.name, dimensions],
            |r| r.get(0),
        )
        .optional()?)
}

/// Records samples of one metric inside the caller's transaction; returns
/// how many.
pub(crate) fn insert_samples(
    conn: &rusqlite::Connection,
    key: &MetricKey,
    unit: Option<&str>,
    points: &[(i64, f64)],
) -> Result<usize> {
    let Some(id) = metric_id(conn, key, true)? else {
        return Err(Error::Invalid("a metric could not be recorded".into()));
    };
    let mut insert = conn.prepare_cached(
        "INSERT INTO metric_samples (metric_id, timestamp, value, count, unit) VALUES (?1, ?2, ?3, 1, ?4)",
    )?;
    for (timestamp, value) in points {
        insert.execute(params![id, timestamp, value, unit])?;
    }
    Ok(points.len())
}

/// A stored sample row: a single sample, or a datum's aggregate.
pub(crate) struct SampleRow {
    pub(crate) timestamp: i64,
    pub(crate) value: f64,
    pub(crate) count: f64,
    pub(crate) unit: Option<String>,
    pub(crate) aggregate: Option<String>,
}

impl Monitor {
    /// Records PutMetricData datums, each an aggregate of its samples at its
    /// timestamp, in one transaction.
    pub fn put_metric_data(
        &self,
        data: &[(MetricKey, i64, Option<String>, cairn_alarm::MetricAggregate)],
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (key, timestamp, unit, aggregate) in data {
            let Some(id) = metric_id(&tx, key, true)? else {
                return Err(Error::Invalid("a metric could not be recorded".into()));
            };
            let text =
                serde_json::to_string(aggregate).map_err(|e| Error::Invalid(e.to_string()))?;
            tx.prepare_cached(
                "INSERT INTO metric_samples (metric_id, timestamp, value, count, unit, aggregate) VALUES (?1, ?2, 0, 0, ?3, ?4)",
            )?
            .execute(params![id, timestamp, unit, text])?;
        }
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn metric_rows(
        &self,
        key: &MetricKey,
        from: i64,
        to: i64,
    ) -> Result<Vec<SampleRow>> {
        let conn = self.conn();
        let Some(id) = metric_id(&conn, key, false)? else {
            return Ok(Vec::new());
        };
        let mut stmt = conn.prepare_cached(
            "SELECT timestamp, value, count, unit, aggregate FROM metric_samples \
             WHERE metric_id = ?1 AND timestamp >= ?2 AND timestamp < ?3 ORDER BY timestamp",
        )?;
        let rows = stmt.query_map(params![id, from, to], |r| {
            Ok(SampleRow {
                timestamp: r.get(0)?,
                value: r.get(1)?,
                count: r.get(2)?,
                unit: r.get(3)?,
                aggregate: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The samples of a metric with `from <= timestamp < to`, oldest first.
    pub fn metric_samples(&self, key: &MetricKey, from: i64, to: i64) -> Result<Vec<MetricSample>> {
        let conn = self.conn();
        let Some(id) = metric_id(&conn, key, false)? else {
            return Ok(Vec::new());
        };
        let mut stmt = conn.prepare_cached(
            "SELECT timestamp, value, count, unit FROM metric_samples \
             WHERE metric_id = ?1 AND aggregate IS NULL AND timestamp >= ?2 AND timestamp < ?3 ORDER BY timestamp",
        )?;
        let rows = stmt.query_map(params![id, from, to], |r| {
            Ok(MetricSample {
                timestamp: r.get(0)?,
                value: r.get(1)?,
                count: r.get(2)?,
                unit: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Every metric of an account in a region, in `namespace` and of `name`
    /// when given, ordered by namespace, name and dimensions.
    pub fn list_metrics(
        &self,
        account: &str,
        region: &str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Result<Vec<MetricKey>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT namespace, name, dimensions FROM metrics \
             WHERE account = ?1 AND region = ?2 AND (?3 IS NULL OR namespace = ?3) AND (?4 IS NULL OR name = ?4) \
             ORDER BY namespace, name, dimensions",
        )?;
        let rows = stmt.query_map(params![account, region, namespace, name], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (namespace, name, dimensions) = row?;
            let dimensions = serde_json::from_str(&dimensions).map_err(|e| Error::Corrupt {
                what: format!("the dimensions of metric {namespace}/{name}"),
                reason: e.to_string(),
            })?;
            out.push(MetricKey {
                account: account.to_owned(),
                region: region.to_owned(),
                namespace,
                name,
                dimensions,
            });
        }
        Ok(out)
    }

    /// Removes samples older than `before_ms`; returns how many.
    pub fn expire_metric_samples(&self, before_ms: i64) -> Result<usize> {
        Ok(self.conn().execute(
            "DELETE FROM metric_samples WHERE timestamp < ?1",
            [before_ms],
        )?)
    }
}
