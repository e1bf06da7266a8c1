//! The listener: an accept loop of its own over hyper-util (HTTP/1.1 and HTTP/2), plain or
//! TLS (rustls), with a deadline for each request's header (and for the TLS handshake) and
//! for a connection on which nothing moves. Every request carries the peer's address
//! (`ConnectInfo<SocketAddr>`), the client certificate of the connection when there is one
//! ([`ClientCert`]), and whatever the caller's [`Decorate`] adds.

use crate::cert::{Hangup, ReloadingCert};
use axum::Router;
use axum::extract::ConnectInfo;
use base64::Engine;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::server::danger::ClientCertVerifier;
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
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// For the TLS handshake, and for each request's header.
    pub header_timeout: Duration,
    /// For a connection on which nothing is read or written.
    pub idle_timeout: Duration,
}

/// The certificate, when the listener serves TLS, what reloads it, and the verifier of
/// client certificates when the listener asks for them.
pub struct Tls {
    pub cert: Arc<ReloadingCert>,
    pub hangup: Option<Hangup>,
    pub clients: Option<Arc<dyn ClientCertVerifier>>,
}

/// The client certificate the connection was made with (verified by the TLS handshake
/// against the configured client CA), in every request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate's SHA-256 (base64url without padding): RFC 8705's `x5t#S256`.
    pub x5t_s256: String,
}

impl ClientCert {
    /// The `x5t#S256` of a DER certificate.
    pub fn of_der(der: &[u8]) -> ClientCert {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        ClientCert {
            x5t_s256: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
        }
    }
}

/// One connection, as the request decorator sees it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    pub client_cert: Option<ClientCert>,
}

/// Adds the caller's own extensions to each request (the platform: who the client is,
/// after its trusted proxies).
pub type Decorate = Arc<dyn Fn(&Peer, &mut hyper::Request<Incoming>) + Send + Sync>;

/// Accepts connections until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Tls>,
    limits: Limits,
    decorate: Decorate,
    router: Router,
) -> io::Result<()> {
    let acceptor = match &tls {
        Some(tls) => Some(TlsAcceptor::from(Arc::new(
            tls.cert
                .server_config(tls.clients.clone())
                .map_err(io::Error::other)?,
        ))),
        None => None,
    };
    let accept = accept_loop(listener, acceptor, limits, decorate, router);
    match tls {
        Some(Tls { cert, hangup, .. }) => {
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
    decorate: Decorate,
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
        let router = router.clone();
        let acceptor = acceptor.clone();
        let decorate = decorate.clone();
        tokio::spawn(async move {
            match acceptor {
                None => {
                    let peer = Peer {
                        addr: peer,
                        tls: false,
                        client_cert: None,
                    };
                    connection(stream, peer, limits, decorate, router).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            let client_cert = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .map(|leaf| ClientCert::of_der(leaf));
                            let peer = Peer {
                                addr: peer,
                                tls: true,
                                client_cert,
                            };
                            connection(stream, peer, limits, decorate, router).await
                        }
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
async fn connection<I>(io: I, peer: Peer, limits: Limits, decorate: Decorate, router: Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: io,
        activity: activity.clone(),
    });
    let service = {
        let peer = peer.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer.addr));
            if let Some(cert) = &peer.client_cert {
                request.extensions_mut().insert(cert.clone());
            }
            decorate(&peer, &mut request);
            router.clone().oneshot(request)
        })
    };
    let peer = peer.addr;
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
