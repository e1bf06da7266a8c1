//! CRLs by URL: fetched, cached in the data directory, and the cached copy used when the
//! distribution point is unreachable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tsunagu_jpki_sim::{IssueRequest, SimCa};
use tsunagu_platform::config::IdentityConfig;
use tsunagu_platform::trust::Trust;

#[tokio::test]
async fn a_crl_url_is_fetched_cached_and_used_from_cache_when_the_server_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca = SimCa::init(&dir.path().join("ca")).unwrap();
    ca.issue(
        &IssueRequest {
            name: "前橋　太郎".into(),
            address: "前橋市".into(),
            birthdate: "1980-01-01".into(),
            sex: "1".into(),
            valid_days: None,
            not_before: None,
        },
        "abc123",
    )
    .unwrap();
    let serial = ca.issued()[0].serial.clone();
    ca.revoke(&serial, "affiliationChanged").unwrap();
    let crl = std::fs::read(ca.crl_path()).unwrap();

    let up = Arc::new(AtomicBool::new(true));
    let serving = up.clone();
    let app = axum::Router::new().route(
        "/ca.crl",
        axum::routing::get(move || {
            let crl = crl.clone();
            let up = serving.load(Ordering::SeqCst);
            async move {
                if up {
                    (axum::http::StatusCode::OK, crl)
                } else {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, Vec::new())
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let config = IdentityConfig {
        jpki_trust_anchors: vec![ca.certificate_path()],
        jpki_crls: vec![format!("http://{addr}/ca.crl")],
        ..IdentityConfig::default()
    };
    let data = dir.path().join("data");
    let trust = Trust::load(&config, &data).await.unwrap();
    let state = trust.current();
    assert!(state.sources[0].loaded, "{:?}", state.sources[0]);
    assert_eq!(state.sources[0].error, None);
    assert_eq!(state.sources[0].revoked, 1);
    assert_eq!(state.crls.infos().len(), 1);

    up.store(false, Ordering::SeqCst);
    let state = trust.refresh().await.unwrap();
    assert!(
        state.sources[0].loaded,
        "the cached copy stands in: {:?}",
        state.sources[0]
    );
    assert_eq!(state.sources[0].revoked, 1);
    // …and the failed fetch is still reported (on /healthz, and as an error of the
    // refresh job).
    assert!(
        state.sources[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("the cached copy is used"),
        "{:?}",
        state.sources[0]
    );

    // A fresh start during the outage also has the cached copy.
    let restarted = Trust::load(&config, &data).await.unwrap();
    assert_eq!(restarted.current().crls.infos().len(), 1);

    // With no cache at all, the outage is reported, and proofs will be refused as
    // certificate_status_unknown rather than pass unchecked.
    let empty = Trust::load(&config, &dir.path().join("elsewhere"))
        .await
        .unwrap();
    let source = &empty.current().sources[0];
    assert!(!source.loaded);
    assert!(
        source
            .error
            .as_deref()
            .unwrap_or("")
            .contains("no cached copy"),
        "{source:?}"
    );
    assert!(empty.current().policy.require_status);
}
