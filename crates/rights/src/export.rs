//! A disclosure's export (SPEC §9): everything the platform holds about the resident — the
//! account, the four basic items, devices, consents as signed with their receipts, the
//! provision records (every ticket issued or refused about them), staff views, the other
//! requests, and the history with an inclusion proof for each entry against one signed tree
//! head — as JSON, and as a page to read.

use crate::service::{RequestRow, Rights};
use serde_json::{Value, json};
use tsunagu_api::ApiError;
use tsunagu_crypto::b64;
use tsunagu_platform::identity::Session;
use tsunagu_platform::{iso8601, now};

/// Most history entries an export holds.
pub const MAX_HISTORY: usize = 20_000;

/// The export of a completed disclosure request.
pub async fn build(
    rights: &Rights,
    session: &Session,
    request: &RequestRow,
) -> Result<Value, ApiError> {
    let p = rights.platform();
    let t = now();
    let record = p.resident_record(&session.account_id).await?;
    let receipts = p.consents.list(session).await?;

    // The whole history, newest first, proven against the first page's tree head.
    let mut history: Vec<Value> = Vec::new();
    let mut before = None;
    let mut sth = None;
    loop {
        let page = p.history.page(session, before, 200).await?;
        let size = sth.get_or_insert_with(|| page.sth.clone()).tree_size;
        let json = tsunagu_api::identity::history_json(&page);
        for mut item in json["items"].as_array().cloned().unwrap_or_default() {
            if let Some(index) = item["leaf_index"].as_u64() {
                let (_, path) = p
                    .ledger
                    .inclusion(index, size)
                    .await
                    .map_err(|e| ApiError::internal("inclusion proof", e))?;
                item["inclusion"] = json!({
                    "tree_size": size,
                    "audit_path": path.iter().map(b64::std_encode).collect::<Vec<_>>(),
                });
            }
            history.push(item);
        }
        match page.next_before {
            Some(next) if history.len() < MAX_HISTORY => before = Some(next),
            _ => break,
        }
    }
    let of_type = |prefix: &str| -> Vec<Value> {
        history
            .iter()
            .filter(|i| i["type"].as_str().is_some_and(|k| k.starts_with(prefix)))
            .cloned()
            .collect()
    };
    let provisions = of_type("ticket.");
    let staff_views = of_type("staff.");
    let requests: Vec<Value> = rights
        .rows_of(&session.account_id)
        .await?
        .iter()
        .map(|r| rights.view(r, false, t).map(|v| json!(v)))
        .collect::<Result<_, _>>()?;
    let a = &record.account;
    Ok(json!({
        "request_id": request.id,
        "generated_at": t,
        "account": {
            "account_id": a.id,
            "level": a.level,
            "status": a.status,
            "restriction": a.restriction,
            "created_at": a.created_at,
            "updated_at": a.updated_at,
        },
        "basic_items": record.attributes,
        "devices": record.devices.iter().map(|d| json!({
            "device_id": d.id,
            "status": d.status,
            "created_at": d.created_at,
            "expires_at": d.expires_at,
            "revoked_at": d.revoked_at,
            "key_thumbprint": d.jkt,
            "screen_lock": d.uv.is_some(),
        })).collect::<Vec<_>>(),
        "consents": record.consents.iter().map(|c| json!({
            "consent_id": c.id,
            "consumer": c.consumer_id,
            "provider": c.provider_id,
            "purpose_id": c.purpose_id,
            "items": c.items,
            "status": c.status,
            "expires_at": c.expires_at,
            "created_at": c.created_at,
            "signed_jws": c.jws,
        })).collect::<Vec<_>>(),
        "receipts": receipts.iter().map(|r| json!({
            "consent_id": r.consent_id,
            "receipt": r.receipt,
        })).collect::<Vec<_>>(),
        "tickets": record.tickets.iter().map(|tk| json!({
            "ticket_id": tk.id,
            "consumer": tk.consumer_id,
            "provider": tk.provider_id,
            "purpose_id": tk.purpose_id,
            "items": tk.items,
            "basis": tk.basis.claim(),
            "requester": tk.requester,
            "reason": tk.reason,
            "issued_at": tk.issued_at,
            "expires_at": tk.expires_at,
            "state": tk.state,
        })).collect::<Vec<_>>(),
        "provisions": provisions,
        "staff_views": staff_views,
        "requests": requests,
        "history": history,
        "sth": sth,
    }))
}

/// HTML escaping of a text (the export page and the staff console use this one).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn time(v: &Value) -> String {
    v.as_i64().map(iso8601).unwrap_or_else(|| "—".into())
}

fn table(out: &mut String, heads: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    out.push_str("<table><thead><tr>");
    for h in heads {
        out.push_str(&format!("<th scope=\"col\">{}</th>", esc(h)));
    }
    out.push_str("</tr></thead><tbody>");
    let mut any = false;
    for row in rows {
        any = true;
        out.push_str("<tr>");
        for cell in row {
            out.push_str(&format!("<td>{}</td>", esc(&cell)));
        }
        out.push_str("</tr>");
    }
    if !any {
        out.push_str(&format!("<tr><td colspan=\"{}\">—</td></tr>", heads.len()));
    }
    out.push_str("</tbody></table>");
}

/// The export as a page to read (Japanese, or English with `en`). No script, no style
/// attribute: the platform's content security policy applies.
pub fn html(e: &Value, en: bool) -> String {
    let l = |ja: &'static str, english: &'static str| if en { english } else { ja };
    let mut out = String::new();
    out.push_str(&format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><main>",
        if en { "en" } else { "ja" },
        l("保有個人情報の開示", "Disclosure of the data held about you")
    ));
    out.push_str(&format!(
        "<h1>{}</h1><p>{} {} · {} {}</p>",
        l(
            "保有個人情報の開示",
            "Disclosure of the data held about you"
        ),
        l("請求番号", "Request"),
        esc(&text(&e["request_id"])),
        l("作成日時", "Generated"),
        esc(&time(&e["generated_at"])),
    ));
    out.push_str(&format!("<h2>{}</h2>", l("アカウント", "Account")));
    let a = &e["account"];
    table(
        &mut out,
        &[l("項目", "Item"), l("値", "Value")],
        [
            ("ID", &a["account_id"]),
            (l("確認レベル", "Level"), &a["level"]),
            (l("状態", "Status"), &a["status"]),
            (l("利用停止等", "Restriction"), &a["restriction"]),
        ]
        .into_iter()
        .map(|(k, v)| vec![k.to_owned(), text(v)])
        .chain(std::iter::once(vec![
            l("作成", "Created").to_owned(),
            time(&a["created_at"]),
        ])),
    );
    out.push_str(&format!(
        "<h2>{}</h2>",
        l("基本4情報", "The four basic items")
    ));
    let b = &e["basic_items"];
    table(
        &mut out,
        &[l("項目", "Item"), l("値", "Value")],
        [
            (l("氏名", "Name"), &b["name"]),
            (l("住所", "Address"), &b["address"]),
            (l("生年月日", "Date of birth"), &b["birthdate"]),
            (l("性別", "Sex"), &b["sex"]),
        ]
        .into_iter()
        .map(|(k, v)| vec![k.to_owned(), text(v)]),
    );
    out.push_str(&format!("<h2>{}</h2>", l("端末", "Devices")));
    table(
        &mut out,
        &[
            l("端末", "Device"),
            l("状態", "Status"),
            l("登録", "Added"),
            l("画面ロック", "Screen lock"),
        ],
        e["devices"].as_array().into_iter().flatten().map(|d| {
            vec![
                text(&d["device_id"]),
                text(&d["status"]),
                time(&d["created_at"]),
                text(&d["screen_lock"]),
            ]
        }),
    );
    out.push_str(&format!("<h2>{}</h2>", l("同意", "Consents")));
    table(
        &mut out,
        &[
            l("同意", "Consent"),
            l("提供先", "Recipient"),
            l("提供元", "Source"),
            l("目的", "Purpose"),
            l("項目", "Items"),
            l("状態", "Status"),
            l("期限", "Until"),
        ],
        e["consents"].as_array().into_iter().flatten().map(|c| {
            vec![
                text(&c["consent_id"]),
                text(&c["consumer"]),
                text(&c["provider"]),
                text(&c["purpose_id"]),
                text(&c["items"]),
                text(&c["status"]),
                time(&c["expires_at"]),
            ]
        }),
    );
    out.push_str(&format!(
        "<h2>{}</h2>",
        l("第三者提供の記録", "Provision records")
    ));
    table(
        &mut out,
        &[
            l("日時", "When"),
            l("結果", "Outcome"),
            l("提供先", "Recipient"),
            l("目的", "Purpose"),
            l("根拠", "Basis"),
            l("理由", "Reason"),
        ],
        e["provisions"].as_array().into_iter().flatten().map(|h| {
            let d = &h["details"];
            vec![
                time(&h["at"]),
                text(&h["outcome"]),
                text(&d["consumer"]["name"]),
                text(&d["purpose"]["title_ja"]),
                text(&d["basis"]),
                text(&h["reason"]),
            ]
        }),
    );
    out.push_str(&format!(
        "<h2>{}</h2>",
        l("職員による閲覧", "Looks by operator staff")
    ));
    table(
        &mut out,
        &[
            l("日時", "When"),
            l("役割", "Role"),
            l("項目", "Items"),
            l("理由", "Reason"),
        ],
        e["staff_views"].as_array().into_iter().flatten().map(|h| {
            let ev = &h["event"];
            vec![
                time(&h["at"]),
                text(&ev["role"]),
                text(&ev["items"]),
                text(&ev["reason"]),
            ]
        }),
    );
    out.push_str(&format!("<h2>{}</h2>", l("請求", "Requests")));
    table(
        &mut out,
        &[
            l("請求", "Request"),
            l("種類", "Type"),
            l("状態", "Status"),
            l("受付", "Received"),
            l("期限", "Deadline"),
        ],
        e["requests"].as_array().into_iter().flatten().map(|r| {
            vec![
                text(&r["request_id"]),
                text(&r["type"]),
                text(&r["status"]),
                time(&r["received_at"]),
                time(&r["deadline"]),
            ]
        }),
    );
    out.push_str(&format!(
        "<h2>{}</h2><p>{}</p>",
        l("やりとり履歴", "History"),
        l(
            "各記録には台帳への包含証明が付いています（JSON 形式の出力で検証できます）。",
            "Each entry comes with its inclusion proof in the ledger (check it with the JSON export).",
        )
    ));
    table(
        &mut out,
        &[
            "#",
            l("日時", "When"),
            l("種類", "Kind"),
            l("結果", "Outcome"),
        ],
        e["history"].as_array().into_iter().flatten().map(|h| {
            vec![
                text(&h["leaf_index"]),
                time(&h["at"]),
                text(&h["type"]),
                text(&h["outcome"]),
            ]
        }),
    );
    out.push_str("</main></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_escapes_what_it_shows() {
        let e = json!({
            "request_id": "dsr_<script>",
            "generated_at": 0,
            "account": {"account_id": "a&b"},
            "basic_items": {"name": "<img src=x onerror=alert(1)>", "address": "\"x\"", "birthdate": "2000-01-01", "sex": "female"},
            "staff_views": [{"at": 1, "event": {"role": "operator", "items": ["name"], "reason": "'quoted'"}}],
        });
        let page = html(&e, false);
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("&#39;quoted&#39;"));
        assert!(page.contains("保有個人情報の開示"));
        assert!(html(&e, true).contains("Looks by operator staff"));
    }
}
