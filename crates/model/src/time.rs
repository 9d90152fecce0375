//! The time formats CloudTrail writes.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Parses a record's `eventTime`: ISO 8601 in UTC (`2024-05-01T10:17:28Z`,
/// fractional seconds and a `+00:00` offset accepted). Other offsets are
/// refused: CloudTrail times are always UTC.
pub fn parse_event_time(value: &str) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(value).ok()?;
    if parsed.offset().local_minus_utc() != 0 {
        return None;
    }
    Some(parsed.with_timezone(&Utc))
}

/// Parses the `YYYY-MM-DDTHH:MM:SSZ` form exactly (digest and status fields).
pub fn parse_second_utc(value: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%SZ")
        .ok()
        .map(|n| n.and_utc())
}

/// Formats a time as CloudTrail writes record and digest times: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_second_utc(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Formats the minute-precision stamp of a log file name: `YYYYMMDDTHHmmZ`.
pub fn format_log_file_stamp(time: DateTime<Utc>) -> String {
    time.format("%Y%m%dT%H%MZ").to_string()
}

/// Formats the second-precision stamp of a digest file name: `YYYYMMDDTHHmmssZ`.
pub fn format_digest_file_stamp(time: DateTime<Utc>) -> String {
    time.format("%Y%m%dT%H%M%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_event_time_forms() {
        assert!(parse_event_time("2023-07-10T11:42:18Z").is_some());
        assert!(parse_event_time("2023-07-10T11:42:18.123Z").is_some());
        assert!(parse_event_time("2023-07-10T11:42:18+00:00").is_some());
        assert!(parse_event_time("2023-07-10T11:42:18+02:00").is_none());
        assert!(parse_event_time("2023-07-10 11:42:18").is_none());
        assert!(parse_event_time("yesterday").is_none());
        let t = parse_event_time("2015-08-01T02:10:59Z").unwrap();
        assert_eq!(format_log_file_stamp(t), "20150801T0210Z");
        assert_eq!(format_digest_file_stamp(t), "20150801T021059Z");
        assert_eq!(format_second_utc(t), "2015-08-01T02:10:59Z");
    }
}
