//! Query results as text: an aligned table, CSV with a header row, or JSON
//! lines (one object per row, nested columns as nested JSON).

use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::json::LineDelimitedWriter;
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
