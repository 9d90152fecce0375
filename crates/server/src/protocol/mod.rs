//! The wire protocols AWS services speak, one codec per family.
//!
//! A [`Codec`] turns an HTTP request into a [`Request`] (the operation's name
//! and its input) and a handler's [`Output`] or [`AwsError`] back into an HTTP
//! response, in the exact shape botocore parses for that family:
//!
//! | family | request | success | error |
//! |---|---|---|---|
//! | JSON 1.0/1.1 | `X-Amz-Target: <prefix>.<Op>`, JSON body | JSON body | `{"__type", "message"}` (+ `x-amzn-query-error` when query-compatible) |
//! | REST-JSON | method + path | JSON body | `x-amzn-ErrorType` + `{"message"}` |
//! | REST-XML | method + path (+ sub-resource) | XML | S3: `<Error>`; others: `<ErrorResponse><Error>` |
//! | query | form `Action=<Op>&Version=..` | `<OpResponse><OpResult>` | `<ErrorResponse><Error><Type>` |
//! | EC2 | form `Action=<Op>` | — | `<Response><Errors><Error>` |
//!
//! Which family a service speaks comes from [`AWS_SERVICES`], generated from
//! botocore's models by `scripts/gen_aws_protocols.py`, so a request for a
//! service Cairn does not serve is still answered in that service's own shape.

#[rustfmt::skip]
mod aws_services;
mod json;
pub mod lenient;
pub mod query;
mod rest;

use std::collections::BTreeMap;

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value};

pub use aws_services::AWS_SERVICES;
pub use query::QueryParams;

use crate::error::AwsError;

/// A protocol family, as botocore's models name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolFamily {
    /// `json`: JSON 1.0 or 1.1 with `X-Amz-Target`.
    Json,
    /// `rest-json`.
    RestJson,
    /// `rest-xml` (S3, Route 53, CloudFront).
    RestXml,
    /// `query`: form-encoded requests, XML answers.
    Query,
    /// `ec2`: the query protocol with EC2's own error shape.
    Ec2,
    /// `smithy-rpc-v2-cbor` (only where botocore resolves no other).
    RpcV2Cbor,
}

/// One AWS service as botocore models it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsService {
    /// The SigV4 signing name (the credential scope's service).
    pub signing_name: &'static str,
    /// botocore's (and the AWS CLI's) name for the service.
    pub service_name: &'static str,
    /// The full name, e.g. `Amazon CloudWatch Logs`.
    pub full_name: &'static str,
    /// The protocol botocore resolves for it.
    pub protocol: ProtocolFamily,
    /// `1.0` or `1.1` for JSON services.
    pub json_version: &'static str,
    /// The `X-Amz-Target` prefix of JSON services.
    pub target_prefix: &'static str,
    /// Whether errors carry `x-amzn-query-error` (`awsQueryCompatible`).
    pub query_compatible: bool,
    /// The API version (`Version=` of query requests).
    pub api_version: &'static str,
    /// The XML namespace of query and REST-XML answers.
    pub xml_namespace: &'static str,
}

/// A row of the generated table (kept short: the table has one per service).
#[allow(clippy::too_many_arguments)]
const fn service(
    signing_name: &'static str,
    service_name: &'static str,
    full_name: &'static str,
    protocol: ProtocolFamily,
    json_version: &'static str,
    target_prefix: &'static str,
    query_compatible: bool,
    api_version: &'static str,
    xml_namespace: &'static str,
) -> AwsService {
    AwsService {
        signing_name,
        service_name,
        full_name,
        protocol,
        json_version,
        target_prefix,
        query_compatible,
        api_version,
        xml_namespace,
    }
}

/// The AWS service a request signed for `signing_name` is meant for.
///
/// Several services share a signing name (`dynamodb` and `dynamodbstreams`,
/// `s3` and `s3control`, ...): the request itself tells them apart, by its
/// `X-Amz-Target` prefix, or by its form body for query services.
pub fn aws_service(signing_name: &str, headers: &HeaderMap) -> Option<&'static AwsService> {
    let mut candidates = AWS_SERVICES
        .iter()
        .filter(|s| s.signing_name.eq_ignore_ascii_case(signing_name))
        .peekable();
    let first = *candidates.peek()?;
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let form = is_form(headers);
    let mut fallback = first;
    for candidate in candidates {
        match (target, candidate.protocol) {
            (Some(t), ProtocolFamily::Json) if json::strip_target(candidate, t).is_some() => {
                return Some(candidate);
            }
            (None, ProtocolFamily::Query | ProtocolFamily::Ec2) if form => return Some(candidate),
            (None, ProtocolFamily::RestJson | ProtocolFamily::RestXml)
                if fallback.protocol == ProtocolFamily::Json =>
            {
                fallback = candidate;
            }
            _ => {}
        }
    }
    Some(fallback)
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// How one request is decoded and its answer encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// JSON 1.0/1.1 with `X-Amz-Target`.
    Json {
        /// The service (its target prefix and JSON version).
        service: &'static AwsService,
    },
    /// REST-JSON.
    RestJson,
    /// S3's REST-XML.
    S3,
    /// REST-XML other than S3 (Route 53, CloudFront).
    RestXml {
        /// The answers' XML namespace.
        xml_namespace: &'static str,
    },
    /// The query protocol.
    Query {
        /// The service (its XML namespace).
        service: &'static AwsService,
    },
    /// EC2's query protocol.
    Ec2,
}

/// JSON 1.1, for requests whose service is not known (no readable signature).
static UNKNOWN_JSON_SERVICE: AwsService =
    service("", "", "", ProtocolFamily::Json, "1.1", "", false, "", "");

impl Codec {
    /// The codec of a service.
    pub fn for_service(service: &'static AwsService) -> Self {
        match service.protocol {
            ProtocolFamily::Json | ProtocolFamily::RpcV2Cbor => Codec::Json { service },
            ProtocolFamily::RestJson => Codec::RestJson,
            ProtocolFamily::RestXml if service.signing_name == "s3" => Codec::S3,
            ProtocolFamily::RestXml => Codec::RestXml {
                xml_namespace: service.xml_namespace,
            },
            ProtocolFamily::Query => Codec::Query { service },
            ProtocolFamily::Ec2 => Codec::Ec2,
        }
    }

    /// The codec of a request for a service: its model's protocol, except
    /// that a query-compatible service (CloudWatch) also speaks the query
    /// protocol its older clients use (a form body, no `X-Amz-Target`).
    pub fn for_request(service: &'static AwsService, headers: &HeaderMap) -> Self {
        if service.query_compatible && !headers.contains_key("x-amz-target") && is_form(headers) {
            return Codec::Query { service };
        }
        Self::for_service(service)
    }

    /// The codec a request looks like before its signature names a service
    /// (a missing or unreadable `Authorization`): JSON with `X-Amz-Target`,
    /// query for a form body, S3 otherwise (presigned URLs and browsers).
    pub fn guess(parts: &Parts) -> Self {
        if parts.headers.contains_key("x-amz-target") {
            Codec::Json {
                service: &UNKNOWN_JSON_SERVICE,
            }
        } else if parts.uri.path() == crate::services::ingest::INGEST_PATH {
            Codec::RestJson
        } else if is_form(&parts.headers) {
            Codec::Query {
                service: &UNKNOWN_JSON_SERVICE,
            }
        } else {
            Codec::S3
        }
    }

    /// Decodes a request into its operation name and input.
    ///
    /// `None` for the operation means the request names none this codec can
    /// read; REST operations are found by the operation table from the method
    /// and path, so their name is `None` here.
    pub fn decode(&self, parts: Parts, body: Bytes) -> Result<Request, AwsError> {
        match self {
            Codec::Json { service } => json::decode(service, &parts, &body),
            Codec::Query { .. } | Codec::Ec2 => query::decode(&parts, &body),
            Codec::RestJson | Codec::S3 | Codec::RestXml { .. } => Ok(Request {
                operation: None,
                input: Input::Rest {
                    parts: Box::new(parts),
                    body,
                },
            }),
        }
    }

    /// Encodes a handler's output.
    pub fn encode_output(&self, operation: &str, output: Output, request_id: &str) -> Response {
        let mut response = match (self, output) {
            (_, Output::Response(response)) => response,
            (Codec::Json { service }, Output::Json(value)) => json::encode_ok(service, &value),
            (Codec::Query { service }, Output::Xml(result)) => {
                query::encode_ok(service, operation, &result, request_id)
            }
            // An operation written once for both protocols of a
            // query-compatible service (CloudWatch), or a query service
            // whose results are built as JSON (SNS).
            (Codec::Query { service }, Output::Json(value)) => {
                query::encode_ok(service, operation, &query::json_to_xml(&value), request_id)
            }
            (_, Output::Json(value)) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                value.to_string(),
            )
                .into_response(),
            (_, Output::Xml(xml)) => {
                (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], xml).into_response()
            }
        };
        set_request_id(self, response.headers_mut(), request_id);
        response
    }

    /// Encodes an error. `resource` is S3's `<Resource>`; `head` drops the
    /// body, as a HEAD answer has none.
    pub fn encode_error(
        &self,
        error: &AwsError,
        request_id: &str,
        resource: Option<&str>,
        head: bool,
    ) -> Response {
        let mut response = match self {
            Codec::Json { service } => json::encode_error(service, error),
            Codec::RestJson => rest::encode_rest_json_error(error),
            Codec::S3 => error.clone().into_s3_response(request_id, resource),
            Codec::RestXml { xml_namespace } => {
                query::encode_error(xml_namespace, error, request_id)
            }
            Codec::Query { service } => {
                query::encode_error(service.xml_namespace, error, request_id)
            }
            Codec::Ec2 => query::encode_ec2_error(error, request_id),
        };
        if head {
            *response.body_mut() = axum::body::Body::empty();
        }
        set_request_id(self, response.headers_mut(), request_id);
        response
    }
}

fn set_request_id(codec: &Codec, headers: &mut HeaderMap, request_id: &str) {
    let Ok(value) = HeaderValue::from_str(request_id) else {
        return;
    };
    let name = if *codec == Codec::S3 {
        "x-amz-request-id"
    } else {
        "x-amzn-RequestId"
    };
    headers.insert(name, value);
}

/// A decoded request: which operation, with what input.
#[derive(Debug)]
pub struct Request {
    /// The operation named by the request (`X-Amz-Target` or `Action`).
    pub operation: Option<String>,
    /// Its input.
    pub input: Input,
}

/// An operation's input as its codec decoded it.
#[derive(Debug)]
pub enum Input {
    /// A JSON protocol's body (an object; `{}` when empty).
    Json(Map<String, Value>),
    /// A query protocol's parameters (`Action` and `Version` included).
    Query(QueryParams),
    /// A REST request: its bindings (path, query, headers, body) are the handler's to read.
    Rest {
        /// Method, URI and headers (boxed: they dwarf the other inputs).
        parts: Box<Parts>,
        /// The body.
        body: Bytes,
    },
}

impl Input {
    /// A JSON member's string value, if the input is JSON and has it.
    pub fn json_str(&self, name: &str) -> Option<&str> {
        match self {
            Input::Json(map) => map.get(name).and_then(Value::as_str),
            _ => None,
        }
    }

    /// The REST request's method and path, if this is a REST input.
    pub fn rest_route(&self) -> Option<(&Method, &str)> {
        match self {
            Input::Rest { parts, .. } => Some((&parts.method, parts.uri.path())),
            _ => None,
        }
    }
}

/// What a handler answers.
#[derive(Debug)]
pub enum Output {
    /// A JSON body (JSON and REST-JSON protocols).
    Json(Value),
    /// The inner XML of a query protocol's `<OpResult>` element.
    Xml(String),
    /// A response the handler built itself (S3).
    Response(Response),
}

/// Parses a form body or query string (`a=b&c=d`, `+` as space).
pub fn parse_form(text: &str) -> BTreeMap<String, String> {
    query::parse_form(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn test_services_resolve_by_signing_name_and_request_shape() {
        let none = headers(&[]);
        assert_eq!(
            aws_service("sts", &none).map(|s| s.protocol),
            Some(ProtocolFamily::Query)
        );
        assert_eq!(aws_service("s3", &none).map(|s| s.service_name), Some("s3"));
        let streams = headers(&[("x-amz-target", "DynamoDBStreams_20120810.ListStreams")]);
        assert_eq!(
            aws_service("dynamodb", &streams).map(|s| s.service_name),
            Some("dynamodbstreams")
        );
        let cloudwatch = aws_service("monitoring", &none).expect("monitoring");
        assert!(cloudwatch.query_compatible);
        assert_eq!(cloudwatch.json_version, "1.0");
        assert!(aws_service("no-such-service", &none).is_none());
    }

    #[test]
    fn test_generated_table_matches_installed_botocore() {
        // Regenerate and compare when botocore is installed; otherwise say so.
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/gen_aws_protocols.py"
        );
        let output = match std::process::Command::new("python3")
            .arg(script)
            .arg("--stdout")
            .output()
        {
            Ok(o) => o,
            Err(e) => {
                eprintln!("skipped: python3 not runnable ({e})");
                return;
            }
        };
        if output.status.code() == Some(3) {
            eprintln!("skipped: botocore is not installed");
            return;
        }
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let fresh = String::from_utf8(output.stdout).expect("utf-8");
        let committed = include_str!("aws_services.rs");
        // The first line names botocore's version; the rows are what must agree.
        let rows = |text: &str| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
        assert!(
            rows(&fresh) == rows(committed),
            "crates/server/src/protocol/aws_services.rs is stale: run scripts/gen_aws_protocols.py"
        );
    }
}
