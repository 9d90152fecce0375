//! Accepting connections with bounds, so idle or slow clients cannot exhaust
//! the process.
//!
//! A plain accept loop would let every client hold a socket (and a file
//! descriptor) for as long as it likes: enough idle connections make the WAL
//! fail to open its next segment with EMFILE. So:
//! - at most [`ConnectionLimits::max_connections`] connections are served at
//!   once; past that a new connection is closed at once (and counted);
//! - a connection must send a whole request head within
//!   [`ConnectionLimits::header_read_timeout`], counted from when the server
//!   starts waiting for it: on a new connection and between the requests of a
//!   kept-alive one, so an idle connection is closed after that long too;
//! - a failed `accept` (EMFILE, ENFILE) is logged and retried after a pause,
//!   never a busy loop and never the end of the server.
//!
//! Request bodies have their own deadline and budget (see the dispatcher).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How many connections, and how long a request head may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long the server waits for a whole request head, on a new
    /// connection or between requests on a kept-alive one.
    pub header_read_timeout: Duration,
    /// How long a request body may take to arrive once its head has.
    pub body_read_timeout: Duration,
    /// Request-body bytes buffered across all connections at once.
    pub max_buffered_body_bytes: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(20),
            body_read_timeout: Duration::from_secs(60),
            max_buffered_body_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Connections refused because [`ConnectionLimits::max_connections`] were open.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// Connections closed on arrival.
    pub refused: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
}

/// How long to pause after a failed `accept` (out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The most a connection buffers of what it reads, head and body alike.
///
/// hyper grows a connection's read buffer up to about 400 KiB while a client
/// sends fast, and keeps it for the connection's life, so a few hundred
/// clients pushing large bodies could hold a hundred megabytes. 64 KiB is
/// still eight times the largest request head AWS clients send, and bodies
/// stream through it (in the soak, `bench/soak.py`, it took about 3 MB off
/// the peak RSS).
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then
/// lets in-flight requests finish (for a while) and returns.
pub async fn serve_with_limits(
    listener: TcpListener,
    app: Router,
    limits: &ConnectionLimits,
    counters: Arc<ConnectionCounters>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(READ_BUFFER_BYTES)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection; pausing");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "connection limit reached; closing a new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(ConnectInfo::<SocketAddr>(peer))),
        );
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let counters = Arc::clone(&counters);
        counters.open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            counters.open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("connections still open after the shutdown grace period; closing them");
        }
    }
}
