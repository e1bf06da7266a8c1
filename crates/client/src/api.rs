//! An HTTP client for the platform's resident and ledger endpoints.

use serde_json::{Value, json};
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_crypto::keys::SigningKey;
use tsunagu_crypto::{b64, proofing};
use tsunagu_jpki_sim::Card;
use tsunagu_ledger::SignedTreeHead;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The platform refused, with its problem+json.
    #[error("{code} (HTTP {status}): {detail}")]
    Problem {
        status: u16,
        code: String,
        detail: String,
    },
    #[error("cannot reach the platform: {0}")]
    Transport(String),
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    #[error("card: {0}")]
    Card(String),
    /// The CA file given for the platform's certificate could not be used.
    #[error("CA file {0}")]
    CaFile(String),
}

impl ClientError {
    /// The refusal code, when the platform refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Problem { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// An error with its causes ("error sending request …: invalid peer certificate:
/// UnknownIssuer"), so that a refused certificate says why.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// `builder` trusting, beside the usual roots, the CA certificates (PEM) in `ca_file`.
pub fn with_ca(
    builder: reqwest::ClientBuilder,
    ca_file: &std::path::Path,
) -> Result<reqwest::ClientBuilder, String> {
    let pem = std::fs::read(ca_file).map_err(|e| format!("{}: {e}", ca_file.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{}: {e}", ca_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", ca_file.display()));
    }
    Ok(builder.tls_certs_merge(certs))
}

/// A client of one platform.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: &str) -> ApiClient {
        ApiClient {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("a default HTTP client builds"),
        }
    }

    /// A client that also trusts the CA certificates (PEM) in `ca_file`: a platform whose
    /// certificate a private CA issued (`tsunagu dev tls`, a city's own CA).
    pub fn with_ca_file(
        base: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<ApiClient, ClientError> {
        let Some(ca_file) = ca_file else {
            return Ok(ApiClient::new(base));
        };
        let builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_owned(),
            http: with_ca(builder, ca_file)
                .map_err(ClientError::CaFile)?
                .build()
                .map_err(|e| ClientError::CaFile(format!("{}: {e}", ca_file.display())))?,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Transport(with_causes(&e)))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|_| ClientError::Unexpected(format!("HTTP {status}: {text}")))?;
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(ClientError::Problem {
                status,
                code: value["code"].as_str().unwrap_or("unknown").to_owned(),
                detail: value["detail"].as_str().unwrap_or_default().to_owned(),
            })
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Result<Value, ClientError> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    async fn nonce(&self, path: &str) -> Result<String, ClientError> {
        let v = self.post(path, &json!({}), None).await?;
        v["nonce"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Unexpected("no nonce in the challenge".into()))
    }

    /// Enrolls `device_jwk`, with a card proof when `card` is given (the card signs with
    /// `card_pin`; the caller saves the card afterwards, as its retry counter may change).
    pub async fn enroll(
        &self,
        device_jwk: &PublicJwk,
        card: Option<(&mut Card, &str)>,
    ) -> Result<Value, ClientError> {
        let nonce = self.nonce("/v1/enrollment/challenge").await?;
        let mut body = json!({ "device_jwk": device_jwk.to_value(), "nonce": nonce });
        if let Some((card, pin)) = card {
            let signed = proofing::proof_payload(device_jwk, &nonce);
            let signature = card
                .sign(pin, &signed)
                .map_err(|e| ClientError::Card(e.to_string()))?;
            let mut chain = vec![card.certificate.clone()];
            chain.extend(card.chain.iter().cloned());
            body["proof"] = json!({
                "type": "jpki",
                "certificate_chain": chain,
                "signed_data": b64::std_encode(&signed),
                "signature": b64::std_encode(signature),
            });
        }
        self.post("/v1/enrollment", &body, None).await
    }

    /// Logs in: asks for a nonce, signs it with the device key, presents the credential.
    pub async fn login(
        &self,
        credential: &str,
        device_key: &SigningKey,
    ) -> Result<Value, ClientError> {
        let nonce = self.nonce("/v1/auth/challenge").await?;
        let signature = device_key
            .sign(nonce.as_bytes())
            .map_err(|e| ClientError::Unexpected(e.to_string()))?;
        self.post(
            "/v1/auth/login",
            &json!({
                "credential": credential,
                "nonce": nonce,
                "signature": b64::url_encode(signature),
            }),
            None,
        )
        .await
    }

    /// The access token of a login answer.
    pub fn token(login: &Value) -> Result<String, ClientError> {
        login["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Unexpected("no access_token".into()))
    }

    pub async fn sth(&self) -> Result<SignedTreeHead, ClientError> {
        let v = self.get("/v1/ledger/sth", None).await?;
        serde_json::from_value(v).map_err(|e| ClientError::Unexpected(format!("tree head: {e}")))
    }

    /// The ledger key named `kid` from the platform's JWKS (an OKP/Ed25519 key).
    pub async fn ledger_key(&self, kid: &str) -> Result<PublicJwk, ClientError> {
        let jwks = self.get("/.well-known/jwks.json", None).await?;
        let set = tsunagu_crypto::jwk::JwkSet::from_value(&jwks)
            .map_err(|e| ClientError::Unexpected(format!("jwks: {e}")))?;
        set.keys
            .into_iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .filter(|k| matches!(k.material, tsunagu_crypto::jwk::KeyMaterial::Ed25519 { .. }))
            .ok_or_else(|| ClientError::Unexpected(format!("no Ed25519 key `{kid}` in the JWKS")))
    }

    /// The tree-head key changes with their proofs.
    pub async fn ledger_key_rotations(&self) -> Result<Value, ClientError> {
        self.get("/v1/ledger/key-rotations", None).await
    }

    pub async fn inclusion(&self, leaf_index: u64, tree_size: u64) -> Result<Value, ClientError> {
        self.get(
            &format!("/v1/ledger/proof/inclusion?leaf_index={leaf_index}&tree_size={tree_size}"),
            None,
        )
        .await
    }

    pub async fn consistency(&self, first: u64, second: u64) -> Result<Value, ClientError> {
        self.get(
            &format!("/v1/ledger/proof/consistency?first={first}&second={second}"),
            None,
        )
        .await
    }
}
