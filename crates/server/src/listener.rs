//! The listener: an accept loop of its own over hyper-util (HTTP/1.1 and HTTP/2), plain or
//! TLS (rustls), with a deadline for each request's header (and for the TLS handshake) and
//! for a connection on which nothing moves, and the client ([`ClientAddr`]) put in every
//! request.

use crate::edge;
use crate::tls::{Hangup, ReloadingCert};
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use ipnet::IpNet;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How connections are served.
#[derive(Clone)]
pub(crate) struct Limits {
    /// For the TLS handshake, and for each request's header.
    pub header_timeout: Duration,
    /// For a connection on which nothing is read or written.
    pub idle_timeout: Duration,
    /// Whose forwarding headers are believed.
    pub trusted_proxies: Arc<[IpNet]>,
}

/// The certificate, when the listener serves TLS, and what reloads it.
pub(crate) struct Tls {
    pub cert: Arc<ReloadingCert>,
    pub hangup: Option<Hangup>,
}

/// Accepts connections until the task is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<Tls>,
    limits: Limits,
    router: Router,
) -> io::Result<()> {
    let acceptor = match &tls {
        Some(tls) => Some(TlsAcceptor::from(Arc::new(
            tls.cert.server_config().map_err(io::Error::other)?,
        ))),
        None => None,
    };
    let accept = accept_loop(listener, acceptor, limits, router);
    match tls {
        Some(Tls { cert, hangup }) => {
            tokio::select! {
                () = accept => {}
                () = cert.watch(hangup) => {}
            }
        }
        None => accept.await,
    }
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    limits: Limits,
    router: Router,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::error!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let limits = limits.clone();
        let router = router.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => connection(stream, peer, false, limits, router).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => connection(stream, peer, true, limits, router).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection until the client closes it, a header comes too slowly, or nothing
/// moves for the idle timeout: then the connection is closed gracefully (an answer in
/// progress may finish), and dropped if nothing moves for another idle period.
///
/// hyper's HTTP/1 header deadline also runs while a kept-alive connection waits for its next
/// request, so such a connection closes after the header timeout; the idle deadline bounds
/// HTTP/2 connections and answers a client does not read.
async fn connection<I>(io: I, peer: SocketAddr, tls: bool, limits: Limits, router: Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: io,
        activity: activity.clone(),
    });
    let trusted = limits.trusted_proxies.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let client = edge::client_of(peer, tls, request.headers(), &trusted);
        request.extensions_mut().insert(client);
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let wait = limits.idle_timeout.saturating_sub(activity.idle());
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep(wait) => {
                if activity.idle() >= limits.idle_timeout {
                    if closing {
                        // Not even the answer in progress moved (a client that does not
                        // read): drop the connection.
                        tracing::debug!(%peer, "connection dropped: nothing moved while closing");
                        return;
                    }
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    // The answer in progress gets another idle period to move.
                    activity.touch();
                }
            }
        }
    }
}

/// When a connection last read or wrote anything.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        self.start
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A stream that records its activity.
struct Watched<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
