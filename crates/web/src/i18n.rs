//! The web app's texts, Japanese first and English second, in Fluent files
//! (`i18n/ja.ftl`, `i18n/en.ftl`, compiled into the binary). Templates call `page.t("key")`.
//! Each file is parsed once and every message formatted once; tests check that both files
//! have the same keys, that every message formats, and that every key a template or the
//! Rust code names exists, so a resident never sees a raw key.

use fluent_bundle::{FluentBundle, FluentResource};
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

/// The texts of one language, formatted.
type Texts = HashMap<String, String>;

const JA_FTL: &str = include_str!("../i18n/ja.ftl");
const EN_FTL: &str = include_str!("../i18n/en.ftl");

/// Parses a Fluent file and formats every message (none takes arguments), or says what is
/// wrong with it.
fn load(tag: &str, source: &str) -> Result<Texts, String> {
    let resource = FluentResource::try_new(source.to_owned())
        .map_err(|(_, errors)| format!("{tag}.ftl: {errors:?}"))?;
    let ids: Vec<String> = resource
        .entries()
        .filter_map(|entry| match entry {
            fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
            _ => None,
        })
        .collect();
    let locale: unic_langid::LanguageIdentifier = tag.parse().map_err(|e| format!("{tag}: {e}"))?;
    let mut bundle = FluentBundle::new(vec![locale]);
    bundle.set_use_isolating(false);
    bundle
        .add_resource(resource)
        .map_err(|errors| format!("{tag}.ftl: {errors:?}"))?;
    let mut texts = HashMap::with_capacity(ids.len());
    for id in ids {
        let pattern = bundle
            .get_message(&id)
            .and_then(|m| m.value())
            .ok_or_else(|| format!("{tag}.ftl: `{id}` has no value"))?;
        let mut errors = vec![];
        let text = bundle.format_pattern(pattern, None, &mut errors);
        if !errors.is_empty() {
            return Err(format!("{tag}.ftl: `{id}`: {errors:?}"));
        }
        texts.insert(id, text.into_owned());
    }
    Ok(texts)
}

fn texts(lang: Lang) -> &'static Texts {
    static JA: OnceLock<Texts> = OnceLock::new();
    static EN: OnceLock<Texts> = OnceLock::new();
    let (cell, tag, source) = match lang {
        Lang::Ja => (&JA, "ja", JA_FTL),
        Lang::En => (&EN, "en", EN_FTL),
    };
    cell.get_or_init(|| {
        load(tag, source).unwrap_or_else(|e| {
            // The tests load both files; a broken file never ships.
            tracing::error!(error = %e, "web texts");
            HashMap::new()
        })
    })
}

/// The text of `key` in `lang`, if there is one.
pub fn lookup(lang: Lang, key: &str) -> Option<&'static str> {
    texts(lang).get(key).map(String::as_str)
}

/// The text of `key` in `lang`; `?` when unknown (the tests keep this from happening).
pub fn t(lang: Lang, key: &str) -> &'static str {
    lookup(lang, key).unwrap_or_else(|| {
        tracing::warn!(%key, "missing text");
        "?"
    })
}

/// The text of `key`, else `fallback` (for keys made from codes and states).
pub fn text_or(lang: Lang, key: &str, fallback: &str) -> String {
    lookup(lang, key)
        .map(str::to_owned)
        .unwrap_or_else(|| fallback.to_owned())
}

/// The message key made of a prefix and a code or type that may hold dots
/// (`history-kind-` + `consent.granted`).
pub fn key(prefix: &str, name: &str) -> String {
    format!("{prefix}{}", name.replace('.', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_the_same_keys_and_every_message_formats() {
        let ja = load("ja", JA_FTL).unwrap();
        let en = load("en", EN_FTL).unwrap();
        assert!(ja.len() > 300, "{} texts", ja.len());
        let mut only_ja: Vec<_> = ja.keys().filter(|k| !en.contains_key(*k)).collect();
        let mut only_en: Vec<_> = en.keys().filter(|k| !ja.contains_key(*k)).collect();
        only_ja.sort();
        only_en.sort();
        assert!(
            only_ja.is_empty() && only_en.is_empty(),
            "ja only: {only_ja:?}; en only: {only_en:?}"
        );
        for (k, v) in ja.iter().chain(en.iter()) {
            assert!(!v.trim().is_empty(), "{k} lacks a text");
        }
        assert_eq!(
            lookup(Lang::En, "committee-vote-manual").unwrap(),
            "Paste a JWS of {service_id, decision, comment, issued_at, nonce}, ES256 with header kid = your member ID.",
            "braces are escaped in the file and shown as braces"
        );
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
                    if lookup(Lang::Ja, key).is_none() {
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

    /// Keys named in Rust: page titles (`Page::new(…, lang, "key", …)`), `t(lang, "key")`,
    /// `lookup(lang, "key")` and `label_key: "key"`.
    #[test]
    fn keys_used_from_rust_exist() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut missing = Vec::new();
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("src") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("source");
            for marker in [
                "Page::new(",
                "i18n::t(",
                "t(lang, ",
                "lookup(lang, ",
                "label_key: ",
            ] {
                for (i, _) in text.match_indices(marker) {
                    // The first string literal of the call, if it starts before the call ends.
                    let call = &text[i + marker.len()..];
                    let end_of_call = call.find(')').unwrap_or(call.len());
                    let Some(start) = call.find('"').filter(|s| *s < end_of_call) else {
                        continue;
                    };
                    let rest = &call[start + 1..];
                    let Some(end) = rest.find('"') else { continue };
                    let key = &rest[..end];
                    if key.contains('-') && !key.contains(' ') && !key.ends_with('-') {
                        seen += 1;
                        if lookup(Lang::Ja, key).is_none() {
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
