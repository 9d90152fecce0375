//! A compact binary form of a [`RecordView`], stored beside the record's JSON
//! so that what ingest parsed need not be parsed again.
//!
//! Ingest parses each record's view to validate it; the pipeline's router
//! needs the same view for every sink. Parsing the JSON a second time costs
//! about as much as the first (the whole record is scanned to skip the fields
//! Cairn does not read), so the WAL envelope carries the view in this form
//! and the router only decodes it.
//!
//! Most strings of a view are spans of the record's own JSON text (a string
//! without escapes is its own value), so they are written as an offset and a
//! length into it; a value that is not a span of the text (it had escapes, or
//! ingest supplied it as a default) is written inline.
//!
//! ```text
//! view      := string x 11 (eventVersion, eventTime, eventSource, eventName, eventID,
//!              eventType, eventCategory, awsRegion, recipientAccountId, errorCode,
//!              vpcEndpointId)
//!              bool x 3 (readOnly, managementEvent, sessionCredentialFromConsole)
//!              0 | 1 string x 7 (userIdentity: type, arn, accountId, userName,
//!                                accessKeyId, invokedBy, principalId)
//!              0 | 1 count (string x 4)* (resources: type, ARN, ARNPrefix, accountId)
//!              0 | 1 string x 2 (insightDetails: eventSource, eventName)
//! string    := 0 (absent) | 1 offset length (a span of the JSON) | 2 length bytes (inline)
//! bool      := 0 (absent) | 1 (false) | 2 (true)
//! offset, length, count := unsigned LEB128
//! ```
//!
//! The format is versioned by the envelope that carries it.

use std::borrow::Cow;

use crate::record::{InsightDetailsView, RecordView, ResourceView, UserIdentityView};

/// Why bytes do not decode as a view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed record view: {0}")]
pub struct ViewCodecError(&'static str);

const ABSENT: u8 = 0;
const SPAN: u8 = 1;
const INLINE: u8 = 2;

/// Appends `view` to `out`. `text` is the JSON the view was parsed from:
/// strings borrowed from it become spans, valid in any text that starts with
/// the same bytes (ingest appends defaulted fields before the closing brace).
pub fn encode_view(view: &RecordView<'_>, text: &str, out: &mut Vec<u8>) {
    let mut w = Writer { text, out };
    for s in [
        &view.event_version,
        &view.event_time,
        &view.event_source,
        &view.event_name,
        &view.event_id,
        &view.event_type,
        &view.event_category,
        &view.aws_region,
        &view.recipient_account_id,
        &view.error_code,
        &view.vpc_endpoint_id,
    ] {
        w.string(s);
    }
    for b in [
        view.read_only,
        view.management_event,
        view.session_credential_from_console,
    ] {
        w.out.push(match b {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
    }
    match &view.user_identity {
        None => w.out.push(0),
        Some(u) => {
            w.out.push(1);
            for s in [
                &u.identity_type,
                &u.arn,
                &u.account_id,
                &u.user_name,
                &u.access_key_id,
                &u.invoked_by,
                &u.principal_id,
            ] {
                w.string(s);
            }
        }
    }
    match &view.resources {
        None => w.out.push(0),
        Some(list) => {
            w.out.push(1);
            w.number(list.len());
            for r in list {
                for s in [&r.resource_type, &r.arn, &r.arn_prefix, &r.account_id] {
                    w.string(s);
                }
            }
        }
    }
    match &view.insight_details {
        None => w.out.push(0),
        Some(d) => {
            w.out.push(1);
            w.string(&d.event_source);
            w.string(&d.event_name);
        }
    }
}

struct Writer<'w> {
    text: &'w str,
    out: &'w mut Vec<u8>,
}

impl Writer<'_> {
    fn number(&mut self, mut n: usize) {
        loop {
            let low = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.out.push(low);
                return;
            }
            self.out.push(low | 0x80);
        }
    }

    fn string(&mut self, value: &Option<Cow<'_, str>>) {
        let Some(value) = value else {
            self.out.push(ABSENT);
            return;
        };
        // A borrowed value lies inside the text it was parsed from; its
        // place there is found by address, without searching.
        let base = self.text.as_ptr() as usize;
        let at = value.as_ptr() as usize;
        if matches!(value, Cow::Borrowed(_))
            && at >= base
            && at + value.len() <= base + self.text.len()
        {
            self.out.push(SPAN);
            self.number(at - base);
            self.number(value.len());
        } else {
            self.out.push(INLINE);
            self.number(value.len());
            self.out.extend_from_slice(value.as_bytes());
        }
    }
}

/// Decodes a view written by [`encode_view`], its spans read from `json`
/// (the record's JSON text as stored). The text is taken as `str`, checked
/// once by the caller: checking each span on its own costs more than one
/// pass over the whole record.
pub fn decode_view<'a>(bytes: &'a [u8], json: &'a str) -> Result<RecordView<'a>, ViewCodecError> {
    let mut r = Reader { bytes, json };
    let view = RecordView {
        event_version: r.string()?,
        event_time: r.string()?,
        event_source: r.string()?,
        event_name: r.string()?,
        event_id: r.string()?,
        event_type: r.string()?,
        event_category: r.string()?,
        aws_region: r.string()?,
        recipient_account_id: r.string()?,
        error_code: r.string()?,
        vpc_endpoint_id: r.string()?,
        read_only: r.bool()?,
        management_event: r.bool()?,
        session_credential_from_console: r.bool()?,
        user_identity: if r.present()? {
            Some(UserIdentityView {
                identity_type: r.string()?,
                arn: r.string()?,
                account_id: r.string()?,
                user_name: r.string()?,
                access_key_id: r.string()?,
                invoked_by: r.string()?,
                principal_id: r.string()?,
            })
        } else {
            None
        },
        resources: if r.present()? {
            let count = r.number()?;
            // Each resource takes at least four bytes: a count larger than
            // what is left is damage, not a reason to allocate.
            if count > r.bytes.len() / 4 {
                return Err(ViewCodecError("more resources than bytes"));
            }
            let mut list = Vec::with_capacity(count);
            for _ in 0..count {
                list.push(ResourceView {
                    resource_type: r.string()?,
                    arn: r.string()?,
                    arn_prefix: r.string()?,
                    account_id: r.string()?,
                });
            }
            Some(list)
        } else {
            None
        },
        insight_details: if r.present()? {
            Some(InsightDetailsView {
                event_source: r.string()?,
                event_name: r.string()?,
            })
        } else {
            None
        },
    };
    if !r.bytes.is_empty() {
        return Err(ViewCodecError("bytes after the view"));
    }
    Ok(view)
}

struct Reader<'a> {
    bytes: &'a [u8],
    json: &'a str,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, ViewCodecError> {
        let (&b, rest) = self
            .bytes
            .split_first()
            .ok_or(ViewCodecError("truncated"))?;
        self.bytes = rest;
        Ok(b)
    }

    fn number(&mut self) -> Result<usize, ViewCodecError> {
        let mut n = 0usize;
        for shift in (0..35).step_by(7) {
            let b = self.byte()?;
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(ViewCodecError("number too long"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ViewCodecError> {
        if len > self.bytes.len() {
            return Err(ViewCodecError("truncated"));
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    fn string(&mut self) -> Result<Option<Cow<'a, str>>, ViewCodecError> {
        let text = match self.byte()? {
            ABSENT => return Ok(None),
            SPAN => {
                let at = self.number()?;
                let len = self.number()?;
                // `get` refuses a span that would split a character.
                at.checked_add(len)
                    .and_then(|end| self.json.get(at..end))
                    .ok_or(ViewCodecError("span outside the record"))?
            }
            INLINE => {
                let len = self.number()?;
                std::str::from_utf8(self.take(len)?)
                    .map_err(|_| ViewCodecError("a string is not UTF-8"))?
            }
            _ => return Err(ViewCodecError("unknown string tag")),
        };
        Ok(Some(Cow::Borrowed(text)))
    }

    fn bool(&mut self) -> Result<Option<bool>, ViewCodecError> {
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(false)),
            2 => Ok(Some(true)),
            _ => Err(ViewCodecError("unknown boolean tag")),
        }
    }

    fn present(&mut self) -> Result<bool, ViewCodecError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ViewCodecError("unknown presence tag")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn same(a: &RecordView<'_>, b: &RecordView<'_>) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn test_a_parsed_view_comes_back_from_spans() {
        let json = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/a\"b","accountId":"123456789012","userName":"a"},"eventTime":"2024-05-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","readOnly":"true","managementEvent":false,"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::b/k"},{"ARNPrefix":"arn:aws:s3:::b/"}],"eventID":"e1","recipientAccountId":"123456789012"}"#;
        let view = RecordView::parse(json).unwrap();
        let mut bytes = Vec::new();
        encode_view(&view, json, &mut bytes);
        // Strings without escapes are spans; the escaped ARN is the one inline value.
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!has(b"arn:aws:s3:::b/k") && !has(b"GetObject"));
        assert!(has(b"user/a\"b"));
        let decoded = decode_view(&bytes, json).unwrap();
        assert!(same(&view, &decoded), "{view:?}\n{decoded:?}");
        assert_eq!(
            decoded.user_identity_arn(),
            Some("arn:aws:iam::123456789012:user/a\"b")
        );
    }

    #[test]
    fn test_values_not_in_the_text_are_inline() {
        let json = r#"{"eventTime":"2024-05-01T10:00:00Z"}"#;
        let mut view = RecordView::parse(json).unwrap();
        view.event_id = Some(Cow::Owned("fresh-id".to_owned()));
        view.aws_region = Some(Cow::Borrowed("us-west-2"));
        view.insight_details = Some(InsightDetailsView::default());
        let mut bytes = Vec::new();
        encode_view(&view, json, &mut bytes);
        let decoded = decode_view(&bytes, "").unwrap_err();
        assert_eq!(decoded, ViewCodecError("span outside the record"));
        let decoded = decode_view(&bytes, json).unwrap();
        assert!(same(&view, &decoded), "{view:?}\n{decoded:?}");
    }

    #[test]
    fn test_damaged_bytes_are_refused_never_a_panic() {
        let json = r#"{"eventTime":"2024-05-01T10:00:00Z","resources":[{"ARN":"x"}]}"#;
        let view = RecordView::parse(json).unwrap();
        let mut bytes = Vec::new();
        encode_view(&view, json, &mut bytes);
        for cut in 0..bytes.len() {
            assert!(decode_view(&bytes[..cut], json).is_err());
        }
        for at in 0..bytes.len() {
            for value in [0x7f, 0x80, 0xff, 3] {
                let mut damaged = bytes.clone();
                damaged[at] = value;
                let _ = decode_view(&damaged, json);
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_view(&longer, json).is_err());
        // A span that would split a character is refused.
        let json = "{\"eventName\":\"é\"}";
        let view = RecordView::parse(json).unwrap();
        let mut bytes = Vec::new();
        encode_view(&view, json, &mut bytes);
        let span_length = bytes.iter().rposition(|&b| b == 2).unwrap();
        bytes[span_length] = 1;
        assert!(decode_view(&bytes, json).is_err());
    }
}
