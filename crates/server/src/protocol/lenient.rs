//! Typed inputs read once for two protocols: the JSON protocols send
//! numbers, booleans and timestamps (epoch seconds) typed; the query
//! protocol sends every value as text (timestamps in ISO 8601). These
//! `deserialize_with` functions take either.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, de::Error};
use serde_json::Value;

fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An optional number (`Threshold`, `Value`).
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => number_of(&v)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("{v} is not a number"))),
    }
}

/// An optional integer (`Period`, `EvaluationPeriods`).
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(v) => Err(D::Error::custom(format!("{v} is not an integer"))),
    }
}

/// An optional boolean (`ActionsEnabled`), `true`/`false` as text too.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(D::Error::custom(format!("{v} is not a boolean"))),
    }
}

/// A timestamp from epoch seconds (a number or its text) or ISO 8601.
pub fn timestamp_of(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => epoch(n.as_f64()?),
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| epoch(s.trim().parse().ok()?)),
        _ => None,
    }
}

fn epoch(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() {
        return None;
    }
    Utc.timestamp_millis_opt((seconds * 1000.0).round() as i64)
        .single()
}

/// An optional timestamp (`StartTime`, `Timestamp`).
pub fn opt_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => timestamp_of(&v)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("{v} is not a timestamp"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Shape {
        #[serde(default, deserialize_with = "opt_f64")]
        threshold: Option<f64>,
        #[serde(default, deserialize_with = "opt_i64")]
        period: Option<i64>,
        #[serde(default, deserialize_with = "opt_bool")]
        enabled: Option<bool>,
        #[serde(default, deserialize_with = "opt_timestamp")]
        at: Option<DateTime<Utc>>,
    }

    fn read(json: Value) -> Result<Shape, serde_json::Error> {
        serde_json::from_value(json)
    }

    #[test]
    fn test_typed_and_text_values_read_alike() {
        let typed = read(serde_json::json!({"threshold": 5, "period": 300, "enabled": true, "at": 1_700_000_000}))
            .expect("typed");
        let text = read(serde_json::json!({"threshold": "5", "period": "300", "enabled": "true", "at": "2023-11-14T22:13:20Z"}))
            .expect("text");
        assert_eq!(
            (typed.threshold, typed.period, typed.enabled),
            (Some(5.0), Some(300), Some(true))
        );
        assert_eq!(
            (text.threshold, text.period, text.enabled),
            (Some(5.0), Some(300), Some(true))
        );
        assert_eq!(typed.at, text.at);
        let none = read(serde_json::json!({})).expect("empty");
        assert_eq!(
            (none.threshold, none.period, none.enabled, none.at),
            (None, None, None, None)
        );
    }

    #[test]
    fn test_wrong_values_are_refused() {
        assert!(read(serde_json::json!({"period": "5.5"})).is_err());
        assert!(read(serde_json::json!({"threshold": "five"})).is_err());
        assert!(read(serde_json::json!({"enabled": "yes"})).is_err());
        assert!(read(serde_json::json!({"at": "yesterday"})).is_err());
    }
}
