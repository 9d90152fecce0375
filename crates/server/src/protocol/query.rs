//! The query protocol: form-encoded `Action=<Op>&Version=<date>&...` requests,
//! `<OpResponse><OpResult>..</OpResult><ResponseMetadata>` answers and
//! `<ErrorResponse>` errors (also REST-XML services' error shape), plus EC2's
//! `<Response><Errors>` variant.

use std::collections::BTreeMap;

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use super::{AwsService, Input, Request};
use crate::error::{AwsError, xml_escape};

/// A query request's parameters, by name.
pub type QueryParams = BTreeMap<String, String>;

/// The most parameters one request may carry (a bound on outside input).
const MAX_PARAMETERS: usize = 1000;

/// Parses `a=b&c=d` with `+` as space; later duplicates win.
pub fn parse_form(text: &str) -> QueryParams {
    text.split('&')
        .filter(|p| !p.is_empty())
        .take(MAX_PARAMETERS)
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(text: &str) -> String {
    percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Decodes a query request: parameters from the URI's query and the form body.
pub fn decode(parts: &Parts, body: &[u8]) -> Result<Request, AwsError> {
    let mut params = parse_form(parts.uri.query().unwrap_or(""));
    let body = std::str::from_utf8(body).map_err(|_| {
        AwsError::client(
            "MalformedQueryString",
            "The request body is not valid UTF-8.",
        )
    })?;
    params.extend(parse_form(body));
    let operation = params.get("Action").filter(|a| !a.is_empty()).cloned();
    Ok(Request {
        operation,
        input: Input::Query(params),
    })
}

/// The longest `.`-separated parameter name path followed (a bound on
/// outside input: real shapes nest a few levels).
const MAX_PATH_SEGMENTS: usize = 16;

/// The largest list index accepted in a parameter name (`X.member.N`).
const MAX_LIST_INDEX: usize = 10_000;

/// A parameter tree being built from flattened names.
enum Node {
    Leaf(String),
    Struct(BTreeMap<String, Node>),
    /// `X.member.N...`: items by index.
    List(BTreeMap<usize, Node>),
    /// `X.entry.N.key` / `X.entry.N.value` (or `Name`/`Value`): entries by index.
    Map(BTreeMap<usize, Node>),
}

impl Node {
    fn insert(&mut self, path: &[&str], value: &str) {
        let Node::Struct(members) = self else {
            return;
        };
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        if rest.is_empty() {
            members.insert((*first).to_owned(), Node::Leaf(value.to_owned()));
            return;
        }
        let collection = match rest.first() {
            Some(&"member") => Some(Node::List(BTreeMap::new())),
            Some(&"entry") => Some(Node::Map(BTreeMap::new())),
            _ => None,
        };
        match collection {
            Some(empty) => {
                let Some(index) = rest
                    .get(1)
                    .and_then(|i| i.parse::<usize>().ok())
                    .filter(|i| (1..=MAX_LIST_INDEX).contains(i))
                else {
                    return;
                };
                let node = members.entry((*first).to_owned()).or_insert(empty);
                let (Node::List(items) | Node::Map(items)) = node else {
                    return;
                };
                let item = items
                    .entry(index)
                    .or_insert_with(|| Node::Struct(BTreeMap::new()));
                if rest.len() == 2 {
                    *item = Node::Leaf(value.to_owned());
                } else {
                    item.insert(&rest[2..], value);
                }
            }
            None => members
                .entry((*first).to_owned())
                .or_insert_with(|| Node::Struct(BTreeMap::new()))
                .insert(rest, value),
        }
    }

    fn into_json(self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Leaf(text) => Value::String(text),
            Node::Struct(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k, v.into_json()))
                    .collect(),
            ),
            Node::List(items) => Value::Array(items.into_values().map(Node::into_json).collect()),
            Node::Map(entries) => Value::Object(
                entries
                    .into_values()
                    .filter_map(|entry| {
                        let Node::Struct(mut parts) = entry else {
                            return None;
                        };
                        let key = parts.remove("key").or_else(|| parts.remove("Name"))?;
                        let value = parts.remove("value").or_else(|| parts.remove("Value"))?;
                        let Node::Leaf(key) = key else {
                            return None;
                        };
                        Some((key, value.into_json()))
                    })
                    .collect(),
            ),
        }
    }
}

/// A query request's parameters as the JSON object the same operation takes
/// in the JSON protocols: `A.B=x` nests, `X.member.N` is a list,
/// `X.entry.N.key`/`.value` (or `.Name`/`.Value`) a map. Scalars stay
/// strings (the query protocol does not type them): typed inputs read
/// numbers and booleans leniently ([`super::lenient`]). `Action` and
/// `Version` are left out.
pub fn params_to_json(params: &QueryParams) -> serde_json::Map<String, serde_json::Value> {
    let mut root = Node::Struct(BTreeMap::new());
    for (name, value) in params {
        if name == "Action" || name == "Version" {
            continue;
        }
        let path: Vec<&str> = name.split('.').take(MAX_PATH_SEGMENTS + 1).collect();
        if path.len() > MAX_PATH_SEGMENTS || path.iter().any(|p| p.is_empty()) {
            continue;
        }
        root.insert(&path, value);
    }
    match root.into_json() {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The key under which a JSON-shaped result marks a map, so the query
/// protocol renders it as `<entry><key>..</key><value>..</value></entry>`
/// (lists and structures need no mark).
pub const XML_MAP: &str = "$map";

/// A JSON-shaped result as the inner XML of the query protocol's
/// `<OpResult>`: members become elements, lists `<member>` items, maps
/// (marked [`XML_MAP`]) `<entry>` items; nulls are left out.
pub fn json_to_xml(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_xml(value, &mut out);
    out
}

fn write_xml(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&xml_escape(s)),
        Value::Array(items) => {
            for item in items {
                out.push_str("<member>");
                write_xml(item, out);
                out.push_str("</member>");
            }
        }
        Value::Object(members) => {
            if let Some(Value::Object(entries)) = members.get(XML_MAP) {
                for (k, v) in entries {
                    out.push_str("<entry><key>");
                    out.push_str(&xml_escape(k));
                    out.push_str("</key><value>");
                    write_xml(v, out);
                    out.push_str("</value></entry>");
                }
                return;
            }
            for (k, v) in members {
                if v.is_null() {
                    continue;
                }
                out.push('<');
                out.push_str(k);
                out.push('>');
                write_xml(v, out);
                out.push_str("</");
                out.push_str(k);
                out.push('>');
            }
        }
    }
}

fn xml_response(status: StatusCode, xml: String) -> Response {
    let mut response = (status, xml).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}

/// `<OpResponse xmlns=..><OpResult>{result}</OpResult><ResponseMetadata>..`.
pub fn encode_ok(
    service: &AwsService,
    operation: &str,
    result: &str,
    request_id: &str,
) -> Response {
    let xml = format!(
        "<{operation}Response xmlns=\"{ns}\">\n  <{operation}Result>{result}</{operation}Result>\n  \
         <ResponseMetadata>\n    <RequestId>{id}</RequestId>\n  </ResponseMetadata>\n</{operation}Response>\n",
        ns = xml_escape(service.xml_namespace),
        id = xml_escape(request_id),
    );
    xml_response(StatusCode::OK, xml)
}

/// `<ErrorResponse><Error><Type>Sender</Type><Code>..` (query and REST-XML).
pub fn encode_error(xml_namespace: &str, error: &AwsError, request_id: &str) -> Response {
    let fault = if error.status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    let ns = if xml_namespace.is_empty() {
        String::new()
    } else {
        format!(" xmlns=\"{}\"", xml_escape(xml_namespace))
    };
    let xml = format!(
        "<ErrorResponse{ns}>\n  <Error>\n    <Type>{fault}</Type>\n    <Code>{code}</Code>\n    \
         <Message>{message}</Message>\n  </Error>\n  <RequestId>{id}</RequestId>\n</ErrorResponse>\n",
        code = xml_escape(error.query_code()),
        message = xml_escape(&error.message),
        id = xml_escape(request_id),
    );
    xml_response(error.status, xml)
}

/// EC2's `<Response><Errors><Error>..</Errors><RequestID>`.
pub fn encode_ec2_error(error: &AwsError, request_id: &str) -> Response {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code>\
         <Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        xml_escape(error.query_code()),
        xml_escape(&error.message),
        xml_escape(request_id),
    );
    xml_response(error.status, xml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_query_parameters_become_the_json_input_shape() {
        let params = parse_form(
            "Action=PutMetricAlarm&Version=2010-08-01&AlarmName=a&Period=300\
             &Dimensions.member.2.Name=B&Dimensions.member.2.Value=2\
             &Dimensions.member.1.Name=A&Dimensions.member.1.Value=1\
             &AlarmActions.member.1=arn%3Aaws%3Asns%3Aus-east-1%3A1%3At\
             &Attributes.entry.1.key=DisplayName&Attributes.entry.1.value=Alerts\
             &MessageAttributes.entry.1.Name=k&MessageAttributes.entry.1.Value.DataType=String\
             &MessageAttributes.entry.1.Value.StringValue=v\
             &Bad..Name=x&Huge.member.99999999=x",
        );
        let json = serde_json::Value::Object(params_to_json(&params));
        assert_eq!(
            json,
            serde_json::json!({
                "AlarmName": "a",
                "Period": "300",
                "Dimensions": [{"Name": "A", "Value": "1"}, {"Name": "B", "Value": "2"}],
                "AlarmActions": ["arn:aws:sns:us-east-1:1:t"],
                "Attributes": {"DisplayName": "Alerts"},
                "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}},
            })
        );
    }

    #[test]
    fn test_json_results_render_as_query_xml() {
        let value = serde_json::json!({
            "Topics": [{"TopicArn": "arn:a&b"}],
            "NextToken": null,
            "Attributes": {"$map": {"Owner": "1", "Policy": "{}"}},
            "Count": 2,
            "Enabled": true,
        });
        assert_eq!(
            json_to_xml(&value),
            "<Attributes><entry><key>Owner</key><value>1</value></entry>\
             <entry><key>Policy</key><value>{}</value></entry></Attributes>\
             <Count>2</Count><Enabled>true</Enabled>\
             <Topics><member><TopicArn>arn:a&amp;b</TopicArn></member></Topics>"
        );
    }

    #[test]
    fn test_parse_form() {
        let p = parse_form("Action=GetCallerIdentity&Version=2011-06-15&A=b+c%2Fd&flag");
        assert_eq!(p["Action"], "GetCallerIdentity");
        assert_eq!(p["A"], "b c/d");
        assert_eq!(p["flag"], "");
    }

    #[test]
    fn test_error_shape() {
        let e = AwsError::client("UnknownOperationException", "a <b>");
        let response = encode_error("https://sts.amazonaws.com/doc/2011-06-15/", &e, "rid");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}
