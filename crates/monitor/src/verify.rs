//! Damage in the monitoring store: SQLite's own check, and every stored
//! document (alarm definitions and states, topic and subscription
//! attributes, metric filters, tags) read back as the running code reads it.

use rusqlite::params;

use crate::{Monitor, Result};

/// A table's rows whose documents must decode: (table, key column, document
/// columns).
const DOCUMENTS: &[(&str, &str, &[&str])] = &[
    ("alarms", "name", &["definition", "state"]),
    ("topics", "arn", &["attributes", "tags"]),
    ("subscriptions", "arn", &["attributes"]),
    ("metric_filters", "name", &["transformations"]),
    ("log_groups", "name", &["tags"]),
    ("alarm_history", "id", &["item"]),
];

impl Monitor {
    /// One line per stored document that does not decode, naming the table,
    /// the row and the column. Cheap (the control-plane rows, not the
    /// events): start-up runs it and refuses a damaged store.
    pub fn damaged_documents(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut out = Vec::new();
        for (table, key, columns) in DOCUMENTS {
            for column in *columns {
                let sql = format!("SELECT CAST({key} AS TEXT), {column} FROM {table}");
                let mut stmt = conn.prepare(&sql)?;
                let rows = stmt.query_map(params![], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?;
                for row in rows {
                    let (id, text) = row?;
                    if let Err(e) = decode(table, column, &text) {
                        out.push(format!("table {table}, row {id:?}, column {column}: {e}"));
                    }
                }
            }
        }
        Ok(out)
    }

    /// SQLite's `quick_check` (it reads every page: for `cairn doctor`), one
    /// line per finding, then every damaged document.
    pub fn verify(&self) -> Result<Vec<String>> {
        let checks = self
            .conn()
            .prepare("PRAGMA quick_check")?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut out: Vec<String> = if checks == ["ok"] {
            Vec::new()
        } else {
            checks
                .into_iter()
                .map(|c| format!("SQLite quick_check: {c}"))
                .collect()
        };
        out.extend(self.damaged_documents()?);
        Ok(out)
    }
}

/// Decodes a document as its readers do.
fn decode(table: &str, column: &str, text: &str) -> std::result::Result<(), String> {
    let result = match (table, column) {
        ("alarms", "definition") => {
            serde_json::from_str::<cairn_alarm::AlarmDefinition>(text).map(|_| ())
        }
        ("alarms", "state") => serde_json::from_str::<cairn_alarm::AlarmState>(text).map(|_| ()),
        ("alarm_history", _) => {
            serde_json::from_str::<cairn_alarm::AlarmHistoryItem>(text).map(|_| ())
        }
        ("metric_filters", _) => {
            serde_json::from_str::<Vec<crate::MetricTransformation>>(text).map(|_| ())
        }
        _ => serde_json::from_str::<std::collections::BTreeMap<String, String>>(text).map(|_| ()),
    };
    result.map_err(|e| e.to_string())
}
