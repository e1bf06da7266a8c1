//! What every response and request gets at the edge, whichever capability serves it: the
//! security headers (one layer for pages, API JSON, problem+json, the 404 fallback,
//! `/healthz`, `/.well-known`), and who the client is (`X-Forwarded-For` and
//! `X-Forwarded-Proto` believed only from `[server] trusted_proxies`).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use tsunagu_capability::ClientAddr;

/// One year: browsers keep to HTTPS for this long after one response over HTTPS.
const HSTS: &str = "max-age=31536000";

/// The headers every response carries. A capability may set its own value first (the web
/// pages set their `Content-Security-Policy`); this layer only fills what is missing.
/// `Strict-Transport-Security` when the platform is served over HTTPS (`hsts`: the listener
/// has TLS or the public URL is `https://`), or a trusted proxy says the client used HTTPS.
pub(crate) async fn security_headers(
    State(hsts): State<bool>,
    request: Request,
    next: Next,
) -> Response {
    let https = hsts
        || request
            .extensions()
            .get::<ClientAddr>()
            .is_some_and(|c| c.https);
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let mut fill = |name: HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    fill(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    fill(header::X_FRAME_OPTIONS, "DENY");
    // `same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin: null` with
    // every form POST, so the pages' Origin check could not tell our forms from a foreign
    // site's. Other sites still get no referrer.
    fill(header::REFERRER_POLICY, "same-origin");
    // JSON and problem+json load nothing; the pages set their own policy.
    fill(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    );
    if https {
        fill(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    response
}

/// The client of a request that came from `peer` (over TLS when `tls`): the peer itself
/// unless it is a trusted proxy; then the nearest address in `X-Forwarded-For` (read from
/// the right) that is not a trusted proxy, and the scheme of `X-Forwarded-Proto`.
pub(crate) fn client_of(
    peer: SocketAddr,
    tls: bool,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> ClientAddr {
    let peer = peer.ip().to_canonical();
    let trusts = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !trusts(&peer) {
        return ClientAddr {
            ip: peer,
            https: tls,
        };
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut ip = peer;
    for hop in hops.iter().rev() {
        let Some(hop) = parse_hop(hop) else { break };
        ip = hop;
        if !trusts(&hop) {
            break;
        }
    }
    let https = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
    {
        Some(proto) => proto.trim().eq_ignore_ascii_case("https"),
        None => tls,
    };
    ClientAddr { ip, https }
}

/// One `X-Forwarded-For` entry: an address, or an address with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        let c = client_of(peer("198.51.100.7"), false, &h, &nets(&["10.0.0.0/8"]));
        assert_eq!(c.ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert!(!c.https);
        let c = client_of(peer("10.0.0.2"), false, &h, &[]);
        assert_eq!(
            c.ip,
            "10.0.0.2".parse::<IpAddr>().unwrap(),
            "none by default"
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_the_scheme() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        let c = client_of(peer("10.1.2.3"), false, &h, &nets(&["10.0.0.0/8"]));
        assert_eq!(c.ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert!(c.https);
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client_not_what_the_client_wrote() {
        // The client wrote a fake first entry; two trusted proxies appended theirs.
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4, 203.0.113.9"),
            ("x-forwarded-for", "10.0.0.5"),
        ]);
        let c = client_of(peer("10.0.0.6"), true, &h, &nets(&["10.0.0.0/8"]));
        assert_eq!(c.ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert!(c.https, "no X-Forwarded-Proto: the listener's own scheme");
    }

    #[test]
    fn an_unreadable_hop_stops_the_walk_and_ipv4_mapped_peers_are_ipv4() {
        let h = headers(&[("x-forwarded-for", "garbage, 10.0.0.5")]);
        let c = client_of(peer("::ffff:10.0.0.6"), false, &h, &nets(&["10.0.0.0/8"]));
        assert_eq!(c.ip, "10.0.0.5".parse::<IpAddr>().unwrap());
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        let c = client_of(peer("10.0.0.6"), false, &h, &nets(&["10.0.0.6/32"]));
        assert_eq!(c.ip, "2001:db8::1".parse::<IpAddr>().unwrap());
    }
}
