//! Query results as text: an aligned table, CSV with a header row, or JSON
//! lines (one object per row, nested columns as nested JSON).

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;

use std::io::Write;

use crate::{Error, QueryResult, RowStream};

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
    if format == Format::Table {
        return write_table(result, out);
    }
    let mut writer = LineWriter::new(format, &result.schema, out);
    for batch in &result.batches {
        writer.write(batch)?;
    }
    writer.finish()
}

/// How many batches a running statement may be ahead of [`write_stream`]'s
/// writing: enough that neither waits on the other for long, few enough
/// that the rows in between stay a small part of the answer.
const BATCHES_AHEAD: usize = 4;

/// Writes the rows of a running statement in `format` to `out` as they
/// arrive. The statement is driven on `runtime` while the calling thread
/// writes, so its last rows are still being sorted or merged while the
/// first are printed, and strings are written from the buffers they were
/// read into, not copied out first. A table is aligned over all its rows:
/// it is written once they are in.
///
/// Blocks the calling thread: it must not be one of `runtime`'s.
pub fn write_stream(
    runtime: &tokio::runtime::Handle,
    rows: RowStream,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), Error> {
    if format == Format::Table {
        return write_table(&runtime.block_on(rows.collect())?, out);
    }
    let schema = rows.schema.clone();
    let (sender, mut receiver) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
    let mut driver = runtime.spawn(async move {
        let mut rows = rows;
        while let Some(batch) = rows.next().await {
            let failed = batch.is_err();
            // A closed channel means the writing stopped: so does the query.
            if sender.send(batch).await.is_err() || failed {
                break;
            }
        }
    });
    let mut writer = LineWriter::new(format, &schema, out);
    let written = (|| {
        while let Some(batch) = receiver.blocking_recv() {
            writer.write(&batch?)?;
        }
        // The rows ended: the statement answered, unless its task failed.
        runtime
            .block_on(&mut driver)
            .map_err(|e| Error::Engine(format!("the query stopped: {e}")))?;
        writer.finish()
    })();
    driver.abort();
    written
}

/// An aligned table of `result`'s rows.
fn write_table(result: &QueryResult, out: &mut dyn Write) -> Result<(), Error> {
    let table = if result.batches.is_empty() {
        pretty_format_batches(&[RecordBatch::new_empty(result.schema.clone())])?
    } else {
        pretty_format_batches(&result.batches)?
    };
    write!(out, "{table}").map_err(output)
}

/// Writes rows a batch at a time as CSV or JSON lines.
enum LineWriter<'a> {
    /// CSV.
    Csv(CsvWriter<'a>),
    /// JSON lines.
    Json(LineDelimitedWriter<&'a mut dyn Write>),
}

impl<'a> LineWriter<'a> {
    /// A writer of `format` (not [`Format::Table`], which is written whole).
    fn new(format: Format, schema: &SchemaRef, out: &'a mut dyn Write) -> Self {
        match format {
            Format::Json => LineWriter::Json(LineDelimitedWriter::new(out)),
            Format::Csv | Format::Table => LineWriter::Csv(CsvWriter::new(schema, out)),
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        match self {
            LineWriter::Csv(writer) => writer.write(batch),
            LineWriter::Json(writer) => Ok(writer.write(batch)?),
        }
    }

    /// Ends the rows.
    fn finish(self) -> Result<(), Error> {
        match self {
            LineWriter::Csv(writer) => writer.finish(),
            LineWriter::Json(mut writer) => Ok(writer.finish()?),
        }
    }
}

/// CSV as Arrow's CSV writer writes it with its defaults (a header row of
/// the columns' names; a field quoted only when it holds a comma, a quote
/// or a line break, its quotes doubled; a null as an empty field, and a
/// row of one empty field as `""`), but written straight from a string
/// column's bytes, scanned once and copied once rather than formatted into
/// a field first: a large answer's text is most of what a short query does.
/// Other columns are formatted as Arrow formats them.
struct CsvWriter<'a> {
    out: &'a mut dyn Write,
    /// Rows not yet handed to `out`.
    buffer: Vec<u8>,
    /// The columns, until the header row names them.
    header: Option<SchemaRef>,
    /// One formatted value of a column that is not a string.
    text: String,
}

/// A CSV writer hands its rows on in pieces of about this size.
const CSV_PIECE: usize = 1 << 16;

/// A column as [`CsvWriter`] reads it.
enum CsvColumn<'a> {
    Utf8(&'a datafusion::arrow::array::StringArray),
    LargeUtf8(&'a datafusion::arrow::array::LargeStringArray),
    Utf8View(&'a datafusion::arrow::array::StringViewArray),
    Formatted(ArrayFormatter<'a>),
}

impl<'a> CsvWriter<'a> {
    fn new(schema: &SchemaRef, out: &'a mut dyn Write) -> Self {
        Self {
            out,
            buffer: Vec::with_capacity(CSV_PIECE * 2),
            header: Some(schema.clone()),
            text: String::new(),
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        self.write_header();
        let options = FormatOptions::default().with_null("");
        let columns = batch
            .columns()
            .iter()
            .map(|array| {
                let array = array.as_ref();
                Ok(match array.data_type() {
                    DataType::Utf8 => CsvColumn::Utf8(array.as_string::<i32>()),
                    DataType::LargeUtf8 => CsvColumn::LargeUtf8(array.as_string::<i64>()),
                    DataType::Utf8View => CsvColumn::Utf8View(array.as_string_view()),
                    nested if nested.is_nested() => {
                        return Err(ArrowError::CsvError(format!(
                            "Nested type {nested} is not supported in CSV"
                        ))
                        .into());
                    }
                    _ => CsvColumn::Formatted(ArrayFormatter::try_new(array, &options)?),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        for row in 0..batch.num_rows() {
            let start = self.buffer.len();
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    self.buffer.push(b',');
                }
                let field: &[u8] = match column {
                    CsvColumn::Utf8(a) => string_field(*a, row),
                    CsvColumn::LargeUtf8(a) => string_field(*a, row),
                    CsvColumn::Utf8View(a) => string_field(*a, row),
                    CsvColumn::Formatted(formatter) => {
                        self.text.clear();
                        formatter.value(row).write(&mut self.text).map_err(|e| {
                            ArrowError::CsvError(format!(
                                "Error processing row {}, col {}: {e}",
                                row + 1,
                                i + 1
                            ))
                        })?;
                        self.text.as_bytes()
                    }
                };
                write_csv_field(&mut self.buffer, field);
            }
            end_csv_row(&mut self.buffer, start);
            if self.buffer.len() >= CSV_PIECE {
                self.hand_on()?;
            }
        }
        self.hand_on()
    }

    /// The header row, once, before the first row.
    fn write_header(&mut self) {
        let Some(schema) = self.header.take() else {
            return;
        };
        let start = self.buffer.len();
        for (i, field) in schema.fields().iter().enumerate() {
            if i > 0 {
                self.buffer.push(b',');
            }
            write_csv_field(&mut self.buffer, field.name().as_bytes());
        }
        end_csv_row(&mut self.buffer, start);
    }

    fn hand_on(&mut self) -> Result<(), Error> {
        self.out.write_all(&self.buffer).map_err(output)?;
        self.buffer.clear();
        Ok(())
    }

    /// Ends the rows: CSV without any still has its header row.
    fn finish(mut self) -> Result<(), Error> {
        self.write_header();
        self.hand_on()
    }
}

/// Row `row` of a string column, a null as nothing.
fn string_field<'a>(
    array: impl datafusion::arrow::array::ArrayAccessor<Item = &'a str>,
    row: usize,
) -> &'a [u8] {
    if array.is_null(row) {
        b""
    } else {
        array.value(row).as_bytes()
    }
}

/// Ends the CSV row that began at `start`: a row that wrote nothing (one
/// empty field) is `""`, a line of its own rather than a blank one.
fn end_csv_row(out: &mut Vec<u8>, start: usize) {
    if out.len() == start {
        out.extend_from_slice(b"\"\"");
    }
    out.push(b'\n');
}

/// Appends one CSV field: as it is, or quoted with its quotes doubled when
/// it holds a comma, a quote or a line break.
fn write_csv_field(out: &mut Vec<u8>, field: &[u8]) {
    if !needs_quotes(field) {
        out.extend_from_slice(field);
        return;
    }
    out.push(b'"');
    // Quotes in JSON text are a few bytes apart: a plain loop finds them
    // sooner than a call per quote would.
    for piece in field.split_inclusive(|&b| b == b'"') {
        out.extend_from_slice(piece);
        if piece.last() == Some(&b'"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

/// Whether a CSV field must be quoted. Checked 16 bytes at a time without
/// stopping early inside them, which compilers turn into vector compares.
fn needs_quotes(field: &[u8]) -> bool {
    let special = |b: u8| (b == b',') | (b == b'"') | (b == b'\n') | (b == b'\r');
    let mut chunks = field.chunks_exact(16);
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |quote, &b| quote | special(b)) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| special(b))
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

    /// A string from a few bytes CSV treats specially and a few it does not,
    /// empty about one time in eight.
    fn awkward_string(next: &mut impl FnMut() -> u64) -> String {
        const PIECES: [&str; 9] = [",", "\"", "\n", "\r", "a", "é", " ", "{\"k\":1}", "x,y"];
        let len = (next() >> 33) % 8;
        (0..len)
            .map(|_| PIECES[((next() >> 33) % PIECES.len() as u64) as usize])
            .collect()
    }

    /// What Arrow's CSV writer writes for `batches`, the text Cairn's must match.
    fn arrow_csv(batches: &[RecordBatch]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut writer = datafusion::arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        for batch in batches {
            writer.write(batch).unwrap();
        }
        drop(writer);
        out
    }

    fn csv(schema: &SchemaRef, batches: &[RecordBatch]) -> Vec<u8> {
        let mut out = Vec::new();
        let result = QueryResult {
            schema: schema.clone(),
            batches: batches.to_vec(),
        };
        write(&result, Format::Csv, &mut out).unwrap();
        out
    }

    #[test]
    fn csv_is_written_as_arrows_csv_writer_writes_it() {
        use datafusion::arrow::array::{
            ArrayRef, BooleanArray, Int64Array, LargeStringArray, StringArray, StringViewArray,
            TimestampMillisecondArray,
        };
        use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
        use std::sync::Arc;
        let mut next = crate::tests::numbers(7);
        let schema = Arc::new(Schema::new(vec![
            Field::new("plain, \"name\"", DataType::Utf8, true),
            Field::new("view", DataType::Utf8View, true),
            Field::new("large", DataType::LargeUtf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
        ]));
        let mut batches = Vec::new();
        for _ in 0..6 {
            let rows = (next() >> 33) % 300;
            let strings = |next: &mut dyn FnMut() -> u64| -> Vec<Option<String>> {
                let mut next = || next();
                (0..rows)
                    .map(|_| (!next().is_multiple_of(5)).then(|| awkward_string(&mut next)))
                    .collect()
            };
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(strings(&mut next))),
                Arc::new(StringViewArray::from(strings(&mut next))),
                Arc::new(LargeStringArray::from(strings(&mut next))),
                Arc::new(Int64Array::from_iter((0..rows).map(|_| {
                    (!next().is_multiple_of(4)).then(|| next() as i64 >> 20)
                }))),
                Arc::new(BooleanArray::from_iter((0..rows).map(|_| {
                    (!next().is_multiple_of(4)).then(|| next().is_multiple_of(2))
                }))),
                Arc::new(
                    TimestampMillisecondArray::from_iter(
                        (0..rows)
                            .map(|_| (!next().is_multiple_of(4)).then(|| (next() >> 24) as i64)),
                    )
                    .with_timezone("UTC"),
                ),
            ];
            batches.push(RecordBatch::try_new(schema.clone(), columns).unwrap());
        }
        assert_eq!(
            String::from_utf8(csv(&schema, &batches)).unwrap(),
            String::from_utf8(arrow_csv(&batches)).unwrap()
        );
    }

    #[test]
    fn a_csv_row_of_one_empty_field_is_quoted_and_an_empty_answer_keeps_its_header() {
        use datafusion::arrow::array::StringArray;
        use datafusion::arrow::datatypes::{Field, Schema};
        use std::sync::Arc;
        for name in ["", "name", "a\nb"] {
            let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]));
            let column = StringArray::from(vec![Some(""), None, Some("x"), Some("\"")]);
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(column)]).unwrap();
            assert_eq!(
                csv(&schema, std::slice::from_ref(&batch)),
                arrow_csv(&[batch])
            );
            let empty = RecordBatch::new_empty(schema.clone());
            assert_eq!(csv(&schema, &[]), arrow_csv(&[empty]));
        }
    }
}
