//! The connection loop of `supo serve`, hardened for a server that may face more than
//! loopback: a header read timeout, an idle keep-alive timeout and a bound on open
//! connections here; the body limit, the body timeout and the bound on requests in flight are
//! the router's ([`crate::ServeOptions`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The server's limits on clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest wait for a request's whole header, from the moment the connection is ready
    /// for a request (new, or done with the previous one); then the connection is closed.
    pub header_timeout: Duration,
    /// The longest wait for a request's whole body (the router's; a slower body is a 408).
    pub body_timeout: Duration,
    /// How long an idle keep-alive connection (no request in flight, nothing sent or
    /// received) stays open. The header timeout also runs while a connection waits for its
    /// next request, so the shorter of the two applies to an idle connection.
    pub idle_timeout: Duration,
    /// Requests handled at once (the router's; one more is a 429).
    pub max_in_flight: usize,
    /// The largest request body in bytes (the router's; a larger one is a 413).
    pub max_body_bytes: usize,
    /// Connections open at once; further clients wait to be accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(5),
            max_in_flight: 256,
            max_body_bytes: 4 << 20,
            max_connections: 1024,
        }
    }
}

/// A stream that records when bytes last moved.
struct Tracked {
    inner: TcpStream,
    epoch: Instant,
    last: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `app` on `listener` (HTTP/1.1) under `limits` until `shutdown` completes; open
/// connections are then dropped. Accept errors (too many open files) are waited out.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
        };
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let epoch = Instant::now();
        let last = Arc::new(AtomicU64::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        let io = TokioIo::new(Tracked {
            inner: stream,
            epoch,
            last: last.clone(),
        });
        let app = app.clone();
        let counter = active.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let app = app.clone();
                let counter = counter.clone();
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    let resp =
                        tower::ServiceExt::oneshot(app, req.map(axum::body::Body::new)).await;
                    counter.fetch_sub(1, Ordering::SeqCst);
                    resp
                }
            });
        let builder = builder.clone();
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let conn = builder.serve_connection(io, service);
            tokio::pin!(conn);
            let tick = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    _ = tokio::time::sleep(tick) => {
                        let quiet = epoch.elapsed().as_millis() as u64
                            - last.load(Ordering::Relaxed).min(epoch.elapsed().as_millis() as u64);
                        if active.load(Ordering::SeqCst) == 0 && quiet >= idle.as_millis() as u64 {
                            conn.as_mut().graceful_shutdown();
                            // An idle connection closes at once; give a busy one its header
                            // timeout to finish.
                            let _ = tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await;
                            break;
                        }
                    }
                }
            }
        });
    }
}
