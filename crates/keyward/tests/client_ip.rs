//! Client addresses: spoofed forwarding headers are ignored, trusted proxies are believed.

mod common;

use common::*;
use keyward::{Keyward, ManualClock, MemoryStore, NewKey};

async fn setup(allowed: &str) -> (axum::Router, String) {
    let clock = ManualClock::new(t0());
    let keyward: Keyward = builder(MemoryStore::new(), &clock)
        .trusted_proxies([
            "10.0.0.0/8".parse::<ipnet::IpNet>().unwrap(),
            "fd00::/8".parse().unwrap(),
        ])
        .build()
        .unwrap();
    let (_, token) = issue(
        &keyward,
        NewKey::service("office")
            .scopes(["books:read"])
            .allowed_ips([allowed]),
    )
    .await;
    (app(&keyward), token)
}

fn request(token: &str, peer: &str, forwarded_for: &str) -> http::Request<axum::body::Body> {
    with_peer(
        get_with(
            "/echo",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-forwarded-for", forwarded_for),
            ],
        ),
        peer,
    )
}

#[tokio::test]
async fn ipv4_spoofed_forwarded_for_from_untrusted_peer_is_ignored() {
    let (app, token) = setup("203.0.113.0/24").await;
    // The attacker claims an allowed address.
    let reply = send(&app, request(&token, "198.51.100.66:5000", "203.0.113.9")).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.error(), "ip_not_allowed");
}

#[tokio::test]
async fn ipv4_trusted_proxy_is_honoured() {
    let (app, token) = setup("203.0.113.0/24").await;
    let reply = send(
        &app,
        request(
            &token,
            "10.0.0.2:5000",
            "198.51.100.1, 203.0.113.9, 10.0.0.7",
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["client_ip"], "203.0.113.9");
    // The same proxy forwarding a client outside the list.
    let reply = send(&app, request(&token, "10.0.0.2:5000", "198.51.100.1")).await;
    assert_eq!(reply.status, 403);
}

#[tokio::test]
async fn ipv6_spoofed_forwarded_for_from_untrusted_peer_is_ignored() {
    let (app, token) = setup("2001:db8:aa::/48").await;
    let reply = send(
        &app,
        request(&token, "[2001:db8:ff::1]:5000", "2001:db8:aa::5"),
    )
    .await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.error(), "ip_not_allowed");
}

#[tokio::test]
async fn ipv6_trusted_proxy_is_honoured() {
    let (app, token) = setup("2001:db8:aa::/48").await;
    let reply = send(
        &app,
        request(&token, "[fd00::1]:443", "2001:db8:aa::5, fd00::9"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["client_ip"], "2001:db8:aa::5");
    // `Forwarded` works too when there is no X-Forwarded-For.
    let forwarded = with_peer(
        get_with(
            "/echo",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("forwarded", "for=\"[2001:db8:aa::6]:4711\";proto=https"),
            ],
        ),
        "[fd00::1]:443",
    );
    let reply = send(&app, forwarded).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["client_ip"], "2001:db8:aa::6");
}
