//! The web app's texts, Japanese first and English second.
//!
//! One table of `(key, ja, en)`; templates call `page.t("key")`. A test reads every
//! template and fails on a key that is not in the table, so a missing text is caught before
//! a resident sees a raw key.

use std::collections::HashMap;
use std::sync::OnceLock;

/// A language the web app speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ja" | "ja-jp" => Some(Lang::Ja),
            "en" | "en-us" | "en-gb" => Some(Lang::En),
            _ => None,
        }
    }

    /// The first supported language in an `Accept-Language` header by weight (RFC 9110
    /// §12.5.4); Japanese when none is.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let lang = match primary {
                "ja" => Lang::Ja,
                "en" => Lang::En,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or(Lang::Ja)
    }

    pub fn tag(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// The other language (for the switch).
    pub fn other(self) -> Lang {
        match self {
            Lang::Ja => Lang::En,
            Lang::En => Lang::Ja,
        }
    }
}

/// The text of `key` in `lang`; the key itself when unknown (the test keeps this from
/// happening).
pub fn t(lang: Lang, key: &str) -> &'static str {
    match index().get(key) {
        Some((ja, en)) => match lang {
            Lang::Ja => ja,
            Lang::En => en,
        },
        None => {
            tracing::warn!(%key, "missing text");
            "?"
        }
    }
}

fn index() -> &'static HashMap<&'static str, (&'static str, &'static str)> {
    static INDEX: OnceLock<HashMap<&'static str, (&'static str, &'static str)>> = OnceLock::new();
    INDEX.get_or_init(|| all_texts().map(|(k, ja, en)| (*k, (*ja, *en))).collect())
}

/// The texts of every page module.
fn all_texts() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
    TEXTS
        .iter()
        .chain(super::resident::TEXTS)
        .chain(super::console::TEXTS)
        .chain(super::committee::TEXTS)
}

/// `(key, ja, en)`; keys are unique (a test checks).
pub static TEXTS: &[(&str, &str, &str)] = &[
    ("app.home", "ホーム", "Home"),
    ("app.level", "本人確認のレベル", "Identity level"),
    (
        "app.level.provisional",
        "仮登録(本人確認前)",
        "Provisional (not yet proofed)",
    ),
    (
        "app.level.verified",
        "本人確認済み(マイナンバーカード)",
        "Verified (My Number card)",
    ),
    (
        "app.attributes",
        "登録されている情報",
        "Your recorded details",
    ),
    (
        "app.attributes.none",
        "本人確認が済むと、氏名・住所・生年月日・性別がここに表示されます。",
        "Once you are proofed, your name, address, birthdate and sex appear here.",
    ),
    ("app.account", "アカウント", "Account"),
    ("app.welcome", "tsunagu へようこそ", "Welcome to tsunagu"),
    ("attr.address", "住所", "Address"),
    ("attr.birthdate", "生年月日", "Date of birth"),
    ("attr.gender", "性別", "Sex"),
    ("attr.name", "氏名", "Name"),
    ("consent.approve", "同意して続ける", "Agree and continue"),
    ("consent.deny", "同意しない", "Do not agree"),
    ("consent.expires", "同意の有効期限", "Consent valid until"),
    (
        "consent.intro",
        "次のサービスが、あなたの情報の提供を求めています。",
        "The following service asks for your information.",
    ),
    (
        "consent.items",
        "提供される情報",
        "Information to be provided",
    ),
    (
        "consent.nojs",
        "この画面では、端末の鍵で同意に署名します。JavaScript を使わない場合は、下の内容に署名して consent_jws に入れてください。",
        "On this page your device key signs the consent. Without JavaScript, sign the payload below yourself and put it in consent_jws.",
    ),
    ("consent.payload", "署名する内容", "What you sign"),
    ("consent.purpose", "利用目的", "Purpose"),
    ("consent.recipient", "提供先", "Recipient"),
    ("consent.retention", "保存期間", "Kept for"),
    ("consent.retention.days", "日", "days"),
    (
        "consent.revocable",
        "同意はいつでも「情報提供の管理」から取り消せます。",
        "You can withdraw this consent at any time under \"Data sharing\".",
    ),
    ("consent.source", "提供元", "Source"),
    (
        "consent.source.platform",
        "tsunagu(あなたの本人確認情報)",
        "tsunagu (your verified identity)",
    ),
    (
        "consent.title",
        "情報提供への同意",
        "Consent to share information",
    ),
    ("error.back", "トップへ戻る", "Back to the start"),
    ("error.code", "エラーコード", "Error code"),
    (
        "error.title",
        "処理できませんでした",
        "This could not be done",
    ),
    (
        "landing.enroll",
        "はじめての方(端末を登録)",
        "New here? Register this device",
    ),
    (
        "landing.intro",
        "tsunagu は、あなたの同意にもとづいて、サービスの間であなたの情報をつなぐ、まちの基盤です。プラットフォームはデータを持たず、すべてのやりとりはあなたが確認できる台帳に記録されます。",
        "tsunagu is your city's platform for linking your information between services, only with your consent. The platform never holds the data, and every exchange is recorded in a ledger you can check.",
    ),
    ("landing.login", "ログイン", "Log in"),
    (
        "landing.title",
        "tsunagu — あなたの同意でつながるまち",
        "tsunagu — a city connected by your consent",
    ),
    (
        "login.button",
        "この端末でログイン",
        "Log in with this device",
    ),
    ("login.credential", "端末の識別子", "Device credential"),
    (
        "login.for",
        "次のサービスへログインします",
        "You are logging in to",
    ),
    (
        "login.intro",
        "この端末に保存された鍵で、ログインの確認コードに署名します。",
        "This device's key signs the login challenge.",
    ),
    (
        "login.manual",
        "端末の鍵を自分で使う場合(上級者向け)",
        "Signing by yourself (advanced)",
    ),
    (
        "login.nodevice",
        "この端末は登録されていません。先に端末を登録してください。",
        "This device is not registered. Register it first.",
    ),
    ("login.signature", "署名", "Signature"),
    ("login.title", "ログイン", "Log in"),
    ("logout.button", "ログアウト", "Log out"),
    (
        "logout.confirm",
        "tsunagu からログアウトしますか。",
        "Log out of tsunagu?",
    ),
    (
        "logout.done",
        "ログアウトしました。",
        "You have been logged out.",
    ),
    ("logout.title", "ログアウト", "Log out"),
    ("nav.consents", "情報提供の管理", "Data sharing"),
    ("nav.devices", "端末", "Devices"),
    ("nav.history", "利用履歴", "History"),
    ("nav.home", "ホーム", "Home"),
    ("nav.lang", "English", "日本語"),
    ("nav.main", "メインメニュー", "Main menu"),
    ("nav.skip", "本文へ移動", "Skip to content"),
    ("sex.female", "女性", "Female"),
    ("sex.male", "男性", "Male"),
    ("sex.other", "その他", "Other"),
    (
        "site.footer",
        "tsunagu はデータを保持しません。すべての提供は改ざん検知可能な台帳に記録されます。",
        "tsunagu holds no data. Every exchange is recorded in a tamper-evident ledger.",
    ),
    ("site.name", "tsunagu", "tsunagu"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_every_text_is_translated() {
        assert_eq!(index().len(), all_texts().count(), "a key appears twice");
        for (k, ja, en) in all_texts() {
            assert!(!ja.is_empty() && !en.is_empty(), "{k} lacks a text");
        }
    }

    #[test]
    fn every_key_a_template_uses_exists() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut missing = Vec::new();
        let mut seen = 0;
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("templates directory") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("template");
                for (i, _) in text.match_indices(".t(\"") {
                    let rest = &text[i + 4..];
                    let key = &rest[..rest.find('"').expect("closing quote")];
                    seen += 1;
                    if !index().contains_key(key) {
                        missing.push(format!("{}: {key}", path.display()));
                    }
                }
            }
        }
        assert!(seen > 20, "the templates use texts");
        assert!(
            missing.is_empty(),
            "texts missing from the table: {missing:#?}"
        );
    }

    /// Keys named in Rust: page titles (`Page::new(app, lang, "key", …)`) and `t(lang, "key")`.
    #[test]
    fn keys_used_from_rust_exist() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
        let mut missing = Vec::new();
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("src/web") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("source");
            for marker in ["Page::new(", "i18n::t(", "t(lang, "] {
                for (i, _) in text.match_indices(marker) {
                    let call = &text[i..text[i..].find(')').map_or(text.len(), |j| i + j)];
                    let Some(start) = call.find('"') else {
                        continue;
                    };
                    let rest = &call[start + 1..];
                    let Some(end) = rest.find('"') else { continue };
                    let key = &rest[..end];
                    if key.contains('.') && !key.contains(' ') {
                        seen += 1;
                        if !index().contains_key(key) {
                            missing.push(format!("{}: {key}", path.display()));
                        }
                    }
                }
            }
        }
        assert!(seen > 10, "page titles are named in Rust ({seen})");
        assert!(
            missing.is_empty(),
            "texts missing from the tables: {missing:#?}"
        );
    }

    #[test]
    fn accept_language_picks_the_best_supported_language() {
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Lang::En);
        assert_eq!(
            Lang::from_accept_language("fr, en;q=0.5, ja;q=0.8"),
            Lang::Ja
        );
        assert_eq!(Lang::from_accept_language("de"), Lang::Ja);
        assert_eq!(Lang::from_accept_language("en;q=0, ja;q=0.1"), Lang::Ja);
        assert_eq!(Lang::from_accept_language(""), Lang::Ja);
    }
}
