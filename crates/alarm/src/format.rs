//! How CloudWatch prints numbers and times in reasons, reason data,
//! history data and notifications (its Java heritage shows).

use chrono::{DateTime, Utc};

/// A double as Java's `Double.toString` prints it, which is what appears in
/// `StateReason` (`5.0`, `0.059`, `1.0E7`): the shortest text that reads
/// back to the same value, always with a fractional part, and scientific
/// notation below 10⁻³ and from 10⁷.
pub fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    let a = v.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_owned()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

/// `2026-02-12T13:40:00.000+0000`: the timestamps inside reason data,
/// history data and notifications.
pub fn cw_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// `12/02/26 13:40:00` (day/month/year): a datapoint's period start in a
/// `StateReason`.
pub fn reason_timestamp(t: DateTime<Utc>) -> String {
    t.format("%d/%m/%y %H:%M:%S").to_string()
}
