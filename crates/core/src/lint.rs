//! Policy lint (SPEC §4): findings the governance committee sees with every application.
//! Each rule is a pure function of the application and what is known of its providers; each
//! finding names its code, its severity and the principle it comes from (ISO/IEC 29100,
//! OECD 1980), so a reviewer can weigh it.

use crate::service::{
    Application, ConsentMode, DataClass, LegalBasis, Offer, PLATFORM_PROVIDER, Purpose,
    ServiceStatus,
};
use serde::{Deserialize, Serialize};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    /// The committee should not approve until it is resolved.
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    pub message: String,
    pub principle: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
}

const PURPOSE_SPECIFICATION: &str =
    "ISO/IEC 29100 purpose legitimacy and specification; OECD purpose specification";
const DATA_MINIMIZATION: &str =
    "ISO/IEC 29100 collection limitation and data minimization; OECD collection limitation";
const RETENTION_LIMITATION: &str =
    "ISO/IEC 29100 use, retention and disclosure limitation; OECD use limitation";
const CONSENT_AND_CHOICE: &str = "ISO/IEC 29100 consent and choice; OECD collection limitation";
const LAWFULNESS: &str =
    "ISO/IEC 29100 purpose legitimacy and specification (legal basis); privacy compliance";
const SECURITY: &str =
    "ISO/IEC 29100 information security and accountability; OECD security safeguards";
const ACCOUNTABILITY: &str = "ISO/IEC 29100 accountability; OECD accountability";

/// Limits the lint applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LintPolicy {
    /// Longest retention, in days, for a purpose whose most restricted item is open.
    pub max_retention_open: u32,
    pub max_retention_limited: u32,
    pub max_retention_closed: u32,
}

impl Default for LintPolicy {
    fn default() -> Self {
        LintPolicy {
            max_retention_open: 3650,
            max_retention_limited: 1825,
            max_retention_closed: 365,
        }
    }
}

/// What the lint knows about a provider named by a purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderView {
    pub status: ServiceStatus,
    pub offers: Vec<Offer>,
}

/// Words that say nothing specific about a purpose (検討, 活用, 向上, "improve services"…).
const GENERIC_JA: &[&str] = &[
    "検討",
    "活用",
    "向上",
    "改善",
    "充実",
    "推進",
    "促進",
    "提供",
    "利用",
    "実施",
    "各種",
    "サービス",
    "利便性",
    "取り組み",
    "取組",
    "等",
    "など",
    "ため",
    "のため",
    "業務",
    "様々",
    "さまざま",
    "より",
    "一層",
    "為",
    "事業",
    "施策",
    "の",
    "に",
    "を",
    "と",
    "や",
    "へ",
    "で",
    "する",
    "します",
    "いたします",
    "及び",
    "および",
    "並びに",
    "に関する",
    "関連",
    "目的",
    "その他",
    "今後",
    "将来",
    "的",
];
const GENERIC_EN: &[&str] = &[
    "improve",
    "improving",
    "improvement",
    "improvements",
    "service",
    "services",
    "better",
    "enhance",
    "enhancing",
    "enhancement",
    "various",
    "purposes",
    "purpose",
    "use",
    "using",
    "utilize",
    "utilization",
    "business",
    "operations",
    "the",
    "a",
    "an",
    "and",
    "or",
    "for",
    "of",
    "to",
    "our",
    "your",
    "in",
    "with",
    "such",
    "as",
    "etc",
    "other",
    "future",
    "marketing",
    "research",
    "development",
    "quality",
    "convenience",
    "provide",
    "providing",
    "data",
    "information",
    "analysis",
    "analytics",
];

/// Whether a description says nothing beyond generic words: after removing them, fewer than
/// a handful of meaningful characters or words remain.
pub fn is_vague(description_ja: &str, description_en: &str) -> bool {
    let mut ja = description_ja.to_owned();
    let mut generic: Vec<&str> = GENERIC_JA.to_vec();
    generic.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    for word in generic {
        ja = ja.replace(word, "");
    }
    let ja_left = ja
        .chars()
        .filter(|c| c.is_alphanumeric() && !c.is_ascii_digit())
        .count();
    let en_left = description_en
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2 && !GENERIC_EN.contains(&w.to_ascii_lowercase().as_str()))
        .count();
    ja_left < 6 || en_left < 3
}

const OPT_OUT_PHRASES: &[&str] = &[
    "オプトアウト",
    "拒否しない限り",
    "申し出がない限り",
    "停止を求めない限り",
    "opt-out",
    "opt out",
    "unless you object",
    "unless the resident objects",
    "by default",
];

fn finding(
    code: &str,
    severity: Severity,
    message: String,
    principle: &str,
    purpose: Option<&Purpose>,
    item: Option<&str>,
) -> Finding {
    Finding {
        code: code.to_owned(),
        severity,
        message,
        principle: principle.to_owned(),
        purpose_id: purpose.map(|p| p.id.clone()),
        item: item.map(str::to_owned),
    }
}

fn has_citation(p: &Purpose) -> bool {
    p.citation
        .as_deref()
        .is_some_and(|c| c.trim().chars().count() >= 4)
}

/// The distinct codes of the `error` findings, sorted: they block approval unless each
/// approving vote overrides them ([`crate::governance::check_overrides`]).
pub fn blocking_codes(findings: &[Finding]) -> Vec<String> {
    let mut codes: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.code.clone())
        .collect();
    codes.sort();
    codes.dedup();
    codes
}

/// The warning for an application that does not carry the service's signed acceptance of
/// the contract obligations (the platform checks the signature; the lint only reports).
pub fn obligations_not_accepted() -> Finding {
    finding(
        "obligations_not_accepted",
        Severity::Warning,
        "the application does not carry the service's signed acceptance of the contract \
         obligations (obligations_acceptance): an approval would record them as not accepted"
            .into(),
        ACCOUNTABILITY,
        None,
        None,
    )
}

/// Lints an application. `provider` looks up a provider service by id (for the application's
/// own offers, when it is both, it is consulted too: pass them in).
pub fn lint<K>(
    app: &Application<K>,
    policy: &LintPolicy,
    provider: &dyn Fn(&str) -> Option<ProviderView>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in &app.purposes {
        lint_purpose(p, policy, provider, &mut out);
    }
    if app.security.incident_contact.trim().is_empty() {
        out.push(finding(
            "incident_contact_missing",
            Severity::Error,
            "no incident contact: who reports a leak, and to whom?".into(),
            SECURITY,
            None,
            None,
        ));
    }
    if !app.security.iso27001 {
        out.push(finding(
            "no_iso27001",
            Severity::Warning,
            "no ISO/IEC 27001 certification declared: ask for the security measures in place"
                .into(),
            SECURITY,
            None,
            None,
        ));
    }
    for sub in &app.security.subcontractors {
        out.push(finding(
            "subcontractor",
            Severity::Info,
            format!("sub-contractor `{sub}` must be bound by the same obligations (purpose limit, no ID linkage, incident reporting)"),
            ACCOUNTABILITY,
            None,
            None,
        ));
    }
    if app.kind.provides() {
        for offer in &app.offers {
            if offer.sensitive && offer.data_class != DataClass::Closed {
                out.push(finding(
                    "sensitive_item_not_closed",
                    Severity::Warning,
                    format!(
                        "item `{}` is sensitive but classed `{}`: sensitive data is closed data",
                        offer.item,
                        offer.data_class.as_str()
                    ),
                    SECURITY,
                    None,
                    Some(&offer.item),
                ));
            }
        }
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.code.cmp(&b.code))
    });
    out
}

fn lint_purpose(
    p: &Purpose,
    policy: &LintPolicy,
    provider: &dyn Fn(&str) -> Option<ProviderView>,
    out: &mut Vec<Finding>,
) {
    if is_vague(&p.description_ja, &p.description_en) {
        out.push(finding(
            "vague_purpose",
            Severity::Error,
            format!("purpose `{}` says nothing specific beyond generic words (検討, 活用, 向上, \"improve services\"): state what is done with the data and for whom", p.id),
            PURPOSE_SPECIFICATION,
            Some(p),
            None,
        ));
    }
    for item in &p.items {
        let use_text = p.uses.get(item).map(|u| u.trim()).unwrap_or("");
        if use_text.chars().count() < 4 {
            out.push(finding(
                "item_without_use",
                Severity::Error,
                format!("item `{item}` has no declared use in purpose `{}`: ask only for what the purpose needs", p.id),
                DATA_MINIMIZATION,
                Some(p),
                Some(item),
            ));
        }
    }
    for used in p.uses.keys() {
        if !p.items.contains(used) {
            out.push(finding(
                "use_without_item",
                Severity::Info,
                format!(
                    "a use is declared for `{used}`, which purpose `{}` does not ask for",
                    p.id
                ),
                DATA_MINIMIZATION,
                Some(p),
                Some(used),
            ));
        }
    }
    if p.consent_mode == ConsentMode::OptOut {
        out.push(finding(
            "opt_out_design",
            Severity::Error,
            format!("purpose `{}` is designed as opt-out: data may flow only after the resident opts in", p.id),
            CONSENT_AND_CHOICE,
            Some(p),
            None,
        ));
    } else {
        let text = format!("{} {}", p.description_ja, p.description_en.to_lowercase());
        if let Some(phrase) = OPT_OUT_PHRASES.iter().find(|ph| text.contains(*ph)) {
            out.push(finding(
                "opt_out_language",
                Severity::Warning,
                format!(
                    "purpose `{}` reads like an opt-out design (\"{phrase}\")",
                    p.id
                ),
                CONSENT_AND_CHOICE,
                Some(p),
                None,
            ));
        }
    }
    if p.legal_basis != LegalBasis::Consent && !has_citation(p) {
        out.push(finding(
            "citation_missing",
            Severity::Error,
            format!(
                "purpose `{}` claims the legal basis `{}` but names no provision (citation)",
                p.id,
                p.legal_basis.as_str()
            ),
            LAWFULNESS,
            Some(p),
            None,
        ));
    }

    if p.provider == PLATFORM_PROVIDER {
        return;
    }
    let Some(source) = provider(&p.provider) else {
        out.push(finding(
            "unknown_provider",
            Severity::Error,
            format!(
                "purpose `{}` names provider `{}`, which is not a registered service",
                p.id, p.provider
            ),
            PURPOSE_SPECIFICATION,
            Some(p),
            None,
        ));
        return;
    };
    if !matches!(source.status, ServiceStatus::Approved) {
        out.push(finding(
            "provider_not_approved",
            Severity::Warning,
            format!(
                "provider `{}` is {}: nothing will flow until it is approved",
                p.provider,
                source.status.as_str()
            ),
            ACCOUNTABILITY,
            Some(p),
            None,
        ));
    }
    let mut strictest = DataClass::Open;
    for item in &p.items {
        match source.offers.iter().find(|o| &o.item == item) {
            None => out.push(finding(
                "item_not_offered",
                Severity::Error,
                format!(
                    "purpose `{}` asks for `{item}`, which provider `{}` does not offer",
                    p.id, p.provider
                ),
                DATA_MINIMIZATION,
                Some(p),
                Some(item),
            )),
            Some(offer) => {
                strictest = strictest.max(offer.data_class);
                if offer.sensitive && p.legal_basis != LegalBasis::Consent && !has_citation(p) {
                    out.push(finding(
                        "sensitive_without_basis",
                        Severity::Error,
                        format!("`{item}` is sensitive (要配慮個人情報): only explicit opt-in consent or a named legal provision may carry it"),
                        CONSENT_AND_CHOICE,
                        Some(p),
                        Some(item),
                    ));
                }
                if offer.sensitive && p.consent_mode == ConsentMode::OptOut {
                    out.push(finding(
                        "sensitive_opt_out",
                        Severity::Error,
                        format!("`{item}` is sensitive and may never flow by opt-out"),
                        CONSENT_AND_CHOICE,
                        Some(p),
                        Some(item),
                    ));
                }
            }
        }
    }
    let max = match strictest {
        DataClass::Open => policy.max_retention_open,
        DataClass::Limited => policy.max_retention_limited,
        DataClass::Closed => policy.max_retention_closed,
    };
    if p.retention_days > max {
        out.push(finding(
            "retention_too_long",
            Severity::Error,
            format!(
                "purpose `{}` keeps {} data for {} days; the maximum for that class is {max}",
                p.id,
                strictest.as_str(),
                p.retention_days
            ),
            RETENTION_LIMITATION,
            Some(p),
            None,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Security, ServiceKind};
    use std::collections::BTreeMap;

    fn school() -> ProviderView {
        ProviderView {
            status: ServiceStatus::Approved,
            offers: vec![
                Offer {
                    item: "allergy".into(),
                    title_ja: "アレルギー情報".into(),
                    title_en: None,
                    data_class: DataClass::Closed,
                    sensitive: true,
                },
                Offer {
                    item: "class".into(),
                    title_ja: "学級".into(),
                    title_en: None,
                    data_class: DataClass::Limited,
                    sensitive: false,
                },
            ],
        }
    }

    fn purpose() -> Purpose {
        Purpose {
            id: "allergy-to-daycare".into(),
            title_ja: "保育園の給食でのアレルギー対応".into(),
            title_en: "Allergy-safe meals at day care".into(),
            description_ja: "保育園が給食の献立からアレルゲンを除くため、学校に登録されたアレルギー情報を受け取ります。".into(),
            description_en: "The day-care centre receives the allergy record kept by the school so that its kitchen removes allergens from meals.".into(),
            provider: "school".into(),
            items: vec!["allergy".into()],
            uses: BTreeMap::from([("allergy".into(), "献立からアレルゲンを除くため".into())]),
            retention_days: 365,
            legal_basis: LegalBasis::Consent,
            citation: None,
            consent_mode: ConsentMode::OptIn,
        }
    }

    fn app(p: Purpose) -> Application<()> {
        Application {
            name: "すくすく保育".into(),
            organization: "前橋市保育協会".into(),
            contact: "info@example.jp".into(),
            kind: ServiceKind::Consumer,
            jwks: (),
            endpoint: None,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            token_endpoint_auth_method: None,
            offers: vec![],
            purposes: vec![p],
            security: Security {
                iso27001: true,
                incident_contact: "soc@example.jp".into(),
                subcontractors: vec![],
            },
            obligations_acceptance: None,
            tls_client_certificate: None,
        }
    }

    fn codes(p: Purpose) -> Vec<String> {
        let provider = |id: &str| (id == "school").then(school);
        lint(&app(p), &LintPolicy::default(), &provider)
            .into_iter()
            .map(|f| f.code)
            .collect()
    }

    #[test]
    fn names_a_resident_reads_show_what_they_say() {
        assert_eq!(app(purpose()).validate(), Ok(()));
        for (bad, cp) in [
            ("すくすく\u{0}保育", "U+0000"),
            ("すくすく\u{202E}育保", "U+202E"),
            ("すくすく\u{200B}保育", "U+200B"),
            ("すくすく\u{2067}保育", "U+2067"),
            ("すくすく\u{FEFF}保育", "U+FEFF"),
            ("すくすく\n保育", "U+000A"),
        ] {
            let mut a = app(purpose());
            a.name = bad.into();
            let err = a.validate().unwrap_err();
            assert!(err.contains("`name`") && err.contains(cp), "{bad:?}: {err}");
        }
        let mut a = app(purpose());
        a.purposes[0].title_ja = "給食\u{202D}対応".into();
        assert!(a.validate().unwrap_err().contains("title_ja"));
        // Descriptions may break lines; names may not.
        let mut a = app(purpose());
        a.purposes[0].description_ja = "一行目\n二行目".into();
        assert_eq!(a.validate(), Ok(()));
        // Ordinary Japanese, emoji with a variation selector, and full-width spaces pass.
        let mut a = app(purpose());
        a.name = "前橋　すくすく保育 ❤️".into();
        assert_eq!(a.validate(), Ok(()));
    }

    #[test]
    fn a_specific_minimal_opt_in_purpose_has_no_findings() {
        assert_eq!(codes(purpose()), Vec::<String>::new());
    }

    #[test]
    fn a_purpose_of_only_generic_words_is_vague() {
        let mut p = purpose();
        p.description_ja = "サービス向上のための各種検討に活用します。".into();
        p.description_en = "To improve our services and for various purposes.".into();
        assert_eq!(codes(p), vec!["vague_purpose"]);
        assert!(is_vague("利便性向上のため活用", "improve services"));
        assert!(!is_vague(
            &purpose().description_ja,
            &purpose().description_en
        ));
    }

    #[test]
    fn an_item_without_a_declared_use_is_flagged() {
        let mut p = purpose();
        p.items.push("class".into());
        assert_eq!(codes(p), vec!["item_without_use"]);
    }

    #[test]
    fn retention_beyond_the_class_maximum_is_flagged() {
        let mut p = purpose();
        p.retention_days = 366;
        assert_eq!(codes(p), vec!["retention_too_long"]);
    }

    #[test]
    fn sensitive_items_need_consent_or_a_named_provision() {
        let mut p = purpose();
        p.legal_basis = LegalBasis::VitalInterest;
        assert_eq!(
            codes(p.clone()),
            vec!["citation_missing", "sensitive_without_basis"]
        );
        p.citation = Some("消防法第35条の5".into());
        assert_eq!(codes(p), Vec::<String>::new());
    }

    #[test]
    fn an_opt_out_design_is_refused_and_opt_out_wording_warned() {
        let mut p = purpose();
        p.consent_mode = ConsentMode::OptOut;
        assert_eq!(codes(p), vec!["opt_out_design", "sensitive_opt_out"]);
        let mut p = purpose();
        p.description_en
            .push_str(" Data is shared unless you object.");
        assert_eq!(codes(p), vec!["opt_out_language"]);
    }

    #[test]
    fn asking_for_an_item_the_provider_does_not_offer_is_flagged() {
        let mut p = purpose();
        p.items.push("income".into());
        p.uses.insert("income".into(), "保育料の算定".into());
        assert_eq!(codes(p), vec!["item_not_offered"]);
        let mut p = purpose();
        p.provider = "nowhere".into();
        assert_eq!(codes(p), vec!["unknown_provider"]);
    }

    #[test]
    fn the_security_checklist_is_read() {
        let mut a = app(purpose());
        a.security = Security {
            iso27001: false,
            incident_contact: " ".into(),
            subcontractors: vec!["ACME".into()],
        };
        let provider = |id: &str| (id == "school").then(school);
        let findings = lint(&a, &LintPolicy::default(), &provider);
        let codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(
            codes,
            vec!["incident_contact_missing", "no_iso27001", "subcontractor"]
        );
        assert!(findings.iter().all(|f| !f.principle.is_empty()));
    }
}
