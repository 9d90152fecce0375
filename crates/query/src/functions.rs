//! The Trino (Athena, CloudTrail Lake) functions CloudTrail queries use that
//! DataFusion lacks or names differently: `date_format` with MySQL-style
//! specifiers, `date_add`, `date_diff`, `from_iso8601_timestamp`,
//! `to_iso8601`, `json_extract`, `json_extract_scalar`, `split` and
//! `contains` on arrays. DataFusion's own `current_date`, `now`,
//! `regexp_like`, `cardinality`, `element_at`, `approx_distinct` and
//! `TRY_CAST` already behave as Trino's for these queries.
//!
//! Every function here works row by row on arrays: the queries call them on
//! constants (folded once at planning) or on one column, where the per-row
//! work is a parse or a format either way.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDateTime, TimeZone, Timelike, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListBuilder, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Which Trino function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    DateFormat,
    DateAdd,
    DateDiff,
    FromIso8601Timestamp,
    ToIso8601,
    JsonExtract,
    JsonExtractScalar,
    Split,
    Contains,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::DateFormat => "date_format",
            Kind::DateAdd => "date_add",
            Kind::DateDiff => "date_diff",
            Kind::FromIso8601Timestamp => "from_iso8601_timestamp",
            Kind::ToIso8601 => "to_iso8601",
            Kind::JsonExtract => "json_extract",
            Kind::JsonExtractScalar => "json_extract_scalar",
            Kind::Split => "split",
            Kind::Contains => "contains",
        }
    }

    fn arity(self) -> usize {
        match self {
            Kind::DateAdd | Kind::DateDiff => 3,
            Kind::FromIso8601Timestamp | Kind::ToIso8601 => 1,
            _ => 2,
        }
    }
}

/// One Trino function as a DataFusion scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TrinoFunction {
    kind: Kind,
    signature: Signature,
}

/// The timestamps these functions produce: microseconds, UTC.
fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

impl ScalarUDFImpl for TrinoFunction {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.len() != self.kind.arity() {
            return plan_err!(
                "Function {} takes {} arguments, not {}",
                self.kind.name(),
                self.kind.arity(),
                arg_types.len()
            );
        }
        Ok(match self.kind {
            Kind::DateFormat | Kind::ToIso8601 | Kind::JsonExtract | Kind::JsonExtractScalar => {
                DataType::Utf8
            }
            Kind::DateAdd | Kind::FromIso8601Timestamp => timestamp_type(),
            Kind::DateDiff => DataType::Int64,
            Kind::Split => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            Kind::Contains => DataType::Boolean,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out: ArrayRef = match self.kind {
            Kind::DateFormat => {
                let times = times(&arrays[0])?;
                let formats = strings(&arrays[1])?;
                let values: StringArray = (0..rows)
                    .map(|i| match (times[i], formats.value_at(i)) {
                        (Some(t), Some(f)) => Some(mysql_format(&t, f)),
                        _ => None,
                    })
                    .collect();
                Arc::new(values)
            }
            Kind::DateAdd => {
                let units = strings(&arrays[0])?;
                let amounts = cast(&arrays[1], &DataType::Int64)?;
                let amounts = amounts.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                let times = times(&arrays[2])?;
                let mut values = Vec::with_capacity(rows);
                for (i, time) in times.iter().enumerate().take(rows) {
                    values.push(match (units.value_at(i), amounts.is_valid(i), time) {
                        (Some(unit), true, Some(t)) => {
                            Some(add(*t, unit, amounts.value(i))?.timestamp_micros())
                        }
                        _ => None,
                    });
                }
                Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
            }
            Kind::DateDiff => {
                let units = strings(&arrays[0])?;
                let from = times(&arrays[1])?;
                let to = times(&arrays[2])?;
                let mut values = Vec::with_capacity(rows);
                for i in 0..rows {
                    values.push(match (units.value_at(i), from[i], to[i]) {
                        (Some(unit), Some(a), Some(b)) => Some(diff(unit, a, b)?),
                        _ => None,
                    });
                }
                Arc::new(Int64Array::from(values))
            }
            Kind::FromIso8601Timestamp => {
                let texts = strings(&arrays[0])?;
                let mut values = Vec::with_capacity(rows);
                for i in 0..rows {
                    values.push(match texts.value_at(i) {
                        Some(text) => Some(
                            parse_iso8601(text)
                                .ok_or_else(|| {
                                    datafusion::error::DataFusionError::Execution(format!(
                                        "Invalid ISO 8601 timestamp: {text}"
                                    ))
                                })?
                                .timestamp_micros(),
                        ),
                        None => None,
                    });
                }
                Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
            }
            Kind::ToIso8601 => {
                let times = times(&arrays[0])?;
                let values: StringArray = times
                    .iter()
                    .map(|t| t.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()))
                    .collect();
                Arc::new(values)
            }
            Kind::JsonExtract | Kind::JsonExtractScalar => {
                let texts = strings(&arrays[0])?;
                let paths = strings(&arrays[1])?;
                let scalar = self.kind == Kind::JsonExtractScalar;
                let mut values = Vec::with_capacity(rows);
                for i in 0..rows {
                    values.push(match (texts.value_at(i), paths.value_at(i)) {
                        (Some(text), Some(path)) => json_path(text, path, scalar)?,
                        _ => None,
                    });
                }
                Arc::new(StringArray::from(values))
            }
            Kind::Split => {
                let texts = strings(&arrays[0])?;
                let delimiters = strings(&arrays[1])?;
                let mut builder = ListBuilder::new(StringBuilder::new());
                for i in 0..rows {
                    match (texts.value_at(i), delimiters.value_at(i)) {
                        (Some(text), Some(delimiter)) if !delimiter.is_empty() => {
                            for part in text.split(delimiter) {
                                builder.values().append_value(part);
                            }
                            builder.append(true);
                        }
                        _ => builder.append(false),
                    }
                }
                Arc::new(builder.finish())
            }
            Kind::Contains => Arc::new(contains(&arrays[0], &arrays[1], rows)?),
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// A string argument, whatever string type it arrives as.
struct Strings(StringArray);

impl Strings {
    fn value_at(&self, i: usize) -> Option<&str> {
        (self.0.len() > i && self.0.is_valid(i)).then(|| self.0.value(i))
    }
}

fn strings(array: &ArrayRef) -> Result<Strings> {
    let utf8 = cast(array, &DataType::Utf8)?;
    Ok(Strings(utf8.as_string::<i32>().clone()))
}

/// Times of an argument: dates and timestamps of any unit and zone (as UTC),
/// and ISO-8601 strings, as Athena and Lake compare them.
fn times(array: &ArrayRef) -> Result<Vec<Option<DateTime<Utc>>>> {
    match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let texts = strings(array)?;
            Ok((0..array.len())
                .map(|i| texts.value_at(i).and_then(parse_iso8601))
                .collect())
        }
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            let micros = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            let micros =
                micros.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
            Ok((0..array.len())
                .map(|i| {
                    micros
                        .is_valid(i)
                        .then(|| Utc.timestamp_micros(micros.value(i)).single())
                        .flatten()
                })
                .collect())
        }
        DataType::Null => Ok(vec![None; array.len()]),
        other => exec_err!("Expected a date, timestamp or ISO 8601 string, not {other}"),
    }
}

/// An ISO-8601 time as CloudTrail writes it (`2024-01-05T10:00:00Z`), with
/// fractions or an offset, or as SQL writes it (`2024-01-05 10:00:00`,
/// `2024-01-05`).
pub fn parse_iso8601(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), format) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn add(t: DateTime<Utc>, unit: &str, amount: i64) -> Result<DateTime<Utc>> {
    let months = |n: i64| -> Result<DateTime<Utc>> {
        let shifted = if n >= 0 {
            u32::try_from(n)
                .ok()
                .and_then(|n| t.checked_add_months(Months::new(n)))
        } else {
            u32::try_from(-n)
                .ok()
                .and_then(|n| t.checked_sub_months(Months::new(n)))
        };
        shifted.map_or_else(|| exec_err!("date_add out of range"), Ok)
    };
    let duration = match unit.to_ascii_lowercase().as_str() {
        "millisecond" => Duration::try_milliseconds(amount),
        "second" => Duration::try_seconds(amount),
        "minute" => Duration::try_minutes(amount),
        "hour" => Duration::try_hours(amount),
        "day" => Duration::try_days(amount),
        "week" => Duration::try_weeks(amount),
        "month" => return months(amount),
        "quarter" => return months(amount.saturating_mul(3)),
        "year" => return months(amount.saturating_mul(12)),
        other => return exec_err!("'{other}' is not a valid Time field"),
    };
    duration
        .and_then(|d| t.checked_add_signed(d))
        .map_or_else(|| exec_err!("date_add out of range"), Ok)
}

fn diff(unit: &str, a: DateTime<Utc>, b: DateTime<Utc>) -> Result<i64> {
    let span = b - a;
    let whole_months = || {
        let mut months =
            i64::from(b.year() - a.year()) * 12 + i64::from(b.month()) - i64::from(a.month());
        // A month counts once its day and time are reached, as Trino counts.
        let a_rest = (a.day(), a.num_seconds_from_midnight(), a.nanosecond());
        let b_rest = (b.day(), b.num_seconds_from_midnight(), b.nanosecond());
        if months > 0 && b_rest < a_rest {
            months -= 1;
        } else if months < 0 && b_rest > a_rest {
            months += 1;
        }
        months
    };
    Ok(match unit.to_ascii_lowercase().as_str() {
        "millisecond" => span.num_milliseconds(),
        "second" => span.num_seconds(),
        "minute" => span.num_minutes(),
        "hour" => span.num_hours(),
        "day" => span.num_days(),
        "week" => span.num_weeks(),
        "month" => whole_months(),
        "quarter" => whole_months() / 3,
        "year" => whole_months() / 12,
        other => return exec_err!("'{other}' is not a valid Time field"),
    })
}

/// MySQL's `DATE_FORMAT` specifiers, as Trino's `date_format` reads them.
pub fn mysql_format(t: &DateTime<Utc>, format: &str) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        let hour12 = match t.hour() % 12 {
            0 => 12,
            h => h,
        };
        let piece = match spec {
            'a' => t.format("%a").to_string(),
            'b' => t.format("%b").to_string(),
            'c' => t.month().to_string(),
            'd' => format!("{:02}", t.day()),
            'e' => t.day().to_string(),
            'f' => format!("{:06}", t.nanosecond() / 1_000),
            'H' => format!("{:02}", t.hour()),
            'h' | 'I' => format!("{hour12:02}"),
            'i' => format!("{:02}", t.minute()),
            'j' => format!("{:03}", t.ordinal()),
            'k' => t.hour().to_string(),
            'l' => hour12.to_string(),
            'M' => t.format("%B").to_string(),
            'm' => format!("{:02}", t.month()),
            'p' => (if t.hour() < 12 { "AM" } else { "PM" }).to_owned(),
            'r' => format!(
                "{hour12:02}:{:02}:{:02} {}",
                t.minute(),
                t.second(),
                if t.hour() < 12 { "AM" } else { "PM" }
            ),
            'S' | 's' => format!("{:02}", t.second()),
            'T' => t.format("%H:%M:%S").to_string(),
            'W' => t.format("%A").to_string(),
            'Y' => format!("{:04}", t.year()),
            'y' => format!("{:02}", t.year().rem_euclid(100)),
            '%' => "%".to_owned(),
            other => other.to_string(),
        };
        out.push_str(&piece);
    }
    out
}

/// The JSONPath subset Trino's `json_extract` functions take: `$`, `.name`,
/// `["name"]` and `[index]`. The scalar form answers strings, numbers and
/// booleans as text and anything else as null.
fn json_path(text: &str, path: &str, scalar: bool) -> Result<Option<String>> {
    let Ok(document) = serde_json::from_str::<serde_json::Value>(text) else {
        return Ok(None);
    };
    let Some(mut rest) = path.trim().strip_prefix('$') else {
        return exec_err!("Invalid JSON path: '{path}'");
    };
    let mut node = &document;
    while !rest.is_empty() {
        let next = if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let (name, tail) = after.split_at(end);
            rest = tail;
            node.get(name)
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return exec_err!("Invalid JSON path: '{path}'");
            };
            let (inside, tail) = after.split_at(end);
            rest = &tail[1..];
            let inside = inside.trim();
            if let Some(name) = inside
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| inside.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            {
                node.get(name)
            } else if let Ok(index) = inside.parse::<usize>() {
                node.get(index)
            } else {
                return exec_err!("Invalid JSON path: '{path}'");
            }
        } else {
            return exec_err!("Invalid JSON path: '{path}'");
        };
        match next {
            Some(n) => node = n,
            None => return Ok(None),
        }
    }
    Ok(match (scalar, node) {
        (true, serde_json::Value::String(s)) => Some(s.clone()),
        (true, serde_json::Value::Number(n)) => Some(n.to_string()),
        (true, serde_json::Value::Bool(b)) => Some(b.to_string()),
        (true, _) => None,
        (false, n) => Some(n.to_string()),
    })
}

/// Trino's `contains(array, element)`; on two strings, whether the first holds the second.
fn contains(haystack: &ArrayRef, needle: &ArrayRef, rows: usize) -> Result<BooleanArray> {
    let needles = strings(needle)?;
    match haystack.data_type() {
        DataType::List(_) => {
            let lists = haystack.as_list::<i32>();
            let mut values = Vec::with_capacity(rows);
            for i in 0..rows {
                if lists.is_null(i) || needles.value_at(i).is_none() {
                    values.push(None);
                    continue;
                }
                let items = strings(&lists.value(i))?;
                let wanted = needles.value_at(i);
                values.push(Some(
                    (0..items.0.len()).any(|j| items.value_at(j) == wanted),
                ));
            }
            Ok(BooleanArray::from(values))
        }
        _ => {
            let texts = strings(haystack)?;
            Ok((0..rows)
                .map(|i| match (texts.value_at(i), needles.value_at(i)) {
                    (Some(t), Some(n)) => Some(t.contains(n)),
                    _ => None,
                })
                .collect())
        }
    }
}

/// Every Trino function of this module, ready to register.
pub fn trino_functions() -> Vec<ScalarUDF> {
    [
        Kind::DateFormat,
        Kind::DateAdd,
        Kind::DateDiff,
        Kind::FromIso8601Timestamp,
        Kind::ToIso8601,
        Kind::JsonExtract,
        Kind::JsonExtractScalar,
        Kind::Split,
        Kind::Contains,
    ]
    .into_iter()
    .map(|kind| {
        let volatility = Volatility::Immutable;
        ScalarUDF::new_from_impl(TrinoFunction {
            kind,
            signature: Signature::any(kind.arity(), volatility),
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse_iso8601(text).unwrap()
    }

    #[test]
    fn test_mysql_specifiers() {
        let t = at("2024-03-09T07:05:04.123456Z");
        assert_eq!(
            mysql_format(&t, "%Y-%m-%dT%H:%i:%sZ"),
            "2024-03-09T07:05:04Z"
        );
        assert_eq!(
            mysql_format(&t, "%y %c %e %k %l %p %j %f %%"),
            "24 3 9 7 7 AM 069 123456 %"
        );
        assert_eq!(
            mysql_format(&t, "%W %M %a %b %T %r"),
            "Saturday March Sat Mar 07:05:04 07:05:04 AM"
        );
    }

    #[test]
    fn test_date_add_and_diff() {
        let t = at("2024-01-31T00:00:00Z");
        assert_eq!(add(t, "day", -7).unwrap(), at("2024-01-24T00:00:00Z"));
        assert_eq!(add(t, "month", 1).unwrap(), at("2024-02-29T00:00:00Z"));
        assert_eq!(add(t, "HOUR", 25).unwrap(), at("2024-02-01T01:00:00Z"));
        assert!(add(t, "fortnight", 1).is_err());
        assert_eq!(
            diff("day", at("2024-01-01"), at("2024-01-08T12:00:00Z")).unwrap(),
            7
        );
        assert_eq!(
            diff("month", at("2024-01-31"), at("2024-02-29")).unwrap(),
            0
        );
        assert_eq!(
            diff("month", at("2024-01-31"), at("2024-03-31")).unwrap(),
            2
        );
        assert_eq!(diff("year", at("2020-06-01"), at("2024-05-31")).unwrap(), 3);
    }

    #[test]
    fn test_iso8601_forms() {
        assert_eq!(at("2024-01-05 10:00:00"), at("2024-01-05T10:00:00Z"));
        assert_eq!(at("2024-01-05T12:00:00+02:00"), at("2024-01-05T10:00:00Z"));
        assert_eq!(at("2024-01-05"), at("2024-01-05T00:00:00Z"));
        assert!(parse_iso8601("yesterday").is_none());
    }

    #[test]
    fn test_json_paths() {
        let doc = r#"{"a": {"b": [10, {"c": "x"}]}, "key id": true}"#;
        assert_eq!(
            json_path(doc, "$.a.b[1].c", true).unwrap().as_deref(),
            Some("x")
        );
        assert_eq!(
            json_path(doc, "$.a.b[0]", true).unwrap().as_deref(),
            Some("10")
        );
        assert_eq!(
            json_path(doc, "$[\"key id\"]", true).unwrap().as_deref(),
            Some("true")
        );
        assert_eq!(json_path(doc, "$.a.b", true).unwrap(), None);
        assert_eq!(
            json_path(doc, "$.a.b", false).unwrap().as_deref(),
            Some(r#"[10,{"c":"x"}]"#)
        );
        assert_eq!(json_path(doc, "$.missing", false).unwrap(), None);
        assert!(json_path(doc, "a.b", true).is_err());
        assert_eq!(json_path("not json", "$.a", true).unwrap(), None);
    }
}
