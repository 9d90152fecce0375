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
