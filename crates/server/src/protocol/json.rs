//! JSON 1.0 / 1.1 (`X-Amz-Target`), and its query-compatible variant.

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{AwsService, Input, Request};
use crate::error::AwsError;

/// The operation named by an `X-Amz-Target` value, if it carries this
/// service's prefix. The prefix's last segment alone is accepted too
/// (`CloudTrail_20131101.CreateTrail`), as older clients send it.
pub fn strip_target<'a>(service: &AwsService, target: &'a str) -> Option<&'a str> {
    let prefix = service.target_prefix;
    if prefix.is_empty() {
        return None;
    }
    let short = prefix.rsplit('.').next().unwrap_or(prefix);
    [prefix, short]
        .iter()
        .find_map(|p| {
            target
                .strip_prefix(p)
                .and_then(|rest| rest.strip_prefix('.'))
        })
        .filter(|op| !op.is_empty())
}

/// Decodes a JSON protocol request: the operation from `X-Amz-Target`, the input from the body.
pub fn decode(service: &AwsService, parts: &Parts, body: &[u8]) -> Result<Request, AwsError> {
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let operation = target
        .and_then(|t| strip_target(service, t))
        .map(str::to_owned);
    let input: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            AwsError::client(
                "SerializationException",
                format!("Request body is not a JSON object: {e}"),
            )
        })?
    };
    Ok(Request {
        operation,
        input: Input::Json(input),
    })
}

fn content_type(service: &AwsService) -> HeaderValue {
    if service.json_version == "1.0" {
        HeaderValue::from_static("application/x-amz-json-1.0")
    } else {
        HeaderValue::from_static("application/x-amz-json-1.1")
    }
}

/// A success answer.
pub fn encode_ok(service: &AwsService, value: &Value) -> Response {
    let text = if service.query_compatible {
        // Results written once for both protocols mark maps for the query
        // protocol's XML; JSON has maps of its own.
        let mut value = value.clone();
        unmark_maps(&mut value);
        value.to_string()
    } else {
        value.to_string()
    };
    let mut response = (StatusCode::OK, text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type(service));
    response
}

/// Replaces every `{"$map": {...}}` (see [`super::query::XML_MAP`]) by the
/// map itself.
fn unmark_maps(value: &mut Value) {
    match value {
        Value::Object(members) => {
            if members.len() == 1
                && let Some(inner) = members.remove(super::query::XML_MAP)
            {
                *value = inner;
                unmark_maps(value);
                return;
            }
            members.values_mut().for_each(unmark_maps);
        }
        Value::Array(items) => items.iter_mut().for_each(unmark_maps),
        _ => {}
    }
}

/// An error answer: `{"__type": code, "message": text}`; a query-compatible
/// service also names the query protocol's code and fault in `x-amzn-query-error`,
/// which botocore reads in preference to `__type`.
pub fn encode_error(service: &AwsService, error: &AwsError) -> Response {
    let body = json!({"__type": error.code, "message": error.message}).to_string();
    let mut response = (error.status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type(service));
    if let Ok(v) = HeaderValue::from_str(error.code) {
        headers.insert("x-amzn-ErrorType", v);
    }
    if service.query_compatible {
        let fault = if error.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        if let Ok(v) = HeaderValue::from_str(&format!("{};{fault}", error.query_code())) {
            headers.insert("x-amzn-query-error", v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::aws_service;

    #[test]
    fn test_targets() {
        let none = axum::http::HeaderMap::new();
        let cloudtrail = aws_service("cloudtrail", &none).expect("cloudtrail");
        assert_eq!(
            strip_target(
                cloudtrail,
                "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.CreateTrail"
            ),
            Some("CreateTrail")
        );
        assert_eq!(
            strip_target(cloudtrail, "CloudTrail_20131101.GetTrail"),
            Some("GetTrail")
        );
        assert_eq!(strip_target(cloudtrail, "Logs_20140328.GetTrail"), None);
        assert_eq!(strip_target(cloudtrail, "CloudTrail_20131101."), None);
    }

    fn parts(target: Option<&str>) -> Parts {
        let mut request = axum::http::Request::builder().method("POST").uri("/");
        if let Some(t) = target {
            request = request.header("x-amz-target", t);
        }
        request.body(()).expect("request").into_parts().0
    }

    #[test]
    fn test_decode() {
        let none = axum::http::HeaderMap::new();
        let logs = aws_service("logs", &none).expect("logs");
        let decoded = decode(logs, &parts(Some("Logs_20140328.PutLogEvents")), b" ").expect("ok");
        assert_eq!(decoded.operation.as_deref(), Some("PutLogEvents"));
        assert!(matches!(decoded.input, Input::Json(ref m) if m.is_empty()));
        let decoded = decode(logs, &parts(None), b"{\"a\":1}").expect("ok");
        assert_eq!(decoded.operation, None);
        let e = decode(logs, &parts(Some("Logs_20140328.X")), b"[1]").expect_err("not an object");
        assert_eq!(e.code, "SerializationException");
    }

    #[test]
    fn test_query_compatible_error_names_the_query_code() {
        let none = axum::http::HeaderMap::new();
        let cloudwatch = aws_service("monitoring", &none).expect("monitoring");
        let response = encode_error(
            cloudwatch,
            &AwsError::client("UnknownOperationException", "no"),
        );
        assert_eq!(
            response.headers()["x-amzn-query-error"],
            "InvalidAction;Sender"
        );
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/x-amz-json-1.0"
        );
    }
}
