//! S3's XML: writing answers and reading the small request documents
//! (`Delete`, `CompleteMultipartUpload`, `CreateBucketConfiguration`).

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use quick_xml::events::Event;

use crate::error::{AwsError, xml_escape};

/// S3's XML namespace.
pub const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// The XML declaration every S3 answer starts with.
pub const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// The largest XML request document read (S3 caps DeleteObjects at 1000 keys,
/// CompleteMultipartUpload at 10,000 parts).
pub const MAX_XML_BYTES: usize = 2 * 1024 * 1024;

/// What S3 leaves unescaped with `encoding-type=url` (RFC 3986 unreserved plus `/`).
const URL_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// An XML answer.
pub fn xml_response(status: StatusCode, xml: String) -> Response {
    let mut response = (status, xml).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    response
}

/// S3's timestamp in XML documents.
pub fn s3_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// An HTTP date (`Last-Modified`).
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The `<Owner>` element of an account.
pub fn owner_xml(account: &str) -> String {
    format!(
        "<Owner><ID>{}</ID><DisplayName>{}</DisplayName></Owner>",
        xml_escape(account),
        xml_escape(account)
    )
}

/// An ETag in S3's quoted form.
pub fn quote_etag(etag: Option<&str>) -> String {
    match etag {
        Some(e) if e.starts_with('"') => e.to_owned(),
        Some(e) => format!("\"{e}\""),
        None => "\"\"".to_owned(),
    }
}

/// How listing answers write keys: as XML text, or URL-encoded (`encoding-type=url`).
pub struct Encoder {
    /// Whether to URL-encode.
    pub url: bool,
}

impl Encoder {
    /// Reads `encoding-type`.
    pub fn from_query(query: &BTreeMap<String, String>) -> Result<Self, AwsError> {
        match query.get("encoding-type").map(String::as_str) {
            None => Ok(Encoder { url: false }),
            Some("url") => Ok(Encoder { url: true }),
            Some(_) => Err(AwsError::client(
                "InvalidArgument",
                "Invalid Encoding Method specified in Request",
            )),
        }
    }

    /// A value as the answer writes it.
    pub fn text(&self, value: &str) -> String {
        if self.url {
            xml_escape(&utf8_percent_encode(value, URL_ENCODE_SET).to_string())
        } else {
            xml_escape(value)
        }
    }
}

/// A small request document: the root's name, its simple children and its
/// repeated compound children (`<Object>`, `<Part>`) as field maps.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct XmlDocument {
    /// The root element's local name.
    pub root: String,
    /// Children of the root that hold text, by local name.
    pub fields: BTreeMap<String, String>,
    /// Children of the root that hold elements: (name, their text children).
    pub records: Vec<(String, BTreeMap<String, String>)>,
}

/// S3's answer to a document that does not parse.
pub fn malformed_xml() -> AwsError {
    AwsError::client(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

fn local_name(raw: &[u8]) -> String {
    let name = raw.rsplit(|b| *b == b':').next().unwrap_or(raw);
    String::from_utf8_lossy(name).into_owned()
}

/// Parses a request document two levels deep (all S3 needs here).
pub fn parse_document(body: &[u8]) -> Result<XmlDocument, AwsError> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut doc = XmlDocument::default();
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut record: Option<BTreeMap<String, String>> = None;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|_| malformed_xml())?;
        match event {
            Event::Start(e) => {
                let name = local_name(e.name().as_ref());
                match stack.len() {
                    0 => doc.root = name.clone(),
                    1 => record = None,
                    2 if record.is_none() => record = Some(BTreeMap::new()),
                    _ => {}
                }
                stack.push(name);
                text.clear();
            }
            Event::Empty(e) => {
                let name = local_name(e.name().as_ref());
                match stack.len() {
                    0 => doc.root = name,
                    1 => {
                        doc.fields.insert(name, String::new());
                    }
                    2 => {
                        record
                            .get_or_insert_with(BTreeMap::new)
                            .insert(name, String::new());
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                text.push_str(&t.decode().map_err(|_| malformed_xml())?);
            }
            Event::CData(t) => {
                text.push_str(&t.decode().map_err(|_| malformed_xml())?);
            }
            Event::GeneralRef(r) => {
                if let Some(c) = r.resolve_char_ref().map_err(|_| malformed_xml())? {
                    text.push(c);
                } else {
                    let entity = r.decode().map_err(|_| malformed_xml())?;
                    text.push(match entity.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        _ => return Err(malformed_xml()),
                    });
                }
            }
            Event::End(_) => {
                let Some(name) = stack.pop() else {
                    return Err(malformed_xml());
                };
                match stack.len() {
                    1 => match record.take() {
                        Some(fields) => doc.records.push((name, fields)),
                        None => {
                            doc.fields.insert(name, std::mem::take(&mut text));
                        }
                    },
                    2 => {
                        record
                            .get_or_insert_with(BTreeMap::new)
                            .insert(name, std::mem::take(&mut text));
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if doc.root.is_empty() || !stack.is_empty() {
        return Err(malformed_xml());
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_delete_document() {
        let doc = parse_document(
            br#"<?xml version="1.0"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a&amp;b</Key></Object><Object><Key>c</Key><VersionId>v</VersionId></Object><Quiet>true</Quiet></Delete>"#,
        )
        .unwrap();
        assert_eq!(doc.root, "Delete");
        assert_eq!(doc.fields.get("Quiet").unwrap(), "true");
        assert_eq!(doc.records.len(), 2);
        assert_eq!(doc.records[0].1.get("Key").unwrap(), "a&b");
        assert_eq!(doc.records[1].1.get("VersionId").unwrap(), "v");
        assert!(parse_document(b"<Delete><Object>").is_err());
        assert!(parse_document(b"").is_err());
    }

    #[test]
    fn test_url_encoding_of_keys() {
        let enc = Encoder { url: true };
        assert_eq!(enc.text("a b/c+d"), "a%20b/c%2Bd");
    }
}
