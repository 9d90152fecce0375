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
            b'"' => {
                let (end, checked) = scan_string(bytes, i + 1, &mut false);
                checked?;
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let (end, checked) = scan_number(text, i);
                checked?;
                i = end;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// One record of a log file's text, as [`split_log_file`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedRecord<'a> {
    /// The record's text, without the whitespace around it.
    pub text: &'a str,
    /// What [`check_json_limits`] says of it.
    pub limits: Result<(), JsonLimitError>,
    /// Whether a string of it starts with `$` or it holds a `\u` escape:
    /// without either, no key can be one that a JSON library reserves for
    /// itself (serde_json's `$serde_json::private::RawValue`).
    pub dollar_or_unicode_escape: bool,
}

/// Finds the records of a CloudTrail log file's text, `{"Records":[...]}`,
/// and checks each against the limits on the way: one pass over the text
/// where finding the records with a JSON parser and then scanning each would
/// take two. Record syntax is not checked here (the caller parses each
/// record); each record's extent is found by its matching brackets.
///
/// `None` when the text is not plainly of that shape: a key other than
/// `Records` (or spelled with escapes), a record that is not an object,
/// brackets that do not match, anything after the closing brace. The caller
/// then parses the text in full, which refuses it or reads it the slow way.
pub fn split_log_file(text: &str) -> Option<Vec<ScannedRecord<'_>>> {
    let bytes = text.as_bytes();
    let mut i = skip_whitespace(bytes, 0);
    for token in [&b"{"[..], b"\"Records\"", b":", b"["] {
        if !bytes[i..].starts_with(token) {
            return None;
        }
        i = skip_whitespace(bytes, i + token.len());
    }
    let mut records = Vec::new();
    let mut closers = Vec::new();
    if bytes.get(i) != Some(&b']') {
        loop {
            if bytes.get(i) != Some(&b'{') {
                return None;
            }
            let mut dollar_or_unicode_escape = false;
            let (end, limits) = scan_object(text, i, &mut closers, &mut dollar_or_unicode_escape)?;
            records.push(ScannedRecord {
                text: &text[i..end],
                limits,
                dollar_or_unicode_escape,
            });
            i = skip_whitespace(bytes, end);
            match bytes.get(i) {
                Some(b',') => i = skip_whitespace(bytes, i + 1),
                Some(b']') => break,
                _ => return None,
            }
        }
    }
    i = skip_whitespace(bytes, i + 1);
    if bytes.get(i) != Some(&b'}') || skip_whitespace(bytes, i + 1) != bytes.len() {
        return None;
    }
    Some(records)
}

/// How deep [`split_log_file`] follows a record's brackets before it leaves
/// the text to a parser.
const SCAN_DEPTH_CAP: usize = 4 * MAX_JSON_DEPTH;

/// JSON's whitespace from `at` on; returns where it ends.
fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// Scans the object or array opening at `start` to its matching closing
/// bracket, checking the limits as [`check_json_limits`] does (the first
/// problem in the text is the one reported); returns the index after it.
/// `None` when a bracket does not match or the text ends first. Sets
/// `dollar_or_unicode_escape` when a string starts with `$` or holds a `\u`
/// escape.
fn scan_object(
    text: &str,
    start: usize,
    closers: &mut Vec<u8>,
    dollar_or_unicode_escape: &mut bool,
) -> Option<(usize, Result<(), JsonLimitError>)> {
    let bytes = text.as_bytes();
    closers.clear();
    let mut first_problem = Ok(());
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            open @ (b'{' | b'[') => {
                // Far past the limit: the record is refused whatever else it
                // holds, and a parser tells that without this stack growing.
                if closers.len() >= SCAN_DEPTH_CAP {
                    return None;
                }
                closers.push(if open == b'{' { b'}' } else { b']' });
                if closers.len() > MAX_JSON_DEPTH && first_problem.is_ok() {
                    first_problem = Err(JsonLimitError::TooDeep);
                }
                i += 1;
            }
            close @ (b'}' | b']') => {
                if closers.pop() != Some(close) {
                    return None;
                }
                i += 1;
                if closers.is_empty() {
                    return Some((i, first_problem));
                }
            }
            b'"' => {
                *dollar_or_unicode_escape |= bytes.get(i + 1) == Some(&b'$');
                let (end, checked) = scan_string(bytes, i + 1, dollar_or_unicode_escape);
                if end > bytes.len() {
                    return None;
                }
                if first_problem.is_ok() {
                    first_problem = checked;
                }
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let (end, checked) = scan_number(text, i);
                if first_problem.is_ok() {
                    first_problem = checked;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    None
}

/// Scans a string whose opening quote was just before `start`; returns the
/// index after its closing quote (past the text's end, by one, when it has
/// none) and whether its escapes are valid Unicode; sets `unicode_escape`
/// when it holds a `\u` escape.
fn scan_string(
    bytes: &[u8],
    start: usize,
    unicode_escape: &mut bool,
) -> (usize, Result<(), JsonLimitError>) {
    // Most of a record is plain string text: jump to the next quote or
    // backslash (SIMD) unless an escape's surrogate pairing is pending.
    let mut i = match memchr::memchr2(b'"', b'\\', &bytes[start..]) {
        Some(at) => start + at,
        None => return (bytes.len() + 1, Ok(())),
    };
    // A high surrogate escape waiting for its low half.
    let mut pending_high: Option<usize> = None;
    while i < bytes.len() {
        if pending_high.is_none() && bytes[i] != b'"' && bytes[i] != b'\\' {
            match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                Some(at) => i += at,
                None => return (bytes.len() + 1, Ok(())),
            }
        }
        match bytes[i] {
            b'"' => {
                if let Some(at) = pending_high {
                    return (i + 1, Err(lone_surrogate(bytes, at)));
                }
                return (i + 1, Ok(()));
            }
            b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                *unicode_escape = true;
                let unit = hex4(bytes, i + 2);
                match unit {
                    Some(0xD800..=0xDBFF) => {
                        if let Some(at) = pending_high {
                            return (string_end(bytes, i), Err(lone_surrogate(bytes, at)));
                        }
                        pending_high = Some(i + 2);
                    }
                    Some(0xDC00..=0xDFFF) => {
                        if pending_high.take().is_none() {
                            return (string_end(bytes, i), Err(lone_surrogate(bytes, i + 2)));
                        }
                    }
                    _ => {
                        if let Some(at) = pending_high {
                            return (string_end(bytes, i), Err(lone_surrogate(bytes, at)));
                        }
                    }
                }
                i += 6;
            }
            b'\\' => {
                if let Some(at) = pending_high {
                    return (string_end(bytes, i), Err(lone_surrogate(bytes, at)));
                }
                i += 2;
            }
            _ => {
                if let Some(at) = pending_high {
                    return (string_end(bytes, i), Err(lone_surrogate(bytes, at)));
                }
                i += 1;
            }
        }
    }
    (bytes.len() + 1, Ok(()))
}

/// The index after the closing quote of the string that `at` is inside (at
/// a character or the start of an escape); past the end, by one, without one.
fn string_end(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() {
        match memchr::memchr2(b'"', b'\\', &bytes[at..]) {
            Some(found) if bytes[at + found] == b'"' => return at + found + 1,
            Some(found) => at += found + 2,
            None => break,
        }
    }
    bytes.len() + 1
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

/// Scans a number starting at `start`; returns the index after it and
/// whether it is a finite double.
fn scan_number(text: &str, start: usize) -> (usize, Result<(), JsonLimitError>) {
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
        return (end, Ok(()));
    }
    match number.parse::<f64>() {
        Ok(value) if value.is_finite() => (end, Ok(())),
        _ => (
            end,
            Err(JsonLimitError::NumberOutOfRange {
                number: number.chars().take(40).collect(),
            }),
        ),
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

    /// What a JSON parser and [`check_json_limits`] make of a log file's text.
    fn parsed(text: &str) -> Option<Vec<(String, Result<(), JsonLimitError>)>> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body<'a> {
            #[serde(rename = "Records", borrow)]
            records: Vec<&'a serde_json::value::RawValue>,
        }
        let body: Body = serde_json::from_str(text).ok()?;
        Some(
            body.records
                .iter()
                .map(|r| (r.get().to_owned(), check_json_limits(r.get())))
                .collect(),
        )
    }

    fn split(text: &str) -> Option<Vec<(String, Result<(), JsonLimitError>)>> {
        split_log_file(text).map(|records| {
            records
                .into_iter()
                .map(|r| (r.text.to_owned(), r.limits))
                .collect()
        })
    }

    #[test]
    fn test_split_log_file_finds_what_a_parser_and_the_limits_find() {
        let pieces = [
            r#"{"eventVersion":"1.08","eventTime":"2024-05-01T10:00:00Z","n":12}"#,
            r#"{"a":"x\"}]{[y","b":[{"c":[1,2,{"d":null}]}],"e":-1.5e3}"#,
            r#"{"s":"\ud83d\ude00 \u00e9 \\ud800"}"#,
            r#"{"s":"\ud800"}"#,
            r#"{"n":1e999999999,"s":"\udc00"}"#,
            r#"{"s":"\udc00","n":1e999}"#,
            r#"{"k":[]}"#,
            r#"{}"#,
            r#"{ "spaced" : [ 1 , 2 ] , "t" : true }"#,
        ];
        let deep = format!(
            "{{\"d\":{}{}}}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        let deep_then_surrogate = format!(
            "{{\"d\":{}{},\"s\":\"\\ud800\"}}",
            "[".repeat(MAX_JSON_DEPTH + 5),
            "]".repeat(MAX_JSON_DEPTH + 5)
        );
        let mut pieces: Vec<String> = pieces.iter().map(|p| (*p).to_owned()).collect();
        pieces.push(deep);
        pieces.push(deep_then_surrogate);
        let separators = ["", " ", "\n", "\r\n\t "];
        let mut seed = 7u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as usize) % n
        };
        for round in 0..300 {
            let count = next(6);
            let ws = separators[round % separators.len()];
            let records: Vec<&str> = (0..count)
                .map(|_| pieces[next(pieces.len())].as_str())
                .collect();
            let joined = records.join(&format!("{ws},{ws}"));
            let text = format!("{ws}{{{ws}\"Records\"{ws}:{ws}[{ws}{joined}{ws}]{ws}}}{ws}");
            let expected = parsed(&text);
            assert!(expected.is_some(), "{text}");
            assert_eq!(split(&text), expected, "{text}");
        }
    }

    #[test]
    fn test_split_log_file_leaves_other_shapes_to_a_parser() {
        for text in [
            r#"{"Records":[1]}"#,
            r#"{"Records":[{"a":1]]}"#,
            r#"{"Records":[{"a":1}}]}"#,
            r#"{"Records":[{"a":1} {"b":2}]}"#,
            r#"{"Records":[{"a":1},]}"#,
            r#"{"Records":[{"a":"unterminated}]}"#,
            r#"{"Records":[{"a":1}]} x"#,
            r#"{"Records":[{"a":1}],"Other":1}"#,
            r#"{"Rec\u006frds":[{"a":1}]}"#,
            r#"{"Records":{}}"#,
            r#"[{"a":1}]"#,
            "",
        ] {
            assert_eq!(split_log_file(text), None, "{text}");
        }
        assert_eq!(split(r#" { "Records" : [ ] } "#), Some(Vec::new()));
        // Nesting far past the limit is left to a parser too.
        let deep = format!(
            r#"{{"Records":[{{"d":{}{}}}]}}"#,
            "[".repeat(SCAN_DEPTH_CAP),
            "]".repeat(SCAN_DEPTH_CAP)
        );
        assert_eq!(split_log_file(&deep), None);
    }

    #[test]
    fn test_split_log_file_sees_dollar_strings_and_unicode_escapes() {
        for (record, expected) in [
            (r#"{"$k":1}"#, true),
            (r#"{"a":"x\u0041"}"#, true),
            (r#"{"a":["$"]}"#, true),
            (r#"{"a":"b$","c":"\\u","d":"\"$"}"#, false),
            (r#"{"a":"x","n":[1,{"b":null}]}"#, false),
        ] {
            let body = format!(r#"{{"Records":[{record}]}}"#);
            let scanned = split_log_file(&body).unwrap();
            assert_eq!(scanned[0].dollar_or_unicode_escape, expected, "{record}");
        }
    }
}
