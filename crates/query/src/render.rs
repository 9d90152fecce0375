//! Query results as text: an aligned table, CSV with a header row, or JSON
//! lines (one object per row, nested columns as nested JSON).

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::{Error, QueryResult};

/// How to print rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned table with a header, for people.
    Table,
    /// CSV with a header row, as Athena writes its result files.
    Csv,
    /// One JSON object per row.
    Json,
}

/// The rows of `result` in `format`.
pub fn render(result: &QueryResult, format: Format) -> Result<Vec<u8>, Error> {
    match format {
        Format::Table => {
            if result.batches.is_empty() {
                let empty = datafusion::arrow::array::RecordBatch::new_empty(result.schema.clone());
                return Ok(pretty_format_batches(&[empty])?.to_string().into_bytes());
            }
            Ok(pretty_format_batches(&result.batches)?
                .to_string()
                .into_bytes())
        }
        Format::Csv => {
            let mut out = Vec::new();
            let mut writer = WriterBuilder::new().with_header(true).build(&mut out);
            if result.batches.is_empty() {
                writer.write(&datafusion::arrow::array::RecordBatch::new_empty(
                    result.schema.clone(),
                ))?;
            }
            for batch in &result.batches {
                writer.write(batch)?;
            }
            drop(writer);
            Ok(out)
        }
        Format::Json => {
            let mut out = Vec::new();
            let mut writer = LineDelimitedWriter::new(&mut out);
            for batch in &result.batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            drop(writer);
            Ok(out)
        }
    }
}

/// The Trino name of a result column's type, as Athena's `ColumnInfo`
/// reports it.
pub fn trino_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".to_owned(),
        DataType::Boolean => "boolean".to_owned(),
        DataType::Int8 => "tinyint".to_owned(),
        DataType::Int16 => "smallint".to_owned(),
        DataType::Int32 | DataType::UInt8 | DataType::UInt16 => "integer".to_owned(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".to_owned(),
        DataType::Float32 => "real".to_owned(),
        DataType::Float64 => "double".to_owned(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Date32 | DataType::Date64 => "date".to_owned(),
        DataType::Timestamp(_, None) => "timestamp".to_owned(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".to_owned(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "varbinary".to_owned(),
        DataType::Null => "unknown".to_owned(),
        DataType::List(item) | DataType::LargeList(item) | DataType::ListView(item) => {
            format!("array({})", trino_type(item.data_type()))
        }
        DataType::Struct(fields) => format!(
            "row({})",
            fields
                .iter()
                .map(|f| format!("{} {}", f.name(), trino_type(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map({}, {})",
                trino_type(kv[0].data_type()),
                trino_type(kv[1].data_type())
            ),
            _ => "map".to_owned(),
        },
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// Every value of `result` as text, as Athena returns it: null as `None`,
/// timestamps as `YYYY-MM-DD HH:MM:SS.fff`, rows as `{name=value, ...}`,
/// arrays as `[a, b]`. Also returns the column names.
pub fn text_rows(result: &QueryResult) -> Result<TextRows, Error> {
    let names = result
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut rows = Vec::with_capacity(result.num_rows());
    let options = FormatOptions::default()
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.3f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.3f %Z"))
        .with_null("null");
    for batch in &result.batches {
        for row in 0..batch.num_rows() {
            let mut values = Vec::with_capacity(batch.num_columns());
            for column in batch.columns() {
                values.push(if column.is_null(row) {
                    None
                } else {
                    Some(cell(column.as_ref(), row, &options)?)
                });
            }
            rows.push(values);
        }
    }
    Ok((names, rows))
}

/// Column names and rows of text.
pub type TextRows = (Vec<String>, Vec<Vec<Option<String>>>);

fn cell(array: &dyn Array, row: usize, options: &FormatOptions<'_>) -> Result<String, Error> {
    if array.is_null(row) {
        return Ok("null".to_owned());
    }
    match array.data_type() {
        DataType::Struct(fields) => {
            let array = array.as_struct();
            let mut parts = Vec::with_capacity(fields.len());
            for (field, column) in fields.iter().zip(array.columns()) {
                parts.push(format!(
                    "{}={}",
                    field.name(),
                    cell(column.as_ref(), row, options)?
                ));
            }
            Ok(format!("{{{}}}", parts.join(", ")))
        }
        DataType::List(_) => {
            let values = array.as_list::<i32>().value(row);
            list_cell(values.as_ref(), options)
        }
        DataType::LargeList(_) => {
            let values = array.as_list::<i64>().value(row);
            list_cell(values.as_ref(), options)
        }
        _ => Ok(ArrayFormatter::try_new(array, options)?
            .value(row)
            .to_string()),
    }
}

fn list_cell(values: &dyn Array, options: &FormatOptions<'_>) -> Result<String, Error> {
    let mut parts = Vec::with_capacity(values.len());
    for i in 0..values.len() {
        parts.push(cell(values, i, options)?);
    }
    Ok(format!("[{}]", parts.join(", ")))
}
