//! The client's address: the socket peer, or what a trusted proxy says it forwarded.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap};
use ipnet::IpNet;

/// The client address keyward used for a request; handlers take it as an extractor
/// (`Option<ClientIp>`).
///
/// It is the socket peer from axum's [`ConnectInfo<SocketAddr>`](ConnectInfo) (serve the app
/// with `into_make_service_with_connect_info::<SocketAddr>()`), or, when that peer is one of
/// the configured [trusted proxies](crate::KeywardBuilder::trusted_proxies), the rightmost
/// untrusted address of `X-Forwarded-For` (or of `Forwarded: for=` when there is no
/// `X-Forwarded-For`). Headers from any other peer are ignored, so a client cannot spoof its
/// address. Absent when the server provides no `ConnectInfo`.
///
/// # Example
///
/// ```
/// use keyward::ClientIp;
///
/// async fn handler(ip: Option<ClientIp>) -> String {
///     ip.map_or_else(|| "unknown".to_owned(), |ClientIp(ip)| ip.to_string())
/// }
/// # let _ = handler;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

pub(crate) fn client_ip(
    extensions: &Extensions,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()?
        .0
        .ip()
        .to_canonical();
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let forwarded_for = headers.get_all("x-forwarded-for");
    let hops: Vec<Option<IpAddr>> = if forwarded_for.iter().next().is_some() {
        forwarded_for
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(parse_node)
            .collect()
    } else {
        headers
            .get_all(http::header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(value))
                })
            })
            .collect()
    };
    // Walk from the nearest hop: each trusted proxy vouches for the address before it.
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) => {
                client = ip;
                if !is_trusted(ip, trusted) {
                    break;
                }
            }
            // An address that cannot be read ("unknown", obfuscated): stop at the last proxy.
            None => break,
        }
    }
    Some(client)
}

/// Whether a request comes from another site, so that a session cookie must not authorize a
/// change: browsers send `Sec-Fetch-Site`, and `Origin` on every cross-origin request.
pub(crate) fn is_cross_site(parts: &http::request::Parts) -> bool {
    if let Some(site) = parts.headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return true;
        }
    }
    let Some(origin) = parts.headers.get(http::header::ORIGIN) else {
        return false;
    };
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(http::uri::Authority::as_str));
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.parse::<http::Uri>().ok())
        .and_then(|u| u.authority().map(|a| a.as_str().to_owned()));
    match (host, origin_host) {
        (Some(host), Some(origin_host)) => !host.eq_ignore_ascii_case(&origin_host),
        _ => true,
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    keyward_core::policy::ip_allowed(trusted, Some(ip))
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, optionally quoted.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim().trim_matches('"');
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = raw.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end]
            .parse::<IpAddr>()
            .ok()
            .map(|ip| ip.to_canonical());
    }
    raw.parse::<SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn resolve(peer: &str, headers: &[(&str, &str)], trusted: &[&str]) -> Option<IpAddr> {
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_ip(&extensions, &map, &trusted)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn no_connect_info_means_unknown() {
        assert_eq!(client_ip(&Extensions::new(), &HeaderMap::new(), &[]), None);
    }

    #[test]
    fn rightmost_untrusted_hop() {
        let trusted = ["10.0.0.0/8"];
        let xff = [("x-forwarded-for", "198.51.100.7, 203.0.113.5, 10.0.0.3")];
        assert_eq!(resolve("10.0.0.1:1", &xff, &trusted), ip("203.0.113.5"));
        // Every hop trusted: the leftmost one.
        let xff = [("x-forwarded-for", "10.1.1.1, 10.0.0.3")];
        assert_eq!(resolve("10.0.0.1:1", &xff, &trusted), ip("10.1.1.1"));
        // Several header lines count as one list.
        let lines = [
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-for", "203.0.113.5"),
        ];
        assert_eq!(resolve("10.0.0.1:1", &lines, &trusted), ip("203.0.113.5"));
        // Garbage stops the walk at the last proxy.
        let junk = [("x-forwarded-for", "198.51.100.7, unknown")];
        assert_eq!(resolve("10.0.0.1:1", &junk, &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_header() {
        let trusted = ["2001:db8:ffff::/48"];
        let forwarded = [(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
        )];
        assert_eq!(
            resolve("[2001:db8:ffff::1]:443", &forwarded, &trusted),
            ip("2001:db8:cafe::17")
        );
    }

    #[test]
    fn untrusted_peer_headers_ignored() {
        let xff = [("x-forwarded-for", "1.2.3.4")];
        assert_eq!(
            resolve("198.51.100.9:5000", &xff, &["10.0.0.0/8"]),
            ip("198.51.100.9")
        );
        assert_eq!(resolve("198.51.100.9:5000", &xff, &[]), ip("198.51.100.9"));
    }

    #[test]
    fn node_forms() {
        assert_eq!(parse_node(" 192.0.2.1:80 "), ip("192.0.2.1"));
        assert_eq!(parse_node("\"[::1]:80\""), ip("::1"));
        assert_eq!(parse_node("::ffff:192.0.2.1"), ip("192.0.2.1"));
        assert_eq!(parse_node("_hidden"), None);
    }
}
