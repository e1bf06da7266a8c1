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
use super::{Lang, Page, api_error_page, html, lang_of, see_other};
use crate::app::App;
use crate::error::ApiError;
use crate::http::AppState;
use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::Value;
use std::collections::HashMap;
use tsunagu_core::Code;
use tsunagu_core::governance::{Decision, allowed};
use tsunagu_core::service::{PLATFORM_PROVIDER, ServiceStatus};
use tsunagu_crypto::jws;
use tsunagu_store::AlertRow;

/// The committee console's session: cookie `tsunagu_committee`, `typ` `committee+jwt`,
/// claim `member_id`.
const COMMITTEE: SessionKind = SessionKind {
    typ: "committee+jwt",
    cookie: "tsunagu_committee",
    claim: "member_id",
    home: "/committee",
    login: "/committee/login",
};
/// Alerts shown, newest first, and how they are read.
const ALERTS_SHOWN: usize = 100;
const ALERT_PAGE: u32 = 500;
const ALERT_PAGES: usize = 40;

/// This module's routes (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/committee"),
    ("GET", "/committee/login"),
    ("POST", "/committee/login"),
    ("POST", "/committee/logout"),
    ("POST", "/committee/votes"),
];

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

fn member_session(app: &App, headers: &HeaderMap) -> Option<MemberSession> {
    let session = COMMITTEE.session(app, headers)?;
    // A member removed from the configuration is signed out at once.
    crate::governance::member_key(app, &session.party)?;
    Some(session)
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
            page: committee_page(app, lang, "committee.login.title", None),
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
/// the configured key, for the committee's audience; consumes its `jti`.
async fn check_login(app: &App, member_id: &str, assertion: &str) -> Result<String, ApiError> {
    if assertion.is_empty() {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "assertion is required: sign it with your member key",
        ));
    }
    let verified =
        crate::assertion::check_for(assertion, &[committee_audience(app)], |iss, kid| {
            if kid.is_some_and(|k| k != iss) {
                return None;
            }
            crate::governance::member_key(app, iss)
        })?;
    if !member_id.is_empty() && member_id != verified.party {
        return Err(ApiError::new(
            Code::Unauthorized,
            "the assertion was signed for another member id",
        ));
    }
    crate::assertion::consume(app, &verified).await?;
    Ok(verified.party)
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

/// `POST /committee/logout`: forgets the cookie (the page's script forgets the key).
async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    COMMITTEE.logout(&app, &headers)
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
                Decision::Approve => "committee.approve",
                Decision::Reject => "committee.reject",
                Decision::Suspend => "committee.suspend",
                Decision::Reinstate => "committee.reinstate",
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
) -> Result<Vec<ServiceView>, ApiError> {
    let listed = crate::services::list(app, Some(status.as_str())).await?;
    let mut out = Vec::new();
    for id in listed["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["service_id"].as_str())
    {
        let Some(entry) = app.directory.get(app.store.as_ref(), id).await? else {
            continue;
        };
        // The directory may be a moment old: the status decides which list it belongs to.
        let row = app.store.service(id).await?.unwrap_or(entry.row.clone());
        if row.status != status {
            continue;
        }
        let votes: Vec<VoteView> = app
            .store
            .votes(id, row.round)
            .await?
            .into_iter()
            .map(|v| VoteView {
                member: v.member_id,
                decision: v.decision,
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
            } else if def.provider == id {
                entry.row.name.clone()
            } else {
                app.directory
                    .get(app.store.as_ref(), &def.provider)
                    .await?
                    .map(|e| e.row.name.clone())
                    .unwrap_or_default()
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
        let findings = findings_of(&entry);
        out.push(ServiceView {
            id: row.id.clone(),
            name: row.name.clone(),
            organization: row.organization.clone(),
            contact: row.contact.clone(),
            kind: row.kind.as_str().to_owned(),
            status: row.status.as_str().to_owned(),
            round: row.round,
            created_at: row.created_at,
            endpoint: application.endpoint.clone().unwrap_or_default(),
            redirect_uris: application.redirect_uris.clone(),
            errors: findings.iter().filter(|f| f.severity == "error").count(),
            findings,
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

/// The ticket an exchange alert names (`ticket <id>: …`).
fn alert_ticket(detail: &str) -> Option<&str> {
    let rest = detail.strip_prefix("ticket ")?;
    let (id, _) = rest.split_once(':')?;
    (!id.is_empty() && !id.contains(' ')).then_some(id)
}

/// The newest alerts: legal-basis rule uses (with who asked and why, from the ticket) and
/// the others.
async fn alerts(app: &App) -> Result<(Vec<RuleUseView>, Vec<AlertView>), ApiError> {
    let store = app.store.clone();
    let (rows, _) = newest(
        ALERTS_SHOWN,
        ALERT_PAGES,
        ALERT_PAGE,
        |a: &AlertRow| a.seq,
        |since| {
            let store = store.clone();
            async move { store.alerts(since, ALERT_PAGE).await }
        },
    )
    .await?;
    let mut uses = Vec::new();
    let mut others = Vec::new();
    for a in rows {
        if a.kind == "legal_basis_use" {
            let ticket = match alert_ticket(&a.detail) {
                Some(id) => app.store.ticket(id).await?,
                None => None,
            };
            uses.push(RuleUseView {
                at: a.created_at,
                service_id: a.service_id.clone().unwrap_or_default(),
                ticket_id: ticket.as_ref().map(|t| t.id.clone()).unwrap_or_default(),
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
                    .map(|t| t.provider_id.clone())
                    .unwrap_or_default(),
                purpose_id: ticket
                    .as_ref()
                    .map(|t| t.purpose_id.clone())
                    .unwrap_or_default(),
                items: ticket
                    .as_ref()
                    .map(|t| t.items.join(", "))
                    .unwrap_or_default(),
                basis: ticket.as_ref().map(|t| t.basis.clone()).unwrap_or_default(),
                detail: a.detail,
            });
        } else {
            others.push(AlertView {
                at: a.created_at,
                kind: a.kind,
                service_id: a.service_id.unwrap_or_default(),
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
) -> Result<Response, ApiError> {
    let member = session.party.as_str();
    let (rule_uses, alerts) = alerts(app).await?;
    let view = HomePage {
        page: committee_page(app, lang, "committee.title", Some(session)),
        member_id: member.to_owned(),
        quorum: app.config.governance.quorum,
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
    let Some(session) = member_session(&app, &headers) else {
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

/// What a posted vote says, before the governance service checks it in full.
fn vote_claims(vote_jws: &str) -> Result<(String, String), ApiError> {
    let token = jws::parse(vote_jws)
        .map_err(|e| ApiError::new(Code::InvalidRequest, format!("vote_jws: {e}")))?;
    let kid = token.kid.clone().ok_or_else(|| {
        ApiError::new(
            Code::UnknownMember,
            "the vote's header needs `kid` = the member id",
        )
    })?;
    let payload = token
        .json_payload()
        .map_err(|e| ApiError::new(Code::InvalidRequest, format!("vote payload: {e}")))?;
    let decision = payload
        .get("decision")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    Ok((kid, decision))
}

/// The console again, with why a vote was refused.
async fn refused(app: &App, lang: Lang, session: &MemberSession, e: ApiError) -> Response {
    render_home(
        app,
        lang,
        session,
        Some(format!("{} ({})", e.detail, e.code.as_str())),
        e.status,
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
    let session = match require_form(&app, lang, &headers, &form, member_session(&app, &headers)) {
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
            ApiError::new(
                Code::InvalidRequest,
                "service_id and vote_jws (the vote signed with your member key) are required",
            ),
        )
        .await;
    }
    let (kid, decision) = match vote_claims(vote_jws) {
        Ok(c) => c,
        Err(e) => return refused(&app, lang, &session, e).await,
    };
    if kid != session.party {
        return refused(
            &app,
            lang,
            &session,
            ApiError::new(
                Code::Forbidden,
                "the vote is signed by another member than the one signed in",
            ),
        )
        .await;
    }
    let pressed = field("decision");
    if !pressed.is_empty() && (pressed != decision || Decision::parse(pressed).is_none()) {
        return refused(
            &app,
            lang,
            &session,
            ApiError::new(
                Code::InvalidRequest,
                "the signed decision differs from the button pressed",
            ),
        )
        .await;
    }
    match crate::governance::vote(&app, service_id, vote_jws).await {
        Ok(answer) => {
            let name = app
                .store
                .service(service_id)
                .await
                .ok()
                .flatten()
                .map(|s| s.name)
                .unwrap_or_default();
            let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
            let status = text(&answer["status"]);
            let decided =
                Decision::parse(&decision).is_some_and(|d| d.outcome().as_str() == status);
            html(
                StatusCode::OK,
                &VotedPage {
                    page: committee_page(&app, lang, "committee.voted.title", Some(&session)),
                    service_id: service_id.to_owned(),
                    name,
                    decision,
                    status,
                    decided,
                    round: answer["round"].as_i64().unwrap_or(0),
                    quorum: app.config.governance.quorum,
                    votes: answer["votes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|v| VoteView {
                            member: text(&v["member"]),
                            decision: text(&v["decision"]),
                        })
                        .collect(),
                },
            )
        }
        Err(e) => refused(&app, lang, &session, e).await,
    }
}

/// This module's texts `(key, ja, en)`.
pub static TEXTS: &[(&str, &str, &str)] = &[
    (
        "committee.title",
        "審査委員会コンソール",
        "Committee console",
    ),
    ("committee.nav", "審査委員会メニュー", "Committee menu"),
    ("committee.nav.home", "審査", "Review"),
    (
        "committee.logout",
        "ログアウト(この端末から鍵を消去)",
        "Sign out (forget the key on this device)",
    ),
    (
        "committee.back",
        "審査委員会コンソールへ戻る",
        "Back to the committee console",
    ),
    (
        "committee.login.title",
        "審査委員のログイン",
        "Committee member sign-in",
    ),
    (
        "committee.login.intro",
        "委員の秘密鍵ファイル(PKCS#8 PEM 形式、ES256)で署名してログインします。鍵はこのブラウザの中に取り出せない形で保管され、投票の署名に使われます。ログアウトすると消去されます。",
        "Sign in by signing with your member key file (PKCS#8 PEM, ES256). The browser keeps the key in a form that cannot be read out and signs your votes with it; signing out forgets it.",
    ),
    ("committee.member_id", "委員ID", "Member ID"),
    (
        "committee.key_file",
        "委員の秘密鍵ファイル",
        "Member key file",
    ),
    (
        "committee.key_file.help",
        "-----BEGIN PRIVATE KEY----- で始まるファイル。鍵はブラウザの外へ送られません。",
        "A file starting with -----BEGIN PRIVATE KEY-----. The key never leaves the browser.",
    ),
    (
        "committee.manual.help",
        "ヘッダーの kid と iss・sub を委員ID、aud を下の値とし、jti・iat・exp(5分以内)を含むアサーションを委員の鍵で ES256 署名して入れてください。",
        "Sign an assertion with your member key (ES256): header kid, iss and sub your member ID, aud the value below, with jti, iat and exp (at most five minutes), and paste it here.",
    ),
    ("committee.signed_in_as", "ログイン中の委員", "Signed in as"),
    (
        "committee.quorum",
        "決定に必要な票数",
        "Votes needed (quorum)",
    ),
    (
        "committee.pending",
        "審査待ちの申請",
        "Pending applications",
    ),
    (
        "committee.pending.none",
        "審査待ちの申請はありません。",
        "No applications are waiting.",
    ),
    (
        "committee.approved",
        "承認済みのサービス",
        "Approved services",
    ),
    (
        "committee.suspended",
        "停止中のサービス",
        "Suspended services",
    ),
    ("committee.none", "ありません。", "None."),
    (
        "committee.no_iso27001",
        "ISO/IEC 27001 なし",
        "No ISO/IEC 27001",
    ),
    ("committee.subcontractors", "委託先", "Sub-contractors"),
    ("committee.offers", "提供する項目", "Items offered"),
    ("committee.sensitive", "要配慮", "Sensitive"),
    ("committee.purposes", "利用目的", "Purposes"),
    ("committee.provider", "提供元", "Source"),
    (
        "committee.provider.unknown",
        "未登録のサービス",
        "Not a registered service",
    ),
    ("committee.items", "項目と使い道", "Items and their uses"),
    ("committee.no_use", "使い道の記載なし", "No use stated"),
    ("committee.retention", "保存期間", "Kept for"),
    ("committee.legal_basis", "法的根拠", "Legal basis"),
    (
        "committee.basis.consent",
        "本人の同意",
        "The resident's consent",
    ),
    (
        "committee.basis.vital_interest",
        "生命・身体・財産の保護",
        "Protection of life, body or property",
    ),
    (
        "committee.basis.statutory",
        "法令の定め",
        "A provision of law",
    ),
    ("committee.votes", "この回の投票", "Votes this round"),
    ("committee.voted_already", "投票済み", "You voted"),
    (
        "committee.comment",
        "コメント(署名に含まれます)",
        "Comment (part of what you sign)",
    ),
    (
        "committee.vote.manual",
        "{service_id, decision, comment, issued_at, nonce} をヘッダー kid = 委員ID で ES256 署名した JWS を入れてください。",
        "Paste a JWS of {service_id, decision, comment, issued_at, nonce}, ES256 with header kid = your member ID.",
    ),
    ("committee.approve", "承認する", "Approve"),
    ("committee.reject", "却下する", "Reject"),
    ("committee.suspend", "停止する", "Suspend"),
    ("committee.reinstate", "再開する", "Reinstate"),
    (
        "committee.voted.title",
        "投票を記録しました",
        "Vote recorded",
    ),
    (
        "committee.voted.intro",
        "あなたの署名付きの投票を記録しました。投票は台帳にも記録されています。",
        "Your signed vote was recorded, and so was its ledger entry.",
    ),
    ("committee.service", "サービス", "Service"),
    ("committee.voted.decision", "あなたの投票", "Your vote"),
    (
        "committee.voted.decided",
        "必要な票数に達し、決定しました。",
        "The quorum was reached: the decision holds.",
    ),
    (
        "committee.voted.waiting",
        "まだ必要な票数に達していません。ほかの委員の投票を待っています。",
        "The quorum is not reached yet: waiting for other members.",
    ),
    (
        "committee.rule_uses",
        "法的根拠による提供の記録",
        "Uses of legal-basis rules",
    ),
    (
        "committee.rule_uses.intro",
        "本人の同意によらず、常設の規則(生命・身体の保護、法令)で提供された記録です。誰が、なぜ求めたかを確認してください。",
        "Data released without the resident's consent under a standing rule (vital interest, law). Check who asked and why.",
    ),
    ("committee.requester", "請求した人", "Requested by"),
    ("committee.reason", "理由", "Reason"),
    ("committee.alerts", "その他の警告", "Other alerts"),
    ("committee.alert.detail", "内容", "Detail"),
    (
        "committee.alert.suspended",
        "サービスの停止",
        "Service suspended",
    ),
    (
        "committee.alert.receipt_missing",
        "受領確認なし",
        "Receipt missing",
    ),
    (
        "committee.alert.receipt_mismatch",
        "受領確認の不一致",
        "Receipts differ",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn the_ticket_of_an_exchange_alert_is_read_from_its_detail() {
        assert_eq!(
            alert_ticket("ticket abc_DEF-1: 消防局 used the standing rule `vital_interest`"),
            Some("abc_DEF-1")
        );
        assert_eq!(
            alert_ticket("ticket t1: the provider's receipt missing"),
            Some("t1")
        );
        assert_eq!(alert_ticket("X was suspended by the committee"), None);
        assert_eq!(alert_ticket("ticket : nothing"), None);
        assert_eq!(alert_ticket("ticket a b: spaced"), None);
    }

    #[test]
    fn a_vote_names_its_member_and_decision() {
        use tsunagu_crypto::keys::{Alg, SigningKey};
        let key = SigningKey::generate(Alg::Es256).unwrap();
        let mut header = Map::new();
        header.insert("kid".into(), Value::String("m1".into()));
        let payload = serde_json::json!({"service_id": "svc", "decision": "approve", "comment": "", "issued_at": 1, "nonce": "n"});
        let signed = jws::sign_with_header(&key, header, payload.to_string().as_bytes()).unwrap();
        assert_eq!(
            vote_claims(&signed).unwrap(),
            ("m1".to_owned(), "approve".to_owned())
        );
        let unnamed = jws::sign_json(&key, None, &payload).unwrap();
        // `jws::sign` names the key by its thumbprint: not a member id, but a `kid`.
        assert_ne!(vote_claims(&unnamed).unwrap().0, "m1");
        assert!(vote_claims("a.b").is_err());
    }
}
