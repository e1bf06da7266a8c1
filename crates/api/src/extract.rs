//! Extractors and header readers shared by the API and the pages: bodies with their errors
//! as problem+json, the bearer token, the authenticated resident, and what the OpenID
//! Connect endpoints read from headers (Basic credentials, DPoP).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tsunagu_core::Code;
use tsunagu_platform::Platform;
use tsunagu_platform::identity::Session;
use tsunagu_platform::oidc::{ClientAuthHeader, DpopHeader};

/// The raw body, with a size error as problem+json.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(Code::PayloadTooLarge, "the request body is too large")
                } else {
                    ApiError::new(Code::InvalidRequest, e.body_text())
                }
            })
    }
}

/// A JSON body of type `T`, sent as `application/json` (or a `+json` type); another
/// content type is `unsupported_media_type`, any other body `invalid_json` with the reason.
pub struct Json<T>(pub T);

/// Whether a `Content-Type` value names JSON: `application/json` or `application/<x>+json`,
/// parameters (`; charset=utf-8`) allowed.
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json") && sub.len() > "+json".len())
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or(""));
        match content_type {
            Some(v) if is_json_content_type(v) => {}
            Some(v) => {
                return Err(ApiError::new(
                    Code::UnsupportedMediaType,
                    format!(
                        "the body must be application/json, not {:?}",
                        v.chars().take(80).collect::<String>()
                    ),
                ));
            }
            None => {
                return Err(ApiError::new(
                    Code::UnsupportedMediaType,
                    "the body must be sent with Content-Type: application/json",
                ));
            }
        }
        let Body(bytes) = Body::from_request(req, state).await?;
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|e| ApiError::new(Code::InvalidJson, format!("request body: {e}")))
    }
}

/// Query parameters of type `T`; malformed ones are `invalid_request`.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::new(Code::InvalidRequest, e.body_text()))
    }
}

/// The `Authorization: Bearer` token, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// How a service may authenticate a request: the bearer client assertion (or whatever else
/// the `Authorization` header holds), and the client certificate of the connection (mutual
/// TLS) as its `x5t#S256`. The platform's `Exchange::authenticate` decides which counts.
pub struct ServiceCaller {
    pub bearer: Option<String>,
    pub client_cert: Option<String>,
}

impl ServiceCaller {
    pub fn bearer(&self) -> Option<&str> {
        self.bearer.as_deref()
    }

    pub fn client_cert(&self) -> Option<&str> {
        self.client_cert.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ServiceCaller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // An `Authorization` header that is not a bearer assertion is still a credential the
        // caller chose: it is judged (and refused), never passed over for the certificate.
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        Ok(ServiceCaller {
            bearer: bearer(&parts.headers).map(str::to_owned).or(authorization),
            client_cert: parts
                .extensions
                .get::<tsunagu_capability::ClientCert>()
                .map(|c| c.x5t_s256.clone()),
        })
    }
}

/// An authenticated resident (a session from `/v1/auth/login`).
pub struct Resident(pub Session);

impl FromRequestParts<Arc<Platform>> for Resident {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        platform: &Arc<Platform>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::new(Code::Unauthorized, "a bearer access token is required")
        })?;
        Ok(Resident(platform.identity.authenticate(token).await?))
    }
}

/// A JSON answer with a status.
pub fn json_response<T: serde::Serialize>(status: axum::http::StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

pub use tsunagu_core::oidc::form_decode;

/// The client credentials of an `Authorization: Basic` header.
pub fn client_auth(headers: &HeaderMap) -> ClientAuthHeader {
    match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(value) => ClientAuthHeader::parse(value),
        None => ClientAuthHeader::None,
    }
}

/// The request's `DPoP` header.
pub fn dpop(headers: &HeaderMap) -> DpopHeader {
    let mut values = headers.get_all("dpop").iter();
    let Some(value) = values.next() else {
        return DpopHeader::Absent;
    };
    if values.next().is_some() {
        return DpopHeader::Many;
    }
    match value.to_str() {
        Ok(v) => DpopHeader::One(v.to_owned()),
        Err(_) => DpopHeader::NotText,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsunagu_crypto::b64;

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(is_json_content_type(ok), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/+json",
            "application/jsonx",
            "text/json",
        ] {
            assert!(!is_json_content_type(bad), "{bad}");
        }
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let raw = b64::std_encode("svc_a%3Ab:s%2Bcret+x");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {raw}").parse().unwrap(),
        );
        assert_eq!(
            client_auth(&headers),
            ClientAuthHeader::Basic {
                id: "svc_a:b".into(),
                secret: "s+cret x".into()
            }
        );
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(client_auth(&headers), ClientAuthHeader::MalformedBasic);
        for bad in ["svc%zz:secret", "svc:secret%4", "svc%:secret"] {
            let raw = b64::std_encode(bad);
            headers.insert(
                header::AUTHORIZATION,
                format!("Basic {raw}").parse().unwrap(),
            );
            assert_eq!(
                client_auth(&headers),
                ClientAuthHeader::MalformedBasic,
                "{bad}"
            );
        }
        headers.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(client_auth(&headers), ClientAuthHeader::None);
    }

    #[test]
    fn dpop_headers_are_counted() {
        let mut headers = HeaderMap::new();
        assert_eq!(dpop(&headers), DpopHeader::Absent);
        headers.append("dpop", "a".parse().unwrap());
        assert_eq!(dpop(&headers), DpopHeader::One("a".into()));
        headers.append("dpop", "b".parse().unwrap());
        assert_eq!(dpop(&headers), DpopHeader::Many);
    }

    proptest::proptest! {
        /// What a client form-encodes (RFC 6749 §2.3.1) decodes back to the same text.
        #[test]
        fn form_encoding_round_trips(s in "\\PC*") {
            let encoded = tsunagu_platform::oidc::urlencode(&s);
            proptest::prop_assert_eq!(form_decode(&encoded), Some(s));
        }

        /// Any `Authorization` value is an answer, never a panic, and Basic credentials
        /// that decode come back whole.
        #[test]
        fn any_authorization_header_is_classified(raw in "\\PC{0,64}", id in "[^:]{0,16}", secret in "\\PC{0,16}") {
            let mut headers = HeaderMap::new();
            if let Ok(v) = format!("Basic {raw}").parse() {
                headers.insert(header::AUTHORIZATION, v);
                let _ = client_auth(&headers);
            }
            let basic = b64::std_encode(format!(
                "{}:{}",
                tsunagu_platform::oidc::urlencode(&id),
                tsunagu_platform::oidc::urlencode(&secret)
            ));
            headers.insert(header::AUTHORIZATION, format!("Basic {basic}").parse().unwrap());
            proptest::prop_assert_eq!(client_auth(&headers), ClientAuthHeader::Basic { id, secret });
        }
    }
}
