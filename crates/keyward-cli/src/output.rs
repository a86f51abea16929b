//! What the commands print: text for people, `--json` for scripts.
//!
//! Tokens go to stdout alone (so `TOKEN=$(keyward create ...)` works); everything else a
//! person should read about a new token goes to stderr.

use std::error::Error;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use keyward_core::{IssuedKey, KeyRecord, KeyView};
use serde_json::json;

/// A record's state in one word.
pub(crate) fn status(key: &KeyRecord, now: DateTime<Utc>) -> &'static str {
    if key.is_revoked() {
        "revoked"
    } else if !key.active {
        "disabled"
    } else if key.is_expired(now) {
        "expired"
    } else {
        "active"
    }
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

pub(crate) fn done(json: bool, message: &str) {
    if json {
        print_json(&json!({ "ok": true, "message": message }));
    } else {
        println!("{message}");
    }
}

pub(crate) fn issued(json: bool, issued: &IssuedKey) {
    if json {
        print_json(&json!({
            "key": issued.record.view(),
            "token": issued.token.expose_secret(),
        }));
    } else {
        println!("{}", issued.token.expose_secret());
        eprintln!(
            "key {} ({}): copy the token above now, it is not shown again",
            issued.record.id, issued.record.name
        );
    }
}

pub(crate) fn key(json: bool, key: &KeyRecord, now: DateTime<Utc>) {
    if json {
        print_json(&json!(with_status(key, now)));
        return;
    }
    let view = key.view();
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<13} {value}");
    };
    line("id", view.id.to_string());
    line("name", view.name.clone());
    line("kind", view.kind.to_string());
    line("owner", view.owner.clone().unwrap_or_else(|| "-".into()));
    line("scopes", view.scopes.join(" "));
    line("key", view.hint.clone());
    line("status", status(key, now).into());
    line("created", view.created_at.to_rfc3339());
    line("expires", time_or(view.expires_at, "never"));
    line("last used", time_or(view.last_used_at, "never"));
    line(
        "last ip",
        view.last_used_ip
            .map_or_else(|| "-".into(), |ip| ip.to_string()),
    );
    line("uses", view.usage_count.to_string());
    line("allowed ips", list_or(&view.allowed_ips, "any"));
    line(
        "rate limit",
        view.rate_limit
            .map_or_else(|| "none".into(), |r| format!("{r}/min")),
    );
    if let Some(revoked) = view.revoked_at {
        line("revoked", revoked.to_rfc3339());
    }
    print!("{out}");
}

pub(crate) fn list(json: bool, keys: &[KeyRecord], now: DateTime<Utc>) {
    if json {
        let views: Vec<_> = keys.iter().map(|k| with_status(k, now)).collect();
        print_json(&json!({ "keys": views }));
        return;
    }
    println!(
        "{:<36}  {:<24}  {:<8}  {:<12}  {:<9}  {:<20}  {:>6}  SCOPES",
        "ID", "NAME", "KIND", "OWNER", "STATUS", "EXPIRES", "USES"
    );
    for key in keys {
        println!(
            "{:<36}  {:<24}  {:<8}  {:<12}  {:<9}  {:<20}  {:>6}  {}",
            key.id,
            truncate(&key.name, 24),
            key.kind,
            truncate(key.owner.as_deref().unwrap_or("-"), 12),
            status(key, now),
            time_or(key.expires_at, "never"),
            key.usage_count,
            key.scopes.to_strings().join(" "),
        );
    }
}

pub(crate) fn verdict(json: bool, key: Option<&KeyView>, verdict: Result<(), String>) {
    if json {
        print_json(&json!({
            "usable": verdict.is_ok(),
            "reason": verdict.as_ref().err(),
            "key": key,
        }));
        return;
    }
    if let Some(key) = key {
        println!("key {} ({})", key.id, key.name);
    }
    match verdict {
        Ok(()) => println!("usable"),
        Err(reason) => println!("not usable: {reason}"),
    }
}

pub(crate) fn error_chain(err: &dyn Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        // Many errors repeat their source in their own message; say each thing once.
        let text = cause.to_string();
        if !message.contains(&text) {
            let _ = write!(message, ": {text}");
        }
        source = cause.source();
    }
    message
}

fn with_status(key: &KeyRecord, now: DateTime<Utc>) -> serde_json::Value {
    let mut value = json!(key.view());
    value["status"] = json!(status(key, now));
    value
}

fn time_or(time: Option<DateTime<Utc>>, absent: &str) -> String {
    time.map_or_else(
        || absent.to_owned(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn list_or(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.to_owned()
    } else {
        items.join(" ")
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}
