//! `tsunagu dev seed`: fills a stopped platform's storage (the configuration's data
//! directory or database) with what the ticket benchmark needs, through the platform's own
//! services as the people involved would: a provider and a consumer apply, the committee
//! members approve them with signed votes, and each resident enrolls a device with a card of
//! the simulated JPKI (verified), logs in, and signs a consent to the consumer's purpose.
//! Writes the consumer's key, the residents' pairwise ids for the consumer, and `seed.json`
//! for [`crate::load`].

use anyhow::{Context, bail, ensure};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tsunagu_client::committee::Member;
use tsunagu_core::identity::Level;
use tsunagu_core::service::{
    Application, ConsentMode, DataClass, LegalBasis, Offer, Purpose, Security, ServiceKind,
    ServiceStatus,
};
use tsunagu_core::{PurposeId, ServiceId};
use tsunagu_crypto::jwk::JwkSet;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::{b64, jws, proofing, random};
use tsunagu_jpki_sim::{CardKey, IssueRequest, IssuedCard, SimCa};
use tsunagu_platform::Platform;
use tsunagu_platform::identity::{self, NoncePurpose, Session};
use tsunagu_platform::services::ServiceApplication;

const PURPOSE: &str = "allergy-to-daycare";
/// Residents issued, enrolled and consenting at a time.
const BATCH: u64 = 500;

#[derive(Args)]
pub struct SeedArgs {
    /// The platform's configuration (its storage is filled; the server must be stopped).
    #[arg(long)]
    pub config: PathBuf,
    /// How many residents, each with a signed consent.
    #[arg(long, default_value_t = 10_000)]
    pub residents: u64,
    /// Where to write the consumer's key and the residents' pairwise ids.
    #[arg(long)]
    pub out: PathBuf,
    /// A committee member who approves the services: `ID=KEY.pem` (a key made by
    /// `tsunagu admin keygen`). Give at least as many as the quorum.
    #[arg(long = "member", value_name = "ID=KEY.pem", required = true)]
    pub members: Vec<String>,
    /// The simulated JPKI whose cards proof the residents; it must be a trust anchor of the
    /// configuration (default: `[dev] simulated_jpki`).
    #[arg(long)]
    pub jpki: Option<PathBuf>,
}

/// What a benchmark setup reads from the platform's configuration: the server that runs it
/// (the platform's capabilities and the simulated card), its configuration, the committee
/// members given on the command line (checked against it) and the simulated JPKI directory
/// (`--jpki`, else `[dev] simulated_jpki`).
pub(crate) struct Setup {
    pub server: tsunagu_server::Server,
    pub config: tsunagu_server::Config,
    pub members: Vec<Member>,
    pub jpki: PathBuf,
}

impl Setup {
    pub fn load(
        config_path: &Path,
        specs: &[String],
        jpki: Option<&Path>,
    ) -> anyhow::Result<Setup> {
        let server = tsunagu_server::Server::new().with(crate::SimulatedCard);
        let config = server.load_config(Some(config_path))?;
        let members = specs
            .iter()
            .map(|m| Member::from_spec(m).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for m in &members {
            ensure!(
                config
                    .governance
                    .members
                    .iter()
                    .any(|c| c.id == m.id.as_str()),
                "`{}` is not a committee member in {}",
                m.id,
                config_path.display()
            );
        }
        ensure!(
            members.len() >= config.governance.quorum,
            "the quorum is {}: give that many --member",
            config.governance.quorum
        );
        let dev: crate::DevConfig = config.source.section()?;
        let jpki = jpki
            .map(Path::to_path_buf)
            .or(dev.simulated_jpki)
            .context("give --jpki DIR or set [dev] simulated_jpki in the configuration")?;
        Ok(Setup {
            server,
            config,
            members,
            jpki,
        })
    }
}

fn application(
    name: &str,
    kind: ServiceKind,
    key: &SigningKey,
    provider: Option<&ServiceId>,
) -> ServiceApplication {
    Application {
        name: name.into(),
        organization: "benchmark".into(),
        contact: "bench@example.jp".into(),
        kind,
        jwks: JwkSet {
            keys: vec![key.published_jwk()],
        },
        endpoint: provider.is_none().then(|| "http://127.0.0.1:9/tsunagu/redeem".to_owned()),
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        token_endpoint_auth_method: None,
        offers: if provider.is_none() {
            vec![Offer { item: "allergy".into(), title_ja: "食物アレルギー".into(), title_en: None, data_class: DataClass::Closed, sensitive: true }]
        } else {
            vec![]
        },
        purposes: match provider {
            Some(provider) => vec![Purpose {
                id: PURPOSE.into(),
                title_ja: "給食のアレルギー対応".into(),
                title_en: "Allergy-safe meals".into(),
                description_ja: "保育園の調理室が献立からアレルゲンを除くため、食物アレルギー情報を受け取ります。".into(),
                description_en: "The day-care kitchen removes allergens from meals using the food allergy record.".into(),
                provider: provider.to_string(),
                items: vec!["allergy".into()],
                uses: [("allergy".to_owned(), "献立からアレルゲンを除くため".to_owned())].into(),
                retention_days: 365,
                legal_basis: LegalBasis::Consent,
                citation: None,
                consent_mode: ConsentMode::OptIn,
            }],
            None => vec![],
        },
        security: Security { iso27001: true, incident_contact: "soc@example.jp".into(), subcontractors: vec![] },
        obligations_acceptance: None,
        tls_client_certificate: None,
    }
}

/// Applies and has the committee approve.
async fn register(
    platform: &Platform,
    members: &[Member],
    application: ServiceApplication,
) -> anyhow::Result<ServiceId> {
    let name = application.name.clone();
    let applied = platform
        .services
        .apply(application)
        .await
        .with_context(|| format!("{name}'s application"))?;
    ensure!(
        applied.errors() == 0,
        "{name}'s application has lint errors: {:?}",
        applied.lint
    );
    let id = applied.service_id;
    for m in members {
        let vote = m
            .sign_vote(id.as_str(), "approve", "benchmark service", &[])
            .map_err(anyhow::Error::msg)?;
        let outcome = platform
            .governance
            .vote(&id, &vote)
            .await
            .with_context(|| format!("{}'s vote on {id}", m.id))?;
        if outcome.status == ServiceStatus::Approved {
            return Ok(id);
        }
    }
    bail!("{id} is not approved after every member's vote")
}

/// What every resident consents to.
struct Flow {
    consumer: ServiceId,
    provider: ServiceId,
    purpose: PurposeId,
    /// The terms as the residents are shown them (`terms_sha256` of the offer).
    terms: String,
}

/// A resident: enrolls a new device with the card (verified) and logs in.
async fn enroll(
    platform: &Platform,
    card: IssuedCard,
    card_key: &CardKey,
) -> anyhow::Result<(Session, SigningKey)> {
    let device = SigningKey::generate(Alg::Es256)?;
    let challenge = platform.identity.challenge(NoncePurpose::Enroll).await?;
    let signed = proofing::proof_payload(device.public_jwk(), &challenge.nonce);
    let signature = card_key.sign(&signed)?;
    let mut chain = vec![b64::std_encode(&card.certificate_der)];
    chain.extend(card.chain.iter().map(b64::std_encode));
    let body = json!({
        "device_jwk": device.public_jwk().to_value(),
        "nonce": challenge.nonce,
        "proof": {
            "type": "jpki",
            "certificate_chain": chain,
            "signed_data": b64::std_encode(&signed),
            "signature": b64::std_encode(signature),
        },
    });
    let request = identity::parse_enrollment(&serde_json::to_vec(&body)?)?;
    let enrolled = platform.identity.enroll(request).await?;
    ensure!(
        enrolled.level == Level::Verified,
        "the card did not verify the resident"
    );
    let login = platform.identity.challenge(NoncePurpose::Login).await?;
    let signature = device.sign(login.nonce.as_bytes())?;
    let logged_in = platform
        .identity
        .login(
            &enrolled.credential,
            &login.nonce,
            &b64::url_encode(signature),
        )
        .await?;
    let session = platform
        .identity
        .authenticate(&logged_in.access_token)
        .await?;
    Ok((session, device))
}

/// A resident's signed consent; answers the consumer's pairwise id for them.
async fn consent(
    platform: &Platform,
    flow: &Flow,
    session: &Session,
    device: &SigningKey,
) -> anyhow::Result<String> {
    let t = tsunagu_platform::now();
    let payload = json!({
        "v": 1, "purpose_id": flow.purpose, "consumer": flow.consumer, "provider": flow.provider,
        "items": ["allergy"], "expires_at": t + 365 * 86_400, "terms_sha256": flow.terms,
        "issued_at": t, "nonce": random::token(12)?,
    });
    let jws = jws::sign_json(device, None, &payload)?;
    platform.consents.grant(session, &jws).await?;
    Ok(platform
        .keys
        .pairwise_id(&flow.consumer, &session.account_id)
        .into_string())
}

/// The terms of the consumer's purpose, as `session`'s resident is offered them.
async fn terms(
    platform: &Platform,
    consumer: &ServiceId,
    purpose: &PurposeId,
    session: &Session,
) -> anyhow::Result<String> {
    let offers = platform.consents.offers(session).await?;
    offers
        .into_iter()
        .find(|o| o.consumer.service_id == *consumer && o.purpose_id == *purpose)
        .map(|o| o.terms_sha256)
        .context("the approved purpose is not offered to residents")
}

/// Cards for residents `from..from + n`, all for `key`, issued on the blocking pool.
async fn issue_cards(
    mut ca: SimCa,
    from: u64,
    n: u64,
    key: &Arc<CardKey>,
) -> anyhow::Result<(SimCa, Vec<IssuedCard>)> {
    let key = key.clone();
    let (ca, cards) = tokio::task::spawn_blocking(move || {
        let cards = ca.issue_batch(&card_requests(from, n), &key);
        (ca, cards)
    })
    .await?;
    Ok((ca, cards?))
}

fn card_requests(from: u64, n: u64) -> Vec<IssueRequest> {
    (from..from + n)
        .map(|i| IssueRequest {
            name: format!("検証　住民{i:07}"),
            address: "群馬県前橋市大手町二丁目12番1号".into(),
            birthdate: format!("19{:02}-{:02}-{:02}", 40 + i % 60, 1 + i % 12, 1 + i % 28),
            sex: ["1", "2", "3"][(i % 3) as usize].into(),
            valid_days: None,
            not_before: None,
        })
        .collect()
}

pub async fn run(args: SeedArgs) -> anyhow::Result<()> {
    ensure!(args.residents > 0, "--residents must be at least 1");
    let Setup {
        server,
        mut config,
        members,
        jpki,
    } = Setup::load(&args.config, &args.members, args.jpki.as_deref())?;
    let mut ca =
        SimCa::open(&jpki).with_context(|| format!("simulated JPKI {}", jpki.display()))?;
    let platform = server.platform(&mut config).await?;
    std::fs::create_dir_all(&args.out)?;

    let provider_key = SigningKey::generate(Alg::Es256)?;
    let consumer_key = SigningKey::generate(Alg::Es256)?;
    let provider = register(
        &platform,
        &members,
        application("bench school", ServiceKind::Provider, &provider_key, None),
    )
    .await?;
    let consumer = register(
        &platform,
        &members,
        application(
            "bench day care",
            ServiceKind::Consumer,
            &consumer_key,
            Some(&provider),
        ),
    )
    .await?;
    std::fs::write(
        args.out.join("consumer.pem"),
        consumer_key.to_pkcs8_pem().as_bytes(),
    )?;
    let card_key = Arc::new(tokio::task::spawn_blocking(CardKey::generate).await??);

    // The first resident reads the offer before consenting, as a resident would; its terms
    // are the same for everyone after.
    let started = Instant::now();
    let (back, first) = issue_cards(ca, 0, 1, &card_key).await?;
    ca = back;
    let card = first.into_iter().next().context("no card")?;
    let (session, device) = enroll(&platform, card, &card_key).await?;
    let purpose = PurposeId::from(PURPOSE);
    let terms = terms(&platform, &consumer, &purpose, &session).await?;
    let flow = Arc::new(Flow {
        consumer: consumer.clone(),
        provider: provider.clone(),
        purpose,
        terms,
    });
    let mut subjects = consent(&platform, &flow, &session, &device).await? + "\n";
    let mut done = 1u64;
    while done < args.residents {
        let n = BATCH.min(args.residents - done);
        let (back, cards) = issue_cards(ca, done, n, &card_key).await?;
        ca = back;
        let mut tasks = tokio::task::JoinSet::new();
        for card in cards {
            let (platform, flow, key) = (platform.clone(), flow.clone(), card_key.clone());
            tasks.spawn(async move {
                let (session, device) = enroll(&platform, card, &key).await?;
                consent(&platform, &flow, &session, &device).await
            });
        }
        // In the order they finish: the order of the ids does not matter to the load.
        while let Some(joined) = tasks.join_next().await {
            subjects.push_str(&joined??);
            subjects.push('\n');
        }
        done += n;
        if done.is_multiple_of(10_000) || done == args.residents {
            eprintln!(
                "seeded {done} residents ({:.0}/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    std::fs::write(args.out.join("subjects.txt"), subjects)?;
    std::fs::write(
        args.out.join("seed.json"),
        serde_json::to_vec_pretty(&json!({
            "consumer": consumer, "provider": provider, "purpose": PURPOSE,
            "items": ["allergy"], "residents": args.residents,
        }))?,
    )?;
    println!(
        "seeded {} residents with consents; consumer {consumer}; files in {}",
        args.residents,
        args.out.display()
    );
    Ok(())
}
