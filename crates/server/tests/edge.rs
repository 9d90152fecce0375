//! The edge end to end in process: signed requests through `app()` with no
//! sockets, for served and unserved services of each protocol family.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cairn_auth::{Credentials, Payload, RequestParts, SigningParams, sign_request};
use cairn_server::Server;
use cairn_server::config::ServerConfig;
use cairn_server::credentials::{CredentialSource, RootCredentials};
use serde_json::{Value, json};
use tower::ServiceExt;

const KEY: &str = "AKIACAIRNUNITTEST001";
const SECRET: &str = "unit-test-secret-0123456789";

struct Edge {
    server: Server,
    _dir: tempfile::TempDir,
}

impl Edge {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ServerConfig::from_toml(
            "127.0.0.1:0".parse().expect("addr"),
            dir.path(),
            "account_id = \"123456789012\"\nregion = \"us-east-1\"\n",
        )
        .expect("config");
        let root = RootCredentials {
            access_key_id: KEY.to_owned(),
            secret_access_key: SECRET.to_owned(),
            source: CredentialSource::Generated(dir.path().join("credentials")),
        };
        let server = Server::start(&config, &root).expect("server starts");
        Self { server, _dir: dir }
    }

    /// Sends a request signed for `service` in `region`.
    async fn send(
        &self,
        service: &str,
        region: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let mut all: Vec<(&str, &str)> = vec![("host", "localhost")];
        all.extend_from_slice(headers);
        let credentials = Credentials::new(KEY, SECRET);
        let signed = sign_request(
            &RequestParts {
                method: "POST",
                raw_path: path,
                raw_query: "",
                headers: &all,
            },
            Payload::Bytes(body),
            &SigningParams {
                credentials: &credentials,
                region,
                service,
                time: chrono::Utc::now(),
            },
        )
        .expect("signs");
        let mut request = Request::builder().method("POST").uri(path);
        for (k, v) in &all {
            request = request.header(*k, *v);
        }
        for (k, v) in &signed.headers {
            request = request.header(*k, v.as_str());
        }
        let response = self
            .server
            .app()
            .oneshot(request.body(Body::from(body.to_vec())).expect("request"))
            .await
            .expect("answered");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    async fn cloudtrail(&self, region: &str, op: &str, input: Value) -> (StatusCode, Value) {
        let target = format!("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.{op}");
        let (status, _, body) = self
            .send(
                "cloudtrail",
                region,
                "/",
                &[
                    ("x-amz-target", &target),
                    ("content-type", "application/x-amz-json-1.1"),
                ],
                input.to_string().as_bytes(),
            )
            .await;
        (status, serde_json::from_str(&body).expect("JSON answer"))
    }

    async fn stop(self) {
        let pipeline = self.server.state.pipeline.clone();
        tokio::task::spawn_blocking(move || pipeline.shutdown())
            .await
            .expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_sts_get_caller_identity_over_the_query_protocol() {
    let edge = Edge::start();
    let (status, headers, body) = edge
        .send(
            "sts",
            "us-east-1",
            "/",
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            b"Action=GetCallerIdentity&Version=2011-06-15",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["content-type"], "text/xml");
    assert!(body.starts_with(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
    ));
    assert!(body.contains("<Account>123456789012</Account>"));
    assert!(body.contains("<Arn>arn:aws:iam::123456789012:root</Arn>"));
    assert!(body.contains(&format!(
        "<RequestId>{}</RequestId>",
        headers["x-amzn-requestid"].to_str().expect("ascii")
    )));
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_unserved_services_are_answered_in_their_protocol() {
    let edge = Edge::start();
    // JSON 1.1.
    let (status, headers, body) = edge
        .send(
            "kms",
            "us-east-1",
            "/",
            &[
                ("x-amz-target", "TrentService.ListKeys"),
                ("content-type", "application/x-amz-json-1.1"),
            ],
            b"{}",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let answer: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(answer["__type"], "UnknownOperationException");
    assert!(
        answer["message"]
            .as_str()
            .expect("message")
            .starts_with("Cairn does not serve AWS Key Management Service (kms).")
    );
    assert_eq!(headers["content-type"], "application/x-amz-json-1.1");
    // Query-compatible JSON 1.0.
    let (_, headers, _) = edge
        .send(
            "sqs",
            "us-east-1",
            "/",
            &[
                ("x-amz-target", "AmazonSQS.ListQueues"),
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amzn-query-mode", "true"),
            ],
            b"{}",
        )
        .await;
    assert_eq!(headers["x-amzn-query-error"], "InvalidAction;Sender");
    assert_eq!(headers["content-type"], "application/x-amz-json-1.0");
    // Query.
    let (status, _, body) = edge
        .send(
            "iam",
            "us-east-1",
            "/",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"Action=ListUsers&Version=2010-05-08",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("<Type>Sender</Type>"), "{body}");
    assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");
    assert!(
        body.contains("AWS Identity and Access Management (iam)"),
        "{body}"
    );
    // REST-JSON.
    let (status, headers, _) = edge
        .send("lambda", "us-east-1", "/2015-03-31/functions/", &[], b"")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["x-amzn-errortype"], "UnknownOperationException");
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_unknown_operations_of_served_services() {
    let edge = Edge::start();
    let (status, answer) = edge
        .cloudtrail("us-east-1", "ListChannels", json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["__type"], "UnknownOperationException");
    let (_, _, body) = edge
        .send(
            "sts",
            "us-east-1",
            "/",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"Action=AssumeRole&Version=2011-06-15",
        )
        .await;
    assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_trails_take_the_region_of_their_request() {
    let edge = Edge::start();
    let meta = edge.server.state.meta.clone();
    tokio::task::spawn_blocking(move || {
        meta.create_bucket(&cairn_meta::Bucket {
            name: "logs-bucket".to_owned(),
            region: "us-east-1".to_owned(),
            created_at: chrono::Utc::now(),
        })
    })
    .await
    .expect("joined")
    .expect("bucket");
    let (status, created) = edge
        .cloudtrail(
            "eu-west-1",
            "CreateTrail",
            json!({"Name": "local", "S3BucketName": "logs-bucket"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(
        created["TrailARN"],
        "arn:aws:cloudtrail:eu-west-1:123456789012:trail/local"
    );
    let (_, described) = edge
        .cloudtrail("eu-west-1", "DescribeTrails", json!({}))
        .await;
    assert_eq!(described["trailList"][0]["HomeRegion"], "eu-west-1");
    let (_, elsewhere) = edge
        .cloudtrail("us-east-1", "DescribeTrails", json!({}))
        .await;
    assert_eq!(elsewhere["trailList"], json!([]));
    let (status, missing) = edge
        .cloudtrail("us-east-1", "GetTrailStatus", json!({"Name": "local"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        missing["message"],
        "Unknown trail: arn:aws:cloudtrail:us-east-1:123456789012:trail/local for the user: 123456789012"
    );
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_scope_region_that_is_no_region_name_is_refused() {
    let edge = Edge::start();
    let (status, answer) = edge.cloudtrail("..", "ListPublicKeys", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["__type"], "InvalidSignatureException");
    assert_eq!(
        answer["message"],
        "Credential should be scoped to a valid region, not '..'."
    );
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_cloudwatch_query_clients_get_query_errors() {
    let edge = Edge::start();
    let (status, headers, body) = edge
        .send(
            "monitoring",
            "us-east-1",
            "/",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"Action=DescribeAnomalyDetectors&Version=2010-08-01",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["content-type"], "text/xml");
    assert!(
        body.starts_with(
            "<ErrorResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\">"
        ),
        "{body}"
    );
    assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");
    assert!(body.contains("DescribeAnomalyDetectors"), "{body}");
    edge.stop().await;
}
