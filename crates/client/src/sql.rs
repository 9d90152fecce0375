//! SQL against a server, as `cairn query` runs it: an Athena statement
//! (StartQueryExecution, then GetQueryExecution until it ends, then
//! GetQueryResults page by page) or a CloudTrail Lake query (StartQuery,
//! DescribeQuery, GetQueryResults), chosen by whether the statement names an
//! event data store.
//!
//! Results come back as text, as both APIs return them; the caller renders.

use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{ATHENA, AwsApi, CLOUDTRAIL, JsonService};
use crate::error::{Error, Result};

/// How long to wait between status polls.
const POLL: Duration = Duration::from_millis(200);
/// The most rows kept from one query (the APIs page; the printer holds them).
const MAX_ROWS: usize = 1_000_000;

/// A finished query's columns and rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SqlRows {
    /// Column names with their Trino type (`varchar` where the API gives none).
    pub columns: Vec<(String, String)>,
    /// Values as text; `None` is SQL null.
    pub rows: Vec<Vec<Option<String>>>,
    /// The API's own summary, e.g. bytes scanned.
    pub statistics: Value,
}

/// Where an Athena statement runs.
#[derive(Debug, Clone)]
pub struct AthenaTarget {
    /// Athena's endpoint.
    pub endpoint: String,
    /// The database the statement's unqualified tables are in.
    pub database: String,
    /// Where results are written, `s3://bucket/prefix/`.
    pub output_location: String,
    /// The workgroup (`primary`).
    pub work_group: String,
}

/// The ID of the event data store `sql` names in its FROM clause, if any:
/// its ID or ARN, among the stores the server lists.
pub async fn event_data_store_named(
    api: &AwsApi,
    endpoint: &str,
    sql: &str,
) -> Result<Option<String>> {
    let mut found = None;
    each_page(
        api,
        CLOUDTRAIL,
        endpoint,
        "ListEventDataStores",
        json!({}),
        |page| {
            for store in page
                .get("EventDataStores")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(arn) = store.get("EventDataStoreArn").and_then(Value::as_str) else {
                    continue;
                };
                let id = arn.rsplit('/').next().unwrap_or(arn);
                if sql.contains(arn) || contains_word(sql, id) {
                    found = Some(id.to_owned());
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;
    Ok(found)
}

/// Calls a paged operation with `input` until its last page (or until
/// `visit`, which sees every page, returns false).
async fn each_page(
    api: &AwsApi,
    service: JsonService,
    endpoint: &str,
    operation: &str,
    input: Value,
    mut visit: impl FnMut(&Value) -> Result<bool>,
) -> Result<()> {
    let mut token: Option<String> = None;
    loop {
        let mut page_input = input.clone();
        if let Some(t) = &token {
            page_input["NextToken"] = json!(t);
        }
        let page = api
            .call_json(service, endpoint, operation, &page_input)
            .await?;
        if !visit(&page)? {
            return Ok(());
        }
        match page.get("NextToken").and_then(Value::as_str) {
            Some(t) if Some(t) != token.as_deref() => token = Some(t.to_owned()),
            _ => return Ok(()),
        }
    }
}

/// Whether `word` occurs in `text` not inside a longer identifier.
fn contains_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back().is_none_or(|c| !ident(c));
        let after = text[at + word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !ident(c));
        before && after
    })
}

/// Runs one Athena statement to its end and reads every result row.
pub async fn run_athena(api: &AwsApi, target: &AthenaTarget, sql: &str) -> Result<SqlRows> {
    let started = api
        .call_json(
            ATHENA,
            &target.endpoint,
            "StartQueryExecution",
            &json!({
                "QueryString": sql,
                "QueryExecutionContext": {"Database": target.database},
                "ResultConfiguration": {"OutputLocation": target.output_location},
                "WorkGroup": target.work_group,
            }),
        )
        .await?;
    let id = text(&started, "QueryExecutionId", "StartQueryExecution")?;
    let execution = loop {
        let answer = api
            .call_json(
                ATHENA,
                &target.endpoint,
                "GetQueryExecution",
                &json!({"QueryExecutionId": id}),
            )
            .await?;
        let execution = answer.get("QueryExecution").cloned().unwrap_or_default();
        let state = execution
            .pointer("/Status/State")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match state {
            "SUCCEEDED" => break execution,
            "FAILED" | "CANCELLED" => {
                let reason = execution
                    .pointer("/Status/StateChangeReason")
                    .and_then(Value::as_str)
                    .unwrap_or(state);
                return Err(Error::QueryFailed {
                    id,
                    state: state.to_owned(),
                    reason: reason.to_owned(),
                });
            }
            _ => tokio::time::sleep(POLL).await,
        }
    };
    // A DML answer's first row repeats the column names; a DDL answer has none.
    let has_header = execution.get("StatementType").and_then(Value::as_str) == Some("DML");
    let mut out = SqlRows {
        statistics: execution.get("Statistics").cloned().unwrap_or_default(),
        ..SqlRows::default()
    };
    let mut first = true;
    let input = json!({"QueryExecutionId": id, "MaxResults": 1000});
    each_page(
        api,
        ATHENA,
        &target.endpoint,
        "GetQueryResults",
        input,
        |page| {
            if out.columns.is_empty() {
                out.columns = page
                    .pointer("/ResultSet/ResultSetMetadata/ColumnInfo")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        let field = |name: &str| {
                            c.get(name)
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned()
                        };
                        (field("Name"), field("Type"))
                    })
                    .collect();
            }
            let skip = usize::from(has_header && first);
            first = false;
            for row in page
                .pointer("/ResultSet/Rows")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .skip(skip)
            {
                let values = row
                    .get("Data")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        d.get("VarCharValue")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .collect();
                push_row(&mut out, values)?;
            }
            Ok(true)
        },
    )
    .await?;
    Ok(out)
}

/// Runs one CloudTrail Lake query to its end and reads every result row.
pub async fn run_lake(api: &AwsApi, endpoint: &str, sql: &str) -> Result<SqlRows> {
    let started = api
        .call_json(
            CLOUDTRAIL,
            endpoint,
            "StartQuery",
            &json!({"QueryStatement": sql}),
        )
        .await?;
    let id = text(&started, "QueryId", "StartQuery")?;
    let described = loop {
        let answer = api
            .call_json(
                CLOUDTRAIL,
                endpoint,
                "DescribeQuery",
                &json!({"QueryId": id}),
            )
            .await?;
        let status = answer
            .get("QueryStatus")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match status {
            "FINISHED" => break answer,
            "FAILED" | "CANCELLED" | "TIMED_OUT" => {
                let reason = answer
                    .get("ErrorMessage")
                    .and_then(Value::as_str)
                    .unwrap_or(status);
                return Err(Error::QueryFailed {
                    id,
                    state: status.to_owned(),
                    reason: reason.to_owned(),
                });
            }
            _ => tokio::time::sleep(POLL).await,
        }
    };
    let mut out = SqlRows {
        statistics: described
            .get("QueryStatistics")
            .cloned()
            .unwrap_or_default(),
        ..SqlRows::default()
    };
    // Lake leaves a null out of its row, so the columns are the union of the
    // rows' names, each placed after the name before it in its row.
    let mut names: Vec<String> = Vec::new();
    let mut cells_of_rows: Vec<Vec<(String, Option<String>)>> = Vec::new();
    let input = json!({"QueryId": id, "MaxQueryResults": 1000});
    each_page(
        api,
        CLOUDTRAIL,
        endpoint,
        "GetQueryResults",
        input,
        |page| {
            for row in page
                .get("QueryResultRows")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                // A row is a list of one-entry maps, in column order.
                let cells: Vec<(String, Option<String>)> = row
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                    .flat_map(|m| m.iter())
                    .map(|(k, v)| {
                        let value = match v {
                            Value::Null => None,
                            Value::String(s) => Some(s.clone()),
                            other => Some(other.to_string()),
                        };
                        (k.clone(), value)
                    })
                    .collect();
                merge_names(&mut names, cells.iter().map(|(k, _)| k.as_str()));
                if cells_of_rows.len() >= MAX_ROWS {
                    return Err(too_many_rows());
                }
                cells_of_rows.push(cells);
            }
            Ok(true)
        },
    )
    .await?;
    out.rows = cells_of_rows
        .into_iter()
        .map(|cells| {
            names
                .iter()
                .map(|name| {
                    cells
                        .iter()
                        .find(|(k, _)| k == name)
                        .and_then(|(_, v)| v.clone())
                })
                .collect()
        })
        .collect();
    out.columns = names
        .into_iter()
        .map(|name| (name, "varchar".to_owned()))
        .collect();
    Ok(out)
}

/// Adds a row's column names to `names`: each one not seen yet goes right
/// after the name before it in the row (or first).
fn merge_names<'a>(names: &mut Vec<String>, row: impl Iterator<Item = &'a str>) {
    let mut after: Option<usize> = None;
    for name in row {
        match names.iter().position(|n| n == name) {
            Some(at) => after = Some(at),
            None => {
                let at = after.map_or(0, |a| a + 1);
                names.insert(at, name.to_owned());
                after = Some(at);
            }
        }
    }
}

fn too_many_rows() -> Error {
    Error::InvalidResponse {
        url: String::new(),
        reason: format!("the query returned more than {MAX_ROWS} rows; narrow it or use LIMIT"),
    }
}

fn push_row(out: &mut SqlRows, values: Vec<Option<String>>) -> Result<()> {
    if out.rows.len() >= MAX_ROWS {
        return Err(too_many_rows());
    }
    out.rows.push(values);
    Ok(())
}

fn text(answer: &Value, member: &str, operation: &str) -> Result<String> {
    answer
        .get(member)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::Call {
            operation: operation.to_owned(),
            reason: format!("the answer has no {member}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_left_out_of_a_row_keep_their_place() {
        let mut names = Vec::new();
        merge_names(&mut names, ["n"].into_iter());
        merge_names(&mut names, ["arn", "n"].into_iter());
        merge_names(&mut names, ["account", "arn", "n"].into_iter());
        merge_names(&mut names, ["account", "n"].into_iter());
        assert_eq!(names, ["account", "arn", "n"]);
    }

    #[test]
    fn store_ids_are_found_as_whole_words() {
        let id = "0e1f4b7a-3c2d-4e5f-8a9b-0c1d2e3f4a5b";
        assert!(contains_word(&format!("SELECT * FROM {id} WHERE x"), id));
        assert!(contains_word(&format!("SELECT * FROM \"{id}\""), id));
        assert!(!contains_word(&format!("SELECT * FROM {id}-x"), id));
        assert!(!contains_word("SELECT 1", id));
    }
}
