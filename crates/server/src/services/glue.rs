//! The data catalog, as AWS Glue and Athena's metadata calls show it: the
//! databases and tables Athena's DDL creates (kept in the metastore).

use cairn_catalog::{Catalog, CatalogError, Column, DatabaseDefinition, TableDefinition};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::AwsError;
use crate::services::{blocking, put_page};
use crate::state::{AppState, RequestContext};

/// The most entries a page holds.
const MAX_PAGE: usize = 100;

fn not_found(message: impl Into<String>) -> AwsError {
    AwsError::client("EntityNotFoundException", message)
}

fn catalog_error(error: CatalogError) -> AwsError {
    match error {
        CatalogError::AlreadyExists(m) => AwsError::client("AlreadyExistsException", m),
        CatalogError::NotFound(m) => not_found(m),
        CatalogError::Storage(m) => AwsError::internal(m),
    }
}

/// Runs a catalog call on the blocking pool.
async fn with_catalog<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(&dyn Catalog) -> Result<T, CatalogError> + Send + 'static,
) -> Result<T, AwsError> {
    let meta = state.meta.clone();
    blocking(move || call(meta.as_ref()).map_err(catalog_error)).await
}

/// A page of `items` as `{<list>: [...], "NextToken": ...}`, each item
/// rendered by `render`.
fn paged<T>(
    list: &str,
    items: &[T],
    token: Option<&str>,
    max: Option<i64>,
    render: impl Fn(&T) -> Value,
) -> Result<Value, AwsError> {
    let max = max
        .map_or(MAX_PAGE, |m| usize::try_from(m).unwrap_or(MAX_PAGE))
        .clamp(1, MAX_PAGE);
    let start = match token {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| AwsError::client("InvalidInputException", "The NextToken is not valid"))?,
    };
    let mut out = json!({});
    put_page(&mut out, list, items, start, max, render);
    Ok(out)
}

fn seconds(t: i64) -> Value {
    json!(t as f64)
}

fn glue_database(database: &DatabaseDefinition, account: &str) -> Value {
    let mut out = json!({
        "Name": database.name,
        "CreateTime": seconds(database.create_time),
        "CatalogId": account,
        "CreateTableDefaultPermissions": [],
    });
    if let Some(d) = &database.description {
        out["Description"] = json!(d);
    }
    out
}

fn glue_columns(columns: &[Column]) -> Vec<Value> {
    columns
        .iter()
        .map(|c| {
            let mut out = json!({"Name": c.name, "Type": c.type_name});
            if let Some(comment) = &c.comment {
                out["Comment"] = json!(comment);
            }
            out
        })
        .collect()
}

fn glue_table(table: &TableDefinition, account: &str) -> Value {
    json!({
        "Name": table.name,
        "DatabaseName": table.database,
        "CreateTime": seconds(table.create_time),
        "UpdateTime": seconds(table.create_time),
        "Retention": 0,
        "StorageDescriptor": {
            "Columns": glue_columns(&table.columns),
            "Location": table.location,
            "InputFormat": table.input_format.clone().unwrap_or_else(|| "org.apache.hadoop.mapred.TextInputFormat".to_owned()),
            "OutputFormat": table.output_format.clone().unwrap_or_else(|| "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat".to_owned()),
            "Compressed": false,
            "NumberOfBuckets": -1,
            "SerdeInfo": {
                "SerializationLibrary": table.serde.clone().unwrap_or_default(),
                "Parameters": table.serde_parameters,
            },
            "BucketColumns": [],
            "SortColumns": [],
            "Parameters": {},
            "StoredAsSubDirectories": false,
        },
        "PartitionKeys": glue_columns(&table.partition_keys),
        "TableType": if table.parameters.contains_key("EXTERNAL") { "EXTERNAL_TABLE" } else { "MANAGED_TABLE" },
        "Parameters": table.parameters,
        "CatalogId": account,
        "IsRegisteredWithLakeFormation": false,
    })
}

/// `GetDatabases`' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetDatabasesRequest {
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    max_results: Option<i64>,
}

/// Glue: every database.
pub async fn get_databases(
    state: &AppState,
    ctx: &RequestContext,
    input: GetDatabasesRequest,
) -> Result<Value, AwsError> {
    let databases = with_catalog(state, |c| c.databases()).await?;
    paged(
        "DatabaseList",
        &databases,
        input.next_token.as_deref(),
        input.max_results,
        |d| glue_database(d, &ctx.account_id),
    )
}

/// An input naming a database (`Name`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetDatabaseRequest {
    name: String,
}

/// Glue: one database.
pub async fn get_database(
    state: &AppState,
    ctx: &RequestContext,
    input: GetDatabaseRequest,
) -> Result<Value, AwsError> {
    let name = input.name.to_ascii_lowercase();
    let wanted = name.clone();
    let database = with_catalog(state, move |c| c.database(&wanted))
        .await?
        .ok_or_else(|| not_found(format!("Database {name} not found.")))?;
    Ok(json!({ "Database": glue_database(&database, &ctx.account_id) }))
}

/// `CreateDatabase`'s input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateDatabaseRequest {
    database_input: DatabaseInput,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DatabaseInput {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

/// Glue: creates a database.
pub async fn create_database(
    state: &AppState,
    _ctx: &RequestContext,
    input: CreateDatabaseRequest,
) -> Result<Value, AwsError> {
    let name = input.database_input.name.to_ascii_lowercase();
    if name.is_empty()
        || name.len() > 255
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(AwsError::client(
            "InvalidInputException",
            format!("{name} is not a valid database name"),
        ));
    }
    let database = DatabaseDefinition {
        name,
        description: input.database_input.description,
        create_time: chrono::Utc::now().timestamp(),
    };
    with_catalog(state, move |c| c.create_database(&database)).await?;
    Ok(json!({}))
}

/// `GetTables`' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetTablesRequest {
    database_name: String,
    #[serde(default)]
    expression: Option<String>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    max_results: Option<i64>,
}

/// Whether a table name matches Glue's `Expression` (a regular expression
/// of which Cairn understands `*` wildcards and `|` alternatives).
fn matches_expression(name: &str, expression: Option<&str>) -> bool {
    let Some(expression) = expression else {
        return true;
    };
    expression.split('|').any(|pattern| {
        let pattern = pattern.trim().to_ascii_lowercase().replace(".*", "*");
        let parts: Vec<&str> = pattern.split('*').collect();
        if parts.len() == 1 {
            return name == pattern;
        }
        let mut rest = name;
        for (i, part) in parts.iter().enumerate() {
            if i == 0 {
                let Some(r) = rest.strip_prefix(part) else {
                    return false;
                };
                rest = r;
            } else if i == parts.len() - 1 {
                return rest.ends_with(part);
            } else if let Some(at) = rest.find(part) {
                rest = &rest[at + part.len()..];
            } else {
                return false;
            }
        }
        true
    })
}

/// Glue: the tables of a database.
pub async fn get_tables(
    state: &AppState,
    ctx: &RequestContext,
    input: GetTablesRequest,
) -> Result<Value, AwsError> {
    let database = input.database_name.to_ascii_lowercase();
    let tables = with_catalog(state, move |c| c.tables(&database)).await?;
    let tables: Vec<TableDefinition> = tables
        .into_iter()
        .filter(|t| matches_expression(&t.name, input.expression.as_deref()))
        .collect();
    paged(
        "TableList",
        &tables,
        input.next_token.as_deref(),
        input.max_results,
        |t| glue_table(t, &ctx.account_id),
    )
}

/// An input naming a table (`DatabaseName`, `Name`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableRequest {
    database_name: String,
    name: String,
}

async fn one_table(
    state: &AppState,
    database: &str,
    name: &str,
) -> Result<TableDefinition, AwsError> {
    let (database, name) = (database.to_ascii_lowercase(), name.to_ascii_lowercase());
    let (d, n) = (database.clone(), name.clone());
    with_catalog(state, move |c| c.table(&d, &n))
        .await?
        .ok_or_else(|| not_found(format!("Table {name} not found.")))
}

/// Glue: one table.
pub async fn get_table(
    state: &AppState,
    ctx: &RequestContext,
    input: TableRequest,
) -> Result<Value, AwsError> {
    let table = one_table(state, &input.database_name, &input.name).await?;
    Ok(json!({ "Table": glue_table(&table, &ctx.account_id) }))
}

/// Glue: drops a table.
pub async fn delete_table(
    state: &AppState,
    _ctx: &RequestContext,
    input: TableRequest,
) -> Result<Value, AwsError> {
    let (database, name) = (
        input.database_name.to_ascii_lowercase(),
        input.name.to_ascii_lowercase(),
    );
    with_catalog(state, move |c| c.drop_table(&database, &name)).await?;
    Ok(json!({}))
}

// Athena's own view of the catalog.

fn athena_not_found(message: impl Into<String>) -> AwsError {
    AwsError::client("MetadataException", message)
}

fn check_catalog(name: &str) -> Result<(), AwsError> {
    if name.eq_ignore_ascii_case(cairn_catalog::DEFAULT_CATALOG) {
        Ok(())
    } else {
        Err(AwsError::client(
            "InvalidRequestException",
            format!("Catalog {name} is not found."),
        ))
    }
}

fn athena_table(table: &TableDefinition) -> Value {
    json!({
        "Name": table.name,
        "CreateTime": seconds(table.create_time),
        "TableType": if table.parameters.contains_key("EXTERNAL") { "EXTERNAL_TABLE" } else { "MANAGED_TABLE" },
        "Columns": glue_columns(&table.columns),
        "PartitionKeys": glue_columns(&table.partition_keys),
        "Parameters": table.parameters,
    })
}

/// `ListDataCatalogs`: the one catalog.
pub async fn list_data_catalogs(
    _state: &AppState,
    _ctx: &RequestContext,
    _input: Value,
) -> Result<Value, AwsError> {
    Ok(json!({
        "DataCatalogsSummary": [{"CatalogName": cairn_catalog::DEFAULT_CATALOG, "Type": "GLUE"}]
    }))
}

/// Athena's `ListDatabases` input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListDatabasesRequest {
    catalog_name: String,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    max_results: Option<i64>,
}

/// Athena: the databases of the catalog.
pub async fn list_databases(
    state: &AppState,
    _ctx: &RequestContext,
    input: ListDatabasesRequest,
) -> Result<Value, AwsError> {
    check_catalog(&input.catalog_name)?;
    let databases = with_catalog(state, |c| c.databases()).await?;
    paged(
        "DatabaseList",
        &databases,
        input.next_token.as_deref(),
        input.max_results,
        |d| {
            json!({
                "Name": d.name,
                "Description": d.description.clone().unwrap_or_default(),
            })
        },
    )
}

/// Athena's `ListTableMetadata` input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTableMetadataRequest {
    catalog_name: String,
    database_name: String,
    #[serde(default)]
    expression: Option<String>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    max_results: Option<i64>,
}

/// Athena: the tables of a database.
pub async fn list_table_metadata(
    state: &AppState,
    _ctx: &RequestContext,
    input: ListTableMetadataRequest,
) -> Result<Value, AwsError> {
    check_catalog(&input.catalog_name)?;
    let database = input.database_name.to_ascii_lowercase();
    let tables = with_catalog(state, move |c| c.tables(&database))
        .await
        .map_err(|e| athena_not_found(e.message))?;
    let tables: Vec<TableDefinition> = tables
        .into_iter()
        .filter(|t| matches_expression(&t.name, input.expression.as_deref()))
        .collect();
    paged(
        "TableMetadataList",
        &tables,
        input.next_token.as_deref(),
        input.max_results,
        athena_table,
    )
}

/// Athena's `GetTableMetadata` input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetTableMetadataRequest {
    catalog_name: String,
    database_name: String,
    table_name: String,
}

/// Athena: one table.
pub async fn get_table_metadata(
    state: &AppState,
    _ctx: &RequestContext,
    input: GetTableMetadataRequest,
) -> Result<Value, AwsError> {
    check_catalog(&input.catalog_name)?;
    let table = one_table(state, &input.database_name, &input.table_name)
        .await
        .map_err(|e| athena_not_found(e.message))?;
    Ok(json!({ "TableMetadata": athena_table(&table) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_expressions_match_as_glue_documents() {
        assert!(matches_expression("cloudtrail_logs", None));
        assert!(matches_expression("cloudtrail_logs", Some("cloudtrail*")));
        assert!(matches_expression("cloudtrail_logs", Some("x|*_logs")));
        assert!(matches_expression("cloudtrail_logs", Some("cloud.*logs")));
        assert!(!matches_expression("cloudtrail_logs", Some("vpc*")));
        assert!(matches_expression("t", Some("t")));
    }
}
