//! No `Debug` or `Display` output of a type holding a token or secret contains any part of it.

use chrono::Utc;
use keyward_core::{
    IssuedKey, NewKey, ScopeCatalog, SecretRotation, Token, TokenFormat, TokenHasher,
};

/// Fails if `shown` contains any 4-character window of the token's secret part, or the pepper.
fn assert_hidden(shown: &str, token: &Token) {
    let secret = &token.expose_secret()[token.prefix().len() + 1..];
    for window in secret.as_bytes().windows(4) {
        let part = std::str::from_utf8(window).unwrap();
        assert!(!shown.contains(part), "{part:?} leaked in {shown}");
    }
    assert!(!shown.contains(token.expose_secret()));
}

fn issued() -> IssuedKey {
    NewKey::personal("k", "alice")
        .scopes(["keys:read"])
        .issue(
            &ScopeCatalog::builder().build().unwrap(),
            &TokenFormat::new("books").unwrap(),
            &TokenHasher::sha256(),
            Utc::now(),
        )
        .unwrap()
}

#[test]
fn token_debug_and_display() {
    let issued = issued();
    let token = &issued.token;
    for shown in [
        format!("{token:?}"),
        format!("{token:#?}"),
        format!("{token}"),
    ] {
        assert_hidden(&shown, token);
    }
}

#[test]
fn issued_key_debug() {
    let issued = issued();
    // The record shows its hint (prefix and last 4 characters, which are check digits), so
    // compare against the secret part before the hint's characters.
    let shown = format!("{issued:?}");
    let secret = &issued.token.expose_secret()["books_".len()..];
    for window in secret.as_bytes()[..secret.len() - 4].windows(4) {
        let part = std::str::from_utf8(window).unwrap();
        assert!(!shown.contains(part), "{part:?} leaked in {shown}");
    }
    assert!(!shown.contains(issued.token.expose_secret()));
}

#[test]
fn rotation_debug() {
    let (rotation, token) = SecretRotation::generate(
        &TokenFormat::new("books").unwrap(),
        &TokenHasher::sha256(),
        None,
        Utc::now(),
    );
    let shown = format!("{rotation:?} {token:?}");
    let secret = &token.expose_secret()["books_".len()..];
    for window in secret.as_bytes()[..secret.len() - 4].windows(4) {
        assert!(!shown.contains(std::str::from_utf8(window).unwrap()));
    }
}

#[test]
fn hasher_debug_hides_the_pepper() {
    let pepper = "correct-horse-battery-staple";
    let shown = format!("{:?}", TokenHasher::hmac(pepper));
    for window in pepper.as_bytes().windows(4) {
        assert!(
            !shown.contains(std::str::from_utf8(window).unwrap()),
            "{shown}"
        );
    }
}
