//! # tsunagu-dev-card
//!
//! The `dev-card` capability: a simulated My Number card for browsers without a card reader.
//! `POST /dev/simulated-card` issues a card of the simulated J-LIS (`tsunagu-jpki-sim`) for
//! the given basic items and signs an enrollment binding with it; the web app's enrollment
//! page offers it when this capability is on, which it is only when `[dev] simulated_jpki`
//! names a CA.
//!
//! Invariant: a development tool. Only the binary adds it to a server; the platform itself
//! never depends on the simulated J-LIS.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tsunagu_api::ApiError;
use tsunagu_capability::{Capability, ConfigError, ConfigSource, Context, Mount, Section};
use tsunagu_core::Code;
use tsunagu_crypto::{b64, random};
use tsunagu_jpki_sim::{IssueRequest, SimCa, SimCaError};

/// `[dev]`: development-only features, never set in production.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevConfig {
    /// A directory made by `tsunagu dev jpki init`. When set, the web app offers a
    /// "simulated My Number card" that issues a certificate from this CA and signs the
    /// enrollment proof with it, so a browser can be proofed without a card reader. The CA
    /// must also be a trust anchor.
    #[serde(default)]
    pub simulated_jpki: Option<PathBuf>,
}

impl Section for DevConfig {
    const NAME: &'static str = "dev";

    fn resolve_paths(&mut self, base: &Path) {
        if let Some(d) = &self.simulated_jpki
            && d.is_relative()
        {
            self.simulated_jpki = Some(base.join(d));
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(dir) = &self.simulated_jpki
            && !dir.join("ca.pem").is_file()
        {
            return Err(ConfigError::File {
                path: dir.clone(),
                reason: "dev.simulated_jpki: not a directory made by `tsunagu dev jpki init`"
                    .into(),
            });
        }
        Ok(())
    }
}

/// `dev-card`: serves `POST /dev/simulated-card` when `[dev] simulated_jpki` is set (the
/// web app then offers the card on its enrollment page).
pub struct SimulatedCard;

impl Capability for SimulatedCard {
    fn name(&self) -> &'static str {
        tsunagu_web::SIMULATED_CARD
    }

    fn config_sections(&self) -> &'static [&'static str] {
        &[DevConfig::NAME]
    }

    fn enabled(&self, config: &ConfigSource) -> Result<bool, ConfigError> {
        Ok(config.section::<DevConfig>()?.simulated_jpki.is_some())
    }

    fn mount(&self, ctx: &Context) -> anyhow::Result<Mount> {
        let dev: DevConfig = ctx.section()?;
        let dir = dev
            .simulated_jpki
            .ok_or_else(|| anyhow::anyhow!("[dev] simulated_jpki is not set"))?;
        let state = Arc::new(CardIssuer {
            dir,
            ca: Arc::new(tokio::sync::Mutex::new(None)),
        });
        Ok(Mount::routes(
            Router::new()
                .route(ROUTE, post(simulated_card))
                .with_state(state),
        ))
    }
}

/// The route, as the web app's enrollment page calls it.
pub const ROUTE: &str = "/dev/simulated-card";

/// The simulated CA, opened on first use and kept (its state file is rewritten on every
/// issue, so one holder at a time).
struct CardIssuer {
    dir: PathBuf,
    ca: Arc<tokio::sync::Mutex<Option<SimCa>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulatedCardRequest {
    name: String,
    address: String,
    birthdate: String,
    sex: String,
    /// Base64 of the bytes the card signs: JCS of `{device_jwk_thumbprint, nonce}`.
    signed_data: String,
}

#[derive(Serialize)]
struct SimulatedCardAnswer {
    /// The card's certificate, then the CA's (base64 DER), as an enrollment proof wants.
    certificate_chain: Vec<String>,
    /// Base64 of the card's signature over `signed_data`.
    signature: String,
}

/// Checks that `bytes` are exactly what a card signs at enrollment.
fn enrollment_signed_data(bytes: &[u8]) -> Result<(), ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Binding {
        device_jwk_thumbprint: String,
        nonce: String,
    }
    #[derive(Serialize)]
    struct Canonical<'a> {
        device_jwk_thumbprint: &'a str,
        nonce: &'a str,
    }
    let invalid = || {
        ApiError::new(
            Code::InvalidRequest,
            "signed_data must be the JCS of {device_jwk_thumbprint, nonce}: the simulated card signs enrollment bindings only",
        )
    };
    let b: Binding = serde_json::from_slice(bytes).map_err(|_| invalid())?;
    let canonical = tsunagu_crypto::jcs::to_vec(&Canonical {
        device_jwk_thumbprint: &b.device_jwk_thumbprint,
        nonce: &b.nonce,
    })
    .map_err(|_| invalid())?;
    if canonical != bytes {
        return Err(invalid());
    }
    Ok(())
}

/// `POST /dev/simulated-card` (development only): issues a simulated My Number card for
/// the given basic items from the configured simulated CA and signs `signed_data` with
/// it, answering what an enrollment `proof` needs.
async fn simulated_card(State(issuer): State<Arc<CardIssuer>>, body: Bytes) -> Response {
    match issue(&issuer, &body).await {
        Ok(answer) => (
            StatusCode::OK,
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(answer),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn issue(issuer: &Arc<CardIssuer>, body: &[u8]) -> Result<SimulatedCardAnswer, ApiError> {
    let req: SimulatedCardRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(Code::InvalidJson, format!("request body: {e}")))?;
    let name = req.name.trim().to_owned();
    let address = req.address.trim().to_owned();
    if name.is_empty() || address.is_empty() {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "name and address are required",
        ));
    }
    if name.chars().count() > 100 || address.chars().count() > 200 {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "name (100) or address (200 characters) too long",
        ));
    }
    let signed = b64::std_decode(&req.signed_data)
        .map_err(|_| ApiError::new(Code::InvalidRequest, "signed_data is base64"))?;
    enrollment_signed_data(&signed)?;
    let request = IssueRequest {
        name,
        address,
        birthdate: req.birthdate.trim().to_owned(),
        sex: req.sex.trim().to_owned(),
        valid_days: None,
        not_before: None,
    };
    // A fresh card each time, sealed under a one-time signing password.
    let pin = hex::encode(random::bytes(8).map_err(|e| ApiError::internal("pin", e))?);
    let issuer = issuer.clone();
    let mut guard = issuer.ca.clone().lock_owned().await;
    let (card, signature) = tokio::task::spawn_blocking(move || {
        if guard.is_none() {
            *guard = Some(
                SimCa::open(&issuer.dir)
                    .map_err(|e| ApiError::internal("opening the simulated JPKI CA", e))?,
            );
        }
        let ca = guard
            .as_mut()
            .ok_or_else(|| ApiError::internal("simulated JPKI", "no CA"))?;
        let mut card = ca.issue(&request, &pin).map_err(|e| match e {
            SimCaError::Invalid(reason) => ApiError::new(Code::InvalidRequest, reason),
            other => ApiError::internal("issuing a simulated card", other),
        })?;
        let signature = card
            .sign(&pin, &signed)
            .map_err(|e| ApiError::internal("simulated card signature", e))?;
        Ok::<_, ApiError>((card, signature))
    })
    .await
    .map_err(|e| ApiError::internal("simulated card task", e))??;
    let mut certificate_chain = vec![card.certificate.clone()];
    certificate_chain.extend(card.chain.iter().cloned());
    Ok(SimulatedCardAnswer {
        certificate_chain,
        signature: b64::std_encode(signature),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_card_signs_enrollment_bindings_only() {
        let good = br#"{"device_jwk_thumbprint":"tp","nonce":"n"}"#;
        assert!(enrollment_signed_data(good).is_ok());
        for bad in [
            &br#"{"nonce":"n","device_jwk_thumbprint":"tp"}"#[..],
            br#"{"device_jwk_thumbprint":"tp","nonce":"n","x":1}"#,
            br#"{"device_jwk_thumbprint":"tp"}"#,
            br#"["tp","n"]"#,
            b"plain text",
        ] {
            assert_eq!(
                enrollment_signed_data(bad).unwrap_err().code(),
                Code::InvalidRequest
            );
        }
    }
}
