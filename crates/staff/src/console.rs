//! The staff console (`/admin`): server-rendered pages in Japanese and English, with the
//! conventions of the other consoles — no script, a session cookie (HttpOnly,
//! SameSite=Strict, `Secure` under TLS, path `/admin`) and a CSRF token in every form, POSTs
//! from this origin only. It calls the same `Staff` service as the API: login with TOTP, the
//! request queue with deadlines, a resident's record behind a reason prompt, grants and the
//! access review, the access report.

use crate::service::{LoggedIn, StaffSession};
use crate::{Role, Scope, Staff, client_ip, decision, role_scope};
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::net::IpAddr;
use tsunagu_core::{AccountId, Code};
use tsunagu_platform::{Refusal, iso8601, now};
use tsunagu_rights::export::esc;

/// The console's session cookie.
pub const COOKIE: &str = "tsunagu_admin";

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn routes() -> Router<Staff> {
    Router::new()
        .route("/admin", get(home))
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/requests", get(requests))
        .route("/admin/requests/{id}/decision", post(decide))
        .route("/admin/residents", get(resident_prompt).post(resident))
        .route("/admin/grants", get(grants))
        .route("/admin/grants/issue", post(issue))
        .route("/admin/grants/{id}/withdraw", post(withdraw))
        .route("/admin/grants/{id}/reconfirm", post(reconfirm))
        .route("/admin/staff", post(create_staff))
        .route("/admin/review", post(run_review))
        .route("/admin/report", get(report))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    Ja,
    En,
}

fn lang_of(headers: &HeaderMap, query: Option<&str>) -> Lang {
    let from_query = query.and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("lang="))
            .map(|v| v == "en")
    });
    let from_cookie = cookie(headers, "tsunagu_lang").map(|v| v == "en");
    let from_header = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start().starts_with("en"));
    if from_query.or(from_cookie).or(from_header).unwrap_or(false) {
        Lang::En
    } else {
        Lang::Ja
    }
}

/// The console's words.
fn t(lang: Lang, key: &str) -> &'static str {
    let (ja, en) = match key {
        "title" => ("職員コンソール", "Staff console"),
        "login" => ("ログイン", "Log in"),
        "logout" => ("ログアウト", "Log out"),
        "id" => ("職員ID", "Staff id"),
        "password" => ("パスワード", "Password"),
        "totp" => (
            "ワンタイムコード(認証アプリの6桁)",
            "One-time code (6 digits from your authenticator app)",
        ),
        "home" => ("ホーム", "Home"),
        "requests" => ("請求の処理", "Request queue"),
        "residents" => ("住民の記録", "Resident records"),
        "grants" => ("権限と棚卸し", "Grants and access review"),
        "report" => ("アクセス記録", "Access report"),
        "roles" => ("現在の権限", "Your grants in force"),
        "none" => ("なし", "none"),
        "type" => ("種類", "Type"),
        "status" => ("状態", "Status"),
        "received" => ("受付", "Received"),
        "deadline" => ("期限", "Deadline"),
        "overdue" => ("期限超過", "overdue"),
        "detail" => ("内容", "Detail"),
        "account" => ("アカウント", "Account"),
        "decide" => ("処理", "Decide"),
        "reason" => ("理由", "Reason"),
        "in_progress" => ("対応中にする", "Mark in progress"),
        "completed" => ("完了", "Complete"),
        "refused" => ("不可(理由必須)", "Refuse (reason required)"),
        "empty" => ("ありません。", "Nothing here."),
        "lookup" => ("閲覧する", "Look"),
        "reason_prompt" => (
            "閲覧の理由を書いてください。理由と閲覧した項目は、その住民のやりとり履歴に表示されます。他の人の名前は書かないでください。",
            "State why you look. The reason and the items you see are shown in the resident's own history. Do not name other people.",
        ),
        "account_id" => ("アカウントID", "Account id"),
        "name" => ("氏名", "Name"),
        "address" => ("住所", "Address"),
        "birthdate" => ("生年月日", "Date of birth"),
        "sex" => ("性別", "Sex"),
        "level" => ("確認レベル", "Level"),
        "restriction" => ("利用停止等", "Restriction"),
        "erased" => ("消去済み", "Erased"),
        "recorded" => (
            "この閲覧は住民の履歴に記録されました。",
            "This look is recorded in the resident's history.",
        ),
        "staff" => ("職員", "Staff"),
        "role" => ("役割", "Role"),
        "scope" => ("範囲", "Scope"),
        "until" => ("期限", "Until"),
        "issued_by" => ("発行者", "Issued by"),
        "reconfirmed" => ("再確認", "Reconfirmed"),
        "withdraw" => ("取消", "Withdraw"),
        "reconfirm" => ("再確認する", "Reconfirm"),
        "issue" => ("権限を発行", "Issue a grant"),
        "create_staff" => ("職員を作成", "Create a staff account"),
        "display_name" => ("表示名", "Display name"),
        "days" => ("日数", "Days"),
        "review" => ("アクセス権の棚卸し", "Access review"),
        "run_review" => (
            "棚卸しを実施したことを記録する",
            "Record that the access review was done",
        ),
        "reviewed" => ("棚卸しを記録しました。", "The access review was recorded."),
        "grants_due" => ("再確認が必要な権限", "Grants due for reconfirmation"),
        "unused" => ("使われていない職員アカウント", "Staff accounts not used"),
        "created" => (
            "職員を作成しました。以下は一度だけ表示されます。本人に直接渡してください。",
            "The account was created. This is shown only once: hand it to the person directly.",
        ),
        "views" => ("閲覧", "Looks"),
        "unusual" => ("注意が必要なアクセス", "Unusual access"),
        "at" => ("日時", "When"),
        "items" => ("項目", "Items"),
        "kind" => ("種類", "Kind"),
        "error" => ("エラー", "Error"),
        "other_lang" => ("English", "日本語"),
        _ => ("?", "?"),
    };
    if lang == Lang::En { en } else { ja }
}

fn when(t: i64) -> String {
    iso8601(t)
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A page: the layout, the navigation for a signed-in member, the body.
fn page(lang: Lang, title: &str, session: Option<&StaffSession>, body: &str) -> Response {
    let nav = match session {
        Some(s) => format!(
            "<nav aria-label=\"{}\"><a href=\"/admin\">{}</a> · <a href=\"/admin/requests\">{}</a> · <a href=\"/admin/residents\">{}</a> · <a href=\"/admin/grants\">{}</a> · <a href=\"/admin/report\">{}</a> <form method=\"post\" action=\"/admin/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">{}</button></form></nav>",
            t(lang, "title"),
            t(lang, "home"),
            t(lang, "requests"),
            t(lang, "residents"),
            t(lang, "grants"),
            t(lang, "report"),
            esc(s.csrf.as_deref().unwrap_or("")),
            t(lang, "logout"),
        ),
        None => String::new(),
    };
    let other = if lang == Lang::En { "ja" } else { "en" };
    let html = format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} — {}</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><header><p><strong>{}</strong> · <a href=\"?lang={other}\" hreflang=\"{other}\">{}</a></p>{nav}</header><main><h1>{}</h1>{body}</main></body></html>",
        if lang == Lang::En { "en" } else { "ja" },
        esc(title),
        t(lang, "title"),
        t(lang, "title"),
        t(lang, "other_lang"),
        esc(title),
    );
    let mut r = (StatusCode::OK, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(l) = lang_query(lang) {
        h.append(header::SET_COOKIE, l);
    }
    r
}

fn lang_query(lang: Lang) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "tsunagu_lang={}; Path=/; SameSite=Lax; Max-Age=31536000",
        if lang == Lang::En { "en" } else { "ja" }
    ))
    .ok()
}

fn error_box(lang: Lang, refusal: &Refusal) -> String {
    format!(
        "<p role=\"alert\" class=\"error\">{}: {} ({})</p>",
        t(lang, "error"),
        esc(&tsunagu_core::code::public_detail(&refusal.detail)),
        refusal.code.as_str()
    )
}

fn with_status(mut r: Response, status: StatusCode) -> Response {
    *r.status_mut() = status;
    r
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// An `application/x-www-form-urlencoded` body (`serde_urlencoded`, as axum's `Form`); a
/// body that does not decode is empty, and the action then says which field is missing.
fn form(body: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .map(|pairs| pairs.into_iter().collect())
        .unwrap_or_default()
}

/// The signed-in member, or a redirect to the login page.
async fn member(staff: &Staff, headers: &HeaderMap, ip: IpAddr) -> Result<StaffSession, Response> {
    let Some(token) = cookie(headers, COOKIE) else {
        return Err(see_other("/admin/login"));
    };
    staff
        .authenticate(token, ip)
        .await
        .map_err(|_| see_other("/admin/login"))
}

/// A cookie-authenticated POST: from this origin (when the browser says), with the session's
/// CSRF token.
fn post_ok(
    staff: &Staff,
    headers: &HeaderMap,
    session: &StaffSession,
    sent: Option<&String>,
) -> bool {
    let origin_ok = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            staff.platform().public_url.trim_end_matches('/') == origin.trim_end_matches('/')
        }
    };
    let csrf_ok = match (&session.csrf, sent) {
        (Some(expected), Some(sent)) => {
            tsunagu_crypto::constant_time_eq(expected.as_bytes(), sent.as_bytes())
        }
        _ => false,
    };
    origin_ok && csrf_ok
}

fn forbidden(lang: Lang, session: &StaffSession) -> Response {
    with_status(
        page(
            lang,
            t(lang, "error"),
            Some(session),
            &error_box(
                lang,
                &Refusal::new(
                    Code::Forbidden,
                    "this form came from elsewhere or is stale: reload the page",
                ),
            ),
        ),
        StatusCode::FORBIDDEN,
    )
}

struct Ctx {
    lang: Lang,
    ip: IpAddr,
}

fn ctx(
    req_headers: &HeaderMap,
    uri: &axum::http::Uri,
    ext: &axum::http::Extensions,
) -> Option<Ctx> {
    Some(Ctx {
        lang: lang_of(req_headers, uri.query()),
        ip: client_ip(ext)?,
    })
}

macro_rules! context {
    ($req:expr) => {{
        let (parts, body) = $req.into_parts();
        let Some(c) = ctx(&parts.headers, &parts.uri, &parts.extensions) else {
            return StatusCode::FORBIDDEN.into_response();
        };
        (c, parts.headers, body)
    }};
}

async fn body_form(body: axum::body::Body) -> HashMap<String, String> {
    match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => form(&b),
        Err(_) => HashMap::new(),
    }
}

fn login_form(lang: Lang, error: Option<&Refusal>) -> String {
    format!(
        "{}<form method=\"post\" action=\"/admin/login\"><p><label for=\"id\">{}</label><input id=\"id\" name=\"id\" autocomplete=\"username\" required></p><p><label for=\"password\">{}</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></p><p><label for=\"totp\">{}</label><input id=\"totp\" name=\"totp\" inputmode=\"numeric\" pattern=\"[0-9]{{6}}\" autocomplete=\"one-time-code\" required></p><p><button type=\"submit\">{}</button></p></form>",
        error.map(|e| error_box(lang, e)).unwrap_or_default(),
        t(lang, "id"),
        t(lang, "password"),
        t(lang, "totp"),
        t(lang, "login"),
    )
}

async fn login_page(State(_staff): State<Staff>, req: Request) -> Response {
    let (c, _, _) = context!(req);
    page(c.lang, t(c.lang, "login"), None, &login_form(c.lang, None))
}

async fn login(State(staff): State<Staff>, req: Request) -> Response {
    let (c, _, body) = context!(req);
    let f = body_form(body).await;
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    match staff
        .login(get("id"), get("password"), get("totp"), c.ip, true)
        .await
    {
        Ok(LoggedIn {
            token, expires_in, ..
        }) => {
            let https = staff.platform().public_url.starts_with("https://");
            let mut r = see_other("/admin");
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{COOKIE}={token}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={expires_in}{}",
                if https { "; Secure" } else { "" }
            )) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => {
            let status = match e.code {
                Code::Locked => StatusCode::TOO_MANY_REQUESTS,
                other => {
                    StatusCode::from_u16(other.http_status()).unwrap_or(StatusCode::UNAUTHORIZED)
                }
            };
            with_status(
                page(
                    c.lang,
                    t(c.lang, "login"),
                    None,
                    &login_form(c.lang, Some(&e)),
                ),
                status,
            )
        }
    }
}

async fn logout(State(staff): State<Staff>, req: Request) -> Response {
    let (c, headers, body) = context!(req);
    let s = match member(&staff, &headers, c.ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let f = body_form(body).await;
    if !post_ok(&staff, &headers, &s, f.get("csrf")) {
        return forbidden(c.lang, &s);
    }
    let _ = staff.logout(&s).await;
    let mut r = see_other("/admin/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "tsunagu_admin=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    r
}

fn role_label(role: Role, scope: Option<Scope>) -> String {
    match scope {
        Some(s) => format!("{} ({})", role.as_str(), s.as_str()),
        None => role.as_str().to_owned(),
    }
}

async fn home(State(staff): State<Staff>, req: Request) -> Response {
    let (c, headers, _) = context!(req);
    let s = match member(&staff, &headers, c.ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let roles = staff.roles(&s).await.unwrap_or_default();
    let list = if roles.is_empty() {
        format!("<li>{}</li>", t(c.lang, "none"))
    } else {
        roles
            .iter()
            .map(|(r, sc)| format!("<li>{}</li>", esc(&role_label(*r, *sc))))
            .collect()
    };
    let body = format!(
        "<p>{} <strong>{}</strong></p><h2>{}</h2><ul id=\"roles\">{list}</ul>",
        t(c.lang, "id"),
        esc(&s.staff_id),
        t(c.lang, "roles"),
    );
    page(c.lang, t(c.lang, "home"), Some(&s), &body)
}

fn csrf_field(s: &StaffSession) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(s.csrf.as_deref().unwrap_or(""))
    )
}

async fn requests_body(
    staff: &Staff,
    s: &StaffSession,
    lang: Lang,
    ip: IpAddr,
    notice: &str,
) -> Result<String, Refusal> {
    let queue = staff.queue(s, false, ip).await?;
    let mut body = notice.to_owned();
    if queue.is_empty() {
        body.push_str(&format!("<p>{}</p>", t(lang, "empty")));
        return Ok(body);
    }
    body.push_str(&format!(
        "<table id=\"queue\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        t(lang, "type"), t(lang, "status"), t(lang, "received"), t(lang, "deadline"), t(lang, "account"), t(lang, "detail"), t(lang, "decide")
    ));
    for r in queue {
        body.push_str(&format!(
            "<tr data-request-id=\"{id}\"><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td><form method=\"post\" action=\"/admin/requests/{id}/decision\">{}<label for=\"reason-{id}\">{}</label><input id=\"reason-{id}\" name=\"reason\"> <button type=\"submit\" name=\"decision\" value=\"in_progress\">{}</button> <button type=\"submit\" name=\"decision\" value=\"completed\">{}</button> <button type=\"submit\" name=\"decision\" value=\"refused\">{}</button></form></td></tr>",
            r.request_type.as_str(),
            r.status.as_str(),
            when(r.received_at),
            when(r.deadline),
            if r.overdue { format!(" <strong class=\"overdue\">{}</strong>", t(lang, "overdue")) } else { String::new() },
            esc(r.account_id.as_ref().map(|a| a.as_str()).unwrap_or("")),
            esc(r.detail.as_deref().unwrap_or("")),
            csrf_field(s),
            t(lang, "reason"),
            t(lang, "in_progress"),
            t(lang, "completed"),
            t(lang, "refused"),
            id = esc(&r.request_id),
        ));
    }
    body.push_str("</tbody></table>");
    Ok(body)
}

async fn requests(State(staff): State<Staff>, req: Request) -> Response {
    let (c, headers, _) = context!(req);
    let s = match member(&staff, &headers, c.ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match requests_body(&staff, &s, c.lang, c.ip, "").await {
        Ok(body) => page(c.lang, t(c.lang, "requests"), Some(&s), &body),
        Err(e) => refusal_page(c.lang, &s, t(c.lang, "requests"), &e),
    }
}

fn refusal_page(lang: Lang, s: &StaffSession, title: &str, e: &Refusal) -> Response {
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::FORBIDDEN);
    with_status(page(lang, title, Some(s), &error_box(lang, e)), status)
}

async fn decide(State(staff): State<Staff>, Path(id): Path<String>, req: Request) -> Response {
    let (c, headers, body) = context!(req);
    let s = match member(&staff, &headers, c.ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let f = body_form(body).await;
    if !post_ok(&staff, &headers, &s, f.get("csrf")) {
        return forbidden(c.lang, &s);
    }
    let outcome = async {
        staff
            .require(&s, Role::Operator, Some(Scope::Update))
            .await?;
        let to = decision(f.get("decision").map(String::as_str).unwrap_or("")).map_err(|e| e.0)?;
        staff
            .rights
            .decide(
                &id,
                to,
                f.get("reason").map(String::as_str),
                &s.staff_id,
                &staff.pseudonym(&s.staff_id),
            )
            .await
    }
    .await;
    match outcome {
        Ok(_) => see_other("/admin/requests"),
        Err(e) => {
            let notice = error_box(c.lang, &e);
            match requests_body(&staff, &s, c.lang, c.ip, &notice).await {
                Ok(body) => with_status(
                    page(c.lang, t(c.lang, "requests"), Some(&s), &body),
                    StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
                ),
                Err(e2) => refusal_page(c.lang, &s, t(c.lang, "requests"), &e2),
            }
        }
    }
}

fn resident_form(lang: Lang, s: &StaffSession, account_id: &str, notice: &str) -> String {
    format!(
        "{notice}<form method=\"post\" action=\"/admin/residents\">{}<p><label for=\"account_id\">{}</label><input id=\"account_id\" name=\"account_id\" value=\"{}\" required></p><p><label for=\"reason\">{}</label><br><span id=\"reason-help\">{}</span><br><textarea id=\"reason\" name=\"reason\" aria-describedby=\"reason-help\" maxlength=\"500\" required></textarea></p><p><button type=\"submit\">{}</button></p></form>",
        csrf_field(s),
        t(lang, "account_id"),
        esc(account_id),
        t(lang, "reason"),
        t(lang, "reason_prompt"),
        t(lang, "lookup"),
    )
}

async fn resident_prompt(State(staff): State<Staff>, req: Request) -> Response {
    let (c, headers, _) = context!(req);
    let s = match member(&staff, &headers, c.ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    page(
        c.lang,
        t(c.lang, "residents"),
        Some(&s),
        &resident_form(c.lang, &s, "", ""),
    )
}

async fn resident(State(staff): State<Staff>, req: Request) -> Response {
    let (c, headers, body) = context!(req);
    let s = match member(&staff, &headers, c.ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let f = body_form(body).await;
    if !post_ok(&staff, &headers, &s, f.get("csrf")) {
        return forbidden(c.lang, &s);
    }
    let account = f.get("account_id").cloned().unwrap_or_default();
    let lang = c.lang;
    match staff
        .view_resident(
            &s,
            &AccountId::from(account.trim()),
            f.get("reason").map(String::as_str),
            c.ip,
        )
        .await
    {
        Ok(v) => {
            let items = v.basic_items.as_ref();
            let rows = [
                (t(lang, "account_id"), v.account_id.to_string()),
                (t(lang, "level"), v.level.as_str().to_owned()),
                (t(lang, "status"), v.status.as_str().to_owned()),
                (t(lang, "restriction"), v.restriction.as_str().to_owned()),
                (t(lang, "erased"), v.erased.to_string()),
                (
                    t(lang, "name"),
                    items.map(|a| a.name.clone()).unwrap_or_default(),
                ),
                (
                    t(lang, "address"),
                    items.map(|a| a.address.clone()).unwrap_or_default(),
                ),
                (
                    t(lang, "birthdate"),
                    items.map(|a| a.birthdate.clone()).unwrap_or_default(),
                ),
                (
                    t(lang, "sex"),
                    items
                        .and_then(|a| serde_json::to_value(a.sex).ok())
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                ),
            ];
            let table: String = rows
                .iter()
                .map(|(k, v)| format!("<tr><th scope=\"row\">{k}</th><td>{}</td></tr>", esc(v)))
                .collect();
            let body = format!(
                "<p role=\"status\" class=\"notice\">{}</p><table id=\"record\"><tbody>{table}</tbody></table>{}",
                t(lang, "recorded"),
                resident_form(lang, &s, "", "")
            );
            page(lang, t(lang, "residents"), Some(&s), &body)
        }
        Err(e) => with_status(
            page(
                lang,
                t(lang, "residents"),
                Some(&s),
                &resident_form(lang, &s, &account, &error_box(lang, &e)),
            ),
            StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
        ),
    }
}

async fn grants_body(
    staff: &Staff,
    s: &StaffSession,
    lang: Lang,
    notice: &str,
) -> Result<String, Refusal> {
    let review = staff.review(s, false).await?;
    let grants = staff.grants(None).await?;
    let t_now = now();
    let mut body = notice.to_owned();
    body.push_str(&format!(
        "<h2>{}</h2><table id=\"grants\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        t(lang, "grants"), t(lang, "staff"), t(lang, "role"), t(lang, "until"), t(lang, "reason"), t(lang, "issued_by"), t(lang, "reconfirmed"), t(lang, "status")
    ));
    for g in &grants {
        let actions = if g.active_at(t_now) {
            format!(
                "<form method=\"post\" action=\"/admin/grants/{id}/reconfirm\" class=\"inline\">{csrf}<button type=\"submit\">{}</button></form> <form method=\"post\" action=\"/admin/grants/{id}/withdraw\" class=\"inline\">{csrf}<label for=\"why-{id}\">{}</label><input id=\"why-{id}\" name=\"reason\" required> <button type=\"submit\">{}</button></form>",
                t(lang, "reconfirm"),
                t(lang, "reason"),
                t(lang, "withdraw"),
                id = esc(&g.grant_id),
                csrf = csrf_field(s),
            )
        } else {
            g.withdrawn_reason
                .as_deref()
                .map(esc)
                .unwrap_or_else(|| "—".into())
        };
        body.push_str(&format!(
            "<tr data-grant-id=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{actions}</td></tr>",
            esc(&g.grant_id),
            esc(&g.staff_id),
            esc(&role_label(g.role, g.scope)),
            when(g.expires_at),
            esc(&g.reason),
            esc(&g.issued_by),
            when(g.reconfirmed_at),
        ));
    }
    body.push_str("</tbody></table>");
    body.push_str(&format!(
        "<h2>{}</h2><form method=\"post\" action=\"/admin/grants/issue\" id=\"issue\">{}<p><label for=\"g-staff\">{}</label><input id=\"g-staff\" name=\"staff_id\" required></p><p><label for=\"g-role\">{}</label><select id=\"g-role\" name=\"role\"><option value=\"operator\">operator</option><option value=\"auditor\">auditor</option><option value=\"security_officer\">security_officer</option></select></p><p><label for=\"g-scope\">{}</label><select id=\"g-scope\" name=\"scope\"><option value=\"\">—</option><option value=\"view\">view</option><option value=\"update\">update</option><option value=\"delete\">delete</option></select></p><p><label for=\"g-days\">{}</label><input id=\"g-days\" name=\"days\" type=\"number\" min=\"1\" max=\"{}\" value=\"90\" required></p><p><label for=\"g-reason\">{}</label><input id=\"g-reason\" name=\"reason\" required></p><p><button type=\"submit\">{}</button></p></form>",
        t(lang, "issue"), csrf_field(s), t(lang, "staff"), t(lang, "role"), t(lang, "scope"), t(lang, "days"), staff.config.grant_max_days, t(lang, "reason"), t(lang, "issue")
    ));
    body.push_str(&format!(
        "<h2>{}</h2><form method=\"post\" action=\"/admin/staff\" id=\"create-staff\">{}<p><label for=\"s-id\">{}</label><input id=\"s-id\" name=\"id\" required></p><p><label for=\"s-name\">{}</label><input id=\"s-name\" name=\"display_name\" required></p><p><button type=\"submit\">{}</button></p></form>",
        t(lang, "create_staff"), csrf_field(s), t(lang, "id"), t(lang, "display_name"), t(lang, "create_staff")
    ));
    body.push_str(&format!(
        "<h2>{}</h2><h3>{}</h3><ul id=\"due\">",
        t(lang, "review"),
        t(lang, "grants_due")
    ));
    if review.grants_due.is_empty() {
        body.push_str(&format!("<li>{}</li>", t(lang, "none")));
    }
    for g in &review.grants_due {
        body.push_str(&format!(
            "<li>{} — {} ({})</li>",
            esc(&g.staff_id),
            esc(&role_label(g.role, g.scope)),
            when(g.reconfirmed_at)
        ));
    }
    body.push_str(&format!(
        "</ul><h3>{}</h3><ul id=\"unused\">",
        t(lang, "unused")
    ));
    if review.accounts_unused.is_empty() {
        body.push_str(&format!("<li>{}</li>", t(lang, "none")));
    }
    for a in &review.accounts_unused {
        body.push_str(&format!("<li>{}</li>", esc(&a.staff_id)));
    }
    body.push_str(&format!(
        "</ul><form method=\"post\" action=\"/admin/review\" id=\"run-review\">{}<button type=\"submit\">{}</button></form>",
        csrf_field(s),
        t(lang, "run_review")
    ));
    Ok(body)
}

async fn grants(State(staff): State<Staff>, req: Request) -> Response {
    let (c, headers, _) = context!(req);
    let s = match member(&staff, &headers, c.ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match grants_body(&staff, &s, c.lang, "").await {
        Ok(body) => page(c.lang, t(c.lang, "grants"), Some(&s), &body),
        Err(e) => refusal_page(c.lang, &s, t(c.lang, "grants"), &e),
    }
}

/// Runs an officer's form action and shows the grants page again (with a notice or error).
async fn officer_action<F, Fut>(staff: Staff, req: Request, action: F) -> Response
where
    F: FnOnce(Staff, StaffSession, HashMap<String, String>) -> Fut,
    Fut: std::future::Future<Output = Result<String, Refusal>>,
{
    let (c, headers, body) = context!(req);
    let s = match member(&staff, &headers, c.ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let f = body_form(body).await;
    if !post_ok(&staff, &headers, &s, f.get("csrf")) {
        return forbidden(c.lang, &s);
    }
    let (notice, status) = match action(staff.clone(), s.clone(), f).await {
        Ok(notice) => (notice, StatusCode::OK),
        Err(e) => (
            error_box(c.lang, &e),
            StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
        ),
    };
    match grants_body(&staff, &s, c.lang, &notice).await {
        Ok(body) => with_status(page(c.lang, t(c.lang, "grants"), Some(&s), &body), status),
        Err(e) => refusal_page(c.lang, &s, t(c.lang, "grants"), &e),
    }
}

async fn issue(State(staff): State<Staff>, req: Request) -> Response {
    officer_action(staff, req, |staff, s, f| async move {
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        let scope = Some(get("scope")).filter(|v| !v.is_empty());
        let (role, scope) = role_scope(get("role"), scope).map_err(|e| e.0)?;
        let days: i64 = get("days")
            .parse()
            .map_err(|_| Refusal::new(Code::InvalidRequest, "days: a number"))?;
        let g = staff
            .issue_grant(
                &s,
                get("staff_id"),
                role,
                scope,
                now() + days.clamp(0, 3_660) * 86_400,
                get("reason"),
            )
            .await?;
        Ok(format!(
            "<p role=\"status\" class=\"notice\">{} {}</p>",
            esc(&g.grant_id),
            esc(&role_label(g.role, g.scope))
        ))
    })
    .await
}

async fn withdraw(State(staff): State<Staff>, Path(id): Path<String>, req: Request) -> Response {
    officer_action(staff, req, |staff, s, f| async move {
        let g = staff
            .withdraw_grant(&s, &id, f.get("reason").map(String::as_str).unwrap_or(""))
            .await?;
        Ok(format!(
            "<p role=\"status\" class=\"notice\">{} —</p>",
            esc(&g.grant_id)
        ))
    })
    .await
}

async fn reconfirm(State(staff): State<Staff>, Path(id): Path<String>, req: Request) -> Response {
    officer_action(staff, req, |staff, s, _| async move {
        let g = staff.reconfirm_grant(&s, &id).await?;
        Ok(format!(
            "<p role=\"status\" class=\"notice\">{} ✓</p>",
            esc(&g.grant_id)
        ))
    })
    .await
}

async fn run_review(State(staff): State<Staff>, req: Request) -> Response {
    let lang = lang_of(req.headers(), req.uri().query());
    officer_action(staff, req, move |staff, s, _| async move {
        let r = staff.access_review(&s).await?;
        Ok(format!(
            "<p role=\"status\" class=\"notice\" id=\"reviewed\">{} ({} / {})</p>",
            t(lang, "reviewed"),
            r.grants_due.len(),
            r.accounts_unused.len()
        ))
    })
    .await
}

async fn create_staff(State(staff): State<Staff>, req: Request) -> Response {
    let lang = lang_of(req.headers(), req.uri().query());
    officer_action(staff, req, move |staff, s, f| async move {
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        let new = staff.create(&s, get("id"), get("display_name")).await?;
        Ok(format!(
            "<div role=\"status\" class=\"notice\" id=\"new-staff\"><p>{}</p><dl><dt>{}</dt><dd id=\"new-id\">{}</dd><dt>{}</dt><dd><code id=\"new-password\">{}</code></dd><dt>TOTP</dt><dd><code id=\"new-totp\">{}</code></dd><dt>otpauth</dt><dd><code id=\"new-otpauth\">{}</code></dd></dl></div>",
            t(lang, "created"),
            t(lang, "id"),
            esc(&new.id),
            t(lang, "password"),
            esc(&new.password),
            esc(&new.totp_secret),
            esc(&new.otpauth_uri),
        ))
    })
    .await
}

async fn report(State(staff): State<Staff>, req: Request) -> Response {
    let (c, headers, _) = context!(req);
    let s = match member(&staff, &headers, c.ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let lang = c.lang;
    let to = now() + 1;
    match staff.access_report(&s, to - 30 * 86_400, to).await {
        Ok(r) => {
            let mut body = format!(
                "<h2>{}</h2><table id=\"views\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
                t(lang, "views"),
                t(lang, "at"),
                t(lang, "staff"),
                t(lang, "account"),
                t(lang, "items"),
                t(lang, "reason")
            );
            for v in &r.views {
                body.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    when(v.at),
                    esc(&v.staff_id),
                    esc(v.account_id.as_str()),
                    esc(&v.items.join(", ")),
                    esc(&v.reason)
                ));
            }
            body.push_str(&format!(
                "</tbody></table><h2>{}</h2><ul id=\"unusual\">",
                t(lang, "unusual")
            ));
            if r.unusual.is_empty() {
                body.push_str(&format!("<li>{}</li>", t(lang, "none")));
            }
            for u in &r.unusual {
                let text = serde_json::to_value(u)
                    .ok()
                    .and_then(|v| v.as_object().cloned())
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| {
                                format!(
                                    "{k}: {}",
                                    v.as_str()
                                        .map(str::to_owned)
                                        .unwrap_or_else(|| v.to_string())
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(" · ")
                    })
                    .unwrap_or_default();
                body.push_str(&format!("<li>{}</li>", esc(&text)));
            }
            body.push_str("</ul>");
            page(lang, t(lang, "report"), Some(&s), &body)
        }
        Err(e) => refusal_page(lang, &s, t(lang, "report"), &e),
    }
}
