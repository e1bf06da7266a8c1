//! `[admin]`: operator staff.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::Path;
use tsunagu_capability::{ConfigError, Section};

/// `[admin]`: how operator staff log in, what they may hold, and what counts as unusual.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Longest a staff session lives (seconds; default 900).
    pub session_ttl_seconds: u64,
    /// Longest a grant may run (days; default 365).
    pub grant_max_days: u32,
    /// A grant not reconfirmed, or an account not used, within this many days is listed by
    /// the access review (default 90).
    pub review_period_days: u32,
    /// The networks staff may reach the staff endpoints from (CIDR; default loopback only).
    /// The address is the connection's peer, or `X-Forwarded-For` from `[server]
    /// trusted_proxies`.
    pub allowed_networks: Vec<String>,
    /// More residents than this looked at by one staff member within an hour is unusual.
    pub bulk_threshold: u32,
    /// Office hours, local time, Monday to Friday: `HH:MM-HH:MM` (default `08:30-18:00`).
    pub office_hours: String,
    /// The local time's offset from UTC in minutes (default 540, Japan).
    pub utc_offset_minutes: i32,
    /// Consecutive failed logins before an account locks (default 5).
    pub lockout_after: u32,
    /// The first lock's length; each further failure doubles it (seconds; default 60).
    pub lockout_base_seconds: u64,
    /// The longest lock (seconds; default 86,400).
    pub lockout_max_seconds: u64,
    /// The issuer shown by authenticator apps (`otpauth://` URIs).
    pub totp_issuer: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            session_ttl_seconds: 900,
            grant_max_days: 365,
            review_period_days: 90,
            allowed_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            bulk_threshold: 20,
            office_hours: "08:30-18:00".into(),
            utc_offset_minutes: 540,
            lockout_after: 5,
            lockout_base_seconds: 60,
            lockout_max_seconds: 86_400,
            totp_issuer: "tsunagu".into(),
        }
    }
}

/// Office hours as minutes of the local day, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfficeHours {
    pub start: u32,
    pub end: u32,
    pub utc_offset_minutes: i32,
}

impl OfficeHours {
    /// Whether `at` (Unix seconds) falls within office hours on a weekday, local time.
    pub fn contains(&self, at: i64) -> bool {
        let local = at + i64::from(self.utc_offset_minutes) * 60;
        let days = local.div_euclid(86_400);
        // 1970-01-01 was a Thursday: day 0 → Thursday (weekday index 3, Monday = 0).
        let weekday = (days + 3).rem_euclid(7);
        if weekday >= 5 {
            return false;
        }
        let minute = (local.rem_euclid(86_400) / 60) as u32;
        self.start <= minute && minute < self.end
    }
}

fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

impl AdminConfig {
    /// The allowed networks (checked by `validate`).
    pub fn networks(&self) -> Vec<IpNet> {
        self.allowed_networks
            .iter()
            .filter_map(|n| parse_net(n))
            .collect()
    }

    /// Office hours (checked by `validate`).
    pub fn hours(&self) -> OfficeHours {
        let (start, end) = self
            .office_hours
            .split_once('-')
            .and_then(|(a, b)| Some((parse_hhmm(a)?, parse_hhmm(b)?)))
            .unwrap_or((8 * 60 + 30, 18 * 60));
        OfficeHours {
            start,
            end,
            utc_offset_minutes: self.utc_offset_minutes,
        }
    }

    /// How failed logins lock an account: from `lockout_after` consecutive failures on,
    /// the base doubled for each further failure, at most the max.
    pub fn lock_rule(&self) -> crate::store::LockRule {
        crate::store::LockRule {
            after: self.lockout_after,
            base_seconds: self.lockout_base_seconds,
            max_seconds: self.lockout_max_seconds,
        }
    }
}

impl Section for AdminConfig {
    const NAME: &'static str = "admin";

    fn resolve_paths(&mut self, _base: &Path) {}

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if !(60..=43_200).contains(&self.session_ttl_seconds) {
            return invalid(format!(
                "admin.session_ttl_seconds: {} is not between 60 and 43200",
                self.session_ttl_seconds
            ));
        }
        if !(1..=3_660).contains(&self.grant_max_days) {
            return invalid(format!(
                "admin.grant_max_days: {} is not between 1 and 3660",
                self.grant_max_days
            ));
        }
        if !(1..=3_660).contains(&self.review_period_days) {
            return invalid(format!(
                "admin.review_period_days: {} is not between 1 and 3660",
                self.review_period_days
            ));
        }
        for n in &self.allowed_networks {
            if parse_net(n).is_none() {
                return invalid(format!(
                    "admin.allowed_networks: `{n}` is not a CIDR block or an address"
                ));
            }
        }
        if self.bulk_threshold == 0 {
            return invalid("admin.bulk_threshold: must be at least 1".into());
        }
        match self
            .office_hours
            .split_once('-')
            .map(|(a, b)| (parse_hhmm(a), parse_hhmm(b)))
        {
            Some((Some(a), Some(b))) if a < b => {}
            _ => {
                return invalid(format!(
                    "admin.office_hours: `{}` is not HH:MM-HH:MM with the start before the end",
                    self.office_hours
                ));
            }
        }
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            return invalid("admin.utc_offset_minutes: not between -840 and 840".into());
        }
        if self.lockout_after == 0 || self.lockout_base_seconds == 0 {
            return invalid(
                "admin.lockout_after and admin.lockout_base_seconds: must be at least 1".into(),
            );
        }
        if self.lockout_max_seconds < self.lockout_base_seconds {
            return invalid(
                "admin.lockout_max_seconds: must not be below admin.lockout_base_seconds".into(),
            );
        }
        if self.totp_issuer.trim().is_empty() || self.totp_issuer.contains(':') {
            return invalid("admin.totp_issuer: a non-empty name without ':'".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_loopback_only() {
        let c = AdminConfig::default();
        c.validate().unwrap();
        let nets = c.networks();
        assert!(
            nets.iter()
                .any(|n| n.contains(&"127.0.0.1".parse::<IpAddr>().unwrap()))
        );
        assert!(
            !nets
                .iter()
                .any(|n| n.contains(&"10.0.0.1".parse::<IpAddr>().unwrap()))
        );
    }

    #[test]
    fn bad_keys_are_named() {
        let cases = [
            (
                AdminConfig {
                    allowed_networks: vec!["10.0.0.0/33".into()],
                    ..AdminConfig::default()
                },
                "admin.allowed_networks",
            ),
            (
                AdminConfig {
                    office_hours: "18:00-08:30".into(),
                    ..AdminConfig::default()
                },
                "admin.office_hours",
            ),
            (
                AdminConfig {
                    session_ttl_seconds: 10,
                    ..AdminConfig::default()
                },
                "admin.session_ttl_seconds",
            ),
            (
                AdminConfig {
                    lockout_max_seconds: 1,
                    ..AdminConfig::default()
                },
                "admin.lockout_max_seconds",
            ),
        ];
        for (config, key) in cases {
            let e = config.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn the_lock_grows_with_each_failure_up_to_the_max() {
        let c = AdminConfig::default();
        assert_eq!(c.lock_rule().seconds(4), 0);
        assert_eq!(c.lock_rule().seconds(5), 60);
        assert_eq!(c.lock_rule().seconds(6), 120);
        assert_eq!(c.lock_rule().seconds(7), 240);
        assert_eq!(c.lock_rule().seconds(100), 86_400);
        assert_eq!(c.lock_rule().seconds(u32::MAX), 86_400);
    }

    #[test]
    fn office_hours_are_weekdays_in_local_time() {
        let h = AdminConfig::default().hours();
        // 2026-12-07 (a Monday) 10:00 JST = 01:00 UTC.
        let monday_10_jst = 1_796_605_200;
        assert!(h.contains(monday_10_jst));
        // 03:00 JST the same day.
        assert!(!h.contains(monday_10_jst - 7 * 3600));
        // Saturday 10:00 JST.
        assert!(!h.contains(monday_10_jst + 5 * 86_400));
        // 17:59 in, 18:00 out.
        assert!(h.contains(monday_10_jst + 7 * 3600 + 59 * 60));
        assert!(!h.contains(monday_10_jst + 8 * 3600));
    }
}
