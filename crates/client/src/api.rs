//! Signed calls to the AWS APIs a server answers: JSON 1.1 operations
//! (CloudTrail, Athena, Organizations) and S3 object requests, each
//! SigV4-signed for its own service.
//!
//! Endpoints are found per service as botocore finds them
//! ([`resolve_service`]): `AWS_ENDPOINT_URL_<SERVICE>`, then
//! `AWS_ENDPOINT_URL`, then the profile's `endpoint_url`, then the local
//! default; an explicit `--endpoint-url` applies to every service.
//! Credentials and region are found as [`crate::resolve`] finds them.
//!
//! Used by `cairn validate-logs` (online), `cairn query` against a server and
//! `cairn import`. Every answer is read within a bound; errors read as
//! botocore prints them (`An error occurred (Code) when calling the X
//! operation: message`).

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::config::{ClientConfig, env_vars, resolve_with_env};
use crate::error::{Error, Result};

/// The largest answer read from a JSON API.
const MAX_API_BYTES: usize = 16 * 1024 * 1024;
/// The largest object read (digest or log file).
pub(crate) const MAX_OBJECT_BYTES: usize = 512 * 1024 * 1024;

/// Characters left as they are in an S3 path or query value (RFC 3986 unreserved).
pub(crate) const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A JSON 1.1 service: its SigV4 signing name, `X-Amz-Target` prefix and
/// the variable naming its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonService {
    /// The SigV4 service name, e.g. `cloudtrail`.
    pub signing_name: &'static str,
    /// The `X-Amz-Target` prefix; the operation follows a dot.
    pub target_prefix: &'static str,
    /// `AWS_ENDPOINT_URL_<SERVICE>`.
    pub endpoint_variable: &'static str,
}

/// CloudTrail (trails, event data stores, Lake queries, imports).
pub const CLOUDTRAIL: JsonService = JsonService {
    signing_name: "cloudtrail",
    target_prefix: "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101",
    endpoint_variable: "AWS_ENDPOINT_URL_CLOUDTRAIL",
};

/// Athena.
pub const ATHENA: JsonService = JsonService {
    signing_name: "athena",
    target_prefix: "AmazonAthena",
    endpoint_variable: "AWS_ENDPOINT_URL_ATHENA",
};

/// Organizations.
pub const ORGANIZATIONS: JsonService = JsonService {
    signing_name: "organizations",
    target_prefix: "AWSOrganizationsV20161128",
    endpoint_variable: "AWS_ENDPOINT_URL_ORGANIZATIONS",
};

/// The variable naming S3's endpoint.
pub const S3_ENDPOINT_VARIABLE: &str = "AWS_ENDPOINT_URL_S3";

/// Resolves one service's endpoint, credentials and region as botocore does,
/// `endpoint_variable` (`AWS_ENDPOINT_URL_<SERVICE>`) first.
pub fn resolve_service(
    explicit_endpoint: Option<&str>,
    explicit_profile: Option<&str>,
    data_dir_hint: &Path,
    endpoint_variable: &str,
) -> Result<ClientConfig> {
    let env = |name: &str| {
        // The resolver knows one service variable; point it at this service's.
        if name == env_vars::ENDPOINT_URL_CLOUDTRAIL_DATA {
            std::env::var(endpoint_variable).ok()
        } else {
            std::env::var(name).ok()
        }
    };
    resolve_with_env(explicit_endpoint, explicit_profile, data_dir_hint, &env)
}

/// A raw HTTP answer.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// One request to sign and send; `headers` are sent and signed.
pub(crate) struct Request<'a> {
    pub service: &'a str,
    pub endpoint: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Vec<u8>,
}

/// A signer and HTTP client for one set of credentials and one region.
pub struct AwsApi {
    http: reqwest::Client,
    credentials: cairn_auth::Credentials,
    region: String,
}

impl std::fmt::Debug for AwsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsApi")
            .field("access_key_id", &self.credentials.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl AwsApi {
    /// A caller signing with `config`'s credentials for `region` (else the
    /// region `config` found).
    pub fn new(config: &ClientConfig, region: Option<&str>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(10))
            // A redirect would replay a signed request somewhere else: never follow one.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::InvalidOption {
                name: "client",
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self {
            http,
            credentials: cairn_auth::Credentials {
                access_key_id: config.access_key_id.clone(),
                secret_access_key: config.secret_access_key.expose().into(),
                session_token: config.session_token.as_ref().map(|t| t.expose().to_owned()),
            },
            region: region
                .filter(|r| !r.is_empty())
                .unwrap_or(&config.region)
                .to_owned(),
        })
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// One signed request; the answer's body is read up to `limit` bytes.
    pub(crate) async fn request(
        &self,
        request: Request<'_>,
        limit: usize,
    ) -> std::result::Result<Answer, String> {
        let Request {
            service,
            endpoint,
            method,
            path,
            query,
            headers,
            body,
        } = request;
        let url = if query.is_empty() {
            format!("{endpoint}{path}")
        } else {
            format!("{endpoint}{path}?{query}")
        };
        let parsed = reqwest::Url::parse(&url).map_err(|e| format!("bad URL {url}: {e}"))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return Err(format!("bad URL {url}: no host")),
        };
        let mut all: Vec<(&str, &str)> = vec![("host", &host)];
        all.extend_from_slice(headers);
        let signed = cairn_auth::sign_request(
            &cairn_auth::RequestParts {
                method,
                raw_path: path,
                raw_query: query,
                headers: &all,
            },
            cairn_auth::Payload::Bytes(&body),
            &cairn_auth::SigningParams {
                credentials: &self.credentials,
                region: &self.region,
                service,
                time: Utc::now(),
            },
        )
        .map_err(|e| format!("signing the request: {e}"))?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = self.http.request(method, parsed).body(body);
        for (name, value) in all
            .iter()
            .copied()
            .chain(signed.headers.iter().map(|(k, v)| (*k, v.as_str())))
        {
            if name != "host" {
                request = request.header(name, value);
            }
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| format!("Could not connect to the endpoint URL: \"{url}\": {e}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let expected = response
            .content_length()
            .map_or(0, |n| usize::try_from(n).unwrap_or(0).min(limit));
        let mut body = Vec::with_capacity(expected);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the answer from {url}: {e}"))?
        {
            if body.len() + chunk.len() > limit {
                return Err(format!("the answer from {url} exceeds {limit} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// One JSON 1.1 operation of `service` at `endpoint`.
    pub async fn call_json(
        &self,
        service: JsonService,
        endpoint: &str,
        operation: &str,
        input: &Value,
    ) -> Result<Value> {
        let target = format!("{}.{operation}", service.target_prefix);
        let answer = self
            .request(
                Request {
                    service: service.signing_name,
                    endpoint,
                    method: "POST",
                    path: "/",
                    query: "",
                    headers: &[
                        ("content-type", "application/x-amz-json-1.1"),
                        ("x-amz-target", &target),
                    ],
                    body: input.to_string().into_bytes(),
                },
                MAX_API_BYTES,
            )
            .await
            .map_err(|reason| Error::Call {
                operation: operation.to_owned(),
                reason,
            })?;
        let value: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if answer.status >= 300 {
            let code = value
                .get("__type")
                .and_then(Value::as_str)
                .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
                .unwrap_or_else(|| answer.status.to_string());
            let message = value
                .get("message")
                .or_else(|| value.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Err(Error::Api {
                operation: operation.to_owned(),
                status: answer.status,
                code,
                message,
            });
        }
        if !value.is_object() {
            return Err(Error::Call {
                operation: operation.to_owned(),
                reason: "the answer is not a JSON object".to_owned(),
            });
        }
        Ok(value)
    }

    /// S3 PutObject of `body` at `bucket`/`key`.
    pub async fn put_object(
        &self,
        endpoint: &str,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> Result<()> {
        let answer = self
            .request(
                Request {
                    service: "s3",
                    endpoint,
                    method: "PUT",
                    path: &object_path(bucket, key),
                    query: "",
                    headers: &[],
                    body,
                },
                MAX_API_BYTES,
            )
            .await
            .map_err(|reason| Error::Call {
                operation: "PutObject".to_owned(),
                reason,
            })?;
        if answer.status >= 300 {
            return Err(s3_error(&answer, "PutObject"));
        }
        Ok(())
    }
}

/// The path of an object: bucket and key segments percent-encoded.
pub(crate) fn object_path(bucket: &str, key: &str) -> String {
    format!(
        "/{}/{}",
        utf8_percent_encode(bucket, UNRESERVED),
        key.split('/')
            .map(|s| utf8_percent_encode(s, UNRESERVED).to_string())
            .collect::<Vec<_>>()
            .join("/")
    )
}

/// An S3 error answer as [`Error::Api`].
pub(crate) fn s3_error(answer: &Answer, operation: &str) -> Error {
    let text = String::from_utf8_lossy(&answer.body);
    Error::Api {
        operation: operation.to_owned(),
        status: answer.status,
        code: xml_text(&text, "Code").unwrap_or_else(|| answer.status.to_string()),
        message: xml_text(&text, "Message").unwrap_or_default(),
    }
}

/// The text of the first `<tag>…</tag>`, XML-unescaped.
pub(crate) fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml_unescape(&xml[start..end]))
}

/// The texts of every `<tag>…</tag>`, in order.
pub(crate) fn xml_all(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(&open) {
        let from = at + open.len();
        let Some(len) = rest[from..].find(&close) else {
            break;
        };
        out.push(xml_unescape(&rest[from..from + len]));
        rest = &rest[from + len + close.len()..];
    }
    out
}

fn xml_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let Some(end) = after.find(';') else {
            out.push_str(&rest[at..]);
            return out;
        };
        let entity = &after[..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&rest[at..at + 2 + end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_encode_each_segment() {
        assert_eq!(
            object_path("b", "AWSLogs/1/a b+c.json.gz"),
            "/b/AWSLogs/1/a%20b%2Bc.json.gz"
        );
    }

    #[test]
    fn xml_texts_are_unescaped() {
        let xml =
            "<Error><Code>NoSuchBucket</Code><Message>a &lt;b&gt; &#x41;&amp;</Message></Error>";
        assert_eq!(xml_text(xml, "Code").as_deref(), Some("NoSuchBucket"));
        assert_eq!(xml_text(xml, "Message").as_deref(), Some("a <b> A&"));
        assert_eq!(xml_all("<K>1</K><K>2</K>", "K"), ["1", "2"]);
    }
}
