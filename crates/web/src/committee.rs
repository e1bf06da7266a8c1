//! The committee console (`/committee/…`): pending applications with their lint findings,
//! purposes and items; votes signed in the browser with the member's key; suspension and
//! reinstatement; the record of legal-basis rule uses and other alerts.
//!
//! Sign-in: the member picks their key file (PKCS#8 PEM, ES256); `console.js` imports it as a
//! non-extractable WebCrypto key kept in IndexedDB (database `tsunagu-committee`) for the
//! session, and signs an assertion (`kid` = `iss` = `sub` = the member id, `aud` =
//! `<public_url>/committee`) checked against the member's key in the configuration
//! (`[governance] members`). The cookie `tsunagu_committee` is a platform-signed token (`typ`
//! `committee+jwt`). Each vote is a JWS the browser signs with the same key, posted as
//! `vote_jws` — exactly what `POST /v1/governance/services/{id}/votes` takes.

use super::console::{FindingView, findings_of, newest};
use super::pages::{LangQuery, page_lang, remember_lang};
use super::signed_session::{SessionKind, SignedIn, require_form, session_page};
use super::{App, AppState, Lang, Page, api_error_page, html, lang_of, see_other, status_of};
use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use std::collections::HashMap;
use tsunagu_core::alert::AlertKind;
use tsunagu_core::governance::{Decision, allowed};
use tsunagu_core::service::{PLATFORM_PROVIDER, ServiceStatus};
use tsunagu_core::{Code, MemberId, ServiceId};
use tsunagu_platform::Refusal;
use tsunagu_platform::exchange::AlertRow;
use tsunagu_platform::sessions;

/// The committee console's session: cookie `tsunagu_committee`, `typ` `committee+jwt`,
/// claim `member_id`.
const COMMITTEE: SessionKind = SessionKind {
    token: sessions::SessionKind {
        typ: "committee+jwt",
        claim: "member_id",
        purpose: "committee-session",
    },
    cookie: "tsunagu_committee",
    home: "/committee",
    login: "/committee/login",
};
/// Alerts shown, newest first, and how they are read.
const ALERTS_SHOWN: usize = 100;
const ALERT_PAGE: u32 = 500;
const ALERT_PAGES: usize = 40;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/committee", get(home))
        .route("/committee/login", get(login_page).post(login))
        .route("/committee/logout", post(logout))
        .route("/committee/votes", post(vote))
}

/// The audience of committee sign-in assertions.
pub fn committee_audience(app: &App) -> String {
    COMMITTEE.audience(app)
}

/// The member signed in to the committee console (`party` = the member id), with the
/// cookie's token.
type MemberSession = SignedIn;

async fn member_session(app: &App, headers: &HeaderMap) -> Option<MemberSession> {
    let session = COMMITTEE.session(app, headers).await?;
    // A member removed from the configuration is signed out at once.
    app.governance.is_member(&session.party).then_some(session)
}

fn committee_page(app: &App, lang: Lang, title_key: &str, session: Option<&MemberSession>) -> Page {
    session_page(app, lang, title_key, "committee", session)
}

// ---------------------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "committee/login.html")]
struct LoginPage {
    page: Page,
    audience: String,
    member_id: String,
    error: Option<String>,
}

/// The sign-in page as `status`, with the member id filled in and why it was refused.
fn login_form(
    app: &App,
    lang: Lang,
    status: StatusCode,
    member_id: &str,
    error: Option<String>,
) -> Response {
    html(
        status,
        &LoginPage {
            page: committee_page(app, lang, "committee-login-title", None),
            audience: committee_audience(app),
            member_id: member_id.to_owned(),
            error,
        },
    )
}

/// `GET /committee/login`.
async fn login_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = page_lang(&headers, &q);
    let mut r = login_form(&app, lang, StatusCode::OK, "", None);
    remember_lang(&app, &mut r, &q);
    r
}

/// Checks a member's sign-in assertion (`kid`, if present, = `iss` = the member id) against
/// the configured key, for the committee's audience; uses up its `jti`.
async fn check_login(app: &App, member_id: &str, assertion: &str) -> Result<String, Refusal> {
    app.governance
        .member_sign_in(member_id, assertion, &committee_audience(app))
        .await
        .map(MemberId::into_string)
}

/// `POST /committee/login` (`assertion`, optionally `member_id`).
async fn login(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&headers, None);
    let (member_id, assertion) = COMMITTEE.login_fields(&form);
    let refused = |status: StatusCode, message: String| {
        login_form(&app, lang, status, &member_id, Some(message))
    };
    COMMITTEE
        .login(&app, &headers, refused, || {
            check_login(&app, &member_id, assertion)
        })
        .await
}

/// `POST /committee/logout` (`csrf`): ends the session and forgets the cookie (the page's
/// script forgets the key).
async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    COMMITTEE.logout(&app, &headers, &form).await
}

// ---------------------------------------------------------------------------------------
// The console
// ---------------------------------------------------------------------------------------

/// An item a purpose asks for and why.
struct ItemUse {
    item: String,
    use_: String,
}

/// A purpose of an application.
struct PurposeView {
    id: String,
    title_ja: String,
    title_en: String,
    description_ja: String,
    description_en: String,
    provider: String,
    provider_name: String,
    items: Vec<ItemUse>,
    retention_days: u32,
    legal_basis: String,
    citation: String,
}

/// An item a provider offers.
struct OfferView {
    item: String,
    title_ja: String,
    title_en: String,
    data_class: String,
    sensitive: bool,
}

/// A member's vote in the current round.
struct VoteView {
    member: String,
    decision: String,
}

/// A service as the committee sees it.
struct ServiceView {
    id: String,
    name: String,
    organization: String,
    contact: String,
    kind: String,
    status: String,
    round: i64,
    created_at: i64,
    endpoint: String,
    redirect_uris: Vec<String>,
    findings: Vec<FindingView>,
    errors: usize,
    /// The distinct codes of the error findings: an approving vote must override each.
    error_codes: Vec<String>,
    purposes: Vec<PurposeView>,
    offers: Vec<OfferView>,
    iso27001: bool,
    incident_contact: String,
    subcontractors: Vec<String>,
    votes: Vec<VoteView>,
    /// This member's vote in the current round, if any.
    my_vote: String,
    /// The decisions a vote may carry now.
    decisions: Vec<DecisionButton>,
}

/// A vote button.
struct DecisionButton {
    value: &'static str,
    label_key: &'static str,
    /// Whether the decision stops the service (shown as a warning).
    stops: bool,
}

fn buttons(status: ServiceStatus) -> Vec<DecisionButton> {
    allowed(status)
        .iter()
        .map(|d| DecisionButton {
            value: d.as_str(),
            label_key: match d {
                Decision::Approve => "committee-approve",
                Decision::Reject => "committee-reject",
                Decision::Suspend => "committee-suspend",
                Decision::Reinstate => "committee-reinstate",
            },
            stops: matches!(d, Decision::Reject | Decision::Suspend),
        })
        .collect()
}

/// A use of a standing legal-basis rule.
struct RuleUseView {
    at: i64,
    service_id: String,
    ticket_id: String,
    requester: String,
    reason: String,
    provider: String,
    purpose_id: String,
    items: String,
    basis: String,
    detail: String,
}

/// Any other alert.
struct AlertView {
    at: i64,
    kind: String,
    service_id: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "committee/home.html")]
struct HomePage {
    page: Page,
    member_id: String,
    quorum: usize,
    error: Option<String>,
    pending: Vec<ServiceView>,
    approved: Vec<ServiceView>,
    suspended: Vec<ServiceView>,
    rule_uses: Vec<RuleUseView>,
    alerts: Vec<AlertView>,
}

/// The services in `status`, as the committee sees them.
async fn services_in(
    app: &App,
    status: ServiceStatus,
    member: &str,
) -> Result<Vec<ServiceView>, Refusal> {
    let mut out = Vec::new();
    // Read from the store, not the directory's cache: the status decides the list.
    for row in app.services.list(Some(status)).await? {
        let id = &row.id;
        let Ok(entry) = app.services.get(id).await else {
            continue;
        };
        let votes: Vec<VoteView> = app
            .governance
            .votes(id, row.round)
            .await?
            .into_iter()
            .map(|v| VoteView {
                member: v.member.into_string(),
                decision: v.decision.as_str().to_owned(),
            })
            .collect();
        let my_vote = votes
            .iter()
            .rev()
            .find(|v| v.member == member)
            .map(|v| v.decision.clone())
            .unwrap_or_default();
        let mut purposes = Vec::new();
        for p in &entry.purposes {
            let def = &p.purpose;
            let provider_name = if def.provider == PLATFORM_PROVIDER {
                "tsunagu".to_owned()
            } else if def.provider == id.as_str() {
                entry.row.name.clone()
            } else {
                match app
                    .services
                    .get(&ServiceId::from(def.provider.as_str()))
                    .await
                {
                    Ok(e) => e.row.name.clone(),
                    Err(_) => String::new(),
                }
            };
            purposes.push(PurposeView {
                id: def.id.clone(),
                title_ja: def.title_ja.clone(),
                title_en: def.title_en.clone(),
                description_ja: def.description_ja.clone(),
                description_en: def.description_en.clone(),
                provider: def.provider.clone(),
                provider_name,
                items: def
                    .items
                    .iter()
                    .map(|i| ItemUse {
                        item: i.clone(),
                        use_: def.uses.get(i).cloned().unwrap_or_default(),
                    })
                    .collect(),
                retention_days: def.retention_days,
                legal_basis: def.legal_basis.as_str().to_owned(),
                citation: def.citation.clone().unwrap_or_default(),
            });
        }
        let application = &entry.application;
        out.push(ServiceView {
            id: row.id.to_string(),
            name: row.name.clone(),
            organization: row.organization.clone(),
            contact: row.contact.clone(),
            kind: row.kind.as_str().to_owned(),
            status: row.status.as_str().to_owned(),
            round: row.round,
            created_at: row.created_at,
            endpoint: application.endpoint.clone().unwrap_or_default(),
            redirect_uris: application.redirect_uris.clone(),
            errors: entry.lint_errors(),
            error_codes: tsunagu_core::lint::blocking_codes(&entry.findings()),
            findings: findings_of(&entry),
            purposes,
            offers: application
                .offers
                .iter()
                .map(|o| OfferView {
                    item: o.item.clone(),
                    title_ja: o.title_ja.clone(),
                    title_en: o.title_en.clone().unwrap_or_default(),
                    data_class: o.data_class.as_str().to_owned(),
                    sensitive: o.sensitive,
                })
                .collect(),
            iso27001: application.security.iso27001,
            incident_contact: application.security.incident_contact.clone(),
            subcontractors: application.security.subcontractors.clone(),
            votes,
            my_vote,
            decisions: buttons(row.status),
        });
    }
    Ok(out)
}

/// The newest alerts: legal-basis rule uses (with who asked and why, from the ticket) and
/// the others.
async fn alerts(app: &App) -> Result<(Vec<RuleUseView>, Vec<AlertView>), Refusal> {
    let (rows, _) = newest(
        ALERTS_SHOWN,
        ALERT_PAGES,
        ALERT_PAGE,
        |a: &AlertRow| a.seq,
        |since| app.exchange.alerts(since, ALERT_PAGE),
    )
    .await?;
    let mut uses = Vec::new();
    let mut others = Vec::new();
    for a in rows {
        if a.kind == AlertKind::LegalBasisUse {
            let ticket = match &a.ticket_id {
                Some(id) => app.exchange.ticket_by_id(id).await?,
                None => None,
            };
            uses.push(RuleUseView {
                at: a.created_at,
                service_id: a
                    .service_id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                ticket_id: ticket
                    .as_ref()
                    .map(|t| t.id.to_string())
                    .unwrap_or_default(),
                requester: ticket
                    .as_ref()
                    .and_then(|t| t.requester.clone())
                    .unwrap_or_default(),
                reason: ticket
                    .as_ref()
                    .and_then(|t| t.reason.clone())
                    .unwrap_or_default(),
                provider: ticket
                    .as_ref()
                    .map(|t| t.provider_id.to_string())
                    .unwrap_or_default(),
                purpose_id: ticket
                    .as_ref()
                    .map(|t| t.purpose_id.to_string())
                    .unwrap_or_default(),
                items: ticket
                    .as_ref()
                    .map(|t| t.items.join(", "))
                    .unwrap_or_default(),
                basis: ticket.as_ref().map(|t| t.basis.claim()).unwrap_or_default(),
                detail: a.detail,
            });
        } else {
            others.push(AlertView {
                at: a.created_at,
                kind: a.kind.as_str().to_owned(),
                service_id: a
                    .service_id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                detail: a.detail,
            });
        }
    }
    Ok((uses, others))
}

async fn render_home(
    app: &App,
    lang: Lang,
    session: &MemberSession,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, Refusal> {
    let member = session.party.as_str();
    let (rule_uses, alerts) = alerts(app).await?;
    let view = HomePage {
        page: committee_page(app, lang, "committee-title", Some(session)),
        member_id: member.to_owned(),
        quorum: app.governance.quorum(),
        error,
        pending: services_in(app, ServiceStatus::PendingReview, member).await?,
        approved: services_in(app, ServiceStatus::Approved, member).await?,
        suspended: services_in(app, ServiceStatus::Suspended, member).await?,
        rule_uses,
        alerts,
    };
    Ok(html(status, &view))
}

/// `GET /committee`.
async fn home(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = page_lang(&headers, &q);
    let Some(session) = member_session(&app, &headers).await else {
        return see_other("/committee/login");
    };
    let mut r = render_home(&app, lang, &session, None, StatusCode::OK)
        .await
        .unwrap_or_else(|e| api_error_page(&app, lang, &e));
    remember_lang(&app, &mut r, &q);
    r
}

#[derive(Template)]
#[template(path = "committee/voted.html")]
struct VotedPage {
    page: Page,
    service_id: String,
    name: String,
    decision: String,
    status: String,
    /// Whether the vote's decision now holds (the quorum was reached).
    decided: bool,
    round: i64,
    quorum: usize,
    votes: Vec<VoteView>,
}

/// The console again, with why a vote was refused.
async fn refused(app: &App, lang: Lang, session: &MemberSession, e: Refusal) -> Response {
    render_home(
        app,
        lang,
        session,
        Some(format!("{} ({})", e.detail, e.code.as_str())),
        status_of(&e),
    )
    .await
    .unwrap_or_else(|e| api_error_page(app, lang, &e))
}

/// `POST /committee/votes` (`service_id`, `vote_jws`, `csrf`, and the pressed button's
/// `decision`).
async fn vote(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&headers, None);
    let session = match require_form(
        &app,
        lang,
        &headers,
        &form,
        member_session(&app, &headers).await,
    ) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let field = |k: &str| form.get(k).map(|s| s.trim()).unwrap_or("");
    let service_id = field("service_id");
    let vote_jws = field("vote_jws");
    if service_id.is_empty() || vote_jws.is_empty() {
        return refused(
            &app,
            lang,
            &session,
            Refusal::new(
                Code::InvalidRequest,
                "service_id and vote_jws (the vote signed with your member key) are required",
            ),
        )
        .await;
    }
    let member = MemberId::from(session.party.as_str());
    let service_id = ServiceId::from(service_id);
    match app
        .governance
        .vote_as(&member, field("decision"), &service_id, vote_jws)
        .await
    {
        Ok(answer) => {
            let name = app
                .services
                .current(&service_id)
                .await
                .map(|s| s.name)
                .unwrap_or_default();
            let decided = answer.decision.outcome() == answer.status;
            html(
                StatusCode::OK,
                &VotedPage {
                    page: committee_page(&app, lang, "committee-voted-title", Some(&session)),
                    service_id: service_id.to_string(),
                    name,
                    decision: answer.decision.as_str().to_owned(),
                    status: answer.status.as_str().to_owned(),
                    decided,
                    round: answer.round,
                    quorum: app.governance.quorum(),
                    votes: answer
                        .votes
                        .iter()
                        .map(|v| VoteView {
                            member: v.member.to_string(),
                            decision: v.decision.as_str().to_owned(),
                        })
                        .collect(),
                },
            )
        }
        Err(e) => refused(&app, lang, &session, e).await,
    }
}
