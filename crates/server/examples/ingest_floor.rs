//! The least a server must do to take `cairn ingest`'s requests as Cairn
//! takes them and deliver every record to one trail's log files: a lower
//! bound on Cairn's own cost, measured under the same client and load
//! (`bench/ingest.py --lower-bound`).
//!
//! Per request it reads the body over HTTP/1.1 (hyper, as Cairn), checks the
//! SigV4 signature with the body's SHA-256 (an unsigned body could be changed
//! on the way), finds the records and makes them durable (one committer
//! thread, every waiting request in one append and one `fdatasync`, as Cairn)
//! before it answers. A delivery thread then does exactly the parse+gzip
//! floor's work on them (`RecordView::parse`, `LogBatches` with the same
//! deflate pool as Cairn's sinks) and writes each interval's files. Nothing
//! else: no per-record checks, no defaults, no event IDs, no deduplication,
//! no selectors, no digests, no metastore.
//!
//! `CAIRN_ROOT_ACCESS_KEY_ID=.. CAIRN_ROOT_SECRET_ACCESS_KEY=.. ingest_floor
//! ADDR DIR [gzip-level] [interval-ms]` serves until killed; `GET /health`
//! and `GET /metrics` (`cairn_delivered_records_total N`) answer as Cairn's.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use cairn_model::RecordView;
use cairn_model::json_limits::split_log_file;
use cairn_trail::{DeflatePool, LogBatches};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// A request's records: its body (checked as UTF-8 once, by the handler) and
/// where each record's text is in it.
struct Append {
    body: String,
    records: Vec<std::ops::Range<usize>>,
}

/// An [`Append`] on its way to the committer, with where to answer.
type Commit = (Append, oneshot::Sender<std::io::Result<()>>);

struct Shared {
    access_key_id: String,
    secret: String,
    commits: mpsc::Sender<Commit>,
    delivered: Arc<AtomicU64>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(dir)) = (args.next(), args.next()) else {
        eprintln!("usage: ingest_floor ADDR DIR [gzip-level] [interval-ms]");
        std::process::exit(2);
    };
    let level: u32 = args.next().and_then(|l| l.parse().ok()).unwrap_or(6);
    let interval = Duration::from_millis(args.next().and_then(|i| i.parse().ok()).unwrap_or(1000));
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(dir.join("logs")).expect("a writable directory");

    let delivered = Arc::new(AtomicU64::new(0));
    let (deliveries, to_deliver) = mpsc::channel::<Append>();
    let (commits, to_commit) = mpsc::channel::<Commit>();
    let wal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("wal"))
        .expect("a writable WAL file");
    std::thread::spawn(move || commit(wal, to_commit, deliveries));
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let pool = DeflatePool::new(cores).expect("deflate threads");
    let counter = delivered.clone();
    std::thread::spawn(move || {
        deliver(to_deliver, dir.join("logs"), level, pool, interval, counter)
    });

    let shared = Arc::new(Shared {
        access_key_id: env("CAIRN_ROOT_ACCESS_KEY_ID"),
        secret: env("CAIRN_ROOT_SECRET_ACCESS_KEY"),
        commits,
        delivered,
    });
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async move {
        let app = axum::Router::new()
            .route("/cairn/v1/records", post(records))
            .route("/health", get(|| async { "ok" }))
            .route("/metrics", get(metrics))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .expect("a free address");
        axum::serve(listener, app).await.expect("serving");
    });
}

async fn metrics(State(shared): State<Arc<Shared>>) -> String {
    format!(
        "cairn_delivered_records_total {}\n",
        shared.delivered.load(Ordering::Relaxed)
    )
}

async fn records(
    State(shared): State<Arc<Shared>>,
    request: Request<Body>,
) -> (StatusCode, String) {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, 5 << 20).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, String::new());
    };
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
        .collect();
    let request = cairn_auth::RequestParts {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &headers,
    };
    let signed = cairn_auth::parse(&request).and_then(|parsed| {
        if parsed.scope.access_key_id != shared.access_key_id {
            return Err(cairn_auth::AuthError::Missing);
        }
        let body_hash = hex::encode(Sha256::digest(&body));
        cairn_auth::verify(
            &request,
            &parsed,
            &shared.secret,
            &body_hash,
            chrono::Utc::now(),
        )
    });
    if signed.is_err() {
        return (StatusCode::FORBIDDEN, String::new());
    }
    // The records are found once, here: to be counted in the answer, and for
    // the delivery thread, whose floor work starts from each record's text.
    // (`Vec::from` takes over the buffer `to_bytes` gathered the chunks
    // into, and copies only a body that arrived as one shared chunk.)
    let Ok(body) = String::from_utf8(Vec::from(body)) else {
        return (StatusCode::BAD_REQUEST, String::new());
    };
    let start = body.as_ptr() as usize;
    let Some(records) = split_log_file(&body).map(|records| {
        records
            .iter()
            .map(|r| {
                let at = r.text.as_ptr() as usize - start;
                at..at + r.text.len()
            })
            .collect::<Vec<_>>()
    }) else {
        return (StatusCode::BAD_REQUEST, String::new());
    };
    let count = records.len();
    let (done, answer) = oneshot::channel();
    if shared
        .commits
        .send((Append { body, records }, done))
        .is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
    }
    match answer.await {
        Ok(Ok(())) => (
            StatusCode::OK,
            format!("{{\"accepted\":{count},\"failed\":[]}}"),
        ),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
    }
}

/// One append and one `fdatasync` for every request waiting, then the answers,
/// then the records to delivery.
fn commit(
    mut wal: std::fs::File,
    commits: mpsc::Receiver<Commit>,
    deliveries: mpsc::Sender<Append>,
) {
    while let Ok(first) = commits.recv() {
        let mut group = vec![first];
        group.extend(commits.try_iter());
        let written = group
            .iter()
            .try_for_each(|(append, _)| wal.write_all(append.body.as_bytes()))
            .and_then(|()| wal.sync_data());
        for (append, done) in group {
            let _ = done.send(match &written {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            });
            if written.is_ok() {
                let _ = deliveries.send(append);
            }
        }
    }
}

/// The parse+gzip floor's work on every committed record, files finished and
/// written once an interval has passed since the oldest record in them.
fn deliver(
    appends: mpsc::Receiver<Append>,
    dir: std::path::PathBuf,
    level: u32,
    pool: DeflatePool,
    interval: Duration,
    delivered: Arc<AtomicU64>,
) {
    let mut batches = LogBatches::with_pool(level, pool);
    let mut opened: Option<Instant> = None;
    let mut files = 0u64;
    loop {
        let wait = opened.map_or(interval, |t| interval.saturating_sub(t.elapsed()));
        match appends.recv_timeout(wait) {
            Ok(append) => {
                for range in append.records {
                    let record = append.body.get(range).unwrap_or_default();
                    let Ok(view) = RecordView::parse(record) else {
                        continue;
                    };
                    batches.push(
                        view.recipient_account_id
                            .as_deref()
                            .unwrap_or("123456789012"),
                        view.aws_region.as_deref().unwrap_or("us-east-1"),
                        record.as_bytes(),
                        None,
                    );
                }
                opened.get_or_insert_with(Instant::now);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if opened.is_some_and(|t| t.elapsed() >= interval) {
            let mut count = 0u64;
            for (_, file) in batches.finish() {
                files += 1;
                count += file.records as u64;
                std::fs::write(dir.join(format!("{files}.json.gz")), &file.gzip).expect("writable");
            }
            delivered.fetch_add(count, Ordering::Relaxed);
            opened = None;
        }
    }
}
