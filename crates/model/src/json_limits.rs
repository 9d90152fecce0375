//! The limits a record's JSON text must keep to be accepted: what I-JSON
//! (RFC 7493) asks of interoperable JSON, and a bound on nesting.
//!
//! A record is delivered as the exact text its producer sent, inside log files
//! that every CloudTrail reader (jq, Python's `json`, Athena, the AWS CLI) must
//! be able to read. Text that is valid JSON by the grammar can still break
//! those readers, and with them every other record of the same log file:
//! - nesting deeper than their recursion limits (Python stops near 1 000);
//! - numbers that are not representable as IEEE 754 doubles (`1e999999999`
//!   overflows to infinity, which Python's `json.dumps` cannot write back and
//!   jq turns into a different number);
//! - `\u` escapes of unpaired UTF-16 surrogates (`"\ud800"`), which are not
//!   Unicode text: strict decoders refuse the whole document.
//!
//! [`check_json_limits`] scans the text once. It assumes the text has already
//! been parsed as JSON (it reports limits, not syntax), so it stays a single
//! cheap pass over bytes.

/// The deepest nesting of objects and arrays accepted. Real CloudTrail
/// records nest about a dozen levels; this leaves ten times the headroom and
/// stays far below any reader's recursion limit.
pub const MAX_JSON_DEPTH: usize = 128;

/// Why a record's JSON text is outside the limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonLimitError {
    /// Objects and arrays nest deeper than [`MAX_JSON_DEPTH`].
    #[error("the record nests objects and arrays deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep,
    /// A number is not representable as a finite double.
    #[error("the number {number} is not representable as a double")]
    NumberOutOfRange {
        /// The number as written (at most 40 characters of it).
        number: String,
    },
    /// A string holds a `\u` escape of an unpaired UTF-16 surrogate.
    #[error(
        "a string holds an unpaired surrogate escape (\\u{escape}), which is not valid Unicode"
    )]
    LoneSurrogate {
        /// The four hex digits of the escape.
        escape: String,
    },
}

/// Checks a syntactically valid JSON text against the limits above.
pub fn check_json_limits(text: &str) -> Result<(), JsonLimitError> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(JsonLimitError::TooDeep);
                }
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'"' => i = scan_string(bytes, i + 1)?,
            b'-' | b'0'..=b'9' => i = scan_number(text, i)?,
            _ => i += 1,
        }
    }
    Ok(())
}

/// Scans a string whose opening quote was just before `start`; returns the
/// index after its closing quote.
fn scan_string(bytes: &[u8], start: usize) -> Result<usize, JsonLimitError> {
    // Most of a record is plain string text: jump to the next quote or
    // backslash (SIMD) unless an escape's surrogate pairing is pending.
    let mut i = match memchr::memchr2(b'"', b'\\', &bytes[start..]) {
        Some(at) => start + at,
        None => return Ok(bytes.len()),
    };
    // A high surrogate escape waiting for its low half.
    let mut pending_high: Option<usize> = None;
    while i < bytes.len() {
        if pending_high.is_none() && bytes[i] != b'"' && bytes[i] != b'\\' {
            match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                Some(at) => i += at,
                None => return Ok(bytes.len()),
            }
        }
        match bytes[i] {
            b'"' => {
                if let Some(at) = pending_high {
                    return Err(lone_surrogate(bytes, at));
                }
                return Ok(i + 1);
            }
            b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                let unit = hex4(bytes, i + 2);
                match unit {
                    Some(0xD800..=0xDBFF) => {
                        if let Some(at) = pending_high {
                            return Err(lone_surrogate(bytes, at));
                        }
                        pending_high = Some(i + 2);
                    }
                    Some(0xDC00..=0xDFFF) => {
                        if pending_high.take().is_none() {
                            return Err(lone_surrogate(bytes, i + 2));
                        }
                    }
                    _ => {
                        if let Some(at) = pending_high {
                            return Err(lone_surrogate(bytes, at));
                        }
                    }
                }
                i += 6;
            }
            b'\\' => {
                if let Some(at) = pending_high {
                    return Err(lone_surrogate(bytes, at));
                }
                i += 2;
            }
            _ => {
                if let Some(at) = pending_high {
                    return Err(lone_surrogate(bytes, at));
                }
                i += 1;
            }
        }
    }
    Ok(i)
}

fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = bytes.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    u16::from_str_radix(text, 16).ok()
}

fn lone_surrogate(bytes: &[u8], at: usize) -> JsonLimitError {
    let escape = bytes
        .get(at..at + 4)
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .unwrap_or_default();
    JsonLimitError::LoneSurrogate { escape }
}

/// Scans a number starting at `start`; returns the index after it.
fn scan_number(text: &str, start: usize) -> Result<usize, JsonLimitError> {
    let bytes = text.as_bytes();
    let mut end = start;
    let mut plain_integer = true;
    while end < bytes.len() {
        match bytes[end] {
            b'0'..=b'9' | b'-' | b'+' => {}
            b'.' | b'e' | b'E' => plain_integer = false,
            _ => break,
        }
        end += 1;
    }
    let number = &text[start..end];
    // Integers of up to 308 digits are finite doubles; only longer ones or
    // exponents can overflow, so most numbers skip the float parse.
    if plain_integer && number.len() <= 300 {
        return Ok(end);
    }
    match number.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(end),
        _ => Err(JsonLimitError::NumberOutOfRange {
            number: number.chars().take(40).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ordinary_records_pass() {
        for text in [
            r#"{"a":1,"b":[1.5,-2,3e10,1.688560107857E9],"c":{"d":"x\"y\\z"}}"#,
            r#"{"s":"\ud83d\ude00 and \u00e9 and \\ud800 literal"}"#,
            r#"{"n":-0.0,"m":1e308,"k":"1e999999999"}"#,
            "[]",
        ] {
            assert_eq!(check_json_limits(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn test_depth_is_bounded() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert_eq!(check_json_limits(&ok), Ok(()));
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH + 1),
            "]".repeat(MAX_JSON_DEPTH + 1)
        );
        assert_eq!(check_json_limits(&deep), Err(JsonLimitError::TooDeep));
        // Brackets inside strings do not count.
        let quoted = format!("{{\"a\":\"{}\"}}", "[".repeat(1000));
        assert_eq!(check_json_limits(&quoted), Ok(()));
    }

    #[test]
    fn test_numbers_must_be_finite_doubles() {
        for bad in ["1e999999999", "-1e400", "1E309"] {
            let text = format!("{{\"n\":{bad}}}");
            assert!(
                matches!(
                    check_json_limits(&text),
                    Err(JsonLimitError::NumberOutOfRange { .. })
                ),
                "{bad}"
            );
        }
        let long = format!("{{\"n\":{}}}", "9".repeat(400));
        assert!(check_json_limits(&long).is_err());
        // Underflow to zero loses nothing a reader would refuse.
        assert_eq!(check_json_limits(r#"{"n":1e-400}"#), Ok(()));
    }

    #[test]
    fn test_unpaired_surrogates_are_refused() {
        for bad in [
            r#"{"s":"\ud800"}"#,
            r#"{"s":"\udc00"}"#,
            r#"{"s":"a\ud800b"}"#,
            r#"{"s":"\ud800\ud800\udc00"}"#,
            r#"{"s":"\ud800\n"}"#,
            r#"{"\udfff":1}"#,
        ] {
            assert!(
                matches!(
                    check_json_limits(bad),
                    Err(JsonLimitError::LoneSurrogate { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(check_json_limits(r#"{"s":"\uD800\uDC00"}"#), Ok(()));
    }
}
