//! What every request and response passes through at the edge, whichever capability
//! answers: no error leaves as `text/plain` (a framework's rejection — a path parameter that
//! is not UTF-8, a body over the limit on a page's form — becomes problem+json with a stable
//! `code`), and the request span names the path without the query, whose values may be
//! bearer secrets (an access token in `?access_token=`, an authorization code).

use crate::error::ApiError;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tsunagu_capability::ClientAddr;
use tsunagu_core::Code;
use tsunagu_platform::rates::RateLimiter;

/// The code and detail for an error answer the framework wrote as plain text.
fn problem_for(status: StatusCode) -> (Code, &'static str) {
    match status {
        StatusCode::NOT_FOUND => (Code::NotFound, "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => {
            (Code::MethodNotAllowed, "this method is not allowed here")
        }
        StatusCode::PAYLOAD_TOO_LARGE => (Code::PayloadTooLarge, "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            Code::UnsupportedMediaType,
            "the request body's Content-Type is not one this endpoint reads",
        ),
        StatusCode::UNAUTHORIZED => (Code::Unauthorized, "authentication is required"),
        StatusCode::FORBIDDEN => (Code::Forbidden, "not allowed"),
        StatusCode::TOO_MANY_REQUESTS => (Code::RateLimited, "too many requests: slow down"),
        StatusCode::SERVICE_UNAVAILABLE => (Code::Unavailable, "the service is unavailable"),
        s if s.is_server_error() => (
            Code::InternalError,
            "something failed inside the platform; details are in the server log",
        ),
        _ => (
            Code::InvalidRequest,
            "the request is malformed: a path or query parameter, header or body is not \
             valid (path parameters must be UTF-8 text)",
        ),
    }
}

/// Whether an error answer is a framework's plain-text rejection (or has no type at all).
fn is_plain(response: &Response) -> bool {
    match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(v) => v
            .to_str()
            .map(|t| {
                t.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/plain")
            })
            .unwrap_or(true),
    }
}

/// Middleware: an error answer in plain text becomes problem+json; its other headers
/// (`Allow`, `WWW-Authenticate`, `Retry-After`) stay.
pub async fn problem_for_plain_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || !is_plain(&response) {
        return response;
    }
    let (parts, _) = response.into_parts();
    let (code, detail) = problem_for(status);
    let mut problem = ApiError::new(code, detail).into_response();
    *problem.status_mut() = status;
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().append(name.clone(), value.clone());
        }
    }
    problem.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    problem
}

/// The request's span: method, path, the names (not the values) of its query parameters,
/// the HTTP version and the client ([`ClientAddr`]).
pub fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let client = request
        .extensions()
        .get::<ClientAddr>()
        .map(|c| c.ip.to_string())
        .unwrap_or_default();
    let query_keys: Vec<&str> = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split('=').next().unwrap_or(""))
        .collect();
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        query_keys = %query_keys.join(","),
        version = ?request.version(),
        client = %client,
    )
}

/// The client address of a request: the listener's [`ClientAddr`] (the peer, or the address
/// a trusted proxy forwarded for), else the TCP peer of `axum::serve`'s connect info.
pub fn client_addr(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ClientAddr>()
        .map(|c| c.ip)
        .or_else(|| {
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
}

/// Limits per source address on the endpoints anyone may call without an account or a
/// registered key: each call creates a row (a nonce, an application) or checks a
/// signature, so a flood from one address would fill the database or burn the CPU.
#[derive(Clone)]
pub struct SourceLimits {
    limiter: Arc<RateLimiter>,
    /// Challenges and logins (each class its own bucket), per minute per address; 0: off.
    per_minute: u32,
    /// Service applications per hour per address; 0: off.
    applications_per_hour: u32,
}

/// What an anonymous endpoint is, for its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnonymousClass {
    /// Creates a nonce: enrollment and login challenges, the login page.
    Challenge,
    /// Checks a signature or a certificate chain: enrollment, logins, the consoles'
    /// sign-in, the simulated card.
    Login,
    /// Submits a service application for the committee.
    Application,
}

impl AnonymousClass {
    fn as_str(self) -> &'static str {
        match self {
            AnonymousClass::Challenge => "challenge",
            AnonymousClass::Login => "login",
            AnonymousClass::Application => "application",
        }
    }

    /// The class of an anonymous endpoint, if `method path` is one.
    pub fn of(method: &axum::http::Method, path: &str) -> Option<AnonymousClass> {
        use axum::http::Method;
        match (method, path) {
            (&Method::POST, "/v1/enrollment/challenge" | "/v1/auth/challenge")
            | (&Method::GET, "/login") => Some(AnonymousClass::Challenge),
            (
                &Method::POST,
                "/v1/enrollment"
                | "/v1/auth/login"
                | "/login"
                | "/console/login"
                | "/committee/login"
                | "/dev/simulated-card",
            ) => Some(AnonymousClass::Login),
            (&Method::POST, "/v1/services") => Some(AnonymousClass::Application),
            _ => None,
        }
    }
}

impl SourceLimits {
    pub fn new(per_minute: u32, applications_per_hour: u32) -> SourceLimits {
        SourceLimits {
            limiter: Arc::new(RateLimiter::default()),
            per_minute,
            applications_per_hour,
        }
    }

    /// Whether a call of `class` from `source` may go ahead, and if not, in how many seconds
    /// to try again.
    pub fn check(&self, class: AnonymousClass, source: IpAddr) -> Result<(), u64> {
        let (limit, window) = match class {
            AnonymousClass::Application => (self.applications_per_hour, 3600.0),
            _ => (self.per_minute, 60.0),
        };
        if limit == 0 {
            return Ok(());
        }
        let rate = f64::from(limit) / window;
        let key = format!("{}|{source}", class.as_str());
        if self.limiter.allow(&key, rate, f64::from(limit)) {
            Ok(())
        } else {
            Err((1.0 / rate).ceil() as u64)
        }
    }
}

/// Middleware: the anonymous endpoints answer `429 rate_limited` (with `Retry-After`) to a
/// source address over its limit.
pub async fn limit_anonymous(
    State(limits): State<SourceLimits>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(class) = AnonymousClass::of(request.method(), request.uri().path())
        && let Some(source) = client_addr(&request)
        && let Err(retry_after) = limits.check(class, source)
    {
        metrics::counter!("tsunagu_source_limited_total", "class" => class.as_str()).increment(1);
        let mut r = ApiError::new(
            Code::RateLimited,
            format!(
                "too many {} requests from this address: try again in {retry_after} s",
                class.as_str()
            ),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::extract::Path;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route(
                "/v1/things/{id}",
                get(|Path(id): Path<String>| async move { id }),
            )
            .route(
                "/form",
                post(|body: axum::body::Bytes| async move { body.len().to_string() }),
            )
            .route(
                "/metrics",
                get(|| async { "plain is fine when it is not an error" }),
            )
            .layer(axum::extract::DefaultBodyLimit::max(16))
            .layer(axum::middleware::from_fn(problem_for_plain_errors))
    }

    async fn call(req: axum::http::Request<Body>) -> (StatusCode, String, serde_json::Value) {
        let r = app().oneshot(req).await.unwrap();
        let status = r.status();
        let ct = r
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, ct, json)
    }

    #[tokio::test]
    async fn framework_rejections_become_problems() {
        let req = axum::http::Request::get("/v1/things/%FF%FE")
            .body(Body::empty())
            .unwrap();
        let (status, ct, body) = call(req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(ct, "application/problem+json");
        assert_eq!(body["code"], "invalid_request");
        assert!(
            !body["detail"].as_str().unwrap().contains("String"),
            "{body}"
        );

        let req = axum::http::Request::post("/form")
            .body(Body::from(vec![b'x'; 64]))
            .unwrap();
        let (status, ct, body) = call(req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(ct, "application/problem+json");
        assert_eq!(body["code"], "payload_too_large");

        let req = axum::http::Request::get("/metrics")
            .body(Body::empty())
            .unwrap();
        let (status, ct, _) = call(req).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            ct.starts_with("text/plain"),
            "successful plain text is left alone"
        );
    }

    #[test]
    fn the_span_keeps_query_values_out() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let req = axum::http::Request::get("/oauth2/userinfo?access_token=SECRET&lang=ja")
                .body(())
                .unwrap();
            let span = request_span(&req);
            let _entered = span.enter();
            tracing::debug!("answered");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("path=/oauth2/userinfo"), "{text}");
        assert!(text.contains("query_keys=access_token,lang"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
    }

    #[test]
    fn anonymous_endpoints_are_limited_per_source_and_class() {
        let limits = SourceLimits::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            limits.check(AnonymousClass::Login, a).unwrap();
        }
        let retry = limits.check(AnonymousClass::Login, a).unwrap_err();
        assert_eq!(retry, 20, "3 a minute: one every 20 s");
        limits
            .check(AnonymousClass::Login, b)
            .expect("another address has its own bucket");
        limits
            .check(AnonymousClass::Challenge, a)
            .expect("another class has its own bucket");
        limits.check(AnonymousClass::Application, a).unwrap();
        limits.check(AnonymousClass::Application, a).unwrap();
        assert_eq!(limits.check(AnonymousClass::Application, a), Err(1800));
        let off = SourceLimits::new(0, 0);
        assert!((0..1000).all(|_| off.check(AnonymousClass::Login, a).is_ok()));
    }

    #[test]
    fn the_anonymous_endpoints() {
        use axum::http::Method;
        assert_eq!(
            AnonymousClass::of(&Method::POST, "/v1/auth/challenge"),
            Some(AnonymousClass::Challenge)
        );
        assert_eq!(
            AnonymousClass::of(&Method::GET, "/login"),
            Some(AnonymousClass::Challenge)
        );
        assert_eq!(
            AnonymousClass::of(&Method::POST, "/v1/auth/login"),
            Some(AnonymousClass::Login)
        );
        assert_eq!(
            AnonymousClass::of(&Method::POST, "/v1/services"),
            Some(AnonymousClass::Application)
        );
        assert_eq!(AnonymousClass::of(&Method::GET, "/v1/services"), None);
        assert_eq!(
            AnonymousClass::of(&Method::POST, "/v1/exchange/tickets"),
            None
        );
    }
}
