//! Query results as text: an aligned table, CSV with a header row, or JSON
//! lines (one object per row, nested columns as nested JSON).

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;

use std::io::Write;

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
    let mut out = Vec::new();
    write(result, format, &mut out)?;
    Ok(out)
}

/// Writes the rows of `result` in `format` to `out`, a batch at a time:
/// a large answer is never held twice, as rows and as its text.
pub fn write(result: &QueryResult, format: Format, out: &mut dyn Write) -> Result<(), Error> {
    match format {
        Format::Table => {
            let table = if result.batches.is_empty() {
                let empty = datafusion::arrow::array::RecordBatch::new_empty(result.schema.clone());
                pretty_format_batches(&[empty])?
            } else {
                pretty_format_batches(&result.batches)?
            };
            write!(out, "{table}").map_err(output)
        }
        Format::Csv => {
            let mut writer = WriterBuilder::new().with_header(true).build(out);
            if result.batches.is_empty() {
                writer.write(&datafusion::arrow::array::RecordBatch::new_empty(
                    result.schema.clone(),
                ))?;
            }
            for batch in &result.batches {
                writer.write(batch)?;
            }
            Ok(())
        }
        Format::Json => {
            let mut writer = LineDelimitedWriter::new(out);
            for batch in &result.batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            Ok(())
        }
    }
}

/// An error writing the rows out.
fn output(source: std::io::Error) -> Error {
    Error::Io {
        context: "writing the rows".to_owned(),
        source,
    }
}

/// Rows that arrived as text (an Athena or CloudTrail Lake answer) in
/// `format`: each column's values are typed by its Trino type where that is
/// a number or boolean (so JSON prints numbers as numbers), else kept as text.
pub fn render_text(
    columns: &[(String, String)],
    rows: &[Vec<Option<String>>],
    format: Format,
) -> Result<Vec<u8>, Error> {
    use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
    use datafusion::arrow::compute::{CastOptions, cast_with_options};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;
    let strict = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (i, (name, trino)) in columns.iter().enumerate() {
        let text: ArrayRef = Arc::new(StringArray::from_iter(
            rows.iter().map(|row| row.get(i).cloned().flatten()),
        ));
        let wanted = match trino.to_ascii_lowercase().as_str() {
            "bigint" => Some(DataType::Int64),
            "integer" | "int" => Some(DataType::Int32),
            "smallint" => Some(DataType::Int16),
            "tinyint" => Some(DataType::Int8),
            "double" => Some(DataType::Float64),
            "real" | "float" => Some(DataType::Float32),
            "boolean" => Some(DataType::Boolean),
            _ => None,
        };
        // A value the type does not parse keeps the column as text.
        let array = wanted
            .and_then(|t| cast_with_options(&text, &t, &strict).ok())
            .unwrap_or(text);
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let batches = if rows.is_empty() {
        Vec::new()
    } else {
        vec![RecordBatch::try_new(schema.clone(), arrays)?]
    };
    render(&QueryResult { schema, batches }, format)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(spec: &[(&str, &str)]) -> Vec<(String, String)> {
        spec.iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect()
    }

    #[test]
    fn text_rows_are_typed_by_their_trino_type() {
        let columns = columns(&[("name", "varchar"), ("n", "bigint"), ("ok", "boolean")]);
        let rows = vec![
            vec![
                Some("a".to_owned()),
                Some("3".to_owned()),
                Some("true".to_owned()),
            ],
            vec![None, None, Some("false".to_owned())],
        ];
        let json = String::from_utf8(render_text(&columns, &rows, Format::Json).unwrap()).unwrap();
        assert_eq!(
            json,
            "{\"name\":\"a\",\"n\":3,\"ok\":true}\n{\"ok\":false}\n"
        );
        let csv = String::from_utf8(render_text(&columns, &rows, Format::Csv).unwrap()).unwrap();
        assert_eq!(csv, "name,n,ok\na,3,true\n,,false\n");
    }

    #[test]
    fn a_value_its_type_does_not_parse_keeps_the_column_as_text() {
        let columns = columns(&[("n", "bigint")]);
        let rows = vec![vec![Some("12".to_owned())], vec![Some("many".to_owned())]];
        let json = String::from_utf8(render_text(&columns, &rows, Format::Json).unwrap()).unwrap();
        assert_eq!(json, "{\"n\":\"12\"}\n{\"n\":\"many\"}\n");
        let empty = render_text(&columns, &[], Format::Csv).unwrap();
        assert_eq!(empty, b"n\n");
    }
}
