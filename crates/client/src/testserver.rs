//! A tiny HTTP/1.1 server on 127.0.0.1 for tests: records each request and
//! answers as the test says. One request per connection (`Connection: close`).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the server answers one request.
pub(crate) enum Reply {
    /// A status, extra headers and a body.
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Close the connection without answering.
    Hangup,
}

impl Reply {
    pub(crate) fn json(status: u16, body: &str) -> Self {
        Reply::Answer {
            status,
            headers: vec![("Content-Type".into(), "application/x-amz-json-1.1".into())],
            body: body.to_owned(),
        }
    }

    pub(crate) fn text(status: u16, body: &str) -> Self {
        Reply::Answer {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: body.to_owned(),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        if let Reply::Answer { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub(crate) method: String,
    pub(crate) path: String,
    /// Names lowercased, in the order received.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Captured {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Recomputes the SigV4 signature from the request as it arrived (headers
    /// as sent on the wire, body hash) and checks it equals the one sent.
    /// Returns the signed header names.
    pub(crate) fn verify_signature(
        &self,
        secret: &str,
        region: &str,
        service: &str,
    ) -> Vec<String> {
        use sha2::{Digest, Sha256};
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let parts = cairn_auth::RequestParts {
            method: &self.method,
            raw_path: &self.path,
            raw_query: "",
            headers: &headers,
        };
        // The server's own verifier, on the request as it arrived.
        let parsed = cairn_auth::parse(&parts).expect("a parsable signature");
        assert_eq!(parsed.scope.region, region);
        assert_eq!(parsed.scope.service, service);
        for required in ["host", "x-amz-date"] {
            assert!(
                parsed.signed_headers.iter().any(|n| n == required),
                "{required} not signed"
            );
        }
        let payload = hex::encode(Sha256::digest(&self.body));
        cairn_auth::verify(&parts, &parsed, secret, &payload, chrono::Utc::now())
            .expect("the signature verifies");
        parsed.signed_headers
    }
}

/// The records of a `{"Records":[...]}` body, each as its exact text.
pub(crate) fn records_in(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        #[serde(rename = "Records", borrow)]
        records: Vec<&'a serde_json::value::RawValue>,
    }
    let body: Body = serde_json::from_slice(body).expect("a {\"Records\":[...]} body");
    body.records.iter().map(|r| r.get().to_owned()).collect()
}

/// Answers like Cairn's ingest: refuses records without `eventTime`, accepts the rest.
pub(crate) fn answer_like_cairn(_: usize, request: &Captured) -> Reply {
    let records = records_in(&request.body);
    let failed: Vec<String> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.contains("eventTime"))
        .map(|(i, _)| {
            format!(
                r#"{{"index":{i},"errorCode":"FieldNotFound","errorMessage":"Record is missing required field eventTime."}}"#
            )
        })
        .collect();
    let accepted = records.len() - failed.len();
    Reply::json(
        200,
        &format!(
            r#"{{"accepted":{accepted},"failed":[{}]}}"#,
            failed.join(",")
        ),
    )
}

type Handler = dyn Fn(usize, &Captured) -> Reply + Send + Sync;

/// A running test server; stops when dropped.
pub(crate) struct TestServer {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<Captured>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts on a free loopback port; `handler` gets the request's number (from 0).
    pub(crate) async fn start(
        handler: impl Fn(usize, &Captured) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let shared = requests.clone();
        let task = tokio::spawn(async move {
            // Bounded: no test needs more connections than this.
            for _ in 0..100_000 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (handler, shared) = (handler.clone(), shared.clone());
                tokio::spawn(async move {
                    let _ = serve_one(stream, &*handler, &shared).await;
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn requests(&self) -> Vec<Captured> {
        self.requests.lock().unwrap().clone()
    }

    /// Every record received, request by request, in arrival order.
    pub(crate) fn records_received(&self) -> Vec<String> {
        self.requests()
            .iter()
            .flat_map(|r| records_in(&r.body))
            .collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(
    mut stream: TcpStream,
    handler: &Handler,
    requests: &Mutex<Vec<Captured>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let path = request_line.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[header_end + 4..].to_vec();
    while body.len() < length.min(16 * 1024 * 1024) {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let captured = Captured {
        method,
        path,
        headers,
        body,
    };
    let reply = {
        let mut all = requests.lock().unwrap();
        let n = all.len();
        all.push(captured.clone());
        drop(all);
        handler(n, &captured)
    };
    match reply {
        Reply::Hangup => Ok(()),
        Reply::Answer {
            status,
            headers,
            body,
        } => {
            let mut out = format!(
                "HTTP/1.1 {status} Status\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&body);
            stream.write_all(out.as_bytes()).await?;
            stream.shutdown().await
        }
    }
}
