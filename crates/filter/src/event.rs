//! A log event as the matcher sees it: the message, parsed as JSON at most
//! once and split into space-delimited fields at most once, however many
//! patterns look at it.

use std::cell::OnceCell;

use serde_json::Value;

/// One log event message, with lazily computed views.
///
/// Build one per event and match every pattern against it: the first JSON
/// pattern parses the message, the first space-delimited pattern splits it,
/// and later patterns reuse the result.
#[derive(Debug)]
pub struct LogEvent<'m> {
    message: &'m str,
    json: OnceCell<Option<Value>>,
    fields: OnceCell<Vec<(u32, u32)>>,
}

impl<'m> LogEvent<'m> {
    /// An event with this message.
    pub fn new(message: &'m str) -> Self {
        Self {
            message,
            json: OnceCell::new(),
            fields: OnceCell::new(),
        }
    }

    /// An event whose message was already parsed as JSON by the caller
    /// (the message must be that JSON's text, for term patterns).
    pub fn with_json(message: &'m str, json: Value) -> Self {
        Self {
            message,
            json: OnceCell::from(Some(json)),
            fields: OnceCell::new(),
        }
    }

    /// The raw message.
    pub fn message(&self) -> &'m str {
        self.message
    }

    /// The message as JSON, or `None` when it is not JSON.
    pub fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| {
                // Cheap refusal before the parser: only objects and arrays
                // can be selected into.
                let first = self.message.trim_start().as_bytes().first();
                if !matches!(first, Some(b'{' | b'[')) {
                    return None;
                }
                serde_json::from_str(self.message).ok()
            })
            .as_ref()
    }

    /// The number of space-delimited fields.
    pub fn field_count(&self) -> usize {
        self.spans().len()
    }

    /// The space-delimited field at a 0-based index, without its enclosing
    /// `[...]` or `"..."`.
    pub fn field(&self, index: usize) -> Option<&'m str> {
        let (start, end) = *self.spans().get(index)?;
        self.message.get(start as usize..end as usize)
    }

    fn spans(&self) -> &[(u32, u32)] {
        self.fields.get_or_init(|| split_fields(self.message))
    }
}

/// Splits a message on runs of whitespace; a field that opens with `[`
/// runs to the next `]`, one that opens with `"` to the next `"`, and
/// either counts as one field without its delimiters. An unclosed bracket
/// or quote runs to the end of the message.
fn split_fields(message: &str) -> Vec<(u32, u32)> {
    let bytes = message.as_bytes();
    // Offsets are u32 to halve the table; longer messages (CloudWatch Logs
    // caps an event at 256 KiB) are cut at 4 GiB.
    let len = bytes.len().min(u32::MAX as usize);
    let mut spans = Vec::new();
    let mut i = 0;
    while i < len {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let close = match b {
            b'[' => Some(b']'),
            b'"' => Some(b'"'),
            _ => None,
        };
        if let Some(close) = close {
            let start = i + 1;
            let end = memchr::memchr(close, &bytes[start..len]).map_or(len, |at| start + at);
            spans.push((start as u32, end as u32));
            i = end + 1;
        } else {
            let start = i;
            while i < len && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            spans.push((start as u32, i as u32));
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_split_fields_brackets_and_quotes() {
        let e = LogEvent::new(
            "127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 1534",
        );
        let fields: Vec<_> = (0..e.field_count()).filter_map(|i| e.field(i)).collect();
        assert_eq!(
            fields,
            [
                "127.0.0.1",
                "-",
                "frank",
                "10/Oct/2000:13:25:15 -0700",
                "GET /apache_pb.gif HTTP/1.0",
                "200",
                "1534"
            ]
        );
    }

    #[test]
    fn test_split_fields_unclosed_and_multibyte() {
        let e = LogEvent::new("  a  \"b c  é [x");
        let fields: Vec<_> = (0..e.field_count()).filter_map(|i| e.field(i)).collect();
        assert_eq!(fields, ["a", "b c  é [x"]);
        let e = LogEvent::new("é [");
        let fields: Vec<_> = (0..e.field_count()).filter_map(|i| e.field(i)).collect();
        assert_eq!(fields, ["é", ""]);
    }
}
